// driftline reproduce drift (issue 16, item 2): the scoring of alarms on a two-session error stream, the recorded
// signal against what detectDrift feeds its detectors, the shipped decoder against its config file, a --quick run
// end to end, the command line, and (with the data) the real Jango streams.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { lastValueFrom, tap } from 'rxjs';
import { replaySessions } from '../src/adapters/replay/replay.js';
import { learnerSpecOf, loadConfig } from '../src/cli/config.js';
import { reproduceCommand, UsageError } from '../src/cli/reproduce.js';
import { DriftUsageError, jangoSource, parseDriftArgs, QUICK, reproduceDriftCommand, simulatorSource } from '../src/cli/reproduce-drift.js';
import type { DriftDetector } from '../src/drift/detector.js';
import { PageHinkley, type PageHinkleyOptions } from '../src/drift/page-hinkley.js';
import {
  DEFAULT_DRIFT_SETTINGS, driftDetectorEntries, runDetector, runDriftReproduction, warmUpMedian, type DriftResults,
} from '../src/reproduce/drift.js';
import { periodAtRate, periodForBudget, periodicBaseline, scoreAlarms, warmUpEndTick, type ScoringFrame } from '../src/reproduce/drift-score.js';
import {
  joinSessions, recordSignals, shippedDecoderSpec, SHIPPED_NORMALIZE_DECAY, SHIPPED_SIGNAL, SHIPPED_TARGET_SCALING,
} from '../src/reproduce/drift-streams.js';
import { simulateMotorCortexSessions } from '../src/simulator/motor-cortex.js';
import { createPipeline } from '../src/streams/pipeline.js';
import { jangoDataDir } from './support/jango-data.js';
import { captureIo } from './support/capture-io.js';

const io = captureIo;

// 1000 ticks of 50 ms: warm-up [0, 200), scored first session [200, 600) = 20 s, second session [600, 1000).
const FRAME: ScoringFrame = { length: 1000, boundary: 600, warmUpEnd: 200, binSeconds: 0.05, goalFalseAlarmsPer10Minutes: 1, goalDelayTicks: 60 };

describe('scoring alarms on a two-session stream', () => {
  test('warm-up alarms are reported apart, first-session alarms are false, the first at or after the boundary detects', () => {
    const s = scoreAlarms([50, 199, 200, 450, 599, 610, 640, 900], FRAME);
    assert.equal(s.warmUpAlarms, 2);
    assert.equal(s.falseAlarms, 3); // 200 (the warm-up's end is scored), 450, 599 (the last tick before the boundary)
    assert.equal(s.scoredFirstSessionTicks, 400);
    assert.equal(s.falseAlarmsPer10Minutes, (3 / 20) * 600); // 3 in 20 s
    assert.equal(s.delayTicks, 10);
    assert.equal(s.repeatAlarms, 2);
    assert.equal(s.goalMet, false);
    // The two counting definitions over the scored stream: they differ exactly in the repeats.
    const [river, first] = s.counted;
    assert.equal(river.counting, 'river-pr-1963');
    assert.equal(river.falseAlarms, 3);
    assert.equal(river.precision, 3 / 6);
    assert.equal(first.counting, 'first-alarm');
    assert.equal(first.falseAlarms, 3 + 2);
    assert.equal(first.precision, 1 / 6);
  });

  test('an alarm on the boundary tick is a delay of 0; no alarm in the second session is a miss', () => {
    assert.equal(scoreAlarms([600], FRAME).delayTicks, 0);
    const missed = scoreAlarms([100, 300], FRAME);
    assert.equal(missed.delayTicks, null);
    assert.equal(missed.repeatAlarms, 0);
    assert.equal(missed.goalMet, false);
    assert.deepEqual(missed.counted.map((c) => c.falseAlarms), [1, 1]);
    const silent = scoreAlarms([], FRAME);
    assert.equal(silent.falseAlarmsPer10Minutes, 0);
    assert.equal(silent.delayTicks, null);
  });

  test('the goal: at most 1 false alarm per 10 minutes and at most 60 bins of delay, both bounds inclusive', () => {
    // 10 minutes of scored first session at 50 ms: 12,000 ticks.
    const frame: ScoringFrame = { ...FRAME, length: 30_000, boundary: 20_000, warmUpEnd: 8_000 };
    assert.equal(scoreAlarms([9_000, 20_060], frame).goalMet, true);
    assert.equal(scoreAlarms([9_000, 20_060], frame).falseAlarmsPer10Minutes, 1);
    assert.equal(scoreAlarms([9_000, 20_061], frame).goalMet, false);
    assert.equal(scoreAlarms([9_000, 12_000, 20_010], frame).goalMet, false);
    assert.equal(scoreAlarms([100, 200, 300, 20_000], frame).goalMet, true, 'warm-up alarms do not count');
  });

  test('bad alarms and frames are RangeErrors', () => {
    assert.throws(() => scoreAlarms([300, 200], FRAME), /strictly increasing/);
    assert.throws(() => scoreAlarms([1000], FRAME), /strictly increasing ticks in \[0, 1000\)/);
    assert.throws(() => scoreAlarms([], { ...FRAME, warmUpEnd: 600 }), /0 <= warmUpEnd < boundary < length/);
    assert.throws(() => scoreAlarms([], { ...FRAME, binSeconds: 0 }), /binSeconds/);
  });

  test('the periodic baseline: started at the warm-up end, its expected delay and chance to meet the goal', () => {
    const b = periodicBaseline(100, FRAME);
    assert.deepEqual(b.alarms, [299, 399, 499, 599, 699, 799, 899, 999]);
    assert.equal(b.score.falseAlarms, 4);
    assert.equal(b.score.delayTicks, 99);
    assert.equal(b.score.repeatAlarms, 3);
    assert.equal(b.expectedDelayTicks, 49.5);
    assert.equal(b.probabilityWithinGoal, 0.61);
    assert.equal(b.expectedFalseAlarmsPer10Minutes, 120); // one per 5 s
    assert.equal(periodForBudget(1, 0.05), 72_000, '1 per hour of 50 ms bins');
    assert.equal(periodForBudget(30, 0.05), 2_400);
    // A budget period longer than the scored stream: no alarm at all.
    const hour = periodicBaseline(72_000, FRAME);
    assert.deepEqual(hour.alarms, []);
    assert.equal(hour.probabilityWithinGoal, 61 / 72_000);
    assert.throws(() => periodForBudget(0, 0.05), RangeError);
  });

  test('the periodic alarm at a detector\'s own false alarm rate', () => {
    assert.equal(periodAtRate(scoreAlarms([250, 350, 450, 550], FRAME)), 100);
    assert.equal(periodAtRate(scoreAlarms([700], FRAME)), undefined);
  });

  test('warm-up end: the tick of the first value past the warm-up, counting only the values fed', () => {
    const signal = [NaN, NaN, 5, NaN, 1, 2, 3, 4];
    assert.equal(warmUpEndTick(signal, 0, 8), 2);
    assert.equal(warmUpEndTick(signal, 2, 8), 5);
    assert.throws(() => warmUpEndTick(signal, 5, 8), /no more than 5 fed values/);
    assert.throws(() => warmUpEndTick(signal, 2, 5), /first session \(5 ticks\)/);
    assert.equal(warmUpMedian(signal, 5), 3);
    assert.equal(warmUpMedian(signal, 6), 2);
  });

  test('runDetector feeds finite values only; binarized from a tick on, above the threshold as 1', () => {
    const seen: number[] = [];
    const recorder: DriftDetector = {
      driftDetected: false,
      update(x: number) {
        seen.push(x);
        (this as { driftDetected: boolean }).driftDetected = seen.length % 2 === 0;
        return this;
      },
      reset() {},
    };
    assert.deepEqual(runDetector(recorder, [NaN, 0.5, 2, NaN, 3]), [2]);
    assert.deepEqual(seen, [0.5, 2, 3]);
    seen.length = 0;
    assert.deepEqual(runDetector(recorder, [9, 9, 0.5, 2, NaN, 3], { from: 2, threshold: 1 }), [3]);
    assert.deepEqual(seen, [0, 1, 1]);
  });
});

describe('the error stream', () => {
  test('the decoder, stream processing and signal are those of examples/bci-decoder/jango.yaml', () => {
    const config = loadConfig(join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'bci-decoder', 'jango.yaml'));
    for (const seed of [1, 7]) assert.deepEqual(shippedDecoderSpec(seed, 96, 2), { ...learnerSpecOf(config), seed });
    assert.equal(SHIPPED_NORMALIZE_DECAY, (config.evaluation.normalizeInputs as { decay: number }).decay);
    assert.deepEqual(SHIPPED_TARGET_SCALING, config.evaluation.targetScaling);
    assert.equal(SHIPPED_SIGNAL, config.drift.signal);
    assert.equal(DEFAULT_DRIFT_SETTINGS.signals[0], config.drift.signal);
  });

  test('joinSessions: one session, the second\'s bins one bin after the first\'s', () => {
    const [a, b] = simulateMotorCortexSessions({ seed: 3, sessionSeconds: [2, 1], channels: 4 });
    const j = joinSessions(a, b);
    assert.equal(j.t.length, 60);
    assert.equal(j.t[40], a.t[39] + 0.05);
    assert.deepEqual(j.x.subarray(40 * 4, 41 * 4), b.x.subarray(0, 4));
    assert.deepEqual(j.y!.subarray(80), b.y);
    assert.throws(() => joinSessions(a, { ...b, nChannels: 5 }), /same channels and outputs/);
  });

  test('the recorded signals give every detector the alarms detectDrift raises in the pipeline (no cooldown)', async () => {
    const [a, b] = simulateMotorCortexSessions({ seed: 2, sessionSeconds: [90, 30] });
    const session = joinSessions(a, b);
    const spec = shippedDecoderSpec(1, 96, 2);
    const recorded = await recordSignals(session, spec);
    assert.equal(recorded.error.length, 2400);
    // 'normalized-error' feeds nothing during the normalizer's warm-up: 1000 reference errors (tick 0 has none).
    assert.equal(recorded.normalized.findIndex(Number.isFinite), 1001);
    const cases: Array<['normalized-error' | 'error', PageHinkleyOptions]> = [
      ['normalized-error', { threshold: 3, delta: 0.05, minInstances: 30 }],
      ['error', { threshold: 3e7, delta: 1e5, minInstances: 30 }],
    ];
    for (const [signal, ph] of cases) {
      const pipeline = createPipeline({
        pool: { spec, maxStreams: 1 }, normalize: { decay: SHIPPED_NORMALIZE_DECAY }, holdout: { kind: 'none' }, maxDelay: 64,
        recoveryTicks: 0, targetScaling: SHIPPED_TARGET_SCALING, prequential: { window: 1200, ewmaAlpha: 0.01, every: 1200 },
        drift: { detectors: [{ kind: 'page-hinkley', ...ph }], signal, cooldownTicks: 0 }, recovery: { window: 1200, tolerance: 0.5 },
      });
      const inPipeline: number[] = [];
      await lastValueFrom(
        replaySessions([session], { stream: 's', speed: 'fast', progress: false }).pipe(
          pipeline.operator,
          tap((m) => {
            if (m.kind === 'drift' && m.source === 'page-hinkley') inPipeline.push(m.seq - 1);
          }),
        ),
        { defaultValue: undefined },
      );
      const offline = runDetector(new PageHinkley(ph), signal === 'error' ? recorded.error : recorded.normalized);
      assert.ok(inPipeline.length >= 5, `${signal}: ${inPipeline.length} detections`);
      assert.deepEqual(offline, inPipeline, signal);
    }
  });
});

describe('driftline reproduce drift --quick, end to end on the simulator', () => {
  const out = mkdtempSync(join(tmpdir(), 'driftline-drift-'));
  after(() => rmSync(out, { recursive: true, force: true }));
  let first: DriftResults;

  test('records the stream, runs every detector, writes results.json, summary.md and the PNG', async () => {
    const c = io();
    first = (await reproduceCommand(['drift', '--quick', '--quiet', '--out', out], c.io)) as DriftResults;
    for (const f of ['results.json', 'summary.md', 'alarms-simulator-normalized-error.png', 'alarms-simulator-input-squared-z.png', 'streams/simulator-seed1.f64', 'streams/simulator-seed1.json']) {
      assert.ok(existsSync(join(out, f)), f);
    }
    // One stream per signal, the decoder's error and the inputs' squared z-scores.
    assert.deepEqual(first.streams.map((x) => x.signal), ['normalized-error', 'input-squared-z']);
    assert.equal(first.streams[0].cached, false);
    for (const x of first.streams) {
      assert.equal(x.ticks, (QUICK.sessionSeconds[0] + QUICK.sessionSeconds[1]) * 20);
      assert.equal(x.boundary, QUICK.sessionSeconds[0] * 20);
    }
    // The warm-up: the unfed ticks (the error normalizer's 1001, the channel statistics' 1000), then settle +
    // calibration (70 s = 1400 values).
    assert.deepEqual(first.streams.map((x) => x.warmUpEnd), [1001 + 1400, 1000 + 1400]);
    const expected = driftDetectorEntries({ ...first.settings, binSeconds: 0.05 }).map((e) => `${e.name}|${e.setting}`);
    for (const signal of first.settings.signals) {
      assert.deepEqual(
        first.rows.filter((r) => r.signal === signal).map((r) => `${r.detector}|${r.setting}`),
        expected.filter((e) => !first.skipped.some((k) => `${k.detector}|${k.setting}` === e)),
      );
    }
    for (const k of first.skipped) assert.match(c.err(), new RegExp(`skipped ${k.detector} \\(${k.setting}\\)`));
    // Calibrated detectors never alarm in the warm-up.
    for (const r of first.rows.filter((x) => x.setting.startsWith('calibrated'))) assert.equal(r.score.warmUpAlarms, 0, r.detector);
    const text = c.out();
    assert.match(text, /## Protocol/);
    assert.match(text, /no session marker at the boundary/);
    assert.match(text, /Nothing is tuned on session 2 or on the scored tail of session 1/);
    assert.match(text, /\| periodic\(2400\) \| budget 30\/h \|/);
    assert.match(text, /FA river-pr-1963 \| FA first-alarm/);
    // The calibration's check on null streams: every detector on every family, its realized rate beside the budget.
    assert.equal(first.nullCalibration.length, 4 * 4);
    assert.match(text, /## Calibration on null streams/);
    for (const r of first.nullCalibration) assert.ok(r.realizedPerHour.every((v) => v >= 0 && Number.isFinite(v)) && r.estimatedPerHour[0] <= 30, r.detector);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as DriftResults;
    assert.equal(json.experiment, 'drift');
    assert.equal(json.summary.length, first.summary.length);
    assert.ok(json.protocol.some((p) => p.includes("'river-pr-1963' and 'first-alarm'")));
  });

  test('a second run reuses the cached stream and scores the same alarms', async () => {
    const again = (await reproduceCommand(['drift', '--quick', '--quiet', '--no-plots', '--out', out], io().io)) as DriftResults;
    assert.equal(again.streams[0].cached, true);
    assert.deepEqual(again.rows, first.rows);
    assert.deepEqual(again.baselines, first.baselines);
  });
});

describe('driftline reproduce drift: command line', () => {
  test('defaults: 3 seeds, the simulator, jango.yaml\'s signal, the calibrated detector\'s own warm-up, out/drift', () => {
    const o = parseDriftArgs([])!;
    assert.deepEqual(o.seeds, [1, 2, 3]);
    assert.equal(o.simulator, true);
    assert.equal(o.jango, undefined);
    assert.deepEqual(o.settings.signals, ['normalized-error', 'input-squared-z']);
    assert.equal(o.settings.falseAlarmsPerHour, 1);
    assert.equal(o.settings.settleSeconds, 60);
    assert.equal(o.settings.calibrationSeconds, 300);
    assert.equal(o.settings.goalDelayTicks, 60);
    assert.equal(o.settings.goalFalseAlarmsPer10Minutes, 1);
    assert.equal(o.out, join('out', 'drift'));
    assert.equal(o.fresh, false);
    assert.equal(o.sessionSeconds, undefined);
  });

  test('--quick, --seeds, --signals, --jango, --no-simulator, --no-binary, --fresh', () => {
    const q = parseDriftArgs(['--quick'])!;
    assert.deepEqual(q.seeds, [1]);
    assert.deepEqual(q.sessionSeconds, [180, 60]);
    assert.equal(q.settings.settleSeconds, 10);
    assert.equal(parseDriftArgs(['--quick', '--seeds', '2'])!.seeds.length, 2);
    const o = parseDriftArgs(['--jango', '/data', '--no-simulator', '--seeds', '5', '--signals', 'error', '--no-binary', '--fresh', '--out', 'x'])!;
    assert.equal(o.jango, '/data');
    assert.equal(o.simulator, false);
    assert.deepEqual(o.seeds, [1, 2, 3, 4, 5]);
    assert.deepEqual(o.settings.signals, ['error']);
    assert.equal(o.settings.binary, false);
    assert.equal(o.fresh, true);
    assert.equal(o.out, 'x');
    assert.equal(parseDriftArgs(['--help']), undefined);
  });

  test('bad arguments are usage errors that name the problem', async () => {
    const bad: Array<[string[], RegExp]> = [
      [['--seeds', '0'], /--seeds must be an integer in \[1, 100\], got '0'/],
      [['--seeds', 'two'], /--seeds/],
      [['--signals', 'input'], /--signals takes a comma-separated list of normalized-error, error, input-squared-z; got 'input'/],
      [['--no-simulator'], /--no-simulator needs --jango DIR/],
      [['--quick', '--jango', '/data'], /--quick runs the simulator only/],
      [['--bogus'], /Unknown option '--bogus'/],
      [['extra'], /positional/i],
    ];
    for (const [args, message] of bad) {
      assert.throws(() => parseDriftArgs(args), (e: unknown) => e instanceof DriftUsageError && message.test(e.message), args.join(' '));
      await assert.rejects(reproduceCommand(['drift', ...args], io().io), (e: unknown) => e instanceof UsageError && message.test(e.message));
    }
    assert.throws(() => jangoSource('/nonexistent/jango', () => {}), /Day0\.mat not found/);
  });

  test('driftline reproduce drift --help prints its usage; the experiment list names drift', async () => {
    const c = io();
    assert.equal(await reproduceDriftCommand(['--help'], c.io), undefined);
    assert.match(c.out(), /usage: driftline reproduce drift/);
    const d = io();
    await reproduceCommand(['--help'], d.io);
    assert.match(d.out(), /drift +drift detectors/);
  });

  test('the simulator source draws new sessions per seed; its cache key names the seed and lengths', async () => {
    const s = simulatorSource([2, 1]);
    const [a1] = await s.sessions(1);
    const [a2] = await s.sessions(2);
    assert.equal(a1.t.length, 40);
    assert.notDeepEqual(a1.x, a2.x);
    assert.deepEqual(s.key(2), { simulator: 'motor-cortex', seed: 2, sessionSeconds: [2, 1] });
  });
});

const DATA = jangoDataDir();
const noData = existsSync(join(DATA, 'Day0.mat')) && existsSync(join(DATA, 'Day16.mat')) ? false : `Jango data missing: ${DATA}/Day0.mat and Day16.mat not found (CI has them)`;

describe('driftline reproduce drift on the real Jango sessions', { skip: noData }, () => {
  test('Day0 then Day16 as one stream: the boundary at bin 24,000, the warm-up as on the simulator, a scored row', async () => {
    const results = await runDriftReproduction({
      sources: [jangoSource(DATA, () => {})],
      seeds: [1],
      entries: () => [{ name: 'page-hinkley', setting: 'river-defaults', input: 'signal', spec: { kind: 'page-hinkley' } }],
      settings: { nullCheck: null },
      outDir: null,
      quiet: true,
    });
    assert.deepEqual(results.streams.map((x) => x.signal), ['normalized-error', 'input-squared-z']);
    const st = results.streams[0];
    assert.equal(st.ticks, 42_000);
    assert.equal(st.boundary, 24_000);
    assert.equal(st.warmUpEnd, 1001 + (60 + 300) * 20);
    const row = results.rows[0];
    console.log(`Jango, seed 1, Page-Hinkley River defaults: ${row.score.warmUpAlarms} warm-up alarms, ${row.score.falseAlarms} false alarms in Day0 (${row.score.falseAlarmsPer10Minutes.toFixed(2)} per 10 min), delay ${row.score.delayTicks}`);
    assert.equal(row.score.scoredFirstSessionTicks, 24_000 - st.warmUpEnd);
    assert.equal(results.baselines[0].baseline.period, 72_000);
  });
});
