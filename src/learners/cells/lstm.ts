import type { Kernels } from '../kernels/kernels.js';
import {
  BlockTable, fanInUniform, sigmoid, zeros, type Cell, type CellKind, type CellOptions, type ParamBlock,
} from './cell.js';

/**
 * LSTM without peepholes; the state is s_t = [h_t | c_t] and o_t = h_t:
 *   i = sig(W_i h_{t-1} + U_i x_t + b_i),  f = sig(W_f h_{t-1} + U_f x_t + b_f),
 *   g = tanh(W_g h_{t-1} + U_g x_t + b_g),  o = sig(W_o h_{t-1} + U_o x_t + b_o),
 *   c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t).
 * b_f starts at 1 so that the cell remembers by default (Gers et al. 2000; Jozefowicz et al. 2015).
 *
 * Cache: [x | h_{t-1} | c_{t-1} | h_t | i | f | g | o | tanh(c_t)]. Delta: [delta_i | delta_f | delta_g | delta_o]
 * with, for dL/ds_t = [gh | gc], gc' = gc + gh o (1 - tanh(c_t)^2): delta_i = gc' g i(1 - i),
 * delta_f = gc' c_{t-1} f(1 - f), delta_g = gc' i (1 - g^2), delta_o = gh tanh(c_t) o(1 - o);
 * dL/ds_{t-1} = [sum_k W_k^T delta_k | gc' f].
 */
export class LstmCell implements Cell {
  readonly kind: CellKind = 'lstm';
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly stateSize: number;
  readonly cacheSize: number;
  readonly outputOffset: number;
  readonly deltaSize: number;
  readonly paramCount: number;
  readonly blocks: readonly ParamBlock[];
  private readonly gatesOffset: number;
  private readonly tanhCOffset: number;
  private readonly Wi: ParamBlock;
  private readonly Ui: ParamBlock;
  private readonly bi: ParamBlock;

  constructor(options: CellOptions) {
    const m = options.inputSize;
    const n = options.hiddenSize;
    this.inputSize = m;
    this.hiddenSize = n;
    this.stateSize = 2 * n;
    this.outputOffset = m + 2 * n;
    this.gatesOffset = m + 3 * n;
    this.tanhCOffset = m + 7 * n;
    this.cacheSize = m + 8 * n;
    this.deltaSize = 4 * n;
    const w = fanInUniform(n);
    const table = new BlockTable();
    this.Wi = table.add('W_i', 'recurrent', { rows: n, cols: n }, w, 0, m);
    table.add('W_f', 'recurrent', { rows: n, cols: n }, w, n, m);
    table.add('W_g', 'recurrent', { rows: n, cols: n }, w, 2 * n, m);
    table.add('W_o', 'recurrent', { rows: n, cols: n }, w, 3 * n, m);
    this.Ui = table.add('U_i', 'input', { rows: n, cols: m }, w, 0, 0);
    table.add('U_f', 'input', { rows: n, cols: m }, w, n, 0);
    table.add('U_g', 'input', { rows: n, cols: m }, w, 2 * n, 0);
    table.add('U_o', 'input', { rows: n, cols: m }, w, 3 * n, 0);
    this.bi = table.add('b_i', 'input', { rows: n, cols: 1, diag: true }, zeros, 0, -1);
    table.add('b_f', 'input', { rows: n, cols: 1, diag: true }, { kind: 'constant', value: 1 }, n, -1);
    table.add('b_g', 'input', { rows: n, cols: 1, diag: true }, zeros, 2 * n, -1);
    table.add('b_o', 'input', { rows: n, cols: 1, diag: true }, zeros, 3 * n, -1);
    this.blocks = table.blocks;
    this.paramCount = table.paramCount;
  }

  forward(k: Kernels, params: number, cache: number, state: number): void {
    const m = this.inputSize;
    const n = this.hiddenSize;
    const gates = cache + this.gatesOffset;
    // The four W blocks (and the four U blocks) are consecutive in the table as the gates are in the cache, so
    // one stacked call computes all four pre-activations.
    k.matVec(gates, params + this.Wi.offset, cache + m, 4 * n, n, 0);
    k.matVec(gates, params + this.Ui.offset, cache, 4 * n, m, 1);
    const h = k.heap;
    const b = params + this.bi.offset;
    const cPrev = cache + m + n;
    const tanhC = cache + this.tanhCOffset;
    const out = cache + this.outputOffset;
    for (let j = 0; j < n; j++) {
      const ig = sigmoid(h[gates + j] + h[b + j]);
      const fg = sigmoid(h[gates + n + j] + h[b + n + j]);
      const gg = Math.tanh(h[gates + 2 * n + j] + h[b + 2 * n + j]);
      const og = sigmoid(h[gates + 3 * n + j] + h[b + 3 * n + j]);
      h[gates + j] = ig;
      h[gates + n + j] = fg;
      h[gates + 2 * n + j] = gg;
      h[gates + 3 * n + j] = og;
      const c = fg * h[cPrev + j] + ig * gg;
      const t = Math.tanh(c);
      h[tanhC + j] = t;
      h[state + j] = og * t;
      h[state + n + j] = c;
      h[out + j] = og * t;
    }
  }

  outputBackward(k: Kernels, _cache: number, gOut: number, gState: number): void {
    const n = this.hiddenSize;
    k.copy(gState, gOut, n);
    k.fill(gState + n, 0, n);
  }

  backward(k: Kernels, params: number, cache: number, gState: number, delta: number, gStatePrev: number): void {
    const n = this.hiddenSize;
    const h = k.heap;
    const gates = cache + this.gatesOffset;
    const cPrev = cache + this.inputSize + n;
    const tanhC = cache + this.tanhCOffset;
    for (let j = 0; j < n; j++) {
      const ig = h[gates + j];
      const fg = h[gates + n + j];
      const gg = h[gates + 2 * n + j];
      const og = h[gates + 3 * n + j];
      const t = h[tanhC + j];
      const gh = h[gState + j];
      const gc = h[gState + n + j] + gh * og * (1 - t * t);
      h[delta + j] = gc * gg * ig * (1 - ig);
      h[delta + n + j] = gc * h[cPrev + j] * fg * (1 - fg);
      h[delta + 2 * n + j] = gc * ig * (1 - gg * gg);
      h[delta + 3 * n + j] = gh * t * og * (1 - og);
      // Element by element after reading gh and gc, so gStatePrev may alias gState.
      if (gStatePrev >= 0) h[gStatePrev + n + j] = gc * fg;
    }
    // delta_i..delta_o line up with the stacked W_i..W_o: one call gives sum_k W_k^T delta_k.
    if (gStatePrev >= 0) k.matTVec(gStatePrev, params + this.Wi.offset, delta, 4 * n, n, 0);
  }
}
