// How many consecutive values of a dependent series carry the information of one independent value: what sets the
// bootstrap's block length in calibration.

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
 * Cost O(n * M), once; AutocorrelationTime computes the same in steps.
 *
 * @throws RangeError below 8 values or on a non-finite value.
 */
export function integratedAutocorrelationTime(series: ArrayLike<number>): number {
  const tau = new AutocorrelationTime(series);
  tau.advance(Infinity);
  return tau.value;
}

/**
 * integratedAutocorrelationTime in steps of a bounded number of products, one lag at a time, with the same result
 * however the work is cut: a slow-moving series has a window of up to n / 4 lags, n products each (tens of ms for a
 * 6,000-value calibration segment), which a caller on a live event loop spreads over its ticks.
 */
export class AutocorrelationTime {
  private readonly series: ArrayLike<number>;
  private readonly mean: number;
  private readonly c0: number;
  private readonly maxLag: number;
  private lag = 1;
  private tau = 1;
  private finished: boolean;

  /** Reads the series in place (it must not change until done); O(n). @throws as integratedAutocorrelationTime. */
  constructor(series: ArrayLike<number>) {
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
    this.series = series;
    this.mean = mean;
    this.c0 = c0;
    this.maxLag = Math.floor(n / 4);
    this.finished = c0 === 0;
  }

  /** True once the window is found; `value` is then tau. */
  get done(): boolean {
    return this.finished;
  }

  /** tau once done. @throws Error before. */
  get value(): number {
    if (!this.finished) throw new Error('AutocorrelationTime: advance() until done before reading value');
    return Math.max(1, this.tau);
  }

  /**
   * Sums further lags until at least `maxProducts` products have been computed (at least one lag when above 0;
   * Infinity: to the end). @returns the products computed.
   */
  advance(maxProducts: number): number {
    const { series, mean, c0, maxLag } = this;
    const n = series.length;
    let products = 0;
    while (!this.finished && products < maxProducts) {
      const lag = this.lag;
      let c = 0;
      for (let i = lag; i < n; i++) c += (series[i] - mean) * (series[i - lag] - mean);
      products += n - lag;
      this.tau += (2 * c) / c0;
      this.lag = lag + 1;
      if (lag >= SOKAL_WINDOW * this.tau || lag === maxLag) this.finished = true;
    }
    return products;
  }
}
