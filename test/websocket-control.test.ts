// The WebSocket edge's lifecycle and control path (issue 14): invalid UTF-8, the clean stop, checkOrder: false,
// hello and resume requests. Real sockets on loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import {
  IngestValidator,
  MAX_RESUME_STREAMS,
  decodeFrame,
  decodeIngestMessage,
  encodeJsonFrame,
  type StreamShape,
} from '../src/adapters/websocket/frames.js';
import {
  INGEST_PROTOCOL_VERSION,
  startWebSocketServer,
  type DriftlineWebSocketServer,
  type WebSocketServerOptions,
  type WsResumeRequest,
} from '../src/adapters/websocket/server.js';
import type { Rejection, StreamInput } from '../src/streams/messages.js';

const shape: StreamShape = { inputSize: 3, outputSize: 1 };
const shapes = (s: string): StreamShape | undefined => (s === 'a' || s === 'b' ? shape : undefined);
const resolver = (s: string): StreamShape | undefined => shapes(s);

async function start(extra: Partial<WebSocketServerOptions> = {}): Promise<DriftlineWebSocketServer> {
  return startWebSocketServer({ port: 0, shapes, ...extra });
}

/** An open socket and every JSON message it has received, the hello first on an ingest path. */
async function open(url: string): Promise<{ ws: WebSocket; got: any[] }> {
  const ws = new WebSocket(url);
  const got: any[] = [];
  ws.on('message', (d) => got.push(JSON.parse(d.toString())));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, got };
}

async function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const closeOf = (ws: WebSocket): Promise<{ code: number; reason: string }> =>
  new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));

test('invalid UTF-8 in a text frame: ws closes with 1007; counted as malformed, logged, emitted; others unaffected', async () => {
  const warnings: object[] = [];
  const server = await start({ logger: { warn: (obj) => warnings.push(obj) } });
  const rejections: Rejection[] = [];
  const inputs: StreamInput[] = [];
  server.rejections.subscribe((r) => rejections.push(r));
  server.inputs.subscribe((e) => inputs.push(e));
  try {
    const bad = await open(`${server.address.url}/ingest`);
    const other = await open(`${server.address.url}/ingest`);
    const closed = closeOf(bad.ws);
    // ws sends a Buffer given binary: false as a text frame without checking it: the server must catch it.
    bad.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    assert.equal((await closed).code, 1007);
    await waitFor(() => server.stats.rejected.malformed === 1, 5000, 'the malformed count');
    assert.equal(rejections.length, 1);
    assert.equal(rejections[0]!.reason, 'malformed');
    assert.match(rejections[0]!.message, /UTF-8.*1007/);
    assert.ok(warnings.some((w) => (w as { reason?: string }).reason === 'malformed'));
    other.ws.send(encodeJsonFrame({ kind: 'tick', stream: 'a', seq: 1, t: 0, x: [1, 2, 3] }));
    await waitFor(() => inputs.length === 1, 5000, 'the other peer\'s tick');
    other.ws.close();
  } finally {
    await server.close();
  }
});

test('close(): every peer gets close code 1001 "driftline stopping"; frames sent before it are delivered', async () => {
  const server = await start();
  const inputs: StreamInput[] = [];
  let completed = false;
  server.inputs.subscribe({ next: (e) => inputs.push(e), complete: () => (completed = true) });
  const producer = await open(`${server.address.url}/ingest`);
  const subscriber = await open(`${server.address.url}/predictions`);
  await waitFor(() => producer.got.length === 1, 5000, 'the hello');
  const producerClosed = closeOf(producer.ws);
  const subscriberClosed = closeOf(subscriber.ws);
  producer.ws.send(encodeJsonFrame({ kind: 'tick', stream: 'a', seq: 1, t: 0, x: [1, 2, 3] }));
  await waitFor(() => inputs.length === 1, 5000, 'the tick');
  const t0 = performance.now();
  await server.close();
  assert.ok(performance.now() - t0 < 450, 'peers that answer the close frame are not waited for until the timeout');
  assert.deepEqual(await producerClosed, { code: 1001, reason: 'driftline stopping' });
  assert.deepEqual(await subscriberClosed, { code: 1001, reason: 'driftline stopping' });
  assert.equal(completed, true);
  assert.equal(inputs.length, 1);
  // A second close is the same stop.
  await server.close();
});

test('close(): a peer that never answers the close frame is terminated after closeTimeoutMs', async () => {
  const server = await start({ closeTimeoutMs: 150 });
  // A raw TCP peer that completes the upgrade and then ignores everything, the close frame included.
  const sock = tcpConnect(server.address.port, '127.0.0.1');
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  sock.write(
    'GET /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  let received = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  const sockClosed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  await waitFor(() => server.stats.ingestConnections === 1, 5000, 'the raw peer to connect');
  const t0 = performance.now();
  await server.close();
  const took = performance.now() - t0;
  assert.ok(took >= 140 && took < 2000, `close took ${took.toFixed(0)} ms`);
  await sockClosed;
  // The close frame did go out: opcode 0x88, then code 1001 (0x03e9).
  const at = received.indexOf(Buffer.from([0x88]));
  assert.ok(at > 0, 'a close frame was sent');
  assert.equal(received.readUInt16BE(at + 2), 1001);
});

test('validator checkOrder: false keeps no per-stream state but still checks shapes and values', () => {
  const v = new IngestValidator({ shapes, maxStreams: 1, labelWindow: 2, checkOrder: false });
  const tick = (stream: string, seq: number) => encodeJsonFrame({ kind: 'tick', stream, seq, t: 0, x: [1, 2, 3] });
  // Duplicates, going back, labels for ticks never seen, a second stream beyond maxStreams: all later stages' job.
  for (const f of [tick('a', 5), tick('a', 5), tick('a', 2), tick('b', 0), '{"stream":"a","seq":99,"label":[1]}', '{"stream":"b","seq":0,"t":0,"session":"s"}']) {
    assert.notEqual(v.accept(f).kind, 'rejected', f);
  }
  assert.equal(v.streamCount, 0);
  assert.equal(v.order({ kind: 'label', stream: 'zz', seq: 1, y: new Float32Array(1) }).kind, 'label');
  const reasonOf = (f: string) => (v.accept(f) as Rejection).reason;
  assert.equal(reasonOf('{"stream":"a","seq":1,"t":0,"x":[1,2]}'), 'dimension');
  assert.equal(reasonOf('{"stream":"a","seq":1,"t":0,"x":[1,null,3]}'), 'non-finite');
  assert.equal(reasonOf('{"stream":"c","seq":1,"t":0,"x":[1,2,3]}'), 'unknown-stream');
  assert.equal(reasonOf('{"stream":"a","seq":-1,"t":0,"x":[1,2,3]}'), 'malformed');
  // The default still orders.
  const ordered = new IngestValidator({ shapes });
  assert.equal(ordered.checkOrder, true);
  ordered.accept(tick('a', 5));
  assert.equal((ordered.accept(tick('a', 5)) as Rejection).reason, 'duplicate');
});

test('server checkOrder: false passes a duplicate tick on to the pipeline, which can refuse it through replyTo', async () => {
  const server = await start({ checkOrder: false, maxStreams: 1 });
  const inputs: StreamInput[] = [];
  server.inputs.subscribe((e) => inputs.push(e));
  try {
    const p = await open(`${server.address.url}/ingest`);
    p.ws.send(encodeJsonFrame({ kind: 'tick', stream: 'a', seq: 1, t: 0, x: [1, 2, 3] }));
    p.ws.send(encodeJsonFrame({ kind: 'tick', stream: 'a', seq: 1, t: 0, x: [1, 2, 3] }));
    p.ws.send(encodeJsonFrame({ kind: 'tick', stream: 'b', seq: 0, t: 0, x: [1, 2, 3] }));
    await waitFor(() => inputs.length === 3, 5000, 'three inputs');
    assert.equal(server.stats.accepted, 3);
    assert.equal(server.replyTo(inputs[1]!, { kind: 'rejected', reason: 'duplicate', message: 'seen', stream: 'a', seq: 1 }), true);
    await waitFor(() => p.got.length === 2, 5000, 'the later refusal');
    assert.equal(p.got[1].reason, 'duplicate');
    p.ws.close();
  } finally {
    await server.close();
  }
});

test('decodeIngestMessage: resume requests, and what makes one malformed', () => {
  assert.deepEqual(decodeIngestMessage('{"type":"resume"}', resolver), { kind: 'resume', streams: undefined });
  assert.deepEqual(decodeIngestMessage('{"type":"resume","streams":["a","zz"]}', resolver), { kind: 'resume', streams: ['a', 'zz'] });
  assert.deepEqual(decodeIngestMessage(Buffer.from('{"type":"resume","streams":[]}'), resolver), { kind: 'resume', streams: [] });
  const atLimit = JSON.stringify({ type: 'resume', streams: Array.from({ length: MAX_RESUME_STREAMS }, (_, i) => `s${i}`) });
  assert.equal(decodeIngestMessage(atLimit, resolver).kind, 'resume');
  const malformed: string[] = [
    '{"type":"resume","streams":"a"}',
    '{"type":"resume","streams":[1]}',
    '{"type":"resume","streams":[""]}',
    `{"type":"resume","streams":["${'k'.repeat(129)}"]}`,
    '{"type":"resume","streams":null}',
    '{"type":"resume","from":3}',
    JSON.stringify({ type: 'resume', streams: Array.from({ length: MAX_RESUME_STREAMS + 1 }, (_, i) => `s${i}`) }),
  ];
  for (const m of malformed) {
    const r = decodeIngestMessage(m, resolver);
    assert.equal(r.kind, 'rejected', m.slice(0, 60));
    assert.equal((r as Rejection).reason, 'malformed');
  }
  assert.match((decodeIngestMessage('{"type":"resume","streams":["a",7]}', resolver) as Rejection).message, /streams\[1\]/);
  // The size limit comes first, as for frames.
  assert.equal((decodeIngestMessage(atLimit, resolver, { maxFrameBytes: 1024 }) as Rejection).reason, 'oversized');
  // Frames decode as before; decodeFrame, which knows only frames, still refuses a resume request.
  assert.equal(decodeIngestMessage(encodeJsonFrame({ kind: 'tick', stream: 'a', seq: 1, t: 0, x: [1, 2, 3] }), resolver).kind, 'tick');
  assert.equal(decodeFrame('{"type":"resume"}', resolver).kind, 'rejected');
  assert.equal(new IngestValidator({ shapes }).accept('{"type":"resume"}').kind, 'rejected');
  assert.equal(new IngestValidator({ shapes }).acceptMessage('{"type":"resume"}').kind, 'resume');
});

test('hello first on every ingest connection; resume requests reach the application, which answers with sendTo', async () => {
  const server = await start({ helloFields: { durable: true, type: 'not-this', instance: 'nor-this' } });
  const requests: WsResumeRequest[] = [];
  const inputs: StreamInput[] = [];
  server.resumeRequests.subscribe((r) => requests.push(r));
  server.inputs.subscribe((e) => inputs.push(e));
  try {
    const a = await open(`${server.address.url}/ingest`);
    const b = await open(`${server.address.url}/ingest`);
    await waitFor(() => a.got.length === 1 && b.got.length === 1, 5000, 'the hellos');
    assert.deepEqual(a.got[0], { type: 'hello', instance: server.instance, protocol: INGEST_PROTOCOL_VERSION, durable: true });
    assert.equal(INGEST_PROTOCOL_VERSION, 1);
    assert.match(server.instance, /^[0-9a-f-]{36}$/);
    assert.deepEqual(b.got[0], a.got[0]);
    // Subscribers get no hello.
    const sub = await open(`${server.address.url}/predictions`);

    a.ws.send('{"type":"resume","streams":["a","b"]}');
    b.ws.send('{"type":"resume"}');
    await waitFor(() => requests.length === 2, 5000, 'two resume requests');
    const fromA = requests.find((r) => r.streams !== undefined)!;
    const fromB = requests.find((r) => r.streams === undefined)!;
    assert.deepEqual(fromA.streams, ['a', 'b']);
    assert.notEqual(fromA.peer, fromB.peer);
    assert.equal(server.sendTo(fromA.peer, { type: 'resume', streams: { a: { seq: 4, pendingLabels: [] } } }), true);
    await waitFor(() => a.got.length === 2, 5000, 'the answer to a');
    assert.deepEqual(a.got[1], { type: 'resume', streams: { a: { seq: 4, pendingLabels: [] } } });
    assert.equal(b.got.length, 1);
    // Not a peer of this server's ingest path: refused, nothing written.
    assert.equal(server.sendTo({}, { type: 'x' }), false);
    assert.equal(server.sendTo(sub.ws, { type: 'x' }), false);
    assert.equal(server.sendTo(undefined, { type: 'x' }), false);
    // Not frames: neither accepted nor refused.
    assert.equal(server.stats.accepted, 0);
    assert.equal(Object.values(server.stats.rejected).reduce((x, y) => x + y, 0), 0);

    // peerOf names the socket that sent an input: the same handle resume requests carry.
    a.ws.send(encodeJsonFrame({ kind: 'tick', stream: 'a', seq: 1, t: 0, x: [1, 2, 3] }));
    await waitFor(() => inputs.length === 1, 5000, 'the tick');
    assert.equal(server.peerOf(inputs[0]!), fromA.peer);
    assert.equal(server.peerOf({ ...inputs[0]! }), undefined);
    assert.equal(server.sendTo(server.peerOf(inputs[0]!), { type: 'ack', stream: 'a', seq: 1, pendingLabels: [] }), true);
    await waitFor(() => a.got.length === 3, 5000, 'the ack');
    assert.equal(a.got[2].type, 'ack');

    // A malformed resume request gets the usual error reply and is counted.
    b.ws.send('{"type":"resume","streams":[""]}');
    await waitFor(() => b.got.length === 2, 5000, 'the error reply');
    assert.equal(b.got[1].type, 'error');
    assert.equal(b.got[1].reason, 'malformed');
    assert.equal(server.stats.rejected.malformed, 1);
    assert.equal(requests.length, 2);

    // A peer that has gone is not written to.
    const bClosed = closeOf(b.ws);
    b.ws.close();
    await bClosed;
    await waitFor(() => server.stats.ingestConnections === 1, 5000, 'b to go');
    assert.equal(server.sendTo(fromB.peer, { type: 'x' }), false);
    a.ws.close();
    sub.ws.close();
  } finally {
    await server.close();
  }
  // A new start, a new instance.
  const again = await start();
  try {
    const c = await open(`${again.address.url}/ingest`);
    await waitFor(() => c.got.length === 1, 5000, 'the hello');
    assert.notEqual(c.got[0].instance, server.instance);
    assert.deepEqual(Object.keys(c.got[0]).sort(), ['instance', 'protocol', 'type']);
    c.ws.close();
  } finally {
    await again.close();
  }
});
