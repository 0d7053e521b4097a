// How well a calibrated detector keeps its false-alarm budget on long null streams whose truth is known.
import { CalibratedDetector } from '../drift/calibrated-detector.js';
import type { UncalibratedSpec } from '../drift/calibration.js';
import { Random } from '../learners/random.js';

/** A null stream family: what the detector sees when nothing changes. */
export interface NullFamily {
  readonly name: string;
  /** Draws the next value; `state` is the family's own scratch (e.g. an AR(1) level). */
  next(random: Random, state: { level: number }): number;
}

function ar1(phi: number): (random: Random, state: { level: number }) => number {
  const innovation = Math.sqrt(1 - phi * phi);
  return (random, state) => (state.level = phi * state.level + innovation * random.normal());
}

/**
 * White noise, its square (a per-tick squared error: skewed, heavy right tail), an autocorrelated squared error
 * and a strongly autocorrelated Gaussian: from what every detector's default assumes to what a decoder's error
 * looks like (src/drift/calibration.ts names autocorrelation and tails as what calibration has to survive).
 */
export const NULL_FAMILIES: readonly NullFamily[] = [
  { name: 'iid Gaussian', next: (random) => random.normal() },
  { name: 'iid squared Gaussian', next: (random) => random.normal() ** 2 },
  { name: 'AR(1) 0.9, squared', next: (() => { const step = ar1(0.9); return (r: Random, s: { level: number }) => step(r, s) ** 2; })() },
  { name: 'AR(1) 0.98 Gaussian', next: ar1(0.98) },
];

/** A detector as the null calibration runs it: a name for the table and the spec calibration completes. */
export interface NullDetector {
  readonly name: string;
  readonly detector: UncalibratedSpec;
}

/** Page-Hinkley (River's alpha and alpha 1), ADWIN and KSWIN, as the calibrated detector builds them. */
export const NULL_DETECTORS: readonly NullDetector[] = [
  { name: 'page-hinkley', detector: { kind: 'page-hinkley' } },
  { name: 'page-hinkley (alpha 1)', detector: { kind: 'page-hinkley', alpha: 1 } },
  { name: 'adwin', detector: { kind: 'adwin' } },
  { name: 'kswin', detector: { kind: 'kswin' } },
];

export interface NullCalibrationOptions {
  readonly detectors?: readonly NullDetector[];
  readonly families?: readonly NullFamily[];
  /** Budget in false alarms per hour (default 6: enough alarms in `hours` to measure the rate). */
  readonly falseAlarmsPerHour?: number;
  readonly tickSeconds?: number;
  /** Stream time scored after the warm-up, per seed (default 20 hours; KSWIN, 100x slower per tick, 5). */
  readonly hours?: (detector: NullDetector) => number;
  readonly seeds?: readonly number[];
  readonly onProgress?: (done: number, total: number) => void;
}

export interface NullCalibrationRow {
  readonly detector: string;
  readonly family: string;
  readonly falseAlarmsPerHour: number;
  /** Per seed: false alarms per hour of scored stream (the warm-up excluded; it never alarms). */
  readonly realizedPerHour: readonly number[];
  /** Per seed: what calibration estimated for its chosen setting, per hour. */
  readonly estimatedPerHour: readonly number[];
  readonly hoursPerSeed: number;
  /** Wall time of the calibrations, mean per seed, in milliseconds. */
  readonly calibrationMs: number;
}

/**
 * For each detector kind and null family, per seed: a calibrated detector (default warm-up) on a fresh null
 * stream of `hours` scored hours, its false alarms counted per hour beside the budget. The stream seed and the
 * calibration seed both follow the seed. What it shows: whether "at most N false alarms an hour" holds where the
 * truth is known, before anyone trusts it on a stream where it is not.
 */
export function measureNullCalibration(options: NullCalibrationOptions = {}): NullCalibrationRow[] {
  const detectors = options.detectors ?? NULL_DETECTORS;
  const families = options.families ?? NULL_FAMILIES;
  const budget = options.falseAlarmsPerHour ?? 6;
  const tickSeconds = options.tickSeconds ?? 0.05;
  const hoursOf = options.hours ?? ((d: NullDetector) => (d.detector.kind === 'kswin' ? 5 : 20));
  const seeds = options.seeds ?? [1, 2, 3, 4, 5];
  const ticksPerHour = Math.round(3600 / tickSeconds);
  const rows: NullCalibrationRow[] = [];
  const total = detectors.length * families.length * seeds.length;
  let done = 0;
  for (const entry of detectors) {
    const hours = hoursOf(entry);
    for (const family of families) {
      const realizedPerHour: number[] = [];
      const estimatedPerHour: number[] = [];
      let calibrationMs = 0;
      for (const seed of seeds) {
        const random = new Random(7919 * seed + 17);
        const state = { level: 0 };
        const detector = new CalibratedDetector({ detector: entry.detector, falseAlarmsPerHour: budget, tickSeconds, seed });
        const warmUp = detector.settleTicks + detector.calibrationTicks;
        const ticks = warmUp + hours * ticksPerHour;
        let alarms = 0;
        for (let i = 0; i < ticks; i++) {
          const value = family.next(random, state);
          if (i === warmUp - 1) {
            const started = performance.now();
            detector.update(value);
            calibrationMs += performance.now() - started;
          } else if (detector.update(value).driftDetected) alarms++;
        }
        realizedPerHour.push(alarms / hours);
        estimatedPerHour.push(detector.calibration!.estimatedAlarmsPerTick * ticksPerHour);
        options.onProgress?.(++done, total);
      }
      rows.push({ detector: entry.name, family: family.name, falseAlarmsPerHour: budget, realizedPerHour, estimatedPerHour, hoursPerSeed: hours, calibrationMs: calibrationMs / seeds.length });
    }
  }
  return rows;
}
