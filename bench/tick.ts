// Section `tick`: per-tick predict + learn latency of a tanh RNN (96 inputs, 2 outputs, immediate credit with
// lambda 0, RMSprop) on the WASM SIMD kernels, on their plain-TypeScript twin, and written with TensorFlow.js
// ops on its CPU and WASM backends; 1,000 learners ticked in turn on one and on two threads (out of cache); then the
// roofline bound of each tick from a streaming bandwidth measured here.
import type * as TF from '@tensorflow/tfjs';
import { createLearner } from '../src/learners/learner.js';
import type { KernelBackend, Kernels } from '../src/learners/kernels/kernels.js';
import { createKernels, wasmKernelsAvailable, wasmKernelsError } from '../src/learners/kernels/wasm-kernels.js';
import {
  HIDDEN_SIZES, INPUTS, LEARNING_RATE, OUTPUTS, RMS_DECAY, RMS_EPS, inputPool, int, lastLevelCacheBytes, median,
  num, passFail, percentile, printTable, tanhRnnSpec, timeTicks, type BenchOptions, type InputPool, type TargetResult,
  type TimingPlan,
} from './common.js';
import { roundRobinTicks, startRoundRobinThreads } from './support/round-robin-ticks.js';

type Tf = typeof TF;

/** WASM tick at n = 256 must be at least this many times faster than the tfjs CPU-backend tick. */
const SPEEDUP_TARGET = 25;
/** ... and within this factor of the roofline bound. */
const ROOFLINE_TARGET = 2;
const TARGET_N = 256;

const MiB = 1024 ** 2;

interface Row {
  readonly n: number;
  readonly variant: string;
  readonly median?: number;
  readonly p99?: number;
  readonly ticks?: number;
  readonly wallMs?: number;
  readonly note?: string;
}

function plan(quick: boolean, slow: boolean): TimingPlan {
  if (quick) return { warmTicks: slow ? 2 : 50, warmMs: 200, minWarmTicks: 2, maxTicks: slow ? 50 : 500, capMs: 300, minTicks: 3 };
  return {
    warmTicks: slow ? 30 : 2000,
    warmMs: slow ? 2000 : 1500,
    minWarmTicks: 3,
    maxTicks: 20000,
    capMs: 10_000,
    minTicks: 10,
  };
}

// ---- our learner ----------------------------------------------------------------------------------------

function learnerRow(n: number, backend: KernelBackend, pool: InputPool, quick: boolean): Row {
  const learner = createLearner(tanhRnnSpec(n), { backend });
  if (learner.backend !== backend) throw new Error(`asked for the ${backend} kernels, got ${learner.backend}`);
  const { xs, ys } = pool;
  const mask = xs.length - 1;
  const timing = timeTicks((i) => {
    learner.predict(xs[i & mask]);
    learner.learn(ys[i & mask]);
  }, plan(quick, backend === 'js' && n >= 1024));
  if (learner.stats.skippedNonFinite > 0) throw new Error(`${backend} n=${n}: ${learner.stats.skippedNonFinite} non-finite updates`);
  return {
    n, variant: backend, median: median(timing.samples), p99: percentile(timing.samples, 0.99),
    ticks: timing.samples.length, wallMs: timing.wallMs,
  };
}

// ---- many learners in step --------------------------------------------------------------------------------

const IN_STEP_LEARNERS = 100;
/** Learners ticked in turn for the out-of-cache table: issue 18's 1,000 streams. */
const OUT_OF_CACHE_LEARNERS = 1000;
const IN_STEP_TICKS = 1000;
/** The slowest tick of learners in step must stay within this factor of the median tick. */
const IN_STEP_TARGET = 5;

interface InStep {
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly slowestTick: number;
}

/**
 * IN_STEP_LEARNERS learners (n = 64) ticking in step, as the streams of a service fed at one rate do: the time of
 * each tick of all of them. A cost every learner pays at the same count of its own ticks (V8's per-instance
 * compilation of WASM export wrappers after 1,000 calls did: 70-110 ms at ticks 333 and 499) shows as the max.
 */
function inStep(pool: InputPool, ticks: number): InStep {
  const learners = Array.from({ length: IN_STEP_LEARNERS }, (_, i) => createLearner({ ...tanhRnnSpec(64), seed: 1 + i }, { backend: 'wasm' }));
  const { xs, ys } = pool;
  const mask = xs.length - 1;
  const times = new Float64Array(ticks);
  for (let t = 0; t < ticks; t++) {
    const start = performance.now();
    for (let s = 0; s < learners.length; s++) {
      const i = (t * learners.length + s) & mask;
      learners[s]!.predict(xs[i]);
      learners[s]!.learn(ys[i]);
    }
    times[t] = performance.now() - start;
  }
  // The first ticks compile and warm the JIT; a service pays them once per process, before it says it is ready.
  const steady = times.slice(50);
  let slowestTick = 50;
  for (let t = 50; t < ticks; t++) if (times[t]! > times[slowestTick]!) slowestTick = t;
  return { medianMs: median(steady), p99Ms: percentile(steady, 0.99), maxMs: times[slowestTick]!, slowestTick };
}

// ---- the same tick in TensorFlow.js ops -----------------------------------------------------------------

/**
 * h = tanh(W h_prev + U x + b), yhat = V h + c (read back with dataSync: the prediction is emitted), then the
 * immediate gradients e = yhat - y, delta = (V^T e) * (1 - h^2), dW = delta h_prev^T, dU = delta x^T, db = delta,
 * dV = e h^T, dc = e, and RMSprop on every parameter (s = decay s + (1 - decay) g^2; p -= lr g / (sqrt(s) + eps))
 * through tf variables, all inside one tf.tidy.
 */
function tfjsTick(tf: Tf, n: number): { tick: (x: Float32Array, y: Float32Array) => Float32Array; dispose: () => void } {
  const m = INPUTS;
  const o = OUTPUTS;
  // Built inside a tidy so that the initial-value tensors are freed; variables survive it.
  const { W, U, b, V, c, h, slots, decay, oneMinusDecay, lr, eps, one } = tf.tidy(() => {
    const uniform = (rows: number, cols: number, fanIn: number, seed: number) =>
      tf.variable(tf.randomUniform([rows, cols], -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn), 'float32', seed));
    const vars = {
      W: uniform(n, n, n, 1),
      U: uniform(n, m, n, 2),
      b: tf.variable(tf.zeros([n, 1])),
      V: uniform(o, n, n, 3),
      c: tf.variable(tf.zeros([o, 1])),
      h: tf.variable(tf.zeros([n, 1])),
    };
    return {
      ...vars,
      slots: [vars.W, vars.U, vars.b, vars.V, vars.c].map((p) => tf.variable(tf.zerosLike(p))),
      // Constants made once, so that the tick spends its time on the model's ops.
      decay: tf.scalar(RMS_DECAY),
      oneMinusDecay: tf.scalar(1 - RMS_DECAY),
      lr: tf.scalar(LEARNING_RATE),
      eps: tf.scalar(RMS_EPS),
      one: tf.scalar(1),
    };
  });
  const params = [W, U, b, V, c];
  const kept: TF.Tensor[] = [...params, h, ...slots, decay, oneMinusDecay, lr, eps, one];

  let yhatOut: Float32Array = new Float32Array(o);
  const tick = (x: Float32Array, y: Float32Array): Float32Array => {
    tf.tidy(() => {
      const xt = tf.tensor2d(x, [m, 1]);
      const hPrev = h; // assign() below swaps the variable's data, so hPrev is read before it
      const hNew = tf.tanh(tf.add(tf.add(tf.matMul(W, hPrev), tf.matMul(U, xt)), b));
      const yhat = tf.add(tf.matMul(V, hNew), c);
      yhatOut = yhat.dataSync() as Float32Array; // the prediction, emitted before the label is seen

      const e = tf.sub(yhat, tf.tensor2d(y, [o, 1]));
      const gOut = tf.matMul(V, e, true, false);
      const delta = tf.mul(gOut, tf.sub(one, tf.square(hNew)));
      const grads = [
        tf.matMul(delta, hPrev, false, true),
        tf.matMul(delta, xt, false, true),
        delta,
        tf.matMul(e, hNew, false, true),
        e,
      ];
      for (let i = 0; i < params.length; i++) {
        const g = grads[i];
        const s = tf.add(tf.mul(slots[i], decay), tf.mul(tf.square(g), oneMinusDecay));
        slots[i].assign(s);
        params[i].assign(tf.sub(params[i], tf.div(tf.mul(g, lr), tf.add(tf.sqrt(s), eps))));
      }
      h.assign(hNew);
    });
    return yhatOut;
  };
  return { tick, dispose: () => tf.dispose(kept) };
}

function tfjsRow(tf: Tf, variant: string, n: number, pool: InputPool, quick: boolean): Row {
  const before = tf.memory().numTensors;
  const model = tfjsTick(tf, n);
  const { xs, ys } = pool;
  const mask = xs.length - 1;
  let sink = 0;
  const during = { tensors: 0 };
  const timing = timeTicks((i) => {
    sink += model.tick(xs[i & mask], ys[i & mask])[0];
    if (i === 1) during.tensors = tf.memory().numTensors;
  }, plan(quick, true));
  const after = tf.memory().numTensors;
  model.dispose();
  if (!Number.isFinite(sink)) throw new Error(`${variant} n=${n}: non-finite predictions`);
  const leaked = after - during.tensors;
  return {
    n, variant, median: median(timing.samples), p99: percentile(timing.samples, 0.99),
    ticks: timing.samples.length, wallMs: timing.wallMs,
    note: leaked !== 0 ? `tensor count changed by ${leaked} while timing` : tf.memory().numTensors !== before ? 'tensors left after dispose' : undefined,
  };
}

interface TfBackends {
  readonly tf: Tf;
  readonly backends: { variant: string; name: string }[];
  readonly notes: string[];
}

async function loadTfjs(): Promise<TfBackends | { error: string }> {
  let tf: Tf;
  try {
    tf = await import('@tensorflow/tfjs');
  } catch (err) {
    return { error: `@tensorflow/tfjs did not load: ${(err as Error).message}` };
  }
  // Silences the "install tfjs-node" banner and skips debug-only checks (which only helps tfjs' figures).
  tf.enableProdMode();
  const notes: string[] = [`@tensorflow/tfjs ${tf.version.tfjs}; prod mode; each tick creates x and y tensors and reads yhat back with dataSync`];
  const backends: { variant: string; name: string }[] = [];
  if (await tf.setBackend('cpu')) {
    backends.push({ variant: 'tfjs-cpu', name: 'cpu' });
  } else {
    notes.push('tfjs CPU backend failed to initialise');
  }
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    if (await tf.setBackend('wasm')) {
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
      backends.push({ variant: 'tfjs-wasm', name: 'wasm' });
      notes.push(`tfjs WASM backend (@tensorflow/tfjs-backend-wasm ${wasm.version_wasm}) initialised offline: SIMD ${simd}, ` +
        `multithread ${threads}, threads ${wasm.getThreadsCount()}`);
    } else {
      notes.push('tfjs WASM backend failed to initialise offline: not reported');
    }
  } catch (err) {
    notes.push(`tfjs WASM backend unavailable: ${(err as Error).message}`);
  }
  return { tf, backends, notes };
}

// ---- bandwidth and roofline -----------------------------------------------------------------------------

interface Rates {
  /** k.copy from one half of the region to the other, counting bytes read + bytes written. */
  readonly copy: number;
  /** k.dot of the two halves, counting the bytes read (it accumulates in f64 and may be compute-bound). */
  readonly dot: number;
  /** k.allFinite over the whole region: a pure streaming read. */
  readonly read: number;
}

interface Bandwidth {
  readonly backend: KernelBackend;
  readonly bufferBytes: number;
  readonly llcBytes: number | undefined;
  readonly reps: number;
  /** Over a region far larger than the last-level cache; GB/s, best of the repetitions. */
  readonly dram: Rates;
  /** Over a region the size of each n's tick working set (cache-resident where it fits). */
  readonly workingSet: Map<number, Rates>;
}

function best(rates: Rates): { name: string; gbs: number } {
  const all = [['copy', rates.copy], ['read', rates.read], ['dot', rates.dot]] as const;
  const [name, gbs] = all.reduce((a, b) => (b[1] > a[1] ? b : a));
  return { name, gbs };
}

/** Parameters of the benchmarked net (cell W, U, b and readout V, c). */
function paramCount(n: number): number {
  return n * n + n * INPUTS + n + OUTPUTS * n + OUTPUTS;
}

/**
 * Bytes one immediate-RMSprop tick must move at least: forward reads every parameter once (4P); the fused step
 * reads and writes each parameter and its second-moment slot (16P); plus the vectors.
 */
function tickBytes(n: number): number {
  return 4 * (5 * paramCount(n) + vectorFloats(n));
}

/**
 * x is read by forward and by the dU step (2m); h_{t-1} by forward and by the dW step (2n); h_t is written and
 * read by the readout and by delta (3n); V^T e is written and read (2n, plus V re-read: o n); delta written (n);
 * yhat, y, e (4o).
 */
function vectorFloats(n: number): number {
  return 2 * INPUTS + 8 * n + OUTPUTS * n + 4 * OUTPUTS;
}
const TICK_BYTES_FORMULA = 'bytes/tick = 4 (5P + 2m + 8n + o n + 4o), P = n^2 + n m + n + o n + o, m = 96, o = 2';

/** The tick's distinct working set: parameters and second moments (8P bytes). */
function workingSetBytes(n: number): number {
  return 8 * paramCount(n);
}

/** Best GB/s over `reps` repetitions, each calling op at least once and for at least minMs. */
function rate(op: () => number, bytesPerCall: number, reps: number, minMs: number): number {
  let bestGBs = 0;
  let sink = 0;
  for (let r = 0; r < reps; r++) {
    let calls = 0;
    const t0 = performance.now();
    let t = t0;
    do {
      sink += op();
      calls++;
      t = performance.now();
    } while (t - t0 < minMs);
    bestGBs = Math.max(bestGBs, (calls * bytesPerCall) / ((t - t0) / 1000) / 1e9);
  }
  if (!Number.isFinite(sink)) throw new Error('bandwidth probe: non-finite result');
  return bestGBs;
}

/** The three probes over [base, base + 2 half) of the arena. */
function rates(k: Kernels, base: number, half: number, reps: number, minMs: number): Rates {
  const b = 8 * half; // bytes of the whole region
  k.copy(base + half, base, half); // warm (and, for the cache-resident sizes, load)
  return {
    copy: rate(() => (k.copy(base + half, base, half), 0), b, reps, minMs),
    dot: rate(() => k.dot(base, base + half, half), b, reps, minMs),
    read: rate(() => k.allFinite(base, 2 * half), b, reps, minMs),
  };
}

function measureBandwidth(quick: boolean, backend: KernelBackend): Bandwidth {
  const llcBytes = lastLevelCacheBytes();
  const bufferBytes = quick ? 64 * MiB : Math.min(1024 * MiB, Math.max(256 * MiB, 4 * (llcBytes ?? 64 * MiB)));
  const half = bufferBytes / 4;
  const k = createKernels(2 * half, backend);
  k.fill(0, 1, half); // touches every page before timing
  k.fill(half, 2, half);
  const reps = quick ? 2 : 5;
  const dram = rates(k, 0, half, reps, 0);
  const workingSet = new Map<number, Rates>();
  for (const n of HIDDEN_SIZES) {
    const wsHalf = Math.min(half, Math.ceil(workingSetBytes(n) / 8 / 16) * 16);
    workingSet.set(n, rates(k, 0, wsHalf, 3, quick ? 10 : 100));
  }
  return { backend, bufferBytes, llcBytes, reps, dram, workingSet };
}

// ---- the section ----------------------------------------------------------------------------------------

export async function runTick(options: BenchOptions): Promise<TargetResult[]> {
  const quick = options.quick;
  const pool = inputPool(256);
  const haveWasm = wasmKernelsAvailable();
  const preNotes: string[] = [];
  if (!haveWasm) preNotes.push(`WASM kernels unavailable: ${wasmKernelsError()}`);

  const bw = measureBandwidth(quick, haveWasm ? 'wasm' : 'js');
  const tfjs = await loadTfjs();

  const rows: Row[] = [];
  for (const n of HIDDEN_SIZES) {
    rows.push(haveWasm ? learnerRow(n, 'wasm', pool, quick) : { n, variant: 'wasm', note: 'unavailable' });
    rows.push(learnerRow(n, 'js', pool, quick));
    if ('error' in tfjs) {
      rows.push({ n, variant: 'tfjs', note: tfjs.error });
      continue;
    }
    for (const { variant, name } of tfjs.backends) {
      await tfjs.tf.setBackend(name);
      try {
        rows.push(tfjsRow(tfjs.tf, variant, n, pool, quick));
      } catch (err) {
        rows.push({ n, variant, note: `failed: ${(err as Error).message}` });
      }
    }
  }

  const wasmMedian = (n: number) => rows.find((r) => r.n === n && r.variant === 'wasm')?.median;
  const targets: TargetResult[] = [];
  const speedupAt = (n: number, variant: string): number | undefined => {
    const r = rows.find((x) => x.n === n && x.variant === variant);
    const w = wasmMedian(n);
    return r?.median !== undefined && w !== undefined ? r.median / w : undefined;
  };
  const targetSpeedup = speedupAt(TARGET_N, 'tfjs-cpu');
  if (targetSpeedup !== undefined) {
    targets.push({
      section: 'tick',
      target: `WASM tick at n = ${TARGET_N} >= ${SPEEDUP_TARGET}x faster than the TensorFlow.js-ops tick on tfjs' CPU backend`,
      measured: `${num(targetSpeedup)}x`,
      pass: targetSpeedup >= SPEEDUP_TARGET,
    });
  }

  printTable(
    `tick: predict + learn latency, tanh RNN, ${INPUTS} inputs, ${OUTPUTS} outputs, immediate credit (lambda 0), RMSprop`,
    ['n', 'variant', 'median us', 'p99 us', 'wasm speedup', 'ticks measured', 'target'],
    rows.map((r) => {
      const s = speedupAt(r.n, r.variant);
      const isTarget = r.n === TARGET_N && r.variant === 'tfjs-cpu' && s !== undefined;
      return [
        String(r.n), r.variant,
        r.median !== undefined ? num(r.median) : 'n/a',
        r.p99 !== undefined ? num(r.p99) : 'n/a',
        s !== undefined ? `${num(s)}x` : 'n/a',
        r.ticks !== undefined ? int(r.ticks) : '',
        isTarget ? `>= ${SPEEDUP_TARGET}x ${passFail(s >= SPEEDUP_TARGET)}` : (r.note ?? ''),
      ];
    }),
    [
      ...preNotes,
      'wasm = createLearner(spec, { backend: \'wasm\' }) (AssemblyScript SIMD kernels); js = { backend: \'js\' } (plain-TypeScript twin);',
      'tfjs-* = the same tick written with TensorFlow.js ops (forward, immediate gradients, RMSprop on tf variables, one tf.tidy).',
      'wasm speedup = this variant\'s median / the wasm median at the same n, measured in this run.',
      ...('error' in tfjs ? [tfjs.error] : tfjs.notes),
      quick
        ? 'QUICK mode: a handful of ticks per variant; the numbers are only indicative.'
        : 'Per variant: warm-up of up to 2,000 ticks (30 for the slow tfjs and js n = 1024 variants) or 1.5-2 s, then up to 20,000 ticks or 10 s wall time.',
    ],
    'rlrrrrl',
  );

  if (haveWasm) {
    const step = inStep(pool, quick ? 600 : IN_STEP_TICKS);
    const ratio = step.maxMs / step.medianMs;
    targets.push({
      section: 'tick',
      target: `${IN_STEP_LEARNERS} WASM learners in step: slowest tick within ${IN_STEP_TARGET}x the median tick`,
      measured: `${num(ratio)}x (${num(step.maxMs)} ms at tick ${step.slowestTick} vs ${num(step.medianMs)} ms)`,
      pass: ratio <= IN_STEP_TARGET,
    });
    printTable(
      `tick: ${IN_STEP_LEARNERS} learners in step (n = 64, wasm), time of each tick of all of them`,
      ['learners', 'ticks', 'median ms', 'p99 ms', 'max ms', 'slowest tick', 'max / median', `within ${IN_STEP_TARGET}x`],
      [[
        String(IN_STEP_LEARNERS), int(quick ? 600 : IN_STEP_TICKS), num(step.medianMs), num(step.p99Ms), num(step.maxMs),
        String(step.slowestTick), `${num(ratio)}x`, passFail(ratio <= IN_STEP_TARGET),
      ]],
      [
        'Streams fed at one rate tick in step, so a cost each learner pays at the same count of its own ticks stalls the',
        'service for all of them at once (before 2026-12-03: V8 compiled each instance\'s WASM export wrappers after 1,000',
        'calls, 70-110 ms at ticks 333 and 499; src/learners/kernels/wasm-kernels.ts). The first 50 ticks are left out.',
      ],
    );
  }

  if (haveWasm) {
    // The learners of a service with many streams, ticked in turn: in cache (8), out of it (1,000 on one thread),
    // and split over 2 threads at once (2 shards), which share the memory bandwidth. Issue 18's budget.
    const ticks = quick ? 20_000 : 200_000;
    const cached = roundRobinTicks(8, ticks);
    const outOfCache = roundRobinTicks(OUT_OF_CACHE_LEARNERS, ticks);
    const perThread = await startRoundRobinThreads(2, OUT_OF_CACHE_LEARNERS / 2, ticks);
    const mean = (perThread[0]! + perThread[1]!) / 2;
    const row = (learners: string, threads: number, us: number, perThreadUs: string) => [
      learners, String(threads), perThreadUs, num(us / cached) + 'x', int((threads * 1e6) / us),
    ];
    printTable(
      `tick: many learners ticked in turn (n = 64, ${INPUTS} inputs, ${OUTPUTS} outputs, wasm), in cache and out of it`,
      ['learners', 'threads', 'us per tick (each thread)', 'vs 8 learners', 'ticks/s in all'],
      [
        row('8', 1, cached, num(cached)),
        row(int(OUT_OF_CACHE_LEARNERS), 1, outOfCache, num(outOfCache)),
        row(`${int(OUT_OF_CACHE_LEARNERS / 2)} per thread`, 2, mean, perThread.map((u) => num(u)).join(' / ')),
      ],
      [
        `${int(ticks)} timed ticks per row and thread after every learner has ticked a few times; one learner's parameters and RMSprop`,
        `slots take ${num((workingSetBytes(64) / 1e3), 0)} kB, so ${int(OUT_OF_CACHE_LEARNERS)} take ${num(workingSetBytes(64) * OUT_OF_CACHE_LEARNERS / 1e6, 0)} MB ` +
          `(last-level cache: ${bw.llcBytes !== undefined ? `${bw.llcBytes / MiB} MiB` : 'unknown'}). The 2 threads are worker threads of this process started together,`,
        'as the 2 shards of `driftline run` are: what they reach in all is the ceiling of learning alone at 1,000 streams',
        '(docs/performance.md, the budget for 1,000 streams).',
      ],
      'lrrrr',
    );
  }

  // Roofline.
  const dram = best(bw.dram);
  const roofRows: string[][] = [];
  const cacheRows: string[][] = [];
  for (const n of HIDDEN_SIZES) {
    const P = paramCount(n);
    const B = tickBytes(n);
    const bound = (B / (dram.gbs * 1e9)) * 1e6;
    const w = wasmMedian(n);
    const ratio = w !== undefined ? w / bound : undefined;
    roofRows.push([
      String(n), int(P), int(B), num(bound), w !== undefined ? num(w) : 'n/a',
      ratio !== undefined ? num(ratio) : 'n/a',
      ratio !== undefined ? passFail(ratio <= ROOFLINE_TARGET) + (n === TARGET_N ? ' (target)' : '') : 'n/a',
    ]);
    if (n === TARGET_N && ratio !== undefined) {
      targets.push({
        section: 'tick',
        target: `WASM tick at n = ${TARGET_N} within ${ROOFLINE_TARGET}x of the roofline bound (bytes/tick / streaming ${dram.name} bandwidth)`,
        measured: `${num(ratio)}x (${num(w!)} us vs ${num(bound)} us)`,
        pass: ratio <= ROOFLINE_TARGET,
      });
    }
    const ws = bw.workingSet.get(n)!;
    const wsBest = best(ws);
    const wsBound = (B / (wsBest.gbs * 1e9)) * 1e6;
    cacheRows.push([
      String(n), `${(workingSetBytes(n) / 1e6).toFixed(2)} MB`, num(ws.copy), num(ws.read), num(ws.dot),
      num(wsBound), w !== undefined ? num(w) : 'n/a', w !== undefined ? num(w / wsBound) : 'n/a',
    ]);
  }
  const buf = `${bw.bufferBytes / MiB} MiB`;
  const llc = bw.llcBytes !== undefined ? `${bw.llcBytes / MiB} MiB` : 'unknown';
  printTable(
    'tick: roofline bound of the WASM tick (memory traffic / streaming bandwidth)',
    ['n', 'params P', 'bytes/tick', 'bound us', 'wasm median us', 'wasm / bound', `within ${ROOFLINE_TARGET}x`],
    roofRows,
    [
      TICK_BYTES_FORMULA,
      '  (forward reads W, U, b, V, c: 4P bytes; the fused immediate RMSprop step reads and writes each parameter and its',
      '   second-moment slot: 16P bytes; vectors: x twice, h_{t-1} twice, h_t 3n, V^T e 2n + V again o n, delta n, yhat/y/e 4o)',
      `streaming bandwidth, ${bw.backend} kernels over a ${2 * bw.bufferBytes / MiB} MiB createKernels arena (two ${buf} halves; ` +
        `last-level cache per sysfs ${llc}), best of ${bw.reps}:`,
      `  copy ${num(bw.dram.copy)} GB/s (k.copy half to half, bytes read + written); read ${num(bw.dram.read)} GB/s (k.allFinite ` +
        `over both halves); dot ${num(bw.dram.dot)} GB/s (k.dot of the halves; f64 accumulation, compute-bound)`,
      `bound us = bytes/tick / ${num(dram.gbs)} GB/s, the highest of the three (${dram.name}); wasm / bound is in this run.`,
      ...(quick ? ['QUICK mode: a small bandwidth buffer (it may sit in cache); the bound is only indicative.'] : []),
    ],
  );
  printTable(
    'tick: the same bound at cache-resident bandwidth (information, no target)',
    ['n', 'working set 8P', 'copy GB/s', 'read GB/s', 'dot GB/s', 'bound us', 'wasm median us', 'wasm / bound'],
    cacheRows,
    [
      'The tick\'s parameters and second moments (8P bytes) stay in cache between ticks when they fit, so a tighter ceiling',
      'is the bandwidth of the same probes repeated over a region of the working set\'s size (bound from the highest of them).',
    ],
  );
  return targets;
}
