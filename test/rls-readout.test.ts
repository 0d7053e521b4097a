// The RLS readout of a recurrent learner (src/learners/rls-readout.ts): the least-squares fit of the labels on
// the features the cell produced, updated every label, while the cell learns below it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidSpecError } from '../src/learners/errors.js';
import { createLearner, type RecurrentLearnerSpec } from '../src/learners/learner.js';
import { rmsprop, sgd } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';

const M = 4;
const base: RecurrentLearnerSpec = {
  cell: { kind: 'tanh-rnn-bypass', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(1e-3),
  inputSize: M, outputSize: 2, seed: 3, loss: 'mse',
};

function linearStream(ticks: number, seed: number): { xs: Float32Array[]; ys: Float32Array[] } {
  const rng = new Random(seed);
  const xs: Float32Array[] = [];
  const ys: Float32Array[] = [];
  for (let t = 0; t < ticks; t++) {
    const x = Float32Array.from({ length: M }, () => rng.normal());
    xs.push(x);
    // In units far from 1, with offsets: a gradient readout would need its rate tuned to these.
    ys.push(Float32Array.from([40 * x[0] - 25 * x[1] + 300, 12 * x[2] + 7 * x[3] - 90]));
  }
  return { xs, ys };
}

test('with a bypass, a target linear in the inputs is fitted exactly within a few hundred labels', () => {
  const { xs, ys } = linearStream(800, 1);
  const rls = createLearner({ ...base, readout: { kind: 'rls', delta: 1e-3 } });
  const gradient = createLearner(base);
  let rlsErr = 0;
  let gradErr = 0;
  for (let t = 0; t < xs.length; t++) {
    const a = rls.predict(xs[t]);
    const b = gradient.predict(xs[t]);
    if (t >= 600) {
      for (let i = 0; i < 2; i++) {
        rlsErr = Math.max(rlsErr, Math.abs(a[i] - ys[t][i]));
        gradErr = Math.max(gradErr, Math.abs(b[i] - ys[t][i]));
      }
    }
    rls.learn(ys[t]);
    gradient.learn(ys[t]);
  }
  assert.ok(rlsErr < 0.05, `RLS readout: worst error ${rlsErr.toFixed(4)} on targets of size ~300`);
  assert.ok(gradErr > 100 * rlsErr, `gradient readout at the same budget: worst error ${gradErr.toFixed(2)}`);
});

test('delayed labels credit the features of their own tick: the same fit as labels in order, later', () => {
  const { xs, ys } = linearStream(300, 2);
  const frozenCell = { ...base, optimizer: sgd(1e-30), readout: { kind: 'rls' as const } };
  const onTime = createLearner(frozenCell);
  const late = createLearner(frozenCell);
  for (let t = 0; t < xs.length; t++) {
    onTime.predict(xs[t]);
    onTime.learn(ys[t]);
    late.predict(xs[t]);
    if (t >= 5) late.learn(ys[t - 5], t - 5);
  }
  for (let t = xs.length - 5; t < xs.length; t++) late.learn(ys[t], t);
  const a = onTime.readParameters();
  const b = late.readParameters();
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  // Float32 weights: equal up to rounding (the a-priori errors meet weights a few labels apart).
  assert.ok(worst < 1e-3, `largest parameter difference ${worst}`);
});

test('an RLS readout needs mse and known options, each error naming its field', () => {
  assert.throws(() => createLearner({ ...base, loss: 'xent', readout: { kind: 'rls' } }), (e: unknown) => e instanceof InvalidSpecError && /readout/.test((e as Error).message));
  assert.throws(() => createLearner({ ...base, readout: { kind: 'rls', delta: 0 } }), /readout\.delta/);
  assert.throws(() => createLearner({ ...base, readout: { kind: 'rls', halfLife: 3 } as never }), /readout\.halfLife/);
  assert.throws(() => createLearner({ ...base, readout: { kind: 'lms' } as never }), /readout\.kind/);
});
