import { asyncScheduler, Observable, type SchedulerAction, type SchedulerLike, type Subscriber } from 'rxjs';
import type { LabelEvent, StreamInput, TickEvent } from '../../streams/messages.js';

/** How a simulator's ticks are emitted: shared by every simulator source adapter. */
export interface PacingOptions {
  /** Stream key of every event. */
  readonly stream: string;
  /** Ticks to emit before completing (default: never complete). */
  readonly ticks?: number;
  /** Ticks per second of event time; also the pace of 'recorded' emission (default 1000). */
  readonly ratePerSecond?: number;
  /** 'recorded' emits at ratePerSecond on the wall clock, 'fast' as fast as the consumer takes them. */
  readonly speed?: 'recorded' | 'fast';
  /** Labels arrive this many ticks after their tick as LabelEvents; 0 puts y in the tick (default 0). */
  readonly labelDelayTicks?: number;
  /** 'fast': ticks per chunk between yields to the event loop, so timers and sockets still run (default 1000). */
  readonly chunkTicks?: number;
  /** Scheduler for 'recorded' (default asyncScheduler); tests pass a virtual one. */
  readonly scheduler?: SchedulerLike;
}

/** PacingOptions checked, with their defaults filled in. */
export interface Pacing {
  readonly stream: string;
  readonly ticks: number;
  readonly ratePerSecond: number;
  readonly speed: 'recorded' | 'fast';
  readonly labelDelayTicks: number;
  readonly chunkTicks: number;
  readonly scheduler?: SchedulerLike;
}

/** Checks the pacing options, throwing a RangeError that names the adapter (`caller`) and the option. */
export function checkPacing(options: PacingOptions, caller: string): Pacing {
  const { stream } = options;
  if (typeof stream !== 'string' || stream === '') throw new RangeError(`${caller}: stream must be a non-empty string`);
  const ticks = options.ticks ?? Infinity;
  if (!(ticks === Infinity || (Number.isInteger(ticks) && ticks >= 0))) {
    throw new RangeError(`${caller}: ticks must be a non-negative integer, got ${String(ticks)}`);
  }
  const rate = options.ratePerSecond ?? 1000;
  if (!(rate > 0 && Number.isFinite(rate))) throw new RangeError(`${caller}: ratePerSecond must be > 0, got ${String(rate)}`);
  const delay = options.labelDelayTicks ?? 0;
  if (!Number.isInteger(delay) || delay < 0) throw new RangeError(`${caller}: labelDelayTicks must be an integer >= 0, got ${String(delay)}`);
  const chunk = options.chunkTicks ?? 1000;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`${caller}: chunkTicks must be a positive integer, got ${String(chunk)}`);
  const speed = options.speed ?? 'recorded';
  if (speed !== 'recorded' && speed !== 'fast') throw new RangeError(`${caller}: speed must be 'recorded' or 'fast', got ${String(speed)}`);
  return { stream, ticks, ratePerSecond: rate, speed, labelDelayTicks: delay, chunkTicks: chunk, scheduler: options.scheduler };
}

/** A simulator opened for one subscription. */
export interface PacedSource {
  readonly outputSize: number;
  /** x and y of the tick `advance` last moved to; copied into each event. */
  readonly x: Float32Array;
  readonly y: Float32Array;
  /**
   * Moves the simulator to tick `seq` (event time `t` seconds). Whatever it emits on the subscriber here (a drift
   * marker) comes right before that tick.
   */
  advance(seq: number, t: number): void;
}

/**
 * The emission loop every simulator adapter shares: tick `seq` at event time seq / ratePerSecond, labels delayed
 * by `labelDelayTicks` through a preallocated ring of `labelDelayTicks + 1` labels, 'fast' in chunks that yield to
 * the event loop, 'recorded' paced on the scheduler's clock. `open` runs once per subscription, so that every
 * subscriber sees the same seeded stream from its start and no two share state.
 *
 * Each event owns fresh copies of x and y (messages own their arrays). A label `labelDelayTicks` late arrives right
 * after the tick that many ticks later (ScoredTick.delay equals labelDelayTicks), as in a replay.
 */
export function pacedTicks(pacing: Pacing, open: (subscriber: Subscriber<StreamInput>) => PacedSource): Observable<StreamInput> {
  const { stream, ticks, ratePerSecond: rate, labelDelayTicks: delay, chunkTicks: chunk, speed } = pacing;

  return new Observable<StreamInput>((subscriber) => {
    const source = open(subscriber);
    const out = source.outputSize;
    const ring = delay + 1;
    const pendingLabels = new Float32Array(ring * out);
    // Slot g emits tick g (while g < ticks) and then the label of tick g - delay, as a replay does, so a finite
    // stream ends with the last `delay` labels after its last tick.
    const slots = ticks + delay;
    let g = 0;
    let stopped = false;

    const emitSlot = (): void => {
      if (g < ticks) {
        const seq = g;
        const t = seq / rate;
        source.advance(seq, t);
        const x = source.x.slice();
        let tick: TickEvent;
        if (delay === 0) {
          tick = { kind: 'tick', stream, seq, t, x, y: source.y.slice(), receivedAt: performance.now() };
        } else {
          tick = { kind: 'tick', stream, seq, t, x, receivedAt: performance.now() };
          pendingLabels.set(source.y, (seq % ring) * out);
        }
        subscriber.next(tick);
      }
      const labelled = g - delay;
      if (delay > 0 && labelled >= 0 && labelled < ticks) {
        const at = (labelled % ring) * out;
        const label: LabelEvent = { kind: 'label', stream, seq: labelled, y: pendingLabels.slice(at, at + out) };
        subscriber.next(label);
      }
      g++;
    };

    if (speed === 'fast') {
      let handle: NodeJS.Immediate | undefined;
      const run = (): void => {
        handle = undefined;
        const until = Math.min(slots, g + chunk);
        while (g < until && !stopped && !subscriber.closed) emitSlot();
        if (stopped || subscriber.closed) return;
        if (g >= slots) subscriber.complete();
        else handle = setImmediate(run);
      };
      handle = setImmediate(run);
      return () => {
        stopped = true;
        if (handle !== undefined) clearImmediate(handle);
      };
    }

    const scheduler = pacing.scheduler ?? asyncScheduler;
    const start = scheduler.now();
    const work = function (this: SchedulerAction<undefined>): void {
      const due = Math.floor(((scheduler.now() - start) * rate) / 1000) + 1;
      while (g < Math.min(due, slots) && !stopped && !subscriber.closed) emitSlot();
      if (stopped || subscriber.closed) return;
      if (g >= slots) return subscriber.complete();
      this.schedule(undefined, Math.max(0, (g * 1000) / rate - (scheduler.now() - start)));
    };
    const action = scheduler.schedule(work, 0);
    return () => {
      stopped = true;
      action.unsubscribe();
    };
  });
}
