// Calibrated drift detectors: a threshold from a false-alarm budget and the stream's own start (issue 16, item 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Adwin } from '../src/drift/adwin.js';
import { Registry } from 'prom-client';
import { CalibratedDetector } from '../src/drift/calibrated-detector.js';
import { calibrationsSoFar } from '../src/drift/calibration-tally.js';
import { DriftlineMetrics } from '../src/metrics/driftline-metrics.js';
import { AutocorrelationTime, integratedAutocorrelationTime } from '../src/drift/autocorrelation-time.js';
import { BLOCK_LENGTH_IN_TAU, StationaryBootstrap } from '../src/drift/stationary-bootstrap.js';
import { calibrateThreshold, ThresholdCalibration, type UncalibratedSpec } from '../src/drift/calibration.js';
import { createDetector, type DriftDetector } from '../src/drift/detector.js';
import { Kswin } from '../src/drift/kswin.js';
import { PageHinkley } from '../src/drift/page-hinkley.js';
import { Random } from '../src/learners/random.js';

function ar1(n: number, phi: number, seed: number): Float64Array {
  const rng = new Random(seed);
  const out = new Float64Array(n);
  let a = 0;
  for (let i = 0; i < n; i++) {
    a = phi * a + Math.sqrt(1 - phi * phi) * rng.normal();
    out[i] = a;
  }
  return out;
}

function lagOneCorrelation(x: ArrayLike<number>): number {
  let mean = 0;
  for (let i = 0; i < x.length; i++) mean += x[i];
  mean /= x.length;
  let c0 = 0;
  let c1 = 0;
  for (let i = 0; i < x.length; i++) {
    c0 += (x[i] - mean) ** 2;
    if (i > 0) c1 += (x[i] - mean) * (x[i - 1] - mean);
  }
  return c1 / c0;
}

test('the integrated autocorrelation time is about 1 for white noise and (1 + phi) / (1 - phi) for an AR(1)', () => {
  assert.ok(Math.abs(integratedAutocorrelationTime(ar1(20_000, 0, 1)) - 1) < 0.15);
  const tau = integratedAutocorrelationTime(ar1(20_000, 0.8, 2));
  assert.ok(Math.abs(tau - 9) < 1.5, `AR(0.8): tau ${tau}, expected about 9`);
  assert.equal(integratedAutocorrelationTime(new Float64Array(100).fill(3)), 1);
  assert.throws(() => integratedAutocorrelationTime([1, 2, 3]), /at least 8 values/);
  assert.throws(() => integratedAutocorrelationTime([1, 2, 3, 4, 5, 6, 7, NaN]), /value 7 is NaN/);
});

test('the autocorrelation time computed a few products at a time is exactly the one computed in one go', () => {
  for (const [phi, seed] of [[0, 1], [0.8, 2], [0.995, 3]] as const) {
    const series = ar1(3000, phi, seed);
    const whole = integratedAutocorrelationTime(series);
    for (const step of [1, 2999, 10_000]) {
      const stepped = new AutocorrelationTime(series);
      assert.throws(() => stepped.value, /advance\(\) until done/);
      let products = 0;
      let calls = 0;
      while (!stepped.done) {
        const did = stepped.advance(step);
        assert.ok(did >= Math.min(step, 1) && did < step + 3000, `phi ${phi}, step ${step}: one lag at least, at most one lag past the step`);
        products += did;
        calls++;
      }
      assert.equal(stepped.value, whole, `phi ${phi}, step ${step}`);
      assert.equal(stepped.advance(step), 0, 'done is done');
      if (step === 1) assert.ok(calls > (phi > 0.9 ? 50 : 1), `phi ${phi}: ${calls} lags, one per call`);
      assert.ok(products >= calls);
    }
  }
});

test('the stationary bootstrap replays for a seed, draws only source values and keeps short-range dependence with long blocks', () => {
  const source = ar1(5000, 0.9, 3);
  const tau = integratedAutocorrelationTime(source);
  const draw = (seed: number, block: number): Float64Array => {
    const b = new StationaryBootstrap(source, block, seed);
    return Float64Array.from({ length: 20_000 }, () => b.next());
  };
  assert.deepEqual(draw(5, 50), draw(5, 50));
  assert.notDeepEqual(draw(5, 50), draw(6, 50));
  const values = new Set(source);
  assert.ok(draw(7, 50).every((v) => values.has(v)));
  const kept = lagOneCorrelation(draw(8, Math.ceil(BLOCK_LENGTH_IN_TAU * tau)));
  const lost = lagOneCorrelation(draw(8, 1));
  assert.ok(Math.abs(kept - lagOneCorrelation(source)) < 0.05, `lag-1 correlation ${kept} with long blocks`);
  assert.ok(Math.abs(lost) < 0.05, `lag-1 correlation ${lost} with blocks of 1`);
});

// The calibration reads each run's first alarm from the detector's statistic; a detector built with the chosen
// setting, fed the same resampled runs, must alarm in exactly the runs calibration says and at the ticks it says.
for (const [spec, build] of [
  [{ kind: 'page-hinkley' }, (s: number) => new PageHinkley({ delta: 0.5, mode: 'up', threshold: s })],
  [{ kind: 'page-hinkley', mode: 'both', delta: 0.1 }, (s: number) => new PageHinkley({ delta: 0.1, mode: 'both', threshold: s })],
  [{ kind: 'adwin' }, (s: number) => new Adwin({ delta: s })],
  [{ kind: 'kswin', seed: 4 }, (s: number) => new Kswin({ alpha: s, seed: 4 })],
] as const) {
  test(`calibration of ${JSON.stringify(spec)}: the chosen setting alarms in exactly the null runs calibration counted`, () => {
    const segment = ar1(3000, 0.7, 11).map((x) => x * x);
    const runs = 12;
    const runTicks = spec.kind === 'kswin' ? 1500 : 4000;
    const calibration = calibrateThreshold(spec as UncalibratedSpec, segment, 1 / 2000, { runs, runTicks, seed: 9 });
    assert.equal(calibration.spec.kind, spec.kind);
    assert.equal((calibration.spec as Record<string, unknown>)[calibration.setting.name], calibration.setting.value);

    const bootstrap = new StationaryBootstrap(segment.map((x) => (x - calibration.center) / calibration.scale), calibration.meanBlockLength, 9);
    let alarmed = 0;
    let atRisk = 0;
    for (let run = 0; run < runs; run++) {
      bootstrap.restart();
      const detector: DriftDetector = build(calibration.setting.value);
      let first = -1;
      for (let t = 1; t <= runTicks; t++) {
        if (detector.update(bootstrap.next()).driftDetected && first < 0) first = t;
      }
      if (first > 0) alarmed++;
      atRisk += first > 0 ? first : runTicks;
    }
    assert.equal(alarmed, calibration.alarmedRuns);
    assert.equal(alarmed / atRisk, calibration.estimatedAlarmsPerTick);
    assert.ok(calibration.estimatedAlarmsPerTick <= calibration.budgetAlarmsPerTick);
    assert.ok(alarmed > 0, 'a budget of one alarm in 2000 ticks over runs of thousands of ticks lets some runs alarm');
  });
}

test('a calibration advanced in steps of any size chooses exactly what calibrateThreshold chooses in one go', () => {
  const segment = ar1(2000, 0.8, 21).map((x) => 1 + Math.abs(x));
  for (const spec of [{ kind: 'page-hinkley' }, { kind: 'adwin' }, { kind: 'kswin', seed: 2 }] as const) {
    const options = { runs: 5, runTicks: spec.kind === 'kswin' ? 700 : 3000, seed: 4 };
    const whole = calibrateThreshold(spec, segment, 1 / 1500, options);
    // Steps that end inside runs, exactly at their ends, and one that spans several runs.
    for (const step of [1, 7, options.runTicks, 2 * options.runTicks + 3]) {
      const stepped = new ThresholdCalibration(spec, segment, 1 / 1500, options);
      assert.throws(() => stepped.result(), /still to run; advance\(\) until it returns true/);
      const simulated = options.runs * options.runTicks;
      // First the autocorrelation time (not in `remaining`), then the runs, `step` simulated updates a call.
      let callsBeforeRuns = 0;
      for (;;) {
        const left = stepped.remaining;
        assert.equal(left <= simulated, true);
        const done = stepped.advance(step);
        if (left === simulated) callsBeforeRuns++;
        else assert.equal(stepped.remaining, Math.max(0, left - step), `${spec.kind}, step ${step}: each call in the runs simulates the step`);
        assert.equal(done, stepped.remaining === 0, `${spec.kind}, step ${step}: done once every update has run`);
        if (done) break;
      }
      assert.ok(callsBeforeRuns >= 1, 'the autocorrelation time comes first');
      if (step === 1) assert.ok(callsBeforeRuns > 2, `steps of one unit cut the autocorrelation time too (${callsBeforeRuns} calls)`);
      assert.deepEqual(stepped.result(), whole, `${spec.kind}, step ${step}`);
      // Done is done: more steps change nothing.
      assert.equal(stepped.advance(100), true);
      assert.deepEqual(stepped.result(), whole);
    }
  }
  const c = new ThresholdCalibration({ kind: 'page-hinkley' }, segment, 1 / 1500, { runs: 1, runTicks: 10 });
  for (const bad of [-1, 2.5, Number.NaN]) assert.throws(() => c.advance(bad), /whole number of updates or Infinity/);
  assert.equal(c.advance(0), false);
  assert.equal(c.remaining, 10);
});

/** What the choice was before it was a bisection over float64s: every finite record high sorted, walked from the top. */
function lowestCandidateWithinBudget(calibration: ThresholdCalibration, runTicks: number, alarmsPerTick: number): number {
  const { recordScores, recordTicks } = calibration as unknown as { recordScores: number[][]; recordTicks: number[][] };
  const candidates = [...new Set(recordScores.flat().filter(Number.isFinite))].sort((a, b) => b - a);
  const within = (threshold: number): boolean => {
    let alarmed = 0;
    let atRisk = 0;
    recordScores.forEach((scores, run) => {
      const first = scores.findIndex((x) => x > threshold);
      if (first >= 0) {
        alarmed++;
        atRisk += recordTicks[run][first];
      } else atRisk += runTicks;
    });
    return alarmed === 0 || (alarmed + Math.sqrt(alarmed)) / atRisk <= alarmsPerTick;
  };
  let chosen = candidates[0];
  for (const candidate of candidates) {
    if (!within(candidate)) break;
    chosen = candidate;
  }
  return chosen;
}

test('the threshold chosen by bisection over float64s is the lowest record high within the budget, as a walk over the sorted records finds', () => {
  const segments = {
    'AR(0.3)': ar1(1500, 0.3, 5).map((x) => 1 + Math.abs(x)),
    'AR(0.98)': ar1(1500, 0.98, 6).map((x) => 1 + Math.abs(x)),
    'a slow ramp': Float64Array.from({ length: 1500 }, (_, i) => i / 1500 + 0.01 * Math.sin(i)),
    'signed values': ar1(1500, 0.5, 7),
  };
  let compared = 0;
  for (const [name, segment] of Object.entries(segments)) {
    for (const spec of [{ kind: 'page-hinkley' }, { kind: 'page-hinkley', mode: 'both' }, { kind: 'adwin' }, { kind: 'kswin', seed: 2 }] as UncalibratedSpec[]) {
      for (const alarmsPerTick of [1 / 300, 1 / 3000]) {
        const runTicks = spec.kind === 'kswin' ? 600 : 2 * Math.ceil(1 / alarmsPerTick);
        const calibration = new ThresholdCalibration(spec, segment, alarmsPerTick, { runs: 6, runTicks, seed: 9 });
        calibration.advance(Infinity);
        const chosen = calibration.result();
        const expected = lowestCandidateWithinBudget(calibration, runTicks, alarmsPerTick);
        // The setting from the record, as calibration.ts maps it: Page-Hinkley's threshold is the score; ADWIN's
        // delta and KSWIN's alpha are exp(-score), a hair below so that a run scoring exactly the record does not fire.
        const setting = spec.kind === 'page-hinkley' ? expected : Math.exp(-expected) * (1 - 1e-9);
        assert.equal(chosen.setting.value, setting, `${name}, ${spec.kind}${'mode' in spec ? ` ${String(spec.mode)}` : ''}, 1/${Math.round(1 / alarmsPerTick)}`);
        compared++;
      }
    }
  }
  assert.equal(compared, 32);
});

test('on a long null stream a calibrated Page-Hinkley alarms within its budget, and not absurdly below it', () => {
  // 20 hours of an autocorrelated, skewed error-like signal at 50 ms a tick; a budget of 6 alarms an hour.
  const rng = new Random(21);
  const detector = new CalibratedDetector({ detector: { kind: 'page-hinkley' }, falseAlarmsPerHour: 6, tickSeconds: 0.05 });
  let a = 0;
  let alarms = 0;
  const ticks = 20 * 72_000;
  for (let i = 0; i < ticks; i++) {
    a = 0.9 * a + Math.sqrt(1 - 0.81) * rng.normal();
    if (detector.update(a * a).driftDetected) alarms++;
  }
  const hours = (ticks - detector.settleTicks - detector.calibrationTicks) / 72_000;
  const perHour = alarms / hours;
  assert.ok(perHour <= 6 * 1.25 && perHour >= 6 * 0.3, `${perHour.toFixed(2)} false alarms an hour against a budget of 6`);
});

test('a calibrated detector never alarms while it settles and calibrates, then catches a shift fast, and keeps its calibration across reset', () => {
  const detector = createDetector({
    kind: 'calibrated', detector: { kind: 'page-hinkley' }, falseAlarmsPerHour: 1, tickSeconds: 0.05, settleSeconds: 10, calibrationSeconds: 60,
  }) as CalibratedDetector;
  assert.equal(detector.settleTicks, 200);
  assert.equal(detector.calibrationTicks, 1200);
  const rng = new Random(5);
  // A huge jump inside the settling and a step inside the calibration segment: neither may alarm.
  for (let i = 0; i < 1400; i++) {
    const level = i >= 100 && i < 150 ? 50 : i >= 1300 ? 1.5 : 1;
    assert.equal(detector.update(level + 0.2 * rng.normal()).driftDetected, false, `alarm during the warm-up at ${i}`);
    assert.equal(detector.warmingUp, i < 1399);
  }
  const calibration = detector.calibration!;
  assert.ok(calibration !== null && calibration.setting.name === 'threshold' && calibration.setting.value > 0);
  let detectedAt = -1;
  for (let i = 0; i < 2000 && detectedAt < 0; i++) {
    if (detector.update((i >= 500 ? 8 : 1.25) + 0.2 * rng.normal()).driftDetected) detectedAt = i;
  }
  assert.ok(detectedAt >= 500 && detectedAt < 560, `the level shift at 500 detected at ${detectedAt}`);
  detector.reset();
  assert.equal(detector.calibration, calibration);
  assert.equal(detector.warmingUp, false);
});

test('each calibration is counted with its time, and /metrics shows the totals of this thread', async () => {
  const registry = new Registry();
  // Registers its metrics (the calibration counters among them) in `registry`.
  new DriftlineMetrics(registry);
  const before = calibrationsSoFar();
  const detectors = [1, 2].map(() => new CalibratedDetector({ detector: { kind: 'page-hinkley' }, falseAlarmsPerHour: 1, tickSeconds: 0.05, settleSeconds: 0, calibrationSeconds: 10 }));
  const rng = new Random(8);
  // Before the segment is complete nothing is counted; the update that completes it calibrates and counts once.
  for (let i = 0; i < 199; i++) for (const d of detectors) d.update(1 + rng.normal());
  assert.deepEqual(calibrationsSoFar(), before);
  const startedAt = performance.now();
  for (const d of detectors) d.update(1 + rng.normal());
  const elapsed = (performance.now() - startedAt) / 1000;
  for (let i = 0; i < 100; i++) for (const d of detectors) d.update(1 + rng.normal());
  const after = calibrationsSoFar();
  assert.equal(after.count - before.count, 2);
  const seconds = after.seconds - before.seconds;
  assert.ok(seconds > 0 && seconds <= elapsed, `calibration time ${seconds} s, within the ${elapsed} s the two updates took`);
  const text = await registry.metrics();
  assert.match(text, new RegExp(`^driftline_detector_calibrations_total ${after.count}$`, 'm'));
  const shown = Number(/^driftline_detector_calibration_seconds_total (\S+)$/m.exec(text)?.[1]);
  assert.ok(Math.abs(shown - after.seconds) < 1e-9, `seconds on /metrics ${shown} vs ${after.seconds}`);
});

test('calibrationStep spreads the calibration over the updates after its segment: the same choice, armed a fixed number of updates later', () => {
  const base = { detector: { kind: 'page-hinkley' }, falseAlarmsPerHour: 1, tickSeconds: 0.05, settleSeconds: 1, calibrationSeconds: 10, runs: 4 } as const;
  // Updates up to the one that completes the segment (settle 20, segment 200). The steps that follow are the calls
  // of advance(step) a ThresholdCalibration of the same segment needs (the autocorrelation time, then runs x
  // ceil(2 budget periods) simulated updates), the first on that update.
  const segmentEnd = 20 + 200;
  const simulated = 4 * Math.ceil(2 / ((1 * 0.05) / 3600));
  const step = 50_000;
  const segment: number[] = [];
  {
    const rng = new Random(12);
    for (let i = 0; i < segmentEnd; i++) segment.push(1 + 0.3 * Math.abs(rng.normal()));
  }
  const replay = new ThresholdCalibration(base.detector, segment.slice(20), (1 * 0.05) / 3600, { runs: 4, seed: 1 });
  let stepUpdates = 0;
  while (!replay.advance(step)) stepUpdates++;
  stepUpdates++;
  assert.ok(stepUpdates >= Math.ceil(simulated / step) && stepUpdates <= Math.ceil(simulated / step) + 2, `${stepUpdates} steps for ${simulated} simulated updates`);
  const rng = new Random(12);
  const oneGo = new CalibratedDetector(base);
  const stepped = new CalibratedDetector({ ...base, calibrationStep: step });
  const before = calibrationsSoFar();
  for (let i = 0; i < segmentEnd; i++) {
    const x = 1 + 0.3 * Math.abs(rng.normal());
    oneGo.update(x);
    stepped.update(x);
  }
  assert.equal(oneGo.warmingUp, false);
  assert.ok(stepUpdates > 2 && stepped.warmingUp);
  // The updates that run the remaining steps: their values are not watched, however alarming.
  for (let i = 1; i < stepUpdates; i++) {
    assert.equal(stepped.update(1000).driftDetected, false, `update ${i} after the segment`);
    assert.equal(stepped.warmingUp, i < stepUpdates - 1, `armed with the last of its ${stepUpdates} steps, not at ${i}`);
  }
  assert.deepEqual(stepped.calibration, oneGo.calibration);
  assert.equal(calibrationsSoFar().count - before.count, 2, 'each calibration counted once, stepped or not');
  // Armed, it watches as the detector calibrated in one go does.
  let detectedAt = -1;
  for (let i = 0; i < 200 && detectedAt < 0; i++) if (stepped.update(i >= 50 ? 8 : 1.2).driftDetected) detectedAt = i;
  assert.ok(detectedAt >= 50 && detectedAt < 80, `the shift at 50 detected at ${detectedAt}`);
  for (const bad of [0, 2.5, -1, Number.NaN]) {
    assert.throws(() => new CalibratedDetector({ ...base, calibrationStep: bad }), /calibrationStep must be a positive integer or Infinity/);
  }
});

test('a calibrated detector refuses what it cannot calibrate, naming the option', () => {
  const base = { detector: { kind: 'page-hinkley' } as UncalibratedSpec, falseAlarmsPerHour: 1, tickSeconds: 0.05 };
  assert.throws(() => new CalibratedDetector({ ...base, detector: { kind: 'page-hinkley', threshold: 3 } as never }), /must not set 'threshold'/);
  assert.throws(() => new CalibratedDetector({ ...base, detector: { kind: 'ddm' } as never }), /detector\.kind must be one of page-hinkley, adwin, kswin/);
  assert.throws(() => new CalibratedDetector({ ...base, falseAlarmsPerHour: 0 }), /falseAlarmsPerHour must be a positive number/);
  assert.throws(() => new CalibratedDetector({ ...base, falseAlarmsPerHour: 1e4, tickSeconds: 1 }), /well under one alarm in 100 ticks/);
  assert.throws(() => new CalibratedDetector({ ...base, tickSeconds: 0.001, falseAlarmsPerHour: 0.01 }), /raise the budget or lower runs/);
  assert.throws(() => new CalibratedDetector({ ...base, calibrationSeconds: 1 }), /at least 100 ticks/);
  assert.throws(() => new CalibratedDetector({ ...base, detector: { kind: 'page-hinkley', mode: 'sideways' } as never }), /detector: .*invalid mode/);
  const detector = new CalibratedDetector(base);
  assert.throws(() => detector.update(NaN), /finite number/);
});
