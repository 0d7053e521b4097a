/**
 * Scoring one detector's alarms on a two-session error stream for `driftline reproduce drift`: false alarms in
 * the first session per 10 minutes, delay after the boundary, repeats, under both counting definitions of
 * src/drift/evaluate.ts where they differ, and the trivial periodic alarm that spends the same false alarm budget.
 *
 * Ticks are 0-based indices of the joined stream; an alarm at tick a is the detector firing on the update with
 * tick a's value. The stream is cut in three:
 *
 *   [0, warmUpEnd)          warm-up: settling and calibration; alarms here are reported, never counted
 *   [warmUpEnd, boundary)   the scored first session: every alarm is a false alarm
 *   [boundary, length)      the second session: the first alarm at or after the boundary detects the change
 */
import { PeriodicDetector } from '../drift/baseline-detectors.js';
import { ALARM_COUNTINGS, evaluateDetections, type AlarmCounting } from '../drift/evaluate.js';

/** Where the stream is cut, and the goal. */
export interface ScoringFrame {
  /** Ticks in the stream. */
  readonly length: number;
  /** First tick of the second session. */
  readonly boundary: number;
  /** First scored tick of the first session (the warm-up is [0, warmUpEnd)). */
  readonly warmUpEnd: number;
  readonly binSeconds: number;
  /** The goal: at most this many false alarms per 10 minutes of the scored first session ... */
  readonly goalFalseAlarmsPer10Minutes: number;
  /** ... and a detection at most this many ticks after the boundary. */
  readonly goalDelayTicks: number;
}

/** Figures under one counting definition, over the scored stream [warmUpEnd, length), window = all of session 2. */
export interface CountedFigures {
  readonly counting: AlarmCounting;
  readonly falseAlarms: number;
  readonly precision: number | null;
  readonly recall: number | null;
}

export interface AlarmScore {
  /** Alarms in the warm-up (not counted anywhere else). */
  readonly warmUpAlarms: number;
  /** Alarms in the scored first session: all false. The same under both counting definitions. */
  readonly falseAlarms: number;
  readonly scoredFirstSessionTicks: number;
  /** falseAlarms per 10 minutes of scored first-session time (ticks x bin width). */
  readonly falseAlarmsPer10Minutes: number;
  /** Ticks from the boundary to the first alarm at or after it; null when no alarm comes in the second session. */
  readonly delayTicks: number | null;
  /** Alarms in the second session after the first one. */
  readonly repeatAlarms: number;
  /** River's (PR #1963) and first-alarm counting over the scored stream: they differ only in the repeats. */
  readonly counted: readonly CountedFigures[];
  readonly goalMet: boolean;
}

/**
 * Where the warm-up ends: the tick of the `warmUpValues`-th value the detectors are fed (they are fed only the
 * finite values of `signal`, so a detector that counts its updates reaches the end of its warm-up there).
 * @throws RangeError when the signal has no more than `warmUpValues` finite values before `boundary`.
 */
export function warmUpEndTick(signal: ArrayLike<number>, warmUpValues: number, boundary: number): number {
  let fed = 0;
  for (let i = 0; i < boundary; i++) {
    if (!Number.isFinite(signal[i])) continue;
    if (fed === warmUpValues) return i;
    fed++;
  }
  throw new RangeError(`the first session (${boundary} ticks) has no more than ${fed} fed values, not enough for a warm-up of ${warmUpValues}`);
}

/** Scores alarm ticks (strictly increasing, in [0, frame.length)) on the frame. */
export function scoreAlarms(alarms: readonly number[], frame: ScoringFrame): AlarmScore {
  const { length, boundary, warmUpEnd, binSeconds } = checkFrame(frame);
  let warmUpAlarms = 0;
  let falseAlarms = 0;
  let delayTicks: number | null = null;
  let repeatAlarms = 0;
  let previous = -1;
  for (const a of alarms) {
    if (!Number.isSafeInteger(a) || a < 0 || a >= length || a <= previous) {
      throw new RangeError(`scoreAlarms: alarms must be strictly increasing ticks in [0, ${length}), got ${a} after ${previous}`);
    }
    previous = a;
    if (a < warmUpEnd) warmUpAlarms++;
    else if (a < boundary) falseAlarms++;
    else if (delayTicks === null) delayTicks = a - boundary;
    else repeatAlarms++;
  }
  const scoredFirstSessionTicks = boundary - warmUpEnd;
  const falseAlarmsPer10Minutes = (falseAlarms / (scoredFirstSessionTicks * binSeconds)) * 600;
  // The same alarms through evaluateDetections, on the scored stream only, the change at the boundary and its
  // window the whole second session: the two definitions then differ exactly in the repeats.
  const scored = alarms.filter((a) => a >= warmUpEnd).map((a) => a - warmUpEnd);
  const counted = ALARM_COUNTINGS.map((counting): CountedFigures => {
    const e = evaluateDetections(scored, [boundary - warmUpEnd], length - warmUpEnd, { maxDelayTicks: Math.max(1, length - 1 - boundary), counting });
    return { counting, falseAlarms: e.falseAlarms.length, precision: e.precision, recall: e.recall };
  });
  return {
    warmUpAlarms,
    falseAlarms,
    scoredFirstSessionTicks,
    falseAlarmsPer10Minutes,
    delayTicks,
    repeatAlarms,
    counted,
    goalMet: falseAlarmsPer10Minutes <= frame.goalFalseAlarmsPer10Minutes && delayTicks !== null && delayTicks <= frame.goalDelayTicks,
  };
}

/** The periodic alarm that spends a false alarm budget, and what it achieves. */
export interface PeriodicBaseline {
  /** Ticks between its alarms. */
  readonly period: number;
  /** Its false alarms per 10 minutes on a stream without change (600 s / (period x bin width)). */
  readonly expectedFalseAlarmsPer10Minutes: number;
  /** Its mean delay when the change falls at a uniformly random phase of its period: (period - 1) / 2. */
  readonly expectedDelayTicks: number;
  /** Probability, at a random phase, that it alarms within the goal delay: min(1, (goalDelayTicks + 1) / period). */
  readonly probabilityWithinGoal: number;
  /** Its alarms on this stream, counting from the end of the warm-up (it is silent in the warm-up, as calibrated detectors are). */
  readonly alarms: readonly number[];
  readonly score: AlarmScore;
}

/** Ticks of the periodic alarm that raises `falseAlarmsPerHour` alarms per hour of `binSeconds` bins. */
export function periodForBudget(falseAlarmsPerHour: number, binSeconds: number): number {
  if (!(falseAlarmsPerHour > 0) || !(binSeconds > 0)) throw new RangeError('periodForBudget: the budget and the bin width must be > 0');
  return Math.max(1, Math.round(3600 / (falseAlarmsPerHour * binSeconds)));
}

/** A PeriodicDetector(period) started at the end of the warm-up, scored on the frame. */
export function periodicBaseline(period: number, frame: ScoringFrame): PeriodicBaseline {
  checkFrame(frame);
  const detector = new PeriodicDetector(period);
  const alarms: number[] = [];
  for (let i = frame.warmUpEnd; i < frame.length; i++) if (detector.update(0).driftDetected) alarms.push(i);
  return {
    period,
    expectedFalseAlarmsPer10Minutes: 600 / (period * frame.binSeconds),
    expectedDelayTicks: (period - 1) / 2,
    probabilityWithinGoal: Math.min(1, (frame.goalDelayTicks + 1) / period),
    alarms,
    score: scoreAlarms(alarms, frame),
  };
}

/**
 * The period of the periodic alarm with a detector's own false alarm rate on the scored first session (its
 * `falseAlarms` over `scoredFirstSessionTicks`), or undefined when it raised none.
 */
export function periodAtRate(score: AlarmScore): number | undefined {
  return score.falseAlarms === 0 ? undefined : Math.max(1, Math.round(score.scoredFirstSessionTicks / score.falseAlarms));
}

function checkFrame(frame: ScoringFrame): ScoringFrame {
  const { length, boundary, warmUpEnd, binSeconds } = frame;
  if (!(Number.isSafeInteger(length) && Number.isSafeInteger(boundary) && Number.isSafeInteger(warmUpEnd) && 0 <= warmUpEnd && warmUpEnd < boundary && boundary < length)) {
    throw new RangeError(`scoring frame: need integers 0 <= warmUpEnd < boundary < length, got ${warmUpEnd}, ${boundary}, ${length}`);
  }
  if (!(binSeconds > 0 && Number.isFinite(binSeconds))) throw new RangeError(`scoring frame: binSeconds must be > 0, got ${binSeconds}`);
  return frame;
}
