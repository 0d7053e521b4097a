// Resampling a dependent series without a model of it: what calibration uses to imagine more of a warm-up segment.
import { Random } from '../learners/random.js';

/**
 * Mean block length of the stationary bootstrap, in integrated autocorrelation times. A block of mean length b
 * keeps the correlation at lag k only with probability (1 - 1/b)^k, so short blocks shrink the long-run
 * variance, which is what a cumulative-sum detector's false alarms depend on: too short, and the resampled null
 * looks calmer than the real one and the threshold comes out too low. For an AR(1) series, b = 10 tau keeps about
 * 95 % of the long-run variance (b = 2 tau, a common rule for the variance of a mean, keeps about 80 %).
 */
export const BLOCK_LENGTH_IN_TAU = 10;

/**
 * The stationary bootstrap of Politis and Romano (1994, JASA 89, 1303-1313): an endless series made of blocks of
 * a source series, each starting at a uniformly drawn index and running on (circularly) for a geometrically
 * distributed number of values of mean `meanBlockLength`. The resampled series is stationary, and within a block
 * it has the source's dependence; its values are the source's values, so heavy tails and skew are kept as they
 * are. Seeded: the same source, block length and seed give the same values. `next` allocates nothing.
 */
export class StationaryBootstrap {
  private readonly source: Float64Array;
  private readonly restartProbability: number;
  private readonly random: Random;
  private position: number;

  /**
   * @param source the series to resample (copied), at least one value, all finite
   * @param meanBlockLength mean length of a block, >= 1 (1: every value drawn independently)
   * @throws RangeError on an empty source, a non-finite value or a block length below 1
   */
  constructor(source: ArrayLike<number>, meanBlockLength: number, seed: number) {
    if (source.length < 1) throw new RangeError('StationaryBootstrap: the source needs at least one value');
    if (!(meanBlockLength >= 1)) throw new RangeError(`StationaryBootstrap: meanBlockLength must be >= 1, got ${meanBlockLength}`);
    this.source = Float64Array.from(source);
    for (let i = 0; i < this.source.length; i++) {
      if (!Number.isFinite(this.source[i])) throw new RangeError(`StationaryBootstrap: source value ${i} is ${String(this.source[i])}`);
    }
    this.restartProbability = 1 / meanBlockLength;
    this.random = new Random(seed);
    this.position = this.draw();
  }

  /** The next value of the resampled series. */
  next(): number {
    const value = this.source[this.position];
    this.position = this.random.next() < this.restartProbability ? this.draw() : (this.position + 1) % this.source.length;
    return value;
  }

  /** Starts a new block at a random index, as at the start of an independent resample. */
  restart(): void {
    this.position = this.draw();
  }

  private draw(): number {
    return Math.floor(this.random.next() * this.source.length);
  }
}
