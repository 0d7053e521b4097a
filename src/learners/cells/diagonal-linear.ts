import type { Kernels } from '../kernels/kernels.js';
import {
  BlockTable, fanInUniform, sigmoid, zeros, type Cell, type CellKind, type CellOptions, type ParamBlock,
} from './cell.js';

/** logit(0.99): with nu ~ U(0, logit(0.99)) the decays a = sig(nu) start in (0.5, 0.99). */
const maxNu = Math.log(99);

/**
 * Diagonal linear recurrence with a nonlinear readout (a real, single-layer relative of the LRU):
 *   a = sig(nu),  h_t = a * h_{t-1} + U x_t + b,  o_t = tanh(h_t),  s_t = h_t.
 * The sigmoid keeps 0 < a < 1 whatever the optimizer does to nu, so the state stays bounded for bounded inputs.
 * nu ~ U(0, logit(0.99)) puts a in (0.5, 0.99); the Init kinds cannot express a uniform in a itself, so this
 * draw leans toward long memories (median a ~ 0.9).
 *
 * Traces live on the state h, not on the readout feature tanh(h): with ds_t/ds_{t-1} = diag(a), a trace of
 * d h_t,i / d theta decayed by a_i (`lambda: 'exact'`) is the exact gradient (the in-layer rule the online LRU
 * builds on), and one decayed by a scalar lambda is exact wherever a_i = lambda. A trace on tanh(h) would weigh
 * each past tick's partial by its own 1 - o_k^2 where the gradient takes the labelled tick's 1 - o_t^2
 * (test/state-trace.test.ts).
 *
 * Cache: [x | h_{t-1} | o_t]. Delta: [delta_h | delta_nu] with delta_h = dL/dh_t (U, b) and
 * delta_nu = dL/dh_t a(1 - a), read against h_{t-1} element-wise; dL/dh_{t-1} = a dL/dh_t.
 */
export class DiagonalLinearCell implements Cell {
  readonly kind: CellKind = 'diagonal-linear';
  readonly traceOn = 'state';
  readonly diagonalJacobian = true;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly stateSize: number;
  readonly cacheSize: number;
  readonly outputOffset: number;
  readonly deltaSize: number;
  readonly paramCount: number;
  readonly blocks: readonly ParamBlock[];
  private readonly nu: ParamBlock;
  private readonly U: ParamBlock;
  private readonly b: ParamBlock;

  constructor(options: CellOptions) {
    const m = options.inputSize;
    const n = options.hiddenSize;
    this.inputSize = m;
    this.hiddenSize = n;
    this.stateSize = n;
    this.outputOffset = m + n;
    this.cacheSize = m + 2 * n;
    this.deltaSize = 2 * n;
    const table = new BlockTable();
    this.nu = table.add('nu', 'recurrent', { rows: n, cols: 1, diag: true }, { kind: 'uniform', low: 0, high: maxNu },
      n, m);
    this.U = table.add('U', 'input', { rows: n, cols: m }, fanInUniform(n), 0, 0);
    this.b = table.add('b', 'input', { rows: n, cols: 1, diag: true }, zeros, 0, -1);
    this.blocks = table.blocks;
    this.paramCount = table.paramCount;
  }

  forward(k: Kernels, params: number, cache: number, state: number): void {
    const m = this.inputSize;
    const n = this.hiddenSize;
    k.matVec(state, params + this.U.offset, cache, n, m, 0);
    const h = k.heap;
    const nu = params + this.nu.offset;
    const b = params + this.b.offset;
    const prev = cache + m;
    const out = cache + this.outputOffset;
    for (let i = 0; i < n; i++) {
      const s = sigmoid(h[nu + i]) * h[prev + i] + h[state + i] + h[b + i];
      h[state + i] = s;
      h[out + i] = Math.tanh(s);
    }
  }

  outputBackward(k: Kernels, cache: number, gOut: number, gState: number): void {
    const h = k.heap;
    const o = cache + this.outputOffset;
    for (let i = 0; i < this.hiddenSize; i++) h[gState + i] = h[gOut + i] * (1 - h[o + i] * h[o + i]);
  }

  backward(k: Kernels, params: number, _cache: number, gState: number, delta: number, gStatePrev: number): void {
    const n = this.hiddenSize;
    const h = k.heap;
    const nu = params + this.nu.offset;
    for (let i = 0; i < n; i++) {
      const g = h[gState + i];
      const a = sigmoid(h[nu + i]);
      h[delta + i] = g;
      h[delta + n + i] = g * a * (1 - a);
      if (gStatePrev >= 0) h[gStatePrev + i] = a * g;
    }
  }
}
