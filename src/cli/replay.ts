import { basename, extname } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { describeTransform, isIdentity } from '../adapters/replay/force-frame.js';
import { loadJangoSession } from '../adapters/replay/jango.js';
import { RECOVERY_MIN_HARM } from '../evaluation/recovery-harm.js';
import { SessionScores, type ScoreRange, type SessionScore } from '../evaluation/session-scores.js';
import { PROTOCOL_NAMES, standardProtocol, type ProtocolDefinition, type ProtocolName } from '../reproduce/bci-protocols.js';
import { readNdjson } from '../adapters/replay/ndjson.js';
import { replaySessions, type ReplaySession, type ReplaySpeed } from '../adapters/replay/replay.js';
import { createIngestClient, type IngestClient } from '../adapters/websocket/client.js';
import type { Observable } from 'rxjs';
import type { PrequentialReport, RecoveryReport, StreamInput } from '../streams/messages.js';
import { describeHoldout } from '../streams/holdout.js';
import { createPipeline, type PipelineOutput } from '../streams/pipeline.js';
import { ConfigError, describeLearner, loadConfig, type DriftlineConfig } from './config.js';
import { formatDuration, type ProgressStream } from '../report/progress.js';
import { pipelineOptionsOf } from './run.js';
import { formatTable } from './table.js';
import { cliKafka, parseKafkaTarget, replayToKafka } from './replay-kafka.js';

/**
 * `driftline replay`: recorded sessions as one live stream. Files are read in the order given (.mat: a Jango
 * MAT v5 session, src/adapters/replay/jango.ts; .ndjson: recorded frames, src/adapters/replay/ndjson.ts) and
 * replayed back to back on one stream key, a declared session boundary (a 'session' drift marker) before each
 * session's first tick, seq and time continuing across files (src/adapters/replay/replay.ts). With
 * `--label-delay K` the ticks carry no label and the label of tick s arrives K ticks later, as a separate frame.
 *
 * Two modes:
 * - `--to ws://HOST:PORT/ingest`: the frames go to a running `driftline run` through the ingest client (JSON, or
 *   `--binary` frames), with a progress bar on stderr. The command waits until the server has processed the last
 *   tick (it watches the predictions path of the same server for that tick's prediction, or an error reply for
 *   it), then closes. Exit 1 when the server refused frames or frames were lost while disconnected, with the
 *   counts by reason.
 * - `--to kafka://HOST:PORT[,...]/TOPIC`: every frame is produced into the topic, one record keyed by the stream
 *   (src/cli/replay-kafka.ts), JSON or `--binary`; the command ends once the broker has acknowledged them all.
 * - `--config FILE` (without --to): the pipeline of `driftline run` runs in-process on the replay (no ws, no
 *   metrics server, no checkpoints: a replay is a reproducible experiment), and a summary goes to stdout: per
 *   session and per track (learning ticks / held-out ticks) the windowed MSE and R2 of the learner beside the two
 *   reference predictors (last label seen, running mean) with the label delay they were measured at, and every
 *   recovery report (recovery, residual, time to recovery), one per drift and track (learning / held-out ticks).
 *
 * Speed: 'recorded' (the bins' own pace), a factor K (K times faster), or 'fast' (no waiting). Default: recorded
 * with --to, fast with --config. Usage errors (bad flags, unreadable files, files that do not fit the config):
 * a message on stderr and exit 2.
 */

/** Where `driftline replay` writes: the summary to stdout, progress and the send report to stderr. */
export interface ReplayIO {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: ProgressStream;
}

const usage = `usage: driftline replay [--to ws://HOST:PORT/ingest [--token T] | --to kafka://HOST:PORT/TOPIC | --config FILE] [options] FILE...

  FILE...              .mat (Jango MAT v5) and .ndjson recordings, replayed in order as one stream;
                       a session boundary is declared before each session
  --to URL             send the frames to a running 'driftline run' (its ingest URL), or produce them into
                       a Kafka topic: kafka://HOST:PORT[,HOST:PORT...]/TOPIC (one record per frame, keyed
                       by stream; the topic must exist)
  --token T            bearer token for --to (default: sources.websocket.token of --config, if given)
  --binary             send binary frames instead of JSON (with --to)
  --config FILE        without --to: run the pipeline of FILE in-process and print a summary table
  --speed S            recorded | fast | a factor K (K times the recorded pace);
                       default recorded with --to, fast with --config
  --label-delay K      labels arrive K ticks after their tick, in their own frames (default 0: in the tick)
  --protocol P         with --config: an evaluation protocol across the first session boundary, replacing the
                       config's holdout, as 'driftline reproduce bci' runs it: A1, A2, A5 (labels for the first
                       1/2/5 min of every later session, then none), B (every label 1 s late), C (labels 30 s
                       on / 30 s off in later sessions), D (no label after the first session); A, C and D also
                       withhold the first session's last minute (a held-out error before the boundary)
  --range FROM:TO      with --config: also score the seconds [FROM, TO) of every session (e.g. 60:900)
  --no-align           keep each .mat file's force columns as recorded (default: aligned to the task frame)
  --stream NAME        the stream key (default: the stream of an .ndjson file, else 'replay')
  --quiet              no progress bar
`;

class UsageError extends Error {}

type ReplayProtocol = ProtocolName;

/**
 * A protocol of `driftline reproduce bci` (src/reproduce/bci-protocols.ts) for these sessions, so a replay with a
 * config reproduces its figures. B keeps the config's holdout: its label delay is what it sets.
 */
function protocolOf(protocol: ReplayProtocol, sessions: readonly ReplaySession[]): ProtocolDefinition {
  if (protocol !== 'B' && sessions.length < 2) {
    throw new UsageError(`--protocol ${protocol} needs at least two sessions: it is a protocol across a session boundary`);
  }
  return standardProtocol(protocol, sessions[0].t.length, sessions[1]?.t.length ?? 0, sessions[0].binSeconds ?? 0.05);
}

interface ReplayArgs {
  readonly files: readonly string[];
  readonly to?: string;
  /** --to kafka://BROKERS/TOPIC: produce into the topic instead of sending to a running driftline. */
  readonly toKafka?: boolean;
  readonly token?: string;
  readonly binary: boolean;
  readonly config?: DriftlineConfig;
  readonly speed: ReplaySpeed;
  readonly labelDelay: number;
  readonly stream?: string;
  readonly quiet: boolean;
  readonly protocol?: ReplayProtocol;
  readonly range?: ScoreRange;
  readonly alignForce: boolean;
}

/** Runs `driftline replay`; resolves with the exit code. */
export async function replayCommand(args: string[], io: ReplayIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let parsed: ReplayArgs | undefined;
  try {
    parsed = parseReplayArgs(args, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`driftline replay: ${err.message}\n`);
      return 2;
    }
    if (err instanceof UsageError) {
      io.stderr.write(`driftline replay: ${err.message}\n\n${usage}`);
      return 2;
    }
    throw err;
  }
  if (parsed === undefined) return 0;
  let loaded: LoadedSessions;
  try {
    loaded = await loadSessions(parsed.files, parsed.stream, io, parsed.alignForce);
    if (parsed.protocol !== undefined) {
      const protocol = protocolOf(parsed.protocol, loaded.sessions);
      if (protocol.name === 'B') parsed = { ...parsed, labelDelay: protocol.labelDelayTicks };
    }
    checkFit(loaded, parsed);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`driftline replay: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (parsed.toKafka === true) return sendToKafka(parsed, loaded, io);
  return parsed.to !== undefined ? sendToServer(parsed, loaded, io) : runInProcess(parsed, loaded, io);
}

function parseReplayArgs(args: string[], io: ReplayIO): ReplayArgs | undefined {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        to: { type: 'string' },
        token: { type: 'string' },
        binary: { type: 'boolean', default: false },
        config: { type: 'string', short: 'c' },
        speed: { type: 'string' },
        'label-delay': { type: 'string' },
        stream: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        protocol: { type: 'string' },
        range: { type: 'string' },
        'no-align': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) {
    io.stdout.write(usage);
    return undefined;
  }
  if (positionals.length === 0) throw new UsageError('no files to replay: give one or more .mat or .ndjson files');
  for (const file of positionals) {
    if (!/\.(mat|ndjson|jsonl)$/i.test(file)) throw new UsageError(`'${file}': only .mat (Jango MAT v5) and .ndjson files can be replayed`);
  }
  if (values.to === undefined && values.config === undefined) {
    throw new UsageError('nowhere to replay to: give --to ws://HOST:PORT/ingest (a running driftline) or --config FILE (in-process)');
  }
  const toKafka = values.to?.startsWith('kafka://') === true;
  if (toKafka) {
    try {
      parseKafkaTarget(values.to!);
    } catch (err) {
      throw new UsageError(`--to: ${(err as Error).message}`);
    }
    if (values.token !== undefined) throw new UsageError('--token applies to --to ws://... only');
  } else if (values.to !== undefined) {
    let url: URL;
    try {
      url = new URL(values.to);
    } catch {
      throw new UsageError(`--to must be a ws://, wss:// or kafka:// URL, got '${values.to}'`);
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new UsageError(`--to must be a ws://, wss:// or kafka:// URL, got '${values.to}'`);
  } else {
    if (values.binary) throw new UsageError('--binary applies to --to only');
    if (values.token !== undefined) throw new UsageError('--token applies to --to only');
  }
  if (values.to !== undefined && (values.protocol !== undefined || values.range !== undefined)) {
    throw new UsageError('--protocol and --range apply to --config (in-process) only: a running driftline takes its schedule from its own config');
  }
  let protocol: ReplayProtocol | undefined;
  if (values.protocol !== undefined) {
    if (!(PROTOCOL_NAMES as readonly string[]).includes(values.protocol)) {
      throw new UsageError(`--protocol must be one of ${PROTOCOL_NAMES.join(', ')}, got '${values.protocol}'`);
    }
    protocol = values.protocol as ReplayProtocol;
    if (protocol === 'B' && values['label-delay'] !== undefined) throw new UsageError('--protocol B sets the label delay (1 s); leave out --label-delay');
  }
  let range: ScoreRange | undefined;
  if (values.range !== undefined) {
    const m = /^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$/.exec(values.range);
    if (!m || !(Number(m[2]) > Number(m[1]))) throw new UsageError(`--range must be FROM:TO in seconds with FROM < TO, got '${values.range}'`);
    range = { name: `${m[1]}-${m[2]}s`, fromSeconds: Number(m[1]), toSeconds: Number(m[2]) };
  }
  const config = values.config === undefined ? undefined : loadConfig(values.config);
  const speed = parseSpeed(values.speed, values.to !== undefined ? 'recorded' : 'fast');
  const labelDelayText = values['label-delay'];
  const labelDelay = labelDelayText === undefined ? 0 : Number(labelDelayText);
  if (labelDelayText !== undefined && (labelDelayText.trim() === '' || !Number.isInteger(labelDelay) || labelDelay < 0 || labelDelay > 65_535)) {
    throw new UsageError(`--label-delay must be an integer in [0, 65535], got '${labelDelayText}'`);
  }
  if (values.stream !== undefined && (values.stream === '' || Buffer.byteLength(values.stream) > 128)) {
    throw new UsageError('--stream must be 1 to 128 bytes of UTF-8');
  }
  const token = toKafka ? undefined : (values.token ?? config?.sources.websocket?.token);
  return {
    files: positionals,
    ...(values.to !== undefined ? { to: values.to } : {}),
    ...(toKafka ? { toKafka } : {}),
    ...(token !== undefined ? { token } : {}),
    binary: values.binary,
    ...(config !== undefined ? { config } : {}),
    speed,
    labelDelay,
    ...(values.stream !== undefined ? { stream: values.stream } : {}),
    quiet: values.quiet,
    ...(protocol !== undefined ? { protocol } : {}),
    ...(range !== undefined ? { range } : {}),
    alignForce: !values['no-align'],
  };
}

function parseSpeed(text: string | undefined, fallback: ReplaySpeed): ReplaySpeed {
  if (text === undefined) return fallback;
  if (text === 'recorded' || text === 'fast') return text;
  const factor = Number(text.replace(/x$/i, ''));
  if (text.trim() === '' || !Number.isFinite(factor) || factor <= 0) {
    throw new UsageError(`--speed must be 'recorded', 'fast' or a factor > 0 (e.g. 50), got '${text}'`);
  }
  return factor;
}

interface LoadedSessions {
  readonly sessions: ReplaySession[];
  readonly stream: string;
  readonly ticks: number;
  readonly inputSize: number;
  readonly outputSize: number | undefined;
}

async function loadSessions(files: readonly string[], streamOption: string | undefined, io: ReplayIO, alignForce = true): Promise<LoadedSessions> {
  const sessions: ReplaySession[] = [];
  let stream = streamOption;
  for (const file of files) {
    if (/\.mat$/i.test(file)) {
      let s;
      try {
        s = await loadJangoSession(file, { emg: false, alignForce });
      } catch (err) {
        throw new UsageError(`cannot read '${file}': ${(err as Error).message}`);
      }
      const frame = s.forceFrame;
      if (frame !== undefined && frame.applied && !isIdentity(frame)) {
        io.stderr.write(`driftline replay: ${file}: force columns aligned to the task frame (${describeTransform(frame)}; score ${frame.score.toFixed(3)}, runner-up ${frame.runnerUp.toFixed(3)}); --no-align keeps them as recorded\n`);
      }
      sessions.push({ name: s.name, t: s.t, x: s.x, nChannels: s.nChannels, y: s.y, nOutputs: s.nOutputs, binSeconds: s.binSeconds });
    } else {
      const r = await loadNdjsonSessions(file, streamOption, io);
      stream ??= r.stream;
      sessions.push(...r.sessions);
    }
  }
  const first = sessions.find((s) => s.t.length > 0);
  if (first === undefined) throw new UsageError('the files hold no ticks');
  for (const s of sessions) {
    if (s.t.length > 0 && s.nChannels !== first.nChannels) {
      throw new UsageError(`session '${s.name}' has ${s.nChannels} channels, session '${first.name}' ${first.nChannels}: one stream has one shape`);
    }
    if (s.y !== undefined && first.y !== undefined && s.nOutputs !== first.nOutputs) {
      throw new UsageError(`session '${s.name}' has ${s.nOutputs} outputs, session '${first.name}' ${first.nOutputs}`);
    }
  }
  return {
    sessions,
    stream: stream ?? 'replay',
    ticks: sessions.reduce((n, s) => n + s.t.length, 0),
    inputSize: first.nChannels,
    outputSize: sessions.find((s) => s.y !== undefined)?.nOutputs,
  };
}

/**
 * An .ndjson recording as sessions of one stream: its ticks in file order, each with its label (in the tick or
 * from a later label frame of the file; the recorded delay is replaced by --label-delay), split at the session
 * frames it declares. Lines the reader refuses are reported on stderr and skipped.
 */
async function loadNdjsonSessions(file: string, streamOption: string | undefined, io: ReplayIO): Promise<{ sessions: ReplaySession[]; stream: string }> {
  const frames: StreamInput[] = [];
  const refused: string[] = [];
  try {
    for await (const frame of readNdjson(file)) {
      if (frame.kind === 'rejected') refused.push(frame.message);
      else frames.push(frame);
    }
  } catch (err) {
    throw new UsageError(`cannot read '${file}': ${(err as Error).message}`);
  }
  if (refused.length > 0) {
    io.stderr.write(`driftline replay: ${file}: skipped ${refused.length} bad line(s), e.g. ${refused.slice(0, 3).join('; ')}\n`);
  }
  const streams = [...new Set(frames.map((f) => f.stream))];
  let stream: string;
  if (streams.length <= 1) stream = streams[0] ?? streamOption ?? 'replay';
  else if (streamOption !== undefined && streams.includes(streamOption)) stream = streamOption;
  else throw new UsageError(`'${file}' holds ${streams.length} streams (${streams.slice(0, 5).join(', ')}); choose one with --stream`);

  interface Building { name: string; t: number[]; x: Float32Array[]; y: (Float32Array | undefined)[]; seqIndex: Map<number, number> }
  const built: Building[] = [];
  const fresh = (name: string): Building => ({ name, t: [], x: [], y: [], seqIndex: new Map() });
  let current = fresh(basename(file, extname(file)));
  const labelTargets = new Map<number, { session: Building; index: number }>();
  let lastSeq = -Infinity;
  for (const f of frames) {
    if (f.stream !== stream) continue;
    if (f.kind === 'drift') {
      if (current.t.length > 0) built.push(current);
      current = fresh(f.session ?? `${basename(file, extname(file))}@${f.seq}`);
    } else if (f.kind === 'tick') {
      if (!(f.seq > lastSeq)) throw new UsageError(`'${file}': tick seq ${f.seq} of stream '${stream}' is not after ${lastSeq}`);
      lastSeq = f.seq;
      labelTargets.set(f.seq, { session: current, index: current.t.length });
      current.t.push(f.t);
      current.x.push(f.x);
      current.y.push(f.y);
    } else {
      const target = labelTargets.get(f.seq);
      if (target === undefined) throw new UsageError(`'${file}': label for seq ${f.seq} of stream '${stream}', which has no tick before it`);
      target.session.y[target.index] = f.y;
    }
  }
  if (current.t.length > 0) built.push(current);
  const sessions = built.map((b): ReplaySession => {
    const n = b.t.length;
    const channels = b.x[0].length;
    const x = new Float32Array(n * channels);
    b.x.forEach((row, i) => {
      if (row.length !== channels) throw new UsageError(`'${file}': session '${b.name}' tick ${i} has ${row.length} inputs, its first tick ${channels}`);
      x.set(row, i * channels);
    });
    const labelled = b.y.filter((v) => v !== undefined).length;
    if (labelled !== 0 && labelled !== n) {
      throw new UsageError(`'${file}': session '${b.name}' has labels for ${labelled} of its ${n} ticks; a replay needs every tick labelled, or none`);
    }
    let y: Float32Array | undefined;
    let outputs = 0;
    if (labelled === n) {
      outputs = b.y[0]!.length;
      y = new Float32Array(n * outputs);
      b.y.forEach((row, i) => {
        if (row!.length !== outputs) throw new UsageError(`'${file}': session '${b.name}' label ${i} has ${row!.length} values, its first ${outputs}`);
        y!.set(row!, i * outputs);
      });
    }
    const t = Float64Array.from(b.t);
    for (let i = 1; i < n; i++) {
      if (!(t[i] > t[i - 1])) throw new UsageError(`'${file}': session '${b.name}': t is not strictly increasing at tick ${i}`);
    }
    return { name: b.name, t, x, nChannels: channels, ...(y ? { y, nOutputs: outputs } : {}) };
  });
  return { sessions, stream };
}

/** Refuses replays that cannot work against the config: other shapes, a stream not allowed, labels too late. */
function checkFit(loaded: LoadedSessions, args: ReplayArgs): void {
  const config = args.config;
  if (config === undefined) return;
  if (loaded.inputSize !== config.streams.inputSize) {
    throw new UsageError(`the recordings have ${loaded.inputSize} input channels, streams.inputSize of the config says ${config.streams.inputSize}`);
  }
  if (loaded.outputSize !== undefined && loaded.outputSize !== config.streams.outputSize) {
    throw new UsageError(`the recordings have ${loaded.outputSize} outputs, streams.outputSize of the config says ${config.streams.outputSize}`);
  }
  if (config.streams.allow && !config.streams.allow.includes(loaded.stream)) {
    throw new UsageError(`stream '${loaded.stream}' is not in streams.allow of the config; pass --stream with one of ${config.streams.allow.join(', ')}`);
  }
  if (args.labelDelay >= config.learner.maxLabelDelay) {
    throw new UsageError(`--label-delay ${args.labelDelay} is not below learner.maxLabelDelay (${config.learner.maxLabelDelay}) of the config: every label would be refused as too late`);
  }
}

/** Resolves with `value` after `ms`, or as soon as `done()` holds (polled). */
async function waitUntil(done: () => boolean, ms: number, pollMs = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  return true;
}

/** The loaded sessions as one stream of inputs, paced, label-delayed and with progress as the arguments say. */
function replayOf(args: ReplayArgs, loaded: LoadedSessions, io: ReplayIO): Observable<StreamInput> {
  return replaySessions(loaded.sessions, {
    stream: loaded.stream,
    speed: args.speed,
    labelDelayTicks: args.labelDelay,
    progress: args.quiet ? false : { stream: io.stderr },
  });
}

async function sendToServer(args: ReplayArgs, loaded: LoadedSessions, io: ReplayIO): Promise<number> {
  const url = args.to!;
  const stream = loaded.stream;
  const client: IngestClient = createIngestClient({
    url,
    ...(args.token !== undefined ? { token: args.token } : {}),
    binary: args.binary,
    maxQueuedFrames: 100_000,
  });
  const refusedByReason = new Map<string, number>();
  const refusedExamples: string[] = [];
  const lastTickSeq = loaded.ticks - 1;
  let lastTickDone = false;
  const errorSub = client.errors.subscribe((e) => {
    refusedByReason.set(e.reason, (refusedByReason.get(e.reason) ?? 0) + 1);
    if (refusedExamples.length < 3) refusedExamples.push(`${e.reason}: ${e.message}`);
    if (e.stream === stream && e.seq === lastTickSeq) lastTickDone = true;
  });
  // The acknowledgement: the prediction of the last tick on the same server's predictions path.
  const watcher = watchPredictions(predictionsUrlOf(url), args.token, stream, (seq) => {
    if (seq >= lastTickSeq) lastTickDone = true;
  });

  const connected = await waitUntil(() => client.isConnected, 10_000);
  if (!connected) {
    io.stderr.write(`driftline replay: could not connect to ${url} within 10 s\n`);
    watcher.close();
    errorSub.unsubscribe();
    await client.close();
    return 1;
  }
  const counts = { ticks: 0, labels: 0, sessions: 0 };
  const started = performance.now();
  let sendFailure: Error | undefined;
  await new Promise<void>((resolve, reject) => {
    const replaying = replayOf(args, loaded, io).subscribe({
      next: (input) => {
        if (input.kind === 'tick') counts.ticks++;
        else if (input.kind === 'label') counts.labels++;
        else counts.sessions++;
        try {
          // An input is already a frame: a declared session boundary encodes as a session frame.
          client.send(input);
        } catch (err) {
          // A frame the server could never take (larger than a message may be): said, not retried forever.
          sendFailure = err as Error;
          queueMicrotask(() => replaying.unsubscribe());
          resolve();
        }
      },
      error: reject,
      complete: resolve,
    });
  });
  if (sendFailure !== undefined) {
    io.stderr.write(`driftline replay: ${sendFailure.message}\n`);
    watcher.close();
    errorSub.unsubscribe();
    await client.close();
    return 1;
  }
  // Everything is handed to the socket; wait until the server has processed the last tick (its prediction or its
  // error reply came back) while progress is being made, then close: the close handshake follows the last frames.
  const acknowledged = watcher.usable()
    ? await waitUntil(() => lastTickDone, 120_000)
    : await waitUntil(() => client.stats.queued === 0, 30_000).then(async (ok) => (await new Promise((r) => setTimeout(r, 1000)), ok));
  await new Promise((resolve) => setTimeout(resolve, 200));
  watcher.close();
  await client.close();
  errorSub.unsubscribe();
  const seconds = (performance.now() - started) / 1000;
  const refused = [...refusedByReason.values()].reduce((a, b) => a + b, 0);
  const lost = client.stats.droppedWhileDisconnected;
  io.stderr.write(
    `driftline replay: sent ${counts.ticks} ticks, ${counts.labels} labels and ${counts.sessions} session boundaries of stream '${stream}' ` +
      `to ${url} in ${formatDuration(seconds)} (label delay ${args.labelDelay}, speed ${String(args.speed)}); ` +
      `${client.stats.connects > 1 ? `${client.stats.connects - 1} reconnect(s); ` : ''}` +
      `refused by the server: ${refused}${refused > 0 ? ` (${[...refusedByReason].map(([r, n]) => `${r} ${n}`).join(', ')}; e.g. ${refusedExamples.join(' | ')})` : ''}` +
      `${lost > 0 ? `; ${lost} frame(s) lost while disconnected` : ''}` +
      `${acknowledged ? '' : '; the server did not confirm the last tick'}\n`,
  );
  return refused > 0 || lost > 0 || !acknowledged ? 1 : 0;
}

async function sendToKafka(args: ReplayArgs, loaded: LoadedSessions, io: ReplayIO): Promise<number> {
  const url = args.to!;
  const target = parseKafkaTarget(url);
  const started = performance.now();
  try {
    const counts = await replayToKafka(replayOf(args, loaded, io), { kafka: cliKafka(target, 'driftline-replay'), topic: target.topic, binary: args.binary });
    io.stderr.write(
      `driftline replay: produced ${counts.records} records (${counts.ticks} ticks, ${counts.labels} labels, ${counts.sessions} session boundaries) ` +
        `of stream '${loaded.stream}' to ${url} in ${formatDuration((performance.now() - started) / 1000)} ` +
        `(${args.binary ? 'binary' : 'JSON'} frames, label delay ${args.labelDelay}, speed ${String(args.speed)})\n`,
    );
    return 0;
  } catch (err) {
    io.stderr.write(`driftline replay: ${url}: ${(err as Error).message}\n`);
    return 1;
  }
}

/**
 * The predictions URL of the server an ingest URL points at (…/ingest -> …/predictions), asking for a turn's
 * messages in one array: a fast replay makes a prediction per tick, and one message each is what costs the
 * server most to send.
 */
function predictionsUrlOf(ingestUrl: string): string {
  const url = new URL(ingestUrl);
  url.pathname = url.pathname.replace(/ingest\/?$/, 'predictions');
  if (!url.pathname.endsWith('predictions')) url.pathname = '/predictions';
  url.searchParams.set('batch', 'turn');
  return url.toString();
}

/** Watches the predictions path for the predictions of `stream`; usable() is false if it could not connect. */
function watchPredictions(url: string, token: string | undefined, stream: string, onPrediction: (seq: number) => void) {
  let opened = false;
  let failed = false;
  const sock = new WebSocket(url, token !== undefined ? { headers: { authorization: `Bearer ${token}` } } : {});
  sock.on('open', () => {
    opened = true;
  });
  sock.on('error', () => {
    failed = true;
  });
  sock.on('close', () => {
    if (!opened) failed = true;
  });
  type Outbound = { type?: string; stream?: string; seq?: number } | null;
  const see = (m: Outbound): void => {
    if (m?.type === 'prediction' && m.stream === stream && typeof m.seq === 'number') onPrediction(m.seq);
  };
  sock.on('message', (data, isBinary) => {
    if (isBinary) return;
    try {
      // An array with ?batch=turn; a server from before that option ignores it and sends each message alone.
      const m = JSON.parse(data.toString()) as Outbound | Outbound[];
      if (Array.isArray(m)) for (const each of m) see(each);
      else see(m);
    } catch {
      /* not ours to judge */
    }
  });
  return {
    usable: () => opened && !failed,
    close: () => sock.terminate(),
  };
}

// ------------------------------------------------------------------------------------------------ in-process

interface SessionTrack {
  readonly session: string;
  readonly heldOut: boolean;
  report: PrequentialReport;
}

async function runInProcess(args: ReplayArgs, loaded: LoadedSessions, io: ReplayIO): Promise<number> {
  const config = args.protocol === undefined
    ? args.config!
    : {
        ...args.config!,
        evaluation: {
          ...args.config!.evaluation,
          holdout: (args.protocol === 'B' ? args.config!.evaluation.holdout : protocolOf(args.protocol, loaded.sessions).holdout) as DriftlineConfig['evaluation']['holdout'],
        },
      };
  const pipeline = createPipeline(pipelineOptionsOf(config));
  const scores = new SessionScores(config.streams.outputSize, args.range ? [args.range] : []);
  const stream = loaded.stream;
  const tracks = new Map<string, SessionTrack>();
  const recoveries: { report: RecoveryReport; session: string }[] = [];
  const detections = new Map<string, number>();
  const rejections = new Map<string, number>();
  let session = loaded.sessions[0]?.name ?? '';
  let ticks = 0;
  const started = performance.now();
  const onOutput = (out: PipelineOutput) => {
    switch (out.kind) {
      case 'prediction':
        ticks++;
        return;
      case 'scored':
        scores.add(out);
        return;
      case 'drift':
        if (out.source === 'session') {
          session = out.session ?? `@${out.seq}`;
          scores.startSession(session, out.t);
        }
        else detections.set(`${session}\u0000${out.source}`, (detections.get(`${session}\u0000${out.source}`) ?? 0) + 1);
        return;
      case 'prequential': {
        const key = `${session}\u0000${out.heldOut}`;
        const found = tracks.get(key);
        if (found) found.report = out;
        else tracks.set(key, { session, heldOut: out.heldOut, report: out });
        return;
      }
      case 'recovery':
        recoveries.push({ report: out, session });
        return;
      case 'rejected':
        rejections.set(out.reason, (rejections.get(out.reason) ?? 0) + 1);
        return;
      default:
        return;
    }
  };
  await new Promise<void>((resolve, reject) => {
    replayOf(args, loaded, io).pipe(pipeline.operator).subscribe({ next: onOutput, error: reject, complete: resolve });
  });
  const seconds = (performance.now() - started) / 1000;
  const names = loaded.sessions.map((s) => s.name);
  const sessionOrder = (name: string) => {
    const i = names.indexOf(name);
    return i < 0 ? names.length : i;
  };
  io.stdout.write(
    formatReplaySummary({
      config,
      stream,
      labelDelay: args.labelDelay,
      ticks,
      seconds,
      // Sessions in replay order, the learning track before the held-out one.
      tracks: [...tracks.values()].sort(
        (a, b) => sessionOrder(a.session) - sessionOrder(b.session) || Number(a.heldOut) - Number(b.heldOut),
      ),
      recoveries,
      detections,
      rejections,
      sessionScores: scores.scores(),
      ...(args.protocol !== undefined ? { protocol: args.protocol } : {}),
    }),
  );
  return 0;
}

/** What the in-process replay prints its summary from. */
export interface ReplaySummary {
  readonly config: DriftlineConfig;
  readonly stream: string;
  readonly labelDelay: number;
  readonly ticks: number;
  readonly seconds: number;
  readonly tracks: readonly { readonly session: string; readonly heldOut: boolean; readonly report: PrequentialReport }[];
  readonly recoveries: readonly { readonly report: RecoveryReport; readonly session: string }[];
  /** Detections by session and detector (key `session\0detector`). */
  readonly detections: ReadonlyMap<string, number>;
  readonly rejections: ReadonlyMap<string, number>;
  /** Whole-session (and chosen-range) figures per session and track. */
  readonly sessionScores?: readonly SessionScore[];
  readonly protocol?: ReplayProtocol;
}

/** Number formatting for error figures, whose scale depends on the data (force in raw units: ~1e6). */
function num(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(3) : v.toFixed(4);
}

/**
 * The recovery ratio, or why it is not shown: when the frozen model is barely worse than before the drift, the
 * ratio divides by noise (1581 % was once printed for a drift that did little harm), so the residual is the figure.
 */
export function recoveryText(r: { readonly recovery: number | null; readonly ePre: number; readonly eFrozen: number }): string {
  if (r.recovery === null) return '- (no harm)';
  if (r.eFrozen - r.ePre < RECOVERY_MIN_HARM * r.ePre) return `- (little harm: E_frozen ${((r.eFrozen / r.ePre - 1) * 100).toFixed(0)}% above E_pre; read the residual)`;
  return `${(100 * r.recovery).toFixed(1)}%`;
}


/** The summary tables of an in-process replay. */
export function formatReplaySummary(s: ReplaySummary): string {
  const c = s.config;
  const e = c.evaluation;
  const lines: string[] = [];
  const holdout = describeHoldout(e.holdout);
  lines.push(
    '',
    `replay of stream '${s.stream}': ${s.ticks} ticks in ${formatDuration(s.seconds)} (${Math.round(s.ticks / Math.max(s.seconds, 1e-9))} ticks/s)`,
    `learner: ${describeLearner(c)}; ` +
      `inputs ${c.evaluation.normalizeInputs === false ? 'raw' : `normalized${typeof c.evaluation.normalizeInputs === 'object' ? ` (decay ${c.evaluation.normalizeInputs.decay})` : ''}`}; holdout: ${holdout}`,
    `label delay: ${s.labelDelay} tick(s): every error below was measured with it, and the reference predictors saw the labels as late as the learner` +
      (s.protocol !== undefined ? `; protocol ${s.protocol}` : ''),
    `figures: the last report of each session and track, over its last ${e.window} scored ticks (R2 per output)`,
    '',
  );
  const r2 = (r: readonly number[]) => r.map((v) => num(v)).join(' / ');
  if (s.tracks.length === 0) {
    lines.push('no prequential reports (no labelled ticks were scored)');
  } else {
    lines.push(
      formatTable(
        ['session', 'track', 'ticks', 'delay', 'MSE learner', 'MSE last label', 'MSE running mean', 'R2 learner', 'R2 last label', 'R2 running mean'],
        s.tracks.map(({ session, heldOut, report }) => [
          session,
          heldOut ? 'held-out' : 'learning',
          String(report.count),
          num(report.labelDelay),
          num(report.figures.learner.mse),
          num(report.figures['last-label'].mse),
          num(report.figures['running-mean'].mse),
          r2(report.figures.learner.r2),
          r2(report.figures['last-label'].r2),
          r2(report.figures['running-mean'].r2),
        ]),
      ),
    );
  }
  lines.push('');
  if (s.sessionScores !== undefined && s.sessionScores.length > 0) {
    lines.push(
      'whole sessions (and chosen ranges): R2 over every scored tick of the track (mean of the outputs); "age" is the mean information age',
      'of the references in ticks: on held-out ticks they repeat the last label they had before the block, which grows old',
      formatTable(
        ['session', 'range', 'track', 'ticks', 'delay', 'R2 learner', 'R2 last label', 'R2 running mean', 'age of references'],
        s.sessionScores.map((r) => [
          r.session, r.range, r.heldOut ? 'held-out' : 'learning', String(r.ticks), num(r.meanDelay),
          num(r.r2.learner), num(r.r2['last-label']), num(r.r2['running-mean']), num(r.meanReferenceAge),
        ]),
      ),
      '',
    );
  }
  if (s.recoveries.length === 0) {
    lines.push('recovery: no measurement closed (a drift needs recoveryTicks scored ticks after it)');
  } else {
    lines.push(
      `recovery after each drift, per track (E_pre, E_frozen and E_adapt all from the track's own ticks; E_frozen and E_adapt over its last ` +
        `${Math.min(e.window, e.recoveryTicks)} of the ${e.recoveryTicks} ticks after the drift;`,
      `time to recovery: its windowed error within ${100 * e.tolerance}% of its E_pre, in ticks of both tracks since the drift; a track with no measured tick has no row)`,
      formatTable(
        ['drift at seq', 'session', 'source', 'track', 'E_pre', 'E_frozen', 'E_adapt', 'recovery', 'residual', 'time to recovery'],
        s.recoveries.map(({ report: r, session }) => [
          String(r.seq),
          session,
          r.source,
          r.heldOut ? 'held-out' : 'learning',
          num(r.ePre),
          num(r.eFrozen),
          num(r.eAdapt),
          recoveryText(r),
          num(r.residual),
          r.ticksToRecovery === null ? 'not recovered' : `${r.ticksToRecovery} ticks${r.secondsToRecovery === null ? '' : ` (${formatDuration(r.secondsToRecovery)})`}`,
        ]),
      ),
    );
  }
  if (s.detections.size > 0) {
    lines.push('', `detections: ${[...s.detections].map(([k, n]) => `${k.replace('\u0000', ': ')} ${n}`).join(', ')}`);
  }
  if (s.rejections.size > 0) {
    lines.push('', `refused input: ${[...s.rejections].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}
