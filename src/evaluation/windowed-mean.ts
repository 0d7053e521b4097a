/**
 * Mean of the last `window` values of a stream in O(1) time per value and O(window) memory that never grows: a
 * ring of `window` Float64s and a running sum.
 *
 * A running sum that adds the new value and subtracts the evicted one accumulates rounding error without bound
 * over a long stream (and never returns to exactly zero after a run of large values). So every `window` pushes,
 * when the ring has wrapped around once, the sum is recomputed exactly from the ring; the drift is bounded by the
 * rounding of at most 2 * window additions, and the amortised cost stays O(1).
 *
 * Before the window has filled, `mean` is the mean of the values seen so far (`count` of them); `full` says when
 * it covers a whole window. A non-finite value is rejected with a RangeError before it touches the state, so one
 * NaN cannot poison the mean for the next `window` values.
 *
 * ```ts
 * const m = new WindowedMean(3);
 * m.push(1).push(2).push(3).push(10); // the window holds 2, 3, 10
 * m.mean; // 5
 * ```
 */
export class WindowedMean {
  readonly window: number;
  private readonly ring: Float64Array;
  private sumValue = 0;
  private next = 0;
  private size = 0;
  private sinceResum = 0;
  private total = 0;

  constructor(window: number) {
    if (!Number.isInteger(window) || window < 1) throw new RangeError(`window must be a positive integer, got ${window}`);
    this.window = window;
    this.ring = new Float64Array(window);
  }

  /** Adds a value (evicting the oldest once the window is full) and returns this. */
  push(value: number): this {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new RangeError(`WindowedMean: value must be a finite number, got ${value}`);
    }
    const ring = this.ring;
    const at = this.next;
    if (this.size === this.window) this.sumValue -= ring[at];
    else this.size++;
    ring[at] = value;
    this.sumValue += value;
    this.next = at + 1 === this.window ? 0 : at + 1;
    this.total++;
    if (++this.sinceResum >= this.window) this.resum();
    return this;
  }

  /** Mean of the values in the window; NaN before the first value. */
  get mean(): number {
    return this.size === 0 ? Number.NaN : this.sumValue / this.size;
  }

  /** Sum of the values in the window. */
  get sum(): number {
    return this.sumValue;
  }

  /** Values currently in the window (at most `window`). */
  get count(): number {
    return this.size;
  }

  /** Values pushed since construction or the last reset. */
  get pushed(): number {
    return this.total;
  }

  /** True once the window holds `window` values. */
  get full(): boolean {
    return this.size === this.window;
  }

  /** Forgets every value (no allocation). */
  reset(): this {
    this.ring.fill(0);
    this.sumValue = 0;
    this.next = 0;
    this.size = 0;
    this.sinceResum = 0;
    this.total = 0;
    return this;
  }

  private resum(): void {
    const ring = this.ring;
    let s = 0;
    for (let i = 0; i < this.size; i++) s += ring[i];
    this.sumValue = s;
    this.sinceResum = 0;
  }
}
