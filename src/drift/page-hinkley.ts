// Page-Hinkley drift detector, a line-for-line port of River's river/drift/page_hinkley.py.
export type PageHinkleyMode = 'both' | 'up' | 'down';

export interface PageHinkleyOptions {
  /** Minimum number of values since the last reset before a drift can be signalled (River: min_instances). */
  minInstances?: number;
  /** Magnitude of change tolerated in the cumulative sums (River: delta). */
  delta?: number;
  /** Detection threshold lambda (River: threshold). */
  threshold?: number;
  /** Forgetting factor applied to the cumulative sums (River: alpha). */
  alpha?: number;
  /** Detect increases of the mean ('up'), decreases ('down') or both ('both'). */
  mode?: PageHinkleyMode;
}

const MODE_UP = 1;
const MODE_DOWN = 2;
const MODE_BOTH = 3;

/**
 * Page-Hinkley test for a change in the mean of a univariate stream, written to match River's
 * `river.drift.PageHinkley` (river/drift/page_hinkley.py) operation for operation, so that the same numbers give
 * the same detection indices.
 *
 * State is O(1) (a count, a running mean, two cumulative sums and their running extrema); `update` allocates
 * nothing.
 *
 * For the n-th value since the last reset (n = 1, 2, ...), with forgetting factor alpha and tolerance delta:
 *
 *     mean_n = mean_{n-1} + (1 / n) * (x_n - mean_{n-1})          (mean_0 = 0)
 *     dev_n  = x_n - mean_n
 *     U_n    = alpha * U_{n-1} + dev_n - delta                      (U_0 = 0, cumulative increase)
 *     D_n    = alpha * D_{n-1} + dev_n + delta                      (D_0 = 0, cumulative decrease)
 *     minU_n = min(minU_{n-1}, U_n)                                 (minU_0 = +Infinity)
 *     maxD_n = max(maxD_{n-1}, D_n)                                 (maxD_0 = -1, as in River)
 *
 * Once n >= minInstances, with threshold lambda:
 *
 *     up:   drift  iff  U_n - minU_n > lambda
 *     down: drift  iff  maxD_n - D_n > lambda
 *     both: drift  iff  either of the above
 *
 * As in River's DriftDetector base, the update after a detection first resets the whole state, so the value that
 * follows a detection is the first value of a fresh test.
 *
 * @example
 * ```ts
 * import { PageHinkley } from './drift/page-hinkley.js';
 * import { Random } from './learners/random.js';
 *
 * const rng = new Random(1);
 * const ph = new PageHinkley();
 * const detections: number[] = [];
 * for (let i = 0; i < 2000; i++) {
 *   const x = (i < 1000 ? 0 : 3) + rng.normal();   // N(0,1), then N(3,1) from index 1000
 *   if (ph.update(x).driftDetected) detections.push(i);
 * }
 * // detections -> [1011]  (river==0.26.1 PageHinkley gives the same index on the same numbers;
 * //                        this example is run as a test in test/drift-page-hinkley.test.ts)
 * ```
 *
 * References: E. S. Page (1954), Continuous Inspection Schemes, Biometrika 41(1/2), 100-115;
 * R. Sebastião and J. M. Fernandes (2017), Supporting the Page-Hinkley test with empirical mode decomposition
 * for change detection, ISMIS 2017, 492-498.
 */
export class PageHinkley {
  readonly minInstances: number;
  readonly delta: number;
  readonly threshold: number;
  readonly alpha: number;
  readonly mode: PageHinkleyMode;

  /** True if a drift was detected by the last call to `update`. */
  driftDetected = false;

  private readonly modeBits: number;
  private n = 0;
  private mean = 0;
  private sumIncrease = 0;
  private sumDecrease = 0;
  private minIncrease = Infinity;
  private maxDecrease = -1;
  private peak = -Infinity;

  constructor(options: PageHinkleyOptions = {}) {
    const {
      minInstances = 30, delta = 0.005, threshold = 50.0, alpha = 1 - 0.0001, mode = 'both',
    } = options;
    if (!Number.isFinite(minInstances)) throw new RangeError(`PageHinkley: minInstances must be finite, got ${minInstances}`);
    if (!Number.isFinite(delta)) throw new RangeError(`PageHinkley: delta must be finite, got ${delta}`);
    if (Number.isNaN(threshold)) throw new RangeError('PageHinkley: threshold must not be NaN');
    if (!Number.isFinite(alpha)) throw new RangeError(`PageHinkley: alpha must be finite, got ${alpha}`);
    if (mode !== 'both' && mode !== 'up' && mode !== 'down') {
      throw new RangeError(`PageHinkley: invalid mode ${String(mode)}; valid values are 'up', 'down', 'both'`);
    }
    this.minInstances = minInstances;
    this.delta = delta;
    this.threshold = threshold;
    this.alpha = alpha;
    this.mode = mode;
    this.modeBits = mode === 'up' ? MODE_UP : mode === 'down' ? MODE_DOWN : MODE_BOTH;
  }

  /** Number of values seen since the last reset. */
  get count(): number {
    return this.n;
  }

  /**
   * The largest value, since the last reset, of the statistic the alarm compares with the threshold (U_n - minU_n
   * for 'up', maxD_n - D_n for 'down', the larger of the two for 'both'), over the updates with n >= minInstances;
   * -Infinity before any. Nothing before a first alarm depends on the threshold, so a fresh detector with the same
   * other options and threshold h fires within a run of values iff this, read after the same run on a detector
   * that did not fire, exceeds h: what calibration (src/drift/calibration.ts) reads to set h for a false-alarm
   * budget. Meaningful from a reset up to the first alarm only.
   */
  get peakStatistic(): number {
    return this.peak;
  }

  /** Forget everything seen so far (parameters are kept). */
  reset(): void {
    this.driftDetected = false;
    this.peak = -Infinity;
    this.n = 0;
    this.mean = 0;
    this.sumIncrease = 0;
    this.sumDecrease = 0;
    this.minIncrease = Infinity;
    this.maxDecrease = -1;
  }

  /**
   * Feed one value. Throws a RangeError, leaving the state untouched, if `x` is not a finite number.
   * After a detection, the next call resets the detector before using its value.
   */
  update(x: number): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new RangeError(`PageHinkley.update: x must be a finite number, got ${String(x)}`);
    }
    if (this.driftDetected) this.reset();

    // Same operations, in the same order, as river.stats.Mean.update and PageHinkley.update.
    this.n += 1;
    this.mean += (1 / this.n) * (x - this.mean);
    const dev = x - this.mean;

    this.sumIncrease = this.alpha * this.sumIncrease + dev - this.delta;
    this.sumDecrease = this.alpha * this.sumDecrease + dev + this.delta;

    if (this.sumIncrease < this.minIncrease) this.minIncrease = this.sumIncrease;
    if (this.sumDecrease > this.maxDecrease) this.maxDecrease = this.sumDecrease;

    if (this.n >= this.minInstances) {
      const upStatistic = (this.modeBits & MODE_UP) !== 0 ? this.sumIncrease - this.minIncrease : -Infinity;
      const downStatistic = (this.modeBits & MODE_DOWN) !== 0 ? this.maxDecrease - this.sumDecrease : -Infinity;
      if (upStatistic > this.peak) this.peak = upStatistic;
      if (downStatistic > this.peak) this.peak = downStatistic;
      this.driftDetected = upStatistic > this.threshold || downStatistic > this.threshold;
    }
    return this;
  }
}
