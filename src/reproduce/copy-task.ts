import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OnlineLruMode } from '../learners/credit/online-lru.js';
import { createLearner, type Learner, type RecurrentLearnerSpec } from '../learners/learner.js';
import { adam } from '../learners/optim/transform.js';
import { Random } from '../learners/random.js';
import { CopyTask } from '../simulator/copy-task.js';
import { codeHashOf } from './code-hash.js';
import { meanOf, sampleStdOf } from './sample-stats.js';

/**
 * The copy task of Zucchet et al. (2023), learned online, one labelled tick at a time: the online LRU against
 * the paper's comparisons. Every method is the same network (cell `lru`), the same optimizer (Adam) and the same
 * schedule (an update at every recall tick, a fresh recurrent state per sequence); only the credit rule's mode
 * differs:
 *   online       traces: exact gradients within each layer, spatial backpropagation across layers
 *   truncated-1  one-step partials of the recurrence only
 *   spatial      no credit through the recurrence (lambda takes no gradient)
 *   bptt         each label's full backpropagation through time over its sequence so far: the reference
 * so the comparison isolates credit assignment. The paper updates once per batch of 50 sequences with a cosine
 * schedule; here the update is per tick with a constant rate, as a streaming learner runs.
 *
 * Protocol. Each method's learning rate is chosen from the same grid, the same way: one run per rate on a
 * selection seed (never scored), for `selectionSequences`; the rate with the best held-out bit accuracy at its
 * end is kept (ties: the smaller rate). The scored seeds then run `sequences` sequences each. Accuracy is
 * measured every `evalEvery` sequences on `testSequences` held-out sequences (one fixed test seed for every run)
 * by a frozen copy of the learner: the fraction of recall bits whose sigmoid output is on the right side of 1/2.
 */
export type CopyMethod = OnlineLruMode;
export const COPY_METHODS: readonly CopyMethod[] = ['online', 'truncated-1', 'spatial', 'bptt'];
export const COPY_METHOD_LABELS: Readonly<Record<CopyMethod, string>> = {
  online: 'online LRU (traces)',
  'truncated-1': '1-step truncated',
  spatial: 'spatial only',
  bptt: 'BPTT (reference)',
};

export interface CopyNetwork {
  readonly hiddenSize: number;
  readonly units: number;
  readonly layers: number;
  readonly rMin: number;
  readonly rMax: number;
}

export interface CopyTaskSettings {
  readonly network: CopyNetwork;
  readonly seeds: readonly number[];
  readonly sequences: number;
  readonly evalEvery: number;
  readonly testSequences: number;
  readonly learningRates: readonly number[];
  readonly selectionSeed: number;
  readonly selectionSequences: number;
  readonly methods: readonly CopyMethod[];
}

/** The paper's copy task (20 steps of 7 bits, 7 blanks); a network of half the paper's width and depth. */
export const DEFAULT_COPY_SETTINGS: CopyTaskSettings = {
  network: { hiddenSize: 64, units: 64, layers: 2, rMin: 0, rMax: 1 },
  seeds: [1, 2, 3],
  sequences: 60_000,
  evalEvery: 2_000,
  testSequences: 200,
  learningRates: [3e-5, 1e-4, 3e-4],
  selectionSeed: 1001,
  selectionSequences: 60_000,
  methods: COPY_METHODS,
};

/** Seed of the held-out test sequences, the same for every run; never a training or selection seed. */
export const COPY_TEST_SEED = 999_983;

export interface CopyJob {
  readonly purpose: 'selection' | 'scored';
  readonly method: CopyMethod;
  readonly learningRate: number;
  readonly seed: number;
  readonly sequences: number;
  readonly evalEvery: number;
  readonly testSequences: number;
  readonly network: CopyNetwork;
}

export interface CopyCurvePoint {
  readonly sequences: number;
  /** Held-out bit accuracy, in [0, 1]. */
  readonly accuracy: number;
  /** Held-out mean binary cross-entropy per recall bit, in nats. */
  readonly loss: number;
}

export interface CopyRunResult {
  readonly job: CopyJob;
  /** The code that produced it (copyCodeHash): a saved run is reused only by the same code. */
  readonly codeHash: string;
  readonly curve: readonly CopyCurvePoint[];
  readonly finalAccuracy: number;
  readonly msPerSequence: number;
  readonly params: number;
  readonly stateBytes: number;
}

export function copyJobKey(job: CopyJob): string {
  return `${job.purpose}-${job.method}-lr${job.learningRate}-seed${job.seed}-${job.sequences}seq`;
}

export function copyLearnerSpec(job: CopyJob, task: CopyTask): RecurrentLearnerSpec {
  const { hiddenSize, units, layers, rMin, rMax } = job.network;
  return {
    cell: { kind: 'lru', hiddenSize, units, layers, rMin, rMax },
    credit: { rule: 'online-lru', mode: job.method },
    optimizer: adam(job.learningRate),
    inputSize: task.inputSize,
    outputSize: task.outputSize,
    seed: job.seed,
    loss: 'bce',
    // bptt's window is the label window: it must hold a whole sequence.
    maxLabelDelay: task.length,
  };
}

/** Held-out accuracy and loss of a frozen copy of `learner`, each test sequence from a zero state. */
export function evaluateCopy(learner: Learner, task: CopyTask, testSequences: number): { accuracy: number; loss: number } {
  const frozen = learner.fork({ frozen: true });
  const rng = new Random(COPY_TEST_SEED);
  let correct = 0;
  let total = 0;
  let loss = 0;
  for (let s = 0; s < testSequences; s++) {
    task.next(rng);
    frozen.resetSequence!();
    for (let t = 0; t < task.length; t++) {
      const p = frozen.predict(task.input(t));
      if (!task.recalls(t)) continue;
      const y = task.target(t);
      for (let b = 0; b < task.bits; b++) {
        if ((p[b] > 0.5 ? 1 : 0) === y[b]) correct++;
        const q = Math.min(Math.max(p[b], 1e-7), 1 - 1e-7);
        loss -= y[b] === 1 ? Math.log(q) : Math.log(1 - q);
        total++;
      }
    }
  }
  return { accuracy: correct / total, loss: loss / total };
}

/** One run: trains on `sequences` sequences of seed `seed`, evaluating every `evalEvery`. */
export function runCopyJob(job: CopyJob, onProgress?: (sequencesDone: number) => void): CopyRunResult {
  const task = new CopyTask();
  const learner = createLearner(copyLearnerSpec(job, task));
  const rng = new Random(job.seed);
  const curve: CopyCurvePoint[] = [];
  let trainingMs = 0;
  for (let s = 1; s <= job.sequences; s++) {
    task.next(rng);
    const started = performance.now();
    learner.resetSequence!();
    for (let t = 0; t < task.length; t++) {
      learner.predict(task.input(t));
      if (task.recalls(t)) learner.learn(task.target(t));
    }
    trainingMs += performance.now() - started;
    if (s % job.evalEvery === 0 || s === job.sequences) {
      curve.push({ sequences: s, ...evaluateCopy(learner, task, job.testSequences) });
      onProgress?.(s);
    }
  }
  if (learner.stats.skippedNonFinite > 0) {
    throw new Error(`copy task ${copyJobKey(job)}: ${learner.stats.skippedNonFinite} updates skipped as non-finite`);
  }
  return {
    job,
    codeHash: copyCodeHash(),
    curve,
    finalAccuracy: curve[curve.length - 1].accuracy,
    msPerSequence: trainingMs / job.sequences,
    params: learner.paramCount,
    stateBytes: learner.stateBytes,
  };
}

let codeHash: string | undefined;

/** The hash of the learners, the kernels, this file and the task (src/reproduce/code-hash.ts). */
export function copyCodeHash(): string {
  if (codeHash !== undefined) return codeHash;
  const here = fileURLToPath(import.meta.url);
  codeHash = codeHashOf([here, fileURLToPath(new URL(`../simulator/copy-task${extname(here)}`, import.meta.url))]);
  return codeHash;
}

export function selectionJobs(settings: CopyTaskSettings): CopyJob[] {
  return settings.methods.flatMap((method) => settings.learningRates.map((learningRate) => ({
    purpose: 'selection' as const, method, learningRate, seed: settings.selectionSeed, sequences: settings.selectionSequences,
    evalEvery: Math.min(settings.evalEvery, settings.selectionSequences), testSequences: settings.testSequences, network: settings.network,
  })));
}

/** Each method's rate: the best held-out accuracy at the end of its selection runs (ties: the smaller rate). */
export function selectRates(settings: CopyTaskSettings, selection: readonly CopyRunResult[]): Record<CopyMethod, number> {
  const chosen = {} as Record<CopyMethod, number>;
  for (const method of settings.methods) {
    const runs = selection.filter((r) => r.job.method === method).sort((a, b) => a.job.learningRate - b.job.learningRate);
    if (runs.length === 0) throw new Error(`copy task: no selection run for ${method}`);
    let best = runs[0];
    for (const r of runs) if (r.finalAccuracy > best.finalAccuracy) best = r;
    chosen[method] = best.job.learningRate;
  }
  return chosen;
}

export function scoredJobs(settings: CopyTaskSettings, rates: Readonly<Record<CopyMethod, number>>): CopyJob[] {
  return settings.methods.flatMap((method) => settings.seeds.map((seed) => ({
    purpose: 'scored' as const, method, learningRate: rates[method], seed, sequences: settings.sequences,
    evalEvery: settings.evalEvery, testSequences: settings.testSequences, network: settings.network,
  })));
}

export interface CopyMethodSummary {
  readonly method: CopyMethod;
  readonly learningRate: number;
  readonly finalAccuracies: readonly number[];
  readonly mean: number;
  readonly std: number;
  readonly msPerSequence: number;
  readonly stateBytes: number;
  /** Mean over seeds at each evaluation point, with the standard deviation. */
  readonly curve: readonly { sequences: number; mean: number; std: number }[];
}

export function summarizeCopy(settings: CopyTaskSettings, scored: readonly CopyRunResult[]): CopyMethodSummary[] {
  return settings.methods.map((method) => {
    const runs = scored.filter((r) => r.job.method === method);
    const finals = runs.map((r) => r.finalAccuracy);
    const points = runs[0]?.curve.map((p, i) => {
      const values = runs.map((r) => r.curve[i].accuracy);
      return { sequences: p.sequences, mean: meanOf(values), std: sampleStdOf(values) };
    }) ?? [];
    return {
      method,
      learningRate: runs[0]?.job.learningRate ?? Number.NaN,
      finalAccuracies: finals,
      mean: meanOf(finals),
      std: sampleStdOf(finals),
      msPerSequence: meanOf(runs.map((r) => r.msPerSequence)),
      stateBytes: runs[0]?.stateBytes ?? Number.NaN,
      curve: points,
    };
  });
}
