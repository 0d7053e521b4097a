// `driftline run` with `streams.shards: 2`: streams learned in two worker threads while the main thread keeps the
// sockets. The same recorded feed through 1 and 2 shards leaves byte-identical learners and parts in every stream's
// checkpoint, and every prediction reaches the subscriber once, in per-stream order; a refusal made in a shard goes
// back to the peer that sent the input; /metrics merges the shards' series with the main thread's; resume marks
// come from every shard; a shard killed mid-stream is restarted and counted, its producer resumes from the
// checkpoints, and the final learners equal those of a run nobody killed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { createIngestClient } from '../src/adapters/websocket/client.js';
import { encodeJsonFrame, type IngestFrame } from '../src/adapters/websocket/frames.js';
import { parseConfig, type DriftlineConfig } from '../src/cli/config.js';
import { createLogger } from '../src/cli/logger.js';
import { startDriftline, type RunningDriftline } from '../src/cli/run.js';
import { shardOf } from '../src/cli/service/shard-of.js';
import { FileCheckpointStore } from '../src/streams/file-checkpoint-store.js';

const work = mkdtempSync(join(tmpdir(), 'driftline-shards-'));
after(() => rmSync(work, { recursive: true, force: true }));
let dirs = 0;

const STREAMS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];
const TICKS = 400;
const N_IN = 4;

function config(shards: number, extra: Record<string, unknown> = {}): DriftlineConfig {
  return parseConfig({
    streams: { inputSize: N_IN, outputSize: 1, maxStreams: 16, shards },
    learner: { cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate' }, optimizer: { name: 'rmsprop', lr: 0.01 } },
    sources: { websocket: { host: '127.0.0.1', port: 0 } },
    evaluation: { window: 20, reportEvery: 10, recoveryTicks: 30, normalizeInputs: true },
    drift: { detectors: [{ kind: 'page-hinkley' }] },
    metrics: { port: 0 },
    log: { level: 'silent' },
    checkpoint: { dir: join(work, `ckpt-${++dirs}`), everyTicks: 25, everySeconds: 60 },
    ...extra,
  });
}

/** A deterministic feed: per stream, ticks with a label in the frame, every 7th label sent late, a declared session. */
function feed(): IngestFrame[] {
  const frames: IngestFrame[] = [];
  const late: { due: number; frame: IngestFrame }[] = [];
  for (let k = 0; k < TICKS; k++) {
    STREAMS.forEach((stream, s) => {
      const phase = (s + 1) * 0.37;
      const x = Array.from({ length: N_IN }, (_, i) => Math.sin(0.11 * k * (i + 1) + phase));
      const y = [Math.sin(0.11 * k + phase + (k >= TICKS / 2 ? 1 : 0))];
      if (k === TICKS / 2) frames.push({ kind: 'session', stream, seq: k, t: k * 0.05, session: 'day-2' });
      if (k % 7 === 3) {
        frames.push({ kind: 'tick', stream, seq: k, t: k * 0.05, x });
        late.push({ due: k + 3, frame: { kind: 'label', stream, seq: k, y } });
      } else frames.push({ kind: 'tick', stream, seq: k, t: k * 0.05, x, y });
    });
    for (let i = late.length - 1; i >= 0; i--) {
      if (late[i]!.due > k) continue;
      frames.push(late[i]!.frame);
      late.splice(i, 1);
    }
  }
  for (const { frame } of late) frames.push(frame);
  return frames;
}

async function start(c: DriftlineConfig): Promise<RunningDriftline> {
  return startDriftline(c, { logger: createLogger({ level: 'silent' }), dashboard: true });
}

/** Subscribes to predictions; resolves once `count` predictions arrived (or rejects after `ms`). */
function subscribe(url: string): { predictions: { stream: string; seq: number; replayed?: boolean }[]; ready: Promise<void>; close(): void } {
  const ws = new WebSocket(`${url}?types=prediction`);
  const predictions: { stream: string; seq: number; replayed?: boolean }[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as { type: string; stream: string; seq: number; replayed?: boolean };
    if (m.type === 'prediction') predictions.push({ stream: m.stream, seq: m.seq, ...(m.replayed ? { replayed: true } : {}) });
  });
  return { predictions, ready: new Promise((resolve) => ws.once('open', () => resolve())), close: () => ws.close() };
}

async function until(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every stream's final checkpoint: learner snapshot and operator parts, as comparable byte arrays. */
async function finalState(dir: string): Promise<Map<string, { lastSeq: number; snapshot: Buffer; parts: [string, Buffer][] }>> {
  const all = await new FileCheckpointStore(dir).loadAll();
  return new Map(
    [...all].map(([stream, c]) => [
      stream,
      { lastSeq: c.meta.lastSeq, snapshot: Buffer.from(c.snapshot), parts: [...(c.parts ?? new Map())].map(([k, v]) => [k, Buffer.from(v)] as [string, Buffer]).sort() },
    ]),
  );
}

/** Runs the feed through a service of `shards`; returns the subscriber's predictions and the final checkpoints. */
async function runFeed(shards: number) {
  const c = config(shards);
  const service = await start(c);
  const sub = subscribe(service.predictionsUrl);
  await sub.ready;
  const client = createIngestClient({ url: service.ingestUrl });
  const frames = feed();
  for (const f of frames) client.send(f);
  const ticks = frames.filter((f) => f.kind === 'tick').length;
  await until(() => sub.predictions.length >= ticks, `${ticks} predictions`);
  await client.settled();
  await client.close();
  sub.close();
  await service.stop();
  return { predictions: sub.predictions, state: await finalState(c.checkpoint!.dir), ticks };
}

describe('driftline run with shards', () => {
  test('the feed spreads over both shards', () => {
    const counts = [0, 0];
    for (const s of STREAMS) counts[shardOf(s, 2)]!++;
    assert.ok(counts[0]! > 0 && counts[1]! > 0, `streams per shard: ${counts.join(', ')}`);
  });

  test('1 and 2 shards: byte-identical checkpoints, every prediction once and in per-stream order', async () => {
    const one = await runFeed(1);
    const two = await runFeed(2);
    assert.equal(one.state.size, STREAMS.length);
    assert.deepEqual([...two.state.keys()].sort(), [...one.state.keys()].sort());
    for (const [stream, a] of one.state) {
      const b = two.state.get(stream)!;
      assert.equal(b.lastSeq, a.lastSeq, `${stream}: lastSeq`);
      assert.ok(a.snapshot.equals(b.snapshot), `${stream}: learner snapshot differs between 1 and 2 shards`);
      assert.deepEqual(b.parts.map(([k]) => k), a.parts.map(([k]) => k), `${stream}: parts`);
      for (let i = 0; i < a.parts.length; i++) assert.ok(a.parts[i]![1].equals(b.parts[i]![1]), `${stream}: part ${a.parts[i]![0]} differs`);
    }
    for (const run of [one, two]) {
      assert.equal(run.predictions.length, run.ticks, 'one prediction per tick');
      for (const stream of STREAMS) {
        const seqs = run.predictions.filter((p) => p.stream === stream).map((p) => p.seq);
        assert.deepEqual(seqs, Array.from({ length: TICKS }, (_, k) => k), `${stream}: predictions in order, none twice`);
      }
    }
  });

  test('refusals in a shard reach their sender; /metrics merges the shards; resume marks come from every shard', async () => {
    const c = config(2);
    const service = await start(c);
    try {
      const peer = new WebSocket(service.ingestUrl);
      const replies: Record<string, unknown>[] = [];
      peer.on('message', (d) => replies.push(JSON.parse(String(d)) as Record<string, unknown>));
      await new Promise((r) => peer.once('open', r));
      const x = [0.1, 0.2, 0.3, 0.4];
      for (const stream of STREAMS) for (let k = 0; k < 5; k++) peer.send(encodeJsonFrame({ kind: 'tick', stream, seq: k, t: k, x, y: [0.5] }));
      // The edge does not check order (the pipeline knows restored marks): a duplicate is refused in its shard.
      const first = STREAMS.find((s) => shardOf(s, 2) === 0)!;
      const second = STREAMS.find((s) => shardOf(s, 2) === 1)!;
      peer.send(encodeJsonFrame({ kind: 'tick', stream: first, seq: 2, t: 9, x }));
      peer.send(encodeJsonFrame({ kind: 'tick', stream: second, seq: 1, t: 9, x }));
      await until(() => replies.filter((r) => r.type === 'error').length >= 2, 'two refusals');
      const errors = replies.filter((r) => r.type === 'error');
      assert.deepEqual(errors.map((e) => [e.stream, e.seq, e.reason]).sort(), [[first, 2, 'duplicate'], [second, 1, 'duplicate']].sort());

      peer.send(JSON.stringify({ type: 'resume' }));
      await until(() => replies.some((r) => r.type === 'resume'), 'resume marks');
      const marks = (replies.find((r) => r.type === 'resume')!.streams ?? {}) as Record<string, { seq: number }>;
      assert.deepEqual(Object.keys(marks).sort(), [...STREAMS].sort());
      for (const stream of STREAMS) assert.equal(marks[stream]!.seq, 4, `${stream}: mark`);

      const text = await (await fetch(service.metricsUrl)).text();
      const value = (series: string) => {
        const line = text.split('\n').find((l) => l.startsWith(series + ' '));
        return line === undefined ? undefined : Number(line.slice(series.length + 1));
      };
      assert.equal(value('driftline_streams'), STREAMS.length, 'live streams summed over shards');
      assert.equal(value('driftline_shard_restarts_total'), 0);
      for (const stream of STREAMS) {
        const sent = stream === first || stream === second ? 6 : 5;
        assert.match(text, new RegExp(`driftline_events_total\\{stream="${stream}",source="websocket"\\} ${sent}\\b`), `${stream}: events counted at the edge`);
        assert.match(text, new RegExp(`driftline_updates_total\\{stream="${stream}"\\} 5\\b`), `${stream}: updates counted in its shard`);
      }
      assert.match(text, /driftline_events_rejected_total\{reason="duplicate"\} 2\b/);
      assert.equal(text.split('\n').filter((l) => l.startsWith('# TYPE process_cpu_user_seconds_total')).length, 1, 'process series once');

      // The dashboard shows streams of both shards, with their learners' state bytes.
      const dashboardUrl = service.metricsUrl.replace(/\/metrics$/, '/dashboard/api/streams');
      let listed: { stream: string; info: { stateBytes: number } | null }[] = [];
      await until(() => {
        void fetch(dashboardUrl).then(async (r) => (listed = ((await r.json()) as { streams: typeof listed }).streams));
        return listed.length === STREAMS.length && listed.every((s) => s.info !== null);
      }, 'every stream on the dashboard');
      assert.deepEqual(listed.map((s) => s.stream).sort(), [...STREAMS].sort());
      assert.ok(listed.every((s) => s.info!.stateBytes > 0));
      peer.close();
    } finally {
      await service.stop();
    }
  });

  test('a shard killed mid-stream is restarted and counted; the producer resumes and nothing is lost or learned twice', async () => {
    const reference = await runFeed(1);
    const c = config(2);
    const service = await start(c);
    const sub = subscribe(service.predictionsUrl);
    await sub.ready;
    const client = createIngestClient({ url: service.ingestUrl, initialBackoffMs: 20, maxBackoffMs: 200 });
    const frames = feed();
    const half = Math.floor(frames.length / 2);
    for (const f of frames.slice(0, half)) client.send(f);
    await until(() => sub.predictions.length >= half / 2, 'predictions before the kill');
    const victim = shardOf('alpha', 2);
    await service.shards!.workerOf(victim).terminate();
    await until(() => service.shards!.restarts === 1, 'the restart');
    const victimStreams = STREAMS.filter((s) => shardOf(s, 2) === victim);
    for (const f of frames.slice(half)) client.send(f);
    await client.settled();
    await until(() => {
      const seen = new Set(sub.predictions.map((p) => `${p.stream}:${p.seq}`));
      return seen.size >= reference.ticks;
    }, 'a prediction for every tick');
    const text = await (await fetch(service.metricsUrl)).text();
    assert.match(text, /driftline_shard_restarts_total 1\b/);
    await client.close();
    sub.close();
    await service.stop();
    assert.ok(client.stats.connects >= 2, 'the producer was disconnected and came back');

    const state = await finalState(c.checkpoint!.dir);
    for (const [stream, a] of reference.state) {
      const b = state.get(stream)!;
      assert.equal(b.lastSeq, a.lastSeq, `${stream}: lastSeq`);
      assert.ok(a.snapshot.equals(b.snapshot), `${stream}: learner differs from the run nobody killed`);
    }
    // Repeats only for the killed shard's streams, and only marked as replays.
    assert.ok(victimStreams.length > 0);
    let repeats = 0;
    const counts = new Map<string, number>();
    for (const p of sub.predictions) {
      const key = `${p.stream}:${p.seq}`;
      const n = (counts.get(key) ?? 0) + 1;
      counts.set(key, n);
      if (n > 1) {
        repeats++;
        assert.equal(shardOf(p.stream, 2), victim, `${key} repeated outside the killed shard`);
        assert.equal(p.replayed, true, `${key} repeated without being marked replayed`);
      }
    }
    // The shard had predicted past its last checkpoint (every 25 ticks) when it died: those ticks came again.
    assert.ok(repeats > 0, 'no tick was predicted again after the restart: the kill did not land mid-stream');
  });
});
