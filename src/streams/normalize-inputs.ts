import type { OperatorFunction } from 'rxjs';
import { isKeyed } from './join-labels.js';
import { rejection } from './messages.js';
import type { Rejection, RejectionReason, StreamInput, TickEvent } from './messages.js';
import { operate } from './operate.js';

export interface NormalizeInputsOptions {
  /** EWMA decay of the running mean and variance after warmup (default 0.999: a window of ~1000 ticks). */
  readonly decay?: number;
  /** Ticks of exact running statistics (Welford) before the EWMA takes over (default round(1 / (1 - decay))). */
  readonly warmup?: number;
  /** Added to the variance under the square root (default 1e-6). */
  readonly eps?: number;
  /** Most streams tracked at once; a new stream past it is rejected 'too-many-streams'. Default: no limit. */
  readonly maxStreams?: number;
}

/**
 * Per-stream, per-channel adaptive z-scoring of the inputs: the classic BCI normalizer adaptation (re-centring
 * and re-scaling each channel on running statistics so that slow baseline and gain drifts between and within
 * sessions do not reach the decoder). Each tick first updates its stream's statistics with x (Welford's exact
 * mean and population variance for the first `warmup` ticks, then an exponentially weighted mean and variance
 * with `decay`), then goes on with x replaced by (x - mean) / sqrt(var + eps) in a new Float32Array; the first
 * tick of a stream therefore becomes all zeros. Only past and current inputs are used, never labels.
 *
 * A tick whose x is not an array, has another channel count than the stream's first tick ('dimension'), or holds
 * a non-finite value ('non-finite') is rejected before it touches the statistics. Labels, drift markers and
 * Rejections pass through. State is per subscription and per stream (two Float64Arrays of the channel count).
 */
export function normalizeInputs(options: NormalizeInputsOptions = {}): OperatorFunction<StreamInput | Rejection, StreamInput | Rejection> {
  const decay = options.decay ?? 0.999;
  if (typeof decay !== 'number' || !(decay > 0 && decay < 1)) {
    throw new RangeError(`normalizeInputs: decay must be in (0, 1), got ${String(decay)}`);
  }
  const warmup = options.warmup ?? Math.round(1 / (1 - decay));
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new RangeError(`normalizeInputs: warmup must be a non-negative integer, got ${String(warmup)}`);
  }
  const eps = options.eps ?? 1e-6;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) {
    throw new RangeError(`normalizeInputs: eps must be a finite number > 0, got ${String(eps)}`);
  }
  const maxStreams = options.maxStreams ?? Infinity;
  if (!(maxStreams >= 1)) throw new RangeError(`normalizeInputs: maxStreams must be >= 1, got ${String(maxStreams)}`);

  return operate<StreamInput | Rejection, StreamInput | Rejection>((subscriber) => {
    const stats = new Map<string, ChannelStats>();
    const reject = (reason: RejectionReason, message: string, stream?: string, seq?: number) =>
      subscriber.next(rejection(reason, message, stream, seq));

    const onTick = (tick: TickEvent) => {
      const x = tick.x as ArrayLike<number> | undefined;
      if (x == null || typeof x !== 'object' || typeof x.length !== 'number' || x.length < 1) {
        return reject('malformed', `tick ${tick.seq} of stream '${tick.stream}' has no input array`, tick.stream, tick.seq);
      }
      let s = stats.get(tick.stream);
      if (s && x.length !== s.mean.length) {
        return reject('dimension', `tick ${tick.seq} of stream '${tick.stream}' has ${x.length} channels, expected ${s.mean.length}`, tick.stream, tick.seq);
      }
      for (let i = 0; i < x.length; i++) {
        if (typeof x[i] !== 'number' || !Number.isFinite(x[i])) {
          return reject('non-finite', `tick ${tick.seq} of stream '${tick.stream}': x[${i}] is ${String(x[i])}, not a finite number`, tick.stream, tick.seq);
        }
      }
      if (!s) {
        if (stats.size >= maxStreams) {
          return reject('too-many-streams', `stream '${tick.stream}' refused: already normalizing ${maxStreams} streams`, tick.stream, tick.seq);
        }
        s = new ChannelStats(x.length);
        stats.set(tick.stream, s);
      }
      const z = new Float32Array(x.length);
      s.update(x, decay, warmup);
      for (let i = 0; i < x.length; i++) z[i] = (x[i] - s.mean[i]) / Math.sqrt(s.variance(i) + eps);
      subscriber.next({ ...tick, x: z });
    };

    return {
      next(message) {
        if (message?.kind === 'tick') {
          if (!isKeyed(message)) return reject('malformed', 'message without a string stream key and a finite seq');
          return onTick(message);
        }
        subscriber.next(message);
      },
      cleanup: () => stats.clear(),
    };
  });
}

/** Running mean and variance per channel: Welford while count <= warmup, then EWMA. */
class ChannelStats {
  count = 0;
  private phaseEwma = false;
  readonly mean: Float64Array;
  /** Welford's sum of squared deviations during warmup; the variance itself afterwards. */
  private readonly m2: Float64Array;

  constructor(channels: number) {
    this.mean = new Float64Array(channels);
    this.m2 = new Float64Array(channels);
  }

  update(x: ArrayLike<number>, decay: number, warmup: number): void {
    const n = ++this.count;
    const mean = this.mean;
    const m2 = this.m2;
    if (n === 1) {
      for (let i = 0; i < mean.length; i++) {
        mean[i] = x[i];
        m2[i] = 0;
      }
    } else if (n <= warmup) {
      for (let i = 0; i < mean.length; i++) {
        const d = x[i] - mean[i];
        mean[i] += d / n;
        m2[i] += d * (x[i] - mean[i]);
      }
    } else {
      if (n === warmup + 1) for (let i = 0; i < mean.length; i++) m2[i] /= n - 1; // sum -> variance
      for (let i = 0; i < mean.length; i++) {
        const d = x[i] - mean[i];
        const incr = (1 - decay) * d;
        mean[i] += incr;
        m2[i] = decay * (m2[i] + d * incr);
      }
    }
    this.phaseEwma = n > warmup;
  }

  variance(i: number): number {
    return this.phaseEwma ? this.m2[i] : this.m2[i] / this.count;
  }
}
