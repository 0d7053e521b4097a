import type { Cell } from '../cells/cell.js';
import type { Kernels } from '../kernels/kernels.js';
import type { BoundBlock, ParameterSet } from '../parameters.js';

/**
 * The credit-assignment protocol: how the gradient of the loss at a labelled tick reaches the cell's parameters.
 * Readout parameters always take their exact same-tick gradient in the learner; a rule only owns the cell blocks.
 *
 * A rule works from the learner's ring of tick caches (src/learners/cells/cell.ts), so rules that need a window
 * of past ticks (truncated BPTT, fixed-point propagation) read the same ring, and rules with running credit state
 * (eligibility traces, RTRL sensitivities, the online LRU's traces) advance it tick by tick through `advance`.
 *
 * Credit frontier. For rules with `tracksTicks`, the learner keeps the credit state at the last tick it has been
 * advanced over and advances it lazily, in tick order, when a label arrives or when a ring slot is about to be
 * reused. A label for tick t that arrives in order thus sees exactly the state of tick t, however late it is
 * (within the ring). A label older than the frontier (out of order) is credited with the current state; the
 * learner counts those as `staleCredit`.
 */
export interface CreditRule {
  readonly name: CreditRuleName;
  /** Persistent floats (traces, sensitivities): part of the snapshot. */
  readonly stateSize: number;
  /** Scratch floats, rewritten every call. */
  readonly scratchSize: number;
  readonly tracksTicks: boolean;
  /**
   * Reads past ticks' caches through context.cacheOfTick (backpropagation through time). The learner then also
   * keeps where the current sequence began (resetSequence), so the window never reaches into the one before.
   */
  readonly windowed?: boolean;
  /** Gives the rule its arena regions; called once before any other call. */
  attach(context: CreditContext, state: number, scratch: number): void;
  /** Advances the credit state over the tick cached at `cache`. */
  advance(cache: number): void;
  /**
   * Steps the cell parameters for the labelled tick at `cache`, with dL/do_t in context.gOut. `fresh` says the
   * frontier stands just before this tick (advance it over this tick as part of the update); otherwise the
   * state is already past it. Returns false, having stepped nothing, when the gradient is not finite.
   */
  update(cache: number, fresh: boolean): boolean;
}

export type CreditRuleName = 'immediate' | 'rtrl' | 'online-lru';

export interface CreditContext {
  readonly k: Kernels;
  readonly cell: Cell;
  readonly params: ParameterSet;
  /** The cell's blocks, bound (recurrent and input groups). */
  readonly cellBlocks: readonly BoundBlock[];
  /** Absolute offsets: the cell's parameters, and scratch vectors the learner provides. */
  readonly cellParams: number;
  readonly delta: number;
  readonly gOut: number;
  readonly gState: number;
  readonly gStatePrev: number;
  /**
   * The cache of a past tick while it is in the ring and in the current sequence, else -1 (a windowed rule's
   * way back in time).
   */
  cacheOfTick(tick: number): number;
  /** The tick a ring cache holds. */
  tickOfCache(cache: number): number;
  /** hiddenSize ones and hiddenSize zeros. */
  readonly ones: number;
  readonly zeros: number;
}

/** The absolute offset of a block's column factor for the tick cached at `cache` (-1: ones). */
export function columnOf(b: BoundBlock, cache: number): number {
  return b.block.columnOffset < 0 ? -1 : cache + b.block.columnOffset;
}
