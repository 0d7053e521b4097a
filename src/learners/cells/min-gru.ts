import type { Kernels } from '../kernels/kernels.js';
import {
  BlockTable, fanInUniform, sigmoid, zeros, type Cell, type CellKind, type CellOptions, type ParamBlock,
} from './cell.js';

/**
 * minGRU (Feng et al. 2024, "Were RNNs all we needed?"): gates and candidate see only the input, so the
 * recurrence is linear in h with a data-dependent decay:
 *   z = sig(U_z x_t + b_z),  htilde = U_h x_t + b_h,  h_t = (1 - z) * h_{t-1} + z * htilde,  o_t = h_t.
 * No block reads h_{t-1}, so every block is in the 'input' group.
 *
 * Cache: [x | h_{t-1} | h_t | z | htilde]. Delta: [delta_z | delta_h] with
 * delta_z = dL/dh_t (htilde - h_{t-1}) z(1 - z) (U_z, b_z) and delta_h = dL/dh_t z (U_h, b_h);
 * dL/dh_{t-1} = (1 - z) dL/dh_t.
 *
 * ds_t/ds_{t-1} = diag(1 - z_t): a state trace decayed unit by unit with it is RTRL (`lambda: 'exact'`).
 */
export class MinGruCell implements Cell {
  readonly kind: CellKind = 'min-gru';
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
  private readonly zOffset: number;
  private readonly Uz: ParamBlock;
  private readonly bz: ParamBlock;

  constructor(options: CellOptions) {
    const m = options.inputSize;
    const n = options.hiddenSize;
    this.inputSize = m;
    this.hiddenSize = n;
    this.stateSize = n;
    this.outputOffset = m + n;
    this.zOffset = m + 2 * n;
    this.cacheSize = m + 4 * n;
    this.deltaSize = 2 * n;
    const table = new BlockTable();
    this.Uz = table.add('U_z', 'input', { rows: n, cols: m }, fanInUniform(n), 0, 0);
    table.add('U_h', 'input', { rows: n, cols: m }, fanInUniform(n), n, 0);
    this.bz = table.add('b_z', 'input', { rows: n, cols: 1, diag: true }, zeros, 0, -1);
    table.add('b_h', 'input', { rows: n, cols: 1, diag: true }, zeros, n, -1);
    this.blocks = table.blocks;
    this.paramCount = table.paramCount;
  }

  forward(k: Kernels, params: number, cache: number, state: number): void {
    const m = this.inputSize;
    const n = this.hiddenSize;
    const z = cache + this.zOffset;
    const ht = z + n;
    // U_z, U_h are consecutive in the table as z, htilde are in the cache: one stacked call.
    k.matVec(z, params + this.Uz.offset, cache, 2 * n, m, 0);
    const h = k.heap;
    const b = params + this.bz.offset;
    const prev = cache + m;
    const out = cache + this.outputOffset;
    for (let i = 0; i < n; i++) {
      const zv = sigmoid(h[z + i] + h[b + i]);
      const hv = h[ht + i] + h[b + n + i];
      h[z + i] = zv;
      h[ht + i] = hv;
      const s = (1 - zv) * h[prev + i] + zv * hv;
      h[state + i] = s;
      h[out + i] = s;
    }
  }

  outputBackward(k: Kernels, _cache: number, gOut: number, gState: number): void {
    k.copy(gState, gOut, this.hiddenSize);
  }

  backward(k: Kernels, _params: number, cache: number, gState: number, delta: number, gStatePrev: number): void {
    const n = this.hiddenSize;
    const h = k.heap;
    const z = cache + this.zOffset;
    const ht = z + n;
    const prev = cache + this.inputSize;
    for (let i = 0; i < n; i++) {
      const g = h[gState + i];
      const zv = h[z + i];
      h[delta + i] = g * (h[ht + i] - h[prev + i]) * zv * (1 - zv);
      h[delta + n + i] = g * zv;
      if (gStatePrev >= 0) h[gStatePrev + i] = (1 - zv) * g;
    }
  }
}
