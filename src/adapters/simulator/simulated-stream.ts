import { asyncScheduler, Observable, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { DriftingSignal, type DriftingSignalOptions } from '../../simulator/drifting-signal.js';
import type { DriftMarker, LabelEvent, StreamInput, TickEvent } from '../../streams/messages.js';

export interface SimulatedStreamOptions extends DriftingSignalOptions {
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
  /** Declare each session change as a DriftMarker with source 'session' (default true). */
  readonly declareSessions?: boolean;
  /** 'fast': ticks per chunk between yields to the event loop, so timers and sockets still run (default 1000). */
  readonly chunkTicks?: number;
  /** Scheduler for 'recorded' (default asyncScheduler); tests pass a virtual one. */
  readonly scheduler?: SchedulerLike;
}

/**
 * The simulator as a source adapter: a DriftingSignal (seeded, tuning redrawn every session) emitted as stream
 * events, so that the whole spine (operators, metrics, sinks) runs with no external service. Session changes are
 * declared as drift markers, the way a replayed recording declares its session boundaries; with
 * `declareSessions: false` the drift is unannounced and only a detector can find it.
 *
 * Each event owns fresh copies of x and y (messages own their arrays); pending delayed labels live in a
 * preallocated ring of `labelDelayTicks + 1` labels. A label `labelDelayTicks` late arrives right after the tick that
 * many ticks later (ScoredTick.delay equals labelDelayTicks), as in a replay.
 */
export function simulatedStream(options: SimulatedStreamOptions): Observable<StreamInput> {
  const { stream } = options;
  if (typeof stream !== 'string' || stream === '') throw new RangeError('simulatedStream: stream must be a non-empty string');
  const ticks = options.ticks ?? Infinity;
  if (!(ticks === Infinity || (Number.isInteger(ticks) && ticks >= 0))) {
    throw new RangeError(`simulatedStream: ticks must be a non-negative integer, got ${String(ticks)}`);
  }
  const rate = options.ratePerSecond ?? 1000;
  if (!(rate > 0 && Number.isFinite(rate))) throw new RangeError(`simulatedStream: ratePerSecond must be > 0, got ${String(rate)}`);
  const delay = options.labelDelayTicks ?? 0;
  if (!Number.isInteger(delay) || delay < 0) throw new RangeError(`simulatedStream: labelDelayTicks must be an integer >= 0, got ${String(delay)}`);
  const chunk = options.chunkTicks ?? 1000;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`simulatedStream: chunkTicks must be a positive integer, got ${String(chunk)}`);
  const speed = options.speed ?? 'recorded';
  if (speed !== 'recorded' && speed !== 'fast') throw new RangeError(`simulatedStream: speed must be 'recorded' or 'fast', got ${String(speed)}`);
  const declareSessions = options.declareSessions ?? true;

  return new Observable<StreamInput>((subscriber) => {
    // A new signal per subscription: every subscriber sees the same seeded stream from its start.
    const signal = new DriftingSignal(options);
    const out = signal.outputSize;
    const ring = delay + 1;
    const pendingLabels = new Float32Array(ring * out);
    // Slot g emits tick g (while g < ticks) and then the label of tick g - delay, as a replay does, so a finite
    // stream ends with the last `delay` labels after its last tick.
    const slots = ticks + delay;
    let g = 0;
    let session = 0;
    let stopped = false;

    const emitSlot = (): void => {
      if (g < ticks) {
        const seq = g;
        const t = seq / rate;
        if (signal.next() && declareSessions) {
          session++;
          const marker: DriftMarker = { kind: 'drift', stream, seq, t, source: 'session', session: `session-${session}` };
          subscriber.next(marker);
        }
        const x = signal.x.slice();
        let tick: TickEvent;
        if (delay === 0) {
          tick = { kind: 'tick', stream, seq, t, x, y: signal.y.slice(), receivedAt: performance.now() };
        } else {
          tick = { kind: 'tick', stream, seq, t, x, receivedAt: performance.now() };
          pendingLabels.set(signal.y, (seq % ring) * out);
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

    const scheduler = options.scheduler ?? asyncScheduler;
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
