import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import {
  IngestValidator,
  decodeFrame,
  decodeIngestMessageFrames,
  encodeBinaryBatch,
  encodeBinaryFrame,
  encodeJsonBatch,
  encodeJsonFrame,
  encodeOutbound,
  type IngestFrame,
  type OutboundMessage,
  type IngestMessage,
  type StreamShape,
} from '../src/adapters/websocket/frames.js';
import {
  MAX_SUBSCRIBER_BATCH_CHARS,
  MAX_SUBSCRIBER_BATCH_MESSAGES,
  startWebSocketServer,
  type DriftlineWebSocketServer,
  type WebSocketServerOptions,
} from '../src/adapters/websocket/server.js';
import { createIngestClient } from '../src/adapters/websocket/client.js';
import type { Rejection, StreamInput } from '../src/streams/messages.js';

const fixtures = fileURLToPath(new URL('./fixtures/ws-frames/', import.meta.url));
const shape: StreamShape = { inputSize: 3, outputSize: 1 };
const shapes = (s: string): StreamShape | undefined => (s === 'bci-1' || s === 'a' || s === 'b' ? shape : undefined);

function readHex(name: string): Uint8Array {
  const text = readFileSync(`${fixtures}${name}.hex`, 'utf8');
  const hex = text
    .split('\n')
    .map((l) => l.replace(/#.*/, ''))
    .join('')
    .replace(/\s+/g, '');
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

function plain(e: StreamInput | { kind: string }): unknown {
  return JSON.parse(JSON.stringify(e, (k, v) => (v instanceof Float32Array ? Array.from(v) : k === 'receivedAt' ? undefined : v)));
}

async function start(extra: Partial<WebSocketServerOptions> = {}): Promise<DriftlineWebSocketServer> {
  return startWebSocketServer({ port: 0, shapes, ...extra });
}

/** Resolves once open, and on an ingest path once its hello has come, so that the hello is no test's first reply. */
function open(url: string, opts: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts);
    ws.once('error', reject);
    if (!new URL(url).pathname.endsWith('/ingest')) {
      ws.once('open', () => resolve(ws));
      return;
    }
    ws.once('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'hello') resolve(ws);
      else reject(new Error(`expected a hello first, got ${d.toString()}`));
    });
  });
}

function nextMessage(ws: WebSocket): Promise<any> {
  return new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
}

async function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('fixture bytes decode as documented', () => {
  const expected = JSON.parse(readFileSync(`${fixtures}expected.json`, 'utf8'));
  for (const [name, want] of Object.entries<any>(expected.frames)) {
    const got = decodeFrame(readHex(name), (s) => (s === expected.shape.stream ? shape : undefined));
    if (want.kind === 'rejected') {
      assert.equal(got.kind, 'rejected', name);
      assert.equal((got as any).reason, want.reason, name);
    } else {
      const g = plain(got) as any;
      // Float32 rounding: compare t exactly (float64), vectors after fround.
      assert.deepEqual(g, { ...want, ...(want.x ? { x: want.x.map(Math.fround) } : {}) }, name);
    }
  }
  // The encoder writes the fixtures byte for byte.
  assert.deepEqual(encodeBinaryFrame({ kind: 'tick', stream: 'bci-1', seq: 42, t: 1.5, x: [1, -2, 0.5], y: [0.25] }), readHex('tick-with-y'));
  assert.deepEqual(encodeBinaryFrame({ kind: 'label', stream: 'bci-1', seq: 43, y: [-1] }), readHex('label'));
  assert.deepEqual(encodeBinaryFrame({ kind: 'session', stream: 'bci-1', seq: 44, t: 2, session: 'day2' }), readHex('session'));
});

test('JSON and binary ticks decode to the same TickEvent over real sockets', async () => {
  const server = await start();
  const got: StreamInput[] = [];
  server.inputs.subscribe((e) => got.push(e));
  try {
    const a = await open(`${server.address.url}/ingest`);
    const b = await open(`${server.address.url}/ingest`);
    const frame = { kind: 'tick' as const, t: 1.5, x: [1, -2, 0.1], y: [0.3] };
    a.send(encodeJsonFrame({ ...frame, stream: 'a', seq: 7 }));
    b.send(encodeBinaryFrame({ ...frame, stream: 'a', seq: 8 }));
    await waitFor(() => got.length === 2);
    const [j, bin] = got.map((e) => plain(e) as any);
    assert.equal(j.seq, 7);
    assert.equal(bin.seq, 8);
    assert.deepEqual({ ...j, seq: 0 }, { ...bin, seq: 0 });
    assert.ok(got[0]!.kind === 'tick' && got[0]!.x instanceof Float32Array && typeof got[0]!.receivedAt === 'number');
    a.close();
    b.close();
  } finally {
    await server.close();
  }
});

test('a bad frame gets an error reply naming the reason, and the connection keeps working', async () => {
  const server = await start();
  const got: StreamInput[] = [];
  server.inputs.subscribe((e) => got.push(e));
  try {
    const ws = await open(`${server.address.url}/ingest`);
    const cases: [string, string][] = [
      ['{"stream":"a","seq":1,"t":0,"x":[1,2]}', 'dimension'],
      ['{"stream":"a","seq":1,"t":0,"x":[1,"NaN",3]}', 'non-finite'],
      ['{"stream":"a","seq":1,"t":0,"x":[1,1e999,3]}', 'non-finite'],
      ['{"stream":"zz","seq":1,"t":0,"x":[1,2,3]}', 'unknown-stream'],
      ['{"stream":"a","seq":1,"label":[1]}', 'label-unknown-tick'],
      ['not json', 'malformed'],
    ];
    for (const [text, reason] of cases) {
      const reply = nextMessage(ws);
      ws.send(text);
      const m = await reply;
      assert.equal(m.type, 'error');
      assert.equal(m.reason, reason, text);
      assert.ok(m.message.length > 0);
    }
    ws.send('{"stream":"a","seq":1,"t":0,"x":[1,2,3]}');
    const dup = nextMessage(ws);
    ws.send('{"stream":"a","seq":1,"t":0,"x":[1,2,3]}');
    assert.deepEqual(await dup, { type: 'error', reason: 'duplicate', message: 'tick 1 of "a" was already received', stream: 'a', seq: 1 });
    const ooo = nextMessage(ws);
    ws.send('{"stream":"a","seq":0,"t":0,"x":[1,2,3]}');
    assert.equal((await ooo).reason, 'out-of-order');
    await waitFor(() => got.length === 1);
    assert.equal(server.stats.accepted, 1);
    assert.equal(server.stats.rejected['non-finite'], 2);
    assert.equal(server.stats.rejected.duplicate, 1);
    ws.close();
  } finally {
    await server.close();
  }
});

test('replyTo answers a later refusal to the peer that sent the input, and to no one else', async () => {
  const server = await start();
  const got: StreamInput[] = [];
  server.inputs.subscribe((e) => got.push(e));
  try {
    const a = await open(`${server.address.url}/ingest`);
    const b = await open(`${server.address.url}/ingest`);
    const toA: any[] = [];
    const toB: any[] = [];
    a.on('message', (d) => toA.push(JSON.parse(d.toString())));
    b.on('message', (d) => toB.push(JSON.parse(d.toString())));
    a.send(encodeJsonFrame({ kind: 'tick', stream: 'a', seq: 1, t: 0, x: [1, 2, 3] }));
    b.send(encodeJsonFrame({ kind: 'tick', stream: 'b', seq: 7, t: 0, x: [1, 2, 3] }));
    await waitFor(() => got.length === 2, 5000, 'both ticks');
    const fromB = got.find((e) => e.stream === 'b')!;
    const fromA = got.find((e) => e.stream === 'a')!;
    const refusal = { kind: 'rejected' as const, reason: 'label-too-late' as const, message: 'refused after the edge', stream: 'b', seq: 7 };
    assert.equal(server.replyTo(fromB, refusal), true);
    await waitFor(() => toB.length === 1, 5000, 'the reply to b');
    assert.deepEqual(toB[0], { type: 'error', reason: 'label-too-late', message: 'refused after the edge', stream: 'b', seq: 7 });
    // An object the server never emitted (even an equal one) has no sender.
    assert.equal(server.replyTo({ ...fromA }, { ...refusal, stream: 'a', seq: 1 }), false);
    assert.equal(server.stats.laterRefusalsAnswered, 1);
    // Not counted as an edge rejection: the stage that refused counts it.
    assert.equal(Object.values(server.stats.rejected).reduce((x, y) => x + y, 0), 0);
    // A peer that has gone is not written to.
    a.close();
    await waitFor(() => server.stats.ingestConnections === 1, 5000, 'a to close');
    assert.equal(server.replyTo(fromA, { ...refusal, stream: 'a', seq: 1 }), false);
    // Round trip: b's connection still carries frames and replies in order.
    b.send('not json');
    await waitFor(() => toB.length === 2, 5000, 'the edge reply to b');
    assert.equal(toB[1].reason, 'malformed');
    assert.equal(toA.length, 0);
    b.close();
  } finally {
    await server.close();
  }
});

test('auth: a non-loopback host without a token is refused; a given token is checked', async () => {
  await assert.rejects(startWebSocketServer({ host: '0.0.0.0', port: 0, shapes }), /without a token/);
  const server = await start({ token: 's3cret' });
  try {
    await assert.rejects(open(`${server.address.url}/ingest`), /401/);
    await assert.rejects(open(`${server.address.url}/ingest`, { headers: { authorization: 'Bearer wrong' } }), /401/);
    const a = await open(`${server.address.url}/ingest`, { headers: { authorization: 'Bearer s3cret' } });
    const b = await open(`${server.address.url}/predictions?token=s3cret`);
    assert.equal(server.stats.rejected.unauthorized, 2);
    a.close();
    b.close();
  } finally {
    await server.close();
  }
  // Binding all interfaces works with a token.
  const open0 = await startWebSocketServer({ host: '0.0.0.0', port: 0, shapes, token: 't' });
  await open0.close();
});

test('oversized frames: counted, the sender told, other peers unaffected', async () => {
  const server = await start({ maxPayload: 4096, maxFrameBytes: 1024 });
  const got: StreamInput[] = [];
  server.inputs.subscribe((e) => got.push(e));
  try {
    const other = await open(`${server.address.url}/ingest`);
    const big = await open(`${server.address.url}/ingest`);
    // Above maxFrameBytes, within maxPayload: error reply, connection kept.
    const reply = nextMessage(big);
    big.send('x'.repeat(2000));
    assert.equal((await reply).reason, 'oversized');
    big.send(encodeJsonFrame({ kind: 'tick', stream: 'b', seq: 1, t: 0, x: [1, 2, 3] }));
    await waitFor(() => got.length === 1);
    // Above maxPayload: ws closes with 1009; counted.
    const closed = new Promise<number>((r) => big.once('close', (code) => r(code)));
    big.send(Buffer.alloc(10_000, 1));
    assert.equal(await closed, 1009);
    await waitFor(() => server.stats.rejected.oversized === 2, 5000, 'oversized count');
    other.send(encodeBinaryFrame({ kind: 'tick', stream: 'a', seq: 1, t: 0, x: [1, 2, 3] }));
    await waitFor(() => got.length === 2);
    const again = await open(`${server.address.url}/ingest`);
    again.send(encodeJsonFrame({ kind: 'tick', stream: 'a', seq: 2, t: 0, x: [1, 2, 3] }));
    await waitFor(() => got.length === 3);
    other.close();
    again.close();
  } finally {
    await server.close();
  }
});

test('heartbeat terminates a peer that stops answering pings', async () => {
  const server = await start({ heartbeatMs: 50 });
  try {
    const live = await open(`${server.address.url}/predictions`);
    const dead = await open(`${server.address.url}/predictions`, { autoPong: false });
    const closed = new Promise<void>((r) => dead.once('close', () => r()));
    await closed;
    assert.ok(server.stats.heartbeatTerminations >= 1);
    assert.equal(live.readyState, WebSocket.OPEN);
    await waitFor(() => server.stats.subscriberConnections === 1);
    live.close();
  } finally {
    await server.close();
  }
});

test('a slow subscriber gets drops counted; server memory stays bounded; a fast one gets everything', async () => {
  const maxBufferedBytes = 64 * 1024;
  const server = await start({ maxBufferedBytes, heartbeatMs: 60_000 });
  try {
    const slow = await open(`${server.address.url}/predictions`);
    const fast = await open(`${server.address.url}/predictions`);
    let fastCount = 0;
    fast.on('message', () => fastCount++);
    (slow as any)._socket.pause();
    const yhat = new Float32Array(256).fill(1 / 3);
    const n = 5000;
    for (let i = 0; i < n; i++) {
      server.publish({ kind: 'prediction', stream: 'a', seq: i, t: i, yhat, version: i, predictedAt: 0 });
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => fastCount === n, 15000, 'fast subscriber');
    assert.ok(server.stats.droppedForSlowSubscribers > 0, 'drops counted');
    assert.ok(server.stats.droppedForSlowSubscribers < n);
    // Bounded: what was accepted for the slow peer is at most about maxBufferedBytes + kernel buffers + one message.
    const msgBytes = encodeOutbound({ kind: 'prediction', stream: 'a', seq: n, t: n, yhat, version: n, predictedAt: 0 }).length;
    const deliveredToSlow = n - server.stats.droppedForSlowSubscribers;
    const peakBuffered = deliveredToSlow * msgBytes;
    assert.ok(n * msgBytes > 16 * 1024 * 1024 + maxBufferedBytes, 'the test sends more than the bound');
    assert.ok(peakBuffered < maxBufferedBytes + 16 * 1024 * 1024, `slow peer got ${peakBuffered} bytes`);
    assert.ok(server.stats.peakSubscriberBufferedBytes <= maxBufferedBytes + msgBytes, `server buffered ${server.stats.peakSubscriberBufferedBytes}`);
    assert.ok(server.stats.peakSubscriberBufferedBytes > maxBufferedBytes / 2, 'the slow peer did back up');
    slow.terminate();
    fast.close();
  } finally {
    await server.close();
  }
});

test('client reconnects after the server restarts on the same port and delivers frames sent after', async () => {
  let server = await start();
  const port = server.address.port;
  const client = createIngestClient({
    url: `${server.address.url}/ingest`,
    binary: true,
    initialBackoffMs: 20,
    maxBackoffMs: 200,
    random: () => 0.5,
  });
  try {
    const first: StreamInput[] = [];
    server.inputs.subscribe((e) => first.push(e));
    await waitFor(() => client.isConnected);
    client.send({ kind: 'tick', stream: 'a', seq: 1, t: 0, x: [1, 2, 3] });
    await waitFor(() => first.length === 1);
    await server.close();
    await waitFor(() => !client.isConnected);
    // Sent while the server is down: queued, delivered after reconnect.
    client.send({ kind: 'tick', stream: 'a', seq: 2, t: 1, x: [4, 5, 6] });
    server = await start({ port });
    const second: StreamInput[] = [];
    server.inputs.subscribe((e) => second.push(e));
    await waitFor(() => client.isConnected, 5000, 'reconnect');
    client.send({ kind: 'tick', stream: 'a', seq: 3, t: 2, x: [7, 8, 9] });
    client.send({ kind: 'session', stream: 'a', seq: 4, t: 3, session: 's2' });
    const errors: string[] = [];
    client.errors.subscribe((e) => errors.push(e.reason));
    client.send({ kind: 'label', stream: 'a', seq: 99, y: [1] });
    await waitFor(() => second.length === 3 && errors.length === 1);
    assert.deepEqual(second.map((e) => e.seq), [2, 3, 4]);
    assert.deepEqual(errors, ['label-unknown-tick']);
    assert.ok(client.stats.connects >= 2);
  } finally {
    await client.close();
    await server.close();
  }
});

test('client: a frame larger than maxMessageBytes is refused at send, not sent again after every reconnect; the connection and later frames are unaffected', async () => {
  // The server takes at most 4,096 bytes a message (above it ws closes the connection with 1009).
  const server = await start({ maxPayload: 4096, maxFrameBytes: 4096 });
  const client = createIngestClient({ url: `${server.address.url}/ingest`, binary: true, maxMessageBytes: 4096, initialBackoffMs: 20, maxBackoffMs: 200 });
  try {
    const got: StreamInput[] = [];
    server.inputs.subscribe((e) => got.push(e));
    await waitFor(() => client.isConnected);
    // 1,100 floats: about 4.4 kB as a binary frame.
    const big = { kind: 'tick' as const, stream: 'a', seq: 1, t: 0, x: Array.from({ length: 1100 }, (_, i) => i) };
    assert.throws(() => client.send(big), (e: unknown) => e instanceof RangeError && /larger than maxMessageBytes \(4096\)/.test(e.message) && /stream 'a', seq 1/.test(e.message));
    assert.equal(client.stats.unacked, 0, 'nothing kept to re-send');
    client.send({ kind: 'tick', stream: 'a', seq: 2, t: 1, x: [1, 2, 3] });
    await waitFor(() => got.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(got.map((e) => e.seq), [2]);
    assert.equal(client.stats.connects, 1, 'the connection was never closed');
    assert.equal(server.stats.rejected.oversized, 0);
  } finally {
    await client.close();
    await server.close();
  }
});

test('client queue while disconnected is bounded: oldest dropped and counted', async () => {
  const client = createIngestClient({ url: 'ws://127.0.0.1:1/ingest', maxQueuedFrames: 5, initialBackoffMs: 1000, random: () => 0 });
  for (let i = 0; i < 12; i++) client.send({ kind: 'tick', stream: 'a', seq: i, t: i, x: [i] });
  assert.equal(client.stats.queued, 5);
  assert.equal(client.stats.droppedWhileDisconnected, 7);
  await client.close();
});

test('validator: labels join within the window; session markers are ordered', () => {
  const v = new IngestValidator({ shapes, labelWindow: 4 });
  const tick = (seq: number, y?: number[]) => v.accept(encodeJsonFrame({ kind: 'tick', stream: 'a', seq, t: seq, x: [0, 0, 0], ...(y ? { y } : {}) }));
  const label = (seq: number) => v.accept(encodeJsonFrame({ kind: 'label', stream: 'a', seq, y: [1] }));
  for (const s of [0, 2, 4, 6, 8]) assert.equal(tick(s, s === 6 ? [1] : undefined).kind, 'tick');
  assert.equal((label(0) as any).reason, 'label-too-late');
  assert.equal((label(3) as any).reason, 'label-unknown-tick');
  assert.equal((label(10) as any).reason, 'label-unknown-tick');
  assert.equal((label(6) as any).reason, 'label-duplicate');
  assert.equal(label(4).kind, 'label');
  assert.equal((label(4) as any).reason, 'label-duplicate');
  const session = (seq: number) => v.accept(encodeJsonFrame({ kind: 'session', stream: 'a', seq, t: 0, session: 'x' }));
  assert.equal((session(8) as any).reason, 'out-of-order');
  assert.equal(session(9).kind, 'drift');
  assert.equal((session(9) as any).reason, 'duplicate');
  assert.equal(tick(9).kind, 'tick');
  const limited = new IngestValidator({ defaultShape: shape, maxStreams: 2 });
  const t = (stream: string) => limited.accept(encodeJsonFrame({ kind: 'tick', stream, seq: 0, t: 0, x: [1, 2, 3] }));
  assert.equal(t('s1').kind, 'tick');
  assert.equal(limited.accept('{"stream":"bad","seq":0,"t":0,"x":[1]}').kind, 'rejected');
  assert.equal(t('s2').kind, 'tick');
  assert.equal((t('s3') as any).reason, 'too-many-streams');
  assert.equal(limited.streamCount, 2);
});

test('subscriber filters: by stream and by message type; scored ticks only on request; a bad filter is refused with 400', async (t) => {
  const server = await start();
  t.after(() => server.close());
  const base = `${server.address.url}/predictions`;
  const subscribers = {
    all: await open(base),
    onlyA: await open(`${base}?stream=a`),
    recoveryAB: await open(`${base}?type=recovery&stream=a,b`),
    scored: await open(`${base}?type=scored,prediction&stream=b`),
  };
  const got: Record<string, string[]> = {};
  for (const [name, ws] of Object.entries(subscribers)) {
    got[name] = [];
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      got[name].push(`${m.type}:${m.stream ?? '-'}`);
    });
  }
  const y = new Float32Array([1]);
  const messages = [
    { kind: 'prediction', stream: 'a', seq: 0, t: 0, yhat: y, version: 0, predictedAt: 0 },
    { kind: 'prediction', stream: 'b', seq: 0, t: 0, yhat: y, version: 0, predictedAt: 0 },
    { kind: 'scored', stream: 'b', seq: 0, t: 0, y, yhat: y, yLast: y, yMean: y, delay: 0, heldOut: false, version: 0 },
    { kind: 'recovery', stream: 'a', seq: 1, source: 'session', ePre: 1, eFrozen: 2, eAdapt: 1, recovery: 1, residual: 1, ticksToRecovery: 3, secondsToRecovery: 0.1 },
    { kind: 'rejected', reason: 'malformed', message: 'no stream' },
  ] as const;
  for (const m of messages) server.publish(m as Parameters<DriftlineWebSocketServer['publish']>[0]);
  const expected = {
    all: ['prediction:a', 'prediction:b', 'recovery:a', 'error:-'],
    onlyA: ['prediction:a', 'recovery:a', 'error:-'],
    recoveryAB: ['recovery:a'],
    scored: ['prediction:b', 'scored:b'],
  };
  const total = Object.values(expected).reduce((n, list) => n + list.length, 0);
  await waitFor(() => Object.values(got).reduce((n, list) => n + list.length, 0) >= total, 5000, 'filtered messages');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(got, expected);
  for (const ws of Object.values(subscribers)) ws.close();

  for (const query of ['type=bogus', 'stream=', `stream=${'k'.repeat(200)}`]) {
    await assert.rejects(open(`${base}?${query}`), /400/, query);
  }
});

test('client drain: resolves once every frame has left the process, waits through a reconnect, settles when the connection drops, rejects after close', async () => {
  let server = await start();
  const port = server.address.port;
  const client = createIngestClient({ url: `${server.address.url}/ingest`, binary: true, initialBackoffMs: 20, maxBackoffMs: 100, random: () => 0.5 });
  try {
    let got: StreamInput[] = [];
    server.inputs.subscribe((e) => got.push(e));
    await waitFor(() => client.isConnected);
    const x = [1, 2, 3];
    for (let seq = 0; seq < 5000; seq++) client.send({ kind: 'tick', stream: 'a', seq, t: seq, x });
    await client.drain();
    assert.equal(client.bufferedAmount, 0);
    await waitFor(() => got.length === 5000, 5000, 'every frame at the server');
    assert.equal(client.stats.failedSends, 0);

    // Queued while the server is down: drain waits for the reconnect that writes them.
    await server.close();
    await waitFor(() => !client.isConnected);
    for (let seq = 5000; seq < 5010; seq++) client.send({ kind: 'tick', stream: 'a', seq, t: seq, x });
    assert.equal(client.bufferedAmount, 10 * encodeBinaryFrame({ kind: 'tick', stream: 'a', seq: 0, t: 0, x }).byteLength, 'queued bytes count');
    let drained = false;
    const waiting = client.drain().then(() => (drained = true));
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(drained, false, 'nothing can be written while disconnected');
    server = await start({ port });
    got = [];
    server.inputs.subscribe((e) => got.push(e));
    await waiting;
    await waitFor(() => got.length === 10, 5000, 'the queued frames after the reconnect');
    assert.deepEqual(got.map((e) => e.seq), Array.from({ length: 10 }, (_, i) => 5000 + i));

    // The connection drops under frames in flight: drain settles rather than waiting forever.
    for (let seq = 5010; seq < 60_000; seq++) client.send({ kind: 'tick', stream: 'a', seq, t: seq, x });
    const settled = client.drain();
    await server.close();
    await settled;
    await waitFor(() => !client.isConnected);

    // Closed with frames still queued: a pending drain rejects, and so does a drain after close.
    client.send({ kind: 'tick', stream: 'a', seq: 60_000, t: 60_000, x });
    // The expectation is attached before close() rejects the drain: a rejection nobody handles yet is an
    // unhandledRejection failure, whenever close() happens to yield.
    const pending = assert.rejects(client.drain(), /closed before its frames were written/);
    await client.close();
    await pending;
    await assert.rejects(client.drain(), /after close/);
  } finally {
    await client.close();
    await server.close();
  }
});

test('coalesceSends: a subscriber gets a turn of messages in one socket write, all of them, in order', async () => {
  const { Socket } = await import('node:net');
  const proto = Socket.prototype as unknown as { _write: (...a: unknown[]) => unknown; _writev: (...a: unknown[]) => unknown };
  const burst = async (coalesceSends: boolean): Promise<{ writes: number; seqs: number[] }> => {
    const server = await start({ coalesceSends, heartbeatMs: 60_000 });
    const sub = await open(`${server.address.url}/predictions`);
    const seqs: number[] = [];
    sub.on('message', (d) => seqs.push(JSON.parse(d.toString()).seq));
    const { _write, _writev } = proto;
    let writes = 0;
    proto._write = function (this: unknown, ...a: unknown[]) {
      writes++;
      return _write.apply(this, a);
    };
    proto._writev = function (this: unknown, ...a: unknown[]) {
      writes++;
      return _writev.apply(this, a);
    };
    try {
      for (let i = 0; i < 100; i++) server.publish({ kind: 'prediction', stream: 'a', seq: i, t: i, yhat: Float32Array.of(i), version: i, predictedAt: 0 });
      await new Promise((r) => setImmediate(r));
    } finally {
      proto._write = _write;
      proto._writev = _writev;
    }
    await waitFor(() => seqs.length === 100, 5000, 'all 100 messages');
    sub.close();
    await server.close();
    return { writes, seqs };
  };
  const coalesced = await burst(true);
  assert.deepEqual(coalesced.seqs, Array.from({ length: 100 }, (_, i) => i));
  assert.ok(coalesced.writes <= 2, `coalesced: ${coalesced.writes} socket writes for 100 messages`);
  const plainSends = await burst(false);
  assert.deepEqual(plainSends.seqs, coalesced.seqs);
  assert.ok(plainSends.writes > coalesced.writes, `without coalescing: ${plainSends.writes} writes`);
});

/** Runs `body` with a server, the inputs it emits, and one ingest connection past its hello; closes both after. */
async function withIngestPeer(
  extra: Partial<WebSocketServerOptions>,
  body: (server: DriftlineWebSocketServer, ws: WebSocket, got: StreamInput[]) => Promise<void>,
): Promise<void> {
  const server = await start(extra);
  const got: StreamInput[] = [];
  server.inputs.subscribe((e) => got.push(e));
  try {
    const ws = await open(`${server.address.url}/ingest`);
    await body(server, ws, got);
    ws.close();
  } finally {
    await server.close();
  }
}

// ------------------------------------------------------------------------------------------------- batches

/** Every result one message decodes to, in order. */
function decodeAll(data: string | Uint8Array, resolver = (st: string) => shapes(st), options = {}): (IngestMessage | Rejection)[] {
  const out: (IngestMessage | Rejection)[] = [];
  decodeIngestMessageFrames(data, resolver, (r) => out.push(r), options);
  return out;
}

/** Binary batch bytes from raw inner frames, with the header's count and each length as given unless overridden. */
function rawBinaryBatch(frames: Uint8Array[], header: { flags?: number; count?: number } = {}): Uint8Array {
  const parts: Buffer[] = [Buffer.from([0xd1, 0x01, 0x04, header.flags ?? 0, 0, 0])];
  parts[0]!.writeUInt16LE(header.count ?? frames.length, 4);
  for (const f of frames) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(f.byteLength);
    parts.push(len, Buffer.from(f));
  }
  return Uint8Array.from(Buffer.concat(parts));
}

const tickA = (seq: number, x: number[] = [1, 2, 3]): IngestFrame => ({ kind: 'tick', stream: 'a', seq, t: seq / 10, x });

test('batch fixture decodes as documented; the encoders write it and its JSON twin', () => {
  const expected = JSON.parse(readFileSync(`${fixtures}expected.json`, 'utf8'));
  const bytes = readHex('batch');
  assert.equal(bytes.byteLength, 90);
  const got = decodeAll(bytes, (st) => (st === expected.shape.stream ? shape : undefined), { receivedAt: 7 });
  assert.deepEqual(got.map(plain), expected.batches.batch);
  // One arrival time for every frame of the message.
  assert.equal((got[0] as { receivedAt?: number }).receivedAt, 7);
  const frames: IngestFrame[] = [
    { kind: 'tick', stream: 'bci-1', seq: 45, t: 2.25, x: [0.5, 1, -2] },
    { kind: 'label', stream: 'bci-1', seq: 43, y: [-1] },
  ];
  assert.deepEqual(encodeBinaryBatch(frames), bytes);
  const json = encodeJsonBatch(frames);
  assert.equal(json, '[{"stream":"bci-1","seq":45,"t":2.25,"x":[0.5,1,-2]},{"stream":"bci-1","seq":43,"label":[-1]}]');
  assert.deepEqual(decodeAll(json, (st) => (st === 'bci-1' ? shape : undefined)).map(plain), expected.batches.batch);
  // A decoder that returns one result refuses a batch rather than pick one frame of it.
  assert.equal(decodeFrame(bytes, () => shape).kind, 'rejected');
  assert.equal(decodeFrame(json, () => shape).kind, 'rejected');
});

test('batch round trip: every frame kind, binary and JSON, decodes as each frame alone does', () => {
  const frames: IngestFrame[] = [];
  for (let i = 0; i < 200; i++) {
    const st = i % 2 === 0 ? 'a' : 'b';
    if (i % 7 === 3) frames.push({ kind: 'label', stream: st, seq: i - 2, y: [i / 3] });
    else if (i % 11 === 5) frames.push({ kind: 'session', stream: st, seq: i, t: i, session: `day-${i}` });
    else frames.push({ kind: 'tick', stream: st, seq: i, t: i * 0.01, x: [i, -i, 1 / (i + 1)], ...(i % 3 === 0 ? { y: [i * 0.5] } : {}) });
  }
  const one = { receivedAt: 1 };
  for (const [batch, single] of [
    [encodeBinaryBatch(frames), frames.map((f) => decodeFrame(encodeBinaryFrame(f), shapes, one))],
    [encodeJsonBatch(frames), frames.map((f) => decodeFrame(encodeJsonFrame(f), shapes, one))],
  ] as const) {
    const got = decodeAll(batch, shapes, one);
    assert.equal(got.length, 200);
    assert.ok(got.every((r) => r.kind !== 'rejected'));
    assert.deepEqual(got, single);
  }
  assert.throws(() => encodeBinaryBatch([]), RangeError);
  assert.throws(() => encodeJsonBatch([]), RangeError);
});

test('a damaged batch is refused whole: one malformed reply, nothing emitted, counted once', async () => {
  await withIngestPeer({ maxFramesPerMessage: 3 }, async (server, ws, got) => {
    const resumes: unknown[] = [];
    server.resumeRequests.subscribe((r) => resumes.push(r));
    const ok = [encodeBinaryFrame(tickA(1)), encodeBinaryFrame(tickA(2))];
    const whole = rawBinaryBatch(ok);
    const okJson = [encodeJsonFrame(tickA(1)), encodeJsonFrame(tickA(2))];
    const defects: [string, string | Uint8Array, RegExp][] = [
      ['shorter than the header', Uint8Array.from([0xd1, 0x01, 0x04, 0x00, 0x01]), /header/],
      ['flags set', rawBinaryBatch(ok, { flags: 1 }), /flags/],
      ['count 0', rawBinaryBatch([]), /no frames/],
      ['count above the limit', rawBinaryBatch([...ok, ...ok]), /4 frames; at most 3/],
      ['count says more frames than there are', rawBinaryBatch(ok, { count: 3 }), /ends inside the length of frame 2/],
      ['count says fewer frames than there are', rawBinaryBatch(ok, { count: 1 }), /bytes follow the last/],
      ['last frame cut short', whole.subarray(0, whole.byteLength - 1), /frame 1 is said to be/],
      ['a length past the end', (() => { const b = Uint8Array.from(whole); b[6] = 0xff; return b; })(), /frame 0 is said to be/],
      ['a byte after the last frame', Uint8Array.from([...whole, 0]), /1 bytes follow/],
      ['a batch inside a batch', rawBinaryBatch([ok[0]!, rawBinaryBatch(ok)]), /do not nest/],
      ['JSON: empty array', '[]', /no frames/],
      ['JSON: too many frames', `[${[...okJson, ...okJson].join(',')}]`, /4 frames; at most 3/],
      ['JSON: a number among frames', `[${okJson[0]},1]`, /element 1 is number/],
      ['JSON: null among frames', `[null,${okJson[0]}]`, /element 0 is null/],
      ['JSON: a batch inside a batch', `[${okJson[0]},[${okJson[1]}]]`, /do not nest/],
      ['JSON: a resume request inside a batch', `[${okJson[0]},{"type":"resume"}]`, /resume request/],
      ['JSON: not valid JSON', `[${okJson[0]},`, /not valid JSON/],
      ['JSON: in a binary message', Uint8Array.from(Buffer.from(`  [${okJson[0]},"x"]`)), /element 1 is string/],
    ];
    for (const [what, data, message] of defects) {
      const before = server.stats.rejected.malformed;
      const reply = nextMessage(ws);
      ws.send(data);
      const r = await reply;
      assert.equal(r.reason, 'malformed', what);
      assert.match(r.message, /^batch refused whole/, what);
      assert.match(r.message, message, `${what}: ${r.message}`);
      assert.equal(r.stream, undefined, what);
      assert.equal(server.stats.rejected.malformed, before + 1, what);
    }
    // Nothing of any of them went on, and the connection still works.
    const after = nextMessage(ws);
    ws.send(encodeJsonFrame({ kind: 'label', stream: 'a', seq: 9, y: [1] }));
    assert.equal((await after).reason, 'label-unknown-tick');
    assert.equal(got.length, 0);
    assert.equal(server.stats.accepted, 0);
    assert.equal(resumes.length, 0);
    const total = Object.values(server.stats.rejected).reduce((a, b) => a + b, 0);
    assert.equal(total, defects.length + 1);
  });
});

test('a batch with bad frames: one reply per bad frame naming stream and seq; the others arrive in order', async () => {
  await withIngestPeer({}, async (server, ws, got) => {
    const replies: any[] = [];
    ws.on('message', (d) => replies.push(JSON.parse(d.toString())));
    let seq = 0;
    for (const binary of [true, false]) {
      const s0 = seq;
      const frames: IngestFrame[] = [
        tickA(s0 + 1),
        tickA(s0 + 2, [1, NaN, 3]),
        tickA(s0 + 3, [1, 2]),
        { kind: 'tick', stream: 'nope', seq: s0 + 4, t: 0, x: [1, 2, 3] },
        tickA(s0 + 5),
        tickA(s0 + 5), // the edge checks order frame by frame, as if each had come alone
        { kind: 'label', stream: 'a', seq: s0 + 5, y: [0.5] },
      ];
      seq = s0 + 6;
      const nGot = got.length;
      const nReplies = replies.length;
      const data = binary ? encodeBinaryBatch(frames) : encodeJsonBatch(frames).replace(/null/, '"NaN"');
      ws.send(data);
      await waitFor(() => got.length === nGot + 3 && replies.length === nReplies + 4, 5000, 'the batch');
      const mine = got.slice(nGot);
      assert.deepEqual(mine.map((e) => [e.kind, e.seq]), [['tick', s0 + 1], ['tick', s0 + 5], ['label', s0 + 5]]);
      const ticks = mine.filter((e) => e.kind === 'tick');
      assert.equal(new Set(ticks.map((e) => e.receivedAt)).size, 1, 'one receivedAt per message');
      assert.deepEqual(
        replies.slice(nReplies).map((r) => [r.reason, r.stream, r.seq]),
        [['non-finite', 'a', s0 + 2], ['dimension', 'a', s0 + 3], ['unknown-stream', 'nope', s0 + 4], ['duplicate', 'a', s0 + 5]],
      );
      assert.match(replies[nReplies].message, /^frame 1 of the batch: /);
      for (const e of mine) assert.equal(server.peerOf(e), server.peerOf(mine[0]!));
    }
    assert.equal(server.stats.accepted, 6);
    assert.equal(server.stats.rejected['non-finite'], 2);
    assert.equal(server.stats.rejected.dimension, 2);
    assert.equal(server.stats.rejected['unknown-stream'], 2);
    assert.equal(server.stats.rejected.duplicate, 2);
    assert.equal(server.stats.rejected.malformed, 0);
  });
});

test('batch limits: maxFrameBytes bounds each inner frame, not the message; the count limit; option validated', async () => {
  await assert.rejects(start({ maxFramesPerMessage: 0 }), /maxFramesPerMessage/);
  await assert.rejects(start({ maxFramesPerMessage: 1.5 }), /maxFramesPerMessage/);
  await assert.rejects(start({ maxFramesPerMessage: 65_536 }), /maxFramesPerMessage/);
  assert.throws(() => new IngestValidator({ shapes, maxFramesPerMessage: -1 }), RangeError);
  await withIngestPeer({ maxFrameBytes: 200, maxFramesPerMessage: 50 }, async (_server, ws, got) => {
    const replies: any[] = [];
    ws.on('message', (d) => replies.push(JSON.parse(d.toString())));
    // 50 frames of about 60 bytes: the message is far above maxFrameBytes, each frame below it.
    const fifty = Array.from({ length: 50 }, (_, i) => tickA(i + 1));
    ws.send(encodeBinaryBatch(fifty));
    ws.send(encodeJsonBatch(fifty.map((f) => ({ ...f, stream: 'b' }))));
    await waitFor(() => got.length === 100, 5000, '100 frames');
    assert.equal(replies.length, 0);
    // One frame above maxFrameBytes: 'oversized' for it alone (JSON: named by stream and seq), the rest go on.
    const padded = `{"stream":"a","seq":61,"t":0,"x":[1,2,3]${' '.repeat(200)}}`;
    ws.send(`[${encodeJsonFrame(tickA(60))}, ${padded} ,${encodeJsonFrame(tickA(62))}]`);
    ws.send(encodeBinaryBatch([tickA(63), { kind: 'tick', stream: 'a', seq: 64, t: 0, x: new Array(3).fill(0), y: new Array(1).fill(0) }]));
    const big = rawBinaryBatch([encodeBinaryFrame(tickA(65)), new Uint8Array(201), encodeBinaryFrame(tickA(66))]);
    ws.send(big);
    await waitFor(() => got.length === 106 && replies.length === 2, 5000, 'the limits');
    assert.deepEqual(got.slice(100).map((e) => e.seq), [60, 62, 63, 64, 65, 66]);
    assert.deepEqual(replies.map((r) => [r.reason, r.stream, r.seq]), [['oversized', 'a', 61], ['oversized', undefined, undefined]]);
    assert.match(replies[1].message, /frame 1 of the batch is 201 bytes; the limit is 200/);
    // The count limit: 50 go, 51 are refused whole.
    ws.send(encodeBinaryBatch(Array.from({ length: 51 }, (_, i) => tickA(100 + i))));
    await waitFor(() => replies.length === 3);
    assert.equal(replies[2].reason, 'malformed');
    assert.match(replies[2].message, /51 frames; at most 50/);
    assert.equal(got.length, 106);
  });
});

test('client framesPerMessage: thousands of frames in few messages, all delivered once and in order, binary and JSON', async () => {
  const server = await start({ checkOrder: false });
  try {
    for (const binary of [true, false]) {
      const got: StreamInput[] = [];
      const sub = server.inputs.subscribe((e) => got.push(e));
      const client = createIngestClient({ url: `${server.address.url}/ingest`, binary, framesPerMessage: 500, maxMessageBytes: 64 * 1024 });
      try {
        await waitFor(() => client.isConnected);
        await new Promise((r) => setTimeout(r, 20)); // past the hello
        const sent: [string, number][] = [];
        for (let turn = 0; turn < 10; turn++) {
          for (let i = 0; i < 500; i++) {
            const seq = turn * 500 + i;
            const st = seq % 2 === 0 ? 'a' : 'b';
            client.send({ kind: 'tick', stream: st, seq, t: seq, x: [seq, 1, 2], ...(seq % 5 === 0 ? { y: [seq] } : {}) });
            sent.push([st, seq]);
          }
          // Nothing leaves before the turn ends; drain() waits for it.
          assert.equal(client.stats.sent, turn * 500);
          await client.drain();
        }
        await waitFor(() => got.length === 5000, 5000, 'every frame at the server');
        assert.deepEqual(got.map((e) => [e.stream, e.seq]), sent);
        assert.equal(client.stats.sent, 5000);
        // 500 ticks a turn, within 64 KiB: one message a turn in binary, a few in JSON.
        assert.ok(client.stats.messages >= 10 && client.stats.messages <= 40, `${client.stats.messages} messages`);
        assert.equal(client.stats.failedSends, 0);
        assert.equal(client.bufferedAmount, 0);
      } finally {
        sub.unsubscribe();
        await client.close();
      }
    }
    assert.equal(server.stats.accepted, 10_000);
    assert.equal(Object.values(server.stats.rejected).reduce((a, b) => a + b, 0), 0);
    assert.throws(() => createIngestClient({ url: 'ws://127.0.0.1:1/ingest', framesPerMessage: 0 }), RangeError);
  } finally {
    await server.close();
  }
});

test('client framesPerMessage keeps resume: after a reconnect it re-sends, packed, exactly what the server lacks', async () => {
  const server = await start({ checkOrder: false, helloFields: { durable: true } });
  // A stand-in for a durable application: it has seen every tick up to `mark` and says so when asked.
  let mark = -1;
  server.resumeRequests.subscribe((r) => server.sendTo(r.peer, { type: 'resume', streams: { a: { seq: mark, pendingLabels: [] } } }));
  const got: number[] = [];
  let lastPeer: unknown;
  server.inputs.subscribe((e) => {
    got.push(e.seq);
    lastPeer = server.peerOf(e);
  });
  const client = createIngestClient({ url: `${server.address.url}/ingest`, binary: true, framesPerMessage: 256, initialBackoffMs: 10, maxBackoffMs: 50, random: () => 0.5 });
  try {
    await waitFor(() => client.isConnected);
    await new Promise((r) => setTimeout(r, 20));
    for (let seq = 0; seq < 3000; seq++) client.send(tickA(seq));
    await client.drain();
    await waitFor(() => got.length === 3000);
    // The first 1,000 are durable; then the server loses everything after tick 1999 and the connection drops.
    server.sendTo(lastPeer, { type: 'ack', stream: 'a', seq: 999, pendingLabels: [] });
    await waitFor(() => client.stats.acked === 1000);
    mark = 1999;
    got.length = 0;
    const messagesBefore = client.stats.messages;
    (lastPeer as WebSocket).terminate();
    await waitFor(() => got.length === 1000, 5000, 'the re-sent frames');
    assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => 2000 + i));
    assert.equal(client.stats.resent, 1000);
    assert.ok(client.stats.messages - messagesBefore <= 4, `${client.stats.messages - messagesBefore} messages for the re-sent 1,000`);
    // New frames go on after the re-sent ones.
    client.send(tickA(3000));
    await waitFor(() => got.length === 1001);
    assert.equal(got[1000], 3000);
    server.sendTo(lastPeer, { type: 'ack', stream: 'a', seq: 3000, pendingLabels: [] });
    await client.settled();
  } finally {
    await client.close();
    await server.close();
  }
});

// ------------------------------------------------------------------------------------- subscriber batches

/** Every text message `ws` receives, as sent. */
function texts(ws: WebSocket): string[] {
  const got: string[] = [];
  ws.on('message', (d) => got.push(d.toString()));
  return got;
}

/** The messages in a batching subscriber's arrays, in order (throws on anything but an array). */
function unbatch(arrays: string[]): unknown[] {
  return arrays.flatMap((text) => {
    const value = JSON.parse(text);
    assert.ok(Array.isArray(value), `expected an array, got ${text.slice(0, 80)}`);
    return value;
  });
}

const turnEnd = (): Promise<void> => new Promise((r) => setImmediate(r));

const predictionOf = (stream: string, seq: number, yhat = Float32Array.of(seq / 8, -1)): OutboundMessage =>
  ({ kind: 'prediction', stream, seq, t: seq / 50, yhat, version: seq, predictedAt: 0 }) as OutboundMessage;

/** The HTTP status and body of a refused upgrade. */
function refusalOf(url: string): Promise<{ status: number | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error(`${url} was accepted`));
    });
    ws.on('error', () => {});
  });
}

test('batch=turn: one array per turn of exactly the texts a plain subscriber gets one by one, in order; a plain subscriber is unaffected byte for byte', async (t) => {
  const server = await start({ heartbeatMs: 60_000 });
  t.after(() => server.close());
  const base = `${server.address.url}/predictions`;
  const plainWs = await open(base);
  const batchedWs = await open(`${base}?batch=turn`);
  const plain = texts(plainWs);
  const batched = texts(batchedWs);
  const turns: OutboundMessage[][] = [
    [
      predictionOf('a', 0),
      predictionOf('b', 0),
      { kind: 'drift', stream: 'a', seq: 1, t: 0.02, source: 'session', session: 'day2' },
      { kind: 'rejected', reason: 'malformed', message: 'no stream' },
      predictionOf('a', 1, Float32Array.of(Number.NaN, 2)),
    ] as OutboundMessage[],
    // A turn with one message still sends an array.
    [predictionOf('a', 2)],
    [
      { kind: 'recovery', stream: 'a', seq: 1, source: 'session', heldOut: false, ePre: 1, eFrozen: 2, eAdapt: 1, recovery: Number.NaN, residual: 1, ticksToRecovery: 3, secondsToRecovery: 0.1 },
      { kind: 'rejected', reason: 'dimension', message: 'x has 2 values', stream: 'b', seq: 9 },
      predictionOf('b', 1),
    ] as OutboundMessage[],
  ];
  for (const turn of turns) {
    for (const m of turn) server.publish(m);
    await turnEnd();
  }
  const all = turns.flat();
  await waitFor(() => plain.length === all.length && batched.length === turns.length, 5000, 'both subscribers');
  assert.deepEqual(plain, all.map(encodeOutbound), 'plain: each message as encodeOutbound writes it');
  let at = 0;
  turns.forEach((turn, i) => {
    assert.equal(batched[i], `[${plain.slice(at, at + turn.length).join(',')}]`, `turn ${i}`);
    at += turn.length;
  });
  assert.deepEqual(unbatch(batched), plain.map((text) => JSON.parse(text)));

  // The read-only reply joins the batch too: a batching subscriber parses arrays only.
  batchedWs.send('hello?');
  plainWs.send('hello?');
  const [batchedReply, plainReply] = await Promise.all([nextMessage(batchedWs), nextMessage(plainWs)]);
  assert.ok(Array.isArray(batchedReply) && batchedReply.length === 1, JSON.stringify(batchedReply));
  assert.deepEqual(batchedReply[0], plainReply);
  assert.equal(plainReply.type, 'error');
  assert.equal(server.stats.droppedForSlowSubscribers, 0);
  plainWs.close();
  batchedWs.close();
});

test('batch=turn with filters: stream and type apply per message; a turn with nothing for the subscriber sends nothing', async (t) => {
  const server = await start({ heartbeatMs: 60_000 });
  t.after(() => server.close());
  const base = `${server.address.url}/predictions`;
  const query = 'stream=a&type=prediction,drift';
  const plain = texts(await open(`${base}?${query}`));
  const batched = texts(await open(`${base}?${query}&batch=turn`));
  const scoredOnly = texts(await open(`${base}?type=scored&batch=turn`));
  const y = Float32Array.of(0.5);
  for (let seq = 0; seq < 4; seq++) {
    server.publish(predictionOf('a', seq));
    server.publish(predictionOf('b', seq));
    server.publish({ kind: 'scored', stream: 'a', seq, t: 0, y, yhat: y, yLast: y, yMean: y, delay: 0, heldOut: false, version: seq } as OutboundMessage);
    if (seq === 2) server.publish({ kind: 'drift', stream: 'a', seq, t: 0, source: 'page-hinkley' });
    await turnEnd();
  }
  // A turn of stream b only: the filtered subscribers get no message for it, not an empty array.
  server.publish(predictionOf('b', 4));
  await turnEnd();
  await waitFor(() => plain.length === 5 && batched.length === 4 && scoredOnly.length === 4, 5000, 'filtered messages');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(batched.length, 4, 'one array per turn that had something for it');
  assert.deepEqual(unbatch(batched), plain.map((text) => JSON.parse(text)));
  assert.deepEqual(unbatch(batched).map((m: any) => `${m.type}:${m.stream}:${m.seq}`), ['prediction:a:0', 'prediction:a:1', 'prediction:a:2', 'drift:a:2', 'prediction:a:3']);
  assert.deepEqual(unbatch(scoredOnly).map((m: any) => `${m.type}:${m.seq}`), ['scored:0', 'scored:1', 'scored:2', 'scored:3']);
});

test('batch=turn bounds: a large turn leaves in arrays of at most 4,096 messages and 1 MiB of text, all in order; a longer single message goes alone', async (t) => {
  const server = await start({ heartbeatMs: 60_000, maxBufferedBytes: 256 * 1024 * 1024 });
  t.after(() => server.close());
  const base = `${server.address.url}/predictions`;
  const plain = texts(await open(base));
  const batched = texts(await open(`${base}?batch=turn`));
  const settle = async (arrays: number, messages: number): Promise<void> => {
    await waitFor(() => batched.length === arrays && plain.length === messages, 10_000, `${arrays} arrays and ${messages} messages`);
  };

  // Many small messages: the count bound.
  const n = 10_000;
  for (let seq = 0; seq < n; seq++) server.publish(predictionOf('a', seq));
  await turnEnd();
  await settle(3, n);
  assert.deepEqual(batched.map((text) => JSON.parse(text).length), [MAX_SUBSCRIBER_BATCH_MESSAGES, MAX_SUBSCRIBER_BATCH_MESSAGES, n - 2 * MAX_SUBSCRIBER_BATCH_MESSAGES]);
  assert.deepEqual(unbatch(batched), plain.map((text) => JSON.parse(text)));

  // Large messages (about 70 KB each): the text bound.
  batched.length = 0;
  plain.length = 0;
  const wide = new Float32Array(4000).fill(1 / 3);
  for (let seq = 0; seq < 40; seq++) server.publish(predictionOf('a', seq, wide));
  await turnEnd();
  await waitFor(() => plain.length === 40 && unbatch(batched).length === 40, 10_000, 'the wide turn');
  assert.ok(batched.length >= 3, `${batched.length} arrays for ${40 * plain[0]!.length} characters`);
  for (const text of batched) assert.ok(text.length <= MAX_SUBSCRIBER_BATCH_CHARS, `an array of ${text.length} characters`);
  // Each array was full: the next message would not have fitted.
  for (let i = 0; i + 1 < batched.length; i++) assert.ok(batched[i]!.length + 1 + plain[0]!.length > MAX_SUBSCRIBER_BATCH_CHARS);
  assert.deepEqual(unbatch(batched), plain.map((text) => JSON.parse(text)));

  // One message above the text bound: sent, as an array of one, between its neighbours.
  batched.length = 0;
  plain.length = 0;
  server.publish(predictionOf('a', 0));
  server.publish(predictionOf('a', 1, new Float32Array(80_000).fill(1 / 3)));
  server.publish(predictionOf('a', 2));
  await turnEnd();
  await settle(3, 3);
  assert.ok(plain[1]!.length > MAX_SUBSCRIBER_BATCH_CHARS);
  assert.deepEqual(batched, plain.map((text) => `[${text}]`));
  assert.equal(server.stats.droppedForSlowSubscribers, 0);
});

test('batch=turn: a bad value is refused with 400 and the reason', async (t) => {
  const server = await start();
  t.after(() => server.close());
  const base = `${server.address.url}/predictions`;
  for (const query of ['batch=bogus', 'batch=', 'batch=TURN', 'batch=turn,turn', 'batch=turn&batch=turn', 'stream=a&batch=1']) {
    const { status, body } = await refusalOf(`${base}?${query}`);
    assert.equal(status, 400, query);
    assert.match(body, /batch/, `${query}: ${body}`);
  }
  const ok = await open(`${base}?batch=turn&stream=a`);
  ok.close();
});

test('batch=turn, slow subscriber: each missed message is counted, not each batch; what it does get arrives in order', async (t) => {
  const maxBufferedBytes = 64 * 1024;
  const server = await start({ maxBufferedBytes, heartbeatMs: 60_000 });
  t.after(() => server.close());
  const slowWs = await open(`${server.address.url}/predictions?batch=turn`);
  const slow = texts(slowWs);
  (slowWs as any)._socket.pause();
  const yhat = new Float32Array(256).fill(1 / 3);
  const n = 5000;
  const perTurn = 50;
  for (let seq = 0; seq < n; seq++) {
    server.publish(predictionOf('a', seq, yhat));
    if (seq % perTurn === perTurn - 1) await turnEnd();
  }
  const dropped = server.stats.droppedForSlowSubscribers;
  assert.ok(dropped > 0, 'drops counted');
  (slowWs as any)._socket.resume();
  // Only this subscriber: every message was either delivered to it or counted as one drop.
  await waitFor(() => unbatch(slow).length === n - dropped, 20_000, `${n - dropped} messages`);
  await new Promise((r) => setTimeout(r, 50));
  const seqs = unbatch(slow).map((m: any) => m.seq as number);
  assert.equal(seqs.length + server.stats.droppedForSlowSubscribers, n);
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'in order');
  // The bound: checked per message at publish, a pending batch not yet in bufferedAmount: one batch above it.
  const batchChars = `[${Array.from({ length: perTurn }, () => encodeOutbound(predictionOf('a', n, yhat))).join(',')}]`.length;
  assert.ok(server.stats.peakSubscriberBufferedBytes <= maxBufferedBytes + batchChars, `server buffered ${server.stats.peakSubscriberBufferedBytes}`);
  slowWs.close();
});

test('batch=turn: a subscriber that leaves with a pending batch costs nothing; the others go on; close() sends what is pending first', async (t) => {
  const server = await start({ heartbeatMs: 60_000 });
  t.after(() => server.close());
  const base = `${server.address.url}/predictions`;
  const stayingWs = await open(`${base}?batch=turn`);
  const staying = texts(stayingWs);
  const leavers = [await open(`${base}?batch=turn`), await open(`${base}?batch=turn`)];
  const turns = 60;
  for (let turn = 0; turn < turns; turn++) {
    // Published at the end of a turn, so each batch is pending while the sockets' close events are handled.
    for (let i = 0; i < 3; i++) server.publish(predictionOf('a', turn * 3 + i));
    if (turn === 10) leavers[0]!.terminate();
    if (turn === 20) leavers[1]!.close();
    if (turn === 30) leavers.push(await open(`${base}?batch=turn`));
    await turnEnd();
  }
  await waitFor(() => staying.length === turns, 5000, 'every turn for the staying subscriber');
  assert.deepEqual(staying.map((text) => JSON.parse(text).length), Array(turns).fill(3));
  assert.deepEqual(unbatch(staying).map((m: any) => m.seq), Array.from({ length: turns * 3 }, (_, i) => i));
  await waitFor(() => server.stats.subscriberConnections === 2, 5000, 'the leavers gone');
  assert.equal(server.stats.droppedForSlowSubscribers, 0);

  // Published in the same turn as close(): it still arrives, before the close frame.
  const last = texts(leavers[2]!);
  const closedWith = new Promise<number>((r) => leavers[2]!.once('close', (code) => r(code)));
  server.publish(predictionOf('a', 1000));
  await server.close();
  assert.equal(await closedWith, 1001);
  assert.deepEqual(unbatch(last).map((m: any) => m.seq), [1000]);
  assert.deepEqual(unbatch(staying.slice(turns)).map((m: any) => m.seq), [1000]);
});
