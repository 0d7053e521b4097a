// A learner on the plain-JS kernels over a Float64Array heap, for gradient tests: with sgd(1) one learn moves the
// parameters by exactly minus the gradient, and the heap gives them in double precision.
import { createJsKernels } from '../../src/learners/kernels/js-kernels.js';
import { createLearner, type Learner, type LearnerSpec } from '../../src/learners/learner.js';

export interface DoubleLearner {
  readonly learner: Learner;
  readonly heap: Float64Array;
  /** Cell parameters, in block order from heap offset 0. */
  readonly cellParamCount: number;
}

/** The learner places the cell's parameters at 0 and the readout's at the next multiple of 16 floats. */
export function readoutOffset(cellParamCount: number): number {
  return (cellParamCount + 15) & ~15;
}

// The kernels factory runs once per learner, forks included: the heap it made last belongs to the newest one.
let lastHeap: Float64Array | null = null;
function doubleKernels(floats: number) {
  const heap = new Float64Array(floats);
  lastHeap = heap;
  return createJsKernels(heap as unknown as Float32Array);
}

function capture(make: () => Learner, cellParamCount: number): DoubleLearner {
  lastHeap = null;
  const learner = make();
  const heap = lastHeap as Float64Array | null;
  if (heap === null) throw new Error('the learner did not build its kernels through options.kernels');
  return { learner, heap, cellParamCount };
}

export function createDoubleLearner(spec: LearnerSpec, cellParamCount: number): DoubleLearner {
  return capture(() => createLearner(spec, { kernels: doubleKernels }), cellParamCount);
}

/** A learning copy (fork) of a double learner, on a Float64 heap of its own. */
export function forkDoubleLearner(d: DoubleLearner): DoubleLearner {
  return capture(() => d.learner.fork({ frozen: false }), d.cellParamCount);
}

/** Every parameter in double precision, cell blocks then readout, as readParameters() orders them (checked). */
export function readParameters64(d: DoubleLearner): Float64Array {
  const p32 = d.learner.readParameters();
  const total = d.learner.paramCount;
  const at = readoutOffset(d.cellParamCount);
  const p64 = new Float64Array(total);
  p64.set(d.heap.subarray(0, d.cellParamCount), 0);
  p64.set(d.heap.subarray(at, at + total - d.cellParamCount), d.cellParamCount);
  for (let i = 0; i < total; i++) {
    if (Math.fround(p64[i]) !== Math.fround(p32[i])) {
      throw new Error(`parameter ${i}: the Float64 heap holds ${p64[i]} but readParameters() gives ${p32[i]}; ` +
        'the arena layout changed, update test/support/double-learner.ts');
    }
  }
  return p64;
}

/** Overwrites every parameter (same order as readParameters64). */
export function writeParameters64(d: DoubleLearner, params: ArrayLike<number>): void {
  const at = readoutOffset(d.cellParamCount);
  for (let i = 0; i < d.learner.paramCount; i++) {
    d.heap[i < d.cellParamCount ? i : at + i - d.cellParamCount] = params[i];
  }
}

/** One learn with sgd(1): the gradient is exactly theta_before - theta_after. */
export function learnGradient(d: DoubleLearner, y: ArrayLike<number>, tick?: number): Float64Array {
  const before = readParameters64(d);
  const outcome = d.learner.learn(y, tick);
  if (outcome !== 'applied') throw new Error(`learn returned '${outcome}'`);
  const after = readParameters64(d);
  return before.map((v, i) => v - after[i]);
}
