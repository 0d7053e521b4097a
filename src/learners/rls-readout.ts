import { InvalidSpecError } from './errors.js';

/**
 * The readout of a recurrent learner fitted by recursive least squares instead of gradient steps: yhat = W phi
 * with phi = [the cell's output features, the inputs when the readout has a bypass, 1], and every label updates
 * W to the (forgetting-weighted, delta-regularized) least-squares fit of all labels so far on the features the
 * cell produced, while the cell below keeps learning by its credit rule through W. The readout converges in a
 * few hundred labels whatever the scale of the features, where a gradient readout needs its rate tuned; for a
 * decoder calibrated on a minute of labels, that is what matters.
 *
 * P (features x features, Float64) lives in the learner's counter block, so snapshots carry it. A label costs
 * O(features^2) beyond the gradient path (4,200 multiply-adds at 64 units); nothing is allocated per label.
 */
export interface RlsReadoutSpec {
  readonly kind: 'rls';
  /** Labels after which a label's weight in the fit halves (default: no forgetting). */
  readonly halfLifeTicks?: number;
  /** Initial P = I / delta (default 1): a ridge penalty delta on every readout weight that fades with forgetting. */
  readonly delta?: number;
}

export function validateRlsReadout(spec: RlsReadoutSpec, loss: string): void {
  if (spec == null || typeof spec !== 'object' || spec.kind !== 'rls') {
    throw new InvalidSpecError('readout.kind', `must be 'rls' (or leave readout out for the gradient readout), got ${String((spec as { kind?: unknown })?.kind)}`);
  }
  if (loss !== 'mse') throw new InvalidSpecError('readout', `an RLS readout fits squared error: loss must be 'mse', got ${loss}`);
  for (const key of Object.keys(spec)) {
    if (key !== 'kind' && key !== 'halfLifeTicks' && key !== 'delta') throw new InvalidSpecError(`readout.${key}`, 'is not an option of the RLS readout (halfLifeTicks, delta)');
  }
  if (spec.halfLifeTicks !== undefined && !(typeof spec.halfLifeTicks === 'number' && spec.halfLifeTicks > 0)) {
    throw new InvalidSpecError('readout.halfLifeTicks', `must be a number > 0, got ${String(spec.halfLifeTicks)}`);
  }
  if (spec.delta !== undefined && !(typeof spec.delta === 'number' && Number.isFinite(spec.delta) && spec.delta > 0)) {
    throw new InvalidSpecError('readout.delta', `must be a finite number > 0, got ${String(spec.delta)}`);
  }
}

/** Where the readout's weights and features are in the learner's arena. */
export interface RlsReadoutLayout {
  readonly outputs: number;
  /** Cell output features per tick, at cache + featureOffset. */
  readonly features: number;
  readonly featureOffset: number;
  /** V (outputs x features, row-major) and c (outputs). */
  readonly V: number;
  readonly c: number;
  /** D (outputs x inputs, row-major) when the readout has a bypass, else -1; inputs at cache + 0. */
  readonly D: number;
  readonly inputs: number;
}

export class RlsReadout {
  /** Length of phi. */
  readonly size: number;
  private readonly lambda: number;
  private readonly phi: Float64Array;
  private readonly pPhi: Float64Array;
  private readonly err: Float64Array;

  /** Floats of P for a readout of this layout (what the learner reserves in its counter block). */
  static stateFloats(layout: RlsReadoutLayout): number {
    const f = layout.features + (layout.D >= 0 ? layout.inputs : 0) + 1;
    return f * f;
  }

  constructor(private readonly spec: RlsReadoutSpec, private readonly layout: RlsReadoutLayout, private readonly P: Float64Array) {
    this.size = layout.features + (layout.D >= 0 ? layout.inputs : 0) + 1;
    if (P.length !== this.size * this.size) throw new RangeError(`RLS readout state has ${P.length} floats, expected ${this.size * this.size}`);
    this.lambda = spec.halfLifeTicks === undefined || spec.halfLifeTicks === Infinity ? 1 : Math.pow(2, -1 / spec.halfLifeTicks);
    this.phi = new Float64Array(this.size);
    this.pPhi = new Float64Array(this.size);
    this.err = new Float64Array(layout.outputs);
  }

  /** P = I / delta: before any label. */
  reset(): void {
    const F = this.size;
    const inv = 1 / (this.spec.delta ?? 1);
    this.P.fill(0);
    for (let i = 0; i < F; i++) this.P[i * F + i] = inv;
  }

  /**
   * One label: the features of its tick (in the ring slot at `cache`), the label y. Returns false (and changes
   * nothing) when the update would not be finite.
   */
  update(h: Float32Array | Float64Array, cache: number, y: ArrayLike<number>): boolean {
    const { outputs, features, featureOffset, V, c, D, inputs } = this.layout;
    const F = this.size;
    const phi = this.phi;
    const P = this.P;
    const pPhi = this.pPhi;
    for (let j = 0; j < features; j++) phi[j] = h[cache + featureOffset + j];
    if (D >= 0) for (let j = 0; j < inputs; j++) phi[features + j] = h[cache + j];
    phi[F - 1] = 1;
    // The a-priori error with the weights of now (a late label meets weights that moved since its prediction).
    for (let r = 0; r < outputs; r++) {
      let s = h[c + r];
      for (let j = 0; j < features; j++) s += h[V + r * features + j] * phi[j];
      if (D >= 0) for (let j = 0; j < inputs; j++) s += h[D + r * inputs + j] * phi[features + j];
      this.err[r] = y[r] - s;
    }
    let denom = this.lambda;
    for (let i = 0; i < F; i++) {
      let s = 0;
      const row = i * F;
      for (let j = 0; j < F; j++) s += P[row + j] * phi[j];
      pPhi[i] = s;
      denom += phi[i] * s;
    }
    if (!(denom > 0) || !Number.isFinite(denom)) return false;
    for (let r = 0; r < outputs; r++) if (!Number.isFinite(this.err[r])) return false;
    // W += e k' with k = P phi / denom.
    for (let r = 0; r < outputs; r++) {
      const g = this.err[r] / denom;
      for (let j = 0; j < features; j++) h[V + r * features + j] += g * pPhi[j];
      if (D >= 0) for (let j = 0; j < inputs; j++) h[D + r * inputs + j] += g * pPhi[features + j];
      h[c + r] += g * pPhi[F - 1];
    }
    // P = (P - q q') / lambda with q = P phi / sqrt(denom): q_i q_j = q_j q_i exactly, so P stays symmetric.
    const scale = 1 / this.lambda;
    const root = Math.sqrt(denom);
    for (let i = 0; i < F; i++) pPhi[i] /= root;
    for (let i = 0; i < F; i++) {
      const qi = pPhi[i];
      const row = i * F;
      for (let j = 0; j < F; j++) P[row + j] = (P[row + j] - qi * pPhi[j]) * scale;
    }
    return true;
  }
}
