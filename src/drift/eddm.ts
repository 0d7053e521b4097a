/**
 * EDDM, the Early Drift Detection Method (Baena-García, del Campo-Ávila, Fidalgo, Bifet, Gavaldà and
 * Morales-Bueno 2006, "Early drift detection method", 4th International Workshop on Knowledge Discovery from
 * Data Streams), written to match River 0.26.1's `river.drift.binary.EDDM` (river/drift/binary/eddm.py)
 * operation for operation, so that the same stream gives the same detection and warning indices.
 *
 * Input: a stream of bits, 1 = error, 0 = correct. Instead of the error rate, EDDM follows the distance (in
 * values) between consecutive errors: its running mean p' and sample standard deviation s' (Welford, divisor
 * count - 1). The statistics are only looked at when an error arrives. Once more than `warmStart` values have
 * been seen, the largest p' + 2 s' so far is kept; an error that does not raise it, arriving after more than
 * `warmStart` errors, is judged by level = (p' + 2 s') / max(p' + 2 s'):
 *
 *     level < beta              -> drift
 *     beta <= level < alpha     -> warning
 *     level >= alpha            -> warning cleared
 *
 * Errors that come closer together mean the error rate went up; decreases are not detected. As in River, the
 * warning flag keeps its value across the correct values in between, and only a value exactly equal to 1
 * counts as an error: every other number (0, 0.5, 2, ...) is treated as a correct prediction.
 *
 * State is O(1) and `update` allocates nothing. As in River, the update after a detection first resets the
 * detector, so that value is the first of a fresh test.
 *
 * @example
 * ```ts
 * import { Eddm } from './drift/eddm.js';
 * import { Random } from './learners/random.js';
 *
 * const rng = new Random(7);
 * const eddm = new Eddm({ alpha: 0.8, beta: 0.75 }); // River's docstring setting: fewer false alarms
 * const drifts: number[] = [];
 * for (let i = 0; i < 2000; i++) {
 *   const error = rng.next() < (i < 1000 ? 0.1 : 0.5) ? 1 : 0; // the error rate jumps from 0.1 to 0.5 at 1000
 *   if (eddm.update(error).driftDetected) drifts.push(i);
 * }
 * // drifts -> [308, 714, 1071]: two false alarms at the 0.1 error rate, then the jump. River 0.26.1's EDDM
 * // gives the same indices on the same bits; this example runs as a test in test/drift-binary-detectors.test.ts.
 * ```
 */

export interface EddmOptions {
  /** Values, and errors, to see before a warning or drift can be signalled (River: warm_start). Default 30. */
  warmStart?: number;
  /** Warning below this level, in (0, 1] and >= beta; smaller is more conservative (River: alpha). Default 0.95. */
  alpha?: number;
  /** Drift below this level, in (0, 1] and <= alpha; smaller is more conservative (River: beta). Default 0.9. */
  beta?: number;
}

export class Eddm {
  readonly warmStart: number;
  readonly alpha: number;
  readonly beta: number;

  private drift = false;
  private warning = false;
  private n = 0;
  private lastError = 0;
  private nErrors = 0;
  private distanceMean = 0;
  /** Sum of squared deviations of the distances from their mean (Welford's S). */
  private distanceS = 0;
  private p2sMax = -1;

  constructor(options: EddmOptions = {}) {
    const { warmStart = 30, alpha = 0.95, beta = 0.9 } = options;
    if (!Number.isInteger(warmStart) || warmStart < 0) {
      throw new RangeError(`Eddm: warmStart must be an integer >= 0, got ${String(warmStart)}`);
    }
    if (!(typeof alpha === 'number' && alpha > 0 && alpha <= 1)) {
      throw new RangeError(`Eddm: alpha must be in (0, 1], got ${String(alpha)}`);
    }
    if (!(typeof beta === 'number' && beta > 0 && beta <= 1)) {
      throw new RangeError(`Eddm: beta must be in (0, 1], got ${String(beta)}`);
    }
    // River refuses this too (ValueError): a drift level above the warning level would skip the warning zone.
    if (alpha < beta) throw new RangeError(`Eddm: alpha (${alpha}) must be >= beta (${beta})`);
    this.warmStart = warmStart;
    this.alpha = alpha;
    this.beta = beta;
  }

  /** True if the last `update` detected a drift. */
  get driftDetected(): boolean {
    return this.drift;
  }

  /** True while in the warning zone, as last judged at an error. */
  get warningDetected(): boolean {
    return this.warning;
  }

  /** Values seen since the last reset. */
  get count(): number {
    return this.n;
  }

  /** Errors (values equal to 1) seen since the last reset. */
  get errors(): number {
    return this.nErrors;
  }

  /** Forget everything seen so far (options are kept). */
  reset(): void {
    this.drift = false;
    this.warning = false;
    this.n = 0;
    this.lastError = 0;
    this.nErrors = 0;
    this.distanceMean = 0;
    this.distanceS = 0;
    this.p2sMax = -1;
  }

  /**
   * Feed one value: 1 for an error, anything else for a correct prediction. Throws a RangeError, leaving the
   * state as it was, if `x` is not a finite number.
   */
  update(x: number): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new RangeError(`Eddm.update: x must be a finite number, got ${String(x)}`);
    }
    if (this.drift) this.reset();

    this.n += 1;
    if (x !== 1) return this;

    this.nErrors += 1;
    // Welford's update of river.stats.Var (ddof = 1), in River's order of operations.
    const distance = this.n - this.lastError;
    const meanOld = this.distanceMean;
    this.distanceMean += (1 / this.nErrors) * (distance - meanOld);
    this.distanceS += (distance - meanOld) * (distance - this.distanceMean);

    if (this.n > this.warmStart) {
      const variance = this.nErrors > 1 ? this.distanceS / (this.nErrors - 1) : 0;
      const p2s = this.distanceMean + 2 * Math.sqrt(variance);
      if (p2s > this.p2sMax) {
        this.p2sMax = p2s;
      } else if (this.nErrors > this.warmStart) {
        const level = p2s / this.p2sMax;
        if (level < this.beta) this.drift = true;
        else this.warning = level < this.alpha;
      }
    }
    this.lastError = this.n;
    return this;
  }
}
