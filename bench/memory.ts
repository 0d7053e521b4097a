// Section `memory`: heapUsed and RSS over 10^5 predict + learn ticks of one WASM learner at n = 256, sampled
// after warm-up and at the end (each after a full GC). It runs in a fresh Node process started with --expose-gc
// (see index.ts), so the other sections' heaps (TensorFlow.js above all) do not blur the figures.
import { createLearner } from '../src/learners/learner.js';
import { wasmKernelsAvailable, wasmKernelsError } from '../src/learners/kernels/wasm-kernels.js';
import { inputPool, int, num, passFail, printTable, tanhRnnSpec, type BenchOptions, type TargetResult } from './common.js';

const N = 256;
const GROWTH_TARGET_PCT = 2;

/** Lets pending callbacks and finalizers run, then collects twice (the first pass may only promote). */
async function settledUsage(): Promise<NodeJS.MemoryUsage> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') throw new Error('the memory section needs global.gc: run node with --expose-gc');
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  gc();
  return process.memoryUsage();
}

export async function runMemory(options: BenchOptions): Promise<TargetResult[]> {
  if (!wasmKernelsAvailable()) {
    printTable('memory: WASM learner over 10^5 ticks', ['note'], [[`skipped: ${wasmKernelsError()}`]]);
    return [];
  }
  const total = options.quick ? 10_000 : 100_000;
  const sampleAt = options.quick ? 1_000 : 5_000;
  const learner = createLearner(tanhRnnSpec(N), { backend: 'wasm' });
  const { xs, ys } = inputPool(256);
  const mask = xs.length - 1;
  let sink = 0;
  const ticks = (from: number, to: number) => {
    for (let t = from; t < to; t++) {
      sink += learner.predict(xs[t & mask])[0];
      learner.learn(ys[t & mask]);
    }
  };

  ticks(0, sampleAt);
  const start = await settledUsage();
  const t0 = performance.now();
  ticks(sampleAt, total);
  const wallS = (performance.now() - t0) / 1000;
  const end = await settledUsage();
  if (!Number.isFinite(sink) || learner.stats.skippedNonFinite > 0) throw new Error('memory run: non-finite predictions or updates');

  const targets: TargetResult[] = [];
  const rows: string[][] = [];
  const metric = (name: string, key: keyof NodeJS.MemoryUsage, target: boolean) => {
    const a = start![key];
    const b = end[key];
    const growth = ((b - a) / a) * 100;
    const pass = growth <= GROWTH_TARGET_PCT; // a heap that shrinks is no leak
    rows.push([name, int(a), int(b), `${growth >= 0 ? '+' : ''}${num(growth, 3)} %`,
      target ? `<= +${GROWTH_TARGET_PCT} % ${passFail(pass)}` : '(info)']);
    if (target) {
      targets.push({
        section: 'memory',
        target: `${name} growth from tick ${int(sampleAt)} to tick ${int(total)} within ${GROWTH_TARGET_PCT} % (at most +${GROWTH_TARGET_PCT} %)`,
        measured: `${growth >= 0 ? '+' : ''}${num(growth, 3)} %`,
        pass,
      });
    }
  };
  metric('heapUsed', 'heapUsed', true);
  metric('rss', 'rss', true);
  metric('heapTotal', 'heapTotal', false);
  metric('external', 'external', false);

  printTable(
    `memory: WASM learner, tanh RNN n = ${N}, ${int(total)} ticks of predict + learn`,
    ['metric', `bytes at tick ${int(sampleAt)}`, `bytes at tick ${int(total)}`, 'growth', 'target'],
    rows,
    [
      'Fresh node process with --expose-gc; each sample follows one event-loop turn and global.gc() twice.',
      `PASS when growth <= +${GROWTH_TARGET_PCT} % (a shrinking heap or RSS is no leak). Ticks ${int(sampleAt)} to ${int(total)} took ` +
        `${num(wallS)} s (${num((wallS / (total - sampleAt)) * 1e6)} us/tick incl. the loop).`,
      `learner.stateBytes ${int(learner.stateBytes)}, scratchBytes ${int(learner.scratchBytes)}; the WASM arena is in rss, not in the JS heap.`,
      ...(options.quick ? ['QUICK mode: 10^4 ticks, sampled from tick 1,000.'] : []),
    ],
    'lrrrl',
  );
  return targets;
}
