// KSWIN drift detector, ported from River 0.26.1 (river/drift/kswin.py) so that the same numbers and seed give
// the same detection indices.
import { ksDistanceCount, ksEqualSizePValue } from './ks-two-sample.js';
import { PythonRandom } from './python-random.js';

export interface KswinOptions {
  /**
   * Significance level of the KS test, in [0, 1]; River advises below 0.01. Default 0.005. With 0 the detector
   * fires only at a test whose p-value is exactly 0, which needs statSize >= 541: for statSize <= 540 every
   * p-value ksEqualSizePValue returns is positive (checked for each h; the smallest, at D = 1, is about
   * 2 / C(2 statSize, statSize)), so alpha = 0 never fires. Such a detector records `lowestFiringPValue` over
   * a run.
   */
  alpha?: number;
  /** Length of the sliding window (River: window_size). Default 100. */
  windowSize?: number;
  /** Values in each compared sample (River: stat_size); at most half of windowSize. Default 30. */
  statSize?: number;
  /**
   * Seed of the sampler, an integer as Python's `random.Random(seed)` takes it. Default 1. River's default is
   * None, which seeds from the operating system and cannot be reproduced; driftline prefers a run that replays.
   */
  seed?: number;
  /** Values already seen, to start with a full window (River: window); only the last windowSize are kept. */
  window?: Iterable<number>;
}

/**
 * Kolmogorov-Smirnov Windowing (Raab, Heusinger and Schleif 2020), written to match River's `drift.KSWIN`
 * call for call.
 *
 * A window holds the last `windowSize` values. On every update once it is full, `statSize` values are drawn
 * without replacement from its older `windowSize - statSize` positions (Python's
 * `Random(seed).sample(range(windowSize - statSize), statSize)`, reproduced by PythonRandom) and compared with
 * the newest `statSize` values by the two-sample KS test (scipy's `ks_2samp`, reproduced by ks-two-sample.ts).
 * Drift is reported when
 *
 *     p-value <= alpha  and  D > 0.1
 *
 * with D the KS statistic (a multiple of 1/statSize, so with statSize 30 the second condition means at least
 * 4/30). As in River, the update after a detection resets everything: the window empties and the sampler is
 * re-seeded, so the draws after a detection repeat those after construction. (River also trims its window to the
 * newest statSize values on a detection, but that trimmed window is discarded by the reset before it is ever
 * read, so it is not kept here.) The warm-start `window` is part of the initial state only; neither a reset
 * nor a detection brings it back.
 *
 * Calibration hook: alpha enters only the alarm condition above (the sampler draws, the sorts and the p-value
 * happen on every update with a full window, whatever alpha is), so until its first detection a Kswin evolves
 * identically for every alpha, and `lowestFiringPValue` tells, from one run with alpha = 0, at which update a
 * detector with any other alpha would have reported drift first.
 *
 * State is the window (a ring of windowSize numbers), two statSize buffers, the sampler's MT19937 state and
 * pool, and a p-value cache of statSize + 1 entries (the p-value depends only on the integer h = D * statSize).
 * Per update: O(statSize) draws (each a rejection loop of under 2 expected tries), two sorts of statSize
 * values, one merge pass; nothing is allocated after the first test. Memory is bounded by windowSize.
 *
 * @example
 * ```ts
 * import { Kswin } from './drift/kswin.js';
 * import { PythonRandom } from './drift/python-random.js';
 *
 * // River's docstring stream, drawn as Python draws it: rng.choices([0, 1], k=1000) + rng.choices(range(4, 8),
 * // k=1000) with rng = random.Random(12345); choices picks population[floor(random() * len)].
 * const rng = new PythonRandom(12345);
 * const stream: number[] = [];
 * for (let i = 0; i < 1000; i++) stream.push(Math.floor(rng.random() * 2));
 * for (let i = 0; i < 1000; i++) stream.push(4 + Math.floor(rng.random() * 4));
 *
 * const kswin = new Kswin({ alpha: 0.0001, seed: 42 });
 * stream.forEach((x, i) => { if (kswin.update(x).driftDetected) console.log(`drift at ${i}`); });
 * // prints "drift at 1016", as River's docstring does (run as a test in test/drift-kswin.test.ts)
 * ```
 *
 * Reference: C. Raab, M. Heusinger, F.-M. Schleif (2020), Reactive Soft Prototype Computing for Concept Drift
 * Streams, Neurocomputing 416, 340-351.
 */
export class Kswin {
  readonly alpha: number;
  readonly windowSize: number;
  readonly statSize: number;
  readonly seed: number;

  /** True if the last `update` detected drift. */
  driftDetected = false;

  private readonly ring: Float64Array;
  private start = 0;
  private length = 0;
  private n = 0;
  private lastPValue = 0;
  private lowestFiring = Infinity;
  private readonly rng: PythonRandom;
  private readonly drawn: Int32Array;
  private readonly older: Float64Array;
  private readonly recent: Float64Array;
  private readonly pValues: Float64Array;

  constructor(options: KswinOptions = {}) {
    const { alpha = 0.005, windowSize = 100, statSize = 30, seed = 1, window } = options;
    if (typeof alpha !== 'number' || !(alpha >= 0 && alpha <= 1)) throw new RangeError(`Kswin: alpha must be in [0, 1], got ${alpha}`);
    if (!Number.isInteger(windowSize) || windowSize < 2 || windowSize > 0x7fffffff) {
      throw new RangeError(`Kswin: windowSize must be an integer in [2, 2^31 - 1], got ${windowSize}`);
    }
    // River accepts statSize > windowSize / 2 and then fails at the first full window (random.sample cannot
    // draw statSize distinct positions from fewer); refusing it here names the option instead.
    if (!Number.isInteger(statSize) || statSize < 1 || 2 * statSize > windowSize) {
      throw new RangeError(`Kswin: statSize must be an integer in [1, windowSize / 2 = ${windowSize / 2}], got ${statSize}`);
    }
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new RangeError(`Kswin: seed must be a safe integer, got ${seed}`);

    this.alpha = alpha;
    this.windowSize = windowSize;
    this.statSize = statSize;
    this.seed = seed;
    this.ring = new Float64Array(windowSize);
    this.rng = new PythonRandom(seed);
    this.drawn = new Int32Array(statSize);
    this.older = new Float64Array(statSize);
    this.recent = new Float64Array(statSize);
    this.pValues = new Float64Array(statSize + 1).fill(NaN);

    if (window !== undefined) {
      if (window === null || typeof (window as Iterable<number>)[Symbol.iterator] !== 'function') {
        throw new RangeError('Kswin: window must be an iterable of finite numbers');
      }
      for (const x of window) {
        if (typeof x !== 'number' || !Number.isFinite(x)) throw new RangeError(`Kswin: window must hold finite numbers, got ${String(x)}`);
        this.push(x);
      }
    }
  }

  /** p-value of the last KS test since the last reset (0 before any, as River's `p_value`). */
  get pValue(): number {
    return this.lastPValue;
  }

  /**
   * The smallest p-value among the KS tests since the last reset whose statistic satisfies the alarm's other
   * condition, D > 0.1 (evaluated exactly as the alarm evaluates it); +Infinity when there is none.
   *
   * Hence, from a fresh start (construction or `reset()`), a Kswin with the same other options (seed, window
   * and warm start included) and alpha = a in [0, 1], fed the same values, reports drift for the first time at
   * the first update after which `lowestFiringPValue <= a` (non-strict, as the alarm is `p-value <= alpha`;
   * exact, no rounding involved: the p-values are the same numbers). The sentinel is +Infinity rather than 1
   * because alpha = 1 fires at any test with D > 0.1, p-value 1 included. The value is meaningful only up to
   * this detector's first detection: the next update resets it to +Infinity, as `reset()` does. Record it with
   * alpha = 0 (see `KswinOptions.alpha`: that detector never fires for statSize <= 540; if it does fire, at
   * a p-value of 0, every alpha has fired by that update, so its hook values up to there still answer for
   * every alpha).
   */
  get lowestFiringPValue(): number {
    return this.lowestFiring;
  }

  /** Values fed by `update` since the last reset (River's `n`; warm-start values are not counted). */
  get count(): number {
    return this.n;
  }

  /** Values currently in the window, warm start included. */
  get windowLength(): number {
    return this.length;
  }

  /** Forget everything, the warm-start window included, and re-seed the sampler (parameters are kept). */
  reset(): void {
    this.driftDetected = false;
    this.start = 0;
    this.length = 0;
    this.n = 0;
    this.lastPValue = 0;
    this.lowestFiring = Infinity;
    this.rng.seed(this.seed);
  }

  /**
   * Feed one value. Throws a RangeError, leaving the state untouched, if `x` is not a finite number.
   * After a detection, the next call resets the detector before using its value.
   */
  update(x: number): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new RangeError(`Kswin.update: x must be a finite number, got ${String(x)}`);
    }
    if (this.driftDetected) this.reset();
    this.n += 1;
    this.push(x);
    if (this.length < this.windowSize) {
      this.driftDetected = false;
      return this;
    }

    const { windowSize, statSize, ring, older, recent, drawn } = this;
    const olderSize = windowSize - statSize;
    this.rng.sampleRange(olderSize, statSize, drawn);
    for (let i = 0; i < statSize; i++) {
      let at = this.start + drawn[i];
      if (at >= windowSize) at -= windowSize;
      older[i] = ring[at];
      at = this.start + olderSize + i;
      if (at >= windowSize) at -= windowSize;
      recent[i] = ring[at];
    }
    older.sort();
    recent.sort();
    const h = ksDistanceCount(older, recent);
    let p = this.pValues[h];
    if (Number.isNaN(p)) p = this.pValues[h] = ksEqualSizePValue(statSize, h);
    this.lastPValue = p;
    const large = h / statSize > 0.1;
    if (large && p < this.lowestFiring) this.lowestFiring = p;
    this.driftDetected = p <= this.alpha && large;
    return this;
  }

  private push(x: number): void {
    if (this.length < this.windowSize) {
      let at = this.start + this.length;
      if (at >= this.windowSize) at -= this.windowSize;
      this.ring[at] = x;
      this.length += 1;
    } else {
      this.ring[this.start] = x;
      this.start += 1;
      if (this.start === this.windowSize) this.start = 0;
    }
  }
}
