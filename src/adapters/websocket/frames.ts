/**
 * WebSocket ingest frames: decode + validate (frame -> StreamInput | Rejection) and encode (both directions).
 *
 * Two encodings of the same three ingest frames (layout in docs/websocket-frames.md):
 * - JSON text: tick `{stream, seq, t, x, y?}`, late label `{stream, seq, label}`, declared session boundary
 *   `{stream, seq, t, session}`. An optional `"type": "tick" | "label" | "session"` may be given and must then
 *   match; any other field is refused ('malformed'), so nothing a producer sends is dropped silently.
 * - little-endian binary with a Float32 payload, starting with the magic byte 0xD1 and version 1.
 *
 * Everything a frame can get wrong comes back as a `Rejection` naming a bounded reason and saying what was wrong;
 * decoding never throws. Ordering (duplicate / out-of-order seq, labels for unseen ticks) is checked by
 * `IngestValidator`, which the server runs per frame; it keeps bounded state per stream, or none with
 * `checkOrder: false` (the pipeline then checks order against the high-water marks it restored).
 *
 * Besides frames, a producer may send one control message for the application: a resume request
 * `{"type":"resume","streams"?:[...]}` (`decodeIngestMessage`).
 *
 * A message may also be a batch of frames (binary type 4, or a JSON array; `decodeIngestMessageFrames`): its
 * container is checked whole first, then each frame is judged as if it had come alone. Batches exist because a
 * message costs far more to receive and answer than a frame costs to decode (docs/websocket-frames.md, "Batches").
 */
import { REJECTION_REASONS, rejection } from '../../streams/messages.js';
import type {
  DriftMarker,
  LabelEvent,
  PrequentialReport,
  RecoveryReport,
  Rejection,
  RejectionReason,
  StreamInput,
  StreamOutput,
  TickEvent,
} from '../../streams/messages.js';

/** The shape a stream's frames must have. */
export interface StreamShape {
  readonly inputSize: number;
  readonly outputSize: number;
}

/** What the server is given: the shape of a known stream, or undefined for an unknown one. */
export type ShapeLookup = (stream: string) => StreamShape | undefined;

/** The resolver the decoder calls: a shape, or a rejection ('unknown-stream', 'too-many-streams'). */
export type ShapeResolver = (stream: string) => StreamShape | Rejection | undefined;

export const MAX_STREAM_KEY_BYTES = 128;
export const MAX_SESSION_NAME_BYTES = 255;
export const BINARY_MAGIC = 0xd1;
export const BINARY_VERSION = 1;
export const BINARY_TYPE = { tick: 1, label: 2, session: 3 } as const;
export const BINARY_FLAG_HAS_Y = 0x01;
/** Bytes before the stream key: magic, version, type, flags, key length. */
export const BINARY_PREFIX_BYTES = 5;
/** Bytes after the key and before the payload: seq f64, t f64, nx u16, ny u16. */
export const BINARY_FIXED_BYTES = 20;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function validSeq(seq: unknown): seq is number {
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0;
}

function checkStreamKey(stream: unknown): Rejection | undefined {
  if (typeof stream !== 'string') return rejection('malformed', `"stream" must be a string, got ${typeName(stream)}`);
  if (stream.length === 0) return rejection('malformed', '"stream" must not be empty');
  const n = byteLength(stream);
  if (n > MAX_STREAM_KEY_BYTES) {
    return rejection('malformed', `stream key is ${n} bytes of UTF-8; at most ${MAX_STREAM_KEY_BYTES} are allowed`);
  }
  return undefined;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function resolveShape(resolver: ShapeResolver, stream: string, seq?: number): StreamShape | Rejection {
  const r = resolver(stream);
  if (r === undefined) return rejection('unknown-stream', `unknown stream "${stream}"`, stream, seq);
  // A resolver knows only the stream; the reply should name the frame too.
  if ('kind' in r) return r.seq === undefined && seq !== undefined ? rejection(r.reason, r.message, r.stream ?? stream, seq) : r;
  return r;
}

/** Vector from a JSON array: 'malformed' for non-numbers, 'non-finite' for NaN/Infinity spelled any JSON way. */
function jsonVector(
  v: unknown,
  field: string,
  expected: number,
  stream: string,
  seq: number,
): Float32Array | Rejection {
  if (!Array.isArray(v)) return rejection('malformed', `"${field}" must be an array of numbers, got ${typeName(v)}`, stream, seq);
  if (v.length !== expected) {
    return rejection('dimension', `"${field}" has ${v.length} values; stream "${stream}" expects ${expected}`, stream, seq);
  }
  const out = new Float32Array(expected);
  for (let i = 0; i < expected; i++) {
    const e = v[i];
    if (typeof e === 'number') {
      if (!Number.isFinite(e)) return rejection('non-finite', `${field}[${i}] is ${e} (e.g. 1e999 overflows)`, stream, seq);
      const f = Math.fround(e);
      if (!Number.isFinite(f)) return rejection('non-finite', `${field}[${i}] = ${e} overflows Float32`, stream, seq);
      out[i] = f;
    } else if (e === null) {
      return rejection('non-finite', `${field}[${i}] is null (JSON.stringify writes NaN and Infinity as null)`, stream, seq);
    } else if (typeof e === 'string' && /^[+-]?(nan|inf|infinity)$/i.test(e.trim())) {
      return rejection('non-finite', `${field}[${i}] is "${e}": values must be finite numbers`, stream, seq);
    } else {
      return rejection('malformed', `${field}[${i}] must be a number, got ${typeName(e)}`, stream, seq);
    }
  }
  return out;
}

function checkTime(t: unknown, stream: string, seq: number): number | Rejection {
  if (typeof t === 'string' && /^[+-]?(nan|inf|infinity)$/i.test(t.trim())) {
    return rejection('non-finite', `"t" is "${t}": it must be a finite number of seconds`, stream, seq);
  }
  if (t === null) return rejection('non-finite', '"t" is null (JSON.stringify writes NaN and Infinity as null)', stream, seq);
  if (typeof t !== 'number') return rejection('malformed', `"t" must be a number of seconds, got ${typeName(t)}`, stream, seq);
  if (!Number.isFinite(t)) return rejection('non-finite', `"t" is ${t}; it must be finite`, stream, seq);
  return t;
}

const TICK_KEYS = new Set(['type', 'stream', 'seq', 't', 'x', 'y']);
const LABEL_KEYS = new Set(['type', 'stream', 'seq', 'label']);
const SESSION_KEYS = new Set(['type', 'stream', 'seq', 't', 'session']);

// Wrapped, because a parsed object may itself carry any "kind" field and so cannot be told from a Rejection.
function parseJsonObject(text: string): { readonly object: Record<string, unknown> } | { readonly refused: Rejection } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { refused: rejection('malformed', `not valid JSON: ${(e as Error).message}`) };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return { refused: rejection('malformed', `a frame must be a JSON object, got ${typeName(v)}`) };
  }
  return { object: v as Record<string, unknown> };
}

/** Decode one JSON text frame. */
export function decodeJsonFrame(text: string, resolver: ShapeResolver, receivedAt?: number): StreamInput | Rejection {
  const parsed = parseJsonObject(text);
  return 'refused' in parsed ? parsed.refused : decodeJsonObject(parsed.object, resolver, receivedAt);
}

// ------------------------------------------------------------------------------------------ control messages

/** Most stream keys one resume request may name. */
export const MAX_RESUME_STREAMS = 10_000;

/**
 * A producer asking where its streams stand (JSON `{"type":"resume","streams"?:[...]}`): the edge hands it to the
 * application, which answers it; `streams` undefined means every stream the application has.
 */
export interface ResumeRequest {
  readonly kind: 'resume';
  readonly streams: readonly string[] | undefined;
}

/** What a producer may send on the ingest path: a frame, or a control message for the application. */
export type IngestMessage = StreamInput | ResumeRequest;

const RESUME_KEYS = new Set(['type', 'streams']);

/** Validates a parsed `{"type":"resume"}` object; a bad `streams` field is 'malformed'. */
export function decodeResumeRequest(o: Readonly<Record<string, unknown>>): ResumeRequest | Rejection {
  for (const k of Object.keys(o)) {
    if (!RESUME_KEYS.has(k)) return rejection('malformed', `unexpected field "${k}" in a resume request (allowed: type, streams)`);
  }
  if (o.streams === undefined) return { kind: 'resume', streams: undefined };
  if (!Array.isArray(o.streams)) return rejection('malformed', `"streams" must be an array of stream keys, got ${typeName(o.streams)}`);
  if (o.streams.length > MAX_RESUME_STREAMS) {
    return rejection('malformed', `a resume request names ${o.streams.length} streams; at most ${MAX_RESUME_STREAMS} are allowed`);
  }
  for (let i = 0; i < o.streams.length; i++) {
    const bad = checkStreamKey(o.streams[i]);
    if (bad) return rejection('malformed', `streams[${i}] is not a valid stream key (${bad.message})`);
  }
  return { kind: 'resume', streams: o.streams as string[] };
}

function decodeJsonObject(o: Record<string, unknown>, resolver: ShapeResolver, receivedAt?: number): StreamInput | Rejection {
  const badKey = checkStreamKey(o.stream);
  if (badKey) return badKey;
  const stream = o.stream as string;
  if (!validSeq(o.seq)) {
    if (typeof o.seq === 'number' && !Number.isFinite(o.seq)) return rejection('non-finite', `"seq" is ${o.seq}`, stream);
    return rejection('malformed', `"seq" must be an integer >= 0 (at most 2^53 - 1), got ${JSON.stringify(o.seq) ?? 'nothing'}`, stream);
  }
  const seq = o.seq;
  let type: 'tick' | 'label' | 'session';
  if ('label' in o) type = 'label';
  else if ('session' in o) type = 'session';
  else type = 'tick';
  if (o.type !== undefined && o.type !== type) {
    return rejection('malformed', `"type" is ${JSON.stringify(o.type)} but the fields make a ${type} frame`, stream, seq);
  }
  const allowed = type === 'tick' ? TICK_KEYS : type === 'label' ? LABEL_KEYS : SESSION_KEYS;
  for (const k of Object.keys(o)) {
    if (!allowed.has(k)) {
      return rejection('malformed', `unexpected field "${k}" in a ${type} frame (allowed: ${[...allowed].join(', ')})`, stream, seq);
    }
  }
  if (type === 'session') {
    const t = checkTime(o.t, stream, seq);
    if (typeof t !== 'number') return t;
    if (typeof o.session !== 'string' || o.session.length === 0) {
      return rejection('malformed', '"session" must be a non-empty string naming the session', stream, seq);
    }
    if (byteLength(o.session) > MAX_SESSION_NAME_BYTES) {
      return rejection('malformed', `"session" is longer than ${MAX_SESSION_NAME_BYTES} bytes`, stream, seq);
    }
    const shape = resolveShape(resolver, stream, seq);
    if ('kind' in shape) return shape;
    const m: DriftMarker = { kind: 'drift', stream, seq, t, source: 'session', session: o.session };
    return m;
  }
  const shape = resolveShape(resolver, stream, seq);
  if ('kind' in shape) return shape;
  if (type === 'label') {
    const y = jsonVector(o.label, 'label', shape.outputSize, stream, seq);
    if (!(y instanceof Float32Array)) return y;
    const l: LabelEvent = { kind: 'label', stream, seq, y };
    return l;
  }
  const t = checkTime(o.t, stream, seq);
  if (typeof t !== 'number') return t;
  if (!('x' in o)) return rejection('malformed', 'a tick frame needs "x"', stream, seq);
  const x = jsonVector(o.x, 'x', shape.inputSize, stream, seq);
  if (!(x instanceof Float32Array)) return x;
  let y: Float32Array | undefined;
  if (o.y !== undefined) {
    const yy = jsonVector(o.y, 'y', shape.outputSize, stream, seq);
    if (!(yy instanceof Float32Array)) return yy;
    y = yy;
  }
  return tick(stream, seq, t, x, y, receivedAt);
}

function tick(stream: string, seq: number, t: number, x: Float32Array, y: Float32Array | undefined, receivedAt?: number): TickEvent {
  const e: { -readonly [K in keyof TickEvent]: TickEvent[K] } = { kind: 'tick', stream, seq, t, x };
  if (y !== undefined) e.y = y;
  if (receivedAt !== undefined) e.receivedAt = receivedAt;
  return e;
}

/** Decode one binary frame (layout: docs/websocket-frames.md). */
export function decodeBinaryFrame(bytes: Uint8Array, resolver: ShapeResolver, receivedAt?: number): StreamInput | Rejection {
  const n = bytes.byteLength;
  if (n < BINARY_PREFIX_BYTES) return rejection('malformed', `binary frame of ${n} bytes is shorter than its ${BINARY_PREFIX_BYTES}-byte prefix`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
  if (bytes[0] !== BINARY_MAGIC) {
    return rejection('malformed', `binary frame starts with 0x${hex2(bytes[0]!)}, not the magic byte 0x${hex2(BINARY_MAGIC)}`);
  }
  if (bytes[1] !== BINARY_VERSION) return rejection('malformed', `binary frame version ${bytes[1]} is not supported (expected ${BINARY_VERSION})`);
  const type = bytes[2]!;
  const flags = bytes[3]!;
  const keyLen = bytes[4]!;
  if (type !== BINARY_TYPE.tick && type !== BINARY_TYPE.label && type !== BINARY_TYPE.session) {
    return rejection('malformed', `binary frame type ${type} is unknown (1 tick, 2 label, 3 session)`);
  }
  if ((flags & ~BINARY_FLAG_HAS_Y) !== 0) return rejection('malformed', `binary frame flags 0x${hex2(flags)} set unknown bits`);
  if (keyLen === 0) return rejection('malformed', 'binary frame has an empty stream key');
  if (keyLen > MAX_STREAM_KEY_BYTES) {
    return rejection('malformed', `stream key is ${keyLen} bytes; at most ${MAX_STREAM_KEY_BYTES} are allowed`);
  }
  const fixedAt = BINARY_PREFIX_BYTES + keyLen;
  if (n < fixedAt + BINARY_FIXED_BYTES) {
    return rejection('malformed', `binary frame of ${n} bytes ends inside its header (needs ${fixedAt + BINARY_FIXED_BYTES})`);
  }
  let stream: string;
  try {
    stream = utf8Strict.decode(bytes.subarray(BINARY_PREFIX_BYTES, fixedAt));
  } catch {
    return rejection('malformed', 'stream key is not valid UTF-8');
  }
  const seq = dv.getFloat64(fixedAt, true);
  if (!validSeq(seq)) {
    if (!Number.isFinite(seq)) return rejection('non-finite', `seq is ${seq}`, stream);
    return rejection('malformed', `seq ${seq} is not an integer in [0, 2^53 - 1]`, stream);
  }
  const t = dv.getFloat64(fixedAt + 8, true);
  const nx = dv.getUint16(fixedAt + 16, true);
  const ny = dv.getUint16(fixedAt + 18, true);
  const payloadAt = fixedAt + BINARY_FIXED_BYTES;
  const hasY = (flags & BINARY_FLAG_HAS_Y) !== 0;
  if (type === BINARY_TYPE.session) {
    if (flags !== 0 || nx !== 0 || ny !== 0) return rejection('malformed', 'a session frame has flags 0, nx 0 and ny 0', stream, seq);
    if (n < payloadAt + 1) return rejection('malformed', 'session frame ends before its name length byte', stream, seq);
    const nameLen = bytes[payloadAt]!;
    if (nameLen === 0) return rejection('malformed', 'session frame has an empty session name', stream, seq);
    if (n !== payloadAt + 1 + nameLen) {
      return rejection('malformed', `session frame is ${n} bytes; its header says ${payloadAt + 1 + nameLen}`, stream, seq);
    }
    let session: string;
    try {
      session = utf8Strict.decode(bytes.subarray(payloadAt + 1, payloadAt + 1 + nameLen));
    } catch {
      return rejection('malformed', 'session name is not valid UTF-8', stream, seq);
    }
    if (!Number.isFinite(t)) return rejection('non-finite', `t is ${t}`, stream, seq);
    const shape = resolveShape(resolver, stream, seq);
    if ('kind' in shape) return shape;
    return { kind: 'drift', stream, seq, t, source: 'session', session };
  }
  if (type === BINARY_TYPE.label) {
    if (flags !== BINARY_FLAG_HAS_Y || nx !== 0) return rejection('malformed', 'a label frame has flags 0x01 (has y) and nx 0', stream, seq);
  } else if (hasY !== ny > 0) {
    return rejection('malformed', `flags say ${hasY ? '' : 'no '}y but ny is ${ny}`, stream, seq);
  }
  const expectedLen = payloadAt + 4 * (nx + ny);
  if (n !== expectedLen) {
    return rejection('malformed', `binary frame is ${n} bytes; its header (nx ${nx}, ny ${ny}) says ${expectedLen}`, stream, seq);
  }
  const shape = resolveShape(resolver, stream, seq);
  if ('kind' in shape) return shape;
  if (type === BINARY_TYPE.label) {
    if (ny !== shape.outputSize) return rejection('dimension', `label has ${ny} values; stream "${stream}" expects ${shape.outputSize}`, stream, seq);
    const y = readF32(dv, payloadAt, ny);
    const bad = firstNonFinite(y);
    if (bad >= 0) return rejection('non-finite', `label[${bad}] is ${y[bad]}`, stream, seq);
    return { kind: 'label', stream, seq, y };
  }
  if (!Number.isFinite(t)) return rejection('non-finite', `t is ${t}`, stream, seq);
  if (nx !== shape.inputSize) return rejection('dimension', `x has ${nx} values; stream "${stream}" expects ${shape.inputSize}`, stream, seq);
  if (hasY && ny !== shape.outputSize) {
    return rejection('dimension', `y has ${ny} values; stream "${stream}" expects ${shape.outputSize}`, stream, seq);
  }
  const x = readF32(dv, payloadAt, nx);
  let bad = firstNonFinite(x);
  if (bad >= 0) return rejection('non-finite', `x[${bad}] is ${x[bad]}`, stream, seq);
  let y: Float32Array | undefined;
  if (hasY) {
    y = readF32(dv, payloadAt + 4 * nx, ny);
    bad = firstNonFinite(y);
    if (bad >= 0) return rejection('non-finite', `y[${bad}] is ${y[bad]}`, stream, seq);
  }
  return tick(stream, seq, t, x, y, receivedAt);
}

function readF32(dv: DataView, at: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat32(at + 4 * i, true);
  return out;
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, '0');
}

export interface DecodeOptions {
  /** Frames longer than this many bytes are refused as 'oversized' before parsing (each inner frame of a batch). */
  readonly maxFrameBytes?: number;
  /** Most frames one batch message may hold. Default DEFAULT_MAX_FRAMES_PER_MESSAGE. */
  readonly maxFramesPerMessage?: number;
  readonly receivedAt?: number;
}

/** What a WebSocket message can arrive as. */
type MessageData = string | Uint8Array | ArrayBuffer | readonly Uint8Array[];

/**
 * Decode one WebSocket message. Binary messages starting with the magic byte are binary frames; any other
 * message (text, or binary holding UTF-8) is read as JSON. A batch is refused: it holds many frames, and this
 * returns one result (`decodeIngestMessageFrames` takes batches).
 */
export function decodeFrame(data: MessageData, resolver: ShapeResolver, options: DecodeOptions = {}): StreamInput | Rejection {
  return decodeSingleMessage(data, resolver, options, false) as StreamInput | Rejection;
}

/**
 * Like `decodeFrame`, and a JSON object with `"type":"resume"` (text, or binary holding UTF-8) is a
 * `ResumeRequest` rather than a bad frame. The size limit applies to it as to any frame.
 */
export function decodeIngestMessage(data: MessageData, resolver: ShapeResolver, options: DecodeOptions = {}): IngestMessage | Rejection {
  return decodeSingleMessage(data, resolver, options, true);
}

function decodeSingleMessage(data: MessageData, resolver: ShapeResolver, options: DecodeOptions, control: boolean): IngestMessage | Rejection {
  const content = messageContent(data);
  if (typeof content !== 'string' && !(content instanceof Uint8Array)) return content;
  if (batchEncoding(content) !== undefined) {
    return rejection('malformed', 'this message is a batch of frames; decode it with decodeIngestMessageFrames');
  }
  return decodeOne(content, resolver, options, control);
}

function messageContent(data: MessageData): string | Uint8Array | Rejection {
  if (typeof data === 'string' || data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data)) return Buffer.concat(data as Uint8Array[]);
  return rejection('malformed', 'unsupported message type');
}

function decodeOne(content: string | Uint8Array, resolver: ShapeResolver, options: DecodeOptions, control: boolean): IngestMessage | Rejection {
  let text = typeof content === 'string' ? content : undefined;
  const len = text !== undefined ? byteLength(text) : (content as Uint8Array).byteLength;
  if (options.maxFrameBytes !== undefined && len > options.maxFrameBytes) {
    return rejection('oversized', `frame of ${len} bytes exceeds the limit of ${options.maxFrameBytes} bytes`);
  }
  if (text === undefined) {
    const bytes = content as Uint8Array;
    if (bytes.byteLength > 0 && bytes[0] === BINARY_MAGIC) return decodeBinaryFrame(bytes, resolver, options.receivedAt);
    try {
      text = utf8Strict.decode(bytes);
    } catch {
      return rejection('malformed', `binary message is neither a driftline binary frame (magic 0x${hex2(BINARY_MAGIC)}) nor UTF-8 JSON`);
    }
  }
  const parsed = parseJsonObject(text);
  if ('refused' in parsed) return parsed.refused;
  if (control && parsed.object.type === 'resume') return decodeResumeRequest(parsed.object);
  return decodeJsonObject(parsed.object, resolver, options.receivedAt);
}

// ------------------------------------------------------------------------------------------------- batches

/**
 * Binary type 4: a container for frames of types 1-3. Not a frame itself, so it is no member of BINARY_TYPE,
 * whose types a single frame may have.
 */
export const BINARY_TYPE_BATCH = 4;
/** magic, version, type, flags, count (uint16). */
export const BINARY_BATCH_HEADER_BYTES = 6;
/** The uint32 length before each frame of a binary batch. */
export const BINARY_BATCH_LENGTH_BYTES = 4;
/** Most frames a batch message may hold unless the server is told otherwise (at most 65,535: count is a uint16). */
export const DEFAULT_MAX_FRAMES_PER_MESSAGE = 4096;
/** The most a batch header's uint16 count can say. */
export const MAX_BATCH_COUNT = 0xffff;

const JSON_ARRAY_OPEN = 0x5b; // '['

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** 'binary' for D1 01 04, 'json' when the first non-space character opens an array, else a single message. */
function batchEncoding(content: string | Uint8Array): 'binary' | 'json' | undefined {
  if (typeof content === 'string') {
    for (let i = 0; i < content.length; i++) {
      const c = content.charCodeAt(i);
      if (!isJsonSpace(c)) return c === JSON_ARRAY_OPEN ? 'json' : undefined;
    }
    return undefined;
  }
  if (content[0] === BINARY_MAGIC) {
    return content[1] === BINARY_VERSION && content[2] === BINARY_TYPE_BATCH ? 'binary' : undefined;
  }
  for (let i = 0; i < content.byteLength; i++) {
    const c = content[i]!;
    if (!isJsonSpace(c)) return c === JSON_ARRAY_OPEN ? 'json' : undefined;
  }
  return undefined;
}

/**
 * Decode one WebSocket message on the ingest path and call `each` once per thing it holds, in order: a frame's
 * input or rejection, a resume request, or for a batch each inner frame's result as if it had come alone (one
 * `receivedAt` for all). A batch whose container is damaged (docs/websocket-frames.md, "Batches") gets one
 * 'malformed' rejection and nothing else: it is checked whole before its first frame is decoded.
 */
export function decodeIngestMessageFrames(
  data: MessageData,
  resolver: ShapeResolver,
  each: (result: IngestMessage | Rejection) => void,
  options: DecodeOptions = {},
): void {
  const content = messageContent(data);
  if (typeof content !== 'string' && !(content instanceof Uint8Array)) {
    each(content);
    return;
  }
  const batch = batchEncoding(content);
  if (batch === 'binary') decodeBinaryBatch(content as Uint8Array, resolver, each, options);
  else if (batch === 'json') decodeJsonBatch(content, resolver, each, options);
  else each(decodeOne(content, resolver, options, true));
}

function refusedBatch(why: string): Rejection {
  return rejection('malformed', `batch refused whole, nothing in it was processed: ${why}`);
}

function checkCount(count: number, options: DecodeOptions): Rejection | undefined {
  const max = options.maxFramesPerMessage ?? DEFAULT_MAX_FRAMES_PER_MESSAGE;
  if (count === 0) return refusedBatch('it holds no frames');
  if (count > max) return refusedBatch(`it holds ${count} frames; at most ${max} are allowed`);
  return undefined;
}

// A rejection that names the inner frame, which may have no readable stream to name; allocated on refusal only.
function innerRefusal(index: number, r: IngestMessage | Rejection): IngestMessage | Rejection {
  return r.kind === 'rejected' ? rejection(r.reason, `frame ${index} of the batch: ${r.message}`, r.stream, r.seq) : r;
}

function decodeBinaryBatch(bytes: Uint8Array, resolver: ShapeResolver, each: (r: IngestMessage | Rejection) => void, options: DecodeOptions): void {
  const n = bytes.byteLength;
  if (n < BINARY_BATCH_HEADER_BYTES) return each(refusedBatch(`${n} bytes is shorter than the ${BINARY_BATCH_HEADER_BYTES}-byte batch header`));
  if (bytes[3] !== 0) return each(refusedBatch(`flags are 0x${hex2(bytes[3]!)}; a batch has flags 0`));
  const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
  const count = dv.getUint16(4, true);
  const badCount = checkCount(count, options);
  if (badCount) return each(badCount);
  // The container must be sound to its last byte before its first frame is handed on.
  let at = BINARY_BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (n - at < BINARY_BATCH_LENGTH_BYTES) return each(refusedBatch(`it ends inside the length of frame ${i} (${count} announced)`));
    const len = dv.getUint32(at, true);
    at += BINARY_BATCH_LENGTH_BYTES;
    if (len > n - at) return each(refusedBatch(`frame ${i} is said to be ${len} bytes; ${n - at} remain`));
    if (len >= 3 && bytes[at] === BINARY_MAGIC && bytes[at + 1] === BINARY_VERSION && bytes[at + 2] === BINARY_TYPE_BATCH) {
      return each(refusedBatch(`frame ${i} is itself a batch; batches do not nest`));
    }
    at += len;
  }
  if (at !== n) return each(refusedBatch(`${n - at} bytes follow the last of its ${count} frames`));
  at = BINARY_BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const len = dv.getUint32(at, true);
    at += BINARY_BATCH_LENGTH_BYTES;
    // A view: the payload is read once, by decodeBinaryFrame, as for a frame that came alone.
    const frame = bytes.subarray(at, at + len);
    at += len;
    if (options.maxFrameBytes !== undefined && len > options.maxFrameBytes) {
      each(rejection('oversized', `frame ${i} of the batch is ${len} bytes; the limit is ${options.maxFrameBytes} bytes`));
    } else {
      each(innerRefusal(i, decodeBinaryFrame(frame, resolver, options.receivedAt)));
    }
  }
}

function decodeJsonBatch(content: string | Uint8Array, resolver: ShapeResolver, each: (r: IngestMessage | Rejection) => void, options: DecodeOptions): void {
  let text: string;
  try {
    text = typeof content === 'string' ? content : utf8Strict.decode(content);
  } catch {
    return each(refusedBatch('a binary message holding a JSON batch is not valid UTF-8'));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return each(refusedBatch(`not valid JSON: ${(e as Error).message}`));
  }
  // It opens with '[' and parsed, so it is an array.
  const frames = parsed as unknown[];
  const badCount = checkCount(frames.length, options);
  if (badCount) return each(badCount);
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    if (Array.isArray(f)) return each(refusedBatch(`element ${i} is an array; batches do not nest`));
    if (typeof f !== 'object' || f === null) return each(refusedBatch(`element ${i} is ${typeName(f)}; a batch holds frame objects`));
    if ((f as Record<string, unknown>).type === 'resume') return each(refusedBatch(`element ${i} is a resume request; send control messages alone`));
  }
  // Only a message above the limit can hold a frame above it: then measure each frame's own bytes.
  const measure = options.maxFrameBytes !== undefined && byteLength(text) > options.maxFrameBytes;
  let at = text.indexOf('[') + 1;
  for (let i = 0; i < frames.length; i++) {
    const o = frames[i] as Record<string, unknown>;
    if (measure) {
      const start = text.indexOf('{', at);
      at = endOfJsonObject(text, start);
      const len = utf8Length(text, start, at);
      if (len > options.maxFrameBytes!) {
        const stream = checkStreamKey(o.stream) === undefined ? (o.stream as string) : undefined;
        const seq = validSeq(o.seq) ? o.seq : undefined;
        each(rejection('oversized', `frame ${i} of the batch is ${len} bytes; the limit is ${options.maxFrameBytes} bytes`, stream, seq));
        continue;
      }
    }
    each(innerRefusal(i, decodeJsonObject(o, resolver, options.receivedAt)));
  }
}

/** Index just past the object that opens at `start`, in text already known to be valid JSON. */
function endOfJsonObject(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string, escapes included: braces inside it do not count.
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) return i + 1;
  }
  return text.length;
}

/** UTF-8 bytes of text[start, end), as Buffer.byteLength counts them, without slicing a new string. */
function utf8Length(text: string, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < end && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------- encoding (in)

/** What a producer sends: a tick, a late label, or a declared session boundary (a DriftMarker with a session). */
export type IngestFrame =
  | { readonly kind: 'tick'; readonly stream: string; readonly seq: number; readonly t: number; readonly x: ArrayLike<number>; readonly y?: ArrayLike<number> }
  | { readonly kind: 'label'; readonly stream: string; readonly seq: number; readonly y: ArrayLike<number> }
  | { readonly kind: 'drift' | 'session'; readonly stream: string; readonly seq: number; readonly t: number; readonly session?: string };

function sessionName(f: Extract<IngestFrame, { kind: 'drift' | 'session' }>): string {
  return f.session ?? 'session';
}

export function encodeJsonFrame(f: IngestFrame): string {
  switch (f.kind) {
    case 'tick': {
      const o: Record<string, unknown> = { stream: f.stream, seq: f.seq, t: f.t, x: Array.from(f.x) };
      if (f.y !== undefined) o.y = Array.from(f.y);
      return JSON.stringify(o);
    }
    case 'label':
      return JSON.stringify({ stream: f.stream, seq: f.seq, label: Array.from(f.y) });
    default:
      return JSON.stringify({ stream: f.stream, seq: f.seq, t: f.t, session: sessionName(f) });
  }
}

export function encodeBinaryFrame(f: IngestFrame): Uint8Array {
  const key = utf8.encode(f.stream);
  if (key.byteLength === 0 || key.byteLength > MAX_STREAM_KEY_BYTES) {
    throw new RangeError(`stream key must be 1..${MAX_STREAM_KEY_BYTES} bytes of UTF-8, got ${key.byteLength}`);
  }
  const nx = f.kind === 'tick' ? f.x.length : 0;
  const ny = f.kind === 'tick' ? (f.y?.length ?? 0) : f.kind === 'label' ? f.y.length : 0;
  if (nx > 0xffff || ny > 0xffff) throw new RangeError('nx and ny must fit in uint16');
  const name = f.kind === 'drift' || f.kind === 'session' ? utf8.encode(sessionName(f)) : undefined;
  if (name && (name.byteLength === 0 || name.byteLength > MAX_SESSION_NAME_BYTES)) {
    throw new RangeError(`session name must be 1..${MAX_SESSION_NAME_BYTES} bytes`);
  }
  const fixedAt = BINARY_PREFIX_BYTES + key.byteLength;
  const payloadAt = fixedAt + BINARY_FIXED_BYTES;
  const total = payloadAt + 4 * (nx + ny) + (name ? 1 + name.byteLength : 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out[0] = BINARY_MAGIC;
  out[1] = BINARY_VERSION;
  out[2] = f.kind === 'tick' ? BINARY_TYPE.tick : f.kind === 'label' ? BINARY_TYPE.label : BINARY_TYPE.session;
  out[3] = ny > 0 ? BINARY_FLAG_HAS_Y : 0;
  out[4] = key.byteLength;
  out.set(key, BINARY_PREFIX_BYTES);
  dv.setFloat64(fixedAt, f.seq, true);
  dv.setFloat64(fixedAt + 8, f.kind === 'label' ? 0 : f.t, true);
  dv.setUint16(fixedAt + 16, nx, true);
  dv.setUint16(fixedAt + 18, ny, true);
  let at = payloadAt;
  if (f.kind === 'tick') {
    for (let i = 0; i < nx; i++, at += 4) dv.setFloat32(at, f.x[i]!, true);
    if (f.y) for (let i = 0; i < ny; i++, at += 4) dv.setFloat32(at, f.y[i]!, true);
  } else if (f.kind === 'label') {
    for (let i = 0; i < ny; i++, at += 4) dv.setFloat32(at, f.y[i]!, true);
  } else {
    out[at] = name!.byteLength;
    out.set(name!, at + 1);
  }
  return out;
}

/** A binary batch (type 4) of `frames`, in order. */
export function encodeBinaryBatch(frames: readonly IngestFrame[]): Uint8Array {
  return packBinaryBatch(frames.map(encodeBinaryFrame));
}

/** A JSON batch (a top-level array) of `frames`, in order. */
export function encodeJsonBatch(frames: readonly IngestFrame[]): string {
  return packJsonBatch(frames.map(encodeJsonFrame));
}

function checkBatchSize(count: number): void {
  if (count < 1 || count > MAX_BATCH_COUNT) throw new RangeError(`a batch holds 1..${MAX_BATCH_COUNT} frames, got ${count}`);
}

/** Bytes a binary batch of frames of these sizes takes. */
export function binaryBatchBytes(count: number, frameBytes: number): number {
  return BINARY_BATCH_HEADER_BYTES + count * BINARY_BATCH_LENGTH_BYTES + frameBytes;
}

/** A binary batch of already-encoded binary frames (the client packs what it keeps). */
export function packBinaryBatch(encoded: readonly Uint8Array[]): Uint8Array {
  const count = encoded.length;
  checkBatchSize(count);
  let frameBytes = 0;
  for (const f of encoded) frameBytes += f.byteLength;
  const out = new Uint8Array(binaryBatchBytes(count, frameBytes));
  const dv = new DataView(out.buffer);
  out[0] = BINARY_MAGIC;
  out[1] = BINARY_VERSION;
  out[2] = BINARY_TYPE_BATCH;
  out[3] = 0;
  dv.setUint16(4, count, true);
  let at = BINARY_BATCH_HEADER_BYTES;
  for (const f of encoded) {
    dv.setUint32(at, f.byteLength, true);
    out.set(f, at + BINARY_BATCH_LENGTH_BYTES);
    at += BINARY_BATCH_LENGTH_BYTES + f.byteLength;
  }
  return out;
}

/** Bytes of UTF-8 a JSON batch adds around its frames: the brackets and the commas. */
export function jsonBatchOverheadBytes(count: number): number {
  return count + 1;
}

/** A JSON batch of already-encoded JSON frames. */
export function packJsonBatch(encoded: readonly string[]): string {
  checkBatchSize(encoded.length);
  return `[${encoded.join(',')}]`;
}

// --------------------------------------------------------------------------------------------- encoding (out)

/** An error reply to the peer that sent a refused frame. */
export interface ErrorReply {
  readonly type: 'error';
  readonly reason: RejectionReason;
  readonly message: string;
  readonly stream?: string;
  readonly seq?: number;
}

export function errorReply(r: Rejection): ErrorReply {
  const o: { -readonly [K in keyof ErrorReply]: ErrorReply[K] } = { type: 'error', reason: r.reason, message: r.message };
  if (r.stream !== undefined) o.stream = r.stream;
  if (r.seq !== undefined) o.seq = r.seq;
  return o;
}

export function encodeErrorReply(r: Rejection): string {
  return JSON.stringify(errorReply(r));
}

/** What the server publishes to /predictions subscribers. */
export type OutboundMessage = StreamOutput | PrequentialReport | RecoveryReport;

function arr(a: Float32Array | undefined): (number | null)[] | undefined {
  // JSON has no NaN: non-finite values (e.g. reference predictors before any label) go out as null.
  return a === undefined ? undefined : Array.from(a, (v) => (Number.isFinite(v) ? v : null));
}

/**
 * JSON for a subscriber: `{type:'prediction', stream, seq, t, yhat, version}`, `{type:'drift', ...}`,
 * `{type:'prequential', ...}`, `{type:'recovery', ...}`, `{type:'scored', ...}`, or `{type:'error', ...}` for a
 * Rejection. Float32Arrays become arrays; non-finite numbers become null.
 */
export function encodeOutbound(m: OutboundMessage): string {
  switch (m.kind) {
    case 'prediction': {
      const o: Record<string, unknown> = { type: 'prediction', stream: m.stream, seq: m.seq, t: m.t, yhat: arr(m.yhat), version: m.version };
      if (m.replayed === true) o.replayed = true;
      return JSON.stringify(o);
    }
    case 'drift': {
      const o: Record<string, unknown> = { type: 'drift', stream: m.stream, seq: m.seq, t: m.t, source: m.source };
      if (m.session !== undefined) o.session = m.session;
      return JSON.stringify(o);
    }
    case 'rejected':
      return encodeErrorReply(m);
    case 'scored': {
      const { kind: _k, y, yhat, yLast, yMean, yFrozen, ...rest } = m;
      return JSON.stringify({ type: 'scored', ...rest, y: arr(y), yhat: arr(yhat), yLast: arr(yLast), yMean: arr(yMean), yFrozen: arr(yFrozen) });
    }
    case 'prequential':
    case 'recovery': {
      const { kind, ...rest } = m;
      return JSON.stringify({ type: kind, ...rest }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
    }
  }
}

// ----------------------------------------------------------------------------------------------- validation

export interface IngestValidatorOptions {
  /** Shapes of the known streams. */
  readonly shapes?: ShapeLookup;
  /** When given, streams the lookup does not know are accepted with this shape (up to maxStreams). */
  readonly defaultShape?: StreamShape;
  /** Most distinct streams admitted (known or default-shaped); a further one is 'too-many-streams'. */
  readonly maxStreams?: number;
  /** Recent tick seqs remembered per stream for the label join checks. */
  readonly labelWindow?: number;
  /** Frames above this many bytes are 'oversized' (each inner frame of a batch). */
  readonly maxFrameBytes?: number;
  /** Most frames one batch message may hold. Default DEFAULT_MAX_FRAMES_PER_MESSAGE. */
  readonly maxFramesPerMessage?: number;
  /**
   * Default true. False: decode and validate shapes and values only, and keep no per-stream state (no seq order,
   * no label window, no maxStreams): a later stage that knows each stream's restored high-water mark checks those.
   */
  readonly checkOrder?: boolean;
}

interface StreamState {
  lastTick: number; // -1 before any tick
  lastMarker: number; // -1 before any marker
  ring: Float64Array; // recent tick seqs, increasing, circular
  labeled: Uint8Array;
  head: number; // next write index
  count: number;
}

/**
 * Decode + validate + ordering per stream: ticks need strictly increasing seq ('duplicate' when equal to the
 * last, 'out-of-order' when below); a session marker's seq is the first tick after it, so it must be above the
 * last tick ('duplicate' when it equals the last marker); a label must name one of the last `labelWindow` ticks
 * of its stream that has no label yet ('label-unknown-tick', 'label-too-late', 'label-duplicate').
 * Bounded: at most maxStreams streams, each with a ring of labelWindow seqs. Only accepted frames admit a stream.
 * With `checkOrder: false` none of that: no per-stream state at all, and maxStreams and labelWindow are unused.
 */
export class IngestValidator {
  readonly maxStreams: number;
  readonly labelWindow: number;
  readonly maxFrameBytes: number | undefined;
  readonly maxFramesPerMessage: number;
  readonly checkOrder: boolean;
  private readonly shapes: ShapeLookup;
  private readonly defaultShape: StreamShape | undefined;
  private readonly streams = new Map<string, StreamState>();
  readonly resolver: ShapeResolver;

  constructor(options: IngestValidatorOptions) {
    this.shapes = options.shapes ?? (() => undefined);
    this.defaultShape = options.defaultShape;
    this.maxStreams = options.maxStreams ?? 1024;
    this.labelWindow = options.labelWindow ?? 256;
    this.maxFrameBytes = options.maxFrameBytes;
    this.maxFramesPerMessage = options.maxFramesPerMessage ?? DEFAULT_MAX_FRAMES_PER_MESSAGE;
    checkFramesPerMessage(this.maxFramesPerMessage);
    this.checkOrder = options.checkOrder ?? true;
    if (!(this.maxStreams >= 1) || !(this.labelWindow >= 1)) throw new RangeError('maxStreams and labelWindow must be >= 1');
    this.resolver = (stream) => {
      const known = this.shapes(stream) ?? this.defaultShape;
      if (known === undefined) return rejection('unknown-stream', `unknown stream "${stream}" (no shape configured for it)`, stream);
      if (this.checkOrder && !this.streams.has(stream) && this.streams.size >= this.maxStreams) {
        return rejection('too-many-streams', `stream "${stream}" would exceed the limit of ${this.maxStreams} streams`, stream);
      }
      return known;
    };
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Decode and validate one frame; on success the stream's ordering state advances. */
  accept(data: string | Uint8Array | ArrayBuffer | readonly Uint8Array[], receivedAt?: number): StreamInput | Rejection {
    const d = decodeFrame(data, this.resolver, this.decodeOptions(receivedAt));
    if (d.kind === 'rejected') return d;
    return this.order(d);
  }

  /** As `accept`, and a resume request comes back as such (no state changes for it). */
  acceptMessage(data: string | Uint8Array | ArrayBuffer | readonly Uint8Array[], receivedAt?: number): IngestMessage | Rejection {
    const d = decodeIngestMessage(data, this.resolver, this.decodeOptions(receivedAt));
    if (d.kind === 'rejected' || d.kind === 'resume') return d;
    return this.order(d);
  }

  /**
   * As `acceptMessage`, for a message that may be a batch: `each` gets every frame's result in order (ordering
   * checked frame by frame, as if each had come alone), or one rejection for a batch refused whole.
   */
  acceptEach(
    data: string | Uint8Array | ArrayBuffer | readonly Uint8Array[],
    receivedAt: number | undefined,
    each: (result: IngestMessage | Rejection) => void,
  ): void {
    // One callback per validator, not per message: `each` is swapped in and restored (safe if `each` re-enters).
    const outer = this.each;
    this.each = each;
    try {
      decodeIngestMessageFrames(data, this.resolver, this.orderEach, this.decodeOptions(receivedAt));
    } finally {
      this.each = outer;
    }
  }

  private each: ((result: IngestMessage | Rejection) => void) | undefined;
  private readonly orderEach = (d: IngestMessage | Rejection): void => {
    this.each!(d.kind === 'rejected' || d.kind === 'resume' ? d : this.order(d));
  };

  private decodeOptions(receivedAt: number | undefined): DecodeOptions {
    const opts: { maxFrameBytes?: number; maxFramesPerMessage: number; receivedAt?: number } = { maxFramesPerMessage: this.maxFramesPerMessage };
    if (this.maxFrameBytes !== undefined) opts.maxFrameBytes = this.maxFrameBytes;
    if (receivedAt !== undefined) opts.receivedAt = receivedAt;
    return opts;
  }

  /** The ordering check alone, for inputs decoded elsewhere; with `checkOrder: false` every input passes. */
  order(e: StreamInput): StreamInput | Rejection {
    if (!this.checkOrder) return e;
    let s = this.streams.get(e.stream);
    if (e.kind === 'label') {
      if (s === undefined || e.seq > s.lastTick) {
        return rejection('label-unknown-tick', `label for tick ${e.seq} of "${e.stream}", which has not been seen`, e.stream, e.seq);
      }
      const oldest = s.ring[(s.head - s.count + this.labelWindow) % this.labelWindow]!;
      if (e.seq < oldest) {
        return rejection('label-too-late', `label for tick ${e.seq} of "${e.stream}" is older than the last ${this.labelWindow} ticks`, e.stream, e.seq);
      }
      const i = this.find(s, e.seq);
      if (i < 0) return rejection('label-unknown-tick', `no tick ${e.seq} was seen on "${e.stream}"`, e.stream, e.seq);
      if (s.labeled[i]) return rejection('label-duplicate', `tick ${e.seq} of "${e.stream}" already has its label`, e.stream, e.seq);
      s.labeled[i] = 1;
      return e;
    }
    if (s === undefined) {
      if (this.streams.size >= this.maxStreams) {
        return rejection('too-many-streams', `stream "${e.stream}" would exceed the limit of ${this.maxStreams} streams`, e.stream, e.seq);
      }
      s = { lastTick: -1, lastMarker: -1, ring: new Float64Array(this.labelWindow), labeled: new Uint8Array(this.labelWindow), head: 0, count: 0 };
      this.streams.set(e.stream, s);
    }
    if (e.kind === 'drift') {
      if (e.seq === s.lastMarker) return rejection('duplicate', `session boundary at seq ${e.seq} of "${e.stream}" already declared`, e.stream, e.seq);
      if (e.seq <= s.lastTick || e.seq < s.lastMarker) {
        return rejection('out-of-order', `session boundary at seq ${e.seq} of "${e.stream}" comes after tick ${s.lastTick}; it must name the next tick`, e.stream, e.seq);
      }
      s.lastMarker = e.seq;
      return e;
    }
    if (e.seq === s.lastTick) return rejection('duplicate', `tick ${e.seq} of "${e.stream}" was already received`, e.stream, e.seq);
    if (e.seq < s.lastTick) return rejection('out-of-order', `tick ${e.seq} of "${e.stream}" arrived after tick ${s.lastTick}`, e.stream, e.seq);
    s.lastTick = e.seq;
    s.ring[s.head] = e.seq;
    s.labeled[s.head] = e.y !== undefined ? 1 : 0;
    s.head = (s.head + 1) % this.labelWindow;
    if (s.count < this.labelWindow) s.count++;
    return e;
  }

  private find(s: StreamState, seq: number): number {
    // Binary search over the ring in logical order (oldest .. newest).
    const w = this.labelWindow;
    const start = (s.head - s.count + w) % w;
    let lo = 0;
    let hi = s.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const idx = (start + mid) % w;
      const v = s.ring[idx]!;
      if (v === seq) return idx;
      if (v < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

/** Throws unless `n` is a whole number of frames a batch header can carry (1..65,535); `option` names it. */
export function checkFramesPerMessage(n: number, option = 'maxFramesPerMessage'): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH_COUNT) {
    throw new RangeError(`${option} must be an integer in 1..${MAX_BATCH_COUNT} (a batch's count is a uint16), got ${n}`);
  }
}

/** A zeroed count per reason. */
export function emptyReasonCounts(): Record<RejectionReason, number> {
  const o = {} as Record<RejectionReason, number>;
  for (const r of REJECTION_REASONS) o[r] = 0;
  return o;
}
