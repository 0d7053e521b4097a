// The classical decoders (src/learners/decoders) against what they claim to compute: RLS against the closed-form
// regularized least-squares solution, ridge against a direct normal-equations solve (including recalibration on
// a new session), the Kalman filter against a simulated linear-Gaussian system it must identify and decode
// better than a static regression. The Learner contract itself is in learner-conformance.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { from } from 'rxjs';
import { createDecoder } from '../src/learners/decoders/create-decoder.js';
import type { DecoderSpec } from '../src/learners/decoders/decoder-spec.js';
import { canonicalJson, createLearner, type Learner } from '../src/learners/learner.js';
import { Random } from '../src/learners/random.js';
import { readSnapshotHeader } from '../src/learners/snapshot-header.js';
import { LearnerPool } from '../src/streams/learner-pool.js';
import type { DriftMarker, ScoredTick, StreamInput, TickEvent } from '../src/streams/messages.js';
import { predictThenLearn } from '../src/streams/predict-then-learn.js';

function specOf(decoder: DecoderSpec['decoder'], inputSize: number, outputSize: number, extra: Partial<DecoderSpec> = {}): DecoderSpec {
  return { decoder, inputSize, outputSize, seed: 1, loss: 'mse', ...extra };
}

/** [x_t, x_{t-1}, ..., x_{t-lags+1}, 1], zeros before tick 0: the features the decoders document. */
function featuresOf(xs: readonly Float32Array[], t: number, lags: number): number[] {
  const phi: number[] = [];
  for (let l = 0; l < lags; l++) for (const v of t - l >= 0 ? xs[t - l] : new Float32Array(xs[0].length)) phi.push(v);
  phi.push(1);
  return phi;
}

/** Solves A X = B (dense, partial pivoting) for X; written here so that the decoders are not checked against themselves. */
function solve(A: number[][], B: number[][]): number[][] {
  const n = A.length;
  const a = A.map((r) => [...r]);
  const b = B.map((r) => [...r]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    [b[c], b[p]] = [b[p], b[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c] / a[c][c];
      for (let k = c; k < n; k++) a[r][k] -= f * a[c][k];
      for (let k = 0; k < b[r].length; k++) b[r][k] -= f * b[c][k];
    }
  }
  return b.map((row, i) => row.map((v) => v / a[i][i]));
}

/**
 * Weighted regularized least squares: W (outputs x features) minimizing
 * sum_i w_i |y_i - W phi_i|^2 + sum_f reg_f |W_f|^2, from the normal equations.
 */
function leastSquares(phis: number[][], ys: ArrayLike<number>[], weights: number[], reg: number[]): number[][] {
  const F = phis[0].length;
  const out = ys[0].length;
  const A = Array.from({ length: F }, (_, i) => Array.from({ length: F }, (_, j) => (i === j ? reg[i] : 0)));
  const B = Array.from({ length: F }, () => new Array<number>(out).fill(0));
  phis.forEach((phi, r) => {
    for (let i = 0; i < F; i++) {
      for (let j = 0; j < F; j++) A[i][j] += weights[r] * phi[i] * phi[j];
      for (let o = 0; o < out; o++) B[i][o] += weights[r] * phi[i] * ys[r][o];
    }
  });
  const X = solve(A, B);
  return Array.from({ length: out }, (_, o) => X.map((row) => row[o]));
}

function maxDiff(params: Float64Array, W: number[][]): number {
  const flat = W.flat();
  assert.equal(params.length, flat.length);
  let d = 0;
  for (let i = 0; i < flat.length; i++) d = Math.max(d, Math.abs(params[i] - flat[i]));
  return d;
}

/** A random linear problem over lagged inputs, with noise. */
function linearProblem(seed: number, ticks: number, m: number, out: number, lags: number, noise = 0.1) {
  const rng = new Random(seed);
  const F = lags * m + 1;
  const W = Array.from({ length: out }, () => Array.from({ length: F }, () => rng.normal()));
  const xs: Float32Array[] = [];
  const ys: Float32Array[] = [];
  for (let t = 0; t < ticks; t++) {
    xs.push(Float32Array.from({ length: m }, () => rng.normal()));
    const phi = featuresOf(xs, t, lags);
    ys.push(Float32Array.from(W, (row) => row.reduce((s, w, i) => s + w * phi[i], 0) + noise * rng.normal()));
  }
  return { xs, ys, W };
}

function runOnTime(learner: Learner, xs: readonly Float32Array[], ys: readonly Float32Array[], from = 0, to = xs.length): void {
  for (let t = from; t < to; t++) {
    learner.predict(xs[t]);
    learner.learn(ys[t]);
  }
}

describe('rls', () => {
  test('without forgetting, equals the closed-form least-squares fit regularized by delta', () => {
    const lags = 2;
    const { xs, ys } = linearProblem(11, 400, 3, 2, lags);
    const delta = 0.7;
    const learner = createLearner(specOf({ kind: 'rls', lags, delta }, 3, 2));
    runOnTime(learner, xs, ys);
    const phis = xs.map((_, t) => featuresOf(xs, t, lags));
    const W = leastSquares(phis, ys, phis.map(() => 1), phis[0].map(() => delta));
    assert.ok(maxDiff(learner.readParameters(), W) < 1e-9, `max |W_rls - W_ls| = ${maxDiff(learner.readParameters(), W)}`);
    assert.equal(learner.version, 400);
  });

  test('with forgetting, equals the exponentially weighted fit (delta fading with the past)', () => {
    const lags = 3;
    const { xs, ys } = linearProblem(12, 300, 2, 1, lags, 0.3);
    const h = 40;
    const lambda = Math.pow(2, -1 / h);
    const learner = createLearner(specOf({ kind: 'rls', lags, halfLifeTicks: h }, 2, 1));
    runOnTime(learner, xs, ys);
    const N = xs.length;
    const phis = xs.map((_, t) => featuresOf(xs, t, lags));
    const W = leastSquares(phis, ys, phis.map((_, i) => Math.pow(lambda, N - 1 - i)), phis[0].map(() => Math.pow(lambda, N)));
    const d = maxDiff(learner.readParameters(), W);
    assert.ok(d < 1e-8, `max |W_rls - W_wls| = ${d}`);
  });

  test('an update that would overflow is skipped and counted, and the weights stay as they were', () => {
    const learner = createLearner(specOf({ kind: 'rls', lags: 1 }, 2, 1));
    const { xs, ys } = linearProblem(13, 20, 2, 1, 1);
    runOnTime(learner, xs, ys);
    const before = learner.readParameters();
    learner.predict(Float32Array.from([1e30, 1]));
    assert.equal(learner.learn(Float32Array.from([1e30])), 'applied');
    const huge = new Float64Array([1e200, 1]);
    learner.predict(huge);
    assert.equal(learner.learn([1]), 'skipped-non-finite');
    assert.equal(learner.stats.skippedNonFinite, 1);
    assert.ok(learner.readParameters().every(Number.isFinite));
    assert.notDeepEqual(learner.readParameters(), before);
  });
});

describe('ridge', () => {
  test('refit() equals a direct normal-equations solve (bias unpenalized), with and without forgetting', () => {
    const lags = 3;
    const { xs, ys } = linearProblem(21, 500, 3, 2, lags, 0.5);
    const phis = xs.map((_, t) => featuresOf(xs, t, lags));
    const alpha = 2.5;
    const reg = phis[0].map((_, i) => (i === phis[0].length - 1 ? 0 : alpha));
    for (const h of [undefined, 60]) {
      const learner = createDecoder(specOf({ kind: 'ridge', lags, alpha, halfLifeTicks: h, refitEvery: 10_000 }, 3, 2));
      runOnTime(learner, xs, ys);
      assert.ok(learner.readParameters().every((w) => w === 0), 'no refit before refitEvery labels');
      learner.refit();
      const lambda = h === undefined ? 1 : Math.pow(2, -1 / h);
      const W = leastSquares(phis, ys, phis.map((_, i) => Math.pow(lambda, xs.length - 1 - i)), reg);
      const d = maxDiff(learner.readParameters(), W);
      assert.ok(d < 1e-9, `halfLife ${h}: max |W_ridge - W_direct| = ${d}`);
    }
  });

  test('refits by itself every refitEvery labels, from every label so far', () => {
    const { xs, ys } = linearProblem(22, 250, 2, 1, 2);
    const learner = createLearner(specOf({ kind: 'ridge', lags: 2, refitEvery: 100 }, 2, 1));
    runOnTime(learner, xs, ys, 0, 99);
    assert.ok(learner.readParameters().every((w) => w === 0));
    runOnTime(learner, xs, ys, 99, 100);
    const phis = xs.slice(0, 100).map((_, t) => featuresOf(xs, t, 2));
    const W = leastSquares(phis, ys.slice(0, 100), phis.map(() => 1), [1, 1, 1, 1, 0]);
    assert.ok(maxDiff(learner.readParameters(), W) < 1e-9);
    runOnTime(learner, xs, ys, 100, 199);
    assert.ok(maxDiff(learner.readParameters(), W) < 1e-9, 'weights held between refits');
  });

  test('resetOnSession keeps the old weights until minSamples labels of the new session, then fits only those', () => {
    const lags = 2;
    const m = 2;
    const one = linearProblem(23, 200, m, 1, lags, 0.05);
    const two = linearProblem(24, 100, m, 1, lags, 0.05);
    // One input history across both sessions: the first features of session two reach back into session one.
    const xs = [...one.xs, ...two.xs];
    const ys = [...one.ys, ...two.ys];
    const phis = xs.map((_, t) => featuresOf(xs, t, lags));
    const reg = [0.5, 0.5, 0.5, 0.5, 0];
    for (const minSamples of [30, undefined]) {
      const k = minSamples ?? 2 * (lags * m + 1);
      const learner = createDecoder(specOf({ kind: 'ridge', lags, alpha: 0.5, refitEvery: 50, resetOnSession: true, minSamples }, m, 1));
      runOnTime(learner, xs, ys, 0, 200);
      const W1 = leastSquares(phis.slice(0, 200), ys.slice(0, 200), new Array(200).fill(1), reg);
      assert.ok(maxDiff(learner.readParameters(), W1) < 1e-9);
      const sessionOneWeights = learner.readParameters();
      learner.sessionStarted();
      runOnTime(learner, xs, ys, 200, 200 + k - 1);
      assert.deepEqual(learner.readParameters(), sessionOneWeights, `weights kept for the first ${k - 1} labels of the new session`);
      runOnTime(learner, xs, ys, 200 + k - 1, 200 + k);
      const W2 = leastSquares(phis.slice(200, 200 + k), ys.slice(200, 200 + k), new Array(k).fill(1), reg);
      const d = maxDiff(learner.readParameters(), W2);
      assert.ok(d < 1e-9, `minSamples ${minSamples}: max |W - W_new_session_only| = ${d}`);
      // From then on, the ordinary schedule: the next refit comes refitEvery labels later, still from session two only.
      runOnTime(learner, xs, ys, 200 + k, 200 + k + 50);
      const W3 = leastSquares(phis.slice(200, 250 + k), ys.slice(200, 250 + k), new Array(50 + k).fill(1), reg);
      assert.ok(maxDiff(learner.readParameters(), W3) < 1e-9);
    }
  });

  test('without resetOnSession, sessionStarted changes nothing', () => {
    const { xs, ys } = linearProblem(25, 120, 2, 1, 2);
    const a = createDecoder(specOf({ kind: 'ridge', lags: 2, refitEvery: 50 }, 2, 1));
    const b = createDecoder(specOf({ kind: 'ridge', lags: 2, refitEvery: 50 }, 2, 1));
    runOnTime(a, xs, ys, 0, 60);
    runOnTime(b, xs, ys, 0, 60);
    b.sessionStarted();
    assert.deepEqual(b.snapshot(), a.snapshot());
  });
});

describe('kalman', () => {
  // y_t = A y_{t-1} + c + w, x_t = H y_t + h + q: two outputs (a slowly rotating force), 16 noisy channels.
  const A = [
    [0.97, 0.08],
    [-0.08, 0.97],
  ];
  const c = [0.05, -0.02];
  const wStd = 0.1;
  const m = 16;
  const qStd = 1.5;
  const rng = new Random(31);
  const H = Array.from({ length: m }, () => [rng.normal(), rng.normal()]);
  const h = Array.from({ length: m }, () => rng.normal());
  function simulate(ticks: number, y0: number[]) {
    const xs: Float32Array[] = [];
    const ys: Float32Array[] = [];
    let y = y0;
    for (let t = 0; t < ticks; t++) {
      y = [0, 1].map((o) => A[o][0] * y[0] + A[o][1] * y[1] + c[o] + wStd * rng.normal());
      ys.push(Float32Array.from(y));
      xs.push(Float32Array.from(H, (row, i) => row[0] * y[0] + row[1] * y[1] + h[i] + qStd * rng.normal()));
    }
    return { xs, ys };
  }
  const train = simulate(20_000, [0, 0]);
  const testSet = simulate(5000, Array.from(train.ys[train.ys.length - 1]));

  test('recovers A, W and H of a simulated linear-Gaussian system', () => {
    const learner = createDecoder(specOf({ kind: 'kalman', refitEvery: 1000 }, m, 2));
    runOnTime(learner, train.xs, train.ys);
    learner.refit();
    const p = learner.readParameters();
    assert.equal(p.length, learner.paramCount);
    // Ay: 2 x 3 ([A | c]), then H: m x 3 ([H | h]), then W: 2 x 2.
    for (let o = 0; o < 2; o++) {
      for (let k = 0; k < 2; k++) assert.ok(Math.abs(p[o * 3 + k] - A[o][k]) < 0.01, `A[${o}][${k}] = ${p[o * 3 + k]}, true ${A[o][k]}`);
      assert.ok(Math.abs(p[o * 3 + 2] - c[o]) < 0.01, `c[${o}] = ${p[o * 3 + 2]}, true ${c[o]}`);
    }
    let worstH = 0;
    for (let i = 0; i < m; i++) {
      worstH = Math.max(worstH, Math.abs(p[6 + i * 3] - H[i][0]), Math.abs(p[6 + i * 3 + 1] - H[i][1]), Math.abs(p[6 + i * 3 + 2] - h[i]));
    }
    assert.ok(worstH < 0.1, `max |H - H_true| = ${worstH}`);
    const W = p.subarray(6 + 3 * m);
    assert.ok(Math.abs(W[0] - wStd ** 2) < 0.1 * wStd ** 2 && Math.abs(W[3] - wStd ** 2) < 0.1 * wStd ** 2, `W diagonal ${W[0]}, ${W[3]}`);
    assert.ok(Math.abs(W[1]) < 0.1 * wStd ** 2 && W[1] === W[2]);
  });

  test('decodes the simulated system better than a regression of y on x_t alone', () => {
    const learner = createDecoder(specOf({ kind: 'kalman' }, m, 2));
    runOnTime(learner, train.xs, train.ys);
    learner.refit();
    // The regression baseline, fitted on the same training ticks.
    const phis = train.xs.map((_, t) => featuresOf(train.xs, t, 1));
    const R = leastSquares(phis, train.ys, phis.map(() => 1), phis[0].map(() => 0));
    const frozen = learner.fork({ frozen: true });
    let kalmanSe = 0;
    let regressionSe = 0;
    testSet.xs.forEach((x, t) => {
      const yhat = frozen.predict(x);
      const phi = featuresOf(testSet.xs, t, 1);
      for (let o = 0; o < 2; o++) {
        const r = R[o].reduce((s, w, i) => s + w * phi[i], 0);
        kalmanSe += (yhat[o] - testSet.ys[t][o]) ** 2;
        regressionSe += (r - testSet.ys[t][o]) ** 2;
      }
    });
    assert.ok(kalmanSe < 0.6 * regressionSe, `Kalman squared error ${kalmanSe.toFixed(1)}, regression on x_t ${regressionSe.toFixed(1)}`);
  });

  test('predicts zeros until its first fit; sessionStarted resets the posterior to the prior', () => {
    const learner = createDecoder(specOf({ kind: 'kalman', refitEvery: 300 }, m, 2));
    runOnTime(learner, train.xs, train.ys, 0, 299);
    assert.deepEqual(Array.from(learner.predict(train.xs[299])), [0, 0]);
    learner.learn(train.ys[299]);
    assert.notDeepEqual(Array.from(learner.predict(train.xs[300])), [0, 0]);
    // Two copies whose posteriors have diverged agree again after a session start: the history is gone.
    const other = learner.fork({ frozen: false });
    for (let t = 301; t < 340; t++) other.predict(train.xs[t]);
    learner.sessionStarted();
    other.sessionStarted();
    assert.deepEqual(Array.from(other.predict(train.xs[400])), Array.from(learner.predict(train.xs[400])));
  });
});

describe('every decoder', () => {
  const kinds: DecoderSpec['decoder'][] = [
    { kind: 'rls', lags: 3 },
    { kind: 'ridge', lags: 3, refitEvery: 37 },
    { kind: 'kalman', refitEvery: 37 },
  ];
  const { xs, ys } = linearProblem(41, 300, 3, 2, 3);

  for (const decoder of kinds) {
    test(`${decoder.kind}: labels d ticks late, in the same order, give the same model as labels on time`, () => {
      const spec = specOf(decoder, 3, 2);
      const onTime = createLearner(spec);
      runOnTime(onTime, xs, ys);
      const late = createLearner(spec);
      const d = 7;
      for (let t = 0; t < xs.length; t++) {
        late.predict(xs[t]);
        if (t >= d) assert.equal(late.learn(ys[t - d], t - d), 'applied');
      }
      for (let t = xs.length - d; t < xs.length; t++) late.learn(ys[t], t);
      assert.deepEqual(late.readParameters(), onTime.readParameters());
      assert.notDeepEqual(late.readParameters(), createLearner(spec).readParameters());
      assert.equal(late.version, onTime.version);
    });

    test(`${decoder.kind}: a label older than maxLabelDelay is dropped, counted and changes nothing else`, () => {
      const learner = createLearner(specOf(decoder, 3, 2, { maxLabelDelay: 8 }));
      for (let t = 0; t < 20; t++) learner.predict(xs[t]);
      const params = learner.readParameters();
      assert.equal(learner.learn(ys[11], 11), 'dropped-late');
      assert.equal(learner.learn(ys[3], 3), 'dropped-late');
      assert.equal(learner.stats.droppedLate, 2);
      assert.deepEqual(learner.readParameters(), params);
      assert.equal(learner.version, 0);
      assert.equal(learner.learn(ys[12], 12), 'applied');
    });

    test(`${decoder.kind}: the snapshot header is the recurrent learner's, readable without a learner`, () => {
      const spec = specOf({ ...decoder, halfLifeTicks: Infinity }, 3, 2);
      const learner = createLearner(spec);
      runOnTime(learner, xs, ys, 0, 10);
      const bytes = learner.snapshot();
      const header = readSnapshotHeader(bytes);
      assert.equal(header.specJson, canonicalJson(learner.spec));
      assert.equal(header.headerBytes + 8 * header.persistentFloats, bytes.length);
      assert.equal(header.headerBytes + learner.stateBytes, bytes.length);
      // Infinity (no forgetting) is stored as its equivalent, an omitted halfLifeTicks: JSON has no Infinity.
      assert.ok(!('halfLifeTicks' in header.spec));
      const restored = createLearner(specOf(decoder, 3, 2));
      restored.restore(bytes);
      assert.deepEqual(restored.snapshot(), bytes);
    });

    test(`${decoder.kind}: an input or label that would overflow the statistics is rejected before it touches them`, () => {
      const learner = createLearner(specOf(decoder, 3, 2));
      runOnTime(learner, xs, ys, 0, 50);
      const params = learner.readParameters();
      learner.predict(Float64Array.from([1e300, 0, 0]));
      assert.equal(learner.learn(ys[50]), 'skipped-non-finite');
      assert.equal(learner.stats.skippedNonFinite, 1);
      assert.deepEqual(learner.readParameters(), params);
      // The huge input stays in the features of the next lags - 1 ticks.
      for (let t = 51; t < 54; t++) learner.predict(xs[t]);
      assert.equal(learner.learn(ys[53]), 'applied');
    });

    test(`${decoder.kind}: no allocation per tick, refits included`, () => {
      const learner = createLearner(specOf({ ...decoder, ...(decoder.kind === 'rls' ? {} : { refitEvery: 100 }) }, 3, 2));
      runOnTime(learner, xs, ys);
      let growth = Infinity;
      let buffers = Infinity;
      for (let attempt = 0; attempt < 20 && !(growth < 64 * 1024 && buffers <= 0); attempt++) {
        collectGarbage();
        const before = process.memoryUsage();
        for (let t = 0; t < 10_000; t++) {
          learner.predict(xs[t % xs.length]);
          learner.learn(ys[t % xs.length]);
        }
        const after = process.memoryUsage();
        growth = after.heapUsed - before.heapUsed;
        buffers = after.arrayBuffers - before.arrayBuffers;
      }
      assert.ok(growth < 64 * 1024, `heapUsed grew by ${growth} bytes over 10^4 ticks`);
      assert.ok(buffers <= 0, `arrayBuffers grew by ${buffers} bytes over 10^4 ticks`);
    });
  }

  test('the stream operators run a decoder unchanged (predictThenLearn with a frozen shadow after a marker)', () => {
    const spec = specOf({ kind: 'ridge', lags: 1, refitEvery: 20 }, 3, 2);
    const pool = new LearnerPool({ spec, maxStreams: 1 });
    const events: StreamInput[] = [];
    for (let seq = 0; seq < 300; seq++) {
      // A session boundary names the first tick of the new session.
      if (seq === 150) events.push({ kind: 'drift', stream: 'a', seq, t: seq * 0.05, source: 'session' } satisfies DriftMarker);
      const tick: TickEvent = { kind: 'tick', stream: 'a', seq, t: seq * 0.05, x: xs[seq], y: ys[seq] };
      events.push(tick);
    }
    const scored: ScoredTick[] = [];
    const others: string[] = [];
    let error: unknown;
    from(events)
      .pipe(predictThenLearn({ pool: () => pool, recoveryTicks: 20, maxDelay: 8 }))
      .subscribe({ next: (m) => (m.kind === 'scored' ? scored.push(m) : others.push(m.kind)), error: (e) => (error = e) });
    assert.equal(error, undefined);
    assert.ok(!others.includes('rejected'), `outputs besides scored ticks: ${others.join(', ')}`);
    assert.equal(scored.length, 300);
    assert.equal(scored[299].version, 299);
    assert.ok(scored.some((s) => s.yFrozen !== undefined), 'the frozen shadow (fork) predicted after the marker');
    assert.ok(pool.get('a').stats.skippedNonFinite === 0);
  });

  test('a declared session boundary reaches the decoder: ridge with resetOnSession recalibrates on the new session alone', () => {
    const rng = new Random(11);
    const maps = [[0.8, -0.5, 0.3], [-0.6, 0.9, 0.4]];
    const events: StreamInput[] = [];
    for (let seq = 0; seq < 1200; seq++) {
      const session = seq < 600 ? 0 : 1;
      if (seq === 0 || seq === 600) events.push({ kind: 'drift', stream: 'a', seq, t: seq * 0.05, source: 'session' } satisfies DriftMarker);
      const x = Float32Array.from({ length: 3 }, () => rng.normal());
      const y = Float32Array.from([maps[session].reduce((a, w, i) => a + w * x[i], 0) + 0.05 * rng.normal()]);
      events.push({ kind: 'tick', stream: 'a', seq, t: seq * 0.05, x, y });
    }
    const lateError = (resetOnSession: boolean) => {
      const pool = new LearnerPool({ spec: specOf({ kind: 'ridge', lags: 1, refitEvery: 20, resetOnSession, minSamples: 40 }, 3, 1), maxStreams: 1 });
      let sse = 0;
      from(events)
        .pipe(predictThenLearn({ pool: () => pool, recoveryTicks: 0, maxDelay: 8 }))
        .subscribe((m) => {
          if (m.kind === 'scored' && m.seq >= 1000) sse += (m.y[0] - m.yhat[0]) ** 2;
        });
      return sse / 200;
    };
    const recalibrated = lateError(true);
    const pooled = lateError(false);
    assert.ok(recalibrated < 0.01, `recalibrated on session 2 alone: MSE ${recalibrated.toFixed(4)} (noise 0.0025)`);
    assert.ok(pooled > 10 * recalibrated, `statistics pooled over both sessions: MSE ${pooled.toFixed(4)}`);
  });
});

let gcFn: (() => void) | undefined;
function collectGarbage(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}
