import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Ewma } from '../src/evaluation/ewma.js';
import { RecoveryMeter } from '../src/evaluation/recovery.js';
import { WindowedMean } from '../src/evaluation/windowed-mean.js';
import { Random } from '../src/learners/random.js';

function naiveMean(values: readonly number[], window: number): number {
  const tail = values.slice(Math.max(0, values.length - window));
  return tail.reduce((s, v) => s + v, 0) / tail.length;
}

describe('WindowedMean', () => {
  test('matches the naive mean over random streams, before and after the window wraps', () => {
    for (const [seed, window] of [[1, 1], [2, 3], [3, 7], [4, 64], [5, 1000]] as const) {
      const rng = new Random(seed);
      const m = new WindowedMean(window);
      const seen: number[] = [];
      for (let i = 0; i < 3 * window + 17; i++) {
        const v = rng.normal() * 10 ** rng.uniform(-3, 3);
        seen.push(v);
        m.push(v);
        const expected = naiveMean(seen, window);
        assert.ok(Math.abs(m.mean - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `window ${window}, value ${i}: ${m.mean} vs ${expected}`);
        assert.equal(m.count, Math.min(i + 1, window));
        assert.equal(m.full, i + 1 >= window);
      }
      assert.equal(m.pushed, 3 * window + 17);
    }
  });

  test('does not drift: after huge values leave the window the mean is exact again', () => {
    const m = new WindowedMean(10);
    for (let i = 0; i < 10; i++) m.push(1e12 + i * 0.37);
    for (let i = 0; i < 20; i++) m.push(0.1);
    // The re-summation every `window` pushes brings the running sum back to the exact sum of the ring.
    assert.equal(m.sum, [...Array(10)].reduce((s) => s + 0.1, 0));
    assert.ok(Math.abs(m.mean - 0.1) < 1e-15);
  });

  test('rejects non-finite values with a RangeError and keeps its state', () => {
    const m = new WindowedMean(4).push(1).push(2);
    assert.throws(() => m.push(Number.NaN), RangeError);
    assert.throws(() => m.push(Infinity), RangeError);
    assert.throws(() => m.push(-Infinity), RangeError);
    assert.equal(m.mean, 1.5);
    assert.equal(m.count, 2);
    assert.throws(() => new WindowedMean(0), RangeError);
    assert.throws(() => new WindowedMean(2.5), RangeError);
  });

  test('NaN before the first value; reset forgets everything', () => {
    const m = new WindowedMean(3);
    assert.ok(Number.isNaN(m.mean));
    m.push(3).push(4).push(5).push(6).reset();
    assert.ok(Number.isNaN(m.mean));
    assert.equal(m.count, 0);
    m.push(2);
    assert.equal(m.mean, 2);
  });
});

describe('Ewma', () => {
  test('the documented example', () => {
    const e = new Ewma({ alpha: 0.5 });
    assert.equal(e.update(4).value, 4);
    assert.equal(e.update(1).value, 2);
  });

  test('is the normalised exponentially weighted mean of every value so far', () => {
    const rng = new Random(9);
    const alpha = 0.05;
    const e = new Ewma({ alpha });
    const xs: number[] = [];
    for (let t = 0; t < 300; t++) {
      const v = rng.normal();
      xs.push(v);
      e.update(v);
      let num = 0;
      let den = 0;
      for (let i = 0; i < xs.length; i++) {
        const w = (1 - alpha) ** (xs.length - 1 - i);
        num += w * xs[i];
        den += w;
      }
      assert.ok(Math.abs(e.value - num / den) < 1e-12, `t = ${t}`);
    }
    assert.equal(e.count, 300);
  });

  test('half-life: a value h steps old weighs half as much as the newest', () => {
    const e = new Ewma({ halfLife: 10 });
    assert.ok(Math.abs((1 - e.alpha) ** 10 - 0.5) < 1e-12);
  });

  test('a constant stream gives the constant; non-finite values and bad options are rejected', () => {
    const e = new Ewma({ alpha: 0.01 });
    for (let i = 0; i < 50; i++) e.update(7);
    assert.ok(Math.abs(e.value - 7) < 1e-12);
    assert.throws(() => e.update(Number.NaN), RangeError);
    assert.throws(() => e.update(Infinity), RangeError);
    assert.ok(Math.abs(e.value - 7) < 1e-12);
    assert.ok(Number.isNaN(new Ewma({ alpha: 0.3 }).value));
    assert.throws(() => new Ewma({ alpha: 0 }), RangeError);
    assert.throws(() => new Ewma({ alpha: 1.5 }), RangeError);
    assert.throws(() => new Ewma({ halfLife: -1 }), RangeError);
    assert.throws(() => new Ewma({ alpha: 0.1, halfLife: 3 }), RangeError);
  });
});

describe('RecoveryMeter', () => {
  const feed = (meter: RecoveryMeter, adapt: (k: number) => number, frozen: (k: number) => number, ticks: number) => {
    for (let k = 0; k < ticks; k++) meter.update(adapt(k), frozen(k));
    return meter;
  };

  test('full recovery is 1, residual 1', () => {
    const m = feed(new RecoveryMeter(0.01, { window: 50 }), () => 0.01, () => 0.5, 200);
    assert.ok(Math.abs((m.recovery as number) - 1) < 1e-12);
    assert.ok(Math.abs(m.residual - 1) < 1e-12);
  });

  test('no adaptation (adapting = frozen) is 0', () => {
    const m = feed(new RecoveryMeter(0.01, { window: 50 }), (k) => 0.5 + 0.001 * k, (k) => 0.5 + 0.001 * k, 200);
    assert.equal(m.recovery, 0);
    assert.ok(Math.abs(m.residual - m.eFrozen / 0.01) < 1e-9);
    assert.equal(m.timeToRecovery, null);
    assert.equal(m.recovered, false);
  });

  test('recovery and residual use only the last `window` ticks; better than before is above 1', () => {
    // 100 ticks at 2.0, then 50 at 0.5: with window 50 only the 0.5s count.
    const m = feed(new RecoveryMeter(1, { window: 50 }), (k) => (k < 100 ? 2 : 0.5), () => 3, 150);
    assert.equal(m.eAdapt, 0.5);
    assert.equal(m.eFrozen, 3);
    assert.equal(m.recovery, (3 - 0.5) / (3 - 1));
    assert.equal(m.residual, 0.5);
    // Time to recovery (window 50, threshold 1.5): the window ending at k holds j = 149 - k ticks at 2, mean
    // 0.5 + 0.03 j <= 1.5 when j <= 33, so k = 116.
    assert.deepEqual(m.result(), { ticks: 150, ePre: 1, eAdapt: 0.5, eFrozen: 3, recovery: 1.25, residual: 0.5, timeToRecovery: 116 });
  });

  test('time to recovery is the exact index of the first tick whose full window is within tolerance', () => {
    // E_pre = 1; adapting error 10 for ticks 0..99, then 1. Window of 10 ticks ending at k holds j ticks at 10:
    // mean 1 + 0.9 j. Tolerance 0.5 (threshold 1.5) needs j = 0: first at k = 109. Tolerance 2 (threshold 3)
    // allows j <= 2: first at k = 107.
    const adapt = (k: number) => (k < 100 ? 10 : 1);
    assert.equal(feed(new RecoveryMeter(1, { window: 10 }), adapt, () => 20, 300).timeToRecovery, 109);
    assert.equal(feed(new RecoveryMeter(1, { window: 50, recoveryWindow: 10, tolerance: 2 }), adapt, () => 20, 300).timeToRecovery, 107);
    // A window that is not yet full never counts: perfect errors from tick 0 recover at k = window - 1.
    assert.equal(feed(new RecoveryMeter(1, { window: 10 }), () => 1, () => 20, 30).timeToRecovery, 9);
    // The first qualifying tick is kept even if the error rises again later.
    const m = feed(new RecoveryMeter(1, { window: 10 }), (k) => (k < 100 ? 10 : k < 200 ? 1 : 10), () => 20, 300);
    assert.equal(m.timeToRecovery, 109);
  });

  test('never recovering gives null', () => {
    const m = feed(new RecoveryMeter(1, { window: 10 }), () => 1.6, () => 5, 1000);
    assert.equal(m.timeToRecovery, null);
    assert.ok(Math.abs((m.recovery as number) - (5 - 1.6) / 4) < 1e-12);
  });

  test('recovery is null when the drift did not hurt the frozen model, and before any tick', () => {
    const m = new RecoveryMeter(1, { window: 10 });
    assert.equal(m.recovery, null);
    assert.ok(Number.isNaN(m.eAdapt));
    feed(m, () => 0.5, () => 0.9, 20);
    assert.equal(m.recovery, null);
    assert.equal(m.residual, 0.5);
  });

  test('start() re-arms the meter for the next drift event', () => {
    const m = feed(new RecoveryMeter(1, { window: 10 }), () => 1, () => 3, 50);
    assert.equal(m.timeToRecovery, 9);
    m.start(2);
    assert.equal(m.ticks, 0);
    assert.equal(m.timeToRecovery, null);
    feed(m, () => 4, () => 4, 30);
    assert.equal(m.recovery, 0);
    assert.equal(m.residual, 2);
    assert.equal(m.ePre, 2);
  });

  test('rejects bad input with RangeError', () => {
    assert.throws(() => new RecoveryMeter(0, { window: 10 }), RangeError);
    assert.throws(() => new RecoveryMeter(Number.NaN, { window: 10 }), RangeError);
    assert.throws(() => new RecoveryMeter(1, { window: 0 }), RangeError);
    assert.throws(() => new RecoveryMeter(1, { window: 10, tolerance: -1 }), RangeError);
    assert.throws(() => new RecoveryMeter(1, { window: 10, recoveryWindow: 1.5 }), RangeError);
    const m = new RecoveryMeter(1, { window: 10 });
    assert.throws(() => m.update(Number.NaN, 1), RangeError);
    assert.throws(() => m.update(1, Infinity), RangeError);
    assert.equal(m.ticks, 0);
  });
});
