// Scoring a drift detector on a stream whose change points are known, always beside a baseline that knows nothing.
import { baselineFor } from './baseline-detectors.js';
import type { DriftDetector } from './detector.js';

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
}

/** What became of one true change point. */
export interface ChangePointOutcome {
  /** The tick the change happens at (the first tick of the new regime). */
  readonly changePoint: number;
  /** Every alarm matched to this change, in order (empty: missed). */
  readonly alarms: readonly number[];
  /** Ticks from the change to its first matched alarm (negative for an early alarm); null when missed. */
  readonly delayTicks: number | null;
}

/**
 * A detector's alarms scored against the true change points of one stream. Figures that are undefined for the
 * case at hand (River returns nan for them) are null; every tick figure counts 0-based stream indices.
 */
export interface DriftEvaluation {
  readonly streamLengthTicks: number;
  readonly maxDelayTicks: number;
  readonly maxEarlyTicks: number;
  readonly rateUnitTicks: number;
  /** The alarm ticks, as given. */
  readonly alarms: readonly number[];
  /** One outcome per change point, in order. */
  readonly changePoints: readonly ChangePointOutcome[];
  /** Alarms inside no change's window, in order. */
  readonly falseAlarms: readonly number[];
  /** Change points no alarm was matched to, in order. */
  readonly missedChangePoints: readonly number[];
  /** Alarms that landed inside some change's window (River: the hits' total length). */
  readonly truePositiveAlarmCount: number;
  /** Change points with at least one matched alarm. */
  readonly detectedChangeCount: number;
  /** Share of alarms that detected a change; null without alarms. */
  readonly precision: number | null;
  /**
   * Matched alarms / (matched alarms + missed changes): every alarm in a window counts, so repeated alarms for one
   * change raise it (read `episodeRecall` beside it); null with neither.
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
 * Scores alarms against known change points with the definitions of River's drift evaluation module,
 * `river/drift/evaluate.py` (functions `match`, `precision`, `recall`, `episode_recall`, `f1`,
 * `missed_detection_rate`, `detection_delay`, `normalized_detection_time`, `false_alarm_rate`,
 * `mean_time_between_false_alarms`, `mean_time_ratio`, gathered by `report`). That module is the draft of
 * online-ml/river pull request #1963 (file at commit 08ef02c2cfad6c4b1cb6332dc85f4c2cdfbe0768); river==0.26.1
 * does not ship it. Its definitions follow Bifet (2017) for MTFA, MTD, MDR and MTR and Cerqueira et al. (2026)
 * for the windowed matching.
 *
 * Matching: change c owns the window [c - maxEarlyTicks, c + maxDelayTicks]; each alarm goes to the earliest
 * window that contains it, or else is a false alarm. A second alarm inside the same window is neither a false
 * alarm nor a second detection: it raises `recall` and `precision`, not `episodeRecall`. Point change points
 * only (River also takes (start, end) intervals for gradual drift).
 *
 * Every figure is computed in River's operation order, so the doubles are the same (checked bit for bit in
 * test/drift-evaluate.test.ts). Matching is one merge pass, O(alarms + change points), valid because both lists
 * are strictly increasing and all windows have the same width.
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
  const { maxDelayTicks, maxEarlyTicks, rateUnitTicks } = checkOptions(options);
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
    if (window < changePoints.length && changePoints[window] - maxEarlyTicks <= alarm) matched[window].push(alarm);
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
  const { maxDelayTicks, maxEarlyTicks = 0, rateUnitTicks = 1 } = options;
  if (!Number.isSafeInteger(maxDelayTicks) || maxDelayTicks < 1) {
    throw new RangeError(`drift evaluation: maxDelayTicks must be a positive integer, got ${String(maxDelayTicks)}`);
  }
  if (!Number.isSafeInteger(maxEarlyTicks) || maxEarlyTicks < 0) {
    throw new RangeError(`drift evaluation: maxEarlyTicks must be a non-negative integer, got ${String(maxEarlyTicks)}`);
  }
  if (!Number.isSafeInteger(rateUnitTicks) || rateUnitTicks < 1) {
    throw new RangeError(`drift evaluation: rateUnitTicks must be a positive integer, got ${String(rateUnitTicks)}`);
  }
  return { maxDelayTicks, maxEarlyTicks, rateUnitTicks };
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
