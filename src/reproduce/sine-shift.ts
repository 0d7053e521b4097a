import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProgressBar, type ProgressStream } from '../report/progress.js';
import { RecoveryMeter } from '../evaluation/recovery.js';
import { WindowedMean } from '../evaluation/windowed-mean.js';
import type { CellKind } from '../learners/cells/cell.js';
import { cellKinds, hasDefaultOutputBypass } from '../learners/cells/registry.js';
import type { KernelBackend } from '../learners/kernels/kernels.js';
import { createLearner, type Learner, type LearnerSpec } from '../learners/learner.js';
import { adam, momentum, rmsprop, sgd, type OptimizerSpec } from '../learners/optim/transform.js';
import { groupedBarChart, lineChartWithErrorBars, renderVegaLitePng, timeSeriesChart, type BarDatum, type ErrorBarPoint, type SeriesPoint } from '../report/plot.js';

/**
 * The sine frequency-shift experiment of "Temporal Credit Is Free" (Figures 1 and 2a), as driftline runs it.
 * The paper's exact task, shift size and recovery formula were not found (papers/README.md); these are our
 * choices, all in `SINE_SHIFT_DEFAULTS` and overridable:
 *
 * Task. One input, one output, amplitude 1, no noise. The stream is a sine whose period changes at t0 from
 * P1 = 25 to P2 = 11 ticks, phase-continuous: x_t = sin(w1 t) for t <= t0 and x_t = sin(w1 t0 + w2 (t - t0)) after,
 * w = 2 pi / P. So the transition x_t -> x_{t+1} has period P1 exactly for the ticks t < t0 and P2 for t >= t0;
 * nothing jumps but the frequency. Input x_t, target x_{t+1}, a label every tick with no delay, test-then-train
 * (predict, score the squared error, then learn). t0 = preTicks = 10,000 (warm-up), then postTicks = 10,000.
 * The learner's seed (initialisation) is the only thing a seed changes: the signal is deterministic.
 *
 * Measures (src/evaluation/recovery.ts). At t0 the learner is forked into a frozen shadow that predicts the
 * post-shift stream beside the adapting learner. With W = window = 1000 ticks:
 *   E_pre     the adapting learner's MSE over the last W ticks before t0 (t0 - W .. t0 - 1);
 *   E_adapt   the adapting learner's MSE over the last W ticks of the post-shift period;
 *   E_frozen  the frozen shadow's MSE over those same ticks;
 *   recovery  (E_frozen - E_adapt) / (E_frozen - E_pre), reported in %; residual E_adapt / E_pre;
 *   time to recovery: ticks from t0 until the MSE over the last recoveryWindow = 100 ticks (about 9 periods of
 *             P2) first satisfies E_adapt <= (1 + 0.5) E_pre; null when it never does. The window must be full,
 *             so the smallest possible value is 99; a 100-tick window keeps that latency small next to the
 *             10,000 ticks after the shift.
 *   persistence baseline: predicting x_t for x_{t+1}, scored on the same windows (DESIGN.md section 5); its MSE is
 *             1 - cos(w) for a unit sine: 0.031 at P1 = 25, 0.159 at P2 = 11.
 *
 * Experiments.
 *   (a) lambda sweep: credit immediate with trace decay lambda in {0, 0.25, 0.5, 0.75, 0.9, 0.95}, tanh-rnn without
 *       output bypass, n in {64, 256}, RMSprop lr 1e-3 (decay 0.99, eps 1e-8) fixed across lambdas (not tuned per
 *       lambda), 5 seeds.
 *   (b) optimizer isolation at lambda = 0: every cell kind x {sgd, momentum, rmsprop, adam}, n = 64, 5 seeds, one
 *       learning rate per optimizer family chosen once as a common default and not tuned per cell:
 *       sgd 1e-2; momentum 1e-3 with decay 0.9 (the same effective step lr / (1 - decay) = 1e-2 as sgd, so the
 *       comparison isolates beta1); rmsprop 1e-3 (decay 0.99); adam 1e-3 (b1 0.9, b2 0.999).
 *
 * A run whose errors become non-finite is reported as diverged, with null figures.
 * The per-tick loop allocates nothing: x and y are two reused Float32Arrays and every accumulator is preallocated.
 */
export type OptimizerName = 'sgd' | 'momentum' | 'rmsprop' | 'adam';
export const optimizerNames: readonly OptimizerName[] = ['sgd', 'momentum', 'rmsprop', 'adam'];

export interface SineShiftOptions {
  /** Number of seeds (1..seeds) or the seeds themselves. */
  readonly seeds?: number | readonly number[];
  readonly preTicks?: number;
  readonly postTicks?: number;
  /** Hidden sizes of the lambda sweep. */
  readonly hiddenSizes?: readonly number[];
  readonly lambdas?: readonly number[];
  /** Cells of the optimizer isolation. */
  readonly cells?: readonly CellKind[];
  readonly optimizers?: readonly OptimizerName[];
  /** Hidden size of the optimizer isolation. */
  readonly isolationHiddenSize?: number;
  /** Learning rate per optimizer family. */
  readonly learningRates?: Partial<Record<OptimizerName, number>>;
  /** Optimizer of the lambda sweep. */
  readonly sweepOptimizer?: OptimizerName;
  readonly periodBefore?: number;
  readonly periodAfter?: number;
  readonly amplitude?: number;
  /** W: ticks of E_pre, E_adapt and E_frozen. */
  readonly window?: number;
  /** Ticks of the windowed E_adapt that time to recovery uses. */
  readonly recoveryWindow?: number;
  readonly tolerance?: number;
  /** Which experiments to run (default both). */
  readonly experiments?: readonly ('lambda-sweep' | 'optimizer-isolation')[];
  /** The tiny preset for tests: 1 seed, 1500 ticks pre and post, n = 16, lambdas 0 and 0.95, two cells, W = 500. */
  readonly quick?: boolean;
  /** Where results.json and the PNGs go (default out/sine-shift); null writes nothing. */
  readonly outDir?: string | null;
  readonly quiet?: boolean;
  /** Progress output (default process.stderr). */
  readonly progressStream?: ProgressStream;
  /** Kernel backend (default: the learner's default, WASM where it loads). */
  readonly backend?: KernelBackend;
}

export interface SineShiftSettings {
  readonly seeds: readonly number[];
  readonly preTicks: number;
  readonly postTicks: number;
  readonly hiddenSizes: readonly number[];
  readonly lambdas: readonly number[];
  readonly cells: readonly CellKind[];
  readonly optimizers: readonly OptimizerName[];
  readonly isolationHiddenSize: number;
  readonly learningRates: Readonly<Record<OptimizerName, number>>;
  readonly sweepOptimizer: OptimizerName;
  readonly periodBefore: number;
  readonly periodAfter: number;
  readonly amplitude: number;
  readonly window: number;
  readonly recoveryWindow: number;
  readonly tolerance: number;
  readonly experiments: readonly ('lambda-sweep' | 'optimizer-isolation')[];
  readonly quick: boolean;
  /** Trace plots: the windowed MSE (over traceWindow ticks) every traceStride ticks from t0 - traceBefore on. */
  readonly traceWindow: number;
  readonly traceStride: number;
  readonly traceBefore: number;
}

export const SINE_SHIFT_DEFAULTS: SineShiftSettings = {
  seeds: [1, 2, 3, 4, 5],
  preTicks: 10_000,
  postTicks: 10_000,
  hiddenSizes: [64, 256],
  lambdas: [0, 0.25, 0.5, 0.75, 0.9, 0.95],
  cells: cellKinds,
  optimizers: optimizerNames,
  isolationHiddenSize: 64,
  learningRates: { sgd: 1e-2, momentum: 1e-3, rmsprop: 1e-3, adam: 1e-3 },
  sweepOptimizer: 'rmsprop',
  periodBefore: 25,
  periodAfter: 11,
  amplitude: 1,
  window: 1000,
  recoveryWindow: 100,
  tolerance: 0.5,
  experiments: ['lambda-sweep', 'optimizer-isolation'],
  quick: false,
  traceWindow: 100,
  traceStride: 50,
  traceBefore: 2000,
};

const QUICK: Partial<SineShiftSettings> = {
  seeds: [1],
  preTicks: 1500,
  postTicks: 1500,
  hiddenSizes: [16],
  lambdas: [0, 0.95],
  cells: ['tanh-rnn', 'tanh-rnn-bypass'],
  isolationHiddenSize: 16,
  window: 500,
  traceBefore: 500,
  traceStride: 25,
};

export interface TrialConfig {
  readonly experiment: 'lambda-sweep' | 'optimizer-isolation';
  readonly cell: CellKind;
  readonly outputBypass: boolean;
  readonly hiddenSize: number;
  readonly lambda: number;
  readonly optimizer: OptimizerName;
  readonly lr: number;
  readonly seed: number;
}

export interface TrialResult extends TrialConfig {
  readonly diverged: boolean;
  readonly ePre: number | null;
  readonly eAdapt: number | null;
  readonly eFrozen: number | null;
  /** (E_frozen - E_adapt) / (E_frozen - E_pre), a fraction (tables and plots show %). */
  readonly recovery: number | null;
  readonly residual: number | null;
  readonly timeToRecovery: number | null;
  /** Persistence baseline MSE over the E_pre window and over the E_adapt window. */
  readonly persistencePre: number;
  readonly persistencePost: number;
  readonly updates: number;
  readonly skippedNonFinite: number;
  readonly seconds: number;
}

export interface Stat {
  readonly mean: number | null;
  readonly std: number | null;
  /** Runs that gave a number. */
  readonly n: number;
}

export interface SummaryRow {
  readonly experiment: 'lambda-sweep' | 'optimizer-isolation';
  readonly cell: CellKind;
  readonly outputBypass: boolean;
  readonly hiddenSize: number;
  readonly lambda: number;
  readonly optimizer: OptimizerName;
  readonly lr: number;
  readonly runs: number;
  readonly diverged: number;
  /** In %. */
  readonly recovery: Stat;
  readonly residual: Stat;
  readonly ePre: Stat;
  readonly eAdapt: Stat;
  readonly eFrozen: Stat;
  /** Over the runs that recovered. */
  readonly timeToRecovery: Stat;
  readonly recovered: number;
  readonly persistencePre: number;
  readonly persistencePost: number;
}

export interface ErrorTrace {
  readonly hiddenSize: number;
  readonly lambda: number;
  /** Ticks (t0 at `t0`) of the samples. */
  readonly ticks: number[];
  /** Windowed MSE, mean over seeds; null where undefined (the frozen shadow before t0). */
  readonly adapt: (number | null)[];
  readonly frozen: (number | null)[];
  readonly persistence: (number | null)[];
}

export interface SineShiftResults {
  readonly experiment: 'sine-shift';
  readonly createdAt: string;
  readonly seconds: number;
  readonly backend: KernelBackend;
  readonly settings: SineShiftSettings;
  readonly t0: number;
  readonly trials: TrialResult[];
  readonly lambdaSweep: SummaryRow[];
  readonly optimizerIsolation: SummaryRow[];
  readonly traces: ErrorTrace[];
  /** Files written (results.json and the PNGs), empty when outDir was null. */
  readonly files: string[];
}

export function resolveSineShiftSettings(options: SineShiftOptions = {}): SineShiftSettings {
  const base: SineShiftSettings = options.quick ? { ...SINE_SHIFT_DEFAULTS, ...QUICK, quick: true } : SINE_SHIFT_DEFAULTS;
  const seeds =
    options.seeds === undefined ? base.seeds
      : typeof options.seeds === 'number' ? Array.from({ length: positiveInt(options.seeds, 'seeds') }, (_, i) => i + 1)
        : [...options.seeds];
  const settings: SineShiftSettings = {
    ...base,
    seeds,
    preTicks: options.preTicks ?? base.preTicks,
    postTicks: options.postTicks ?? base.postTicks,
    hiddenSizes: options.hiddenSizes ?? base.hiddenSizes,
    lambdas: options.lambdas ?? base.lambdas,
    cells: options.cells ?? base.cells,
    optimizers: options.optimizers ?? base.optimizers,
    isolationHiddenSize: options.isolationHiddenSize ?? base.isolationHiddenSize,
    learningRates: { ...base.learningRates, ...options.learningRates },
    sweepOptimizer: options.sweepOptimizer ?? base.sweepOptimizer,
    periodBefore: options.periodBefore ?? base.periodBefore,
    periodAfter: options.periodAfter ?? base.periodAfter,
    amplitude: options.amplitude ?? base.amplitude,
    window: options.window ?? base.window,
    recoveryWindow: options.recoveryWindow ?? base.recoveryWindow,
    tolerance: options.tolerance ?? base.tolerance,
    experiments: options.experiments ?? base.experiments,
  };
  positiveInt(settings.preTicks, 'preTicks');
  positiveInt(settings.postTicks, 'postTicks');
  positiveInt(settings.window, 'window');
  positiveInt(settings.recoveryWindow, 'recoveryWindow');
  if (settings.window > settings.preTicks || settings.window > settings.postTicks) {
    throw new RangeError(`window (${settings.window}) must not exceed preTicks (${settings.preTicks}) or postTicks (${settings.postTicks})`);
  }
  if (settings.seeds.length === 0 || !settings.seeds.every(Number.isInteger)) throw new RangeError('seeds must be integers (at least one)');
  for (const n of [...settings.hiddenSizes, settings.isolationHiddenSize]) positiveInt(n, 'hidden size');
  for (const l of settings.lambdas) if (!(l >= 0 && l < 1)) throw new RangeError(`lambda must be in [0, 1), got ${l}`);
  for (const c of settings.cells) if (!cellKinds.includes(c)) throw new RangeError(`unknown cell '${c}': expected one of ${cellKinds.join(', ')}`);
  for (const o of [...settings.optimizers, settings.sweepOptimizer]) {
    if (!optimizerNames.includes(o)) throw new RangeError(`unknown optimizer '${o}': expected one of ${optimizerNames.join(', ')}`);
  }
  if (!(settings.periodBefore > 0 && settings.periodAfter > 0)) throw new RangeError('periods must be > 0');
  return settings;
}

export function optimizerSpec(name: OptimizerName, lr: number): OptimizerSpec {
  switch (name) {
    case 'sgd':
      return sgd(lr);
    case 'momentum':
      return momentum(lr, 0.9);
    case 'rmsprop':
      return rmsprop(lr, 0.99, 1e-8);
    case 'adam':
      return adam(lr, 0.9, 0.999, 1e-8);
  }
}

export function trialsOf(settings: SineShiftSettings): TrialConfig[] {
  const trials: TrialConfig[] = [];
  if (settings.experiments.includes('lambda-sweep')) {
    for (const hiddenSize of settings.hiddenSizes) {
      for (const lambda of settings.lambdas) {
        for (const seed of settings.seeds) {
          trials.push({
            experiment: 'lambda-sweep', cell: 'tanh-rnn', outputBypass: false, hiddenSize, lambda,
            optimizer: settings.sweepOptimizer, lr: settings.learningRates[settings.sweepOptimizer], seed,
          });
        }
      }
    }
  }
  if (settings.experiments.includes('optimizer-isolation')) {
    for (const cell of settings.cells) {
      for (const optimizer of settings.optimizers) {
        for (const seed of settings.seeds) {
          trials.push({
            experiment: 'optimizer-isolation', cell, outputBypass: hasDefaultOutputBypass(cell),
            hiddenSize: settings.isolationHiddenSize, lambda: 0, optimizer, lr: settings.learningRates[optimizer], seed,
          });
        }
      }
    }
  }
  return trials;
}

/** Per-trial trace buffers (windowed MSE samples), preallocated. */
interface TraceBuffers {
  readonly start: number;
  readonly adapt: Float64Array;
  readonly frozen: Float64Array;
  readonly persistence: Float64Array;
}

/** Runs one trial: warm-up to t0, fork the frozen shadow, run both on the shifted stream, measure. */
export function runSineShiftTrial(
  trial: TrialConfig,
  settings: SineShiftSettings,
  options: { backend?: KernelBackend; onTicks?: (ticks: number) => void; trace?: TraceBuffers } = {},
): TrialResult & { backend: KernelBackend } {
  const started = performance.now();
  const spec: LearnerSpec = {
    cell: { kind: trial.cell, hiddenSize: trial.hiddenSize },
    credit: { rule: 'immediate', lambda: trial.lambda },
    optimizer: optimizerSpec(trial.optimizer, trial.lr),
    inputSize: 1,
    outputSize: 1,
    seed: trial.seed,
    loss: 'mse',
  };
  const learner = createLearner(spec, options.backend ? { backend: options.backend } : {});
  const { preTicks: t0, postTicks, window: W, amplitude: A } = settings;
  const w1 = (2 * Math.PI) / settings.periodBefore;
  const w2 = (2 * Math.PI) / settings.periodAfter;
  const total = t0 + postTicks;
  const x = new Float32Array(1);
  const y = new Float32Array(1);
  const adaptWin = new WindowedMean(W);
  const persistWin = new WindowedMean(W);
  const trace = options.trace;
  const traceAdapt = trace ? new WindowedMean(settings.traceWindow) : null;
  const traceFrozen = trace ? new WindowedMean(settings.traceWindow) : null;
  const tracePersist = trace ? new WindowedMean(settings.traceWindow) : null;
  let frozen: Learner | null = null;
  let meter: RecoveryMeter | null = null;
  let ePre = Number.NaN;
  let persistencePre = Number.NaN;
  let diverged = false;
  let phase = 0;
  const report = options.onTicks;
  const reportEvery = 1000;

  for (let t = 0; t < total; t++) {
    if (t === t0) {
      ePre = adaptWin.mean;
      persistencePre = persistWin.mean;
      persistWin.reset();
      frozen = learner.fork({ frozen: true });
      meter = new RecoveryMeter(ePre, { window: W, recoveryWindow: settings.recoveryWindow, tolerance: settings.tolerance });
    }
    // x_t, then x_{t+1}: the transition out of tick t has period P1 before t0 and P2 from t0 on.
    x[0] = A * Math.sin(phase);
    phase += t < t0 ? w1 : w2;
    if (phase > 2 * Math.PI) phase -= 2 * Math.PI;
    y[0] = A * Math.sin(phase);

    const eAdapt = (learner.predict(x)[0] - y[0]) ** 2;
    const ePersist = (x[0] - y[0]) ** 2;
    let eFrozen = Number.NaN;
    if (frozen !== null) eFrozen = (frozen.predict(x)[0] - y[0]) ** 2;
    if (!Number.isFinite(eAdapt) || (frozen !== null && !Number.isFinite(eFrozen))) {
      diverged = true;
      break;
    }
    learner.learn(y);

    if (t < t0) adaptWin.push(eAdapt);
    else if (meter !== null) meter.update(eAdapt, eFrozen);
    persistWin.push(ePersist);
    if (trace && traceAdapt && traceFrozen && tracePersist) {
      traceAdapt.push(eAdapt);
      tracePersist.push(ePersist);
      if (frozen !== null) traceFrozen.push(eFrozen);
      const k = t - trace.start;
      if (k >= 0 && k % settings.traceStride === 0) {
        const i = k / settings.traceStride;
        if (i < trace.adapt.length) {
          trace.adapt[i] = traceAdapt.mean;
          trace.persistence[i] = tracePersist.mean;
          trace.frozen[i] = frozen !== null ? traceFrozen.mean : Number.NaN;
        }
      }
    }
    if (report && (t + 1) % reportEvery === 0) report(reportEvery);
  }
  if (report) report(total % reportEvery);

  const m = meter;
  const ok = !diverged && m !== null && Number.isFinite(ePre) && ePre > 0;
  return {
    ...trial,
    backend: learner.backend,
    diverged,
    ePre: Number.isFinite(ePre) ? ePre : null,
    eAdapt: ok ? m.eAdapt : null,
    eFrozen: ok ? m.eFrozen : null,
    recovery: ok ? m.recovery : null,
    residual: ok ? m.residual : null,
    timeToRecovery: ok ? m.timeToRecovery : null,
    persistencePre,
    persistencePost: persistWin.mean,
    updates: learner.version,
    skippedNonFinite: learner.stats.skippedNonFinite,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Runs the experiments, writes results.json and the plots into outDir, and returns the results. */
export async function runSineShift(options: SineShiftOptions = {}): Promise<SineShiftResults> {
  const settings = resolveSineShiftSettings(options);
  const trials = trialsOf(settings);
  const started = performance.now();
  const ticksPerTrial = settings.preTicks + settings.postTicks;
  const progress = new ProgressBar({
    total: trials.length * ticksPerTrial,
    unit: 'ticks',
    label: 'sine-shift',
    quiet: options.quiet ?? false,
    stream: options.progressStream,
  });

  const t0 = settings.preTicks;
  const traceStart = Math.max(0, t0 - settings.traceBefore);
  const traceLength = Math.floor((t0 + settings.postTicks - 1 - traceStart) / settings.traceStride) + 1;
  const traced = traceLambdas(settings);
  const traceSums = new Map<string, { adapt: Float64Array; frozen: Float64Array; persistence: Float64Array; runs: number }>();

  const results: TrialResult[] = [];
  let backend: KernelBackend = options.backend ?? 'js';
  for (let i = 0; i < trials.length; i++) {
    const trial = trials[i];
    const label = trial.experiment === 'lambda-sweep'
      ? `run ${i + 1}/${trials.length}: lambda sweep n=${trial.hiddenSize} lambda=${trial.lambda} seed ${trial.seed}`
      : `run ${i + 1}/${trials.length}: ${trial.cell} + ${trial.optimizer} seed ${trial.seed}`;
    progress.setLabel(label);
    const wantTrace = trial.experiment === 'lambda-sweep' && traced.includes(trial.lambda);
    const trace = wantTrace
      ? { start: traceStart, adapt: new Float64Array(traceLength).fill(Number.NaN), frozen: new Float64Array(traceLength).fill(Number.NaN), persistence: new Float64Array(traceLength).fill(Number.NaN) }
      : undefined;
    const result = runSineShiftTrial(trial, settings, { backend: options.backend, onTicks: (n) => progress.tick(n), trace });
    backend = result.backend;
    const { backend: _b, ...plain } = result;
    results.push(plain);
    if (trace && !result.diverged) {
      const key = `${trial.hiddenSize}:${trial.lambda}`;
      let sums = traceSums.get(key);
      if (!sums) {
        sums = { adapt: new Float64Array(traceLength), frozen: new Float64Array(traceLength), persistence: new Float64Array(traceLength), runs: 0 };
        traceSums.set(key, sums);
      }
      for (let k = 0; k < traceLength; k++) {
        sums.adapt[k] += trace.adapt[k];
        sums.frozen[k] += trace.frozen[k];
        sums.persistence[k] += trace.persistence[k];
      }
      sums.runs++;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  progress.finish(`${trials.length} runs done`);

  const traces: ErrorTrace[] = [];
  for (const [key, sums] of traceSums) {
    const [hiddenSize, lambda] = key.split(':').map(Number);
    const finite = (v: number) => (Number.isFinite(v) ? v / sums.runs : null);
    traces.push({
      hiddenSize,
      lambda,
      ticks: Array.from({ length: traceLength }, (_, k) => traceStart + k * settings.traceStride),
      adapt: Array.from(sums.adapt, finite),
      frozen: Array.from(sums.frozen, finite),
      persistence: Array.from(sums.persistence, finite),
    });
  }

  const results0: SineShiftResults = {
    experiment: 'sine-shift',
    createdAt: new Date().toISOString(),
    seconds,
    backend,
    settings,
    t0,
    trials: results,
    lambdaSweep: summarize(results.filter((r) => r.experiment === 'lambda-sweep')),
    optimizerIsolation: summarize(results.filter((r) => r.experiment === 'optimizer-isolation')),
    traces,
    files: [],
  };
  const outDir = options.outDir === undefined ? join('out', 'sine-shift') : options.outDir;
  if (outDir === null) return results0;
  const files = await writeSineShiftArtifacts(results0, outDir);
  return { ...results0, files };
}

/** The lambdas whose error around t0 is plotted: 0 and 0.95 when swept, else the smallest and largest. */
function traceLambdas(settings: SineShiftSettings): number[] {
  const ls = [...settings.lambdas].sort((a, b) => a - b);
  if (ls.length === 0) return [];
  const lo = ls.includes(0) ? 0 : ls[0];
  const hi = ls.includes(0.95) ? 0.95 : ls[ls.length - 1];
  return lo === hi ? [lo] : [lo, hi];
}

function stat(values: readonly (number | null)[]): Stat {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (xs.length === 0) return { mean: null, std: null, n: 0 };
  const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std, n: xs.length };
}

/** Groups trials by configuration (all but the seed): mean and sample std over seeds. */
export function summarize(trials: readonly TrialResult[]): SummaryRow[] {
  const groups = new Map<string, TrialResult[]>();
  for (const t of trials) {
    const key = `${t.experiment}|${t.cell}|${t.hiddenSize}|${t.lambda}|${t.optimizer}|${t.lr}`;
    const g = groups.get(key);
    if (g) g.push(t);
    else groups.set(key, [t]);
  }
  return [...groups.values()].map((g) => {
    const first = g[0];
    return {
      experiment: first.experiment,
      cell: first.cell,
      outputBypass: first.outputBypass,
      hiddenSize: first.hiddenSize,
      lambda: first.lambda,
      optimizer: first.optimizer,
      lr: first.lr,
      runs: g.length,
      diverged: g.filter((t) => t.diverged).length,
      recovery: stat(g.map((t) => (t.recovery === null ? null : 100 * t.recovery))),
      residual: stat(g.map((t) => t.residual)),
      ePre: stat(g.map((t) => t.ePre)),
      eAdapt: stat(g.map((t) => t.eAdapt)),
      eFrozen: stat(g.map((t) => t.eFrozen)),
      timeToRecovery: stat(g.map((t) => t.timeToRecovery)),
      recovered: g.filter((t) => t.timeToRecovery !== null).length,
      persistencePre: first.persistencePre,
      persistencePost: first.persistencePost,
    };
  });
}

/** Writes results.json and the PNG figures; returns the paths written. */
export async function writeSineShiftArtifacts(results: SineShiftResults, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const files: string[] = [];
  const s = results.settings;
  const taskLine = `sine period ${s.periodBefore} -> ${s.periodAfter} ticks at t0 = ${results.t0}; ${s.postTicks} ticks after; W = ${s.window}; ${s.seeds.length} seed(s), mean +- 1 std`;

  if (results.lambdaSweep.length > 0) {
    const points: ErrorBarPoint[] = results.lambdaSweep
      .filter((r) => r.recovery.mean !== null)
      .map((r) => ({
        x: r.lambda,
        y: r.recovery.mean as number,
        lo: (r.recovery.mean as number) - (r.recovery.std ?? 0),
        hi: (r.recovery.mean as number) + (r.recovery.std ?? 0),
        series: `n = ${r.hiddenSize}`,
      }));
    const spec = lineChartWithErrorBars(
      {
        title: 'Recovery vs trace decay lambda (tanh RNN, immediate derivatives, RMSprop)',
        subtitle: [taskLine, `RMSprop lr ${s.learningRates[s.sweepOptimizer]} for every lambda; recovery = (E_frozen - E_adapt) / (E_frozen - E_pre)`],
        xTitle: 'trace decay lambda',
        yTitle: 'recovery (%)',
        seriesTitle: 'hidden size',
        xOrdinal: true,
        rule: { y: 100, label: 'back to pre-shift error' },
      },
      points,
    );
    files.push((await renderVegaLitePng(spec, join(outDir, 'recovery-vs-lambda.png'))).path);

    // The ratio saturates and misleads when E_pre itself is poor, so the residual goes beside it (DESIGN.md 5).
    const residualPoints: ErrorBarPoint[] = results.lambdaSweep.flatMap((r) => {
      const values = results.trials
        .filter((t) => t.experiment === 'lambda-sweep' && t.hiddenSize === r.hiddenSize && t.lambda === r.lambda && t.residual !== null)
        .map((t) => t.residual as number)
        .filter((v) => v > 0);
      if (values.length === 0) return [];
      const geo = Math.exp(values.reduce((acc, v) => acc + Math.log(v), 0) / values.length);
      return [{ x: r.lambda, y: geo, lo: Math.min(...values), hi: Math.max(...values), series: `n = ${r.hiddenSize}` }];
    });
    const residualSpec = lineChartWithErrorBars(
      {
        title: 'Residual E_adapt / E_pre vs trace decay lambda (1 = as good as before the shift)',
        subtitle: [taskLine.replace('mean +- 1 std', 'geometric mean, bars min..max'), 'read beside E_pre: a learner that never learned before the shift has a small residual too (see the tables)'],
        xTitle: 'trace decay lambda',
        yTitle: 'residual E_adapt / E_pre (log scale)',
        seriesTitle: 'hidden size',
        xOrdinal: true,
        yLog: true,
        rule: { y: 1, label: 'pre-shift error' },
      },
      residualPoints,
    );
    files.push((await renderVegaLitePng(residualSpec, join(outDir, 'residual-vs-lambda.png'))).path);
  }

  for (const n of [...new Set(results.traces.map((t) => t.hiddenSize))]) {
    const points: SeriesPoint[] = [];
    const order: string[] = [];
    for (const tr of results.traces.filter((t) => t.hiddenSize === n).sort((a, b) => a.lambda - b.lambda)) {
      const adaptName = `adapting, lambda = ${tr.lambda}`;
      const frozenName = `frozen at t0, lambda = ${tr.lambda}`;
      order.push(adaptName, frozenName);
      tr.ticks.forEach((t, k) => {
        const a = tr.adapt[k];
        const f = tr.frozen[k];
        if (a !== null && a > 0) points.push({ t, value: a, series: adaptName });
        if (f !== null && f > 0) points.push({ t, value: f, series: frozenName });
      });
    }
    const persist = results.traces.find((t) => t.hiddenSize === n);
    if (persist) {
      order.push('persistence (x_t)');
      persist.ticks.forEach((t, k) => {
        const p = persist.persistence[k];
        if (p !== null && p > 0) points.push({ t, value: p, series: 'persistence (x_t)' });
      });
    }
    const spec = timeSeriesChart(
      {
        title: `Windowed MSE around the frequency shift (tanh RNN, n = ${n})`,
        subtitle: [`MSE over the last ${s.traceWindow} ticks, every ${s.traceStride} ticks, mean over ${s.seeds.length} seed(s); ${taskLine.split(';')[0]}`],
        xTitle: 'tick',
        yTitle: `MSE (last ${s.traceWindow} ticks, log scale)`,
        seriesTitle: 'predictor',
        seriesOrder: order,
        ruleAt: results.t0,
        ruleLabel: 'shift (t0)',
        yLog: true,
      },
      points,
    );
    files.push((await renderVegaLitePng(spec, join(outDir, `error-around-shift-n${n}.png`))).path);
  }

  if (results.optimizerIsolation.length > 0) {
    const rows = results.optimizerIsolation;
    const groupName = (r: SummaryRow) => (r.outputBypass ? `${r.cell} (bypass)` : r.cell);
    const bars: BarDatum[] = rows
      .filter((r) => r.recovery.mean !== null)
      .map((r) => ({
        group: groupName(r),
        category: `${r.optimizer} (lr ${r.lr})`,
        value: r.recovery.mean as number,
        lo: (r.recovery.mean as number) - (r.recovery.std ?? 0),
        hi: (r.recovery.mean as number) + (r.recovery.std ?? 0),
      }));
    const spec = groupedBarChart(
      {
        title: `Optimizer isolation at lambda = 0 (immediate derivatives, n = ${s.isolationHiddenSize})`,
        subtitle: [taskLine, '"(bypass)": the readout has an input-to-output bypass; learning rates fixed per optimizer, not tuned per cell'],
        xTitle: 'cell',
        yTitle: 'recovery (%)',
        categoryTitle: 'optimizer',
        groupOrder: [...new Set(rows.map(groupName))],
        categoryOrder: [...new Set(rows.map((r) => `${r.optimizer} (lr ${r.lr})`))],
        rule: { y: 100, label: '' },
        width: 760,
      },
      bars,
    );
    files.push((await renderVegaLitePng(spec, join(outDir, 'optimizer-isolation.png'))).path);
  }

  const jsonPath = join(outDir, 'results.json');
  files.push(jsonPath);
  await writeFile(jsonPath, `${JSON.stringify({ ...results, files }, null, 2)}\n`);
  return files;
}

function positiveInt(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}
