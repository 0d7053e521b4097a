/**
 * Replays recorded sessions (e.g. the Jango sessions of ./jango.ts) as one live stream of StreamInputs.
 *
 * For each session, in order: a DriftMarker { source: 'session', session: name } whose seq and t are those of the
 * session's first tick (so the boundary is declared in the stream), then one TickEvent per bin. seq continues
 * across sessions (from `startSeq`), and so does time: every session after the first is shifted so its first bin
 * comes one bin width after the previous session's last bin (the first session keeps its recorded times).
 *
 * Labels: with labelDelayTicks = 0 each tick carries its own y. With d > 0 ticks carry no y and the label of tick
 * s arrives as a LabelEvent right after tick s + d (tick t arrives, then the label of t - d: the order of the
 * demo), also across a session boundary; the last d labels follow the last tick, spaced one bin apart.
 *
 * Pace: 'recorded' emits each tick at its bin time on the given scheduler (default asyncScheduler; a TestScheduler
 * gives virtual time), a number k emits k times faster than recorded, and 'fast' emits as fast as possible in
 * chunks of `chunkTicks` ticks, yielding to the event loop (setImmediate) between chunks so consumers and
 * timers stay responsive. A progress bar (src/report/progress.ts) goes to stderr unless `progress: false`.
 * Unsubscribing stops the replay.
 */
import { Observable, asyncScheduler, type SchedulerAction, type SchedulerLike, type Subscriber } from 'rxjs';
import { ProgressBar, type ProgressOptions } from '../../report/progress.js';
import type { DriftMarker, LabelEvent, StreamInput, TickEvent } from '../../streams/messages.js';

/** What a replayable session provides (JangoSession has it). */
export interface ReplaySession {
  readonly name: string;
  /** Bin times in seconds, strictly increasing; its length is the number of ticks. */
  readonly t: Float64Array;
  /** Inputs, row-major: tick i is x[i * nChannels .. (i + 1) * nChannels). */
  readonly x: Float32Array;
  readonly nChannels: number;
  /** Labels, row-major, nOutputs per tick. */
  readonly y?: Float32Array;
  readonly nOutputs?: number;
  /** Bin width in seconds; default from t (or 1 for a one-tick session). */
  readonly binSeconds?: number;
}

export type ReplaySpeed = 'recorded' | 'fast' | number;

export interface ReplayOptions {
  readonly stream: string;
  /** 'recorded' (1x), a factor (x real time) or 'fast' (no waiting). */
  readonly speed: ReplaySpeed;
  /** Labels this many ticks late as LabelEvents; 0 (default) = in the tick. */
  readonly labelDelayTicks?: number;
  /** Progress bar options (total, unit and label are set here), or false for none. Default: a bar on stderr. */
  readonly progress?: Partial<ProgressOptions> | false;
  /** Scheduler for the timed speeds (default asyncScheduler). */
  readonly scheduler?: SchedulerLike;
  /** seq of the first tick (default 0). */
  readonly startSeq?: number;
  /** 'fast': ticks per chunk between yields to the event loop (default 1000). */
  readonly chunkTicks?: number;
}

interface Prepared {
  readonly session: ReplaySession;
  readonly n: number;
  /** Added to the session's recorded t. */
  readonly offset: number;
  /** Global index of the session's first tick. */
  readonly first: number;
  readonly bin: number;
}

function prepare(sessions: readonly ReplaySession[]): Prepared[] {
  const out: Prepared[] = [];
  let first = 0;
  let nextT = Number.NaN;
  for (const s of sessions) {
    const n = s.t.length;
    if (!Number.isInteger(s.nChannels) || s.nChannels < 0 || s.x.length !== n * s.nChannels) {
      throw new RangeError(`session '${s.name}': x has ${s.x.length} values, expected ${n} ticks x ${s.nChannels} channels`);
    }
    if (s.y !== undefined) {
      const k = s.nOutputs ?? 0;
      if (!Number.isInteger(k) || k <= 0 || s.y.length !== n * k) throw new RangeError(`session '${s.name}': y has ${s.y.length} values, expected ${n} ticks x ${k} outputs`);
    }
    for (let i = 1; i < n; i++) if (!(s.t[i] > s.t[i - 1])) throw new RangeError(`session '${s.name}': t is not strictly increasing at tick ${i}`);
    const bin = s.binSeconds ?? (n > 1 ? (s.t[n - 1] - s.t[0]) / (n - 1) : 1);
    if (!(bin > 0 && Number.isFinite(bin))) throw new RangeError(`session '${s.name}': bin width ${bin} is not > 0`);
    const offset = out.length === 0 || n === 0 ? 0 : nextT - s.t[0];
    out.push({ session: s, n, offset: Number.isNaN(offset) ? 0 : offset, first, bin });
    if (n > 0) nextT = s.t[n - 1] + (Number.isNaN(offset) ? 0 : offset) + bin;
    first += n;
  }
  return out;
}

/** Replays the sessions in order as one stream. */
export function replaySessions(sessions: readonly ReplaySession[], options: ReplayOptions): Observable<StreamInput> {
  const delay = options.labelDelayTicks ?? 0;
  if (!Number.isInteger(delay) || delay < 0) throw new RangeError(`labelDelayTicks must be an integer >= 0, got ${delay}`);
  const speed = options.speed;
  const factor = speed === 'recorded' ? 1 : speed === 'fast' ? Infinity : speed;
  if (!(typeof factor === 'number' && factor > 0)) throw new RangeError(`speed must be 'recorded', 'fast' or a number > 0, got ${String(speed)}`);
  if (typeof options.stream !== 'string' || options.stream === '') throw new RangeError('stream must be a non-empty string');
  const startSeq = options.startSeq ?? 0;
  if (!Number.isSafeInteger(startSeq) || startSeq < 0) throw new RangeError(`startSeq must be an integer >= 0, got ${startSeq}`);
  const chunk = options.chunkTicks ?? 1000;
  if (!Number.isInteger(chunk) || chunk <= 0) throw new RangeError(`chunkTicks must be an integer > 0, got ${chunk}`);
  const prepared = prepare(sessions);
  const total = prepared.reduce((a, p) => a + p.n, 0);
  const stream = options.stream;

  return new Observable<StreamInput>((subscriber) => {
    const bar =
      options.progress === false
        ? undefined
        : new ProgressBar({ unit: 'ticks', ...options.progress, total, label: prepared.find((p) => p.n > 0)?.session.name ?? '' });
    const slots = total === 0 ? 0 : total + delay;
    // Cursors: the tick of slot g, and the tick whose label arrives in slot g (g - delay).
    let g = 0;
    let tk = 0; // session of the tick cursor
    let lk = 0; // session of the label cursor
    let stopped = false;

    const lastT = (): number => {
      for (let k = prepared.length - 1; k >= 0; k--) {
        const p = prepared[k];
        if (p.n > 0) return p.session.t[p.n - 1] + p.offset;
      }
      return 0;
    };
    const lastBin = prepared.length > 0 ? prepared[prepared.length - 1].bin : 1;
    const tEnd = lastT();
    const slotTime = (slot: number): number => {
      if (slot < total) {
        while (tk < prepared.length && slot >= prepared[tk].first + prepared[tk].n) tk++;
        const p = prepared[tk];
        return p.session.t[slot - p.first] + p.offset;
      }
      return tEnd + (slot - total + 1) * lastBin;
    };

    /** Emits slot g and advances. */
    const emitSlot = (out: Subscriber<StreamInput>): void => {
      if (g < total) {
        while (tk < prepared.length && g >= prepared[tk].first + prepared[tk].n) tk++;
        const p = prepared[tk];
        const i = g - p.first;
        const s = p.session;
        const t = s.t[i] + p.offset;
        const seq = startSeq + g;
        if (i === 0) {
          const marker: DriftMarker = { kind: 'drift', stream, seq, t, source: 'session', session: s.name };
          out.next(marker);
          bar?.setLabel(s.name);
        }
        const c = s.nChannels;
        const x = s.x.slice(i * c, (i + 1) * c);
        const receivedAt = performance.now();
        let tick: TickEvent;
        if (delay === 0 && s.y !== undefined) {
          const k = s.nOutputs ?? 0;
          tick = { kind: 'tick', stream, seq, t, x, y: s.y.slice(i * k, (i + 1) * k), receivedAt };
        } else {
          tick = { kind: 'tick', stream, seq, t, x, receivedAt };
        }
        out.next(tick);
      }
      if (delay > 0) {
        const lg = g - delay;
        if (lg >= 0 && lg < total) {
          while (lk < prepared.length && lg >= prepared[lk].first + prepared[lk].n) lk++;
          const p = prepared[lk];
          const s = p.session;
          if (s.y !== undefined) {
            const k = s.nOutputs ?? 0;
            const i = lg - p.first;
            const label: LabelEvent = { kind: 'label', stream, seq: startSeq + lg, y: s.y.slice(i * k, (i + 1) * k) };
            out.next(label);
          }
        }
      }
      g++;
    };

    const done = (): void => {
      bar?.update(total);
      bar?.finish();
      subscriber.complete();
    };

    if (slots === 0) {
      done();
      return undefined;
    }

    if (factor === Infinity) {
      let handle: NodeJS.Immediate | undefined;
      const run = (): void => {
        handle = undefined;
        const until = Math.min(slots, g + chunk);
        while (g < until && !stopped && !subscriber.closed) emitSlot(subscriber);
        if (stopped || subscriber.closed) return;
        bar?.update(Math.min(g, total));
        if (g >= slots) done();
        else handle = setImmediate(run);
      };
      handle = setImmediate(run);
      return () => {
        stopped = true;
        if (handle !== undefined) clearImmediate(handle);
        if (g < slots) bar?.finish('stopped');
      };
    }

    const scheduler = options.scheduler ?? asyncScheduler;
    const start = scheduler.now();
    const t0 = slotTime(0);
    /** ms after start at which slot `slot` is due. */
    const due = (slot: number): number => ((slotTime(slot) - t0) * 1000) / factor;
    const work = function (this: SchedulerAction<undefined>): void {
      const elapsed = scheduler.now() - start;
      while (g < slots && !stopped && due(g) <= elapsed) emitSlot(subscriber);
      if (stopped || subscriber.closed) return;
      bar?.update(Math.min(g, total));
      if (g >= slots) {
        done();
        return;
      }
      this.schedule(undefined, Math.max(0, due(g) - (scheduler.now() - start)));
    };
    const sub = scheduler.schedule(work, 0);
    return () => {
      stopped = true;
      sub.unsubscribe();
      if (g < slots) bar?.finish('stopped');
    };
  });
}
