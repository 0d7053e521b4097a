import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadJangoSession, type JangoSession } from '../adapters/replay/jango.js';
import type { ReplaySession } from '../adapters/replay/replay.js';
import { simulateMotorCortexSessions } from '../simulator/motor-cortex.js';
import {
  DEFAULT_DRIFT_SETTINGS, DRIFT_FEEDS, formatDriftMarkdown, runDriftReproduction, type DriftFeed, type DriftResults, type DriftSettings, type DriftSource,
} from '../reproduce/drift.js';
import type { CommandIO } from './reproduce.js';

/**
 * `driftline reproduce drift`: the drift detectors on the shipped decoder's error and on its inputs across a session boundary
 * that no marker declares, on the motor-cortex simulator and (with `--jango DIR`) on the real Jango sessions.
 */
export const driftUsage = `usage: driftline reproduce drift [--jango DIR] [options]

  --jango DIR        also the two real Jango sessions (DIR/Day0.mat then DIR/Day16.mat, force aligned to the task
                     frame as in the BCI example); the simulator always runs
  --no-simulator     only the Jango sessions (needs --jango)
  --seeds N          seeds (default 3): learner seed k, and simulator seed k for the simulator
  --signals LIST     what the detectors watch, each apart (default normalized-error,input-squared-z):
                     normalized-error (the decoder's error, examples/bci-decoder/jango.yaml's drift.signal),
                     error (in squared label units), input-squared-z (the inputs' mean squared z-score: no labels)
  --no-binary        leave out the binary detectors (ddm, eddm, hddm-a, hddm-w on the binarized error)
  --no-null          leave out the check of the calibration on long null streams (5 seeds x 4 families x 4
                     detectors, 20 scored hours each, KSWIN 5: a few minutes)
  --quick            a smoke run, not the protocol: 1 seed, the simulator only with sessions of 180 s and 60 s,
                     settle 10 s, calibration 60 s, a budget of 30 false alarms per hour (a short calibration)
  --fresh            record the error streams again even when the cache (OUT/streams) holds them
  --no-plots         no PNG
  --out DIR          results.json, summary.md, alarms-<source>-<signal>.png and the stream cache (default out/drift)
  --quiet            no progress bar
`;

export class DriftUsageError extends Error {
  override readonly name = 'UsageError';
}

/** Settings of the --quick preset. */
export const QUICK = {
  sessionSeconds: [180, 60] as const, settleSeconds: 10, calibrationSeconds: 60, falseAlarmsPerHour: 30,
  // One seed, half an hour of each null stream (KSWIN 6 minutes): seconds, not minutes.
  nullCheck: { falseAlarmsPerHour: 30, seeds: [1], hours: 0.5, kswinHours: 0.1 },
};

export interface DriftCommandOptions {
  readonly jango?: string;
  readonly simulator: boolean;
  readonly seeds: number[];
  readonly settings: DriftSettings;
  readonly sessionSeconds?: readonly [number, number];
  readonly fresh: boolean;
  readonly plots: boolean;
  readonly out: string;
  readonly quiet: boolean;
  readonly quick: boolean;
}

/** Parses the arguments of `driftline reproduce drift`; undefined for --help. */
export function parseDriftArgs(args: string[]): DriftCommandOptions | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        jango: { type: 'string' },
        'no-simulator': { type: 'boolean', default: false },
        seeds: { type: 'string' },
        signals: { type: 'string', default: DEFAULT_DRIFT_SETTINGS.signals.join(',') },
        'no-binary': { type: 'boolean', default: false },
        'no-null': { type: 'boolean', default: false },
        quick: { type: 'boolean', default: false },
        fresh: { type: 'boolean', default: false },
        'no-plots': { type: 'boolean', default: false },
        out: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new DriftUsageError(`${(err as Error).message}\n\n${driftUsage}`);
  }
  const v = parsed.values;
  if (v.help) return undefined;
  const quick = v.quick;
  const seedCount = v.seeds === undefined ? (quick ? 1 : 3) : Number(v.seeds);
  if (!Number.isInteger(seedCount) || seedCount < 1 || seedCount > 100) throw new DriftUsageError(`--seeds must be an integer in [1, 100], got '${v.seeds}'`);
  const signals = v.signals.split(',') as DriftFeed[];
  const unknown = signals.filter((f) => !DRIFT_FEEDS.includes(f));
  if (signals.length === 0 || unknown.length > 0) throw new DriftUsageError(`--signals takes a comma-separated list of ${DRIFT_FEEDS.join(', ')}; got '${v.signals}'`);
  if (v['no-simulator'] && v.jango === undefined) throw new DriftUsageError('--no-simulator needs --jango DIR: there would be nothing to run');
  if (quick && v.jango !== undefined) throw new DriftUsageError('--quick runs the simulator only: leave out --jango');
  return {
    ...(v.jango !== undefined ? { jango: v.jango } : {}),
    simulator: !v['no-simulator'],
    seeds: Array.from({ length: seedCount }, (_, i) => i + 1),
    settings: {
      ...DEFAULT_DRIFT_SETTINGS,
      signals,
      binary: !v['no-binary'],
      ...(quick ? { settleSeconds: QUICK.settleSeconds, calibrationSeconds: QUICK.calibrationSeconds, falseAlarmsPerHour: QUICK.falseAlarmsPerHour } : {}),
      nullCheck: v['no-null'] ? null : quick ? QUICK.nullCheck : DEFAULT_DRIFT_SETTINGS.nullCheck,
    },
    ...(quick ? { sessionSeconds: QUICK.sessionSeconds } : {}),
    fresh: v.fresh,
    plots: !v['no-plots'],
    out: v.out ?? join('out', 'drift'),
    quiet: v.quiet,
    quick,
  };
}

/** The embedded simulator: new sessions for every seed. */
export function simulatorSource(sessionSeconds?: readonly [number, number]): DriftSource {
  const options = sessionSeconds === undefined ? {} : { sessionSeconds: [...sessionSeconds] };
  const lengths = sessionSeconds ?? [1200, 900];
  return {
    id: 'simulator',
    description: `the embedded motor-cortex simulator (96 channels, 50 ms bins; sessions of ${lengths[0]} s and ${lengths[1]} s; tuning rotation, gain, baseline and unit turnover at the boundary; simulator seed = seed)`,
    seedsData: true,
    sessions: async (seed) => {
      const [a, b] = simulateMotorCortexSessions({ seed, ...options });
      return [a, b];
    },
    key: (seed) => ({ simulator: 'motor-cortex', seed, ...options }),
  };
}

/** The two Jango sessions, loaded once, force aligned to the task frame (as `driftline reproduce bci` does). */
export function jangoSource(dir: string, log: (line: string) => void): DriftSource {
  const paths = ['Day0.mat', 'Day16.mat'].map((f) => resolve(dir, f));
  for (const p of paths) {
    if (!existsSync(p)) throw new DriftUsageError(`--jango: ${p} not found (the folder must hold Day0.mat and Day16.mat; see examples/bci-decoder/README.md for where to get them)`);
  }
  let loaded: Promise<readonly [ReplaySession, ReplaySession]> | undefined;
  const load = async (): Promise<readonly [ReplaySession, ReplaySession]> => {
    const sessions: JangoSession[] = [];
    for (const p of paths) {
      const s = await loadJangoSession(p, { emg: false, alignForce: true });
      log(`driftline reproduce drift: ${s.name}: force frame ${s.forceFrame.applied ? 'applied' : 'not applied'}${s.forceFrame.reason ? ` (${s.forceFrame.reason})` : ''}`);
      sessions.push(s);
    }
    return [sessions[0], sessions[1]];
  };
  return {
    id: 'jango',
    description: 'Jango Day0 -> Day16 (96 channels, 50 ms bins, 2-D force aligned to the task frame)',
    seedsData: false,
    sessions: () => (loaded ??= load()),
    key: () => ({ jango: paths.map((p) => ({ file: p.split('/').pop(), bytes: statSync(p).size })), alignForce: true, labels: 'force' }),
  };
}

export async function reproduceDriftCommand(args: string[], io: CommandIO): Promise<DriftResults | undefined> {
  const o = parseDriftArgs(args);
  if (o === undefined) {
    io.stdout.write(driftUsage);
    return undefined;
  }
  const sources: DriftSource[] = [];
  if (o.simulator) sources.push(simulatorSource(o.sessionSeconds));
  if (o.jango !== undefined) sources.push(jangoSource(o.jango, (line) => io.stderr.write(`${line}\n`)));
  const results = await runDriftReproduction({
    sources,
    seeds: o.seeds,
    settings: o.settings,
    outDir: o.out,
    fresh: o.fresh,
    plots: o.plots,
    quiet: o.quiet,
    progressStream: io.stderr,
  });
  for (const k of results.skipped) io.stderr.write(`driftline reproduce drift: skipped ${k.detector} (${k.setting}): ${k.reason}\n`);
  io.stdout.write(formatDriftMarkdown(results));
  if (results.files.length > 0) io.stdout.write(`wrote ${results.files.join(', ')}\n`);
  return results;
}
