/**
 * Optimizers as chains of small gradient transforms, after optax: each transform maps the gradient to an update
 * and owns explicit per-parameter state, so snapshot and restore are a buffer copy. Transforms are plain data
 * (they live in the learner spec and in snapshots); src/learners/optim/reference.ts gives their dense semantics
 * and src/learners/optim/compile.ts turns a chain into the fused kernel step the learner runs per tick.
 *
 * Sign convention as in optax: the chain produces an update u and parameters move by p += u, so
 * scaleByLearningRate(lr) multiplies by -lr.
 */
export type Transform =
  | { readonly kind: 'clipByGlobalNorm'; readonly maxNorm: number }
  | { readonly kind: 'trace'; readonly decay: number }
  | { readonly kind: 'scaleByRms'; readonly decay: number; readonly eps: number }
  | { readonly kind: 'scaleByAdam'; readonly b1: number; readonly b2: number; readonly eps: number }
  | { readonly kind: 'scaleByLearningRate'; readonly lr: number };

export interface OptimizerSpec {
  readonly chain: readonly Transform[];
}

/** Separate optimizers for the parameter groups; a group without its own entry takes `default`. */
export interface GroupedOptimizerSpec {
  readonly default: OptimizerSpec;
  readonly recurrent?: OptimizerSpec;
  readonly input?: OptimizerSpec;
  readonly readout?: OptimizerSpec;
}

export const clipByGlobalNorm = (maxNorm: number): Transform => ({ kind: 'clipByGlobalNorm', maxNorm });
export const trace = (decay: number): Transform => ({ kind: 'trace', decay });
export const scaleByRms = (decay = 0.99, eps = 1e-8): Transform => ({ kind: 'scaleByRms', decay, eps });
export const scaleByAdam = (b1 = 0.9, b2 = 0.999, eps = 1e-8): Transform => ({ kind: 'scaleByAdam', b1, b2, eps });
export const scaleByLearningRate = (lr: number): Transform => ({ kind: 'scaleByLearningRate', lr });

export function chain(...transforms: Transform[]): OptimizerSpec {
  return { chain: transforms };
}

export const sgd = (lr: number): OptimizerSpec => chain(scaleByLearningRate(lr));
export const momentum = (lr: number, decay = 0.9): OptimizerSpec => chain(trace(decay), scaleByLearningRate(lr));
export const rmsprop = (lr: number, decay = 0.99, eps = 1e-8): OptimizerSpec =>
  chain(scaleByRms(decay, eps), scaleByLearningRate(lr));
export const adam = (lr: number, b1 = 0.9, b2 = 0.999, eps = 1e-8): OptimizerSpec =>
  chain(scaleByAdam(b1, b2, eps), scaleByLearningRate(lr));

/** Prepends global-norm clipping to a chain. */
export function withClipping(spec: OptimizerSpec, maxNorm: number): OptimizerSpec {
  return { chain: [clipByGlobalNorm(maxNorm), ...spec.chain] };
}

export function isGrouped(spec: OptimizerSpec | GroupedOptimizerSpec): spec is GroupedOptimizerSpec {
  return (spec as GroupedOptimizerSpec).default !== undefined;
}
