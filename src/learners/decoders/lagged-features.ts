/**
 * The last inputs of a stream, kept so that a decoder can rebuild the feature vector of any tick whose label may
 * still arrive. A feature vector of tick t is [x_t, x_{t-1}, ..., x_{t-lags+1}, 1] (newest first, then the bias);
 * inputs before tick 0 count as zeros.
 *
 * Storing inputs rather than feature vectors keeps the ring at (window + lags - 1) inputs instead of window x lags.
 * The ring lives in a region of the decoder's persistent state, so snapshots carry it.
 */
export class LaggedInputRing {
  /** lags x inputSize + 1. */
  readonly featureCount: number;
  /** Ticks the ring holds: the label window plus the older inputs its oldest tick's features reach back to. */
  readonly capacity: number;

  /** Floats the ring takes in the persistent state. */
  static floats(inputSize: number, lags: number, window: number): number {
    return (window + lags - 1) * inputSize;
  }

  constructor(
    private readonly store: Float64Array,
    private readonly base: number,
    readonly inputSize: number,
    readonly lags: number,
    window: number,
  ) {
    this.capacity = window + lags - 1;
    this.featureCount = lags * inputSize + 1;
  }

  write(tick: number, x: ArrayLike<number>): void {
    const m = this.inputSize;
    const at = this.base + (tick % this.capacity) * m;
    const s = this.store;
    for (let j = 0; j < m; j++) s[at + j] = x[j];
  }

  /** Writes the features of `tick` (written, and no more than `window` ticks old) into `phi`. */
  features(tick: number, phi: Float64Array): void {
    const m = this.inputSize;
    const s = this.store;
    for (let l = 0; l < this.lags; l++) {
      const t = tick - l;
      const to = l * m;
      if (t < 0) {
        phi.fill(0, to, to + m);
        continue;
      }
      const from = this.base + (t % this.capacity) * m;
      for (let j = 0; j < m; j++) phi[to + j] = s[from + j];
    }
    phi[this.featureCount - 1] = 1;
  }
}
