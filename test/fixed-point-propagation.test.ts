// Fixed Point Propagation (src/learners/credit/fixed-point-propagation.ts) against TensorFlow.js autodiff of the
// thesis' loss (3.6): for a sampled transition i with window T,
//   L_i = l(yhat(s_hat_i), y_i) + lambda/2 ||s_i - s_hat_i||^2,  s_hat_i = f^T(s_{i-T}; x_{i-T+1..i}),
// the learner's steps of the cell parameters, the readout, s_{i-T} and s_i must be minus the gradients (3.7) times
// their step sizes. The learner runs on the plain-JS kernels over a Float64Array heap with sgd(LR); the oracle
// runs the cells' twins (test/support/tf-cells.ts) in float32.
//
// The buffer holds T + 1 ticks, so the only transition a label can sample is the newest tick's: the test knows i.
// Before the checked label, two earlier labels have already moved stored states and parameters, so s_i and
// s_hat_i differ and the penalty term is not zero.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { CellKind } from '../src/learners/cells/cell.js';
import { createCell, hasDefaultOutputBypass, stepCellKinds } from '../src/learners/cells/registry.js';
import { FixedPointPropagationRule, fppStage, fppUpdates, fppWindow, unitHash } from '../src/learners/credit/fixed-point-propagation.js';
import type { CreditSpec } from '../src/learners/credit/registry.js';
import type { LearnerSpec } from '../src/learners/learner.js';
import { sgd } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';
import { createDoubleLearner, readParameters64, type DoubleLearner } from './support/double-learner.js';
import { tfCell, tfLoss, tfReadout, type TfParams } from './support/tf-cells.js';

const INPUT = 3;
const HIDDEN = 4;
const OUTPUT = 2;
const WINDOW = 3;
const LAMBDA = 0.7;
const STATE_RATE = 0.5;
const LR = 0.05;
const REL_TOL = 2e-3;
const FLOOR = 1e-6;

type Loss = 'mse' | 'xent';

/** The rule inside a learner: the test reads its buffer (white-box, diagnostics only). */
function ruleOf(d: DoubleLearner): FixedPointPropagationRule {
  const rule = (d.learner as unknown as { rule: unknown }).rule;
  assert.ok(rule instanceof FixedPointPropagationRule);
  return rule;
}

function specOf(kind: CellKind, loss: Loss, credit: Partial<Extract<CreditSpec, { rule: 'fpp' }>> = {}): LearnerSpec {
  return {
    cell: { kind, hiddenSize: HIDDEN },
    credit: { rule: 'fpp', window: WINDOW, buffer: WINDOW + 1, updates: 1, lambda: LAMBDA, stateRate: STATE_RATE, ...credit },
    optimizer: sgd(LR),
    inputSize: INPUT,
    outputSize: OUTPUT,
    seed: 5,
    loss,
  };
}

interface Stream {
  xs: Float64Array[];
  ys: Float64Array[];
}

function streamOf(seed: number, loss: Loss, ticks: number): Stream {
  const rng = new Random(seed);
  const xs: Float64Array[] = [];
  const ys: Float64Array[] = [];
  for (let t = 0; t < ticks; t++) {
    xs.push(Float64Array.from({ length: INPUT }, () => Math.fround(rng.normal())));
    if (loss === 'mse') ys.push(Float64Array.from({ length: OUTPUT }, () => Math.fround(rng.normal())));
    else {
      const label = rng.next() < 0.5 ? 0 : 1;
      ys.push(Float64Array.from({ length: OUTPUT }, (_, j) => (j === label ? 1 : 0)));
    }
  }
  return { xs, ys };
}

interface Expected {
  params: Float64Array;
  sStart: Float64Array;
  sEnd: Float64Array;
}

/** Autodiff of (3.6) at the values the learner holds: parameters, s_{i-T}, s_i, x and (when labelled) y. */
function oracle(kind: CellKind, loss: Loss, theta: Float64Array, sStart: Float64Array, sEnd: Float64Array,
  xs: readonly Float64Array[], y: Float64Array | null, lambda: number): Expected {
  const cell = createCell(kind, { inputSize: INPUT, hiddenSize: HIDDEN });
  const twin = tfCell(kind, { inputSize: INPUT, hiddenSize: HIDDEN });
  const bypass = hasDefaultOutputBypass(kind);
  const shapes: { name: string; rows: number; cols: number }[] = [
    ...cell.blocks.map((b) => ({ name: b.name, rows: b.rows, cols: b.cols })),
    { name: 'V', rows: OUTPUT, cols: HIDDEN },
    { name: 'c', rows: OUTPUT, cols: 1 },
    ...(bypass ? [{ name: 'D', rows: OUTPUT, cols: INPUT }] : []),
  ];
  const out: Float64Array[] = [];
  tf.tidy(() => {
    let at = 0;
    const params = shapes.map((s) => {
      const t = tf.tensor2d(Float32Array.from(theta.subarray(at, at + s.rows * s.cols)), [s.rows, s.cols]);
      at += s.rows * s.cols;
      return t;
    });
    assert.equal(at, theta.length);
    const S = sStart.length;
    const x = xs.map((v) => tf.tensor2d(Float32Array.from(v), [INPUT, 1]));
    const yT = y === null ? null : tf.tensor2d(Float32Array.from(y), [OUTPUT, 1]);
    const f = (...args: tf.Tensor[]): tf.Scalar => {
      const P: Record<string, tf.Tensor2D> = {};
      shapes.forEach((s, i) => {
        P[s.name] = args[i] as tf.Tensor2D;
      });
      let s = args[shapes.length] as tf.Tensor2D;
      let o = s;
      for (const xt of x) ({ s, o } = twin.step(P as TfParams, xt, s));
      const penalty = (args[shapes.length + 1] as tf.Tensor2D).sub(s).square().sum().mul(lambda / 2) as tf.Scalar;
      const fit = tfLoss(tfReadout(P as TfParams, o, x[x.length - 1], bypass), yT ?? tf.zeros([OUTPUT, 1]), loss);
      // Without a label the loss term is absent; times 0 it keeps the readout on the tape (tf.grads needs every input).
      return (yT === null ? penalty.add(fit.mul(0)) : fit.add(penalty)) as tf.Scalar;
    };
    const args = [...params, tf.tensor2d(Float32Array.from(sStart), [S, 1]), tf.tensor2d(Float32Array.from(sEnd), [S, 1])];
    const grads = tf.grads(f)(args);
    for (let i = 0; i < args.length; i++) out.push(Float64Array.from((grads[i] ?? tf.zerosLike(args[i])).dataSync()));
  });
  const params = new Float64Array(theta.length);
  let at = 0;
  for (let i = 0; i < shapes.length; i++) {
    params.set(out[i], at);
    at += out[i].length;
  }
  return { params, sStart: out[shapes.length], sEnd: out[shapes.length + 1] };
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let r = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    r += b[i] ** 2;
  }
  return Math.sqrt(d) / Math.max(Math.sqrt(r), FLOOR);
}

interface Observed {
  params: Float64Array;
  sStart: Float64Array;
  sEnd: Float64Array;
  expected: Expected;
  live: Float64Array;
}

/**
 * Runs ticks 0..5 with labels at 3 and 4 (which move states and parameters), predicts tick 6, then learns
 * `label` (tick 6 on time, or tick 5 late: then the sampled tick 6 has no label yet) and returns the learner's
 * steps, as gradients, beside the oracle's.
 */
function observe(kind: CellKind, loss: Loss, late: boolean, credit: Partial<Extract<CreditSpec, { rule: 'fpp' }>> = {}): Observed {
  const spec = specOf(kind, loss, credit);
  const cellParamCount = createCell(kind, { inputSize: INPUT, hiddenSize: HIDDEN }).paramCount;
  const d = createDoubleLearner(spec, cellParamCount);
  const { xs, ys } = streamOf(17, loss, 7);
  for (let t = 0; t <= 6; t++) {
    d.learner.predict(xs[t]);
    if (t === 3 || t === 4) assert.equal(d.learner.learn(ys[t], t), 'applied');
  }
  const rule = ruleOf(d);
  const i = 6;
  const theta = readParameters64(d);
  const start = rule.bufferEntry(i - WINDOW);
  const end = rule.bufferEntry(i);
  const lambda = credit.updateStates === false ? 0 : LAMBDA;
  const y = late ? null : ys[i];
  const expected = oracle(kind, loss, theta, start.state, end.state, xs.slice(i - WINDOW + 1, i + 1), y, lambda);
  assert.equal(d.learner.learn(late ? ys[5] : ys[6], late ? 5 : 6), 'applied');
  const after = readParameters64(d);
  const sStart = rule.bufferEntry(i - WINDOW).state;
  const sEnd = rule.bufferEntry(i).state;
  return {
    params: theta.map((v, j) => (v - after[j]) / LR),
    sStart: start.state.map((v, j) => (v - sStart[j]) / STATE_RATE),
    sEnd: end.state.map((v, j) => (v - sEnd[j]) / STATE_RATE),
    expected,
    live: Float64Array.from(sEnd),
  };
}

before(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
  await tf.ready();
});

describe('fpp: the steps are minus the gradients (3.7) of TensorFlow.js autodiff', () => {
  for (const kind of stepCellKinds) {
    for (const loss of kind === 'tanh-rnn' ? (['mse', 'xent'] as const) : (['mse'] as const)) {
      test(`${kind} (${loss}): labelled sample`, () => {
        const o = observe(kind, loss, false);
        assert.ok(relErr(o.expected.sEnd, new Float64Array(o.sEnd.length)) > 1e-3,
          'the penalty term should be non-zero here: earlier labels moved the stored states');
        assert.ok(relErr(o.params, o.expected.params) < REL_TOL, `parameters: ${relErr(o.params, o.expected.params)}`);
        assert.ok(relErr(o.sStart, o.expected.sStart) < REL_TOL, `s_{i-T}: ${relErr(o.sStart, o.expected.sStart)}`);
        assert.ok(relErr(o.sEnd, o.expected.sEnd) < REL_TOL, `s_i: ${relErr(o.sEnd, o.expected.sEnd)}`);
      });
    }
  }

  test('a sampled tick without its label yet takes the penalty term only, and the readout stays', () => {
    const o = observe('gru', 'mse', true);
    assert.ok(relErr(o.params, o.expected.params) < REL_TOL, `parameters: ${relErr(o.params, o.expected.params)}`);
    assert.ok(relErr(o.sStart, o.expected.sStart) < REL_TOL);
    assert.ok(relErr(o.sEnd, o.expected.sEnd) < REL_TOL);
    const cellCount = createCell('gru', { inputSize: INPUT, hiddenSize: HIDDEN }).paramCount;
    assert.ok(o.params.subarray(cellCount).every((g) => g === 0), 'the readout has no loss to learn from');
  });

  test('without state updating: the loss alone, and the stored states stay', () => {
    const o = observe('lstm', 'mse', false, { updateStates: false });
    assert.ok(relErr(o.params, o.expected.params) < REL_TOL, `parameters: ${relErr(o.params, o.expected.params)}`);
    assert.ok(o.sStart.every((g) => g === 0) && o.sEnd.every((g) => g === 0));
  });
});

describe('fpp: buffer and live state', () => {
  test('the next tick starts from the updated newest state', () => {
    const spec = specOf('tanh-rnn', 'mse');
    const a = createDoubleLearner(spec, createCell('tanh-rnn', { inputSize: INPUT, hiddenSize: HIDDEN }).paramCount);
    const { xs, ys } = streamOf(3, 'mse', 8);
    for (let t = 0; t <= 6; t++) {
      a.learner.predict(xs[t]);
      // Earlier labels move stored states, so s_6 (computed from them) and s_hat_6 then differ.
      if (t === 3 || t === 4) a.learner.learn(ys[t], t);
    }
    const computed = ruleOf(a).bufferEntry(6).state;
    a.learner.learn(ys[6], 6);
    const updated = ruleOf(a).bufferEntry(6).state;
    assert.ok(relErr(updated, computed) > 1e-6, 'the sample (tick 6) moved s_6');
    // The cache of tick 7 starts from the state the learner continued from: what the buffer now holds for tick 7
    // is f(updated s_6, x_7), and a learner restored with s_6 set by hand would compute the same.
    a.learner.predict(xs[7]);
    const twin = createDoubleLearner(spec, createCell('tanh-rnn', { inputSize: INPUT, hiddenSize: HIDDEN }).paramCount);
    twin.learner.restore(a.learner.snapshot());
    assert.deepEqual(ruleOf(twin).bufferEntry(7).state, ruleOf(a).bufferEntry(7).state);
    const cell = createCell('tanh-rnn', { inputSize: INPUT, hiddenSize: HIDDEN });
    const W = readParameters64(a).subarray(0, cell.paramCount);
    // h_7 = tanh(W h_6 + U x_7 + b) with the blocks W (n x n), U (n x m), b (n).
    const h7 = new Float64Array(HIDDEN);
    for (let r = 0; r < HIDDEN; r++) {
      let z = W[HIDDEN * HIDDEN + HIDDEN * INPUT + r];
      for (let j = 0; j < HIDDEN; j++) z += W[r * HIDDEN + j] * updated[j];
      for (let j = 0; j < INPUT; j++) z += W[HIDDEN * HIDDEN + r * INPUT + j] * xs[7][j];
      h7[r] = Math.tanh(z);
    }
    assert.ok(relErr(ruleOf(a).bufferEntry(7).state, h7) < 1e-12);
  });

  test('labels, inputs and states land in the entry of their tick; a label older than the buffer is kept nowhere', () => {
    const spec = specOf('gru', 'mse', { buffer: 8 });
    const d = createDoubleLearner(spec, createCell('gru', { inputSize: INPUT, hiddenSize: HIDDEN }).paramCount);
    const { xs, ys } = streamOf(4, 'mse', 30);
    for (let t = 0; t < 30; t++) d.learner.predict(xs[t]);
    assert.equal(d.learner.learn(ys[25], 25), 'applied');
    const e = ruleOf(d).bufferEntry(25);
    assert.deepEqual(Array.from(e.x), Array.from(xs[25]));
    assert.deepEqual(Array.from(e.y), Array.from(ys[25]));
    assert.equal(e.labelled, true);
    assert.equal(ruleOf(d).bufferEntry(26).labelled, false);
    // Tick 20 left the buffer of 8 (ticks 22..29 remain): its label is learned nowhere but the ring's slot 20 % 8.
    d.learner.learn(ys[20], 20);
    assert.equal(ruleOf(d).bufferEntry(28).labelled, false, 'the label of tick 20 overwrote the entry of tick 28');
  });
});

describe('fpp: schedules and sampling', () => {
  test("decay: T halves and the updates grow each fifth of the horizon, about M T per tick, down to one-step updates", () => {
    const options = { window: 10, updates: 1, schedule: { kind: 'decay', horizonTicks: 1000 } } as const;
    const plan = [0, 200, 400, 600, 800, 5000].map((tick) => {
      const stage = fppStage(options.schedule, tick);
      return [fppWindow(options, stage), fppUpdates(options, stage)];
    });
    assert.deepEqual(plan, [[10, 1], [5, 2], [3, 3], [2, 5], [1, 10], [1, 10]]);
    assert.equal(fppStage(options.schedule, 199), 0);
    assert.equal(fppStage({ kind: 'fixed' }, 10_000), 0);
    assert.deepEqual([fppWindow({ window: 10, schedule: { kind: 'random', horizonTicks: 10 } }, 3)], [10]);
  });

  test('the sampling hash is uniform and depends on seed, tick and index', () => {
    const bins = new Array(20).fill(0);
    const n = 200_000;
    for (let t = 0; t < n; t++) bins[Math.floor(unitHash(7, t, t % 3) * 20)]++;
    const expected = n / 20;
    const chi2 = bins.reduce((s, b) => s + (b - expected) ** 2 / expected, 0);
    assert.ok(chi2 < 50, `chi-square over 20 bins ${chi2.toFixed(1)} (19 degrees of freedom: 50 is p < 1e-4)`);
    assert.notEqual(unitHash(1, 5, 0), unitHash(2, 5, 0));
    assert.notEqual(unitHash(1, 5, 0), unitHash(1, 6, 0));
    assert.notEqual(unitHash(1, 5, 0), unitHash(1, 5, 1));
    assert.notEqual(unitHash(1, 5, 0), unitHash(1, 5 + 2 ** 32, 0));
  });

  test('bad fpp and tbptt specs are refused by field', async () => {
    const { createLearner } = await import('../src/learners/learner.js');
    const base = specOf('gru', 'mse') as Extract<LearnerSpec, { cell: unknown }>;
    const bad: [CreditSpec, RegExp][] = [
      [{ rule: 'fpp', window: 0 }, /credit\.window/],
      [{ rule: 'fpp', window: 1000 }, /credit\.buffer.*default/],
      [{ rule: 'fpp', window: 5, buffer: 5 }, /credit\.buffer/],
      [{ rule: 'fpp', window: 2, updates: 0 }, /credit\.updates/],
      [{ rule: 'fpp', window: 2, lambda: -1 }, /credit\.lambda/],
      [{ rule: 'fpp', window: 2, stateRate: 0 }, /credit\.stateRate/],
      [{ rule: 'fpp', window: 2, schedule: { kind: 'decay', horizonTicks: 0 } }, /credit\.schedule\.horizonTicks/],
      [{ rule: 'fpp', window: 2, schedule: { kind: 'sometimes' } as never }, /credit\.schedule\.kind/],
      [{ rule: 'tbptt', window: 4, every: 5 }, /credit\.every/],
      [{ rule: 'tbptt', window: 1.5 }, /credit\.window/],
    ];
    for (const [credit, field] of bad) assert.throws(() => createLearner({ ...base, credit }), field, JSON.stringify(credit));
    assert.throws(() => createLearner({ ...base, readout: { kind: 'rls', halfLifeTicks: 100 } }), /readout/);
    assert.throws(() => createLearner({ ...base, cell: { kind: 'lru', hiddenSize: 4 } }), /credit\.rule/);
  });
});
