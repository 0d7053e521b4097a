// Fuzz of the WebSocket ingest edge: 8,000 cases against the validator directly, 2,000 over a real socket, and
// 20 frames above the ws maxPayload over real sockets (10,020 in all). Each case: a prelude of valid ticks
// (seq 0..4), one generated frame whose expected outcome is known by construction, then a valid tick that must
// still be accepted. No crash; every bad frame answered with its reason; every rejection counted by reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import {
  BINARY_MAGIC,
  IngestValidator,
  emptyReasonCounts,
  encodeBinaryFrame,
  encodeJsonFrame,
  type StreamShape,
} from '../src/adapters/websocket/frames.js';
import { startWebSocketServer } from '../src/adapters/websocket/server.js';
import type { RejectionReason } from '../src/streams/messages.js';

const SHAPE: StreamShape = { inputSize: 3, outputSize: 2 };
const MAX_FRAME = 4096;
const PRELUDE = 5;

/** A generated frame for stream `s`: the bytes and the expected outcome ('ok' or a reason). */
type Case = { build: (s: string) => string | Uint8Array; expect: RejectionReason | 'ok'; streamMode?: 'unknown' | 'new' };

const finite32 = fc.float({ noNaN: true, noDefaultInfinity: true, min: Math.fround(-3e38), max: Math.fround(3e38) });
const vec = (n: number) => fc.array(finite32, { minLength: n, maxLength: n });
const binary = fc.boolean();

const valid: fc.Arbitrary<Case> = fc.tuple(vec(3), fc.option(vec(2)), binary, fc.double({ noNaN: true, noDefaultInfinity: true })).map(
  ([x, y, bin, t]) => ({
    expect: 'ok' as const,
    build: (s: string) => {
      const f = { kind: 'tick' as const, stream: s, seq: PRELUDE, t, x, ...(y ? { y } : {}) };
      return bin ? encodeBinaryFrame(f) : encodeJsonFrame(f);
    },
  }),
);

/** A JSON batch whose elements are all objects: the server judges each element as its own frame. */
const isBatchOfFrameObjects = (v: unknown): boolean =>
  Array.isArray(v) && v.length > 1 && v.every((e) => typeof e === 'object' && e !== null && !Array.isArray(e));

const malformedJson: fc.Arbitrary<Case> = fc
  .oneof(
    fc.string({ maxLength: 200 }),
    // Two or more objects in an array are a batch of that many bad frames, one reply each: not one case.
    fc.json().filter((j) => !j.startsWith('{') && !isBatchOfFrameObjects(JSON.parse(j))),
    fc.constantFrom('{', '{"stream":1,"seq":5,"t":0,"x":[1,2,3]}', '{"stream":"S","seq":-1,"t":0,"x":[1,2,3]}', '{"stream":"S","seq":5.5,"t":0,"x":[1,2,3]}', '{"stream":"S","seq":5,"t":"0","x":[1,2,3]}', '{"stream":"S","seq":5,"t":0,"x":[1,"2",3]}', '{"stream":"S","seq":5,"t":0,"x":{}}', '{"stream":"S","seq":5,"t":0,"x":[1,2,3],"extra":1}', '{"stream":"S","seq":5,"t":0}', '{"stream":"","seq":5,"t":0,"x":[1,2,3]}', '{"type":"label","stream":"S","seq":5,"t":0,"x":[1,2,3]}'),
  )
  .map((text) => ({ expect: 'malformed' as const, build: (s: string) => text.replaceAll('"S"', JSON.stringify(s)) }));

// Records whose stream is not a non-empty string: certainly malformed.
const malformedRecord: fc.Arbitrary<Case> = fc
  .record({ stream: fc.oneof(fc.integer(), fc.constant(null), fc.array(fc.string()), fc.constant('')), seq: fc.nat(), t: fc.double(), x: vec(3) })
  .map((o) => ({ expect: 'malformed' as const, build: () => JSON.stringify(o) }));

const longKey: fc.Arbitrary<Case> = fc.integer({ min: 129, max: 300 }).map((n) => ({
  expect: 'malformed' as const,
  build: () => JSON.stringify({ stream: 'k'.repeat(n), seq: PRELUDE, t: 0, x: [1, 2, 3] }),
}));

const garbage: fc.Arbitrary<Case> = fc.tuple(fc.uint8Array({ minLength: 0, maxLength: 120 }), fc.boolean()).map(([bytes, magic]) => {
  const b = Uint8Array.from(bytes);
  if (magic && b.length > 0) b[0] = BINARY_MAGIC;
  if (!magic && b.length > 0 && b[0] === BINARY_MAGIC) b[0] = 0xff;
  return { expect: 'malformed' as const, build: () => (b.length === 0 ? new Uint8Array([0xff]) : b) };
});

// A valid binary tick with one header byte flipped or its length changed.
const corruptedBinary: fc.Arbitrary<Case> = fc.tuple(fc.constantFrom(0, 1, 2, 3), fc.integer({ min: 1, max: 255 }), fc.integer({ min: -8, max: 8 }).filter((d) => d !== 0)).map(
  ([pos, xor, dlen]) => ({
    expect: 'malformed' as const,
    build: (s: string) => {
      const b = encodeBinaryFrame({ kind: 'tick', stream: s, seq: PRELUDE, t: 0, x: [1, 2, 3] });
      if (pos === 3) {
        const out = new Uint8Array(b.length + dlen);
        out.set(b.subarray(0, Math.min(b.length, out.length)));
        return out;
      }
      b[pos] ^= xor;
      return b;
    },
  }),
);

const wrongDim: fc.Arbitrary<Case> = fc.tuple(fc.integer({ min: 0, max: 12 }).filter((n) => n !== 3), binary, fc.boolean()).map(([n, bin, onY]) => ({
  expect: 'dimension' as const,
  build: (s: string) => {
    const f = onY
      ? { kind: 'tick' as const, stream: s, seq: PRELUDE, t: 0, x: [1, 2, 3], y: new Array(n === 2 ? 5 : Math.max(1, n)).fill(0.5) }
      : { kind: 'tick' as const, stream: s, seq: PRELUDE, t: 0, x: new Array(n).fill(0.25) };
    return bin ? encodeBinaryFrame(f) : encodeJsonFrame(f);
  },
}));

const nonFiniteJson: fc.Arbitrary<Case> = fc
  .tuple(fc.constantFrom('"NaN"', '"Infinity"', '"-Infinity"', 'null', '1e999', '-1e999', '3.5e38', '"nan"', '" inf"'), fc.integer({ min: 0, max: 2 }), fc.constantFrom('x', 'y', 't'))
  .map(([bad, i, field]) => ({
    expect: 'non-finite' as const,
    build: (s: string) => {
      const x = ['1', '2', '3'];
      const y = ['0', '0'];
      let t = '0';
      if (field === 'x') x[i] = bad;
      else if (field === 'y') y[i % 2] = bad;
      else t = bad === '3.5e38' ? '1e999' : bad;
      return `{"stream":${JSON.stringify(s)},"seq":${PRELUDE},"t":${t},"x":[${x.join(',')}],"y":[${y.join(',')}]}`;
    },
  }));

const nonFiniteBinary: fc.Arbitrary<Case> = fc.tuple(fc.constantFrom(NaN, Infinity, -Infinity), fc.integer({ min: 0, max: 4 })).map(([bad, i]) => ({
  expect: 'non-finite' as const,
  build: (s: string) => {
    const x = [1, 2, 3];
    const y = [0, 0];
    if (i < 3) x[i] = bad;
    else y[i - 3] = bad;
    return encodeBinaryFrame({ kind: 'tick', stream: s, seq: PRELUDE, t: 0, x, y });
  },
}));

const oversized: fc.Arbitrary<Case> = fc.tuple(fc.integer({ min: MAX_FRAME + 1, max: MAX_FRAME * 3 }), binary).map(([n, bin]) => ({
  expect: 'oversized' as const,
  build: (s: string) => {
    const f = encodeJsonFrame({ kind: 'tick', stream: s, seq: PRELUDE, t: 0, x: [1, 2, 3] });
    const padded = f.slice(0, -1) + ' '.repeat(Math.max(0, n - f.length)) + '}';
    return bin ? Buffer.from(padded) : padded;
  },
}));

const unknownStream: fc.Arbitrary<Case> = binary.map((bin) => ({
  expect: 'unknown-stream' as const,
  streamMode: 'unknown' as const,
  build: (s: string) => {
    const f = { kind: 'tick' as const, stream: s, seq: 0, t: 0, x: [1, 2, 3] };
    return bin ? encodeBinaryFrame(f) : encodeJsonFrame(f);
  },
}));

const tooMany: fc.Arbitrary<Case> = binary.map((bin) => ({
  expect: 'too-many-streams' as const,
  streamMode: 'new' as const,
  build: (s: string) => {
    const f = { kind: 'tick' as const, stream: s, seq: 0, t: 0, x: [1, 2, 3] };
    return bin ? encodeBinaryFrame(f) : encodeJsonFrame(f);
  },
}));

const order: fc.Arbitrary<Case> = fc.tuple(fc.integer({ min: 0, max: PRELUDE - 1 }), binary, fc.boolean()).map(([seq, bin, session]) => ({
  expect: session ? ('out-of-order' as const) : seq === PRELUDE - 1 ? ('duplicate' as const) : ('out-of-order' as const),
  build: (s: string) => {
    const f = session
      ? { kind: 'session' as const, stream: s, seq, t: 0, session: 'x' }
      : { kind: 'tick' as const, stream: s, seq, t: 0, x: [1, 2, 3] };
    return bin ? encodeBinaryFrame(f) : encodeJsonFrame(f);
  },
}));

const labelUnknown: fc.Arbitrary<Case> = fc.tuple(fc.integer({ min: PRELUDE, max: 1e6 }), binary).map(([seq, bin]) => ({
  expect: 'label-unknown-tick' as const,
  build: (s: string) => {
    const f = { kind: 'label' as const, stream: s, seq, y: [1, 2] };
    return bin ? encodeBinaryFrame(f) : encodeJsonFrame(f);
  },
}));

const anyCase: fc.Arbitrary<Case> = fc.oneof(
  valid,
  malformedJson,
  malformedRecord,
  longKey,
  garbage,
  corruptedBinary,
  wrongDim,
  nonFiniteJson,
  nonFiniteBinary,
  oversized,
  unknownStream,
  tooMany,
  order,
  labelUnknown,
);

function prelude(s: string): string[] {
  return Array.from({ length: PRELUDE }, (_, seq) => encodeJsonFrame({ kind: 'tick', stream: s, seq, t: seq, x: [0, 0, 0] }));
}
const after = (s: string) => encodeBinaryFrame({ kind: 'tick', stream: s, seq: 1000, t: 1, x: [1, 1, 1], y: [0, 0] });

test('fuzz: 8,000 cases against the validator directly', () => {
  const counts = emptyReasonCounts();
  const seen = emptyReasonCounts();
  let accepted = 0;
  fc.assert(
    fc.property(anyCase, (c) => {
      // Streams 'a*' are known; with streamMode 'new' the validator takes any stream with a default shape, up to 2.
      const v = new IngestValidator({
        shapes: (s) => (s.startsWith('a') ? SHAPE : undefined),
        ...(c.streamMode === 'new' ? { defaultShape: SHAPE, maxStreams: 2 } : {}),
        maxFrameBytes: MAX_FRAME,
      });
      const streams = ['a1', 'a2'];
      for (const s of streams) for (const f of prelude(s)) assert.equal(v.accept(f).kind, 'tick');
      const target = c.streamMode === 'unknown' ? 'zz' : c.streamMode === 'new' ? 'n3' : 'a1';
      const r = v.accept(c.build(target));
      if (c.expect === 'ok') {
        assert.equal(r.kind, 'tick');
        accepted++;
      } else {
        assert.equal(r.kind, 'rejected', `expected ${c.expect}`);
        if (r.kind === 'rejected') {
          assert.equal(r.reason, c.expect, r.message);
          assert.ok(r.message.length > 0);
          counts[r.reason]++;
        }
        seen[c.expect]++;
      }
      // The stream goes on.
      assert.equal(v.accept(after('a1')).kind, 'tick');
    }),
    { numRuns: 8000, seed: Number(process.env.DRIFTLINE_FUZZ_SEED ?? 20240611) },
  );
  assert.deepEqual(counts, seen);
  for (const r of ['malformed', 'dimension', 'non-finite', 'oversized', 'unknown-stream', 'too-many-streams', 'duplicate', 'out-of-order', 'label-unknown-tick'] as const) {
    assert.ok(counts[r] > 0, `no ${r} case generated`);
  }
  assert.ok(accepted > 0);
});

test('fuzz: 2,000 cases over a real socket, plus 20 frames above maxPayload', async () => {
  let next = 0;
  // Unique known stream per case ('k<n>'), unknown streams start with 'u'. maxStreams caps streams at the count
  // this test admits, so the 'new' cases (keys 'n...') are refused as too-many-streams once it is reached.
  const server = await startWebSocketServer({
    port: 0,
    shapes: (s) => (s.startsWith('k') ? SHAPE : undefined),
    defaultShape: undefined,
    maxStreams: 100_000,
    maxPayload: 64 * 1024,
    maxFrameBytes: MAX_FRAME,
    heartbeatMs: 60_000,
  });
  const url = `${server.address.url}/ingest`;
  // Resolves after the hello, which every ingest connection gets first, so that replies hold only refusals.
  const connect = (to = url) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(to);
      ws.once('message', () => resolve(ws));
      ws.once('error', reject);
    });
  let ws = await connect();
  const replies: { reason: string; message: string }[] = [];
  const attach = (w: WebSocket) => w.on('message', (d) => replies.push(JSON.parse(d.toString())));
  attach(ws);
  const accepted: number[] = [];
  server.inputs.subscribe((e) => accepted.push(e.seq));
  const expectCounts = emptyReasonCounts();
  const wait = async (cond: () => boolean) => {
    const end = Date.now() + 10_000;
    while (!cond()) {
      if (Date.now() > end) throw new Error('timed out');
      await new Promise((r) => setImmediate(r));
    }
  };
  try {
    // too-many-streams needs a server with a default shape and a stream cap: a second server for those cases.
    const capped = await startWebSocketServer({ port: 0, shapes: () => undefined, defaultShape: SHAPE, maxStreams: 1 });
    const cws = await connect(`${capped.address.url}/ingest`);
    cws.send(encodeJsonFrame({ kind: 'tick', stream: 'first', seq: 0, t: 0, x: [1, 2, 3] }));
    const cReplies: string[] = [];
    cws.on('message', (d) => cReplies.push(JSON.parse(d.toString()).reason));

    await fc.assert(
      fc.asyncProperty(anyCase, async (c) => {
        if (c.streamMode === 'new') {
          const before = cReplies.length;
          cws.send(c.build(`n${next++}`));
          await wait(() => cReplies.length === before + 1);
          assert.equal(cReplies[before], 'too-many-streams');
          return;
        }
        const s = `k${next++}`;
        const target = c.streamMode === 'unknown' ? `u${next}` : s;
        const nAcc = accepted.length;
        const nRep = replies.length;
        for (const f of prelude(s)) ws.send(f);
        ws.send(c.build(target));
        ws.send(after(s));
        const expectAccepted = PRELUDE + 1 + (c.expect === 'ok' ? 1 : 0);
        const expectReplies = c.expect === 'ok' ? 0 : 1;
        await wait(() => accepted.length === nAcc + expectAccepted && replies.length === nRep + expectReplies);
        if (c.expect !== 'ok') {
          assert.equal(replies[nRep]!.reason, c.expect, replies[nRep]!.message);
          expectCounts[c.expect]++;
        }
        assert.equal(accepted[accepted.length - 1], 1000);
      }),
      { numRuns: 2000, seed: Number(process.env.DRIFTLINE_FUZZ_SEED ?? 7) },
    );
    assert.equal(cReplies.length, capped.stats.rejected['too-many-streams']);
    cws.close();
    await capped.close();

    // Above maxPayload ws closes the connection (1009): counted as oversized; a new connection carries on.
    for (let i = 0; i < 20; i++) {
      const code = await new Promise<number>((resolve) => {
        ws.once('close', (c) => resolve(c));
        ws.send(Buffer.alloc(64 * 1024 + 1 + i * 1000, 0x20));
      });
      assert.equal(code, 1009);
      expectCounts.oversized++;
      ws = await connect();
      attach(ws);
      const s = `k${next++}`;
      const n = accepted.length;
      ws.send(after(s));
      await wait(() => accepted.length === n + 1);
    }
    await wait(() => server.stats.rejected.oversized === expectCounts.oversized);
    assert.deepEqual(server.stats.rejected, expectCounts);
    assert.ok(server.stats.accepted >= 2000 * 0.9 * (PRELUDE + 1), `accepted ${server.stats.accepted}`);
    ws.close();
  } finally {
    await server.close();
  }
});
