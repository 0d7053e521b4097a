// Shared pieces of the benchmark sections: the benchmarked learner spec, seeded input pools, tick timing,
// percentiles, aligned text tables, byte formatting and machine facts.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { CreditSpec } from '../src/learners/credit/registry.js';
import type { LearnerSpec } from '../src/learners/learner.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';

/** The benchmarked shape: 96 inputs, 2 outputs, hidden sizes 64, 256, 1024. */
export const INPUTS = 96;
export const OUTPUTS = 2;
export const HIDDEN_SIZES = [64, 256, 1024] as const;
export const LEARNING_RATE = 1e-3;
export const RMS_DECAY = 0.99;
export const RMS_EPS = 1e-8;
export const IMMEDIATE: CreditSpec = { rule: 'immediate', lambda: 0 };
export const RTRL: CreditSpec = { rule: 'rtrl' };

export interface BenchOptions {
  /** Shrinks tick counts and buffers for a smoke test; the numbers are then only indicative. */
  readonly quick: boolean;
}

/** A result with a pass/fail target, gathered for the summary at the end of a run. */
export interface TargetResult {
  readonly section: string;
  readonly target: string;
  readonly measured: string;
  readonly pass: boolean;
}

export function tanhRnnSpec(hiddenSize: number, credit: CreditSpec = IMMEDIATE): LearnerSpec {
  return {
    cell: { kind: 'tanh-rnn', hiddenSize },
    credit,
    optimizer: rmsprop(LEARNING_RATE, RMS_DECAY, RMS_EPS),
    inputSize: INPUTS,
    outputSize: OUTPUTS,
    seed: 1,
    loss: 'mse',
  };
}

/** A fixed pool of seeded inputs and labels, cycled through by the tick loops so that they allocate nothing. */
export interface InputPool {
  readonly xs: readonly Float32Array[];
  readonly ys: readonly Float32Array[];
}

export function inputPool(size = 256, seed = 42): InputPool {
  const rng = new Random(seed);
  const xs: Float32Array[] = [];
  const ys: Float32Array[] = [];
  for (let i = 0; i < size; i++) {
    const x = new Float32Array(INPUTS);
    for (let j = 0; j < INPUTS; j++) x[j] = rng.normal();
    xs.push(x);
    ys.push(Float32Array.from([0.5 * Math.sin(x[0] + x[1]), 0.3 * x[2] - 0.2 * x[3]]));
  }
  return { xs, ys };
}

// ---- timing ---------------------------------------------------------------------------------------------

export interface TimingPlan {
  /** Warm-up stops after warmTicks or warmMs, whichever comes first, but never before minWarmTicks. */
  readonly warmTicks: number;
  readonly warmMs: number;
  readonly minWarmTicks: number;
  /** Measurement stops after maxTicks or capMs (wall time), whichever comes first, but never before minTicks. */
  readonly maxTicks: number;
  readonly capMs: number;
  readonly minTicks: number;
}

export interface Timing {
  /** Per-tick latencies in microseconds, in measurement order. */
  readonly samples: Float64Array;
  readonly warmTicks: number;
  readonly wallMs: number;
}

/** Runs tick(i) for warm-up, then times each call separately. The loop itself allocates nothing. */
export function timeTicks(tick: (i: number) => void, plan: TimingPlan): Timing {
  let i = 0;
  const warmStart = performance.now();
  while (i < plan.minWarmTicks || (i < plan.warmTicks && performance.now() - warmStart < plan.warmMs)) tick(i++);
  const warmTicks = i;
  const samples = new Float64Array(Math.max(plan.maxTicks, plan.minTicks));
  let count = 0;
  const start = performance.now();
  let now = start;
  while (count < plan.minTicks || (count < plan.maxTicks && now - start < plan.capMs)) {
    const t0 = performance.now();
    tick(i++);
    now = performance.now();
    samples[count++] = (now - t0) * 1000;
  }
  return { samples: samples.subarray(0, count), warmTicks, wallMs: now - start };
}

/** Nearest-rank percentile (q in [0, 1]) of unsorted samples. */
export function percentile(samples: Float64Array, q: number): number {
  const sorted = Float64Array.from(samples).sort();
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

export function median(samples: Float64Array): number {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

// ---- formatting -----------------------------------------------------------------------------------------

/** A number with `digits` significant-looking decimals: 3 figures below 10, fewer above. */
export function num(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (digits !== undefined) return x.toFixed(digits);
  const a = Math.abs(x);
  return a >= 1000 ? Math.round(x).toLocaleString('en-US') : a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export function int(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

/** Decimal units (1 MB = 10^6 bytes), as the paper's figures are given. */
export function bytes(x: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = x;
  let u = 0;
  while (Math.abs(v) >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

export function passFail(pass: boolean): string {
  return pass ? 'PASS' : 'FAIL';
}

/**
 * Prints an aligned text table: a title, a header, a rule, the rows, then notes. `align` has one letter per
 * column, 'l' or 'r' (default: first column left, the rest right).
 */
export function printTable(title: string, headers: string[], rows: string[][], notes: string[] = [], align?: string): void {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const al = (c: number) => align?.[c] ?? (c === 0 ? 'l' : 'r');
  const line = (cells: string[]) =>
    '  ' + cells.map((cell, c) => (al(c) === 'l' ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd();
  const out: string[] = ['', title, '='.repeat(title.length), line(headers), '  ' + widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows) out.push(line(headers.map((_, c) => r[c] ?? '')));
  for (const n of notes) out.push(`  ${n}`);
  process.stdout.write(out.join('\n') + '\n');
}

// ---- machine --------------------------------------------------------------------------------------------

export interface CacheLevel {
  readonly level: number;
  readonly type: string;
  readonly bytes: number;
}

/** CPU caches of cpu0 from sysfs (Linux); empty elsewhere. */
export function cpuCaches(): CacheLevel[] {
  const levels: CacheLevel[] = [];
  for (let i = 0; i < 8; i++) {
    const dir = `/sys/devices/system/cpu/cpu0/cache/index${i}`;
    try {
      const level = Number(readFileSync(`${dir}/level`, 'utf8').trim());
      const type = readFileSync(`${dir}/type`, 'utf8').trim();
      const size = readFileSync(`${dir}/size`, 'utf8').trim();
      const m = /^(\d+)([KMG]?)$/.exec(size);
      if (!m) continue;
      const mult = m[2] === 'K' ? 1024 : m[2] === 'M' ? 1024 ** 2 : m[2] === 'G' ? 1024 ** 3 : 1;
      levels.push({ level, type, bytes: Number(m[1]) * mult });
    } catch {
      break;
    }
  }
  return levels;
}

/** Bytes of the last-level cache, or undefined when the OS does not say. */
export function lastLevelCacheBytes(): number | undefined {
  const caches = cpuCaches().filter((c) => c.type !== 'Instruction');
  if (caches.length === 0) return undefined;
  return caches.reduce((a, b) => (b.level > a.level ? b : a)).bytes;
}

export function machineLines(): string[] {
  const cpus = os.cpus();
  const caches = cpuCaches()
    .filter((c) => c.type !== 'Instruction')
    .map((c) => `L${c.level} ${c.bytes >= 1024 ** 2 ? `${c.bytes / 1024 ** 2} MiB` : `${c.bytes / 1024} KiB`}`)
    .join(', ');
  return [
    `node ${process.version} (V8 ${process.versions.v8}), ${process.platform}/${process.arch}`,
    `cpu: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores (os.cpus()), ${os.availableParallelism()} available` +
      (caches ? `; caches per sysfs: ${caches}` : ''),
    `memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB total, ${(os.freemem() / 1024 ** 3).toFixed(1)} GiB free; ` +
      `load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  ];
}
