import type { Cell } from '../cells/cell.js';
import type { CreditContext, CreditRule } from './credit-rule.js';
import { accumulateFactors, stepDenseGradient } from './dense-gradient.js';

/** Ticks are counted in doubles; pending ones are kept in the float arena as two parts each exact in float32. */
const TICK_SPLIT = 1 << 20;

/**
 * Truncated backpropagation through time, BPTT(T, k) in Williams & Peng's sense: every k labels, one sweep back
 * over the last T ticks from the newest pending label, each pending label's dL/do entering as the sweep passes
 * its tick. With k = 1 every label takes exactly its T-step truncated gradient; with k = T the windows tile the
 * stream, the practice of "detach every T steps" (the newest label of a sweep then sees one tick, the oldest T).
 *
 * The window is read from the learner's ring of tick caches (the rule asks for T - 1 ticks of history behind the
 * label window), so memory is constant: T caches, plus k pending labels' dL/do when k > 1. The Jacobians are
 * those the caches hold, at the parameters of their own tick, as in any online truncation. A sweep stops at the
 * start of the current sequence (Learner.resetSequence), which first flushes what is pending.
 *
 * The readout takes its exact gradient at every label, in the learner; only the cell waits for the sweep. A
 * pending label more than T - 1 ticks older than the newest one (labels sparser than the window, or far out of
 * order) is outside its sweep: it teaches the readout only.
 */
export class TruncatedBpttRule implements CreditRule {
  readonly name = 'tbptt' as const;
  readonly stateSize: number;
  readonly scratchSize: number;
  readonly tracksTicks = false;
  readonly windowed = true;
  readonly history: number;
  private c!: CreditContext;
  private pending = 0;
  private grad = 0;
  private carry = 0;
  private gSum = 0;
  private readonly entrySize: number;

  constructor(private readonly cell: Cell, readonly window: number, readonly every: number) {
    this.history = window - 1;
    this.entrySize = 2 + cell.hiddenSize;
    // [count, then per pending label: tick (two parts), dL/do]; nothing when every label sweeps at once.
    this.stateSize = every > 1 ? 1 + every * this.entrySize : 0;
    this.scratchSize = cell.paramCount + 2 * cell.stateSize;
  }

  attach(context: CreditContext, state: number, scratch: number): void {
    this.c = context;
    this.pending = state;
    this.grad = scratch;
    this.carry = scratch + this.cell.paramCount;
    this.gSum = this.carry + this.cell.stateSize;
  }

  advance(): void {
    // No running credit state: the window is reread at each sweep.
  }

  update(cache: number): boolean {
    const c = this.c;
    const tick = c.tickOfCache(cache);
    if (this.every === 1) return this.sweep(tick, cache);
    const h = c.k.heap;
    const count = h[this.pending];
    const entry = this.pending + 1 + count * this.entrySize;
    h[entry] = Math.floor(tick / TICK_SPLIT);
    h[entry + 1] = tick % TICK_SPLIT;
    c.k.copy(entry + 2, c.gOut, this.cell.hiddenSize);
    h[this.pending] = count + 1;
    if (count + 1 < this.every) return true;
    const stepped = this.sweep(this.newestPending(), -1);
    h[this.pending] = 0;
    return stepped;
  }

  resetSequence(): void {
    if (this.every > 1 && this.c.k.heap[this.pending] > 0) {
      this.c.params.beginUpdate();
      this.sweep(this.newestPending(), -1);
    }
    if (this.stateSize > 0) this.c.k.fill(this.pending, 0, this.stateSize);
  }

  /** The newest tick among the pending labels (labels may come out of order). */
  private newestPending(): number {
    let newest = -1;
    for (let e = 0; e < this.c.k.heap[this.pending]; e++) newest = Math.max(newest, this.pendingTick(e));
    return newest;
  }

  private pendingTick(e: number): number {
    const h = this.c.k.heap;
    const entry = this.pending + 1 + e * this.entrySize;
    return h[entry] * TICK_SPLIT + h[entry + 1];
  }

  /**
   * Backpropagates from `newest` over the window, summing every block's factors into the dense gradient, then
   * steps the cell. `labelled` >= 0: the single label's cache (k = 1, its dL/do in context.gOut); -1: the pending
   * labels enter at their ticks.
   */
  private sweep(newest: number, labelled: number): boolean {
    const c = this.c;
    const { k, cell } = c;
    const h = k.heap;
    const S = cell.stateSize;
    const P = cell.paramCount;
    k.fill(this.grad, 0, P);
    k.fill(this.carry, 0, S);
    const oldest = newest - this.window + 1;
    for (let tick = newest; tick >= oldest; tick--) {
      const at = labelled >= 0 && tick === newest ? labelled : c.cacheOfTick(tick);
      if (at < 0) break;
      // dL/ds_t: what the later ticks send back, plus this tick's own label if it has one.
      k.copy(this.gSum, this.carry, S);
      if (labelled >= 0) {
        if (tick === newest) this.addOutputError(at, c.gOut);
      } else {
        const count = h[this.pending];
        for (let e = 0; e < count; e++) {
          if (this.pendingTick(e) === tick) this.addOutputError(at, this.pending + 1 + e * this.entrySize + 2);
        }
      }
      cell.backward(k, c.cellParams, at, this.gSum, c.delta, this.carry);
      if (!k.allFinite(c.delta, cell.deltaSize)) return false;
      accumulateFactors(c, this.grad, at);
    }
    if (!k.allFinite(this.grad, P)) return false;
    stepDenseGradient(c, this.grad);
    return true;
  }

  /** gSum += (do/ds)^T gOut at the cache `at`. */
  private addOutputError(at: number, gOut: number): void {
    const c = this.c;
    c.cell.outputBackward(c.k, at, gOut, c.gState);
    const h = c.k.heap;
    for (let i = 0; i < this.cell.stateSize; i++) h[this.gSum + i] += h[c.gState + i];
  }
}
