// Drift detection and recovery operators (DESIGN sections 1, 5, 8): detectDrift on the learner's per-tick error
// (or, with signal 'normalized-error', that error over the label-variance estimate, checked against its definition),
// detectInputDrift on the population mean of the inputs, trackRecovery with RecoveryMeter on the frozen shadow, per
// track (learning ticks and held-out ticks measured apart).
// Marble tests (TestScheduler) cover empty, values, error, never-ending, unsubscribe and a throwing emit callback;
// behavioural tests check detection indices against the detectors fed directly, cooldown, resets at markers, the
// stream bound, and recovery figures recomputed here from the definitions in DESIGN section 5 / RecoveryMeter's doc.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { from, map, merge, Subject, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { Adwin } from '../src/drift/adwin.js';
import type { DetectorSpec } from '../src/drift/detector.js';
import { PageHinkley } from '../src/drift/page-hinkley.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';
import type { LearnerSpec } from '../src/learners/learner.js';
import { detectDrift, NORMALIZER_HALF_LIFE_TICKS, NORMALIZER_WARM_UP_TICKS } from '../src/streams/detect-drift.js';
import { RefusedStreams } from '../src/streams/refused-streams.js';
import { StreamDetectorBank, detectionConfig } from '../src/streams/stream-detector-bank.js';
import { CHANNEL_STATISTICS_DECAY, CHANNEL_STATISTICS_WARM_UP_TICKS } from '../src/streams/channel-novelty.js';
import { detectInputDrift } from '../src/streams/detect-input-drift.js';
import type {
  DriftMarker, LabelEvent, RecoveryReport, Rejection, ScoredTick, StreamInput, StreamOutput, TickEvent,
} from '../src/streams/messages.js';
import { createPipeline } from '../src/streams/pipeline.js';
import { predictThenLearn } from '../src/streams/predict-then-learn.js';
import type { PrequentialInput } from '../src/streams/prequential.js';
import { trackRecovery } from '../src/streams/track-recovery.js';

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** A ScoredTick with y = 0 on two outputs and the given predictions; t = seq / 10. */
function scored(seq: number, yhat: readonly number[], opts: { yFrozen?: readonly number[]; stream?: string; t?: number; heldOut?: boolean } = {}): ScoredTick {
  const nan = Float32Array.from([NaN, NaN]);
  return {
    kind: 'scored', stream: opts.stream ?? 'a', seq, t: opts.t ?? seq / 10,
    y: new Float32Array(2), yhat: Float32Array.from(yhat), yLast: nan, yMean: nan,
    ...(opts.yFrozen ? { yFrozen: Float32Array.from(opts.yFrozen) } : {}),
    delay: 0, heldOut: opts.heldOut ?? false, version: seq,
  };
}

/** A ScoredTick with yhat [v, v] and y [0, 0]: its learner error is v^2 (exact for the values used here). */
const withError = (seq: number, v: number, opts: Parameters<typeof scored>[2] = {}) => scored(seq, [v, v], opts);

/** The definition of the per-tick error: mean over outputs of (yhat - y)^2, from the Float32 values carried. */
function mse(yhat: Float32Array, y: Float32Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += (yhat[i] - y[i]) ** 2;
  return s / y.length;
}
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

const marker = (seq: number, source = 'session', stream = 'a', t = seq / 10): DriftMarker => ({ kind: 'drift', stream, seq, t, source });
const tickOf = (seq: number, x: readonly number[], stream = 'a'): TickEvent => ({ kind: 'tick', stream, seq, t: seq / 10, x: Float32Array.from(x) });

const scheduler = () => new TestScheduler((actual, expected) => assert.deepStrictEqual(actual, expected));
const bare = <T extends { kind: string }>(m: T) =>
  m.kind === 'rejected' ? { kind: m.kind, stream: (m as unknown as Rejection).stream, seq: (m as unknown as Rejection).seq, reason: (m as unknown as Rejection).reason } : m;
const rejected = (reason: Rejection['reason'], stream?: string, seq?: number) => ({ kind: 'rejected', stream, seq, reason });

/** Runs inputs synchronously through an operator and collects every output. */
function run<T>(inputs: readonly unknown[], op: (s: Observable<any>) => Observable<T>): { out: T[]; error?: unknown; completed: boolean } {
  const out: T[] = [];
  let error: unknown;
  let completed = false;
  from(inputs).pipe(op).subscribe({ next: (v) => out.push(v), error: (e) => (error = e), complete: () => (completed = true) });
  return { out, error, completed };
}

/**
 * Page-Hinkley set up so detections can be derived by hand: no tolerance, no forgetting, up only, from the first
 * value. On 0, 0, 0, 4: mean 1, deviation 3, cumulative increase 3 > 0.5 over its minimum 0: drift at the 4th.
 */
const HAND_PH: DetectorSpec = { kind: 'page-hinkley', minInstances: 1, threshold: 0.5, delta: 0, alpha: 1, mode: 'up' };

// ---------------------------------------------------------------------------------------------------------------

describe('detectDrift (marbles)', () => {
  // Errors 0, 0, 0, then (2^2 + 0^2) / 2 = 2: with HAND_PH the 4th gives mean 0.5, deviation 1.5 > 0.5: drift.
  const v: Record<string, PrequentialInput> = {
    a: scored(0, [0, 0]), b: scored(1, [0, 0]), c: scored(2, [0, 0]), d: scored(3, [2, 0]),
    m: marker(9), p: { kind: 'prediction', stream: 'a', seq: 4, t: 0.4, yhat: new Float32Array(2), version: 4, predictedAt: 0 },
    r: { kind: 'rejected', reason: 'oversized', message: 'upstream' },
  };

  test('empty', () => scheduler().run(({ cold, expectObservable }) => {
    const emitted: DriftMarker[] = [];
    expectObservable(cold<PrequentialInput>('|').pipe(detectDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m) }))).toBe('|');
  }));

  test('values pass through unchanged; a detection goes to emit, not to the output', () => {
    const emitted: DriftMarker[] = [];
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('a-b-c-d-p-r-m|', v).pipe(detectDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m) })))
        .toBe('a-b-c-d-p-r-m|', v);
    });
    assert.deepEqual(emitted, [{ kind: 'drift', stream: 'a', seq: 4, t: 0.3, source: 'page-hinkley' }]);
  });

  test('error passes through', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-#', v, new Error('boom')).pipe(detectDrift({ detectors: [HAND_PH], emit: () => {} }))).toBe('a-#', v, new Error('boom'));
  }));

  test('never-ending', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-b-', v).pipe(detectDrift({ detectors: [HAND_PH], emit: () => {} }))).toBe('a-b-', v);
  }));

  test('unsubscribe mid-stream unsubscribes the source', () => scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('a-b-c-d|', v);
    expectObservable(source.pipe(detectDrift({ detectors: [HAND_PH], emit: () => {} })), '^--!').toBe('a-b', v);
    expectSubscriptions(source.subscriptions).toBe('^--!');
  }));

  test('a throwing emit is an error notification, after the tick it fired on', () => scheduler().run(({ cold, expectObservable }) => {
    const boom = new Error('emit failed');
    const op = detectDrift({ detectors: [HAND_PH], emit: () => { throw boom; } });
    expectObservable(cold('a-b-c-d-a|', v).pipe(op)).toBe('a-b-c-(d#)', v, boom);
  }));

  test('malformed scored ticks and markers become rejections in their place', () => scheduler().run(({ cold, expectObservable }) => {
    const bad = {
      x: { ...scored(5, [0, 0]), yhat: Float32Array.from([1]) } as ScoredTick,
      k: { kind: 'scored', seq: 3 } as unknown as ScoredTick,
      n: { kind: 'drift', stream: 'a', seq: NaN, t: 0, source: 'session' } as DriftMarker,
    };
    const expected = { a: v.a, x: rejected('malformed', 'a', 5), k: rejected('malformed'), n: rejected('malformed') };
    expectObservable(cold('a-x-k-n|', { a: v.a, ...bad }).pipe(detectDrift({ detectors: [HAND_PH], emit: () => {} }), map(bare)))
      .toBe('a-x-k-n|', expected);
  }));

  test('configuration errors throw at creation', () => {
    const emit = () => {};
    assert.throws(() => detectDrift(undefined as never), TypeError);
    assert.throws(() => detectDrift({ detectors: 'ph' as never, emit }), TypeError);
    assert.throws(() => detectDrift({ detectors: [{ kind: 'cusum' } as never], emit }), /detectors\[0\]/);
    assert.throws(() => detectDrift({ detectors: [{ kind: 'adwin', delta: 2 }], emit }), /detectors\[0\].*delta/);
    assert.throws(() => detectDrift({ detectors: [HAND_PH], emit: 'no' as never }), TypeError);
    assert.throws(() => detectDrift({ detectors: [HAND_PH], emit, cooldownTicks: -1 }), RangeError);
    assert.throws(() => detectDrift({ detectors: [HAND_PH], emit, cooldownTicks: 1.5 }), RangeError);
    assert.throws(() => detectDrift({ detectors: [HAND_PH], emit, maxStreams: 0 }), RangeError);
    assert.throws(() => detectDrift({ detectors: Array(33).fill(HAND_PH), emit }), /at most 32/);
  });
});

describe('detectDrift (behaviour)', () => {
  /** Learner outputs near 1 for 600 ticks, then near 3: errors near 1, then near 9, on two outputs. */
  function errorStream(seed: number, n = 1200, at = 600): ScoredTick[] {
    const rng = new Random(seed);
    return Array.from({ length: n }, (_, i) => {
      const level = i < at ? 1 : 3;
      return scored(100 + i, [level + 0.3 * rng.normal(), level + 0.3 * rng.normal()], { heldOut: i % 7 === 0 });
    });
  }

  for (const heldOutTicks of ['skip', 'include'] as const) test(`fires at the same ticks as Page-Hinkley and ADWIN fed the same errors directly (held-out ticks: ${heldOutTicks})`, () => {
    const ticks = errorStream(3);
    const ph = new PageHinkley();
    const adwin = new Adwin();
    const expected: DriftMarker[] = [];
    for (const s of ticks) {
      if (s.heldOut && heldOutTicks === 'skip') continue;
      const e = mse(s.yhat, s.y);
      // The order of markers on one tick is the order of the specs.
      if (ph.update(e).driftDetected) expected.push({ kind: 'drift', stream: 'a', seq: s.seq + 1, t: s.t, source: 'page-hinkley' });
      if (adwin.update(e).driftDetected) expected.push({ kind: 'drift', stream: 'a', seq: s.seq + 1, t: s.t, source: 'adwin' });
    }
    assert.ok(expected.some((m) => m.source === 'page-hinkley' && m.seq > 700), 'page-hinkley sees the jump');
    assert.ok(expected.some((m) => m.source === 'adwin' && m.seq > 700), 'adwin sees the jump');
    const emitted: DriftMarker[] = [];
    const { out, completed } = run(ticks, detectDrift({ detectors: [{ kind: 'page-hinkley' }, { kind: 'adwin' }], emit: (m) => emitted.push(m), heldOutTicks }));
    assert.ok(completed);
    assert.deepEqual(emitted, expected);
    assert.equal(out.length, ticks.length);
    out.forEach((m, i) => assert.equal(m, ticks[i], 'passes the very same message'));
  });

  test('two detectors firing on the same tick emit two markers, in spec order', () => {
    // Errors 0 forty times, then about 10 (yhat [sqrt 20, 0] in Float32) forty times.
    const ticks = Array.from({ length: 80 }, (_, i) => scored(i, [i < 40 ? 0 : Math.sqrt(20), 0]));
    const errors = ticks.map((s) => mse(s.yhat, s.y));
    const adwinSpec = { kind: 'adwin', clock: 1, gracePeriod: 5, minWindowLength: 2 } as const;
    const phSpec = { kind: 'page-hinkley', minInstances: 1, threshold: 30, delta: 0, alpha: 1, mode: 'up' } as const;
    const fired = (d: { update(x: number): { driftDetected: boolean } }) => errors.flatMap((e, i) => (d.update(e).driftDetected ? [i] : []));
    const { kind: _a, ...adwinOptions } = adwinSpec;
    const { kind: _p, ...phOptions } = phSpec;
    const both = fired(new Adwin(adwinOptions));
    assert.deepEqual(fired(new PageHinkley(phOptions)), both, 'the two detectors fire together on these numbers');
    assert.equal(both.length, 1);
    const emitted: DriftMarker[] = [];
    run(ticks, detectDrift({ detectors: [adwinSpec, phSpec], emit: (m) => emitted.push(m) }));
    assert.deepEqual(emitted.map((m) => [m.seq, m.source]), [[both[0] + 1, 'adwin'], [both[0] + 1, 'page-hinkley']]);
  });

  // With HAND_PH, errors 0, 0, 0, 4 fire on the 4th; the detector resets on the next value, so a second
  // 0, 0, 0, 4 fires again 4 ticks later (ticks 3 and 7).
  const twoJumps = [0, 0, 0, 2, 0, 0, 0, 2].map((v, i) => withError(i, v));

  test('cooldown: the cooldownTicks scored ticks after a marker emit nothing', () => {
    const detect = (cooldownTicks: number) => {
      const emitted: DriftMarker[] = [];
      run(twoJumps, detectDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m), cooldownTicks }));
      return emitted.map((m) => m.seq);
    };
    assert.deepEqual(detect(0), [4, 8]);
    assert.deepEqual(detect(3), [4, 8], 'ticks 4, 5, 6 cool down; tick 7 may fire');
    assert.deepEqual(detect(4), [4], 'tick 7 is the 4th after the marker');
  });

  test('cooldown counts from markers passing through', () => {
    // After the session marker the detectors start afresh: 0 then 4 gives mean 2, deviation 2 > 0.5 on the 2nd tick.
    const inputs = [withError(0, 0), withError(1, 0), marker(2), withError(2, 0), withError(3, 2)];
    const detect = (cooldownTicks: number) => {
      const emitted: DriftMarker[] = [];
      run(inputs, detectDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m), cooldownTicks }));
      return emitted.map((m) => m.seq);
    };
    assert.deepEqual(detect(0), [4]);
    assert.deepEqual(detect(1), [4]);
    assert.deepEqual(detect(2), []);
  });

  test('a session marker resets the stream\'s detectors (and only that stream\'s)', () => {
    // Without the reset, 0, 0, 0 then 4 fires; after a reset, 4 is the first value of a fresh test: no drift.
    const body = (stream: string) => [0, 0, 0].map((v, i) => withError(i, v, { stream }));
    const jump = (stream: string) => withError(3, 2, { stream });
    const emitted: DriftMarker[] = [];
    const { out } = run([...body('a'), ...body('b'), marker(3, 'session', 'a'), jump('a'), jump('b')],
      detectDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m) }));
    assert.deepEqual(emitted.map((m) => m.stream), ['b']);
    assert.equal(out.filter((m) => m.kind === 'drift').length, 1, 'the marker passes on');
  });

  test('non-finite errors pass on without feeding the detectors', () => {
    const inputs = [withError(0, 0), withError(1, 0), scored(2, [NaN, 0]), scored(3, [Infinity, 0]), withError(4, 0), withError(5, 2)];
    const emitted: DriftMarker[] = [];
    const { out, error } = run(inputs, detectDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m) }));
    assert.equal(error, undefined);
    assert.deepEqual(out, inputs);
    assert.deepEqual(emitted.map((m) => m.seq), [6]);
  });

  test('in a feedback loop through predictThenLearn each marker reaches downstream once, after its tick', () => {
    const spec: LearnerSpec = {
      cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(0.01),
      inputSize: 2, outputSize: 1, seed: 3, loss: 'mse',
    };
    // The target jumps at tick 150; labels come 2 ticks late.
    const target = (i: number) => (i < 150 ? 0.5 * Math.sin(0.2 * i) : 4 + 2 * Math.cos(0.2 * i));
    const inputs: StreamInput[] = [];
    for (let i = 0; i < 300; i++) {
      inputs.push({ kind: 'tick', stream: 'a', seq: i, t: i / 10, x: Float32Array.from([Math.sin(0.2 * i), Math.cos(0.2 * i)]) });
      if (i >= 2) inputs.push({ kind: 'label', stream: 'a', seq: i - 2, y: Float32Array.from([target(i - 2)]) } satisfies LabelEvent);
    }
    const markers = new Subject<DriftMarker>();
    const emitted: DriftMarker[] = [];
    const out: PrequentialInput[] = [];
    merge(markers, from(inputs))
      .pipe(
        predictThenLearn({ pool: { spec, maxStreams: 1 }, recoveryTicks: 30, maxDelay: 4 }),
        detectDrift({ detectors: [{ kind: 'page-hinkley', threshold: 20 }], emit: (m) => { emitted.push(m); markers.next(m); }, cooldownTicks: 50 }),
        trackRecovery({ recoveryTicks: 30, window: 20, tolerance: 0.5 }),
      )
      .subscribe((m) => out.push(m));
    const passed = out.filter((m): m is DriftMarker => m.kind === 'drift');
    assert.deepEqual(passed, emitted, 'each emitted marker comes back once');
    for (const m of passed) {
      const at = out.indexOf(m);
      const detectedOn = out.findIndex((s) => s.kind === 'scored' && s.seq === m.seq - 1);
      assert.ok(detectedOn >= 0 && detectedOn < at, `marker ${m.seq} comes after the tick it was detected on`);
    }
    const reports = out.filter((m): m is RecoveryReport => m.kind === 'recovery');
    assert.deepEqual(reports.map((r) => [r.seq, r.source]), emitted.map((m) => [m.seq, m.source]), 'one report per marker');
    const first = reports[0];
    assert.ok(first.seq > 150 && first.seq <= 160, `the jump at 150 is detected within 10 ticks (${first.seq})`);
    assert.ok(first.eFrozen > first.ePre, 'the drift hurt the frozen shadow');
  });
});

describe('detectDrift (signal: normalized-error)', () => {
  const W = NORMALIZER_WARM_UP_TICKS;
  const HALF_LIFE = NORMALIZER_HALF_LIFE_TICKS;
  const NORMALIZED = { signal: 'normalized-error' } as const;
  /** HAND_PH as a detector object. */
  const handPh = () => new PageHinkley({ minInstances: 1, threshold: 0.5, delta: 0, alpha: 1, mode: 'up' });

  /**
   * A ScoredTick on two outputs with labels y = [label, label], running-mean reference yMean = [mean, mean] (NaN:
   * no label yet) and yhat = y + [d, d]: learner error d^2, reference error (label - mean)^2 (exact in Float32 for
   * the small integers used by hand).
   */
  function labelled(seq: number, d: number, label: number, labelMean: number, opts: { stream?: string; heldOut?: boolean } = {}): ScoredTick {
    return {
      kind: 'scored', stream: opts.stream ?? 'a', seq, t: seq / 10,
      y: Float32Array.from([label, label]), yhat: Float32Array.from([label + d, label + d]),
      yLast: Float32Array.from([labelMean, labelMean]), yMean: Float32Array.from([labelMean, labelMean]),
      delay: 0, heldOut: opts.heldOut ?? false, version: seq,
    };
  }

  /**
   * The signal from its definition, written apart from the operator: v_t is the weighted mean of the reference
   * errors folded so far, weights q^age with q = 2^(-1 / half-life) (what a bias-corrected EWMA is), read before
   * the tick's own is folded; undefined where nothing is fed.
   */
  function definedSignal(ticks: readonly ScoredTick[], includeHeldOut = false): (number | undefined)[] {
    const q = 2 ** (-1 / HALF_LIFE);
    let weighted = 0;
    let weights = 0;
    let folded = 0;
    return ticks.map((s) => {
      const v = folded >= W ? weighted / weights : NaN;
      const r = mse(s.yMean, s.y);
      if (Number.isFinite(r)) {
        weighted = q * weighted + r;
        weights = q * weights + 1;
        folded++;
      }
      const x = mse(s.yhat, s.y) / v;
      return Number.isFinite(x) && (includeHeldOut || !s.heldOut) ? x : undefined;
    });
  }

  /** Markers `detectors` raise when fed `values` directly, in the shape detectDrift emits them. */
  function firedDirectly(ticks: readonly ScoredTick[], values: readonly (number | undefined)[], detectors: readonly { update(x: number): { driftDetected: boolean } }[], sources: readonly string[]): DriftMarker[] {
    const markers: DriftMarker[] = [];
    values.forEach((x, i) => {
      if (x === undefined) return;
      detectors.forEach((d, k) => {
        if (d.update(x).driftDetected) markers.push({ kind: 'drift', stream: ticks[i].stream, seq: ticks[i].seq + 1, t: ticks[i].t, source: sources[k] });
      });
    });
    return markers;
  }

  const detect = (ticks: readonly unknown[], options: Partial<Parameters<typeof detectDrift>[0]> = {}) => {
    const emitted: DriftMarker[] = [];
    const result = run(ticks, detectDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m), ...NORMALIZED, ...options }));
    return { ...result, emitted, seqs: emitted.map((m) => m.seq) };
  };

  /** `n` ticks from `from` with learner error 0 and reference error 4 (label 2, running mean 0). */
  const quiet = (from: number, n: number) => Array.from({ length: n }, (_, i) => labelled(from + i, 0, 2, 0));

  test('marbles: values pass through unchanged, error, never-ending, unsubscribe', () => {
    const v: Record<string, PrequentialInput> = { a: labelled(0, 1, 2, 0), b: labelled(1, 0, 2, NaN), m: marker(2), c: labelled(2, 3, 5, 1) };
    const op = () => detectDrift({ detectors: [HAND_PH], emit: () => {}, ...NORMALIZED });
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      expectObservable(cold<PrequentialInput>('|').pipe(op())).toBe('|');
      expectObservable(cold('a-b-m-c|', v).pipe(op())).toBe('a-b-m-c|', v);
      expectObservable(cold('a-#', v, new Error('boom')).pipe(op())).toBe('a-#', v, new Error('boom'));
      expectObservable(cold('a-b-', v).pipe(op())).toBe('a-b-', v);
      const source = cold('a-b-c|', v);
      expectObservable(source.pipe(op()), '^--!').toBe('a-b', v);
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  test('equals the hand computation: v_t is the EWMA of the reference error, read before the tick folds its own', () => {
    // W ticks of reference error 4 make v = 4 exactly (a weighted mean of equal values). On ticks W..W+3 the
    // learner errors are 0, 0, 0, 4: fed 0, 0, 0, 4 / 4 = 1, and HAND_PH fires on the 4th (mean 0.25, deviation
    // 0.75 > 0.5). Tick W+3 also has reference error (2000 - 0)^2 = 4e6: had it been folded before the read, v would
    // be about 5550 and the 4th value 7e-4, no drift.
    const ticks = [...quiet(0, W + 3), labelled(W + 3, 2, 2000, 0)];
    // After the detection the detector starts afresh: tick W+4 (error 0, reference 4) is its first value, tick W+5
    // its second, which fires iff it exceeds the first by more than 1. v at W+5 by hand: W+3 values of 4, then
    // 4e6, then 4, weights q^age: v = 4 + (4e6 - 4) q (1 - q) / (1 - q^(W+5)).
    const q = 2 ** (-1 / HALF_LIFE);
    const v = 4 + (4e6 - 4) * q * (1 - q) / (1 - q ** (W + 5));
    assert.ok(v > 5000 && v < 6000);
    const tail = (ratio: number) => [labelled(W + 4, 0, 2, 0), labelled(W + 5, Math.sqrt(ratio * v), 2, 0)];
    // 0.1 % either side of 1: also catches W+5 folding its own reference error (4) first, which lowers v by 0.14 %.
    assert.deepEqual(detect([...ticks, ...tail(1.001)]).seqs, [W + 4, W + 6]);
    assert.deepEqual(detect([...ticks, ...tail(0.999)]).seqs, [W + 4]);
    // The same ticks fed to the detector from the definition give the same markers.
    for (const ratio of [1.001, 0.999]) {
      const all = [...ticks, ...tail(ratio)];
      assert.deepEqual(detect(all).emitted, firedDirectly(all, definedSignal(all), [handPh()], ['page-hinkley']));
    }
  });

  test('warm-up: ticks before a label mean exists and the first W - 1 reference errors feed nothing', () => {
    // 5 ticks predicted before any label (yMean NaN, learner error 4), then W ticks of reference error 4, the last
    // with learner error 16, then errors 0, 0, 4. Fed from the first tick after the W-th folded one: 0, 0, 1, and
    // HAND_PH fires on the third (mean 1/3, deviation 2/3 > 0.5). Had tick 5 + W - 1 been fed too (4, 0, 0, 1), it
    // would not fire; had the NaN ticks counted towards the warm-up, 0, ..., 0, 4 would fire at tick 5 + W - 1.
    const start = 5;
    const ticks = [
      ...Array.from({ length: start }, (_, i) => labelled(i, 2, 2, NaN)),
      ...quiet(start, W - 1), labelled(start + W - 1, 4, 2, 0),
      labelled(start + W, 0, 2, 0), labelled(start + W + 1, 0, 2, 0), labelled(start + W + 2, 2, 2, 0),
    ];
    const { seqs, out } = detect(ticks);
    assert.deepEqual(seqs, [start + W + 3]);
    assert.deepEqual(out, ticks, 'every tick passes on, fed or not');
    const early = handPh();
    assert.deepEqual([4, 0, 0, 1].map((x) => early.update(x).driftDetected), [false, false, false, false], 'the counterfactual stays quiet');
  });

  test('v_t = 0 (every label equal to the running mean) feeds nothing; feeding resumes once v_t > 0', () => {
    // Labels 1 with running mean 1 (reference error 0) for W + 4 ticks, the learner's errors ending 0, 0, 0, 4:
    // 'error' fires there, 'normalized-error' divides by 0 and feeds nothing.
    const zeroes = Array.from({ length: W + 4 }, (_, i) => labelled(i, i === W + 3 ? 2 : 0, 1, 1));
    assert.deepEqual(detect(zeroes, { signal: 'error' }).seqs, [W + 4]);
    const { seqs, error } = detect(zeroes);
    assert.deepEqual(seqs, []);
    assert.equal(error, undefined);
    // One tick with reference error 4 (itself read with v = 0: not fed), then v > 0: 0, 0, 0, then error 4 fires.
    const n = zeroes.length;
    const more = [labelled(n, 0, 3, 1), ...[0, 0, 0, 2].map((d, i) => labelled(n + 1 + i, d, 1, 1))];
    assert.deepEqual(detect([...zeroes, ...more]).seqs, [n + 5]);
  });

  /**
   * Two outputs of an AR(1) label, the running mean of the labels before each tick as the reference, and a learner
   * whose error grows threefold in standard deviation at tick `at`; every 7th tick held out. All values times `scale`.
   */
  function driftingStream(seed: number, scale: number, n = 6000, at = 3000): ScoredTick[] {
    const rng = new Random(seed);
    const label = [0, 0];
    const sum = [0, 0];
    return Array.from({ length: n }, (_, i) => {
      const yMean = i === 0 ? [NaN, NaN] : sum.map((s) => s / i);
      for (let k = 0; k < 2; k++) label[k] = 0.95 * label[k] + 0.5 * rng.normal();
      const noise = i < at ? 0.4 : 1.2;
      const yhat = label.map((y) => y + noise * rng.normal());
      for (let k = 0; k < 2; k++) sum[k] += label[k];
      return {
        kind: 'scored', stream: 'a', seq: i, t: i / 20,
        y: Float32Array.from(label, (y) => y * scale), yhat: Float32Array.from(yhat, (y) => y * scale),
        yLast: Float32Array.from(yMean, (y) => y * scale), yMean: Float32Array.from(yMean, (y) => y * scale),
        delay: 0, heldOut: i % 7 === 0, version: i,
      } satisfies ScoredTick;
    });
  }

  for (const heldOutTicks of ['skip', 'include'] as const) test(`fires where Page-Hinkley and ADWIN fed the defined signal directly do (held-out ticks: ${heldOutTicks})`, () => {
    const ticks = driftingStream(5, 1);
    const expected = firedDirectly(ticks, definedSignal(ticks, heldOutTicks === 'include'), [new PageHinkley({ mode: 'up' }), new Adwin()], ['page-hinkley', 'adwin']);
    assert.ok(expected.some((m) => m.source === 'page-hinkley' && m.seq > 3000 && m.seq < 3300), 'page-hinkley sees the rise');
    assert.ok(expected.some((m) => m.source === 'adwin' && m.seq > 3000 && m.seq < 3300), 'adwin sees the rise');
    const { emitted, out } = detect(ticks, { detectors: [{ kind: 'page-hinkley', mode: 'up' }, { kind: 'adwin' }], heldOutTicks });
    assert.deepEqual(emitted, expected);
    out.forEach((m, i) => assert.equal(m, ticks[i], 'passes the very same message'));
  });

  test('scale-free: the same detections with labels and predictions times 1000; with signal error they differ', () => {
    const detectors: DetectorSpec[] = [{ kind: 'page-hinkley', mode: 'up' }, { kind: 'adwin' }];
    const markers = (scale: number, signal: 'error' | 'normalized-error') =>
      detect(driftingStream(5, scale), { detectors, signal }).emitted.map((m) => `${m.source}@${m.seq}`);
    const normalized = markers(1, 'normalized-error');
    assert.ok(normalized.length > 0);
    assert.deepEqual(markers(1000, 'normalized-error'), normalized);
    const raw = markers(1, 'error');
    const rawScaled = markers(1000, 'error');
    assert.notDeepEqual(rawScaled, raw);
    assert.ok(rawScaled.length > 2 * raw.length, `River's defaults on squared errors ~1e5: ${rawScaled.length} vs ${raw.length} markers`);
  });

  test('markers reset the detectors and start the cooldown, but keep v_t', () => {
    // After a session marker at W + 2, learner errors 0 then 16 (v = 4): a fresh detector fed 0, 4 fires on the
    // 2nd. Had the marker reset v_t, the warm-up would start over and nothing would be fed.
    const ticks = [...quiet(0, W + 2), marker(W + 2), labelled(W + 2, 0, 2, 0), labelled(W + 3, 4, 2, 0)];
    assert.deepEqual(detect(ticks).seqs, [W + 4]);
    assert.deepEqual(detect(ticks, { cooldownTicks: 1 }).seqs, [W + 4]);
    assert.deepEqual(detect(ticks, { cooldownTicks: 2 }).seqs, []);
  });

  test('a yMean missing or of another length leaves v_t unchanged, and the tick passes on', () => {
    const odd = (seq: number) => ({ ...labelled(seq, 0, 2, 0), yMean: Float32Array.from([0]) });
    const missing = (seq: number) => ({ ...labelled(seq, 0, 2, 0), yMean: undefined }) as unknown as ScoredTick;
    // Ticks 0..9 cannot be folded, so the warm-up ends at tick W + 10: tick W + 9 (learner error 16) is not fed,
    // then 0, 0, 0, 1 fires on tick W + 13. Had ticks 0..9 counted, 0, ..., 0, 4 would fire on tick W + 9.
    const ticks = [
      ...[0, 1, 2, 3, 4].map(odd), ...[5, 6, 7, 8, 9].map(missing), ...quiet(10, W - 1), labelled(W + 9, 4, 2, 0),
      ...quiet(W + 10, 3), labelled(W + 13, 2, 2, 0),
    ];
    const { seqs, out } = detect(ticks);
    assert.deepEqual(out, ticks);
    assert.deepEqual(seqs, [W + 14]);
  });

  test('a throwing emit is an error notification, after the tick it fired on', () => {
    const boom = new Error('emit failed');
    const ticks = [...quiet(0, W + 3), labelled(W + 3, 2, 2, 0), labelled(W + 4, 0, 2, 0)];
    const { out, error } = run(ticks, detectDrift({ detectors: [HAND_PH], emit: () => { throw boom; }, ...NORMALIZED }));
    assert.equal(error, boom);
    assert.deepEqual(out, ticks.slice(0, W + 4));
  });

  test('bounded: past maxStreams a stream passes through undetected, reported once', () => {
    const a = [...quiet(0, W + 3), labelled(W + 3, 2, 2, 0)];
    const b = (s: ScoredTick): ScoredTick => ({ ...s, stream: 'b' });
    const inputs = [a[0], b(a[0]), marker(1, 'session', 'b'), ...a.slice(1).flatMap((s) => [s, b(s)])];
    const { out, emitted } = detect(inputs, { maxStreams: 1 });
    assert.deepEqual(out.slice(0, 4).map((m) => bare(m as Rejection)), [a[0], b(a[0]), rejected('too-many-streams', 'b', 0), inputs[2]]);
    assert.deepEqual(out.slice(4), inputs.slice(3), 'the refused stream\'s marker and ticks pass, unreported');
    assert.deepEqual(emitted.map((m) => [m.stream, m.seq]), [['a', W + 4]]);
  });

  test('configuration: signal must be error or normalized-error', () => {
    const emit = () => {};
    assert.throws(() => detectDrift({ detectors: [HAND_PH], emit, signal: 'normalised-error' as never }), /detectDrift: signal must be 'error' or 'normalized-error', got normalised-error/);
    assert.throws(() => detectDrift({ detectors: [HAND_PH], emit, signal: 1 as never }), RangeError);
    assert.doesNotThrow(() => detectDrift({ detectors: [HAND_PH], emit, signal: 'error' }));
    assert.doesNotThrow(() => detectDrift({ detectors: [HAND_PH], emit, signal: undefined }));
  });

  test('createPipeline passes drift.signal to detectDrift', () => {
    const spec: LearnerSpec = {
      cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(0.01),
      inputSize: 2, outputSize: 1, seed: 3, loss: 'mse',
    };
    const options = (signal: unknown) => ({
      pool: { spec, maxStreams: 1 }, maxDelay: 4, recoveryTicks: 20, prequential: { window: 10, ewmaAlpha: 0.1 },
      drift: { detectors: [{ kind: 'page-hinkley', threshold: 5, minInstances: 10, mode: 'up' }] as DetectorSpec[], signal: signal as 'error' },
      recovery: { window: 10, tolerance: 0.5 },
    });
    assert.throws(() => createPipeline(options('normalised')), /signal/);
    // 300 ticks, the labels 10 higher from tick 150: 'error' detects the jump; 'normalized-error' is still warming up.
    const inputs: StreamInput[] = Array.from({ length: 300 }, (_, i) => ({
      kind: 'tick', stream: 'a', seq: i, t: i / 10, x: Float32Array.from([Math.sin(i), Math.cos(i)]), y: Float32Array.from([Math.sin(0.3 * i) + (i >= 150 ? 10 : 0)]),
    }));
    const detections = (signal: string) =>
      run(inputs, createPipeline(options(signal)).operator).out.filter((m) => m.kind === 'drift').length;
    assert.ok(detections('error') > 0);
    assert.equal(detections('normalized-error'), 0);
  });
});

describe('detectInputDrift', () => {
  const v: Record<string, StreamInput | Rejection> = {
    a: tickOf(0, [0, 0]), b: tickOf(1, [0, 0]), c: tickOf(2, [0, 0]), d: tickOf(3, [4, 0]),
    l: { kind: 'label', stream: 'a', seq: 0, y: new Float32Array(1) }, m: marker(9),
    r: { kind: 'rejected', reason: 'oversized', message: 'upstream' },
  };

  test('empty', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold<StreamInput>('|').pipe(detectInputDrift({ detectors: [HAND_PH], emit: () => {} }))).toBe('|');
  }));

  test('values pass through unchanged; a detection on the population mean goes to emit', () => {
    // Means 0, 0, 0, 2: with HAND_PH the 4th has mean 0.5, deviation 1.5 > 0.5.
    const emitted: DriftMarker[] = [];
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('a-b-l-c-d-r-m|', v).pipe(detectInputDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m) })))
        .toBe('a-b-l-c-d-r-m|', v);
    });
    assert.deepEqual(emitted, [{ kind: 'drift', stream: 'a', seq: 4, t: 0.3, source: 'input-page-hinkley' }]);
  });

  test('error passes through', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-#', v, new Error('boom')).pipe(detectInputDrift({ detectors: [HAND_PH], emit: () => {} }))).toBe('a-#', v, new Error('boom'));
  }));

  test('never-ending', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-b-', v).pipe(detectInputDrift({ detectors: [HAND_PH], emit: () => {} }))).toBe('a-b-', v);
  }));

  test('unsubscribe mid-stream unsubscribes the source', () => scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('a-b-c-d|', v);
    expectObservable(source.pipe(detectInputDrift({ detectors: [HAND_PH], emit: () => {} })), '^--!').toBe('a-b', v);
    expectSubscriptions(source.subscriptions).toBe('^--!');
  }));

  test('a throwing emit is an error notification, after the tick it fired on', () => scheduler().run(({ cold, expectObservable }) => {
    const boom = new Error('emit failed');
    expectObservable(cold('a-b-c-d-a|', v).pipe(detectInputDrift({ detectors: [HAND_PH], emit: () => { throw boom; } }))).toBe('a-b-c-(d#)', v, boom);
  }));

  /** 16 channels of N(0, 1), the population shifting by +0.5 from tick 800. */
  function shiftingTicks(seed: number, n = 1600, at = 800): TickEvent[] {
    const rng = new Random(seed);
    return Array.from({ length: n }, (_, i) => tickOf(i, Array.from({ length: 16 }, () => (i < at ? 0 : 0.5) + rng.normal())));
  }

  test('fires on a mean shift of x, at the tick Page-Hinkley fed the population means directly does', () => {
    const ticks = shiftingTicks(5);
    const ph = new PageHinkley({ threshold: 20 });
    const expected: number[] = [];
    for (const t of ticks) if (ph.update(mean(Array.from(t.x))).driftDetected) expected.push(t.seq + 1);
    assert.ok(expected.length >= 1 && expected[0] > 800, `one detection after the shift (${expected})`);
    const emitted: DriftMarker[] = [];
    const { out } = run(ticks, detectInputDrift({ detectors: [{ kind: 'page-hinkley', threshold: 20 }], emit: (m) => emitted.push(m) }));
    assert.deepEqual(emitted.map((m) => m.seq), expected);
    assert.ok(emitted.every((m) => m.source === 'input-page-hinkley' && m.t === (m.seq - 1) / 10));
    out.forEach((m, i) => assert.equal(m, ticks[i]));
  });

  test('invalid ticks pass untouched and feed nothing; cooldown counts valid ticks', () => {
    const ticks = shiftingTicks(5);
    const junk = (seq: number): unknown[] => [
      { ...tickOf(seq, []), x: Float32Array.from([NaN, ...Array(15).fill(0)]) },
      { ...tickOf(seq, []), x: Array(16).fill(100) },                // not a Float32Array
      { ...tickOf(seq, []), x: Float32Array.from(Array(3).fill(100)) }, // another channel count
      { ...tickOf(seq, Array(16).fill(100)), t: NaN },
      { kind: 'tick', seq, x: new Float32Array(16) },                   // no stream key
    ];
    const clean: DriftMarker[] = [];
    run(ticks, detectInputDrift({ detectors: [{ kind: 'page-hinkley', threshold: 20 }], emit: (m) => clean.push(m), cooldownTicks: 5 }));
    const noisy: DriftMarker[] = [];
    const inputs = ticks.flatMap((t) => [t, ...junk(t.seq)]);
    const { out, error } = run(inputs, detectInputDrift({ detectors: [{ kind: 'page-hinkley', threshold: 20 }], emit: (m) => noisy.push(m), cooldownTicks: 5 }));
    assert.equal(error, undefined);
    assert.deepEqual(noisy, clean);
    assert.equal(out.length, inputs.length);
    out.forEach((m, i) => assert.equal(m, inputs[i]));

    // Means 0, 0, 0, 2 twice: HAND_PH fires on ticks 3 and 7. With a cooldown of 4 valid ticks the second is
    // suppressed; had the junk ticks counted, the cooldown would have run out before tick 7.
    const twoJumps = [0, 0, 0, 2, 0, 0, 0, 2].map((m, i) => tickOf(i, [m, m]));
    const detect = (cooldownTicks: number) => {
      const emitted: DriftMarker[] = [];
      run(twoJumps.flatMap((t) => [t, ...junk(t.seq)]), detectInputDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m), cooldownTicks }));
      return emitted.map((m) => m.seq);
    };
    assert.deepEqual(detect(3), [4, 8]);
    assert.deepEqual(detect(4), [4]);
  });

  test('a marker passing through resets the detectors', () => {
    const emitted: DriftMarker[] = [];
    run([v.a, v.b, v.c, marker(3), v.d], detectInputDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m) }));
    assert.deepEqual(emitted, []);
  });

  test('bounded: past maxStreams a stream passes through undetected, reported once', () => {
    const emitted: DriftMarker[] = [];
    const inputs: TickEvent[] = [];
    for (const s of ['a', 'b', 'c']) for (const [i, x] of [0, 0, 0, 2].entries()) inputs.push(tickOf(i, [x, x], s));
    const { out } = run([...inputs, marker(5, 'session', 'c')], detectInputDrift({ detectors: [HAND_PH], emit: (m) => emitted.push(m), maxStreams: 2 }));
    assert.deepEqual(emitted.map((m) => m.stream), ['a', 'b']);
    const rejections = out.filter((m): m is Rejection => m.kind === 'rejected');
    assert.deepEqual(rejections.map((r) => [r.reason, r.stream, r.seq]), [['too-many-streams', 'c', 0]]);
    assert.equal(out.length, inputs.length + 2);
  });

  test("'mean-squared-z' sees channels that move in opposite directions, which the population mean cannot; values agree with a direct computation", () => {
    // 16 channels of N(0, 1); from tick 2000 half of them rise by 2 and half fall by 2: the population mean stays.
    const rng = new Random(8);
    const ticks = Array.from({ length: 2400 }, (_, i) => tickOf(i, Array.from({ length: 16 }, (_, c) => (i < 2000 ? 0 : c < 8 ? 2 : -2) + rng.normal())));
    const spec = { kind: 'page-hinkley' as const, threshold: 30, mode: 'up' as const };
    const detect = (statistic: 'population-mean' | 'mean-squared-z') => {
      const emitted: DriftMarker[] = [];
      run(ticks, detectInputDrift({ detectors: [spec], emit: (m) => emitted.push(m), statistic }));
      return emitted.map((m) => m.seq);
    };
    const byMean = detect('population-mean');
    const bySquaredZ = detect('mean-squared-z');
    assert.deepEqual(byMean.filter((s) => s > 2000), [], `the population mean did not move: ${byMean}`);
    assert.ok(bySquaredZ.length >= 1 && bySquaredZ[0] > 2000 && bySquaredZ[0] <= 2010, `squared z-scores: ${bySquaredZ}`);

    // The same detections as Page-Hinkley fed the statistic computed here from its definition.
    const ph = new PageHinkley(spec);
    const m = new Float64Array(16);
    const v = new Float64Array(16);
    const expected: number[] = [];
    ticks.forEach((t, n) => {
      if (n >= CHANNEL_STATISTICS_WARM_UP_TICKS) {
        const floor = 1e-6 * (v.reduce((a, b) => a + b, 0) / 16) + 1e-12;
        let sum = 0;
        for (let c = 0; c < 16; c++) sum += Math.min((t.x[c] - m[c]) ** 2 / Math.max(v[c], floor), 25);
        if (ph.update(sum / 16).driftDetected) expected.push(t.seq + 1);
      }
      const w = Math.max(1 / (n + 1), 1 - CHANNEL_STATISTICS_DECAY);
      for (let c = 0; c < 16; c++) {
        const d = t.x[c] - m[c];
        m[c] += w * d;
        v[c] = (1 - w) * (v[c] + w * d * d);
      }
    });
    assert.deepEqual(bySquaredZ, expected);
    assert.throws(() => detectInputDrift({ detectors: [spec], emit: () => {}, statistic: 'median' as never }), /statistic must be/);
  });

});

describe('stream bound', () => {
  test('a thousand keys past the bound: state stays at maxStreams, one rejection per key', () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
    const inputs = [...keys, ...keys].map((k, i) => withError(i, 0, { stream: k }));
    const { out } = run(inputs, detectDrift({ detectors: [HAND_PH], emit: () => {}, maxStreams: 3 }));
    const rejections = out.filter((m): m is Rejection => m.kind === 'rejected');
    assert.equal(rejections.length, 997);
    assert.deepEqual(new Set(rejections.map((r) => r.stream)).size, 997);
    assert.ok(rejections.every((r) => r.reason === 'too-many-streams' && /3 streams/.test(r.message)));

    const bank = new StreamDetectorBank(detectionConfig('t', { detectors: [HAND_PH], emit: () => {}, maxStreams: 3 }, ''));
    for (const k of keys) bank.observe(k, 1, 0, 0);
    assert.equal(bank.size, 3);
  });

  test('the memory of refused keys is bounded: full, it starts over', () => {
    const refused = new RefusedStreams(3);
    assert.deepEqual(['a', 'b', 'a', 'c', 'b'].map((k) => refused.firstRefusal(k)), [true, true, false, true, false]);
    assert.equal(refused.firstRefusal('d'), true, 'a 4th key empties the memory');
    assert.equal(refused.firstRefusal('a'), true, 'so a is reported once more');
    assert.equal(refused.firstRefusal('d'), false);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('trackRecovery (marbles)', () => {
  // window 4 (E_pre needs max(1, floor(4 / 4)) = 1 tick), recoveryTicks 2: two measured ticks close the measurement.
  const v: Record<string, PrequentialInput> = {
    a: withError(0, 1),                                   // learner error 1
    m: marker(1),
    b: withError(1, 2, { yFrozen: [3, 3] }),              // learner 4, frozen 9
    c: withError(2, 1, { yFrozen: [3, 3] }),              // learner 1, frozen 9
    p: { kind: 'prediction', stream: 'a', seq: 5, t: 0.5, yhat: new Float32Array(2), version: 5, predictedAt: 0 },
    r: { kind: 'rejected', reason: 'oversized', message: 'upstream' },
  };
  // E_pre 1; E_adapt = (4 + 1) / 2 = 2.5; E_frozen 9; recovery (9 - 2.5) / (9 - 1); residual 2.5. Windowed E_adapt
  // over the full 2-tick window is 2.5 > 1.5 * 1: not recovered.
  const report: RecoveryReport = {
    kind: 'recovery', stream: 'a', seq: 1, source: 'session', heldOut: false, ePre: 1, eFrozen: 9, eAdapt: 2.5,
    recovery: 6.5 / 8, residual: 2.5, ticksToRecovery: null, secondsToRecovery: null,
  };
  const options = { recoveryTicks: 2, window: 4, tolerance: 0.5 };

  test('empty', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold<PrequentialInput>('|').pipe(trackRecovery(options))).toBe('|');
  }));

  test('values: everything passes; the report follows the tick that closes the measurement', () => scheduler().run(({ cold, expectObservable }) => {
    // A group takes as many frames as it has characters: the source leaves room for it.
    expectObservable(cold('a-p-m-b-r-c----a|', v).pipe(trackRecovery(options))).toBe('a-p-m-b-r-(cR)-a|', { ...v, R: report });
  }));

  test('error passes through (and reports nothing)', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-m-b-#', v, new Error('boom')).pipe(trackRecovery(options))).toBe('a-m-b-#', v, new Error('boom'));
  }));

  test('never-ending', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-m-b-', v).pipe(trackRecovery(options))).toBe('a-m-b-', v);
  }));

  test('unsubscribe mid-stream unsubscribes the source and reports nothing', () => scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('a-m-b-c|', v);
    expectObservable(source.pipe(trackRecovery(options)), '^--!').toBe('a-m', v);
    expectSubscriptions(source.subscriptions).toBe('^--!');
  }));

  test('two tracks: the learning report, then the held-out one, right after the tick that closes both', () => scheduler().run(({ cold, expectObservable }) => {
    // Before the marker: learning error 1, held-out error 4. After it (recoveryTicks 2, one tick per track):
    // learning 4 vs frozen 9, held-out 9 vs frozen 16. Neither meter's window (2 ticks of its track) fills.
    const w: Record<string, PrequentialInput> = {
      a: withError(0, 1), g: withError(1, 2, { heldOut: true }), m: marker(2),
      b: withError(2, 2, { yFrozen: [3, 3] }), h: withError(3, 3, { yFrozen: [4, 4], heldOut: true }),
    };
    const learning: RecoveryReport = {
      kind: 'recovery', stream: 'a', seq: 2, source: 'session', heldOut: false, ePre: 1, eFrozen: 9, eAdapt: 4,
      recovery: 5 / 8, residual: 4, ticksToRecovery: null, secondsToRecovery: null,
    };
    const heldOut: RecoveryReport = { ...learning, heldOut: true, ePre: 4, eFrozen: 16, eAdapt: 9, recovery: 7 / 12, residual: 9 / 4 };
    expectObservable(cold('a-g-m-b-h------|', w).pipe(trackRecovery(options))).toBe('a-g-m-b-(hLH)--|', { ...w, L: learning, H: heldOut });
  }));

  test('completion reports the open measurement with what it has', () => scheduler().run(({ cold, expectObservable }) => {
    // One measured tick: E_adapt 4, E_frozen 9.
    const partial = { ...report, eAdapt: 4, recovery: 5 / 8, residual: 4 };
    expectObservable(cold('a-m-b|', v).pipe(trackRecovery(options))).toBe('a-m-b(R|)', { ...v, R: partial });
  }));

  test('two tracks: the learning report, then the held-out one, right after the tick that closes both', () => scheduler().run(({ cold, expectObservable }) => {
    // Before the marker: learning error 1, held-out error 4. After it (recoveryTicks 2, one tick per track):
    // learning 4 vs frozen 9, held-out 9 vs frozen 16. Neither meter's window (2 ticks of its track) fills.
    const w: Record<string, PrequentialInput> = {
      a: withError(0, 1), g: withError(1, 2, { heldOut: true }), m: marker(2),
      b: withError(2, 2, { yFrozen: [3, 3] }), h: withError(3, 3, { yFrozen: [4, 4], heldOut: true }),
    };
    const learning: RecoveryReport = {
      kind: 'recovery', stream: 'a', seq: 2, source: 'session', heldOut: false, ePre: 1, eFrozen: 9, eAdapt: 4,
      recovery: 5 / 8, residual: 4, ticksToRecovery: null, secondsToRecovery: null,
    };
    const heldOut: RecoveryReport = { ...learning, heldOut: true, ePre: 4, eFrozen: 16, eAdapt: 9, recovery: 7 / 12, residual: 9 / 4 };
    expectObservable(cold('a-g-m-b-h------|', w).pipe(trackRecovery(options))).toBe('a-g-m-b-(hLH)--|', { ...w, L: learning, H: heldOut });
  }));

  test('malformed scored ticks and markers become rejections in their place', () => scheduler().run(({ cold, expectObservable }) => {
    const bad = {
      x: { ...withError(5, 0), yFrozen: Float32Array.from([1]) } as ScoredTick,
      k: { kind: 'drift', stream: 3, seq: 3 } as unknown as DriftMarker,
    };
    expectObservable(cold('a-x-k|', { a: v.a, ...bad }).pipe(trackRecovery(options), map(bare)))
      .toBe('a-x-k|', { a: v.a, x: rejected('malformed', 'a', 5), k: rejected('malformed') });
  }));

  test('configuration errors throw at creation', () => {
    assert.throws(() => trackRecovery(undefined as never), TypeError);
    assert.throws(() => trackRecovery({ ...options, recoveryTicks: 0 }), /recoveryTicks/);
    assert.throws(() => trackRecovery({ ...options, window: 0 }), /window/);
    assert.throws(() => trackRecovery({ ...options, tolerance: -1 }), /tolerance/);
    assert.throws(() => trackRecovery({ ...options, tolerance: NaN }), /tolerance/);
    assert.throws(() => trackRecovery({ ...options, maxStreams: 0 }), /maxStreams/);
  });
});

describe('trackRecovery (behaviour)', () => {
  const W = 8;
  const R = 12;
  const TOL = 0.5;
  const only = (out: readonly PrequentialInput[]) => out.filter((m): m is RecoveryReport => m.kind === 'recovery');

  /** Report figures from DESIGN section 5 and RecoveryMeter's definitions, over plain arrays. */
  function expectedReport(pre: readonly number[], adapt: readonly number[], frozen: readonly number[], ts: readonly number[], seq: number, source: string) {
    const ePre = mean(pre.slice(-W));
    const win = Math.min(W, R);
    const eAdapt = mean(adapt.slice(-win));
    const eFrozen = mean(frozen.slice(-win));
    let k: number | null = null;
    for (let i = win - 1; i < adapt.length && k === null; i++) if (mean(adapt.slice(i - win + 1, i + 1)) <= (1 + TOL) * ePre) k = i;
    return {
      kind: 'recovery', stream: 'a', seq, source, heldOut: false, ePre, eFrozen, eAdapt,
      recovery: eFrozen > ePre ? (eFrozen - eAdapt) / (eFrozen - ePre) : null,
      residual: eAdapt / ePre,
      ticksToRecovery: k,
      secondsToRecovery: k === null ? null : ts[k] - ts[0],
    };
  }

  function assertReport(actual: RecoveryReport, expected: ReturnType<typeof expectedReport>) {
    for (const key of Object.keys(expected) as Array<keyof typeof expected>) {
      const a = actual[key];
      const e = expected[key];
      if (typeof e === 'number' && typeof a === 'number') assert.ok(Math.abs(a - e) <= 1e-9 * Math.max(1, Math.abs(e)) || (Number.isNaN(a) && Number.isNaN(e)), `${key}: ${a} vs ${e}`);
      else assert.equal(a, e, key);
    }
  }

  test('error jumps at the marker and decays: figures as defined, stale delayed ticks in neither window', () => {
    const rng = new Random(11);
    const inputs: PrequentialInput[] = [];
    const pre: number[] = [];
    // Ticks 0..19 before the drift, error around 1; labels 3 ticks late, so 17, 18, 19 are scored after the marker.
    const preTicks = Array.from({ length: 20 }, (_, i) => withError(i, 1 + 0.1 * rng.normal()));
    for (const s of preTicks.slice(0, 17)) {
      inputs.push(s);
      pre.push(mse(s.yhat, s.y));
    }
    inputs.push(marker(20, 'page-hinkley'));
    // The stale ticks carry huge errors: counted anywhere, they would show.
    for (const seq of [17, 18, 19]) inputs.push(withError(seq, 30));
    const adapt: number[] = [];
    const frozen: number[] = [];
    const ts: number[] = [];
    for (let k = 0; k < R; k++) {
      const s = withError(20 + k, 1 + 3 * Math.exp(-k / 1.5), { yFrozen: [4, 4], t: 2 + 0.25 * k });
      inputs.push(s);
      adapt.push(mse(s.yhat, s.y));
      frozen.push(mse(s.yFrozen!, s.y));
      ts.push(s.t);
    }
    const { out } = run(inputs, trackRecovery({ recoveryTicks: R, window: W, tolerance: TOL }));
    const reports = only(out);
    assert.equal(reports.length, 1);
    const expected = expectedReport(pre, adapt, frozen, ts, 20, 'page-hinkley');
    assert.ok(expected.ticksToRecovery !== null && expected.recovery !== null, 'the scenario recovers');
    assertReport(reports[0], expected);
    assert.equal(out[out.length - 1], reports[0], 'reported right after the 12th measured tick');
  });

  test('never recovering: ticksToRecovery and secondsToRecovery null; E_frozen below E_pre: recovery null', () => {
    const inputs: PrequentialInput[] = [];
    for (let i = 0; i < 10; i++) inputs.push(withError(i, 1));
    inputs.push(marker(10));
    for (let k = 0; k < R; k++) inputs.push(withError(10 + k, 2, { yFrozen: [0.5, 0.5] }));
    const [r] = only(run(inputs, trackRecovery({ recoveryTicks: R, window: W, tolerance: TOL })).out);
    assert.deepEqual([r.ePre, r.eAdapt, r.eFrozen, r.residual], [1, 4, 0.25, 4]);
    assert.equal(r.recovery, null);
    assert.equal(r.ticksToRecovery, null);
    assert.equal(r.secondsToRecovery, null);
  });

  test('stale ticks after the marker stay out of the next E_pre too', () => {
    // recoveryTicks 3: the window (8) at the second marker holds ticks 2..6 and the 3 measured ones; the stale
    // ticks 7, 8, 9 (error 100) would be among them if they had gone into it. One tick measured after the second
    // marker makes it report (a measurement without ticks reports nothing).
    const inputs: PrequentialInput[] = [];
    const windowed: number[] = [];
    for (let i = 0; i < 7; i++) {
      inputs.push(withError(i, 1 + i / 8));
      windowed.push(mse(withError(i, 1 + i / 8).yhat, new Float32Array(2)));
    }
    inputs.push(marker(10));
    for (const seq of [7, 8, 9]) inputs.push(withError(seq, 10));
    for (let k = 0; k < 3; k++) {
      const s = withError(10 + k, 1.5, { yFrozen: [2, 2] });
      inputs.push(s);
      windowed.push(mse(s.yhat, s.y));
    }
    inputs.push(marker(13, 'adwin'));
    inputs.push(withError(13, 1, { yFrozen: [2, 2] }));
    const reports = only(run(inputs, trackRecovery({ recoveryTicks: 3, window: 8, tolerance: TOL })).out);
    assert.deepEqual(reports.map((r) => [r.seq, r.source]), [[10, 'session'], [13, 'adwin']]);
    assert.ok(Math.abs(reports[0].ePre - mean(windowed.slice(0, 7))) < 1e-12);
    assert.ok(Math.abs(reports[1].ePre - mean(windowed.slice(-8))) < 1e-12);
    assert.equal(reports[1].eAdapt, 1);
    assert.equal(reports[1].eFrozen, 4);
  });

  test('a measurement that closes before its first tick reports nothing (next marker, completion, no shadow)', () => {
    const pre = Array.from({ length: 6 }, (_, i) => withError(i, 1));
    const options = { recoveryTicks: 3, window: W, tolerance: TOL };
    // Closed by the next marker while waiting; the stale tick 5 is skipped, the second marker measures one tick.
    const byMarker = only(run([...pre.slice(0, 5), marker(6), pre[5], marker(8, 'adwin'), withError(8, 2, { yFrozen: [3, 3] })], trackRecovery(options)).out);
    assert.deepEqual(byMarker.map((r) => [r.seq, r.source, r.eAdapt]), [[8, 'adwin', 4]]);
    // Closed by completion while waiting.
    assert.deepEqual(only(run([...pre, marker(6)], trackRecovery(options)).out), []);
    // No tick ever carries yFrozen (predictThenLearn without a shadow).
    assert.deepEqual(only(run([...pre, marker(6), withError(6, 2), withError(7, 2)], trackRecovery(options)).out), []);
  });

  test('a tick without yFrozen after the first measured one closes it (the shadow ended); one out of order does not', () => {
    const inputs: PrequentialInput[] = [];
    for (let i = 0; i < 10; i++) inputs.push(withError(i, 1));
    inputs.push(marker(10));
    inputs.push(withError(11, 2, { yFrozen: [3, 3] }));   // first measured (label of 10 comes later)
    inputs.push(withError(9, 1));                          // stale, seq < marker.seq: skipped
    inputs.push(withError(10, 1, { yFrozen: [3, 3] }));   // out of order, still the shadow's: measured
    inputs.push(withError(12, 1, { yFrozen: [3, 3] }));
    inputs.push(withError(13, 1));                         // the shadow has ended: closes
    const closing = inputs[inputs.length - 1];
    inputs.push(withError(14, 1));
    const { out } = run(inputs, trackRecovery({ recoveryTicks: R, window: W, tolerance: TOL }));
    const reports = only(out);
    assert.equal(reports.length, 1);
    assert.equal(out.indexOf(reports[0]), out.indexOf(closing) + 1);
    // Measured errors 4, 1, 1 (window 8 not full: means over what was fed); frozen 9 each.
    assert.equal(reports[0].eAdapt, 2);
    assert.equal(reports[0].eFrozen, 9);
    assert.equal(reports[0].ePre, 1);
  });

  test('a new marker closes the running measurement early, then starts its own', () => {
    const inputs: PrequentialInput[] = [];
    for (let i = 0; i < 10; i++) inputs.push(withError(i, 1));
    inputs.push(marker(10));
    inputs.push(withError(10, 2, { yFrozen: [3, 3] }));
    inputs.push(withError(11, 2, { yFrozen: [3, 3] }));
    inputs.push(marker(12, 'adwin'));
    inputs.push(withError(12, 1, { yFrozen: [2, 2] }));
    const { out } = run(inputs, trackRecovery({ recoveryTicks: R, window: W, tolerance: TOL }));
    const reports = only(out);
    assert.deepEqual(reports.map((r) => [r.seq, r.source, r.eAdapt, r.eFrozen]), [[10, 'session', 4, 9], [12, 'adwin', 1, 4]]);
    assert.equal(out.indexOf(reports[0]), out.findIndex((m) => m.kind === 'drift' && m.seq === 12) + 1, 'right after the new marker');
    // E_pre of the second: the last 8 learner errors, measured ticks included: six 1s and two 4s.
    assert.equal(reports[1].ePre, (6 + 8) / 8);
  });

  test('E_pre not available: too few ticks before the marker, or a zero error', () => {
    const unavailable = (inputs: PrequentialInput[]) => {
      const [r] = only(run(inputs, trackRecovery({ recoveryTicks: 2, window: W, tolerance: TOL })).out);
      assert.ok(Number.isNaN(r.ePre) && Number.isNaN(r.residual));
      assert.equal(r.recovery, null);
      assert.equal(r.ticksToRecovery, null);
      assert.equal(r.secondsToRecovery, null);
      // E_adapt and E_frozen are still measured: errors 1 and 0.25 (learner), 4 (frozen).
      assert.equal(r.eAdapt, 0.625);
      assert.equal(r.eFrozen, 4);
    };
    const post = [withError(5, 1, { yFrozen: [2, 2] }), withError(6, 0.5, { yFrozen: [2, 2] })];
    // floor(8 / 4) = 2 ticks needed: one is too few.
    unavailable([withError(0, 1), marker(5), ...post]);
    // A marker before the stream's first scored tick opens the stream: nothing is measured, no report.
    assert.deepEqual(only(run([marker(5), ...post], trackRecovery({ recoveryTicks: 2, window: W, tolerance: TOL })).out), []);
    unavailable([withError(0, 0), withError(1, 0), withError(2, 0), marker(5), ...post]);
    // Two are enough.
    const [r] = only(run([withError(0, 1), withError(1, 1), marker(5), ...post], trackRecovery({ recoveryTicks: 2, window: W, tolerance: TOL })).out);
    assert.equal(r.ePre, 1);
  });

  test('per stream; bounded: past maxStreams a stream is not measured, reported once', () => {
    const inputs: PrequentialInput[] = [];
    for (const s of ['a', 'b', 'c']) {
      inputs.push(withError(0, 1, { stream: s }), marker(1, 'session', s), withError(1, 2, { stream: s, yFrozen: [3, 3] }));
    }
    const { out } = run(inputs, trackRecovery({ recoveryTicks: 1, window: 4, tolerance: TOL, maxStreams: 2 }));
    assert.deepEqual(only(out).map((r) => [r.stream, r.eAdapt]), [['a', 4], ['b', 4]]);
    const rejections = out.filter((m): m is Rejection => m.kind === 'rejected');
    assert.deepEqual(rejections.map((r) => [r.reason, r.stream, r.seq]), [['too-many-streams', 'c', 0]]);
    assert.equal(out.length, inputs.length + 3);
  });

  test('with predictThenLearn and a declared session boundary: figures recomputed from the scored ticks', () => {
    const spec: LearnerSpec = {
      cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(0.02),
      inputSize: 2, outputSize: 1, seed: 5, loss: 'mse',
    };
    const target = (i: number) => (i < 200 ? 0.6 : -0.6) * Math.sin(0.3 * i);
    const inputs: StreamInput[] = [];
    for (let i = 0; i < 320; i++) {
      if (i === 200) inputs.push(marker(200));
      inputs.push({ kind: 'tick', stream: 'a', seq: i, t: i / 10, x: Float32Array.from([Math.sin(0.3 * i), Math.cos(0.3 * i)]) });
      if (i >= 1) inputs.push({ kind: 'label', stream: 'a', seq: i - 1, y: Float32Array.from([target(i - 1)]) });
    }
    const window = 20;
    const recoveryTicks = 60;
    const { out } = run(inputs, (s: Observable<StreamInput>) =>
      s.pipe(predictThenLearn({ pool: { spec, maxStreams: 1 }, recoveryTicks, maxDelay: 4 }), trackRecovery({ recoveryTicks, window, tolerance: TOL })));
    const reports = only(out as PrequentialInput[]);
    assert.equal(reports.length, 1);
    const r = reports[0];
    // Recompute from the scored ticks: E_pre over the 20 learner errors scored before the marker passed.
    const at = out.findIndex((m) => m.kind === 'drift');
    const before = (out.slice(0, at) as StreamOutput[]).filter((m): m is ScoredTick => m.kind === 'scored');
    const after = (out.slice(at) as StreamOutput[]).filter((m): m is ScoredTick => m.kind === 'scored' && m.yFrozen !== undefined);
    assert.equal(before[before.length - 1].seq, 198, 'the label of 199 comes after the marker');
    assert.equal(after.length, recoveryTicks);
    const expected = {
      ...expectedReportFor(before.map((s) => mse(s.yhat, s.y)), after.map((s) => mse(s.yhat, s.y)), after.map((s) => mse(s.yFrozen!, s.y)), after.map((s) => s.t)),
    };
    assertReport(r, expected);
    assert.ok(r.eFrozen > 5 * r.ePre, 'the flipped target hurts the frozen shadow');
    assert.ok(r.eAdapt < r.eFrozen, 'the adapting learner does better than the frozen one');

    function expectedReportFor(pre: number[], adapt: number[], frozen: number[], ts: number[]) {
      const ePre = mean(pre.slice(-window));
      const win = Math.min(window, recoveryTicks);
      const eAdapt = mean(adapt.slice(-win));
      const eFrozen = mean(frozen.slice(-win));
      let k: number | null = null;
      for (let i = win - 1; i < adapt.length && k === null; i++) if (mean(adapt.slice(i - win + 1, i + 1)) <= (1 + TOL) * ePre) k = i;
      return {
        kind: 'recovery', stream: 'a', seq: 200, source: 'session', heldOut: false, ePre, eFrozen, eAdapt,
        recovery: eFrozen > ePre ? (eFrozen - eAdapt) / (eFrozen - ePre) : null,
        residual: eAdapt / ePre, ticksToRecovery: k, secondsToRecovery: k === null ? null : ts[k] - ts[0],
      };
    }
  });
});

describe('trackRecovery (per track: learning ticks and held-out ticks)', () => {
  const W = 8;
  const TOL = 0.5;
  const only = (out: readonly unknown[]) => out.filter((m): m is RecoveryReport => (m as { kind: string }).kind === 'recovery');
  const close = (a: number | null, e: number | null, what: string) =>
    assert.ok(
      a === e || (typeof a === 'number' && typeof e === 'number' && (Math.abs(a - e) <= 1e-9 * Math.max(1, Math.abs(e)) || (Number.isNaN(a) && Number.isNaN(e)))),
      `${what}: ${a} vs ${e}`,
    );

  /** One scored tick as the definitions see it: its track, the learner's and the shadow's error, its time. */
  interface Seen { readonly heldOut: boolean; readonly adapt: number; readonly frozen: number; readonly t: number }

  /**
   * A track's report from DESIGN section 5 and RecoveryMeter's definitions over plain arrays: `pre` the ticks that
   * were in the E_pre windows when the marker passed (in order), `post` the measured ticks in arrival order. The
   * meter works on the track's own ticks; time to recovery counts every measured tick from the drift (both tracks).
   */
  function expectedTrack(pre: readonly Seen[], post: readonly Seen[], heldOut: boolean, R: number) {
    const own = pre.filter((s) => s.heldOut === heldOut).map((s) => s.adapt).slice(-W);
    const m = own.length >= Math.max(1, Math.floor(W / 4)) ? mean(own) : NaN;
    const ePre = m > 0 ? m : NaN;
    const positions = post.flatMap((s, i) => (s.heldOut === heldOut ? [i] : []));
    const adapt = positions.map((i) => post[i].adapt);
    const frozen = positions.map((i) => post[i].frozen);
    const win = Math.min(W, R);
    const eAdapt = mean(adapt.slice(-win));
    const eFrozen = mean(frozen.slice(-win));
    let k: number | null = null;
    if (!Number.isNaN(ePre)) {
      for (let i = win - 1; i < adapt.length && k === null; i++) if (mean(adapt.slice(i - win + 1, i + 1)) <= (1 + TOL) * ePre) k = positions[i];
    }
    const known = !Number.isNaN(ePre);
    return {
      heldOut, ePre, eFrozen, eAdapt,
      recovery: known && eFrozen > ePre ? (eFrozen - eAdapt) / (eFrozen - ePre) : null,
      residual: known ? eAdapt / ePre : NaN,
      ticksToRecovery: k,
      secondsToRecovery: k === null ? null : post[k].t - post[0].t,
    };
  }

  function assertTrack(actual: RecoveryReport, expected: ReturnType<typeof expectedTrack>) {
    for (const key of Object.keys(expected) as Array<keyof typeof expected>) close(actual[key] as never, expected[key] as never, String(key));
  }

  const seen = (s: ScoredTick): Seen => ({ heldOut: s.heldOut, adapt: mse(s.yhat, s.y), frozen: s.yFrozen ? mse(s.yFrozen, s.y) : NaN, t: s.t });

  test('two tracks measured apart: E_pre, E_frozen, E_adapt, recovery, residual and time to recovery of each, from the definitions', () => {
    // Every third tick is held out. Before the drift the learner's error is about 1 on learning ticks and about 4 on
    // held-out ones; after it both jump and decay back, the held-out one more slowly. Labels come 2 ticks late:
    // ticks 22 (learning) and 23 (held out) are scored after the marker, with errors that would show anywhere.
    const R = 30;
    const rng = new Random(7);
    const isHeldOut = (seq: number) => seq % 3 === 2;
    const inputs: PrequentialInput[] = [];
    const pre: Seen[] = [];
    for (let seq = 0; seq < 22; seq++) {
      const level = isHeldOut(seq) ? 2 : 1;
      const s = withError(seq, level * (1 + 0.05 * rng.normal()), { heldOut: isHeldOut(seq) });
      inputs.push(s);
      pre.push(seen(s));
    }
    inputs.push(marker(24, 'page-hinkley'));
    inputs.push(withError(22, 40), withError(23, 40, { heldOut: true }));
    const post: Seen[] = [];
    for (let seq = 24; seq < 24 + R; seq++) {
      const held = isHeldOut(seq);
      const k = post.filter((p) => p.heldOut === held).length;
      const v = held ? 2 * (1 + 1.5 * Math.exp(-k)) : 1 + 2 * Math.exp(-k / 2.5);
      const s = withError(seq, v + 0.02 * rng.normal(), { yFrozen: held ? [5, 5] : [3, 3], heldOut: held, t: 3 + 0.25 * (seq - 24) });
      inputs.push(s);
      post.push(seen(s));
    }
    inputs.push(withError(24 + R, 1, { yFrozen: [3, 3] })); // past the shadow's 30 ticks: not measured
    const { out } = run(inputs, trackRecovery({ recoveryTicks: R, window: W, tolerance: TOL }));
    const reports = only(out);
    assert.deepEqual(reports.map((r) => [r.seq, r.source, r.heldOut]), [[24, 'page-hinkley', false], [24, 'page-hinkley', true]]);
    const [learning, heldOut] = [expectedTrack(pre, post, false, R), expectedTrack(pre, post, true, R)];
    assert.ok(learning.ticksToRecovery !== null && heldOut.ticksToRecovery !== null, 'both tracks recover in the scenario');
    assert.ok(heldOut.ePre > 3 * learning.ePre, 'the tracks differ: mixing them would show');
    assertTrack(reports[0], learning);
    assertTrack(reports[1], heldOut);
    // Time to recovery counts the drift's ticks on both tracks: more than the learning track's own tick count.
    const ownIndex = post.slice(0, learning.ticksToRecovery! + 1).filter((p) => !p.heldOut).length - 1;
    assert.ok(reports[0].ticksToRecovery! > ownIndex);
    // Both right after the 30th measured tick, learning first.
    const closing = out.findIndex((m) => m.kind === 'scored' && m.seq === 24 + R - 1);
    assert.deepEqual([out.indexOf(reports[0]), out.indexOf(reports[1])], [closing + 1, closing + 2]);
  });

  test('E_pre per track: each from its own ticks; a track with too few ticks before the marker has none', () => {
    const post = [withError(10, 1, { yFrozen: [2, 2] }), withError(11, 2, { yFrozen: [4, 4], heldOut: true })];
    const options = { recoveryTicks: 2, window: W, tolerance: TOL };
    // Eight learning ticks of error 1 and two held-out ones of error 9: E_pre 1 and 9 (mixed, the last 8 would give 2.75).
    const both: PrequentialInput[] = [];
    for (let i = 0; i < 10; i++) both.push(i % 5 === 4 ? withError(i, 3, { heldOut: true }) : withError(i, 1));
    const [learning, heldOut] = only(run([...both, marker(10), ...post], trackRecovery(options)).out);
    assert.deepEqual([learning.heldOut, learning.ePre, learning.eAdapt, learning.eFrozen, learning.residual], [false, 1, 1, 4, 1]);
    assert.deepEqual([heldOut.heldOut, heldOut.ePre, heldOut.eAdapt, heldOut.eFrozen, heldOut.residual], [true, 9, 4, 16, 4 / 9]);
    assert.equal(heldOut.recovery, (16 - 4) / (16 - 9));
    // One held-out tick before the marker is too few (max(1, floor(8 / 4)) = 2): its E_pre is not available, the
    // learning track's is.
    const thin: PrequentialInput[] = [];
    for (let i = 0; i < 10; i++) thin.push(i === 9 ? withError(i, 3, { heldOut: true }) : withError(i, 1));
    const [l, h] = only(run([...thin, marker(10), ...post], trackRecovery(options)).out);
    assert.equal(l.ePre, 1);
    assert.ok(Number.isNaN(h.ePre) && Number.isNaN(h.residual));
    assert.deepEqual([h.heldOut, h.recovery, h.ticksToRecovery, h.secondsToRecovery, h.eAdapt, h.eFrozen], [true, null, null, null, 4, 16]);
  });

  test('a track with no tick in the measurement emits nothing', () => {
    const pre: PrequentialInput[] = [];
    for (let i = 0; i < 10; i++) pre.push(withError(i, 1, { heldOut: i % 2 === 1 }));
    const options = { recoveryTicks: 3, window: W, tolerance: TOL };
    // Only learning ticks after the marker.
    const learningOnly = only(run([...pre, marker(10), ...[10, 11, 12].map((seq) => withError(seq, 2, { yFrozen: [3, 3] }))], trackRecovery(options)).out);
    assert.deepEqual(learningOnly.map((r) => [r.heldOut, r.eAdapt]), [[false, 4]]);
    // Only held-out ticks after the marker (a holdout block covers the whole shadow).
    const heldOutOnly = only(run([...pre, marker(10), ...[10, 11, 12].map((seq) => withError(seq, 2, { yFrozen: [3, 3], heldOut: true }))], trackRecovery(options)).out);
    assert.deepEqual(heldOutOnly.map((r) => [r.heldOut, r.eAdapt]), [[true, 4]]);
    // A held-out tick whose error is not finite reaches no meter: that track measured nothing.
    const diverged = only(run([...pre, marker(10), withError(10, 2, { yFrozen: [3, 3] }), withError(11, NaN, { yFrozen: [3, 3], heldOut: true }), withError(12, 2, { yFrozen: [3, 3] }), withError(13, 2)], trackRecovery(options)).out);
    assert.deepEqual(diverged.map((r) => [r.heldOut, r.eAdapt]), [[false, 4]]);
  });

  test('both tracks close together: recoveryTicks counted over both, the shadow ending, the next marker, completion', () => {
    const pre: PrequentialInput[] = [];
    for (let i = 0; i < 10; i++) pre.push(withError(i, 1, { heldOut: i % 2 === 1 }));
    // Learning 10, 12, 14 (errors 4, 1, 4), held out 11, 13 (9, 9); frozen 16 everywhere.
    const post = [10, 11, 12, 13, 14].map((seq) => withError(seq, seq % 2 === 1 ? 3 : seq === 12 ? 1 : 2, { yFrozen: [4, 4], heldOut: seq % 2 === 1 }));
    const figures = (reports: RecoveryReport[]) => reports.map((r) => [r.seq, r.heldOut, r.eAdapt, r.eFrozen]);
    const full = [[10, false, 3, 16], [10, true, 9, 16]];

    // recoveryTicks 5: the 5th measured tick (3 learning + 2 held out) closes both; the tick after it is not measured.
    const after = withError(15, 10, { yFrozen: [4, 4], heldOut: true });
    const a = run([...pre, marker(10), ...post, after], trackRecovery({ recoveryTicks: 5, window: W, tolerance: TOL })).out;
    assert.deepEqual(figures(only(a)), full);
    assert.deepEqual(a.slice(-3).map((m) => m.kind), ['recovery', 'recovery', 'scored'], 'right after the 5th, before the next tick');

    // The shadow ends (a tick without yFrozen, here a held-out one): both close right after it.
    const ended = withError(15, 1, { heldOut: true });
    const b = run([...pre, marker(10), ...post, ended, withError(16, 1)], trackRecovery({ recoveryTicks: 50, window: W, tolerance: TOL })).out;
    assert.deepEqual(figures(only(b)), full);
    assert.equal(b.indexOf(only(b)[0]), b.indexOf(ended) + 1);

    // The next marker: both close right after it, then its own measurement starts.
    const next = marker(15, 'adwin');
    const c = run([...pre, marker(10), ...post, next], trackRecovery({ recoveryTicks: 50, window: W, tolerance: TOL })).out;
    assert.deepEqual(figures(only(c)), full);
    assert.equal(c.indexOf(only(c)[0]), c.indexOf(next) + 1);

    // Completion: both report what they have, learning first.
    const d = run([...pre, marker(10), ...post], trackRecovery({ recoveryTicks: 50, window: W, tolerance: TOL }));
    assert.ok(d.completed);
    assert.deepEqual(figures(only(d.out)), full);
    assert.deepEqual(d.out.slice(-2).map((m) => m.kind), ['recovery', 'recovery']);
  });

  test('with predictThenLearn and an alternating holdout: per-track figures recomputed from the scored ticks', () => {
    const spec: LearnerSpec = {
      cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(0.02),
      inputSize: 2, outputSize: 1, seed: 5, loss: 'mse',
    };
    const target = (i: number) => (i < 200 ? 0.6 : -0.6) * Math.sin(0.3 * i);
    const inputs: StreamInput[] = [];
    for (let i = 0; i < 320; i++) {
      if (i === 200) inputs.push(marker(200));
      inputs.push({ kind: 'tick', stream: 'a', seq: i, t: i / 10, x: Float32Array.from([Math.sin(0.3 * i), Math.cos(0.3 * i)]) });
      if (i >= 1) inputs.push({ kind: 'label', stream: 'a', seq: i - 1, y: Float32Array.from([target(i - 1)]) });
    }
    const R = 60;
    // 2 s of labels, 1 s withheld, from t = 0: at 10 ticks a second, ticks 200..209 and 230..239 of the shadow are held out.
    const { out } = run(inputs, (s: Observable<StreamInput>) =>
      s.pipe(
        predictThenLearn({ pool: { spec, maxStreams: 1 }, recoveryTicks: R, maxDelay: 4, holdout: { kind: 'alternate', onSeconds: 2, offSeconds: 1 } }),
        trackRecovery({ recoveryTicks: R, window: W, tolerance: TOL }),
      ));
    const at = out.findIndex((m) => m.kind === 'drift');
    const scored = (from: number, to: number) => (out.slice(from, to) as StreamOutput[]).filter((m): m is ScoredTick => m.kind === 'scored');
    const before = scored(0, at).map(seen);
    const after = scored(at, out.length).filter((m) => m.yFrozen !== undefined).map(seen);
    assert.equal(after.length, R);
    assert.equal(after.filter((s) => s.heldOut).length, 20);
    const reports = only(out);
    assert.deepEqual(reports.map((r) => r.heldOut), [false, true]);
    assertTrack(reports[0], expectedTrack(before, after, false, R));
    assertTrack(reports[1], expectedTrack(before, after, true, R));
    for (const r of reports) assert.ok(r.eFrozen > r.ePre, `the flipped target hurts the frozen shadow on ${r.heldOut ? 'held-out' : 'learning'} ticks`);
  });
});
