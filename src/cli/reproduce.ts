import { parseArgs } from 'node:util';
import { formatDuration, type ProgressStream } from '../report/progress.js';
import { formatTable } from './table.js';
import { runSineShift, type SineShiftResults, type Stat, type SummaryRow } from '../reproduce/sine-shift.js';
import type { BciResults } from '../reproduce/bci.js';

/**
 * `driftline reproduce <experiment> [options]`: re-runs a paper's experiment, prints its tables on stdout and
 * writes plots and results.json.
 *
 *   driftline reproduce sine-shift [--quick] [--seeds N] [--out DIR] [--quiet]
 *   driftline reproduce bci [--jango DIR] [--seeds N] [--protocols LIST] [--decoders LIST] [--quick] [--out DIR]
 */
export interface CommandIO {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: ProgressStream;
}

export const experiments = ['sine-shift', 'bci'] as const;

const usage = `usage: driftline reproduce <experiment> [options]

experiments:
  sine-shift   "Temporal Credit Is Free": recovery after a sine frequency shift (lambda sweep, optimizer isolation)
  bci          decoders across a recording-session boundary (calibrate, late labels, intermittent, no labels);
               its own options: driftline reproduce bci --help

options:
  --quick      tiny preset (1 seed, 1500 ticks before and after the shift, n = 16)
  --seeds N    number of seeds (default 5)
  --out DIR    output directory for plots and results.json (default out/sine-shift)
  --quiet      no progress bar
  -h, --help   this text
`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export async function reproduceCommand(
  args: string[],
  io: CommandIO = { stdout: process.stdout, stderr: process.stderr },
): Promise<SineShiftResults | BciResults | undefined> {
  if (args[0] === 'bci') {
    const { reproduceBciCommand, BciUsageError } = await import('./reproduce-bci.js');
    try {
      return await reproduceBciCommand(args.slice(1), io);
    } catch (err) {
      if (err instanceof BciUsageError) throw new UsageError(err.message);
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

  const results = await runSineShift({
    quick: values.quick,
    seeds,
    outDir: values.out,
    quiet: values.quiet,
    progressStream: io.stderr,
  });
  io.stdout.write(formatSineShiftReport(results));
  return results;
}

const fmt = (v: number | null, digits = 1) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(digits));
const sci = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : v.toExponential(2));
const pm = (s: Stat, digits = 1) => (s.mean === null ? '-' : `${fmt(s.mean, digits)} +- ${fmt(s.std, digits)}`);
const ratio = (a: number | null, b: number) => (a === null || !Number.isFinite(a) || !(b > 0) ? '-' : (a / b).toFixed(3));
const ttr = (r: SummaryRow) => `${r.timeToRecovery.mean === null ? '-' : Math.round(r.timeToRecovery.mean)} (${r.recovered}/${r.runs})`;

/** The tables of a sine-shift run as text. */
export function formatSineShiftReport(results: SineShiftResults): string {
  const s = results.settings;
  const out: string[] = [];
  out.push(
    `sine-shift: period ${s.periodBefore} -> ${s.periodAfter} ticks at t0 = ${results.t0} (amplitude ${s.amplitude}), ${s.postTicks} ticks after; ` +
      `labels every tick, no delay, test-then-train; ${s.seeds.length} seed(s); backend ${results.backend}${s.quick ? '; QUICK preset' : ''}`,
    `E_pre: MSE over the last ${s.window} ticks before t0; E_adapt, E_frozen: over the last ${s.window} ticks after it (frozen = fork at t0).`,
    `recovery = (E_frozen - E_adapt) / (E_frozen - E_pre) in %, mean +- std over seeds; residual = E_adapt / E_pre;`,
    `time to recovery: ticks from t0 until the MSE over the last ${s.recoveryWindow} ticks <= (1 + ${s.tolerance}) E_pre, mean over the runs that recovered (recovered/runs).`,
    `X/persist: the mean MSE X over the mean MSE of the persistence baseline (predict x_t) on the same ticks; below 1 beats it.`,
    '',
  );
  if (results.lambdaSweep.length > 0) {
    const r0 = results.lambdaSweep[0];
    out.push(
      `(a) lambda sweep: tanh-rnn (no output bypass), immediate derivatives with trace decay lambda, ${r0.optimizer} lr ${r0.lr} for every lambda`,
      `    persistence baseline (predict x_t): MSE ${sci(r0.persistencePre)} before t0, ${sci(r0.persistencePost)} after`,
      '',
      formatTable(
        ['n', 'lambda', 'recovery %', 'residual', 'time to recovery', 'E_pre', 'E_pre/persist', 'E_adapt', 'E_adapt/persist', 'E_frozen', 'diverged'],
        results.lambdaSweep.map((r) => [
          String(r.hiddenSize), String(r.lambda), pm(r.recovery), pm(r.residual, 2), ttr(r),
          sci(r.ePre.mean), ratio(r.ePre.mean, r.persistencePre), sci(r.eAdapt.mean), ratio(r.eAdapt.mean, r.persistencePost),
          sci(r.eFrozen.mean), String(r.diverged),
        ]),
      ),
      '',
    );
  }
  if (results.optimizerIsolation.length > 0) {
    const r0 = results.optimizerIsolation[0];
    const lrs = [...new Map(results.optimizerIsolation.map((r) => [r.optimizer, r.lr])).entries()].map(([o, lr]) => `${o} ${lr}`).join(', ');
    out.push(
      `(b) optimizer isolation at lambda = 0, n = ${r0.hiddenSize}; one lr per optimizer, not tuned per cell: ${lrs} (momentum decay 0.9, rmsprop decay 0.99, adam 0.9/0.999)`,
      `    bypass = the readout has an input-to-output bypass (hasDefaultOutputBypass); persistence baseline MSE ${sci(r0.persistencePre)} before t0, ${sci(r0.persistencePost)} after`,
      '',
      formatTable(
        ['cell', 'bypass', 'optimizer', 'recovery %', 'residual', 'time to recovery', 'E_pre', 'E_pre/persist', 'E_adapt', 'E_adapt/persist', 'E_frozen', 'diverged'],
        results.optimizerIsolation.map((r) => [
          r.cell, r.outputBypass ? 'yes' : 'no', r.optimizer, pm(r.recovery), pm(r.residual, 2), ttr(r),
          sci(r.ePre.mean), ratio(r.ePre.mean, r.persistencePre), sci(r.eAdapt.mean), ratio(r.eAdapt.mean, r.persistencePost),
          sci(r.eFrozen.mean), String(r.diverged),
        ]),
        ['left', 'left', 'left'],
      ),
      '',
    );
  }
  out.push(`${results.trials.length} runs in ${formatDuration(results.seconds)}`);
  if (results.files.length > 0) out.push(`wrote ${results.files.join(', ')}`);
  return `${out.join('\n')}\n`;
}
