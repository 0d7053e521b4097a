import { LruCell } from '../cells/lru.js';
import type { BoundBlock } from '../parameters.js';
import { columnOf, type CreditContext, type CreditRule } from './credit-rule.js';
import { accumulateFactors, stepDenseGradient } from './dense-gradient.js';

/**
 * How the LRU's recurrent parameters (lambda through nu_log and theta_log, gamma, B) take credit; in the first
 * three modes every other parameter takes its same-tick gradient by spatial backpropagation. The paper's modes:
 *  - online:      exact in-layer gradients from traces (Zucchet et al. 2023): per layer
 *                 e_lambda = lambda e_lambda + h_{t-1},  e_gamma = lambda e_gamma + B u_t,
 *                 E_B = lambda E_B + gamma u_t^T  (complex, element-wise in the unit),
 *                 so dL_t/dtheta is exact within a layer: a one-layer network gets the full BPTT gradient for
 *                 its LRU and everything after it; what comes before a recurrence gets same-tick credit.
 *  - truncated-1: the one-step partials only (h_{t-1} held constant), no traces.
 *  - spatial:     as truncated-1, but lambda takes no gradient at all (the recurrence is a stopped gradient).
 *  - bptt:        the reference: backpropagation through time over the label window (every tick of the current
 *                 sequence still in the ring, at most maxLabelDelay), through every layer: the exact gradient of
 *                 L_t when the window holds the whole sequence. It costs O(window) per label and a dense
 *                 gradient buffer; it is how the copy task scores what the online modes give up.
 */
export type OnlineLruMode = 'online' | 'truncated-1' | 'spatial' | 'bptt';
export const onlineLruModes: readonly OnlineLruMode[] = ['online', 'truncated-1', 'spatial', 'bptt'];

/**
 * The online LRU's credit rule. With g = dL/dRe(h_t) + i dL/dIm(h_t) from spatial backpropagation, a real
 * parameter p of a unit takes Re(conj(g) dh_t/dp), so (per unit i, per input j):
 *   dL/dnu_log    = Re(conj(g) e_lambda lambda) (-exp(nu_log))
 *   dL/dtheta_log = Re(conj(g) e_lambda lambda i) exp(theta_log)
 *   dL/dgamma_log = gamma Re(conj(g) e_gamma)
 *   dL/dB_re,ij   = Re(conj(g_i) E_B,ij),   dL/dB_im,ij = -Im(conj(g_i) E_B,ij)
 * The traces cost 4N + 2NH floats per layer (N units, width H), whatever the sequence length.
 *
 * Credit frontier as for any traced rule: a label arriving in order sees the traces of its own tick; a stale
 * one is credited with the traces as they are.
 */
export class OnlineLruRule implements CreditRule {
  readonly name = 'online-lru' as const;
  readonly stateSize: number;
  readonly scratchSize: number;
  readonly tracksTicks: boolean;
  readonly windowed: boolean;
  private c!: CreditContext;
  private traces = 0;
  private gradB = 0;
  /** bptt: the dense gradient of every cell parameter, and the error carried to the previous tick's states. */
  private grad = 0;
  private carry = 0;
  /** The cell's unitConstants for the parameters of the current call (computed once per advance or update). */
  private readonly units: Float64Array;
  /** Per cell block: the offset of its dense gradient in scratch (B_re, B_im in online mode), else -1. */
  private readonly denseAt: Int32Array;
  private readonly perLayerTraces: number;

  constructor(readonly cell: LruCell, readonly mode: OnlineLruMode) {
    const N = cell.units;
    const H = cell.hiddenSize;
    const L = cell.layers.length;
    this.tracksTicks = mode === 'online';
    this.windowed = mode === 'bptt';
    this.perLayerTraces = 4 * N + 2 * N * H;
    this.stateSize = mode === 'online' ? L * this.perLayerTraces : 0;
    this.scratchSize = mode === 'online' ? L * 2 * N * H : mode === 'bptt' ? cell.paramCount + cell.stateSize : 0;
    this.units = cell.unitTable();
    this.denseAt = new Int32Array(cell.blocks.length).fill(-1);
    if (mode === 'online') {
      cell.layers.forEach((layer, l) => {
        this.denseAt[cell.blocks.indexOf(layer.Bre)] = l * 2 * N * H;
        this.denseAt[cell.blocks.indexOf(layer.Bim)] = l * 2 * N * H + N * H;
      });
    }
  }

  attach(context: CreditContext, state: number, scratch: number): void {
    this.c = context;
    this.traces = state;
    this.gradB = scratch;
    this.grad = scratch;
    this.carry = scratch + this.cell.paramCount;
  }

  advance(cache: number): void {
    const cell = this.cell;
    const N = cell.units;
    const H = cell.hiddenSize;
    const hp = this.c.k.heap;
    const units = this.units;
    cell.unitConstants(hp, this.c.cellParams, units);
    for (let l = 0; l < cell.layers.length; l++) {
      const L = cell.layers[l];
      const eLambda = this.traces + l * this.perLayerTraces;
      const eGamma = eLambda + 2 * N;
      const EBre = eGamma + 2 * N;
      const EBim = EBre + N * H;
      const prev = cache + L.prev;
      const bu = cache + L.bu;
      const u = cache + L.u;
      for (let i = 0; i < N; i++) {
        const at = (l * N + i) * LruCell.UNIT_FIELDS;
        const lr = units[at];
        const li = units[at + 1];
        const gamma = units[at + 2];
        let er = hp[eLambda + i];
        let ei = hp[eLambda + N + i];
        hp[eLambda + i] = lr * er - li * ei + hp[prev + i];
        hp[eLambda + N + i] = lr * ei + li * er + hp[prev + N + i];
        er = hp[eGamma + i];
        ei = hp[eGamma + N + i];
        hp[eGamma + i] = lr * er - li * ei + hp[bu + i];
        hp[eGamma + N + i] = lr * ei + li * er + hp[bu + N + i];
        const row = i * H;
        for (let j = 0; j < H; j++) {
          const br = hp[EBre + row + j];
          const bi = hp[EBim + row + j];
          hp[EBre + row + j] = lr * br - li * bi + gamma * hp[u + j];
          hp[EBim + row + j] = lr * bi + li * br;
        }
      }
    }
  }

  update(cache: number, fresh: boolean): boolean {
    if (this.mode === 'bptt') return this.updateThroughTime(cache);
    const c = this.c;
    const cell = this.cell;
    if (this.mode === 'online' && fresh) this.advance(cache);
    else cell.unitConstants(c.k.heap, c.cellParams, this.units);
    cell.spatialBackward(c.k, c.cellParams, this.units, cache, c.gOut, c.delta, c.gState);
    if (this.mode === 'online') this.traceGradients();
    else if (this.mode === 'spatial') {
      for (const L of cell.layers) {
        c.k.fill(c.delta + L.dNu, 0, cell.units);
        c.k.fill(c.delta + L.dTheta, 0, cell.units);
      }
    }
    if (!c.k.allFinite(c.delta, cell.deltaSize)) return false;
    if (this.scratchSize > 0 && !c.k.allFinite(this.gradB, this.scratchSize)) return false;
    return this.step(cache);
  }

  /** Steps every cell block: B from its dense trace gradient (online), the rest from their row factors. */
  private step(cache: number): boolean {
    const c = this.c;

    const p = c.params;
    for (let g = 0; g < 2; g++) {
      if (!p.groupClips(g)) continue;
      let normSq = 0;
      for (let bi = 0; bi < c.cellBlocks.length; bi++) {
        const b = c.cellBlocks[bi];
        if (b.group === g) normSq += this.blockNormSq(bi, b, cache);
      }
      p.clipGroup(g, normSq);
    }
    for (let bi = 0; bi < c.cellBlocks.length; bi++) {
      const b = c.cellBlocks[bi];
      const dense = this.denseAt[bi];
      if (dense >= 0) p.stepDense(b, this.gradB + dense);
      else p.stepFactored(b, c.delta + b.block.deltaOffset, columnOf(b, cache));
    }
    return true;
  }

  /**
   * Backpropagation through time from the labelled tick back over the window: at each tick, spatial backward with
   * the carried error (conj(lambda) g of the tick after), its factors summed into the dense gradient.
   */
  private updateThroughTime(cache: number): boolean {
    const c = this.c;
    const cell = this.cell;
    const { k } = c;
    const hp = k.heap;
    const N = cell.units;
    const params = c.cellParams;
    const units = this.units;
    cell.unitConstants(hp, params, units);
    k.fill(this.grad, 0, cell.paramCount);
    let at = cache;
    let tick = c.tickOfCache(cache);
    let gOut = c.gOut;
    let carry = -1;
    while (at >= 0) {
      cell.spatialBackward(k, params, units, at, gOut, c.delta, c.gState, carry);
      if (!k.allFinite(c.delta, cell.deltaSize)) return false;
      accumulateFactors(c, this.grad, at);
      // The error h_{t-1} takes from h_t = lambda h_{t-1} + ...: conj(lambda) g, per unit.
      for (let l = 0; l < cell.layers.length; l++) {
        const s = cell.layers[l].stateAt;
        for (let i = 0; i < N; i++) {
          const u = (l * N + i) * LruCell.UNIT_FIELDS;
          const lr = units[u];
          const li = units[u + 1];
          const gr = hp[c.gState + s + i];
          const gi = hp[c.gState + s + N + i];
          hp[this.carry + s + i] = lr * gr + li * gi;
          hp[this.carry + s + N + i] = lr * gi - li * gr;
        }
      }
      carry = this.carry;
      gOut = c.zeros;
      tick--;
      at = c.cacheOfTick(tick);
    }
    if (!k.allFinite(this.grad, cell.paramCount)) return false;
    stepDenseGradient(c, this.grad);
    return true;
  }

  private blockNormSq(index: number, b: BoundBlock, cache: number): number {
    const dense = this.denseAt[index];
    if (dense >= 0) return this.c.k.dot(this.gradB + dense, this.gradB + dense, b.size);
    return this.c.params.factoredNormSq(b, this.c.delta + b.block.deltaOffset, columnOf(b, cache));
  }

  /** Replaces the one-step partials of nu, theta and gamma with their trace gradients, and forms B's. */
  private traceGradients(): void {
    const c = this.c;
    const cell = this.cell;
    const N = cell.units;
    const H = cell.hiddenSize;
    const hp = c.k.heap;
    const units = this.units;
    for (let l = 0; l < cell.layers.length; l++) {
      const L = cell.layers[l];
      const eLambda = this.traces + l * this.perLayerTraces;
      const eGamma = eLambda + 2 * N;
      const EBre = eGamma + 2 * N;
      const EBim = EBre + N * H;
      const gBre = this.gradB + l * 2 * N * H;
      const gBim = gBre + N * H;
      const g = c.gState + L.stateAt;
      for (let i = 0; i < N; i++) {
        const at = (l * N + i) * LruCell.UNIT_FIELDS;
        const lr = units[at];
        const li = units[at + 1];
        const gamma = units[at + 2];
        const nuExp = units[at + 3];
        const thetaExp = units[at + 4];
        const gr = hp[g + i];
        const gi = hp[g + N + i];
        const er = hp[eLambda + i];
        const ei = hp[eLambda + N + i];
        const wr = lr * er - li * ei;
        const wi = lr * ei + li * er;
        hp[c.delta + L.dNu + i] = -(gr * wr + gi * wi) * nuExp;
        hp[c.delta + L.dTheta + i] = -(gr * wi - gi * wr) * thetaExp;
        hp[c.delta + L.dGamma + i] = gamma * (gr * hp[eGamma + i] + gi * hp[eGamma + N + i]);
        const row = i * H;
        for (let j = 0; j < H; j++) {
          const br = hp[EBre + row + j];
          const bim = hp[EBim + row + j];
          hp[gBre + row + j] = gr * br + gi * bim;
          hp[gBim + row + j] = gi * br - gr * bim;
        }
      }
    }
  }
}
