// Golden tests for the binary drift detectors DDM, EDDM, HDDM_A and HDDM_W: exact detection and warning indices
// on seeded 0/1 streams, as River tests its detectors. The streams and River 0.26.1's indices are read from
// test/fixtures/river/binary-detectors.json, written by scripts/river/golden-binary-detectors.py (see its header
// for how to rerun it); nothing here needs Python.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parseConfig } from '../src/cli/config.js';
import { Ddm } from '../src/drift/ddm.js';
import { createDetector, type DetectorSpec, type DriftDetector } from '../src/drift/detector.js';
import { Eddm } from '../src/drift/eddm.js';
import { HddmA } from '../src/drift/hddm-a.js';
import { HddmW } from '../src/drift/hddm-w.js';
import { Random } from '../src/learners/random.js';

type Kind = 'ddm' | 'eddm' | 'hddm-a' | 'hddm-w';

interface Case {
  detector: Kind;
  setting: string;
  riverParams: Record<string, number | boolean>;
  options: Record<string, number | boolean>;
  stream: string;
  drifts: number[];
  /** Inclusive [first, last] runs of indices after which River's warning_detected was True. */
  warningRuns: Array<[number, number]>;
}

interface Fixture {
  river: string;
  streams: Record<string, { description: string; values: number[] }>;
  cases: Case[];
}

const FIXTURE = JSON.parse(
  readFileSync(new URL('./fixtures/river/binary-detectors.json', import.meta.url), 'utf8'),
) as Fixture;

interface BinaryDetector extends DriftDetector {
  readonly warningDetected: boolean;
}

const make = (kind: Kind, options: Record<string, unknown> = {}): BinaryDetector => {
  switch (kind) {
    case 'ddm':
      return new Ddm(options);
    case 'eddm':
      return new Eddm(options);
    case 'hddm-a':
      return new HddmA(options);
    case 'hddm-w':
      return new HddmW(options);
  }
};

const KINDS: readonly Kind[] = ['ddm', 'eddm', 'hddm-a', 'hddm-w'];

function runs(indices: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const i of indices) {
    const last = out[out.length - 1];
    if (last && last[1] === i - 1) last[1] = i;
    else out.push([i, i]);
  }
  return out;
}

function observe(detector: BinaryDetector, stream: readonly number[]): { drifts: number[]; warningRuns: Array<[number, number]> } {
  const drifts: number[] = [];
  const warnings: number[] = [];
  for (let i = 0; i < stream.length; i++) {
    detector.update(stream[i]);
    if (detector.driftDetected) drifts.push(i);
    if (detector.warningDetected) warnings.push(i);
  }
  return { drifts, warningRuns: runs(warnings) };
}

const stream = (name: string): number[] => {
  const s = FIXTURE.streams[name];
  assert.ok(s, `stream ${name} is in the fixture`);
  return s.values;
};

const golden = (detector: Kind, setting: string, streamName: string): Case => {
  const found = FIXTURE.cases.find((c) => c.detector === detector && c.setting === setting && c.stream === streamName);
  assert.ok(found, `${detector}/${setting}/${streamName} is in the fixture`);
  return found;
};

const camel = (snake: string): string => snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

test('the fixture comes from river 0.26.1 and names the TS options as River names its parameters', () => {
  assert.equal(FIXTURE.river, '0.26.1');
  assert.ok(FIXTURE.cases.length >= 4 * 2 * 4);
  for (const c of FIXTURE.cases) {
    const translated = Object.fromEntries(Object.entries(c.riverParams).map(([k, v]) => [camel(k), v]));
    assert.deepEqual(c.options, translated, `${c.detector}/${c.setting}`);
  }
});

describe('exact detection and warning indices of River 0.26.1', () => {
  for (const c of FIXTURE.cases) {
    test(`${c.detector} ${c.setting} ${JSON.stringify(c.options)} on ${c.stream}`, () => {
      const got = observe(make(c.detector, c.options), stream(c.stream));
      assert.deepEqual(got.drifts, c.drifts, 'drift indices');
      assert.deepEqual(got.warningRuns, c.warningRuns, 'warning indices');
    });
  }
});

test("River's docstring examples print the same lines (random.Random(42) stream, river/drift/binary/*.py)", () => {
  // River's loop: report the first warning after each drift, and every drift.
  const printed = (detector: BinaryDetector): string[] => {
    const lines: string[] = [];
    let printWarning = true;
    stream('river-docstring').forEach((x, i) => {
      detector.update(x);
      if (detector.warningDetected && printWarning) {
        lines.push(`Warning detected at index ${i}`);
        printWarning = false;
      }
      if (detector.driftDetected) {
        lines.push(`Change detected at index ${i}`);
        printWarning = true;
      }
    });
    return lines;
  };
  // Copied from the Examples sections of River 0.26.1's docstrings.
  assert.deepEqual(printed(new Ddm()), ['Warning detected at index 1084', 'Change detected at index 1334', 'Warning detected at index 1492']);
  assert.deepEqual(printed(new Eddm({ alpha: 0.8, beta: 0.75 })), ['Warning detected at index 1059', 'Change detected at index 1278']);
  assert.deepEqual(printed(new HddmA()), ['Warning detected at index 451', 'Change detected at index 1206']);
  assert.deepEqual(printed(new HddmW()), ['Warning detected at index 451', 'Change detected at index 1077']);
});

describe('the @example of each detector (error rate 0.1 -> 0.5 at 1000, Random(7))', () => {
  const example = (detector: BinaryDetector): number[] => {
    const rng = new Random(7);
    const drifts: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const error = rng.next() < (i < 1000 ? 0.1 : 0.5) ? 1 : 0;
      if (detector.update(error).driftDetected) drifts.push(i);
    }
    return drifts;
  };

  test('the fixture holds the very bits the example draws (the script ports Random)', () => {
    const rng = new Random(7);
    const bits = Array.from({ length: 2000 }, (_, i) => (rng.next() < (i < 1000 ? 0.1 : 0.5) ? 1 : 0));
    assert.deepEqual(bits, stream('doc-example'));
  });

  // The values written in the @example blocks of src/drift/*.ts.
  test('Ddm', () => assert.deepEqual(example(new Ddm()), [42, 264, 976, 1030]));
  test('Eddm (River docstring setting)', () => assert.deepEqual(example(new Eddm({ alpha: 0.8, beta: 0.75 })), [308, 714, 1071]));
  test('HddmA', () => assert.deepEqual(example(new HddmA()), [1043]));
  test('HddmW', () => assert.deepEqual(example(new HddmW()), [1030]));

  test('and they are River 0.26.1 indices', () => {
    assert.deepEqual(golden('ddm', 'default', 'doc-example').drifts, [42, 264, 976, 1030]);
    assert.deepEqual(golden('eddm', 'docstring', 'doc-example').drifts, [308, 714, 1071]);
    assert.deepEqual(golden('hddm-a', 'default', 'doc-example').drifts, [1043]);
    assert.deepEqual(golden('hddm-w', 'default', 'doc-example').drifts, [1030]);
  });
});

describe('reset semantics (River: a detector resets itself on the update after a detection)', () => {
  for (const kind of KINDS) {
    test(`${kind}: after a drift, the rest of the stream is judged as by a fresh detector`, () => {
      const multi = FIXTURE.cases.filter((c) => c.detector === kind && c.drifts.length >= 2);
      assert.ok(multi.length > 0, 'some golden case fires this detector at least twice');
      for (const c of multi) {
        const d = c.drifts[0];
        const fresh = observe(make(kind, c.options), stream(c.stream).slice(d + 1));
        assert.deepEqual(fresh.drifts.map((i) => i + d + 1), c.drifts.slice(1), `${c.setting}/${c.stream}`);
      }
    });

    test(`${kind}: the update after a drift clears driftDetected and warningDetected`, () => {
      const xs = stream('jump-0.1-0.5');
      const detector = make(kind);
      let i = 0;
      while (!detector.update(xs[i]).driftDetected) i++;
      assert.equal(i, golden(kind, 'default', 'jump-0.1-0.5').drifts[0]);
      detector.update(0);
      assert.equal(detector.driftDetected, false);
      assert.equal(detector.warningDetected, false);
    });

    test(`${kind}: update returns the detector; reset() mid-stream starts afresh`, () => {
      const xs = stream('step-0.2-0.3');
      const detector = make(kind);
      assert.equal(detector.update(1), detector);
      for (const x of xs.slice(0, 1700)) detector.update(x);
      detector.reset();
      assert.equal(detector.driftDetected, false);
      assert.equal(detector.warningDetected, false);
      const again = observe(detector, xs);
      const c = golden(kind, 'default', 'step-0.2-0.3');
      assert.deepEqual(again, { drifts: c.drifts, warningRuns: c.warningRuns });
    });

    test(`${kind}: non-finite input is refused with a RangeError and changes nothing`, () => {
      const xs = stream('jump-0.1-0.5');
      const c = golden(kind, 'default', 'jump-0.1-0.5');
      const detector = make(kind);
      const drifts: number[] = [];
      for (let i = 0; i < xs.length; i++) {
        if (i === 500 || i === c.drifts[0] + 1) {
          for (const bad of [NaN, Infinity, -Infinity, '1', undefined]) {
            assert.throws(() => detector.update(bad as unknown as number), RangeError);
          }
        }
        if (detector.update(xs[i]).driftDetected) drifts.push(i);
      }
      assert.deepEqual(drifts, c.drifts);
    });
  }

  test('Ddm.count and EDDM.errors restart at the update after a drift', () => {
    const xs = stream('jump-0.1-0.5');
    const ddm = new Ddm();
    let i = 0;
    while (!ddm.update(xs[i]).driftDetected) i++;
    ddm.update(1);
    assert.equal(ddm.count, 1);
    assert.equal(ddm.errorRate, 1);
    const eddm = new Eddm();
    i = 0;
    while (!eddm.update(xs[i]).driftDetected) i++;
    eddm.update(1);
    assert.equal(eddm.count, 1);
    assert.equal(eddm.errors, 1);
  });
});

describe('input beyond 0/1, as River treats it', () => {
  test('Ddm accepts a value that takes the error rate outside [0, 1] (where River raises) without signalling', () => {
    const ddm = new Ddm({ warmStart: 0 });
    for (let i = 0; i < 50; i++) ddm.update(i % 10 === 0 ? 1 : 0);
    ddm.update(60); // p = 70 / 51 > 1: p (1 - p) < 0, River's math.sqrt raises ValueError here
    assert.equal(ddm.count, 51);
    assert.ok(ddm.errorRate > 1);
    assert.equal(ddm.driftDetected, false);
    assert.equal(ddm.warningDetected, false);
    // Once enough zeros bring p back into [0, 1], the test runs again (p_min, s_min were left as they were).
    for (let i = 0; i < 200; i++) ddm.update(0);
    assert.ok(ddm.errorRate >= 0 && ddm.errorRate <= 1);
    for (let i = 0; i < 200 && !ddm.driftDetected; i++) ddm.update(1);
    assert.equal(ddm.driftDetected, true);
  });

  test('Ddm keeps River\'s running mean for values River accepts (a 2 after enough zeros)', () => {
    const ddm = new Ddm();
    for (let i = 0; i < 9; i++) ddm.update(0);
    ddm.update(2);
    assert.equal(ddm.count, 10);
    assert.equal(ddm.errorRate, 0.2);
  });

  test('Eddm counts only x === 1 as an error, as River compares x == 1', () => {
    const eddm = new Eddm();
    for (const x of [0, 0.5, 2, -1, 0.999]) eddm.update(x);
    assert.equal(eddm.errors, 0);
    eddm.update(1);
    assert.equal(eddm.errors, 1);
  });
});

describe('bad options are refused with a RangeError that names the option', () => {
  const cases: Array<[Kind, Record<string, unknown>, RegExp]> = [
    ['ddm', { warmStart: -1 }, /warmStart/],
    ['ddm', { warmStart: 2.5 }, /warmStart/],
    ['ddm', { warningThreshold: 0 }, /warningThreshold/],
    ['ddm', { warningThreshold: NaN }, /warningThreshold/],
    ['ddm', { driftThreshold: -3 }, /driftThreshold/],
    ['ddm', { driftThreshold: Infinity }, /driftThreshold/],
    ['eddm', { warmStart: -5 }, /warmStart/],
    ['eddm', { alpha: 0 }, /alpha/],
    ['eddm', { alpha: 1.5 }, /alpha/],
    ['eddm', { beta: -0.1, alpha: 0.95 }, /beta/],
    ['eddm', { alpha: 0.8 }, /alpha \(0\.8\) must be >= beta \(0\.9\)/],
    ['hddm-a', { driftConfidence: 0 }, /driftConfidence/],
    ['hddm-a', { driftConfidence: 1 }, /driftConfidence/],
    ['hddm-a', { warningConfidence: 2 }, /warningConfidence/],
    ['hddm-a', { twoSidedTest: 'yes' }, /twoSidedTest/],
    ['hddm-w', { driftConfidence: -0.1 }, /driftConfidence/],
    ['hddm-w', { warningConfidence: NaN }, /warningConfidence/],
    ['hddm-w', { lambdaVal: 1.5 }, /lambdaVal/],
    ['hddm-w', { lambdaVal: -0.01 }, /lambdaVal/],
    ['hddm-w', { twoSidedTest: 1 }, /twoSidedTest/],
  ];
  for (const [kind, options, message] of cases) {
    test(`${kind} ${JSON.stringify(options, (_, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))}`, () => {
      assert.throws(() => make(kind, options), (e: unknown) => e instanceof RangeError && message.test(e.message));
      assert.throws(() => createDetector({ kind, ...options } as DetectorSpec), RangeError);
    });
  }

  test('the edges River accepts are accepted', () => {
    assert.doesNotThrow(() => new Ddm({ warmStart: 0 }));
    assert.doesNotThrow(() => new Eddm({ alpha: 0.9, beta: 0.9 }));
    assert.doesNotThrow(() => new HddmW({ lambdaVal: 0 }));
    assert.doesNotThrow(() => new HddmW({ lambdaVal: 1 }));
  });
});

describe('registration: createDetector and the run config', () => {
  test('createDetector builds each kind with its options and River defaults', () => {
    const ddm = createDetector({ kind: 'ddm', warmStart: 50 });
    assert.ok(ddm instanceof Ddm);
    assert.deepEqual([ddm.warmStart, ddm.warningThreshold, ddm.driftThreshold], [50, 2, 3]);
    const eddm = createDetector({ kind: 'eddm' });
    assert.ok(eddm instanceof Eddm);
    assert.deepEqual([eddm.warmStart, eddm.alpha, eddm.beta], [30, 0.95, 0.9]);
    const a = createDetector({ kind: 'hddm-a', twoSidedTest: true });
    assert.ok(a instanceof HddmA);
    assert.deepEqual([a.driftConfidence, a.warningConfidence, a.twoSidedTest], [0.001, 0.005, true]);
    const w = createDetector({ kind: 'hddm-w', lambdaVal: 0.1 });
    assert.ok(w instanceof HddmW);
    assert.deepEqual([w.driftConfidence, w.warningConfidence, w.lambdaVal, w.twoSidedTest], [0.001, 0.005, 0.1, false]);
  });

  test('a detector built by createDetector gives the golden indices', () => {
    const c = golden('hddm-w', 'custom', 'two-changes');
    const detector = createDetector({ kind: 'hddm-w', ...c.options } as DetectorSpec);
    const drifts: number[] = [];
    stream('two-changes').forEach((x, i) => {
      if (detector.update(x).driftDetected) drifts.push(i);
    });
    assert.deepEqual(drifts, c.drifts);
  });

  const minimal = {
    streams: { inputSize: 4, outputSize: 1 },
    learner: { cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate' }, optimizer: { name: 'sgd', lr: 0.01 } },
  };

  test('the run config knows the four kinds and their options, and refuses them on the pipeline\'s real-valued signals', () => {
    for (const [field, spec] of [['detectors', { kind: 'ddm', warmStart: 50 }], ['inputDetectors', { kind: 'hddm-w', lambdaVal: 0.1 }]] as const) {
      assert.throws(
        () => parseConfig({ ...minimal, drift: { [field]: [spec] } }),
        new RegExp(`drift\\.${field}\\.0\\.kind: '${spec.kind}' tests a 0/1 error rate`),
      );
    }
  });

  const refused: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown field', { kind: 'ddm', threshold: 3 }, /drift\.detectors\.0: unknown field\(s\) 'threshold'/],
    ['a fractional warmStart', { kind: 'eddm', warmStart: 2.5 }, /drift\.detectors\.0\.warmStart/],
    ['EDDM alpha below beta', { kind: 'eddm', alpha: 0.5 }, /drift\.detectors\.0\.alpha: alpha must be >= beta/],
    ['a confidence of 1', { kind: 'hddm-a', driftConfidence: 1 }, /drift\.detectors\.0\.driftConfidence/],
    ['lambdaVal above 1', { kind: 'hddm-w', lambdaVal: 2 }, /drift\.detectors\.0\.lambdaVal/],
    ['a non-boolean twoSidedTest', { kind: 'hddm-w', twoSidedTest: 'yes' }, /drift\.detectors\.0\.twoSidedTest/],
    ['River snake_case names', { kind: 'hddm-w', lambda_val: 0.1 }, /unknown field\(s\) 'lambda_val'/],
  ];
  for (const [what, spec, message] of refused) {
    test(`the config refuses ${what}`, () => {
      assert.throws(() => parseConfig({ ...minimal, drift: { detectors: [spec] } }), message);
    });
  }
});
