import type { Kernels } from '../kernels/kernels.js';
import type { Random } from '../random.js';

/**
 * The cell protocol. A cell is one step of a recurrent architecture, s_t = F(s_{t-1}, x_t; theta), with output
 * features o_t = G(s_t) that a linear readout turns into predictions. It exposes exactly the local derivatives
 * the credit rules need, as vector-Jacobian products of ONE step with s_{t-1} held constant:
 *
 *   outputBackward: dL/do_t -> dL/ds_t
 *   backward:       dL/ds_t -> the gradient of every parameter block, as factors, and optionally dL/ds_{t-1}
 *
 * Gradient factors. Every block's one-step gradient is an outer product d a^T (dense weights) or d * a
 * element-wise (diagonal weights, biases with a = ones): d is the block's row factor, which backward writes into
 * the delta scratch at block.deltaOffset, and a is the block's input, which forward stored in the tick cache at
 * block.columnOffset (-1: ones). Keeping gradients factored is what lets immediate derivatives, eligibility
 * traces and optimizer steps run fused without materializing a gradient, and lets RTRL build full Jacobians.
 *
 * Unit alignment. Row i of every cell block feeds hidden unit i only (given s_{t-1}), so the one-step partial of
 * o_i with respect to a parameter of row i is what an eligibility trace keeps: d computed with dL/do = ones (or,
 * for a cell that keeps its traces on the state, traceOn below, of s_i: d computed with dL/ds = ones).
 * This is why the GRU here is the "reset after matmul" form and the minimal gated cells are chosen as they are.
 *
 * Tick cache. Everything the derivatives need from tick t lives in a per-tick cache that the learner keeps in a
 * bounded ring (so labels may arrive late). The learner writes its prefix: x_t at [0, inputSize) and s_{t-1} at
 * [inputSize, inputSize + stateSize); forward fills the rest, including o_t at outputOffset.
 */
export interface ForwardCell {
  readonly kind: CellKind;
  readonly inputSize: number;
  readonly hiddenSize: number;
  /** Recurrent state floats: hiddenSize, or more (the LSTM keeps h and c). */
  readonly stateSize: number;
  /** Floats of the per-tick cache, prefix included. */
  readonly cacheSize: number;
  /** Where o_t (hiddenSize floats) sits in the cache. */
  readonly outputOffset: number;
  /** Floats of the delta scratch backward writes. */
  readonly deltaSize: number;
  readonly paramCount: number;
  readonly blocks: readonly ParamBlock[];

  /** Reads x_t and s_{t-1} from the cache prefix; writes s_t into `state`, and o_t and its own extras into the cache. */
  forward(k: Kernels, params: number, cache: number, state: number): void;
  /**
   * Draws the cell's parameters itself (in place of each block's `init`) when their distributions are joint, as
   * the LRU's gamma depends on its nu and theta. Called once, before the readout is drawn from the same stream.
   */
  initialize?(heap: Float32Array, params: number, rng: Random): void;
}

/**
 * A cell whose one-step derivatives are unit-aligned (below): what the generic rules (immediate, traces, rtrl)
 * need. Stacked networks whose output also depends on parameters directly (the LRU stack) are ForwardCells with
 * their own rule.
 */
export interface Cell extends ForwardCell {
  /** gState = (do_t/ds_t)^T gOut. */
  outputBackward(k: Kernels, cache: number, gOut: number, gState: number): void;
  /** Writes each block's row factor into `delta`; when gStatePrev >= 0 also writes dL/ds_{t-1} there. */
  backward(k: Kernels, params: number, cache: number, gState: number, delta: number, gStatePrev: number): void;
  /**
   * Where the immediate rule keeps its eligibility traces. 'state' needs s_t to be hiddenSize floats with row i
   * of every block feeding s_i only (given s_{t-1}): then d s_t,i / d theta is one float per parameter, and a
   * state trace is what a linear recurrence's exact gradient is made of. 'output' (the default) traces o_t,i,
   * for states a row feeds more than once (the LSTM's [h | c]). Where o_t = s_t the two are the same trace.
   */
  readonly traceOn?: 'state' | 'output';
  /**
   * ds_t/ds_{t-1} is diagonal at every tick (each unit's state sees only its own past), so a state trace that
   * decays unit by unit with J_t,ii is RTRL: the immediate rule's `lambda: 'exact'`. Implies traceOn 'state'.
   */
  readonly diagonalJacobian?: boolean;
}

export type CellKind =
  | 'tanh-rnn'
  | 'tanh-rnn-bypass'
  | 'gru'
  | 'lstm'
  | 'leaky-rnn'
  | 'min-gru'
  | 'diagonal-rnn'
  | 'diagonal-linear'
  | 'relu-rnn'
  | 'ugrnn'
  | 'lru';

export type ParamGroup = 'recurrent' | 'input' | 'readout';

export type Init =
  | { readonly kind: 'uniform'; readonly low: number; readonly high: number }
  | { readonly kind: 'normal'; readonly std: number }
  | { readonly kind: 'constant'; readonly value: number };

export interface ParamBlock {
  readonly name: string;
  readonly group: ParamGroup;
  /** Diagonal (element-wise) block: rows x 1, gradient d_i * a_i. */
  readonly diag: boolean;
  readonly rows: number;
  readonly cols: number;
  readonly init: Init;
  /** Offset within the owner's parameter vector. */
  readonly offset: number;
  /** Offset of the row factor within the delta scratch. */
  readonly deltaOffset: number;
  /** Offset of the column factor within the tick cache; -1 = ones. */
  readonly columnOffset: number;
}

export interface CellOptions {
  readonly inputSize: number;
  readonly hiddenSize: number;
  /** Leak rate alpha of the leaky (continuous-time) RNN: dt / tau. */
  readonly leak?: number;
  /** The LRU stack's shape and initialization (src/learners/cells/lru.ts); hiddenSize is its model width. */
  readonly units?: number;
  readonly layers?: number;
  readonly rMin?: number;
  readonly rMax?: number;
  readonly maxPhase?: number;
}

/** Builds a parameter-block table with consecutive offsets, so cells only state shapes and factor sources. */
export class BlockTable {
  readonly blocks: ParamBlock[] = [];
  paramCount = 0;

  add(
    name: string,
    group: ParamGroup,
    shape: { rows: number; cols: number; diag?: boolean },
    init: Init,
    deltaOffset: number,
    columnOffset: number,
  ): ParamBlock {
    const diag = shape.diag ?? false;
    if (diag && shape.cols !== 1) throw new Error(`diagonal block ${name} must have cols = 1`);
    const block: ParamBlock = {
      name, group, diag, rows: shape.rows, cols: shape.cols, init,
      offset: this.paramCount, deltaOffset, columnOffset,
    };
    this.blocks.push(block);
    this.paramCount += shape.rows * shape.cols;
    return block;
  }
}

/** PyTorch's default for recurrent layers: U(-1/sqrt(n), 1/sqrt(n)). */
export function fanInUniform(hiddenSize: number): Init {
  const bound = 1 / Math.sqrt(hiddenSize);
  return { kind: 'uniform', low: -bound, high: bound };
}

export const zeros: Init = { kind: 'constant', value: 0 };

/** Draws a block's parameters from its Init, in order, from `rng`. */
export function initBlock(h: Float32Array, p: number, block: ParamBlock, rng: Random): void {
  const size = block.rows * block.cols;
  const init = block.init;
  for (let i = 0; i < size; i++) {
    h[p + i] =
      init.kind === 'uniform' ? rng.uniform(init.low, init.high) : init.kind === 'normal' ? rng.normal() * init.std : init.value;
  }
}

export function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}
