// Truncated BPTT (src/learners/credit/truncated-bptt.ts) beyond the per-tick gradient that
// test/gradient-oracle.test.ts checks against autodiff: the sweep every k labels, the sequence start, the flush.
// Gradients are read in double precision (test/support/double-learner.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createCell } from '../src/learners/cells/registry.js';
import type { CreditSpec } from '../src/learners/credit/registry.js';
import { createLearner, type Learner, type RecurrentLearnerSpec } from '../src/learners/learner.js';
import { adam, sgd, type GroupedOptimizerSpec } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';
import { createDoubleLearner, readParameters64 } from './support/double-learner.js';

const INPUT = 3;
const HIDDEN = 5;
const OUTPUT = 2;
const cellParamCount = createCell('gru', { inputSize: INPUT, hiddenSize: HIDDEN }).paramCount;

/** sgd(1) on the cell, so a step is minus its gradient; the readout's step is below one ulp, so it stays fixed. */
const cellOnly: GroupedOptimizerSpec = { default: sgd(1), readout: sgd(1e-300) };

function specOf(credit: CreditSpec, optimizer: RecurrentLearnerSpec['optimizer'] = cellOnly): RecurrentLearnerSpec {
  return { cell: { kind: 'gru', hiddenSize: HIDDEN }, credit, optimizer, inputSize: INPUT, outputSize: OUTPUT, seed: 9, loss: 'mse' };
}

const rng = new Random(21);
const xs = Array.from({ length: 400 }, () => Float64Array.from({ length: INPUT }, () => Math.fround(rng.normal())));
const ys = Array.from({ length: 400 }, () => Float64Array.from({ length: OUTPUT }, () => Math.fround(rng.normal())));

/** The cell's step (= minus its gradient) over `learn`, after predicting ticks 0..lastTick. */
function cellStep(spec: RecurrentLearnerSpec, lastTick: number, learn: (l: Learner) => void): Float64Array {
  const d = createDoubleLearner(spec, cellParamCount);
  for (let t = 0; t <= lastTick; t++) d.learner.predict(xs[t]);
  const before = readParameters64(d).subarray(0, cellParamCount);
  learn(d.learner);
  const after = readParameters64(d).subarray(0, cellParamCount);
  return before.map((v, i) => v - after[i]);
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let r = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    r = Math.max(r, Math.abs(b[i]));
  }
  return d / r;
}

describe('tbptt', () => {
  test('window 1 is the one-step gradient: the same bytes as immediate(0) over 300 ticks', () => {
    const a = createLearner(specOf({ rule: 'tbptt', window: 1 }, adam(0.01)));
    const b = createLearner(specOf({ rule: 'immediate', lambda: 0 }, adam(0.01)));
    for (let t = 0; t < 300; t++) {
      assert.deepEqual(Array.from(a.predict(xs[t])), Array.from(b.predict(xs[t])), `tick ${t}`);
      a.learn(ys[t]);
      b.learn(ys[t]);
    }
    assert.deepEqual(a.readParameters(), b.readParameters());
  });

  test('every k: one sweep from the newest label, each label entering at its tick (Williams & Peng)', () => {
    // Labels for ticks 7, 8, 9 with window 5 and k = 3: one sweep over ticks 5..9, in which L_7 reaches back 3
    // ticks, L_8 4 and L_9 5. Each is the k = 1 gradient with that window, so the sweep is their sum.
    const swept = cellStep(specOf({ rule: 'tbptt', window: 5, every: 3 }), 9, (l) => {
      for (const tick of [7, 8]) {
        const before = Float64Array.from(l.readParameters().subarray(0, cellParamCount));
        l.learn(ys[tick], tick);
        assert.deepEqual(Float64Array.from(l.readParameters().subarray(0, cellParamCount)), before, 'no cell step before the k-th label');
      }
      l.learn(ys[9], 9);
    });
    const sum = new Float64Array(cellParamCount);
    for (const [tick, window] of [[7, 3], [8, 4], [9, 5]]) {
      const g = cellStep(specOf({ rule: 'tbptt', window }), 9, (l) => l.learn(ys[tick], tick));
      for (let i = 0; i < cellParamCount; i++) sum[i] += g[i];
    }
    assert.ok(maxRel(swept, sum) < 1e-12, `relative gap ${maxRel(swept, sum)}`);
    // And it is not what three full windows would give.
    const full = new Float64Array(cellParamCount);
    for (const tick of [7, 8, 9]) {
      const g = cellStep(specOf({ rule: 'tbptt', window: 5 }), 9, (l) => l.learn(ys[tick], tick));
      for (let i = 0; i < cellParamCount; i++) full[i] += g[i];
    }
    assert.ok(maxRel(swept, full) > 1e-3);
  });

  test('a sweep stops at the start of the sequence', () => {
    // A learner reset before tick 3 learns tick 5 as a fresh learner that only saw ticks 3..5.
    const d = createDoubleLearner(specOf({ rule: 'tbptt', window: 5 }), cellParamCount);
    for (let t = 0; t <= 5; t++) {
      if (t === 3) d.learner.resetSequence?.();
      d.learner.predict(xs[t]);
    }
    const before = readParameters64(d).subarray(0, cellParamCount);
    d.learner.learn(ys[5], 5);
    const afterReset = readParameters64(d).subarray(0, cellParamCount).map((v, i) => before[i] - v);

    const fresh = createDoubleLearner(specOf({ rule: 'tbptt', window: 5 }), cellParamCount);
    for (let t = 3; t <= 5; t++) fresh.learner.predict(xs[t]);
    const before2 = readParameters64(fresh).subarray(0, cellParamCount);
    fresh.learner.learn(ys[5]);
    const afterFresh = readParameters64(fresh).subarray(0, cellParamCount).map((v, i) => before2[i] - v);
    assert.deepEqual(afterReset, afterFresh);

    const unreset = cellStep(specOf({ rule: 'tbptt', window: 5 }), 5, (l) => l.learn(ys[5], 5));
    assert.ok(maxRel(unreset, afterFresh) > 1e-3, 'without the reset the window reaches ticks 1 and 2');
  });

  test('resetSequence first sweeps the labels still pending, so none is lost', () => {
    const d = createDoubleLearner(specOf({ rule: 'tbptt', window: 4, every: 4 }), cellParamCount);
    for (let t = 0; t <= 5; t++) d.learner.predict(xs[t]);
    d.learner.learn(ys[4], 4);
    d.learner.learn(ys[5], 5);
    const pending = readParameters64(d).subarray(0, cellParamCount);
    d.learner.resetSequence?.();
    const flushed = readParameters64(d).subarray(0, cellParamCount);
    assert.ok(maxRel(flushed, pending) > 0, 'the pending labels stepped the cell');
    // Nothing stays pending: the next sequence's four labels make exactly one sweep, over its own ticks.
    for (let t = 6; t <= 9; t++) d.learner.predict(xs[t]);
    for (let t = 6; t <= 8; t++) d.learner.learn(ys[t], t);
    assert.deepEqual(readParameters64(d).subarray(0, cellParamCount), flushed);
    d.learner.learn(ys[9], 9);
    assert.ok(maxRel(readParameters64(d).subarray(0, cellParamCount), flushed) > 0);
  });
});
