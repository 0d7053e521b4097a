import type { Kernels } from '../kernels/kernels.js';
import {
  BlockTable, fanInUniform, sigmoid, zeros, type Cell, type CellKind, type CellOptions, type ParamBlock,
} from './cell.js';

/**
 * Update-gate RNN (Collins, Sohl-Dickstein & Sussillo 2017, "Capacity and trainability in recurrent neural
 * networks"): a single gate interpolates between keeping the state and a tanh candidate,
 *   c = tanh(W_c h_{t-1} + U_c x_t + b_c),  g = sig(W_g h_{t-1} + U_g x_t + b_g),
 *   h_t = g * h_{t-1} + (1 - g) * c,  o_t = h_t.
 * b_g starts at +1 so that units begin by mostly keeping their state (g ~ 0.73).
 *
 * Cache: [x | h_{t-1} | h_t | c | g]. Delta: [delta_c | delta_g] with delta_c = dL/dh_t (1 - g)(1 - c^2) and
 * delta_g = dL/dh_t (h_{t-1} - c) g(1 - g); dL/dh_{t-1} = g dL/dh_t + W_c^T delta_c + W_g^T delta_g.
 */
export class UgrnnCell implements Cell {
  readonly kind: CellKind = 'ugrnn';
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly stateSize: number;
  readonly cacheSize: number;
  readonly outputOffset: number;
  readonly deltaSize: number;
  readonly paramCount: number;
  readonly blocks: readonly ParamBlock[];
  private readonly cOffset: number;
  private readonly Wc: ParamBlock;
  private readonly Uc: ParamBlock;
  private readonly bc: ParamBlock;

  constructor(options: CellOptions) {
    const m = options.inputSize;
    const n = options.hiddenSize;
    this.inputSize = m;
    this.hiddenSize = n;
    this.stateSize = n;
    this.outputOffset = m + n;
    this.cOffset = m + 2 * n;
    this.cacheSize = m + 4 * n;
    this.deltaSize = 2 * n;
    const w = fanInUniform(n);
    const table = new BlockTable();
    this.Wc = table.add('W_c', 'recurrent', { rows: n, cols: n }, w, 0, m);
    table.add('W_g', 'recurrent', { rows: n, cols: n }, w, n, m);
    this.Uc = table.add('U_c', 'input', { rows: n, cols: m }, w, 0, 0);
    table.add('U_g', 'input', { rows: n, cols: m }, w, n, 0);
    this.bc = table.add('b_c', 'input', { rows: n, cols: 1, diag: true }, zeros, 0, -1);
    table.add('b_g', 'input', { rows: n, cols: 1, diag: true }, { kind: 'constant', value: 1 }, n, -1);
    this.blocks = table.blocks;
    this.paramCount = table.paramCount;
  }

  forward(k: Kernels, params: number, cache: number, state: number): void {
    const m = this.inputSize;
    const n = this.hiddenSize;
    const c = cache + this.cOffset;
    const g = c + n;
    // W_c, W_g (and U_c, U_g) are consecutive in the table as c, g are in the cache: one stacked call each.
    k.matVec(c, params + this.Wc.offset, cache + m, 2 * n, n, 0);
    k.matVec(c, params + this.Uc.offset, cache, 2 * n, m, 1);
    const h = k.heap;
    const b = params + this.bc.offset;
    const prev = cache + m;
    const out = cache + this.outputOffset;
    for (let i = 0; i < n; i++) {
      const cv = Math.tanh(h[c + i] + h[b + i]);
      const gv = sigmoid(h[g + i] + h[b + n + i]);
      h[c + i] = cv;
      h[g + i] = gv;
      const s = gv * h[prev + i] + (1 - gv) * cv;
      h[state + i] = s;
      h[out + i] = s;
    }
  }

  outputBackward(k: Kernels, _cache: number, gOut: number, gState: number): void {
    k.copy(gState, gOut, this.hiddenSize);
  }

  backward(k: Kernels, params: number, cache: number, gState: number, delta: number, gStatePrev: number): void {
    const n = this.hiddenSize;
    const h = k.heap;
    const c = cache + this.cOffset;
    const g = c + n;
    const prev = cache + this.inputSize;
    for (let i = 0; i < n; i++) {
      const d = h[gState + i];
      const cv = h[c + i];
      const gv = h[g + i];
      h[delta + i] = d * (1 - gv) * (1 - cv * cv);
      h[delta + n + i] = d * (h[prev + i] - cv) * gv * (1 - gv);
      // Element by element after reading d, so gStatePrev may alias gState.
      if (gStatePrev >= 0) h[gStatePrev + i] = gv * d;
    }
    // delta_c, delta_g line up with the stacked W_c, W_g.
    if (gStatePrev >= 0) k.matTVec(gStatePrev, params + this.Wc.offset, delta, 2 * n, n, 1);
  }
}
