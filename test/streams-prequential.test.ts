// The prequential operator (DESIGN section 5): windowed and EWMA error of the learner beside the last-label and
// running-mean references, per stream and track (learning / held-out). Marble tests cover empty, values, error,
// never-ending and unsubscribe (the operator takes no callbacks, so there is none to throw). Behavioural tests
// compare the reports with figures derived by hand or recomputed in plain loops here (`expectedFigures`), never
// with numbers copied from the operator's own output.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { from, map, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import type {
  DriftMarker, Prediction, PrequentialReport, Predictor, RecoveryReport, Rejection, ScoredTick,
} from '../src/streams/messages.js';
import { prequential, type PrequentialInput, type PrequentialOptions } from '../src/streams/prequential.js';

const PREDICTORS: readonly Predictor[] = ['learner', 'last-label', 'running-mean'];

interface TickParts {
  readonly stream?: string;
  readonly delay?: number;
  readonly heldOut?: boolean;
}

const f32 = (values: readonly number[]) => Float32Array.from(values);

function scored(
  seq: number, y: readonly number[], yhat: readonly number[], yLast: readonly number[], yMean: readonly number[],
  parts: TickParts = {},
): ScoredTick {
  return {
    kind: 'scored', stream: parts.stream ?? 'a', seq, t: seq * 0.1, y: f32(y), yhat: f32(yhat), yLast: f32(yLast),
    yMean: f32(yMean), delay: parts.delay ?? 0, heldOut: parts.heldOut ?? false, version: seq,
  };
}

/** Runs inputs synchronously through an operator and collects every output. */
function run(inputs: readonly unknown[], op: (s: Observable<any>) => Observable<PrequentialInput>) {
  const out: PrequentialInput[] = [];
  let error: unknown;
  let completed = false;
  from(inputs).pipe(op).subscribe({ next: (v) => out.push(v), error: (e) => (error = e), complete: () => (completed = true) });
  return { out, error, completed };
}

const reportsOf = (out: readonly PrequentialInput[]) => out.filter((m): m is PrequentialReport => m.kind === 'prequential');
const rejectionsOf = (out: readonly PrequentialInput[]) => out.filter((m): m is Rejection => m.kind === 'rejected');

/** Seeded PRNG (mulberry32) and a standard normal from it, so the long tests are reproducible. */
function random(seed: number) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

interface ExpectedFigures {
  mse: Record<Predictor, number>;
  r2: Record<Predictor, number[]>;
  accuracy: Record<Predictor, number>;
  labelDelay: number;
  count: number;
}

/** The window's figures straight from their definitions, in plain loops over the last `window` ticks given. */
function expectedFigures(ticks: readonly ScoredTick[], window: number): ExpectedFigures {
  const last = ticks.slice(Math.max(0, ticks.length - window));
  const n = last.length;
  const out = last[0].y.length;
  const predictionOf = (t: ScoredTick, p: Predictor) => (p === 'learner' ? t.yhat : p === 'last-label' ? t.yLast : t.yMean);
  const argmax = (v: Float32Array) => {
    let best = 0;
    for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
    return best;
  };
  const mse = {} as Record<Predictor, number>;
  const r2 = {} as Record<Predictor, number[]>;
  const accuracy = {} as Record<Predictor, number>;
  for (const p of PREDICTORS) {
    let total = 0;
    let hits = 0;
    r2[p] = [];
    for (const t of last) {
      for (let i = 0; i < out; i++) total += (predictionOf(t, p)[i] - t.y[i]) ** 2;
      if (argmax(predictionOf(t, p)) === argmax(t.y)) hits++;
    }
    mse[p] = total / (n * out);
    accuracy[p] = hits / n;
    for (let i = 0; i < out; i++) {
      let mean = 0;
      for (const t of last) mean += t.y[i];
      mean /= n;
      let sst = 0;
      let sse = 0;
      let allEqual = true;
      for (const t of last) {
        sst += (t.y[i] - mean) ** 2;
        sse += (predictionOf(t, p)[i] - t.y[i]) ** 2;
        if (t.y[i] !== last[0].y[i]) allEqual = false;
      }
      r2[p].push(n < 2 || allEqual ? NaN : 1 - sse / sst);
    }
  }
  let delay = 0;
  for (const t of last) delay += t.delay;
  return { mse, r2, accuracy, labelDelay: delay / n, count: n };
}

/** a and b agree within `rel` of the larger (both NaN agree). */
function close(a: number, b: number, rel: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));
}

function assertMatches(report: PrequentialReport, expected: ExpectedFigures, rel: number, what: string): void {
  assert.equal(report.count, expected.count, `${what}: count`);
  assert.ok(close(report.labelDelay, expected.labelDelay, rel), `${what}: labelDelay ${report.labelDelay} vs ${expected.labelDelay}`);
  for (const p of PREDICTORS) {
    const figures = report.figures[p];
    assert.ok(close(figures.mse, expected.mse[p], rel), `${what}: ${p} mse ${figures.mse} vs ${expected.mse[p]}`);
    assert.equal(figures.r2.length, expected.r2[p].length, `${what}: ${p} r2 length`);
    // Compared as 1 - r2 = SSE / SST, a positive ratio, so that a relative tolerance means something near r2 = 0.
    figures.r2.forEach((r, i) => assert.ok(close(1 - r, 1 - expected.r2[p][i], rel), `${what}: ${p} r2[${i}] ${r} vs ${expected.r2[p][i]}`));
    if (figures.accuracy !== undefined) assert.ok(close(figures.accuracy, expected.accuracy[p], rel), `${what}: ${p} accuracy`);
  }
  const skill = (ref: Predictor) => (expected.mse[ref] > 0 ? 1 - expected.mse.learner / expected.mse[ref] : NaN);
  assert.ok(close(1 - report.skillVsLastLabel, 1 - skill('last-label'), rel), `${what}: skillVsLastLabel`);
  assert.ok(close(1 - report.skillVsRunningMean, 1 - skill('running-mean'), rel), `${what}: skillVsRunningMean`);
}

/** The bias-corrected EWMA of a series, as the weighted mean with weights (1 - alpha)^age. */
function ewmaOf(values: readonly number[], alpha: number): number {
  let weighted = 0;
  let weights = 0;
  for (let i = 0; i < values.length; i++) {
    const w = (1 - alpha) ** (values.length - 1 - i);
    weighted += w * values[i];
    weights += w;
  }
  return weighted / weights;
}

const options = (extra: Partial<PrequentialOptions> = {}): PrequentialOptions => ({ window: 3, ewmaAlpha: 0.5, ...extra });

describe('prequential (marbles)', () => {
  const scheduler = () => new TestScheduler((actual, expected) => assert.deepStrictEqual(actual, expected));
  const summary = (m: PrequentialInput) =>
    m.kind === 'prequential' ? `R ${m.stream}${m.seq}${m.heldOut ? ' held-out' : ''} n${m.count}` : m;
  const prediction: Prediction = { kind: 'prediction', stream: 'a', seq: 1, t: 0.1, yhat: f32([0]), version: 0, predictedAt: 0 };
  const drift: DriftMarker = { kind: 'drift', stream: 'a', seq: 4, t: 0.4, source: 'session' };
  const upstream: Rejection = { kind: 'rejected', stream: 'a', seq: 9, reason: 'oversized', message: 'frame too big' };
  const recovery: RecoveryReport = {
    kind: 'recovery', stream: 'a', seq: 4, source: 'session', ePre: 1, eFrozen: 2, eAdapt: 1, recovery: 1, residual: 1,
    ticksToRecovery: 3, secondsToRecovery: 0.3, heldOut: false,
  };
  const v = {
    p: prediction,
    a: scored(1, [1], [1], [NaN], [NaN]),
    b: scored(2, [2], [1], [1], [1]),
    c: scored(3, [3], [2], [2], [1.5]),
    h: scored(3, [3], [3], [2], [1.5], { heldOut: true }),
    d: drift,
    r: upstream,
    q: { ...reportsOf(run([scored(2, [2], [1], [1], [1])], prequential(options())).out)[0], stream: 'z' } as PrequentialReport,
    k: recovery,
  };
  const expected = {
    ...v, q: summary(v.q), R: 'R a2 n1', S: 'R a3 n2', H: 'R a3 held-out n1',
  };

  test('empty', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold<PrequentialInput>('|').pipe(prequential(options()))).toBe('|');
  }));

  test('values: everything passes through in order; a report follows each scored tick, per track', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('p-a-b----h----d-r-q-k|', v).pipe(prequential(options()), map(summary)))
      .toBe('p-a-(bR)-(hH)-d-r-q-k|', expected);
  }));

  test('error passes through after the reports before it', () => scheduler().run(({ cold, expectObservable }) => {
    const boom = new Error('boom');
    expectObservable(cold('b---#', v, boom).pipe(prequential(options()), map(summary))).toBe('(bR)#', expected, boom);
  }));

  test('never-ending', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('b---c---', v).pipe(prequential(options()), map(summary))).toBe('(bR)(cS)', expected);
  }));

  test('unsubscribe mid-stream unsubscribes the source', () => scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('b---c---p|', v);
    expectObservable(source.pipe(prequential(options()), map(summary)), '^-----!').toBe('(bR)(cS)', expected);
    expectSubscriptions(source.subscriptions).toBe('^-----!');
  }));

  test('unscorable ticks pass through, then a Rejection', () => scheduler().run(({ cold, expectObservable }) => {
    const bare = (m: PrequentialInput) => (m.kind === 'rejected' ? `${m.reason} ${m.stream}${m.seq}` : summary(m));
    const w = { b: v.b, D: scored(5, [1, 2], [1, 2], [1, 2], [1, 2]), N: scored(6, [1], [Infinity], [1], [1]), x: scored(1, [1], [1], [0], [0], { stream: 'x' }) };
    const want = { ...expected, D: w.D, d: 'dimension a5', N: w.N, n: 'non-finite a6', x: w.x, t: 'too-many-streams x1' };
    expectObservable(cold('b---D---N---x---x|', w).pipe(prequential(options({ maxStreams: 1 })), map(bare)))
      .toBe('(bR)(Dd)(Nn)(xt)x|', want);
  }));
});

describe('prequential figures', () => {
  test('a hand-computed example: window 3, two outputs', () => {
    // y, yhat, yLast, yMean, delay per tick; the window after tick 4 holds ticks 2, 3, 4.
    const ticks = [
      scored(1, [1, 2], [1, 1], [0, 0], [0, 0], { delay: 0 }),
      scored(2, [2, 4], [3, 4], [1, 2], [1, 2], { delay: 1 }),
      scored(3, [4, 4], [4, 2], [2, 4], [1.5, 3], { delay: 2 }),
      scored(4, [3, 6], [3, 6], [4, 4], [2, 2], { delay: 3 }),
    ];
    const { out, completed } = run(ticks, prequential(options({ classification: true })));
    assert.ok(completed);
    const reports = reportsOf(out);
    assert.equal(reports.length, 4);
    const r = reports[3];
    assert.deepEqual([r.stream, r.seq, r.heldOut, r.window, r.count], ['a', 4, false, 3, 3]);
    // By hand. Squared errors (output 0, output 1) on ticks 2, 3, 4:
    //   learner (1, 0) (0, 4) (0, 0): SSE (1, 4), mse 5/6
    //   last-label (1, 4) (4, 0) (1, 4): SSE (6, 8), mse 14/6
    //   running-mean (1, 4) (6.25, 1) (1, 16): SSE (8.25, 21), mse 29.25/6
    // Labels: output 0 is 2, 4, 3 (mean 3, SST 2); output 1 is 4, 4, 6 (mean 14/3, SST 8/3).
    // Argmax of y: 1, 0 (tie: the first), 1; learner 1, 0, 1; last-label 1, 1, 0; running-mean 1, 1, 0.
    const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);
    near(r.figures.learner.mse, 5 / 6, 'learner mse');
    near(r.figures['last-label'].mse, 14 / 6, 'last-label mse');
    near(r.figures['running-mean'].mse, 29.25 / 6, 'running-mean mse');
    const r2 = { learner: [0.5, -0.5], 'last-label': [-2, -2], 'running-mean': [-3.125, -6.875] };
    for (const p of PREDICTORS) r2[p].forEach((v, i) => near(r.figures[p].r2[i], v, `${p} r2[${i}]`));
    near(r.figures.learner.accuracy!, 1, 'learner accuracy');
    near(r.figures['last-label'].accuracy!, 1 / 3, 'last-label accuracy');
    near(r.figures['running-mean'].accuracy!, 1 / 3, 'running-mean accuracy');
    near(r.skillVsLastLabel, 9 / 14, 'skill vs last label');
    near(r.skillVsRunningMean, 97 / 117, 'skill vs running mean');
    near(r.labelDelay, 2, 'label delay');
    // Learner's per-tick mse 0.5, 0.5, 2, 0 with alpha 0.5: weights 1/8, 1/4, 1/2, 1 -> 1.1875 / 1.875 = 19/30.
    near(r.figures.learner.mseEwma, 19 / 30, 'learner mseEwma');
    // Every report against the plain-loop figures, including the first (one tick: r2 NaN).
    reports.forEach((report, k) => assertMatches(report, expectedFigures(ticks.slice(0, k + 1), 3), 1e-12, `report ${k}`));
    assert.ok(reports[0].figures.learner.r2.every(Number.isNaN));
  });

  test('without classification there is no accuracy', () => {
    const { out } = run([scored(1, [1, 0], [0, 1], [1, 0], [1, 0])], prequential(options()));
    for (const p of PREDICTORS) assert.equal('accuracy' in reportsOf(out)[0].figures[p], false);
  });

  test('persistence beats a noise learner on a random-walk label: skill < 0', () => {
    const rng = random(11);
    const ticks: ScoredTick[] = [];
    let y = 0;
    let sum = 0;
    for (let k = 0; k < 2000; k++) {
      const yLast = k === 0 ? NaN : y;
      const yMean = k === 0 ? NaN : sum / k;
      y += 0.1 * rng.normal();
      sum += y;
      ticks.push(scored(k, [y], [rng.normal()], [yLast], [yMean]));
    }
    const reports = reportsOf(run(ticks, prequential({ window: 100, ewmaAlpha: 0.01 })).out);
    assert.equal(reports.length, 1999);
    for (const r of reports.slice(99)) {
      assert.ok(r.skillVsLastLabel < 0, `seq ${r.seq}: skill ${r.skillVsLastLabel}`);
      // Persistence's error is the step variance, 0.01; the noise learner's is at least the noise variance, ~1.
      assert.ok(r.figures['last-label'].mse < 0.05 && r.figures.learner.mse > 0.5, `seq ${r.seq}`);
    }
  });

  test('a perfect learner: mse 0, skill 1, r2 1', () => {
    const ticks = Array.from({ length: 50 }, (_, k) => {
      const y = [Math.sin(0.3 * k), Math.cos(0.2 * k)];
      return scored(k, y, y, [Math.sin(0.3 * (k - 1)), 0], [0.1, -0.2]);
    });
    const reports = reportsOf(run(ticks, prequential(options({ window: 10 }))).out);
    for (const r of reports) {
      assert.equal(r.figures.learner.mse, 0);
      assert.equal(r.figures.learner.mseEwma, 0);
      assert.equal(r.skillVsLastLabel, 1);
      assert.equal(r.skillVsRunningMean, 1);
      if (r.count >= 2) assert.deepEqual(r.figures.learner.r2, [1, 1]);
    }
  });

  test('a learner that becomes perfect after a drift reads exactly 0 once the old errors leave the window', () => {
    const ticks = Array.from({ length: 40 }, (_, k) => {
      const y = [10 * Math.sin(k), 3];
      return scored(k, y, k < 20 ? [y[0] + 1e4, 3 + 1e3] : y, [0, 0], [1, 1]);
    });
    const reports = reportsOf(run(ticks, prequential(options({ window: 7 }))).out);
    for (const r of reports.slice(27)) {
      assert.equal(r.figures.learner.mse, 0, `seq ${r.seq}`);
      // Output 1 is constant: no SST, no r2.
      assert.ok(Number.isNaN(r.figures.learner.r2[1]));
    }
  });

  test('skill is NaN when a reference is perfect', () => {
    const ticks = [scored(1, [2], [1], [2], [1]), scored(2, [2], [1], [2], [1])];
    const [r] = reportsOf(run(ticks, prequential(options({ every: 2 }))).out);
    assert.ok(Number.isNaN(r.skillVsLastLabel));
    assert.equal(r.skillVsRunningMean, 0);
    assert.ok(Number.isNaN(r.figures.learner.r2[0]));
  });

  test('held-out ticks are reported only in held-out reports, and learning ticks only in the others', () => {
    const ticks: ScoredTick[] = [];
    for (let k = 0; k < 60; k++) {
      const heldOut = Math.floor(k / 7) % 2 === 1;
      const y = [(k % 5) * 0.5 - 1, k % 3];
      // The learner is off by 1 on learning ticks and by 2 on held-out ones.
      const off = heldOut ? 2 : 1;
      ticks.push(scored(k, y, [y[0] + off, y[1] - off], [0, 0], [0.5, 1], { heldOut, delay: heldOut ? 4 : 1 }));
    }
    const { out } = run(ticks, prequential(options({ window: 5 })));
    // Each report follows its own tick directly.
    out.forEach((m, i) => {
      if (m.kind !== 'prequential') return;
      const tick = out[i - 1] as ScoredTick;
      assert.equal(tick.kind, 'scored');
      assert.equal(m.seq, tick.seq);
      assert.equal(m.heldOut, tick.heldOut);
    });
    const reports = reportsOf(out);
    assert.equal(reports.length, 60);
    for (const r of reports) {
      const track = ticks.filter((t) => t.heldOut === r.heldOut && t.seq <= r.seq);
      assertMatches(r, expectedFigures(track, 5), 1e-12, `seq ${r.seq}`);
      assert.equal(r.figures.learner.mse, r.heldOut ? 4 : 1);
      assert.equal(r.labelDelay, r.heldOut ? 4 : 1);
    }
    assert.equal(reports.filter((r) => r.heldOut).length, ticks.filter((t) => t.heldOut).length);
  });

  test('running sums stay within 1e-9 of a brute-force recompute over 10^5 random ticks', () => {
    const rng = random(2024);
    const window = 37;
    const alpha = 0.05;
    const op = prequential({ window, ewmaAlpha: alpha, classification: true });
    const tracks = { learning: [] as ScoredTick[], heldOut: [] as ScoredTick[] };
    const ewma = { learning: 0, heldOut: 0 };
    const ticksOfTrack = { learning: 0, heldOut: 0 };
    const inputs: ScoredTick[] = [];
    // Regimes of 5000 ticks with scales and offsets that change by orders of magnitude, a constant output, and a
    // perfect learner: the cases where add-and-subtract sums lose digits.
    const regimes = [
      { scale: 1, offset: 0, noise: 1 }, { scale: 1e3, offset: 100, noise: 0.5 }, { scale: 1e-2, offset: 1e3, noise: 0.1 },
      { scale: 1, offset: -3, noise: 0 }, { scale: 50, offset: 5, noise: 2 },
    ];
    let previous = [0, 0, 0];
    const sums = [0, 0, 0];
    for (let k = 0; k < 100_000; k++) {
      const regime = regimes[Math.floor(k / 5000) % regimes.length];
      const constant = Math.floor(k / 5000) % 3 === 2;
      const y = [0, 1, 2].map((i) => (i === 2 && constant ? 5 : regime.offset + regime.scale * rng.normal()));
      const yF = f32(y);
      const yhat = Array.from(yF, (v) => v + regime.noise * regime.scale * rng.normal());
      const yMean = sums.map((s) => s / Math.max(1, k));
      inputs.push(scored(k, Array.from(yF), yhat, previous, yMean, { delay: Math.floor(rng.uniform() * 6), heldOut: rng.uniform() < 0.2 }));
      previous = Array.from(yF);
      yF.forEach((v, i) => (sums[i] += v));
    }
    // Collected first and checked after: an assertion thrown inside a subscriber would be rethrown asynchronously.
    const { out } = run(inputs, op);
    let reports = 0;
    for (const m of out) {
      if (m.kind === 'scored') {
        const key = m.heldOut ? 'heldOut' : 'learning';
        const track = tracks[key];
        track.push(m);
        if (track.length > window) track.shift();
        let sq = 0;
        for (let i = 0; i < 3; i++) sq += (m.yhat[i] - m.y[i]) ** 2;
        // The EWMA by its recurrence, bias-corrected (an independent form of ewmaOf, which is O(n) per tick).
        ewma[key] = (1 - alpha) * ewma[key] + alpha * (sq / 3);
        ticksOfTrack[key]++;
        continue;
      }
      if (m.kind !== 'prequential') continue;
      reports++;
      const key = m.heldOut ? 'heldOut' : 'learning';
      assertMatches(m, expectedFigures(tracks[key], window), 1e-9, `seq ${m.seq}`);
      const corrected = ewma[key] / (1 - (1 - alpha) ** ticksOfTrack[key]);
      assert.ok(close(m.figures.learner.mseEwma, corrected, 1e-9), `seq ${m.seq}: mseEwma`);
    }
    assert.equal(reports, 100_000);
  });

  test('r2 is NaN exactly when the window holds one label value, however its mean rounds', () => {
    for (const window of [3, 5, 7, 10]) {
      // Varying labels, then a run of 0.1 (not a binary fraction: its sum and mean round), then varying again.
      const ys = Array.from({ length: 40 }, (_, k) => (k < 11 || k >= 30 ? 0.7 * k + 0.01 * k * k : 0.1));
      const ticks = ys.map((y, k) => scored(k, [y, k], [y + 0.5, k + 1], [0, 0], [0, 0]));
      const reports = reportsOf(run(ticks, prequential(options({ window }))).out);
      reports.forEach((r, k) => {
        const constant = k - window + 1 >= 11 && k < 30;
        assert.equal(Number.isNaN(r.figures.learner.r2[0]), constant || k === 0, `window ${window}, report ${k}`);
        assertMatches(r, expectedFigures(ticks.slice(0, k + 1), window), 1e-9, `window ${window}, report ${k}`);
      });
    }
  });

  test('every k thins reports to each k-th scored tick of a stream and track', () => {
    const a = (k: number, heldOut = false) => scored(k, [k], [0], [0], [0], { heldOut });
    const b = (k: number) => scored(k, [k], [0], [0], [0], { stream: 'b' });
    // Stream a: 7 learning ticks, then 3 held-out ones; stream b: 4 learning ticks, interleaved with a's.
    const mixed = [a(0), b(0), a(1), b(1), a(2), b(2), a(3), b(3), a(4), a(5), a(6), a(7, true), a(8, true), a(9, true)];
    const reports = reportsOf(run(mixed, prequential(options({ every: 3 }))).out);
    assert.deepEqual(reports.map((r) => `${r.stream}${r.seq}${r.heldOut ? 'h' : ''}`), ['a2', 'b2', 'a5', 'a9h']);
    assert.deepEqual(reports.map((r) => r.count), [3, 3, 3, 3]);
  });

  test('ticks with a NaN reference are scored for no predictor, silently', () => {
    const ticks = [
      scored(0, [1, 2], [0, 0], [NaN, NaN], [NaN, NaN]),
      scored(1, [2, 1], [5, 5], [NaN, NaN], [NaN, NaN]),
      scored(2, [3, 3], [9, 9], [1, 2], [NaN, 1]),
      scored(3, [4, 0], [3, 1], [1, 2], [1, 2], { delay: 2 }),
      scored(4, [1, 1], [1, 2], [4, 0], [2, 1], { delay: 2 }),
      scored(5, [0, 1], [9, 9], [1, 1], [2, NaN], { delay: 2 }),
      scored(6, [2, 5], [2, 4], [1, 1], [2, 1], { delay: 2 }),
    ];
    const { out } = run(ticks, prequential(options({ window: 4 })));
    assert.deepEqual(out.map((m) => (m.kind === 'prequential' ? `R${m.seq}` : m.kind === 'scored' ? `s${m.seq}` : m.kind)),
      ['s0', 's1', 's2', 's3', 'R3', 's4', 'R4', 's5', 's6', 'R6']);
    const kept = ticks.filter((t) => [3, 4, 6].includes(t.seq));
    const reports = reportsOf(out);
    reports.forEach((r, k) => assertMatches(r, expectedFigures(kept.slice(0, k + 1), 4), 1e-12, `report ${k}`));
    assert.equal(reports[2].count, 3);
    // The EWMA too covers only the scored ticks: learner errors (1 + 1) / 2, (0 + 1) / 2, (0 + 1) / 2.
    assert.ok(Math.abs(reports[2].figures.learner.mseEwma - ewmaOf([1, 0.5, 0.5], 0.5)) < 1e-12);
  });

  test('mseEwma matches a hand loop for every predictor', () => {
    const rng = random(5);
    const alpha = 0.3;
    const ticks = Array.from({ length: 25 }, (_, k) =>
      scored(k, [rng.normal(), rng.normal()], [rng.normal(), rng.normal()], [rng.normal(), 0], [0, rng.normal()]));
    const reports = reportsOf(run(ticks, prequential({ window: 4, ewmaAlpha: alpha })).out);
    for (const p of PREDICTORS) {
      const perTick: number[] = [];
      let s = 0;
      ticks.forEach((t, k) => {
        const pred = p === 'learner' ? t.yhat : p === 'last-label' ? t.yLast : t.yMean;
        const e = ((pred[0] - t.y[0]) ** 2 + (pred[1] - t.y[1]) ** 2) / 2;
        perTick.push(e);
        s = (1 - alpha) * s + alpha * e;
        const byRecurrence = s / (1 - (1 - alpha) ** (k + 1));
        const got = reports[k].figures[p].mseEwma;
        assert.ok(Math.abs(got - byRecurrence) < 1e-12 * Math.max(1, byRecurrence), `${p} tick ${k}`);
        assert.ok(Math.abs(got - ewmaOf(perTick, alpha)) < 1e-12 * Math.max(1, got), `${p} tick ${k} (weighted mean)`);
      });
    }
    // alpha 1: the EWMA is the last tick's error.
    const last = reportsOf(run(ticks, prequential({ window: 4, ewmaAlpha: 1 })).out).at(-1)!;
    const t = ticks.at(-1)!;
    assert.ok(Math.abs(last.figures.learner.mseEwma - ((t.yhat[0] - t.y[0]) ** 2 + (t.yhat[1] - t.y[1]) ** 2) / 2) < 1e-12);
  });
});

describe('prequential input handling', () => {
  test('messages pass through as the same objects, unchanged', () => {
    const t = scored(1, [1, 2], [0, 0], [1, 1], [1, 1]);
    const before = structuredClone(t);
    const { out } = run([t], prequential(options()));
    assert.equal(out[0], t);
    assert.deepEqual(t, before);
  });

  test('a tick of another output size is rejected as dimension, and the stream goes on', () => {
    const ticks = [
      scored(1, [1, 2], [0, 0], [1, 1], [1, 1]),
      scored(2, [1, 2, 3], [0, 0, 0], [1, 1, 1], [1, 1, 1]),
      scored(3, [1, 2], [0, 0, 0], [1, 1], [1, 1]),
      scored(4, [3, 3], [0, 0], [1, 1], [1, 1]),
    ];
    const { out, error } = run(ticks, prequential(options()));
    assert.equal(error, undefined);
    assert.deepEqual(out.map((m) => (m.kind === 'rejected' ? `${m.reason}${m.seq}` : m.kind === 'prequential' ? `R${m.seq}n${m.count}` : `s${(m as ScoredTick).seq}`)),
      ['s1', 'R1n1', 's2', 'dimension2', 's3', 'dimension3', 's4', 'R4n2']);
    assertMatches(reportsOf(out)[1], expectedFigures([ticks[0], ticks[3]], 3), 1e-12, 'after the rejections');
  });

  test('non-finite values and malformed ticks are rejected after passing through', () => {
    const good = scored(1, [1], [0], [1], [1]);
    const cases: Array<[string, unknown, Rejection['reason']]> = [
      ['infinite yhat', scored(2, [1], [Infinity], [1], [1]), 'non-finite'],
      ['NaN yhat', scored(2, [1], [NaN], [1], [1]), 'non-finite'],
      ['infinite y', scored(2, [-Infinity], [1], [1], [1]), 'non-finite'],
      ['infinite reference', scored(2, [1], [1], [Infinity], [1]), 'non-finite'],
      ['no yhat', { ...good, yhat: undefined }, 'malformed'],
      ['no outputs', scored(2, [], [], [], []), 'malformed'],
      ['negative delay', { ...good, delay: -1 }, 'malformed'],
      ['no stream key', { ...good, stream: 3 }, 'malformed'],
    ];
    for (const [name, tick, reason] of cases) {
      const { out, error } = run([good, tick, good], prequential(options()));
      assert.equal(error, undefined, name);
      assert.equal(out[2], tick, name);
      const r = out[3] as Rejection;
      assert.equal(r.kind, 'rejected', name);
      assert.equal(r.reason, reason, name);
      assert.ok(r.message.length > 0, name);
      if (name === 'no stream key') assert.equal('stream' in r, false);
      assert.equal(reportsOf(out).at(-1)!.count, 2, `${name}: not scored`);
    }
  });

  test('maxStreams: streams past the cap pass unscored, refused once per key', () => {
    const inputs = [
      scored(1, [1], [0], [0], [0], { stream: 'a' }),
      scored(1, [1], [0], [0], [0], { stream: 'b' }),
      scored(2, [1], [0], [0], [0], { stream: 'b' }),
      scored(1, [1], [0], [0], [0], { stream: 'c' }),
      scored(2, [1], [0], [0], [0], { stream: 'a' }),
      scored(3, [1], [0], [0], [0], { stream: 'b' }),
    ];
    const { out } = run(inputs, prequential(options({ maxStreams: 1 })));
    assert.equal(out.filter((m) => m.kind === 'scored').length, 6);
    assert.deepEqual(rejectionsOf(out).map((r) => `${r.reason} ${r.stream}${r.seq}`), ['too-many-streams b1', 'too-many-streams c1']);
    assert.deepEqual(reportsOf(out).map((r) => `${r.stream}${r.seq}n${r.count}`), ['a1n1', 'a2n2']);
  });

  test('two subscribers do not share state', () => {
    const ticks = Array.from({ length: 6 }, (_, k) => scored(k, [k], [0], [1], [1]));
    const pipeline = from(ticks).pipe(prequential(options()));
    const first: PrequentialInput[] = [];
    const second: PrequentialInput[] = [];
    pipeline.subscribe((m) => first.push(m));
    pipeline.subscribe((m) => second.push(m));
    assert.deepEqual(second, first);
    assert.equal(reportsOf(first).at(-1)!.count, 3);
  });

  test('configuration errors throw at creation with clear messages', () => {
    assert.throws(() => prequential(undefined as never), TypeError);
    assert.throws(() => prequential(options({ window: 0 })), /window must be a positive integer, got 0/);
    assert.throws(() => prequential(options({ window: 2.5 })), RangeError);
    assert.throws(() => prequential(options({ ewmaAlpha: 0 })), /ewmaAlpha must be a number in \(0, 1\], got 0/);
    assert.throws(() => prequential(options({ ewmaAlpha: 1.5 })), RangeError);
    assert.throws(() => prequential(options({ ewmaAlpha: NaN })), RangeError);
    assert.throws(() => prequential(options({ every: 0 })), /every must be a positive integer/);
    assert.throws(() => prequential(options({ every: 1.5 })), RangeError);
    assert.throws(() => prequential(options({ maxStreams: 0 })), /maxStreams must be a positive integer or Infinity/);
    assert.throws(() => prequential(options({ classification: 'yes' as never })), TypeError);
    assert.doesNotThrow(() => prequential(options({ ewmaAlpha: 1, maxStreams: Infinity })));
  });
});
