// The resume protocol under fire (issue 14): the ingest client sends 20,000 ticks on 4 streams (one with labels
// 3 ticks late, inputs normalized) while the `driftline run` process is killed with SIGKILL at least 5 times at
// random moments and started again. At the end every stream's checkpoint (learner snapshot and operator state) is
// byte-identical to that of an uninterrupted run, every (stream, seq) reached a subscriber at least once, every
// repeat is marked `replayed`, and no tick was learned twice (updates equal ticks).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { WebSocket } from 'ws';
import { createIngestClient, type IngestClient } from '../../src/adapters/websocket/client.js';
import type { IngestFrame } from '../../src/adapters/websocket/frames.js';
import { FileCheckpointStore } from '../../src/streams/file-checkpoint-store.js';
import type { StoredCheckpoint } from '../../src/streams/checkpoint-store.js';
import { mulberry32, startDriftlineProcess as startServer } from '../support/driftline-process.js';

const work = mkdtempSync(join(tmpdir(), 'driftline-chaos-'));
after(() => rmSync(work, { recursive: true, force: true }));

const STREAMS = ['s0', 's1', 's2', 'late'];
const TICKS_PER_STREAM = 5000;
const LABEL_DELAY = 3;
const INPUTS = 4;

/** The same frames for both runs: ticks interleaved over the streams, a session boundary half way, late labels. */
function frames(): IngestFrame[] {
  const rand = mulberry32(7);
  const out: IngestFrame[] = [];
  for (let seq = 0; seq < TICKS_PER_STREAM; seq++) {
    for (const [i, stream] of STREAMS.entries()) {
      const t = seq * 0.02;
      if (seq === TICKS_PER_STREAM / 2) out.push({ kind: 'session', stream, seq, t, session: 'day-2' });
      const x = Array.from({ length: INPUTS }, (_, c) => Math.sin(t * (1 + c) + i) + 0.1 * (rand() - 0.5) + (seq > TICKS_PER_STREAM / 2 ? 0.5 : 0));
      const y = [Math.sin(t * 1.5 + i) * 2 + x[0]!];
      if (stream === 'late') {
        out.push({ kind: 'tick', stream, seq, t, x });
        if (seq >= LABEL_DELAY) out.push({ kind: 'label', stream, seq: seq - LABEL_DELAY, y: lateLabel(seq - LABEL_DELAY, i) });
      } else {
        out.push({ kind: 'tick', stream, seq, t, x, y });
      }
    }
  }
  return out;
}

function lateLabel(seq: number, i: number): number[] {
  return [Math.cos(seq * 0.02 * 1.5 + i)];
}

function configFile(name: string, dir: string, shards = 1): string {
  const path = join(work, name);
  writeFileSync(
    path,
    [
      `streams: { inputSize: ${INPUTS}, outputSize: 1, maxStreams: 8, shards: ${shards} }`,
      'learner:',
      '  cell: { kind: tanh-rnn, hiddenSize: 16 }',
      '  credit: { rule: immediate, lambda: 0.5 }',
      '  optimizer: { name: rmsprop, lr: 0.01 }',
      '  maxLabelDelay: 8',
      'sources: { websocket: { host: 127.0.0.1, port: 0 } }',
      'evaluation: { window: 50, reportEvery: 50, recoveryTicks: 100, normalizeInputs: true }',
      'drift: { detectors: [] }',
      `checkpoint: { dir: ${JSON.stringify(dir)}, everySeconds: 0.25 }`,
      'metrics: { port: 0 }',
      'log: { level: info }',
    ].join('\n'),
  );
  return path;
}

/** Every prediction a subscriber receives: (stream:seq) -> the replayed flag of each copy. */
type Seen = Map<string, boolean[]>;

async function subscribe(url: string, seen: Seen): Promise<WebSocket> {
  const ws = new WebSocket(`${url}?type=prediction`);
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString()) as { type: string; stream: string; seq: number; replayed?: boolean };
    if (m.type !== 'prediction') return;
    const key = `${m.stream}:${m.seq}`;
    const copies = seen.get(key) ?? [];
    copies.push(m.replayed === true);
    seen.set(key, copies);
  });
  ws.on('error', () => {});
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  return ws;
}

/** Sends every frame, paced so that the run lasts a few seconds; `between` runs after each batch. */
async function produce(client: IngestClient, all: IngestFrame[], between: () => Promise<void>): Promise<void> {
  for (let i = 0; i < all.length; i += 200) {
    for (const f of all.slice(i, i + 200)) client.send(f);
    await between();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function finalCheckpoints(dir: string): Promise<Map<string, StoredCheckpoint>> {
  return new FileCheckpointStore(dir).loadAll();
}

// The chaos run also runs in 2 shards (worker threads writing one checkpoint directory) against the same
// single-thread reference: same seeds, same bytes, whatever the threads.
for (const shards of [1, 2]) test(`SIGKILL at random moments, ${shards} shard${shards > 1 ? 's' : ''}: the same bytes as an uninterrupted single-thread run, nothing lost, nothing learned twice`, { timeout: 240_000 }, async (t) => {
  const all = frames();

  // The reference: one uninterrupted run.
  const refDir = join(work, `ref-checkpoints-${shards}`);
  const refServer = await startServer(configFile(`ref-${shards}.yaml`, refDir));
  const refClient = createIngestClient({ url: refServer.ingest, binary: true, initialBackoffMs: 50, maxBackoffMs: 200 });
  await produce(refClient, all, () => sleep(1));
  await refClient.settled();
  await refClient.close();
  refServer.child.kill('SIGTERM');
  assert.equal(await refServer.exited, 0);
  const reference = await finalCheckpoints(refDir);
  assert.deepEqual([...reference.keys()].sort(), [...STREAMS].sort());

  // The chaos run.
  const dir = join(work, `chaos-checkpoints-${shards}`);
  const config = configFile(`chaos-${shards}.yaml`, dir, shards);
  const seen: Seen = new Map();
  let server = await startServer(config);
  let subscriber = await subscribe(server.predictions, seen);
  let url = server.ingest;
  const client = createIngestClient({ url: () => url, binary: true, initialBackoffMs: 50, maxBackoffMs: 200, random: mulberry32(3) });
  const duplicates: number[] = [];
  client.errors.subscribe((e) => {
    if (e.reason === 'duplicate') duplicates.push(e.seq ?? -1);
    else assert.fail(`unexpected refusal: ${e.reason}: ${e.message}`);
  });
  const rand = mulberry32(11);
  const logs: Record<string, unknown>[][] = [];
  let kills = 0;
  let nextKillAt = 600 + rand() * 900;
  let upSince = Date.now();
  /** SIGKILL, then a new process on a new port: the subscriber first, then the producer finds the new address. */
  const killAndRestart = async () => {
    server.child.kill('SIGKILL');
    await server.exited;
    kills++;
    logs.push(server.log());
    subscriber.terminate();
    server = await startServer(config);
    // No prediction is made before someone listens.
    subscriber = await subscribe(server.predictions, seen);
    url = server.ingest;
    upSince = Date.now();
  };
  await produce(client, all, async () => {
    await sleep(12);
    if (Date.now() - upSince < nextKillAt) return;
    await killAndRestart();
    nextKillAt = 300 + rand() * 900;
  });
  // The producer may have finished before five kills: kill the idle server too, it must come back the same.
  while (kills < 5) {
    await sleep(100 + rand() * 300);
    await killAndRestart();
  }
  await client.settled();
  await client.close();
  await sleep(200);
  subscriber.close();
  logs.push(server.log());
  server.child.kill('SIGTERM');
  assert.equal(await server.exited, 0);
  const chaos = await finalCheckpoints(dir);

  // Same bytes: learner and every operator part.
  for (const stream of STREAMS) {
    const a = reference.get(stream)!;
    const b = chaos.get(stream);
    assert.ok(b, `stream ${stream} has a checkpoint after the chaos run`);
    assert.equal(b.meta.lastSeq, TICKS_PER_STREAM - 1, `${stream}: every tick processed`);
    assert.equal(b.meta.version, a.meta.version, `${stream}: updates`);
    assert.ok(Buffer.from(b.snapshot).equals(Buffer.from(a.snapshot)), `${stream}: learner snapshot byte-identical to the uninterrupted run`);
    assert.deepEqual([...(b.parts ?? new Map()).keys()].sort(), [...(a.parts ?? new Map()).keys()].sort());
    for (const [name, bytes] of a.parts ?? new Map<string, Uint8Array>()) {
      assert.ok(Buffer.from(b.parts!.get(name)!).equals(Buffer.from(bytes)), `${stream}: part ${name} byte-identical`);
    }
  }
  // No tick learned twice: one update per labelled tick (the late stream's last labels never come).
  for (const stream of STREAMS) {
    const labelled = stream === 'late' ? TICKS_PER_STREAM - LABEL_DELAY : TICKS_PER_STREAM;
    assert.equal(chaos.get(stream)!.meta.version, labelled, `${stream}: updates equal labelled ticks`);
  }
  // Every (stream, seq) reached a subscriber; every repeat is marked replayed.
  let repeats = 0;
  let replayedMarks = 0;
  for (const stream of STREAMS) {
    for (let seq = 0; seq < TICKS_PER_STREAM; seq++) {
      const copies = seen.get(`${stream}:${seq}`);
      assert.ok(copies && copies.length > 0, `${stream}:${seq} was predicted`);
      if (copies.length > 1) {
        repeats += copies.length - 1;
        assert.ok(
          copies.slice(1).every((r) => r),
          `${stream}:${seq}: every repeat carries replayed (${JSON.stringify(copies)}); restarts: ` +
            JSON.stringify(logs.map((run) => run.filter((l) => l.stream === stream || l.streamsBehindLastRun !== undefined).map((l) => [l.msg, l.rollbackTicks, l.checkpointSeq, l.previousRunPredictedUpTo]))),
        );
      }
      replayedMarks += copies.filter((r) => r).length;
    }
  }
  const rollbacks = logs.flat().filter((l) => typeof l.rollbackTicks === 'number').map((l) => Number(l.rollbackTicks));
  t.diagnostic(
    `chaos: ${kills} SIGKILLs, ${client.stats.connects} connects, ${client.stats.resent} frames re-sent, ` +
      `${duplicates.length} duplicate ticks refused, ${repeats} repeated predictions (${replayedMarks} marked replayed), ` +
      `rollback per restored stream (ticks): ${rollbacks.join(',') || 'none'}; final snapshots equal the uninterrupted run`,
  );
  assert.ok(kills >= 5);
});
