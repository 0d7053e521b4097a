// Section `lru`: the online LRU's per-tick cost (predict + learn) and persistent state against the tanh RNN with
// immediate derivatives at (nearly) equal parameter count, same inputs, outputs, optimizer and kernels; and the
// online LRU's four credit modes at one shape. Ratios are taken within this run (the machine is shared).
import type { OnlineLruMode } from '../src/learners/credit/online-lru.js';
import type { CreditSpec } from '../src/learners/credit/registry.js';
import { createLearner, type LearnerSpec } from '../src/learners/learner.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import {
  INPUTS, LEARNING_RATE, OUTPUTS, RMS_DECAY, RMS_EPS, bytes, inputPool, int, median, num, printTable, tanhRnnSpec,
  timeTicks, type BenchOptions, type InputPool, type TargetResult, type TimingPlan,
} from './common.js';

interface LruShape {
  readonly hiddenSize: number;
  readonly units: number;
  readonly layers: number;
}

/** Small, the one the copy task uses, and the paper's copy-task network (H 128, N 64, 4 layers). */
const SHAPES: readonly LruShape[] = [
  { hiddenSize: 32, units: 32, layers: 2 },
  { hiddenSize: 64, units: 64, layers: 2 },
  { hiddenSize: 128, units: 64, layers: 4 },
];

function lruSpec(shape: LruShape, mode: OnlineLruMode = 'online'): LearnerSpec {
  return {
    cell: { kind: 'lru', ...shape },
    credit: { rule: 'online-lru', mode } satisfies CreditSpec,
    optimizer: rmsprop(LEARNING_RATE, RMS_DECAY, RMS_EPS),
    inputSize: INPUTS,
    outputSize: OUTPUTS,
    seed: 1,
    loss: 'mse',
  };
}

/** The tanh RNN's hidden size whose parameter count (n^2 + (INPUTS + 1) n + readout) is closest to `params`. */
function tanhSizeFor(params: number): number {
  let best = 1;
  for (let n = 1; n < 4096; n++) {
    const count = (size: number) => size * size + (INPUTS + 1) * size + OUTPUTS * size + OUTPUTS;
    if (Math.abs(count(n) - params) < Math.abs(count(best) - params)) best = n;
    if (count(n) > params) break;
  }
  return best;
}

function plan(quick: boolean): TimingPlan {
  return quick
    ? { warmTicks: 50, warmMs: 200, minWarmTicks: 2, maxTicks: 300, capMs: 300, minTicks: 3 }
    : { warmTicks: 2000, warmMs: 1500, minWarmTicks: 3, maxTicks: 20000, capMs: 5000, minTicks: 10 };
}

interface Measured {
  readonly params: number;
  readonly stateBytes: number;
  readonly medianUs: number;
}

function measure(spec: LearnerSpec, pool: InputPool, quick: boolean): Measured {
  const learner = createLearner(spec);
  const mask = pool.xs.length - 1;
  const timing = timeTicks((i) => {
    learner.predict(pool.xs[i & mask]);
    learner.learn(pool.ys[i & mask]);
  }, plan(quick));
  if (learner.stats.skippedNonFinite > 0) throw new Error(`${JSON.stringify(spec)}: non-finite updates`);
  return { params: learner.paramCount, stateBytes: learner.stateBytes, medianUs: median(timing.samples) };
}

export function runLru(options: BenchOptions): TargetResult[] {
  const pool = inputPool();
  const rows: string[][] = [];
  for (const shape of SHAPES) {
    const lru = measure(lruSpec(shape), pool, options.quick);
    const n = tanhSizeFor(lru.params);
    const tanh = measure(tanhRnnSpec(n), pool, options.quick);
    rows.push([
      `H ${shape.hiddenSize}, N ${shape.units}, L ${shape.layers}`, int(lru.params), num(lru.medianUs), bytes(lru.stateBytes),
      `n ${n}`, int(tanh.params), num(tanh.medianUs), bytes(tanh.stateBytes),
      `${num(lru.medianUs / tanh.medianUs)}x`, `${num(lru.stateBytes / tanh.stateBytes)}x`,
    ]);
  }
  printTable(
    'lru: online LRU against the tanh RNN (immediate, lambda 0) at equal parameter count',
    ['online LRU', 'params', 'us/tick', 'stateBytes', 'tanh RNN', 'params', 'us/tick', 'stateBytes', 'time ratio', 'state ratio'],
    rows,
    [
      `${INPUTS} inputs, ${OUTPUTS} outputs, RMSprop, label window 32, median of predict + learn per tick.`,
      'stateBytes: everything a snapshot carries (parameters, optimizer slots, recurrent state, traces, label ring).',
      'The LRU keeps 4N + 2NH trace floats per layer; its state does not grow with sequence length.',
    ],
  );

  const shape = SHAPES[1];
  const modeRows: string[][] = [];
  let online = 0;
  for (const mode of ['online', 'truncated-1', 'spatial', 'bptt'] as const) {
    const m = measure(lruSpec(shape, mode), pool, options.quick);
    if (mode === 'online') online = m.medianUs;
    modeRows.push([mode, num(m.medianUs), `${num(m.medianUs / online)}x`, bytes(m.stateBytes)]);
  }
  printTable(
    `lru: credit modes at H ${shape.hiddenSize}, N ${shape.units}, L ${shape.layers}`,
    ['mode', 'us/tick', 'vs online', 'stateBytes'],
    modeRows,
    ['bptt backpropagates every label through its window: here the whole label ring (32 ticks), as no sequence resets it.'],
  );
  return [];
}
