/**
 * DDM, the Drift Detection Method (Gama, Medas, Castillo and Rodrigues 2004, "Learning with drift detection",
 * SBIA 2004, 286-295), written to match River 0.26.1's `river.drift.binary.DDM` (river/drift/binary/ddm.py)
 * operation for operation, so that the same stream gives the same detection and warning indices.
 *
 * Input: a stream of bits, 1 = error (the model's prediction was wrong), 0 = correct. The error rate p_i is the
 * running mean of the inputs and s_i = sqrt(p_i (1 - p_i) / i) its binomial standard deviation. Once more than
 * `warmStart` values have been seen, the pair (p_min, s_min) is kept where p_i + s_i was smallest, and
 *
 *     warning  iff  p_i + s_i > p_min + warningThreshold * s_min
 *     drift    iff  p_i + s_i > p_min + driftThreshold * s_min     (which clears the warning)
 *
 * Only increases of the error rate are detected. DDM expects 0/1 input, but any finite number is accepted, as
 * River accepts it: values in [0, 1] are averaged unchanged (a fractional "error"). Values that take the running
 * mean p outside [0, 1] make p (1 - p) negative; there River's update fails inside `math.sqrt` (ValueError)
 * after having counted the value. This port counts it too but does not throw, because a detector in a stream
 * pipeline must not end the pipeline: with no standard deviation, such an update signals neither a warning
 * nor a drift and leaves (p_min, s_min) as they were.
 *
 * State is O(1) and `update` allocates nothing. As in River, the update after a detection first resets the
 * detector, so that value is the first of a fresh test.
 *
 * @example
 * ```ts
 * import { Ddm } from './drift/ddm.js';
 * import { Random } from './learners/random.js';
 *
 * const rng = new Random(7);
 * const ddm = new Ddm();
 * const drifts: number[] = [];
 * for (let i = 0; i < 2000; i++) {
 *   const error = rng.next() < (i < 1000 ? 0.1 : 0.5) ? 1 : 0; // the error rate jumps from 0.1 to 0.5 at 1000
 *   if (ddm.update(error).driftDetected) drifts.push(i);
 * }
 * // drifts -> [42, 264, 976, 1030]: three alarms before the change (DDM is noisy while p_min rests on few
 * // values), then the jump. River 0.26.1's DDM gives the same indices on the same bits; this example runs as
 * // a test in test/drift-binary-detectors.test.ts.
 * ```
 */

export interface DdmOptions {
  /** Values to see before a warning or drift can be signalled (River: warm_start). Default 30. */
  warmStart?: number;
  /** Standard deviations above the best p + s that signal a warning (River: warning_threshold). Default 2. */
  warningThreshold?: number;
  /** Standard deviations above the best p + s that signal a drift (River: drift_threshold). Default 3. */
  driftThreshold?: number;
}

export class Ddm {
  readonly warmStart: number;
  readonly warningThreshold: number;
  readonly driftThreshold: number;

  private drift = false;
  private warning = false;
  private n = 0;
  private p = 0;
  private pMin = 0;
  private sMin = 0;
  private psMin = Infinity;

  constructor(options: DdmOptions = {}) {
    const { warmStart = 30, warningThreshold = 2.0, driftThreshold = 3.0 } = options;
    if (!Number.isInteger(warmStart) || warmStart < 0) {
      throw new RangeError(`Ddm: warmStart must be an integer >= 0, got ${String(warmStart)}`);
    }
    if (!(typeof warningThreshold === 'number' && Number.isFinite(warningThreshold) && warningThreshold > 0)) {
      throw new RangeError(`Ddm: warningThreshold must be a finite number > 0, got ${String(warningThreshold)}`);
    }
    if (!(typeof driftThreshold === 'number' && Number.isFinite(driftThreshold) && driftThreshold > 0)) {
      throw new RangeError(`Ddm: driftThreshold must be a finite number > 0, got ${String(driftThreshold)}`);
    }
    this.warmStart = warmStart;
    this.warningThreshold = warningThreshold;
    this.driftThreshold = driftThreshold;
  }

  /** True if the last `update` detected a drift. */
  get driftDetected(): boolean {
    return this.drift;
  }

  /** True if the last `update` left the detector in the warning zone (never together with a drift). */
  get warningDetected(): boolean {
    return this.warning;
  }

  /** Values seen since the last reset. */
  get count(): number {
    return this.n;
  }

  /** The running error rate since the last reset. */
  get errorRate(): number {
    return this.p;
  }

  /** Forget everything seen so far (options are kept). */
  reset(): void {
    this.drift = false;
    this.warning = false;
    this.n = 0;
    this.p = 0;
    this.pMin = 0;
    this.sMin = 0;
    this.psMin = Infinity;
  }

  /**
   * Feed one value: 1 for an error, 0 for a correct prediction. Throws a RangeError, leaving the state as it
   * was, if `x` is not a finite number.
   */
  update(x: number): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new RangeError(`Ddm.update: x must be a finite number, got ${String(x)}`);
    }
    if (this.drift) this.reset();

    // river.stats.Mean's update, in River's order of operations.
    this.n += 1;
    this.p += (1 / this.n) * (x - this.p);
    const p = this.p;
    const n = this.n;
    // NaN when p is outside [0, 1] (where River raises); every comparison below is then false.
    const s = Math.sqrt((p * (1 - p)) / n);

    if (n > this.warmStart) {
      const ps = p + s;
      if (ps <= this.psMin) {
        this.pMin = p;
        this.sMin = s;
        this.psMin = this.pMin + this.sMin;
      }
      this.warning = ps > this.pMin + this.warningThreshold * this.sMin;
      if (ps > this.pMin + this.driftThreshold * this.sMin) {
        this.drift = true;
        this.warning = false;
      }
    }
    return this;
  }
}
