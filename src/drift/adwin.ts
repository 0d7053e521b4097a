/**
 * ADWIN, ADaptive WINdowing (Bifet & Gavaldà 2007, "Learning from time-changing data with adaptive
 * windowing", SDM 2007), ported operation for operation from River 0.26.1 (`river/drift/adwin.py` and its
 * helper `rust_src/adwin.rs`, which replaced the older Cython `river/drift/adwin_c.pyx`).
 *
 * The idea: keep a window W of the most recent values whose mean has not changed. Every `clock` updates
 * (once more than `gracePeriod` values are held) every split of W into an older part W0 and a newer part W1
 * is tested; if |mean(W0) - mean(W1)| exceeds the Hoeffding/Bernstein-style bound
 *
 *   eps = sqrt(2 * m * var(W) * ln(2 ln|W| / delta)) + 2/3 * ln(2 ln|W| / delta) * m,
 *   m   = 1 / (|W0| - minWindowLength + 1) + 1 / (|W1| - minWindowLength + 1),
 *
 * the oldest bucket is dropped, the splits are tested again, and drift is reported. W is not stored
 * value by value but as an exponential histogram (ADWIN2): row r holds up to `maxBuckets` buckets, each
 * summarising 2^r consecutive values by their sum and their sum of squared deviations; when a row gets
 * `maxBuckets + 1` buckets its two oldest are merged into one bucket of the next row. A window of W values
 * therefore needs O(maxBuckets * log W) numbers. Here the rows live in preallocated typed arrays with room
 * for 64 rows (a window of more than 2^63 values, far beyond what a float64 width can even count), so
 * `update()` allocates nothing.
 *
 * As in River, the detector resets itself entirely (window, clock, statistics) on the first `update()`
 * after the one that reported drift; `width` and `estimation` read right after a detection describe the
 * window after the cut.
 *
 * Calibration hook: `delta` enters only the cut test, and (as in River) the window is cut only when a test
 * fires, which is exactly when drift is reported. So up to and including the update of its first detection,
 * an Adwin's window, clock and statistics evolve identically for every delta, and `smallestFiringDelta` (the
 * smallest delta that any cut test evaluated since the last reset would have fired for) tells, from one run,
 * at which update a detector with any other delta would have reported drift first. `delta: 0` (not a River
 * setting) gives a detector that never fires, to run as that recorder.
 *
 * @example
 * ```ts
 * import { Adwin } from './adwin.js';
 * import { Random } from '../learners/random.js';
 *
 * const rng = new Random(1);
 * const adwin = new Adwin();
 * for (let i = 0; i < 2000; i++) {
 *   const x = (i < 1000 ? 0 : 2) + rng.normal(); // the mean jumps from 0 to 2 at index 1000
 *   if (adwin.update(x).driftDetected) console.log(`drift at ${i}`);
 * }
 * // prints "drift at 1023" (River 0.26.1 gives the same index on the same numbers)
 * ```
 */

export interface AdwinOptions {
  /**
   * Significance value delta in (0, 1); smaller means fewer false alarms and later detection. Default 0.002.
   * Also accepted: 0, a detector whose cut test never fires (its bound is +Infinity), e.g. to record
   * `smallestFiringDelta` over a whole run. (A positive delta below 2 ln|W| / Number.MAX_VALUE, such as
   * Number.MIN_VALUE, behaves the same way: ln(2 ln|W| / delta) overflows to +Infinity.)
   */
  delta?: number;
  /** Test for change every `clock` updates. Default 32. */
  clock?: number;
  /** Buckets kept per row before the two oldest are merged. Default 5. */
  maxBuckets?: number;
  /** Sub-windows shorter than this are not tested. Default 5. */
  minWindowLength?: number;
  /** No test until the window holds more than this many values. Default 10. */
  gracePeriod?: number;
}

/** Rows of the exponential histogram; row r holds buckets of 2^r values. */
const MAX_ROWS = 64;

export class Adwin {
  readonly delta: number;
  readonly clock: number;
  readonly maxBuckets: number;
  readonly minWindowLength: number;
  readonly gracePeriod: number;

  /** True when the latest `update()` detected a change. */
  driftDetected = false;

  private readonly stride: number;
  /** Bucket sums, row-major: row r occupies [r * stride, r * stride + counts[r]). Oldest bucket first. */
  private readonly totals: Float64Array;
  /** Bucket sums of squared deviations from the bucket mean, same layout as `totals`. */
  private readonly variances: Float64Array;
  /** Number of buckets in each row (River's `current_idx`). */
  private readonly counts: Int32Array;
  /** Rows in use (River's `len(bucket_list)`), at least 1. */
  private nRows = 1;

  private _total = 0;
  private _variance = 0;
  private _width = 0;
  private tick = 0;
  /** ln of `smallestFiringDelta`, the minimum of ln(g) over the cut tests since the last reset (+Infinity: none). */
  private minLogFiringDelta = Infinity;

  constructor(options: AdwinOptions = {}) {
    const { delta = 0.002, clock = 32, maxBuckets = 5, minWindowLength = 5, gracePeriod = 10 } = options;
    if (!(delta >= 0 && delta < 1)) throw new RangeError(`delta must be in [0, 1), got ${delta}`);
    if (!Number.isInteger(clock) || clock < 1) throw new RangeError(`clock must be an integer >= 1, got ${clock}`);
    if (!Number.isInteger(maxBuckets) || maxBuckets < 1 || maxBuckets > 1 << 16) {
      throw new RangeError(`maxBuckets must be an integer in [1, 65536], got ${maxBuckets}`);
    }
    if (!Number.isInteger(minWindowLength) || minWindowLength < 1) {
      throw new RangeError(`minWindowLength must be an integer >= 1, got ${minWindowLength}`);
    }
    if (!Number.isInteger(gracePeriod) || gracePeriod < 0) {
      throw new RangeError(`gracePeriod must be an integer >= 0, got ${gracePeriod}`);
    }
    this.delta = delta;
    this.clock = clock;
    this.maxBuckets = maxBuckets;
    this.minWindowLength = minWindowLength;
    this.gracePeriod = gracePeriod;
    this.stride = maxBuckets + 1;
    this.totals = new Float64Array(MAX_ROWS * this.stride);
    this.variances = new Float64Array(MAX_ROWS * this.stride);
    this.counts = new Int32Array(MAX_ROWS);
  }

  /** Number of values in the current window. */
  get width(): number {
    return this._width;
  }

  /** Sum of the values in the window. */
  get total(): number {
    return this._total;
  }

  /** Mean of the window (0 when it is empty), River's `estimation`. */
  get estimation(): number {
    return this._width === 0 ? 0 : this._total / this._width;
  }

  /**
   * River's `variance`: the sum of squared deviations from the window mean (not divided by the width; River
   * documents it as a variance, the number is the M2 sum). See `varianceInWindow` for the per-value variance.
   */
  get variance(): number {
    return this._variance;
  }

  /** Population variance of the window, `variance / width` (River's helper `variance_in_window`). */
  get varianceInWindow(): number {
    return this._variance / this._width;
  }

  /**
   * The smallest delta for which a cut test evaluated since the last reset would have fired: the minimum, over
   * every split tested by the change check (each split with both parts holding at least `minWindowLength`
   * values, at each clock tick once the window holds more than `gracePeriod` values), of
   *
   *   g = 2 ln|W| * exp(-D*),
   *
   * where D* > 0 solves eps(D*) = |mean(W0) - mean(W1)| for the bound eps(D) = sqrt(2 m v D) + 2/3 m D
   * (m = 1/(|W0| - minWindowLength + 1) + 1/(|W1| - minWindowLength + 1), v = variance / width, both as in
   * the test). Since eps increases strictly with D = ln(2 ln|W| / delta), which for delta in (0, 1) and |W| >= 2
   * is positive, that split fires, |mean(W0) - mean(W1)| > eps, iff D < D*, iff delta > g (strictly). Splits
   * whose means are equal never fire and are skipped. +Infinity when no split has been tested (or none could
   * fire); 0 only if g underflows.
   *
   * Hence, from a fresh start (construction or `reset()`), an Adwin with the same other options and
   * delta = d in [0, 1), fed the same values, reports drift for the first time at the first update after which
   * `smallestFiringDelta < d` (strict; exact in real arithmetic, up to rounding at a tie in floating point).
   * This holds because nothing before the first detection depends on delta. The value is meaningful only up
   * to the first detection of this detector: the update that detects also cuts the window and keeps testing
   * (delta-dependent) splits, and the next update resets it to +Infinity, as `reset()` does. Run the recorder
   * with `delta: 0`, which never detects.
   *
   * Cost: O(1) per split tested (two square roots, a division), nothing allocated.
   */
  get smallestFiringDelta(): number {
    return Math.exp(this.minLogFiringDelta);
  }

  /** Bytes of state: the preallocated bucket arrays plus nine scalars. Fixed at construction. */
  get stateBytes(): number {
    return this.totals.byteLength + this.variances.byteLength + this.counts.byteLength + 9 * 8;
  }

  /** Add one value; returns the detector. Throws RangeError, leaving the state as it was, if x is not finite. */
  update(x: number): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new RangeError(`Adwin.update: x must be a finite number, got ${String(x)}`);
    }
    if (this.driftDetected) this.reset();
    this.insertElement(x, 0);
    this.driftDetected = this.detectChange();
    return this;
  }

  /** Back to the freshly constructed state. */
  reset(): void {
    this.totals.fill(0);
    this.variances.fill(0);
    this.counts.fill(0);
    this.nRows = 1;
    this._total = 0;
    this._variance = 0;
    this._width = 0;
    this.tick = 0;
    this.driftDetected = false;
    this.minLogFiringDelta = Infinity;
  }

  private insertElement(value: number, variance: number): void {
    this.pushBucket(0, value, variance);
    this._width += 1;
    let incremental = 0;
    if (this._width > 1) {
      const d = value - this._total / (this._width - 1);
      incremental = ((this._width - 1) * d * d) / this._width;
    }
    this._variance += incremental;
    this._total += value;
    this.compressBuckets();
  }

  private pushBucket(row: number, total: number, variance: number): void {
    const i = row * this.stride + this.counts[row];
    this.totals[i] = total;
    this.variances[i] = variance;
    this.counts[row] += 1;
  }

  /** Drop the `n` oldest buckets of a row (River's `Bucket.compress`). */
  private dropOldest(row: number, n: number): void {
    const base = row * this.stride;
    const count = this.counts[row];
    for (let i = n; i < count; i++) {
      this.totals[base + i - n] = this.totals[base + i];
      this.variances[base + i - n] = this.variances[base + i];
    }
    for (let i = count - n; i < count; i++) {
      this.totals[base + i] = 0;
      this.variances[base + i] = 0;
    }
    this.counts[row] = count - n;
  }

  private compressBuckets(): void {
    const s = this.stride;
    let row = 0;
    while (this.counts[row] === this.maxBuckets + 1) {
      const n1 = 2 ** row;
      const base = row * s;
      const t0 = this.totals[base];
      const t1 = this.totals[base + 1];
      const v0 = this.variances[base];
      const v1 = this.variances[base + 1];
      const mu1 = t0 / n1;
      const mu2 = t1 / n1;
      const total12 = t0 + t1;
      const temp = n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2);
      const v12 = v0 + v1 + temp;
      if (row + 1 >= this.nRows) {
        if (row + 1 >= MAX_ROWS) throw new RangeError('Adwin: window exceeds 2^63 values');
        this.nRows = row + 2;
      }
      this.pushBucket(row + 1, total12, v12);
      this.dropOldest(row, 2);
      if (this.counts[row + 1] <= this.maxBuckets) break;
      row += 1;
    }
  }

  /** Remove the oldest bucket; returns how many values it held. */
  private deleteElement(): number {
    const last = this.nRows - 1;
    const n = 2 ** last;
    const u = this.totals[last * this.stride];
    const v = this.variances[last * this.stride];
    const mu = u / n;
    this._width -= n;
    this._total -= u;
    const muWindow = this._total / this._width;
    const incremental = v + (n * this._width * (mu - muWindow) * (mu - muWindow)) / (n + this._width);
    this._variance -= incremental;
    this.dropOldest(last, 1);
    if (this.counts[last] === 0 && last > 0) this.nRows = last;
    return n;
  }

  private detectChange(): boolean {
    let changeDetected = false;
    this.tick += 1;
    if (this.tick % this.clock === 0 && this._width > this.gracePeriod) {
      const s = this.stride;
      const mwl = this.minWindowLength;
      let reduceWidth = true;
      while (reduceWidth) {
        reduceWidth = false;
        // The window width, hence the bound's ln(2 ln|W| / delta) and var(W), are fixed during one pass over
        // the splits (a cut ends the pass); computed once here, with River's expressions, so bit for bit equal.
        const width = this._width;
        const lnWidth = Math.log(width);
        const deltaPrime = Math.log((2 * lnWidth) / this.delta);
        const varianceInWindow = this._variance / width;
        // ln(2 ln|W|) for smallestFiringDelta; NaN (so nothing is recorded) if |W| <= 1, where no split is tested.
        const logTwoLnWidth = lnWidth > 0 ? Math.log(2 * lnWidth) : NaN;
        let n0 = 0;
        let n1 = this._width;
        let u0 = 0;
        let u1 = this._total;
        const rows = this.nRows;
        outer: for (let row = rows - 1; row >= 0; row--) {
          const size = 2 ** row;
          const count = this.counts[row];
          const base = row * s;
          for (let k = 0; k < count; k++) {
            n0 += size;
            n1 -= size;
            const t = this.totals[base + k];
            u0 += t;
            u1 -= t;
            // The newest bucket is never split off on its own (W1 would be empty).
            if (row === 0 && k === count - 1) break outer;
            const deltaMean = u0 / n0 - u1 / n1;
            if (
              n1 >= mwl &&
              n0 >= mwl &&
              this.evaluateCut(n0, n1, deltaMean, deltaPrime, varianceInWindow, logTwoLnWidth)
            ) {
              reduceWidth = true;
              changeDetected = true;
              if (this._width > 0) {
                this.deleteElement();
                break outer;
              }
            }
          }
        }
      }
    }
    return changeDetected;
  }

  /**
   * River's cut test, |deltaMean| > eps(deltaPrime); also records the split's firing threshold g (see
   * `smallestFiringDelta`). With delta = 0, deltaPrime is +Infinity and eps is +Infinity (or NaN when the
   * window variance is 0), so the test never fires.
   */
  private evaluateCut(
    n0: number,
    n1: number,
    deltaMean: number,
    deltaPrime: number,
    varianceInWindow: number,
    logTwoLnWidth: number,
  ): boolean {
    const mRecip = 1 / (n0 - this.minWindowLength + 1) + 1 / (n1 - this.minWindowLength + 1);
    const gap = Math.abs(deltaMean);
    if (gap > 0) {
      // eps(D) = b sqrt(D) + c D with b = sqrt(2 m v), c = 2/3 m; its root s = sqrt(D*) of c s^2 + b s = gap,
      // written without cancellation: s = 2 gap / (b + sqrt(b^2 + 4 c gap)). Then ln g = ln(2 ln|W|) - D*.
      // A NaN (negative variance from rounding after a cut, |W| <= 1) fails the comparison: nothing recorded.
      const b = Math.sqrt(2 * mRecip * varianceInWindow);
      const s = (2 * gap) / (b + Math.sqrt(b * b + (8 / 3) * mRecip * gap));
      const logG = logTwoLnWidth - s * s;
      if (logG < this.minLogFiringDelta) this.minLogFiringDelta = logG;
    }
    const epsilon = Math.sqrt(2 * mRecip * varianceInWindow * deltaPrime) + (2 / 3) * deltaPrime * mRecip;
    return gap > epsilon;
  }
}
