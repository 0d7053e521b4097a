/**
 * Per-stream target scaling (DESIGN section 5, Units): users send labels in their own units (wrist force in raw
 * units with a standard deviation near 1,700, counts, newtons), and a learner whose readout starts near zero with
 * steps sized for unit targets would need millions of ticks to reach them. So the learner learns and predicts in
 * standardized units, (y - mean) / scale per output, and every prediction and metric goes back in the user's
 * units.
 *
 * The statistics come from the labels the learner learns from (held-out labels never reach it, so they never
 * move the scale either). `halfLifeLabels` Infinity (the default) keeps the running mean and variance of every
 * such label: it adapts fast at first and ever more slowly, so a learner is not chasing a moving target once it
 * has seen a few thousand labels. A finite half-life keeps adapting (for targets whose units drift);
 * `freezeAfterLabels` stops updating after that many labels.
 *
 * A label more than `outOfRangeSd` standard deviations from the mean (after `minLabelsForRange` labels) is still
 * learned from, but flagged so that it is counted: the scale is an estimate, and an outlier there is either a
 * real change of the target or a unit mistake upstream, and both deserve to be seen.
 */

export type TargetScalingSpec =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'standardize';
      /** Half-life of the statistics in labels (default Infinity: the running mean and variance of all). */
      readonly halfLifeLabels?: number;
      /** Stop updating the statistics after this many labels (default Infinity: never). */
      readonly freezeAfterLabels?: number;
      /** A label further than this many standard deviations from the mean is counted (default 10). */
      readonly outOfRangeSd?: number;
      /** Labels seen before a label can be out of range (default 100). */
      readonly minLabelsForRange?: number;
    };

interface ResolvedScaling {
  readonly enabled: boolean;
  readonly rate: number;
  readonly freezeAfter: number;
  readonly outOfRangeSd: number;
  readonly minLabelsForRange: number;
}

/** Throws a RangeError naming the field of a spec that is not valid. */
export function validateTargetScaling(spec: TargetScalingSpec): TargetScalingSpec {
  if (spec?.kind === 'none') return spec;
  if (spec?.kind !== 'standardize') {
    throw new RangeError(`targetScaling: kind '${String((spec as { kind?: unknown } | undefined)?.kind)}' is unknown: expected 'none' or 'standardize'`);
  }
  const positive = (v: unknown, name: string, allowInfinity: boolean) => {
    if (v === undefined) return;
    if (typeof v !== 'number' || Number.isNaN(v) || v <= 0 || (!allowInfinity && !Number.isFinite(v))) {
      throw new RangeError(`targetScaling: ${name} must be a number > 0${allowInfinity ? ' (or Infinity)' : ''}, got ${String(v)}`);
    }
  };
  positive(spec.halfLifeLabels, 'halfLifeLabels', true);
  positive(spec.freezeAfterLabels, 'freezeAfterLabels', true);
  positive(spec.outOfRangeSd, 'outOfRangeSd', false);
  if (spec.minLabelsForRange !== undefined && !(Number.isInteger(spec.minLabelsForRange) && spec.minLabelsForRange >= 2)) {
    throw new RangeError(`targetScaling: minLabelsForRange must be an integer >= 2, got ${String(spec.minLabelsForRange)}`);
  }
  return spec;
}

function resolve(spec: TargetScalingSpec): ResolvedScaling {
  validateTargetScaling(spec);
  if (spec.kind === 'none') return { enabled: false, rate: 0, freezeAfter: 0, outOfRangeSd: Infinity, minLabelsForRange: 0 };
  const halfLife = spec.halfLifeLabels ?? Infinity;
  return {
    enabled: true,
    rate: halfLife === Infinity ? 0 : 1 - Math.pow(2, -1 / halfLife),
    freezeAfter: spec.freezeAfterLabels ?? Infinity,
    outOfRangeSd: spec.outOfRangeSd ?? 10,
    minLabelsForRange: spec.minLabelsForRange ?? 100,
  };
}

/** Floats a TargetScaler keeps per output in its saved state (mean, variance). */
const FLOATS_PER_OUTPUT = 2;

/**
 * One stream's target statistics. No allocation per tick: `toLearner` writes into a preallocated buffer, and
 * `toUser` rescales in place.
 */
export class TargetScaler {
  private readonly mean: Float64Array;
  private readonly variance: Float64Array;
  private readonly scaled: Float32Array;
  private readonly config: ResolvedScaling;
  /** Labels folded into the statistics so far. */
  count = 0;

  constructor(spec: TargetScalingSpec, readonly outputs: number) {
    this.config = resolve(spec);
    this.mean = new Float64Array(outputs);
    this.variance = new Float64Array(outputs);
    this.scaled = new Float32Array(outputs);
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  /** The scale of output i: its standard deviation, or |mean| (else 1) while a variance is not yet known. */
  scaleOf(i: number): number {
    const sd = Math.sqrt(this.variance[i]);
    if (this.count >= 2 && sd > 0) return sd;
    const m = Math.abs(this.mean[i]);
    return m > 0 ? m : 1;
  }

  meanOf(i: number): number {
    return this.mean[i];
  }

  /**
   * Takes a label the learner is about to learn from into the statistics (first, so that the first label is
   * scaled by itself rather than by nothing), and returns whether it lay out of range of the statistics before it.
   */
  observe(y: ArrayLike<number>): boolean {
    if (!this.config.enabled) return false;
    const c = this.config;
    let outOfRange = false;
    if (this.count >= c.minLabelsForRange) {
      for (let i = 0; i < this.outputs; i++) {
        if (Math.abs(y[i] - this.mean[i]) > c.outOfRangeSd * this.scaleOf(i)) outOfRange = true;
      }
    }
    if (this.count < c.freezeAfter) {
      const n = ++this.count;
      const a = Math.max(1 / n, c.rate);
      for (let i = 0; i < this.outputs; i++) {
        const d = y[i] - this.mean[i];
        this.mean[i] += a * d;
        // The exponentially weighted (a = 1/n: population) variance, updated with the deviation from the old mean.
        this.variance[i] = (1 - a) * (this.variance[i] + a * d * d);
      }
    }
    return outOfRange;
  }

  /** y in the learner's units, in a buffer the next call overwrites (y itself when scaling is off). */
  toLearner(y: ArrayLike<number>): ArrayLike<number> {
    if (!this.config.enabled) return y;
    for (let i = 0; i < this.outputs; i++) this.scaled[i] = (y[i] - this.mean[i]) / this.scaleOf(i);
    return this.scaled;
  }

  /** Rescales a prediction of the learner into the user's units, in place, from offset `at`. */
  toUser(yhat: Float32Array, at: number): void {
    if (!this.config.enabled) return;
    for (let i = 0; i < this.outputs; i++) yhat[at + i] = yhat[at + i] * this.scaleOf(i) + this.mean[i];
  }

  /** Copies the statistics of `other` (a frozen shadow keeps the scale its model was trained with). */
  copyFrom(other: TargetScaler): void {
    this.mean.set(other.mean);
    this.variance.set(other.variance);
    this.count = other.count;
  }

  /** The statistics as floats (mean and variance per output, then the count), for a checkpoint. */
  save(): Float64Array {
    const out = new Float64Array(FLOATS_PER_OUTPUT * this.outputs + 1);
    out.set(this.mean, 0);
    out.set(this.variance, this.outputs);
    out[FLOATS_PER_OUTPUT * this.outputs] = this.count;
    return out;
  }

  load(saved: Float64Array): void {
    if (saved.length !== FLOATS_PER_OUTPUT * this.outputs + 1) {
      throw new RangeError(`target scaling state has ${saved.length} floats, expected ${FLOATS_PER_OUTPUT * this.outputs + 1}`);
    }
    this.mean.set(saved.subarray(0, this.outputs));
    this.variance.set(saved.subarray(this.outputs, 2 * this.outputs));
    this.count = saved[FLOATS_PER_OUTPUT * this.outputs];
  }

  /** Floats of `save()` for a stream of `outputs` outputs. */
  static savedFloats(outputs: number): number {
    return FLOATS_PER_OUTPUT * outputs + 1;
  }
}
