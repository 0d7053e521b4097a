import type { MonoTypeOperatorFunction } from 'rxjs';
import type { DetectorSpec } from '../drift/detector.js';
import { ChannelNovelty } from './channel-novelty.js';
import { ADMITTED, detectionConfig, REFUSED_FIRST, refusal, StreamDetectorBank } from './stream-detector-bank.js';
import { isKeyed } from './join-labels.js';
import type { DriftMarker, Rejection, StreamInput, TickEvent } from './messages.js';
import type { LearnerPool } from './learner-pool.js';
import { operate } from './operate.js';

export interface DetectInputDriftOptions {
  /** One detector per spec and stream; markers carry the source `input-${spec.kind}`. */
  readonly detectors: readonly DetectorSpec[];
  /** Same contract as detectDrift's: markers go here, not into the output; a throwing emit errors the output. */
  readonly emit: (marker: DriftMarker) => void;
  /** Ticks after any marker of the stream during which detections are not emitted (default 0). */
  readonly cooldownTicks?: number;
  /** Most streams watched at once; past it a stream passes through undetected (default: no limit). */
  readonly maxStreams?: number;
  /** The learners' pool: a stream it evicts is forgotten here too. */
  readonly pool?: LearnerPool;
  /** What the detectors are fed per tick (default 'population-mean'); see detectInputDrift. */
  readonly statistic?: InputStatistic;
}

/**
 * The per-tick number detectInputDrift feeds its detectors: 'population-mean', the mean over channels of x; or
 * 'mean-squared-z', the mean over channels of each channel's squared z-score against its own running mean and
 * variance (ChannelNovelty), which sees changes that cancel in the population mean.
 */
export type InputStatistic = 'population-mean' | 'mean-squared-z';

/**
 * Drift detection on the inputs, before predictThenLearn: it needs no labels, so it can see a session change
 * before a single label of the new session has arrived. Per stream, one detector per spec is fed, on every valid
 * TickEvent, the tick's population mean: the mean over channels of x. In a BCI decoder a session change (electrodes
 * that moved, units lost or gained, a new gain or baseline) shifts the per-channel firing rates, and the population
 * mean moves with them; it costs O(channels) per tick and gives the univariate detectors one number per tick. It
 * is blind to changes that cancel across channels (some up, as many down): across the two Jango sessions the
 * population mean moves by less than its drift within a session while the per-channel rates correlate only 0.57.
 * With `statistic: 'mean-squared-z'` the detectors see instead the mean over channels of each channel's squared
 * z-score against its own running mean and variance (decay CHANNEL_STATISTICS_DECAY, read before the tick is
 * folded in, each capped at SQUARED_Z_CAP), about 1 while nothing changes and above it when channels move in any
 * direction; nothing is fed for a stream's first CHANNEL_STATISTICS_WARM_UP_TICKS valid ticks, and the statistics
 * (two arrays of the channel count per stream) are kept across drift markers, like the label scale of detectDrift.
 *
 * A detection calls `emit` with `{ kind: 'drift', stream, seq: tick.seq + 1, t: tick.t, source:
 * 'input-' + spec.kind }`, after the tick has passed on. Cooldown (in valid ticks), the reset of a stream's
 * detectors when a DriftMarker passes, and the stream bound work as in detectDrift.
 *
 * A tick is valid when it is keyed (string stream, finite seq), has a finite t, and x is a Float32Array of
 * finite numbers with as many channels as the stream's first valid tick. Any other tick passes through untouched
 * and feeds nothing: predictThenLearn rejects it, so this operator does not reject it a second time. Labels,
 * Rejections and markers without a key pass through. State is per subscription: per stream, the detectors, a
 * cooldown counter and the channel count.
 */
export function detectInputDrift(options: DetectInputDriftOptions): MonoTypeOperatorFunction<StreamInput | Rejection> {
  const config = detectionConfig('detectInputDrift', options, 'input-');
  const statistic = options.statistic ?? 'population-mean';
  if (statistic !== 'population-mean' && statistic !== 'mean-squared-z') {
    throw new RangeError(`detectInputDrift: statistic must be 'population-mean' or 'mean-squared-z', got ${String(statistic)}`);
  }
  const squaredZ = statistic === 'mean-squared-z';
  return operate<StreamInput | Rejection, StreamInput | Rejection>((subscriber) => {
    const bank = new StreamDetectorBank(config);
    const channels = new Map<string, number>();
    // 'mean-squared-z' only; a stream gets its statistics when the bank admits it, so both stay within maxStreams.
    const novelties = new Map<string, ChannelNovelty>();
    const off = options.pool?.onEvict((stream) => {
      bank.forget(stream);
      channels.delete(stream);
      novelties.delete(stream);
    });

    const onTick = (tick: TickEvent) => {
      subscriber.next(tick);
      const mean = populationMean(tick);
      if (Number.isNaN(mean)) return;
      const expected = channels.get(tick.stream);
      if (expected !== undefined && expected !== tick.x.length) return;
      let value = mean;
      if (squaredZ) {
        let novelty = novelties.get(tick.stream);
        if (novelty === undefined) {
          const admission = bank.admit(tick.stream);
          if (admission === REFUSED_FIRST) subscriber.next(refusal(config, tick.stream, tick.seq));
          if (admission !== ADMITTED) return;
          channels.set(tick.stream, tick.x.length);
          novelty = new ChannelNovelty(tick.x.length);
          novelties.set(tick.stream, novelty);
        }
        value = novelty.observe(tick.x);
        if (Number.isNaN(value)) return;
      }
      const admission = bank.observe(tick.stream, tick.seq + 1, tick.t, value);
      // Only admitted streams get a channel count, so the map is bounded with the detectors.
      if (admission === ADMITTED) {
        if (expected === undefined) channels.set(tick.stream, tick.x.length);
      } else if (admission === REFUSED_FIRST) {
        subscriber.next(refusal(config, tick.stream, tick.seq));
      }
    };

    const onMarker = (marker: DriftMarker) => {
      subscriber.next(marker);
      if (bank.markerPassed(marker.stream) === REFUSED_FIRST) subscriber.next(refusal(config, marker.stream, marker.seq));
    };

    return {
      next(message) {
        const kind = message?.kind;
        if ((kind !== 'tick' && kind !== 'drift') || !isKeyed(message)) return subscriber.next(message);
        if (kind === 'tick') onTick(message as TickEvent);
        else onMarker(message as DriftMarker);
      },
      cleanup: () => {
        bank.clear();
        channels.clear();
        novelties.clear();
        off?.();
      },
    };
  });
}

/** Mean over channels of a tick's x; NaN when the tick has no finite t or x is not a Float32Array of finite numbers. */
function populationMean(tick: TickEvent): number {
  const x = tick.x;
  if (typeof tick.t !== 'number' || !Number.isFinite(tick.t)) return Number.NaN;
  if (!(x instanceof Float32Array) || x.length < 1) return Number.NaN;
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (!Number.isFinite(v)) return Number.NaN;
    sum += v;
  }
  return sum / x.length;
}
