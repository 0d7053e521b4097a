import type { Kernels } from '../kernels/kernels.js';
import {
  BlockTable, fanInUniform, sigmoid, zeros, type Cell, type CellKind, type CellOptions, type ParamBlock,
} from './cell.js';

/**
 * GRU in PyTorch's form, the reset gate applied after the recurrent matmul so that row i of W_n feeds unit i only:
 *   r = sig(W_r h_{t-1} + U_r x_t + b_r),  z = sig(W_z h_{t-1} + U_z x_t + b_z),
 *   q = W_n h_{t-1} + b_hn,  nn = tanh(U_n x_t + b_n + r * q),  h_t = (1 - z) * nn + z * h_{t-1},  o_t = h_t.
 *
 * Cache: [x | h_{t-1} | h_t | r | z | q | nn]. Delta: [delta_r | delta_z | delta_q | delta_nn] with
 * delta_nn = dL/dh_t (1 - z)(1 - nn^2) (U_n, b_n), delta_q = delta_nn r (W_n, b_hn), delta_r = delta_nn q r(1 - r)
 * (W_r, U_r, b_r), delta_z = dL/dh_t (h_{t-1} - nn) z(1 - z) (W_z, U_z, b_z);
 * dL/dh_{t-1} = z dL/dh_t + W_r^T delta_r + W_z^T delta_z + W_n^T delta_q.
 */
export class GruCell implements Cell {
  readonly kind: CellKind = 'gru';
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly stateSize: number;
  readonly cacheSize: number;
  readonly outputOffset: number;
  readonly deltaSize: number;
  readonly paramCount: number;
  readonly blocks: readonly ParamBlock[];
  private readonly rOffset: number;
  private readonly nOffset: number;
  private readonly Wr: ParamBlock;
  private readonly Ur: ParamBlock;
  private readonly Un: ParamBlock;
  private readonly br: ParamBlock;

  constructor(options: CellOptions) {
    const m = options.inputSize;
    const n = options.hiddenSize;
    this.inputSize = m;
    this.hiddenSize = n;
    this.stateSize = n;
    this.outputOffset = m + n;
    this.rOffset = m + 2 * n;
    this.nOffset = m + 5 * n;
    this.cacheSize = m + 6 * n;
    this.deltaSize = 4 * n;
    const w = fanInUniform(n);
    const table = new BlockTable();
    this.Wr = table.add('W_r', 'recurrent', { rows: n, cols: n }, w, 0, m);
    table.add('W_z', 'recurrent', { rows: n, cols: n }, w, n, m);
    table.add('W_n', 'recurrent', { rows: n, cols: n }, w, 2 * n, m);
    this.Ur = table.add('U_r', 'input', { rows: n, cols: m }, w, 0, 0);
    table.add('U_z', 'input', { rows: n, cols: m }, w, n, 0);
    this.Un = table.add('U_n', 'input', { rows: n, cols: m }, w, 3 * n, 0);
    this.br = table.add('b_r', 'input', { rows: n, cols: 1, diag: true }, zeros, 0, -1);
    table.add('b_z', 'input', { rows: n, cols: 1, diag: true }, zeros, n, -1);
    table.add('b_n', 'input', { rows: n, cols: 1, diag: true }, zeros, 3 * n, -1);
    table.add('b_hn', 'input', { rows: n, cols: 1, diag: true }, zeros, 2 * n, -1);
    this.blocks = table.blocks;
    this.paramCount = table.paramCount;
  }

  forward(k: Kernels, params: number, cache: number, state: number): void {
    const m = this.inputSize;
    const n = this.hiddenSize;
    const r = cache + this.rOffset;
    const z = r + n;
    const q = r + 2 * n;
    const nn = cache + this.nOffset;
    // W_r, W_z, W_n (and U_r, U_z) are consecutive in the table as r, z, q are in the cache: one stacked call each.
    k.matVec(r, params + this.Wr.offset, cache + m, 3 * n, n, 0);
    k.matVec(r, params + this.Ur.offset, cache, 2 * n, m, 1);
    k.matVec(nn, params + this.Un.offset, cache, n, m, 0);
    const h = k.heap;
    const b = params + this.br.offset;
    const prev = cache + m;
    const out = cache + this.outputOffset;
    for (let i = 0; i < n; i++) {
      const rv = sigmoid(h[r + i] + h[b + i]);
      const zv = sigmoid(h[z + i] + h[b + n + i]);
      const qv = h[q + i] + h[b + 3 * n + i];
      const nv = Math.tanh(h[nn + i] + h[b + 2 * n + i] + rv * qv);
      h[r + i] = rv;
      h[z + i] = zv;
      h[q + i] = qv;
      h[nn + i] = nv;
      const s = (1 - zv) * nv + zv * h[prev + i];
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
    const r = cache + this.rOffset;
    const z = r + n;
    const q = r + 2 * n;
    const nn = cache + this.nOffset;
    const prev = cache + this.inputSize;
    for (let i = 0; i < n; i++) {
      const g = h[gState + i];
      const rv = h[r + i];
      const zv = h[z + i];
      const nv = h[nn + i];
      const dnn = g * (1 - zv) * (1 - nv * nv);
      h[delta + i] = dnn * h[q + i] * rv * (1 - rv);
      h[delta + n + i] = g * (h[prev + i] - nv) * zv * (1 - zv);
      h[delta + 2 * n + i] = dnn * rv;
      h[delta + 3 * n + i] = dnn;
      // Element by element after reading g, so gStatePrev may alias gState.
      if (gStatePrev >= 0) h[gStatePrev + i] = zv * g;
    }
    // delta_r, delta_z, delta_q line up with the stacked W_r, W_z, W_n.
    if (gStatePrev >= 0) k.matTVec(gStatePrev, params + this.Wr.offset, delta, 3 * n, n, 1);
  }
}
