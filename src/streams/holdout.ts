/**
 * Holdout schedules: which ticks have their labels withheld from the learner (DESIGN section 5). Their error is
 * reported separately as the decoding measure. A schedule is plain state and arithmetic (no I/O, no RxJS); one
 * schedule serves one stream, and expects that stream's times in non-decreasing order.
 *
 * - `none`: nothing is held out.
 * - `alternate`: periods of `onSeconds + offSeconds`, measured from the stream's first t; labels reach the learner
 *   during the first `onSeconds` of each period and are withheld during the remaining `offSeconds`.
 * - `firstMinutes`: the learner learns only during the first `minutes` of each session (since the last
 *   `sessionStarted(t)`, i.e. the last drift marker with source 'session', or since the stream's first t);
 *   everything after that is held out.
 * - `always`: every label is withheld (a decoder that must go on with no label at all).
 * - `bySession`: one schedule per session, in order (the evaluation protocols of a BCI: learn from every label of
 *   the first session, then calibrate on the first minutes of the next, or go on with none). Session i follows
 *   `sessions[i]` (the last entry for any later session), with its clock restarted at the session's start. The
 *   first session is the one the stream begins with: a boundary declared before the stream's first tick (a
 *   replay declares every session, the first included) does not start a second one.
 *
 * The stream's first t is the first t the schedule is told about, through either method.
 */
type SingleHoldoutSpec =
  | { readonly kind: 'none' }
  | { readonly kind: 'always' }
  | { readonly kind: 'alternate'; readonly onSeconds: number; readonly offSeconds: number }
  | { readonly kind: 'firstMinutes'; readonly minutes: number };

export type HoldoutSpec = SingleHoldoutSpec | { readonly kind: 'bySession'; readonly sessions: readonly SingleHoldoutSpec[] };

export interface HoldoutSchedule {
  /** Whether the label of the tick at time `t` (seconds, source clock) is withheld from the learner. */
  isHeldOut(t: number): boolean;
  /** A session began at `t` (a 'session' drift marker). */
  sessionStarted(t: number): void;
  /**
   * What the schedule remembers, and its restore (a checkpointed stream resumes the same schedule): `origin`, the
   * stream's first t or the session's start (NaN before any), and `session`, the sessions begun since the first
   * (0 in the first).
   */
  origin: number;
  session: number;
}

/** Throws a RangeError for a spec that is not one of the kinds above with finite, sensible numbers. */
export function validateHoldoutSpec(spec: HoldoutSpec): HoldoutSpec {
  if (spec?.kind === 'bySession') {
    if (!Array.isArray(spec.sessions) || spec.sessions.length === 0) {
      throw new RangeError('holdout: bySession needs a non-empty list `sessions` (one schedule per session, in order)');
    }
    spec.sessions.forEach((s, i) => {
      if ((s as { kind?: unknown })?.kind === 'bySession') throw new RangeError(`holdout: sessions[${i}] may not itself be bySession`);
      validateSingle(s, `sessions[${i}].`);
    });
    return spec;
  }
  return validateSingle(spec, '');
}

function validateSingle(spec: SingleHoldoutSpec, at: string): SingleHoldoutSpec {
  const finite = (v: unknown, name: string, min: number, strict: boolean) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || (strict ? v <= min : v < min)) {
      throw new RangeError(`holdout: ${at}${name} must be a finite number ${strict ? '>' : '>='} ${min}, got ${String(v)}`);
    }
  };
  switch (spec?.kind) {
    case 'none':
    case 'always':
      return spec;
    case 'alternate':
      finite(spec.onSeconds, 'onSeconds', 0, true);
      finite(spec.offSeconds, 'offSeconds', 0, false);
      return spec;
    case 'firstMinutes':
      finite(spec.minutes, 'minutes', 0, true);
      return spec;
    default:
      throw new RangeError(
        `holdout: ${at}kind '${String((spec as { kind?: unknown } | undefined)?.kind)}' is unknown: expected 'none', 'always', 'alternate', 'firstMinutes' or 'bySession'`,
      );
  }
}

/**
 * Seconds added to `elapsed` before comparing it with a boundary: bin times are sums of float steps, so the tick
 * that lies exactly k minutes after a session start may compute as a hair before it.
 */
const TIME_EPSILON = 1e-9;

/** Whether a single schedule withholds the label `elapsed` seconds after its origin. */
function withheld(spec: SingleHoldoutSpec, rawElapsed: number): boolean {
  const elapsed = rawElapsed + TIME_EPSILON;
  switch (spec.kind) {
    case 'none':
      return false;
    case 'always':
      return true;
    case 'alternate': {
      const period = spec.onSeconds + spec.offSeconds;
      const phase = ((elapsed % period) + period) % period;
      return phase >= spec.onSeconds;
    }
    case 'firstMinutes':
      return elapsed >= spec.minutes * 60;
  }
}

export function holdoutSchedule(spec: HoldoutSpec): HoldoutSchedule {
  validateHoldoutSpec(spec);
  const perSession = spec.kind === 'bySession' ? spec.sessions : [spec];
  // `alternate` alone keeps one clock for the whole stream; every other schedule restarts it per session.
  const restartsPerSession = spec.kind !== 'alternate';
  return {
    origin: NaN,
    session: 0,
    isHeldOut(t: number): boolean {
      if (Number.isNaN(this.origin)) this.origin = t;
      return withheld(perSession[Math.min(this.session, perSession.length - 1)], t - this.origin);
    },
    sessionStarted(t: number): void {
      if (Number.isNaN(this.origin)) {
        this.origin = t;
        return;
      }
      this.session++;
      if (restartsPerSession) this.origin = t;
    },
  };
}

/** A schedule in words, for summaries and logs. */
export function describeHoldout(spec: HoldoutSpec): string {
  const one = (s: SingleHoldoutSpec): string => {
    switch (s.kind) {
      case 'none':
        return 'none';
      case 'always':
        return 'every label withheld';
      case 'alternate':
        return `alternate ${s.onSeconds}s learning / ${s.offSeconds}s held out`;
      case 'firstMinutes':
        return `learning in the first ${Number(s.minutes.toPrecision(4))} min of each session`;
    }
  };
  if (spec.kind !== 'bySession') return one(spec);
  return spec.sessions.map((s, i) => `session ${i + 1}${i === spec.sessions.length - 1 && i > 0 ? ' and later' : ''}: ${one(s).replace(' of each session', '')}`).join('; ');
}
