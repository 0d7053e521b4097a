/**
 * HDDM_A, drift detection based on Hoeffding's bounds with the moving-average test (Frías-Blanco, del
 * Campo-Ávila, Ramos-Jiménez, Morales-Bueno, Ortiz-Díaz and Caballero-Mota 2015, "Online and non-parametric
 * drift detection methods based on Hoeffding's bounds", IEEE TKDE 27(3), 810-823), written to match River
 * 0.26.1's `river.drift.binary.HDDMA` (river/drift/binary/hddm_a.py, itself after MOA) operation for operation,
 * so that the same stream gives the same detection and warning indices.
 *
 * Input: a stream of bits, 1 = error, 0 = correct. With Z the mean of all n values since the last reset and
 * eps(k) = sqrt(ln(1 / driftConfidence) / (2 k)), a cut point X is kept: the prefix of the stream (its count
 * and mean) at which X + eps(|X|) was smallest, i.e. where the error rate looked lowest. The test at
 * confidence c compares the values after the cut with the values before it:
 *
 *     m   = (n - |X|) / |X| * (1 / n)
 *     eps = sqrt(m / 2 * ln(2 / c))
 *     increase  iff  Z - X >= eps              (no test while the cut point is the whole stream)
 *
 * c = driftConfidence signals a drift, else c = warningConfidence a warning. With `twoSidedTest`, a second cut
 * point where X - eps(|X|) was largest detects decreases the same way (and, as in River, a decrease drift does
 * not clear a warning raised by the increase test). Other numbers are accepted and averaged as River does,
 * but the bounds assume values in [0, 1].
 *
 * State is O(1) (three counts and three means) and `update` allocates nothing. As in River, the update after a
 * detection first resets the detector, so that value is the first of a fresh test.
 *
 * @example
 * ```ts
 * import { HddmA } from './drift/hddm-a.js';
 * import { Random } from './learners/random.js';
 *
 * const rng = new Random(7);
 * const hddm = new HddmA();
 * const drifts: number[] = [];
 * for (let i = 0; i < 2000; i++) {
 *   const error = rng.next() < (i < 1000 ? 0.1 : 0.5) ? 1 : 0; // the error rate jumps from 0.1 to 0.5 at 1000
 *   if (hddm.update(error).driftDetected) drifts.push(i);
 * }
 * // drifts -> [1043] (River 0.26.1's HDDMA gives the same index on the same bits; this example runs as a
 * // test in test/drift-binary-detectors.test.ts)
 * ```
 */

export interface HddmAOptions {
  /** Confidence of the drift test, in (0, 1) (River: drift_confidence). Default 0.001. */
  driftConfidence?: number;
  /** Confidence of the warning test, in (0, 1) (River: warning_confidence). Default 0.005. */
  warningConfidence?: number;
  /** Also detect decreases of the error rate (River: two_sided_test). Default false. */
  twoSidedTest?: boolean;
}

export class HddmA {
  readonly driftConfidence: number;
  readonly warningConfidence: number;
  readonly twoSidedTest: boolean;

  // The logarithms are constants of the options; computed once, with the same arguments River passes.
  private readonly logInvDrift: number;
  private readonly logTwoOverDrift: number;
  private readonly logTwoOverWarning: number;

  private drift = false;
  private warning = false;
  /** All values since the last reset: count and mean. */
  private zN = 0;
  private zMean = 0;
  /** Cut point for increases. */
  private minN = 0;
  private minMean = 0;
  /** Cut point for decreases. */
  private maxN = 0;
  private maxMean = 0;

  constructor(options: HddmAOptions = {}) {
    const { driftConfidence = 0.001, warningConfidence = 0.005, twoSidedTest = false } = options;
    checkConfidence('driftConfidence', driftConfidence);
    checkConfidence('warningConfidence', warningConfidence);
    if (typeof twoSidedTest !== 'boolean') {
      throw new RangeError(`HddmA: twoSidedTest must be a boolean, got ${String(twoSidedTest)}`);
    }
    this.driftConfidence = driftConfidence;
    this.warningConfidence = warningConfidence;
    this.twoSidedTest = twoSidedTest;
    this.logInvDrift = Math.log(1.0 / driftConfidence);
    this.logTwoOverDrift = Math.log(2.0 / driftConfidence);
    this.logTwoOverWarning = Math.log(2.0 / warningConfidence);
  }

  /** True if the last `update` detected a drift. */
  get driftDetected(): boolean {
    return this.drift;
  }

  /** True if the last `update` left the detector in the warning zone. */
  get warningDetected(): boolean {
    return this.warning;
  }

  /** Values seen since the last reset. */
  get count(): number {
    return this.zN;
  }

  /** Mean of the values seen since the last reset (the error rate, for 0/1 input). */
  get mean(): number {
    return this.zMean;
  }

  /** Forget everything seen so far (options are kept). */
  reset(): void {
    this.drift = false;
    this.warning = false;
    this.zN = 0;
    this.zMean = 0;
    this.minN = 0;
    this.minMean = 0;
    this.maxN = 0;
    this.maxMean = 0;
  }

  /**
   * Feed one value: 1 for an error, 0 for a correct prediction. Throws a RangeError, leaving the state as it
   * was, if `x` is not a finite number.
   */
  update(x: number): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new RangeError(`HddmA.update: x must be a finite number, got ${String(x)}`);
    }
    if (this.drift) this.reset();

    this.zN += 1;
    this.zMean += (1 / this.zN) * (x - this.zMean);
    if (this.minN === 0) {
      this.minN = this.zN;
      this.minMean = this.zMean;
    }
    if (this.maxN === 0) {
      this.maxN = this.zN;
      this.maxMean = this.zMean;
    }

    const epsZ = this.hoeffdingBound(this.zN);
    if (this.minMean + this.hoeffdingBound(this.minN) >= this.zMean + epsZ) {
      this.minN = this.zN;
      this.minMean = this.zMean;
    }
    if (this.maxMean - this.hoeffdingBound(this.maxN) <= this.zMean - epsZ) {
      this.maxN = this.zN;
      this.maxMean = this.zMean;
    }

    if (this.meanIncreased(this.logTwoOverDrift)) {
      this.warning = false;
      this.drift = true;
    } else {
      this.warning = this.meanIncreased(this.logTwoOverWarning);
      this.drift = false;
    }

    if (this.twoSidedTest) {
      if (this.meanDecreased(this.logTwoOverDrift)) this.drift = true;
      else if (this.meanDecreased(this.logTwoOverWarning)) this.warning = true;
    }
    return this;
  }

  private hoeffdingBound(n: number): number {
    return Math.sqrt((1.0 / (2 * n)) * this.logInvDrift);
  }

  private meanIncreased(logTwoOverConfidence: number): boolean {
    if (this.minN === this.zN) return false;
    const m = ((this.zN - this.minN) / this.minN) * (1.0 / this.zN);
    const eps = Math.sqrt((m / 2) * logTwoOverConfidence);
    return this.zMean - this.minMean >= eps;
  }

  private meanDecreased(logTwoOverConfidence: number): boolean {
    if (this.maxN === this.zN) return false;
    const m = ((this.zN - this.maxN) / this.maxN) * (1.0 / this.zN);
    const eps = Math.sqrt((m / 2) * logTwoOverConfidence);
    return this.maxMean - this.zMean >= eps;
  }
}

function checkConfidence(name: string, value: unknown): void {
  if (!(typeof value === 'number' && value > 0 && value < 1)) {
    throw new RangeError(`HddmA: ${name} must be in (0, 1), got ${String(value)}`);
  }
}
