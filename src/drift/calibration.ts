// Choosing a detector's threshold from a false-alarm budget and the null behaviour of the stream's own signal.
import { Adwin, type AdwinOptions } from './adwin.js';
import { Kswin, type KswinOptions } from './kswin.js';
import { PageHinkley, type PageHinkleyOptions } from './page-hinkley.js';
import { AutocorrelationTime } from './autocorrelation-time.js';
import { BLOCK_LENGTH_IN_TAU, StationaryBootstrap } from './stationary-bootstrap.js';

/** The detectors whose threshold calibration can set: those of real-valued signals. */
export type CalibratableKind = 'page-hinkley' | 'adwin' | 'kswin';
export const CALIBRATABLE_KINDS: readonly CalibratableKind[] = ['page-hinkley', 'adwin', 'kswin'];

/** A calibratable detector with every option but the one calibration sets (threshold, delta, alpha). */
export type UncalibratedSpec =
  | ({ readonly kind: 'page-hinkley' } & Readonly<Omit<PageHinkleyOptions, 'threshold'>>)
  | ({ readonly kind: 'adwin' } & Readonly<Omit<AdwinOptions, 'delta'>>)
  | ({ readonly kind: 'kswin' } & Readonly<Omit<KswinOptions, 'alpha' | 'window'>>);

/** The same detector with its setting chosen: what the calibrated detector runs on standardized values. */
export type CalibratedSpec =
  | ({ readonly kind: 'page-hinkley' } & Readonly<PageHinkleyOptions>)
  | ({ readonly kind: 'adwin' } & Readonly<AdwinOptions>)
  | ({ readonly kind: 'kswin' } & Readonly<Omit<KswinOptions, 'window'>>);

/**
 * Options calibration gives a detector where the spec is silent, in units of the standardized signal (warm-up
 * mean 0, standard deviation 1). Page-Hinkley: delta = 0.5, the reference value of a CUSUM tuned to a shift of
 * one standard deviation (Page 1954; Montgomery, Introduction to Statistical Quality Control, k = delta / 2), and
 * mode 'up', since on an error signal only a rise is a fault (a falling error is the learner doing its job; set
 * mode 'both' for an input signal). alpha keeps River's 1 - 1e-4, a choice between keeping the budget and
 * detecting fast (docs/drift-calibration.md): with it the cumulative sum settles delta / (1 - alpha) below zero
 * and wanders there, the threshold grows with that wander (linearly in the signal's long-run deviation), and the
 * budget held within about 25 % on independent null streams; with alpha = 1 (no forgetting) thresholds are 3-6x
 * smaller and detections faster, but the false-alarm rate depends exponentially on the long-run variance a
 * 5-minute segment estimates, and the same streams gave 0.35-1.6x the budget.
 * ADWIN and KSWIN keep River's defaults: they are scale-free.
 */
export const CALIBRATED_PAGE_HINKLEY_DEFAULTS = { delta: 0.5, mode: 'up' } as const;

/** Null runs simulated by default: at the budget most of them alarm once (see calibrateThreshold). */
export const DEFAULT_CALIBRATION_RUNS = 40;

/**
 * Length of a null run, in budget periods (1 / alarmsPerTick ticks). A detector's chance to alarm can grow with
 * the time since its reset (Page-Hinkley with forgetting, alpha < 1, loses the downward drift of its cumulative sum
 * after about 1 / (1 - alpha) ticks; ADWIN's window grows), so runs of one period can mostly see the calm start:
 * on simulated null streams they underestimated River's Page-Hinkley's rate by 15-35 %. With two periods most runs
 * alarm, and the estimate matched (docs/drift-calibration.md).
 */
export const RUN_BUDGET_PERIODS = 2;

/**
 * Products of the autocorrelation time counted as one unit of ThresholdCalibration.advance: on this project's
 * machine one simulated Page-Hinkley update (with its bootstrap draw) took about 60 ns and one product about 2 ns.
 */
export const AUTOCORRELATION_PRODUCTS_PER_UPDATE = 32;

export interface CalibrationOptions {
  /** Null runs to simulate (default DEFAULT_CALIBRATION_RUNS); more runs, a steadier threshold, a longer calibration. */
  readonly runs?: number;
  /** Length of each run in ticks (default RUN_BUDGET_PERIODS budget periods, ceil(2 / alarmsPerTick)). */
  readonly runTicks?: number;
  /** Seed of the resampling (default 1). */
  readonly seed?: number;
}

/** What calibration chose and why: every number a reader needs to judge the threshold. */
export interface Calibration {
  /** The detector to run, with its chosen setting, on values standardized as (x - center) / scale. */
  readonly spec: CalibratedSpec;
  /** The option calibration set and its value. */
  readonly setting: { readonly name: 'threshold' | 'delta' | 'alpha'; readonly value: number };
  /** Mean and standard deviation of the calibration segment (scale 1 when the segment is constant). */
  readonly center: number;
  readonly scale: number;
  /** Integrated autocorrelation time of the segment, in ticks, and the bootstrap's mean block length from it. */
  readonly autocorrelationTime: number;
  readonly meanBlockLength: number;
  readonly runs: number;
  readonly runTicks: number;
  /** Runs that would have alarmed at the chosen setting. */
  readonly alarmedRuns: number;
  /** Estimated false alarms per tick at the chosen setting (alarms / ticks at risk over the runs) and the budget. */
  readonly estimatedAlarmsPerTick: number;
  readonly budgetAlarmsPerTick: number;
}

/**
 * A detector read for calibration: fed the null runs with a setting at which it never fires, it reports after
 * each update how alarming its statistic has been so far ("score", larger is more alarming), so that a detector
 * with setting `settingFor(s)` fires for the first time at the first update whose score exceeds s.
 */
interface Probe {
  update(x: number): void;
  score(): number;
}

interface ProbeKind {
  readonly settingName: 'threshold' | 'delta' | 'alpha';
  create(spec: UncalibratedSpec): Probe;
  /** The setting at which a detector fires exactly when a run's score exceeds `score`. */
  settingFor(score: number): number;
}

const PROBES: Readonly<Record<CalibratableKind, ProbeKind>> = {
  // Fires iff statistic > threshold (src/drift/page-hinkley.ts).
  'page-hinkley': {
    settingName: 'threshold',
    create(spec) {
      const { kind: _kind, ...options } = spec as { kind: 'page-hinkley' } & PageHinkleyOptions;
      const detector = new PageHinkley({ ...CALIBRATED_PAGE_HINKLEY_DEFAULTS, ...options, threshold: Infinity });
      return { update: (x) => void detector.update(x), score: () => detector.peakStatistic };
    },
    settingFor: (score) => score,
  },
  // Fires iff some tested split's firing delta g is below delta (src/drift/adwin.ts): score -ln g. A hair below
  // exp(-s), so that a run whose score is exactly s does not fire whatever the rounding of exp(-(-ln g)).
  adwin: {
    settingName: 'delta',
    create(spec) {
      const { kind: _kind, ...options } = spec as { kind: 'adwin' } & AdwinOptions;
      const detector = new Adwin({ ...options, delta: 0 });
      return { update: (x) => void detector.update(x), score: () => -Math.log(detector.smallestFiringDelta) };
    },
    settingFor: (score) => Math.exp(-score) * (1 - 1e-9),
  },
  // Fires iff some test's p-value <= alpha (with D > 0.1; src/drift/kswin.ts): score -ln p. A hair below exp(-s)
  // so that a run whose score is exactly s does not fire.
  kswin: {
    settingName: 'alpha',
    create(spec) {
      const { kind: _kind, ...options } = spec as { kind: 'kswin' } & KswinOptions;
      const detector = new Kswin({ ...options, alpha: 0 });
      return { update: (x) => void detector.update(x), score: () => -Math.log(detector.lowestFiringPValue) };
    },
    settingFor: (score) => Math.exp(-score) * (1 - 1e-9),
  },
};

/**
 * Chooses the setting of a detector (Page-Hinkley's threshold, ADWIN's delta, KSWIN's alpha) so that on the null
 * behaviour of a signal it raises at most `alarmsPerTick` false alarms per tick, from a calibration segment of
 * that signal assumed free of drift.
 *
 * Method. The segment is standardized (its mean and standard deviation) and resampled by the stationary bootstrap
 * (StationaryBootstrap) with a mean block of BLOCK_LENGTH_IN_TAU integrated autocorrelation times, so the
 * resampled runs keep the segment's values, tails and short-range dependence. `runs` null runs of `runTicks`
 * ticks each are fed, from a fresh start, to the detector at a setting where it never fires. Nothing before a
 * first alarm depends on the setting, so from each run's record of its statistic (peakStatistic,
 * smallestFiringDelta, lowestFiringPValue) the tick T_i(s) at which a detector with any setting s would have
 * alarmed first is known exactly. A detector resets after each alarm, so its false alarms form a renewal process
 * whose rate is 1 / E[T]; the rate at setting s is estimated as (runs that alarmed) / (ticks at risk), ticks at
 * risk = sum_i min(T_i(s), runTicks): the censored-exponential estimate. The chosen setting is the most sensitive
 * one at which this estimate plus one Poisson standard error ((alarmed + sqrt(alarmed)) / ticks at risk), and
 * the same at every less sensitive setting, stays within the budget: the budget is a ceiling, not a target.
 *
 * Assumptions, each a way it can go wrong: the segment is free of drift and like the stream's later null (a
 * learner still improving during it makes the threshold too high: conservative; a calmer segment than what
 * follows makes it too low); dependence beyond the block length is lost (long-memory signals alarm more than
 * budgeted); a budget far below one alarm per run is extrapolated from few alarms (`alarmedRuns` says how many).
 *
 * Cost: runs x runTicks detector updates, once; no allocation per update.
 *
 * @throws RangeError on a segment of fewer than 8 values or with a non-finite value, a budget outside (0, 1), or
 *   runs whose statistic never becomes defined (runTicks shorter than the detector's own warm-up).
 */
export function calibrateThreshold(
  spec: UncalibratedSpec,
  segment: ArrayLike<number>,
  alarmsPerTick: number,
  options: CalibrationOptions = {},
): Calibration {
  const calibration = new ThresholdCalibration(spec, segment, alarmsPerTick, options);
  calibration.advance(Infinity);
  return calibration.result();
}

/**
 * calibrateThreshold in steps: the same calibration, with the same result, whose null runs are simulated a bounded
 * number of detector updates at a time (`advance`), so that a caller can spread it over the ticks of its stream
 * instead of stalling every stream of the thread for the whole of it (0.2-0.5 s for Page-Hinkley at the default
 * budget; docs/performance.md). Nothing in it depends on how the work is cut: the runs see the same resampled
 * values in the same order.
 */
export class ThresholdCalibration {
  private readonly kind: ProbeKind;
  private readonly spec: UncalibratedSpec;
  private readonly alarmsPerTick: number;
  private readonly runs: number;
  private readonly runTicks: number;
  private readonly seed: number;
  private readonly center: number;
  private readonly scale: number;
  private readonly standardized: Float64Array;
  // The first phase: the segment's autocorrelation time, which sets the bootstrap's block length.
  private readonly autocorrelation: AutocorrelationTime;
  private autocorrelationTime = NaN;
  private meanBlockLength = NaN;
  private bootstrap: StationaryBootstrap | null = null;
  // Per run, the ticks (1-based) at which its score reached a new high, and those highs: T_i(s) is the first such
  // tick whose high exceeds s.
  private readonly recordTicks: number[][] = [];
  private readonly recordScores: number[][] = [];
  /** The run being simulated (its probe and record high so far), and its next tick; `run === runs` when done. */
  private run = 0;
  private tick = 1;
  private probe: Probe | null = null;
  private best = -Infinity;

  /** @throws RangeError as calibrateThreshold does, for its arguments. */
  constructor(spec: UncalibratedSpec, segment: ArrayLike<number>, alarmsPerTick: number, options: CalibrationOptions = {}) {
    const kind = PROBES[spec?.kind];
    if (kind === undefined) {
      throw new RangeError(`calibration: cannot calibrate '${String(spec?.kind)}' (calibratable: ${CALIBRATABLE_KINDS.join(', ')})`);
    }
    if (!(alarmsPerTick > 0 && alarmsPerTick < 1)) {
      throw new RangeError(`calibration: the budget must be in (0, 1) false alarms per tick, got ${String(alarmsPerTick)}`);
    }
    const runs = options.runs ?? DEFAULT_CALIBRATION_RUNS;
    const runTicks = options.runTicks ?? Math.ceil(RUN_BUDGET_PERIODS / alarmsPerTick);
    if (!Number.isSafeInteger(runs) || runs < 1) throw new RangeError(`calibration: runs must be a positive integer, got ${String(runs)}`);
    if (!Number.isSafeInteger(runTicks) || runTicks < 1) throw new RangeError(`calibration: runTicks must be a positive integer, got ${String(runTicks)}`);
    const seed = options.seed ?? 1;

    const { center, scale, standardized } = standardize(segment);
    this.kind = kind;
    this.spec = spec;
    this.alarmsPerTick = alarmsPerTick;
    this.runs = runs;
    this.runTicks = runTicks;
    this.seed = seed;
    this.center = center;
    this.scale = scale;
    this.standardized = standardized;
    this.autocorrelation = new AutocorrelationTime(standardized);
  }

  /**
   * Detector updates still to simulate: runs x runTicks in all, counted down by advance. The autocorrelation time,
   * computed first, is not in it: its length is known only once it is done.
   */
  get remaining(): number {
    return this.run >= this.runs ? 0 : (this.runs - this.run) * this.runTicks - (this.tick - 1);
  }

  /**
   * Does up to `maxUpdates` more units of work (Infinity: all of it); true once every run is done. A unit is one
   * simulated detector update, or AUTOCORRELATION_PRODUCTS_PER_UPDATE products of the autocorrelation time, which
   * comes first (about as long: tens of ns on this project's machine); every call with a budget makes progress.
   */
  advance(maxUpdates: number): boolean {
    if (!(maxUpdates >= 0) || (Number.isFinite(maxUpdates) && !Number.isInteger(maxUpdates))) {
      throw new RangeError(`calibration: advance takes a whole number of updates or Infinity, got ${String(maxUpdates)}`);
    }
    let budget = maxUpdates;
    if (this.bootstrap === null && budget > 0) {
      const products = this.autocorrelation.advance(budget * AUTOCORRELATION_PRODUCTS_PER_UPDATE);
      budget -= Math.ceil(products / AUTOCORRELATION_PRODUCTS_PER_UPDATE);
      if (this.autocorrelation.done) {
        const { standardized } = this;
        this.autocorrelationTime = this.autocorrelation.value;
        this.meanBlockLength = Math.min(Math.max(1, Math.ceil(BLOCK_LENGTH_IN_TAU * this.autocorrelationTime)), Math.max(1, Math.floor(standardized.length / 4)));
        this.bootstrap = new StationaryBootstrap(standardized, this.meanBlockLength, this.seed);
      }
    }
    const { runs, runTicks, bootstrap } = this;
    if (bootstrap === null) return false;
    while (this.run < runs && budget > 0) {
      if (this.probe === null) {
        this.probe = this.kind.create(this.spec);
        bootstrap.restart();
        this.recordTicks.push([]);
        this.recordScores.push([]);
        this.best = -Infinity;
      }
      const probe = this.probe;
      const ticks = this.recordTicks[this.run];
      const scores = this.recordScores[this.run];
      let best = this.best;
      const last = Math.min(runTicks, this.tick - 1 + budget);
      for (let t = this.tick; t <= last; t++) {
        probe.update(bootstrap.next());
        const score = probe.score();
        if (score > best) {
          best = score;
          ticks.push(t);
          scores.push(score);
        }
      }
      budget -= last - this.tick + 1;
      this.best = best;
      this.tick = last + 1;
      if (this.tick > runTicks) {
        this.run++;
        this.tick = 1;
        this.probe = null;
      }
    }
    return this.run >= runs;
  }

  /**
   * The setting chosen from the runs (see calibrateThreshold).
   * @throws Error before advance has simulated every run; RangeError when the runs never computed the statistic.
   */
  result(): Calibration {
    if (this.run < this.runs) throw new Error(`calibration: ${this.remaining} simulated updates are still to run; advance() until it returns true`);
    const { kind, spec, runs, runTicks, recordTicks, recordScores, alarmsPerTick } = this;
    // A run's record highs increase strictly, so its first alarm at a threshold is found by bisection.
    const firstAbove = (scores: readonly number[], threshold: number): number => {
      let lo = 0;
      let hi = scores.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (scores[mid] > threshold) hi = mid;
        else lo = mid + 1;
      }
      return lo < scores.length ? lo : -1;
    };
    const rateAt = (threshold: number): { alarmed: number; rate: number } => {
      let alarmed = 0;
      let atRisk = 0;
      for (let run = 0; run < runs; run++) {
        const first = firstAbove(recordScores[run], threshold);
        if (first >= 0) {
          alarmed++;
          atRisk += recordTicks[run][first];
        } else atRisk += runTicks;
      }
      return { alarmed, rate: alarmed / atRisk };
    };
    // The budget holds with a margin of one Poisson standard error (alarmed + sqrt(alarmed)): the budget is a
    // ceiling, and the estimate is itself noisy.
    const withinBudget = (r: { alarmed: number; rate: number }) =>
      r.alarmed === 0 || (r.alarmed + Math.sqrt(r.alarmed)) * (r.rate / r.alarmed) <= alarmsPerTick;

    // The candidates are the runs' finite record highs. Records are finite or +Infinity (a NaN or -Infinity score
    // never beats the best so far), so a run's finite ones are a prefix of it.
    let lowest = Infinity;
    let highest = -Infinity;
    for (const scores of recordScores) {
      const firstInfinite = firstAbove(scores, Number.MAX_VALUE);
      const finite = firstInfinite < 0 ? scores.length : firstInfinite;
      if (finite === 0) continue;
      lowest = Math.min(lowest, scores[0]);
      highest = Math.max(highest, scores[finite - 1]);
    }
    if (!(lowest <= highest)) {
      throw new RangeError(`calibration: '${spec.kind}' never computed its statistic within runs of ${runTicks} ticks; lengthen runTicks`);
    }
    // The most sensitive setting within the budget: the lowest candidate at which it holds. Lowering the threshold
    // can only bring alarms more and earlier, so the margin only grows, and between two neighbouring candidates
    // nothing changes (a run alarms at the first record above the threshold). So the lowest float64 threshold within
    // the budget is that candidate, found by bisection over the float64s between the lowest and highest record (at
    // most 64 halvings; at the highest no run alarms). A smooth signal's statistic sets a new high on most ticks:
    // sorting its millions of records was most of this step before (290 ms of a calibration in driftline run).
    let lo = orderedKey(lowest);
    let hi = orderedKey(highest);
    while (lo < hi) {
      const mid = lo + ((hi - lo) >> 1n);
      if (withinBudget(rateAt(floatOfKey(mid)))) hi = mid;
      else lo = mid + 1n;
    }
    // -0 and +0 are one candidate; the records' own zero is kept (+0 when a run has one).
    let chosen = floatOfKey(lo);
    if (chosen === 0) chosen = recordScores.some((scores) => scores.some((x) => Object.is(x, 0))) ? 0 : -0;
    const chosenRate = rateAt(chosen);

    const value = kind.settingFor(chosen);
    return {
      spec: calibratedSpec(spec, kind.settingName, value),
      setting: { name: kind.settingName, value },
      center: this.center,
      scale: this.scale,
      autocorrelationTime: this.autocorrelationTime,
      meanBlockLength: this.meanBlockLength,
      runs,
      runTicks,
      alarmedRuns: chosenRate.alarmed,
      estimatedAlarmsPerTick: chosenRate.rate,
      budgetAlarmsPerTick: alarmsPerTick,
    };
  }
}

const SIGN_BIT = 1n << 63n;
const ALL_BITS = (1n << 64n) - 1n;
const keyView = new DataView(new ArrayBuffer(8));
/** A 64-bit key that orders float64s as numbers do (-0 just below +0), for bisection over the float64s. */
function orderedKey(x: number): bigint {
  keyView.setFloat64(0, x);
  const bits = keyView.getBigUint64(0);
  return (bits & SIGN_BIT) !== 0n ? ~bits & ALL_BITS : bits | SIGN_BIT;
}
function floatOfKey(key: bigint): number {
  keyView.setBigUint64(0, (key & SIGN_BIT) !== 0n ? key ^ SIGN_BIT : ~key & ALL_BITS);
  return keyView.getFloat64(0);
}

function calibratedSpec(spec: UncalibratedSpec, name: 'threshold' | 'delta' | 'alpha', value: number): CalibratedSpec {
  const defaults = spec.kind === 'page-hinkley' ? CALIBRATED_PAGE_HINKLEY_DEFAULTS : {};
  return { ...defaults, ...spec, [name]: value } as CalibratedSpec;
}

function standardize(segment: ArrayLike<number>): { center: number; scale: number; standardized: Float64Array } {
  const n = segment.length;
  if (!(n >= 8)) throw new RangeError(`calibration: the calibration segment needs at least 8 values, got ${n}`);
  let center = 0;
  for (let i = 0; i < n; i++) {
    const x = segment[i];
    if (!Number.isFinite(x)) throw new RangeError(`calibration: calibration value ${i} is ${String(x)}`);
    center += x;
  }
  center /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (segment[i] - center) ** 2;
  const sd = Math.sqrt(variance / (n - 1));
  // A constant segment has no scale; 1 keeps the values as they are, and any later move is large beside it.
  const scale = sd > 0 ? sd : 1;
  const standardized = new Float64Array(n);
  for (let i = 0; i < n; i++) standardized[i] = (segment[i] - center) / scale;
  return { center, scale, standardized };
}
