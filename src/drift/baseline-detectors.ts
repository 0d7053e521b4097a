// Trivial drift detectors that look at no data, to read a real detector's score against.
import type { DriftDetector } from './detector.js';

/**
 * A detector that never fires. Its evaluation is what silence scores: every change missed, no false alarm. It is
 * the baseline for a stream with no change points, where any alarm at all is a false one.
 */
export class NeverDetector implements DriftDetector {
  /** Always false. */
  readonly driftDetected = false;
  /** A short name for reports. */
  readonly name = 'never';

  /** Ignores `x`: this detector knows nothing about the stream. */
  update(_x: number): this {
    return this;
  }

  /** Nothing to forget. */
  reset(): void {}
}

/**
 * A detector that fires on every `period`-th update (updates period, 2 * period, ..., so at 0-based stream
 * indices period - 1, 2 * period - 1, ...), whatever the values. It behaves as River's
 * `river.drift.DummyDriftDetector(trigger_method="fixed", t_0=period, w=0)` (river/drift/dummy.py): the count
 * restarts after each alarm, and `reset()` restarts it too.
 */
export class PeriodicDetector implements DriftDetector {
  /** Updates between two alarms. */
  readonly period: number;
  /** A short name for reports, e.g. 'periodic(1001)'. */
  readonly name: string;
  /** True if the last update was the `period`-th since the last alarm or reset. */
  driftDetected = false;
  private sinceAlarm = 0;

  /** @throws RangeError unless `period` is a positive safe integer. */
  constructor(period: number) {
    if (!Number.isSafeInteger(period) || period < 1) {
      throw new RangeError(`PeriodicDetector: period must be a positive integer, got ${String(period)}`);
    }
    this.period = period;
    this.name = `periodic(${period})`;
  }

  /** Counts one update; `x` is ignored, as this detector knows nothing about the stream. */
  update(_x: number): this {
    this.sinceAlarm += 1;
    this.driftDetected = this.sinceAlarm >= this.period;
    if (this.driftDetected) this.sinceAlarm = 0;
    return this;
  }

  /** Restarts the count. */
  reset(): void {
    this.sinceAlarm = 0;
    this.driftDetected = false;
  }
}

/** A baseline detector, as `baselineFor` picks it. */
export type BaselineDetector = NeverDetector | PeriodicDetector;

/**
 * Alarms a `PeriodicDetector(period)` raises on a stream of `streamLength` values: floor(streamLength / period).
 */
export function periodicAlarmCount(period: number, streamLength: number): number {
  return Math.floor(streamLength / period);
}

/**
 * The baseline a detector is scored next to on a stream of `streamLength` ticks with `changePointCount` true
 * changes: a detector that knows how many changes there are but not where.
 *
 * No change: `NeverDetector`. Otherwise, with k changes and n ticks, a `PeriodicDetector` whose k alarms cut the
 * stream into k + 1 near-equal parts: period floor(n / (k + 1)) + 1, the shortest period that raises no more than
 * k alarms. Not knowing where the changes are, spreading the alarms evenly is the placement that assumes nothing.
 * It raises exactly k alarms whenever some period does (always when k * (k + 1) <= n); when none does (many
 * changes on a short stream) it takes whichever of the two nearest periods comes closer to k, the one with fewer
 * alarms on a tie.
 *
 * Evenly spaced changes are this baseline's best case (its alarms land on or near them): a detector that does
 * not beat it there has learned nothing from the data that the change count did not already say.
 *
 * @throws RangeError unless both are non-negative safe integers with changePointCount <= streamLength.
 */
export function baselineFor(changePointCount: number, streamLength: number): BaselineDetector {
  if (!Number.isSafeInteger(streamLength) || streamLength < 0) {
    throw new RangeError(`baselineFor: streamLength must be a non-negative integer, got ${String(streamLength)}`);
  }
  if (!Number.isSafeInteger(changePointCount) || changePointCount < 0 || changePointCount > streamLength) {
    throw new RangeError(
      `baselineFor: changePointCount must be an integer in [0, streamLength = ${streamLength}], got ${String(changePointCount)}`,
    );
  }
  const k = changePointCount;
  if (k === 0) return new NeverDetector();
  const atMostK = Math.floor(streamLength / (k + 1)) + 1;
  const fewer = periodicAlarmCount(atMostK, streamLength);
  if (fewer === k || atMostK === 1) return new PeriodicDetector(atMostK);
  const more = periodicAlarmCount(atMostK - 1, streamLength);
  return new PeriodicDetector(more - k < k - fewer ? atMostK - 1 : atMostK);
}
