// Self-test of the TensorFlow.js twin of the stacked online-LRU network (test/support/tf-lru.ts), before it serves
// as the oracle for the learner's hand-derived gradients (DESIGN.md section 8). Three independent checks:
//  - a second forward pass, in plain float64 JS written here with scalar loops and complex numbers as (re, im)
//    pairs, agrees with the twin's predictions; central finite differences of its loss check the twin's full-BPTT
//    gradient, block by block, for both losses and at several ticks;
//  - a one-unit, one-layer, two-tick case whose loss and every gradient are worked out by hand below;
//  - the gradient of L_t reads nothing after tick t (and does read what comes before).
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Random } from '../src/learners/random.js';
import {
  lruBlockShapes,
  tfLruBpttGradient,
  tfLruPredictions,
  type LruBlockShape,
  type TfLruOptions,
} from './support/tf-lru.js';

/** ||g_tf - g_fd|| / max(||g_fd||, FLOOR) per block: the twin is float32, the finite differences float64. */
const REL_TOL = 1e-3;
const FLOOR = 1e-5;
const FD_EPS = 1e-6;
const PRED_TOL = 1e-5;

const tiny = (loss: 'mse' | 'xent'): TfLruOptions => ({
  inputSize: 2, hiddenSize: 3, units: 2, layers: 2, outputSize: 2, loss,
});
const T = 6;

// ---------------------------------------------------------------------------------------------------------------
// Problems.

interface Block extends LruBlockShape {
  readonly offset: number;
  readonly size: number;
}

function layout(o: TfLruOptions): Block[] {
  let offset = 0;
  return lruBlockShapes(o).map((b) => {
    const block = { ...b, offset, size: b.rows * b.cols };
    offset += block.size;
    return block;
  });
}

/** Parameters at the scale an LRU is initialised at: |lambda| in [0.5, 0.95], phases in [0.2, 3]. */
function randomParams(o: TfLruOptions, rng: Random): Float64Array {
  const blocks = layout(o);
  const last = blocks[blocks.length - 1];
  const theta = new Float64Array(last.offset + last.size);
  const radii = new Map<string, number[]>();
  for (const b of blocks) {
    const kind = b.name.slice(b.name.lastIndexOf('.') + 1);
    const layer = b.name.split('.')[0];
    for (let i = 0; i < b.size; i++) {
      let v: number;
      if (b.name.endsWith('norm.scale')) v = 1 + 0.3 * rng.normal();
      else if (b.name.endsWith('norm.bias')) v = 0.2 * rng.normal();
      else if (kind === 'nu_log') {
        const r = rng.uniform(0.5, 0.95);
        if (!radii.has(layer)) radii.set(layer, []);
        radii.get(layer)!.push(r);
        v = Math.log(-Math.log(r));
      } else if (kind === 'theta_log') v = Math.log(rng.uniform(0.2, 3));
      else if (kind === 'gamma_log') {
        const r = radii.get(layer)![i];
        v = 0.5 * Math.log(1 - r * r) + 0.1 * rng.normal();
      } else if (b.cols > 1) v = rng.normal() / Math.sqrt(b.cols);
      else v = 0.3 * rng.normal(); // enc.b, D, glu.b1, glu.b2, c
      theta[b.offset + i] = v;
    }
  }
  return theta;
}

interface Problem {
  readonly o: TfLruOptions;
  readonly theta: Float64Array;
  readonly xs: number[][];
  readonly ys: number[][];
}

function problemOf(o: TfLruOptions, seed: number, ticks: number): Problem {
  const rng = new Random(seed);
  const theta = randomParams(o, rng);
  const xs = Array.from({ length: ticks }, () => Array.from({ length: o.inputSize }, () => rng.normal()));
  const ys = Array.from({ length: ticks }, () => {
    if (o.loss === 'mse') return Array.from({ length: o.outputSize }, () => rng.normal());
    const y = new Array<number>(o.outputSize).fill(0);
    y[Math.floor(rng.next() * o.outputSize)] = 1;
    return y;
  });
  return { o, theta, xs, ys };
}

// ---------------------------------------------------------------------------------------------------------------
// The second forward pass: plain float64 JS, scalar loops.

function jsLogits(o: TfLruOptions, theta: Float64Array, xs: readonly (readonly number[])[], last: number): number[][] {
  const { inputSize: m, hiddenSize: H, units: N, layers: L, outputSize: K } = o;
  const byName = new Map(layout(o).map((b) => [b.name, b]));
  const at = (name: string, r: number, c = 0): number => {
    const b = byName.get(name)!;
    return theta[b.offset + r * b.cols + c];
  };
  const hRe = Array.from({ length: L }, () => new Array<number>(N).fill(0));
  const hIm = Array.from({ length: L }, () => new Array<number>(N).fill(0));
  const out: number[][] = [];
  for (let t = 0; t <= last; t++) {
    const x = new Array<number>(H);
    for (let i = 0; i < H; i++) {
      let s = at('enc.b', i);
      for (let j = 0; j < m; j++) s += at('enc.W', i, j) * xs[t][j];
      x[i] = s;
    }
    for (let l = 0; l < L; l++) {
      const p = `l${l + 1}.`;
      let mu = 0;
      for (let i = 0; i < H; i++) mu += x[i];
      mu /= H;
      let variance = 0;
      for (let i = 0; i < H; i++) variance += (x[i] - mu) ** 2;
      variance /= H;
      const sd = Math.sqrt(variance + 1e-5);
      const u = x.map((v, i) => at(`${p}norm.scale`, i) * ((v - mu) / sd) + at(`${p}norm.bias`, i));
      for (let n = 0; n < N; n++) {
        const radius = Math.exp(-Math.exp(at(`${p}nu_log`, n)));
        const phase = Math.exp(at(`${p}theta_log`, n));
        const gamma = Math.exp(at(`${p}gamma_log`, n));
        let bre = 0;
        let bim = 0;
        for (let j = 0; j < H; j++) {
          bre += at(`${p}B_re`, n, j) * u[j];
          bim += at(`${p}B_im`, n, j) * u[j];
        }
        const lre = radius * Math.cos(phase);
        const lim = radius * Math.sin(phase);
        const re = lre * hRe[l][n] - lim * hIm[l][n] + gamma * bre;
        const im = lre * hIm[l][n] + lim * hRe[l][n] + gamma * bim;
        hRe[l][n] = re;
        hIm[l][n] = im;
      }
      const z = new Array<number>(H);
      for (let i = 0; i < H; i++) {
        let y = at(`${p}D`, i) * u[i];
        for (let n = 0; n < N; n++) y += at(`${p}C_re`, i, n) * hRe[l][n] - at(`${p}C_im`, i, n) * hIm[l][n];
        z[i] = 0.5 * y * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (y + 0.044715 * y * y * y)));
      }
      const next = new Array<number>(H);
      for (let i = 0; i < H; i++) {
        let a = at(`${p}glu.b1`, i);
        let b = at(`${p}glu.b2`, i);
        for (let j = 0; j < H; j++) {
          a += at(`${p}glu.W1`, i, j) * z[j];
          b += at(`${p}glu.W2`, i, j) * z[j];
        }
        next[i] = x[i] + a / (1 + Math.exp(-b));
      }
      for (let i = 0; i < H; i++) x[i] = next[i];
    }
    const logits = new Array<number>(K);
    for (let k = 0; k < K; k++) {
      let s = at('c', k);
      for (let i = 0; i < H; i++) s += at('V', k, i) * x[i];
      logits[k] = s;
    }
    out.push(logits);
  }
  return out;
}

function logSoftmax(z: readonly number[]): number[] {
  const max = Math.max(...z);
  const lse = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0));
  return z.map((v) => v - lse);
}

function jsPredictions(o: TfLruOptions, theta: Float64Array, xs: number[][]): number[][] {
  const logits = jsLogits(o, theta, xs, xs.length - 1);
  return o.loss === 'mse' ? logits : logits.map((z) => logSoftmax(z).map(Math.exp));
}

function jsLoss(o: TfLruOptions, theta: Float64Array, xs: number[][], ys: number[][], t: number): number {
  const z = jsLogits(o, theta, xs, t)[t];
  const y = ys[t];
  if (o.loss === 'mse') return 0.5 * z.reduce((s, v, k) => s + (v - y[k]) ** 2, 0);
  return -logSoftmax(z).reduce((s, v, k) => s + y[k] * v, 0);
}

function finiteDifferenceGradient(p: Problem, t: number): Float64Array {
  const theta = Float64Array.from(p.theta);
  const g = new Float64Array(theta.length);
  for (let i = 0; i < theta.length; i++) {
    const v = theta[i];
    theta[i] = v + FD_EPS;
    const up = jsLoss(p.o, theta, p.xs, p.ys, t);
    theta[i] = v - FD_EPS;
    const down = jsLoss(p.o, theta, p.xs, p.ys, t);
    theta[i] = v;
    g[i] = (up - down) / (2 * FD_EPS);
  }
  return g;
}

function norm(v: Float64Array, b: Block): number {
  let s = 0;
  for (let i = b.offset; i < b.offset + b.size; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

function diffNorm(a: Float64Array, b: Float64Array, block: Block): number {
  let s = 0;
  for (let i = block.offset; i < block.offset + block.size; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

// ---------------------------------------------------------------------------------------------------------------

let tensorsBefore = 0;

before(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
  await tf.ready();
  tensorsBefore = tf.memory().numTensors;
});

after(() => {
  assert.equal(tf.memory().numTensors, tensorsBefore, 'the twin leaked tensors');
});

describe('tf-lru twin: layout', () => {
  test('lruBlockShapes lists every block in the flat order with its shape', () => {
    const shapes = lruBlockShapes(tiny('mse'));
    const layer = (l: number) => [
      [`l${l}.norm.scale`, 3, 1], [`l${l}.norm.bias`, 3, 1],
      [`l${l}.nu_log`, 2, 1], [`l${l}.theta_log`, 2, 1], [`l${l}.gamma_log`, 2, 1],
      [`l${l}.B_re`, 2, 3], [`l${l}.B_im`, 2, 3], [`l${l}.C_re`, 3, 2], [`l${l}.C_im`, 3, 2], [`l${l}.D`, 3, 1],
      [`l${l}.glu.W1`, 3, 3], [`l${l}.glu.b1`, 3, 1], [`l${l}.glu.W2`, 3, 3], [`l${l}.glu.b2`, 3, 1],
    ];
    const expected = [['enc.W', 3, 2], ['enc.b', 3, 1], ...layer(1), ...layer(2), ['V', 2, 3], ['c', 2, 1]];
    assert.deepEqual(shapes.map((b) => [b.name, b.rows, b.cols]), expected);
    assert.equal(shapes.reduce((n, b) => n + b.rows * b.cols, 0), 9 + 2 * 63 + 8);
  });

  test('a parameter vector of the wrong length, a short input and a tick past the end are rejected', () => {
    const p = problemOf(tiny('mse'), 1, T);
    assert.throws(() => tfLruPredictions(p.o, p.theta.subarray(1), p.xs), /parameters/);
    assert.throws(() => tfLruPredictions(p.o, p.theta, [[1]]), /length/);
    assert.throws(() => tfLruBpttGradient(p.o, p.theta, p.xs, p.ys, T), /outside/);
  });
});

for (const loss of ['mse', 'xent'] as const) {
  describe(`tf-lru twin against a float64 JS forward and finite differences (${loss})`, () => {
    const p = problemOf(tiny(loss), loss === 'mse' ? 7 : 8, T);
    const blocks = layout(p.o);

    test('predictions at every tick match the float64 forward', () => {
      const ours = tfLruPredictions(p.o, p.theta, p.xs);
      const ref = jsPredictions(p.o, p.theta, p.xs);
      assert.equal(ours.length, T);
      let scale = 0;
      for (const r of ref) for (const v of r) scale = Math.max(scale, Math.abs(v));
      assert.ok(scale > 0.05, `degenerate predictions (max |prediction| = ${scale})`);
      for (let t = 0; t < T; t++) {
        assert.equal(ours[t].length, p.o.outputSize);
        for (let k = 0; k < p.o.outputSize; k++) {
          const err = Math.abs(ours[t][k] - ref[t][k]);
          assert.ok(err <= PRED_TOL * Math.max(1, Math.abs(ref[t][k])),
            `tick ${t} output ${k}: tf ${ours[t][k]} vs js ${ref[t][k]}`);
        }
      }
      if (loss === 'xent') for (const r of ours) assert.ok(Math.abs(r.reduce((s, v) => s + v, 0) - 1) < 1e-5);
    });

    for (const t of [0, 2, T - 1]) {
      test(`the full-BPTT gradient of L_${t} matches central differences, block by block`, (ctx: TestContext) => {
        const g = tfLruBpttGradient(p.o, p.theta, p.xs, p.ys, t);
        const fd = finiteDifferenceGradient(p, t);
        assert.equal(g.length, fd.length);
        const failures: string[] = [];
        let worst = 0;
        for (const b of blocks) {
          const err = diffNorm(g, fd, b) / Math.max(norm(fd, b), FLOOR);
          worst = Math.max(worst, err);
          if (!(err <= REL_TOL)) {
            failures.push(`${b.name}: relative error ${err.toExponential(3)} ` +
              `(||g_tf|| = ${norm(g, b).toExponential(4)}, ||g_fd|| = ${norm(fd, b).toExponential(4)})`);
          }
        }
        ctx.diagnostic(`worst block relative error ${worst.toExponential(3)}`);
        assert.deepEqual(failures, []);
        const named = (name: string) => blocks.find((b) => b.name === name)!;
        if (t === 0) {
          // h_{-1} = 0, so lambda does not act yet: nu_log and theta_log get exactly no gradient at tick 0.
          for (const name of ['l1.nu_log', 'l1.theta_log', 'l2.nu_log', 'l2.theta_log']) {
            assert.equal(norm(g, named(name)), 0, `${name} at tick 0`);
          }
        } else {
          // Not vacuous: the recurrence carries real gradient into both layers' eigenvalues.
          for (const name of ['l1.nu_log', 'l1.theta_log', 'l2.nu_log', 'l2.theta_log', 'l1.B_im', 'l2.C_im']) {
            assert.ok(norm(fd, named(name)) > 1e-3, `${name}: ||g_fd|| = ${norm(fd, named(name))}`);
          }
        }
      });
    }
  });
}

describe('tf-lru twin: one unit, one layer, two ticks, by hand', () => {
  // m = H = N = K = 1. With one feature the layer norm's v - mean(v) is exactly 0, so u = norm.bias at every tick
  // and nothing flows back through the norm: norm.scale has zero gradient and enc.W, enc.b act only through the
  // residual. lambda = 0.5 i (|lambda| = exp(-exp(log log 2)) = 1/2, phase exp(log(pi/2)) = pi/2), gamma = 0.8.
  const o: TfLruOptions = { inputSize: 1, hiddenSize: 1, units: 1, layers: 1, outputSize: 1, loss: 'mse' };
  const values: Record<string, number> = {
    'enc.W': 0.7, 'enc.b': -0.2, 'l1.norm.scale': 1.3, 'l1.norm.bias': 0.5,
    'l1.nu_log': Math.log(Math.LN2), 'l1.theta_log': Math.log(Math.PI / 2), 'l1.gamma_log': Math.log(0.8),
    'l1.B_re': 1, 'l1.B_im': 0.5, 'l1.C_re': 0.6, 'l1.C_im': -0.4, 'l1.D': 0.3,
    'l1.glu.W1': 0.9, 'l1.glu.b1': 0.1, 'l1.glu.W2': -0.5, 'l1.glu.b2': 0.2, V: 1.5, c: -0.1,
  };
  const names = lruBlockShapes(o).map((b) => b.name);
  const theta = Float64Array.from(names, (n) => values[n]);
  const xs = [[2], [-1]];
  const ys = [[0.4], [0.25]];

  // Tick 0: u = 0.5, h_0 = gamma u (B_re + i B_im) = 0.4 (1 + 0.5 i) = 0.4 + 0.2 i.
  // Tick 1: h_1 = lambda h_0 + gamma u B = 0.5 i (0.4 + 0.2 i) + 0.4 + 0.2 i = 0.3 + 0.4 i.
  //         y = C_re Re h_1 - C_im Im h_1 + D u = 0.18 + 0.16 + 0.15 = 0.49.
  const y = 0.49;
  const k = Math.sqrt(2 / Math.PI) * (y + 0.044715 * y ** 3);
  const z = 0.5 * y * (1 + Math.tanh(k));
  const a = 0.9 * z + 0.1;
  const s = 1 / (1 + Math.exp(-(-0.5 * z + 0.2)));
  const g = a * s;
  const out = 0.7 * -1 - 0.2 + g; // x^1 = -0.9, then the residual
  const logit = 1.5 * out - 0.1;
  const e = logit - 0.25; // dL_1/dlogit
  const dG = 1.5 * e; // dL_1/dg = dL_1/do
  const dz = dG * (0.9 * s + a * s * (1 - s) * -0.5);
  const geluPrime = 0.5 * (1 + Math.tanh(k)) +
    0.5 * y * (1 - Math.tanh(k) ** 2) * Math.sqrt(2 / Math.PI) * (1 + 3 * 0.044715 * y * y);
  const dy = dz * geluPrime;
  // dy/dparam, from h_1 = (1 + lambda) gamma u B with (1 + 0.5 i)(1 + 0.5 i) = 0.75 + i:
  //   dlambda/dtheta_log = i lambda pi/2 = -pi/4, so dh_1 = h_0 (-pi/4), dy = -pi/4 (0.6 0.4 + 0.4 0.2) = -0.08 pi;
  //   dlambda/dnu_log = -ln2 lambda = -0.5 ln2 i, dh_1 = (0.1 - 0.2 i) ln2, dy = (0.06 - 0.08) ln2 = -0.02 ln2;
  //   dh_1/dgamma_log = h_1, dy = 0.34;  dh_1/dB_re = 0.4 (1 + 0.5 i), dy = 0.24 + 0.08 = 0.32;
  //   dh_1/dB_im = 0.4 i (1 + 0.5 i) = -0.2 + 0.4 i, dy = -0.12 + 0.16 = 0.04;
  //   dh_1/du = 0.8 (0.75 + i) = 0.6 + 0.8 i, dy/du = 0.36 + 0.32 + D = 0.98.
  const expected: Record<string, number> = {
    'enc.W': dG * -1, 'enc.b': dG, 'l1.norm.scale': 0, 'l1.norm.bias': dy * 0.98,
    'l1.nu_log': dy * -0.02 * Math.LN2, 'l1.theta_log': dy * -0.08 * Math.PI, 'l1.gamma_log': dy * 0.34,
    'l1.B_re': dy * 0.32, 'l1.B_im': dy * 0.04, 'l1.C_re': dy * 0.3, 'l1.C_im': dy * -0.4, 'l1.D': dy * 0.5,
    'l1.glu.W1': dG * s * z, 'l1.glu.b1': dG * s,
    'l1.glu.W2': dG * a * s * (1 - s) * z, 'l1.glu.b2': dG * a * s * (1 - s), V: e * out, c: e,
  };

  test('the hand-worked logit and loss', () => {
    const pred = tfLruPredictions(o, theta, xs);
    // Tick 0: y = 0.6 0.4 + 0.4 0.2 + 0.15 = 0.47, x^1 = 1.2.
    const z0 = 0.5 * 0.47 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (0.47 + 0.044715 * 0.47 ** 3)));
    const logit0 = 1.5 * (1.2 + (0.9 * z0 + 0.1) / (1 + Math.exp(0.5 * z0 - 0.2))) - 0.1;
    assert.ok(Math.abs(pred[0][0] - logit0) < 1e-5, `tick 0: ${pred[0][0]} vs ${logit0}`);
    assert.ok(Math.abs(pred[1][0] - logit) < 1e-5, `tick 1: ${pred[1][0]} vs ${logit}`);
    assert.ok(Math.abs(jsLoss(o, theta, xs, ys, 1) - 0.5 * e * e) < 1e-12);
  });

  test('the hand-worked gradient of L_1, every parameter', () => {
    const grad = tfLruBpttGradient(o, theta, xs, ys, 1);
    names.forEach((n, i) => {
      const want = expected[n];
      assert.ok(Math.abs(grad[i] - want) <= 1e-4 * Math.max(1, Math.abs(want)) + 1e-6,
        `${n}: tf ${grad[i]} vs hand ${want}`);
    });
    assert.ok(Math.abs(expected['l1.theta_log']) > 1e-2 && Math.abs(expected['l1.nu_log']) > 1e-3);
  });
});

describe('tf-lru twin: causality', () => {
  test('the gradient of L_t reads no input or target after t, and does read those before', () => {
    const p = problemOf(tiny('mse'), 21, 10);
    const t = 4;
    const g = tfLruBpttGradient(p.o, p.theta, p.xs, p.ys, t);
    const rng = new Random(99);
    const xs = p.xs.map((x, k) => (k > t ? x.map(() => 5 * rng.normal()) : x));
    const ys = p.ys.map((y, k) => (k > t ? y.map(() => 5 * rng.normal()) : y));
    assert.deepEqual(tfLruBpttGradient(p.o, p.theta, xs, ys, t), g);
    assert.deepEqual(tfLruBpttGradient(p.o, p.theta, xs.slice(0, t + 1), ys.slice(0, t + 1), t), g);
    const earlier = p.xs.map((x, k) => (k === t - 3 ? x.map((v) => v + 0.5) : x));
    const moved = tfLruBpttGradient(p.o, p.theta, earlier, p.ys, t);
    const blocks = layout(p.o);
    const nu = blocks.find((b) => b.name === 'l1.nu_log')!;
    assert.ok(diffNorm(moved, g, nu) > 1e-4 * norm(g, nu), 'an input three ticks back did not reach l1.nu_log');
  });

  test('timing: one gradient at m = 3, H = 4, N = 3, L = 2, T = 12', (ctx: TestContext) => {
    const o: TfLruOptions = { inputSize: 3, hiddenSize: 4, units: 3, layers: 2, outputSize: 2, loss: 'mse' };
    const p = problemOf(o, 5, 12);
    tfLruBpttGradient(o, p.theta, p.xs, p.ys, 11); // warm-up
    const start = performance.now();
    const g = tfLruBpttGradient(o, p.theta, p.xs, p.ys, 11);
    const ms = performance.now() - start;
    ctx.diagnostic(`tfLruBpttGradient: ${ms.toFixed(1)} ms for ${g.length} parameters`);
    assert.ok(g.every(Number.isFinite));
  });
});
