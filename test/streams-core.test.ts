// The core stream operators (DESIGN sections 1, 5, 8): learner pool, holdout schedules, joinLabels,
// normalizeInputs and predictThenLearn. Marble tests (TestScheduler) for each operator cover empty, values, error
// passthrough, never-ending, unsubscribe and throwing callbacks; behavioural tests drive predictThenLearn with real
// learners. Decision tested here: a spec function or pool factory that throws is a programming error (error
// notification); bad input is a Rejection and the stream goes on.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { from, map, Subject, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { createLearner, type LearnerSpec } from '../src/learners/learner.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import { holdoutSchedule } from '../src/streams/holdout.js';
import { joinLabels } from '../src/streams/join-labels.js';
import { LearnerPool, TooManyStreamsError, UnknownStreamError } from '../src/streams/learner-pool.js';
import type {
  DriftMarker, LabelEvent, Prediction, Rejection, ScoredTick, StreamInput, StreamOutput, TickEvent,
} from '../src/streams/messages.js';
import { normalizeInputs } from '../src/streams/normalize-inputs.js';
import { predictThenLearn, type PredictThenLearnOptions } from '../src/streams/predict-then-learn.js';

const M = 3;
const OUT = 2;
const spec: LearnerSpec = {
  cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(0.01),
  inputSize: M, outputSize: OUT, seed: 7, loss: 'mse',
};

const xOf = (seq: number) => Float32Array.from([Math.sin(seq), Math.cos(0.7 * seq), 0.1 * (seq % 5)]);
const yOf = (seq: number) => Float32Array.from([Math.sin(seq + 0.3), 0.5 * Math.cos(seq)]);
const tick = (seq: number, opts: { y?: boolean; stream?: string; t?: number; x?: Float32Array } = {}): TickEvent => ({
  kind: 'tick', stream: opts.stream ?? 'a', seq, t: opts.t ?? seq * 0.1, x: opts.x ?? xOf(seq),
  ...(opts.y ? { y: yOf(seq) } : {}),
});
const label = (seq: number, stream = 'a', y = yOf(seq)): LabelEvent => ({ kind: 'label', stream, seq, y });
const drift = (seq: number, source = 'session', stream = 'a'): DriftMarker => ({ kind: 'drift', stream, seq, t: seq * 0.1, source });
const rejected = (reason: Rejection['reason'], stream?: string, seq?: number) => ({ kind: 'rejected', stream, seq, reason });

const scheduler = () => new TestScheduler((actual, expected) => assert.deepStrictEqual(actual, expected));
/** Rejections without their message, for marble comparisons. */
const bare = (m: StreamInput | StreamOutput | Rejection) =>
  m.kind === 'rejected' ? { kind: m.kind, stream: m.stream, seq: m.seq, reason: m.reason } : m;

/** Runs inputs synchronously through an operator and collects every output. */
function run<T>(inputs: readonly unknown[], op: (s: Observable<any>) => Observable<T>): { out: T[]; error?: unknown; completed: boolean } {
  const out: T[] = [];
  let error: unknown;
  let completed = false;
  from(inputs).pipe(op).subscribe({ next: (v) => out.push(v), error: (e) => (error = e), complete: () => (completed = true) });
  return { out, error, completed };
}

function ptlOptions(extra: Partial<PredictThenLearnOptions> = {}, pools: LearnerPool[] = []): PredictThenLearnOptions {
  return {
    pool: () => {
      const p = new LearnerPool({ spec, maxStreams: 4 });
      pools.push(p);
      return p;
    },
    recoveryTicks: 0,
    maxDelay: 8,
    ...extra,
  };
}

describe('LearnerPool', () => {
  test('creates one learner per key, bounded, with an allowlist', () => {
    const specs: string[] = [];
    const pool = new LearnerPool({ spec: (key) => (specs.push(key), { ...spec, seed: key.length }), maxStreams: 2, allowedStreams: ['a', 'bb', 'ccc'] });
    const a = pool.get('a');
    assert.equal(pool.get('a'), a);
    assert.equal(pool.get('bb').spec.seed, 2);
    assert.deepEqual(specs, ['a', 'bb']);
    assert.deepEqual([...pool.keys()], ['a', 'bb']);
    assert.equal(pool.size, 2);
    assert.throws(() => pool.get('ccc'), (e: unknown) => e instanceof TooManyStreamsError && e.key === 'ccc' && e.maxStreams === 2 && /maximum of 2 streams/.test(e.message));
    assert.throws(() => pool.get('zz'), (e: unknown) => e instanceof UnknownStreamError && e.key === 'zz' && !e.retriable);
    assert.equal(pool.delete('a'), true);
    assert.equal(pool.delete('a'), false);
    assert.equal(pool.size, 1);
    assert.notEqual(pool.get('ccc'), a);
    assert.equal(pool.peek('a'), undefined);
    assert.throws(() => new LearnerPool({ spec, maxStreams: 0 }), RangeError);
  });

  test('a throwing spec function propagates (a programming error)', () => {
    const pool = new LearnerPool({ spec: () => { throw new Error('no spec'); }, maxStreams: 2 });
    assert.throws(() => pool.get('a'), /no spec/);
    assert.equal(pool.size, 0);
  });
});

describe('holdoutSchedule', () => {
  test('none', () => {
    const h = holdoutSchedule({ kind: 'none' });
    assert.equal(h.isHeldOut(0), false);
    assert.equal(h.isHeldOut(1e6), false);
  });

  test('alternate: on then off, from the first t', () => {
    const h = holdoutSchedule({ kind: 'alternate', onSeconds: 2, offSeconds: 1 });
    const ts = [10, 11, 11.99, 12, 12.5, 13, 14.9, 15, 16];
    assert.deepEqual(ts.map((t) => h.isHeldOut(t)), [false, false, false, true, true, false, false, true, false]);
  });

  test('firstMinutes: learn in the first minutes of each session', () => {
    const h = holdoutSchedule({ kind: 'firstMinutes', minutes: 1 });
    assert.equal(h.isHeldOut(100), false);
    assert.equal(h.isHeldOut(159.9), false);
    assert.equal(h.isHeldOut(160), true);
    h.sessionStarted(500);
    assert.equal(h.isHeldOut(500), false);
    assert.equal(h.isHeldOut(559), false);
    assert.equal(h.isHeldOut(561), true);
  });

  test('bad specs throw', () => {
    assert.throws(() => holdoutSchedule({ kind: 'alternate', onSeconds: 0, offSeconds: 1 }), RangeError);
    assert.throws(() => holdoutSchedule({ kind: 'firstMinutes', minutes: NaN }), RangeError);
    assert.throws(() => holdoutSchedule({ kind: 'weekly' } as never), RangeError);
  });
});

describe('joinLabels (marbles)', () => {
  const values: Record<string, StreamInput | Rejection> = {
    a: tick(1), b: tick(2), c: tick(3, { y: true }), l: label(1), d: drift(4), r: { kind: 'rejected', reason: 'malformed', message: 'upstream' },
  };

  test('empty', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold<StreamInput>('|').pipe(joinLabels({ maxDelay: 4 }))).toBe('|');
  }));

  test('values: ticks, a label in time, drift markers and upstream rejections pass', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-b-l-c-d-r|', values).pipe(joinLabels({ maxDelay: 4 }))).toBe('a-b-l-c-d-r|', values);
  }));

  test('error passes through', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-b-#', values, new Error('boom')).pipe(joinLabels({ maxDelay: 4 }))).toBe('a-b-#', values, new Error('boom'));
  }));

  test('never-ending', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-b-', values).pipe(joinLabels({ maxDelay: 4 }))).toBe('a-b-', values);
  }));

  test('unsubscribe mid-stream unsubscribes the source', () => scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('a-b-l-c|', values);
    expectObservable(source.pipe(joinLabels({ maxDelay: 4 })), '^--!').toBe('a-b', values);
    expectSubscriptions(source.subscriptions).toBe('^--!');
  }));

  test('bad ticks and labels become rejections', () => scheduler().run(({ cold, expectObservable }) => {
    const v: Record<string, StreamInput> = {
      a: tick(1), b: tick(2, { y: true }), D: tick(2), O: tick(1), F: label(9), U: label(1, 'nope'),
      c: tick(3), d: tick(4), e: tick(5), L: label(1), P: label(2), l: label(4), Q: label(4), m: { kind: 'tick', stream: 'a' } as never,
    };
    const expected = {
      a: v.a, b: v.b, c: v.c, d: v.d, e: v.e, l: v.l,
      D: rejected('duplicate', 'a', 2), O: rejected('out-of-order', 'a', 1), F: rejected('label-unknown-tick', 'a', 9),
      U: rejected('label-unknown-tick', 'nope', 1), L: rejected('label-too-late', 'a', 1), P: rejected('label-duplicate', 'a', 2),
      Q: rejected('label-duplicate', 'a', 4), m: rejected('malformed', undefined, undefined),
    };
    // maxDelay 3: after tick 5, the window holds ticks 3, 4, 5.
    expectObservable(cold('abDOFUPcdeLlQm|', v).pipe(joinLabels({ maxDelay: 3 }), map(bare))).toBe('abDOFUPcdeLlQm|', expected);
  }));

  test('a seq in a gap or before the first tick is unknown, not late', () => {
    const { out } = run([tick(10), tick(12), label(11), label(3)], joinLabels({ maxDelay: 4 }));
    assert.deepEqual(out.map((m) => (m.kind === 'rejected' ? m.reason : m.kind)), ['tick', 'tick', 'label-unknown-tick', 'label-unknown-tick']);
  });

  test('configuration errors throw at creation (no callbacks to throw later)', () => {
    assert.throws(() => joinLabels({ maxDelay: 0 }), RangeError);
    assert.throws(() => joinLabels({ maxDelay: 2.5 }), RangeError);
  });
});

describe('normalizeInputs (marbles)', () => {
  test('empty, error, never-ending, unsubscribe', () => scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const v = { l: label(1), d: drift(2) };
    expectObservable(cold<StreamInput>('|').pipe(normalizeInputs())).toBe('|');
    expectObservable(cold('l-#', v).pipe(normalizeInputs())).toBe('l-#', v);
    expectObservable(cold('l-d-', v).pipe(normalizeInputs())).toBe('l-d-', v);
    const source = cold('l-d-l|', v);
    expectObservable(source.pipe(normalizeInputs()), '^-!').toBe('l-', v);
    expectSubscriptions(source.subscriptions).toBe('^-!');
  }));

  test('values: z-scores per stream and channel; bad ticks rejected before they touch the statistics', () => scheduler().run(({ cold, expectObservable }) => {
    const t = (seq: number, x: number[], stream = 'a'): TickEvent => ({ kind: 'tick', stream, seq, t: seq, x: Float32Array.from(x) });
    const v = { a: t(1, [1, 10]), b: t(2, [3, 10]), B: t(3, [5]), N: t(4, [NaN, 1]), c: t(5, [2, 10]), o: t(1, [7, 7], 'b') };
    const eps = 1e-6;
    const z = (x: number, mean: number, variance: number) => (x - mean) / Math.sqrt(variance + eps);
    const expected = {
      a: { ...v.a, x: Float32Array.from([0, 0]) },
      b: { ...v.b, x: Float32Array.from([z(3, 2, 1), 0]) },
      B: rejected('dimension', 'a', 3), N: rejected('non-finite', 'a', 4),
      c: { ...v.c, x: Float32Array.from([z(2, 2, 2 / 3), 0]) },
      o: { ...v.o, x: Float32Array.from([0, 0]) },
    };
    expectObservable(cold('abBNco|', v).pipe(normalizeInputs({ warmup: 10, eps }), map(bare))).toBe('abBNco|', expected);
  }));

  test('after warmup the statistics follow an EWMA', () => {
    const decay = 0.9;
    const xs = [1, 2, 4, 8, 3];
    const { out } = run(xs.map((x, i) => ({ kind: 'tick', stream: 'a', seq: i, t: i, x: Float32Array.from([x]) })), normalizeInputs({ decay, warmup: 2, eps: 1e-6 }));
    // Welford over [1, 2]: mean 1.5, variance 0.25; then EWMA.
    let mean = 1.5;
    let variance = 0.25;
    for (let i = 2; i < xs.length; i++) {
      const d = xs[i] - mean;
      mean += (1 - decay) * d;
      variance = decay * (variance + d * (1 - decay) * d);
      const expected = (xs[i] - mean) / Math.sqrt(variance + 1e-6);
      assert.ok(Math.abs((out[i] as TickEvent).x[0] - expected) < 1e-5, `tick ${i}`);
    }
  });

  test('inputs are not mutated; configuration errors throw at creation', () => {
    const t0 = tick(1);
    const before = Float32Array.from(t0.x);
    run([t0, tick(2)], normalizeInputs());
    assert.deepEqual(t0.x, before);
    assert.throws(() => normalizeInputs({ decay: 1 }), RangeError);
    assert.throws(() => normalizeInputs({ eps: 0 }), RangeError);
  });
});

describe('predictThenLearn (marbles)', () => {
  const summary = (m: StreamOutput) =>
    m.kind === 'prediction' ? `p${m.seq}v${m.version}` : m.kind === 'scored' ? `s${m.seq}d${m.delay}` : m.kind === 'drift' ? `d${m.seq}` : `r:${m.reason}`;

  test('empty', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold<StreamInput>('|').pipe(predictThenLearn(ptlOptions()))).toBe('|');
  }));

  test('values: predict, then score, then learn', () => scheduler().run(({ cold, expectObservable }) => {
    const v = { a: tick(0), b: tick(1, { y: true }), l: label(0), d: drift(2), c: tick(2, { y: true }) };
    const expected = { p: 'p0v0', q: 'p1v0', s: 's1d0', t: 's0d1', d: 'd2', u: 'p2v2', w: 's2d0' };
    expectObservable(cold('a-b----l-d-c---|', v).pipe(predictThenLearn(ptlOptions()), map(summary)))
      .toBe('p-(qs)-t-d-(uw)|', expected);
  }));

  test('error passes through', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-#', { a: tick(0) }).pipe(predictThenLearn(ptlOptions()), map(summary))).toBe('p-#', { p: 'p0v0' });
  }));

  test('never-ending', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-', { a: tick(0) }).pipe(predictThenLearn(ptlOptions()), map(summary))).toBe('p-', { p: 'p0v0' });
  }));

  test('unsubscribe mid-stream releases the pool and the per-stream state', () => {
    const pools: LearnerPool[] = [];
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('a-b-c|', { a: tick(0), b: tick(1), c: tick(2) });
      expectObservable(source.pipe(predictThenLearn(ptlOptions({}, pools)), map(summary)), '^--!').toBe('p-q', { p: 'p0v0', q: 'p1v0' });
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
    assert.equal(pools.length, 1);
    assert.equal(pools[0].size, 0);
  });

  test('a throwing spec function or pool factory is an error notification', () => scheduler().run(({ cold, expectObservable }) => {
    const boom = new Error('spec function failed');
    const throwingSpec = predictThenLearn({ pool: { spec: () => { throw boom; }, maxStreams: 2 }, recoveryTicks: 0, maxDelay: 4 });
    expectObservable(cold('a-b', { a: tick(0), b: tick(1) }).pipe(throwingSpec)).toBe('#', undefined, boom);
    const throwingFactory = predictThenLearn({ pool: () => { throw boom; }, recoveryTicks: 0, maxDelay: 4 });
    expectObservable(cold('a-b', { a: tick(0) }).pipe(throwingFactory)).toBe('#', undefined, boom);
  }));

  test('configuration errors throw at creation', () => {
    assert.throws(() => predictThenLearn(ptlOptions({ maxDelay: 0 })), RangeError);
    assert.throws(() => predictThenLearn(ptlOptions({ recoveryTicks: -1 })), RangeError);
    assert.throws(() => predictThenLearn(ptlOptions({ holdout: { kind: 'alternate', onSeconds: -1, offSeconds: 1 } })), RangeError);
  });
});

describe('predictThenLearn with real learners', () => {
  const kinds = <T extends { kind: string }>(out: readonly T[]) => out.map((m) => m.kind);
  const only = <K extends StreamOutput['kind']>(out: readonly StreamOutput[], kind: K) =>
    out.filter((m): m is Extract<StreamOutput, { kind: K }> => m.kind === kind);

  test('each prediction comes before its scored tick, with the same yhat, and matches a bare learner', () => {
    const inputs = Array.from({ length: 20 }, (_, i) => tick(i, { y: true }));
    const { out, completed } = run(inputs, predictThenLearn(ptlOptions()));
    assert.ok(completed);
    assert.deepEqual(kinds(out), inputs.flatMap(() => ['prediction', 'scored']));
    const reference = createLearner(spec);
    for (let i = 0; i < inputs.length; i++) {
      const p = out[2 * i] as Prediction;
      const s = out[2 * i + 1] as ScoredTick;
      assert.equal(p.seq, i);
      assert.equal(s.seq, i);
      assert.deepEqual(s.yhat, p.yhat);
      assert.equal(s.version, p.version);
      assert.equal(p.version, i);
      assert.equal(s.delay, 0);
      assert.deepEqual(s.y, yOf(i));
      assert.ok(typeof p.predictedAt === 'number');
      const yhat = Float32Array.from(reference.predict(inputs[i].x));
      assert.deepEqual(p.yhat, yhat);
      reference.learn(inputs[i].y!);
    }
    // Predictions are copies: a later predict does not change an emitted yhat.
    assert.notEqual((out[0] as Prediction).yhat.buffer, (out[2] as Prediction).yhat.buffer);
  });

  test('the version increments only on learned ticks; held-out ticks are scored, not learned', () => {
    const pools: LearnerPool[] = [];
    // t = seq * 0.25: with 1 s on, 1 s off, ticks 0-3 learn, 4-7 are held out, 8-11 learn.
    const inputs = Array.from({ length: 12 }, (_, i) => tick(i, { y: true, t: i * 0.25 }));
    const { out } = run(inputs, predictThenLearn(ptlOptions({ holdout: { kind: 'alternate', onSeconds: 1, offSeconds: 1 } }, pools)));
    const scored = only(out, 'scored');
    assert.deepEqual(scored.map((s) => s.heldOut), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map((i) => i >= 4 && i < 8));
    assert.deepEqual(only(out, 'prediction').map((p) => p.version), [0, 1, 2, 3, 4, 4, 4, 4, 4, 5, 6, 7]);
    // The pool is cleared when the run completes: reach the learner through a second, unfinished run.
    const subject = new Subject<StreamInput>();
    const pools2: LearnerPool[] = [];
    subject.pipe(predictThenLearn(ptlOptions({ holdout: { kind: 'alternate', onSeconds: 1, offSeconds: 1 } }, pools2))).subscribe();
    for (const i of inputs) subject.next(i);
    assert.equal(pools2[0].get('a').version, 8);
  });

  test('firstMinutes holdout restarts at session markers', () => {
    const inputs: StreamInput[] = [
      tick(0, { y: true, t: 0 }), tick(1, { y: true, t: 30 }), tick(2, { y: true, t: 61 }),
      { kind: 'drift', stream: 'a', seq: 3, t: 100, source: 'session' }, tick(3, { y: true, t: 100 }), tick(4, { y: true, t: 170 }),
    ];
    const { out } = run(inputs, predictThenLearn(ptlOptions({ holdout: { kind: 'firstMinutes', minutes: 1 } })));
    assert.deepEqual(only(out, 'scored').map((s) => s.heldOut), [false, false, true, false, true]);
  });

  test('reference predictors use only labels that arrived before the tick', () => {
    // Labels come 2 ticks late: tick k sees the labels of ticks up to k - 2 that arrived before it.
    const inputs: StreamInput[] = [];
    for (let i = 0; i < 8; i++) {
      inputs.push(tick(i));
      if (i >= 2) inputs.push(label(i - 2));
    }
    const { out } = run(inputs, predictThenLearn(ptlOptions()));
    const scored = only(out, 'scored');
    assert.equal(scored.length, 6);
    for (const s of scored) {
      assert.equal(s.delay, 2);
      // When tick k was predicted, labels 0 .. k-3 had arrived (label k-2 comes after tick k).
      const seen = Array.from({ length: Math.max(0, s.seq - 2) }, (_, j) => yOf(j));
      if (seen.length === 0) {
        assert.ok(s.yLast.every(Number.isNaN) && s.yMean.every(Number.isNaN), `tick ${s.seq}`);
        continue;
      }
      assert.deepEqual(s.yLast, seen[seen.length - 1], `yLast of tick ${s.seq}`);
      for (let o = 0; o < OUT; o++) {
        const mean = seen.reduce((acc, y) => acc + y[o], 0) / seen.length;
        assert.ok(Math.abs(s.yMean[o] - mean) < 1e-6, `yMean of tick ${s.seq}`);
      }
    }
  });

  test('a label 3 ticks late is scored with delay 3 and learned for its own tick', () => {
    const pools: LearnerPool[] = [];
    const subject = new Subject<StreamInput>();
    const out: StreamOutput[] = [];
    subject.pipe(predictThenLearn(ptlOptions({}, pools))).subscribe((m) => out.push(m));
    for (let i = 0; i < 4; i++) subject.next(tick(i));
    subject.next(label(0));
    const scored = only(out, 'scored');
    assert.equal(scored.length, 1);
    assert.equal(scored[0].seq, 0);
    assert.equal(scored[0].delay, 3);
    assert.deepEqual(scored[0].yhat, only(out, 'prediction')[0].yhat);
    const learner = pools[0].get('a');
    assert.equal(learner.version, 1);
    const reference = createLearner(spec);
    for (let i = 0; i < 4; i++) reference.predict(xOf(i));
    reference.learn(yOf(0), 0);
    assert.deepEqual(learner.snapshot(), reference.snapshot());
  });

  test("the shadow's yFrozen is what a frozen fork taken at the drift predicts, for recoveryTicks ticks", () => {
    const inputs: StreamInput[] = [];
    for (let i = 0; i < 4; i++) inputs.push(tick(i, { y: true }));
    inputs.push(drift(4, 'page-hinkley'));
    for (let i = 4; i < 10; i++) inputs.push(tick(i, { y: true }));
    const { out } = run(inputs, predictThenLearn(ptlOptions({ recoveryTicks: 3 })));
    assert.ok(out.some((m) => m.kind === 'drift' && m.source === 'page-hinkley'));

    const reference = createLearner(spec);
    for (let i = 0; i < 4; i++) {
      reference.predict(xOf(i));
      reference.learn(yOf(i));
    }
    const frozen = reference.fork({ frozen: true });
    const scored = only(out, 'scored');
    for (const s of scored) {
      if (s.seq >= 4 && s.seq < 7) assert.deepEqual(s.yFrozen, Float32Array.from(frozen.predict(xOf(s.seq))), `tick ${s.seq}`);
      else assert.equal(s.yFrozen, undefined, `tick ${s.seq}`);
    }
    // The shadow never learned, the learner did.
    assert.notDeepEqual(scored[6].yFrozen, scored[6].yhat);
  });

  test('two subscribers to the same pipeline do not share learners', () => {
    const pools: LearnerPool[] = [];
    const inputs = Array.from({ length: 10 }, (_, i) => tick(i, { y: true }));
    const pipeline = from(inputs).pipe(predictThenLearn(ptlOptions({}, pools)));
    const first: StreamOutput[] = [];
    const second: StreamOutput[] = [];
    const learners: unknown[] = [];
    pipeline.subscribe((m) => {
      first.push(m);
      learners[0] = pools[0].peek('a') ?? learners[0];
    });
    pipeline.subscribe((m) => {
      second.push(m);
      learners[1] = pools[1].peek('a') ?? learners[1];
    });
    assert.equal(pools.length, 2);
    assert.notEqual(learners[0], learners[1]);
    const strip = (m: StreamOutput) => (m.kind === 'prediction' ? { ...m, predictedAt: 0 } : m);
    assert.deepEqual(second.map(strip), first.map(strip));
    assert.deepEqual(only(second, 'prediction').map((p) => p.version), inputs.map((_, i) => i));
  });

  test('every bad case is a Rejection with its reason, and no learner byte changes', () => {
    const pools: LearnerPool[] = [];
    const subject = new Subject<any>();
    const out: StreamOutput[] = [];
    let error: unknown;
    subject
      .pipe(predictThenLearn({
        pool: () => {
          const p = new LearnerPool({ spec, maxStreams: 2, allowedStreams: ['a', 'b', 'c'] });
          pools.push(p);
          return p;
        },
        recoveryTicks: 2,
        maxDelay: 3,
      }))
      .subscribe({ next: (m) => out.push(m), error: (e) => (error = e) });
    // Set up: streams a and b with a few ticks, tick 3 of a labelled in its frame.
    for (let i = 0; i < 4; i++) subject.next(tick(i, { y: i === 3 }));
    subject.next(tick(0, { stream: 'b' }));
    const a = pools[0].get('a');
    const b = pools[0].get('b');

    const cases: Array<[string, unknown, Rejection['reason']]> = [
      ['third stream', tick(0, { stream: 'c' }), 'too-many-streams'],
      ['stream not allowed', tick(0, { stream: 'z' }), 'unknown-stream'],
      ['label of a stream not allowed', label(0, 'z'), 'unknown-stream'],
      ['duplicate tick', tick(3), 'duplicate'],
      ['an earlier tick sent again (still in the window): already processed', tick(2), 'duplicate'],
      ['out-of-order tick (below the window: not known to be a repeat)', tick(0), 'out-of-order'],
      ['x of the wrong size', tick(9, { x: Float32Array.from([1, 2]) }), 'dimension'],
      ['non-finite x', tick(9, { x: Float32Array.from([1, NaN, 2]) }), 'non-finite'],
      ['label for a future tick', label(7), 'label-unknown-tick'],
      ['label for a stream with no ticks', label(0, 'c'), 'label-unknown-tick'],
      ['label too late', label(0), 'label-too-late'],
      ['second label for a tick labelled in its frame', label(3), 'label-duplicate'],
      ['label of the wrong size', label(2, 'a', Float32Array.from([1])), 'dimension'],
      ['non-finite label', label(2, 'a', Float32Array.from([1, Infinity])), 'non-finite'],
      ['no stream key', { kind: 'tick', seq: 1, t: 0, x: xOf(1) }, 'malformed'],
      ['no finite seq', { kind: 'label', stream: 'a', seq: NaN, y: yOf(1) }, 'malformed'],
      ['tick without finite t', { kind: 'tick', stream: 'a', seq: 10, t: NaN, x: xOf(1) }, 'malformed'],
      ['unknown kind', { kind: 'weird', stream: 'a', seq: 10 }, 'malformed'],
      ['drift marker of a refused stream', drift(1, 'session', 'c'), 'too-many-streams'],
    ];
    for (const [name, input, reason] of cases) {
      const before = [a.snapshot(), b.snapshot()];
      const n = out.length;
      subject.next(input);
      assert.equal(out.length, n + 1, name);
      const r = out[n] as Rejection;
      assert.equal(r.kind, 'rejected', name);
      assert.equal(r.reason, reason, name);
      assert.ok(r.message.length > 0, name);
      assert.deepEqual([a.snapshot(), b.snapshot()], before, `${name}: learner bytes changed`);
    }
    // Upstream rejections pass through untouched.
    const upstream: Rejection = { kind: 'rejected', stream: 'a', seq: 5, reason: 'oversized', message: 'frame too big' };
    subject.next(upstream);
    assert.equal(out[out.length - 1], upstream);
    // A tick whose bad labels were rejected still takes a good one later: the stream goes on.
    subject.next(label(2));
    assert.equal(out[out.length - 1].kind, 'scored');
    assert.equal(a.version, 2);
    subject.next(tick(4));
    assert.equal(out[out.length - 1].kind, 'prediction');
    assert.equal(error, undefined);
    assert.equal(pools[0].size, 2);
  });
});
