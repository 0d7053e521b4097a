// Independent sequences (Learner.resetSequence) and the per-output sigmoid loss ('bce'), which the copy task
// needs: each sequence starts from a zero state, and each of its 7 bits is its own binary prediction.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLearner, type LearnerSpec, type RecurrentLearnerSpec } from '../src/learners/learner.js';
import { sgd } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';
import { createDoubleLearner, learnGradient } from './support/double-learner.js';

const M = 3;
const OUT = 2;

function inputs(seed: number, ticks: number): number[][] {
  const rng = new Random(seed);
  return Array.from({ length: ticks }, () => Array.from({ length: M }, () => rng.normal()));
}

const specs: { name: string; spec: RecurrentLearnerSpec }[] = [
  {
    name: 'lru + online-lru',
    spec: {
      cell: { kind: 'lru', hiddenSize: 6, units: 4, layers: 2 }, credit: { rule: 'online-lru' }, optimizer: sgd(1),
      inputSize: M, outputSize: OUT, seed: 5, loss: 'mse', maxLabelDelay: 8,
    },
  },
  {
    name: 'gru + immediate(0.5)',
    spec: {
      cell: { kind: 'gru', hiddenSize: 5 }, credit: { rule: 'immediate', lambda: 0.5 }, optimizer: sgd(1),
      inputSize: M, outputSize: OUT, seed: 5, loss: 'mse', maxLabelDelay: 8,
    },
  },
  {
    name: 'tanh-rnn + rtrl',
    spec: {
      cell: { kind: 'tanh-rnn', hiddenSize: 5 }, credit: { rule: 'rtrl' }, optimizer: sgd(1),
      inputSize: M, outputSize: OUT, seed: 5, loss: 'mse', maxLabelDelay: 8,
    },
  },
];

describe('resetSequence', () => {
  for (const { name, spec } of specs) {
    test(`${name}: after a reset, predictions and gradients no longer depend on what came before`, () => {
      const cellParams = createLearner(spec).paramCount - (OUT * spec.cell.hiddenSize + OUT);
      const fresh = createDoubleLearner(spec, cellParams);
      const used = createDoubleLearner(spec, cellParams);
      // Same parameters (same seed, nothing learned), different histories: 9 ticks of other inputs.
      for (const x of inputs(1, 9)) used.learner.predict(x);
      used.learner.resetSequence!();
      const xs = inputs(2, 5);
      for (const x of xs) {
        assert.deepEqual(Array.from(used.learner.predict(x)), Array.from(fresh.learner.predict(x)));
      }
      // The credit state (traces, sensitivities) restarted too: the gradient of the last tick is the same.
      const y = [0.3, -0.2];
      const a = learnGradient(used, y);
      const b = learnGradient(fresh, y);
      assert.ok(a.some((v) => v !== 0), 'the gradient is not trivially zero');
      assert.deepEqual(Array.from(a), Array.from(b));
    });
  }

  test('without the reset the history shows (the test above would notice a no-op)', () => {
    const spec = specs[0].spec;
    const a = createLearner(spec);
    const b = createLearner(spec);
    for (const x of inputs(1, 9)) a.predict(x);
    const x = inputs(2, 1)[0];
    assert.notDeepEqual(Array.from(a.predict(x)), Array.from(b.predict(x)));
  });
});

describe("loss 'bce'", () => {
  test('each output is a sigmoid, and the readout bias takes dL/dz = yhat - y per output', () => {
    const spec: LearnerSpec = {
      cell: { kind: 'tanh-rnn', hiddenSize: 4 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: sgd(1),
      inputSize: M, outputSize: 3, seed: 2, loss: 'bce',
    };
    const cellParams = 4 * 4 + 4 * M + 4;
    const d = createDoubleLearner(spec, cellParams);
    const yhat = Array.from(d.learner.predict([0.5, -1, 2]));
    // Independent probabilities: each in (0, 1), and they need not sum to 1 as a softmax's would.
    for (const p of yhat) assert.ok(p > 0 && p < 1);
    assert.ok(Math.abs(yhat.reduce((s, p) => s + p, 0) - 1) > 1e-3);
    const y = [1, 0, 1];
    const grad = learnGradient(d, y);
    const cAt = cellParams + 3 * 4;
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(grad[cAt + i] - (yhat[i] - y[i])) < 1e-6, `output ${i}`);
  });

  test('an unknown loss names the three', () => {
    assert.throws(() => createLearner({
      cell: { kind: 'gru', hiddenSize: 4 }, credit: { rule: 'rtrl' }, optimizer: sgd(0.1), inputSize: M, outputSize: 2,
      seed: 1, loss: 'hinge' as 'mse',
    }), /'mse', 'xent' or 'bce'/);
  });
});
