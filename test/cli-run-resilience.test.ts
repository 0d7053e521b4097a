// `driftline run --config FILE` as a real process, on the edges of its life: a relative checkpoint dir found beside
// the config whatever the cwd, a second SIGTERM during the shutdown flush (flush finished, exit 1, no torn file),
// start-up failures as one clear stderr line with exit 2, refusals published to /predictions subscribers (and
// only to those whose filter matches), close code 1001 on a clean stop, idle eviction and lazy restore, and the
// resume handshake (hello, resume marks, duplicate refusal, ack) spoken with a raw ws client.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { WebSocket } from 'ws';
import { encodeJsonFrame } from '../src/adapters/websocket/frames.js';
import { CHECKPOINT_FILE_EXTENSION, CHECKPOINT_TEMP_PREFIX, FileCheckpointStore } from '../src/streams/file-checkpoint-store.js';
import { REPO, startDriftlineProcess, type DriftlineProcess } from './support/driftline-process.js';

type Json = Record<string, unknown>;

/** A fresh temp dir, removed when the test ends. */
function tmp(t: TestContext, prefix = 'driftline-resilience-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface ConfigParts {
  readonly streams?: string;
  readonly hiddenSize?: number;
  readonly websocket?: string;
  readonly metrics?: string;
  readonly checkpoint?: string;
  readonly log?: string;
}

/** A small run config as YAML in `dir`; ws and metrics on free loopback ports unless told otherwise. */
function writeConfig(dir: string, name: string, parts: ConfigParts = {}): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    [
      `streams: ${parts.streams ?? '{ inputSize: 4, outputSize: 1, maxStreams: 16 }'}`,
      'learner:',
      `  cell: { kind: tanh-rnn, hiddenSize: ${parts.hiddenSize ?? 8} }`,
      '  credit: { rule: immediate }',
      '  optimizer: { name: rmsprop, lr: 0.01 }',
      `sources: { websocket: ${parts.websocket ?? '{ host: 127.0.0.1, port: 0 }'} }`,
      'evaluation: { window: 20, reportEvery: 5, recoveryTicks: 30 }',
      'drift: { detectors: [] }',
      `metrics: ${parts.metrics ?? '{ host: 127.0.0.1, port: 0 }'}`,
      parts.checkpoint !== undefined ? `checkpoint: ${parts.checkpoint}` : '',
      `log: ${parts.log ?? '{ level: info }'}`,
      '',
    ].join('\n'),
  );
  return path;
}

/** The spawned process is killed when the test ends, whatever happened. */
function killAfter(t: TestContext, child: ChildProcess): void {
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
}

const TSX = import.meta.resolve('tsx');

interface RawRun {
  readonly child: ChildProcess;
  readonly stderr: () => string;
  readonly lines: () => Json[];
  readonly exited: Promise<number | null>;
  waitFor(predicate: (line: Json) => boolean, ms?: number): Promise<Json>;
}

/**
 * `node --import tsx <REPO>/src/cli/main.ts run --config CONFIG` started in `cwd` (anywhere: tsx is imported by
 * its resolved URL), with the raw stderr kept besides the parsed log lines.
 */
function spawnRun(config: string, cwd: string): RawRun {
  const child = spawn(process.execPath, ['--import', TSX, join(REPO, 'src/cli/main.ts'), 'run', '--config', config], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TSX_TSCONFIG_PATH: join(REPO, 'tsconfig.json') },
  });
  let text = '';
  let pending = '';
  const parsed: Json[] = [];
  const waiters = new Set<() => void>();
  child.stdout!.resume();
  child.stderr!.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    pending += chunk.toString();
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      try {
        parsed.push(JSON.parse(line) as Json);
      } catch {
        /* not a log line */
      }
    }
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return {
    child,
    stderr: () => text,
    lines: () => parsed,
    exited,
    waitFor(predicate, ms = 30_000) {
      return new Promise<Json>((res, rej) => {
        const check = () => {
          const found = parsed.find(predicate);
          if (found === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          res(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          rej(new Error(`timed out waiting for a log line; stderr so far:\n${text.slice(-2000)}`));
        }, ms);
        waiters.add(check);
        void exited.then(() => {
          if (!waiters.has(check)) return;
          waiters.delete(check);
          clearTimeout(timer);
          rej(new Error(`driftline exited before the awaited log line; stderr:\n${text.slice(-2000)}`));
        });
        check();
      });
    },
  };
}

/** A ws client whose every JSON message is kept in order from the first one (the hello on /ingest). */
interface Client {
  readonly ws: WebSocket;
  readonly messages: Json[];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the first message that satisfies `predicate` (also one already received). */
  next(predicate: (m: Json) => boolean, what: string, ms?: number): Promise<Json>;
}

async function connect(url: string): Promise<Client> {
  const ws = new WebSocket(url);
  const messages: Json[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data) => {
    messages.push(JSON.parse(data.toString()) as Json);
    for (const w of [...waiters]) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  return {
    ws,
    messages,
    closed,
    next(predicate, what, ms = 10_000) {
      return new Promise<Json>((res, rej) => {
        const check = () => {
          const found = messages.find(predicate);
          if (found === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          res(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          rej(new Error(`timed out waiting for ${what}; received ${JSON.stringify(messages.slice(-10))}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
  };
}

/** A producer on /ingest, connected once its hello has come. */
async function producer(url: string): Promise<Client> {
  const client = await connect(url);
  await client.next((m) => m.type === 'hello', 'the hello');
  return client;
}

function tick(stream: string, seq: number, label = true): string {
  const x = [Math.sin(seq), Math.cos(seq), 1, -1];
  return encodeJsonFrame({ kind: 'tick', stream, seq, t: seq * 0.05, x, ...(label ? { y: [Math.sin(0.3 * seq)] } : {}) });
}

/** Sends `{"type":"resume","streams":[stream]}` and waits for the answer: every frame sent before it is processed. */
async function marksOf(client: Client, streams?: string[]): Promise<Record<string, { seq: number; pendingLabels: number[] }>> {
  const before = client.messages.length;
  client.ws.send(JSON.stringify(streams === undefined ? { type: 'resume' } : { type: 'resume', streams }));
  const answer = await client.next((m) => m.type === 'resume' && client.messages.indexOf(m) >= before, 'the resume answer', 20_000);
  return answer.streams as Record<string, { seq: number; pendingLabels: number[] }>;
}

async function scrape(metricsUrl: string): Promise<string> {
  return (await fetch(metricsUrl)).text();
}

function metricIn(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000, every = 20): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

function startProcess(t: TestContext, config: string): Promise<DriftlineProcess> {
  return startDriftlineProcess(config).then((p) => {
    killAfter(t, p.child);
    return p;
  });
}

/** A TCP listener on a free loopback port, closed when the test ends. */
async function occupyPort(t: TestContext): Promise<number> {
  const server: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  t.after(() => new Promise<void>((res) => server.close(() => res())));
  return (server.address() as AddressInfo).port;
}

describe('driftline run: resilience (real process)', () => {
  test('a relative checkpoint.dir resolves against the config file\'s folder, not the cwd', { timeout: 60_000 }, async (t) => {
    const base = tmp(t);
    const confDir = join(base, 'conf');
    const cwd = join(base, 'elsewhere');
    mkdirSync(confDir);
    mkdirSync(cwd);
    const config = writeConfig(confDir, 'run.yaml', { checkpoint: '{ dir: ckpt }' });
    const run = spawnRun(config, cwd);
    killAfter(t, run.child);
    const found = await run.waitFor((l) => typeof l.msg === 'string' && /checkpoint\(s\) found/.test(l.msg));
    assert.equal(found.dir, join(confDir, 'ckpt'));
    const ready = await run.waitFor((l) => l.msg === 'driftline ready');

    const p = await producer(String(ready.ingest));
    for (let seq = 0; seq < 5; seq++) p.ws.send(tick('s1', seq));
    assert.equal((await marksOf(p, ['s1'])).s1.seq, 4);
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0, run.stderr());

    assert.deepEqual(readdirSync(cwd), [], 'nothing is written in the cwd');
    assert.ok(!existsSync(join(cwd, 'ckpt')));
    const files = readdirSync(join(confDir, 'ckpt'));
    assert.equal(files.filter((f) => f.endsWith(CHECKPOINT_FILE_EXTENSION)).length, 1, files.join(', '));
    const saved = await new FileCheckpointStore(join(confDir, 'ckpt')).loadAll();
    assert.deepEqual([...saved.keys()], ['s1']);
    assert.equal(saved.get('s1')!.meta.lastSeq, 4);
  });

  test('a second SIGTERM during the shutdown flush: the flush finishes, every stream has a whole checkpoint, exit 1', { timeout: 120_000 }, async (t) => {
    const dir = tmp(t);
    const STREAMS = 300;
    const TICKS = 4;
    // everySeconds far away: the checkpoints are all written by the shutdown flush.
    const config = writeConfig(dir, 'run.yaml', {
      streams: '{ inputSize: 4, outputSize: 1, maxStreams: 1000 }',
      hiddenSize: 64,
      checkpoint: '{ dir: ckpt, everySeconds: 600 }',
    });
    const cli = await startProcess(t, config);
    const p = await producer(cli.ingest);
    for (let seq = 0; seq < TICKS; seq++) for (let s = 0; s < STREAMS; s++) p.ws.send(tick(`s${s}`, seq));
    const marks = await marksOf(p);
    assert.equal(Object.keys(marks).length, STREAMS);
    assert.ok(Object.values(marks).every((m) => m.seq === TICKS - 1));

    cli.child.kill('SIGTERM');
    await until(() => cli.log().some((l) => typeof l.msg === 'string' && l.msg.startsWith('driftline stopping')), "the 'driftline stopping' line", 10_000, 1);
    cli.child.kill('SIGTERM');
    const code = await cli.exited;
    const log = cli.log();
    const second = log.findIndex((l) => typeof l.msg === 'string' && /second signal/.test(l.msg));
    const stopped = log.findIndex((l) => l.msg === 'driftline stopped');
    assert.ok(second >= 0, `a log line about the second signal: ${JSON.stringify(log.slice(-5))}`);
    assert.ok(stopped > second, 'the second signal came during the flush, which then finished');
    assert.equal(code, 1);
    assert.equal(log[stopped].checkpointsFailed, 0);
    assert.ok(Number(log[stopped].checkpointsSaved) >= STREAMS);

    const ckpt = join(dir, 'ckpt');
    // Before loadAll, which would remove temp leftovers.
    assert.deepEqual(readdirSync(ckpt).filter((f) => f.startsWith(CHECKPOINT_TEMP_PREFIX)), []);
    const saved = await new FileCheckpointStore(ckpt).loadAll();
    assert.equal(saved.size, STREAMS);
    for (let s = 0; s < STREAMS; s++) assert.equal(saved.get(`s${s}`)?.meta.lastSeq, TICKS - 1, `s${s}`);
  });

  describe('start-up failures: one line on stderr, exit 2, no stack trace', () => {
    const expectOneLine = async (t: TestContext, config: string, names: string) => {
      const run = spawnRun(config, REPO);
      killAfter(t, run.child);
      const code = await run.exited;
      const text = run.stderr();
      assert.equal(code, 2, text);
      const lines = text.split('\n').filter((l) => l.trim().length > 0);
      assert.equal(lines.length, 1, text);
      assert.ok(lines[0].startsWith('driftline run:'), lines[0]);
      assert.ok(lines[0].includes(names), `'${lines[0]}' names ${names}`);
      assert.doesNotMatch(text, /^\s*at /m);
      assert.doesNotMatch(text, /driftline ready/);
    };

    test('the ws port already in use', { timeout: 60_000 }, async (t) => {
      const port = await occupyPort(t);
      await expectOneLine(t, writeConfig(tmp(t), 'run.yaml', { websocket: `{ host: 127.0.0.1, port: ${port} }` }), `:${port}`);
    });

    test('the metrics port already in use', { timeout: 60_000 }, async (t) => {
      const port = await occupyPort(t);
      await expectOneLine(t, writeConfig(tmp(t), 'run.yaml', { metrics: `{ host: 127.0.0.1, port: ${port} }` }), `:${port}`);
    });

    test('sources.websocket.host 0.0.0.0 without a token', { timeout: 60_000 }, async (t) => {
      await expectOneLine(t, writeConfig(tmp(t), 'run.yaml', { websocket: '{ host: 0.0.0.0, port: 0 }' }), '0.0.0.0');
    });

    test('metrics.host 0.0.0.0 without any token', { timeout: 60_000 }, async (t) => {
      await expectOneLine(t, writeConfig(tmp(t), 'run.yaml', { metrics: '{ host: 0.0.0.0, port: 0 }' }), '0.0.0.0');
    });

    test('checkpoint.dir under /proc', { timeout: 60_000 }, async (t) => {
      await expectOneLine(t, writeConfig(tmp(t), 'run.yaml', { checkpoint: '{ dir: /proc/driftline-test/x }' }), '/proc/driftline-test/x');
    });
  });

  test('subscribers get error messages for refused input, unless their stream filter leaves the stream out', { timeout: 60_000 }, async (t) => {
    const dir = tmp(t);
    const cli = await startProcess(t, writeConfig(dir, 'run.yaml'));
    const all = await connect(cli.predictions);
    const onlyOther = await connect(`${cli.predictions}?stream=other`);
    const p = await producer(cli.ingest);
    // Refused at the edge (3 inputs where the streams have 4), then by the pipeline (a duplicate).
    p.ws.send(JSON.stringify({ stream: 's', seq: 0, t: 0, x: [1, 2, 3], y: [0] }));
    p.ws.send(tick('s', 1));
    p.ws.send(tick('s', 1));
    p.ws.send(tick('other', 0));
    const reply = await p.next((m) => m.type === 'error' && m.reason === 'dimension', 'the dimension reply to the producer');
    assert.equal(reply.stream, 's');
    await p.next((m) => m.type === 'error' && m.reason === 'duplicate', 'the duplicate reply to the producer');
    // Messages on one socket keep their order: once 'other' is predicted, every error before it has come.
    const otherPredicted = (m: Json) => m.type === 'prediction' && m.stream === 'other';
    await all.next(otherPredicted, "the prediction of 'other' (unfiltered)");
    await onlyOther.next(otherPredicted, "the prediction of 'other' (filtered)");

    const errors = all.messages.filter((m) => m.type === 'error');
    assert.deepEqual(
      errors.map((m) => [m.reason, m.stream, m.seq]),
      [
        ['dimension', 's', 0],
        ['duplicate', 's', 1],
      ],
      'the unfiltered subscriber gets both refusals, with reason, stream and seq',
    );
    assert.ok(errors.every((m) => typeof m.message === 'string' && m.message.length > 0));
    assert.deepEqual(onlyOther.messages.filter((m) => m.type === 'error'), [], "a subscriber to 'other' gets no refusal about 's'");
    assert.ok(!onlyOther.messages.some((m) => m.stream === 's'));
    cli.child.kill('SIGTERM');
    assert.equal(await cli.exited, 0);
  });

  test('a clean stop closes producer and subscriber sockets with 1001, not 1006', { timeout: 60_000 }, async (t) => {
    const cli = await startProcess(t, writeConfig(tmp(t), 'run.yaml'));
    const sub = await connect(cli.predictions);
    const p = await producer(cli.ingest);
    p.ws.send(tick('s', 0));
    await sub.next((m) => m.type === 'prediction', 'a prediction');
    cli.child.kill('SIGTERM');
    const [producerClose, subscriberClose] = await Promise.all([p.closed, sub.closed]);
    assert.equal(producerClose.code, 1001);
    assert.equal(subscriberClose.code, 1001);
    assert.equal(await cli.exited, 0);
  });

  test('an idle stream is checkpointed and evicted, and its next tick restores it where it was', { timeout: 60_000 }, async (t) => {
    const dir = tmp(t);
    const cli = await startProcess(t, writeConfig(dir, 'run.yaml', { streams: '{ inputSize: 4, outputSize: 1, maxStreams: 16, idleSeconds: 1 }', checkpoint: '{ dir: ckpt }' }));
    const sub = await connect(`${cli.predictions}?stream=s&type=prediction`);
    const p = await producer(cli.ingest);
    for (let seq = 0; seq < 5; seq++) p.ws.send(tick('s', seq));
    const last = await sub.next((m) => m.seq === 4, 'the prediction of tick 4');
    assert.equal(metricIn(await scrape(cli.metrics), 'driftline_streams'), 1);

    await new Promise((r) => setTimeout(r, 2500));
    const text = await scrape(cli.metrics);
    assert.ok((metricIn(text, 'driftline_streams_evicted_total') ?? 0) >= 1, text);
    assert.equal(metricIn(text, 'driftline_streams'), 0);

    p.ws.send(tick('s', 5));
    const next = await sub.next((m) => m.seq === 5, 'the prediction of tick 5');
    // Each labelled tick is one update: the version goes on from where the evicted learner was.
    assert.equal(next.version, Number(last.version) + 1);
    assert.equal(Number(last.version), 4);
    await until(async () => metricIn(await scrape(cli.metrics), 'driftline_streams_restored_total') === 1, 'driftline_streams_restored_total 1');
    assert.equal(metricIn(await scrape(cli.metrics), 'driftline_streams'), 1);
    cli.child.kill('SIGTERM');
    assert.equal(await cli.exited, 0);
  });

  describe('the resume handshake with a raw ws client', () => {
    test('without a checkpoint block the hello says durable: false', { timeout: 60_000 }, async (t) => {
      const cli = await startProcess(t, writeConfig(tmp(t), 'run.yaml'));
      const c = await connect(cli.ingest);
      const hello = await c.next(() => true, 'the first message');
      assert.equal(hello.type, 'hello');
      assert.equal(hello.durable, false);
      assert.equal(hello.protocol, 1);
      assert.equal(typeof hello.instance, 'string');
      cli.child.kill('SIGTERM');
      assert.equal(await cli.exited, 0);
    });

    test('with checkpoints: durable hello, resume marks, duplicate refused, ack after the checkpoint', { timeout: 60_000 }, async (t) => {
      const cli = await startProcess(t, writeConfig(tmp(t), 'run.yaml', { checkpoint: '{ dir: ckpt, everySeconds: 0.5 }' }));
      const c = await connect(cli.ingest);
      const hello = await c.next(() => true, 'the first message');
      assert.equal(hello.type, 'hello');
      assert.equal(hello.durable, true);
      assert.equal(c.messages[0], hello);

      for (let seq = 0; seq < 10; seq++) c.ws.send(tick('s', seq));
      c.ws.send(JSON.stringify({ type: 'resume', streams: ['s', 'unknown'] }));
      const answer = await c.next((m) => m.type === 'resume', 'the resume answer');
      assert.deepEqual(answer, {
        type: 'resume',
        streams: { s: { seq: 9, pendingLabels: [] }, unknown: { seq: -1, pendingLabels: [] } },
      });

      c.ws.send(tick('s', 5));
      const error = await c.next((m) => m.type === 'error', 'the duplicate reply');
      assert.equal(error.reason, 'duplicate');
      assert.equal(error.stream, 's');
      assert.equal(error.seq, 5);

      const ack = await c.next((m) => m.type === 'ack' && m.seq === 9, 'an ack of seq 9', 5000);
      assert.deepEqual(ack, { type: 'ack', stream: 's', seq: 9, pendingLabels: [] });
      assert.ok(c.messages.filter((m) => m.type === 'ack').every((m) => m.stream === 's' && Number(m.seq) <= 9));
      cli.child.kill('SIGTERM');
      assert.equal(await cli.exited, 0);
    });
  });
});
