// What calibrations have cost this thread: read by /metrics (driftline_detector_calibrations_total and
// driftline_detector_calibration_seconds_total). A calibration runs once per stream, synchronously, on the update
// that completes its segment (src/drift/calibrated-detector.ts), so its time is time during which no stream of the
// thread was served: an operator needs to see it, and a CPU-per-event figure needs to tell it apart from the
// per-event cost it is not.

interface CalibrationTally {
  /** Calibrations completed in this thread since it started. */
  count: number;
  /** Their wall time in all, in seconds. */
  seconds: number;
}

const tally: CalibrationTally = { count: 0, seconds: 0 };

/** Counts one calibration that took `seconds`. */
export function recordCalibration(seconds: number): void {
  tally.count++;
  tally.seconds += seconds;
}

/** The calibrations of this thread so far (a copy). */
export function calibrationsSoFar(): Readonly<CalibrationTally> {
  return { ...tally };
}
