import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { TopLevelSpec } from 'vega-lite';
import { PLOT_FONT, renderVegaLitePng } from '../report/plot.js';
import {
  COPY_METHOD_LABELS, COPY_METHODS, DEFAULT_COPY_SETTINGS, copyCodeHash, copyJobKey, scoredJobs, selectRates, selectionJobs, summarizeCopy,
  type CopyJob, type CopyMethod, type CopyMethodSummary, type CopyRunResult, type CopyTaskSettings,
} from '../reproduce/copy-task.js';
import type { CommandIO } from './reproduce.js';
import { integerFlag, ratesFlag } from './reproduce-flags.js';
import { SavedJobRunner } from './saved-job-runner.js';
import { formatTable } from './table.js';

export const copyTaskUsage = `usage: driftline reproduce copy-task [options]

The copy task (20 steps of 7 random bits, 7 blank steps, a marker, recall; T = 48) learned online one recall tick
at a time by the stacked LRU (H 64, N 64, 2 layers): credit modes online (the online LRU), truncated-1, spatial
and bptt (each label's full backpropagation through time: the reference). Each mode's Adam rate is chosen from
the same grid on selection seed 1001 (not scored); the scored seeds then run. Bit accuracy on 200 held-out
sequences every 2,000 sequences.

  --seeds N              scored seeds 1..N (default 3)
  --sequences N          training sequences per scored run (default 60000)
  --selection-sequences N  per selection run (default 60000: a shorter selection run favours fast rates)
  --rates LIST           the learning-rate grid (default 3e-5,1e-4,3e-4)
  --methods LIST         some of online,truncated-1,spatial,bptt (default all)
  --jobs N               runs in parallel, one worker thread each (default: the available cores)
  --quick                a smoke run, not the protocol: H 16, N 16, 1 layer, 1 seed, 300 sequences, rate 1e-3
  --fresh                run again even the runs whose results OUT/runs holds (by default they are reused when
                         the same code produced them)
  --no-plots             no PNG
  --out DIR              results.json, summary.md, copy-task-accuracy.png, runs/ (default out/copy-task)
  --quiet                no progress bar
`;

export class CopyTaskUsageError extends Error {
  override readonly name = 'UsageError';
}

export const QUICK_COPY_SETTINGS: CopyTaskSettings = {
  network: { hiddenSize: 16, units: 16, layers: 1, rMin: 0, rMax: 1 },
  seeds: [1],
  sequences: 300,
  evalEvery: 100,
  testSequences: 20,
  learningRates: [1e-3],
  selectionSeed: 1001,
  selectionSequences: 100,
  methods: COPY_METHODS,
};

export interface CopyTaskResults {
  readonly settings: CopyTaskSettings;
  readonly quick: boolean;
  readonly selection: readonly CopyRunResult[];
  readonly rates: Readonly<Record<CopyMethod, number>>;
  readonly scored: readonly CopyRunResult[];
  readonly summary: readonly CopyMethodSummary[];
  readonly files: readonly string[];
}

export async function reproduceCopyTaskCommand(args: string[], io: CommandIO): Promise<CopyTaskResults | undefined> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      options: {
        seeds: { type: 'string' },
        sequences: { type: 'string' },
        'selection-sequences': { type: 'string' },
        rates: { type: 'string' },
        methods: { type: 'string' },
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
    throw new CopyTaskUsageError(`${(err as Error).message}\n\n${copyTaskUsage}`);
  }
  const v = parsed.values;
  if (v.help) {
    io.stdout.write(copyTaskUsage);
    return undefined;
  }
  const base = v.quick ? QUICK_COPY_SETTINGS : DEFAULT_COPY_SETTINGS;
  const integer = (text: string | undefined, flag: string, min: number, max: number, fallback: number) =>
    integerFlag(text, flag, min, max, fallback, CopyTaskUsageError);
  const seedCount = integer(v.seeds, '--seeds', 1, 100, base.seeds.length);
  const sequences = integer(v.sequences, '--sequences', 1, 10_000_000, base.sequences);
  const selectionSequences = integer(v['selection-sequences'], '--selection-sequences', 1, 10_000_000, base.selectionSequences);
  const jobs = integer(v.jobs, '--jobs', 1, 64, availableParallelism());
  const learningRates = ratesFlag(v.rates, base.learningRates, CopyTaskUsageError);
  let methods = base.methods;
  if (v.methods !== undefined) {
    const named = v.methods.split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const m of named) {
      if (!(COPY_METHODS as readonly string[]).includes(m)) throw new CopyTaskUsageError(`--methods: unknown '${m}', expected some of ${COPY_METHODS.join(',')}`);
    }
    if (named.length === 0) throw new CopyTaskUsageError(`--methods needs at least one of ${COPY_METHODS.join(',')}`);
    methods = named as CopyMethod[];
  }
  const settings: CopyTaskSettings = {
    ...base,
    seeds: Array.from({ length: seedCount }, (_, i) => i + 1),
    sequences,
    evalEvery: Math.min(base.evalEvery, sequences),
    selectionSequences,
    learningRates,
    methods,
  };
  const outDir = v.out ?? join('out', v.quick ? 'copy-task-quick' : 'copy-task');
  mkdirSync(join(outDir, 'runs'), { recursive: true });
  const runner = new SavedJobRunner<CopyJob, CopyRunResult>({
    command: 'driftline reproduce copy-task',
    unit: 'sequences',
    fileKey: (job) => `${copyJobKey(job)}-${networkKey(job)}`,
    work: (job) => job.sequences,
    codeHash: copyCodeHash,
    workerUrl: new URL(`./copy-task-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
  }, outDir, jobs, v.fresh, v.quiet, io);

  const selection = await runner.run(selectionJobs(settings), 'selection runs');
  const rates = selectRates(settings, selection);
  const scored = await runner.run(scoredJobs(settings, rates), 'scored runs');
  const summary = summarizeCopy(settings, scored);

  const files: string[] = [];
  const resultsPath = join(outDir, 'results.json');
  writeFileSync(resultsPath, `${JSON.stringify({ settings, quick: v.quick, rates, selection, scored, summary }, null, 2)}\n`);
  files.push(resultsPath);
  const markdown = formatCopyTaskMarkdown(settings, v.quick, selection, summary);
  const summaryPath = join(outDir, 'summary.md');
  writeFileSync(summaryPath, markdown);
  files.push(summaryPath);
  if (!v['no-plots']) files.push((await renderVegaLitePng(accuracyChart(settings, summary), join(outDir, 'copy-task-accuracy.png'))).path);
  io.stdout.write(markdown);
  io.stdout.write(`wrote ${files.join(', ')}\n`);
  return { settings, quick: v.quick, selection, rates, scored, summary, files };
}

function networkKey(job: CopyJob): string {
  const n = job.network;
  return `H${n.hiddenSize}-N${n.units}-L${n.layers}-r${n.rMin}-${n.rMax}`;
}

const percent = (x: number) => `${(100 * x).toFixed(1)} %`;

export function formatCopyTaskMarkdown(
  settings: CopyTaskSettings,
  quick: boolean,
  selection: readonly CopyRunResult[],
  summary: readonly CopyMethodSummary[],
): string {
  const n = settings.network;
  const lines: string[] = [];
  lines.push(`# Copy task: online LRU against truncated, spatial and BPTT credit${quick ? ' (QUICK smoke run: not the protocol)' : ''}`);
  lines.push('');
  lines.push(`Task: 20 steps of 7 random bits, 7 blanks, a marker, recall (T = 48); loss: binary cross-entropy per bit at the ${20} recall ticks, an Adam step at each.`);
  lines.push(`Network: lru, H ${n.hiddenSize}, N ${n.units}, ${n.layers} layer${n.layers > 1 ? 's' : ''}, |lambda| in [${n.rMin}, ${n.rMax}]; a fresh recurrent state per sequence.`);
  lines.push(`Scored: seeds ${settings.seeds.join(', ')} (mean over ${settings.seeds.length}), ${settings.sequences.toLocaleString('en-US')} sequences each; bit accuracy on ${settings.testSequences} held-out sequences.`);
  lines.push(`Rates: each method's from {${settings.learningRates.join(', ')}}, the best held-out accuracy after ${settings.selectionSequences.toLocaleString('en-US')} sequences on selection seed ${settings.selectionSeed} (not scored).`);
  lines.push('');
  lines.push('## Rate selection (held-out bit accuracy at the end of each selection run)');
  lines.push('');
  lines.push(formatTable(
    ['method', ...settings.learningRates.map((r) => `rate ${r}`)],
    settings.methods.map((m) => [COPY_METHOD_LABELS[m], ...settings.learningRates.map((r) => {
      const run = selection.find((s) => s.job.method === m && s.job.learningRate === r);
      return run ? percent(run.finalAccuracy) : '-';
    })]),
  ));
  lines.push('');
  lines.push('## Scored runs (held-out bit accuracy at the end)');
  lines.push('');
  lines.push(formatTable(
    ['method', 'rate', ...settings.seeds.map((s) => `seed ${s}`), 'mean', 'sd', 'ms/sequence', 'state'],
    summary.map((s) => [
      COPY_METHOD_LABELS[s.method], String(s.learningRate), ...s.finalAccuracies.map(percent), percent(s.mean), percent(s.std),
      s.msPerSequence.toFixed(1), `${(s.stateBytes / 1024).toFixed(0)} KiB`,
    ]),
  ));
  lines.push('');
  const online = summary.find((s) => s.method === 'online');
  if (online) {
    lines.push(`Target: the online LRU at 99 % or more: ${online.mean >= 0.99 ? 'met' : 'not met'} (${percent(online.mean)}, mean over ${online.finalAccuracies.length} seed${online.finalAccuracies.length > 1 ? 's' : ''}).`);
    for (const other of summary.filter((s) => s.method === 'truncated-1' || s.method === 'spatial')) {
      lines.push(`${COPY_METHOD_LABELS[other.method]}: ${percent(other.mean)}, ${(100 * (online.mean - other.mean)).toFixed(1)} points below the online LRU.`);
    }
  }
  lines.push('');
  return `${lines.join('\n')}\n`;
}

/** Mean held-out accuracy per method against training sequences, with a band of one sd over the seeds. */
function accuracyChart(settings: CopyTaskSettings, summary: readonly CopyMethodSummary[]): TopLevelSpec {
  const values = summary.flatMap((s) => s.curve.map((p) => ({
    x: p.sequences, y: 100 * p.mean, lo: 100 * (p.mean - p.std), hi: 100 * (p.mean + p.std), series: COPY_METHOD_LABELS[s.method],
  })));
  const n = settings.network;
  const x = { field: 'x', type: 'quantitative', title: 'training sequences', axis: { format: '~s' } };
  const color = { field: 'series', type: 'nominal', title: 'credit', sort: settings.methods.map((m) => COPY_METHOD_LABELS[m]) };
  const y = { type: 'quantitative', title: 'held-out bit accuracy (%)', scale: { domain: [45, 100] } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Copy task: learning online, an update at every recall tick',
      subtitle: `lru H ${n.hiddenSize}, N ${n.units}, ${n.layers} layer${n.layers > 1 ? 's' : ''}; mean and sd over ${settings.seeds.length} seed${settings.seeds.length > 1 ? 's' : ''}; dashed: 99 %`,
    },
    width: 560,
    height: 320,
    data: { values },
    layer: [
      { mark: { type: 'errorband', opacity: 0.2 }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } },
      { mark: { type: 'line', strokeWidth: 2, clip: true }, encoding: { x, y: { ...y, field: 'y' }, color } },
      { data: { values: [{ y: 99 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#888' }, encoding: { y: { field: 'y', type: 'quantitative' } } },
    ],
    config: { font: PLOT_FONT },
  } as TopLevelSpec;
}
