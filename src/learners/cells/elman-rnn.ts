import type { Kernels } from '../kernels/kernels.js';
import { BlockTable, fanInUniform, zeros, type Cell, type CellKind, type CellOptions, type ParamBlock } from './cell.js';

export type ElmanActivation = 'tanh' | 'relu';

/**
 * Elman RNN: h_t = f(W h_{t-1} + U x_t + b), o_t = h_t, with f = tanh or relu (relu'(0) = 0).
 * Serves `tanh-rnn`, `tanh-rnn-bypass` and `relu-rnn`; the bypass (yhat = V h + D x + c) belongs to the readout,
 * which the learner adds for the bypass kind.
 *
 * Init: W, U, b as PyTorch for tanh. For relu, W ~ U(-1/(2 sqrt(n)), 1/(2 sqrt(n))), half PyTorch's bound: relu
 * is unbounded and |relu(v)| <= |v|, so the state stays bounded when ||W||_2 < 1; for large n a random matrix
 * with these entries has ||W||_2 ~ 1/sqrt(3) ~ 0.58, where PyTorch's bound gives ~1.15 and lets the state grow.
 * IRNN's identity (Le et al. 2015) is marginal: with a positive-mean input it integrates forever, and a stream
 * never resets its state.
 *
 * Cache: [x | h_{t-1} | h_t]. One row factor for all blocks: delta = dL/dh_t * f'(h_t), with
 * tanh' = 1 - h_t^2 and relu' = [h_t > 0].
 */
export class ElmanRnnCell implements Cell {
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly stateSize: number;
  readonly cacheSize: number;
  readonly outputOffset: number;
  readonly deltaSize: number;
  readonly paramCount: number;
  readonly blocks: readonly ParamBlock[];
  private readonly relu: boolean;
  private readonly W: ParamBlock;
  private readonly U: ParamBlock;
  private readonly b: ParamBlock;

  constructor(readonly kind: CellKind, options: CellOptions, activation: ElmanActivation) {
    const m = options.inputSize;
    const n = options.hiddenSize;
    this.relu = activation === 'relu';
    this.inputSize = m;
    this.hiddenSize = n;
    this.stateSize = n;
    this.outputOffset = m + n;
    this.cacheSize = m + 2 * n;
    this.deltaSize = n;
    const bound = (this.relu ? 0.5 : 1) / Math.sqrt(n);
    const table = new BlockTable();
    this.W = table.add('W', 'recurrent', { rows: n, cols: n }, { kind: 'uniform', low: -bound, high: bound }, 0, m);
    this.U = table.add('U', 'input', { rows: n, cols: m }, fanInUniform(n), 0, 0);
    this.b = table.add('b', 'input', { rows: n, cols: 1, diag: true }, zeros, 0, -1);
    this.blocks = table.blocks;
    this.paramCount = table.paramCount;
  }

  forward(k: Kernels, params: number, cache: number, state: number): void {
    const m = this.inputSize;
    const n = this.hiddenSize;
    k.matVec(state, params + this.W.offset, cache + m, n, n, 0);
    k.matVec(state, params + this.U.offset, cache, n, m, 1);
    const h = k.heap;
    const b = params + this.b.offset;
    const out = cache + this.outputOffset;
    if (this.relu) {
      for (let i = 0; i < n; i++) {
        // Math.max rather than a comparison, so a NaN pre-activation propagates and allFinite sees it.
        const v = Math.max(h[state + i] + h[b + i], 0);
        h[state + i] = v;
        h[out + i] = v;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const v = Math.tanh(h[state + i] + h[b + i]);
        h[state + i] = v;
        h[out + i] = v;
      }
    }
  }

  outputBackward(k: Kernels, _cache: number, gOut: number, gState: number): void {
    k.copy(gState, gOut, this.hiddenSize);
  }

  backward(k: Kernels, params: number, cache: number, gState: number, delta: number, gStatePrev: number): void {
    const n = this.hiddenSize;
    const h = k.heap;
    const ht = cache + this.outputOffset;
    if (this.relu) {
      for (let i = 0; i < n; i++) h[delta + i] = h[ht + i] > 0 ? h[gState + i] : 0;
    } else {
      for (let i = 0; i < n; i++) h[delta + i] = h[gState + i] * (1 - h[ht + i] * h[ht + i]);
    }
    if (gStatePrev >= 0) k.matTVec(gStatePrev, params + this.W.offset, delta, n, n, 0);
  }
}
