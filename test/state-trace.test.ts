// The immediate rule's traces on the state (Cell.traceOn) and its exact decay (lambda: 'exact'), measured against
// RTRL in double precision with the parameters held fixed, as test/gradient-oracle.test.ts measures: the plain-JS
// kernels over a Float64Array heap, sgd(1) so that one learn moves the parameters by exactly minus the gradient,
// and a base learner that only predicts, of which a fork learns one label (the oracle test checks forks against
// learners that replayed the ticks).
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { ConfigError, learnerSpecOf, parseConfig } from '../src/cli/config.js';
import type { CellKind } from '../src/learners/cells/cell.js';
import { createStepCell, diagonalJacobianKinds, stepCellKinds } from '../src/learners/cells/registry.js';
import type { CreditSpec } from '../src/learners/credit/registry.js';
import { InvalidSpecError } from '../src/learners/errors.js';
import { createLearner, type RecurrentLearnerSpec } from '../src/learners/learner.js';
import { sgd, withClipping, type OptimizerSpec } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';
import { createDoubleLearner, forkDoubleLearner, learnGradient, readParameters64 } from './support/double-learner.js';

const INPUT = 3;
const HIDDEN = 5;
const OUTPUT = 2;
const T = 40;
/** Float64 rounding over T ticks of recurrences with decays below 1: far below this. */
const REL_TOL = 1e-12;
const EXACT: CreditSpec = { rule: 'immediate', lambda: 'exact' };
const RTRL: CreditSpec = { rule: 'rtrl' };

function specOf(kind: CellKind, credit: CreditSpec, optimizer: OptimizerSpec = sgd(1)): RecurrentLearnerSpec {
  return {
    cell: { kind, hiddenSize: HIDDEN }, credit, optimizer, inputSize: INPUT, outputSize: OUTPUT, seed: 5, loss: 'mse',
    maxLabelDelay: T + 4,
  };
}

const rng = new Random(77);
const xs = Array.from({ length: T }, () => Float64Array.from({ length: INPUT }, () => rng.normal()));
const ys = Array.from({ length: T }, () => Float64Array.from({ length: OUTPUT }, () => rng.normal()));

function cellParamCountOf(kind: CellKind): number {
  return createStepCell(kind, { inputSize: INPUT, hiddenSize: HIDDEN }).paramCount;
}

/**
 * The gradient of each tick's label at the initial parameters: the base predicts ticks 0..T-1 and never learns;
 * after tick t a fork learns y_t. `prepare` may set parameters on the base's heap before its first tick.
 */
function perTickGradients(spec: RecurrentLearnerSpec, prepare?: (heap: Float64Array) => void): Float64Array[] {
  const cellParamCount = cellParamCountOf(spec.cell.kind);
  const base = createDoubleLearner(spec, cellParamCount);
  prepare?.(base.heap);
  const out: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    base.learner.predict(xs[t]);
    out.push(learnGradient(forkDoubleLearner(base), ys[t], t));
  }
  return out;
}

/** The largest ||g - ref|| / ||ref|| over the cell's blocks and the readout. */
function relativeGap(kind: CellKind, g: Float64Array, ref: Float64Array): number {
  const cell = createStepCell(kind, { inputSize: INPUT, hiddenSize: HIDDEN });
  const ranges = cell.blocks.map((b) => [b.offset, b.rows * b.cols]);
  ranges.push([cell.paramCount, ref.length - cell.paramCount]);
  let worst = 0;
  for (const [from, len] of ranges) {
    let diff = 0;
    let norm = 0;
    for (let i = from; i < from + len; i++) {
      diff += (g[i] - ref[i]) ** 2;
      norm += ref[i] ** 2;
    }
    if (diff > 0) worst = Math.max(worst, Math.sqrt(diff / norm));
  }
  return worst;
}

function worstGap(kind: CellKind, gs: readonly Float64Array[], refs: readonly Float64Array[]): { gap: number; tick: number } {
  let gap = 0;
  let tick = 0;
  gs.forEach((g, t) => {
    const r = relativeGap(kind, g, refs[t]);
    if (!(r <= gap)) {
      gap = r;
      tick = t;
    }
  });
  return { gap, tick };
}

describe("lambda: 'exact' equals RTRL where ds_t/ds_{t-1} is diagonal", () => {
  test('the cells that declare a diagonal Jacobian', () => {
    assert.deepEqual(diagonalJacobianKinds(), ['min-gru', 'diagonal-rnn', 'diagonal-linear']);
  });

  for (const kind of diagonalJacobianKinds()) {
    test(`${kind}: at every tick`, (t: TestContext) => {
      const rtrl = perTickGradients(specOf(kind, RTRL));
      const { gap, tick } = worstGap(kind, perTickGradients(specOf(kind, EXACT)), rtrl);
      // The measurement tells rules apart: a scalar decay is not RTRL on these cells.
      const scalar = worstGap(kind, perTickGradients(specOf(kind, { rule: 'immediate', lambda: 0.5 })), rtrl);
      t.diagnostic(`largest relative gap ${gap.toExponential(2)} (tick ${tick}); lambda = 0.5: ${scalar.gap.toExponential(2)}`);
      assert.ok(gap < REL_TOL, `exact is ${gap} away from rtrl at tick ${tick}`);
      assert.ok(scalar.gap > 1e-3, `lambda = 0.5 came within ${scalar.gap} of rtrl`);
    });

    test(`${kind}: with global-norm clipping`, (t: TestContext) => {
      const clipped = withClipping(sgd(1), 0.05);
      const exact = perTickGradients(specOf(kind, EXACT, clipped));
      const rtrl = perTickGradients(specOf(kind, RTRL, clipped));
      const { gap, tick } = worstGap(kind, exact, rtrl);
      t.diagnostic(`largest relative gap ${gap.toExponential(2)} (tick ${tick})`);
      assert.ok(gap < REL_TOL, `clipped exact is ${gap} away from clipped rtrl at tick ${tick}`);
      // Each group clips on its own; a group whose norm came out at the bound was clipped.
      const cell = createStepCell(kind, { inputSize: INPUT, hiddenSize: HIDDEN });
      const clippedCellGroup = rtrl.some((g) => ['recurrent', 'input'].some((group) => {
        const blocks = cell.blocks.filter((b) => b.group === group);
        const norm = Math.hypot(...blocks.flatMap((b) => Array.from(g.subarray(b.offset, b.offset + b.rows * b.cols))));
        return blocks.length > 0 && Math.abs(norm - 0.05) < 1e-12;
      }));
      assert.ok(clippedCellGroup, 'no cell group was clipped: the bound is too loose to test anything');
    });

    test(`${kind}: a stale label is credited as RTRL credits it`, () => {
      // Label t + 2 first (fresh), then label t: the credit state is past t, so both rules credit the state of
      // tick t + 2 with tick t's dL/ds_t.
      const cellParamCount = cellParamCountOf(kind);
      const stale = (credit: CreditSpec) => {
        const base = createDoubleLearner(specOf(kind, credit), cellParamCount);
        const out: Float64Array[] = [];
        for (let t = 0; t < T; t++) {
          base.learner.predict(xs[t]);
          if (t < 2) continue;
          const fork = forkDoubleLearner(base);
          learnGradient(fork, ys[t], t);
          out.push(learnGradient(fork, ys[t - 2], t - 2));
          assert.equal(fork.learner.stats.staleCredit, 1);
        }
        return out;
      };
      const { gap, tick } = worstGap(kind, stale(EXACT), stale(RTRL));
      assert.ok(gap < REL_TOL, `stale exact is ${gap} away from stale rtrl at tick ${tick + 2}`);
    });

    test(`${kind}: one float of credit state per cell parameter, as a scalar trace`, () => {
      const bytes = (credit: CreditSpec) => createLearner(specOf(kind, credit), { backend: 'js' }).stateBytes;
      assert.equal(bytes(EXACT), bytes({ rule: 'immediate', lambda: 0.5 }));
    });
  }

  test('any other cell is refused, naming the field and the cells that take it', () => {
    const exactKinds: readonly CellKind[] = diagonalJacobianKinds();
    for (const kind of stepCellKinds.filter((k) => !exactKinds.includes(k))) {
      assert.throws(() => createLearner(specOf(kind, EXACT), { backend: 'js' }), (e: unknown) =>
        e instanceof InvalidSpecError && e.field === 'credit.lambda' && e.message.includes(`'${kind}'`) &&
        exactKinds.every((k) => e.message.includes(k)));
    }
    assert.throws(() => createLearner(specOf('diagonal-linear', { rule: 'immediate', lambda: 'exactly' as 'exact' }), { backend: 'js' }),
      (e: unknown) => e instanceof InvalidSpecError && e.field === 'credit.lambda');
  });

  test('a run config takes it on those cells and refuses it on any other, naming the field', () => {
    const config = (kind: CellKind) => ({
      streams: { inputSize: INPUT, outputSize: OUTPUT },
      learner: { cell: { kind, hiddenSize: HIDDEN }, credit: { rule: 'immediate', lambda: 'exact' }, optimizer: { name: 'sgd', lr: 0.01 } },
    });
    const learner = createLearner(learnerSpecOf(parseConfig(config('diagonal-linear'))), { backend: 'js' });
    assert.deepEqual((learner.spec as RecurrentLearnerSpec).credit, EXACT);
    assert.throws(() => parseConfig({ ...config('diagonal-linear'), learner: { ...config('diagonal-linear').learner, credit: { rule: 'immediate', lambda: 'exactly' } } }),
      /learner\.credit\.lambda: must be a number in \[0, 1\) or 'exact'/);
    assert.throws(() => parseConfig(config('gru')), (e: unknown) =>
      e instanceof ConfigError && /learner\.credit\.lambda: 'exact' needs a cell whose state Jacobian is diagonal/.test(e.message));
  });

  test('diagonal-linear: a label d ticks late is credited as it would have been on time, on wasm as on js', () => {
    for (const backend of ['wasm', 'js'] as const) {
      const onTime = createLearner(specOf('diagonal-linear', EXACT, sgd(0.05)), { backend });
      const late = createLearner(specOf('diagonal-linear', EXACT, sgd(0.05)), { backend });
      for (let t = 0; t <= 20; t++) onTime.predict(xs[t]);
      for (let t = 0; t < 30; t++) late.predict(xs[t]);
      onTime.learn(ys[20], 20);
      late.learn(ys[20], 20);
      assert.deepEqual(late.readParameters(), onTime.readParameters(), backend);
    }
  });

  test('diagonal-linear: the wasm and js backends agree to float32 tolerance over 500 ticks', () => {
    const wasm = createLearner(specOf('diagonal-linear', EXACT, withClipping(sgd(0.05), 1)), { backend: 'wasm' });
    const js = createLearner(specOf('diagonal-linear', EXACT, withClipping(sgd(0.05), 1)), { backend: 'js' });
    assert.equal(wasm.backend, 'wasm');
    let maxDiff = 0;
    for (let t = 0; t < 500; t++) {
      const a = wasm.predict(xs[t % T]);
      const b = js.predict(xs[t % T]);
      for (let j = 0; j < OUTPUT; j++) maxDiff = Math.max(maxDiff, Math.abs(a[j] - b[j]));
      wasm.learn(ys[t % T]);
      js.learn(ys[t % T]);
    }
    assert.ok(maxDiff < 1e-3, `max |wasm - js| = ${maxDiff}`);
  });
});

describe('diagonal-linear keeps its trace on the state', () => {
  test('with every a_i = lambda = 0.5 the scalar trace is RTRL; a trace on tanh(h) is not', (t: TestContext) => {
    const kind = 'diagonal-linear';
    const lambda = 0.5;
    const n = HIDDEN;
    const cellParamCount = cellParamCountOf(kind);
    // Blocks nu, U, b from offset 0; nu = 0 makes a = sig(0) = 0.5 exactly.
    const halfDecay = (heap: Float64Array) => heap.fill(0, 0, n);
    const traced = perTickGradients(specOf(kind, { rule: 'immediate', lambda }), halfDecay);
    const rtrl = perTickGradients(specOf(kind, RTRL), halfDecay);
    const stateGap = worstGap(kind, traced, rtrl);
    t.diagnostic(`state trace vs rtrl: ${stateGap.gap.toExponential(2)}`);
    assert.ok(stateGap.gap < REL_TOL, `the state trace is ${stateGap.gap} away from rtrl at tick ${stateGap.tick}`);

    // Both definitions by hand from the per-tick partials of h_t,i: nu_i -> a(1 - a) h_{t-1,i}, U_ij -> x_t,j,
    // b_i -> 1. The state trace weighs their decayed sum by the labelled tick's 1 - o_t^2, the output trace each
    // partial by its own tick's.
    const base = createDoubleLearner(specOf(kind, RTRL), cellParamCount);
    halfDecay(base.heap);
    const p = readParameters64(base);
    const U = n;
    const b = n + n * INPUT;
    const V = cellParamCount;
    const c = V + OUTPUT * n;
    const onState = new Float64Array(cellParamCount);
    const onOutput = new Float64Array(cellParamCount);
    const h = new Float64Array(n);
    let handGap = 0;
    const outputGaps: number[] = [];
    for (let tick = 0; tick < T; tick++) {
      const partial = new Float64Array(cellParamCount);
      for (let i = 0; i < n; i++) {
        partial[i] = 0.25 * h[i];
        let s = 0.5 * h[i] + p[b + i];
        for (let j = 0; j < INPUT; j++) {
          s += p[U + i * INPUT + j] * xs[tick][j];
          partial[U + i * INPUT + j] = xs[tick][j];
        }
        partial[b + i] = 1;
        h[i] = s;
      }
      const o = h.map(Math.tanh);
      const gOut = new Float64Array(n);
      for (let r = 0; r < OUTPUT; r++) {
        let yhat = p[c + r];
        for (let i = 0; i < n; i++) yhat += p[V + r * n + i] * o[i];
        for (let i = 0; i < n; i++) gOut[i] += p[V + r * n + i] * (yhat - ys[tick][r]);
      }
      const unit = (q: number) => (q < U ? q : q < b ? Math.floor((q - U) / INPUT) : q - b);
      const byState = Float64Array.from(rtrl[tick]);
      const byOutput = Float64Array.from(rtrl[tick]);
      for (let q = 0; q < cellParamCount; q++) {
        const i = unit(q);
        onState[q] = lambda * onState[q] + partial[q];
        onOutput[q] = lambda * onOutput[q] + (1 - o[i] * o[i]) * partial[q];
        byState[q] = gOut[i] * (1 - o[i] * o[i]) * onState[q];
        byOutput[q] = gOut[i] * onOutput[q];
      }
      handGap = Math.max(handGap, relativeGap(kind, byState, rtrl[tick]));
      if (tick > 0) outputGaps.push(relativeGap(kind, byOutput, rtrl[tick]));
    }
    // At tick 0 the two traces hold one partial each and agree; from tick 1 on they part.
    const sorted = [...outputGaps].sort((x, y) => x - y);
    t.diagnostic(`by hand: state trace vs rtrl ${handGap.toExponential(2)}; tanh-output trace vs rtrl from tick 1: ` +
      `min ${sorted[0].toFixed(3)}, median ${sorted[sorted.length >> 1].toFixed(3)}, max ${sorted[sorted.length - 1].toFixed(3)}`);
    assert.ok(handGap < REL_TOL, `the hand-computed state trace is ${handGap} away from rtrl: the partials are wrong`);
    assert.ok(sorted[0] > 1e-2 && sorted[sorted.length - 1] > 0.5,
      `a trace on tanh(h) came as close as ${sorted[0]} to rtrl, and at most ${sorted[sorted.length - 1]} away`);
  });
});
