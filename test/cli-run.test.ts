// `driftline run` and `driftline replay` as processes and as functions: a bad config refused before anything
// starts (exit 2, the field named), a malformed frame answered and counted by reason in the metrics, a refusal
// inside the pipeline answered to its sender only and counted, refused-input
// warnings rate-limited, SIGTERM flushing checkpoints (exit 0) that the next start restores, a second signal
// exiting at once, replay usage errors, replay in-process with its summary table, and replay --to a running
// driftline with the server's refusals counted in the exit code.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { encodeBinaryBatch, encodeJsonBatch, encodeJsonFrame } from '../src/adapters/websocket/frames.js';
import { parseConfig } from '../src/cli/config.js';
import { createLogger, WarningLimiter } from '../src/cli/logger.js';
import { recoveryText, replayCommand } from '../src/cli/replay.js';
import { runCommand, startDriftline } from '../src/cli/run.js';
import { createLearner } from '../src/learners/learner.js';
import { FileCheckpointStore } from '../src/streams/file-checkpoint-store.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'driftline-cli-run-'));
after(() => rmSync(work, { recursive: true, force: true }));

const M = 4;
/** A small run config (ws and metrics on free ports) as YAML; `extra` lines are appended at the top level. */
function configFile(name: string, extra = '', { inputSize = M } = {}): string {
  const path = join(work, name);
  writeFileSync(
    path,
    [
      `streams: { inputSize: ${inputSize}, outputSize: 1, maxStreams: 4 }`,
      'learner:',
      '  cell: { kind: tanh-rnn, hiddenSize: 8 }',
      '  credit: { rule: immediate }',
      '  optimizer: { name: rmsprop, lr: 0.01 }',
      'sources: { websocket: { host: 127.0.0.1, port: 0 } }',
      'evaluation: { window: 20, reportEvery: 5, recoveryTicks: 30 }',
      'drift: { detectors: [] }',
      'metrics: { port: 0 }',
      extra,
    ].join('\n'),
  );
  return path;
}

interface Cli {
  readonly child: ChildProcess;
  readonly lines: () => Record<string, unknown>[];
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
  waitFor(predicate: (line: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
}

/** Spawns the CLI from source (no dependency on a stale dist/), collecting its JSON log lines from stderr. */
function spawnCli(args: string[]): Cli {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const parsed: Record<string, unknown>[] = [];
  let pending = '';
  const waiters: (() => void)[] = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    pending += chunk.toString();
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      try {
        parsed.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    }
    for (const w of waiters.splice(0)) w();
  });
  child.stdout!.resume();
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return {
    child,
    lines: () => parsed,
    stderr: () => text,
    exited,
    async waitFor(predicate, ms = 20_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = parsed.find(predicate);
        if (found) return found;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`log line not seen; stderr:\n${text}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
}

async function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  // On the ingest path, after the hello the server sends first: the replies a test collects are then its own.
  const ingest = new URL(url).pathname.endsWith('/ingest');
  await new Promise<void>((res, rej) => {
    ws.once(ingest ? 'message' : 'open', () => res());
    ws.once('error', rej);
  });
  return ws;
}

async function metricValue(metricsUrl: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const LABELLED_TICKS = 40;

interface LabelledRun {
  /** The seq and model version of each prediction the subscriber received, in arrival order. */
  readonly predictions: readonly { seq: number; version: number }[];
  /** The stream's learner afterwards: its spec, last tick and version. */
  readonly spec: unknown;
  readonly tick: number;
  readonly version: number;
  /** Whether its parameters differ from those of a new learner of the same spec. */
  readonly parametersMoved: boolean;
  /** driftline_events_total and driftline_updates_total of the stream, from the metrics endpoint. */
  readonly events: number | undefined;
  readonly updates: number | undefined;
  /** The learner as the 'driftline ready' log line describes it. */
  readonly described: string;
}

/**
 * driftline run in-process with a config whose learner block is `learner`: LABELLED_TICKS ticks of one stream over
 * WebSocket, each with its label in its frame, and what the predictions subscriber, the learner, the metrics
 * endpoint and the log saw of them.
 */
async function runLabelledTicks(learner: Record<string, unknown>, stream: string): Promise<LabelledRun> {
  const config = parseConfig({
    streams: { inputSize: M, outputSize: 1, maxStreams: 4 },
    learner,
    sources: { websocket: { host: '127.0.0.1', port: 0 } },
    evaluation: { window: 20, reportEvery: 5, recoveryTicks: 30 },
    drift: { detectors: [] },
    metrics: { port: 0 },
    log: { level: 'info' },
  });
  const logLines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'info', destination: { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) } });
  const service = await startDriftline(config, { logger });
  let run: LabelledRun;
  try {
    const subscriber = await openWs(`${service.predictionsUrl}?type=prediction`);
    const predictions: { seq: number; version: number }[] = [];
    subscriber.on('message', (d) => {
      const m = JSON.parse(d.toString()) as { seq: number; version: number };
      predictions.push({ seq: m.seq, version: m.version });
    });
    const sender = await openWs(service.ingestUrl);
    for (let seq = 0; seq < LABELLED_TICKS; seq++) {
      const x = [Math.sin(seq / 3), Math.cos(seq / 3), 1, 0];
      sender.send(encodeJsonFrame({ kind: 'tick', stream, seq, t: seq * 0.05, x, y: [0.5 * x[0]!] }));
    }
    const updatesSeries = `driftline_updates_total{stream="${stream}"}`;
    const deadline = Date.now() + 10_000;
    while (predictions.length < LABELLED_TICKS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    while ((await metricValue(service.metricsUrl, updatesSeries)) !== LABELLED_TICKS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const learned = service.pipeline!.pool.peek(stream)!;
    const initial = createLearner(learned.spec).readParameters();
    const now = learned.readParameters();
    run = {
      predictions,
      spec: learned.spec,
      tick: learned.tick,
      version: learned.version,
      parametersMoved: now.some((v, i) => v !== initial[i]),
      events: await metricValue(service.metricsUrl, `driftline_events_total{stream="${stream}",source="websocket"}`),
      updates: await metricValue(service.metricsUrl, updatesSeries),
      described: String(logLines.find((l) => l.msg === 'driftline ready')?.learner),
    };
    sender.close();
    subscriber.close();
  } finally {
    await service.stop();
  }
  assert.equal(await service.stopped, 0);
  return run;
}

/** Each tick predicted in order by the model that had learned every earlier tick once, then learned once itself. */
function assertLearnedEveryTick(run: LabelledRun): void {
  assert.deepEqual(run.predictions.map((p) => p.seq), Array.from({ length: LABELLED_TICKS }, (_, i) => i));
  assert.deepEqual(run.predictions.map((p) => p.version), Array.from({ length: LABELLED_TICKS }, (_, i) => i), 'tick t is predicted after t updates');
  assert.equal(run.tick, LABELLED_TICKS - 1);
  assert.equal(run.version, LABELLED_TICKS, 'one update per labelled tick');
  assert.equal(run.events, LABELLED_TICKS);
  assert.equal(run.updates, LABELLED_TICKS);
  assert.ok(run.parametersMoved, 'the updates changed the parameters');
}

const capture = () => {
  let text = '';
  return { stream: { write: (c: string) => ((text += c), true), isTTY: false }, text: () => text };
};

describe('driftline run', () => {
  test('a bad config is refused at start: exit 2, every bad field named, nothing started', async () => {
    const bad = join(work, 'bad.yaml');
    writeFileSync(bad, 'streams: { inputSize: 96, outputSize: 2, maxStream: 3 }\nlearner:\n  cell: { kind: tanh-rn, hiddenSize: 64 }\n  credit: { rule: immediate }\n  optimizer: { name: rmsprop, lr: 0.001 }\n');
    const cli = spawnCli(['run', '--config', bad]);
    assert.equal(await cli.exited, 2);
    assert.match(cli.stderr(), /streams: unknown field\(s\) 'maxStream'/);
    assert.match(cli.stderr(), /learner\.cell\.kind: .*tanh-rnn/);
    assert.match(cli.stderr(), /bad\.yaml/);
    assert.doesNotMatch(cli.stderr(), /driftline ready/);
  });

  test('usage errors exit 2: no --config, a config without a source', async () => {
    const err = capture();
    assert.equal(await runCommand([], { stdout: capture().stream, stderr: err.stream }), 2);
    assert.match(err.text(), /--config FILE is required/);
    const noSource = join(work, 'no-source.yaml');
    writeFileSync(noSource, `streams: { inputSize: ${M}, outputSize: 1 }\nlearner:\n  cell: { kind: gru, hiddenSize: 4 }\n  credit: { rule: rtrl }\n  optimizer: { name: sgd, lr: 0.1 }\n`);
    const err2 = capture();
    assert.equal(await runCommand(['--config', noSource], { stdout: capture().stream, stderr: err2.stream }), 2);
    assert.match(err2.text(), /sources: driftline run needs a source; add a sources\.websocket block .* or a sources\.kafka one/);
    // One source per process, and a Kafka source names what is wrong in it.
    const both = join(work, 'both-sources.yaml');
    const kafka = '{ brokers: [127.0.0.1:9092], groupId: g, inputTopic: frames, predictionsTopic: predictions, changelogTopic: state }';
    writeFileSync(both, `streams: { inputSize: ${M}, outputSize: 1 }\nlearner:\n  cell: { kind: gru, hiddenSize: 4 }\n  credit: { rule: rtrl }\n  optimizer: { name: sgd, lr: 0.1 }\nsources: { websocket: {}, kafka: ${kafka} }\n`);
    const err3 = capture();
    assert.equal(await runCommand(['--config', both], { stdout: capture().stream, stderr: err3.stream }), 2);
    assert.match(err3.text(), /sources: one of websocket and kafka, not both/);
    const badTopic = join(work, 'bad-topic.yaml');
    writeFileSync(badTopic, `streams: { inputSize: ${M}, outputSize: 1 }\nlearner:\n  cell: { kind: gru, hiddenSize: 4 }\n  credit: { rule: rtrl }\n  optimizer: { name: sgd, lr: 0.1 }\nsources: { kafka: ${kafka.replace('inputTopic: frames', 'inputTopic: "no spaces"').replace('[127.0.0.1:9092]', '[localhost]')} }\n`);
    const err4 = capture();
    assert.equal(await runCommand(['--config', badTopic], { stdout: capture().stream, stderr: err4.stream }), 2);
    assert.match(err4.text(), /sources\.kafka\.brokers\.0: a broker is HOST:PORT/);
    assert.match(err4.text(), /sources\.kafka\.inputTopic: a Kafka topic name is 1 to 249/);
  });

  test('a malformed frame gets an error reply and is counted by reason; warnings are rate-limited; SIGTERM flushes checkpoints and the next start restores them', async () => {
    const ckpt = join(work, 'ckpt-a');
    const config = configFile('run-a.yaml', `checkpoint: { dir: ${ckpt}, everyTicks: 1000 }\nlog: { level: info, maxWarningsPerSecond: 3 }`);
    const cli = spawnCli(['run', '--config', config]);
    try {
      const ready = await cli.waitFor((l) => l.msg === 'driftline ready');
      const ingest = String(ready.ingest);
      const metrics = String(ready.metrics);
      assert.match(ingest, /^ws:\/\/127\.0\.0\.1:\d+\/ingest$/);
      assert.match(metrics, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

      const ws = await openWs(ingest);
      const replies: { type: string; reason: string }[] = [];
      ws.on('message', (data) => replies.push(JSON.parse(data.toString())));
      ws.send('{"stream": "s1", "seq": 0, "t": 0, "x": [1, 2');
      for (let i = 0; i < 40; i++) ws.send(`not json ${i}`);
      for (let seq = 0; seq < 12; seq++) {
        ws.send(encodeJsonFrame({ kind: 'tick', stream: 's1', seq, t: seq * 0.05, x: [Math.sin(seq), 1, 0, -1], y: [Math.cos(seq)] }));
      }
      const deadline = Date.now() + 10_000;
      while ((await metricValue(metrics, 'driftline_events_total{stream="s1",source="websocket"}')) !== 12 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(replies.length, 41);
      assert.ok(replies.every((r) => r.type === 'error' && r.reason === 'malformed'));
      assert.equal(await metricValue(metrics, 'driftline_events_rejected_total{reason="malformed"}'), 41);
      assert.equal(await metricValue(metrics, 'driftline_streams'), 1);
      assert.ok((await metricValue(metrics, 'driftline_learner_state_bytes{stream="s1"}'))! > 0);
      assert.ok((await metricValue(metrics, 'driftline_tick_duration_seconds_count'))! >= 12);
      // 41 refusals in well under a second: at most 3 warned about, the rest summarised later.
      const warned = cli.lines().filter((l) => l.level === 40 && String(l.msg).includes('rejected frame'));
      assert.ok(warned.length >= 1 && warned.length <= 3, `${warned.length} warnings`);
      ws.close();

      cli.child.kill('SIGTERM');
      assert.equal(await cli.exited, 0, cli.stderr());
      const stopped = cli.lines().find((l) => l.msg === 'driftline stopped');
      assert.ok(stopped, cli.stderr());
      assert.ok(cli.lines().some((l) => l.level === 40 && /further warning\(s\) suppressed/.test(String(l.msg))), 'the suppressed warnings are summarised at shutdown');
      const saved = await new FileCheckpointStore(ckpt).loadAll();
      assert.deepEqual([...saved.keys()], ['s1']);
      assert.equal(saved.get('s1')!.meta.lastSeq, 11);
      assert.equal(saved.get('s1')!.meta.version, 12);
    } finally {
      cli.child.kill('SIGKILL');
    }

    const again = spawnCli(['run', '--config', config]);
    try {
      const found = await again.waitFor((l) => typeof l.msg === 'string' && /checkpoint\(s\) found/.test(l.msg));
      assert.equal(found.streams, 1);
      assert.equal(found.streamsBehindLastRun, 0, 'a clean stop leaves nothing to roll back');
      const ready = await again.waitFor((l) => l.msg === 'driftline ready');
      // Restored lazily: the stream's next tick brings its learner back, and it goes on from seq 12.
      const ws = await openWs(String(ready.ingest));
      const replies: { type: string; reason: string }[] = [];
      ws.on('message', (data) => replies.push(JSON.parse(data.toString())));
      ws.send(encodeJsonFrame({ kind: 'tick', stream: 's1', seq: 11, t: 0.55, x: [0, 1, 0, -1], y: [0] }));
      ws.send(encodeJsonFrame({ kind: 'tick', stream: 's1', seq: 12, t: 0.6, x: [0, 1, 0, -1], y: [0] }));
      const metrics = String(ready.metrics);
      const deadline = Date.now() + 10_000;
      while ((await metricValue(metrics, 'driftline_streams_restored_total')) !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await metricValue(metrics, 'driftline_streams_restored_total'), 1);
      while (replies.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(replies.map((r) => r.reason), ['duplicate'], 'the tick the checkpoint already holds is refused as a duplicate');
      ws.close();
      again.child.kill('SIGINT');
      assert.equal(await again.exited, 0);
    } finally {
      again.child.kill('SIGKILL');
    }
  });

  test('a refusal inside the pipeline is answered to the peer that sent the frame, counted by reason, and leaves the learner alone', async () => {
    const config = parseConfig({
      streams: { inputSize: M, outputSize: 1, maxStreams: 4 },
      learner: { cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate' }, optimizer: { name: 'rmsprop', lr: 0.01 } },
      sources: { websocket: { host: '127.0.0.1', port: 0 } },
      evaluation: { window: 20, reportEvery: 5, recoveryTicks: 30 },
      drift: { detectors: [] },
      metrics: { port: 0 },
      log: { level: 'silent' },
    });
    // The edge admits any stream and labels up to 32 ticks late; the pipeline only 's1', and labels up to 1 late.
    const service = await startDriftline(config, {
      logger: createLogger({ level: 'silent' }),
      pipelineOptions: (o) => ({ ...o, pool: { ...o.pool, allowedStreams: ['s1'] }, maxDelay: 2 }),
    });
    try {
      const sender = await openWs(service.ingestUrl);
      const bystander = await openWs(service.ingestUrl);
      const toSender: { type: string; reason: string; message: string; stream?: string; seq?: number }[] = [];
      const toBystander: unknown[] = [];
      sender.on('message', (d) => toSender.push(JSON.parse(d.toString())));
      bystander.on('message', (d) => toBystander.push(JSON.parse(d.toString())));
      const until = async (cond: () => boolean, what: string) => {
        const deadline = Date.now() + 10_000;
        while (!cond()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 5));
        }
      };
      for (let seq = 0; seq < 5; seq++) sender.send(encodeJsonFrame({ kind: 'tick', stream: 's1', seq, t: seq, x: [seq, 1, 0, -1] }));
      await until(() => service.pipeline!.pool.peek('s1')?.tick === 4, 'five ticks learned');
      const before = service.pipeline!.pool.peek('s1')!.snapshot();

      sender.send(encodeJsonFrame({ kind: 'label', stream: 's1', seq: 0, y: [1] }));
      sender.send(encodeJsonFrame({ kind: 'tick', stream: 'other', seq: 0, t: 0, x: [1, 1, 1, 1] }));
      await until(() => toSender.length === 2, 'two error replies');
      assert.deepEqual(toSender.map((r) => [r.type, r.reason, r.stream, r.seq]), [
        ['error', 'label-too-late', 's1', 0],
        ['error', 'unknown-stream', 'other', 0],
      ]);
      assert.ok(toSender.every((r) => r.message.length > 0));
      assert.deepEqual(service.pipeline!.pool.peek('s1')!.snapshot(), before, 'a refused label changes no learner byte');
      assert.equal(service.pipeline!.pool.peek('other'), undefined);

      // A label the pipeline takes: no reply to anyone, and the learner learns.
      bystander.send(encodeJsonFrame({ kind: 'label', stream: 's1', seq: 4, y: [1] }));
      await until(() => service.pipeline!.pool.peek('s1')!.version === 1, 'the update');
      assert.notDeepEqual(service.pipeline!.pool.peek('s1')!.snapshot(), before);
      assert.equal(await metricValue(service.metricsUrl, 'driftline_events_rejected_total{reason="label-too-late"}'), 1);
      assert.equal(await metricValue(service.metricsUrl, 'driftline_events_rejected_total{reason="unknown-stream"}'), 1);
      assert.equal(toSender.length, 2);
      assert.deepEqual(toBystander, []);
      sender.close();
      bystander.close();
    } finally {
      await service.stop();
    }
    assert.equal(await service.stopped, 0);
  });

  test('a second signal lets the checkpoint flush finish, then exits 1; a third exits at once', async () => {
    for (const signalsSent of [2, 3]) {
      const config = configFile(`run-b${signalsSent}.yaml`, 'log: { level: silent }');
      const signals = new EventEmitter();
      const exits: number[] = [];
      const running = runCommand(['--config', config], {
        stdout: capture().stream,
        stderr: capture().stream,
        signals: signals as never,
        exit: (code) => void exits.push(code),
      });
      // Wait until it listens for signals (it does once started).
      while (signals.listenerCount('SIGTERM') === 0) await new Promise((r) => setTimeout(r, 20));
      signals.emit('SIGTERM', 'SIGTERM');
      signals.emit('SIGINT', 'SIGINT');
      if (signalsSent === 3) signals.emit('SIGTERM', 'SIGTERM');
      assert.deepEqual(exits, signalsSent === 3 ? [1] : [], `${signalsSent} signals`);
      assert.equal(await running, 1, 'the stop the first signal started still completes, with exit code 1');
      assert.equal(signals.listenerCount('SIGTERM'), 0);
    }
  });
});

describe('WarningLimiter', () => {
  test('at most perSecond warnings an interval; the rest counted by reason and summarised once', () => {
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    let now = 0;
    const limiter = new WarningLimiter({ warn: (obj: object, msg?: string) => void lines.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' }) } as never, { perSecond: 2, now: () => now });
    for (let i = 0; i < 5; i++) limiter.warn(i % 2 ? 'malformed' : 'dimension', { i }, `bad ${i}`);
    assert.deepEqual(lines.map((l) => l.msg), ['bad 0', 'bad 1']);
    now = 1500;
    limiter.warn('malformed', { i: 5 }, 'bad 5');
    assert.equal(lines.length, 4);
    assert.match(lines[2].msg, /^3 further warning\(s\) suppressed/);
    assert.deepEqual(lines[2].obj.byReason, { dimension: 2, malformed: 1 });
    assert.equal(lines[3].msg, 'bad 5');
    assert.equal(limiter.suppressedTotal, 3);
    limiter.flush();
    assert.equal(lines.length, 4, 'nothing pending, nothing written');
    assert.throws(() => new WarningLimiter({ warn() {} } as never, { perSecond: 0 }), /perSecond/);
  });
});

/** An .ndjson recording of one stream: two sessions of `n` ticks, the second with shifted inputs and labels. */
function ndjsonFile(name: string, n: number, { channels = M, stream = 's1' } = {}): string {
  const lines: string[] = [];
  let seq = 0;
  for (const [session, shift] of [['day-a', 0], ['day-b', 2]] as const) {
    lines.push(JSON.stringify({ stream, seq, t: seq * 0.05, session }));
    for (let i = 0; i < n; i++, seq++) {
      const x = Array.from({ length: channels }, (_, c) => Math.sin(0.1 * seq + c) + shift);
      lines.push(JSON.stringify({ stream, seq, t: seq * 0.05, x, y: [Math.sin(0.1 * seq) + shift] }));
    }
  }
  const path = join(work, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

describe('driftline replay', () => {
  test('usage errors: a clear message and exit 2', async () => {
    const config = configFile('replay-usage.yaml');
    const file = ndjsonFile('usage.ndjson', 10);
    const cases: [string[], RegExp][] = [
      [['--config', config], /no files to replay/],
      [[file], /nowhere to replay to/],
      [['--config', config, '--speed', 'warp', file], /--speed must be 'recorded', 'fast' or a factor/],
      [['--config', config, '--label-delay', '1.5', file], /--label-delay must be an integer/],
      [['--config', config, 'data.csv'], /only \.mat .* and \.ndjson files/],
      [['--config', config, join(work, 'missing.mat')], /cannot read .*missing\.mat/],
      [['--to', 'http://x', file], /--to must be a ws:\/\/, wss:\/\/ or kafka:\/\/ URL/],
      [['--to', 'kafka://broker/topic', file], /--to: 'broker' in 'kafka:\/\/broker\/topic' is not HOST:PORT/],
      [['--to', 'kafka://h:9092/a b', file], /--to: 'a b' is not a Kafka topic name/],
      [['--to', 'kafka://h:9092', file], /a Kafka target is kafka:\/\/HOST:PORT\[,HOST:PORT\.\.\.\]\/TOPIC/],
      [['--to', 'kafka://h:9092/t', '--token', 'x', file], /--token applies to --to ws:\/\/\.\.\. only/],
      [['--config', config, '--binary', file], /--binary applies to --to only/],
      [['--config', config, '--label-delay', '40', file], /--label-delay 40 is not below learner\.maxLabelDelay \(32\)/],
      [['--config', configFile('replay-wide.yaml', '', { inputSize: 7 }), file], /4 input channels, streams\.inputSize of the config says 7/],
      [['--nope'], /Unknown option '--nope'/],
    ];
    for (const [args, message] of cases) {
      const err = capture();
      assert.equal(await replayCommand(args, { stdout: capture().stream, stderr: err.stream }), 2, args.join(' '));
      assert.match(err.text(), message, args.join(' '));
    }
  });

  test('--config: the pipeline in-process, a summary per session and track with the label delay named, and the recovery reports', async () => {
    const config = configFile('replay-in-process.yaml');
    const withHoldout = join(work, 'replay-holdout.yaml');
    writeFileSync(withHoldout, readFileSync(config, 'utf8').replace('recoveryTicks: 30 }', 'recoveryTicks: 30, holdout: { kind: alternate, onSeconds: 2, offSeconds: 1 } }'));
    const file = ndjsonFile('in-process.ndjson', 200);
    const out = capture();
    const code = await replayCommand(['--config', withHoldout, '--label-delay', '3', '--quiet', file], { stdout: out.stream, stderr: capture().stream });
    assert.equal(code, 0);
    const text = out.text();
    assert.match(text, /replay of stream 's1': 400 ticks/);
    assert.match(text, /label delay: 3 tick\(s\)/);
    for (const session of ['day-a', 'day-b']) {
      // The mean label delay over the window: 3, a little less at the very end (the last labels follow the last tick).
      assert.match(text, new RegExp(`${session} +learning +20 +(3\\.0000|2\\.8500)`), text);
      assert.match(text, new RegExp(`${session} +held-out +20 +3\\.0000`), text);
    }
    // The learning track of a session comes before its held-out track, sessions in replay order.
    const rows = text.split('\n').filter((l) => /^day-[ab] +(learning|held-out) /.test(l)).map((l) => l.split(/ +/).slice(0, 2).join(' '));
    assert.deepEqual(rows, ['day-a learning', 'day-a held-out', 'day-b learning', 'day-b held-out']);
    // The first session opens the stream: no recovery is measured for it, only for the boundary into day-b, per
    // track: at 20 ticks a second the shadow's 30 ticks (200..229, t 10..11.45) fall in the third 3-s period's last
    // second of labels (200..219, learning) and its withheld second (220..229, held-out). Learning row first.
    assert.doesNotMatch(text, /\n0 +day-a +session /);
    const recoveryRows = text.split('\n').filter((l) => /^\d+ +day-[ab] +session /.test(l)).map((l) => l.split(/ +/).slice(0, 4).join(' '));
    assert.deepEqual(recoveryRows, ['200 day-b session learning', '200 day-b session held-out']);
    assert.match(text, /recovery after each drift, per track/);
  });

  test('--protocol: a schedule across the session boundary, whole-session R2 per track with the references\' age, and a chosen range', async () => {
    const config = configFile('replay-protocol.yaml');
    const file = ndjsonFile('protocol.ndjson', 2000);
    const out = capture();
    // A1: day-a learned but for its last minute (held out: the error before the boundary), then the first minute of
    // day-b (1200 ticks), then nothing.
    const code = await replayCommand(['--config', config, '--protocol', 'A1', '--range', '70:90', '--quiet', file], { stdout: out.stream, stderr: capture().stream });
    assert.equal(code, 0);
    const text = out.text();
    assert.match(text, /protocol A1/);
    assert.match(text, /holdout: session 1: learning in the first 0\.6667 min; session 2 and later: learning in the first 1 min/);
    const row = (session: string, range: string, track: string) => {
      const line = text.split('\n').find((l) => new RegExp(`^${session} +${range} +${track} `).test(l));
      assert.ok(line, `${session} ${range} ${track} in\n${text}`);
      return line.trim().split(/ +/);
    };
    // Whole sessions: day-a learned on 800 ticks, its last 1200 held out; day-b's first 1200 learned, the other 800 held out.
    assert.equal(row('day-a', 'whole', 'learning')[3], '800');
    assert.equal(row('day-a', 'whole', 'held-out')[3], '1200');
    assert.equal(row('day-b', 'whole', 'learning')[3], '1200');
    const heldOut = row('day-b', 'whole', 'held-out');
    assert.equal(heldOut[3], '800');
    // The references repeat the last calibration label through the held-out block: mean age (1 + 800) / 2.
    assert.equal(heldOut[8], '400.5000');
    // The chosen range, seconds 70 to 90 of each session: 400 held-out ticks of each.
    assert.equal(row('day-a', '70-90s', 'held-out')[3], '400');
    assert.equal(row('day-b', '70-90s', 'held-out')[3], '400');
    const usage = capture();
    assert.equal(await replayCommand(['--config', config, '--protocol', 'Z', file], { stdout: capture().stream, stderr: usage.stream }), 2);
    assert.match(usage.text(), /--protocol must be one of A1, A2, A5, B, C, D/);
    assert.equal(await replayCommand(['--config', config, '--range', '9:3', file], { stdout: capture().stream, stderr: usage.stream }), 2);
    assert.match(usage.text(), /--range must be FROM:TO/);
  });

  test('a recovery ratio is printed only when the drift did real harm; otherwise the residual is the figure to read', () => {
    assert.equal(recoveryText({ recovery: 0.5, ePre: 1, eFrozen: 3 }), '50.0%');
    assert.equal(recoveryText({ recovery: null, ePre: 1, eFrozen: 0.9 }), '- (no harm)');
    // E_frozen 5 % above E_pre: the ratio would divide by noise (this is how 1581 % was once printed).
    assert.match(recoveryText({ recovery: 15.81, ePre: 1, eFrozen: 1.05 }), /little harm: E_frozen 5% above E_pre; read the residual/);
  });

  test('--to a running driftline: frames sent, the last tick confirmed; frames the server refuses make the exit code 1 with the counts', async () => {
    const server = spawnCli(['run', '--config', configFile('replay-to.yaml')]);
    try {
      const ready = await server.waitFor((l) => l.msg === 'driftline ready');
      const ingest = String(ready.ingest);
      const good = ndjsonFile('to-good.ndjson', 150);
      const err = capture();
      assert.equal(await replayCommand(['--to', ingest, '--binary', '--speed', 'fast', '--label-delay', '2', '--quiet', good], { stdout: capture().stream, stderr: err.stream }), 0, err.text());
      assert.match(err.text(), /sent 300 ticks, 300 labels and 2 session boundaries of stream 's1'/);
      assert.match(err.text(), /refused by the server: 0/);
      const metrics = String(ready.metrics);
      assert.equal(await metricValue(metrics, 'driftline_events_total{stream="s1",source="websocket"}'), 602);
      assert.equal(await metricValue(metrics, 'driftline_sessions_total{stream="s1"}'), 2);

      // A tick larger than one message may carry (the client's maxMessageBytes, 1 MiB, the server's maxPayload): refused
      // at the send and said, exit 1, instead of being sent again after every reconnect; the server serves on.
      // JSON frames: a binary frame holds at most 65,535 values a vector, so it stays under 1 MiB.
      const huge = ndjsonFile('to-huge.ndjson', 1, { channels: 100_000, stream: 's3' });
      const err3 = capture();
      assert.equal(await replayCommand(['--to', ingest, '--speed', 'fast', '--quiet', huge], { stdout: capture().stream, stderr: err3.stream }), 1);
      assert.match(err3.text(), /a frame of \d+ bytes \(stream 's3', seq \d+\) is larger than maxMessageBytes \(1048576\).*it was not sent/);

      const wide = ndjsonFile('to-wide.ndjson', 20, { channels: 5, stream: 's2' });
      const err2 = capture();
      assert.equal(await replayCommand(['--to', ingest, '--speed', 'fast', '--quiet', wide], { stdout: capture().stream, stderr: err2.stream }), 1);
      assert.match(err2.text(), /refused by the server: 40 \(dimension 40;/);
    } finally {
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);
    }
  });
  test('driftline run serves a batch of frames in one message like the frames sent alone, and refuses a batch past sources.websocket.maxFramesPerMessage whole', async () => {
    const config = parseConfig({
      streams: { inputSize: M, outputSize: 1, maxStreams: 4 },
      learner: { cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate' }, optimizer: { name: 'rmsprop', lr: 0.01 } },
      sources: { websocket: { host: '127.0.0.1', port: 0, maxFramesPerMessage: 3 } },
      evaluation: { window: 20, reportEvery: 5, recoveryTicks: 30 },
      drift: { detectors: [] },
      metrics: { port: 0 },
      log: { level: 'silent' },
    });
    const service = await startDriftline(config, { logger: createLogger({ level: 'silent' }) });
    try {
      const subscriber = await openWs(`${service.predictionsUrl}?type=prediction`);
      const predicted: string[] = [];
      subscriber.on('message', (d) => {
        const m = JSON.parse(d.toString()) as { stream: string; seq: number };
        predicted.push(`${m.stream}:${m.seq}`);
      });
      const sender = await openWs(service.ingestUrl);
      const replies: { reason: string; message: string }[] = [];
      sender.on('message', (d) => {
        const m = JSON.parse(d.toString()) as { type: string; reason: string; message: string };
        if (m.type === 'error') replies.push(m);
      });
      const tick = (stream: string, seq: number) => ({ kind: 'tick' as const, stream, seq, t: seq * 0.05, x: [seq, 1, 0, -1], y: [0.5] });
      sender.send(encodeJsonBatch([tick('a', 0), tick('b', 0), tick('a', 1)]));
      sender.send(encodeBinaryBatch([tick('b', 1), tick('a', 2)]));
      // Four frames: one more than this service takes in a message, so none of them is served.
      sender.send(encodeJsonBatch([tick('a', 3), tick('b', 2), tick('a', 4), tick('b', 3)]));
      const deadline = Date.now() + 10_000;
      while ((predicted.length < 5 || replies.length < 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(predicted, ['a:0', 'b:0', 'a:1', 'b:1', 'a:2']);
      assert.equal(replies.length, 1);
      assert.equal(replies[0]!.reason, 'malformed');
      assert.match(replies[0]!.message, /batch refused whole/);
      assert.equal(service.pipeline!.pool.peek('a')?.tick, 2, "stream a learned from its three served ticks only");
      sender.close();
      subscriber.close();
    } finally {
      await service.stop();
    }
    assert.equal(await service.stopped, 0);
  });

  test("driftline run with the online LRU: cell 'lru', rule 'online-lru' from the config, predicting and learning every tick", async () => {
    const run = await runLabelledTicks(
      { cell: { kind: 'lru', hiddenSize: 8, units: 4, layers: 2, rMin: 0.5, rMax: 0.99 }, credit: { rule: 'online-lru', mode: 'online' }, optimizer: { name: 'adam', lr: 0.003 } },
      'lru-stream',
    );
    assertLearnedEveryTick(run);
    assert.equal((run.spec as { cell: { kind: string } }).cell.kind, 'lru');
    assert.match(run.described, /lru H = 8, N = 4, 2 layers, online-lru \(online\)/);
  });

  test("driftline run with rule 'fpp' from the config: every tick predicted, then learned once, by the rule the config names", async () => {
    const run = await runLabelledTicks(
      { cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'fpp', window: 3, buffer: 50, updates: 2 }, optimizer: { name: 'adam', lr: 0.003 } },
      'fpp-stream',
    );
    assertLearnedEveryTick(run);
    assert.deepEqual((run.spec as { credit: unknown }).credit, { rule: 'fpp', window: 3, buffer: 50, updates: 2, lambda: 1, stateRate: 0.1, updateStates: true, schedule: { kind: 'fixed' } });
    assert.equal(run.described, 'tanh-rnn n = 8, fpp (T 3, N 50, M 2), adam lr 0.003');
  });

  test("driftline run with rule 'tbptt' from the config: every tick predicted, then learned once, a sweep every two labels", async () => {
    const run = await runLabelledTicks(
      { cell: { kind: 'gru', hiddenSize: 8 }, credit: { rule: 'tbptt', window: 4, every: 2 }, optimizer: { name: 'rmsprop', lr: 0.01 } },
      'tbptt-stream',
    );
    assertLearnedEveryTick(run);
    assert.deepEqual((run.spec as { credit: unknown }).credit, { rule: 'tbptt', window: 4, every: 2 });
    assert.equal(run.described, 'gru n = 8, tbptt (T 4, every 2), rmsprop lr 0.01');
  });
});
