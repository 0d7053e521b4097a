// Golden tests for the KSWIN detector and its two building blocks (the CPython random twin and scipy's
// ks_2samp for equal sizes). Every expected value comes from test/fixtures/river/kswin.json, written by
// scripts/river/golden-kswin.py with river==0.26.1, scipy and Python 3.11 on the identical numbers; these tests
// only read that file, so they run without Python.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { DriftDetector } from '../src/drift/detector.js';
import { ksDistanceCount, ksEqualSizePValue, ksTwoSample } from '../src/drift/ks-two-sample.js';
import { Kswin, type KswinOptions } from '../src/drift/kswin.js';
import { PythonRandom, sampleSetSize } from '../src/drift/python-random.js';
import { parseConfig } from '../src/cli/config.js';
import { createDetector } from '../src/drift/detector.js';

interface Fixture {
  generatedWith: Record<string, string>;
  streams: Record<string, { description: string; values: number[] }>;
  cases: Array<{
    stream: string;
    setting: string;
    options: KswinOptions;
    warmStart?: { stream: string; start: number; end: number };
    detections: number[];
  }>;
  pValueTrace: Array<{ stream: string; options: KswinOptions; pValues: number[]; from?: number }>;
  pythonRandom: {
    sample70of30seed42: { seed: number; n: number; k: number; draws: number[][] };
    samples: Array<{ seed: number; n: number; k: number; path: string; draws: number[][] }>;
    getrandbits32: Array<{ seed: number; values: number[] }>;
    getrandbitsWidths: { seed: number; widths: number[]; values: number[] };
    randbelow: { seed: number; bounds: number[]; values: number[] };
    word2000seed42: number;
  };
  ks2samp: {
    pairs: Array<{ name: string; x: number[]; y: number[]; statistic: number; pValue: number }>;
    tables: Array<{ n: number; statistic: number[]; pValue: number[] }>;
  };
}

const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/river/kswin.json', import.meta.url), 'utf8'),
) as Fixture;
const stream = (name: string): number[] => fixture.streams[name].values;

function detections(values: readonly number[], options: KswinOptions): number[] {
  const kswin = new Kswin(options);
  const found: number[] = [];
  for (let i = 0; i < values.length; i++) if (kswin.update(values[i]).driftDetected) found.push(i);
  return found;
}

// ---------------------------------------------------------------------------------------------- PythonRandom

test('PythonRandom: seeding and getrandbits(32) match random.Random(seed) for small, negative and multi-word seeds', () => {
  for (const { seed, values } of fixture.pythonRandom.getrandbits32) {
    const rng = new PythonRandom(seed);
    assert.deepEqual(values.map(() => rng.getrandbits(32)), values, `seed ${seed}`);
    const viaBigint = new PythonRandom(BigInt(seed));
    assert.deepEqual(values.map(() => viaBigint.getrandbits(32)), values, `seed ${seed}n`);
  }
});

test('PythonRandom: getrandbits of widths 0..53, _randbelow, and a word past several twists', () => {
  const { seed, widths, values } = fixture.pythonRandom.getrandbitsWidths;
  const rng = new PythonRandom(seed);
  assert.deepEqual(widths.map((k) => rng.getrandbits(k)), values);

  const rb = fixture.pythonRandom.randbelow;
  const below = new PythonRandom(rb.seed);
  assert.deepEqual(rb.bounds.map((n) => below.randbelow(n)), rb.values);

  const far = new PythonRandom(42);
  for (let i = 0; i < 1999; i++) far.getrandbits(32);
  assert.equal(far.getrandbits(32), fixture.pythonRandom.word2000seed42);
});

test('PythonRandom: 50 successive sample(range(70), 30) from Random(42), the draws of KSWIN(seed=42)', () => {
  const { seed, n, k, draws } = fixture.pythonRandom.sample70of30seed42;
  assert.equal(sampleSetSize(k), 277); // n = 70 <= 277: the pool path
  const rng = new PythonRandom(seed);
  const out = new Int32Array(k);
  for (const expected of draws) assert.deepEqual(Array.from(rng.sampleRange(n, k, out)), expected);
});

test('PythonRandom: sample on both paths (pool and set), k <= 5, a full permutation, and k = 0', () => {
  const paths = new Set<string>();
  for (const { seed, n, k, path, draws } of fixture.pythonRandom.samples) {
    paths.add(n <= sampleSetSize(k) ? 'pool' : 'set');
    assert.equal(path.startsWith(n <= sampleSetSize(k) ? 'pool' : 'set'), true, `path of n=${n}, k=${k}`);
    const rng = new PythonRandom(seed);
    for (const expected of draws) assert.deepEqual(rng.sampleRange(n, k, new Array<number>(k)), expected, `n=${n}, k=${k}`);
  }
  assert.deepEqual([...paths].sort(), ['pool', 'set']);
});

test('PythonRandom: random() reproduces the choices() stream of River\'s KSWIN docstring', () => {
  const rng = new PythonRandom(12345);
  const drawn: number[] = [];
  for (let i = 0; i < 1000; i++) drawn.push(Math.floor(rng.random() * 2));
  for (let i = 0; i < 1000; i++) drawn.push(4 + Math.floor(rng.random() * 4));
  assert.deepEqual(drawn, stream('riverDocExample'));
});

test('PythonRandom: refuses what Python refuses', () => {
  const rng = new PythonRandom(1);
  assert.throws(() => rng.sampleRange(5, 6, new Array<number>(6)), RangeError);
  assert.throws(() => rng.sampleRange(5, -1, []), RangeError);
  assert.throws(() => rng.randbelow(0), RangeError);
  assert.throws(() => rng.getrandbits(54), RangeError);
  assert.throws(() => new PythonRandom(0.5), RangeError);
});

// ------------------------------------------------------------------------------------------------- ks_2samp

test('ksTwoSample: statistic and p-value equal scipy ks_2samp on fixed samples (ties, identical, n=5/30/50)', () => {
  for (const { name, x, y, statistic, pValue } of fixture.ks2samp.pairs) {
    assert.deepEqual(ksTwoSample(x, y), { statistic, pValue }, name);
  }
});

test('ksEqualSizePValue: the whole scipy table D = h/n for n = 30 and 50', () => {
  for (const table of fixture.ks2samp.tables.filter((t) => t.n !== 7)) {
    const { n } = table;
    for (let h = 0; h <= n; h++) {
      assert.equal(h / n, table.statistic[h], `statistic n=${n} h=${h}`);
      assert.equal(ksEqualSizePValue(n, h), table.pValue[h], `p-value n=${n} h=${h}`);
    }
  }
});

test('ksEqualSizePValue: n = 7 matches except h = 1, where scipy falls back to its asymptotic p-value', () => {
  const table = fixture.ks2samp.tables.find((t) => t.n === 7)!;
  for (let h = 0; h <= 7; h++) {
    if (h === 1) continue;
    assert.equal(ksEqualSizePValue(7, h), table.pValue[h], `h=${h}`);
  }
  // The documented difference: the exact nest overshoots 1 there; scipy then reports kstwo.sf, this port 1.
  assert.equal(ksEqualSizePValue(7, 1), 1);
  assert.ok(table.pValue[1] >= 0.99996 && table.pValue[1] < 1, String(table.pValue[1]));
});

test('ksDistanceCount counts ties across the samples together', () => {
  assert.equal(ksDistanceCount([1, 1, 2], [1, 2, 2]), 1);
  assert.equal(ksDistanceCount([0, 0, 0], [1, 1, 1]), 3);
  assert.equal(ksDistanceCount([5, 6, 7], [5, 6, 7]), 0);
  assert.throws(() => ksTwoSample([1, 2], [1]), RangeError);
});

// ---------------------------------------------------------------------------------------------------- KSWIN

test("documented example: River's docstring stream, alpha 0.0001, seed 42, drifts at 1016", () => {
  assert.deepEqual(detections(stream('riverDocExample'), { alpha: 0.0001, seed: 42 }), [1016]);
});

test('golden: River KSWIN detection indices on every stream and setting', () => {
  const plain = fixture.cases.filter((c) => c.warmStart === undefined);
  assert.equal(plain.length, 18);
  for (const c of plain) {
    assert.deepEqual(detections(stream(c.stream), c.options), c.detections, `${c.stream} / ${c.setting}`);
  }
});

test('golden: warm start with River\'s window argument (longer than the window: its tail is kept)', () => {
  const warm = fixture.cases.filter((c) => c.warmStart !== undefined);
  assert.equal(warm.length, 2);
  for (const c of warm) {
    const { stream: from, start, end } = c.warmStart!;
    const window = stream(from).slice(start, end);
    assert.deepEqual(detections(stream(c.stream), { ...c.options, window }), c.detections, `${c.stream} / ${c.setting}`);
  }
});

test("golden: River's p_value after every update, on a real-valued stream and on the tied integer stream", () => {
  for (const trace of fixture.pValueTrace) {
    const kswin = new Kswin(trace.options);
    const values = stream(trace.stream);
    const from = trace.from ?? 0;
    const got: number[] = [];
    for (let i = 0; i < from + trace.pValues.length; i++) {
      kswin.update(values[i]);
      if (i >= from) got.push(kswin.pValue);
    }
    assert.deepEqual(got, trace.pValues, trace.stream);
  }
});

test('the update after a detection resets window and sampler: what follows is a fresh detector\'s run', () => {
  const values = stream('meanShift');
  const options = { seed: 42 };
  const all = detections(values, options);
  assert.deepEqual(all, [1024, 1526]);

  const kswin = new Kswin(options);
  for (let i = 0; i <= all[0]; i++) kswin.update(values[i]);
  assert.equal(kswin.driftDetected, true);
  assert.equal(kswin.update(values[all[0] + 1]).driftDetected, false);
  assert.equal(kswin.count, 1);
  assert.equal(kswin.windowLength, 1);
  assert.equal(kswin.pValue, 0);

  const rest = values.slice(all[0] + 1);
  assert.deepEqual(detections(rest, options).map((i) => i + all[0] + 1), all.slice(1));
});

test('reset() forgets the window (warm start included) and re-seeds: the run repeats a fresh one', () => {
  const values = stream('slowDrift');
  const fresh = detections(values, {});
  const kswin: DriftDetector & Kswin = new Kswin({ window: stream('stationary').slice(0, 100) });
  assert.equal(kswin.windowLength, 100);
  for (let i = 0; i < 777; i++) kswin.update(values[i]);
  kswin.reset();
  assert.equal(kswin.windowLength, 0);
  assert.equal(kswin.count, 0);
  assert.equal(kswin.driftDetected, false);
  const found: number[] = [];
  for (let i = 0; i < values.length; i++) if (kswin.update(values[i]).driftDetected) found.push(i);
  assert.deepEqual(found, fresh);
});

test('bad options are refused with a RangeError naming the option', () => {
  const bad: Array<[KswinOptions, RegExp]> = [
    [{ alpha: -0.01 }, /alpha/],
    [{ alpha: 1.5 }, /alpha/],
    [{ alpha: NaN }, /alpha/],
    [{ windowSize: 0 }, /windowSize/],
    [{ windowSize: 99.5 }, /windowSize/],
    [{ windowSize: -100 }, /windowSize/],
    [{ statSize: 0 }, /statSize/],
    [{ statSize: 2.5 }, /statSize/],
    [{ windowSize: 100, statSize: 51 }, /statSize/],
    [{ windowSize: 20, statSize: 30 }, /statSize/],
    [{ seed: 1.5 }, /seed/],
    [{ seed: 2 ** 53 }, /seed/],
    [{ window: [0, 1, NaN] }, /window/],
    [{ window: 3 as unknown as number[] }, /window/],
  ];
  for (const [options, message] of bad) {
    assert.throws(() => new Kswin(options), (e: unknown) => e instanceof RangeError && message.test(e.message), JSON.stringify(options));
  }
  // The limits themselves are accepted.
  new Kswin({ alpha: 0, windowSize: 2, statSize: 1 });
  new Kswin({ alpha: 1, windowSize: 100, statSize: 50, seed: -3 });
});

test('a non-finite value is refused and leaves the state untouched', () => {
  const values = stream('stationary');
  const kswin = new Kswin({ seed: 5 });
  const twin = new Kswin({ seed: 5 });
  for (let i = 0; i < 150; i++) {
    kswin.update(values[i]);
    twin.update(values[i]);
  }
  for (const x of [NaN, Infinity, -Infinity, '1' as unknown as number]) assert.throws(() => kswin.update(x), RangeError);
  for (let i = 150; i < 400; i++) {
    kswin.update(values[i]);
    twin.update(values[i]);
    assert.equal(kswin.pValue, twin.pValue);
    assert.equal(kswin.driftDetected, twin.driftDetected);
  }
});

describe('registration: createDetector and the run config', () => {
  const minimal = {
    streams: { inputSize: 4, outputSize: 1 },
    learner: { cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate' }, optimizer: { name: 'sgd', lr: 0.01 } },
  };

  test('the config accepts kswin on the pipeline signals, and createDetector builds it with those options', () => {
    const config = parseConfig({ ...minimal, drift: { detectors: [{ kind: 'kswin', alpha: 0.001, windowSize: 200, statSize: 50, seed: 7 }], inputDetectors: [{ kind: 'kswin' }] } });
    const detector = createDetector(config.drift.detectors[0]);
    assert.ok(detector instanceof Kswin);
    // The same stream through a directly built detector with the same options: the same detections.
    const direct = new Kswin({ alpha: 0.001, windowSize: 200, statSize: 50, seed: 7 });
    for (let i = 0; i < 3000; i++) {
      const x = i < 1500 ? Math.sin(i) : 3 + Math.sin(i);
      assert.equal(detector.update(x).driftDetected, direct.update(x).driftDetected, `update ${i}`);
    }
  });

  test('the config refuses a statSize above half the window, naming the field', () => {
    assert.throws(() => parseConfig({ ...minimal, drift: { detectors: [{ kind: 'kswin', statSize: 60 }] } }), /drift\.detectors\.0\.statSize: statSize must be at most half of windowSize/);
    assert.throws(() => parseConfig({ ...minimal, drift: { detectors: [{ kind: 'kswin', window_size: 60 }] } }), /unknown field\(s\) 'window_size'/);
  });
});

// ------------------------------------------------------------------------------ calibration: lowestFiringPValue

describe('Kswin.lowestFiringPValue (calibration hook)', () => {
  /** Seeded streams from the twin of Python's generator (uniforms, so no Random import is needed). */
  function streams(): Record<string, number[]> {
    const gen = (seed: number, n: number, f: (i: number, u: number) => number): number[] => {
      const rng = new PythonRandom(seed);
      return Array.from({ length: n }, (_, i) => f(i, rng.random()));
    };
    return {
      'uniform, no change, seed 101': gen(101, 4000, (_, u) => u),
      'uniform, no change, seed 102': gen(102, 4000, (_, u) => u),
      'uniform, no change, seed 103': gen(103, 4000, (_, u) => u),
      'uniform, small shift +0.15 at 2000': gen(104, 4000, (i, u) => u + (i < 2000 ? 0 : 0.15)),
      'uniform, spread x2 at 1500': gen(105, 3000, (i, u) => (i < 1500 ? u : 2 * u - 0.5)),
      'fixture: slowDrift': stream('slowDrift'),
      'fixture: riverDocExample': stream('riverDocExample'),
    };
  }

  function firstAlarm(kswin: Kswin, values: readonly number[]): number {
    for (let i = 0; i < values.length; i++) if (kswin.update(values[i]).driftDetected) return i;
    return -1;
  }

  function hookTrace(values: readonly number[], options: KswinOptions): number[] {
    const recorder = new Kswin({ ...options, alpha: 0 });
    return values.map((x) => {
      recorder.update(x);
      assert.equal(recorder.driftDetected, false, 'alpha = 0 never fires with statSize <= 540');
      return recorder.lowestFiringPValue;
    });
  }

  const optionSets: KswinOptions[] = [{ seed: 1 }, { seed: 42, windowSize: 60, statSize: 20 }, { seed: 7, window: stream('stationary').slice(0, 100) }];

  test('the first update where the hook of an alpha = 0 recorder reaches alpha is the first alarm of that alpha', () => {
    let fired = 0;
    let quiet = 0;
    for (const options of optionSets) {
      for (const [name, values] of Object.entries(streams())) {
        const hooks = hookTrace(values, options);
        for (let i = 1; i < hooks.length; i++) assert.ok(hooks[i] <= hooks[i - 1], `${name}: hook increased at ${i}`);
        for (const alpha of [1, 0.05, 0.005, 1e-4, 1e-7]) {
          const predicted = hooks.findIndex((p) => p <= alpha);
          const actual = firstAlarm(new Kswin({ ...options, alpha }), values);
          assert.equal(predicted, actual, `${name}, seed ${options.seed}, alpha ${alpha}`);
          if (actual >= 0) fired++;
          else quiet++;
        }
      }
    }
    assert.ok(fired >= 20 && quiet >= 10, `fired ${fired}, quiet ${quiet}`);
  });

  test('the boundary is exact and non-strict: alpha = hook fires at that update, the next double below does not', () => {
    const nextDown = (x: number): number => {
      const view = new DataView(new ArrayBuffer(8));
      view.setFloat64(0, x);
      view.setBigUint64(0, view.getBigUint64(0) - 1n);
      return view.getFloat64(0);
    };
    let checked = 0;
    for (const options of optionSets.slice(0, 2)) {
      for (const [name, values] of Object.entries(streams())) {
        const hooks = hookTrace(values, options);
        const drops: number[] = [];
        for (let i = 0; i < hooks.length; i++) if (hooks[i] < Infinity && (i === 0 || hooks[i] < hooks[i - 1])) drops.push(i);
        const picks = drops.length <= 3 ? drops : [0, 1, 2].map((k) => drops[Math.floor((k * (drops.length - 1)) / 2)]);
        for (const i of picks) {
          assert.equal(firstAlarm(new Kswin({ ...options, alpha: hooks[i] }), values), i, `${name}: alpha = hook at ${i}`);
          const below = firstAlarm(new Kswin({ ...options, alpha: nextDown(hooks[i]) }), values);
          assert.ok(below === -1 || below > i, `${name}: alpha just below the hook fired at ${below}, hook set at ${i}`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 20, `checked ${checked}`);
  });

  test('only tests with D > 0.1 count: the hook is the running minimum of the p-values of tests with h >= 4 of 30', () => {
    // statSize 30: D = h/30 > 0.1 needs h >= 4 (3/30 > 0.1 is false in floating point, as in River), and the
    // p-value decreases strictly in h, so a test counts iff its p-value is at most that of h = 4.
    assert.equal(3 / 30 > 0.1, false);
    const cutoff = ksEqualSizePValue(30, 4);
    assert.ok(ksEqualSizePValue(30, 3) > cutoff);
    for (const [name, values] of Object.entries(streams())) {
      const recorder = new Kswin({ alpha: 0, seed: 3 });
      let expected = Infinity;
      let excluded = 0;
      for (let i = 0; i < values.length; i++) {
        recorder.update(values[i]);
        if (recorder.windowLength === recorder.windowSize) {
          if (recorder.pValue <= cutoff) expected = Math.min(expected, recorder.pValue);
          else if (recorder.pValue < 1) excluded++;
        }
        assert.equal(recorder.lowestFiringPValue, expected, `${name} at ${i}`);
      }
      assert.ok(excluded > 0, `${name}: some tests with 0 < D <= 0.1 were left out`);
    }
  });

  test('+Infinity before any test, reset by reset() and by the automatic reset after a detection', () => {
    const values = stream('riverDocExample');
    const kswin = new Kswin({ alpha: 0.0001, seed: 42 });
    assert.equal(kswin.lowestFiringPValue, Infinity);
    for (let i = 0; i < 1016; i++) kswin.update(values[i]);
    const before = kswin.lowestFiringPValue;
    assert.ok(before > 0.0001 && before < Infinity);
    kswin.update(values[1016]);
    assert.equal(kswin.driftDetected, true);
    assert.ok(kswin.lowestFiringPValue <= 0.0001);
    kswin.update(values[1017]);
    assert.equal(kswin.driftDetected, false);
    assert.equal(kswin.lowestFiringPValue, Infinity, 'the update after a detection starts afresh');
    for (let i = 1018; i < 1300; i++) kswin.update(values[i]);
    kswin.reset();
    assert.equal(kswin.lowestFiringPValue, Infinity);
    // A replay after reset() records the same values as the first run.
    for (let i = 0; i < 1016; i++) kswin.update(values[i]);
    assert.equal(kswin.lowestFiringPValue, before);
  });
});
