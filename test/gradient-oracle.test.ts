// The hand-derived gradients of every cell under every credit rule, with the squared-error loss and with softmax
// cross-entropy, checked against TensorFlow.js autodiff (DESIGN.md section 8). The learner runs on the plain-JS kernels over a Float64Array heap, with sgd(1), so one
// learn moves the parameters by exactly minus the gradient: grad = theta_before - theta_after. The oracle runs
// the cells' TensorFlow.js twins (test/support/tf-cells.ts, written from the cells' doc comments) in float32.
//
//  - immediate, lambda = 0: the one-step gradient of L_t with s_{t-1} held constant.
//  - rtrl: the full-BPTT gradient of L_t over ticks 0..t from s_{-1} = 0, all parameters fixed at their init.
//  - immediate, lambda = 0.5: dL_t/do_t[unit(p)] * sum_{k<=t} lambda^{t-k} d o_k[unit(p)] / d theta_p, each
//    partial one-step (s_{k-1} held constant), from per-unit tfjs Jacobians; readout blocks as for lambda = 0.
//    For cells that keep the trace on the state (Cell.traceOn), the same with s in place of o: dL_t/ds_t[unit(p)]
//    and d s_k[unit(p)] / d theta_p. The Jacobians also check the unit alignment the trace relies on (d o_k[i]/d
//    theta, or d s_k[i]/d theta, is zero off row i).
//  - immediate, lambda = 'exact', on the cells with a diagonal state Jacobian only: the full-BPTT gradient, as rtrl.
//  - tbptt, window W: the gradient of L_t through ticks t-W+1..t, with s_{t-W} held constant (full BPTT while t < W).
// Before any gradient, the learner's predictions are checked against the twin's forward pass.
//
// Fixed parameters at every tick: a base learner predicts ticks 0..T-1 and never learns (maxLabelDelay > T, so
// every tick stays in the ring), and the gradient of tick t is read from a copy that learns y_t for tick t once.
// The copy is made twice: by base.fork({ frozen: false }), and by replaying ticks 0..t into a fresh learner. The
// replayed copy is what the oracle checks; the fork must then learn bit for bit like it.
import assert from 'node:assert/strict';
import { before, describe, test, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { Cell, CellKind } from '../src/learners/cells/cell.js';
import { cellKinds, createCell, diagonalJacobianKinds, hasDefaultOutputBypass, stepCellKinds } from '../src/learners/cells/registry.js';
import type { CreditSpec } from '../src/learners/credit/registry.js';
import { createJsKernels } from '../src/learners/kernels/js-kernels.js';
import { createLearner, type Learner, type LearnerSpec } from '../src/learners/learner.js';
import { sgd } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';
import { tfCell, tfLoss, tfPrediction, tfReadout, type TfCell, type TfParams } from './support/tf-cells.js';

const INPUT = 3;
const HIDDEN = 4;
const OUTPUT = 2;
const T = 12;
const MAX_LABEL_DELAY = 16; // > T: no tick leaves the ring, so the rules advance lazily over the whole sequence
const LAMBDA = 0.5;
/** tbptt's window: shorter than the sequence, so ticks W..T-1 check the truncation itself. */
const WINDOW = 5;
const LEAK = 0.3;
const SEED = 11;
/** ||g - g_tf|| / max(||g_tf||, FLOOR) per block: tfjs computes in float32, the learner in float64. */
const REL_TOL = 1e-3;
const FLOOR = 1e-6;
/** Predictions: the learner's forward against the twin's. */
const PRED_TOL = 1e-5;

type Loss = 'mse' | 'xent';
type RuleName = 'immediate(0)' | 'rtrl' | `immediate(${typeof LAMBDA})` | 'immediate(exact)' | `tbptt(${typeof WINDOW})`;

const rules: readonly { name: RuleName; credit: CreditSpec }[] = [
  { name: 'immediate(0)', credit: { rule: 'immediate', lambda: 0 } },
  { name: 'rtrl', credit: { rule: 'rtrl' } },
  { name: `immediate(${LAMBDA})`, credit: { rule: 'immediate', lambda: LAMBDA } },
  { name: `tbptt(${WINDOW})`, credit: { rule: 'tbptt', window: WINDOW } },
];
const exactRule = { name: 'immediate(exact)', credit: { rule: 'immediate', lambda: 'exact' } } as const;

/** The rules a cell takes: 'exact' only where the cell declares a diagonal state Jacobian. */
function rulesOf(kind: CellKind): readonly { name: RuleName; credit: CreditSpec }[] {
  return diagonalJacobianKinds().includes(kind) ? [...rules, exactRule] : rules;
}

// ---------------------------------------------------------------------------------------------------------------
// The learner in double precision.

// The kernels factory is called once per learner (fork included); the last heap it made belongs to the newest one.
let lastHeap: Float64Array | null = null;
function doubleKernels(floats: number) {
  const heap = new Float64Array(floats);
  lastHeap = heap;
  return createJsKernels(heap as unknown as Float32Array);
}

interface DoubleLearner {
  readonly learner: Learner;
  readonly heap: Float64Array;
}

function capture(make: () => Learner): DoubleLearner {
  lastHeap = null;
  const learner = make();
  const heap = lastHeap as Float64Array | null;
  assert.ok(heap, 'the learner did not build its kernels through options.kernels');
  return { learner, heap };
}

/**
 * Every parameter in double precision, in readParameters() order. readParameters() copies into a Float32Array,
 * which would round the difference theta_before - theta_after; so the values come from the Float64 heap, where
 * the learner places the cell's parameters first and the readout's at the next multiple of 16 floats, and each is
 * checked to round to exactly what readParameters() returns.
 */
function readParameters64(d: DoubleLearner, cellParamCount: number): Float64Array {
  const p32 = d.learner.readParameters() as Float32Array | Float64Array;
  if (p32 instanceof Float64Array) return Float64Array.from(p32);
  const total = d.learner.paramCount;
  const readoutAt = (cellParamCount + 15) & ~15;
  const p64 = new Float64Array(total);
  p64.set(d.heap.subarray(0, cellParamCount), 0);
  p64.set(d.heap.subarray(readoutAt, readoutAt + total - cellParamCount), cellParamCount);
  for (let i = 0; i < total; i++) {
    if (Math.fround(p64[i]) !== p32[i]) {
      throw new Error(`parameter ${i}: the Float64 heap holds ${p64[i]} but readParameters() gives ${p32[i]}; ` +
        'the arena layout changed, update readParameters64 in this test');
    }
  }
  return p64;
}

/** One learn with sgd(1): the gradient is exactly theta_before - theta_after. */
function learnGradient(d: DoubleLearner, cellParamCount: number, y: ArrayLike<number>, tick: number, what: string) {
  const beforeLearn = readParameters64(d, cellParamCount);
  const outcome = d.learner.learn(y, tick);
  assert.equal(outcome, 'applied', `${what}: learn returned '${outcome}'`);
  const afterLearn = readParameters64(d, cellParamCount);
  return beforeLearn.map((v, i) => v - afterLearn[i]);
}

// ---------------------------------------------------------------------------------------------------------------
// Problems and blocks.

interface BlockInfo {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  /** Offset in the full parameter vector (cell blocks, then V, c, D). */
  readonly offset: number;
  readonly size: number;
  readonly readout: boolean;
}

interface Problem {
  readonly kind: CellKind;
  readonly loss: Loss;
  readonly bypass: boolean;
  readonly blocks: readonly BlockInfo[];
  readonly cellParamCount: number;
  readonly paramCount: number;
  readonly xs: readonly Float64Array[];
  readonly ys: readonly Float64Array[];
  readonly twin: TfCell;
  /** Where the learner keeps the cell's eligibility traces (Cell.traceOn). */
  readonly traceOn: 'state' | 'output';
  spec(credit: CreditSpec): LearnerSpec;
}

function problemOf(kind: CellKind, loss: Loss): Problem {
  const leak = kind === 'leaky-rnn' ? LEAK : undefined;
  const cell = createCell(kind, { inputSize: INPUT, hiddenSize: HIDDEN, leak });
  const bypass = hasDefaultOutputBypass(kind);
  const blocks: BlockInfo[] = [];
  let at = 0;
  const add = (name: string, rows: number, cols: number, readout: boolean) => {
    blocks.push({ name, rows, cols, offset: at, size: rows * cols, readout });
    at += rows * cols;
  };
  for (const b of cell.blocks) add(b.name, b.rows, b.cols, false);
  const cellParamCount = at;
  add('V', OUTPUT, HIDDEN, true);
  add('c', OUTPUT, 1, true);
  if (bypass) add('D', OUTPUT, INPUT, true);

  const twin = tfCell(kind, { inputSize: INPUT, hiddenSize: HIDDEN, leak });
  assert.deepEqual(cell.blocks.map((b) => b.name), twin.blockNames, `${kind}: the tfjs twin's blocks`);
  assert.equal(cell.stateSize, twin.stateSize, `${kind}: the tfjs twin's state size`);

  const rng = new Random(1000 + cellKinds.indexOf(kind) + (loss === 'xent' ? 500 : 0));
  const xs: Float64Array[] = [];
  const ys: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    // Inputs are exactly representable in float32, so learner and twin see the same x_t and y_t.
    xs.push(Float64Array.from({ length: INPUT }, () => Math.fround(rng.normal())));
    if (loss === 'mse') {
      ys.push(Float64Array.from({ length: OUTPUT }, () => Math.fround(rng.normal())));
    } else {
      const label = Math.min(OUTPUT - 1, Math.floor(rng.next() * OUTPUT));
      ys.push(Float64Array.from({ length: OUTPUT }, (_, i) => (i === label ? 1 : 0)));
    }
  }
  return {
    kind, loss, bypass, blocks, cellParamCount, paramCount: at, xs, ys, twin,
    traceOn: (cell as Partial<Cell>).traceOn ?? 'output',
    spec: (credit) => ({
      cell: { kind, hiddenSize: HIDDEN, ...(leak === undefined ? {} : { leak }) },
      credit,
      optimizer: sgd(1),
      inputSize: INPUT,
      outputSize: OUTPUT,
      seed: SEED,
      loss,
      maxLabelDelay: MAX_LABEL_DELAY,
    }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The learner's side: predictions and per-tick gradients at the initial parameters.

interface LearnerRun {
  readonly theta0: Float64Array;
  readonly predictions: Float64Array[];
  /** Gradient of tick t, from a copy that replayed ticks 0..t. */
  readonly replayed: Float64Array[];
  /** Gradient of tick t, from base.fork({ frozen: false }) after tick t. */
  readonly forked: Float64Array[];
}

function runLearner(problem: Problem, credit: CreditSpec, rule: string): LearnerRun {
  const spec = problem.spec(credit);
  const base = capture(() => createLearner(spec, { kernels: doubleKernels }));
  assert.equal(base.learner.paramCount, problem.paramCount, `${problem.kind}: parameter count`);
  const theta0 = readParameters64(base, problem.cellParamCount);
  const predictions: Float64Array[] = [];
  const replayed: Float64Array[] = [];
  const forked: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    predictions.push(Float64Array.from(base.learner.predict(problem.xs[t])));
    const what = `${problem.kind} ${problem.loss} ${rule} tick ${t}`;

    const fork = capture(() => base.learner.fork({ frozen: false }));
    forked.push(learnGradient(fork, problem.cellParamCount, problem.ys[t], t, `${what} (fork)`));

    const replay = capture(() => createLearner(spec, { kernels: doubleKernels }));
    for (let k = 0; k <= t; k++) replay.learner.predict(problem.xs[k]);
    replayed.push(learnGradient(replay, problem.cellParamCount, problem.ys[t], t, `${what} (replay)`));
  }
  // The base never learned: its parameters are still the initial ones.
  assert.deepEqual(readParameters64(base, problem.cellParamCount), theta0, `${problem.kind} ${rule}: base learner moved`);
  return { theta0, predictions, replayed, forked };
}

// ---------------------------------------------------------------------------------------------------------------
// The oracle's side.

/** Runs fn inside tf.tidy and copies the tensors it returns out as Float64Arrays. */
function tidyRead(fn: () => tf.Tensor[]): Float64Array[] {
  let out: Float64Array[] = [];
  tf.tidy(() => {
    out = fn().map((t) => Float64Array.from(t.dataSync()));
  });
  return out;
}

/** tf.grads, with zeros for an argument the output does not depend on (tf.grads leaves those undefined). */
function gradsOf(f: (...args: tf.Tensor[]) => tf.Tensor, args: tf.Tensor[]): tf.Tensor[] {
  const grads = tf.grads(f)(args);
  return args.map((a, i) => grads[i] ?? tf.zerosLike(a));
}

function concat(parts: readonly Float64Array[], length: number): Float64Array {
  const out = new Float64Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  assert.equal(at, length);
  return out;
}

/** The initial parameters, the inputs and labels, and the twin's forward pass, as tensors (disposed by `dispose`). */
class Oracle {
  readonly params: tf.Tensor2D[];
  readonly x: tf.Tensor2D[];
  readonly y: tf.Tensor2D[];
  /** states[t + 1] = s_t; states[0] = s_{-1} = 0. */
  readonly states: tf.Tensor2D[];
  readonly outputs: tf.Tensor2D[];
  readonly predictions: Float64Array[];

  constructor(private readonly problem: Problem, theta0: Float64Array) {
    this.params = problem.blocks.map((b) =>
      tf.tensor2d(Float32Array.from(theta0.subarray(b.offset, b.offset + b.size)), [b.rows, b.cols]));
    this.x = problem.xs.map((x) => tf.tensor2d(Float32Array.from(x), [INPUT, 1]));
    this.y = problem.ys.map((y) => tf.tensor2d(Float32Array.from(y), [OUTPUT, 1]));
    const forward = tf.tidy(() => {
      const P = this.named(this.params);
      const states: tf.Tensor2D[] = [tf.zeros([problem.twin.stateSize, 1])];
      const outputs: tf.Tensor2D[] = [];
      const predictions: tf.Tensor2D[] = [];
      for (let t = 0; t < T; t++) {
        const { s, o } = problem.twin.step(P, this.x[t], states[t]);
        states.push(s);
        outputs.push(o);
        predictions.push(tfPrediction(tfReadout(P, o, this.x[t], problem.bypass), problem.loss));
      }
      return { states, outputs, predictions };
    });
    this.states = forward.states;
    this.outputs = forward.outputs;
    this.predictions = forward.predictions.map((p) => Float64Array.from(p.dataSync()));
    tf.dispose(forward.predictions);
  }

  named(list: readonly tf.Tensor[]): TfParams {
    const p: Record<string, tf.Tensor2D> = {};
    this.problem.blocks.forEach((b, i) => {
      p[b.name] = list[i] as tf.Tensor2D;
    });
    return p;
  }

  private lossAt(P: TfParams, o: tf.Tensor2D, t: number): tf.Scalar {
    return tfLoss(tfReadout(P, o, this.x[t], this.problem.bypass), this.y[t], this.problem.loss);
  }

  /** dL_t/dtheta with s_{t-1} held constant (one step). */
  oneStep(t: number): Float64Array {
    const grads = tidyRead(() =>
      gradsOf((...ps: tf.Tensor[]) => {
        const P = this.named(ps);
        // s_{t-1} comes from the forward pass outside the tape: a constant here.
        return this.lossAt(P, this.problem.twin.step(P, this.x[t], this.states[t]).o, t);
      }, this.params));
    return concat(grads, this.problem.paramCount);
  }

  /** dL_t/dtheta through the whole unrolled sequence 0..t from s_{-1} = 0 (full BPTT). */
  bptt(t: number): Float64Array {
    const grads = tidyRead(() =>
      gradsOf((...ps: tf.Tensor[]) => {
        const P = this.named(ps);
        let s = this.states[0];
        let o = s;
        for (let k = 0; k <= t; k++) ({ s, o } = this.problem.twin.step(P, this.x[k], s));
        return this.lossAt(P, o, t);
      }, this.params));
    return concat(grads, this.problem.paramCount);
  }

  /** dL_t/dtheta through ticks t-window+1..t, s_{t-window} (from the forward pass) held constant. */
  truncated(t: number, window: number): Float64Array {
    const from = Math.max(0, t - window + 1);
    const grads = tidyRead(() =>
      gradsOf((...ps: tf.Tensor[]) => {
        const P = this.named(ps);
        let s = this.states[from];
        let o = s;
        for (let k = from; k <= t; k++) ({ s, o } = this.problem.twin.step(P, this.x[k], s));
        return this.lossAt(P, o, t);
      }, this.params));
    return concat(grads, this.problem.paramCount);
  }

  /** dL_t/do_t, the readout held fixed. */
  outputGradient(t: number): Float64Array {
    const P = this.named(this.params);
    return tidyRead(() => [tf.grad((o: tf.Tensor) => this.lossAt(P, o as tf.Tensor2D, t))(this.outputs[t])])[0];
  }

  /** dL_t/ds_t through o_t = outputOf(s_t), the readout held fixed (for cells with a state of hiddenSize floats). */
  stateGradient(t: number): Float64Array {
    const P = this.named(this.params);
    const output = outputOf(this.problem.kind);
    return tidyRead(() => [tf.grad((s: tf.Tensor) => this.lossAt(P, output(s as tf.Tensor2D), t))(this.states[t + 1])])[0];
  }

  /** The largest |outputOf(s_t) - o_t| over ticks: outputOf must be the twin's own G. */
  outputMapError(): number {
    const output = outputOf(this.problem.kind);
    let worst = 0;
    for (let t = 0; t < T; t++) {
      const [diff] = tidyRead(() => [output(this.states[t + 1]).sub(this.outputs[t]).abs().max()]);
      worst = Math.max(worst, diff[0]);
    }
    return worst;
  }

  /**
   * d o_t[unit] / d theta_cell (of = 'o') or d s_t[unit] / d theta_cell (of = 's') with s_{t-1} held constant,
   * for every unit: [unit] -> cell parameter vector.
   */
  unitJacobians(t: number, of: 'o' | 's'): Float64Array[] {
    const cellCount = this.problem.blocks.filter((b) => !b.readout).length;
    const cellParams = this.params.slice(0, cellCount);
    const readoutParams = this.params.slice(cellCount);
    const rows: Float64Array[] = [];
    for (let unit = 0; unit < HIDDEN; unit++) {
      const grads = tidyRead(() =>
        gradsOf((...ps: tf.Tensor[]) => {
          const P = this.named([...ps, ...readoutParams]);
          return this.problem.twin.step(P, this.x[t], this.states[t])[of].slice([unit, 0], [1, 1]).sum();
        }, cellParams));
      rows.push(concat(grads, this.problem.cellParamCount));
    }
    return rows;
  }

  dispose(): void {
    tf.dispose([...this.params, ...this.x, ...this.y, ...this.states, ...this.outputs]);
  }
}

/**
 * o_t = G(s_t) of the cells whose traces live on the state, from their doc comments (the oracle needs dL_t/ds_t
 * and the twins give only o_t); checked against the twin's o_t at every tick.
 */
function outputOf(kind: CellKind): (s: tf.Tensor2D) => tf.Tensor2D {
  return kind === 'diagonal-linear' ? (s) => tf.tanh(s) : (s) => s;
}

/**
 * The lambda-trace oracle at every tick: g_p = dL_t/do_t[unit(p)] * sum_{k<=t} lambda^{t-k} d o_k[unit(p)]/d theta_p
 * for cell parameters (unit(p) = the row of p in its block), the one-step gradient for readout parameters; for a
 * cell with traceOn 'state', s in place of o. Also checks the unit alignment the rule relies on: the partial of
 * unit i is 0 off row i.
 */
function traceOracle(problem: Problem, oracle: Oracle, lambda: number, failures: string[], label: string): Float64Array[] {
  const of = problem.traceOn === 'state' ? 's' : 'o';
  if (of === 's') {
    const mapError = oracle.outputMapError();
    if (!(mapError < PRED_TOL)) failures.push(`${label}: outputOf(s_t) is ${mapError} away from the twin's o_t`);
  }
  const cellBlocks = problem.blocks.filter((b) => !b.readout);
  const unitOf = new Int32Array(problem.cellParamCount);
  for (const b of cellBlocks) for (let i = 0; i < b.size; i++) unitOf[b.offset + i] = Math.floor(i / b.cols);
  const trace = new Float64Array(problem.cellParamCount);
  const out: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    const J = oracle.unitJacobians(t, of);
    for (let unit = 0; unit < HIDDEN; unit++) {
      for (const b of cellBlocks) {
        let off = 0;
        for (let i = 0; i < b.size; i++) if (unitOf[b.offset + i] !== unit) off = Math.max(off, Math.abs(J[unit][b.offset + i]));
        if (off !== 0) failures.push(`${label} tick ${t} block ${b.name}: d ${of}[${unit}]/d theta is ${off} off row ${unit} (unit alignment)`);
      }
    }
    for (let p = 0; p < problem.cellParamCount; p++) trace[p] = lambda * trace[p] + J[unitOf[p]][p];
    const gUnit = of === 's' ? oracle.stateGradient(t) : oracle.outputGradient(t);
    const g = oracle.oneStep(t); // readout blocks: the same-tick gradient
    for (let p = 0; p < problem.cellParamCount; p++) g[p] = gUnit[unitOf[p]] * trace[p];
    out.push(g);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Comparison.

function norm(v: ArrayLike<number>, from: number, len: number, minus?: ArrayLike<number>): number {
  let s = 0;
  for (let i = from; i < from + len; i++) {
    const d = v[i] - (minus ? minus[i] : 0);
    s += d * d;
  }
  return Math.sqrt(s);
}

interface Worst {
  err: number;
  where: string;
}

function compareBlocks(problem: Problem, g: Float64Array, gTf: Float64Array, label: string, failures: string[], worst: Worst) {
  for (const b of problem.blocks) {
    const ref = norm(gTf, b.offset, b.size);
    const err = norm(g, b.offset, b.size, gTf) / Math.max(ref, FLOOR);
    if (!(err <= worst.err)) {
      worst.err = err;
      worst.where = `${label} block ${b.name}`;
    }
    if (!(err < REL_TOL)) {
      const show = (v: Float64Array) => Array.from(v.subarray(b.offset, b.offset + Math.min(b.size, 6)), (x) => x.toPrecision(6)).join(', ');
      failures.push(`${label} block ${b.name}: relative error ${err.toExponential(3)} ` +
        `(||g|| = ${norm(g, b.offset, b.size).toExponential(4)}, ||g_tf|| = ${ref.toExponential(4)}; ` +
        `g = [${show(g)}${b.size > 6 ? ', ...' : ''}], g_tf = [${show(gTf)}${b.size > 6 ? ', ...' : ''}])`);
    }
  }
}

function assertNoFailures(failures: readonly string[]): void {
  const shown = failures.slice(0, 25).join('\n');
  assert.ok(failures.length === 0, `${failures.length} mismatch(es):\n${shown}${failures.length > 25 ? '\n...' : ''}`);
}

// ---------------------------------------------------------------------------------------------------------------

let tensorsBefore = 0;

before(async () => {
  // IS_TEST turns on tfjs's per-kernel leak checks and silences its "install tfjs-node" banner.
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
  await tf.ready();
  tensorsBefore = tf.memory().numTensors;
});

const worstOverall: Worst = { err: 0, where: '' };

// The LRU stack has no one-step derivatives; test/online-lru-oracle.test.ts checks it against its own twin.
for (const kind of stepCellKinds) {
  for (const loss of ['mse', 'xent'] as const) {
    describe(`gradient oracle: ${kind} (${loss})`, () => {
      for (const { name: rule, credit } of rulesOf(kind)) {
        test(rule, async (t: TestContext) => {
          const problem = problemOf(kind, loss);
          const run = runLearner(problem, credit, rule);
          const what = (tick: number) => `${kind} ${loss} ${rule} tick ${tick}`;

          await t.test('predictions and gradients match TensorFlow.js autodiff at every tick', (st: TestContext) => {
            const oracle = new Oracle(problem, run.theta0);
            const failures: string[] = [];
            const worst: Worst = { err: 0, where: '' };
            try {
              for (let tick = 0; tick < T; tick++) {
                const pred = run.predictions[tick];
                const ref = oracle.predictions[tick];
                const err = Math.max(...Array.from(pred, (v, i) => Math.abs(v - ref[i])));
                if (!(err < PRED_TOL)) {
                  failures.push(`${what(tick)} prediction: learner [${Array.from(pred).join(', ')}], ` +
                    `tfjs [${Array.from(ref).join(', ')}]`);
                }
              }
              const expected =
                credit.rule === 'tbptt' ? Array.from({ length: T }, (_, tick) => oracle.truncated(tick, credit.window))
                : credit.rule !== 'immediate' || credit.lambda === 'exact' ? Array.from({ length: T }, (_, tick) => oracle.bptt(tick))
                : credit.lambda > 0 ? traceOracle(problem, oracle, credit.lambda, failures, `${kind} ${loss} ${rule}`)
                : Array.from({ length: T }, (_, tick) => oracle.oneStep(tick));
              for (let tick = 0; tick < T; tick++) {
                compareBlocks(problem, run.replayed[tick], expected[tick], what(tick), failures, worst);
              }
            } finally {
              oracle.dispose();
            }
            st.diagnostic(`worst relative error ${worst.err.toExponential(3)} at ${worst.where}`);
            if (worst.err >= worstOverall.err) Object.assign(worstOverall, worst);
            assertNoFailures(failures);
          });

          await t.test('base.fork({ frozen: false }) learns exactly as a learner that replayed the ticks', () => {
            // Both copies run in double precision through the same operations: the gradients agree bit for bit.
            const failures: string[] = [];
            for (let tick = 0; tick < T; tick++) {
              for (const b of problem.blocks) {
                const diff = norm(run.forked[tick], b.offset, b.size, run.replayed[tick]);
                if (diff !== 0) {
                  failures.push(`${what(tick)} block ${b.name}: the fork's gradient is ${diff.toExponential(3)} away ` +
                    `from the replayed learner's (||g_replay|| = ${norm(run.replayed[tick], b.offset, b.size).toExponential(4)})`);
                }
              }
            }
            assertNoFailures(failures);
          });
        });
      }
    });
  }
}

test('tfjs tensors are all disposed', (t: TestContext) => {
  t.diagnostic(`worst relative error over every cell, loss, rule, tick and block: ` +
    `${worstOverall.err.toExponential(3)} at ${worstOverall.where}`);
  assert.equal(tf.memory().numTensors, tensorsBefore, 'tensors leaked by the oracle');
});
