import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CreditSpec } from '../learners/credit/registry.js';
import { createLearner, type RecurrentLearnerSpec } from '../learners/learner.js';
import { rmsprop } from '../learners/optim/transform.js';
import { CycleWorld } from '../simulator/cycle-world.js';
import { StochasticWorld, stochasticWorldAccuracy, stochasticWorldCrossEntropy } from '../simulator/stochastic-world.js';
import { codeHashOf } from './code-hash.js';
import { meanOf, sampleStdOf } from './sample-stats.js';

/**
 * Fixed Point Propagation against truncated BPTT on the thesis' partially observable worlds (Nath & White 2019,
 * chapter 4), learned online one tick at a time with the label on time (delay 0: predict, then learn):
 *   fpp            a buffer of N transitions, M sampled T-step updates per tick of the weights, the readout and the
 *                  stored states (lambda 1)
 *   fpp-no-state   the same buffer and updates without the auxiliary states (the thesis' "FPP without state
 *                  updating")
 *   tbptt          each label's T-step truncated gradient (k = 1)
 * on a tanh RNN (4 units for the cycles, 32 for StochasticWorld, as in the thesis) with RMSprop and binary
 * cross-entropy on one sigmoid output.
 *
 * Protocol. Every configuration (method, T, M, N, world) takes its learning rate from the same grid the same way:
 * one run per rate on selection seed 1001 (never scored), kept if its mean online cross-entropy over the whole
 * run is the lowest ("the best online prediction", the thesis' criterion; ties: the smaller rate). The scored seeds
 * then run. Reported: online accuracy and cross-entropy over the last tenth of each run, and learning curves.
 */
export type FppWorld = 'cycle6' | 'cycle10' | 'stochastic';
export const FPP_WORLDS: readonly FppWorld[] = ['cycle6', 'cycle10', 'stochastic'];
export type FppMethod = 'fpp' | 'fpp-no-state' | 'tbptt';
export const FPP_METHODS: readonly FppMethod[] = ['fpp', 'fpp-no-state', 'tbptt'];
export const FPP_METHOD_LABELS: Readonly<Record<FppMethod, string>> = {
  fpp: 'FPP',
  'fpp-no-state': 'FPP without state updating',
  tbptt: 'T-BPTT',
};
export const FPP_WORLD_LABELS: Readonly<Record<FppWorld, string>> = {
  cycle6: '6-CycleWorld',
  cycle10: '10-CycleWorld',
  stochastic: 'StochasticWorld',
};

/** One configuration: what a rate is chosen for. */
export interface FppConfig {
  readonly world: FppWorld;
  readonly method: FppMethod;
  readonly window: number;
  /** M (fpp methods; 1 for tbptt). */
  readonly updates: number;
  /** N (fpp methods; 0 for tbptt, which reads the learner's ring). */
  readonly buffer: number;
}

export interface FppJob extends FppConfig {
  readonly role: 'selection' | 'scored';
  readonly learningRate: number;
  readonly seed: number;
  readonly ticks: number;
  /** Points of the learning curve. */
  readonly curvePoints: number;
}

export interface FppCurvePoint {
  /** The last tick of the bin. */
  readonly tick: number;
  readonly crossEntropy: number;
  readonly accuracy: number;
}

export interface FppRunResult {
  readonly job: FppJob;
  readonly codeHash: string;
  /** Mean online cross-entropy over the whole run (the selection criterion). */
  readonly meanCrossEntropy: number;
  /** Over the last tenth of the run. */
  readonly finalCrossEntropy: number;
  readonly finalAccuracy: number;
  readonly curve: readonly FppCurvePoint[];
  readonly skippedNonFinite: number;
  readonly usPerTick: number;
  readonly stateBytes: number;
}

export interface FppSettings {
  readonly worlds: readonly FppWorld[];
  /** Ticks per run, by world. */
  readonly ticks: Readonly<Record<FppWorld, number>>;
  readonly seeds: readonly number[];
  readonly selectionSeed: number;
  readonly learningRates: readonly number[];
  readonly windows: readonly number[];
  /** The buffer of the main comparison and of the M = 4 runs. */
  readonly buffer: number;
  /** Further buffers for FPP's sensitivity (M = 1). */
  readonly otherBuffers: readonly number[];
  /** Updates per tick besides 1, for both FPP methods (buffer `buffer`). */
  readonly moreUpdates: readonly number[];
  readonly curvePoints: number;
}

export const DEFAULT_FPP_SETTINGS: FppSettings = {
  worlds: FPP_WORLDS,
  ticks: { cycle6: 100_000, cycle10: 100_000, stochastic: 200_000 },
  seeds: [1, 2, 3],
  selectionSeed: 1001,
  learningRates: [0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1],
  windows: [1, 3, 5, 10],
  buffer: 1000,
  otherBuffers: [100, 10_000],
  moreUpdates: [4],
  curvePoints: 50,
};

/** Hidden units by world, as in the thesis' appendix A. */
export const FPP_HIDDEN: Readonly<Record<FppWorld, number>> = { cycle6: 4, cycle10: 4, stochastic: 32 };

/** Every configuration the protocol runs: the main comparison, M > 1, and FPP's buffer sensitivity. */
export function fppConfigs(settings: FppSettings): FppConfig[] {
  const configs: FppConfig[] = [];
  for (const world of settings.worlds) {
    for (const window of settings.windows) {
      configs.push({ world, method: 'fpp', window, updates: 1, buffer: settings.buffer });
      configs.push({ world, method: 'fpp-no-state', window, updates: 1, buffer: settings.buffer });
      configs.push({ world, method: 'tbptt', window, updates: 1, buffer: 0 });
      for (const updates of settings.moreUpdates) {
        configs.push({ world, method: 'fpp', window, updates, buffer: settings.buffer });
        configs.push({ world, method: 'fpp-no-state', window, updates, buffer: settings.buffer });
      }
      for (const buffer of settings.otherBuffers) configs.push({ world, method: 'fpp', window, updates: 1, buffer });
    }
  }
  return configs;
}

export function fppConfigKey(c: FppConfig): string {
  return `${c.world}-${c.method}-T${c.window}-M${c.updates}-N${c.buffer}`;
}

export function fppJobKey(job: FppJob): string {
  return `${job.role}-${fppConfigKey(job)}-lr${job.learningRate}-seed${job.seed}-${job.ticks}ticks`;
}

export function fppSelectionJobs(settings: FppSettings): FppJob[] {
  return fppConfigs(settings).flatMap((config) => settings.learningRates.map((learningRate) => ({
    ...config, role: 'selection' as const, learningRate, seed: settings.selectionSeed, ticks: settings.ticks[config.world],
    curvePoints: settings.curvePoints,
  })));
}

/** The rate of each configuration: the lowest mean online cross-entropy on the selection seed (ties: smaller). */
export function selectFppRates(settings: FppSettings, selection: readonly FppRunResult[]): Map<string, number> {
  const rates = new Map<string, number>();
  for (const config of fppConfigs(settings)) {
    const key = fppConfigKey(config);
    let best: FppRunResult | undefined;
    for (const rate of [...settings.learningRates].sort((a, b) => a - b)) {
      const run = selection.find((r) => fppConfigKey(r.job) === key && r.job.learningRate === rate);
      if (run === undefined) throw new Error(`no selection run for ${key} at rate ${rate}`);
      if (best === undefined || run.meanCrossEntropy < best.meanCrossEntropy) best = run;
    }
    rates.set(key, best!.job.learningRate);
  }
  return rates;
}

export function fppScoredJobs(settings: FppSettings, rates: ReadonlyMap<string, number>): FppJob[] {
  return fppConfigs(settings).flatMap((config) => settings.seeds.map((seed) => ({
    ...config, role: 'scored' as const, learningRate: rates.get(fppConfigKey(config))!, seed, ticks: settings.ticks[config.world],
    curvePoints: settings.curvePoints,
  })));
}

export function fppCredit(config: FppConfig): CreditSpec {
  switch (config.method) {
    case 'tbptt':
      return { rule: 'tbptt', window: config.window };
    case 'fpp':
      return { rule: 'fpp', window: config.window, buffer: config.buffer, updates: config.updates };
    case 'fpp-no-state':
      return { rule: 'fpp', window: config.window, buffer: config.buffer, updates: config.updates, updateStates: false };
  }
}

export function fppLearnerSpec(job: FppJob): RecurrentLearnerSpec {
  return {
    cell: { kind: 'tanh-rnn', hiddenSize: FPP_HIDDEN[job.world] },
    credit: fppCredit(job),
    optimizer: rmsprop(job.learningRate),
    inputSize: 1,
    outputSize: 1,
    seed: job.seed,
    loss: 'bce',
  };
}

interface World {
  readonly x: Float32Array;
  readonly y: Float32Array;
  next(): void;
}

function worldOf(job: FppJob): World {
  switch (job.world) {
    case 'cycle6':
      return new CycleWorld({ period: 6, phase: job.seed % 6 });
    case 'cycle10':
      return new CycleWorld({ period: 10, phase: job.seed % 10 });
    case 'stochastic':
      return new StochasticWorld({ seed: job.seed });
  }
}

/** A probability this close to 0 or 1 is scored as if it were that far: a saturated sigmoid costs ~16 nats, not infinity. */
const P_FLOOR = 1e-7;

/** One run: predict, score, learn, tick by tick. */
export function runFppJob(job: FppJob, onProgress?: (ticksDone: number) => void): FppRunResult {
  const learner = createLearner(fppLearnerSpec(job));
  const world = worldOf(job);
  const bin = Math.max(1, Math.floor(job.ticks / job.curvePoints));
  const finalFrom = job.ticks - Math.max(1, Math.floor(job.ticks / 10));
  const curve: FppCurvePoint[] = [];
  let binLoss = 0;
  let binHits = 0;
  let binCount = 0;
  let totalLoss = 0;
  let finalLoss = 0;
  let finalHits = 0;
  const started = performance.now();
  for (let t = 0; t < job.ticks; t++) {
    world.next();
    const p = Math.min(1 - P_FLOOR, Math.max(P_FLOOR, learner.predict(world.x)[0]));
    const y = world.y[0];
    const loss = -(y * Math.log(p) + (1 - y) * Math.log(1 - p));
    const hit = (p > 0.5 ? 1 : 0) === y ? 1 : 0;
    totalLoss += loss;
    binLoss += loss;
    binHits += hit;
    binCount++;
    if (t >= finalFrom) {
      finalLoss += loss;
      finalHits += hit;
    }
    learner.learn(world.y);
    if (binCount === bin || t === job.ticks - 1) {
      curve.push({ tick: t, crossEntropy: binLoss / binCount, accuracy: binHits / binCount });
      binLoss = 0;
      binHits = 0;
      binCount = 0;
      onProgress?.(t + 1);
    }
  }
  const finalCount = job.ticks - finalFrom;
  return {
    job,
    codeHash: fppCodeHash(),
    meanCrossEntropy: totalLoss / job.ticks,
    finalCrossEntropy: finalLoss / finalCount,
    finalAccuracy: finalHits / finalCount,
    curve,
    skippedNonFinite: learner.stats.skippedNonFinite,
    usPerTick: ((performance.now() - started) * 1000) / job.ticks,
    stateBytes: learner.stateBytes,
  };
}

let codeHash: string | undefined;

/** The hash of the learners, the kernels, this file and the worlds (src/reproduce/code-hash.ts). */
export function fppCodeHash(): string {
  if (codeHash !== undefined) return codeHash;
  const here = fileURLToPath(import.meta.url);
  const ext = extname(here);
  codeHash = codeHashOf([
    here,
    fileURLToPath(new URL(`../simulator/cycle-world${ext}`, import.meta.url)),
    fileURLToPath(new URL(`../simulator/stochastic-world${ext}`, import.meta.url)),
  ]);
  return codeHash;
}

/** What a perfect and a naive predictor score on each world: the table's reference rows. */
export interface FppReference {
  readonly label: string;
  readonly accuracy: Readonly<Record<FppWorld, number | null>>;
  readonly crossEntropy: Readonly<Record<FppWorld, number | null>>;
}

export function fppReferences(): FppReference[] {
  const c6 = new CycleWorld({ period: 6 });
  const c10 = new CycleWorld({ period: 10 });
  return [
    {
      label: 'ideal predictor',
      accuracy: { cycle6: 1, cycle10: 1, stochastic: stochasticWorldAccuracy('ideal') },
      crossEntropy: { cycle6: 0, cycle10: 0, stochastic: stochasticWorldCrossEntropy('ideal') },
    },
    {
      label: 'knows X(t-5) only',
      accuracy: { cycle6: null, cycle10: null, stochastic: stochasticWorldAccuracy('short-lag-only') },
      crossEntropy: { cycle6: null, cycle10: null, stochastic: stochasticWorldCrossEntropy('short-lag-only') },
    },
    {
      label: 'no memory (the base rate)',
      accuracy: { cycle6: c6.alwaysZeroAccuracy, cycle10: c10.alwaysZeroAccuracy, stochastic: stochasticWorldAccuracy('marginal') },
      crossEntropy: { cycle6: c6.constantPredictorCrossEntropy, cycle10: c10.constantPredictorCrossEntropy, stochastic: stochasticWorldCrossEntropy('marginal') },
    },
  ];
}

export interface FppSummary extends FppConfig {
  readonly learningRate: number;
  readonly seeds: readonly number[];
  readonly finalAccuracies: readonly number[];
  readonly finalCrossEntropies: readonly number[];
  readonly accuracy: { readonly mean: number; readonly std: number };
  readonly crossEntropy: { readonly mean: number; readonly std: number };
  /** Mean over seeds per curve point. */
  readonly curve: readonly { readonly tick: number; readonly crossEntropy: number; readonly accuracy: number }[];
  readonly usPerTick: number;
  readonly stateBytes: number;
  readonly skippedNonFinite: number;
}

export function summarizeFpp(settings: FppSettings, scored: readonly FppRunResult[]): FppSummary[] {
  return fppConfigs(settings).map((config) => {
    const key = fppConfigKey(config);
    const runs = scored.filter((r) => fppConfigKey(r.job) === key).sort((a, b) => a.job.seed - b.job.seed);
    const acc = runs.map((r) => r.finalAccuracy);
    const ce = runs.map((r) => r.finalCrossEntropy);
    const curve = runs[0].curve.map((p, i) => ({
      tick: p.tick,
      crossEntropy: meanOf(runs.map((r) => r.curve[i].crossEntropy)),
      accuracy: meanOf(runs.map((r) => r.curve[i].accuracy)),
    }));
    return {
      ...config,
      learningRate: runs[0].job.learningRate,
      seeds: runs.map((r) => r.job.seed),
      finalAccuracies: acc,
      finalCrossEntropies: ce,
      accuracy: { mean: meanOf(acc), std: sampleStdOf(acc) },
      crossEntropy: { mean: meanOf(ce), std: sampleStdOf(ce) },
      curve,
      usPerTick: meanOf(runs.map((r) => r.usPerTick)),
      stateBytes: runs[0].stateBytes,
      skippedNonFinite: runs.reduce((s, r) => s + r.skippedNonFinite, 0),
    };
  });
}
