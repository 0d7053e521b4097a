/**
 * `driftline reproduce bci`: decoders that cross a recording-session boundary, on the protocols of
 * bci-protocols.ts, through driftline's own pipeline. For each decoder: its hyperparameter chosen on the first
 * session only (the first 80 % with labels, the last 20 % held out and scored), then each protocol on the two
 * sessions for every seed, reported as R2 per range beside persistence (with its real information age), R2 over
 * time across the boundary, and recovery (ratio, residual, time to recovery; DESIGN section 5).
 *
 * Fairness: nothing is chosen by looking at the new session's labels. Seeds of the selection runs are not among
 * the scored seeds.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReplaySession } from '../adapters/replay/replay.js';
import { createLearner, type LearnerSpec } from '../learners/learner.js';
import { rmsprop } from '../learners/optim/transform.js';
import { ProgressBar, type ProgressStream } from '../report/progress.js';
import { renderVegaLitePng, timeSeriesChart, type SeriesPoint } from '../report/plot.js';
import type { TargetScalingSpec } from '../streams/normalize-targets.js';
import { CALIBRATION_MINUTES, protocolsFor, type ProtocolDefinition, type ProtocolName } from './bci-protocols.js';
import { RECOVERY_MIN_HARM } from '../evaluation/recovery-harm.js';
import { HELD_OUT, meanReferenceAge, mseOf, r2Of, runStream, SCORED, type CollectedRun } from './bci-run.js';

/** A decoder of the reproduction: how to build its spec from a seed and one hyperparameter value. */
export interface DecoderEntry {
  readonly name: string;
  readonly description: string;
  /** The hyperparameters chosen on the first session (their names), the candidate settings, and the spec of one. */
  readonly hyperparameter: string;
  readonly candidates: readonly Hyperparameters[];
  /** Whether the seed changes anything (a ridge fit does not: it runs once). */
  readonly seeded: boolean;
  /**
   * A decoder that refits on the new session alone (recalibration) is chosen for A(k) on a fit of k minutes:
   * on the first session, its first k minutes learned, its last 20 % scored. Others are chosen once (80 / 20).
   */
  readonly recalibrates?: boolean;
  specOf(seed: number, chosen: Hyperparameters, inputSize: number, outputSize: number): LearnerSpec;
}

const LABEL_WINDOW = 64;

/** One candidate setting: hyperparameter name to value. */
export type Hyperparameters = Readonly<Record<string, number>>;

/** Every combination of the given values, in order. */
export function grid(axes: Readonly<Record<string, readonly number[]>>): Hyperparameters[] {
  return Object.entries(axes).reduce<Hyperparameters[]>(
    (acc, [name, values]) => acc.flatMap((h) => values.map((v) => ({ ...h, [name]: v }))),
    [{}],
  );
}

export function formatHyperparameters(h: Hyperparameters): string {
  return Object.entries(h).map(([k, v]) => `${k} ${v}`).join(', ');
}

export function recurrentDecoder(
  kind: 'gru' | 'lstm' | 'tanh-rnn',
  hiddenSize: number,
  axes: { lr: readonly number[]; lambda: readonly number[]; readoutHalfLifeSeconds?: readonly number[] } = { lr: [1e-4, 3e-4, 1e-3], lambda: [0, 0.5] },
  binSeconds = 0.05,
): DecoderEntry {
  const rls = axes.readoutHalfLifeSeconds !== undefined;
  return {
    name: `${kind} n=${hiddenSize}${rls ? ' + rls readout' : ''}`,
    description: `${kind}, ${hiddenSize} units, immediate derivatives with eligibility-trace decay lambda, RMSprop${rls ? '; readout fitted by recursive least squares with forgetting' : ''}`,
    hyperparameter: rls ? 'lr, lambda, readoutHalfLifeSeconds' : 'lr, lambda',
    candidates: grid(axes as Readonly<Record<string, readonly number[]>>),
    seeded: true,
    specOf: (seed, h, inputSize, outputSize) => ({
      cell: { kind, hiddenSize },
      credit: { rule: 'immediate', lambda: h.lambda },
      optimizer: rmsprop(h.lr),
      inputSize,
      outputSize,
      seed,
      loss: 'mse',
      maxLabelDelay: LABEL_WINDOW,
      ...(rls
        ? { readout: { kind: 'rls' as const, ...(Number.isFinite(h.readoutHalfLifeSeconds) ? { halfLifeTicks: Math.round(h.readoutHalfLifeSeconds / binSeconds) } : {}) } }
        : {}),
    }),
  };
}

/**
 * The online LRU (cell 'lru', rule 'online-lru' in mode online) under the same protocols as the other recurrent
 * decoders: RMSprop, the rate chosen on the first session.
 */
export function lruDecoder(
  hiddenSize: number,
  units: number,
  layers: number,
  axes: { lr: readonly number[] } = { lr: [1e-4, 3e-4, 1e-3] },
): DecoderEntry {
  return {
    name: `lru H=${hiddenSize} N=${units} L=${layers}`,
    description: `stacked LRU, width ${hiddenSize}, ${units} complex units in each of ${layers} layer${layers > 1 ? 's' : ''}, online-LRU credit (exact in-layer traces, spatial across layers), RMSprop`,
    hyperparameter: 'lr',
    candidates: grid(axes),
    seeded: true,
    specOf: (seed, h, inputSize, outputSize) => ({
      cell: { kind: 'lru', hiddenSize, units, layers },
      credit: { rule: 'online-lru', mode: 'online' },
      optimizer: rmsprop(h.lr),
      inputSize,
      outputSize,
      seed,
      loss: 'mse',
      maxLabelDelay: LABEL_WINDOW,
    }),
  };
}

/**
 * A recurrent decoder learned by one of the buffer-based rules (src/learners/credit: truncated BPTT over the last
 * `window` bins, or Fixed Point Propagation with `updates` sampled updates per label over a buffer of `buffer`
 * bins), under the same protocols: RMSprop, the rate chosen on the first session. FPP spends a bin's spare
 * compute on older transitions, which immediate derivatives cannot.
 */
export function bufferedDecoder(
  kind: 'gru' | 'lstm',
  hiddenSize: number,
  credit: { rule: 'tbptt'; window: number } | { rule: 'fpp'; window: number; updates: number; buffer: number },
  axes: { lr: readonly number[] } = { lr: [1e-4, 3e-4, 1e-3] },
): DecoderEntry {
  const fpp = credit.rule === 'fpp';
  return {
    name: fpp ? `${kind} n=${hiddenSize} fpp T=${credit.window} M=${credit.updates}` : `${kind} n=${hiddenSize} tbptt T=${credit.window}`,
    description: fpp
      ? `${kind}, ${hiddenSize} units, Fixed Point Propagation: ${credit.updates} sampled ${credit.window}-bin updates per label over a buffer of ${credit.buffer} bins, stored states updated, RMSprop`
      : `${kind}, ${hiddenSize} units, truncated BPTT over the last ${credit.window} bins at every label, RMSprop`,
    hyperparameter: 'lr',
    candidates: grid(axes),
    seeded: true,
    specOf: (seed, h, inputSize, outputSize) => ({
      cell: { kind, hiddenSize },
      credit,
      optimizer: rmsprop(h.lr),
      inputSize,
      outputSize,
      seed,
      loss: 'mse',
      maxLabelDelay: LABEL_WINDOW,
    }),
  };
}

export function ridgeDecoder(lags: number, alphas: readonly number[] = [10, 100, 1000, 10000]): DecoderEntry {
  return {
    name: `ridge ${lags} bins`,
    description: `ridge regression on the last ${lags} bins, refit every 1200 labels (1 min); statistics restart at a session boundary and the first session's fit is kept until 600 labels of the new one have come (recalibration on the new session alone)`,
    hyperparameter: 'alpha',
    candidates: grid({ alpha: alphas }),
    seeded: false,
    recalibrates: true,
    specOf: (seed, h, inputSize, outputSize) =>
      ({
        // Refit once a minute (a refit at 10 lags is a 961 x 961 Cholesky solve), and after 600 labels of a new
        // session, so that one calibration minute (1200 labels) is enough for the first refit.
        decoder: { kind: 'ridge', lags, alpha: h.alpha, refitEvery: 1200, resetOnSession: true, minSamples: 600 },
        inputSize, outputSize, seed, loss: 'mse', maxLabelDelay: LABEL_WINDOW,
      }) as LearnerSpec,
  };
}

export function rlsDecoder(lags: number, halfLifeSeconds: readonly number[] = [30, 120, 480], binSeconds = 0.05): DecoderEntry {
  return {
    name: `rls ${lags} bins`,
    description: `recursive least squares on the last ${lags} bins with exponential forgetting, warm from the first session`,
    hyperparameter: 'halfLifeSeconds',
    candidates: grid({ halfLifeSeconds }),
    seeded: false,
    specOf: (seed, h, inputSize, outputSize) =>
      ({ decoder: { kind: 'rls', lags, halfLifeTicks: Math.round(h.halfLifeSeconds / binSeconds) }, inputSize, outputSize, seed, loss: 'mse', maxLabelDelay: LABEL_WINDOW }) as LearnerSpec,
  };
}

export function kalmanDecoder(halfLifeSeconds: readonly number[] = [120, 480, Infinity], binSeconds = 0.05): DecoderEntry {
  return {
    name: 'kalman',
    description: 'Kalman filter decoder (Wu et al. 2006): force as the state, spike rates as observations, fitted from labelled bins with forgetting',
    hyperparameter: 'halfLifeSeconds',
    candidates: grid({ halfLifeSeconds }),
    seeded: false,
    specOf: (seed, h, inputSize, outputSize) =>
      ({
        decoder: { kind: 'kalman', ...(Number.isFinite(h.halfLifeSeconds) ? { halfLifeTicks: Math.round(h.halfLifeSeconds / binSeconds) } : {}) },
        inputSize, outputSize, seed, loss: 'mse', maxLabelDelay: LABEL_WINDOW,
      }) as LearnerSpec,
  };
}

export interface BciReproductionOptions {
  readonly sessions: readonly [ReplaySession, ReplaySession];
  /** Where the sessions come from, for the report (e.g. 'Jango Day0 -> Day16, force aligned to the task frame'). */
  readonly dataDescription: string;
  readonly decoders: readonly DecoderEntry[];
  readonly seeds: readonly number[];
  /** Seed of the selection runs (not among `seeds`). */
  readonly selectionSeed: number;
  readonly protocols?: readonly ProtocolName[];
  readonly targetScaling?: TargetScalingSpec;
  /** Input normalizer decay (default 0.9995: statistics over about 2,000 bins, 100 s). */
  readonly normalizeDecay?: number;
  readonly lateTicks?: number;
  /**
   * Per session, 1 on the bins inside a trial (the published EMG figures are variance accounted for on trial
   * bins): with it, every range also reports R2 on its trial bins only.
   */
  readonly trialBins?: readonly [Uint8Array, Uint8Array];
  /** What the labels are, for the report (default 'force'). */
  readonly labelName?: string;
  readonly outDir?: string | null;
  readonly quiet?: boolean;
  readonly progressStream?: ProgressStream;
}

export interface Stat {
  readonly mean: number | null;
  readonly sd: number | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly n: number;
}

export interface SelectionRow {
  readonly decoder: string;
  /** The protocols the choice serves ('all', or one A(k) for a recalibrating decoder) and what was learned. */
  readonly forProtocols: string;
  readonly learnedMinutes: number;
  readonly hyperparameter: string;
  readonly candidates: { readonly value: Hyperparameters; readonly r2: number | null }[];
  readonly chosen: Hyperparameters;
}

export interface RangeFigures {
  readonly protocol: ProtocolName;
  readonly range: string;
  readonly decoder: string;
  readonly r2: Stat;
  /** R2 of the persistence reference on the same ticks, and its mean information age in ticks. */
  readonly persistenceR2: Stat;
  readonly persistenceAge: Stat;
  /** R2 of the frozen shadow (the decoder as it was at the boundary) on the same ticks. */
  readonly frozenR2: Stat;
  readonly ticks: number;
  /** R2 on the range's trial bins only (variance accounted for, mean over outputs), when trial bins are known. */
  readonly trialR2?: Stat;
}

export interface RecoveryFigures {
  readonly protocol: ProtocolName;
  readonly decoder: string;
  readonly ePre: Stat;
  readonly eFrozen: Stat;
  readonly eAdapt: Stat;
  readonly recovery: Stat;
  readonly residual: Stat;
  /** Seconds from the boundary until the windowed error is within the tolerance of E_pre (runs that did). */
  readonly secondsToRecovery: Stat;
  readonly recovered: number;
  readonly runs: number;
}

export interface BciResults {
  readonly experiment: 'bci';
  readonly createdAt: string;
  readonly data: string;
  readonly labels: string;
  readonly seeds: readonly number[];
  readonly selectionSeed: number;
  readonly binSeconds: number;
  readonly boundaryTick: number;
  readonly lateTicks: number;
  readonly protocols: readonly { name: ProtocolName; description: string }[];
  readonly selection: readonly SelectionRow[];
  readonly ranges: readonly RangeFigures[];
  readonly recovery: readonly RecoveryFigures[];
  /** Mean wall-clock microseconds per input through the whole pipeline, per decoder. */
  readonly microsPerTick: Readonly<Record<string, number>>;
  /** Microseconds of one predict + learn of the decoder alone (its chosen setting, outside the pipeline). */
  readonly learnerMicrosPerTick: Readonly<Record<string, number>>;
  readonly labelsOutOfRange: number;
  readonly r2OverTime: readonly { protocol: ProtocolName; decoder: string; t: number; r2: number }[];
  readonly seconds: number;
  readonly files: string[];
}

/** Ticks of the window of E_pre and of the windowed error behind time to recovery (60 s of 50 ms bins). */
const RECOVERY_WINDOW_SECONDS = 60;
const TOLERANCE = 0.5;
/** R2 over time: blocks of this many seconds. */
const BLOCK_SECONDS = 30;

export async function runBciReproduction(options: BciReproductionOptions): Promise<BciResults> {
  const started = performance.now();
  const [first, second] = options.sessions;
  const binSeconds = first.binSeconds ?? (first.t[first.t.length - 1] - first.t[0]) / (first.t.length - 1);
  const inputSize = first.nChannels;
  const outputSize = first.nOutputs ?? 0;
  if (outputSize <= 0 || second.nOutputs !== outputSize || second.nChannels !== inputSize) {
    throw new RangeError('runBciReproduction: both sessions need labels, with the same channels and outputs');
  }
  const lateTicks = options.lateTicks ?? Math.round(1 / binSeconds);
  const targetScaling: TargetScalingSpec = options.targetScaling ?? { kind: 'standardize' };
  const normalizeDecay = options.normalizeDecay ?? 0.9995;
  const boundary = first.t.length;
  const newTicks = second.t.length;
  const window = Math.round(RECOVERY_WINDOW_SECONDS / binSeconds);
  const protocols = protocolsFor(newTicks, binSeconds, lateTicks, boundary, window).filter((p) => !options.protocols || options.protocols.includes(p.name));
  const selectionTicks = first.t.length;
  const runsOf = (d: DecoderEntry) => (d.seeded ? options.seeds.length : 1);
  const totalTicks =
    options.decoders.reduce((a, d) => a + d.candidates.length * (1 + (d.recalibrates ? protocols.filter((p) => calibrationMinutesOf(p.name) !== undefined).length : 0)), 0) * selectionTicks +
    options.decoders.reduce((a, d) => a + runsOf(d), 0) * protocols.length * (boundary + newTicks);
  const progress = new ProgressBar({ total: totalTicks, unit: 'ticks', label: 'bci', quiet: options.quiet ?? false, stream: options.progressStream });
  const common = { targetScaling, normalizeDecay, maxDelay: Math.max(LABEL_WINDOW, lateTicks + 1), onTicks: (n: number) => progress.tick(n) };

  // 1. Selection on the first session alone: learn from its first 80 % (or, for A(k) of a recalibrating decoder,
  // its first k minutes), score its last 20 % (held out).
  const selection: SelectionRow[] = [];
  const chosen = new Map<string, Hyperparameters>();
  const scoredFrom = Math.round(0.8 * selectionTicks);
  const selectOn = async (d: DecoderEntry, minutes: number, forProtocols: string) => {
    const candidates: { value: Hyperparameters; r2: number | null }[] = [];
    for (const value of d.candidates) {
      progress.setLabel(`select ${d.name} ${formatHyperparameters(value)}${forProtocols === 'all' ? '' : ` for ${forProtocols}`}`);
      const run = await runStream([first], d.specOf(options.selectionSeed, value, inputSize, outputSize), {
        ...common, holdout: { kind: 'firstMinutes', minutes }, labelDelayTicks: 0, collectFrom: 0, recoveryTicks: 0,
      });
      candidates.push({ value, r2: r2Of(run, 'yhat', scoredFrom, run.ticks, (i) => run.status[i] === HELD_OUT) });
    }
    const best = candidates.reduce((a, c) => ((c.r2 ?? -Infinity) > (a.r2 ?? -Infinity) ? c : a), candidates[0]);
    selection.push({ decoder: d.name, forProtocols, learnedMinutes: minutes, hyperparameter: d.hyperparameter, candidates, chosen: best.value });
    return best.value;
  };
  for (const d of options.decoders) {
    chosen.set(d.name, await selectOn(d, (scoredFrom * binSeconds) / 60, 'all'));
    if (!d.recalibrates) continue;
    for (const p of protocols) {
      const k = calibrationMinutesOf(p.name);
      if (k !== undefined) chosen.set(`${d.name}|${p.name}`, await selectOn(d, k, p.name));
    }
  }

  // 2. Every protocol, every decoder, every seed.
  const collectFrom = boundary - window;
  const perRange = new Map<string, { r2: number[]; p: number[]; age: number[]; frozen: number[]; trial: number[]; ticks: number }>();
  const inTrial = options.trialBins ? new Uint8Array(newTicks + window) : undefined;
  if (inTrial && options.trialBins) {
    inTrial.set(options.trialBins[0].subarray(boundary - window, boundary), 0);
    inTrial.set(options.trialBins[1].subarray(0, newTicks), window);
  }
  const perRecovery = new Map<string, { ePre: number[]; eFrozen: number[]; eAdapt: number[]; rec: number[]; res: number[]; ttr: number[]; runs: number }>();
  const overTime = new Map<string, { sums: Float64Array; counts: Float64Array }>();
  const micros = new Map<string, number[]>();
  let outOfRange = 0;
  const blockTicks = Math.round(BLOCK_SECONDS / binSeconds);
  const blocks = Math.ceil((window + newTicks) / blockTicks);
  for (const d of options.decoders) {
    const seeds = d.seeded ? options.seeds : options.seeds.slice(0, 1);
    for (const protocol of protocols) {
      for (const seed of seeds) {
        progress.setLabel(`${protocol.name} ${d.name} seed ${seed}`);
        const run = await runStream([first, second], d.specOf(seed, chosen.get(`${d.name}|${protocol.name}`) ?? chosen.get(d.name)!, inputSize, outputSize), {
          ...common, holdout: protocol.holdout, labelDelayTicks: protocol.labelDelayTicks, collectFrom, recoveryTicks: newTicks,
        });
        outOfRange += run.labelsOutOfRange;
        (micros.get(d.name) ?? micros.set(d.name, []).get(d.name)!).push(run.microsPerTick);
        const admitted = admitFor(run, protocol, window);
        for (const [range, [a, b]] of Object.entries(protocol.ranges)) {
          const key = `${protocol.name}|${range}|${d.name}`;
          const acc = perRange.get(key) ?? perRange.set(key, { r2: [], p: [], age: [], frozen: [], trial: [], ticks: 0 }).get(key)!;
          const from = window + a;
          const to = window + b;
          let ticks = 0;
          for (let i = from; i < to; i++) if (admitted(i)) ticks++;
          acc.ticks = ticks;
          push(acc.r2, r2Of(run, 'yhat', from, to, admitted));
          push(acc.p, r2Of(run, 'yLast', from, to, admitted));
          push(acc.age, meanReferenceAge(run, from, to, admitted));
          push(acc.frozen, r2Of(run, 'yFrozen', from, to, (i) => admitted(i) && run.hasFrozen[i] === 1));
          if (inTrial) push(acc.trial, r2Of(run, 'yhat', from, to, (i) => admitted(i) && inTrial[i] === 1));
        }
        recoveryOf(run, protocol, window, binSeconds, admitted, perRecovery, `${protocol.name}|${d.name}`);
        const series = overTime.get(`${protocol.name}|${d.name}`) ?? overTime.set(`${protocol.name}|${d.name}`, { sums: new Float64Array(blocks), counts: new Float64Array(blocks) }).get(`${protocol.name}|${d.name}`)!;
        for (let k = 0; k < blocks; k++) {
          const from = k * blockTicks;
          const to = Math.min(run.ticks, from + blockTicks);
          // Before the boundary every tick is a learning tick; after it, the protocol's scored ticks.
          const r = r2Of(run, 'yhat', from, to, (i) => (i < window ? run.status[i] !== 0 : admitted(i)));
          if (r !== null) {
            series.sums[k] += r;
            series.counts[k]++;
          }
        }
      }
    }
  }
  progress.finish(`${options.decoders.length} decoders x ${protocols.length} protocols done`);
  const learnerMicros: Record<string, number> = {};
  for (const d of options.decoders) learnerMicros[d.name] = timeTick(d.specOf(options.seeds[0], chosen.get(d.name)!, inputSize, outputSize), first);

  const ranges: RangeFigures[] = [];
  for (const [key, acc] of perRange) {
    const [protocol, range, decoder] = key.split('|');
    ranges.push({
      protocol: protocol as ProtocolName, range, decoder, r2: stat(acc.r2), persistenceR2: stat(acc.p), persistenceAge: stat(acc.age),
      frozenR2: stat(acc.frozen), ticks: acc.ticks, ...(inTrial ? { trialR2: stat(acc.trial) } : {}),
    });
  }
  const recovery: RecoveryFigures[] = [];
  for (const [key, acc] of perRecovery) {
    const [protocol, decoder] = key.split('|');
    recovery.push({
      protocol: protocol as ProtocolName, decoder, ePre: stat(acc.ePre), eFrozen: stat(acc.eFrozen), eAdapt: stat(acc.eAdapt),
      recovery: stat(acc.rec), residual: stat(acc.res), secondsToRecovery: stat(acc.ttr), recovered: acc.ttr.length, runs: acc.runs,
    });
  }
  const r2OverTime: BciResults['r2OverTime'][number][] = [];
  for (const [key, s] of overTime) {
    const [protocol, decoder] = key.split('|');
    for (let k = 0; k < blocks; k++) {
      if (s.counts[k] === 0) continue;
      r2OverTime.push({ protocol: protocol as ProtocolName, decoder, t: ((k + 0.5) * blockTicks - window) * binSeconds, r2: s.sums[k] / s.counts[k] });
    }
  }
  const results: BciResults = {
    experiment: 'bci',
    createdAt: new Date().toISOString(),
    data: options.dataDescription,
    labels: options.labelName ?? 'force',
    seeds: options.seeds,
    selectionSeed: options.selectionSeed,
    binSeconds,
    boundaryTick: boundary,
    lateTicks,
    protocols: protocols.map((p) => ({ name: p.name, description: p.description })),
    selection,
    ranges,
    recovery,
    microsPerTick: Object.fromEntries([...micros].map(([k, v]) => [k, v.reduce((a, b) => a + b, 0) / v.length])),
    learnerMicrosPerTick: learnerMicros,
    labelsOutOfRange: outOfRange,
    r2OverTime,
    seconds: (performance.now() - started) / 1000,
    files: [],
  };
  if (options.outDir === null || options.outDir === undefined) return results;
  return { ...results, files: await writeBciArtifacts(results, options.outDir) };
}

/** k of A(k), else undefined. */
function calibrationMinutesOf(name: ProtocolName): number | undefined {
  return name.startsWith('A') ? Number(name.slice(1)) : undefined;
}

function rangeTable(results: BciResults): string[] {
  const trials = results.ranges.some((r) => r.trialR2 !== undefined);
  return [
    `| protocol | range | decoder | R2 |${trials ? ' VAF on trial bins |' : ''} persistence R2 | persistence age (ticks) | frozen-at-boundary R2 | scored ticks |`,
    `|---|---|---|---|${trials ? '---|' : ''}---|---|---|---|`,
    ...results.ranges.map((r) =>
      `| ${r.protocol} | ${r.range} | ${r.decoder} | ${pmOf(r.r2)} |${trials ? ` ${r.trialR2 ? pmOf(r.trialR2) : '-'} |` : ''} ${f3(r.persistenceR2.mean)} | ${f2(r.persistenceAge.mean)} | ${f3(r.frozenR2.mean)} | ${r.ticks} |`),
  ];
}

/** The ticks of the new session a protocol scores (collected index i; the boundary is at `window`). */
function admitFor(run: CollectedRun, protocol: ProtocolDefinition, window: number): (i: number) => boolean {
  if (protocol.scoredTicks === 'all') return (i) => i >= window && run.status[i] !== 0;
  return (i) => i >= window && run.status[i] === HELD_OUT;
}

function recoveryOf(
  run: CollectedRun, protocol: ProtocolDefinition, window: number, binSeconds: number, admitted: (i: number) => boolean,
  into: Map<string, { ePre: number[]; eFrozen: number[]; eAdapt: number[]; rec: number[]; res: number[]; ttr: number[]; runs: number }>, key: string,
): void {
  const acc = into.get(key) ?? into.set(key, { ePre: [], eFrozen: [], eAdapt: [], rec: [], res: [], ttr: [], runs: 0 }).get(key)!;
  acc.runs++;
  // E_pre: the last minute of the first session, on the same kind of tick the protocol scores after the boundary
  // (held out for A, C and D, whose schedules withhold that minute; learned from, as they came, for B).
  const preStatus = protocol.scoredTicks === 'all' ? SCORED : HELD_OUT;
  const ePre = mseOf(run, 'yhat', 0, window, (i) => run.status[i] === preStatus);
  const [a, b] = Object.values(protocol.ranges)[0];
  const from = window + a;
  const to = window + b;
  const both = (i: number) => admitted(i) && run.hasFrozen[i] === 1;
  const eFrozen = mseOf(run, 'yFrozen', from, to, both);
  const eAdapt = mseOf(run, 'yhat', from, to, both);
  if (ePre === null || eFrozen === null || eAdapt === null) return;
  acc.ePre.push(ePre);
  acc.eFrozen.push(eFrozen);
  acc.eAdapt.push(eAdapt);
  if (eFrozen > ePre) acc.rec.push((eFrozen - eAdapt) / (eFrozen - ePre));
  acc.res.push(eAdapt / ePre);
  // Time to recovery: the first scored tick at which the mean error over the last `window` scored ticks is
  // within the tolerance of E_pre (a full window first).
  const ring = new Float64Array(window);
  let filled = 0;
  let sum = 0;
  for (let i = window; i < run.ticks; i++) {
    if (!admitted(i)) continue;
    let e = 0;
    for (let o = 0; o < run.outputs; o++) e += (run.y[i * run.outputs + o] - run.yhat[i * run.outputs + o]) ** 2;
    e /= run.outputs;
    const slot = filled % window;
    sum += e - (filled >= window ? ring[slot] : 0);
    ring[slot] = e;
    filled++;
    if (filled >= window && sum / window <= (1 + TOLERANCE) * ePre) {
      acc.ttr.push((i - window) * binSeconds);
      return;
    }
  }
}

function push(into: number[], v: number | null): void {
  if (v !== null && Number.isFinite(v)) into.push(v);
}

export function stat(values: readonly number[]): Stat {
  if (values.length === 0) return { mean: null, sd: null, min: null, max: null, n: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = values.length > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1)) : 0;
  return { mean, sd, min: Math.min(...values), max: Math.max(...values), n: values.length };
}

/** results.json, summary.md and one PNG of R2 over time per protocol. */
export async function writeBciArtifacts(results: BciResults, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const files: string[] = [];
  const json = join(outDir, 'results.json');
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`);
  files.push(json);
  for (const p of results.protocols) {
    const points: SeriesPoint[] = results.r2OverTime.filter((r) => r.protocol === p.name).map((r) => ({ t: r.t, value: r.r2, series: r.decoder }));
    if (points.length === 0) continue;
    const path = join(outDir, `r2-over-time-${p.name}.png`);
    await renderVegaLitePng(
      timeSeriesChart(
        {
          title: `Protocol ${p.name}: R2 per ${BLOCK_SECONDS} s block across the session boundary`,
          subtitle: `${p.description} (mean over seeds)`,
          xTitle: 'seconds from the boundary',
          yTitle: 'R2 (mean of the outputs)',
          seriesTitle: 'decoder',
          ruleAt: 0,
          ruleLabel: 'new session',
        },
        points.map((q) => ({ ...q, value: Math.max(-1, q.value) })),
      ),
      path,
    );
    files.push(path);
  }
  const summary = join(outDir, 'summary.md');
  await writeFile(summary, formatBciMarkdown(results));
  files.push(summary);
  return files;
}

const f2 = (v: number | null) => (v === null ? '-' : v.toFixed(2));
const f3 = (v: number | null) => (v === null ? '-' : v.toFixed(3));
const pmOf = (s: Stat) => (s.mean === null ? '-' : s.n > 1 ? `${f3(s.mean)} ± ${f3(s.sd)} [${f3(s.min)}, ${f3(s.max)}]` : f3(s.mean));

/** The report as markdown: how everything was chosen, then the tables. */
export function formatBciMarkdown(results: BciResults): string {
  const lines: string[] = [];
  const seeded = results.seeds.length;
  lines.push(
    `# driftline reproduce bci`,
    '',
    `Data: ${results.data}. Labels: ${results.labels}. Boundary at tick ${results.boundaryTick}; ${results.binSeconds * 1000} ms bins.`,
    `Every decoder runs inside driftline's pipeline: adaptive input z-scoring, per-stream target standardization, predict then learn.`,
    `Recurrent learners: ${seeded} seeds (${results.seeds.join(', ')}); mean ± sd [min, max] over seeds. Ridge, RLS and Kalman are deterministic: one run.`,
    `Hyperparameters were chosen on the first session only (its first 80 % learned with labels, its last 20 % held out and scored; for a decoder that recalibrates on the new session alone, its A(k) setting was chosen by learning only the first k minutes of the first session, then scoring the same last 20 %), with seed ${results.selectionSeed}, which is not a scored seed. No label of the new session was looked at.`,
    `Persistence: the last label the references had when each tick was predicted; its mean information age (ticks) is shown, since on held-out ticks it is the age of the last label before the holdout.`,
    '',
    '## Protocols',
    '',
    ...results.protocols.map((p) => `- **${p.name}**: ${p.description}`),
    '',
    '## Selection on the first session',
    '',
    '| decoder | for | learned (min of the first session) | candidates (R2 on its last 20 %, held out) | chosen |',
    '|---|---|---|---|---|',
    ...results.selection.map((s) => `| ${s.decoder} | ${s.forProtocols} | ${s.learnedMinutes.toFixed(1)} | ${s.candidates.map((c) => `${formatHyperparameters(c.value)}: ${f3(c.r2)}`).join('; ')} | ${formatHyperparameters(s.chosen)} |`),
    '',
    '## R2 on the new session',
    '',
    ...rangeTable(results),
    '',
    '## Recovery at the boundary (DESIGN section 5)',
    '',
    `E_pre: MSE over the last ${RECOVERY_WINDOW_SECONDS} s of the first session, on the kind of tick the protocol scores (A, C and D withhold the labels of that minute, so their E_pre is a held-out error like what they score after the boundary; B's is prequential); E_frozen and E_adapt: over the protocol's first range (frozen = the decoder as it was at the boundary). Time to recovery: until the MSE over the last ${RECOVERY_WINDOW_SECONDS} s of scored ticks is within ${TOLERANCE * 100} % of E_pre. Read the ratio beside the residual: when E_frozen is barely above E_pre the ratio is noise.`,
    '',
    '| protocol | decoder | E_pre | E_frozen | E_adapt | recovery | residual | time to recovery (s) | recovered |',
    '|---|---|---|---|---|---|---|---|---|',
    ...results.recovery.map((r) =>
      `| ${r.protocol} | ${r.decoder} | ${sci(r.ePre.mean)} | ${sci(r.eFrozen.mean)} | ${sci(r.eAdapt.mean)} | ${recoveryCell(r)} | ${f2(r.residual.mean)} | ${r.secondsToRecovery.mean === null ? '-' : r.secondsToRecovery.mean.toFixed(0)} | ${r.recovered}/${r.runs} |`),
    '',
    '## Cost',
    '',
    'Wall-clock microseconds on this machine (shared and noisy: compare rows of one run, not runs). The learner alone: predict + learn on the first session\'s bins with its chosen setting; the pipeline adds normalization, scoring, the frozen shadow\'s predictions and the bookkeeping of every message.',
    '',
    '| decoder | learner: predict + learn | whole pipeline, per input |',
    '|---|---|---|',
    ...Object.entries(results.microsPerTick).map(([d, us]) => `| ${d} | ${f1(results.learnerMicrosPerTick[d])} | ${us.toFixed(1)} |`),
    '',
    `Labels out of the target normalizer's range (learned from, counted): ${results.labelsOutOfRange}.`,
    `${results.seconds.toFixed(0)} s in all.`,
    '',
  );
  return lines.join('\n');
}

const sci = (v: number | null) => (v === null ? '-' : v.toExponential(2));
const f1 = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));

/** Microseconds per predict + learn of a fresh learner of `spec` over (up to) 6000 bins of `session`, after 1000 of warm-up. */
function timeTick(spec: LearnerSpec, session: ReplaySession): number {
  const learner = createLearner(spec);
  const m = session.nChannels;
  const out = session.nOutputs ?? 0;
  const n = Math.min(session.t.length, 7000);
  const x = session.x;
  const y = session.y!;
  // Labels near unit scale, as the pipeline's target scaling feeds them (cost does not depend on it).
  const scaled = new Float32Array(out);
  const run = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      learner.predict(x.subarray(i * m, (i + 1) * m));
      for (let o = 0; o < out; o++) scaled[o] = y[i * out + o] / 2000;
      learner.learn(scaled);
    }
  };
  run(0, Math.min(1000, n));
  const started = performance.now();
  run(Math.min(1000, n), n);
  return ((performance.now() - started) * 1000) / Math.max(1, n - 1000);
}

/** The ratio only where the drift did real harm (E_frozen at least 20 % above E_pre); else it divides by noise. */
function recoveryCell(r: RecoveryFigures): string {
  if (r.recovery.mean === null || r.ePre.mean === null || r.eFrozen.mean === null) return '-';
  if (r.eFrozen.mean < (1 + RECOVERY_MIN_HARM) * r.ePre.mean) return '- (little harm)';
  return `${(r.recovery.mean * 100).toFixed(0)} %`;
}

export { CALIBRATION_MINUTES };
