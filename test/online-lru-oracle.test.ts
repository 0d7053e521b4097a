// The online LRU's hand-derived gradients against full BPTT through TensorFlow.js autodiff (DESIGN.md section 8),
// on the twin in test/support/tf-lru.ts, written from the math alone.
//
// What the paper claims and this checks (Zucchet et al. 2023): within a layer the online gradient is exact, and
// across layers errors travel by same-tick (spatial) backpropagation only. So, at every tick t, the online
// gradient of L_t equals the BPTT gradient of L_t over ticks 0..t for
//  - a single layer: its LRU parameters (nu, theta, gamma, B) and everything after them (C, D, GLU, readout);
//  - two layers: the top layer's likewise, since nothing below depends on its parameters;
// and not for the parameters before a recurrence (encoder, norms, lower layers), which take only same-tick
// credit: the test shows they differ, so it would notice if they suddenly agreed. At tick 0 there is no past, so
// there every block must match: that checks the spatial backpropagation through norms, GLUs and layers.
// The learner runs in float64 (JS kernels, Float64Array heap) with sgd(1), one fresh copy per tick t at the
// initial parameters; tfjs runs float32, hence the relative tolerance.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { LruCell } from '../src/learners/cells/lru.js';
import { createCell } from '../src/learners/cells/registry.js';
import type { LearnerSpec } from '../src/learners/learner.js';
import { sgd } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';
import { createDoubleLearner, learnGradient, readParameters64 } from './support/double-learner.js';
import { lruBlockShapes, tfLruBpttGradient, tfLruPredictions, type TfLruOptions } from './support/tf-lru.js';

const INPUT = 3;
const HIDDEN = 4;
const UNITS = 3;
const OUTPUT = 2;
const T = 8;
const REL_TOL = 2e-3;
const FLOOR = 1e-5;

before(async () => {
  await tf.setBackend('cpu');
});

interface Case {
  readonly layers: number;
  readonly loss: 'mse' | 'xent';
}

function sequence(loss: 'mse' | 'xent', seed: number) {
  const rng = new Random(seed);
  const xs: number[][] = [];
  const ys: number[][] = [];
  for (let t = 0; t < T; t++) {
    xs.push(Array.from({ length: INPUT }, () => Math.fround(rng.normal())));
    if (loss === 'mse') ys.push(Array.from({ length: OUTPUT }, () => Math.fround(rng.normal())));
    else {
      const label = Math.floor(rng.next() * OUTPUT);
      ys.push(Array.from({ length: OUTPUT }, (_, i) => (i === label ? 1 : 0)));
    }
  }
  return { xs, ys };
}

function relativeGap(got: Float64Array, want: Float64Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < got.length; i++) {
    diff += (got[i] - want[i]) ** 2;
    norm += want[i] ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), FLOOR);
}

/** Blocks the online gradient must get exactly: the top layer's from its LRU on, and the readout. */
function exactBlocks(layers: number): (name: string) => boolean {
  const top = `l${layers}.`;
  return (name) => name === 'V' || name === 'c' || (name.startsWith(top) && !name.startsWith(`${top}norm.`));
}

for (const { layers, loss } of [
  { layers: 1, loss: 'mse' }, { layers: 1, loss: 'xent' }, { layers: 2, loss: 'mse' },
] satisfies Case[]) {
  describe(`online-lru against BPTT: ${layers} layer${layers > 1 ? 's' : ''}, ${loss}`, () => {
    const options: TfLruOptions = { inputSize: INPUT, hiddenSize: HIDDEN, units: UNITS, layers, outputSize: OUTPUT, loss };
    const spec: LearnerSpec = {
      cell: { kind: 'lru', hiddenSize: HIDDEN, units: UNITS, layers, rMin: 0.5, rMax: 0.95 },
      credit: { rule: 'online-lru' },
      optimizer: sgd(1),
      inputSize: INPUT,
      outputSize: OUTPUT,
      seed: 7 + layers,
      loss,
      maxLabelDelay: 4,
    };
    const cell = createCell('lru', { inputSize: INPUT, hiddenSize: HIDDEN, units: UNITS, layers, rMin: 0.5, rMax: 0.95 }) as LruCell;
    const shapes = lruBlockShapes(options);
    const blocks = [...cell.blocks.map((b) => ({ name: b.name, offset: b.offset, size: b.rows * b.cols })),
      { name: 'V', offset: cell.paramCount, size: OUTPUT * HIDDEN },
      { name: 'c', offset: cell.paramCount + OUTPUT * HIDDEN, size: OUTPUT }];
    const { xs, ys } = sequence(loss, 100 + layers);

    test('the learner and the twin agree on the layout and on every prediction', () => {
      assert.deepEqual(blocks.map((b) => [b.name, b.size]), shapes.map((s) => [s.name, s.rows * s.cols]));
      const d = createDoubleLearner(spec, cell.paramCount);
      const theta = readParameters64(d);
      const want = tfLruPredictions(options, theta, xs);
      for (let t = 0; t < T; t++) {
        const got = d.learner.predict(xs[t]);
        for (let i = 0; i < OUTPUT; i++) {
          assert.ok(Math.abs(got[i] - want[t][i]) < 1e-4 * Math.max(1, Math.abs(want[t][i])),
            `tick ${t} output ${i}: learner ${got[i]}, twin ${want[t][i]}`);
        }
      }
    });

    test('at every tick: exact where the paper says, same-tick only before a recurrence', () => {
      const isExact = exactBlocks(layers);
      const worstExact = { gap: 0, where: '' };
      let largestApproximate = 0;
      for (let t = 0; t < T; t++) {
        const d = createDoubleLearner(spec, cell.paramCount);
        const theta = readParameters64(d);
        for (let k = 0; k <= t; k++) d.learner.predict(xs[k]);
        const got = learnGradient(d, ys[t]);
        const want = tfLruBpttGradient(options, theta, xs, ys, t);
        for (const b of blocks) {
          const gap = relativeGap(got.subarray(b.offset, b.offset + b.size), want.subarray(b.offset, b.offset + b.size));
          // At tick 0 there is no past, so same-tick credit is all the credit there is: every block is exact.
          if (isExact(b.name) || t === 0) {
            assert.ok(gap < REL_TOL, `tick ${t}, ${b.name}: relative gap ${gap.toExponential(2)} from BPTT`);
            if (gap > worstExact.gap) Object.assign(worstExact, { gap, where: `tick ${t} ${b.name}` });
          } else if (t >= 2) largestApproximate = Math.max(largestApproximate, gap);
        }
      }
      // The blocks before a recurrence take same-tick credit only; from tick 2 on that must show.
      assert.ok(largestApproximate > 1e-2, `the same-tick-only blocks matched BPTT (largest gap ${largestApproximate})`);
      assert.ok(worstExact.gap < REL_TOL, `worst exact gap ${worstExact.gap} at ${worstExact.where}`);
    });
  });
}

describe("online-lru mode 'bptt': backpropagation through time over the label window", () => {
  for (const { layers, loss } of [{ layers: 1, loss: 'xent' }, { layers: 3, loss: 'mse' }] satisfies Case[]) {
    test(`${layers} layer${layers > 1 ? 's' : ''}, ${loss}: every block's gradient is BPTT's at every tick`, () => {
      const options: TfLruOptions = { inputSize: INPUT, hiddenSize: HIDDEN, units: UNITS, layers, outputSize: OUTPUT, loss };
      const cell = createCell('lru', { inputSize: INPUT, hiddenSize: HIDDEN, units: UNITS, layers, rMin: 0.5, rMax: 0.95 }) as LruCell;
      const spec: LearnerSpec = {
        cell: { kind: 'lru', hiddenSize: HIDDEN, units: UNITS, layers, rMin: 0.5, rMax: 0.95 },
        credit: { rule: 'online-lru', mode: 'bptt' },
        optimizer: sgd(1),
        inputSize: INPUT,
        outputSize: OUTPUT,
        seed: 21,
        loss,
        maxLabelDelay: T, // the window holds the whole sequence
      };
      const { xs, ys } = sequence(loss, 300 + layers);
      for (let t = 0; t < T; t++) {
        const d = createDoubleLearner(spec, cell.paramCount);
        const theta = readParameters64(d);
        for (let k = 0; k <= t; k++) d.learner.predict(xs[k]);
        const got = learnGradient(d, ys[t]);
        const want = tfLruBpttGradient(options, theta, xs, ys, t);
        const gap = relativeGap(got, want);
        assert.ok(gap < REL_TOL, `tick ${t}: relative gap ${gap.toExponential(2)} from BPTT over all ${got.length} parameters`);
        for (const b of cell.blocks) {
          const span = (g: Float64Array) => g.subarray(b.offset, b.offset + b.rows * b.cols);
          const blockGap = relativeGap(span(got), span(want));
          assert.ok(blockGap < REL_TOL, `tick ${t}, ${b.name}: relative gap ${blockGap.toExponential(2)}`);
        }
      }
    });
  }

  test('the window stops at the sequence start and at the ring', () => {
    const options: TfLruOptions = { inputSize: INPUT, hiddenSize: HIDDEN, units: UNITS, layers: 2, outputSize: OUTPUT, loss: 'mse' };
    const cell = createCell('lru', { inputSize: INPUT, hiddenSize: HIDDEN, units: UNITS, layers: 2 }) as LruCell;
    const spec = (maxLabelDelay: number): LearnerSpec => ({
      cell: { kind: 'lru', hiddenSize: HIDDEN, units: UNITS, layers: 2 }, credit: { rule: 'online-lru', mode: 'bptt' },
      optimizer: sgd(1), inputSize: INPUT, outputSize: OUTPUT, seed: 4, loss: 'mse', maxLabelDelay,
    });
    const { xs, ys } = sequence('mse', 77);
    // After resetSequence at tick 3, ticks 3..7 are a sequence of their own: BPTT over xs[3..7] from a zero state.
    const d = createDoubleLearner(spec(T), cell.paramCount);
    const theta = readParameters64(d);
    for (let k = 0; k < 3; k++) d.learner.predict(xs[k]);
    d.learner.resetSequence!();
    for (let k = 3; k < T; k++) d.learner.predict(xs[k]);
    const got = learnGradient(d, ys[T - 1]);
    const want = tfLruBpttGradient(options, theta, xs.slice(3), ys.slice(3), T - 4);
    assert.ok(relativeGap(got, want) < REL_TOL, `after a reset: gap ${relativeGap(got, want)}`);
    // A ring of 4 ticks: the gradient of L_7 through ticks 4..7 only, which differs from full BPTT.
    const short = createDoubleLearner(spec(4), cell.paramCount);
    for (let k = 0; k < T; k++) short.learner.predict(xs[k]);
    const truncated = learnGradient(short, ys[T - 1]);
    const full = tfLruBpttGradient(options, theta, xs, ys, T - 1);
    assert.ok(relativeGap(truncated, full) > 1e-3, 'a 4-tick window gave the full-sequence gradient');
  });
});

describe('online-lru against BPTT: the cheaper modes are not exact', () => {
  test('truncated-1 and spatial miss the recurrent blocks\' BPTT gradient that online gets', () => {
    const options: TfLruOptions = { inputSize: INPUT, hiddenSize: HIDDEN, units: UNITS, layers: 1, outputSize: OUTPUT, loss: 'mse' };
    const cell = createCell('lru', { inputSize: INPUT, hiddenSize: HIDDEN, units: UNITS, layers: 1, rMin: 0.5, rMax: 0.95 }) as LruCell;
    const { xs, ys } = sequence('mse', 101);
    const t = T - 1;
    const nuBlock = cell.blocks.find((b) => b.name === 'l1.nu_log')!;
    const gapOf = (mode: 'online' | 'truncated-1' | 'spatial') => {
      const d = createDoubleLearner({
        cell: { kind: 'lru', hiddenSize: HIDDEN, units: UNITS, layers: 1, rMin: 0.5, rMax: 0.95 },
        credit: { rule: 'online-lru', mode }, optimizer: sgd(1), inputSize: INPUT, outputSize: OUTPUT, seed: 8, loss: 'mse',
      }, cell.paramCount);
      const theta = readParameters64(d);
      for (let k = 0; k <= t; k++) d.learner.predict(xs[k]);
      const got = learnGradient(d, ys[t]);
      const want = tfLruBpttGradient(options, theta, xs, ys, t);
      const span = (g: Float64Array) => g.subarray(nuBlock.offset, nuBlock.offset + nuBlock.rows);
      return relativeGap(span(got), span(want));
    };
    assert.ok(gapOf('online') < REL_TOL);
    assert.ok(gapOf('truncated-1') > 0.05, 'truncated-1 matched BPTT on nu_log');
    assert.ok(Math.abs(gapOf('spatial') - 1) < 1e-9, 'spatial gives nu_log no gradient at all (relative gap 1)');
  });
});
