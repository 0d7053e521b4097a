import { InvalidSpecError } from '../errors.js';
import { type DecoderSpec, finiteOption, forgettingFactor, MAX_FEATURES, onlyKnownOptions, positiveInt } from './decoder-spec.js';
import type { DecoderModel, ModelLearn } from './decoder-learner.js';
import {
  allFinite, allWithin, choleskyInPlace, choleskySolveInPlace, dotRow, MAGNITUDE_LIMIT, packedRankOneUpdate, packedSize, unpackLower,
} from './linear-algebra.js';

export interface RidgeOptions {
  /** Input vectors in a feature vector, newest first (default 4); a bias 1 follows them. */
  readonly lags?: number;
  /** Labels after which a label's weight in the statistics halves (default: no forgetting; Infinity: the same). */
  readonly halfLifeTicks?: number;
  /**
   * The penalty alpha in (X'X + alpha I) W = X'Y (default 1), on every weight but the bias. It is in the units
   * of a squared input summed over labels: with inputs normalized to unit variance, alpha = 1 weighs like one
   * extra label that says every weight is zero, so it matters for the first labels and fades after.
   */
  readonly alpha?: number;
  /**
   * Labels between refits (default 200). A refit is a Cholesky solve, F^3 / 6 multiply-adds for F features
   * (about 1e7 at 96 inputs and 4 lags, 1.5e8 at 10): its cost spreads over refitEvery ticks but lands in one.
   * Weights are zero until the first refit.
   */
  readonly refitEvery?: number;
  /**
   * Recalibration (default false): when a session starts (sessionStarted()), the statistics are cleared and the
   * weights of the last session are kept until minSamples labels of the new session have arrived; then the
   * decoder refits from the new session alone. "Refit on the first k minutes of the new session" is this with a
   * holdout that stops the labels after k minutes.
   */
  readonly resetOnSession?: boolean;
  /** Labels of a new session before its first refit (default 2 x features = 2 (lags x inputSize + 1)). */
  readonly minSamples?: number;
}

const KNOWN: readonly (keyof RidgeOptions)[] = ['lags', 'halfLifeTicks', 'alpha', 'refitEvery', 'resetOnSession', 'minSamples'];

// Counter slots after the model's matrices.
const R_SINCE_REFIT = 0;
const R_HOLDING = 1;
const R_SESSION_LABELS = 2;
const R_COUNTERS = 3;

/**
 * Ridge regression over lagged inputs from sufficient statistics X'X and X'Y (Float64, with optional
 * exponential forgetting), refit every refitEvery labels and on refit(). O(F^2 / 2) per label between refits.
 */
export function ridgeModel(spec: DecoderSpec): DecoderModel {
  return new RidgeModel(spec);
}

class RidgeModel implements DecoderModel {
  readonly lags: number;
  readonly persistentFloats: number;
  readonly scratchBytes: number;
  readonly paramCount: number;
  private readonly F: number;
  private readonly out: number;
  private readonly lambda: number;
  private readonly alpha: number;
  private readonly refitEvery: number;
  private readonly resetOnSession: boolean;
  private readonly minSamples: number;
  private W: Float64Array = new Float64Array(0);
  /** X'X, F x F, packed symmetric (linear-algebra.ts). */
  private XtX: Float64Array = new Float64Array(0);
  /** X'Y, one row of F per output. */
  private XtY: Float64Array = new Float64Array(0);
  private c: Float64Array = new Float64Array(0);
  /** The factor of X'X + alpha I, and the solutions, of a refit. */
  private readonly A: Float64Array;
  private readonly solution: Float64Array;

  constructor(spec: DecoderSpec) {
    const o = spec.decoder as RidgeOptions;
    onlyKnownOptions(o, 'ridge', KNOWN);
    this.lags = o.lags === undefined ? 4 : positiveInt(o.lags, 'decoder.lags', 1 << 16);
    this.F = this.lags * spec.inputSize + 1;
    if (this.F > MAX_FEATURES) {
      throw new InvalidSpecError('decoder.lags', `lags x inputSize + 1 = ${this.F} features; at most ${MAX_FEATURES} fit (X'X is F x F)`);
    }
    this.lambda = forgettingFactor(o.halfLifeTicks);
    this.alpha = finiteOption(o.alpha, 'decoder.alpha', 1, 0, false);
    this.refitEvery = o.refitEvery === undefined ? 200 : positiveInt(o.refitEvery, 'decoder.refitEvery');
    if (o.resetOnSession !== undefined && typeof o.resetOnSession !== 'boolean') {
      throw new InvalidSpecError('decoder.resetOnSession', `must be true or false, got ${String(o.resetOnSession)}`);
    }
    this.resetOnSession = o.resetOnSession ?? false;
    this.minSamples = o.minSamples === undefined ? 2 * this.F : positiveInt(o.minSamples, 'decoder.minSamples', 2 ** 31);
    this.out = spec.outputSize;
    this.paramCount = this.out * this.F;
    this.persistentFloats = 2 * this.paramCount + packedSize(this.F) + R_COUNTERS;
    this.A = new Float64Array(this.F * this.F);
    this.solution = new Float64Array(this.paramCount);
    this.scratchBytes = this.A.byteLength + this.solution.byteLength;
  }

  attach(state: Float64Array, offset: number): void {
    let at = offset;
    const take = (n: number) => state.subarray(at, (at += n));
    this.W = take(this.paramCount);
    this.XtY = take(this.paramCount);
    this.XtX = take(packedSize(this.F));
    this.c = take(R_COUNTERS);
  }

  predict(phi: Float64Array, yhat: Float32Array): void {
    const F = this.F;
    const W = this.W;
    for (let o = 0; o < this.out; o++) yhat[o] = dotRow(W, o * F, phi, F);
  }

  learn(phi: Float64Array, y: ArrayLike<number>): ModelLearn {
    const F = this.F;
    const lambda = this.lambda;
    if (!allWithin(phi, 0, F, MAGNITUDE_LIMIT) || !allWithin(y, 0, this.out, MAGNITUDE_LIMIT)) return 'skipped';
    packedRankOneUpdate(this.XtX, F, lambda, phi);
    const XtY = this.XtY;
    for (let o = 0; o < this.out; o++) {
      const yo = y[o];
      for (let i = 0, r = o * F; i < F; i++) XtY[r + i] = lambda * XtY[r + i] + yo * phi[i];
    }
    const c = this.c;
    c[R_SINCE_REFIT]++;
    let due: boolean;
    if (c[R_HOLDING] === 1) due = ++c[R_SESSION_LABELS] >= this.minSamples;
    else due = c[R_SINCE_REFIT] >= this.refitEvery;
    if (due && !this.refit()) return 'applied-refit-failed';
    return 'applied';
  }

  refit(): boolean {
    const F = this.F;
    const c = this.c;
    c[R_SINCE_REFIT] = 0;
    c[R_HOLDING] = 0;
    const X = this.XtX;
    // The bias feature is always 1: its diagonal entry (the last stored) is the (weighted) label count.
    if (!(X[X.length - 1] > 0)) return true;
    const A = this.A;
    unpackLower(X, F, A);
    for (let i = 0; i < F - 1; i++) A[i * F + i] += this.alpha;
    if (!choleskyInPlace(A, F)) return false;
    const sol = this.solution;
    sol.set(this.XtY);
    for (let o = 0; o < this.out; o++) choleskySolveInPlace(A, F, 0, sol, o * F);
    if (!allFinite(sol, 0, sol.length)) return false;
    this.W.set(sol);
    return true;
  }

  sessionStarted(frozen: boolean): void {
    if (frozen || !this.resetOnSession) return;
    this.XtX.fill(0);
    this.XtY.fill(0);
    this.c[R_SINCE_REFIT] = 0;
    this.c[R_SESSION_LABELS] = 0;
    this.c[R_HOLDING] = 1;
  }

  readParameters(into: Float64Array): void {
    into.set(this.W);
  }
}
