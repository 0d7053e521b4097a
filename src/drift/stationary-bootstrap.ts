// Resampling a dependent series without a model of it: what calibration uses to imagine more of a warm-up segment.
import { Random } from '../learners/random.js';

/**
 * Sokal's window constant: the autocorrelations are summed up to the first lag M with M >= SOKAL_WINDOW * tau(M).
 * Summing every lag would add as much noise as signal; 5 is the usual choice (Sokal 1997, Madras and Sokal 1988).
 */
export const SOKAL_WINDOW = 5;

/**
 * The integrated autocorrelation time tau = 1 + 2 * sum_{k=1..M} rho_k of a series, with rho_k its sample
 * autocorrelation at lag k and M chosen by Sokal's automatic window (the first M >= SOKAL_WINDOW * tau(M)), at
 * most floor(n / 4). tau is how many consecutive values carry the information of one independent value: the
 * variance of a sum of m values is about m * tau times a single value's. 1 for white noise; about
 * (1 + phi) / (1 - phi) for an AR(1) with coefficient phi. Never below 1 (a negatively correlated series is
 * treated as independent, which is conservative for the detectors calibrated with it). A constant series gives 1.
 *
 * Cost O(n * M), once.
 *
 * @throws RangeError below 8 values or on a non-finite value.
 */
export function integratedAutocorrelationTime(series: ArrayLike<number>): number {
  const n = series.length;
  if (!(n >= 8)) throw new RangeError(`integratedAutocorrelationTime: at least 8 values are needed, got ${n}`);
  let mean = 0;
  for (let i = 0; i < n; i++) {
    const x = series[i];
    if (!Number.isFinite(x)) throw new RangeError(`integratedAutocorrelationTime: value ${i} is ${String(x)}`);
    mean += x;
  }
  mean /= n;
  let c0 = 0;
  for (let i = 0; i < n; i++) c0 += (series[i] - mean) ** 2;
  if (c0 === 0) return 1;
  const maxLag = Math.floor(n / 4);
  let tau = 1;
  for (let lag = 1; lag <= maxLag; lag++) {
    let c = 0;
    for (let i = lag; i < n; i++) c += (series[i] - mean) * (series[i - lag] - mean);
    tau += (2 * c) / c0;
    if (lag >= SOKAL_WINDOW * tau) break;
  }
  return Math.max(1, tau);
}

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
