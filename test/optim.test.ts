// The fused optimizer steps the kernels run must equal the optax-style chains they compile from.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createKernels } from '../src/learners/kernels/wasm-kernels.js';
import { compileOptimizer } from '../src/learners/optim/compile.js';
import { referenceInit, referenceUpdate } from '../src/learners/optim/reference.js';
import {
  adam, chain, clipByGlobalNorm, momentum, rmsprop, scaleByLearningRate, sgd, trace, withClipping, type OptimizerSpec,
} from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';

const specs: Record<string, OptimizerSpec> = {
  sgd: sgd(0.1),
  momentum: momentum(0.05, 0.9),
  rmsprop: rmsprop(0.01, 0.9, 1e-6),
  adam: adam(0.01, 0.8, 0.95, 1e-6),
  'clip+rmsprop': withClipping(rmsprop(0.01, 0.9, 1e-6), 0.5),
  'clip+adam': withClipping(adam(0.01), 0.25),
};

for (const backend of ['wasm', 'js'] as const) {
  for (const [name, spec] of Object.entries(specs)) {
    test(`${backend}: fused ${name} step equals the reference chain on an outer-product gradient`, () => {
      const rows = 5;
      const cols = 7;
      const size = rows * cols;
      const k = createKernels(1024, backend);
      const h = k.heap;
      const P = 0;
      const S1 = 64;
      const S2 = 128;
      const D = 192;
      const A = 224;
      const rng = new Random(11);
      for (let i = 0; i < size; i++) h[P + i] = rng.normal();
      const params = Float64Array.from(h.subarray(P, P + size));
      const opt = compileOptimizer(spec);
      const state = referenceInit(spec, size);
      for (let step = 1; step <= 6; step++) {
        for (let i = 0; i < rows; i++) h[D + i] = rng.normal();
        for (let j = 0; j < cols; j++) h[A + j] = rng.normal();
        const grad = new Float64Array(size);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) grad[i * cols + j] = h[D + i] * h[A + j];
        const u = referenceUpdate(spec, grad, state);
        for (let i = 0; i < size; i++) params[i] += u[i];
        const normSq = k.dot(D, D, rows) * k.dot(A, A, cols);
        const gscale = opt.maxNorm > 0 && Math.sqrt(normSq) > opt.maxNorm ? opt.maxNorm / Math.sqrt(normSq) : 1;
        k.stepOuter(opt.core, P, S1, S2, D, A, rows, cols, gscale, opt.lr, opt.b1, opt.b2, opt.eps,
          1 - opt.b1 ** step, 1 - opt.b2 ** step);
        for (let i = 0; i < size; i++) {
          assert.ok(Math.abs(h[P + i] - params[i]) < 1e-5 * (1 + Math.abs(params[i])),
            `${name} step ${step} param ${i}: fused ${h[P + i]} vs reference ${params[i]}`);
        }
      }
    });
  }
}

test('chains the fused kernels cannot run are refused with the accepted shape', () => {
  assert.throws(() => compileOptimizer(chain(trace(0.9), trace(0.9), scaleByLearningRate(0.1))), /not supported.*scaleByLearningRate/);
  assert.throws(() => compileOptimizer(chain(scaleByLearningRate(0.1), clipByGlobalNorm(1))), /not supported/);
  assert.throws(() => compileOptimizer(sgd(-1)), /lr.*> 0/);
  assert.throws(() => compileOptimizer(rmsprop(0.1, 1.5)), /decay.*\[0, 1\)/);
  assert.deepEqual(compileOptimizer(momentum(0.1, 0.5)), { core: 1, lr: 0.1, b1: 0.5, b2: 0, eps: 0, maxNorm: 0, slots: 1 });
});
