/**
 * `driftline reproduce drift` (issue 16, item 2): the drift detectors on the real-valued error stream of the
 * shipped BCI decoder, across a session boundary that no marker declares, each with River's defaults and with the
 * calibrated setting (a false alarm budget met on the warm-up alone), scored as false alarms per 10 minutes of the
 * first session and delay after the boundary, beside the periodic alarm that spends the same budget.
 *
 * Honesty: nothing is tuned on the second session or on the scored tail of the first. The calibrated detectors
 * see only the warm-up before they may alarm; River's defaults are untuned; the goal (at most 1 false alarm per
 * 10 minutes, at most 60 bins of delay) is checked, not optimized for.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReplaySession } from '../adapters/replay/replay.js';
import { DEFAULT_CALIBRATION_SECONDS, DEFAULT_SETTLE_SECONDS } from '../drift/calibrated-detector.js';
import { createDetector, type DetectorSpec, type DriftDetector } from '../drift/detector.js';
import { ProgressBar, type ProgressStream } from '../report/progress.js';
import { PLOT_FONT, renderVegaLitePng } from '../report/plot.js';
import type { DriftSignal } from '../streams/detect-drift.js';
import {
  periodAtRate, periodForBudget, periodicBaseline, scoreAlarms, warmUpEndTick,
  type AlarmScore, type CountedFigures, type PeriodicBaseline, type ScoringFrame,
} from './drift-score.js';
import {
  cachedStream, joinSessions, recordInputSquaredZ, recordSignals, shippedDecoderSpec, SHIPPED_NORMALIZE_DECAY, SHIPPED_SIGNAL, SHIPPED_TARGET_SCALING,
  type ErrorStream,
} from './drift-streams.js';
import { measureNullCalibration, NULL_DETECTORS, NULL_FAMILIES, type NullCalibrationRow } from './drift-null.js';
import type { TopLevelSpec } from 'vega-lite';

/**
 * What the detectors watch: detectDrift's signals of the decoder's error ('normalized-error', 'error'), or
 * detectInputDrift's 'mean-squared-z' of the inputs ('input-squared-z': needs no label and no learner).
 */
export type DriftFeed = DriftSignal | 'input-squared-z';
export const DRIFT_FEEDS: readonly DriftFeed[] = ['normalized-error', 'error', 'input-squared-z'];

/** One row of the evaluation: a detector and how it is fed. */
export interface DriftDetectorEntry {
  /** e.g. 'page-hinkley'. */
  readonly name: string;
  readonly setting: 'river-defaults' | 'calibrated' | 'calibrated, alpha 1';
  /** 'signal': every fed value of the error signal; 'binarized': 1{signal > warm-up median}, from the warm-up's end. */
  readonly input: 'signal' | 'binarized';
  readonly spec: DetectorSpec;
}

export interface DriftEntryOptions {
  readonly binSeconds: number;
  readonly falseAlarmsPerHour: number;
  readonly settleSeconds: number;
  readonly calibrationSeconds: number;
  /** Also the binary detectors (ddm, eddm, hddm-a, hddm-w) on the binarized signal (default true). */
  readonly binary?: boolean;
}

/**
 * The detectors evaluated, as data: every detector of a real-valued signal with River's defaults (KSWIN seeded 1)
 * and calibrated to the budget, then the binary detectors with River's defaults on the binarized signal.
 */
export function driftDetectorEntries(o: DriftEntryOptions): DriftDetectorEntry[] {
  const real = [{ kind: 'page-hinkley' }, { kind: 'adwin' }, { kind: 'kswin', seed: 1 }] as const;
  const entries: DriftDetectorEntry[] = real.map((spec) => ({ name: spec.kind, setting: 'river-defaults', input: 'signal', spec }));
  const calibrated = (detector: Extract<DetectorSpec, { kind: 'calibrated' }>['detector']): DetectorSpec => ({
    kind: 'calibrated', detector, falseAlarmsPerHour: o.falseAlarmsPerHour, tickSeconds: o.binSeconds,
    settleSeconds: o.settleSeconds, calibrationSeconds: o.calibrationSeconds, seed: 1,
  });
  for (const detector of real) entries.push({ name: detector.kind, setting: 'calibrated', input: 'signal', spec: calibrated(detector) });
  // The other side of calibrated Page-Hinkley's trade-off (src/drift/calibration.ts): no forgetting, faster, a looser budget.
  entries.push({ name: 'page-hinkley', setting: 'calibrated, alpha 1', input: 'signal', spec: calibrated({ kind: 'page-hinkley', alpha: 1 }) });
  if (o.binary ?? true) {
    for (const kind of ['ddm', 'eddm', 'hddm-a', 'hddm-w'] as const) entries.push({ name: kind, setting: 'river-defaults', input: 'binarized', spec: { kind } });
  }
  return entries;
}

/** Where two sessions come from. */
export interface DriftSource {
  /** Short name: 'simulator', 'jango'. */
  readonly id: string;
  readonly description: string;
  /** Whether the seed also changes the data (the simulator draws new sessions per seed). */
  readonly seedsData: boolean;
  /** The two sessions for a seed. */
  sessions(seed: number): Promise<readonly [ReplaySession, ReplaySession]>;
  /** Everything that determines the sessions of a seed (the stream cache's key). */
  key(seed: number): unknown;
}

/** The null-stream check of the calibration (measureNullCalibration); null in the settings: not run. */
export interface NullCheckSettings {
  readonly falseAlarmsPerHour: number;
  readonly seeds: readonly number[];
  /** Scored hours per seed, KSWIN apart (about 125x slower per tick). */
  readonly hours: number;
  readonly kswinHours: number;
}

export const DEFAULT_NULL_CHECK: NullCheckSettings = { falseAlarmsPerHour: 6, seeds: [1, 2, 3, 4, 5], hours: 20, kswinHours: 5 };

export interface DriftSettings {
  /** How well calibration keeps its budget on long null streams of known families, before the real data. */
  readonly nullCheck: NullCheckSettings | null;
  /** What the detectors watch, each evaluated apart. */
  readonly signals: readonly DriftFeed[];
  readonly falseAlarmsPerHour: number;
  readonly settleSeconds: number;
  readonly calibrationSeconds: number;
  readonly goalFalseAlarmsPer10Minutes: number;
  readonly goalDelayTicks: number;
  readonly binary: boolean;
}

export const DEFAULT_DRIFT_SETTINGS: DriftSettings = {
  nullCheck: DEFAULT_NULL_CHECK,
  signals: [SHIPPED_SIGNAL, 'input-squared-z'],
  falseAlarmsPerHour: 1,
  settleSeconds: DEFAULT_SETTLE_SECONDS,
  calibrationSeconds: DEFAULT_CALIBRATION_SECONDS,
  goalFalseAlarmsPer10Minutes: 1,
  goalDelayTicks: 60,
  binary: true,
};

export interface DriftReproductionOptions {
  readonly sources: readonly DriftSource[];
  readonly seeds: readonly number[];
  readonly settings?: Partial<DriftSettings>;
  /** Detectors to evaluate (default driftDetectorEntries of the settings). */
  readonly entries?: (binSeconds: number) => DriftDetectorEntry[];
  /** Plots, results.json, summary.md and the stream cache (streams/); null: nothing written, no cache. */
  readonly outDir?: string | null;
  /** Record the error streams again even when the cache holds them. */
  readonly fresh?: boolean;
  /** Draw the PNGs (default true). */
  readonly plots?: boolean;
  readonly quiet?: boolean;
  readonly progressStream?: ProgressStream;
}

/** One detector on one stream. */
export interface DriftRow {
  readonly source: string;
  readonly signal: DriftFeed;
  readonly seed: number;
  readonly detector: string;
  readonly setting: DriftDetectorEntry['setting'];
  readonly input: DriftDetectorEntry['input'];
  readonly alarms: number;
  readonly score: AlarmScore;
  /** The periodic alarm at this row's own false alarm rate (none when it raised no false alarm). */
  readonly atOwnRate: { readonly period: number; readonly expectedDelayTicks: number; readonly probabilityWithinGoal: number } | null;
}

/** A detector over the seeds of a source. */
export interface DriftSummaryRow {
  readonly source: string;
  readonly signal: DriftFeed;
  readonly detector: string;
  readonly setting: DriftDetectorEntry['setting'];
  readonly input: DriftDetectorEntry['input'];
  readonly seeds: number;
  readonly warmUpAlarms: number;
  readonly falseAlarms: number;
  readonly falseAlarmsPer10Minutes: number;
  /** Per seed, in seed order (null: missed). */
  readonly delayTicks: readonly (number | null)[];
  /** Mean over the seeds that detected; null when none did. */
  readonly meanDelayTicks: number | null;
  readonly repeatAlarms: number;
  /** Means over seeds, per counting definition. */
  readonly counted: readonly { readonly counting: CountedFigures['counting']; readonly falseAlarms: number }[];
  /** Mean over the seeds with a false alarm of the expected delay of the periodic alarm at their own rate. */
  readonly atOwnRateExpectedDelayTicks: number | null;
  readonly goalMet: number;
}

export interface DriftStreamInfo {
  readonly source: string;
  readonly signal: DriftFeed;
  readonly seed: number;
  readonly ticks: number;
  readonly boundary: number;
  readonly warmUpEnd: number;
  readonly binSeconds: number;
  readonly firstFedTick: number;
  /** Median of the warm-up's signal (the binarization threshold). */
  readonly warmUpMedian: number;
  readonly microsPerTick: number;
  readonly cached: boolean;
}

export interface DriftResults {
  readonly experiment: 'drift';
  readonly createdAt: string;
  readonly protocol: readonly string[];
  readonly settings: DriftSettings;
  readonly seeds: readonly number[];
  readonly sources: readonly { readonly id: string; readonly description: string }[];
  readonly detectors: readonly { readonly name: string; readonly setting: string; readonly input: string; readonly spec: unknown }[];
  /** Entries that could not be built, with the reason (e.g. the calibrated kind is not available yet). */
  readonly skipped: readonly { readonly detector: string; readonly setting: string; readonly reason: string }[];
  readonly streams: readonly DriftStreamInfo[];
  readonly rows: readonly DriftRow[];
  readonly summary: readonly DriftSummaryRow[];
  /** Per source, signal and seed, the periodic alarm that spends the budget. */
  readonly baselines: readonly { readonly source: string; readonly signal: DriftFeed; readonly seed: number; readonly baseline: PeriodicBaseline }[];
  /** The null-stream check of the calibration; empty when not run. */
  readonly nullCalibration: readonly NullCalibrationRow[];
  readonly seconds: number;
  readonly files: string[];
}

/** Runs the reproduction: record (or reuse) the error streams, run every detector, score, write the artifacts. */
export async function runDriftReproduction(options: DriftReproductionOptions): Promise<DriftResults> {
  const started = performance.now();
  const settings: DriftSettings = { ...DEFAULT_DRIFT_SETTINGS, ...options.settings };
  const outDir = options.outDir ?? null;
  const cacheDir = outDir === null ? null : join(outDir, 'streams');
  const rows: DriftRow[] = [];
  const streams: DriftStreamInfo[] = [];
  const baselines: DriftResults['baselines'][number][] = [];
  const skipped = new Map<string, { detector: string; setting: string; reason: string }>();
  const alarmsForPlot = new Map<string, { values: ArrayLike<number>; info: DriftStreamInfo; alarms: Map<string, number[]> }>();
  let entriesSeen: DriftDetectorEntry[] = [];
  const entriesFor = (binSeconds: number) => options.entries?.(binSeconds) ?? driftDetectorEntries({ ...settings, binSeconds, binary: settings.binary });

  for (const source of options.sources) {
    const [a0, b0] = await source.sessions(options.seeds[0]);
    const ticksPerSeed = a0.t.length + b0.t.length;
    const entryCount = entriesFor(a0.binSeconds ?? 0.05).length;
    // Work in stream ticks: each seed's replay, then each detector's pass over the stream (a calibrated one also
    // simulates its calibration runs then, so its pass takes longest).
    const progress = new ProgressBar({
      total: ticksPerSeed * (1 + entryCount * settings.signals.length) * options.seeds.length, unit: 'ticks', label: `drift ${source.id}`, quiet: options.quiet ?? false, stream: options.progressStream,
    });
    for (const seed of options.seeds) {
      progress.setLabel(`drift ${source.id} seed ${seed}: error stream`);
      const [first, second] = seed === options.seeds[0] ? [a0, b0] : await source.sessions(seed);
      const binSeconds = first.binSeconds ?? 0.05;
      const spec = shippedDecoderSpec(seed, first.nChannels, first.nOutputs ?? 0);
      const key = {
        source: source.key(seed), learner: spec, normalizeDecay: SHIPPED_NORMALIZE_DECAY, targetScaling: SHIPPED_TARGET_SCALING,
        holdout: 'none', labels: 'every tick, in the frame', marker: 'none at the boundary',
      };
      let recorded = 0;
      const stream = await cachedStream(cacheDir, `${source.id}-seed${seed}`, key, options.fresh ?? false, async () => {
        const signals = await recordSignals(joinSessions(first, second), spec, {
          normalizeDecay: SHIPPED_NORMALIZE_DECAY, targetScaling: SHIPPED_TARGET_SCALING, onTicks: (n) => {
            recorded += n;
            progress.tick(n);
          },
        });
        return { ...signals, source: source.id, seed, binSeconds, boundary: first.t.length, ticks: first.t.length + second.t.length };
      });
      if (recorded < stream.ticks) progress.tick(stream.ticks - recorded);
      progress.setLabel(`drift ${source.id} seed ${seed}: detectors`);

      for (const feed of settings.signals) {
      const signal = feed === 'error' ? stream.error : feed === 'normalized-error' ? stream.normalized : await recordInputSquaredZ(joinSessions(first, second));
      const warmUpValues = Math.round((settings.settleSeconds + settings.calibrationSeconds) / stream.binSeconds);
      const warmUpEnd = warmUpEndTick(signal, warmUpValues, stream.boundary);
      const frame: ScoringFrame = {
        length: stream.ticks, boundary: stream.boundary, warmUpEnd, binSeconds: stream.binSeconds,
        goalFalseAlarmsPer10Minutes: settings.goalFalseAlarmsPer10Minutes, goalDelayTicks: settings.goalDelayTicks,
      };
      const median = warmUpMedian(signal, warmUpEnd);
      const info: DriftStreamInfo = {
        source: source.id, signal: feed, seed, ticks: stream.ticks, boundary: stream.boundary, warmUpEnd, binSeconds: stream.binSeconds,
        firstFedTick: firstFinite(signal), warmUpMedian: median, microsPerTick: stream.microsPerTick, cached: stream.cached,
      };
      streams.push(info);
      const plotAlarms = new Map<string, number[]>();
      if (seed === options.seeds[0]) alarmsForPlot.set(`${source.id}-${feed}`, { values: signal, info, alarms: plotAlarms });

      const entries = entriesFor(stream.binSeconds);
      entriesSeen = entries;
      for (const entry of entries) {
        const label = `${entry.name} (${entry.setting})`;
        progress.setLabel(`drift ${source.id} seed ${seed} ${feed}: ${label}`);
        let detector: DriftDetector;
        try {
          detector = createDetector(entry.spec);
        } catch (err) {
          skipped.set(label, { detector: entry.name, setting: entry.setting, reason: `createDetector: ${(err as Error).message}` });
          progress.tick(stream.ticks);
          continue;
        }
        let alarms: number[];
        try {
          alarms = runDetector(detector, signal, entry.input === 'binarized' ? { from: warmUpEnd, threshold: median } : undefined);
        } catch (err) {
          skipped.set(label, { detector: entry.name, setting: entry.setting, reason: `${source.id} seed ${seed} ${feed}: ${(err as Error).message}` });
          continue;
        } finally {
          progress.tick(stream.ticks);
        }
        const score = scoreAlarms(alarms, frame);
        const period = periodAtRate(score);
        rows.push({
          source: source.id, signal: feed, seed, detector: entry.name, setting: entry.setting, input: entry.input, alarms: alarms.length, score,
          atOwnRate: period === undefined ? null : { period, expectedDelayTicks: (period - 1) / 2, probabilityWithinGoal: Math.min(1, (settings.goalDelayTicks + 1) / period) },
        });
        plotAlarms.set(label, alarms);
      }
      baselines.push({ source: source.id, signal: feed, seed, baseline: periodicBaseline(periodForBudget(settings.falseAlarmsPerHour, stream.binSeconds), frame) });
      }
    }
    progress.finish(`${source.id}: ${options.seeds.length} stream(s)`);
  }

  let nullCalibration: NullCalibrationRow[] = [];
  const nullCheck = settings.nullCheck;
  if (nullCheck !== null) {
    const bar = new ProgressBar({ total: NULL_DETECTORS.length * NULL_FAMILIES.length * nullCheck.seeds.length, unit: 'null streams', label: 'drift: calibration on null streams', quiet: options.quiet ?? false, stream: options.progressStream });
    let done = 0;
    nullCalibration = measureNullCalibration({
      falseAlarmsPerHour: nullCheck.falseAlarmsPerHour,
      seeds: nullCheck.seeds,
      hours: (d) => (d.detector.kind === 'kswin' ? nullCheck.kswinHours : nullCheck.hours),
      onProgress: (n) => {
        bar.tick(n - done);
        done = n;
      },
    });
    bar.finish(`${nullCalibration.length} null rows`);
  }

  const results: DriftResults = {
    experiment: 'drift',
    createdAt: new Date().toISOString(),
    protocol: protocolLines(settings, streams),
    settings,
    seeds: options.seeds,
    sources: options.sources.map((s) => ({ id: s.id, description: s.description })),
    detectors: entriesSeen.map((e) => ({ name: e.name, setting: e.setting, input: e.input, spec: e.spec })),
    skipped: [...skipped.values()],
    streams,
    rows,
    summary: summarize(rows, options.sources.map((s) => s.id), settings.signals, entriesSeen),
    baselines,
    nullCalibration,
    seconds: (performance.now() - started) / 1000,
    files: [],
  };
  if (outDir === null) return results;
  await mkdir(outDir, { recursive: true });
  const files: string[] = [];
  const json = join(outDir, 'results.json');
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`);
  files.push(json);
  const summary = join(outDir, 'summary.md');
  await writeFile(summary, formatDriftMarkdown(results));
  files.push(summary);
  if (options.plots ?? true) {
    for (const [id, p] of alarmsForPlot) {
      const path = join(outDir, `alarms-${id}.png`);
      await renderVegaLitePng(alarmChart(p.values, p.info, p.alarms), path);
      files.push(path);
    }
  }
  return { ...results, files };
}

/**
 * Alarm ticks of `detector` fed, in order, every finite value of `signal`; with `binarize`, only the values from
 * tick `from` on, each as 1 when above `threshold`, else 0.
 */
export function runDetector(detector: DriftDetector, signal: ArrayLike<number>, binarize?: { from: number; threshold: number }): number[] {
  const alarms: number[] = [];
  for (let i = binarize?.from ?? 0; i < signal.length; i++) {
    const v = signal[i];
    if (!Number.isFinite(v)) continue;
    if (detector.update(binarize ? (v > binarize.threshold ? 1 : 0) : v).driftDetected) alarms.push(i);
  }
  return alarms;
}

function firstFinite(signal: ArrayLike<number>): number {
  for (let i = 0; i < signal.length; i++) if (Number.isFinite(signal[i])) return i;
  return -1;
}

/** Median of the finite values of signal[0, end). */
export function warmUpMedian(signal: ArrayLike<number>, end: number): number {
  const values: number[] = [];
  for (let i = 0; i < end; i++) if (Number.isFinite(signal[i])) values.push(signal[i]);
  if (values.length === 0) return Number.NaN;
  values.sort((a, b) => a - b);
  const m = values.length >> 1;
  return values.length % 2 === 1 ? values[m] : (values[m - 1] + values[m]) / 2;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function summarize(rows: readonly DriftRow[], sources: readonly string[], signals: readonly DriftFeed[], entries: readonly DriftDetectorEntry[]): DriftSummaryRow[] {
  const out: DriftSummaryRow[] = [];
  for (const source of sources) for (const signal of signals) {
    for (const e of entries) {
      const mine = rows.filter((r) => r.source === source && r.signal === signal && r.detector === e.name && r.setting === e.setting && r.input === e.input);
      if (mine.length === 0) continue;
      const delays = mine.map((r) => r.score.delayTicks);
      const detected = delays.filter((d): d is number => d !== null);
      const atRate = mine.filter((r) => r.atOwnRate !== null).map((r) => r.atOwnRate!.expectedDelayTicks);
      out.push({
        source, signal, detector: e.name, setting: e.setting, input: e.input, seeds: mine.length,
        warmUpAlarms: mean(mine.map((r) => r.score.warmUpAlarms)),
        falseAlarms: mean(mine.map((r) => r.score.falseAlarms)),
        falseAlarmsPer10Minutes: mean(mine.map((r) => r.score.falseAlarmsPer10Minutes)),
        delayTicks: delays,
        meanDelayTicks: detected.length === 0 ? null : mean(detected),
        repeatAlarms: mean(mine.map((r) => r.score.repeatAlarms)),
        counted: mine[0].score.counted.map((c, k) => ({ counting: c.counting, falseAlarms: mean(mine.map((r) => r.score.counted[k].falseAlarms)) })),
        atOwnRateExpectedDelayTicks: atRate.length === 0 ? null : mean(atRate),
        goalMet: mine.filter((r) => r.score.goalMet).length,
      });
    }
  }
  return out;
}

function protocolLines(s: DriftSettings, streams: readonly DriftStreamInfo[]): string[] {
  const bin = streams[0]?.binSeconds ?? 0.05;
  const w = Math.round((s.settleSeconds + s.calibrationSeconds) / bin);
  const period = periodForBudget(s.falseAlarmsPerHour, bin);
  return [
    `Error stream: the shipped decoder (examples/bci-decoder/jango.yaml: LSTM n=64, immediate derivatives with trace decay 0.5, RMSprop lr 1e-4, MSE; inputs z-scored with decay ${SHIPPED_NORMALIZE_DECAY}, labels standardized) predicts, then learns, on every tick of session 1 then session 2, joined as ONE session: a label on every tick, no holdout, no session marker at the boundary (the detectors must find it). Seed k: learner seed k, and for the simulator also simulator seed k.`,
    `Signals, each evaluated apart: ${s.signals.map(describeFeed).join('; ')}. Alarm tick = the tick whose value the detector fired on; every detector runs alone with no cooldown, as in a pipeline with that one detector.`,
    `Warm-up: the first ${w} values fed to the detectors (settle ${s.settleSeconds} s + calibration ${s.calibrationSeconds} s of ${bin * 1000} ms bins; ticks [0, warm-up end) of session 1, the same for every detector). The calibrated detectors (kind 'calibrated', budget ${s.falseAlarmsPerHour} false alarm${s.falseAlarmsPerHour === 1 ? '' : 's'} per hour, runs and seed as default) never alarm there and set their threshold from it alone. River-default detectors are fed from the first value; their warm-up alarms are reported, not counted. Binary detectors (River defaults) are fed from the warm-up's end, on 1{signal > median of the warm-up's signal}.`,
    `Nothing is tuned on session 2 or on the scored tail of session 1: the calibrated thresholds come from the warm-up only; River's defaults are untuned; the settle, calibration and budget values were fixed before any run.`,
    `History, said plainly: the input signal ('input-squared-z') and the Page-Hinkley row with alpha 1 were added after a first run had shown no calibrated detector meeting the goal on the decoder's error. Neither carries a value read off the scored data: alpha 1 is no forgetting (the structural reason is in src/drift/calibration.ts, with its cost on the null streams below), the channel statistics use the shipped input normalizer's decay, and the budget, warm-up and delta are unchanged.`,
    `False alarms: alarms after the warm-up and before the boundary, per 10 minutes of scored session-1 time (ticks x bin width). Delay: bins from the boundary to the first alarm at or after it (missed: none in session 2). Repeats: further alarms in session 2.`,
    `Counting (src/drift/evaluate.ts): FA/10 min and delay are the same under 'river-pr-1963' and 'first-alarm' (session-1 alarms lie in no change window; the delay is the first alarm). The columns 'FA river-pr-1963' and 'FA first-alarm' evaluate the scored stream [warm-up end, end) with the change at the boundary and its window the whole of session 2: river-pr-1963 counts the repeats as hits, first-alarm as false alarms.`,
    `Baseline: the periodic alarm (PeriodicDetector) that spends the budget, period ${period} bins (${((period * bin) / 60).toFixed(0)} min, one over the budget), started at the warm-up's end: ${(600 / (period * bin)).toFixed(3)} FA per 10 min, expected delay ${((period - 1) / 2).toFixed(0)} bins at a random phase, P(delay <= ${s.goalDelayTicks}) = ${Math.min(1, (s.goalDelayTicks + 1) / period).toExponential(2)}. Beside each detector also the periodic alarm at that detector's own false alarm rate: its expected delay.`,
    `Goal: at most ${s.goalFalseAlarmsPer10Minutes} false alarm per 10 minutes of session 1 and at most ${s.goalDelayTicks} bins of delay, per seed.`,
  ];
}

function describeFeed(feed: DriftFeed): string {
  switch (feed) {
    case 'normalized-error':
      return "detectDrift's 'normalized-error' (jango.yaml's drift.signal; the per-tick squared error over the label-variance EWMA, about 1 - R2 per tick; nothing fed during its first 1000-tick normalizer warm-up)";
    case 'error':
      return "detectDrift's 'error' (the per-tick mean squared error in squared label units; `driftline run`'s default)";
    case 'input-squared-z':
      return "detectInputDrift's 'mean-squared-z' of the inputs after the shipped normalization (mean over channels of each channel's squared z-score against its own running statistics; no label, no learner, the same for every learner seed; nothing fed during its first 1000 ticks)";
  }
}

const f2 = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(2));
const f1 = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(1));
const f0 = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(0));
const delayText = (d: number | null) => (d === null ? 'missed' : String(d));

/** The report as markdown: protocol, one summary table per source, per-seed rows. */
export function formatDriftMarkdown(results: DriftResults): string {
  const s = results.settings;
  const lines: string[] = ['# driftline reproduce drift', '', '## Protocol', '', ...results.protocol.map((p) => `- ${p}`), ''];
  if (results.skipped.length > 0) {
    lines.push('## Not evaluated', '', ...results.skipped.map((k) => `- ${k.detector} (${k.setting}): ${k.reason}`), '');
  }
  for (const source of results.sources) for (const signal of s.signals) {
    const streams = results.streams.filter((x) => x.source === source.id && x.signal === signal);
    const st = streams[0];
    if (st === undefined) continue;
    const base = results.baselines.filter((b) => b.source === source.id && b.signal === signal);
    const b0 = base[0].baseline;
    lines.push(
      `## ${source.id}, ${signal}: ${source.description}`,
      '',
      `${streams.length} seed(s) (${streams.map((x) => x.seed).join(', ')}); ${st.ticks} bins, boundary at bin ${st.boundary}; warm-up ends at bin ${streams.map((x) => x.warmUpEnd).join(' / ')} (first fed value at bin ${st.firstFedTick}); scored session 1: ${f1(((st.boundary - st.warmUpEnd) * st.binSeconds) / 60)} min; decoder ${f0(st.microsPerTick)} us per tick through the pipeline${streams.every((x) => x.cached) ? ' (streams from the cache)' : ''}.`,
      '',
      `Means over ${streams.length} seed(s); delay per seed. FA/10 min and delay: either counting definition (they agree there). Goal: FA/10 min <= ${s.goalFalseAlarmsPer10Minutes} and delay <= ${s.goalDelayTicks} bins.`,
      '',
      '| detector | setting | input | warm-up alarms | FA (session 1) | FA/10 min | delay (bins) per seed | mean delay | repeats (session 2) | FA river-pr-1963 | FA first-alarm | periodic at own FA rate: expected delay | goal met |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...results.summary.filter((r) => r.source === source.id && r.signal === signal).map((r) =>
        `| ${r.detector} | ${r.setting} | ${r.input} | ${f1(r.warmUpAlarms)} | ${f1(r.falseAlarms)} | ${f2(r.falseAlarmsPer10Minutes)} | ${r.delayTicks.map(delayText).join(' / ')} | ${f1(r.meanDelayTicks)} | ${f1(r.repeatAlarms)} | ${f1(r.counted.find((c) => c.counting === 'river-pr-1963')!.falseAlarms)} | ${f1(r.counted.find((c) => c.counting === 'first-alarm')!.falseAlarms)} | ${f0(r.atOwnRateExpectedDelayTicks)} | ${r.goalMet}/${r.seeds} |`),
      `| periodic(${b0.period}) | budget ${s.falseAlarmsPerHour}/h | none | 0 | ${f1(mean(base.map((b) => b.baseline.score.falseAlarms)))} | ${f2(mean(base.map((b) => b.baseline.score.falseAlarmsPer10Minutes)))} (expected ${f2(b0.expectedFalseAlarmsPer10Minutes)}) | ${base.map((b) => delayText(b.baseline.score.delayTicks)).join(' / ')} | expected ${f0(b0.expectedDelayTicks)}, P(<= ${s.goalDelayTicks}) ${b0.probabilityWithinGoal.toExponential(1)} | ${f1(mean(base.map((b) => b.baseline.score.repeatAlarms)))} | - | - | - | ${base.filter((b) => b.baseline.score.goalMet).length}/${base.length} |`,
      '',
      '### Per seed',
      '',
      '| seed | detector | setting | warm-up alarms | FA (session 1) | FA/10 min | delay (bins) | repeats | FA river-pr-1963 | FA first-alarm | precision river-pr-1963 | precision first-alarm | goal |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...results.rows.filter((r) => r.source === source.id && r.signal === signal).map((r) => {
        const river = r.score.counted.find((c) => c.counting === 'river-pr-1963')!;
        const first = r.score.counted.find((c) => c.counting === 'first-alarm')!;
        return `| ${r.seed} | ${r.detector} | ${r.setting} | ${r.score.warmUpAlarms} | ${r.score.falseAlarms} | ${f2(r.score.falseAlarmsPer10Minutes)} | ${delayText(r.score.delayTicks)} | ${r.score.repeatAlarms} | ${river.falseAlarms} | ${first.falseAlarms} | ${f2(river.precision)} | ${f2(first.precision)} | ${r.score.goalMet ? 'met' : 'no'} |`;
      }),
      '',
    );
  }
  if (results.nullCalibration.length > 0) {
    const n = results.nullCalibration[0];
    lines.push(
      '## Calibration on null streams (truth known: no change at all)',
      '',
      `Budget ${n.falseAlarmsPerHour} false alarms per hour, 50 ms ticks, the calibrated detector's default warm-up; per seed a fresh stream and calibration seed; realized false alarms per hour of scored stream (mean over ${n.realizedPerHour.length} seeds, then per seed), beside what calibration estimated for its chosen setting.`,
      '',
      '| detector | null stream | hours per seed | realized per hour (mean) | per seed | estimated (mean) | calibration ms |',
      '|---|---|---|---|---|---|---|',
      ...results.nullCalibration.map((r) => `| ${r.detector} | ${r.family} | ${r.hoursPerSeed} | ${f2(mean(r.realizedPerHour))} | ${r.realizedPerHour.map((v) => v.toFixed(1)).join(' ')} | ${f2(mean(r.estimatedPerHour))} | ${f0(r.calibrationMs)} |`),
      '',
    );
  }
  lines.push(`${results.rows.length} detector runs in ${results.seconds.toFixed(1)} s.`, '');
  return lines.join('\n');
}

/** The first seed's signal (2 s block means) with the warm-up, the boundary, and every detector's alarms. */
function alarmChart(values: ArrayLike<number>, info: DriftStreamInfo, alarms: ReadonlyMap<string, readonly number[]>): TopLevelSpec {
  const stream = { ticks: info.ticks, boundary: info.boundary, binSeconds: info.binSeconds };
  const { signal, source: id } = info;
  const block = Math.max(1, Math.round(2 / stream.binSeconds));
  const series: { t: number; value: number }[] = [];
  for (let from = 0; from < stream.ticks; from += block) {
    let n = 0;
    let sum = 0;
    for (let i = from; i < Math.min(stream.ticks, from + block); i++) {
      if (Number.isFinite(values[i])) {
        n++;
        sum += values[i];
      }
    }
    if (n > 0) series.push({ t: ((from + block / 2 - stream.boundary) * stream.binSeconds) / 60, value: sum / n });
  }
  const marks: { t: number; detector: string }[] = [];
  const rows: string[] = [];
  for (const [detector, ticks] of alarms) {
    const row = `${detector}: ${ticks.length}`;
    rows.push(row);
    // At most 2000 marks per detector: a detector that fires more often is a solid band either way.
    const step = Math.max(1, Math.ceil(ticks.length / 2000));
    for (let k = 0; k < ticks.length; k += step) marks.push({ t: ((ticks[k] - stream.boundary) * stream.binSeconds) / 60, detector: row });
  }
  const rules = [
    { t: 0, label: 'boundary (no marker)' },
    { t: ((info.warmUpEnd - stream.boundary) * stream.binSeconds) / 60, label: 'warm-up ends' },
  ];
  const x = { field: 't', type: 'quantitative', title: 'minutes from the session boundary', scale: { domain: [(-stream.boundary * stream.binSeconds) / 60, ((stream.ticks - stream.boundary) * stream.binSeconds) / 60] } };
  const ruleLayer = {
    data: { values: rules },
    layer: [
      { mark: { type: 'rule', color: '#c00', strokeDash: [5, 3] }, encoding: { x: { field: 't', type: 'quantitative' } } },
      { mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, dy: 3, color: '#c00', fontSize: 10 }, encoding: { x: { field: 't', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } } },
    ],
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `${id}, seed ${info.seed}: ${signal === 'input-squared-z' ? 'the inputs\' mean squared z-score' : `the decoder's ${signal}`} and each detector's alarms`, subtitle: `2 s block means; alarms: detector (setting): total alarms on the stream` },
    vconcat: [
      {
        width: 760, height: 200,
        layer: [
          { data: { values: series }, mark: { type: 'line', strokeWidth: 1, clip: true }, encoding: { x, y: { field: 'value', type: 'quantitative', title: signal, scale: { type: 'log' } } } },
          ruleLayer,
        ],
      },
      {
        width: 760, height: Math.max(60, 18 * alarms.size),
        layer: [
          { data: { values: marks }, mark: { type: 'tick', thickness: 1, opacity: 0.7 }, encoding: { x, y: { field: 'detector', type: 'nominal', title: null, scale: { domain: rows } }, color: { field: 'detector', type: 'nominal', legend: null, scale: { domain: rows } } } },
          ruleLayer,
        ],
      },
    ],
    config: { font: PLOT_FONT, background: 'white', view: { stroke: '#ddd' }, axis: { labelFontSize: 10, titleFontSize: 11, labelLimit: 400 }, title: { fontSize: 13, subtitleFontSize: 10, anchor: 'start' } },
  } as TopLevelSpec;
}
