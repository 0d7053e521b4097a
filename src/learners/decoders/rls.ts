import { InvalidSpecError } from '../errors.js';
import { type DecoderSpec, finiteOption, forgettingFactor, MAX_FEATURES, onlyKnownOptions, positiveInt } from './decoder-spec.js';
import type { DecoderModel, ModelLearn } from './decoder-learner.js';
import { dotRow, packedMatVec, packedRow, packedSize } from './linear-algebra.js';

export interface RlsOptions {
  /** Input vectors in a feature vector, newest first (default 4); a bias 1 follows them. */
  readonly lags?: number;
  /**
   * Labels after which a label's weight in the fit halves: forgetting factor lambda = 2^(-1 / halfLifeTicks).
   * Absent or Infinity: no forgetting. With forgetting, directions the inputs stop exciting grow in P by 1/lambda
   * per label (RLS wind-up): updates that would overflow are skipped and counted.
   */
  readonly halfLifeTicks?: number;
  /**
   * Initial inverse covariance P = I / delta (default 1): the fit equals ridge regression with penalty delta on
   * every weight, bias included, in the units of the squared (normalized) inputs. Under forgetting the penalty
   * fades with the rest of the past.
   */
  readonly delta?: number;
}

const KNOWN: readonly (keyof RlsOptions)[] = ['lags', 'halfLifeTicks', 'delta'];

/**
 * Recursive least squares with exponential forgetting over lagged inputs: every label updates the weights by the
 * standard RLS gain, so they always equal the (forgetting-weighted, delta-regularized) least-squares fit of every
 * label so far. O(F^2) per label for F features, no refits.
 */
export function rlsModel(spec: DecoderSpec): DecoderModel {
  return new RlsModel(spec);
}

class RlsModel implements DecoderModel {
  readonly lags: number;
  readonly persistentFloats: number;
  readonly scratchBytes: number;
  readonly paramCount: number;
  private readonly F: number;
  private readonly out: number;
  private readonly lambda: number;
  private readonly delta: number;
  /** Weights, one row of F per output. */
  private W: Float64Array = new Float64Array(0);
  /** Inverse (weighted, regularized) feature covariance, F x F, packed symmetric (linear-algebra.ts). */
  private P: Float64Array = new Float64Array(0);
  /** P phi, then rescaled to u = P phi / sqrt(denominator). */
  private readonly u: Float64Array;
  private readonly e: Float64Array;

  constructor(spec: DecoderSpec) {
    const o = spec.decoder as RlsOptions;
    onlyKnownOptions(o, 'rls', KNOWN);
    this.lags = o.lags === undefined ? 4 : positiveInt(o.lags, 'decoder.lags', 1 << 16);
    this.lambda = forgettingFactor(o.halfLifeTicks);
    this.delta = finiteOption(o.delta, 'decoder.delta', 1, 0, true);
    this.F = this.lags * spec.inputSize + 1;
    if (this.F > MAX_FEATURES) {
      throw new InvalidSpecError('decoder.lags', `lags x inputSize + 1 = ${this.F} features; at most ${MAX_FEATURES} fit (P is F x F)`);
    }
    this.out = spec.outputSize;
    this.paramCount = this.out * this.F;
    this.persistentFloats = this.paramCount + packedSize(this.F);
    this.u = new Float64Array(this.F);
    this.e = new Float64Array(this.out);
    this.scratchBytes = this.u.byteLength + this.e.byteLength;
  }

  attach(state: Float64Array, offset: number): void {
    const F = this.F;
    this.W = state.subarray(offset, offset + this.paramCount);
    this.P = state.subarray(offset + this.paramCount, offset + this.paramCount + packedSize(F));
    for (let i = 0; i < F; i++) this.P[packedRow(i, F)] = 1 / this.delta;
  }

  predict(phi: Float64Array, yhat: Float32Array): void {
    const F = this.F;
    const W = this.W;
    for (let o = 0; o < this.out; o++) yhat[o] = dotRow(W, o * F, phi, F);
  }

  learn(phi: Float64Array, y: ArrayLike<number>): ModelLearn {
    const F = this.F;
    const P = this.P;
    const W = this.W;
    const u = this.u;
    const e = this.e;
    packedMatVec(P, F, phi, u);
    let q = 0;
    let maxDiag = 0;
    let maxU = 0;
    for (let i = 0, row = 0; i < F; i++) {
      q += phi[i] * u[i];
      if (P[row] > maxDiag) maxDiag = P[row];
      const a = Math.abs(u[i]);
      if (a > maxU) maxU = a;
      row += F - i;
    }
    const denom = this.lambda + q;
    if (!(denom > 0) || denom === Infinity) return 'skipped';
    const invLambda = 1 / this.lambda;
    const scale = 1 / Math.sqrt(denom);
    const uMax = maxU * scale;
    // |P_ij| <= sqrt(P_ii P_jj) for a positive semi-definite P, so these bound every entry of the new P.
    if (!Number.isFinite(maxDiag * invLambda) || !Number.isFinite(uMax * uMax * invLambda)) return 'skipped';
    for (let o = 0; o < this.out; o++) e[o] = y[o] - dotRow(W, o * F, phi, F);
    for (let i = 0; i < F; i++) u[i] *= scale;
    // The gain is u / sqrt(denom); check the whole weight update before writing any of it.
    for (let o = 0; o < this.out; o++) {
      const eo = e[o] * scale;
      for (let i = 0, r = o * F; i < F; i++) if (!Number.isFinite(W[r + i] + u[i] * eo)) return 'skipped';
    }
    for (let o = 0; o < this.out; o++) {
      const eo = e[o] * scale;
      for (let i = 0, r = o * F; i < F; i++) W[r + i] += u[i] * eo;
    }
    // P <- (P - u u^T) / lambda, on the stored upper triangle.
    for (let i = 0, row = 0; i < F; i++) {
      const ui = u[i];
      if (this.lambda === 1) {
        for (let j = i, at = row; j < F; j++, at++) P[at] -= ui * u[j];
      } else {
        for (let j = i, at = row; j < F; j++, at++) P[at] = (P[at] - ui * u[j]) * invLambda;
      }
      row += F - i;
    }
    return 'applied';
  }

  refit(): boolean {
    return true;
  }

  sessionStarted(): void {}

  readParameters(into: Float64Array): void {
    into.set(this.W);
  }
}
