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
import { evaluateSineShiftClaims, type ClaimVerdict } from './sine-shift-claims.js';
import { selectRate, type PreShiftScore, type RateChoice } from './sine-shift-rate-selection.js';

/**
 * The sine frequency-shift experiment of "Temporal Credit Is Free" (Figures 1 and 2a), as driftline runs it.
 * The paper's exact task, shift size and recovery formula were not found (papers/README.md); these are our
 * choices, all in `SINE_SHIFT_DEFAULTS` and overridable, and every table states them:
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
 * Did not fit. Recovery is a fraction of the ground lost at the shift, measured from E_pre; a learner whose E_pre
 * is not below the persistence error over the same window never learned the sine, and its recovery divides by
 * noise. Such a run is kept in results.json but left out of the means of recovery, residual and time to recovery,
 * which are printed as "did not fit" when no run of the configuration fitted. Every mean says how many seeds it
 * covers (k/N) and the tables list the seeds left out and why (diverged, did not fit, nothing to recover).
 *
 * Experiments.
 *   (a) lambda sweep: credit immediate with trace decay lambda in {0, 0.25, 0.5, 0.75, 0.9, 0.95}, tanh-rnn without
 *       output bypass, n in {64, 256}, RMSprop (decay 0.99, eps 1e-8), 5 seeds.
 *   (b) optimizer isolation at lambda = 0: every cell kind x {sgd, momentum, rmsprop, adam}, n = 64, 5 seeds;
 *       momentum decay 0.9, rmsprop decay 0.99, adam b1 0.9, b2 0.999.
 *
 * Protocols (`protocols`, default both), each with its own tables, plots and claim verdicts:
 *   selected  "rate chosen on pre-shift phase": every configuration (lambda x n; cell x optimizer) gets the rate
 *             of its optimizer's grid (`rateGrids`) with the lowest mean E_pre over the selection seeds 1001 and
 *             1002, which are not scored, each run on the pre-shift ticks alone (sine-shift-rate-selection.ts has
 *             the rule). Then the scored seeds 1..5 run the full stream at that rate. Nothing at or after t0, and
 *             no scored seed, can move the choice: the selection runs are given a `PreShiftTask`, which has no
 *             post-shift field. Grids, log-spaced in steps of about 3: rmsprop and adam 1e-6 .. 3e-2 (10 rates);
 *             sgd 1e-4 .. 1 (9), as its steps are not normalized; momentum 1e-5 .. 1e-1 (9), a tenth of sgd's,
 *             so its effective step lr / (1 - 0.9) spans the same range. Every grid holds the fixed rate below.
 *             The grids were widened twice where the selection chose a grid's end (flagged "edge" in the
 *             selection table; the choice looks at pre-shift errors only): from 1e-4 .. 3e-2 (sgd 1e-3 .. 3e-1),
 *             where n = 256 took 1e-4 and sgd 0.3, and from 1e-5 .. 3e-2, where five lambda-sweep configurations
 *             took 1e-5. Rates of 1 (sgd) and 0.1 (momentum) mostly diverge: the top end is bounded.
 *   fixed     "fixed rate (not tuned)", the table this experiment printed first: one rate per optimizer family for
 *             every configuration (`learningRates`): sgd 1e-2; momentum 1e-3 (the same effective step as sgd, so
 *             the comparison isolates beta1); rmsprop 1e-3; adam 1e-3.
 * The claims the figures support are checked against each protocol's figures in sine-shift-claims.ts; the
 * selected protocol is the fair one.
 *
 * A run whose errors become non-finite is reported as diverged, with null figures.
 * The per-tick loop allocates nothing: x and y are two reused Float32Arrays and every accumulator is preallocated.
 */
export type OptimizerName = 'sgd' | 'momentum' | 'rmsprop' | 'adam';
export const optimizerNames: readonly OptimizerName[] = ['sgd', 'momentum', 'rmsprop', 'adam'];

export type Protocol = 'selected' | 'fixed';
/** In the order the tables are printed: the fair protocol first. */
export const protocolNames: readonly Protocol[] = ['selected', 'fixed'];
export const PROTOCOL_LABELS: Readonly<Record<Protocol, string>> = {
  selected: 'rate chosen on pre-shift phase',
  fixed: 'fixed rate (not tuned)',
};

export type ExperimentName = 'lambda-sweep' | 'optimizer-isolation';

export interface SineShiftOptions {
  /** Number of scored seeds (1..seeds) or the seeds themselves. */
  readonly seeds?: number | readonly number[];
  /** Seeds of the rate selection runs; must not be among the scored seeds. */
  readonly selectionSeeds?: readonly number[];
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
  /** The fixed-rate protocol's learning rate per optimizer family. */
  readonly learningRates?: Partial<Record<OptimizerName, number>>;
  /** The selected protocol's candidate rates per optimizer family. */
  readonly rateGrids?: Partial<Record<OptimizerName, readonly number[]>>;
  /** Which protocols to run (default both). */
  readonly protocols?: readonly Protocol[];
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
  readonly experiments?: readonly ExperimentName[];
  /**
   * The tiny preset for tests: 1 seed, 1500 ticks pre and post, n = 16, lambdas 0 and 0.95, two cells, W = 500;
   * selection on 1 seed over 3 rates per optimizer.
   */
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
  readonly selectionSeeds: readonly number[];
  readonly preTicks: number;
  readonly postTicks: number;
  readonly hiddenSizes: readonly number[];
  readonly lambdas: readonly number[];
  readonly cells: readonly CellKind[];
  readonly optimizers: readonly OptimizerName[];
  readonly isolationHiddenSize: number;
  readonly learningRates: Readonly<Record<OptimizerName, number>>;
  readonly rateGrids: Readonly<Record<OptimizerName, readonly number[]>>;
  readonly protocols: readonly Protocol[];
  readonly sweepOptimizer: OptimizerName;
  readonly periodBefore: number;
  readonly periodAfter: number;
  readonly amplitude: number;
  readonly window: number;
  readonly recoveryWindow: number;
  readonly tolerance: number;
  readonly experiments: readonly ExperimentName[];
  readonly quick: boolean;
  /** Trace plots: the windowed MSE (over traceWindow ticks) every traceStride ticks from t0 - traceBefore on. */
  readonly traceWindow: number;
  readonly traceStride: number;
  readonly traceBefore: number;
}

const ADAPTIVE_GRID = [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2];

export const SINE_SHIFT_DEFAULTS: SineShiftSettings = {
  seeds: [1, 2, 3, 4, 5],
  selectionSeeds: [1001, 1002],
  preTicks: 10_000,
  postTicks: 10_000,
  hiddenSizes: [64, 256],
  lambdas: [0, 0.25, 0.5, 0.75, 0.9, 0.95],
  cells: cellKinds,
  optimizers: optimizerNames,
  isolationHiddenSize: 64,
  learningRates: { sgd: 1e-2, momentum: 1e-3, rmsprop: 1e-3, adam: 1e-3 },
  rateGrids: {
    sgd: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1],
    momentum: [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
    rmsprop: ADAPTIVE_GRID,
    adam: ADAPTIVE_GRID,
  },
  protocols: protocolNames,
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
  selectionSeeds: [1001],
  preTicks: 1500,
  postTicks: 1500,
  hiddenSizes: [16],
  lambdas: [0, 0.95],
  cells: ['tanh-rnn', 'tanh-rnn-bypass'],
  isolationHiddenSize: 16,
  rateGrids: { sgd: [3e-3, 1e-2, 3e-2], momentum: [3e-4, 1e-3, 3e-3], rmsprop: [3e-4, 1e-3, 3e-3], adam: [3e-4, 1e-3, 3e-3] },
  window: 500,
  traceBefore: 500,
  traceStride: 25,
};

/** A configuration: everything of a run but its rate and seed. */
export interface RunConfig {
  readonly experiment: ExperimentName;
  readonly cell: CellKind;
  readonly outputBypass: boolean;
  readonly hiddenSize: number;
  readonly lambda: number;
  readonly optimizer: OptimizerName;
}

export interface TrialConfig extends RunConfig {
  readonly protocol: Protocol;
  readonly lr: number;
  readonly seed: number;
}

export interface TrialResult extends TrialConfig {
  readonly diverged: boolean;
  /** E_pre is below the persistence error over the same window (and the run did not diverge). */
  readonly fitted: boolean;
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

/** Why a seed is not in a configuration's means of recovery, residual and time to recovery. */
export type DropReason = 'diverged' | 'did not fit' | 'nothing to recover';

export interface DroppedRun {
  readonly seed: number;
  readonly reason: DropReason;
  /** E_pre / persistence MSE on the same window, when the run reached t0. */
  readonly ePreOverPersistence: number | null;
}

export interface SummaryRow extends RunConfig {
  readonly protocol: Protocol;
  readonly lr: number;
  readonly runs: number;
  readonly diverged: number;
  /** Runs with E_pre below the persistence error. */
  readonly fitted: number;
  /** In %, over the fitted runs. */
  readonly recovery: Stat;
  /** Over the fitted runs. */
  readonly residual: Stat;
  /** Over the runs that reached t0, fitted or not. */
  readonly ePre: Stat;
  /** Over the runs that did not diverge, fitted or not. */
  readonly eAdapt: Stat;
  readonly eFrozen: Stat;
  /** Over the fitted runs that recovered. */
  readonly timeToRecovery: Stat;
  /** Fitted runs that recovered. */
  readonly recovered: number;
  /** Seeds left out of the recovery means, with the reason. */
  readonly dropped: DroppedRun[];
  /** Fitted seeds whose windowed error never came within tolerance of E_pre (left out of time to recovery only). */
  readonly notRecovered: number[];
  readonly persistencePre: number;
  readonly persistencePost: number;
}

export interface ErrorTrace {
  readonly hiddenSize: number;
  readonly lambda: number;
  readonly lr: number;
  /** Ticks (t0 at `t0`) of the samples. */
  readonly ticks: number[];
  /** Windowed MSE, mean over seeds; null where undefined (the frozen shadow before t0). */
  readonly adapt: (number | null)[];
  readonly frozen: (number | null)[];
  readonly persistence: (number | null)[];
}

/** The rate chosen for one configuration on the pre-shift phase. */
export interface RateSelection extends RunConfig, RateChoice {}

export interface ProtocolResults {
  readonly protocol: Protocol;
  /** "rate chosen on pre-shift phase" or "fixed rate (not tuned)". */
  readonly label: string;
  readonly trials: TrialResult[];
  readonly lambdaSweep: SummaryRow[];
  readonly optimizerIsolation: SummaryRow[];
  readonly traces: ErrorTrace[];
  /** Per claim of the paper the figures support: reproduced, not reproduced or not testable, and why. */
  readonly claims: ClaimVerdict[];
}

export interface SineShiftResults {
  readonly experiment: 'sine-shift';
  readonly createdAt: string;
  readonly seconds: number;
  readonly backend: KernelBackend;
  readonly settings: SineShiftSettings;
  readonly t0: number;
  /** The rate chosen per configuration (empty when the selected protocol did not run). */
  readonly selection: RateSelection[];
  /** One entry per protocol run, in the order of `protocolNames`. */
  readonly protocols: ProtocolResults[];
  /** Files written (results.json and the PNGs), empty when outDir was null. */
  readonly files: string[];
}

export function resolveSineShiftSettings(options: SineShiftOptions = {}): SineShiftSettings {
  const base: SineShiftSettings = options.quick ? { ...SINE_SHIFT_DEFAULTS, ...QUICK, quick: true } : SINE_SHIFT_DEFAULTS;
  const seeds =
    options.seeds === undefined ? base.seeds
      : typeof options.seeds === 'number' ? Array.from({ length: positiveInt(options.seeds, 'seeds') }, (_, i) => i + 1)
        : [...options.seeds];
  const grids = { ...base.rateGrids, ...options.rateGrids };
  const settings: SineShiftSettings = {
    ...base,
    seeds,
    selectionSeeds: options.selectionSeeds ? [...options.selectionSeeds] : base.selectionSeeds,
    preTicks: options.preTicks ?? base.preTicks,
    postTicks: options.postTicks ?? base.postTicks,
    hiddenSizes: options.hiddenSizes ?? base.hiddenSizes,
    lambdas: options.lambdas ?? base.lambdas,
    cells: options.cells ?? base.cells,
    optimizers: options.optimizers ?? base.optimizers,
    isolationHiddenSize: options.isolationHiddenSize ?? base.isolationHiddenSize,
    learningRates: { ...base.learningRates, ...options.learningRates },
    rateGrids: Object.fromEntries(optimizerNames.map((o) => [o, [...new Set(grids[o])].sort((a, b) => a - b)])) as Record<OptimizerName, number[]>,
    // Canonical order whatever the caller's: the fair protocol's tables come first.
    protocols: protocolNames.filter((p) => (options.protocols ?? base.protocols).includes(p)),
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
  if (settings.selectionSeeds.length === 0 || !settings.selectionSeeds.every(Number.isInteger)) {
    throw new RangeError('selection seeds must be integers (at least one)');
  }
  const overlap = settings.selectionSeeds.filter((s) => settings.seeds.includes(s));
  if (overlap.length > 0) throw new RangeError(`selection seeds must not be scored seeds: ${overlap.join(', ')} are both`);
  if (options.protocols !== undefined) {
    for (const p of options.protocols) if (!protocolNames.includes(p)) throw new RangeError(`unknown protocol '${p}': expected one of ${protocolNames.join(', ')}`);
  }
  if (settings.protocols.length === 0) throw new RangeError('no protocol to run');
  for (const o of optimizerNames) {
    const g = settings.rateGrids[o];
    if (g.length === 0 || !g.every((lr) => Number.isFinite(lr) && lr > 0)) throw new RangeError(`the ${o} rate grid must hold rates > 0, got [${g.join(', ')}]`);
  }
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

/** Every configuration of the experiments asked for: lambda x n, then cell x optimizer. */
export function configsOf(settings: SineShiftSettings): RunConfig[] {
  const configs: RunConfig[] = [];
  if (settings.experiments.includes('lambda-sweep')) {
    for (const hiddenSize of settings.hiddenSizes) {
      for (const lambda of settings.lambdas) {
        configs.push({ experiment: 'lambda-sweep', cell: 'tanh-rnn', outputBypass: false, hiddenSize, lambda, optimizer: settings.sweepOptimizer });
      }
    }
  }
  if (settings.experiments.includes('optimizer-isolation')) {
    for (const cell of settings.cells) {
      for (const optimizer of settings.optimizers) {
        configs.push({
          experiment: 'optimizer-isolation', cell, outputBypass: hasDefaultOutputBypass(cell),
          hiddenSize: settings.isolationHiddenSize, lambda: 0, optimizer,
        });
      }
    }
  }
  return configs;
}

export function configKey(c: RunConfig): string {
  return `${c.experiment}|${c.cell}|${c.hiddenSize}|${c.lambda}|${c.optimizer}`;
}

/**
 * The scored runs of one protocol: every configuration on every scored seed. The selected protocol needs the rate
 * chosen per configuration (`configKey`), the fixed one takes `learningRates`.
 */
export function trialsOf(settings: SineShiftSettings, protocol: Protocol = 'fixed', chosen?: ReadonlyMap<string, number>): TrialConfig[] {
  const trials: TrialConfig[] = [];
  for (const config of configsOf(settings)) {
    const lr = protocol === 'fixed' ? settings.learningRates[config.optimizer] : chosen?.get(configKey(config));
    if (lr === undefined) throw new Error(`no rate chosen for ${configKey(config)}`);
    for (const seed of settings.seeds) trials.push({ ...config, protocol, lr, seed });
  }
  return trials;
}

/**
 * All a pre-shift run knows of the task. It has no post-shift field, so a run given only this (the rate selection)
 * cannot see the shift or anything after it.
 */
export interface PreShiftTask {
  readonly preTicks: number;
  readonly periodBefore: number;
  readonly amplitude: number;
  readonly window: number;
}

export function preShiftTask(settings: SineShiftSettings): PreShiftTask {
  return { preTicks: settings.preTicks, periodBefore: settings.periodBefore, amplitude: settings.amplitude, window: settings.window };
}

/** Per-trial trace buffers (windowed MSE samples), preallocated. */
interface TraceBuffers {
  readonly start: number;
  readonly adapt: Float64Array;
  readonly frozen: Float64Array;
  readonly persistence: Float64Array;
}

/** Samples the windowed errors into TraceBuffers every `stride` ticks; allocates only when built. */
class Tracer {
  private readonly adapt: WindowedMean;
  private readonly frozen: WindowedMean;
  private readonly persistence: WindowedMean;

  constructor(private readonly buffers: TraceBuffers, window: number, private readonly stride: number) {
    this.adapt = new WindowedMean(window);
    this.frozen = new WindowedMean(window);
    this.persistence = new WindowedMean(window);
  }

  /** `eFrozen` is NaN before t0, where there is no frozen shadow. */
  record(t: number, eAdapt: number, ePersist: number, eFrozen: number): void {
    const hasFrozen = !Number.isNaN(eFrozen);
    this.adapt.push(eAdapt);
    this.persistence.push(ePersist);
    if (hasFrozen) this.frozen.push(eFrozen);
    const b = this.buffers;
    const k = t - b.start;
    if (k >= 0 && k % this.stride === 0) {
      const i = k / this.stride;
      if (i < b.adapt.length) {
        b.adapt[i] = this.adapt.mean;
        b.persistence[i] = this.persistence.mean;
        b.frozen[i] = hasFrozen ? this.frozen.mean : Number.NaN;
      }
    }
  }
}

interface PreShiftOutcome extends PreShiftScore {
  /** Phase of the sine at t0, where the post-shift stream continues. */
  readonly phase: number;
}

const REPORT_EVERY = 1000;

/**
 * Ticks 0 .. t0 - 1: the only code that builds pre-shift ticks, shared by the scored runs and the rate selection,
 * so the selection's E_pre for a seed and rate is the scored run's E_pre for them, bit for bit.
 */
function runPreShift(
  learner: Learner,
  task: PreShiftTask,
  x: Float32Array,
  y: Float32Array,
  tracer: Tracer | null,
  report: ((ticks: number) => void) | undefined,
): PreShiftOutcome {
  const { preTicks, window: W, amplitude: A } = task;
  const w1 = (2 * Math.PI) / task.periodBefore;
  const adaptWin = new WindowedMean(W);
  const persistWin = new WindowedMean(W);
  let phase = 0;
  for (let t = 0; t < preTicks; t++) {
    // x_t, then x_{t+1}: the transition out of every tick before t0 has period P1.
    x[0] = A * Math.sin(phase);
    phase += w1;
    if (phase > 2 * Math.PI) phase -= 2 * Math.PI;
    y[0] = A * Math.sin(phase);
    const eAdapt = (learner.predict(x)[0] - y[0]) ** 2;
    const ePersist = (x[0] - y[0]) ** 2;
    if (!Number.isFinite(eAdapt)) return { diverged: true, ePre: null, persistencePre: persistWin.mean, phase, ticks: t + 1 };
    learner.learn(y);
    adaptWin.push(eAdapt);
    persistWin.push(ePersist);
    if (tracer) tracer.record(t, eAdapt, ePersist, Number.NaN);
    if (report && (t + 1) % REPORT_EVERY === 0) report(REPORT_EVERY);
  }
  return { diverged: false, ePre: adaptWin.mean, persistencePre: persistWin.mean, phase, ticks: preTicks };
}

function learnerSpecOf(config: RunConfig, lr: number, seed: number): LearnerSpec {
  return {
    cell: { kind: config.cell, hiddenSize: config.hiddenSize },
    credit: { rule: 'immediate', lambda: config.lambda },
    optimizer: optimizerSpec(config.optimizer, lr),
    inputSize: 1,
    outputSize: 1,
    seed,
    loss: 'mse',
  };
}

/** Counts what a run reports so the remainder can be reported when it stops early (a divergence). */
function progressCounter(report: ((ticks: number) => void) | undefined) {
  let reported = 0;
  return {
    report: report ? (n: number) => { reported += n; report(n); } : undefined,
    finish(total: number) {
      if (report && total > reported) report(total - reported);
    },
  };
}

/**
 * One rate-selection run: the configuration at `lr` from `seed` on the pre-shift stream only (`task` has nothing
 * of what follows t0). Its E_pre is the MSE over the last W ticks before t0.
 */
export function runPreShiftPhase(
  config: RunConfig,
  lr: number,
  seed: number,
  task: PreShiftTask,
  options: { backend?: KernelBackend; onTicks?: (ticks: number) => void } = {},
): PreShiftScore {
  const learner = createLearner(learnerSpecOf(config, lr, seed), options.backend ? { backend: options.backend } : {});
  const progress = progressCounter(options.onTicks);
  const { diverged, ePre, persistencePre, ticks } = runPreShift(learner, task, new Float32Array(1), new Float32Array(1), null, progress.report);
  progress.finish(task.preTicks);
  return { diverged, ePre, persistencePre, ticks };
}

/** Chooses every configuration's rate on the pre-shift phase, on the selection seeds (the rule: sine-shift-rate-selection.ts). */
export function selectRates(
  settings: SineShiftSettings,
  options: { backend?: KernelBackend; onTicks?: (ticks: number) => void; onConfig?: (config: RunConfig) => void } = {},
): RateSelection[] {
  // The selection gets the pre-shift task and the selection seeds, never the settings whole.
  const task = preShiftTask(settings);
  const selectionSeeds = settings.selectionSeeds;
  return configsOf(settings).map((config) => {
    options.onConfig?.(config);
    const choice = selectRate(settings.rateGrids[config.optimizer], selectionSeeds, (lr, seed) =>
      runPreShiftPhase(config, lr, seed, task, { backend: options.backend, onTicks: options.onTicks }));
    return { ...config, ...choice };
  });
}

/** Runs one trial: warm-up to t0, fork the frozen shadow, run both on the shifted stream, measure. */
export function runSineShiftTrial(
  trial: TrialConfig,
  settings: SineShiftSettings,
  options: { backend?: KernelBackend; onTicks?: (ticks: number) => void; trace?: TraceBuffers } = {},
): TrialResult & { backend: KernelBackend } {
  const started = performance.now();
  const learner = createLearner(learnerSpecOf(trial, trial.lr, trial.seed), options.backend ? { backend: options.backend } : {});
  const { preTicks: t0, postTicks, window: W, amplitude: A } = settings;
  const w2 = (2 * Math.PI) / settings.periodAfter;
  const total = t0 + postTicks;
  const x = new Float32Array(1);
  const y = new Float32Array(1);
  const tracer = options.trace ? new Tracer(options.trace, settings.traceWindow, settings.traceStride) : null;
  const progress = progressCounter(options.onTicks);
  const report = progress.report;

  const pre = runPreShift(learner, preShiftTask(settings), x, y, tracer, report);
  const ePre = pre.ePre ?? Number.NaN;
  let diverged = pre.diverged;
  let meter: RecoveryMeter | null = null;
  const persistWin = new WindowedMean(W);
  if (!diverged) {
    const frozen = learner.fork({ frozen: true });
    meter = new RecoveryMeter(ePre, { window: W, recoveryWindow: settings.recoveryWindow, tolerance: settings.tolerance });
    let phase = pre.phase;
    for (let t = t0; t < total; t++) {
      // x_t, then x_{t+1}: the transition out of every tick from t0 on has period P2.
      x[0] = A * Math.sin(phase);
      phase += w2;
      if (phase > 2 * Math.PI) phase -= 2 * Math.PI;
      y[0] = A * Math.sin(phase);
      const eAdapt = (learner.predict(x)[0] - y[0]) ** 2;
      const ePersist = (x[0] - y[0]) ** 2;
      const eFrozen = (frozen.predict(x)[0] - y[0]) ** 2;
      if (!Number.isFinite(eAdapt) || !Number.isFinite(eFrozen)) {
        diverged = true;
        break;
      }
      learner.learn(y);
      meter.update(eAdapt, eFrozen);
      persistWin.push(ePersist);
      if (tracer) tracer.record(t, eAdapt, ePersist, eFrozen);
      if (report && (t + 1) % REPORT_EVERY === 0) report(REPORT_EVERY);
    }
  }
  progress.finish(total);

  const m = meter;
  const ok = !diverged && m !== null && Number.isFinite(ePre) && ePre > 0;
  return {
    ...trial,
    backend: learner.backend,
    diverged,
    fitted: !diverged && Number.isFinite(ePre) && ePre < pre.persistencePre,
    ePre: Number.isFinite(ePre) ? ePre : null,
    eAdapt: ok ? m.eAdapt : null,
    eFrozen: ok ? m.eFrozen : null,
    recovery: ok ? m.recovery : null,
    residual: ok ? m.residual : null,
    timeToRecovery: ok ? m.timeToRecovery : null,
    persistencePre: pre.persistencePre,
    persistencePost: persistWin.mean,
    updates: learner.version,
    skippedNonFinite: learner.stats.skippedNonFinite,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Runs the experiments, writes results.json and the plots into outDir, and returns the results. */
export async function runSineShift(options: SineShiftOptions = {}): Promise<SineShiftResults> {
  const settings = resolveSineShiftSettings(options);
  const configs = configsOf(settings);
  const started = performance.now();
  const ticksPerTrial = settings.preTicks + settings.postTicks;
  const selecting = settings.protocols.includes('selected');
  const selectionTicks = selecting
    ? configs.reduce((a, c) => a + settings.rateGrids[c.optimizer].length, 0) * settings.selectionSeeds.length * settings.preTicks
    : 0;
  const scoredTicks = settings.protocols.length * configs.length * settings.seeds.length * ticksPerTrial;
  const progress = new ProgressBar({
    total: selectionTicks + scoredTicks,
    unit: 'ticks',
    label: 'sine-shift',
    quiet: options.quiet ?? false,
    stream: options.progressStream,
  });
  const onTicks = (n: number) => progress.tick(n);

  let selection: RateSelection[] = [];
  if (selecting) {
    let k = 0;
    selection = selectRates(settings, {
      backend: options.backend,
      onTicks,
      onConfig: (c) => progress.setLabel(`select rate ${++k}/${configs.length}: ${describeConfig(c)} on the pre-shift phase`),
    });
  }
  const chosen = new Map(selection.map((s) => [configKey(s), s.chosen]));

  let backend: KernelBackend = options.backend ?? 'js';
  const protocols: ProtocolResults[] = [];
  let runs = 0;
  for (const protocol of settings.protocols) {
    const trials = trialsOf(settings, protocol, chosen);
    const run = runProtocol(protocol, trials, settings, {
      backend: options.backend,
      onTicks,
      onTrial: (trial, i) => progress.setLabel(`${PROTOCOL_LABELS[protocol]}: run ${i + 1}/${trials.length}: ${describeConfig(trial)} lr ${trial.lr} seed ${trial.seed}`),
    });
    if (run.backend) backend = run.backend;
    runs += trials.length;
    protocols.push(run.results);
  }
  const seconds = (performance.now() - started) / 1000;
  progress.finish(`${runs} scored runs${selecting ? ` and ${selectionTicks / settings.preTicks} pre-shift selection runs` : ''} done`);

  const results0: SineShiftResults = {
    experiment: 'sine-shift',
    createdAt: new Date().toISOString(),
    seconds,
    backend,
    settings,
    t0: settings.preTicks,
    selection,
    protocols,
    files: [],
  };
  const outDir = options.outDir === undefined ? join('out', 'sine-shift') : options.outDir;
  if (outDir === null) return results0;
  const files = await writeSineShiftArtifacts(results0, outDir);
  return { ...results0, files };
}

function describeConfig(c: RunConfig): string {
  return c.experiment === 'lambda-sweep' ? `lambda sweep n=${c.hiddenSize} lambda=${c.lambda}` : `${c.cell} + ${c.optimizer}`;
}

/** The scored runs of one protocol, their summaries, traces and claim verdicts. */
function runProtocol(
  protocol: Protocol,
  trials: readonly TrialConfig[],
  settings: SineShiftSettings,
  options: { backend?: KernelBackend; onTicks: (n: number) => void; onTrial: (trial: TrialConfig, i: number) => void },
): { results: ProtocolResults; backend: KernelBackend | null } {
  const t0 = settings.preTicks;
  const traceStart = Math.max(0, t0 - settings.traceBefore);
  const traceLength = Math.floor((t0 + settings.postTicks - 1 - traceStart) / settings.traceStride) + 1;
  const traced = traceLambdas(settings);
  const traceSums = new Map<string, { lr: number; adapt: Float64Array; frozen: Float64Array; persistence: Float64Array; runs: number }>();
  const results: TrialResult[] = [];
  let backend: KernelBackend | null = null;
  trials.forEach((trial, i) => {
    options.onTrial(trial, i);
    const wantTrace = trial.experiment === 'lambda-sweep' && traced.includes(trial.lambda);
    const trace = wantTrace
      ? { start: traceStart, adapt: new Float64Array(traceLength).fill(Number.NaN), frozen: new Float64Array(traceLength).fill(Number.NaN), persistence: new Float64Array(traceLength).fill(Number.NaN) }
      : undefined;
    const result = runSineShiftTrial(trial, settings, { backend: options.backend, onTicks: options.onTicks, trace });
    backend = result.backend;
    const { backend: _b, ...plain } = result;
    results.push(plain);
    if (trace && !result.diverged) {
      const key = `${trial.hiddenSize}:${trial.lambda}`;
      let sums = traceSums.get(key);
      if (!sums) {
        sums = { lr: trial.lr, adapt: new Float64Array(traceLength), frozen: new Float64Array(traceLength), persistence: new Float64Array(traceLength), runs: 0 };
        traceSums.set(key, sums);
      }
      for (let k = 0; k < traceLength; k++) {
        sums.adapt[k] += trace.adapt[k];
        sums.frozen[k] += trace.frozen[k];
        sums.persistence[k] += trace.persistence[k];
      }
      sums.runs++;
    }
  });

  const traces: ErrorTrace[] = [];
  for (const [key, sums] of traceSums) {
    const [hiddenSize, lambda] = key.split(':').map(Number);
    const finite = (v: number) => (Number.isFinite(v) ? v / sums.runs : null);
    traces.push({
      hiddenSize,
      lambda,
      lr: sums.lr,
      ticks: Array.from({ length: traceLength }, (_, k) => traceStart + k * settings.traceStride),
      adapt: Array.from(sums.adapt, finite),
      frozen: Array.from(sums.frozen, finite),
      persistence: Array.from(sums.persistence, finite),
    });
  }
  const lambdaSweep = summarize(results.filter((r) => r.experiment === 'lambda-sweep'));
  const optimizerIsolation = summarize(results.filter((r) => r.experiment === 'optimizer-isolation'));
  return {
    backend,
    results: {
      protocol,
      label: PROTOCOL_LABELS[protocol],
      trials: results,
      lambdaSweep,
      optimizerIsolation,
      traces,
      claims: evaluateSineShiftClaims(lambdaSweep, optimizerIsolation, settings),
    },
  };
}

/** The lambdas whose error around t0 is plotted: 0 and 0.95 when swept, else the smallest and largest. */
function traceLambdas(settings: SineShiftSettings): number[] {
  const ls = [...settings.lambdas].sort((a, b) => a - b);
  if (ls.length === 0) return [];
  const lo = ls.includes(0) ? 0 : ls[0];
  const hi = ls.includes(0.95) ? 0.95 : ls[ls.length - 1];
  return lo === hi ? [lo] : [lo, hi];
}

export function stat(values: readonly (number | null)[]): Stat {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (xs.length === 0) return { mean: null, std: null, n: 0 };
  const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std, n: xs.length };
}

/** Why a run is left out of the recovery means; null when it is in them. */
export function dropReason(t: TrialResult): DropReason | null {
  if (t.diverged) return 'diverged';
  if (!t.fitted) return 'did not fit';
  if (t.recovery === null) return 'nothing to recover';
  return null;
}

/**
 * Groups trials by protocol and configuration (all but the seed): mean and sample std over seeds. Recovery, residual
 * and time to recovery are over the fitted runs only; the rest are listed in `dropped` with the reason.
 */
export function summarize(trials: readonly TrialResult[]): SummaryRow[] {
  const groups = new Map<string, TrialResult[]>();
  for (const t of trials) {
    const key = `${t.protocol}|${configKey(t)}|${t.lr}`;
    const g = groups.get(key);
    if (g) g.push(t);
    else groups.set(key, [t]);
  }
  return [...groups.values()].map((g) => {
    const first = g[0];
    const kept = g.filter((t) => dropReason(t) === null);
    const dropped: DroppedRun[] = [];
    for (const t of g) {
      const reason = dropReason(t);
      if (reason !== null) {
        dropped.push({ seed: t.seed, reason, ePreOverPersistence: t.ePre !== null && t.persistencePre > 0 ? t.ePre / t.persistencePre : null });
      }
    }
    return {
      protocol: first.protocol,
      experiment: first.experiment,
      cell: first.cell,
      outputBypass: first.outputBypass,
      hiddenSize: first.hiddenSize,
      lambda: first.lambda,
      optimizer: first.optimizer,
      lr: first.lr,
      runs: g.length,
      diverged: g.filter((t) => t.diverged).length,
      fitted: g.filter((t) => t.fitted && !t.diverged).length,
      recovery: stat(kept.map((t) => (t.recovery === null ? null : 100 * t.recovery))),
      residual: stat(kept.map((t) => t.residual)),
      ePre: stat(g.map((t) => t.ePre)),
      eAdapt: stat(g.map((t) => t.eAdapt)),
      eFrozen: stat(g.map((t) => t.eFrozen)),
      timeToRecovery: stat(kept.map((t) => t.timeToRecovery)),
      recovered: kept.filter((t) => t.timeToRecovery !== null).length,
      dropped,
      notRecovered: kept.filter((t) => t.timeToRecovery === null).map((t) => t.seed),
      persistencePre: first.persistencePre,
      persistencePost: first.persistencePost,
    };
  });
}

/** A learning rate as the tables and plots print it: 3e-5, 1e-4, 0.001, 0.03, 1. */
export const formatRate = (lr: number): string => (lr < 1e-3 ? lr.toExponential(0) : String(lr));
const fmtRate = formatRate;
const fmtSeeds = (seeds: readonly number[]) => {
  const sorted = [...seeds].sort((a, b) => a - b);
  const consecutive = sorted.length > 2 && sorted.every((s, i) => i === 0 || s === sorted[i - 1] + 1);
  return consecutive ? `${sorted[0]}..${sorted[sorted.length - 1]}` : sorted.join(', ');
};

/** The task constants, in one line: every table and plot states them. */
export function describeTask(settings: SineShiftSettings): string {
  const s = settings;
  return (
    `task: sine, amplitude ${s.amplitude}, period ${s.periodBefore} -> ${s.periodAfter} ticks at t0 = ${s.preTicks}, ${s.postTicks} ticks after; ` +
    `W = ${s.window}; time to recovery: MSE over the last ${s.recoveryWindow} ticks <= (1 + ${s.tolerance}) E_pre`
  );
}

/**
 * How the rates were set and which seeds were scored and which selected, in one line; `short` (for plot subtitles)
 * gives each grid as its range and size.
 */
export function describeProtocol(settings: SineShiftSettings, protocol: Protocol, options: { short?: boolean } = {}): string {
  const s = settings;
  const used = [...new Set([...(s.experiments.includes('lambda-sweep') ? [s.sweepOptimizer] : []), ...(s.experiments.includes('optimizer-isolation') ? s.optimizers : [])])];
  const scored = `scored seeds ${fmtSeeds(s.seeds)}`;
  if (protocol === 'fixed') {
    return `${options.short ? '' : 'protocol: '}${PROTOCOL_LABELS.fixed}: ${used.map((o) => `${o} lr ${fmtRate(s.learningRates[o])}`).join(', ')} for every configuration; ${scored}`;
  }
  const grid = (g: readonly number[]) => (options.short ? `${fmtRate(g[0])}..${fmtRate(g[g.length - 1])} (${g.length})` : `{${g.map(fmtRate).join(', ')}}`);
  const grids = used.map((o) => `${o} ${grid(s.rateGrids[o])}`).join('; ');
  if (options.short) {
    return `${PROTOCOL_LABELS.selected}: per configuration, the lowest mean E_pre before t0 on selection seeds ${fmtSeeds(s.selectionSeeds)} (not scored), from ${grids}; ${scored}`;
  }
  return (
    `protocol: ${PROTOCOL_LABELS.selected}: per configuration, the rate with the lowest mean E_pre over ${s.preTicks} pre-shift ticks alone ` +
    `on selection seeds ${fmtSeeds(s.selectionSeeds)} (not scored; diverged = infinite, ties to the smaller rate), from ${grids}; ${scored} on the full stream`
  );
}

/** Subtitle lines broken at '; ' to about `max` characters: a long line sets the whole figure's width. */
function wrapLines(lines: readonly string[], max = 120): string[] {
  const out: string[] = [];
  for (const line of lines) {
    let current = '';
    for (const part of line.split('; ')) {
      if (current !== '' && current.length + 2 + part.length > max) {
        out.push(`${current};`);
        current = part;
      } else current = current === '' ? part : `${current}; ${part}`;
    }
    out.push(current);
  }
  return out;
}

/** File name suffix of a protocol's per-protocol figures: the fair protocol keeps the plain names. */
const fileSuffix = (p: Protocol) => (p === 'fixed' ? '-fixed-rate' : '');

/** Writes results.json and the PNG figures; returns the paths written. */
export async function writeSineShiftArtifacts(results: SineShiftResults, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const files: string[] = [];
  const s = results.settings;
  const taskLines = [describeTask(s), `${s.seeds.length} scored seed(s) (${fmtSeeds(s.seeds)}); means over the runs that fitted the sine before the shift (E_pre below persistence), +- 1 std`];
  const protocolLines = results.protocols.map((p) => describeProtocol(s, p.protocol, { short: true }));
  const sweeps = results.protocols.filter((p) => p.lambdaSweep.length > 0);

  if (sweeps.length > 0) {
    const seriesName = (p: ProtocolResults, n: number) => `n = ${n}, ${p.label}`;
    const points: ErrorBarPoint[] = sweeps.flatMap((p) =>
      p.lambdaSweep
        .filter((r) => r.recovery.mean !== null)
        .map((r) => ({
          x: r.lambda,
          y: r.recovery.mean as number,
          lo: (r.recovery.mean as number) - (r.recovery.std ?? 0),
          hi: (r.recovery.mean as number) + (r.recovery.std ?? 0),
          series: seriesName(p, r.hiddenSize),
        })));
    const spec = lineChartWithErrorBars(
      {
        title: 'Recovery vs trace decay lambda (tanh RNN, immediate derivatives, RMSprop)',
        subtitle: wrapLines([...taskLines, ...protocolLines, 'a lambda whose runs all did not fit is not drawn; recovery = (E_frozen - E_adapt) / (E_frozen - E_pre)']),
        xTitle: 'trace decay lambda',
        yTitle: 'recovery (%)',
        seriesTitle: 'n, protocol',
        xOrdinal: true,
        rule: { y: 100, label: 'back to pre-shift error' },
      },
      points,
    );
    files.push((await renderVegaLitePng(spec, join(outDir, 'recovery-vs-lambda.png'))).path);

    // The ratio saturates and misleads when E_pre itself is poor, so the residual goes beside it (DESIGN.md 5).
    const residualPoints: ErrorBarPoint[] = sweeps.flatMap((p) =>
      p.lambdaSweep.flatMap((r) => {
        const values = p.trials
          .filter((t) => t.experiment === 'lambda-sweep' && t.hiddenSize === r.hiddenSize && t.lambda === r.lambda && dropReason(t) === null && t.residual !== null)
          .map((t) => t.residual as number)
          .filter((v) => v > 0);
        if (values.length === 0) return [];
        const geo = Math.exp(values.reduce((acc, v) => acc + Math.log(v), 0) / values.length);
        return [{ x: r.lambda, y: geo, lo: Math.min(...values), hi: Math.max(...values), series: seriesName(p, r.hiddenSize) }];
      }));
    const residualSpec = lineChartWithErrorBars(
      {
        title: 'Residual E_adapt / E_pre vs trace decay lambda (1 = as good as before the shift)',
        subtitle: wrapLines([describeTask(s), 'geometric mean over the runs that fitted the sine before the shift, bars min..max', ...protocolLines]),
        xTitle: 'trace decay lambda',
        yTitle: 'residual E_adapt / E_pre (log scale)',
        seriesTitle: 'n, protocol',
        xOrdinal: true,
        yLog: true,
        rule: { y: 1, label: 'pre-shift error' },
      },
      residualPoints,
    );
    files.push((await renderVegaLitePng(residualSpec, join(outDir, 'residual-vs-lambda.png'))).path);
  }

  for (const p of results.protocols) {
    for (const n of [...new Set(p.traces.map((t) => t.hiddenSize))]) {
      const points: SeriesPoint[] = [];
      const order: string[] = [];
      for (const tr of p.traces.filter((t) => t.hiddenSize === n).sort((a, b) => a.lambda - b.lambda)) {
        const adaptName = `adapting, lambda = ${tr.lambda} (lr ${fmtRate(tr.lr)})`;
        const frozenName = `frozen at t0, lambda = ${tr.lambda} (lr ${fmtRate(tr.lr)})`;
        order.push(adaptName, frozenName);
        tr.ticks.forEach((t, k) => {
          const a = tr.adapt[k];
          const f = tr.frozen[k];
          if (a !== null && a > 0) points.push({ t, value: a, series: adaptName });
          if (f !== null && f > 0) points.push({ t, value: f, series: frozenName });
        });
      }
      const persist = p.traces.find((t) => t.hiddenSize === n);
      if (persist) {
        order.push('persistence (x_t)');
        persist.ticks.forEach((t, k) => {
          const v = persist.persistence[k];
          if (v !== null && v > 0) points.push({ t, value: v, series: 'persistence (x_t)' });
        });
      }
      const spec = timeSeriesChart(
        {
          title: `Windowed MSE around the frequency shift (tanh RNN, n = ${n}; ${p.label})`,
          subtitle: wrapLines([`MSE over the last ${s.traceWindow} ticks, every ${s.traceStride} ticks, mean over ${s.seeds.length} scored seed(s) (every run, fitted or not)`, describeTask(s), describeProtocol(s, p.protocol, { short: true })]),
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
      files.push((await renderVegaLitePng(spec, join(outDir, `error-around-shift-n${n}${fileSuffix(p.protocol)}.png`))).path);
    }
  }

  for (const p of results.protocols) {
    if (p.optimizerIsolation.length === 0) continue;
    const rows = p.optimizerIsolation;
    const groupName = (r: SummaryRow) => (r.outputBypass ? `${r.cell} (bypass)` : r.cell);
    const category = (r: SummaryRow) => (p.protocol === 'fixed' ? `${r.optimizer} (lr ${fmtRate(r.lr)})` : r.optimizer);
    const bars: BarDatum[] = rows
      .filter((r) => r.recovery.mean !== null)
      .map((r) => ({
        group: groupName(r),
        category: category(r),
        value: r.recovery.mean as number,
        lo: (r.recovery.mean as number) - (r.recovery.std ?? 0),
        hi: (r.recovery.mean as number) + (r.recovery.std ?? 0),
      }));
    const spec = groupedBarChart(
      {
        title: `Optimizer isolation at lambda = 0 (immediate derivatives, n = ${s.isolationHiddenSize}; ${p.label})`,
        subtitle: wrapLines([
          ...taskLines,
          describeProtocol(s, p.protocol, { short: true }),
          '"(bypass)": the readout has an input-to-output bypass; a missing bar: no run of that cell and optimizer fitted the sine before the shift',
        ]),
        xTitle: 'cell',
        yTitle: 'recovery (%)',
        categoryTitle: 'optimizer',
        groupOrder: [...new Set(rows.map(groupName))],
        categoryOrder: [...new Set(rows.map(category))],
        rule: { y: 100, label: '' },
        width: 760,
      },
      bars,
    );
    files.push((await renderVegaLitePng(spec, join(outDir, `optimizer-isolation${fileSuffix(p.protocol)}.png`))).path);
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
