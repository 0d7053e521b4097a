import type { OptimizerSpec, Transform } from './transform.js';

/**
 * Dense, allocation-happy reference semantics of a transform chain, exactly as optax defines them
 * (init(params) -> state; update(grads, state) -> updates; params += updates). The fused kernels are tested
 * against this; nothing on the per-tick path uses it.
 */
export interface ReferenceState {
  readonly perTransform: Float64Array[][];
  count: number;
}

export function referenceInit(spec: OptimizerSpec, size: number): ReferenceState {
  return {
    count: 0,
    perTransform: spec.chain.map((t) => {
      if (t.kind === 'trace' || t.kind === 'scaleByRms') return [new Float64Array(size)];
      if (t.kind === 'scaleByAdam') return [new Float64Array(size), new Float64Array(size)];
      return [];
    }),
  };
}

/** Returns the updates for `grads` and advances `state`. */
export function referenceUpdate(spec: OptimizerSpec, grads: ArrayLike<number>, state: ReferenceState): Float64Array {
  let u = Float64Array.from(grads);
  state.count++;
  spec.chain.forEach((t: Transform, i) => {
    const s = state.perTransform[i];
    switch (t.kind) {
      case 'clipByGlobalNorm': {
        const norm = Math.sqrt(u.reduce((acc, g) => acc + g * g, 0));
        if (norm > t.maxNorm) u = u.map((g) => (g * t.maxNorm) / norm);
        break;
      }
      case 'trace':
        u = u.map((g, j) => (s[0][j] = g + t.decay * s[0][j]));
        break;
      case 'scaleByRms':
        u = u.map((g, j) => {
          s[0][j] = t.decay * s[0][j] + (1 - t.decay) * g * g;
          return g / (Math.sqrt(s[0][j]) + t.eps);
        });
        break;
      case 'scaleByAdam': {
        const bc1 = 1 - t.b1 ** state.count;
        const bc2 = 1 - t.b2 ** state.count;
        u = u.map((g, j) => {
          s[0][j] = t.b1 * s[0][j] + (1 - t.b1) * g;
          s[1][j] = t.b2 * s[1][j] + (1 - t.b2) * g * g;
          return s[0][j] / bc1 / (Math.sqrt(s[1][j] / bc2) + t.eps);
        });
        break;
      }
      case 'scaleByLearningRate':
        u = u.map((g) => -t.lr * g);
        break;
    }
  });
  return u;
}
