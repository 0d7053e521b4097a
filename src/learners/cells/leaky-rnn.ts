import type { Kernels } from '../kernels/kernels.js';
import { BlockTable, fanInUniform, zeros, type Cell, type CellKind, type CellOptions, type ParamBlock } from './cell.js';

/**
 * Leaky (continuous-time) RNN: u_t = tanh(W h_{t-1} + U x_t + b), h_t = (1 - a) h_{t-1} + a u_t, o_t = h_t,
 * with leak a = dt / tau in (0, 1] (options.leak, default 0.1); a = 1 is the Elman tanh RNN.
 *
 * Cache: [x | h_{t-1} | h_t | u_t]. u_t is kept rather than recovered as (h_t - (1 - a) h_{t-1}) / a, which
 * cancels away about log10(1/a) digits of a float32. One row factor for all blocks: delta = dL/dh_t * a (1 - u_t^2);
 * dL/dh_{t-1} = (1 - a) dL/dh_t + W^T delta.
 */
export class LeakyRnnCell implements Cell {
  readonly kind: CellKind = 'leaky-rnn';
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly stateSize: number;
  readonly cacheSize: number;
  readonly outputOffset: number;
  readonly deltaSize: number;
  readonly paramCount: number;
  readonly blocks: readonly ParamBlock[];
  readonly leak: number;
  private readonly uOffset: number;
  private readonly W: ParamBlock;
  private readonly U: ParamBlock;
  private readonly b: ParamBlock;

  constructor(options: CellOptions) {
    const a = options.leak ?? 0.1;
    if (!(a > 0 && a <= 1)) throw new Error(`leak must be in (0, 1], got ${a}`);
    const m = options.inputSize;
    const n = options.hiddenSize;
    this.leak = a;
    this.inputSize = m;
    this.hiddenSize = n;
    this.stateSize = n;
    this.outputOffset = m + n;
    this.uOffset = m + 2 * n;
    this.cacheSize = m + 3 * n;
    this.deltaSize = n;
    const table = new BlockTable();
    this.W = table.add('W', 'recurrent', { rows: n, cols: n }, fanInUniform(n), 0, m);
    this.U = table.add('U', 'input', { rows: n, cols: m }, fanInUniform(n), 0, 0);
    this.b = table.add('b', 'input', { rows: n, cols: 1, diag: true }, zeros, 0, -1);
    this.blocks = table.blocks;
    this.paramCount = table.paramCount;
  }

  forward(k: Kernels, params: number, cache: number, state: number): void {
    const m = this.inputSize;
    const n = this.hiddenSize;
    const u = cache + this.uOffset;
    k.matVec(u, params + this.W.offset, cache + m, n, n, 0);
    k.matVec(u, params + this.U.offset, cache, n, m, 1);
    const h = k.heap;
    const a = this.leak;
    const b = params + this.b.offset;
    const prev = cache + m;
    const out = cache + this.outputOffset;
    for (let i = 0; i < n; i++) {
      const v = Math.tanh(h[u + i] + h[b + i]);
      h[u + i] = v;
      const s = (1 - a) * h[prev + i] + a * v;
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
    const a = this.leak;
    const u = cache + this.uOffset;
    for (let i = 0; i < n; i++) {
      const g = h[gState + i];
      h[delta + i] = g * a * (1 - h[u + i] * h[u + i]);
      // Element by element after reading g, so gStatePrev may alias gState.
      if (gStatePrev >= 0) h[gStatePrev + i] = (1 - a) * g;
    }
    if (gStatePrev >= 0) k.matTVec(gStatePrev, params + this.W.offset, delta, n, n, 1);
  }
}
