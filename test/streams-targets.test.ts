// Labels in the user's units (DESIGN section 5, Units): the per-stream target scaler, the per-session holdout
// protocols of issue 15 (warm up on one session, then calibrate, hold out or go without labels on the next), and
// the information age every held-out row reports for its references.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { from, Subject, type Observable } from 'rxjs';
import { type LearnerSpec } from '../src/learners/learner.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';
import { holdoutSchedule, type HoldoutSpec } from '../src/streams/holdout.js';
import { LearnerPool } from '../src/streams/learner-pool.js';
import type { DriftMarker, ScoredTick, StreamInput, StreamOutput, TickEvent } from '../src/streams/messages.js';
import { TargetScaler, validateTargetScaling } from '../src/streams/normalize-targets.js';
import { PREDICT_THEN_LEARN_PART, predictThenLearn, type PredictThenLearnOptions } from '../src/streams/predict-then-learn.js';

const M = 3;
const spec: LearnerSpec = {
  cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(0.01),
  inputSize: M, outputSize: 2, seed: 7, loss: 'mse',
};

function collect(inputs: readonly StreamInput[], options: Partial<PredictThenLearnOptions>, pools: LearnerPool[] = []): StreamOutput[] {
  const out: StreamOutput[] = [];
  from(inputs)
    .pipe((s: Observable<StreamInput>) =>
      s.pipe(predictThenLearn({
        pool: () => {
          const p = new LearnerPool({ spec, maxStreams: 4 });
          pools.push(p);
          return p;
        },
        recoveryTicks: 0,
        maxDelay: 8,
        ...options,
      })))
    .subscribe((v) => out.push(v));
  return out;
}

/** A learnable stream whose labels are in large units: y = 1800 * (linear map of x) + 500. */
function bigUnits(ticks: number, seed = 3): TickEvent[] {
  const rng = new Random(seed);
  const events: TickEvent[] = [];
  for (let seq = 0; seq < ticks; seq++) {
    const x = Float32Array.from({ length: M }, () => rng.normal());
    events.push({
      kind: 'tick', stream: 'a', seq, t: seq * 0.05, x,
      y: Float32Array.from([1800 * (0.6 * x[0] - 0.4 * x[1]) + 500, 1800 * 0.5 * x[2] - 300]),
    });
  }
  return events;
}

function r2(scored: readonly ScoredTick[], pick: (s: ScoredTick) => Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < 2; i++) {
    const mean = scored.reduce((a, s) => a + s.y[i], 0) / scored.length;
    for (const s of scored) {
      num += (s.y[i] - pick(s)[i]) ** 2;
      den += (s.y[i] - mean) ** 2;
    }
  }
  return 1 - num / den;
}

describe('TargetScaler', () => {
  test('keeps the running mean and population variance of the labels it observes, and its two maps invert each other', () => {
    const scaler = new TargetScaler({ kind: 'standardize' }, 2);
    const rng = new Random(1);
    const ys = Array.from({ length: 500 }, () => [2000 * rng.normal() + 300, 5 * rng.normal() - 7]);
    for (const y of ys) scaler.observe(y);
    for (let i = 0; i < 2; i++) {
      const mean = ys.reduce((a, y) => a + y[i], 0) / ys.length;
      const variance = ys.reduce((a, y) => a + (y[i] - mean) ** 2, 0) / ys.length;
      assert.ok(Math.abs(scaler.meanOf(i) - mean) < 1e-9 * Math.abs(mean) + 1e-9, `mean ${i}`);
      assert.ok(Math.abs(scaler.scaleOf(i) - Math.sqrt(variance)) < 1e-9 * Math.sqrt(variance), `scale ${i}`);
    }
    const y = [1234.5, -3.25];
    const inLearner = Float32Array.from(scaler.toLearner(y));
    assert.ok(Math.abs(inLearner[0] - (1234.5 - scaler.meanOf(0)) / scaler.scaleOf(0)) < 1e-6);
    scaler.toUser(inLearner, 0);
    assert.ok(Math.abs(inLearner[0] - 1234.5) < 1e-2 && Math.abs(inLearner[1] + 3.25) < 1e-4, `round trip: ${inLearner.join(', ')}`);
  });

  test('the first label is scaled by itself, not by nothing; freezeAfterLabels stops the statistics', () => {
    const scaler = new TargetScaler({ kind: 'standardize', freezeAfterLabels: 3 }, 1);
    assert.equal(scaler.observe([4000]), false);
    assert.equal(scaler.toLearner([4000])[0], 0);
    assert.equal(scaler.scaleOf(0), 4000);
    scaler.observe([2000]);
    scaler.observe([0]);
    const frozen = [scaler.meanOf(0), scaler.scaleOf(0)];
    scaler.observe([1e6]);
    assert.deepEqual([scaler.meanOf(0), scaler.scaleOf(0)], frozen);
  });

  test('a label far outside the statistics is flagged once they are established, and still taken in', () => {
    const scaler = new TargetScaler({ kind: 'standardize', outOfRangeSd: 6, minLabelsForRange: 50 }, 1);
    const rng = new Random(2);
    for (let i = 0; i < 49; i++) assert.equal(scaler.observe([rng.normal()]), false);
    assert.equal(scaler.observe([100]), false, 'before minLabelsForRange nothing is out of range');
    for (let i = 0; i < 200; i++) scaler.observe([rng.normal()]);
    const before = scaler.count;
    assert.equal(scaler.observe([1e4]), true);
    assert.equal(scaler.count, before + 1);
  });

  test('a half-life forgets old labels; save and load restore the statistics exactly', () => {
    const scaler = new TargetScaler({ kind: 'standardize', halfLifeLabels: 10 }, 1);
    for (let i = 0; i < 200; i++) scaler.observe([1000]);
    for (let i = 0; i < 200; i++) scaler.observe([-1000]);
    assert.ok(Math.abs(scaler.meanOf(0) + 1000) < 1, `forgot the first level: mean ${scaler.meanOf(0)}`);
    const copy = new TargetScaler({ kind: 'standardize', halfLifeLabels: 10 }, 1);
    copy.load(scaler.save());
    assert.deepEqual(copy.save(), scaler.save());
    assert.throws(() => copy.load(new Float64Array(2)), /3 floats|expected 3/);
  });

  test('bad specs are refused naming the field', () => {
    assert.throws(() => validateTargetScaling({ kind: 'zscore' } as never), /kind 'zscore' is unknown/);
    assert.throws(() => validateTargetScaling({ kind: 'standardize', halfLifeLabels: 0 }), /halfLifeLabels/);
    assert.throws(() => validateTargetScaling({ kind: 'standardize', outOfRangeSd: Infinity }), /outOfRangeSd/);
    assert.throws(() => validateTargetScaling({ kind: 'standardize', minLabelsForRange: 1 }), /minLabelsForRange/);
  });
});

describe('predictThenLearn with target scaling', () => {
  test('labels in units of thousands are learned when standardized, predictions and scores stay in the user units', () => {
    const events = bigUnits(3000);
    const late = (out: StreamOutput[]) => out.filter((m): m is ScoredTick => m.kind === 'scored' && m.seq >= 2000);
    const scaled = late(collect(events, { targetScaling: { kind: 'standardize' } }));
    const raw = late(collect(events, {}));
    const scaledR2 = r2(scaled, (s) => s.yhat);
    const rawR2 = r2(raw, (s) => s.yhat);
    assert.ok(scaledR2 > 0.9, `standardized: R2 ${scaledR2.toFixed(3)}`);
    assert.ok(rawR2 < 0.5, `raw units: R2 ${rawR2.toFixed(3)} (a readout with unit-sized steps cannot reach them)`);
    // In the user's units: the mean prediction sits near the labels' mean (500, -300), not near 0.
    const meanYhat = scaled.reduce((a, s) => a + s.yhat[0], 0) / scaled.length;
    assert.ok(Math.abs(meanYhat - 500) < 150, `mean prediction ${meanYhat.toFixed(0)}`);
  });

  test('the statistics are part of the stream state: a restored stream predicts exactly as the original', () => {
    const events = bigUnits(400);
    const pools: LearnerPool[] = [];
    const out: StreamOutput[] = [];
    // Run 300 ticks, keep the stream's learner snapshot and part, then compare the next 100 ticks.
    const first = events.slice(0, 300);
    const rest = events.slice(300);
    const opts: Partial<PredictThenLearnOptions> = { targetScaling: { kind: 'standardize' } };
    const a = collectKeepingPool(first, opts, pools);
    const saved = { learner: a.learner.snapshot(), part: a.pool.part(PREDICT_THEN_LEARN_PART)!.save('a')! };
    const straight = collect(events, opts).filter((m): m is ScoredTick => m.kind === 'scored' && m.seq >= 300);
    const resumedPool = new LearnerPool({ spec, maxStreams: 4 });
    resumedPool.offer({
      meta: { stream: 'a', lastSeq: 299, version: a.learner.version, tick: a.learner.tick, savedAt: Date.now() },
      snapshot: saved.learner,
      parts: new Map([[PREDICT_THEN_LEARN_PART, saved.part]]),
    });
    from(rest)
      .pipe(predictThenLearn({ pool: () => resumedPool, recoveryTicks: 0, maxDelay: 8, ...opts }))
      .subscribe((m) => out.push(m));
    const resumed = out.filter((m): m is ScoredTick => m.kind === 'scored');
    assert.equal(resumed.length, straight.length);
    for (let i = 0; i < resumed.length; i++) assert.deepEqual(resumed[i].yhat, straight[i].yhat, `tick ${resumed[i].seq}`);
  });
});

describe('the frozen shadow and target scaling', () => {
  test('keeps the target statistics of its fork while the live ones move on', () => {
    const events: StreamInput[] = [...bigUnits(400)];
    events.push({ kind: 'drift', stream: 'a', seq: 400, t: 400 * 0.05, source: 'detector' } as DriftMarker);
    // After the marker: one input over and over, labels far above everything before (the live mean climbs).
    const x = Float32Array.from([0.3, -0.2, 0.1]);
    for (let seq = 400; seq < 700; seq++) events.push({ kind: 'tick', stream: 'a', seq, t: seq * 0.05, x, y: Float32Array.from([6000, 4000]) });
    const scored = collect(events, { targetScaling: { kind: 'standardize' }, recoveryTicks: 300 }).filter((m): m is ScoredTick => m.kind === 'scored' && m.seq >= 400);
    const late = scored.slice(-50);
    const spread = (pick: (s: ScoredTick) => number) => Math.max(...late.map(pick)) - Math.min(...late.map(pick));
    // A frozen model fed a constant input settles; in frozen units it stays put, whatever the live statistics do.
    assert.ok(spread((s) => s.yFrozen![0]) < 1, `frozen prediction spread ${spread((s) => s.yFrozen![0])}`);
    assert.ok(late[0].yFrozen![0] < 2500, `the shadow predicts in the statistics of its fork: ${late[0].yFrozen![0]}`);
    assert.ok(late[49].yhat[0] > 5000, `the live learner follows the new labels: ${late[49].yhat[0]}`);
  });
});

describe('predict-then-learn state of format 1 (before target scaling)', () => {
  test('still restores: the stream goes on exactly, and the fields format 2 added start afresh', () => {
    const events = bigUnits(200);
    const a = collectKeepingPool(events.slice(0, 120), {}, []);
    const v2 = a.pool.part(PREDICT_THEN_LEARN_PART)!.save('a')!;
    // Format 1 is format 2 without its tail: the session count, the references' last label seq, their ages
    // (ring capacity 8) and the target statistics (2 outputs).
    const tail = 8 + 8 + (8 + 8 * 8) + (8 + 8 * (2 * 2 + 1));
    const v1 = v2.slice(0, v2.length - tail);
    new DataView(v1.buffer).setFloat64(0, 1, true);
    const restored = new LearnerPool({ spec, maxStreams: 4 });
    restored.offer({
      meta: { stream: 'a', lastSeq: 119, version: a.learner.version, tick: a.learner.tick, savedAt: Date.now() },
      snapshot: a.learner.snapshot(),
      parts: new Map([[PREDICT_THEN_LEARN_PART, v1]]),
    });
    const out: StreamOutput[] = [];
    from(events.slice(120)).pipe(predictThenLearn({ pool: () => restored, recoveryTicks: 0, maxDelay: 8 })).subscribe((m) => out.push(m));
    const straight = collect(events, {}).filter((m): m is ScoredTick => m.kind === 'scored' && m.seq >= 120);
    const resumed = out.filter((m): m is ScoredTick => m.kind === 'scored');
    assert.equal(resumed.length, 80);
    assert.ok(!out.some((m) => m.kind === 'rejected'), 'no tick refused after the restore');
    for (let i = 0; i < resumed.length; i++) assert.deepEqual(resumed[i].yhat, straight[i].yhat, `tick ${resumed[i].seq}`);
    // The references' age restarts with the first label after the restore.
    assert.equal(resumed[0].referenceAge, undefined);
    assert.equal(resumed[1].referenceAge, 1);
  });
});

/** Runs inputs with a pool the test keeps, without ending the subscription (so the pool still holds the learner). */
function collectKeepingPool(inputs: readonly StreamInput[], options: Partial<PredictThenLearnOptions>, pools: LearnerPool[]) {
  const pool = new LearnerPool({ spec, maxStreams: 4 });
  pools.push(pool);
  const source = new Subject<StreamInput>();
  source.pipe(predictThenLearn({ pool: () => pool, recoveryTicks: 0, maxDelay: 8, ...options })).subscribe(() => {});
  for (const e of inputs) source.next(e);
  return { pool, learner: pool.peek('a')! };
}

describe('holdout protocols across sessions', () => {
  const marker = (seq: number, t: number): DriftMarker => ({ kind: 'drift', stream: 'a', seq, t, source: 'session' });

  test('bySession: every label of the first session, then the first minute of the next, then none', () => {
    const h = holdoutSchedule({ kind: 'bySession', sessions: [{ kind: 'none' }, { kind: 'firstMinutes', minutes: 1 }] });
    h.sessionStarted(0); // declared before the first tick: still the first session
    assert.equal(h.session, 0);
    assert.equal(h.isHeldOut(0), false);
    assert.equal(h.isHeldOut(500), false);
    h.sessionStarted(1000);
    assert.equal(h.session, 1);
    assert.equal(h.isHeldOut(1000), false);
    assert.equal(h.isHeldOut(1059.9), false);
    assert.equal(h.isHeldOut(1060), true);
    h.sessionStarted(2000);
    assert.equal(h.isHeldOut(2030), false, 'a later session follows the last entry, with its own clock');
    assert.equal(h.isHeldOut(2061), true);
  });

  test('always, and alternate per session restarting at the boundary', () => {
    assert.equal(holdoutSchedule({ kind: 'always' }).isHeldOut(3), true);
    const h = holdoutSchedule({ kind: 'bySession', sessions: [{ kind: 'none' }, { kind: 'alternate', onSeconds: 30, offSeconds: 30 }] });
    h.isHeldOut(0);
    h.sessionStarted(1005);
    assert.deepEqual([1005, 1034, 1035, 1064, 1065].map((t) => h.isHeldOut(t)), [false, false, true, true, false]);
  });

  test('bad per-session specs are refused with the index', () => {
    assert.throws(() => holdoutSchedule({ kind: 'bySession', sessions: [] }), /non-empty/);
    assert.throws(() => holdoutSchedule({ kind: 'bySession', sessions: [{ kind: 'none' }, { kind: 'firstMinutes', minutes: -1 }] }), /sessions\[1\]\.minutes/);
    assert.throws(() => holdoutSchedule({ kind: 'bySession', sessions: [{ kind: 'bySession', sessions: [] }] } as unknown as HoldoutSpec), /sessions\[0\]/);
  });

  test('held-out rows report the real information age of the references', () => {
    const events: StreamInput[] = [marker(0, 0)];
    for (let seq = 0; seq < 40; seq++) {
      if (seq === 20) events.push(marker(20, 20 * 0.05));
      events.push({ kind: 'tick', stream: 'a', seq, t: seq * 0.05, x: Float32Array.from([seq % 3, 1, 0]), y: Float32Array.from([seq, -seq]) });
    }
    // Second session: the first 0.25 s (5 ticks) calibrate, then everything is held out.
    const holdout: HoldoutSpec = { kind: 'bySession', sessions: [{ kind: 'none' }, { kind: 'firstMinutes', minutes: 0.25 / 60 }] };
    const scored = collect(events, { holdout }).filter((m): m is ScoredTick => m.kind === 'scored');
    assert.deepEqual(scored.filter((s) => s.heldOut).map((s) => s.seq), Array.from({ length: 15 }, (_, i) => 25 + i));
    assert.equal(scored[0].referenceAge, undefined, 'no label before the first tick');
    assert.deepEqual(scored.slice(1, 25).map((s) => s.referenceAge), Array(24).fill(1), 'labels in the frame: one tick old');
    // On held-out tick s the last label the references have is tick 24's.
    assert.deepEqual(scored.filter((s) => s.heldOut).map((s) => s.referenceAge), Array.from({ length: 15 }, (_, i) => 1 + i));
    const persistence = scored.filter((s) => s.heldOut).map((s) => s.yLast[0]);
    assert.deepEqual(persistence, Array(15).fill(24));
  });
});
