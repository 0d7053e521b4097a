import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { TopLevelSpec } from 'vega-lite';
import { PLOT_FONT, renderVegaLitePng } from '../report/plot.js';
import {
  DEFAULT_FPP_SETTINGS, FPP_HIDDEN, FPP_METHOD_LABELS, FPP_WORLD_LABELS, FPP_WORLDS, fppCodeHash, fppConfigKey, fppJobKey,
  fppReferences, fppScoredJobs, fppSelectionJobs, selectFppRates, summarizeFpp,
  type FppJob, type FppRunResult, type FppSettings, type FppSummary, type FppWorld,
} from '../reproduce/fpp.js';
import type { CommandIO } from './reproduce.js';
import { integerFlag, ratesFlag } from './reproduce-flags.js';
import { SavedJobRunner } from './saved-job-runner.js';
import { formatTable } from './table.js';

export const fppUsage = `usage: driftline reproduce fpp [options]

Fixed Point Propagation (Nath & White 2019) against truncated BPTT and FPP without state updating, learned online
one tick at a time (label delay 0) on 6-CycleWorld, 10-CycleWorld (tanh RNN, 4 units, 100,000 ticks) and
StochasticWorld (32 units, 200,000 ticks), with RMSprop and binary cross-entropy. T in {1, 3, 5, 10}; buffer
N 1000 with M = 1 and M = 4 updates per tick; FPP also with N 100 and 10000. Every configuration's rate is chosen
from the same grid on selection seed 1001 (never scored) by its mean online cross-entropy over the whole run; the
scored seeds then run. Reported over the last tenth of each run: online accuracy and cross-entropy, beside an
ideal predictor's and a memoryless one's.

  --seeds N        scored seeds 1..N (default 3)
  --worlds LIST    some of cycle6,cycle10,stochastic (default all)
  --rates LIST     the learning-rate grid (default 3e-5 to 0.1 in steps of ~3x)
  --jobs N         runs in parallel, one worker thread each (default: the available cores)
  --quick          a smoke run, not the protocol: 3,000 ticks, 1 seed, rate 0.01, T in {1, 3}, N 200, M 2
  --fresh          run again even the runs whose results OUT/runs holds (by default they are reused when the same
                   code produced them)
  --no-plots       no PNG
  --out DIR        results.json, summary.md, fpp-curves.png, fpp-updates.png, runs/ (default out/fpp)
  --quiet          no progress bar
`;

export class FppUsageError extends Error {
  override readonly name = 'UsageError';
}

export const QUICK_FPP_SETTINGS: FppSettings = {
  worlds: FPP_WORLDS,
  ticks: { cycle6: 3000, cycle10: 3000, stochastic: 3000 },
  seeds: [1],
  selectionSeed: 1001,
  learningRates: [0.01],
  windows: [1, 3],
  buffer: 200,
  otherBuffers: [100],
  moreUpdates: [2],
  curvePoints: 10,
};

export interface FppResults {
  readonly settings: FppSettings;
  readonly quick: boolean;
  readonly rates: Readonly<Record<string, number>>;
  readonly selection: readonly FppRunResult[];
  readonly scored: readonly FppRunResult[];
  readonly summary: readonly FppSummary[];
  readonly files: readonly string[];
}

export async function reproduceFppCommand(args: string[], io: CommandIO): Promise<FppResults | undefined> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      options: {
        seeds: { type: 'string' },
        worlds: { type: 'string' },
        rates: { type: 'string' },
        jobs: { type: 'string' },
        quick: { type: 'boolean', default: false },
        fresh: { type: 'boolean', default: false },
        'no-plots': { type: 'boolean', default: false },
        out: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new FppUsageError(`${(err as Error).message}\n\n${fppUsage}`);
  }
  const v = parsed.values;
  if (v.help) {
    io.stdout.write(fppUsage);
    return undefined;
  }
  const base = v.quick ? QUICK_FPP_SETTINGS : DEFAULT_FPP_SETTINGS;
  const seedCount = integerFlag(v.seeds, '--seeds', 1, 100, base.seeds.length, FppUsageError);
  const jobs = integerFlag(v.jobs, '--jobs', 1, 64, availableParallelism(), FppUsageError);
  const learningRates = ratesFlag(v.rates, base.learningRates, FppUsageError);
  let worlds = base.worlds;
  if (v.worlds !== undefined) {
    const named = v.worlds.split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const w of named) {
      if (!(FPP_WORLDS as readonly string[]).includes(w)) throw new FppUsageError(`--worlds: unknown '${w}', expected some of ${FPP_WORLDS.join(',')}`);
    }
    if (named.length === 0) throw new FppUsageError(`--worlds needs at least one of ${FPP_WORLDS.join(',')}`);
    worlds = named as FppWorld[];
  }
  const settings: FppSettings = { ...base, worlds, learningRates, seeds: Array.from({ length: seedCount }, (_, i) => i + 1) };
  const outDir = v.out ?? join('out', v.quick ? 'fpp-quick' : 'fpp');
  mkdirSync(join(outDir, 'runs'), { recursive: true });
  const runner = new SavedJobRunner<FppJob, FppRunResult>({
    command: 'driftline reproduce fpp',
    unit: 'ticks',
    fileKey: fppJobKey,
    work: (job) => job.ticks,
    codeHash: fppCodeHash,
    workerUrl: new URL(`./fpp-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
  }, outDir, jobs, v.fresh, v.quiet, io);

  const selection = await runner.run(fppSelectionJobs(settings), 'selection runs');
  const rateMap = selectFppRates(settings, selection);
  const scored = await runner.run(fppScoredJobs(settings, rateMap), 'scored runs');
  const summary = summarizeFpp(settings, scored);
  const rates = Object.fromEntries(rateMap);

  const files: string[] = [];
  const resultsPath = join(outDir, 'results.json');
  writeFileSync(resultsPath, `${JSON.stringify({ settings, quick: v.quick, codeHash: fppCodeHash(), rates, selection, scored, summary }, null, 2)}\n`);
  files.push(resultsPath);
  const markdown = formatFppMarkdown(settings, v.quick, summary);
  const summaryPath = join(outDir, 'summary.md');
  writeFileSync(summaryPath, markdown);
  files.push(summaryPath);
  if (!v['no-plots']) {
    files.push((await renderVegaLitePng(curvesChart(settings, summary, 'window'), join(outDir, 'fpp-curves.png'))).path);
    files.push((await renderVegaLitePng(curvesChart(settings, summary, 'updates'), join(outDir, 'fpp-updates.png'))).path);
  }
  io.stdout.write(markdown);
  io.stdout.write(`wrote ${files.join(', ')}\n`);
  return { settings, quick: v.quick, rates, selection, scored, summary, files };
}

/** The world's headline metric: accuracy on the cycles (the thesis' figure), cross-entropy on StochasticWorld. */
function metricOf(world: FppWorld): 'accuracy' | 'crossEntropy' {
  return world === 'stochastic' ? 'crossEntropy' : 'accuracy';
}

function formatMetric(world: FppWorld, value: number | null, std?: number): string {
  if (value === null) return '-';
  if (metricOf(world) === 'accuracy') return `${(100 * value).toFixed(1)} %${std === undefined ? '' : ` ± ${(100 * std).toFixed(1)}`}`;
  return `${value.toFixed(3)}${std === undefined ? '' : ` ± ${std.toFixed(3)}`}`;
}

function cell(s: FppSummary | undefined): string {
  if (s === undefined) return '-';
  const m = metricOf(s.world);
  return formatMetric(s.world, s[m].mean, s[m].std);
}

export function formatFppMarkdown(settings: FppSettings, quick: boolean, summary: readonly FppSummary[]): string {
  const lines: string[] = [];
  const worlds = settings.worlds;
  const find = (world: FppWorld, method: string, window: number, updates: number, buffer: number) =>
    summary.find((s) => s.world === world && s.method === method && s.window === window && s.updates === updates && s.buffer === buffer);
  const N = settings.buffer;
  const header = ['method', 'T', ...worlds.map((w) => `${FPP_WORLD_LABELS[w]} (${metricOf(w) === 'accuracy' ? 'accuracy' : 'cross-entropy'})`)];
  lines.push(`# Fixed Point Propagation against truncated BPTT${quick ? ' (QUICK smoke run: not the protocol)' : ''}`);
  lines.push('');
  lines.push(`Online, one tick at a time, label delay 0 (predict, then learn); tanh RNN with ${worlds.map((w) => `${FPP_HIDDEN[w]} units on ${FPP_WORLD_LABELS[w]} (${settings.ticks[w].toLocaleString('en-US')} ticks)`).join(', ')}; RMSprop; binary cross-entropy (nats).`);
  lines.push(`Scored: seeds ${settings.seeds.join(', ')} (mean ± sd over ${settings.seeds.length}), over the last tenth of each run. Rates: each configuration's from {${settings.learningRates.join(', ')}}, the lowest mean online cross-entropy over a whole run on selection seed ${settings.selectionSeed} (not scored).`);
  lines.push('');
  lines.push(`## FPP, FPP without state updating and T-BPTT (buffer N ${N}, M 1)`);
  lines.push('');
  const rows: string[][] = [];
  for (const method of ['fpp', 'fpp-no-state', 'tbptt'] as const) {
    for (const T of settings.windows) {
      rows.push([FPP_METHOD_LABELS[method], String(T), ...worlds.map((w) => cell(find(w, method, T, 1, method === 'tbptt' ? 0 : N)))]);
    }
  }
  for (const ref of fppReferences()) rows.push([ref.label, '', ...worlds.map((w) => formatMetric(w, ref[metricOf(w)][w]))]);
  lines.push(formatTable(header, rows));
  lines.push('');
  for (const updates of settings.moreUpdates) {
    lines.push(`## M = ${updates} updates per tick against M = 1 (buffer N ${N})`);
    lines.push('');
    const mRows: string[][] = [];
    for (const method of ['fpp', 'fpp-no-state'] as const) {
      for (const M of [1, updates]) {
        for (const T of settings.windows) {
          mRows.push([`${FPP_METHOD_LABELS[method]}, M ${M}`, String(T), ...worlds.map((w) => cell(find(w, method, T, M, N)))]);
        }
      }
    }
    lines.push(formatTable(header, mRows));
    lines.push('');
  }
  lines.push('## FPP: buffer size (M 1)');
  lines.push('');
  const buffers = [...settings.otherBuffers, N].sort((a, b) => a - b);
  lines.push(formatTable(
    ['world', 'T', ...buffers.map((b) => `N ${b}`)],
    worlds.flatMap((w) => settings.windows.map((T) => [FPP_WORLD_LABELS[w], String(T), ...buffers.map((b) => cell(find(w, 'fpp', T, 1, b)))])),
  ));
  lines.push('');
  lines.push("## The thesis' direction");
  lines.push('');
  lines.push('"Better" below means better by more than the larger of the two seed sds (and than 0.1 % of accuracy or 0.001 nats): a difference inside the spread over seeds counts as a tie.');
  lines.push('');
  for (const w of worlds) {
    const m = metricOf(w);
    const sign = m === 'accuracy' ? 1 : -1;
    /** a clearly better than b. */
    const better = (a: FppSummary | undefined, b: FppSummary | undefined) =>
      a !== undefined && b !== undefined && sign * (a[m].mean - b[m].mean) > Math.max(a[m].std, b[m].std, 0.001);
    const list = (ts: readonly number[]) => (ts.length > 0 ? ts.join(', ') : 'none');
    const Tmax = Math.max(...settings.windows);
    const bptt = find(w, 'tbptt', Tmax, 1, 0);
    const fppBetter = settings.windows.filter((T) => better(find(w, 'fpp', T, 1, N), find(w, 'tbptt', T, 1, 0)));
    const bpttBetter = settings.windows.filter((T) => better(find(w, 'tbptt', T, 1, 0), find(w, 'fpp', T, 1, N)));
    const matches = settings.windows.find((T) => find(w, 'fpp', T, 1, N) !== undefined && !better(bptt, find(w, 'fpp', T, 1, N)));
    lines.push(`- ${FPP_WORLD_LABELS[w]}: FPP better than T-BPTT at the same T: ${list(fppBetter)}; T-BPTT better: ${list(bpttBetter)}; ` +
      `the smallest T at which FPP is not worse than ${Tmax}-BPTT (${formatMetric(w, bptt?.[m].mean ?? null)}): ${matches ?? `none up to ${Tmax}`}.`);
    for (const updates of settings.moreUpdates) {
      const helps = settings.windows.filter((T) => better(find(w, 'fpp', T, updates, N), find(w, 'fpp', T, 1, N)));
      const hurts = settings.windows.filter((T) => better(find(w, 'fpp', T, 1, N), find(w, 'fpp', T, updates, N)));
      lines.push(`  FPP with M = ${updates} better than M = 1 at T: ${list(helps)}; worse at T: ${list(hurts)} (of ${settings.windows.join(', ')}).`);
    }
    const states = settings.windows.filter((T) => better(find(w, 'fpp', T, 1, N), find(w, 'fpp-no-state', T, 1, N)));
    const noStates = settings.windows.filter((T) => better(find(w, 'fpp-no-state', T, 1, N), find(w, 'fpp', T, 1, N)));
    lines.push(`  Updating the stored states (M = 1) better at T: ${list(states)}; worse at T: ${list(noStates)}.`);
  }
  lines.push('');
  lines.push('## Chosen rates and cost');
  lines.push('');
  lines.push(formatTable(
    ['configuration', 'rate', 'us/tick', 'state', 'skipped updates'],
    summary.map((s) => [fppConfigKey(s), String(s.learningRate), s.usPerTick.toFixed(1), `${(s.stateBytes / 1024).toFixed(1)} KiB`, String(s.skippedNonFinite)]),
  ));
  lines.push('');
  lines.push('us/tick was measured with runs sharing the cores: compare it between rows, not with `npm run bench -- fpp`.');
  lines.push('');
  return `${lines.join('\n')}\n`;
}

/**
 * Learning curves faceted by world: by = 'window', FPP (solid) against T-BPTT (dashed) for each T (M 1); by =
 * 'updates', FPP and FPP without state updating at M 1 (dashed) and the largest M (solid), T = the largest window.
 */
function curvesChart(settings: FppSettings, summary: readonly FppSummary[], by: 'window' | 'updates'): TopLevelSpec {
  const N = settings.buffer;
  const moreM = Math.max(1, ...settings.moreUpdates);
  const Tmax = Math.max(...settings.windows);
  const chosen = summary.filter((s) => by === 'window'
    ? s.updates === 1 && (s.method === 'tbptt' || (s.method === 'fpp' && s.buffer === N))
    : s.method !== 'tbptt' && s.window === Tmax && s.buffer === N && (s.updates === 1 || s.updates === moreM));
  const values = chosen.flatMap((s) => s.curve.map((p) => ({
    world: FPP_WORLD_LABELS[s.world],
    x: p.tick,
    y: metricOf(s.world) === 'accuracy' ? 100 * p.accuracy : p.crossEntropy,
    series: by === 'window' ? `T = ${s.window}` : FPP_METHOD_LABELS[s.method],
    dash: by === 'window' ? FPP_METHOD_LABELS[s.method] : `M = ${s.updates}`,
  })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: by === 'window' ? 'FPP (solid) against T-BPTT (dashed), online' : `FPP with M = ${moreM} updates per tick (solid) against M = 1 (dashed), T = ${Tmax}`,
      subtitle: `accuracy (%) on the cycles, cross-entropy (nats) on StochasticWorld; buffer N ${N}; mean over ${settings.seeds.length} seed${settings.seeds.length > 1 ? 's' : ''} per curve point`,
    },
    data: { values },
    facet: { column: { field: 'world', type: 'nominal', title: null, sort: settings.worlds.map((w) => FPP_WORLD_LABELS[w]) } },
    spec: {
      width: 260,
      height: 220,
      mark: { type: 'line', strokeWidth: 1.8 },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: 'tick', axis: { format: '~s' } },
        y: { field: 'y', type: 'quantitative', title: null, scale: { zero: false } },
        color: {
          field: 'series', type: 'nominal', title: by === 'window' ? 'window' : 'method',
          sort: by === 'window' ? settings.windows.map((T) => `T = ${T}`) : [FPP_METHOD_LABELS.fpp, FPP_METHOD_LABELS['fpp-no-state']],
        },
        strokeDash: {
          field: 'dash', type: 'nominal', title: null,
          scale: by === 'window'
            ? { domain: [FPP_METHOD_LABELS.fpp, FPP_METHOD_LABELS.tbptt], range: [[1, 0], [5, 3]] }
            : { domain: [`M = ${moreM}`, 'M = 1'], range: [[1, 0], [5, 3]] },
        },
      },
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
    config: { font: PLOT_FONT, legend: { labelLimit: 320 } },
  } as TopLevelSpec;
}
