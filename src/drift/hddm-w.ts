/**
 * HDDM_W, drift detection based on McDiarmid's bounds with the weighted moving-average (EWMA) test
 * (Frías-Blanco, del Campo-Ávila, Ramos-Jiménez, Morales-Bueno, Ortiz-Díaz and Caballero-Mota 2015, "Online and
 * non-parametric drift detection methods based on Hoeffding's bounds", IEEE TKDE 27(3), 810-823), written to
 * match River 0.26.1's `river.drift.binary.HDDMW` (river/drift/binary/hddm_w.py, itself after MOA, with the
 * EWMA of river.stats.EWMean from River's Rust extension) operation for operation, so that the same stream gives
 * the same detection and warning indices.
 *
 * Input: a stream of bits, 1 = error, 0 = correct. A sample here is an EWMA with weight lambda on the newest
 * value (the first value is taken as is) together with its "independent bound condition"
 * ibc_k = lambda^2 + (1 - lambda)^2 ibc_{k-1} (ibc_0 = 1), from which McDiarmid's inequality gives the bound
 * eps(ibc, c) = sqrt(ibc ln(1 / c) / 2). The EWMA of all values since the last reset is tracked; when it plus its
 * bound (at driftConfidence) reaches a new minimum, it becomes sample 1 (a copy of the total) and sample 2
 * restarts empty, otherwise the value goes into sample 2. The test at confidence c is
 *
 *     increase  iff  ewma_2 - ewma_1 > eps(ibc_1 + ibc_2, c)      (both samples non-empty)
 *
 * c = driftConfidence signals a drift, else c = warningConfidence a warning. With `twoSidedTest`, the mirrored
 * pair (the cut where the total minus its bound was largest) detects decreases (and, as in River, a decrease
 * drift does not clear a warning raised by the increase test). Other numbers are accepted and averaged as
 * River does, but the bounds assume values in [0, 1].
 *
 * State is O(1) (five samples of three numbers each) and `update` allocates nothing: River's deep copies of a
 * sample are field copies here. As in River, the update after a detection first resets the detector, so that
 * value is the first of a fresh test.
 *
 * @example
 * ```ts
 * import { HddmW } from './drift/hddm-w.js';
 * import { Random } from './learners/random.js';
 *
 * const rng = new Random(7);
 * const hddm = new HddmW();
 * const drifts: number[] = [];
 * for (let i = 0; i < 2000; i++) {
 *   const error = rng.next() < (i < 1000 ? 0.1 : 0.5) ? 1 : 0; // the error rate jumps from 0.1 to 0.5 at 1000
 *   if (hddm.update(error).driftDetected) drifts.push(i);
 * }
 * // drifts -> [1030] (River 0.26.1's HDDMW gives the same index on the same bits; this example runs as a
 * // test in test/drift-binary-detectors.test.ts)
 * ```
 */

export interface HddmWOptions {
  /** Confidence of the drift test, in (0, 1) (River: drift_confidence). Default 0.001. */
  driftConfidence?: number;
  /** Confidence of the warning test, in (0, 1) (River: warning_confidence). Default 0.005. */
  warningConfidence?: number;
  /** Weight of the newest value in the EWMAs, in [0, 1]; larger forgets faster (River: lambda_val). Default 0.05. */
  lambdaVal?: number;
  /** Also detect decreases of the error rate (River: two_sided_test). Default false. */
  twoSidedTest?: boolean;
}

/** River's SampleInfo: an EWMA and its independent bound condition. */
class Sample {
  ewma = 0;
  /** Whether any value was added (River's EWMean `initialized` and SampleInfo `is_init`, always equal). */
  init = false;
  ibc = 1.0;

  clear(): void {
    this.ewma = 0;
    this.init = false;
    this.ibc = 1.0;
  }

  copyFrom(other: Sample): void {
    this.ewma = other.ewma;
    this.init = other.init;
    this.ibc = other.ibc;
  }
}

export class HddmW {
  readonly driftConfidence: number;
  readonly warningConfidence: number;
  readonly lambdaVal: number;
  readonly twoSidedTest: boolean;

  // Constants of the options, computed once with the same operations River uses.
  private readonly oneMinusLambda: number;
  private readonly lambdaSq: number;
  private readonly oneMinusLambdaSq: number;
  private readonly logInvDrift: number;
  private readonly logInvWarning: number;

  private drift = false;
  private warning = false;
  private readonly total = new Sample();
  private readonly s1Incr = new Sample();
  private readonly s2Incr = new Sample();
  private readonly s1Decr = new Sample();
  private readonly s2Decr = new Sample();
  private incrCutpoint = Infinity;
  private decrCutpoint = -Infinity;

  constructor(options: HddmWOptions = {}) {
    const { driftConfidence = 0.001, warningConfidence = 0.005, lambdaVal = 0.05, twoSidedTest = false } = options;
    checkConfidence('driftConfidence', driftConfidence);
    checkConfidence('warningConfidence', warningConfidence);
    // River's EWMean refuses a fading factor outside [0, 1] (ValueError) when the detector is built.
    if (!(typeof lambdaVal === 'number' && lambdaVal >= 0 && lambdaVal <= 1)) {
      throw new RangeError(`HddmW: lambdaVal must be in [0, 1], got ${String(lambdaVal)}`);
    }
    if (typeof twoSidedTest !== 'boolean') {
      throw new RangeError(`HddmW: twoSidedTest must be a boolean, got ${String(twoSidedTest)}`);
    }
    this.driftConfidence = driftConfidence;
    this.warningConfidence = warningConfidence;
    this.lambdaVal = lambdaVal;
    this.twoSidedTest = twoSidedTest;
    this.oneMinusLambda = 1.0 - lambdaVal;
    this.lambdaSq = lambdaVal * lambdaVal;
    this.oneMinusLambdaSq = (1 - lambdaVal) * (1 - lambdaVal);
    this.logInvDrift = Math.log(1 / driftConfidence);
    this.logInvWarning = Math.log(1 / warningConfidence);
  }

  /** True if the last `update` detected a drift. */
  get driftDetected(): boolean {
    return this.drift;
  }

  /** True if the last `update` left the detector in the warning zone. */
  get warningDetected(): boolean {
    return this.warning;
  }

  /** EWMA of the values since the last reset (0 before the first). */
  get estimation(): number {
    return this.total.ewma;
  }

  /** Forget everything seen so far (options are kept). */
  reset(): void {
    this.drift = false;
    this.warning = false;
    this.total.clear();
    this.s1Incr.clear();
    this.s2Incr.clear();
    this.s1Decr.clear();
    this.s2Decr.clear();
    this.incrCutpoint = Infinity;
    this.decrCutpoint = -Infinity;
  }

  /**
   * Feed one value: 1 for an error, 0 for a correct prediction. Throws a RangeError, leaving the state as it
   * was, if `x` is not a finite number.
   */
  update(x: number): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new RangeError(`HddmW.update: x must be a finite number, got ${String(x)}`);
    }
    if (this.drift) this.reset();

    this.add(this.total, x);

    // Increase side: the cut point is where the total plus its bound was lowest.
    const eps = mcdiarmidBound(this.total.ibc, this.logInvDrift);
    if (this.total.ewma + eps < this.incrCutpoint) {
      this.incrCutpoint = this.total.ewma + eps;
      this.s1Incr.copyFrom(this.total);
      this.s2Incr.clear();
    } else {
      this.add(this.s2Incr, x);
    }
    if (meanChanged(this.s1Incr, this.s2Incr, this.logInvDrift)) {
      this.warning = false;
      this.drift = true;
    } else {
      this.warning = meanChanged(this.s1Incr, this.s2Incr, this.logInvWarning);
      this.drift = false;
    }

    // Decrease side, kept up to date even when one-sided, as River does (the total's bound is unchanged).
    if (this.total.ewma - eps > this.decrCutpoint) {
      this.decrCutpoint = this.total.ewma - eps;
      this.s1Decr.copyFrom(this.total);
      this.s2Decr.clear();
    } else {
      this.add(this.s2Decr, x);
    }
    if (this.twoSidedTest) {
      if (meanChanged(this.s2Decr, this.s1Decr, this.logInvDrift)) this.drift = true;
      else if (meanChanged(this.s2Decr, this.s1Decr, this.logInvWarning)) this.warning = true;
    }
    return this;
  }

  private add(sample: Sample, x: number): void {
    // river.stats.EWMean (Rust): the first value is taken as is, then lambda * x + (1 - lambda) * ewma.
    sample.ewma = sample.init ? this.lambdaVal * x + this.oneMinusLambda * sample.ewma : x;
    sample.init = true;
    sample.ibc = this.lambdaSq + this.oneMinusLambdaSq * sample.ibc;
  }
}

function mcdiarmidBound(ibc: number, logInvConfidence: number): number {
  return Math.sqrt((ibc * logInvConfidence) / 2);
}

/** Whether `upper`'s EWMA lies above `lower`'s by more than McDiarmid's bound; false until both have a value. */
function meanChanged(lower: Sample, upper: Sample, logInvConfidence: number): boolean {
  if (!(lower.init && upper.init)) return false;
  return upper.ewma - lower.ewma > mcdiarmidBound(lower.ibc + upper.ibc, logInvConfidence);
}

function checkConfidence(name: string, value: unknown): void {
  if (!(typeof value === 'number' && value > 0 && value < 1)) {
    throw new RangeError(`HddmW: ${name} must be in (0, 1), got ${String(value)}`);
  }
}
