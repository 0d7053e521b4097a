/**
 * The per-tick numeric kernels. Every learner keeps all of its state in one Float32 arena (the `heap`); kernels
 * address it by float offsets, never by pointers or objects, so that
 *  - the WASM SIMD build and the plain-TypeScript twin share one memory layout and can be compared bit for bit,
 *  - snapshot and restore are a copy of the arena,
 *  - a tick allocates nothing.
 *
 * Conventions: matrices are row-major; `rows x cols` means `rows` contiguous runs of `cols` floats. An offset
 * argument named `a` that is negative means "a vector of ones" (bias blocks have no input factor).
 *
 * Optimizer steps are fused with the gradient they consume: the immediate gradient of a weight block is the
 * outer product of a row factor (the pre-activation error) and a column factor (the block's input), so it is
 * formed element by element inside the update and never stored. See src/learners/optim for the optax-style
 * transforms these kernels execute.
 */
export interface Kernels {
  readonly backend: KernelBackend;
  /** The arena as floats. Never grows, so this view stays valid for the learner's lifetime. */
  readonly heap: Float32Array;

  /** y = A x (+ y when accumulate = 1). A is rows x cols. */
  matVec(y: number, A: number, x: number, rows: number, cols: number, accumulate: number): void;
  /** y = A^T x (+ y when accumulate = 1). A is rows x cols, x has rows entries, y has cols. */
  matTVec(y: number, A: number, x: number, rows: number, cols: number, accumulate: number): void;
  /** C = A B (+ C when accumulate = 1). A is m x k, B is k x n, C is m x n; C must not alias A or B. */
  matMul(C: number, A: number, B: number, m: number, k: number, n: number, accumulate: number): void;
  /** G += scale * d a^T over a rows x cols block (a < 0: ones, so each row gets scale * d[i]). */
  outerAcc(G: number, d: number, a: number, rows: number, cols: number, scale: number): void;
  /** Sum of x[i] * y[i], accumulated in float64. */
  dot(x: number, y: number, len: number): number;
  /** 1 when every value in [x, x + len) is finite, else 0. */
  allFinite(x: number, len: number): number;
  /** dst[i] = src[i] over len floats (regions may not overlap). */
  copy(dst: number, src: number, len: number): void;
  /** x[i] = value over len floats. */
  fill(x: number, value: number, len: number): void;

  /**
   * E = lambda E + d a^T, the eligibility trace of a unit-aligned weight block. With diag = 1 the block is
   * rows x 1 and a is read element-wise (E_i = lambda E_i + d_i a_i).
   */
  trace(E: number, lambda: number, d: number, a: number, rows: number, cols: number, diag: number): void;
  /** Sum over the block of (g_i (lambda E_ij + d_i a_j))^2 without writing E: global-norm clipping's first pass. */
  traceNormSq(E: number, lambda: number, d: number, a: number, g: number, rows: number, cols: number,
    diag: number): number;
  /**
   * x_ij = s_i x_ij over a rows x cols block: traces whose units decay at rates of their own (then trace or
   * stepTrace with lambda = 1 adds the new partial).
   */
  scaleRows(x: number, s: number, rows: number, cols: number): void;

  /** Optimizer step with gradient gscale * d_i a_j (an outer-product block; a < 0: ones). */
  stepOuter(opt: number, p: number, s1: number, s2: number, d: number, a: number, rows: number, cols: number,
    gscale: number, lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number): void;
  /** Optimizer step with gradient gscale * d_i * a_i (a diagonal block; a < 0: ones). */
  stepDiag(opt: number, p: number, s1: number, s2: number, d: number, a: number, len: number,
    gscale: number, lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number): void;
  /**
   * Trace update fused with the step: E = lambda E + d a^T, then gradient gscale * g_i * E_ij
   * (a diagonal block is rows = len, cols = 1 with a read element-wise: pass diag = 1).
   */
  stepTrace(opt: number, p: number, s1: number, s2: number, E: number, lambda: number, d: number, a: number,
    g: number, rows: number, cols: number, diag: number,
    gscale: number, lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number): void;
  /** Optimizer step with a dense gradient gscale * grad[i]. */
  stepDense(opt: number, p: number, s1: number, s2: number, grad: number, len: number,
    gscale: number, lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number): void;
}

export type KernelBackend = 'wasm' | 'js';

/**
 * Optimizer cores the fused steps know. Slots: sgd none; momentum s1 = velocity; rmsprop s1 = second moment;
 * adam s1 = first moment, s2 = second moment. Update rules (g already scaled by gscale):
 *   sgd       p -= lr g
 *   momentum  s1 = b1 s1 + g;                         p -= lr s1            (optax.trace then scale)
 *   rmsprop   s1 = b2 s1 + (1 - b2) g^2;              p -= lr g / (sqrt(s1) + eps)
 *   adam      s1 = b1 s1 + (1 - b1) g; s2 = b2 s2 + (1 - b2) g^2;
 *             p -= lr (s1 / bc1) / (sqrt(s2 / bc2) + eps)
 */
export const OptimizerCore = { sgd: 0, momentum: 1, rmsprop: 2, adam: 3 } as const;
export type OptimizerCoreId = (typeof OptimizerCore)[keyof typeof OptimizerCore];

/** Slots each core keeps per parameter. */
export function slotsOf(core: OptimizerCoreId): number {
  return core === OptimizerCore.adam ? 2 : core === OptimizerCore.sgd ? 0 : 1;
}
