import { createLearner, type LearnerSpec } from '../../learners/learner.js';

/**
 * Runs a throwaway learner of the service's spec for a few hundred ticks before the service says it is ready:
 * the first ticks of a cold process (or thread) pay for compiling the kernels and the JIT, and a producer should not.
 */
export function warmUpLearner(spec: LearnerSpec): void {
  const learner = createLearner({ ...spec, seed: spec.seed + 1 });
  const x = new Float32Array(spec.inputSize);
  const y = new Float32Array(spec.outputSize);
  for (let i = 0; i < 300; i++) {
    x[i % x.length] = Math.sin(i);
    learner.predict(x);
    learner.learn(y);
  }
}
