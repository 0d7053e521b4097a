// Fuzz of the whole ingest path: ws socket -> edge decode + validation -> pipeline (predictThenLearn, the learner
// pool) -> learners, against the real service (startDriftline in-process, a tanh RNN with 8 units, 3 inputs,
// 2 outputs), every case over a real socket. The pipeline is made stricter than the edge (its pool admits only
// 'a' and 'b', the edge also 'c'; its label window is 4 ticks, the edge's 8) so that refusals happen on both
// sides of the edge.
//
// Each case: a prelude of valid ticks, one generated frame (valid, or bad in one way), then a valid tick that
// must still be accepted. The expected outcome of the generated frame comes from the test's own model of the
// ordering rules (last tick, last session marker, the last 8 tick seqs with their labelled flags per stream),
// never from the service. Asserted per case: the service is still running; a refused frame leaves every learner's
// snapshot byte-identical and its sender gets one error reply naming the expected reason; an accepted tick or
// label changes its stream's learner and no other, with no reply; driftline_events_rejected_total{reason} equals
// the running expected count for every reason. Then frames above the ws maxPayload (ws closes with 1009), and one
// scrape of the metrics endpoint against the totals.
//
// Synchronisation: after each group of frames the test sends a text frame "barrier-<n>", which the edge refuses as
// 'malformed'; frames on one socket are handled in order, and every reply is sent while its frame is handled, so
// when the barrier's reply arrives every earlier frame has been processed and answered. Barriers are counted in
// the expected 'malformed' total.
//
// DRIFTLINE_FUZZ_RUNS and DRIFTLINE_FUZZ_SEED override the case count (default 10,000) and the seed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import type { Counter } from 'prom-client';
import { BINARY_MAGIC, emptyReasonCounts, encodeBinaryFrame, encodeJsonFrame, type IngestFrame } from '../src/adapters/websocket/frames.js';
import { parseConfig } from '../src/cli/config.js';
import { createLogger } from '../src/cli/logger.js';
import { startDriftline, type RunningDriftline } from '../src/cli/run.js';
import { REJECTION_REASONS, type RejectionReason } from '../src/streams/messages.js';

const RUNS = Number(process.env.DRIFTLINE_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.DRIFTLINE_FUZZ_SEED ?? 20_250_611);
const INPUTS = 3;
const OUTPUTS = 2;
/** The edge remembers the last 8 ticks of a stream for labels (learner.maxLabelDelay). */
const EDGE_LABEL_WINDOW = 8;
/** The pipeline takes a label at most 3 ticks late (its maxDelay, set below the edge's window on purpose). */
const PIPELINE_MAX_DELAY = 4;
const MAX_PAYLOAD = 16 * 1024;
/** The server's application limit: maxPayload / 4. */
const MAX_FRAME = MAX_PAYLOAD / 4;
const ABOVE_MAX_PAYLOAD_FRAMES = 20;

/** Streams with a learner. */
const LEARNED = ['a', 'b'] as const;
/** Allowed by the config, so admitted at the edge, but refused by the pipeline's pool. */
const EDGE_ONLY = 'c';
/** Allowed by the config, but the edge already holds its maxStreams (3) when it comes. */
const ONE_TOO_MANY = 'd';
const ALLOWED = new Set(['a', 'b', 'c', 'd']);

type Stream = 'a' | 'b' | 'c';
type Encoding = 'json' | 'binary';
type Outcome = { readonly accept: true } | { readonly reason: RejectionReason; readonly stage: 'edge' | 'pipeline' };

// ------------------------------------------------------------------------------------- the model of the edge

/** What the edge knows of one stream, kept by the test to know each frame's outcome in advance. */
class StreamModel {
  lastTick = -1;
  lastMarker = -1;
  /** The last EDGE_LABEL_WINDOW ticks, oldest first. */
  readonly ticks: { seq: number; labelled: boolean }[] = [];

  tickOutcome(seq: number): 'ok' | 'duplicate' | 'out-of-order' {
    if (seq === this.lastTick) return 'duplicate';
    return seq < this.lastTick ? 'out-of-order' : 'ok';
  }

  commitTick(seq: number, labelled: boolean): void {
    this.lastTick = seq;
    this.ticks.push({ seq, labelled });
    if (this.ticks.length > EDGE_LABEL_WINDOW) this.ticks.shift();
  }

  /** The edge's verdict on a label for `seq`, or how many ticks late it is when the edge takes it. */
  labelOutcome(seq: number): RejectionReason | { delay: number } {
    if (this.ticks.length === 0 || seq > this.lastTick) return 'label-unknown-tick';
    if (seq < this.ticks[0]!.seq) return 'label-too-late';
    const i = this.ticks.findIndex((t) => t.seq === seq);
    if (i < 0) return 'label-unknown-tick';
    if (this.ticks[i]!.labelled) return 'label-duplicate';
    return { delay: this.ticks.length - 1 - i };
  }

  commitLabel(seq: number): void {
    this.ticks.find((t) => t.seq === seq)!.labelled = true;
  }

  sessionOutcome(seq: number): 'ok' | 'duplicate' | 'out-of-order' {
    if (seq === this.lastMarker) return 'duplicate';
    return seq <= this.lastTick || seq < this.lastMarker ? 'out-of-order' : 'ok';
  }
}

// ------------------------------------------------------------------------------------------ generated frames

/** A frame built against the model when the case runs: its bytes, and what the service must do with it. */
interface Built {
  readonly data: string | Uint8Array;
  readonly outcome: Outcome;
  /** The stream whose learner an accepted frame changes. */
  readonly learns?: string;
  /** The stream and seq a pipeline refusal names. */
  readonly names?: { stream: string; seq: number };
  /** Applies the frame to the model once it is accepted at the edge. */
  readonly commit?: () => void;
}

interface Op {
  readonly category: string;
  build(models: Record<Stream, StreamModel>): Built;
}

const small = fc.float({ noNaN: true, min: -4, max: 4 });
const vec = (n: number) => fc.array(small, { minLength: n, maxLength: n });
const encoding = fc.constantFrom<Encoding>('json', 'binary');
const learnedStream = fc.constantFrom<Stream>(...LEARNED);
const anyStream = fc.constantFrom<Stream>('a', 'b', 'c');
/** Half the ticks carry their label, so that later label frames find both labelled and unlabelled ticks. */
const maybeLabel = fc.option(vec(OUTPUTS), { nil: undefined, freq: 1 });

function encode(f: IngestFrame, enc: Encoding): string | Uint8Array {
  return enc === 'binary' ? encodeBinaryFrame(f) : encodeJsonFrame(f);
}

/** Outcome of a frame the edge accepts: a learned stream learns, the edge-only stream is refused by the pool. */
function pastTheEdge(stream: Stream, seq: number, changesLearner: boolean): Pick<Built, 'outcome' | 'learns' | 'names'> {
  if (stream === EDGE_ONLY) return { outcome: { reason: 'unknown-stream', stage: 'pipeline' }, names: { stream, seq } };
  return { outcome: { accept: true }, ...(changesLearner ? { learns: stream } : {}) };
}

const tickOp: fc.Arbitrary<Op> = fc
  .record({
    stream: anyStream,
    seqMode: fc.oneof(
      { weight: 3, arbitrary: fc.record({ next: fc.integer({ min: 1, max: 3 }) }) },
      { weight: 1, arbitrary: fc.constant('last' as const) },
      { weight: 1, arbitrary: fc.record({ back: fc.integer({ min: 1, max: 6 }) }) },
    ),
    x: vec(INPUTS),
    y: maybeLabel,
    enc: encoding,
  })
  .map(({ stream, seqMode, x, y, enc }) => ({
    category: 'tick',
    build(models) {
      const m = models[stream];
      const seq = seqMode === 'last' ? m.lastTick : 'next' in seqMode ? m.lastTick + seqMode.next : Math.max(0, m.lastTick - seqMode.back);
      const data = encode({ kind: 'tick', stream, seq, t: seq / 100, x, ...(y ? { y } : {}) }, enc);
      const edge = m.tickOutcome(seq);
      if (edge !== 'ok') return { data, outcome: { reason: edge, stage: 'edge' } };
      return { data, ...pastTheEdge(stream, seq, true), commit: () => m.commitTick(seq, y !== undefined) };
    },
  }));

const labelOp: fc.Arbitrary<Op> = fc
  .record({
    stream: anyStream,
    target: fc.oneof(
      { weight: 4, arbitrary: fc.record({ delay: fc.integer({ min: 0, max: PIPELINE_MAX_DELAY - 1 }) }) },
      { weight: 3, arbitrary: fc.record({ delay: fc.integer({ min: PIPELINE_MAX_DELAY, max: EDGE_LABEL_WINDOW + 3 }) }) },
      { weight: 1, arbitrary: fc.constant('gap' as const) },
      { weight: 1, arbitrary: fc.record({ future: fc.integer({ min: 1, max: 5 }) }) },
    ),
    y: vec(OUTPUTS),
    enc: encoding,
  })
  .map(({ stream, target, y, enc }) => ({
    category: 'label',
    build(models) {
      const m = models[stream];
      const { ticks } = m;
      let seq: number;
      if (target === 'gap') {
        // A seq between two remembered ticks that was never sent; past the last tick when there is no gap.
        const i = ticks.findIndex((t, k) => k > 0 && t.seq - ticks[k - 1]!.seq > 1);
        seq = i > 0 ? ticks[i]!.seq - 1 : m.lastTick + 1;
      } else if ('future' in target) {
        seq = m.lastTick + target.future;
      } else if (target.delay < ticks.length) {
        seq = ticks[ticks.length - 1 - target.delay]!.seq;
      } else {
        seq = Math.max(0, ticks[0]!.seq - (target.delay - ticks.length + 1));
      }
      const data = encode({ kind: 'label', stream, seq, y }, enc);
      const edge = m.labelOutcome(seq);
      if (typeof edge === 'string') return { data, outcome: { reason: edge, stage: 'edge' } };
      const commit = () => m.commitLabel(seq);
      if (stream !== EDGE_ONLY && edge.delay >= PIPELINE_MAX_DELAY) {
        return { data, outcome: { reason: 'label-too-late', stage: 'pipeline' }, names: { stream, seq }, commit };
      }
      return { data, ...pastTheEdge(stream, seq, true), commit };
    },
  }));

const sessionOp: fc.Arbitrary<Op> = fc
  .record({
    stream: anyStream,
    seqMode: fc.oneof(
      fc.record({ next: fc.integer({ min: 1, max: 3 }) }),
      fc.constant('marker' as const),
      fc.record({ back: fc.integer({ min: 0, max: 4 }) }),
    ),
    name: fc.constantFrom('day-1', 'day-2', 'Ünïcode session'),
    enc: encoding,
  })
  .map(({ stream, seqMode, name, enc }) => ({
    category: 'session',
    build(models) {
      const m = models[stream];
      const seq =
        seqMode === 'marker' ? Math.max(0, m.lastMarker) : 'next' in seqMode ? m.lastTick + seqMode.next : Math.max(0, m.lastTick - seqMode.back);
      const data = encode({ kind: 'session', stream, seq, t: seq / 100, session: name }, enc);
      const edge = m.sessionOutcome(seq);
      if (edge !== 'ok') return { data, outcome: { reason: edge, stage: 'edge' } };
      // A declared boundary forks a frozen shadow; the learner itself is not asserted either way.
      return { data, ...pastTheEdge(stream, seq, false), commit: () => void (m.lastMarker = seq) };
    },
  }));

/** A frame refused at the edge for a reason that does not depend on the stream's state. */
function refusedAtEdge(category: string, reason: RejectionReason, make: (stream: string, seq: number) => string | Uint8Array): fc.Arbitrary<Op> {
  return learnedStream.map((stream) => ({
    category,
    build: (models) => ({ data: make(stream, models[stream].lastTick + 1), outcome: { reason, stage: 'edge' } }),
  }));
}

const malformedText: fc.Arbitrary<Op> = fc
  .oneof(
    fc.string({ maxLength: 200 }),
    fc.json().filter((j) => !j.trimStart().startsWith('{')),
    fc.constantFrom(
      '{',
      '{"stream":1,"seq":SEQ,"t":0,"x":[1,2,3]}',
      '{"stream":"S","seq":-1,"t":0,"x":[1,2,3]}',
      '{"stream":"S","seq":1.5,"t":0,"x":[1,2,3]}',
      '{"stream":"S","seq":"SEQ","t":0,"x":[1,2,3]}',
      '{"stream":"S","seq":SEQ,"t":"0","x":[1,2,3]}',
      '{"stream":"S","seq":SEQ,"t":0,"x":[1,"2",3]}',
      '{"stream":"S","seq":SEQ,"t":0,"x":{}}',
      '{"stream":"S","seq":SEQ,"t":0,"x":[1,2,3],"extra":1}',
      '{"stream":"S","seq":SEQ,"t":0}',
      '{"stream":"","seq":SEQ,"t":0,"x":[1,2,3]}',
      '{"type":"label","stream":"S","seq":SEQ,"t":0,"x":[1,2,3]}',
      '{"stream":"S","seq":SEQ,"label":[1,true]}',
      '{"stream":"S","seq":SEQ,"t":0,"session":""}',
      '{"stream":"S","seq":SEQ,"t":0,"x":[1,2,3],"y":"0"}',
    ),
  )
  .chain((text) =>
    refusedAtEdge('malformed JSON', 'malformed', (s, seq) => text.replaceAll('"S"', JSON.stringify(s)).replaceAll('SEQ', String(seq))),
  );

const longKey: fc.Arbitrary<Op> = fc
  .integer({ min: 129, max: 400 })
  .chain((n) => refusedAtEdge('stream key too long', 'malformed', (_s, seq) => JSON.stringify({ stream: 'a'.repeat(n), seq, t: 0, x: [1, 2, 3] })));

const garbage: fc.Arbitrary<Op> = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 120 }), fc.boolean()).chain(([bytes, magic]) =>
  refusedAtEdge('binary garbage', 'malformed', () => {
    const b = Uint8Array.from(bytes);
    // With the magic byte it is read as a binary frame, without it as UTF-8 JSON: either way refused.
    b[0] = magic ? BINARY_MAGIC : b[0] === BINARY_MAGIC ? 0xff : b[0]!;
    return b;
  }),
);

const corruptedBinary: fc.Arbitrary<Op> = fc
  .tuple(fc.constantFrom(0, 1, 2, 3), fc.integer({ min: 1, max: 255 }), fc.integer({ min: -8, max: 8 }).filter((d) => d !== 0))
  .chain(([pos, xor, dlen]) =>
    refusedAtEdge('corrupted binary header or length', 'malformed', (s, seq) => {
      const b = encodeBinaryFrame({ kind: 'tick', stream: s, seq, t: 0, x: [1, 2, 3] });
      if (pos === 3) {
        const out = new Uint8Array(b.length + dlen);
        out.set(b.subarray(0, Math.min(b.length, out.length)));
        return out;
      }
      b[pos] = b[pos]! ^ xor;
      return b;
    }),
  );

const wrongDimension: fc.Arbitrary<Op> = fc
  .tuple(
    fc.constantFrom('x', 'y', 'label'),
    fc.integer({ min: 0, max: 12 }).filter((n) => n !== INPUTS),
    fc.constantFrom(1, 3, 4, 5, 9),
    encoding,
  )
  .chain(([field, nx, ny, enc]) =>
    refusedAtEdge(`wrong dimension (${field})`, 'dimension', (stream, seq) => {
      if (field === 'label') return encode({ kind: 'label', stream, seq: Math.max(0, seq - 1), y: new Array(ny).fill(0.5) }, enc);
      if (field === 'y') return encode({ kind: 'tick', stream, seq, t: 0, x: [1, 2, 3], y: new Array(ny).fill(0.5) }, enc);
      return encode({ kind: 'tick', stream, seq, t: 0, x: new Array(nx).fill(0.25) }, enc);
    }),
  );

const nonFiniteJson: fc.Arbitrary<Op> = fc
  .tuple(
    fc.constantFrom('"NaN"', '"Infinity"', '"-Infinity"', 'null', '1e999', '-1e999', '3.5e38', '"nan"', '" inf"'),
    fc.integer({ min: 0, max: 2 }),
    fc.constantFrom('x', 'y', 't', 'label'),
  )
  .chain(([bad, i, field]) =>
    refusedAtEdge(`non-finite JSON ${field}`, 'non-finite', (stream, seq) => {
      const s = JSON.stringify(stream);
      const y = ['0', '0'];
      if (field === 'label') {
        y[i % 2] = bad;
        return `{"stream":${s},"seq":${Math.max(0, seq - 1)},"label":[${y.join(',')}]}`;
      }
      const x = ['1', '2', '3'];
      let t = '0';
      if (field === 'x') x[i] = bad;
      else if (field === 'y') y[i % 2] = bad;
      else t = bad === '3.5e38' ? '1e999' : bad; // 3.5e38 is a finite time, only a Float32 overflow
      return `{"stream":${s},"seq":${seq},"t":${t},"x":[${x.join(',')}],"y":[${y.join(',')}]}`;
    }),
  );

const nonFiniteBinary: fc.Arbitrary<Op> = fc
  .tuple(fc.constantFrom(NaN, Infinity, -Infinity), fc.constantFrom('x', 'y', 't', 'label', 'seq'), fc.integer({ min: 0, max: 2 }))
  .chain(([bad, field, i]) =>
    refusedAtEdge(`non-finite binary ${field}`, 'non-finite', (stream, seq) => {
      if (field === 'label') return encodeBinaryFrame({ kind: 'label', stream, seq: Math.max(0, seq - 1), y: i % 2 ? [0, bad] : [bad, 0] });
      const x = [1, 2, 3];
      const y = [0, 0];
      if (field === 'x') x[i] = bad;
      if (field === 'y') y[i % 2] = bad;
      const b = encodeBinaryFrame({ kind: 'tick', stream, seq, t: field === 't' ? bad : 0, x, y });
      // seq is the first float64 after the 5-byte prefix and the key.
      if (field === 'seq') new DataView(b.buffer).setFloat64(5 + Buffer.byteLength(stream), bad, true);
      return b;
    }),
  );

const oversized: fc.Arbitrary<Op> = fc.tuple(fc.integer({ min: MAX_FRAME + 1, max: MAX_PAYLOAD - 1 }), encoding).chain(([n, enc]) =>
  refusedAtEdge('oversized (below maxPayload)', 'oversized', (stream, seq) => {
    const f = encodeJsonFrame({ kind: 'tick', stream, seq, t: 0, x: [1, 2, 3] });
    const padded = `${f.slice(0, -1)}${' '.repeat(Math.max(0, n - f.length))}}`;
    return enc === 'binary' ? Buffer.from(padded) : padded;
  }),
);

const kindOf = fc.constantFrom('tick', 'label', 'session');
function frameFor(kind: string, stream: string, seq: number, enc: Encoding): string | Uint8Array {
  if (kind === 'label') return encode({ kind: 'label', stream, seq, y: [0.5, -0.5] }, enc);
  if (kind === 'session') return encode({ kind: 'session', stream, seq, t: 0, session: 'day-1' }, enc);
  return encode({ kind: 'tick', stream, seq, t: 0, x: [1, 2, 3] }, enc);
}

const unknownStream: fc.Arbitrary<Op> = fc
  .tuple(fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !ALLOWED.has(s)), kindOf, encoding)
  .map(([name, kind, enc]) => ({
    category: `unknown stream (${kind})`,
    build: () => ({ data: frameFor(kind, name, 0, enc), outcome: { reason: 'unknown-stream', stage: 'edge' } }),
  }));

const tooManyStreams: fc.Arbitrary<Op> = fc.tuple(kindOf, encoding, fc.nat({ max: 1000 })).map(([kind, enc, seq]) => ({
  category: `one stream too many (${kind})`,
  build: () => ({ data: frameFor(kind, ONE_TOO_MANY, seq, enc), outcome: { reason: 'too-many-streams', stage: 'edge' } }),
}));

const anyOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: tickOp },
  { weight: 4, arbitrary: labelOp },
  { weight: 2, arbitrary: sessionOp },
  { weight: 1, arbitrary: malformedText },
  { weight: 1, arbitrary: longKey },
  { weight: 1, arbitrary: garbage },
  { weight: 1, arbitrary: corruptedBinary },
  { weight: 2, arbitrary: wrongDimension },
  { weight: 2, arbitrary: nonFiniteJson },
  { weight: 1, arbitrary: nonFiniteBinary },
  { weight: 1, arbitrary: oversized },
  { weight: 1, arbitrary: unknownStream },
  { weight: 1, arbitrary: tooManyStreams },
);

/** Valid ticks on a learned stream: the prelude (1 to 3 of them) and the closing tick. */
const validTick = fc.record({ stream: learnedStream, gap: fc.integer({ min: 1, max: 2 }), x: vec(INPUTS), y: maybeLabel, enc: encoding });
type ValidTick = typeof validTick extends fc.Arbitrary<infer T> ? T : never;

// -------------------------------------------------------------------------------------------------- harness

interface ErrorReply {
  readonly type: string;
  readonly reason: RejectionReason;
  readonly message: string;
  readonly stream?: string;
  readonly seq?: number;
}

let service: RunningDriftline;
let stoppedEarly = false;

before(async () => {
  const config = parseConfig({
    streams: { inputSize: INPUTS, outputSize: OUTPUTS, maxStreams: 3, allow: [...ALLOWED] },
    learner: {
      cell: { kind: 'tanh-rnn', hiddenSize: 8 },
      credit: { rule: 'immediate' },
      optimizer: { name: 'rmsprop', lr: 0.01 },
      maxLabelDelay: EDGE_LABEL_WINDOW,
    },
    sources: { websocket: { host: '127.0.0.1', port: 0, maxPayloadBytes: MAX_PAYLOAD, heartbeatMs: 600_000 } },
    evaluation: { window: 20, reportEvery: 50, recoveryTicks: 5 },
    drift: { detectors: [] },
    metrics: { port: 0 },
    log: { level: 'silent' },
  });
  service = await startDriftline(config, {
    logger: createLogger({ level: 'silent' }),
    pipelineOptions: (o) => ({ ...o, pool: { ...o.pool, allowedStreams: [...LEARNED] }, maxDelay: PIPELINE_MAX_DELAY }),
  });
  void service.stopped.then(() => {
    stoppedEarly = true;
  });
});

after(async () => {
  await service?.stop();
});

/** One ingest connection and the replies it has received, in order. */
class Peer {
  readonly replies: ErrorReply[] = [];
  closeCode: number | undefined;
  private barriers = 0;
  private waiter: (() => void) | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.replies.push(JSON.parse(d.toString()) as ErrorReply);
      this.waiter?.();
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.waiter?.();
    });
  }

  static open(url: string): Promise<Peer> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once('open', () => resolve(new Peer(ws)));
      ws.once('error', reject);
    });
  }

  /** Sends the frames and a barrier; resolves with the replies to the frames once the barrier's has come. */
  async exchange(frames: (string | Uint8Array)[]): Promise<ErrorReply[]> {
    const from = this.replies.length;
    const barrier = `barrier-${++this.barriers}`;
    for (const f of frames) this.ws.send(f);
    this.ws.send(barrier);
    // The edge quotes the text it could not parse, so the reply names this barrier and no other frame.
    const quoted = JSON.stringify(barrier);
    await this.until(() => this.replies.length > from && this.replies[this.replies.length - 1]!.message.includes(quoted), `the reply to ${barrier}`);
    const got = this.replies.slice(from);
    assert.equal(got.pop()!.reason, 'malformed');
    return got;
  }

  until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      this.waiter = () => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiter = undefined;
        resolve();
      };
    });
  }
}

function snapshots(): Map<string, Buffer> {
  const pool = service.pipeline.pool;
  const out = new Map<string, Buffer>();
  for (const key of pool.keys()) out.set(key, Buffer.from(pool.peek(key)!.snapshot()));
  return out;
}

async function rejectedTotals(): Promise<Record<RejectionReason, number>> {
  const counter = service.metrics.registry.getSingleMetric('driftline_events_rejected_total') as Counter<'reason'>;
  const totals = emptyReasonCounts();
  for (const v of (await counter.get()).values) totals[v.labels.reason as RejectionReason] = v.value;
  return totals;
}

function changedKeys(before: Map<string, Buffer>, now: Map<string, Buffer>): string[] {
  assert.deepEqual([...now.keys()].sort(), [...before.keys()].sort(), 'no learner appears or goes');
  return [...now.keys()].filter((k) => !now.get(k)!.equals(before.get(k)!));
}

test(`ingest fuzz: ${RUNS} cases over a real socket into the learners, then ${ABOVE_MAX_PAYLOAD_FRAMES} frames above maxPayload`, async () => {
  const started = performance.now();
  const models: Record<Stream, StreamModel> = { a: new StreamModel(), b: new StreamModel(), c: new StreamModel() };
  const expected = emptyReasonCounts();
  const generated = { edge: emptyReasonCounts(), pipeline: emptyReasonCounts() };
  const acceptedByCategory = new Map<string, number>();
  let barriers = 0;
  let peer = await Peer.open(service.ingestUrl);

  const sendValidTicks = async (ticks: readonly ValidTick[]): Promise<void> => {
    const frames = ticks.map((t) => {
      const m = models[t.stream as Stream];
      const seq = m.lastTick + t.gap;
      m.commitTick(seq, t.y !== undefined);
      return encode({ kind: 'tick', stream: t.stream, seq, t: seq / 100, x: t.x, ...(t.y ? { y: t.y } : {}) }, t.enc);
    });
    const before = snapshots();
    const replies = await peer.exchange(frames);
    barriers++;
    expected.malformed++;
    assert.deepEqual(replies, [], 'valid ticks get no reply');
    const changed = changedKeys(before, snapshots());
    assert.deepEqual(changed.sort(), [...new Set(ticks.map((t) => t.stream))].sort(), 'each valid tick changes its own learner');
  };

  // Setup: the edge admits a, b and c (its limit of 3); the pool refuses c.
  {
    const frames = (['a', 'b', 'c'] as const).map((s) => {
      models[s].commitTick(0, false);
      return encodeJsonFrame({ kind: 'tick', stream: s, seq: 0, t: 0, x: [0, 0, 0] });
    });
    const replies = await peer.exchange(frames);
    barriers++;
    expected.malformed++;
    assert.deepEqual(replies.map((r) => [r.reason, r.stream, r.seq]), [['unknown-stream', 'c', 0]]);
    expected['unknown-stream']++;
    assert.deepEqual([...service.pipeline.pool.keys()].sort(), ['a', 'b']);
  }

  let cases = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(validTick, { minLength: 1, maxLength: 3 }), anyOp, validTick, async (prelude, op, closing) => {
      cases++;
      assert.equal(stoppedEarly, false, 'the service is still running');
      await sendValidTicks(prelude);

      const built = op.build(models);
      const before = snapshots();
      const replies = await peer.exchange([built.data]);
      barriers++;
      expected.malformed++;
      const now = snapshots();
      if ('accept' in built.outcome) {
        assert.deepEqual(replies, [], `${op.category}: accepted without a reply`);
        acceptedByCategory.set(op.category, (acceptedByCategory.get(op.category) ?? 0) + 1);
        const changed = changedKeys(before, now);
        if (built.learns !== undefined) assert.deepEqual(changed, [built.learns], `${op.category}: its learner, and only it, changed`);
      } else {
        const { reason, stage } = built.outcome;
        assert.equal(replies.length, 1, `${op.category}: one error reply, expected ${reason}; got ${JSON.stringify(replies)}`);
        const reply = replies[0]!;
        assert.equal(reply.type, 'error');
        assert.equal(reply.reason, reason, `${op.category} (${stage}): ${reply.message}`);
        assert.ok(reply.message.length > 0);
        if (built.names) {
          assert.equal(reply.stream, built.names.stream);
          assert.equal(reply.seq, built.names.seq);
        }
        assert.deepEqual(changedKeys(before, now), [], `${op.category}: a refused frame changes no learner byte`);
        expected[reason]++;
        generated[stage][reason]++;
      }
      built.commit?.();
      assert.deepEqual(await rejectedTotals(), expected, 'driftline_events_rejected_total by reason');

      // The stream goes on: a valid tick is still taken and learned from.
      await sendValidTicks([closing]);
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );

  // Above maxPayload ws closes the connection with 1009 before driftline sees the frame: counted as oversized,
  // no learner touched, and a new connection carries on.
  for (let i = 0; i < ABOVE_MAX_PAYLOAD_FRAMES; i++) {
    const before = snapshots();
    const count = (await rejectedTotals()).oversized;
    peer.ws.send(Buffer.alloc(MAX_PAYLOAD + 1 + i * 997, 0x20));
    await peer.until(() => peer.closeCode !== undefined, 'the 1009 close');
    assert.equal(peer.closeCode, 1009);
    expected.oversized++;
    generated.edge.oversized++;
    const deadline = Date.now() + 10_000;
    while ((await rejectedTotals()).oversized === count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(changedKeys(before, snapshots()), []);
    peer = await Peer.open(service.ingestUrl);
    await sendValidTicks([{ stream: 'a', gap: 1, x: [0.5, -0.5, 1], y: [0.1, 0.2], enc: 'binary' }]);
  }

  // One real scrape of the endpoint agrees with the expected totals.
  const text = await (await fetch(service.metricsUrl)).text();
  for (const reason of REJECTION_REASONS) {
    const line = text.split('\n').find((l) => l.startsWith(`driftline_events_rejected_total{reason="${reason}"} `));
    assert.equal(line === undefined ? 0 : Number(line.split(' ')[1]), expected[reason], `scraped ${reason}`);
  }
  assert.equal(stoppedEarly, false, 'the service is still running');
  assert.deepEqual([...service.pipeline.pool.keys()].sort(), ['a', 'b']);

  const nonzero = (r: Record<RejectionReason, number>) => Object.fromEntries(Object.entries(r).filter(([, n]) => n > 0));
  console.log(
    `ingest fuzz: ${cases} cases over a real socket (seed ${SEED}) + ${ABOVE_MAX_PAYLOAD_FRAMES} frames above maxPayload, ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s\n` +
      `  refused at the edge, by reason: ${JSON.stringify(nonzero(generated.edge))}\n` +
      `  refused in the pipeline and answered to the peer, by reason: ${JSON.stringify(nonzero(generated.pipeline))}\n` +
      `  generated frames accepted, by category: ${JSON.stringify(Object.fromEntries(acceptedByCategory))}\n` +
      `  barrier frames (refused as malformed): ${barriers}\n` +
      `  driftline_events_rejected_total: ${JSON.stringify(nonzero(expected))}`,
  );

  // Every listed kind of bad input was generated and refused, on both sides of the edge.
  for (const reason of ['malformed', 'dimension', 'non-finite', 'oversized', 'unknown-stream', 'too-many-streams', 'duplicate', 'out-of-order', 'label-unknown-tick', 'label-too-late', 'label-duplicate'] as const) {
    assert.ok(generated.edge[reason] > 0, `no ${reason} refused at the edge`);
  }
  assert.ok(generated.pipeline['unknown-stream'] > 0 && generated.pipeline['label-too-late'] > 0, 'refusals inside the pipeline');
  for (const category of ['tick', 'label', 'session']) assert.ok((acceptedByCategory.get(category) ?? 0) > 0, `no valid ${category} accepted`);
});
