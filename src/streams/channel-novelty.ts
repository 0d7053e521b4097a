// How far a tick's channels stand from their own recent behaviour: the input statistic that sees a session change.
/**
 * Decay of the per-channel running mean and variance behind 'mean-squared-z' (half-life about 1,400 ticks, 69 s of
 * 50 ms bins): slow enough that a session change stands out for seconds before the statistics follow it, fast
 * enough to follow the slow drift of firing rates within a session (the detector would otherwise see it as a
 * change). The same decay as the input normalization of the BCI example.
 */
export const CHANNEL_STATISTICS_DECAY = 0.9995;

/** Ticks folded into the channel statistics before 'mean-squared-z' feeds anything (a z-score needs a variance). */
export const CHANNEL_STATISTICS_WARM_UP_TICKS = 1000;

/**
 * A channel's squared z-score is capped here (5 standard deviations): one silent channel that spikes once would
 * otherwise outweigh every other channel; a change that moves many channels still moves the mean.
 */
export const SQUARED_Z_CAP = 25;

/**
 * Per-channel running mean and variance of one stream's inputs, and the mean squared z-score of a tick against
 * them, read before the tick is folded in (so a tick is never compared with itself). A running mean for the first
 * 1 / (1 - decay) ticks, an exponentially weighted one after. Two Float64Arrays of the channel count; `observe`
 * allocates nothing. About 1 while nothing changes; above it when channels move, in any direction.
 */
export class ChannelNovelty {
  private readonly mean: Float64Array;
  private readonly variance: Float64Array;
  private count = 0;

  constructor(channels: number) {
    this.mean = new Float64Array(channels);
    this.variance = new Float64Array(channels);
  }

  /** The tick's mean squared z-score (NaN during the warm-up), then the tick folded into the statistics. */
  observe(x: Float32Array): number {
    const { mean, variance } = this;
    let value = Number.NaN;
    if (this.count >= CHANNEL_STATISTICS_WARM_UP_TICKS) {
      let meanVariance = 0;
      for (let c = 0; c < x.length; c++) meanVariance += variance[c];
      // A channel silent so far has no variance; a floor far below the others' keeps its z-score finite.
      const floor = 1e-6 * (meanVariance / x.length) + 1e-12;
      let sum = 0;
      for (let c = 0; c < x.length; c++) {
        const d = x[c] - mean[c];
        sum += Math.min((d * d) / Math.max(variance[c], floor), SQUARED_Z_CAP);
      }
      value = sum / x.length;
    }
    this.count++;
    const w = Math.max(1 / this.count, 1 - CHANNEL_STATISTICS_DECAY);
    for (let c = 0; c < x.length; c++) {
      const d = x[c] - mean[c];
      mean[c] += w * d;
      variance[c] = (1 - w) * (variance[c] + w * d * d);
    }
    return value;
  }
}

