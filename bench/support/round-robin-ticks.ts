// Many learners ticked in turn, as one shard of `driftline run` ticks its streams: with enough of them their
// parameters and optimizer slots no longer fit the last-level cache, and each tick streams them from memory.
// Runs in the bench's own thread, or in worker threads started together (the shards of one process, sharing the
// memory bandwidth): `startRoundRobinThreads`.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startModuleWorker } from '../../src/cli/service/module-worker.js';
import { createLearner } from '../../src/learners/learner.js';
import { INPUTS, OUTPUTS, tanhRnnSpec } from '../common.js';

/** Microseconds per predict + learn of `learners` tanh RNNs (n = 64, the service's default) ticked in turn. */
export function roundRobinTicks(learners: number, ticks: number, beforeTiming?: () => void): number {
  const all = Array.from({ length: learners }, (_, i) => createLearner({ ...tanhRnnSpec(64), seed: 1 + i }, { backend: 'wasm' }));
  const xs = Array.from({ length: 64 }, (_, i) => Float32Array.from({ length: INPUTS }, (_, j) => Math.sin(0.1 * i + j)));
  const ys = Array.from({ length: 64 }, (_, i) => Float32Array.from({ length: OUTPUTS }, (_, j) => Math.cos(0.1 * i + j)));
  // Every learner ticks a few times first: the JIT and V8's WASM wrappers are warm, every page is touched.
  const warm = Math.max(3 * learners, 2_000);
  for (let t = 0; t < warm; t++) {
    const l = all[t % learners]!;
    l.predict(xs[t & 63]!);
    l.learn(ys[t & 63]!);
  }
  beforeTiming?.();
  const start = performance.now();
  for (let t = 0; t < ticks; t++) {
    const l = all[t % learners]!;
    l.predict(xs[t & 63]!);
    l.learn(ys[t & 63]!);
  }
  return ((performance.now() - start) * 1000) / ticks;
}

interface ThreadJob {
  readonly roundRobin: true;
  readonly learners: number;
  readonly ticks: number;
  /** How many threads have warmed up: each starts timing once all have. */
  readonly gate: SharedArrayBuffer;
  readonly threads: number;
}

/** Microseconds per tick in each of `threads` worker threads, each ticking its own `learners`, all at once. */
export async function startRoundRobinThreads(threads: number, learners: number, ticks: number): Promise<number[]> {
  const gate = new SharedArrayBuffer(4);
  const self = new URL(import.meta.url);
  const results = Array.from({ length: threads }, () => {
    const job: ThreadJob = { roundRobin: true, learners, ticks, gate, threads };
    const worker = startModuleWorker(self, job);
    return new Promise<number>((resolve, reject) => {
      worker.once('message', (usPerTick: number) => resolve(usPerTick));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`round-robin tick thread exited (${code}) before reporting`)));
    });
  });
  return Promise.all(results);
}

if (!isMainThread && (workerData as Partial<ThreadJob> | null)?.roundRobin === true) {
  const job = workerData as ThreadJob;
  const gate = new Int32Array(job.gate);
  // Each thread builds and warms its learners alone, then waits until every thread has, so that the timed ticks
  // of all of them overlap.
  const usPerTick = roundRobinTicks(job.learners, job.ticks, () => {
    Atomics.add(gate, 0, 1);
    for (let seen = Atomics.load(gate, 0); seen < job.threads; seen = Atomics.load(gate, 0)) Atomics.wait(gate, 0, seen, 50);
  });
  parentPort!.postMessage(usPerTick);
}
