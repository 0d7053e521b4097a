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
   * Looks back over past ticks (through context.cacheOfTick, or its own buffer). The learner then also keeps where
   * the current sequence began (resetSequence, context.sequenceStart), so no window reaches into the one before.
   */
  readonly windowed?: boolean;
  /**
   * Ticks the rule reads behind a label (truncated BPTT's window less one): the learner's ring then holds
   * maxLabelDelay + history tick caches, so a label as late as allowed still finds its whole window.
   */
  readonly history?: number;
  /**
   * The rule steps the readout itself (fixed-point propagation, on the transitions it samples); the learner then
   * leaves the readout alone at a label.
   */
  readonly stepsReadout?: boolean;
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
  /** Sees every predicted tick once, after its forward step (a rule that keeps its own buffer of ticks). */
  observe?(cache: number, tick: number): void;
  /** An independent sequence begins (Learner.resetSequence); without it the learner zeroes the credit state. */
  resetSequence?(): void;
}

export type CreditRuleName = 'immediate' | 'rtrl' | 'online-lru' | 'tbptt' | 'fpp';

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
  /** The live recurrent state s_t (what the next predict starts from). */
  readonly state: number;
  /** The label of the tick being learned (outputSize floats), written before update. */
  readonly label: number;
  /** The learner's seed: rules that sample draw from it, so the same seed gives the same bytes. */
  readonly seed: number;
  /** The last predicted tick. */
  lastTick(): number;
  /** The first tick of the current sequence (0 until resetSequence; kept for windowed rules only). */
  sequenceStart(): number;
  readonly readout: ReadoutAccess;
}

/** The learner's readout, for rules that predict from states they recompute (fixed-point propagation). */
export interface ReadoutAccess {
  /** yhat (outputSize floats) from the features o and inputs x of a cache laid out as the ring's. */
  predict(cache: number, yhat: number): void;
  /** gOut = V^T err: dL/do from dL/dz = err. */
  backward(err: number, gOut: number): void;
  /** One optimizer step of the readout with dL/dz = err at that cache's features and inputs. */
  step(err: number, cache: number): void;
}

/** The absolute offset of a block's column factor for the tick cached at `cache` (-1: ones). */
export function columnOf(b: BoundBlock, cache: number): number {
  return b.block.columnOffset < 0 ? -1 : cache + b.block.columnOffset;
}
