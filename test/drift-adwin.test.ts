import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Adwin } from '../src/drift/adwin.js';
import { Random } from '../src/learners/random.js';

/*
 * Golden values produced by River 0.26.1 (`river.drift.ADWIN(delta=0.002, clock=32, max_buckets=5,
 * min_window_length=5, grace_period=10)`, its Rust helper rust_src/adwin.rs) on exactly the numbers the
 * generators below produce (they were dumped to JSON and fed to River). Indices are 0-based positions in the
 * stream at which `drift_detected` was True; widths/estimations are River's `width`/`estimation` read right
 * after the update at that index. Every value matched this port bit for bit.
 */

function meanShift(): number[] {
  const rng = new Random(1);
  const xs: number[] = [];
  for (let i = 0; i < 2000; i++) xs.push((i < 1000 ? 0 : 2) + rng.normal());
  return xs;
}

function ramp(): number[] {
  const rng = new Random(2);
  const xs: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const mean = i < 1000 ? 0 : i < 2000 ? (3 * (i - 1000)) / 1000 : 3;
    xs.push(mean + rng.normal());
  }
  return xs;
}

function stationary(): number[] {
  const rng = new Random(3);
  const xs: number[] = [];
  for (let i = 0; i < 10000; i++) xs.push(rng.normal());
  return xs;
}

function bernoulliErrors(): number[] {
  const rng = new Random(4);
  const xs: number[] = [];
  for (let i = 0; i < 4000; i++) xs.push(rng.next() < (i < 2000 ? 0.1 : 0.4) ? 1 : 0);
  return xs;
}

interface Golden {
  detections: number[];
  widths: number[];
  estimations: number[];
  /** [index, width, estimation, variance] after the update at index. */
  points: [number, number, number, number][];
}

const GOLDEN: Record<string, { stream: () => number[]; golden: Golden }> = {
  'mean shift N(0,1) -> N(2,1) at 1000': {
    stream: meanShift,
    golden: {
      detections: [1023],
      widths: [96],
      estimations: [0.5365265563112329],
      points: [
        [999, 1000, -0.04778168827494951, 1003.6144770902717],
        [1999, 976, 1.9719327522703776, 1019.1297502853487],
      ],
    },
  },
  'gradual ramp 0 -> 3 over 1000..2000': {
    stream: ramp,
    golden: {
      detections: [1279, 1631, 1983],
      widths: [448, 288, 224],
      estimations: [0.2373912312586832, 1.4525432229337598, 2.6633042893720833],
      points: [
        [999, 1000, 0.00235051857294679, 1024.811863185293],
        [1999, 16, 3.187693467880238, 18.975916381517735],
        [2999, 1016, 2.992864961507235, 995.5247600894701],
      ],
    },
  },
  'stationary N(0,1), 10^4 values': {
    stream: stationary,
    golden: {
      detections: [],
      widths: [],
      estimations: [],
      points: [
        [999, 1000, 0.03481293196666408, 943.04441814372],
        [1999, 2000, -0.0031630560022510358, 1913.3542312130614],
        [9999, 10000, -0.0031419343623729857, 9886.36441391438],
      ],
    },
  },
  'Bernoulli errors, rate 0.1 -> 0.4 at 2000': {
    stream: bernoulliErrors,
    golden: {
      detections: [2079],
      widths: [192],
      estimations: [0.19791666666666666],
      points: [
        [999, 1000, 0.09, 81.89999999999996],
        [1999, 2000, 0.093, 168.70200000000014],
        [3999, 1920, 0.3984375, 460.19531249999926],
      ],
    },
  },
};

function run(adwin: Adwin, xs: readonly number[]): Golden {
  const out: Golden = { detections: [], widths: [], estimations: [], points: [] };
  xs.forEach((x, i) => {
    adwin.update(x);
    if (adwin.driftDetected) {
      out.detections.push(i);
      out.widths.push(adwin.width);
      out.estimations.push(adwin.estimation);
    }
    out.points.push([i, adwin.width, adwin.estimation, adwin.variance]);
  });
  return out;
}

describe('Adwin golden streams (River 0.26.1, delta=0.002 clock=32 max_buckets=5 min_window_length=5 grace_period=10)', () => {
  for (const [name, { stream, golden }] of Object.entries(GOLDEN)) {
    test(name, () => {
      const got = run(new Adwin(), stream());
      assert.deepEqual(got.detections, golden.detections);
      assert.deepEqual(got.widths, golden.widths);
      assert.deepEqual(got.estimations, golden.estimations);
      for (const point of golden.points) assert.deepEqual(got.points[point[0]], point);
    });
  }

  test('explicit default options give the same detections, and reset() replays identically', () => {
    const adwin = new Adwin({ delta: 0.002, clock: 32, maxBuckets: 5, minWindowLength: 5, gracePeriod: 10 });
    const xs = ramp();
    const first = run(adwin, xs);
    adwin.reset();
    assert.equal(adwin.width, 0);
    assert.equal(adwin.estimation, 0);
    assert.equal(adwin.driftDetected, false);
    assert.deepEqual(run(adwin, xs), first);
    assert.deepEqual(first.detections, GOLDEN['gradual ramp 0 -> 3 over 1000..2000'].golden.detections);
  });

  test('the documented example prints drift at 1023', () => {
    const rng = new Random(1);
    const adwin = new Adwin();
    const found: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const x = (i < 1000 ? 0 : 2) + rng.normal();
      if (adwin.update(x).driftDetected) found.push(i);
    }
    assert.deepEqual(found, [1023]);
  });
});

describe('Adwin behaviour', () => {
  test('update returns the detector; like River it starts afresh on the update after a drift', () => {
    const adwin = new Adwin();
    const xs = meanShift();
    for (let i = 0; i <= 1023; i++) assert.equal(adwin.update(xs[i]), adwin);
    assert.equal(adwin.driftDetected, true);
    assert.equal(adwin.width, 96);
    adwin.update(xs[1024]);
    assert.equal(adwin.driftDetected, false);
    assert.equal(adwin.width, 1);
    assert.equal(adwin.estimation, xs[1024]);
    assert.equal(adwin.variance, 0);
  });

  test('window statistics are the exact sum, mean and sum of squared deviations on a short stream', () => {
    const adwin = new Adwin();
    for (const v of [1, 2, 3, 4, 5]) adwin.update(v);
    assert.equal(adwin.width, 5);
    assert.equal(adwin.total, 15);
    assert.equal(adwin.estimation, 3);
    assert.ok(Math.abs(adwin.variance - 10) < 1e-12);
    assert.ok(Math.abs(adwin.varianceInWindow - 2) < 1e-12);
  });

  test('rejects non-finite values with a RangeError and leaves the state untouched', () => {
    const adwin = new Adwin();
    const xs = meanShift();
    for (let i = 0; i <= 1023; i++) adwin.update(xs[i]);
    const before = [adwin.width, adwin.total, adwin.variance, adwin.driftDetected];
    for (const bad of [NaN, Infinity, -Infinity]) {
      assert.throws(() => adwin.update(bad), RangeError);
      assert.deepEqual([adwin.width, adwin.total, adwin.variance, adwin.driftDetected], before);
    }
    // The pending post-drift reset was not consumed by the rejected values either.
    adwin.update(xs[1024]);
    assert.equal(adwin.width, 1);
  });

  test('rejects bad options', () => {
    assert.throws(() => new Adwin({ delta: -1e-9 }), RangeError);
    assert.throws(() => new Adwin({ delta: NaN }), RangeError);
    assert.throws(() => new Adwin({ delta: 1 }), RangeError);
    assert.throws(() => new Adwin({ clock: 0 }), RangeError);
    assert.throws(() => new Adwin({ maxBuckets: 0 }), RangeError);
    assert.throws(() => new Adwin({ minWindowLength: 0 }), RangeError);
    assert.throws(() => new Adwin({ gracePeriod: -1 }), RangeError);
  });

  test('10^5 updates do not grow the state: same arrays, same bytes, O(log W) buckets in use', () => {
    const adwin = new Adwin();
    const internals = adwin as unknown as {
      totals: Float64Array;
      variances: Float64Array;
      counts: Int32Array;
      nRows: number;
    };
    const arrays = [internals.totals, internals.variances, internals.counts];
    const bytes = adwin.stateBytes;
    const rng = new Random(5);
    for (let i = 0; i < 100_000; i++) adwin.update(rng.normal());
    assert.equal(adwin.stateBytes, bytes);
    assert.deepEqual([internals.totals, internals.variances, internals.counts], arrays);
    assert.ok(arrays.every((a, j) => a === [internals.totals, internals.variances, internals.counts][j]));
    // A window of W values needs about log2(W / maxBuckets) + 1 rows; 10^5 values need at most 16.
    assert.ok(adwin.width <= 100_000);
    assert.ok(internals.nRows <= 16, `rows in use: ${internals.nRows}`);
    let buckets = 0;
    for (let r = 0; r < internals.nRows; r++) buckets += internals.counts[r];
    assert.ok(buckets <= 5 * internals.nRows);
    let covered = 0;
    for (let r = 0; r < internals.nRows; r++) covered += internals.counts[r] * 2 ** r;
    assert.equal(covered, adwin.width);
  });
});

// ------------------------------------------------------------------------------ calibration: smallestFiringDelta

function seededStreams(): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const seed of [11, 12, 13]) {
    const rng = new Random(seed);
    out[`stationary N(0,1), seed ${seed}`] = Array.from({ length: 6000 }, () => rng.normal());
  }
  {
    const rng = new Random(21);
    out['small mean shift 0 -> 0.4 at 3000'] = Array.from({ length: 6000 }, (_, i) => (i < 3000 ? 0 : 0.4) + rng.normal());
  }
  {
    const rng = new Random(22);
    out['variance change 1 -> 3 at 2500'] = Array.from({ length: 5000 }, (_, i) => (i < 2500 ? 1 : 3) * rng.normal());
  }
  {
    const rng = new Random(23);
    out['heavy tails (Cauchy-like), no change'] = Array.from({ length: 4000 }, () => rng.normal() / (Math.abs(rng.normal()) + 0.05));
  }
  out['mean shift N(0,1) -> N(2,1) at 1000'] = meanShift();
  out['gradual ramp'] = ramp();
  out['Bernoulli errors'] = bernoulliErrors();
  return out;
}

/** Index of the first update reporting drift, -1 if none. */
function firstAlarm(adwin: Adwin, xs: readonly number[]): number {
  for (let i = 0; i < xs.length; i++) if (adwin.update(xs[i]).driftDetected) return i;
  return -1;
}

/** smallestFiringDelta after each update of a never-firing recorder (delta = 0). */
function hookTrace(xs: readonly number[], options: Omit<ConstructorParameters<typeof Adwin>[0] & object, 'delta'>): number[] {
  const recorder = new Adwin({ ...options, delta: 0 });
  return xs.map((x) => {
    recorder.update(x);
    assert.equal(recorder.driftDetected, false, 'delta = 0 never fires');
    return recorder.smallestFiringDelta;
  });
}

const OPTION_SETS = [{}, { clock: 1, gracePeriod: 5, minWindowLength: 3 }, { clock: 7, maxBuckets: 2, minWindowLength: 20 }];

describe('Adwin.smallestFiringDelta (calibration hook)', () => {
  test('the first update where the hook of a delta = 0 recorder drops below d is the first alarm of delta = d', () => {
    const streams = seededStreams();
    let fired = 0;
    let quiet = 0;
    for (const options of OPTION_SETS) {
      for (const [name, xs] of Object.entries(streams)) {
        const hooks = hookTrace(xs, options);
        // The hook is the running minimum: it never increases between resets.
        for (let i = 1; i < hooks.length; i++) assert.ok(hooks[i] <= hooks[i - 1], `${name}: hook increased at ${i}`);
        for (const d of [0.9, 0.5, 0.1, 0.002, 1e-5]) {
          const predicted = hooks.findIndex((g) => g < d);
          const actual = firstAlarm(new Adwin({ ...options, delta: d }), xs);
          assert.equal(predicted, actual, `${name}, ${JSON.stringify(options)}, delta ${d}`);
          if (actual >= 0) fired++;
          else quiet++;
        }
      }
    }
    // The grid exercises both outcomes, so the property is not vacuous.
    assert.ok(fired >= 20 && quiet >= 20, `fired ${fired}, quiet ${quiet}`);
  });

  test('the boundary is sharp: d just above the hook fires at that update, d just below does not', () => {
    const streams = seededStreams();
    let checked = 0;
    for (const options of OPTION_SETS.slice(0, 2)) {
      for (const [name, xs] of Object.entries(streams)) {
        const hooks = hookTrace(xs, options);
        // Every update where the hook drops to a new value below 1 (a legal delta) is a candidate; take a few.
        const drops: number[] = [];
        for (let i = 0; i < hooks.length; i++) {
          if (hooks[i] < 1 && hooks[i] > 1e-300 && (i === 0 || hooks[i] < hooks[i - 1])) drops.push(i);
        }
        const picks = drops.length <= 4 ? drops : [0, 1, 2, 3].map((k) => drops[Math.floor((k * (drops.length - 1)) / 3)]);
        for (const i of picks) {
          const g = hooks[i];
          const above = firstAlarm(new Adwin({ ...options, delta: g * (1 + 1e-9) }), xs);
          assert.equal(above, i, `${name}: delta = hook * (1 + 1e-9) at ${i}`);
          const below = firstAlarm(new Adwin({ ...options, delta: g * (1 - 1e-9) }), xs);
          assert.ok(below === -1 || below > i, `${name}: delta = hook * (1 - 1e-9) fired at ${below}, hook set at ${i}`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 30, `checked ${checked}`);
  });

  test('a delta = 1e-300 recorder fires exactly where the delta = 0 recorder hook crosses 1e-300, after every larger delta', () => {
    // A 1e6 jump fires even at delta = 1e-300 (once the window is long enough for the bound's huge
    // ln(2 ln W / delta) ~ 694); delta = 0 never fires. (delta = Number.MIN_VALUE would never fire either:
    // 2 ln W / Number.MIN_VALUE overflows to +Infinity.)
    const rng = new Random(31);
    const xs = Array.from({ length: 3000 }, (_, i) => (i < 1500 ? 0 : 1e6) + rng.normal());
    const zero = hookTrace(xs, {});
    const tiny = new Adwin({ delta: 1e-300 });
    const at = firstAlarm(tiny, xs);
    assert.ok(at > 1500, `1e-300 fires after the jump, at ${at}`);
    assert.ok(zero[at] < 1e-300 && zero[at - 1] >= 1e-300, `hook ${zero[at - 1]} -> ${zero[at]}`);
    // Every larger delta has fired by then (at the update its own hook crossing predicts).
    for (const d of [0.5, 0.002, 1e-100]) {
      const alarm = firstAlarm(new Adwin({ delta: d }), xs);
      assert.equal(alarm, zero.findIndex((g) => g < d));
      assert.ok(alarm > 1500 && alarm <= at);
    }
    assert.equal(firstAlarm(new Adwin({ delta: Number.MIN_VALUE }), xs), -1);
  });

  test('+Infinity before any test, reset by reset() and by the automatic reset after a detection', () => {
    const xs = meanShift();
    const adwin = new Adwin();
    assert.equal(adwin.smallestFiringDelta, Infinity);
    for (let i = 0; i < 31; i++) adwin.update(xs[i]);
    assert.equal(adwin.smallestFiringDelta, Infinity, 'no test before the first clock tick');
    adwin.update(xs[31]);
    const first = adwin.smallestFiringDelta;
    assert.ok(first > 0 && first < Infinity);
    for (let i = 32; i < 500; i++) adwin.update(xs[i]);
    const mid = adwin.smallestFiringDelta;
    adwin.reset();
    assert.equal(adwin.smallestFiringDelta, Infinity);
    // A replay after reset() records the same values.
    for (let i = 0; i < 500; i++) adwin.update(xs[i]);
    assert.equal(adwin.smallestFiringDelta, mid);
    // Run on to the detection at 1023: the hook is below delta there, and the next update starts afresh.
    for (let i = 500; i <= 1023; i++) adwin.update(xs[i]);
    assert.equal(adwin.driftDetected, true);
    assert.ok(adwin.smallestFiringDelta < adwin.delta);
    adwin.update(xs[1024]);
    assert.equal(adwin.driftDetected, false);
    assert.equal(adwin.smallestFiringDelta, Infinity);
  });

  test('delta = 0 is accepted and never fires, even on a 1e6 jump', () => {
    const rng = new Random(32);
    const xs = Array.from({ length: 3000 }, (_, i) => (i < 1500 ? 0 : 1e6) + rng.normal());
    assert.equal(firstAlarm(new Adwin({ delta: 0 }), xs), -1);
    // A constant stream (zero variance) too.
    assert.equal(firstAlarm(new Adwin({ delta: 0 }), new Array(2000).fill(3)), -1);
  });
});
