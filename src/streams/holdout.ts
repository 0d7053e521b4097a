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
 *
 * The stream's first t is the first t the schedule is told about, through either method.
 */
export type HoldoutSpec =
  | { readonly kind: 'none' }
  | { readonly kind: 'alternate'; readonly onSeconds: number; readonly offSeconds: number }
  | { readonly kind: 'firstMinutes'; readonly minutes: number };

export interface HoldoutSchedule {
  /** Whether the label of the tick at time `t` (seconds, source clock) is withheld from the learner. */
  isHeldOut(t: number): boolean;
  /** A session began at `t` (a 'session' drift marker). */
  sessionStarted(t: number): void;
  /**
   * The one number the schedule remembers (the stream's first t, or the session's start; NaN before any), and
   * its restore: a checkpointed stream resumes the same schedule.
   */
  origin: number;
}

/** Throws a RangeError for a spec that is not one of the kinds above with finite, sensible numbers. */
export function validateHoldoutSpec(spec: HoldoutSpec): HoldoutSpec {
  const finite = (v: unknown, name: string, min: number, strict: boolean) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || (strict ? v <= min : v < min)) {
      throw new RangeError(`holdout: ${name} must be a finite number ${strict ? '>' : '>='} ${min}, got ${String(v)}`);
    }
  };
  switch (spec?.kind) {
    case 'none':
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
        `holdout: unknown kind '${String((spec as { kind?: unknown } | undefined)?.kind)}': expected 'none', 'alternate' or 'firstMinutes'`,
      );
  }
}

export function holdoutSchedule(spec: HoldoutSpec): HoldoutSchedule {
  validateHoldoutSpec(spec);
  switch (spec.kind) {
    case 'none':
      return { isHeldOut: () => false, sessionStarted: () => {}, origin: NaN };
    case 'alternate': {
      const on = spec.onSeconds;
      const period = spec.onSeconds + spec.offSeconds;
      return {
        origin: NaN,
        isHeldOut(t: number): boolean {
          if (Number.isNaN(this.origin)) this.origin = t;
          const phase = (((t - this.origin) % period) + period) % period;
          return phase >= on;
        },
        sessionStarted(t: number): void {
          if (Number.isNaN(this.origin)) this.origin = t;
        },
      };
    }
    case 'firstMinutes': {
      const learnSeconds = spec.minutes * 60;
      return {
        origin: NaN,
        isHeldOut(t: number): boolean {
          if (Number.isNaN(this.origin)) this.origin = t;
          return t - this.origin >= learnSeconds;
        },
        sessionStarted(t: number): void {
          this.origin = t;
        },
      };
    }
  }
}
