import { InvalidSpecError } from '../errors.js';
import { type DecoderSpec, finiteOption, forgettingFactor, MAX_FEATURES, onlyKnownOptions, positiveInt } from './decoder-spec.js';
import type { DecoderModel, ModelLearn } from './decoder-learner.js';
import {
  allFinite, allWithin, choleskyInPlace, choleskySolveInPlace, MAGNITUDE_LIMIT, mirrorUpper, packedRankOneUpdate, packedRow, packedSize,
  solveInPlace, symmetrize,
} from './linear-algebra.js';

export interface KalmanOptions {
  /** Labels after which a label's weight in the statistics halves (default: no forgetting; Infinity: the same). */
  readonly halfLifeTicks?: number;
  /** Labels between refits of A, W, H, Q (default 200); the filter predicts zeros until the first. */
  readonly refitEvery?: number;
  /**
   * Relative regularization (default 1e-3). The fits of A and H add ridge x (the mean second moment of the
   * outputs) to the outputs' block of their normal equations, and Q gets ridge x (its mean diagonal) on its
   * diagonal: it keeps a full Q invertible with dead or collinear channels, whatever the units of x and y.
   */
  readonly ridge?: number;
}

const KNOWN: readonly (keyof KalmanOptions)[] = ['halfLifeTicks', 'refitEvery', 'ridge'];

// Counter slots of the model's region.
const K_PREV_TICK = 0;
const K_SINCE_REFIT = 1;
const K_FITTED = 2;
const K_COUNTERS = 3;

/**
 * The Kalman-filter decoder of Wu et al. (2006, Neural Computation 18:80-118), the standard BCI reference.
 * The latent state is z_t = [y_t, 1] (the outputs and a constant, so that A and H carry offsets):
 *
 *   z_t = A z_{t-1} + w,  w ~ N(0, W)        x_t = H z_t + q,  q ~ N(0, Q)
 *
 * with A, W, H and a full Q fitted by least squares (as Wu et al.) from sufficient statistics of the labelled
 * ticks, optionally forgetting, refit every refitEvery labels. A transition (y_{t-1}, y_t) enters A and W
 * only when the label learned just before was the previous tick's, so late and out-of-order labels still fit H
 * and Q but skip the pairs they cannot form.
 *
 * predict(x_t) runs one predict-and-update step on the running posterior of y (the constant is known exactly)
 * and returns the posterior mean. The update is in information form, with Q^-1 folded at refit into
 * G = H_y' Q^-1 (outputs x inputs) and M = H_y' Q^-1 H_y (outputs x outputs):
 *
 *   P_t = (I + P_t|t-1 M)^-1 P_t|t-1     y_t = y_t|t-1 + P_t (G (x_t - h) - M y_t|t-1)
 *
 * so a tick costs O(outputs x inputs) instead of the inputs x inputs innovation covariance inverse.
 *
 * sessionStarted() resets the posterior to the prior (the labels' mean and covariance) and forgets the previous
 * label, so no transition spans two sessions; the fitted model is kept.
 */
export function kalmanModel(spec: DecoderSpec): DecoderModel {
  return new KalmanModel(spec);
}

class KalmanModel implements DecoderModel {
  readonly lags = 1;
  readonly persistentFloats: number;
  readonly scratchBytes: number;
  readonly paramCount: number;
  private readonly m: number;
  private readonly n: number;
  private readonly d: number;
  private readonly lambda: number;
  private readonly ridge: number;
  private readonly refitEvery: number;

  // Statistics. Transitions: S11 = sum z_{t-1} z_{t-1}', S21 = sum y_t z_{t-1}', S22 = sum y_t y_t'.
  // Observations: Szz = sum z_t z_t', Sxz = sum x_t z_t', Sxx = sum x_t x_t' (packed symmetric).
  private S11: Float64Array = new Float64Array(0);
  private S21: Float64Array = new Float64Array(0);
  private S22: Float64Array = new Float64Array(0);
  private Szz: Float64Array = new Float64Array(0);
  private Sxz: Float64Array = new Float64Array(0);
  private Sxx: Float64Array = new Float64Array(0);
  private prevY: Float64Array = new Float64Array(0);
  private c: Float64Array = new Float64Array(0);
  // The model: the output rows of A (n x d), W (n x n), H (m x d), and what the filter reads per tick.
  private Ay: Float64Array = new Float64Array(0);
  private Wn: Float64Array = new Float64Array(0);
  private H: Float64Array = new Float64Array(0);
  private G: Float64Array = new Float64Array(0);
  private M: Float64Array = new Float64Array(0);
  private Gh: Float64Array = new Float64Array(0);
  private y0: Float64Array = new Float64Array(0);
  private P0: Float64Array = new Float64Array(0);
  // The posterior of y.
  private y: Float64Array = new Float64Array(0);
  private P: Float64Array = new Float64Array(0);

  // Refit scratch: the new model is built here and committed only when all of it is finite.
  private readonly Q: Float64Array;
  private readonly T: Float64Array;
  private readonly newH: Float64Array;
  private readonly newG: Float64Array;
  private readonly newAy: Float64Array;
  private readonly newWn: Float64Array;
  private readonly newM: Float64Array;
  private readonly newGh: Float64Array;
  private readonly newY0: Float64Array;
  private readonly newP0: Float64Array;
  private readonly dd: Float64Array;
  // Tick scratch.
  private readonly ym: Float64Array;
  private readonly Pm: Float64Array;
  private readonly B: Float64Array;
  private readonly X: Float64Array;
  private readonly g: Float64Array;
  private readonly z: Float64Array;
  private readonly z1: Float64Array;

  constructor(spec: DecoderSpec) {
    const o = spec.decoder as KalmanOptions;
    onlyKnownOptions(o, 'kalman', KNOWN);
    this.lambda = forgettingFactor(o.halfLifeTicks);
    this.refitEvery = o.refitEvery === undefined ? 200 : positiveInt(o.refitEvery, 'decoder.refitEvery');
    this.ridge = finiteOption(o.ridge, 'decoder.ridge', 1e-3, 0, false);
    const m = spec.inputSize;
    const n = spec.outputSize;
    const d = n + 1;
    if (m > MAX_FEATURES) throw new InvalidSpecError('inputSize', `kalman fits a full inputSize x inputSize Q: at most ${MAX_FEATURES} inputs, got ${m}`);
    this.m = m;
    this.n = n;
    this.d = d;
    this.paramCount = n * d + m * d + n * n;
    this.persistentFloats =
      d * d + n * d + n * n + d * d + m * d + packedSize(m) + n + K_COUNTERS +
      n * d + n * n + m * d + n * m + n * n + n + n + n * n + n + n * n;
    const f = (k: number) => new Float64Array(k);
    this.Q = f(m * m);
    this.T = f(m * d);
    this.newH = f(m * d);
    this.newG = f(n * m);
    this.newAy = f(n * d);
    this.newWn = f(n * n);
    this.newM = f(n * n);
    this.newGh = f(n);
    this.newY0 = f(n);
    this.newP0 = f(n * n);
    this.dd = f(d * d);
    this.ym = f(n);
    this.Pm = f(n * n);
    this.B = f(n * n);
    this.X = f(n * n);
    this.g = f(n);
    this.z = f(d);
    this.z1 = f(d);
    this.scratchBytes = [this.Q, this.T, this.newH, this.newG, this.newAy, this.newWn, this.newM, this.newGh, this.newY0,
      this.newP0, this.dd, this.ym, this.Pm, this.B, this.X, this.g, this.z, this.z1].reduce((sum, a) => sum + a.byteLength, 0);
  }

  attach(state: Float64Array, offset: number): void {
    const { m, n, d } = this;
    let at = offset;
    const take = (k: number) => state.subarray(at, (at += k));
    this.S11 = take(d * d);
    this.S21 = take(n * d);
    this.S22 = take(n * n);
    this.Szz = take(d * d);
    this.Sxz = take(m * d);
    this.Sxx = take(packedSize(m));
    this.prevY = take(n);
    this.c = take(K_COUNTERS);
    this.Ay = take(n * d);
    this.Wn = take(n * n);
    this.H = take(m * d);
    this.G = take(n * m);
    this.M = take(n * n);
    this.Gh = take(n);
    this.y0 = take(n);
    this.P0 = take(n * n);
    this.y = take(n);
    this.P = take(n * n);
    if (at !== offset + this.persistentFloats) throw new Error('kalman: persistent layout miscounted');
    this.c[K_PREV_TICK] = -2;
  }

  predict(phi: Float64Array, yhat: Float32Array): void {
    const { m, n, d } = this;
    if (this.c[K_FITTED] !== 1) {
      yhat.fill(0);
      return;
    }
    const { Ay, y, P, Pm, ym, g, M, G, B, X } = this;
    for (let o = 0; o < n; o++) {
      let s = Ay[o * d + n];
      for (let p = 0; p < n; p++) s += Ay[o * d + p] * y[p];
      ym[o] = s;
    }
    // Pm = A_yy P A_yy' + W, with B as the scratch for A_yy P.
    for (let o = 0; o < n; o++) {
      for (let p = 0; p < n; p++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += Ay[o * d + k] * P[k * n + p];
        B[o * n + p] = s;
      }
    }
    for (let o = 0; o < n; o++) {
      for (let p = 0; p < n; p++) {
        let s = this.Wn[o * n + p];
        for (let k = 0; k < n; k++) s += B[o * n + k] * Ay[p * d + k];
        Pm[o * n + p] = s;
      }
    }
    symmetrize(Pm, n);
    for (let o = 0; o < n; o++) {
      let s = -this.Gh[o];
      for (let i = 0, r = o * m; i < m; i++) s += G[r + i] * phi[i];
      for (let p = 0; p < n; p++) s -= M[o * n + p] * ym[p];
      g[o] = s;
    }
    for (let o = 0; o < n; o++) {
      for (let p = 0; p < n; p++) {
        let s = o === p ? 1 : 0;
        for (let k = 0; k < n; k++) s += Pm[o * n + k] * M[k * n + p];
        B[o * n + p] = s;
      }
    }
    X.set(Pm);
    let ok = solveInPlace(B, 0, n, X, 0, n);
    if (ok) {
      symmetrize(X, n);
      // The new mean goes to ym, so that a failure below leaves the posterior as it was.
      for (let o = 0; o < n; o++) {
        let s = 0;
        for (let p = 0; p < n; p++) s += X[o * n + p] * g[p];
        ym[o] += s;
      }
      ok = allFinite(ym, 0, n) && allFinite(X, 0, n * n);
    }
    if (ok) {
      y.set(ym);
      P.set(X);
    } else {
      // Only an overflow gets here: start again from the prior rather than carry a broken posterior.
      y.set(this.y0);
      P.set(this.P0);
    }
    for (let o = 0; o < n; o++) yhat[o] = y[o];
  }

  learn(phi: Float64Array, yl: ArrayLike<number>, tick: number): ModelLearn {
    const { m, n, d, lambda } = this;
    if (!allWithin(phi, 0, m, MAGNITUDE_LIMIT) || !allWithin(yl, 0, n, MAGNITUDE_LIMIT)) return 'skipped';
    const c = this.c;
    const z = this.z;
    const z1 = this.z1;
    for (let o = 0; o < n; o++) z[o] = yl[o];
    z[n] = 1;
    outerUpdate(this.Szz, lambda, z, 0, d, z, 0, d);
    outerUpdate(this.Sxz, lambda, phi, 0, m, z, 0, d);
    packedRankOneUpdate(this.Sxx, m, lambda, phi);
    if (c[K_PREV_TICK] === tick - 1) {
      for (let o = 0; o < n; o++) z1[o] = this.prevY[o];
      z1[n] = 1;
      outerUpdate(this.S11, lambda, z1, 0, d, z1, 0, d);
      outerUpdate(this.S21, lambda, z, 0, n, z1, 0, d);
      outerUpdate(this.S22, lambda, z, 0, n, z, 0, n);
    } else if (lambda !== 1) {
      // Every label ages the statistics by one, whether or not it brought a transition.
      scale(this.S11, lambda);
      scale(this.S21, lambda);
      scale(this.S22, lambda);
    }
    for (let o = 0; o < n; o++) this.prevY[o] = yl[o];
    c[K_PREV_TICK] = tick;
    if (++c[K_SINCE_REFIT] >= this.refitEvery && !this.refit()) return 'applied-refit-failed';
    return 'applied';
  }

  refit(): boolean {
    const { m, n, d, ridge } = this;
    const c = this.c;
    c[K_SINCE_REFIT] = 0;
    const Szz = this.Szz;
    const count = Szz[d * d - 1];
    if (!(count > 0)) return true;
    const { dd, newH: H, T, Q } = this;

    // H = Sxz (Szz + penalty J)^-1, row by row.
    dd.set(Szz);
    addOutputPenalty(dd, n, ridge, count);
    if (!choleskyInPlace(dd, d)) return false;
    H.set(this.Sxz);
    for (let i = 0; i < m; i++) choleskySolveInPlace(dd, d, 0, H, i * d);

    // Q = (Sxx - Sxz H' - H Sxz' + H Szz H') / count: the residual covariance, upper triangle then mirrored.
    for (let i = 0; i < m; i++) {
      for (let k = 0; k < d; k++) {
        let s = 0;
        for (let l = 0; l < d; l++) s += H[i * d + l] * Szz[l * d + k];
        T[i * d + k] = s;
      }
    }
    const Sxx = this.Sxx;
    const Sxz = this.Sxz;
    let trace = 0;
    for (let i = 0; i < m; i++) {
      const row = packedRow(i, m) - i;
      for (let j = i; j < m; j++) {
        let s = Sxx[row + j];
        for (let k = 0; k < d; k++) {
          s += -Sxz[i * d + k] * H[j * d + k] - H[i * d + k] * Sxz[j * d + k] + T[i * d + k] * H[j * d + k];
        }
        Q[i * m + j] = s / count;
      }
      trace += Q[i * m + i];
    }
    mirrorUpper(Q, m);
    let floor = (ridge * trace) / m;
    if (!(floor > 0)) {
      let sxx = 0;
      for (let i = 0; i < m; i++) sxx += Sxx[packedRow(i, m)];
      floor = (ridge * sxx) / (m * count);
      if (!(floor > 0)) floor = ridge > 0 ? ridge : Number.MIN_VALUE;
    }
    for (let i = 0; i < m; i++) Q[i * m + i] += floor;
    if (!choleskyInPlace(Q, m)) return false;

    // G = H_y' Q^-1, one row per output: Q g_o = H[:, o].
    const G = this.newG;
    for (let o = 0; o < n; o++) {
      const r = o * m;
      for (let i = 0; i < m; i++) G[r + i] = H[i * d + o];
      choleskySolveInPlace(Q, m, 0, G, r);
    }
    const M = this.newM;
    const Gh = this.newGh;
    for (let o = 0; o < n; o++) {
      for (let p = 0; p <= n; p++) {
        let s = 0;
        for (let i = 0; i < m; i++) s += G[o * m + i] * H[i * d + p];
        if (p < n) M[o * n + p] = s;
        else Gh[o] = s;
      }
    }
    symmetrize(M, n);

    // The prior: the labels' mean and covariance.
    const y0 = this.newY0;
    const P0 = this.newP0;
    for (let o = 0; o < n; o++) y0[o] = Szz[o * d + n] / count;
    for (let o = 0; o < n; o++) {
      for (let p = 0; p < n; p++) P0[o * n + p] = Szz[o * d + p] / count - y0[o] * y0[p];
    }
    symmetrize(P0, n);

    // A_y = S21 (S11 + penalty J)^-1; W = the covariance of the transition residuals.
    const Ay = this.newAy;
    const Wn = this.newWn;
    const S11 = this.S11;
    const S21 = this.S21;
    const pairs = S11[d * d - 1];
    if (pairs > 0) {
      dd.set(S11);
      addOutputPenalty(dd, n, ridge, pairs);
      if (!choleskyInPlace(dd, d)) return false;
      Ay.set(S21);
      for (let o = 0; o < n; o++) choleskySolveInPlace(dd, d, 0, Ay, o * d);
      for (let o = 0; o < n; o++) {
        for (let p = 0; p < n; p++) {
          let s = this.S22[o * n + p];
          for (let k = 0; k < d; k++) {
            let as = 0;
            for (let l = 0; l < d; l++) as += Ay[o * d + l] * S11[l * d + k];
            s += -Ay[o * d + k] * S21[p * d + k] - S21[o * d + k] * Ay[p * d + k] + as * Ay[p * d + k];
          }
          Wn[o * n + p] = s / pairs;
        }
      }
      symmetrize(Wn, n);
    } else {
      // No transition seen yet: every tick is a fresh draw from the prior.
      Ay.fill(0);
      for (let o = 0; o < n; o++) Ay[o * d + n] = y0[o];
      Wn.set(P0);
    }

    if (
      !allFinite(H, 0, H.length) || !allFinite(G, 0, G.length) || !allFinite(M, 0, M.length) || !allFinite(Gh, 0, n) ||
      !allFinite(Ay, 0, Ay.length) || !allFinite(Wn, 0, Wn.length) || !allFinite(y0, 0, n) || !allFinite(P0, 0, P0.length)
    ) {
      return false;
    }
    this.H.set(H);
    this.G.set(G);
    this.M.set(M);
    this.Gh.set(Gh);
    this.Ay.set(Ay);
    this.Wn.set(Wn);
    this.y0.set(y0);
    this.P0.set(P0);
    if (c[K_FITTED] !== 1) {
      c[K_FITTED] = 1;
      this.y.set(y0);
      this.P.set(P0);
    }
    return true;
  }

  sessionStarted(): void {
    // The posterior is predict-side state (a frozen fork resets it too); the previous label belongs to the old
    // session, and a transition from it would be a jump no dynamics produced.
    this.c[K_PREV_TICK] = -2;
    if (this.c[K_FITTED] !== 1) return;
    this.y.set(this.y0);
    this.P.set(this.P0);
  }

  readParameters(into: Float64Array): void {
    into.set(this.Ay, 0);
    into.set(this.H, this.Ay.length);
    into.set(this.Wn, this.Ay.length + this.H.length);
  }
}

/** S <- lambda S + u v' for S rows x cols, u = a[aOff..aOff+rows), v = b[bOff..bOff+cols). */
function outerUpdate(S: Float64Array, lambda: number, a: ArrayLike<number>, aOff: number, rows: number, b: ArrayLike<number>, bOff: number, cols: number): void {
  for (let i = 0; i < rows; i++) {
    const ai = a[aOff + i];
    for (let j = 0, r = i * cols; j < cols; j++) S[r + j] = lambda * S[r + j] + ai * b[bOff + j];
  }
}

function scale(S: Float64Array, lambda: number): void {
  for (let i = 0; i < S.length; i++) S[i] *= lambda;
}

/**
 * Adds ridge x (the mean of the outputs' diagonal) to that diagonal of the (n + 1) x (n + 1) second-moment matrix
 * S of z = [y, 1] (the constant is not penalized); with all-zero outputs, ridge x count.
 */
function addOutputPenalty(S: Float64Array, n: number, ridge: number, count: number): void {
  const d = n + 1;
  let mean = 0;
  for (let o = 0; o < n; o++) mean += S[o * d + o];
  mean /= n;
  const penalty = ridge * (mean > 0 ? mean : count);
  for (let o = 0; o < n; o++) S[o * d + o] += penalty;
}
