// The pipeline (src/streams/pipeline.ts): marble tests of the whole chain as one operator (empty, values, error,
// never-ending, unsubscribe, a throwing callback), and behavioural tests of what the composition adds: detected
// drift fed back through predictThenLearn exactly once and in order, the queue drained at completion, tick
// timing, checkpoints taken at completion and restored by a second pipeline, bad input as Rejections.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { from, map, Subject, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { createLearner, type LearnerSpec } from '../src/learners/learner.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import type { StoredCheckpoint } from '../src/streams/checkpoint-store.js';
import { MemoryCheckpointStore } from './support/memory-checkpoint-store.js';
import type { DriftMarker, LabelEvent, Prediction, Rejection, ScoredTick, StreamInput, TickEvent } from '../src/streams/messages.js';
import { createPipeline, type PipelineOptions, type PipelineOutput } from '../src/streams/pipeline.js';

const M = 3;
const spec: LearnerSpec = {
  cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(0.01),
  inputSize: M, outputSize: 1, seed: 3, loss: 'mse',
};

const xOf = (seq: number, shift = 0) => Float32Array.from([Math.sin(seq) + shift, Math.cos(0.7 * seq) + shift, 0.1 * (seq % 5) + shift]);
const yOf = (seq: number, level = 0) => Float32Array.from([0.5 * Math.sin(seq + 0.3) + level]);
const tick = (seq: number, opts: { y?: Float32Array; x?: Float32Array; stream?: string } = {}): TickEvent => ({
  kind: 'tick', stream: opts.stream ?? 'a', seq, t: seq * 0.05, x: opts.x ?? xOf(seq), ...(opts.y ? { y: opts.y } : {}),
});
const label = (seq: number, y = yOf(seq)): LabelEvent => ({ kind: 'label', stream: 'a', seq, y });

/** Options with no detector: the chain without feedback. */
function options(extra: Partial<PipelineOptions> = {}): PipelineOptions {
  return {
    pool: { spec, maxStreams: 4 },
    maxDelay: 8,
    recoveryTicks: 20,
    prequential: { window: 10, ewmaAlpha: 0.1 },
    drift: { detectors: [] },
    recovery: { window: 10, tolerance: 0.5 },
    ...extra,
  };
}

/** A detector on the error that fires soon after the labels jump by 10 (River-style Page-Hinkley, increases only). */
const errorDetector = { detectors: [{ kind: 'page-hinkley' as const, threshold: 5, delta: 0.005, minInstances: 10, mode: 'up' as const }] };

/** Runs inputs synchronously through an operator and collects every output. */
function run(inputs: readonly StreamInput[], op: (s: Observable<StreamInput | Rejection>) => Observable<PipelineOutput>) {
  const out: PipelineOutput[] = [];
  let error: unknown;
  let completed = false;
  from(inputs).pipe(op).subscribe({ next: (v) => out.push(v), error: (e) => (error = e), complete: () => (completed = true) });
  return { out, error, completed };
}

/** Ticks 0..n-1 with their labels in the frame; from `jumpAt` on the labels sit 10 higher. */
function jumpStream(n: number, jumpAt: number): TickEvent[] {
  return Array.from({ length: n }, (_, i) => tick(i, { y: yOf(i, i >= jumpAt ? 10 : 0) }));
}

const summary = (m: PipelineOutput) => (m.kind === 'rejected' ? `x:${m.reason}` : `${m.kind}${'seq' in m ? m.seq : ''}`);
const scheduler = () => new TestScheduler((actual, expected) => assert.deepStrictEqual(actual, expected));

describe('pipeline: marble tests', () => {
  test('empty', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold<StreamInput>('|').pipe(createPipeline(options()).operator)).toBe('|');
  }));

  test('values: prediction, scored tick, then a prequential report once references exist', () => scheduler().run(({ cold, expectObservable }) => {
    const v = { a: tick(0, { y: yOf(0) }), b: tick(1, { y: yOf(1) }), c: tick(2), l: label(2) };
    // Tick 0 is scored but not reported: no label had arrived when it was predicted, so the references are NaN.
    const expected = {
      p: 'prediction0', s: 'scored0', q: 'prediction1', t: 'scored1', r: 'prequential1', u: 'prediction2', w: 'scored2', z: 'prequential2',
    };
    expectObservable(cold('a 9ms b 9ms c 9ms l 9ms |', v).pipe(createPipeline(options()).operator, map(summary)))
      .toBe('(ps) 6ms (qtr) 5ms u 9ms (wz) 6ms |', expected);
  }));

  test('error passes through', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-#', { a: tick(0) }, new Error('boom')).pipe(createPipeline(options()).operator, map(summary)))
      .toBe('p-#', { p: 'prediction0' }, new Error('boom'));
  }));

  test('never-ending', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-b-', { a: tick(0), b: tick(1) }).pipe(createPipeline(options()).operator, map(summary)))
      .toBe('a-b-', { a: 'prediction0', b: 'prediction1' });
  }));

  test('unsubscribe mid-stream unsubscribes the source', () => scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('a-b-c|', { a: tick(0), b: tick(1), c: tick(2) });
    expectObservable(source.pipe(createPipeline(options()).operator, map(summary)), '^--!').toBe('a-b', { a: 'prediction0', b: 'prediction1' });
    expectSubscriptions(source.subscriptions).toBe('^--!');
  }));

  test('a throwing onTickDuration errors the output (a programming error)', () => scheduler().run(({ cold, expectObservable }) => {
    const pipeline = createPipeline(options({ onTickDuration: () => { throw new Error('callback'); } }));
    expectObservable(cold('a-b|', { a: tick(0), b: tick(1) }).pipe(pipeline.operator, map(summary))).toBe('(p#)', { p: 'prediction0' }, new Error('callback'));
  }));

  test('a throwing spec function errors the output; bad input does not', () => scheduler().run(({ cold, expectObservable }) => {
    const throwing = createPipeline(options({ pool: { spec: () => { throw new Error('no spec'); }, maxStreams: 2 } }));
    expectObservable(cold('a|', { a: tick(0) }).pipe(throwing.operator)).toBe('#', undefined, new Error('no spec'));
    const v = { a: tick(0), w: tick(1, { x: Float32Array.from([1, 2]) }), b: tick(2) };
    expectObservable(cold('a-w-b|', v).pipe(createPipeline(options()).operator, map(summary)))
      .toBe('a-w-b|', { a: 'prediction0', w: 'x:dimension', b: 'prediction2' });
  }));
});

describe('pipeline: behaviour', () => {
  test('bad options throw at creation, naming the operator', () => {
    assert.throws(() => createPipeline(options({ maxDelay: 0 })), /maxDelay/);
    assert.throws(() => createPipeline(options({ drift: { detectors: [{ kind: 'cusum' } as never] } })), /cusum/);
    assert.throws(() => createPipeline(options({ prequential: { window: 0, ewmaAlpha: 0.1 } })), /window/);
    assert.throws(() => createPipeline(options({ onTickDuration: 5 as never })), /onTickDuration/);
  });

  test('a detection is fed back: the marker passes predictThenLearn once, right before the next tick, and forks the shadow', () => {
    const pipeline = createPipeline(options({ drift: errorDetector }));
    const { out, error, completed } = run(jumpStream(80, 40), pipeline.operator);
    assert.equal(error, undefined);
    assert.ok(completed);
    const markers = out.filter((m): m is DriftMarker => m.kind === 'drift');
    assert.ok(markers.length >= 1, 'the jump of the labels is detected');
    const first = markers[0];
    assert.equal(first.source, 'page-hinkley');
    assert.ok(first.seq > 40 && first.seq < 60, `detected soon after the jump at 40, marker seq ${first.seq}`);
    // Exactly once in the output (the detector does not emit it itself; predictThenLearn passes it on).
    assert.equal(markers.filter((m) => m.seq === first.seq).length, 1);
    // In order: after the scored tick it was detected on, before the prediction of the first tick after it.
    const at = out.indexOf(first);
    const scoredBefore = out.slice(0, at).filter((m): m is ScoredTick => m.kind === 'scored').at(-1)!;
    assert.equal(scoredBefore.seq, first.seq - 1);
    const next = out.slice(at + 1).find((m) => m.kind === 'prediction') as Prediction;
    assert.equal(next.seq, first.seq);
    // predictThenLearn forked the frozen shadow at the marker: the ticks after it carry yFrozen, those before do not.
    const scored = out.filter((m): m is ScoredTick => m.kind === 'scored');
    assert.ok(scored.filter((s) => s.seq < first.seq).every((s) => s.yFrozen === undefined));
    assert.ok(scored.filter((s) => s.seq >= first.seq && s.seq < first.seq + 20).every((s) => s.yFrozen !== undefined));
    // trackRecovery measured it: one recovery report per marker.
    const recoveries = out.filter((m) => m.kind === 'recovery');
    assert.deepEqual(recoveries.map((r) => r.seq), markers.map((m) => m.seq));
  });

  test('a detection on the last tick is drained into the output before completion', () => {
    const pipeline = createPipeline(options({ drift: errorDetector }));
    const base = run(jumpStream(80, 40), pipeline.operator);
    const firstMarker = base.out.find((m): m is DriftMarker => m.kind === 'drift')!;
    // Stop the stream on the tick the detection happens on: nothing follows that would drain the queue.
    const again = createPipeline(options({ drift: errorDetector }));
    const { out, completed } = run(jumpStream(firstMarker.seq, 40), again.operator);
    assert.ok(completed);
    // The marker is the last message; no tick follows it, so trackRecovery measured nothing and reports nothing.
    const last = out.filter((m) => m.kind === 'drift' || m.kind === 'recovery');
    assert.deepEqual(last.map((m) => `${m.kind}:${m.seq}`), [`drift:${firstMarker.seq}`]);
    assert.equal(out.at(-1), last[0]);
  });

  test('with a holdout, each marker gets a recovery report per track: learning, then held out', () => {
    // t = seq * 0.05: 10 ticks of labels, then 5 withheld, so the 20 ticks of every shadow fall on both tracks.
    const pipeline = createPipeline(options({ drift: errorDetector, holdout: { kind: 'alternate', onSeconds: 0.5, offSeconds: 0.25 } }));
    const { out } = run(jumpStream(120, 40), pipeline.operator);
    const markers = out.filter((m): m is DriftMarker => m.kind === 'drift');
    assert.ok(markers.length >= 1, 'the jump of the labels is detected');
    const recoveries = out.filter((m) => m.kind === 'recovery');
    assert.deepEqual(recoveries.map((r) => `${r.seq}:${r.heldOut}`), markers.flatMap((m) => [`${m.seq}:false`, `${m.seq}:true`]));
    // The two reports of a marker come together, right after the message that closed its measurement.
    for (let i = 0; i < recoveries.length; i += 2) assert.equal(out.indexOf(recoveries[i + 1]), out.indexOf(recoveries[i]) + 1);
  });

  test('the same input gives the same output (deterministic)', () => {
    const strip = (m: PipelineOutput) => (m.kind === 'prediction' ? { ...m, predictedAt: 0 } : m);
    const a = run(jumpStream(80, 40), createPipeline(options({ drift: errorDetector })).operator).out.map(strip);
    const b = run(jumpStream(80, 40), createPipeline(options({ drift: errorDetector })).operator).out.map(strip);
    assert.deepStrictEqual(a, b);
  });

  test('a shift of the inputs is detected before the learner and fed back with its input- source', () => {
    const inputs = Array.from({ length: 120 }, (_, i) => tick(i, { x: xOf(i, i >= 60 ? 5 : 0), y: yOf(i) }));
    const pipeline = createPipeline(options({
      inputDrift: { detectors: [{ kind: 'page-hinkley', threshold: 5, delta: 0.005, minInstances: 10 }] },
    }));
    const { out } = run(inputs, pipeline.operator);
    const markers = out.filter((m): m is DriftMarker => m.kind === 'drift');
    assert.ok(markers.length >= 1);
    assert.equal(markers[0].source, 'input-page-hinkley');
    // The tick that shifted is 60; the detector sees it before the learner predicts it, the marker names the next one.
    assert.ok(markers[0].seq >= 61 && markers[0].seq < 70, `marker seq ${markers[0].seq}`);
    const at = out.indexOf(markers[0]);
    assert.equal((out.slice(at + 1).find((m) => m.kind === 'prediction') as Prediction).seq, markers[0].seq);
    assert.equal(out.filter((m) => m.kind === 'drift' && m.seq === markers[0].seq).length, 1);
  });

  test('declared session boundaries pass once, in place; normalizeInputs runs first', () => {
    const session: DriftMarker = { kind: 'drift', stream: 'a', seq: 5, t: 0.25, source: 'session', session: 'day2' };
    const inputs: StreamInput[] = [tick(0), tick(1), tick(2), tick(3), tick(4), session, tick(5)];
    const { out } = run(inputs, createPipeline(options({ normalize: { warmup: 2 } })).operator);
    // No tick was scored before the boundary (no labels yet): there is no earlier regime to recover from, so no
    // recovery is measured and no report follows.
    assert.deepEqual(out.map(summary), ['prediction0', 'prediction1', 'prediction2', 'prediction3', 'prediction4', 'drift5', 'prediction5']);
    // The first tick of a stream normalizes to zeros, so its prediction equals a fresh learner's on zeros.
    const fresh = createLearner(spec);
    assert.deepEqual((out[0] as Prediction).yhat, Float32Array.from(fresh.predict(new Float32Array(M))));
  });

  test('onTickDuration: once per tick and label, with the seconds of its processing', () => {
    const seen: string[] = [];
    const pipeline = createPipeline(options({
      onTickDuration: (seconds, input) => {
        assert.ok(Number.isFinite(seconds) && seconds >= 0 && seconds < 1);
        seen.push(`${input.kind}${input.seq}`);
      },
    }));
    const session: DriftMarker = { kind: 'drift', stream: 'a', seq: 2, t: 0.1, source: 'session' };
    run([tick(0), tick(1), label(0), session, tick(2, { y: yOf(2) })], pipeline.operator);
    assert.deepEqual(seen, ['tick0', 'tick1', 'label0', 'tick2']);
  });

  test('one run at a time: a concurrent second subscription errors', () => {
    const pipeline = createPipeline(options());
    const source = new Subject<StreamInput>();
    source.pipe(pipeline.operator).subscribe();
    let error: unknown;
    source.pipe(pipeline.operator).subscribe({ error: (e) => (error = e) });
    assert.match(String(error), /already running/);
  });

  test('checkpoints: the last state is snapshotted at completion; a second pipeline restores it and predicts the same', async () => {
    const store = new MemoryCheckpointStore();
    const saved = store.saved;
    const all = Array.from({ length: 60 }, (_, i) => tick(i, { y: yOf(i) }));
    const first = createPipeline(options({ checkpoint: { store, everyTicks: 1000 } }));
    run(all.slice(0, 30), first.operator);
    await first.flush();
    assert.equal(first.pool.size, 0, 'the pool is released when the run ends');
    const checkpoint = saved.get('a');
    assert.ok(checkpoint, 'the completion wrote a checkpoint although everyTicks was never reached');
    assert.equal(checkpoint.meta.lastSeq, 29);
    assert.equal(checkpoint.meta.version, 30);

    // Restored from the checkpoint, the second half is predicted exactly as by one uninterrupted run.
    const second = createPipeline(options({ pool: { spec, maxStreams: 4, initialState: await store.loadAll() } }));
    const resumed = run(all.slice(30), second.operator).out.filter((m): m is Prediction => m.kind === 'prediction');
    const whole = run(all, createPipeline(options()).operator).out.filter((m): m is Prediction => m.kind === 'prediction').slice(30);
    assert.equal(resumed.length, 30);
    assert.deepEqual(resumed.map((p) => [p.seq, p.version, Array.from(p.yhat)]), whole.map((p) => [p.seq, p.version, Array.from(p.yhat)]));
  });

  test('flush while running snapshots the pool now', async () => {
    const store = new MemoryCheckpointStore();
    const saved = store.saves;
    const pipeline = createPipeline(options({ checkpoint: { store, everyTicks: 1000 } }));
    const source = new Subject<StreamInput>();
    source.pipe(pipeline.operator).subscribe();
    for (let i = 0; i < 5; i++) source.next(tick(i, { y: yOf(i) }));
    await pipeline.flush();
    assert.deepEqual(saved.map((c) => [c.meta.stream, c.meta.lastSeq, c.meta.version]), [['a', 4, 5]]);
    source.complete();
  });
});

describe('pipeline: stream lifecycle and resume (issue 14)', () => {
  /** Interleaved traffic on `streams` streams: ticks with inputs shifted per stream, labels 2 ticks late. */
  function traffic(n: number, streams: number): StreamInput[] {
    const out: StreamInput[] = [];
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < streams; k++) {
        const stream = `s${k}`;
        out.push({ kind: 'tick', stream, seq: i, t: i * 0.05, x: xOf(i + k, k) });
        if (i >= 2) out.push({ kind: 'label', stream, seq: i - 2, y: yOf(i - 2 + k) });
      }
    }
    return out;
  }
  const lifecycleOptions = (store: MemoryCheckpointStore, maxStreams: number, extra: Partial<PipelineOptions> = {}) =>
    options({
      pool: { spec, maxStreams },
      normalize: { decay: 0.9 },
      checkpoint: { store, everySeconds: 3600, checkpointed: [] },
      ...extra,
    });
  const predictionsOf = (out: PipelineOutput[]) =>
    out.filter((m): m is Prediction => m.kind === 'prediction').map((p) => `${p.stream}:${p.seq}:${p.version}:${Array.from(p.yhat).join(',')}`);

  test('past maxStreams the least recently used stream is checkpointed and evicted, and comes back exactly', async () => {
    const inputs = traffic(40, 5);
    // Reference: room for every stream.
    const whole = run(inputs, createPipeline(lifecycleOptions(new MemoryCheckpointStore(), 8)).operator);
    // Two live learners for five streams: every tick of a stream evicts another one.
    const store = new MemoryCheckpointStore();
    const pipeline = createPipeline(lifecycleOptions(store, 2));
    const source = new Subject<StreamInput>();
    const out: PipelineOutput[] = [];
    source.pipe(pipeline.operator).subscribe({ next: (m) => out.push(m) });
    for (const input of inputs) {
      const loading = pipeline.prepare(input.stream);
      if (loading !== undefined) await loading;
      source.next(input);
      assert.ok(pipeline.pool.size <= 2, 'live learners stay within maxStreams');
    }
    assert.deepEqual(out.filter((m) => m.kind === 'rejected'), [], 'nothing refused');
    assert.deepEqual(predictionsOf(out), predictionsOf(whole.out), 'the same predictions, versions and outputs as with room for all');
    assert.ok(pipeline.evictions > 100, `${pipeline.evictions} evictions`);
    // An evicted stream's marks come from its checkpoint: every tick processed, the last two labels pending.
    const evicted = ['s0', 's1', 's2', 's3', 's4'].find((s) => !pipeline.pool.has(s))!;
    assert.deepEqual(pipeline.marks(evicted), { seq: 39, pendingLabels: [38, 39] });
    await pipeline.flush();
    source.complete();
  });

  test('marks: the high-water mark and the pending labels a producer must send again', () => {
    const store = new MemoryCheckpointStore();
    const pipeline = createPipeline(lifecycleOptions(store, 4));
    const source = new Subject<StreamInput>();
    source.pipe(pipeline.operator).subscribe();
    assert.equal(pipeline.marks('s0'), undefined);
    for (const input of traffic(6, 1)) source.next(input);
    assert.deepEqual(pipeline.marks('s0'), { seq: 5, pendingLabels: [4, 5] });
    source.complete();
  });

  test('a checkpoint of another spec: the stream is refused by default, started fresh with onBadCheckpoint fresh', async () => {
    const store = new MemoryCheckpointStore();
    const other = createLearner({ ...spec, cell: { kind: 'tanh-rnn', hiddenSize: 4 } });
    other.predict(xOf(0));
    const foreign: StoredCheckpoint = { meta: { stream: 'a', lastSeq: 0, version: 0, tick: 0, savedAt: 0 }, snapshot: other.snapshot() };
    await store.save(foreign);
    const errors: string[] = [];
    for (const policy of ['refuse', 'fresh'] as const) {
      const pipeline = createPipeline(options({
        pool: { spec, maxStreams: 4, onBadCheckpoint: policy, onRestoreError: (e, stream) => errors.push(`${policy}:${stream}:${e.message}`) },
        checkpoint: { store, everySeconds: 3600, checkpointed: [foreign.meta] },
      }));
      const source = new Subject<StreamInput>();
      const out: PipelineOutput[] = [];
      source.pipe(pipeline.operator).subscribe({ next: (m) => out.push(m) });
      await pipeline.prepare('a');
      source.next(tick(1, { y: yOf(1) }));
      source.next(tick(2, { y: yOf(2) }));
      if (policy === 'refuse') {
        assert.deepEqual(out.map(summary), ['x:stream-unavailable', 'x:stream-unavailable']);
      } else {
        assert.deepEqual(out.filter((m) => m.kind === 'prediction').map((m) => (m as Prediction).version), [0, 1], 'fresh learner');
      }
      source.complete();
    }
    assert.equal(errors.length, 2);
    assert.match(errors[0]!, /^refuse:a:.*(another spec|does not match this learner)/);
  });

  test('ticks a crashed run had predicted are marked replayed; ticks at or below the mark are duplicates', () => {
    const pipeline = createPipeline(options({ replayedUpTo: (stream) => (stream === 'a' ? 3 : -1) }));
    const out = run([2, 3, 4, 3].map((seq) => tick(seq, { y: yOf(seq) })), pipeline.operator).out;
    const predictions = out.filter((m): m is Prediction => m.kind === 'prediction');
    assert.deepEqual(predictions.map((p) => [p.seq, p.replayed ?? false]), [[2, true], [3, true], [4, false]]);
    assert.deepEqual(out.filter((m) => m.kind === 'rejected').map((m) => (m as Rejection).reason), ['duplicate']);
  });
});

describe('pipeline: the default drift detection of driftline run (issue 16)', () => {
  // The labels follow the inputs; the learner starts from nothing, so its error falls for a while: the warm-up that
  // River's raw Page-Hinkley defaults took for drift at the start of every new stream.
  const n = 9_000;
  const jumpAt = 8_000;
  // Labels in raw units of about +-10 (force, counts): the raw thresholds are in squared label units.
  const stream = jumpStream(n, jumpAt).map((t) => ({ ...t, y: t.y!.map((v) => 20 * v) }));
  const markers = (detectors: PipelineOptions['drift']['detectors']) =>
    run(stream, createPipeline(options({ drift: { detectors } })).operator).out.filter((m): m is DriftMarker => m.kind === 'drift');

  test('the calibrated Page-Hinkley of the config defaults raises nothing while a new stream warms up and finds the jump after it', async () => {
    const { parseConfig } = await import('../src/cli/config.js');
    const defaults = parseConfig({ streams: { inputSize: M, outputSize: 1 }, learner: { cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate' }, optimizer: { name: 'rmsprop', lr: 0.01 } } });
    assert.equal(defaults.drift.detectors[0].kind, 'calibrated');
    const calibrated = markers(defaults.drift.detectors);
    const raw = markers([{ kind: 'page-hinkley' }]);
    assert.ok(raw.filter((m) => m.seq <= jumpAt).length >= 1, `River's raw defaults: alarms at ${raw.map((m) => m.seq).join(", ")}`);
    assert.deepEqual(calibrated.filter((m) => m.seq <= jumpAt).map((m) => m.seq), []);
    const first = calibrated.find((m) => m.seq > jumpAt);
    assert.ok(first !== undefined && first.seq - jumpAt <= 60, `the jump at ${jumpAt} detected at ${first?.seq}`);
    // Markers and metrics name the detector calibration runs, not just 'calibrated'.
    assert.equal(first.source, 'calibrated-page-hinkley');
  });
});
