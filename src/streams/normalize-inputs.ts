import type { OperatorFunction } from 'rxjs';
import { isKeyed } from './join-labels.js';
import { rejection } from './messages.js';
import type { Rejection, RejectionReason, StreamInput, TickEvent } from './messages.js';
import type { LearnerPool } from './learner-pool.js';
import { operate } from './operate.js';
import { StateReader, StateWriter, StreamStateError } from './state-codec.js';

export interface NormalizeInputsOptions {
  /** EWMA decay of the running mean and variance after warmup (default 0.999: a window of ~1000 ticks). */
  readonly decay?: number;
  /** Ticks of exact running statistics (Welford) before the EWMA takes over (default round(1 / (1 - decay))). */
  readonly warmup?: number;
  /** Added to the variance under the square root (default 1e-6). */
  readonly eps?: number;
  /** Most streams tracked at once; a new stream past it is rejected 'too-many-streams'. Default: no limit. */
  readonly maxStreams?: number;
  /**
   * The pool whose checkpoints carry the statistics (part 'normalize-inputs'): a restored or evicted stream
   * resumes with its statistics instead of re-learning them, so its learner sees the inputs scaled as before.
   */
  readonly pool?: LearnerPool;
}

/** Name of the normalizer's per-stream state in a checkpoint. */
export const NORMALIZE_INPUTS_PART = 'normalize-inputs';

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
    const pool = options.pool;
    const unregister = pool?.registerPart({
      name: NORMALIZE_INPUTS_PART,
      save: (stream) => stats.get(stream)?.save(),
      drop: (stream) => void stats.delete(stream),
      check: (bytes, learner) => ChannelStats.load(bytes, learner.spec.inputSize),
    });

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
        const restored = pool?.takeRestoredPart(tick.stream, NORMALIZE_INPUTS_PART);
        s = restored !== undefined ? ChannelStats.load(restored, x.length) : new ChannelStats(x.length);
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
      cleanup: () => {
        stats.clear();
        unregister?.();
      },
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

  save(): Uint8Array {
    return new StateWriter().f64(this.count).f64(this.phaseEwma ? 1 : 0).array(this.mean).array(this.m2).bytes();
  }

  static load(bytes: Uint8Array, channels: number): ChannelStats {
    const r = new StateReader(bytes, 'normalize-inputs state');
    const s = new ChannelStats(channels);
    s.count = r.f64();
    const phase = r.f64();
    if (phase !== 0 && phase !== 1) throw new StreamStateError(`normalize-inputs state: phase ${phase} is not 0 or 1`);
    s.phaseEwma = phase === 1;
    r.arrayInto(s.mean);
    r.arrayInto(s.m2);
    r.end();
    return s;
  }
}
