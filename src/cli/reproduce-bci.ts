import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { labelTrack, loadJangoSession, type JangoSession } from '../adapters/replay/jango.js';
import { describeTransform } from '../adapters/replay/force-frame.js';
import type { ReplaySession } from '../adapters/replay/replay.js';
import { simulateMotorCortexSessions } from '../simulator/motor-cortex.js';
import {
  bufferedDecoder, formatBciMarkdown, kalmanDecoder, lruDecoder, recurrentDecoder, ridgeDecoder, rlsDecoder, runBciReproduction,
  type BciResults, type DecoderEntry,
} from '../reproduce/bci.js';
import { PROTOCOL_NAMES, type ProtocolName } from '../reproduce/bci-protocols.js';
import type { CommandIO } from './reproduce.js';

/**
 * `driftline reproduce bci`: the BCI decoder protocols of src/reproduce/bci.ts on the embedded simulator of
 * multi-session motor-cortex recordings (default: no data needed) or on the two real Jango sessions
 * (`--jango DIR`, the folder holding Day0.mat and Day16.mat).
 */
export const bciUsage = `usage: driftline reproduce bci [--jango DIR] [options]

  --jango DIR        the two real Jango sessions (DIR/Day0.mat then DIR/Day16.mat); default: the embedded
                     simulator of two motor-cortex sessions (96 channels, 50 ms bins)
  --no-align         keep each file's force columns as recorded (default: aligned to the task frame)
  --labels L         force (default) or emg (the 14 EMG envelopes, with Jango: R2 on all bins and variance
                     accounted for on the bins of trials)
  --seeds N          seeds per recurrent decoder (default 5; ridge, RLS and Kalman are deterministic)
  --protocols LIST   some of A1,A2,A5,B,C,D (default all)
  --decoders LIST    some of lstm,gru,lstm-rls,lru,gru-tbptt,gru-fpp,ridge,rls,kalman (default all; lstm-rls: the
                     LSTM with its readout fitted by recursive least squares; lru: the online LRU, width 32, 32
                     units, 2 layers; gru-tbptt: the GRU by truncated BPTT over 10 bins; gru-fpp: the GRU by Fixed
                     Point Propagation, 4 sampled 5-bin updates per label over 1000 bins)
  --quick            a small preset for a smoke run: 1 seed, one learning rate, gru and ridge, protocols A1 and D
  --out DIR          plots, results.json and summary.md (default out/bci)
  --quiet            no progress bar
`;

const ALL_DECODERS = ['lstm', 'gru', 'lstm-rls', 'lru', 'gru-tbptt', 'gru-fpp', 'ridge', 'rls', 'kalman'] as const;

export class BciUsageError extends Error {
  override readonly name = 'UsageError';
}

export async function reproduceBciCommand(args: string[], io: CommandIO): Promise<BciResults | undefined> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        jango: { type: 'string' },
        'no-align': { type: 'boolean', default: false },
        labels: { type: 'string', default: 'force' },
        seeds: { type: 'string' },
        protocols: { type: 'string' },
        decoders: { type: 'string' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new BciUsageError(`${(err as Error).message}\n\n${bciUsage}`);
  }
  const v = parsed.values;
  if (v.help) {
    io.stdout.write(bciUsage);
    return undefined;
  }
  const quick = v.quick;
  const seedCount = v.seeds === undefined ? (quick ? 1 : 5) : Number(v.seeds);
  if (!Number.isInteger(seedCount) || seedCount < 1 || seedCount > 100) throw new BciUsageError(`--seeds must be an integer in [1, 100], got '${v.seeds}'`);
  const protocols = listOption(v.protocols, PROTOCOL_NAMES, '--protocols') ?? (quick ? (['A1', 'D'] as ProtocolName[]) : [...PROTOCOL_NAMES]);
  const decoderNames = listOption(v.decoders, ALL_DECODERS, '--decoders') ?? (quick ? ['gru', 'ridge'] : [...ALL_DECODERS]);

  const labels = v.labels;
  if (labels !== 'force' && labels !== 'emg') throw new BciUsageError(`--labels must be force or emg, got '${labels}'`);
  let sessions: [ReplaySession, ReplaySession];
  let description: string;
  let trialBins: [Uint8Array, Uint8Array] | undefined;
  if (v.jango !== undefined) {
    const paths = ['Day0.mat', 'Day16.mat'].map((f) => join(v.jango!, f));
    for (const p of paths) if (!existsSync(p)) throw new BciUsageError(`--jango: ${p} not found (the folder must hold Day0.mat and Day16.mat; see examples/bci-decoder/README.md for where to get them)`);
    const loaded: JangoSession[] = [];
    for (const p of paths) {
      const s = await loadJangoSession(p, { emg: labels === 'emg', alignForce: !v['no-align'] });
      io.stderr.write(`driftline reproduce bci: ${s.name}: force frame ${frameNote(s)}\n`);
      loaded.push(s);
    }
    const withLabels = (s: JangoSession): ReplaySession => {
      const track = labelTrack(s, labels);
      return { name: s.name, t: s.t, x: s.x, nChannels: s.nChannels, y: track.y, nOutputs: track.nOutputs, binSeconds: s.binSeconds };
    };
    sessions = [withLabels(loaded[0]), withLabels(loaded[1])];
    trialBins = [trialMask(loaded[0]), trialMask(loaded[1])];
    description = `Jango ${loaded[0].name} -> ${loaded[1].name} (96 channels, 50 ms bins, 2-D force${v['no-align'] ? ', force columns as recorded' : ', force aligned to the task frame'})`;
  } else {
    if (labels === 'emg') throw new BciUsageError('--labels emg needs --jango DIR: the simulator has no EMG');
    const sim = simulateMotorCortexSessions({ seed: 7 });
    sessions = [sim[0], sim[1]];
    description = `the embedded motor-cortex simulator, seed 7 (2 sessions of ${sim[0].t.length} and ${sim[1].t.length} bins, 96 channels; tuning rotation, gain, baseline and unit turnover between them)`;
  }
  const binSeconds = sessions[0].binSeconds ?? 0.05;
  const axes = quick ? { lr: [3e-4], lambda: [0] } : { lr: [1e-4, 3e-4, 1e-3], lambda: [0, 0.5] };
  const catalogue: Record<(typeof ALL_DECODERS)[number], () => DecoderEntry> = {
    lstm: () => recurrentDecoder('lstm', 64, axes),
    gru: () => recurrentDecoder('gru', 64, axes),
    'lstm-rls': () => recurrentDecoder('lstm', 64, { ...axes, readoutHalfLifeSeconds: quick ? [300] : [60, 300, Infinity] }, binSeconds),
    lru: () => lruDecoder(32, 32, 2, { lr: axes.lr }),
    'gru-tbptt': () => bufferedDecoder('gru', 64, { rule: 'tbptt', window: 10 }, { lr: axes.lr }),
    'gru-fpp': () => bufferedDecoder('gru', 64, { rule: 'fpp', window: 5, updates: 4, buffer: 1000 }, { lr: axes.lr }),
    ridge: () => ridgeDecoder(quick ? 4 : 10, quick ? [100] : undefined),
    rls: () => rlsDecoder(4, undefined, binSeconds),
    kalman: () => kalmanDecoder(undefined, binSeconds),
  };
  const results = await runBciReproduction({
    sessions,
    dataDescription: description,
    decoders: decoderNames.map((d) => catalogue[d as (typeof ALL_DECODERS)[number]]()),
    seeds: Array.from({ length: seedCount }, (_, i) => i + 1),
    selectionSeed: 1000,
    protocols,
    labelName: labels === 'emg' ? 'EMG (14 muscle envelopes)' : 'force (2-D)',
    ...(trialBins && labels === 'emg' ? { trialBins } : {}),
    outDir: v.out ?? join('out', labels === 'emg' ? 'bci-emg' : 'bci'),
    quiet: v.quiet,
    progressStream: io.stderr,
  });
  io.stdout.write(formatBciMarkdown(results));
  if (results.files.length > 0) io.stdout.write(`wrote ${results.files.join(', ')}\n`);
  return results;
}

function frameNote(s: JangoSession): string {
  const f = s.forceFrame;
  if (f === undefined) return 'not examined';
  const what = f.candidate ? describeTransform(f.candidate) : 'identity';
  return `${f.applied ? 'applied' : 'not applied'}: ${what} (score ${f.score.toFixed(3)}, runner-up ${f.runnerUp.toFixed(3)}, ${f.rewardedTrials} rewarded trials)${f.reason ? `; ${f.reason}` : ''}`;
}

function listOption<T extends string>(text: string | undefined, allowed: readonly T[], flag: string): T[] | undefined {
  if (text === undefined) return undefined;
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) throw new BciUsageError(`${flag}: unknown '${item}', expected some of ${allowed.join(',')}`);
  }
  if (items.length === 0) throw new BciUsageError(`${flag} needs at least one of ${allowed.join(',')}`);
  return items as T[];
}

/** 1 on the bins inside a rewarded trial (from its start to its end), from the file's trial table. */
export function trialMask(s: JangoSession): Uint8Array {
  const mask = new Uint8Array(s.nBins);
  let i = 0;
  const trials = [...(s.trials ?? [])].filter((tr) => tr.rewarded).sort((a, b) => a.start - b.start);
  for (const tr of trials) {
    while (i < s.nBins && s.t[i] < tr.start) i++;
    for (let k = i; k < s.nBins && s.t[k] <= tr.end; k++) mask[k] = 1;
  }
  return mask;
}
