import type { Kernels } from '../kernels/kernels.js';
import type { Random } from '../random.js';
import { BlockTable, initBlock, sigmoid, zeros, type CellKind, type ForwardCell, type Init, type ParamBlock } from './cell.js';

/** The LRU's own options; CellSpec carries them flat (units, layers, rMin, rMax, maxPhase). */
export interface LruOptions {
  /** Complex recurrent units per layer (N); default: hiddenSize. */
  readonly units: number;
  readonly layers: number;
  /** |lambda| is drawn uniformly on the ring r_min <= |lambda| <= r_max of the complex plane. */
  readonly rMin: number;
  readonly rMax: number;
  /** arg(lambda) is drawn uniformly in [0, maxPhase]. */
  readonly maxPhase: number;
}

export const LRU_DEFAULTS = { layers: 1, rMin: 0, rMax: 1, maxPhase: 2 * Math.PI } as const;

/** LayerNorm's variance floor (flax' default is 1e-6; 1e-5 keeps float32 rstd finite on constant inputs). */
export const LAYER_NORM_EPS = 1e-5;
const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;
/** Drawn by LruCell.initialize: nu, theta and gamma are joint (gamma normalizes by |lambda|). */
const joint: Init = { kind: 'constant', value: 0 };

/** One block's parameters and where its tick quantities live (cache offsets relative to the tick's cache). */
export interface LruLayer {
  readonly scale: ParamBlock;
  readonly bias: ParamBlock;
  readonly nu: ParamBlock;
  readonly theta: ParamBlock;
  readonly gamma: ParamBlock;
  readonly Bre: ParamBlock;
  readonly Bim: ParamBlock;
  readonly Cre: ParamBlock;
  readonly Cim: ParamBlock;
  readonly D: ParamBlock;
  readonly W1: ParamBlock;
  readonly b1: ParamBlock;
  readonly W2: ParamBlock;
  readonly b2: ParamBlock;
  /** Cache: block input x^l, normalized vhat, 1 / std, LayerNorm output u, h_{t-1} (prefix), B u, h_t, y, gelu(y), GLU value and gate. */
  readonly x: number;
  readonly vhat: number;
  readonly rstd: number;
  readonly u: number;
  readonly prev: number;
  readonly bu: number;
  readonly h: number;
  readonly y: number;
  readonly z: number;
  readonly value: number;
  readonly gate: number;
  /** Offset of this layer's h in the recurrent state (and of g = dL/dh in gState). */
  readonly stateAt: number;
  /** Delta: row factors (u; nu, theta, gamma; gamma g_re, gamma g_im; dy, -dy; GLU value, GLU gate). */
  readonly dU: number;
  readonly dNu: number;
  readonly dTheta: number;
  readonly dGamma: number;
  readonly dBre: number;
  readonly dBim: number;
  readonly dY: number;
  readonly dNegY: number;
  readonly dValue: number;
  readonly dGate: number;
}

/**
 * The stacked linear recurrent unit network of Orvieto et al. (2023), as Zucchet et al. (2023) learn it online:
 * a dense encoder, then L blocks, each
 *
 *   u = LayerNorm(x^l)                                 (scale, bias)
 *   h_t = lambda * h_{t-1} + gamma * ((B_re + i B_im) u)  lambda = exp(-exp(nu_log) + i exp(theta_log)),
 *                                                      gamma = exp(gamma_log), N complex units, element-wise
 *   y = Re((C_re + i C_im) h_t) + D * u
 *   x^{l+1} = x^l + (W1 z + b1) * sig(W2 z + b2),  z = gelu(y)   (tanh approximation)
 *
 * and o_t = x^{L+1}, which the learner's readout decodes (the paper's decoder). The state is every layer's h as
 * [re | im] runs (2 N L floats).
 *
 * This is a ForwardCell, not a unit-aligned Cell: the encoder, norms, GLUs and residuals act on o_t directly, so
 * the generic one-step rules do not apply. It learns with the `online-lru` rule, through `spatialBackward`
 * (same-tick backpropagation across layers) and the rule's per-layer traces for lambda, gamma and B.
 *
 * Initialization (the paper's): u1, u2 ~ U(0, 1) per unit, nu_log = log(-log(u1 (r_max^2 - r_min^2) + r_min^2) / 2),
 * theta_log = log(max_phase u2), gamma_log = log(sqrt(1 - |lambda|^2)); B ~ N(0, 1 / 2H) (re and im),
 * C ~ N(0, 1 / N), D ~ N(0, 1); dense layers N(0, 1 / fan_in), biases 0, norm scale 1.
 */
export class LruCell implements ForwardCell {
  readonly kind: CellKind = 'lru';
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly stateSize: number;
  readonly cacheSize: number;
  readonly outputOffset: number;
  readonly deltaSize: number;
  readonly paramCount: number;
  readonly blocks: readonly ParamBlock[];
  readonly units: number;
  readonly layers: readonly LruLayer[];
  readonly encW: ParamBlock;
  readonly encB: ParamBlock;
  /** Delta: dL/dx^l as the backward pass descends (ends as the encoder's row factor), and dL/dz. */
  readonly dX: number;
  private readonly dZ: number;
  private readonly forwardUnits: Float64Array;

  constructor(inputSize: number, hiddenSize: number, readonly options: LruOptions) {
    const m = inputSize;
    const H = hiddenSize;
    const N = options.units;
    const L = options.layers;
    this.inputSize = m;
    this.hiddenSize = H;
    this.units = N;
    this.stateSize = 2 * N * L;

    let cacheAt = m + this.stateSize;
    const cache = (floats: number) => {
      const start = cacheAt;
      cacheAt += floats;
      return start;
    };
    let deltaAt = 0;
    const delta = (floats: number) => {
      const start = deltaAt;
      deltaAt += floats;
      return start;
    };
    this.dX = delta(H);
    this.dZ = delta(H);

    const table = new BlockTable();
    const normal = (std: number): Init => ({ kind: 'normal', std });
    const firstX = cache(H);
    this.encW = table.add('enc.W', 'input', { rows: H, cols: m }, normal(1 / Math.sqrt(m)), this.dX, 0);
    this.encB = table.add('enc.b', 'input', { rows: H, cols: 1, diag: true }, zeros, this.dX, -1);
    const layers: LruLayer[] = [];
    let x = firstX;
    for (let l = 0; l < L; l++) {
      const name = `l${l + 1}.`;
      const vhat = cache(H);
      const rstd = cache(1);
      const u = cache(H);
      const bu = cache(2 * N);
      const h = cache(2 * N);
      const y = cache(H);
      const z = cache(H);
      const value = cache(H);
      const gate = cache(H);
      const next = cache(H);
      const dU = delta(H);
      const dNu = delta(N);
      const dTheta = delta(N);
      const dGamma = delta(N);
      const dBre = delta(N);
      const dBim = delta(N);
      const dY = delta(H);
      const dNegY = delta(H);
      const dValue = delta(H);
      const dGate = delta(H);
      const diag = (rows: number) => ({ rows, cols: 1, diag: true });
      layers.push({
        scale: table.add(`${name}norm.scale`, 'input', diag(H), { kind: 'constant', value: 1 }, dU, vhat),
        bias: table.add(`${name}norm.bias`, 'input', diag(H), zeros, dU, -1),
        nu: table.add(`${name}nu_log`, 'recurrent', diag(N), joint, dNu, -1),
        theta: table.add(`${name}theta_log`, 'recurrent', diag(N), joint, dTheta, -1),
        gamma: table.add(`${name}gamma_log`, 'recurrent', diag(N), joint, dGamma, -1),
        Bre: table.add(`${name}B_re`, 'recurrent', { rows: N, cols: H }, normal(1 / Math.sqrt(2 * H)), dBre, u),
        Bim: table.add(`${name}B_im`, 'recurrent', { rows: N, cols: H }, normal(1 / Math.sqrt(2 * H)), dBim, u),
        Cre: table.add(`${name}C_re`, 'input', { rows: H, cols: N }, normal(1 / Math.sqrt(N)), dY, h),
        Cim: table.add(`${name}C_im`, 'input', { rows: H, cols: N }, normal(1 / Math.sqrt(N)), dNegY, h + N),
        D: table.add(`${name}D`, 'input', diag(H), normal(1), dY, u),
        W1: table.add(`${name}glu.W1`, 'input', { rows: H, cols: H }, normal(1 / Math.sqrt(H)), dValue, z),
        b1: table.add(`${name}glu.b1`, 'input', diag(H), zeros, dValue, -1),
        W2: table.add(`${name}glu.W2`, 'input', { rows: H, cols: H }, normal(1 / Math.sqrt(H)), dGate, z),
        b2: table.add(`${name}glu.b2`, 'input', diag(H), zeros, dGate, -1),
        x, vhat, rstd, u, prev: m + 2 * N * l, bu, h, y, z, value, gate, stateAt: 2 * N * l,
        dU, dNu, dTheta, dGamma, dBre, dBim, dY, dNegY, dValue, dGate,
      });
      x = next;
    }
    this.layers = layers;
    this.outputOffset = x;
    this.cacheSize = cacheAt;
    this.deltaSize = deltaAt;
    this.blocks = table.blocks;
    this.paramCount = table.paramCount;
    this.forwardUnits = this.unitTable();
  }

  initialize(heap: Float32Array, params: number, rng: Random): void {
    const { rMin, rMax, maxPhase } = this.options;
    const drawBlock = (b: ParamBlock) => initBlock(heap, params + b.offset, b, rng);
    drawBlock(this.encW);
    drawBlock(this.encB);
    for (const layer of this.layers) {
      drawBlock(layer.scale);
      drawBlock(layer.bias);
      for (let i = 0; i < this.units; i++) {
        // Kept off the ends so every log below is finite: |lambda| in (0, 1), arg(lambda) > 0.
        const radiusSq = Math.min(Math.max(rng.next() * (rMax * rMax - rMin * rMin) + rMin * rMin, 1e-12), 1 - 1e-7);
        const phase = Math.max(rng.next(), 1e-7) * maxPhase;
        const nu = -0.5 * Math.log(radiusSq);
        heap[params + layer.nu.offset + i] = Math.log(nu);
        heap[params + layer.theta.offset + i] = Math.log(phase);
        heap[params + layer.gamma.offset + i] = Math.log(Math.sqrt(1 - radiusSq));
      }
      for (const b of [layer.Bre, layer.Bim, layer.Cre, layer.Cim, layer.D, layer.W1, layer.b1, layer.W2, layer.b2]) {
        drawBlock(b);
      }
    }
  }

  /** Floats per unit in a table of unit constants (unitConstants). */
  static readonly UNIT_FIELDS = 5;

  /**
   * Every unit's constants for the current parameters, computed once where several passes need them:
   * [Re lambda, Im lambda, gamma, exp(nu_log), exp(theta_log)] at (layer N + unit) * UNIT_FIELDS.
   */
  unitConstants(heap: Float32Array, params: number, table: Float64Array): void {
    const N = this.units;
    for (let l = 0; l < this.layers.length; l++) {
      const L = this.layers[l];
      for (let i = 0; i < N; i++) {
        const nuExp = Math.exp(heap[params + L.nu.offset + i]);
        const r = Math.exp(-nuExp);
        const thetaExp = Math.exp(heap[params + L.theta.offset + i]);
        const at = (l * N + i) * LruCell.UNIT_FIELDS;
        table[at] = r * Math.cos(thetaExp);
        table[at + 1] = r * Math.sin(thetaExp);
        table[at + 2] = Math.exp(heap[params + L.gamma.offset + i]);
        table[at + 3] = nuExp;
        table[at + 4] = thetaExp;
      }
    }
  }

  /** A table for unitConstants, allocated once (not per tick). */
  unitTable(): Float64Array {
    return new Float64Array(this.units * this.layers.length * LruCell.UNIT_FIELDS);
  }

  forward(k: Kernels, params: number, cache: number, state: number): void {
    const H = this.hiddenSize;
    const N = this.units;
    const hp = k.heap;
    const units = this.forwardUnits;
    this.unitConstants(hp, params, units);
    const x1 = cache + this.layers[0].x;
    k.matVec(x1, params + this.encW.offset, cache, H, this.inputSize, 0);
    const encB = params + this.encB.offset;
    for (let i = 0; i < H; i++) hp[x1 + i] += hp[encB + i];
    for (let l = 0; l < this.layers.length; l++) {
      const L = this.layers[l];
      const x = cache + L.x;
      const vhat = cache + L.vhat;
      const u = cache + L.u;
      let mean = 0;
      for (let i = 0; i < H; i++) mean += hp[x + i];
      mean /= H;
      let variance = 0;
      for (let i = 0; i < H; i++) {
        const c = hp[x + i] - mean;
        variance += c * c;
      }
      const rstd = 1 / Math.sqrt(variance / H + LAYER_NORM_EPS);
      hp[cache + L.rstd] = rstd;
      const scale = params + L.scale.offset;
      const bias = params + L.bias.offset;
      for (let i = 0; i < H; i++) {
        const v = (hp[x + i] - mean) * rstd;
        hp[vhat + i] = v;
        hp[u + i] = hp[scale + i] * v + hp[bias + i];
      }

      const bu = cache + L.bu;
      k.matVec(bu, params + L.Bre.offset, u, N, H, 0);
      k.matVec(bu + N, params + L.Bim.offset, u, N, H, 0);
      const prev = cache + L.prev;
      const h = cache + L.h;
      for (let i = 0; i < N; i++) {
        const at = (l * N + i) * LruCell.UNIT_FIELDS;
        const lr = units[at];
        const li = units[at + 1];
        const g = units[at + 2];
        const pr = hp[prev + i];
        const pi = hp[prev + N + i];
        const re = lr * pr - li * pi + g * hp[bu + i];
        const im = lr * pi + li * pr + g * hp[bu + N + i];
        hp[h + i] = re;
        hp[h + N + i] = im;
        hp[state + L.stateAt + i] = re;
        hp[state + L.stateAt + N + i] = im;
      }

      const y = cache + L.y;
      const value = cache + L.value;
      const gate = cache + L.gate;
      const z = cache + L.z;
      k.matVec(y, params + L.Cre.offset, h, H, N, 0);
      k.matVec(value, params + L.Cim.offset, h + N, H, N, 0);
      const D = params + L.D.offset;
      for (let i = 0; i < H; i++) {
        const yi = hp[y + i] - hp[value + i] + hp[D + i] * hp[u + i];
        hp[y + i] = yi;
        hp[z + i] = 0.5 * yi * (1 + Math.tanh(GELU_C * (yi + GELU_A * yi * yi * yi)));
      }
      k.matVec(value, params + L.W1.offset, z, H, H, 0);
      k.matVec(gate, params + L.W2.offset, z, H, H, 0);
      const b1 = params + L.b1.offset;
      const b2 = params + L.b2.offset;
      const next = cache + (l + 1 < this.layers.length ? this.layers[l + 1].x : this.outputOffset);
      for (let i = 0; i < H; i++) {
        const v = hp[value + i] + hp[b1 + i];
        const s = sigmoid(hp[gate + i] + hp[b2 + i]);
        hp[value + i] = v;
        hp[gate + i] = s;
        hp[next + i] = hp[x + i] + v * s;
      }
    }
  }

  /**
   * Same-tick backpropagation from dL/do_t (gOut) down the stack, with every h_{t-1} held constant: writes each
   * block's row factor into `delta` (the recurrent blocks' as their one-step partials, which the online rule
   * replaces with its traces) and each layer's g = dL/dh_t (same tick, [re | im]) into gState. The error reaching
   * a lower layer is D * dy + Re((gamma B)^H g) through u, as in the paper's spatial backpropagation.
   * With gCarry >= 0, each layer's g also takes the error its h_t receives from later ticks (backpropagation
   * through time adds conj(lambda) g_{t+1} there) before it flows on. `units`: unitConstants of `params`.
   */
  spatialBackward(k: Kernels, params: number, units: Float64Array, cache: number, gOut: number, delta: number,
    gState: number, gCarry = -1): void {
    const H = this.hiddenSize;
    const N = this.units;
    const hp = k.heap;
    const dX = delta + this.dX;
    const dZ = delta + this.dZ;
    k.copy(dX, gOut, H);
    for (let l = this.layers.length - 1; l >= 0; l--) {
      const L = this.layers[l];
      const value = cache + L.value;
      const gate = cache + L.gate;
      const dValue = delta + L.dValue;
      const dGate = delta + L.dGate;
      for (let i = 0; i < H; i++) {
        const s = hp[gate + i];
        hp[dValue + i] = hp[dX + i] * s;
        hp[dGate + i] = hp[dX + i] * hp[value + i] * s * (1 - s);
      }
      k.matTVec(dZ, params + L.W1.offset, dValue, H, H, 0);
      k.matTVec(dZ, params + L.W2.offset, dGate, H, H, 1);
      const y = cache + L.y;
      const dY = delta + L.dY;
      const dNegY = delta + L.dNegY;
      for (let i = 0; i < H; i++) {
        const yi = hp[y + i];
        const t = Math.tanh(GELU_C * (yi + GELU_A * yi * yi * yi));
        const slope = 0.5 * (1 + t) + 0.5 * yi * (1 - t * t) * GELU_C * (1 + 3 * GELU_A * yi * yi);
        const d = hp[dZ + i] * slope;
        hp[dY + i] = d;
        hp[dNegY + i] = -d;
      }
      // g = C^H dy: Re part C_re^T dy, Im part -C_im^T dy.
      const g = gState + L.stateAt;
      k.matTVec(g, params + L.Cre.offset, dY, H, N, 0);
      k.matTVec(g + N, params + L.Cim.offset, dNegY, H, N, 0);
      if (gCarry >= 0) for (let i = 0; i < 2 * N; i++) hp[g + i] += hp[gCarry + L.stateAt + i];

      const prev = cache + L.prev;
      const bu = cache + L.bu;
      const dNu = delta + L.dNu;
      const dTheta = delta + L.dTheta;
      const dGamma = delta + L.dGamma;
      const dBre = delta + L.dBre;
      const dBim = delta + L.dBim;
      for (let i = 0; i < N; i++) {
        const at = (l * N + i) * LruCell.UNIT_FIELDS;
        const lr = units[at];
        const li = units[at + 1];
        const gamma = units[at + 2];
        const nuExp = units[at + 3];
        const thetaExp = units[at + 4];
        const gr = hp[g + i];
        const gi = hp[g + N + i];
        // w = lambda h_{t-1} = dh_t/dlambda * lambda; dlambda/dnu_log = -exp(nu_log) lambda, dlambda/dtheta_log = i exp(theta_log) lambda.
        const pr = hp[prev + i];
        const pi = hp[prev + N + i];
        const wr = lr * pr - li * pi;
        const wi = lr * pi + li * pr;
        hp[dNu + i] = -(gr * wr + gi * wi) * nuExp;
        hp[dTheta + i] = -(gr * wi - gi * wr) * thetaExp;
        hp[dGamma + i] = gamma * (gr * hp[bu + i] + gi * hp[bu + N + i]);
        hp[dBre + i] = gamma * gr;
        hp[dBim + i] = gamma * gi;
      }

      const dU = delta + L.dU;
      k.matTVec(dU, params + L.Bre.offset, dBre, N, H, 0);
      k.matTVec(dU, params + L.Bim.offset, dBim, N, H, 1);
      const D = params + L.D.offset;
      for (let i = 0; i < H; i++) hp[dU + i] += hp[D + i] * hp[dY + i];

      // LayerNorm: dx += rstd (dvhat - mean(dvhat) - vhat mean(dvhat vhat)), dvhat = du * scale.
      const scale = params + L.scale.offset;
      const vhat = cache + L.vhat;
      let meanD = 0;
      let meanDV = 0;
      for (let i = 0; i < H; i++) {
        const dv = hp[dU + i] * hp[scale + i];
        meanD += dv;
        meanDV += dv * hp[vhat + i];
      }
      meanD /= H;
      meanDV /= H;
      const rstd = hp[cache + L.rstd];
      for (let i = 0; i < H; i++) {
        hp[dX + i] += rstd * (hp[dU + i] * hp[scale + i] - meanD - hp[vhat + i] * meanDV);
      }
    }
  }
}
