import type { Cell } from '../cells/cell.js';
import type { BoundBlock } from '../parameters.js';
import { columnOf, type CreditContext, type CreditRule } from './credit-rule.js';

/** The immediate rule's trace decay: lambda in [0, 1), or 'exact' (each unit decays with its own J_t,ii). */
export type TraceDecay = number | 'exact';

/**
 * Immediate derivatives with eligibility-trace decay lambda ("Temporal Credit Is Free").
 *
 * lambda = 0: the one-step gradient with s_{t-1} held constant (truncated BPTT of one step). No credit state;
 * each block's gradient is the outer product of its row factor and its cached input, fused into the optimizer
 * step, so a delayed label within the ring is credited exactly as if it had come on time.
 *
 * lambda > 0: a trace per cell parameter of the one-step partial of the unit the parameter feeds (what backward
 * gives for a gradient of ones, thanks to unit alignment), kept where the cell says (Cell.traceOn):
 *  - on the state: E_t = lambda E_{t-1} + d(s_t,i)/d(theta), gradient (dL/ds_t)_i E_t with dL/ds_t the
 *    outputBackward of dL/do_t. For a linear diagonal recurrence whose decays a_i all equal lambda this is the
 *    exact gradient; a trace on a nonlinear readout feature (diagonal-linear's tanh(h)) is not.
 *  - on the output: E_t = lambda E_{t-1} + d(o_t,i)/d(theta), gradient dL/do_t,i E_t; for states a row feeds
 *    more than once (the LSTM's [h | c]), where a per-unit state trace would need a float per state entry.
 * Where o_t = s_t the two are one trace. For the tanh RNN: E^W_t = lambda E^W_{t-1} + (1 - h_t^2) h_{t-1}^T and
 * dW = (V^T e_t)[:, None] * E^W_t, as in the paper.
 *
 * lambda = 'exact': a state trace whose unit i decays with its own recurrent Jacobian entry at that tick,
 * E_t = diag(J_t) E_{t-1} + ds_t/dtheta, J_t,ii = ds_t,i/ds_{t-1,i}. On a cell whose ds_t/ds_{t-1} is diagonal
 * (Cell.diagonalJacobian; the registry refuses it elsewhere) that is RTRL, with one float per parameter instead
 * of stateSize. diag(J_t) comes from the same backward as the partials: with dL/ds_t = ones, dL/ds_{t-1} =
 * J_t^T ones, which is diag(J_t) when J_t is diagonal.
 *
 * Traces cost one float per cell parameter.
 */
export class ImmediateRule implements CreditRule {
  readonly name = 'immediate' as const;
  readonly stateSize: number;
  readonly scratchSize = 0;
  readonly tracksTicks: boolean;
  private c!: CreditContext;
  private traces = 0;
  private readonly exact: boolean;
  private readonly onState: boolean;
  /** What the trace kernels multiply E by: lambda, or 1 once the exact decay has scaled each row itself. */
  private readonly kernelDecay: number;

  constructor(decay: TraceDecay, cell: Cell) {
    this.exact = decay === 'exact';
    this.kernelDecay = decay === 'exact' ? 1 : decay;
    this.onState = this.exact || cell.traceOn === 'state';
    this.tracksTicks = this.kernelDecay > 0;
    this.stateSize = this.tracksTicks ? cell.paramCount : 0;
    // A cell that declares these without meeting them is a bug in the cell, not a bad spec (the registry refuses
    // 'exact' on cells without a diagonal Jacobian).
    if (this.onState && cell.stateSize !== cell.hiddenSize) {
      throw new Error(`${cell.kind}: a trace on the state needs stateSize = hiddenSize (${cell.stateSize} != ${cell.hiddenSize})`);
    }
    if (this.exact && cell.blocks.some((b) => b.rows !== cell.hiddenSize)) {
      throw new Error(`${cell.kind}: the exact trace decays block rows by unit, so every block needs hiddenSize rows`);
    }
  }

  attach(context: CreditContext, state: number): void {
    this.c = context;
    this.traces = state;
  }

  advance(cache: number): void {
    const c = this.c;
    this.unitPartials(cache);
    if (!this.partialsFinite()) return;
    if (this.exact) this.decayByUnit();
    for (let bi = 0; bi < c.cellBlocks.length; bi++) {
      const b = c.cellBlocks[bi];
      c.k.trace(this.traces + b.block.offset, this.kernelDecay, c.delta + b.block.deltaOffset, columnOf(b, cache),
        b.block.rows, b.block.cols, b.block.diag ? 1 : 0);
    }
  }

  update(cache: number, fresh: boolean): boolean {
    return this.tracksTicks ? this.updateTraced(cache, fresh) : this.updateImmediate(cache);
  }

  private updateImmediate(cache: number): boolean {
    const c = this.c;
    c.cell.outputBackward(c.k, cache, c.gOut, c.gState);
    c.cell.backward(c.k, c.cellParams, cache, c.gState, c.delta, -1);
    if (!c.k.allFinite(c.delta, c.cell.deltaSize)) return false;
    const p = c.params;
    for (let g = 0; g < 2; g++) {
      if (!p.groupClips(g)) continue;
      let normSq = 0;
      for (let bi = 0; bi < c.cellBlocks.length; bi++) {
        const b = c.cellBlocks[bi];
        if (b.group === g) normSq += p.factoredNormSq(b, c.delta + b.block.deltaOffset, columnOf(b, cache));
      }
      p.clipGroup(g, normSq);
    }
    for (let bi = 0; bi < c.cellBlocks.length; bi++) {
      const b = c.cellBlocks[bi];
      p.stepFactored(b, c.delta + b.block.deltaOffset, columnOf(b, cache));
    }
    return true;
  }

  private updateTraced(cache: number, fresh: boolean): boolean {
    const c = this.c;
    // A stale label: keep the traces as they are (decay 1, no new partial) and credit them.
    const decay = fresh ? this.kernelDecay : 1;
    if (fresh) {
      this.unitPartials(cache);
      if (!this.partialsFinite()) return false;
    }
    let rowScale = c.gOut;
    if (this.onState) {
      c.cell.outputBackward(c.k, cache, c.gOut, c.gState);
      rowScale = c.gState;
    }
    // Past every check that can refuse the update: the traces may now change.
    if (fresh && this.exact) this.decayByUnit();
    const p = c.params;
    for (let g = 0; g < 2; g++) {
      if (!p.groupClips(g)) continue;
      let normSq = 0;
      for (let bi = 0; bi < c.cellBlocks.length; bi++) {
        const b = c.cellBlocks[bi];
        if (b.group === g) {
          normSq += c.k.traceNormSq(this.traces + b.block.offset, decay, this.rowFactor(b, fresh), columnOf(b, cache),
            rowScale, b.block.rows, b.block.cols, b.block.diag ? 1 : 0);
        }
      }
      p.clipGroup(g, normSq);
    }
    for (let bi = 0; bi < c.cellBlocks.length; bi++) {
      const b = c.cellBlocks[bi];
      p.stepTrace(b, this.traces + b.block.offset, decay, this.rowFactor(b, fresh), columnOf(b, cache), rowScale);
    }
    return true;
  }

  private rowFactor(b: BoundBlock, fresh: boolean): number {
    return fresh ? this.c.delta + b.block.deltaOffset : this.c.zeros;
  }

  /**
   * Row factors of the one-step partials of every block: d(s_i)/d(theta) (backward with dL/ds = ones) for a state
   * trace, d(o_i)/d(theta) (dL/do = ones through outputBackward) for an output trace. The exact trace also takes
   * diag(J_t) into gStatePrev.
   */
  private unitPartials(cache: number): void {
    const c = this.c;
    if (this.onState) {
      c.cell.backward(c.k, c.cellParams, cache, c.ones, c.delta, this.exact ? c.gStatePrev : -1);
    } else {
      c.cell.outputBackward(c.k, cache, c.ones, c.gState);
      c.cell.backward(c.k, c.cellParams, cache, c.gState, c.delta, -1);
    }
  }

  private partialsFinite(): boolean {
    const c = this.c;
    return c.k.allFinite(c.delta, c.cell.deltaSize) === 1 && (!this.exact || c.k.allFinite(c.gStatePrev, c.cell.hiddenSize) === 1);
  }

  /** E_ij = J_t,ii E_ij: row i of every block belongs to unit i. */
  private decayByUnit(): void {
    const c = this.c;
    for (let bi = 0; bi < c.cellBlocks.length; bi++) {
      const b = c.cellBlocks[bi];
      c.k.scaleRows(this.traces + b.block.offset, c.gStatePrev, b.block.rows, b.block.cols);
    }
  }
}
