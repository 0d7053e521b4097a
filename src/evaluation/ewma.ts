/**
 * Exponentially weighted moving average with O(1) state:
 *
 *   s_t = (1 - alpha) s_{t-1} + alpha x_t,  s_0 = 0,   value_t = s_t / (1 - (1 - alpha)^t)
 *
 * The division is the bias correction of Adam's moment estimates: without it the average starts at 0 and takes
 * about 1 / alpha values to forget that start. With it the first value is returned exactly, and every value_t is a
 * weighted mean of x_1..x_t with weights proportional to (1 - alpha)^(t - i).
 *
 * `alpha` may be given directly or as a half-life h in values (alpha = 1 - 2^(-1/h)): a value h steps old weighs
 * half as much as the newest. A non-finite value is rejected with a RangeError and leaves the state unchanged.
 *
 * ```ts
 * const e = new Ewma({ alpha: 0.5 });
 * e.update(4).value; // 4
 * e.update(1).value; // (0.5 * 1 + 0.25 * 4) / 0.75 = 2
 * ```
 */
export interface EwmaOptions {
  /** Weight of the newest value, in (0, 1]. */
  readonly alpha?: number;
  /** Half-life in values (> 0); an alternative to alpha. */
  readonly halfLife?: number;
}

export class Ewma {
  readonly alpha: number;
  private s = 0;
  private decayPow = 1;
  private n = 0;

  constructor(options: EwmaOptions) {
    const { alpha, halfLife } = options ?? {};
    if (alpha !== undefined && halfLife !== undefined) throw new RangeError('Ewma: give alpha or halfLife, not both');
    if (halfLife !== undefined) {
      if (typeof halfLife !== 'number' || !Number.isFinite(halfLife) || halfLife <= 0) {
        throw new RangeError(`Ewma: halfLife must be a finite number > 0, got ${halfLife}`);
      }
      this.alpha = 1 - Math.pow(2, -1 / halfLife);
    } else {
      if (typeof alpha !== 'number' || !(alpha > 0 && alpha <= 1)) throw new RangeError(`Ewma: alpha must be in (0, 1], got ${alpha}`);
      this.alpha = alpha;
    }
  }

  update(value: number): this {
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new RangeError(`Ewma: value must be a finite number, got ${value}`);
    this.s += this.alpha * (value - this.s);
    this.decayPow *= 1 - this.alpha;
    this.n++;
    return this;
  }

  /** The bias-corrected average; NaN before the first value. */
  get value(): number {
    if (this.n === 0) return Number.NaN;
    const norm = 1 - this.decayPow;
    // norm is 0 only when 1 - alpha rounds to 1 (alpha below ~1e-16): then no correction is possible.
    return norm === 0 ? this.s : this.s / norm;
  }

  get count(): number {
    return this.n;
  }

  reset(): this {
    this.s = 0;
    this.decayPow = 1;
    this.n = 0;
    return this;
  }
}
