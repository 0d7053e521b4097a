// Scoring a drift detector on a stream whose change points are known, always beside a baseline that knows nothing.
import { baselineFor } from './baseline-detectors.js';
import type { DriftDetector } from './detector.js';

/**
 * How alarms that land inside a change's window are counted (see `evaluateDetections`, which defines both):
 *
 * - 'river-pr-1963': every alarm inside a change's window is a hit, repeats included; only alarms inside no window
 *   are false alarms. The definition of the draft River module (online-ml/river pull request #1963).
 * - 'first-alarm': a change is detected by its first alarm inside its window; every other alarm, a repeat inside
 *   the window included, is a false alarm. What an operator pays for: each alarm beyond the first is one more
 *   needless reaction.
 */
export type AlarmCounting = 'river-pr-1963' | 'first-alarm';

/** The counting definitions, in a fixed order (the default first). */
export const ALARM_COUNTINGS: readonly AlarmCounting[] = ['river-pr-1963', 'first-alarm'];

/**
 * How alarms are matched to change points, and the unit of the false alarm rate. All in ticks (0-based stream
 * indices).
 */
export interface DriftEvaluationOptions {
  /**
   * How late an alarm may come and still detect a change: an alarm at tick a detects the change at c when
   * c - maxEarlyTicks <= a <= c + maxDelayTicks (both bounds inclusive). A positive integer; no default, as the
   * acceptable delay depends on the stream (River: `delta_max`).
   */
  readonly maxDelayTicks: number;
  /** How early an alarm may come and still detect a change (River: `delta_pre`). Non-negative integer, default 0. */
  readonly maxEarlyTicks?: number;
  /** The false alarm rate is quoted per this many ticks (River: `unit`). Positive integer, default 1. */
  readonly rateUnitTicks?: number;
  /** How alarms inside a change's window count (default 'river-pr-1963'); see `AlarmCounting`. */
  readonly counting?: AlarmCounting;
}

/** What became of one true change point. */
export interface ChangePointOutcome {
  /** The tick the change happens at (the first tick of the new regime). */
  readonly changePoint: number;
  /**
   * The alarms counted as hits on this change, in order (empty: missed): under 'river-pr-1963' every alarm its
   * window took, under 'first-alarm' only the first.
   */
  readonly alarms: readonly number[];
  /** Ticks from the change to its first matched alarm (negative for an early alarm); null when missed. */
  readonly delayTicks: number | null;
}

/**
 * A detector's alarms scored against the true change points of one stream. Figures that are undefined for the
 * case at hand (River returns nan for them) are null; every tick figure counts 0-based stream indices.
 */
export interface DriftEvaluation {
  /** The counting definition every figure below uses; a figure quoted from this evaluation names it. */
  readonly counting: AlarmCounting;
  readonly streamLengthTicks: number;
  readonly maxDelayTicks: number;
  readonly maxEarlyTicks: number;
  readonly rateUnitTicks: number;
  /** The alarm ticks, as given. */
  readonly alarms: readonly number[];
  /** One outcome per change point, in order. */
  readonly changePoints: readonly ChangePointOutcome[];
  /**
   * The false alarms, in order: alarms inside no change's window; under 'first-alarm' also every alarm after the
   * first inside a window.
   */
  readonly falseAlarms: readonly number[];
  /** Change points no alarm was matched to, in order. */
  readonly missedChangePoints: readonly number[];
  /**
   * Alarms counted as hits (River: the hits' total length): under 'river-pr-1963' every alarm inside some change's
   * window, under 'first-alarm' one per detected change.
   */
  readonly truePositiveAlarmCount: number;
  /** Change points with at least one matched alarm. */
  readonly detectedChangeCount: number;
  /** Share of alarms that detected a change; null without alarms. */
  readonly precision: number | null;
  /**
   * Hits / (hits + missed changes); null with neither. Under 'river-pr-1963' every alarm in a window is a hit, so
   * repeated alarms for one change raise it (read `episodeRecall` beside it); under 'first-alarm' it equals
   * `episodeRecall`.
   */
  readonly recall: number | null;
  /** Share of change points detected; null without change points. */
  readonly episodeRecall: number | null;
  /** Harmonic mean of precision and episodeRecall (0 when both are 0); null when either is null. */
  readonly f1: number | null;
  /** MDR: share of change points missed, 1 - episodeRecall; null without change points. */
  readonly missedDetectionRate: number | null;
  /** MTD: mean over detected changes of the ticks to their first alarm; missed ones are left out, null if all are. */
  readonly meanDetectionDelayTicks: number | null;
  /** meanDetectionDelayTicks / maxDelayTicks; null with it. */
  readonly normalizedDetectionTime: number | null;
  /** False alarms per `rateUnitTicks` ticks of stream. */
  readonly falseAlarmRate: number;
  /** MTFA: mean ticks between consecutive false alarms; null below two false alarms. */
  readonly meanTicksBetweenFalseAlarms: number | null;
  /**
   * MTR = MTFA / MTD * (1 - MDR), higher is better; null when MTFA or MTD is null, Infinity when MTD is 0 (and
   * MTFA defined).
   */
  readonly meanTimeRatio: number | null;
}

/**
 * Scores alarms against known change points, under one of two named counting definitions (`options.counting`;
 * every result carries the one it used).
 *
 * 'river-pr-1963' (the default) is the definition of River's drift evaluation module, `river/drift/evaluate.py`
 * (functions `match`, `precision`, `recall`, `episode_recall`, `f1`, `missed_detection_rate`, `detection_delay`,
 * `normalized_detection_time`, `false_alarm_rate`, `mean_time_between_false_alarms`, `mean_time_ratio`, gathered
 * by `report`). That module is the draft of online-ml/river pull request #1963 (file at commit
 * 08ef02c2cfad6c4b1cb6332dc85f4c2cdfbe0768); river==0.26.1 ships no drift evaluation module. Its definitions
 * follow Bifet (2017) for MTFA, MTD, MDR and MTR and Cerqueira et al. (2026) for the windowed matching. In its
 * `match`, every alarm inside a change's window [c - delta_pre, c + delta_max] is a hit: a repeat alarm after a
 * change is not a false alarm there, and it raises `precision` and `recall`, not `episodeRecall`. (CapyMOA's
 * EvaluateDriftDetector treats repeats the same way, and also ignores alarms after the last window.) So "River
 * counts repeat alarms after a change as false" is not what that code does.
 *
 * 'first-alarm' is the strict reading, and what an operator pays for (each alarm starts a reaction: a shadow
 * fork, a recalibration, a page): a change is detected by the first alarm inside its window; every other alarm, a
 * repeat inside the window included, is a false alarm.
 * `falseAlarms`, `falseAlarmRate` and `meanTicksBetweenFalseAlarms` then include the repeats, `precision` is
 * detected changes / alarms, and `recall` equals `episodeRecall`. Alarms [110, 120, 900] against the change at 100
 * with maxDelayTicks 50: one false alarm (900) under 'river-pr-1963', two (120, 900) under 'first-alarm'.
 *
 * Matching: change c owns the window [c - maxEarlyTicks, c + maxDelayTicks] (both bounds inclusive). Under
 * 'river-pr-1963' each alarm goes to the earliest window that contains it, or else is a false alarm. Under
 * 'first-alarm' each alarm goes to the earliest window that contains it and whose change no earlier alarm has
 * detected, or else is a false alarm (so with overlapping windows, a second alarm may detect the next change).
 * Delays, MDR, MTD and the rest follow from the matching as in River. Point change points only (River also takes
 * (start, end) intervals for gradual drift).
 *
 * Under 'river-pr-1963' every figure is computed in River's operation order, so the doubles are the same (checked
 * bit for bit in test/drift-evaluate.test.ts). Matching is one merge pass, O(alarms + change points) under
 * 'river-pr-1963' (both lists are strictly increasing and all windows have the same width), O(alarms x changes
 * per window) under 'first-alarm'.
 *
 * @param alarms ticks at which the detector fired, strictly increasing integers in [0, streamLength)
 * @param changePoints true change ticks, strictly increasing integers in [0, streamLength)
 * @param streamLength ticks in the stream, a positive integer
 * @throws RangeError, naming the offending value, on input that breaks any of the above or on bad options.
 */
export function evaluateDetections(
  alarms: readonly number[],
  changePoints: readonly number[],
  streamLength: number,
  options: DriftEvaluationOptions,
): DriftEvaluation {
  const { maxDelayTicks, maxEarlyTicks, rateUnitTicks, counting } = checkOptions(options);
  if (!Number.isSafeInteger(streamLength) || streamLength < 1) {
    throw new RangeError(`evaluateDetections: streamLength must be a positive integer, got ${String(streamLength)}`);
  }
  checkTicks('alarms', alarms, streamLength);
  checkTicks('changePoints', changePoints, streamLength);

  const matched: number[][] = changePoints.map(() => []);
  const falseAlarms: number[] = [];
  let window = 0;
  for (const alarm of alarms) {
    // Windows' upper bounds increase with the change points, so windows that end before this alarm end before
    // every later alarm too; the first window still open is the earliest that can contain it.
    while (window < changePoints.length && changePoints[window] + maxDelayTicks < alarm) window++;
    if (counting === 'river-pr-1963') {
      if (window < changePoints.length && changePoints[window] - maxEarlyTicks <= alarm) matched[window].push(alarm);
      else falseAlarms.push(alarm);
      continue;
    }
    // 'first-alarm': the earliest open window that holds the alarm and whose change is still undetected.
    let owner = -1;
    for (let j = window; j < changePoints.length && changePoints[j] - maxEarlyTicks <= alarm; j++) {
      if (matched[j].length === 0) {
        owner = j;
        break;
      }
    }
    if (owner >= 0) matched[owner].push(alarm);
    else falseAlarms.push(alarm);
  }

  const outcomes: ChangePointOutcome[] = [];
  const missed: number[] = [];
  let truePositives = 0;
  let detected = 0;
  let delaySum = 0;
  for (let i = 0; i < changePoints.length; i++) {
    const hits = matched[i];
    const delayTicks = hits.length > 0 ? hits[0] - changePoints[i] : null;
    outcomes.push({ changePoint: changePoints[i], alarms: hits, delayTicks });
    truePositives += hits.length;
    if (delayTicks === null) missed.push(changePoints[i]);
    else {
      detected++;
      delaySum += delayTicks;
    }
  }

  const precision = alarms.length === 0 ? null : truePositives / alarms.length;
  const recallDenominator = truePositives + missed.length;
  const recall = recallDenominator === 0 ? null : truePositives / recallDenominator;
  const episodeRecall = changePoints.length === 0 ? null : detected / changePoints.length;
  let f1: number | null = null;
  if (precision !== null && episodeRecall !== null) {
    f1 = precision + episodeRecall === 0 ? 0 : (2 * precision * episodeRecall) / (precision + episodeRecall);
  }
  const missedDetectionRate = episodeRecall === null ? null : 1 - episodeRecall;
  const meanDetectionDelayTicks = detected === 0 ? null : delaySum / detected;
  const normalizedDetectionTime = meanDetectionDelayTicks === null ? null : meanDetectionDelayTicks / maxDelayTicks;
  const falseAlarmRate = (falseAlarms.length / streamLength) * rateUnitTicks;

  let meanTicksBetweenFalseAlarms: number | null = null;
  if (falseAlarms.length >= 2) {
    let gapSum = 0;
    for (let i = 1; i < falseAlarms.length; i++) gapSum += falseAlarms[i] - falseAlarms[i - 1];
    meanTicksBetweenFalseAlarms = gapSum / (falseAlarms.length - 1);
  }

  let meanTimeRatio: number | null = null;
  if (meanTicksBetweenFalseAlarms !== null && meanDetectionDelayTicks !== null) {
    // MTD > 0 is not guaranteed: an early alarm (maxEarlyTicks > 0) has a negative delay, as in River.
    meanTimeRatio = meanDetectionDelayTicks === 0
      ? Infinity
      : (meanTicksBetweenFalseAlarms / meanDetectionDelayTicks) * (1 - (missedDetectionRate as number));
  }

  return {
    counting,
    streamLengthTicks: streamLength,
    maxDelayTicks,
    maxEarlyTicks,
    rateUnitTicks,
    alarms: alarms.slice(),
    changePoints: outcomes,
    falseAlarms,
    missedChangePoints: missed,
    truePositiveAlarmCount: truePositives,
    detectedChangeCount: detected,
    precision,
    recall,
    episodeRecall,
    f1,
    missedDetectionRate,
    meanDetectionDelayTicks,
    normalizedDetectionTime,
    falseAlarmRate,
    meanTicksBetweenFalseAlarms,
    meanTimeRatio,
  };
}

/** Options of `evaluateDetector`: the matching options, and optionally the baseline to score beside. */
export interface DetectorEvaluationOptions extends DriftEvaluationOptions {
  /**
   * A fresh detector to score as the baseline instead of `baselineFor(changePoints.length, stream.length)`. Its
   * `name` property, if it has one, is reported as `baselineName`.
   */
  readonly baseline?: DriftDetector;
}

/** A detector's evaluation beside its baseline's, on the same stream, change points and options. */
export interface DetectorScore {
  readonly detector: DriftEvaluation;
  readonly baseline: DriftEvaluation;
  /** e.g. 'never' or 'periodic(1001)'; 'custom' for a baseline passed in without a name. */
  readonly baselineName: string;
}

/**
 * The ticks at which `detector` fires on `stream`, fed one value at a time from index 0 (River's
 * `river/drift/evaluate.py` `score` loop). The detector is used as it is: pass a fresh one.
 *
 * @throws RangeError, before the detector sees anything, if a value of `stream` is not a finite number.
 */
export function detectorAlarms(detector: DriftDetector, stream: ArrayLike<number>): number[] {
  checkStream(stream);
  const alarms: number[] = [];
  for (let i = 0; i < stream.length; i++) if (detector.update(stream[i]).driftDetected) alarms.push(i);
  return alarms;
}

/**
 * Runs `detector` over `stream` and scores its alarms against `changePoints` with `evaluateDetections`, beside a
 * baseline that looks at no data (by default `baselineFor(changePoints.length, stream.length)`: as many evenly
 * spread alarms as there are changes, or none). A score is only read beside its baseline's.
 *
 * The detector is used as it is: pass a fresh one.
 *
 * @throws RangeError on bad options, change points or stream values, before any detector runs.
 */
export function evaluateDetector(
  detector: DriftDetector,
  stream: ArrayLike<number>,
  changePoints: readonly number[],
  options: DetectorEvaluationOptions,
): DetectorScore {
  checkOptions(options);
  checkStream(stream);
  if (stream.length < 1) throw new RangeError('evaluateDetector: stream must hold at least one value');
  checkTicks('changePoints', changePoints, stream.length);
  const baseline = options.baseline ?? baselineFor(changePoints.length, stream.length);
  const baselineName = (baseline as { name?: unknown }).name;
  return {
    detector: evaluateDetections(detectorAlarms(detector, stream), changePoints, stream.length, options),
    baseline: evaluateDetections(detectorAlarms(baseline, stream), changePoints, stream.length, options),
    baselineName: typeof baselineName === 'string' ? baselineName : 'custom',
  };
}

function checkOptions(options: DriftEvaluationOptions): Required<DriftEvaluationOptions> {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('drift evaluation: options { maxDelayTicks } are required');
  }
  const { maxDelayTicks, maxEarlyTicks = 0, rateUnitTicks = 1, counting = 'river-pr-1963' } = options;
  if (!Number.isSafeInteger(maxDelayTicks) || maxDelayTicks < 1) {
    throw new RangeError(`drift evaluation: maxDelayTicks must be a positive integer, got ${String(maxDelayTicks)}`);
  }
  if (!Number.isSafeInteger(maxEarlyTicks) || maxEarlyTicks < 0) {
    throw new RangeError(`drift evaluation: maxEarlyTicks must be a non-negative integer, got ${String(maxEarlyTicks)}`);
  }
  if (!Number.isSafeInteger(rateUnitTicks) || rateUnitTicks < 1) {
    throw new RangeError(`drift evaluation: rateUnitTicks must be a positive integer, got ${String(rateUnitTicks)}`);
  }
  if (!(ALARM_COUNTINGS as readonly unknown[]).includes(counting)) {
    throw new RangeError(`drift evaluation: counting must be one of ${ALARM_COUNTINGS.map((c) => `'${c}'`).join(', ')}, got ${String(counting)}`);
  }
  return { maxDelayTicks, maxEarlyTicks, rateUnitTicks, counting };
}

function checkTicks(what: string, ticks: readonly number[], streamLength: number): void {
  if (!Array.isArray(ticks)) throw new TypeError(`drift evaluation: ${what} must be an array of ticks`);
  for (let i = 0; i < ticks.length; i++) {
    const tick = ticks[i];
    if (!Number.isSafeInteger(tick) || tick < 0 || tick >= streamLength) {
      throw new RangeError(
        `drift evaluation: ${what}[${i}] = ${String(tick)} is not a tick of the stream (an integer in [0, ${streamLength}))`,
      );
    }
    if (i > 0 && tick <= ticks[i - 1]) {
      throw new RangeError(
        `drift evaluation: ${what} must be strictly increasing, but ${what}[${i}] = ${tick} follows ${ticks[i - 1]}`,
      );
    }
  }
}

function checkStream(stream: ArrayLike<number>): void {
  if (stream === null || typeof stream !== 'object' || !Number.isSafeInteger(stream.length)) {
    throw new TypeError('drift evaluation: stream must be an array-like of numbers');
  }
  for (let i = 0; i < stream.length; i++) {
    const x = stream[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new RangeError(`drift evaluation: stream[${i}] = ${String(x)} is not a finite number`);
    }
  }
}
