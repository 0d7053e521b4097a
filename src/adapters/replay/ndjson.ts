/**
 * Reads recorded frames from an NDJSON file (one JSON object a line), streaming line by line with node:readline:
 *
 *   {"stream":"s1","seq":0,"t":0.00,"x":[...],"y":[...]}     a tick (y optional: the label of this same tick)
 *   {"stream":"s1","seq":5,"y":[...]}                           a label for an earlier tick (no t, no x)
 *   {"stream":"s1","seq":0,"t":0.00,"session":"Day0"}          a declared session boundary (DriftMarker, source 'session')
 *
 * An optional "kind" ('tick' | 'label' | 'drift') may make the frame type explicit. A line that is not valid JSON
 * or not one of these frames yields an NdjsonRejection naming its line number (1-based); reading goes on.
 * Blank lines are skipped.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Observable } from 'rxjs';
import type { DriftMarker, LabelEvent, Rejection, RejectionReason, StreamInput, TickEvent } from '../../streams/messages.js';

/** A refused line: a Rejection with the line number. */
export interface NdjsonRejection extends Rejection {
  readonly line: number;
}

export interface NdjsonOptions {
  /** Expected input width; other widths are rejected ('dimension'). */
  readonly nInputs?: number;
  /** Expected label width. */
  readonly nOutputs?: number;
  /** Lines longer than this many characters are rejected ('oversized'); default 16 MiB. */
  readonly maxLineLength?: number;
}

/** Reads frames from a file path or a readable stream, one result per non-blank line, in order. */
export async function* readNdjson(source: string | Readable, options: NdjsonOptions = {}): AsyncGenerator<StreamInput | NdjsonRejection> {
  const input = typeof source === 'string' ? createReadStream(source, { encoding: 'utf8' }) : source;
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      yield parseNdjsonLine(line, lineNo, options);
    }
  } finally {
    lines.close();
    if (typeof source === 'string') input.destroy();
  }
}

/** The frames of an NDJSON file as an Observable (unsubscribing stops reading). */
export function ndjson$(source: string | Readable, options: NdjsonOptions = {}): Observable<StreamInput | NdjsonRejection> {
  return new Observable((subscriber) => {
    const it = readNdjson(source, options);
    let closed = false;
    void (async () => {
      try {
        for (;;) {
          const r = await it.next();
          if (closed) return;
          if (r.done) break;
          subscriber.next(r.value);
        }
        subscriber.complete();
      } catch (err) {
        if (!closed) subscriber.error(err);
      }
    })();
    return () => {
      closed = true;
      void it.return(undefined);
    };
  });
}

function reject(line: number, reason: RejectionReason, message: string, stream?: unknown, seq?: unknown): NdjsonRejection {
  return {
    kind: 'rejected',
    line,
    reason,
    message: `line ${line}: ${message}`,
    ...(typeof stream === 'string' ? { stream } : {}),
    ...(typeof seq === 'number' ? { seq } : {}),
  };
}

function floatArray(v: unknown): Float32Array | 'type' | 'non-finite' {
  if (!Array.isArray(v)) return 'type';
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const e = v[i];
    if (typeof e !== 'number') return 'type';
    if (!Number.isFinite(e)) return 'non-finite';
    out[i] = e;
  }
  return out;
}

/** Parses one line (exported for tests and for other line-based adapters). */
export function parseNdjsonLine(line: string, lineNo: number, options: NdjsonOptions = {}): StreamInput | NdjsonRejection {
  const maxLen = options.maxLineLength ?? 16 * 1024 * 1024;
  if (line.length > maxLen) return reject(lineNo, 'oversized', `line of ${line.length} characters exceeds ${maxLen}`);
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (err) {
    return reject(lineNo, 'malformed', `not valid JSON (${(err as Error).message})`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return reject(lineNo, 'malformed', 'not a JSON object');
  const f = obj as Record<string, unknown>;
  const { stream, seq, t } = f;
  if (typeof stream !== 'string' || stream === '') return reject(lineNo, 'malformed', "missing or empty 'stream'", undefined, seq);
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return reject(lineNo, 'malformed', "'seq' must be an integer >= 0", stream);
  const kind = f.kind ?? ('session' in f ? 'drift' : 'x' in f ? 'tick' : 'y' in f ? 'label' : undefined);
  if (kind === 'drift') {
    if (typeof t !== 'number' || !Number.isFinite(t)) return reject(lineNo, 'malformed', "a session frame needs a finite 't'", stream, seq);
    if (typeof f.session !== 'string') return reject(lineNo, 'malformed', "'session' must be a string", stream, seq);
    const marker: DriftMarker = { kind: 'drift', stream, seq, t, source: typeof f.source === 'string' ? f.source : 'session', session: f.session };
    return marker;
  }
  if (kind === 'label') {
    const y = floatArray(f.y);
    if (y === 'type') return reject(lineNo, 'malformed', "'y' must be an array of numbers", stream, seq);
    if (y === 'non-finite') return reject(lineNo, 'non-finite', "'y' has a non-finite value", stream, seq);
    if (options.nOutputs !== undefined && y.length !== options.nOutputs) return reject(lineNo, 'dimension', `'y' has ${y.length} values, expected ${options.nOutputs}`, stream, seq);
    const label: LabelEvent = { kind: 'label', stream, seq, y };
    return label;
  }
  if (kind !== 'tick') return reject(lineNo, 'malformed', "not a tick ('x'), label ('y') or session ('session') frame", stream, seq);
  if (typeof t !== 'number' || !Number.isFinite(t)) return reject(lineNo, 'malformed', "a tick needs a finite 't'", stream, seq);
  const x = floatArray(f.x);
  if (x === 'type') return reject(lineNo, 'malformed', "'x' must be an array of numbers", stream, seq);
  if (x === 'non-finite') return reject(lineNo, 'non-finite', "'x' has a non-finite value", stream, seq);
  if (options.nInputs !== undefined && x.length !== options.nInputs) return reject(lineNo, 'dimension', `'x' has ${x.length} values, expected ${options.nInputs}`, stream, seq);
  if (f.y === undefined || f.y === null) {
    const tick: TickEvent = { kind: 'tick', stream, seq, t, x };
    return tick;
  }
  const y = floatArray(f.y);
  if (y === 'type') return reject(lineNo, 'malformed', "'y' must be an array of numbers", stream, seq);
  if (y === 'non-finite') return reject(lineNo, 'non-finite', "'y' has a non-finite value", stream, seq);
  if (options.nOutputs !== undefined && y.length !== options.nOutputs) return reject(lineNo, 'dimension', `'y' has ${y.length} values, expected ${options.nOutputs}`, stream, seq);
  const tick: TickEvent = { kind: 'tick', stream, seq, t, x, y };
  return tick;
}
