// Fuzz of the whole ingest path: ws socket -> edge (decode, shapes and values) -> pipeline (predictThenLearn: the
// learner pool, per-stream order and the label join) -> learners, against the real service (startDriftline
// in-process, a tanh RNN with 8 units, 3 inputs, 2 outputs), every case over a real socket.
//
// Where each refusal happens. `driftline run` starts its edge with `checkOrder: false`, so the edge keeps no
// per-stream state: it refuses only what it can tell from the frame itself ('malformed', 'oversized',
// 'dimension', 'non-finite', and 'unknown-stream' for a stream the config's `streams.allow` gives no shape).
// Everything else is the pipeline's, answered to the sender through `server.replyTo` with the same error reply
// (naming the frame's stream and seq) and counted in the same metric:
// - the pool: 'unknown-stream' for 'c' (allowed by the config, so the edge takes it, but not by the pool's
//   allowlist, which the test narrows to a, b and d), 'too-many-streams' for 'd' (allowed everywhere, but the pool
//   already holds its maxStreams = 2 learners, a and b); a label of 'd' is 'label-unknown-tick' (no learner);
// - per stream, a ring of the last min(maxDelay, learner.maxLabelDelay) = 4 ticks: ticks must pass the last one
//   ('duplicate' when equal or one of the ring, else 'out-of-order'); a declared session boundary must not repeat
//   the last one ('duplicate') and must come after the last tick ('out-of-order'); a label must name a tick in the
//   ring ('label-unknown-tick' above the last tick, below the first or in a gap; 'label-too-late' below the ring)
//   that has no label yet ('label-duplicate').
//
// Each case: a prelude of valid ticks, one generated frame (valid, or bad in one way), then a valid tick that
// must still be accepted. The expected outcome of the generated frame comes from the test's own model of the pool
// (which streams hold a learner) and of each stream (last tick, first tick, the ring of the last 4 tick seqs with
// their labelled flags, last declared session boundary), never from the service's state. Asserted per case: the
// service is still running; a refused frame leaves every learner's snapshot byte-identical (no learner appears
// either) and its sender gets one error reply naming the expected reason (and, for the pipeline's refusals, the
// frame's stream and seq); an accepted tick or label changes its stream's learner and no other, with no reply (an
// accepted session boundary changes no other stream's learner); driftline_events_rejected_total{reason} equals the
// running expected count for every reason. Then frames above the ws maxPayload (ws closes with 1009), and one
// scrape of the metrics endpoint against the totals. At the end every reason must have been generated at its
// stage, and every rule of the model (each way a tick, label or session frame is judged) must have been hit.
//
// Every ingest connection first gets a `{"type":"hello",...}`: the test waits for it when it connects, and it is
// no reply to a frame (a second hello, or one after a reply, would count as an unexpected reply).
//
// Synchronisation: after each group of frames the test sends a text frame "barrier-<n>", which the edge refuses as
// 'malformed'; frames on one socket are handled in order, the pipeline handles each accepted frame synchronously
// while the edge hands it over, and every reply (the edge's own or the pipeline's through replyTo) is sent while its
// frame is handled, so when the barrier's reply arrives every earlier frame has been processed and answered.
// Barriers are counted in the expected 'malformed' total.
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
/** The learner's own label window (learner.maxLabelDelay): larger than the pipeline's maxDelay, which is the limit. */
const LEARNER_LABEL_WINDOW = 8;
/** The pipeline's maxDelay: a label may come at most 3 ticks late. */
const PIPELINE_MAX_DELAY = 4;
/** Ticks the pipeline keeps per stream for the label join and duplicate ticks. */
const RING = Math.min(PIPELINE_MAX_DELAY, LEARNER_LABEL_WINDOW);
/** Seq of each learned stream's first tick: above 0, so that labels can name a seq below the first tick. */
const FIRST_SEQ = 3;
const MAX_PAYLOAD = 16 * 1024;
/** The server's application limit: maxPayload / 4. */
const MAX_FRAME = MAX_PAYLOAD / 4;
const ABOVE_MAX_PAYLOAD_FRAMES = 20;

/** Streams with a learner (created in the setup, never evicted: no checkpoint store). */
const LEARNED = ['a', 'b'] as const;
/** Allowed by the config, so taken by the edge, but outside the pool's allowlist. */
const NOT_IN_POOL = 'c';
/** Allowed by the config and the pool, but the pool already holds its maxStreams learners when it comes. */
const ONE_TOO_MANY = 'd';
/** The config's streams.allow: the streams the edge has a shape for. */
const ALLOWED = new Set(['a', 'b', NOT_IN_POOL, ONE_TOO_MANY]);
/** The pool's allowlist (set through pipelineOptions). */
const POOL_ALLOWED = ['a', 'b', ONE_TOO_MANY];
/** The config's streams.maxStreams: the pool's limit (the edge keeps no stream limit). */
const MAX_STREAMS = LEARNED.length;

type Stream = 'a' | 'b' | 'c' | 'd';
const STREAMS: readonly Stream[] = ['a', 'b', 'c', 'd'];
type Encoding = 'json' | 'binary';
type Stage = 'edge' | 'pipeline';
type Outcome = { readonly accept: true } | { readonly reason: RejectionReason; readonly stage: Stage };

// ------------------------------------------------------------------------------------ the model of the pipeline

/** How the model judged a tick, label or session frame; each must be hit by the end of the run. */
const RULE = {
  notInPool: "stream outside the pool's allowlist",
  poolFull: 'new stream while the pool holds maxStreams learners',
  notLive: 'stream allowed by the pool but without a learner',
  tickAfter: 'after the last tick',
  tickEqual: 'equal to the last tick',
  tickInRing: 'below the last tick, one of the ring',
  tickNotInRing: 'below the last tick, not one of the ring',
  sessionAfter: 'after the last tick',
  sessionBelowLast: 'after the last tick, below the last declared boundary',
  sessionRepeat: 'equal to the last declared boundary',
  sessionNotAfter: 'at or below the last tick',
  labelOk: 'a tick in the ring without a label',
  labelDuplicate: 'a tick in the ring already labelled',
  labelAbove: 'above the last tick',
  labelBeforeFirst: "below the stream's first tick",
  labelTooLate: 'below the oldest tick in the ring',
  labelGap: 'between ticks in the ring, never sent',
} as const;
type Rule = (typeof RULE)[keyof typeof RULE];
const EXPECTED_RULES: Record<'tick' | 'label' | 'session', readonly Rule[]> = {
  tick: [RULE.notInPool, RULE.poolFull, RULE.tickAfter, RULE.tickEqual, RULE.tickInRing, RULE.tickNotInRing],
  session: [RULE.notInPool, RULE.poolFull, RULE.sessionAfter, RULE.sessionBelowLast, RULE.sessionRepeat, RULE.sessionNotAfter],
  label: [RULE.notInPool, RULE.notLive, RULE.labelOk, RULE.labelDuplicate, RULE.labelAbove, RULE.labelBeforeFirst, RULE.labelTooLate, RULE.labelGap],
};

type Verdict = { readonly rule: Rule } & ({ readonly accept: true } | { readonly reason: RejectionReason });

/** What the pipeline keeps of one stream, as the test expects it to be (its own bookkeeping). */
class StreamModel {
  /** Ticks accepted so far. */
  count = 0;
  firstTick = -1;
  lastTick = -1;
  lastSession = -1;
  /** The last RING accepted ticks, oldest first. */
  readonly ring: { seq: number; labelled: boolean }[] = [];

  tickVerdict(seq: number): Verdict {
    if (this.count === 0 || seq > this.lastTick) return { accept: true, rule: RULE.tickAfter };
    if (seq === this.lastTick) return { reason: 'duplicate', rule: RULE.tickEqual };
    // Below the last tick: a re-sent tick the ring still holds is a duplicate, anything else is out of order.
    if (this.ring.some((t) => t.seq === seq)) return { reason: 'duplicate', rule: RULE.tickInRing };
    return { reason: 'out-of-order', rule: RULE.tickNotInRing };
  }

  commitTick(seq: number, labelled: boolean): void {
    if (this.count === 0) this.firstTick = seq;
    this.count++;
    this.lastTick = seq;
    this.ring.push({ seq, labelled });
    if (this.ring.length > RING) this.ring.shift();
  }

  labelVerdict(seq: number): Verdict {
    if (this.count === 0 || seq > this.lastTick) return { reason: 'label-unknown-tick', rule: RULE.labelAbove };
    if (seq < this.firstTick) return { reason: 'label-unknown-tick', rule: RULE.labelBeforeFirst };
    // With no more than RING ticks pushed the oldest in the ring is the first tick, handled above.
    if (seq < this.ring[0]!.seq) return { reason: this.count > RING ? 'label-too-late' : 'label-unknown-tick', rule: RULE.labelTooLate };
    const tick = this.ring.find((t) => t.seq === seq);
    if (tick === undefined) return { reason: 'label-unknown-tick', rule: RULE.labelGap };
    if (tick.labelled) return { reason: 'label-duplicate', rule: RULE.labelDuplicate };
    return { accept: true, rule: RULE.labelOk };
  }

  commitLabel(seq: number): void {
    this.ring.find((t) => t.seq === seq)!.labelled = true;
  }

  sessionVerdict(seq: number): Verdict {
    if (seq === this.lastSession) return { reason: 'duplicate', rule: RULE.sessionRepeat };
    if (this.count > 0 && seq <= this.lastTick) return { reason: 'out-of-order', rule: RULE.sessionNotAfter };
    // Only the last tick bounds it: an earlier boundary declared further ahead does not.
    return { accept: true, rule: seq < this.lastSession ? RULE.sessionBelowLast : RULE.sessionAfter };
  }
}

/** The learner pool as the test expects it: which streams hold a learner. */
class PoolModel {
  readonly live = new Set<string>();

  /**
   * A tick or a session boundary of `stream` comes: the pool creates its learner on first sight (before any order
   * check), or refuses it. Undefined when the stream has (or now gets) a learner.
   */
  admit(stream: string): Verdict | undefined {
    if (this.live.has(stream)) return undefined;
    if (!POOL_ALLOWED.includes(stream)) return { reason: 'unknown-stream', rule: RULE.notInPool };
    if (this.live.size >= MAX_STREAMS) return { reason: 'too-many-streams', rule: RULE.poolFull };
    this.live.add(stream);
    return undefined;
  }

  /** A label of a stream without a learner: never creates one. */
  labelRefusal(stream: string): Verdict | undefined {
    if (this.live.has(stream)) return undefined;
    if (!POOL_ALLOWED.includes(stream)) return { reason: 'unknown-stream', rule: RULE.notInPool };
    return { reason: 'label-unknown-tick', rule: RULE.notLive };
  }
}

interface World {
  readonly pool: PoolModel;
  readonly streams: Record<Stream, StreamModel>;
}

function tickVerdict(w: World, stream: Stream, seq: number): Verdict {
  return w.pool.admit(stream) ?? w.streams[stream].tickVerdict(seq);
}

function labelVerdict(w: World, stream: Stream, seq: number): Verdict {
  return w.pool.labelRefusal(stream) ?? w.streams[stream].labelVerdict(seq);
}

function sessionVerdict(w: World, stream: Stream, seq: number): Verdict {
  return w.pool.admit(stream) ?? w.streams[stream].sessionVerdict(seq);
}

// ------------------------------------------------------------------------------------------ generated frames

/** A frame built against the model when the case runs: its bytes, and what the service must do with it. */
interface Built {
  readonly data: string | Uint8Array;
  readonly outcome: Outcome;
  /** The model's rule for a tick, label or session frame. */
  readonly rule?: Rule;
  /** The stream whose learner an accepted frame changes (and no other learner may change). */
  readonly learns?: string;
  /** An accepted frame that may change this stream's learner, and no other (a session boundary). */
  readonly mayTouch?: string;
  /** The stream and seq a pipeline refusal names. */
  readonly names?: { stream: string; seq: number };
  /** Applies an accepted frame to the model. */
  readonly commit?: () => void;
}

interface Op {
  readonly category: string;
  build(world: World): Built;
}

/** The Built of a tick, label or session frame from the model's verdict: every such refusal is the pipeline's. */
function judged(data: string | Uint8Array, stream: Stream, seq: number, v: Verdict, accepted: Pick<Built, 'learns' | 'mayTouch' | 'commit'>): Built {
  if ('accept' in v) return { data, outcome: { accept: true }, rule: v.rule, ...accepted };
  return { data, outcome: { reason: v.reason, stage: 'pipeline' }, rule: v.rule, names: { stream, seq } };
}

const small = fc.float({ noNaN: true, min: -4, max: 4 });
const vec = (n: number) => fc.array(small, { minLength: n, maxLength: n });
const encoding = fc.constantFrom<Encoding>('json', 'binary');
const learnedStream = fc.constantFrom<Stream>(...LEARNED);
/** Any stream the config allows: the edge takes all of them. */
const configuredStream = fc.constantFrom<Stream>(...STREAMS);
/** Mostly the learned streams, whose order rules are the interesting part, sometimes the ones the pool refuses. */
const anyStream: fc.Arbitrary<Stream> = fc.oneof(
  { weight: 3, arbitrary: learnedStream },
  { weight: 1, arbitrary: fc.constantFrom<Stream>(NOT_IN_POOL, ONE_TOO_MANY) },
);
/** Half the ticks carry their label, so that later label frames find both labelled and unlabelled ticks. */
const maybeLabel = fc.option(vec(OUTPUTS), { nil: undefined, freq: 2 });

function encode(f: IngestFrame, enc: Encoding): string | Uint8Array {
  return enc === 'binary' ? encodeBinaryFrame(f) : encodeJsonFrame(f);
}

const tickOp: fc.Arbitrary<Op> = fc
  .record({
    stream: anyStream,
    seqMode: fc.oneof(
      { weight: 3, arbitrary: fc.record({ next: fc.integer({ min: 1, max: 3 }) }) },
      { weight: 1, arbitrary: fc.constant('last' as const) },
      // Back into the ring (a re-sent tick, or a seq between two of its ticks) and below it.
      { weight: 2, arbitrary: fc.record({ back: fc.integer({ min: 1, max: 12 }) }) },
    ),
    x: vec(INPUTS),
    y: maybeLabel,
    enc: encoding,
  })
  .map(({ stream, seqMode, x, y, enc }) => ({
    category: 'tick',
    build(w) {
      const m = w.streams[stream];
      const seq = Math.max(0, seqMode === 'last' ? m.lastTick : 'next' in seqMode ? m.lastTick + seqMode.next : m.lastTick - seqMode.back);
      const data = encode({ kind: 'tick', stream, seq, t: seq / 100, x, ...(y ? { y } : {}) }, enc);
      return judged(data, stream, seq, tickVerdict(w, stream, seq), { learns: stream, commit: () => m.commitTick(seq, y !== undefined) });
    },
  }));

const labelOp: fc.Arbitrary<Op> = fc
  .record({
    stream: anyStream,
    target: fc.oneof(
      { weight: 4, arbitrary: fc.record({ delay: fc.integer({ min: 0, max: RING - 1 }) }) },
      { weight: 2, arbitrary: fc.record({ delay: fc.integer({ min: RING, max: RING + 6 }) }) },
      { weight: 1, arbitrary: fc.constant('gap' as const) },
      { weight: 1, arbitrary: fc.record({ future: fc.integer({ min: 1, max: 5 }) }) },
      { weight: 1, arbitrary: fc.record({ beforeFirst: fc.integer({ min: 1, max: FIRST_SEQ }) }) },
    ),
    /** The seq of a label for a stream without ticks. */
    anySeq: fc.nat({ max: 1000 }),
    y: vec(OUTPUTS),
    enc: encoding,
  })
  .map(({ stream, target, anySeq, y, enc }) => ({
    category: 'label',
    build(w) {
      const m = w.streams[stream];
      const { ring } = m;
      let seq: number;
      if (m.count === 0) {
        seq = anySeq;
      } else if (target === 'gap') {
        // A seq between two ticks of the ring that was never sent; past the last tick when there is no gap.
        const i = ring.findIndex((t, k) => k > 0 && t.seq - ring[k - 1]!.seq > 1);
        seq = i > 0 ? ring[i]!.seq - 1 : m.lastTick + 1;
      } else if ('future' in target) {
        seq = m.lastTick + target.future;
      } else if ('beforeFirst' in target) {
        seq = Math.max(0, m.firstTick - target.beforeFirst);
      } else if (target.delay < ring.length) {
        seq = ring[ring.length - 1 - target.delay]!.seq;
      } else {
        seq = Math.max(0, ring[0]!.seq - (target.delay - ring.length + 1));
      }
      const data = encode({ kind: 'label', stream, seq, y }, enc);
      return judged(data, stream, seq, labelVerdict(w, stream, seq), { learns: stream, commit: () => m.commitLabel(seq) });
    },
  }));

const sessionOp: fc.Arbitrary<Op> = fc
  .record({
    stream: anyStream,
    seqMode: fc.oneof(
      // Sometimes far ahead of the last tick, so that a later boundary can come between the two.
      {
        weight: 2,
        arbitrary: fc.record({
          next: fc.oneof({ weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.integer({ min: 50, max: 150 }) }),
        }),
      },
      { weight: 1, arbitrary: fc.constant('marker' as const) },
      { weight: 2, arbitrary: fc.record({ belowMarker: fc.integer({ min: 1, max: 3 }) }) },
      { weight: 1, arbitrary: fc.record({ back: fc.integer({ min: 0, max: 4 }) }) },
    ),
    name: fc.constantFrom('day-1', 'day-2', 'Ünïcode session'),
    enc: encoding,
  })
  .map(({ stream, seqMode, name, enc }) => ({
    category: 'session',
    build(w) {
      const m = w.streams[stream];
      const seq = Math.max(
        0,
        seqMode === 'marker' ? m.lastSession
        : 'next' in seqMode ? m.lastTick + seqMode.next
        : 'belowMarker' in seqMode ? m.lastSession - seqMode.belowMarker
        : m.lastTick - seqMode.back,
      );
      const data = encode({ kind: 'session', stream, seq, t: seq / 100, session: name }, enc);
      // A declared boundary forks a frozen shadow: whether the learner's own bytes change is not asserted, only
      // that no other learner changes.
      return judged(data, stream, seq, sessionVerdict(w, stream, seq), { mayTouch: stream, commit: () => void (m.lastSession = seq) });
    },
  }));

/** A frame refused at the edge for a reason it can tell from the frame alone, on any stream the config allows. */
function refusedAtEdge(category: string, reason: RejectionReason, make: (stream: string, seq: number) => string | Uint8Array): fc.Arbitrary<Op> {
  return configuredStream.map((stream) => ({
    category,
    build: (w) => ({ data: make(stream, w.streams[stream].lastTick + 1), outcome: { reason, stage: 'edge' } }),
  }));
}

/** A JSON batch whose elements are all objects: the server judges each element as its own frame. */
const isBatchOfFrameObjects = (v: unknown): boolean =>
  Array.isArray(v) && v.length > 1 && v.every((e) => typeof e === 'object' && e !== null && !Array.isArray(e));

const malformedText: fc.Arbitrary<Op> = fc
  .oneof(
    fc.string({ maxLength: 200 }),
    // Two or more objects in an array are a batch of that many bad frames, one reply each: not one case.
    fc.json().filter((j) => !j.trimStart().startsWith('{') && !isBatchOfFrameObjects(JSON.parse(j))),
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


/** A stream the config gives no shape: refused at the edge, whatever the frame. */
const unknownStream: fc.Arbitrary<Op> = fc
  .tuple(fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !ALLOWED.has(s)), kindOf, encoding)
  .map(([name, kind, enc]) => ({
    category: `unknown stream (${kind})`,
    build: () => ({ data: frameFor(kind, name, 0, enc), outcome: { reason: 'unknown-stream', stage: 'edge' } }),
  }));

const anyOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: tickOp },
  { weight: 5, arbitrary: labelOp },
  { weight: 3, arbitrary: sessionOp },
  { weight: 1, arbitrary: malformedText },
  { weight: 1, arbitrary: longKey },
  { weight: 1, arbitrary: garbage },
  { weight: 1, arbitrary: corruptedBinary },
  { weight: 2, arbitrary: wrongDimension },
  { weight: 2, arbitrary: nonFiniteJson },
  { weight: 1, arbitrary: nonFiniteBinary },
  { weight: 1, arbitrary: oversized },
  { weight: 1, arbitrary: unknownStream },
);

/** Valid ticks on a learned stream: the prelude (1 to 3 of them) and the closing tick. */
const validTick = fc.record({ stream: learnedStream, gap: fc.integer({ min: 1, max: 2 }), x: vec(INPUTS), y: maybeLabel, enc: encoding });
type ValidTick = typeof validTick extends fc.Arbitrary<infer T> ? T : never;

// -------------------------------------------------------------------------------------------------- harness

interface Reply {
  readonly type: string;
  readonly reason: RejectionReason;
  readonly message: string;
  readonly stream?: string;
  readonly seq?: number;
}

interface Hello {
  readonly type: 'hello';
  readonly instance: string;
  readonly protocol: number;
}

let service: RunningDriftline;
let stoppedEarly = false;

before(async () => {
  const config = parseConfig({
    streams: { inputSize: INPUTS, outputSize: OUTPUTS, maxStreams: MAX_STREAMS, allow: [...ALLOWED] },
    learner: {
      cell: { kind: 'tanh-rnn', hiddenSize: 8 },
      credit: { rule: 'immediate' },
      optimizer: { name: 'rmsprop', lr: 0.01 },
      maxLabelDelay: LEARNER_LABEL_WINDOW,
    },
    sources: { websocket: { host: '127.0.0.1', port: 0, maxPayloadBytes: MAX_PAYLOAD, heartbeatMs: 600_000 } },
    evaluation: { window: 20, reportEvery: 50, recoveryTicks: 5 },
    drift: { detectors: [] },
    metrics: { port: 0 },
    log: { level: 'silent' },
  });
  service = await startDriftline(config, {
    logger: createLogger({ level: 'silent' }),
    pipelineOptions: (o) => ({ ...o, pool: { ...o.pool, allowedStreams: POOL_ALLOWED }, maxDelay: PIPELINE_MAX_DELAY }),
  });
  void service.stopped.then(() => {
    stoppedEarly = true;
  });
});

after(async () => {
  await service?.stop();
});

/** One ingest connection, its hello and the replies it has received, in order. */
class Peer {
  readonly replies: Reply[] = [];
  hello: Hello | undefined;
  closeCode: number | undefined;
  private received = 0;
  private barriers = 0;
  private waiter: (() => void) | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString()) as { type: string };
      // The hello comes first, once, and is no reply to a frame; any other message is kept as a reply.
      if (this.received++ === 0 && m.type === 'hello') this.hello = m as Hello;
      else this.replies.push(m as Reply);
      this.waiter?.();
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.waiter?.();
    });
  }

  /** Connects and waits for the hello. */
  static async open(url: string): Promise<Peer> {
    const ws = new WebSocket(url);
    // Listening before the connection opens: no message can come before the handler.
    const peer = new Peer(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await peer.until(() => peer.hello !== undefined || peer.replies.length > 0, 'the hello');
    assert.ok(peer.hello, `the first message is the hello, got ${JSON.stringify(peer.replies[0])}`);
    assert.equal(peer.hello.protocol, 1);
    assert.equal(typeof peer.hello.instance, 'string');
    return peer;
  }

  /** Sends the frames and a barrier; resolves with the replies to the frames once the barrier's has come. */
  async exchange(frames: (string | Uint8Array)[]): Promise<Reply[]> {
    const from = this.replies.length;
    const barrier = `barrier-${++this.barriers}`;
    for (const f of frames) this.ws.send(f);
    this.ws.send(barrier);
    // The edge quotes the text it could not parse, so the reply names this barrier and no other frame.
    const quoted = JSON.stringify(barrier);
    await this.until(
      () => this.replies.length > from && String(this.replies[this.replies.length - 1]!.message).includes(quoted),
      `the reply to ${barrier}`,
    );
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
  const pool = service.pipeline!.pool;
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
  const world: World = {
    pool: new PoolModel(),
    streams: { a: new StreamModel(), b: new StreamModel(), c: new StreamModel(), d: new StreamModel() },
  };
  const expected = emptyReasonCounts();
  const generated: Record<Stage, Record<RejectionReason, number>> = { edge: emptyReasonCounts(), pipeline: emptyReasonCounts() };
  const acceptedByCategory = new Map<string, number>();
  /** `${category}: ${rule} -> ${reason or 'accepted'}` of every generated tick, label and session frame. */
  const byRule = new Map<string, number>();
  let barriers = 0;
  let peer = await Peer.open(service.ingestUrl);
  const instance = peer.hello!.instance;

  const sendValidTicks = async (ticks: readonly ValidTick[]): Promise<void> => {
    const frames = ticks.map((t) => {
      const stream = t.stream as Stream;
      const seq = world.streams[stream].lastTick + t.gap;
      assert.ok('accept' in tickVerdict(world, stream, seq), 'the model takes a valid tick');
      world.streams[stream].commitTick(seq, t.y !== undefined);
      return encode({ kind: 'tick', stream, seq, t: seq / 100, x: t.x, ...(t.y ? { y: t.y } : {}) }, t.enc);
    });
    const before = snapshots();
    const replies = await peer.exchange(frames);
    barriers++;
    expected.malformed++;
    assert.deepEqual(replies, [], 'valid ticks get no reply');
    const changed = changedKeys(before, snapshots());
    assert.deepEqual(changed.sort(), [...new Set(ticks.map((t) => t.stream))].sort(), 'each valid tick changes its own learner');
  };

  // Setup: the edge takes a first tick of each allowed stream; the pool creates a and b (its maxStreams), refuses
  // c (not in its allowlist) and d (one too many). The model judges them the same way.
  {
    const frames: (string | Uint8Array)[] = [];
    const refusals: [RejectionReason, string, number][] = [];
    for (const s of STREAMS) {
      const v = tickVerdict(world, s, FIRST_SEQ);
      if ('accept' in v) world.streams[s].commitTick(FIRST_SEQ, false);
      else refusals.push([v.reason, s, FIRST_SEQ]);
      frames.push(encodeJsonFrame({ kind: 'tick', stream: s, seq: FIRST_SEQ, t: 0, x: [0, 0, 0] }));
    }
    assert.deepEqual(refusals, [['unknown-stream', NOT_IN_POOL, FIRST_SEQ], ['too-many-streams', ONE_TOO_MANY, FIRST_SEQ]]);
    const replies = await peer.exchange(frames);
    barriers++;
    expected.malformed++;
    assert.deepEqual(replies.map((r) => [r.reason, r.stream, r.seq]), refusals);
    for (const [reason] of refusals) expected[reason]++;
    assert.deepEqual([...service.pipeline!.pool.keys()].sort(), [...LEARNED]);
    assert.deepEqual([...world.pool.live].sort(), [...LEARNED]);
    assert.deepEqual(await rejectedTotals(), expected, 'driftline_events_rejected_total by reason after the setup');
  }

  let cases = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(validTick, { minLength: 1, maxLength: 3 }), anyOp, validTick, async (prelude, op, closing) => {
      cases++;
      assert.equal(stoppedEarly, false, 'the service is still running');
      await sendValidTicks(prelude);

      const built = op.build(world);
      if (built.rule !== undefined) {
        const key = `${op.category}: ${built.rule} -> ${'accept' in built.outcome ? 'accepted' : built.outcome.reason}`;
        byRule.set(key, (byRule.get(key) ?? 0) + 1);
      }
      const before = snapshots();
      const replies = await peer.exchange([built.data]);
      barriers++;
      expected.malformed++;
      const now = snapshots();
      if ('accept' in built.outcome) {
        assert.deepEqual(replies, [], `${op.category} (${built.rule}): accepted without a reply`);
        acceptedByCategory.set(op.category, (acceptedByCategory.get(op.category) ?? 0) + 1);
        const changed = changedKeys(before, now);
        if (built.learns !== undefined) assert.deepEqual(changed, [built.learns], `${op.category}: its learner, and only it, changed`);
        else assert.deepEqual(changed.filter((k) => k !== built.mayTouch), [], `${op.category}: no other stream's learner changed`);
        built.commit?.();
      } else {
        const { reason, stage } = built.outcome;
        assert.equal(replies.length, 1, `${op.category}: one error reply, expected ${reason}; got ${JSON.stringify(replies)}`);
        const reply = replies[0]!;
        assert.equal(reply.type, 'error');
        assert.equal(reply.reason, reason, `${op.category} (${stage}${built.rule ? `, ${built.rule}` : ''}): ${reply.message}`);
        assert.ok(reply.message.length > 0);
        if (built.names) {
          assert.equal(reply.stream, built.names.stream, `${op.category}: the refusal names the stream`);
          assert.equal(reply.seq, built.names.seq, `${op.category}: the refusal names the seq`);
        }
        assert.deepEqual(changedKeys(before, now), [], `${op.category}: a refused frame changes no learner byte`);
        expected[reason]++;
        generated[stage][reason]++;
      }
      assert.deepEqual(await rejectedTotals(), expected, 'driftline_events_rejected_total by reason');

      // The stream goes on: a valid tick is still taken and learned from.
      await sendValidTicks([closing]);
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );

  // Above maxPayload ws closes the connection with 1009 before driftline sees the frame: counted as oversized,
  // no learner touched, and a new connection (with its hello, from the same instance) carries on.
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
    assert.equal(peer.hello!.instance, instance, 'the same service instance');
    await sendValidTicks([{ stream: 'a', gap: 1, x: [0.5, -0.5, 1], y: [0.1, 0.2], enc: 'binary' }]);
  }
  assert.deepEqual(await rejectedTotals(), expected, 'driftline_events_rejected_total by reason');

  // One real scrape of the endpoint agrees with the expected totals.
  const text = await (await fetch(service.metricsUrl)).text();
  for (const reason of REJECTION_REASONS) {
    const line = text.split('\n').find((l) => l.startsWith(`driftline_events_rejected_total{reason="${reason}"} `));
    assert.equal(line === undefined ? 0 : Number(line.split(' ')[1]), expected[reason], `scraped ${reason}`);
  }
  assert.equal(stoppedEarly, false, 'the service is still running');
  assert.deepEqual([...service.pipeline!.pool.keys()].sort(), [...LEARNED]);

  const nonzero = (r: Record<RejectionReason, number>) => Object.fromEntries(Object.entries(r).filter(([, n]) => n > 0));
  const rules = [...byRule].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `    ${k}: ${n}`);
  console.log(
    `ingest fuzz: ${cases} cases over a real socket (seed ${SEED}) + ${ABOVE_MAX_PAYLOAD_FRAMES} frames above maxPayload, ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s\n` +
      `  refused at the edge, by reason: ${JSON.stringify(nonzero(generated.edge))}\n` +
      `  refused in the pipeline and answered to the peer, by reason: ${JSON.stringify(nonzero(generated.pipeline))}\n` +
      `  generated frames accepted, by category: ${JSON.stringify(Object.fromEntries(acceptedByCategory))}\n` +
      `  tick, label and session frames by the model's rule:\n${rules.join('\n')}\n` +
      `  barrier frames (refused as malformed): ${barriers}\n` +
      `  driftline_events_rejected_total: ${JSON.stringify(nonzero(expected))}`,
  );

  // Every kind of bad input was generated and refused where it belongs: what the frame alone shows at the edge,
  // the pool, order and label join in the pipeline.
  for (const reason of ['malformed', 'dimension', 'non-finite', 'oversized', 'unknown-stream'] as const) {
    assert.ok(generated.edge[reason] > 0, `no ${reason} refused at the edge`);
  }
  for (const reason of ['unknown-stream', 'too-many-streams', 'duplicate', 'out-of-order', 'label-unknown-tick', 'label-too-late', 'label-duplicate'] as const) {
    assert.ok(generated.pipeline[reason] > 0, `no ${reason} refused in the pipeline`);
  }
  for (const [category, expectedRules] of Object.entries(EXPECTED_RULES)) {
    for (const rule of expectedRules) {
      assert.ok([...byRule.keys()].some((k) => k.startsWith(`${category}: ${rule} -> `)), `no ${category} frame judged by the rule '${rule}'`);
    }
  }
  for (const category of ['tick', 'label', 'session']) assert.ok((acceptedByCategory.get(category) ?? 0) > 0, `no valid ${category} accepted`);
});
