// The online LRU (cell `lru`, rule `online-lru`): a case worked by hand, spec validation, and what the modes
// differ in. The comparison with full BPTT through TensorFlow.js autodiff is test/online-lru-oracle.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LruCell } from '../src/learners/cells/lru.js';
import { createCell } from '../src/learners/cells/registry.js';
import type { CreditSpec } from '../src/learners/credit/registry.js';
import { createLearner, type LearnerSpec } from '../src/learners/learner.js';
import { adam, sgd } from '../src/learners/optim/transform.js';
import { createDoubleLearner, learnGradient, readParameters64, writeParameters64 } from './support/double-learner.js';

type Complex = readonly [number, number];
const add = (a: Complex, b: Complex): Complex => [a[0] + b[0], a[1] + b[1]];
const mul = (a: Complex, b: Complex): Complex => [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
const real = (x: number): Complex => [x, 0];

/**
 * One layer, m = 1, H = 2, N = 1, with parameters set so that the network reduces to a scalar recurrence:
 *   x^1 = [x, -x],  u = LayerNorm(x^1) = [q, -q], q = x / sqrt(x^2 + 1e-5)
 *   h_t = lambda h_{t-1} + q_t          (B = [1, 0], gamma = 1, lambda = 0.8 e^{0.5 i})
 *   y = [Re h_t, 0],  o = x^1 + gelu(y) / 2   (W1 = I, W2 = 0: gate 1/2),  yhat = o_0 = x + gelu(Re h_t) / 2
 * so dL_t/dp = e_t gelu'(Re h_t) / 2 Re(dh_t/dp), with dh_2/dp written out below for tick 2.
 */
describe('online-lru: a one-unit case worked by hand', () => {
  const r = 0.8;
  const phase = 0.5;
  const lambda: Complex = [r * Math.cos(phase), r * Math.sin(phase)];
  const xs = [0.7, -0.4, 1.3];
  const target = 0.25;
  const q = xs.map((x) => x / Math.sqrt(x * x + 1e-5));

  const gelu = (y: number) => 0.5 * y * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (y + 0.044715 * y ** 3)));
  const geluSlope = (y: number) => (gelu(y + 1e-6) - gelu(y - 1e-6)) / 2e-6;

  // h_0 = q_0, h_1 = lambda q_0 + q_1, h_2 = lambda^2 q_0 + lambda q_1 + q_2.
  const h2 = add(add(mul(mul(lambda, lambda), real(q[0])), mul(lambda, real(q[1]))), real(q[2]));
  const h1 = add(mul(lambda, real(q[0])), real(q[1]));
  // dh_2/dlambda = 2 lambda q_0 + q_1 (all ticks); h_1 alone is the one-step partial (truncated-1).
  const dh2dLambda = add(mul(real(2 * q[0]), lambda), real(q[1]));
  const yhat2 = xs[2] + gelu(h2[0]) / 2;
  const chain = (yhat2 - target) * geluSlope(h2[0]) / 2;
  // dlambda/dnu_log = -nu lambda (nu = -log r), dlambda/dtheta_log = i theta lambda (theta = phase).
  const dNu = (dhdl: Complex) => chain * mul(dhdl, mul(real(Math.log(r)), lambda))[0];
  const dTheta = (dhdl: Complex) => chain * mul(dhdl, mul([0, phase], lambda))[0];
  // gamma = 1: dh/dgamma_log = h; dh/dB_re,0j = sum_k lambda^k u_{t-k, j}, dh/dB_im,0j = i times that.
  const expected = {
    online: { nu: dNu(dh2dLambda), theta: dTheta(dh2dLambda), gamma: chain * h2[0], Bre: [chain * h2[0], -chain * h2[0]],
      Bim: [-chain * h2[1], chain * h2[1]] },
    'truncated-1': { nu: dNu(h1), theta: dTheta(h1), gamma: chain * q[2], Bre: [chain * q[2], -chain * q[2]], Bim: [0, 0] },
    spatial: { nu: 0, theta: 0, gamma: chain * q[2], Bre: [chain * q[2], -chain * q[2]], Bim: [0, 0] },
  } as const;

  for (const mode of ['online', 'truncated-1', 'spatial'] as const) {
    test(`${mode}: the gradients of nu_log, theta_log, gamma_log and B at tick 2`, () => {
      const spec: LearnerSpec = {
        cell: { kind: 'lru', hiddenSize: 2, units: 1, layers: 1 },
        credit: { rule: 'online-lru', mode },
        optimizer: sgd(1),
        inputSize: 1,
        outputSize: 1,
        seed: 3,
        loss: 'mse',
      };
      const cell = createCell('lru', { inputSize: 1, hiddenSize: 2, units: 1, layers: 1 }) as LruCell;
      const d = createDoubleLearner(spec, cell.paramCount);
      const values: Record<string, number[]> = {
        'enc.W': [1, -1], 'enc.b': [0, 0], 'l1.norm.scale': [1, 1], 'l1.norm.bias': [0, 0],
        'l1.nu_log': [Math.log(-Math.log(r))], 'l1.theta_log': [Math.log(phase)], 'l1.gamma_log': [0],
        'l1.B_re': [1, 0], 'l1.B_im': [0, 0], 'l1.C_re': [1, 0], 'l1.C_im': [0, 0], 'l1.D': [0, 0],
        'l1.glu.W1': [1, 0, 0, 1], 'l1.glu.b1': [0, 0], 'l1.glu.W2': [0, 0, 0, 0], 'l1.glu.b2': [0, 0],
      };
      const params = new Float64Array(d.learner.paramCount);
      for (const b of cell.blocks) params.set(values[b.name], b.offset);
      params.set([1, 0], cell.paramCount); // V = [1, 0], c = 0
      writeParameters64(d, params);

      for (const x of xs) d.learner.predict([x]);
      const grad = learnGradient(d, [target]);
      const at = (name: string) => cell.blocks.find((b) => b.name === name)!.offset;
      const want = expected[mode];
      const close = (got: number, wanted: number, what: string) =>
        assert.ok(Math.abs(got - wanted) <= 1e-9 * Math.max(1, Math.abs(wanted)), `${what}: ${got}, by hand ${wanted}`);
      close(grad[at('l1.nu_log')], want.nu, 'nu_log');
      close(grad[at('l1.theta_log')], want.theta, 'theta_log');
      close(grad[at('l1.gamma_log')], want.gamma, 'gamma_log');
      close(grad[at('l1.B_re')], want.Bre[0], 'B_re[0]');
      close(grad[at('l1.B_re') + 1], want.Bre[1], 'B_re[1]');
      close(grad[at('l1.B_im')], want.Bim[0], 'B_im[0]');
      close(grad[at('l1.B_im') + 1], want.Bim[1], 'B_im[1]');
      // The by-hand values differ between the modes, so each assertion above tells them apart.
      if (mode === 'online') assert.ok(Math.abs(want.nu - expected['truncated-1'].nu) > 1e-3);
    });
  }
});

describe('online-lru: spec', () => {
  const base: LearnerSpec = {
    cell: { kind: 'lru', hiddenSize: 8, units: 4, layers: 2 },
    credit: { rule: 'online-lru' },
    optimizer: adam(0.001),
    inputSize: 3,
    outputSize: 2,
    seed: 1,
    loss: 'mse',
  };

  test('the LRU learns with online-lru only, and online-lru learns the LRU only', () => {
    assert.throws(() => createLearner({ ...base, credit: { rule: 'immediate', lambda: 0 } }),
      /cell 'lru' learns with rule 'online-lru', not 'immediate'/);
    assert.throws(() => createLearner({ ...base, credit: { rule: 'rtrl' } }), /cell 'lru' learns with rule 'online-lru'/);
    assert.throws(() => createLearner({ ...base, cell: { kind: 'gru', hiddenSize: 8 } }),
      /'online-lru' learns the 'lru' cell only, not 'gru'/);
    assert.throws(() => createLearner({ ...base, credit: { rule: 'online-lru', mode: 'full' } as unknown as CreditSpec }),
      /credit\.mode.*online, truncated-1, spatial, bptt/);
  });

  test('shape and ring fields are checked, and refused on other cells', () => {
    const cell = (extra: object) => ({ ...base, cell: { ...base.cell, ...extra } });
    assert.throws(() => createLearner(cell({ units: 0 })), /cell\.units/);
    assert.throws(() => createLearner(cell({ layers: 1.5 })), /cell\.layers/);
    assert.throws(() => createLearner(cell({ rMin: 0.9, rMax: 0.5 })), /cell\.rMin.*0 <= rMin < rMax <= 1/);
    assert.throws(() => createLearner(cell({ rMax: 1.2 })), /cell\.rMin/);
    assert.throws(() => createLearner(cell({ maxPhase: 0 })), /cell\.maxPhase/);
    assert.throws(() => createLearner({ ...base, cell: { kind: 'gru', hiddenSize: 8, layers: 2 }, credit: { rule: 'rtrl' } }),
      /cell\.layers.*applies to cell 'lru' only/);
  });

  test('initialization: |lambda| in [rMin, rMax], arg(lambda) in [0, maxPhase], gamma = sqrt(1 - |lambda|^2)', () => {
    const spec = { ...base, cell: { ...base.cell, units: 64, rMin: 0.9, rMax: 0.999, maxPhase: Math.PI / 10 } };
    const cell = createCell('lru', { inputSize: 3, hiddenSize: 8, units: 64, layers: 2, rMin: 0.9, rMax: 0.999, maxPhase: Math.PI / 10 }) as LruCell;
    const d = createDoubleLearner(spec, cell.paramCount);
    const p = readParameters64(d);
    for (const layer of cell.layers) {
      for (let i = 0; i < 64; i++) {
        const radius = Math.exp(-Math.exp(p[layer.nu.offset + i]));
        const phase = Math.exp(p[layer.theta.offset + i]);
        const gamma = Math.exp(p[layer.gamma.offset + i]);
        assert.ok(radius >= 0.9 - 1e-6 && radius <= 0.999 + 1e-6, `|lambda| = ${radius}`);
        assert.ok(phase > 0 && phase <= Math.PI / 10 + 1e-9, `arg(lambda) = ${phase}`);
        assert.ok(Math.abs(gamma - Math.sqrt(1 - radius * radius)) < 1e-5, `gamma = ${gamma} for |lambda| = ${radius}`);
      }
    }
  });
});

describe('online-lru: memory', () => {
  test('the traces are 4N + 2NH floats per layer in online mode, none in the others', () => {
    const spec = (mode: 'online' | 'truncated-1' | 'spatial'): LearnerSpec => ({
      cell: { kind: 'lru', hiddenSize: 16, units: 8, layers: 3 },
      credit: { rule: 'online-lru', mode },
      optimizer: sgd(0.01),
      inputSize: 2,
      outputSize: 1,
      seed: 1,
      loss: 'mse',
    });
    const online = createLearner(spec('online'));
    const truncated = createLearner(spec('truncated-1'));
    const spatial = createLearner(spec('spatial'));
    const traceFloats = 3 * (4 * 8 + 2 * 8 * 16);
    // Arena regions are rounded up to 16 floats; Float32 arena.
    assert.equal(online.stateBytes - truncated.stateBytes, Math.ceil(traceFloats / 16) * 16 * 4);
    assert.equal(truncated.stateBytes, spatial.stateBytes);
  });
});
