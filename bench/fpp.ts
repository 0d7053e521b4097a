// Section `fpp`: the per-tick cost (predict + learn, labels on time) of the two buffer-based credit rules, truncated
// BPTT (window T, a sweep every k labels) and Fixed Point Propagation (M sampled updates of T steps per label, a
// buffer of N = 1000 transitions), as a function of T, k and M, against immediate derivatives (lambda 0) on the same
// tanh RNN; and their stateBytes. Each rule's timing is paired with one of immediate's taken just before it, over
// several interleaved rounds, so the ratios are taken within this run (the machine is shared) and a slow drift in
// the machine's speed largely cancels.
import type { CreditSpec } from '../src/learners/credit/registry.js';
import { createLearner, type Learner, type LearnerSpec } from '../src/learners/learner.js';
import {
  IMMEDIATE, OUTPUTS, bytes, inputPool, median, num, printTable, tanhRnnSpec, timeTicks, type BenchOptions,
  type TargetResult, type TimingPlan,
} from './common.js';

/** The shape of issue 21's runs: a small tanh RNN, 8 inputs, 2 outputs (mse, RMSprop as every section). */
const FPP_INPUTS = 8;
const FPP_HIDDEN_SIZES = [32, 64] as const;
const FPP_BUFFER = 1000;

interface Variant {
  readonly label: string;
  readonly credit: CreditSpec;
}

const VARIANTS: readonly Variant[] = [
  ...[1, 3, 5, 10].map((T) => ({ label: `tbptt T ${T}`, credit: { rule: 'tbptt', window: T } as CreditSpec })),
  { label: 'tbptt T 10, every 10', credit: { rule: 'tbptt', window: 10, every: 10 } },
  ...[1, 3, 5, 10].flatMap((T) => [1, 4].map((M) => ({
    label: `fpp T ${T}, M ${M}`,
    credit: { rule: 'fpp', window: T, updates: M, buffer: FPP_BUFFER } as CreditSpec,
  }))),
  {
    label: 'fpp T 5, M 1, no state updates',
    credit: { rule: 'fpp', window: 5, updates: 1, buffer: FPP_BUFFER, updateStates: false },
  },
];

function fppSpec(hiddenSize: number, credit: CreditSpec): LearnerSpec {
  return { ...tanhRnnSpec(hiddenSize, credit), inputSize: FPP_INPUTS };
}

/** Rounds of (immediate, variant) pairs; each learner warms once, before its first timing. */
function rounds(quick: boolean): number {
  return quick ? 2 : 5;
}

function plan(quick: boolean, warm: boolean): TimingPlan {
  // At least T + 2 ticks of warm-up, so that every rule's window (and fpp's first sample) is in reach when timed.
  const w = !warm ? { warmTicks: 0, warmMs: 0, minWarmTicks: 0 }
    : quick ? { warmTicks: 50, warmMs: 100, minWarmTicks: 12 }
    : { warmTicks: 2000, warmMs: 500, minWarmTicks: 12 };
  return quick
    ? { ...w, maxTicks: 300, capMs: 60, minTicks: 3 }
    : { ...w, maxTicks: 20000, capMs: 300, minTicks: 10 };
}

/** A learner and its own tick counter, so that successive timings continue its stream. */
class Ticker {
  readonly learner: Learner;
  private t = 0;
  private warmed = false;

  constructor(
    private readonly spec: LearnerSpec,
    private readonly xs: readonly Float32Array[],
    private readonly ys: readonly Float32Array[],
  ) {
    this.learner = createLearner(spec);
  }

  /** Median us of predict + learn over one timing (with the warm-up the first time). */
  time(quick: boolean): number {
    const { learner, xs, ys } = this;
    const mask = xs.length - 1;
    const timing = timeTicks(() => {
      const i = this.t++ & mask;
      learner.predict(xs[i]);
      learner.learn(ys[i]);
    }, plan(quick, !this.warmed));
    this.warmed = true;
    if (learner.stats.skippedNonFinite > 0) throw new Error(`${JSON.stringify(this.spec)}: non-finite updates`);
    return median(timing.samples);
  }
}

interface Measured {
  readonly us: number;
  /** Per-round ratios to the immediate timing just before (none for immediate itself). */
  readonly ratios: Float64Array;
  readonly stateBytes: number;
}

/** All variants at one hidden size: `rounds` rounds, each timing immediate then the variant, variant by variant. */
function measureSize(n: number, quick: boolean): { immediate: Measured; variants: Measured[] } {
  const pool = inputPool();
  const xs = pool.xs.map((x) => x.subarray(0, FPP_INPUTS));
  const ys = pool.ys;
  const immediate = new Ticker(fppSpec(n, IMMEDIATE), xs, ys);
  const tickers = VARIANTS.map((v) => new Ticker(fppSpec(n, v.credit), xs, ys));
  const R = rounds(quick);
  const immUs: number[] = [];
  const us = tickers.map(() => new Float64Array(R));
  const ratios = tickers.map(() => new Float64Array(R));
  for (let r = 0; r < R; r++) {
    // Each round starts at another variant, so that no variant always runs at the same point of a round.
    for (let j = 0; j < tickers.length; j++) {
      const v = (j + r * 3) % tickers.length;
      const base = immediate.time(quick);
      const t = tickers[v].time(quick);
      immUs.push(base);
      us[v][r] = t;
      ratios[v][r] = t / base;
    }
  }
  return {
    immediate: {
      us: median(Float64Array.from(immUs)), ratios: new Float64Array(0), stateBytes: immediate.learner.stateBytes,
    },
    variants: tickers.map((tk, v) => ({ us: median(us[v]), ratios: ratios[v], stateBytes: tk.learner.stateBytes })),
  };
}

function range(ratios: Float64Array): string {
  if (ratios.length < 2) return '-';
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of ratios) {
    lo = Math.min(lo, r);
    hi = Math.max(hi, r);
  }
  return `${num(lo)}-${num(hi)}`;
}

export function runFpp(options: BenchOptions): TargetResult[] {
  const quick = options.quick;
  const sizes = FPP_HIDDEN_SIZES.map((n) => ({ n, ...measureSize(n, quick) }));
  const cells = (m: Measured, base: Measured) => [
    num(m.us), `${num(m === base ? 1 : median(m.ratios))}x`, m === base ? '-' : range(m.ratios), bytes(m.stateBytes),
    `${num(m.stateBytes / base.stateBytes)}x`,
  ];
  const rows: string[][] = [
    ['immediate (lambda 0)', ...sizes.flatMap((s) => cells(s.immediate, s.immediate))],
    ...VARIANTS.map((v, i) => [v.label, ...sizes.flatMap((s) => cells(s.variants[i], s.immediate))]),
  ];
  const R = rounds(quick);
  printTable(
    `fpp: tbptt and fpp per tick against immediate derivatives, tanh RNN, ${FPP_INPUTS} inputs, ${OUTPUTS} outputs, ` +
      `n ${FPP_HIDDEN_SIZES.join(' and ')}`,
    ['credit', ...FPP_HIDDEN_SIZES.flatMap((n) => [`n ${n} us/tick`, 'time', 'rounds', 'stateBytes', 'state'])],
    rows,
    [
      'Per tick: predict + learn with its label on time, median; mse, RMSprop, label window 32; fpp buffer N = 1000.',
      `time = median over ${R} round(s) of (the rule's median / immediate's median timed just before it, same n);`,
      'rounds = the range of that ratio over the rounds.',
      'us/tick: the median over the rounds (immediate: over all its timings). state = stateBytes / immediate\'s.',
      'tbptt: T backward steps per label (k = 1), or one T-step sweep per k labels;',
      'fpp: M updates of T forward + T backward steps per label; its buffer holds N (stateSize + inputs + outputs + 1) floats.',
      quick
        ? 'QUICK mode: two rounds of a few hundred ticks per learner; the numbers are only indicative.'
        : 'Per learner: warm-up of up to 2,000 ticks or 0.5 s before its first timing; each timing up to 20,000 ticks or 0.3 s.',
    ],
    'l' + 'rrrrr'.repeat(FPP_HIDDEN_SIZES.length),
  );
  return [];
}
