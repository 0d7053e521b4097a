import { parseArgs } from 'node:util';
import { formatDuration, type ProgressStream } from '../report/progress.js';
import { formatTable } from './table.js';
import {
  describeProtocol, describeTask, formatRate, PROTOCOL_LABELS, runSineShift,
  type Protocol, type ProtocolResults, type RateSelection, type SineShiftResults, type SineShiftSettings, type Stat, type SummaryRow,
} from '../reproduce/sine-shift.js';
import type { ClaimVerdict } from '../reproduce/sine-shift-claims.js';
import type { BciResults } from '../reproduce/bci.js';
import type { DriftResults } from '../reproduce/drift.js';
import type { CopyTaskResults } from './reproduce-copy-task.js';
import type { FppResults } from './reproduce-fpp.js';

/**
 * `driftline reproduce <experiment> [options]`: re-runs a paper's experiment, prints its tables on stdout and
 * writes plots and results.json.
 *
 *   driftline reproduce sine-shift [--quick] [--seeds N] [--protocol fixed|selected|both] [--out DIR] [--quiet]
 *   driftline reproduce bci [--jango DIR] [--seeds N] [--protocols LIST] [--decoders LIST] [--quick] [--out DIR]
 *   driftline reproduce drift [--jango DIR] [--seeds N] [--quick] [--out DIR]
 *   driftline reproduce copy-task [--seeds N] [--sequences N] [--jobs N] [--quick] [--out DIR]
 *   driftline reproduce fpp [--seeds N] [--worlds LIST] [--jobs N] [--quick] [--out DIR]
 */
export interface CommandIO {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: ProgressStream;
}

export const experiments = ['sine-shift', 'bci', 'drift', 'copy-task', 'fpp'] as const;

const usage = `usage: driftline reproduce <experiment> [options]

experiments:
  sine-shift   "Temporal Credit Is Free": recovery after a sine frequency shift (lambda sweep, optimizer isolation)
  bci          decoders across a recording-session boundary (calibrate, late labels, intermittent, no labels);
               its own options: driftline reproduce bci --help
  drift        drift detectors (River defaults, calibrated) on the decoder's error and on its inputs across an
               undeclared session boundary: false alarms per 10 min and delay, beside a periodic alarm; the
               calibration checked on null streams; its own options: driftline reproduce drift --help
  copy-task    the online LRU (Zucchet et al. 2023) on the copy task against 1-step truncated, spatial-only and BPTT
               credit, learned one recall tick at a time; its own options: driftline reproduce copy-task --help
  fpp          Fixed Point Propagation (Nath & White 2019) against truncated BPTT and FPP without state updating on
               CycleWorld and StochasticWorld, online; its own options: driftline reproduce fpp --help

sine-shift options:
  --protocol P  selected: each configuration's rate chosen on the pre-shift phase only, on selection seeds
                1001, 1002 (not scored), from a grid per optimizer (rmsprop, adam: 1e-6 .. 3e-2; momentum:
                1e-5 .. 1e-1; sgd: 1e-4 .. 1); fixed: one untuned rate per optimizer (the first table); both (default)
  --quick       tiny preset (1 seed, 1500 ticks before and after the shift, n = 16; selection on 1 seed, 3 rates)
  --seeds N     number of scored seeds, 1..N (default 5)
  --out DIR     output directory for plots and results.json (default out/sine-shift)
  --quiet       no progress bar
  -h, --help    this text
`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export async function reproduceCommand(
  args: string[],
  io: CommandIO = { stdout: process.stdout, stderr: process.stderr },
): Promise<SineShiftResults | BciResults | DriftResults | CopyTaskResults | FppResults | undefined> {
  if (args[0] === 'bci') {
    const { reproduceBciCommand, BciUsageError } = await import('./reproduce-bci.js');
    try {
      return await reproduceBciCommand(args.slice(1), io);
    } catch (err) {
      if (err instanceof BciUsageError) throw new UsageError(err.message);
      throw err;
    }
  }
  if (args[0] === 'copy-task') {
    const { reproduceCopyTaskCommand, CopyTaskUsageError } = await import('./reproduce-copy-task.js');
    try {
      return await reproduceCopyTaskCommand(args.slice(1), io);
    } catch (err) {
      if (err instanceof CopyTaskUsageError) throw new UsageError(err.message);
      throw err;
    }
  }
  if (args[0] === 'fpp') {
    const { reproduceFppCommand, FppUsageError } = await import('./reproduce-fpp.js');
    try {
      return await reproduceFppCommand(args.slice(1), io);
    } catch (err) {
      if (err instanceof FppUsageError) throw new UsageError(err.message);
      throw err;
    }
  }
  if (args[0] === 'drift') {
    const { reproduceDriftCommand, DriftUsageError } = await import('./reproduce-drift.js');
    try {
      return await reproduceDriftCommand(args.slice(1), io);
    } catch (err) {
      if (err instanceof DriftUsageError) throw new UsageError(err.message);
      throw err;
    }
  }
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        quick: { type: 'boolean', default: false },
        seeds: { type: 'string' },
        protocol: { type: 'string', default: 'both' },
        out: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${usage}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(usage);
    return undefined;
  }
  const [experiment, ...extra] = positionals;
  if (experiment === undefined) throw new UsageError(`which experiment? expected one of: ${experiments.join(', ')}\n\n${usage}`);
  if (!(experiments as readonly string[]).includes(experiment)) {
    throw new UsageError(`unknown experiment '${experiment}': expected one of: ${experiments.join(', ')}\n\n${usage}`);
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument(s): ${extra.join(' ')}\n\n${usage}`);
  let seeds: number | undefined;
  if (values.seeds !== undefined) {
    seeds = Number(values.seeds);
    if (!Number.isInteger(seeds) || seeds < 1) throw new UsageError(`--seeds must be a positive integer, got '${values.seeds}'`);
  }

  const protocols = parseProtocol(values.protocol);
  const results = await runSineShift({
    quick: values.quick,
    seeds,
    protocols,
    outDir: values.out,
    quiet: values.quiet,
    progressStream: io.stderr,
  });
  io.stdout.write(formatSineShiftReport(results));
  return results;
}

/** `--protocol fixed|selected|both` as the protocols to run. */
export function parseProtocol(value: string | undefined): Protocol[] {
  switch (value ?? 'both') {
    case 'both':
      return ['selected', 'fixed'];
    case 'selected':
      return ['selected'];
    case 'fixed':
      return ['fixed'];
    default:
      throw new UsageError(`--protocol must be fixed, selected or both, got '${value}'`);
  }
}

const fmt = (v: number | null, digits = 1) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(digits));
const sci = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : v.toExponential(2));
/** A ratio to the persistence error: three decimals where they say something, else scientific. */
const rel = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : v >= 0.01 && v < 1000 ? v.toFixed(3) : v.toExponential(1));
const of = (k: number, r: SummaryRow) => `(${k}/${r.runs})`;

/** Why a mean over the fitted runs has no value: shown in its cell instead of a number. */
function emptyReason(r: SummaryRow): string {
  if (r.fitted === 0) return r.diverged === r.runs ? 'diverged' : 'did not fit';
  return 'nothing to recover';
}

/** Mean +- std over the fitted runs, with how many seeds it covers; "did not fit" when none did. */
function fitted(s: Stat, r: SummaryRow, digits = 1): string {
  if (s.mean === null) return `${emptyReason(r)} ${of(0, r)}`;
  return `${fmt(s.mean, digits)} +- ${fmt(s.std, digits)} ${of(s.n, r)}`;
}

function timeToRecovery(r: SummaryRow): string {
  if (r.recovery.n === 0) return `${emptyReason(r)} ${of(0, r)}`;
  if (r.timeToRecovery.mean === null) return `not recovered ${of(0, r)}`;
  return `${Math.round(r.timeToRecovery.mean)} ${of(r.timeToRecovery.n, r)}`;
}

const errorRatio = (s: Stat, persistence: number, r: SummaryRow) => (s.mean === null || !(persistence > 0) ? `- ${of(0, r)}` : `${rel(s.mean / persistence)} ${of(s.n, r)}`);

const MAIN_HEADERS = ['recovery %', 'residual', 'time to recovery', 'E_pre/persist', 'E_adapt/persist', 'E_frozen/persist'];

function mainCells(r: SummaryRow): string[] {
  return [
    fitted(r.recovery, r), fitted(r.residual, r, 2), timeToRecovery(r),
    errorRatio(r.ePre, r.persistencePre, r), errorRatio(r.eAdapt, r.persistencePost, r), errorRatio(r.eFrozen, r.persistencePost, r),
  ];
}

/** The seeds left out of each row's means, and why; a table's footnote. */
function leftOut(rows: readonly SummaryRow[], name: (r: SummaryRow) => string): string[] {
  const lines: string[] = [];
  for (const r of rows) {
    const parts: string[] = [];
    for (const reason of ['did not fit', 'diverged', 'nothing to recover'] as const) {
      const d = r.dropped.filter((x) => x.reason === reason);
      if (d.length === 0) continue;
      const seeds = `seed${d.length > 1 ? 's' : ''} ${d.map((x) => x.seed).join(', ')}`;
      if (reason === 'did not fit') parts.push(`${seeds} did not fit (E_pre ${d.map((x) => `${rel(x.ePreOverPersistence)}x`).join(', ')} the persistence error)`);
      else if (reason === 'diverged') parts.push(`${seeds} diverged`);
      else parts.push(`${seeds}: E_frozen <= E_pre, nothing to recover`);
    }
    if (r.notRecovered.length > 0) parts.push(`seed${r.notRecovered.length > 1 ? 's' : ''} ${r.notRecovered.join(', ')} never came within tolerance (left out of time to recovery only)`);
    if (parts.length > 0) lines.push(`    ${name(r)} (lr ${formatRate(r.lr)}): ${parts.join('; ')}`);
  }
  return lines.length > 0 ? ['  left out of the means:', ...lines] : ['  left out of the means: none (every run fitted and recovered)'];
}

function header(s: SineShiftSettings, protocol: Protocol): string[] {
  return [`  ${describeTask(s)}`, `  ${describeProtocol(s, protocol)}`];
}

function protocolTables(results: SineShiftResults, p: ProtocolResults): string[] {
  const s = results.settings;
  const out: string[] = [];
  if (p.lambdaSweep.length > 0) {
    const r0 = p.lambdaSweep[0];
    out.push(
      `(a) lambda sweep [${p.label}]: tanh-rnn (no output bypass), immediate derivatives with trace decay lambda, ${r0.optimizer}`,
      ...header(s, p.protocol),
      `  persistence baseline (predict x_t): MSE ${sci(r0.persistencePre)} before t0, ${sci(r0.persistencePost)} after`,
      '',
      formatTable(
        ['n', 'lambda', 'lr', 'fitted', ...MAIN_HEADERS],
        p.lambdaSweep.map((r) => [String(r.hiddenSize), String(r.lambda), formatRate(r.lr), `${r.fitted}/${r.runs}`, ...mainCells(r)]),
      ),
      ...leftOut(p.lambdaSweep, (r) => `n=${r.hiddenSize} lambda=${r.lambda}`),
      '',
    );
  }
  if (p.optimizerIsolation.length > 0) {
    const r0 = p.optimizerIsolation[0];
    out.push(
      `(b) optimizer isolation [${p.label}] at lambda = 0, n = ${r0.hiddenSize} (momentum decay 0.9, rmsprop decay 0.99, adam 0.9/0.999)`,
      ...header(s, p.protocol),
      `  bypass = the readout has an input-to-output bypass (hasDefaultOutputBypass); persistence baseline MSE ${sci(r0.persistencePre)} before t0, ${sci(r0.persistencePost)} after`,
      '',
      formatTable(
        ['cell', 'bypass', 'optimizer', 'lr', 'fitted', ...MAIN_HEADERS],
        p.optimizerIsolation.map((r) => [r.cell, r.outputBypass ? 'yes' : 'no', r.optimizer, formatRate(r.lr), `${r.fitted}/${r.runs}`, ...mainCells(r)]),
        ['left', 'left', 'left'],
      ),
      ...leftOut(p.optimizerIsolation, (r) => `${r.cell} + ${r.optimizer}`),
      '',
    );
  }
  return out;
}

/** Mean E_pre / persistence per candidate rate, the chosen one starred; one table per optimizer (the grids differ). */
function selectionTables(results: SineShiftResults): string[] {
  const s = results.settings;
  const out: string[] = [
    `rate selection [${PROTOCOL_LABELS.selected}]: mean E_pre / persistence error over the selection seeds, per candidate rate, from ${s.preTicks} pre-shift ticks alone`,
    `  * = chosen (lowest; ties to the smaller rate); div = a selection seed diverged (counts as infinite); "edge": the chosen rate is the grid's smallest or largest`,
    ...header(s, 'selected'),
    '',
  ];
  const groups = new Map<string, RateSelection[]>();
  for (const r of results.selection) {
    const key = `${r.experiment}|${r.optimizer}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  for (const rows of groups.values()) {
    const r0 = rows[0];
    const sweep = r0.experiment === 'lambda-sweep';
    out.push(`  ${sweep ? '(a) lambda sweep' : '(b) optimizer isolation'}, ${r0.optimizer}:`);
    out.push(
      formatTable(
        [...(sweep ? ['n', 'lambda'] : ['cell']), ...r0.grid.map((lr) => `lr ${formatRate(lr)}`), 'chosen', 'fits', 'edge'],
        rows.map((r) => [
          ...(sweep ? [String(r.hiddenSize), String(r.lambda)] : [r.cell]),
          ...r.candidates.map((c) => `${c.score === null ? 'div' : rel(c.score / r.persistencePre)}${c.lr === r.chosen ? '*' : ''}`),
          formatRate(r.chosen),
          r.fittedOnSelection ? 'yes' : 'NO',
          r.atGridEdge ?? '',
        ]),
      ).split('\n').map((l) => `  ${l}`).join('\n'),
      '',
    );
  }
  return out;
}

function claimsTables(results: SineShiftResults): string[] {
  const ps = results.protocols;
  if (ps.length === 0 || ps[0].claims.length === 0) return [];
  const fair = ps.find((p) => p.protocol === 'selected');
  const byId = (p: ProtocolResults, id: string) => p.claims.find((c) => c.id === id) as ClaimVerdict;
  const out: string[] = [
    `claims of "Temporal Credit Is Free" the sine-shift figures bear on${fair ? `; the verdict that answers the paper is the one under "${fair.label}"` : ' (only the fixed-rate protocol ran: no verdict under the fair protocol)'}`,
    `  ${describeTask(results.settings)}`,
    ...ps.map((p) => `  ${describeProtocol(results.settings, p.protocol)}`),
    '  a configuration counts when every scored seed fitted the sine before the shift and none diverged',
    '',
    formatTable(['claim', 'source', ...ps.map((p) => `verdict: ${p.label}`)], ps[0].claims.map((c) => [c.id, c.source, ...ps.map((p) => byId(p, c.id).verdict)]), ['left', 'left', 'left', 'left']),
    '',
  ];
  for (const c of ps[0].claims) {
    out.push(`[${c.id}] ${c.source}: "${c.claim}"`, `  criterion: ${c.criterion}`);
    for (const p of ps) {
      const v = byId(p, c.id);
      out.push(`  ${p.label}: ${v.verdict.toUpperCase()}: ${v.reason}`, `    measured: ${v.measured}`);
    }
    out.push('');
  }
  return out;
}

/** The tables of a sine-shift run as text. */
export function formatSineShiftReport(results: SineShiftResults): string {
  const s = results.settings;
  const out: string[] = [];
  out.push(
    `sine-shift: the sine frequency-shift experiment of "Temporal Credit Is Free"; backend ${results.backend}${s.quick ? '; QUICK preset' : ''}`,
    describeTask(s),
    'The paper gives no task constants; these are ours (src/reproduce/sine-shift.ts). Labels every tick, no delay, test-then-train.',
    `E_pre: MSE over the last ${s.window} ticks before t0; E_adapt, E_frozen: over the last ${s.window} ticks after it (frozen = fork at t0).`,
    'A run fitted when its E_pre is below the persistence error (predict x_t) over the same ticks; one that did not fit never learned the sine,',
    'so its recovery would divide by noise: it is left out of recovery, residual and time to recovery, listed under the table, and a row with no fitted run says "did not fit".',
    'recovery = (E_frozen - E_adapt) / (E_frozen - E_pre) in %, residual = E_adapt / E_pre: mean +- std over the fitted runs; (k/N): the mean covers k of the N scored seeds.',
    `time to recovery: ticks from t0 until the MSE over the last ${s.recoveryWindow} ticks <= (1 + ${s.tolerance}) E_pre, mean over the fitted runs that recovered.`,
    'X/persist: the mean MSE X (over every run that got that far, fitted or not) over the persistence error on the same ticks; below 1 beats it.',
    '',
  );
  for (const p of results.protocols) {
    out.push(`=== ${p.label} ===`, '');
    if (p.protocol === 'selected' && results.selection.length > 0) out.push(...selectionTables(results));
    out.push(...protocolTables(results, p));
  }
  out.push(...claimsTables(results));
  const runs = results.protocols.reduce((a, p) => a + p.trials.length, 0);
  const selectionRuns = results.selection.reduce((a, r) => a + r.grid.length * r.selectionSeeds.length, 0);
  out.push(`${runs} scored runs${selectionRuns > 0 ? ` and ${selectionRuns} pre-shift selection runs` : ''} in ${formatDuration(results.seconds)}`);
  if (results.files.length > 0) out.push(`wrote ${results.files.join(', ')}`);
  return `${out.join('\n')}\n`;
}
