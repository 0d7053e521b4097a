import type { BoundBlock } from '../parameters.js';
import { columnOf, type CreditContext, type CreditRule } from './credit-rule.js';

/**
 * Immediate derivatives with eligibility-trace decay lambda ("Temporal Credit Is Free").
 *
 * lambda = 0: the one-step gradient with s_{t-1} held constant (truncated BPTT of one step). No credit state;
 * each block's gradient is the outer product of its row factor and its cached input, fused into the optimizer
 * step, so a delayed label within the ring is credited exactly as if it had come on time.
 *
 * lambda > 0: a trace per cell parameter, E_t = lambda E_{t-1} + d(o_i)/d(theta) (the one-step partial of the
 * unit the parameter feeds, which is what backward gives for dL/do = ones, thanks to unit alignment), and the
 * gradient dL/do_t,i * E_t. For the tanh RNN this is E^W_t = lambda E^W_{t-1} + (1 - h_t^2) h_{t-1}^T and
 * dW = (V^T e_t)[:, None] * E^W_t, as in the paper. Traces cost one float per cell parameter.
 */
export class ImmediateRule implements CreditRule {
  readonly name = 'immediate' as const;
  readonly stateSize: number;
  readonly scratchSize = 0;
  readonly tracksTicks: boolean;
  private c!: CreditContext;
  private traces = 0;

  constructor(readonly lambda: number, cellParamCount: number) {
    this.tracksTicks = lambda > 0;
    this.stateSize = lambda > 0 ? cellParamCount : 0;
  }

  attach(context: CreditContext, state: number): void {
    this.c = context;
    this.traces = state;
  }

  advance(cache: number): void {
    const c = this.c;
    this.unitPartials(cache);
    if (!c.k.allFinite(c.delta, c.cell.deltaSize)) return;
    for (let bi = 0; bi < c.cellBlocks.length; bi++) {
      const b = c.cellBlocks[bi];
      c.k.trace(this.traces + b.block.offset, this.lambda, c.delta + b.block.deltaOffset, columnOf(b, cache),
        b.block.rows, b.block.cols, b.block.diag ? 1 : 0);
    }
  }

  update(cache: number, fresh: boolean): boolean {
    return this.lambda > 0 ? this.updateTraced(cache, fresh) : this.updateImmediate(cache);
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
    // A stale label: keep the traces as they are (lambda 1, no new partial) and credit them.
    const lambda = fresh ? this.lambda : 1;
    if (fresh) {
      this.unitPartials(cache);
      if (!c.k.allFinite(c.delta, c.cell.deltaSize)) return false;
    }
    const p = c.params;
    for (let g = 0; g < 2; g++) {
      if (!p.groupClips(g)) continue;
      let normSq = 0;
      for (let bi = 0; bi < c.cellBlocks.length; bi++) {
        const b = c.cellBlocks[bi];
        if (b.group === g) {
          normSq += c.k.traceNormSq(this.traces + b.block.offset, lambda, this.rowFactor(b, fresh), columnOf(b, cache),
            c.gOut, b.block.rows, b.block.cols, b.block.diag ? 1 : 0);
        }
      }
      p.clipGroup(g, normSq);
    }
    for (let bi = 0; bi < c.cellBlocks.length; bi++) {
      const b = c.cellBlocks[bi];
      p.stepTrace(b, this.traces + b.block.offset, lambda, this.rowFactor(b, fresh), columnOf(b, cache), c.gOut);
    }
    return true;
  }

  private rowFactor(b: BoundBlock, fresh: boolean): number {
    return fresh ? this.c.delta + b.block.deltaOffset : this.c.zeros;
  }

  /** Row factors of d(o_i)/d(theta) for every block: backward with dL/do = ones. */
  private unitPartials(cache: number): void {
    const c = this.c;
    c.cell.outputBackward(c.k, cache, c.ones, c.gState);
    c.cell.backward(c.k, c.cellParams, cache, c.gState, c.delta, -1);
  }
}
