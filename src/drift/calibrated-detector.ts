// A drift detector configured by how many false alarms a user accepts, not by a threshold in the signal's units.
import { recordCalibration } from './calibration-tally.js';
import { CALIBRATABLE_KINDS, DEFAULT_CALIBRATION_RUNS, RUN_BUDGET_PERIODS, ThresholdCalibration, type Calibration, type UncalibratedSpec } from './calibration.js';
// A cycle (detector.ts builds this class), safe as createDetector is only called after both modules have loaded.
import { createDetector, type DetectorSpec, type DriftDetector } from './detector.js';

export interface CalibratedDetectorOptions {
  /** The detector to calibrate, with any option but its threshold (Page-Hinkley), delta (ADWIN) or alpha (KSWIN). */
  readonly detector: UncalibratedSpec;
  /** The false-alarm budget on the null behaviour of the signal, per hour of stream time. */
  readonly falseAlarmsPerHour: number;
  /** Stream time between two values fed to the detector, in seconds (the bin width of a 50 ms binned feed: 0.05). */
  readonly tickSeconds: number;
  /**
   * Stream time at the start that is ignored, in seconds (default 60): a learner's error falls fastest in its first
   * minute, and a segment that still falls makes the threshold too high.
   */
  readonly settleSeconds?: number;
  /** Stream time, after the settling, whose values calibrate the threshold, in seconds (default 300). */
  readonly calibrationSeconds?: number;
  /** Null runs simulated from the calibration segment (default 40; see calibrateThreshold). */
  readonly runs?: number;
  /** Seed of the resampling (default 1). */
  readonly seed?: number;
  /**
   * Simulated detector updates of the calibration per update of the stream (default Infinity: all of them on the
   * update that completes the segment, a stall of 0.2-0.5 s for Page-Hinkley at the default budget). A finite step
   * spreads the calibration over the following updates, whose values the detector does not watch: it arms
   * ceil(runs x ticks per run / step) updates later, the same number on every run of the same stream.
   */
  readonly calibrationStep?: number;
}

export const DEFAULT_SETTLE_SECONDS = 60;
export const DEFAULT_CALIBRATION_SECONDS = 300;

/**
 * Most detector updates a calibration may simulate (runs x ticks per run): beyond it, the process would spend
 * seconds to minutes on one stream's calibration, blocking every other stream. A budget this small for the tick
 * rate needs fewer runs, a larger budget, or an offline calibration.
 */
export const MAX_SIMULATED_TICKS = 50_000_000;

/**
 * A drift detector whose alarm threshold is set for a false-alarm budget from the stream's own start.
 *
 * Warm-up: the first settleSeconds of values are ignored, the next calibrationSeconds are kept (a bounded buffer,
 * freed after calibration); no update of the warm-up ever alarms. On the update that completes the calibration
 * segment, calibration (src/drift/calibration.ts: stationary bootstrap of the segment, exact first-alarm
 * times, censored-exponential rate) chooses the setting of the detector for the budget, and from the next update
 * on, values standardized by the segment's mean and standard deviation feed that detector, which alarms as it
 * would on its own. The choice, with its diagnostics, is readable as `calibration`.
 *
 * `reset()` (a drift marker passed: a new regime) resets the calibrated detector but keeps the calibration: the
 * budget is about the feed, and a recalibration after each alarm would blind the detector for minutes. During the
 * warm-up it changes nothing. The calibration is not part of a stream's checkpoint: a restarted process
 * calibrates again from the stream's new start.
 *
 * After calibration an update costs what the calibrated detector's does, plus one subtraction and one division,
 * and allocates nothing. The calibration itself runs once: runs x ticks-per-run detector updates (at most
 * MAX_SIMULATED_TICKS), all on the update that completes the segment, or `calibrationStep` of them on each update
 * from that one on (ThresholdCalibration; the same choice either way, the detector armed when the last step is
 * done). Its count and time are tallied for /metrics (calibration-tally.ts).
 */
export class CalibratedDetector implements DriftDetector {
  readonly options: Readonly<Required<Omit<CalibratedDetectorOptions, 'detector'>>> & { readonly detector: UncalibratedSpec };
  /** Updates ignored at the start, then kept for calibration. */
  readonly settleTicks: number;
  readonly calibrationTicks: number;
  /** The budget per tick. */
  readonly alarmsPerTick: number;
  driftDetected = false;

  private seen = 0;
  private segment: Float64Array | null = null;
  /** The calibration under way when it runs in steps, and the wall time its steps have taken. */
  private pending: ThresholdCalibration | null = null;
  private pendingSeconds = 0;
  private inner: DriftDetector | null = null;
  private center = 0;
  private scale = 1;
  private chosen: Calibration | null = null;

  /** @throws RangeError naming the option when the options cannot calibrate (see MAX_SIMULATED_TICKS). */
  constructor(options: CalibratedDetectorOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('calibrated detector: options are required');
    const { detector, falseAlarmsPerHour, tickSeconds } = options;
    if (detector === null || typeof detector !== 'object' || !CALIBRATABLE_KINDS.includes(detector.kind)) {
      throw new RangeError(`calibrated detector: detector.kind must be one of ${CALIBRATABLE_KINDS.join(', ')}, got '${String((detector as { kind?: unknown })?.kind)}'`);
    }
    if (!(falseAlarmsPerHour > 0) || !Number.isFinite(falseAlarmsPerHour)) {
      throw new RangeError(`calibrated detector: falseAlarmsPerHour must be a positive number, got ${String(falseAlarmsPerHour)}`);
    }
    if (!(tickSeconds > 0) || !Number.isFinite(tickSeconds)) {
      throw new RangeError(`calibrated detector: tickSeconds must be a positive number, got ${String(tickSeconds)}`);
    }
    const settleSeconds = options.settleSeconds ?? DEFAULT_SETTLE_SECONDS;
    const calibrationSeconds = options.calibrationSeconds ?? DEFAULT_CALIBRATION_SECONDS;
    const runs = options.runs ?? DEFAULT_CALIBRATION_RUNS;
    const seed = options.seed ?? 1;
    const calibrationStep = options.calibrationStep ?? Infinity;
    if (!(calibrationStep >= 1) || (Number.isFinite(calibrationStep) && !Number.isSafeInteger(calibrationStep))) {
      throw new RangeError(`calibrated detector: calibrationStep must be a positive integer or Infinity, got ${String(calibrationStep)}`);
    }
    if (!(settleSeconds >= 0) || !Number.isFinite(settleSeconds)) {
      throw new RangeError(`calibrated detector: settleSeconds must be a non-negative number, got ${String(settleSeconds)}`);
    }
    this.settleTicks = Math.round(settleSeconds / tickSeconds);
    this.calibrationTicks = Math.round(calibrationSeconds / tickSeconds);
    if (!(this.calibrationTicks >= 100)) {
      throw new RangeError(`calibrated detector: calibrationSeconds must cover at least 100 ticks (${100 * tickSeconds} s at ${tickSeconds} s a tick), got ${String(calibrationSeconds)}`);
    }
    if (!Number.isSafeInteger(runs) || runs < 1) throw new RangeError(`calibrated detector: runs must be a positive integer, got ${String(runs)}`);
    if (!Number.isSafeInteger(seed)) throw new RangeError(`calibrated detector: seed must be an integer, got ${String(seed)}`);
    this.alarmsPerTick = (falseAlarmsPerHour * tickSeconds) / 3600;
    if (!(this.alarmsPerTick < 0.01)) {
      throw new RangeError(`calibrated detector: a budget of ${falseAlarmsPerHour} false alarms an hour at ${tickSeconds} s a tick is ${this.alarmsPerTick} a tick; a detector needs well under one alarm in 100 ticks`);
    }
    const runTicks = Math.ceil(RUN_BUDGET_PERIODS / this.alarmsPerTick);
    const simulated = runs * runTicks;
    if (simulated > MAX_SIMULATED_TICKS) {
      throw new RangeError(`calibrated detector: ${falseAlarmsPerHour} false alarms an hour at ${tickSeconds} s a tick needs ${runs} runs of ${runTicks} ticks (${simulated} updates, over ${MAX_SIMULATED_TICKS}): raise the budget or lower runs`);
    }
    // Builds the detector once with a placeholder setting, so a bad fixed option fails here, not at calibration.
    checkFixedOptions(detector);
    this.options = { detector, falseAlarmsPerHour, tickSeconds, settleSeconds, calibrationSeconds, runs, seed, calibrationStep };
  }

  /** The calibration, once the warm-up is over; null before. */
  get calibration(): Calibration | null {
    return this.chosen;
  }

  /**
   * True while the detector is still settling, collecting its calibration segment or running the calibration's
   * steps (it never alarms then).
   */
  get warmingUp(): boolean {
    return this.inner === null;
  }

  /** @throws RangeError, state untouched, on a non-finite value. */
  update(x: number): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new RangeError(`CalibratedDetector.update: x must be a finite number, got ${String(x)}`);
    }
    const inner = this.inner;
    if (inner !== null) {
      this.driftDetected = inner.update((x - this.center) / this.scale).driftDetected;
      return this;
    }
    if (this.pending !== null) {
      this.step(this.pending);
      return this;
    }
    const index = this.seen - this.settleTicks;
    this.seen++;
    if (index < 0) return this;
    this.segment ??= new Float64Array(this.calibrationTicks);
    this.segment[index] = x;
    if (index === this.calibrationTicks - 1) {
      const { detector, runs, seed } = this.options;
      const startedAt = performance.now();
      const calibration = new ThresholdCalibration(detector, this.segment, this.alarmsPerTick, { runs, seed });
      this.pendingSeconds = (performance.now() - startedAt) / 1000;
      this.segment = null;
      this.step(calibration);
    }
    return this;
  }

  reset(): void {
    this.driftDetected = false;
    this.inner?.reset();
  }

  /** Runs one step of the calibration (all of it with the default step); arms the detector once it is done. */
  private step(calibration: ThresholdCalibration): void {
    const startedAt = performance.now();
    const done = calibration.advance(this.options.calibrationStep);
    const result = done ? calibration.result() : null;
    this.pendingSeconds += (performance.now() - startedAt) / 1000;
    if (result === null) {
      this.pending = calibration;
      return;
    }
    recordCalibration(this.pendingSeconds);
    this.pending = null;
    this.chosen = result;
    this.center = result.center;
    this.scale = result.scale;
    this.inner = createDetector(result.spec);
  }
}

function checkFixedOptions(detector: UncalibratedSpec): void {
  const placeholder = { 'page-hinkley': { threshold: 1 }, adwin: { delta: 0.002 }, kswin: { alpha: 0.005 } }[detector.kind];
  try {
    createDetector({ ...detector, ...placeholder } as DetectorSpec);
  } catch (err) {
    throw new RangeError(`calibrated detector: detector: ${err instanceof Error ? err.message : String(err)}`);
  }
  const chosenOption = Object.keys(placeholder)[0];
  if (chosenOption in detector) {
    throw new RangeError(`calibrated detector: detector '${detector.kind}' must not set '${chosenOption}': calibration chooses it`);
  }
}
