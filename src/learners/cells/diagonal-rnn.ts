import type { Kernels } from '../kernels/kernels.js';
import { BlockTable, fanInUniform, zeros, type Cell, type CellKind, type CellOptions, type ParamBlock } from './cell.js';

/**
 * Diagonal nonlinear RNN (IndRNN-like, with tanh): each unit sees only its own past,
 *   h_t = tanh(w * h_{t-1} + U x_t + b),  o_t = h_t,
 * with w a per-unit recurrent weight, initialised U(0, 1) so that units start with positive, decaying memory.
 *
 * Cache: [x | h_{t-1} | h_t]. One row factor for all blocks: delta = dL/dh_t * (1 - h_t^2), read against h_{t-1}
 * element-wise for w; dL/dh_{t-1} = w * delta.
 *
 * ds_t/ds_{t-1} = diag(w (1 - h_t^2)): a state trace decayed unit by unit with it is RTRL (`lambda: 'exact'`).
 */
export class DiagonalRnnCell implements Cell {
  readonly kind: CellKind = 'diagonal-rnn';
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
  private readonly w: ParamBlock;
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
    this.deltaSize = n;
    const table = new BlockTable();
    this.w = table.add('w', 'recurrent', { rows: n, cols: 1, diag: true }, { kind: 'uniform', low: 0, high: 1 }, 0, m);
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
    const w = params + this.w.offset;
    const b = params + this.b.offset;
    const prev = cache + m;
    const out = cache + this.outputOffset;
    for (let i = 0; i < n; i++) {
      const v = Math.tanh(h[w + i] * h[prev + i] + h[state + i] + h[b + i]);
      h[state + i] = v;
      h[out + i] = v;
    }
  }

  outputBackward(k: Kernels, _cache: number, gOut: number, gState: number): void {
    k.copy(gState, gOut, this.hiddenSize);
  }

  backward(k: Kernels, params: number, cache: number, gState: number, delta: number, gStatePrev: number): void {
    const n = this.hiddenSize;
    const h = k.heap;
    const w = params + this.w.offset;
    const ht = cache + this.outputOffset;
    for (let i = 0; i < n; i++) {
      const d = h[gState + i] * (1 - h[ht + i] * h[ht + i]);
      h[delta + i] = d;
      if (gStatePrev >= 0) h[gStatePrev + i] = h[w + i] * d;
    }
  }
}
