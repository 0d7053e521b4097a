import { decodeBinaryFrame, encodeBinaryFrame, type IngestFrame, type StreamShape } from '../../adapters/websocket/frames.js';
import type { Rejection, StreamInput } from '../../streams/messages.js';

/**
 * The inputs the main thread hands a shard in one message: validated inputs re-encoded as version-1 binary frames
 * (docs/websocket-frames.md), each after a 16-byte header: the frame's length (u32), the peer that sent it (u32,
 * 0 for none), and when it entered driftline (f64, ms since the epoch: a worker's performance.now() has its own
 * origin). Little-endian. One buffer per message, transferred, so a batch crosses threads in one copy-free move.
 */
export const SHARD_RECORD_HEADER_BYTES = 16;

/** Collects one turn's inputs for one shard. */
export class ShardRecordWriter {
  private bytes = new Uint8Array(64 * 1024);
  private view = new DataView(this.bytes.buffer);
  private used = 0;
  /** Records written since the last take(). */
  count = 0;

  /** Appends `input` from peer `peerId`, received at `receivedAtEpochMs` (NaN: not stamped). */
  push(input: StreamInput, peerId: number, receivedAtEpochMs: number): void {
    const frame = encodeBinaryFrame(asFrame(input));
    const need = SHARD_RECORD_HEADER_BYTES + frame.byteLength;
    if (this.used + need > this.bytes.byteLength) this.grow(this.used + need);
    this.view.setUint32(this.used, frame.byteLength, true);
    this.view.setUint32(this.used + 4, peerId, true);
    this.view.setFloat64(this.used + 8, receivedAtEpochMs, true);
    this.bytes.set(frame, this.used + SHARD_RECORD_HEADER_BYTES);
    this.used += need;
    this.count++;
  }

  /** The records so far, as an ArrayBuffer of exactly their bytes (to transfer); the writer starts empty again. */
  take(): ArrayBuffer {
    const out = this.bytes.buffer.slice(0, this.used);
    this.used = 0;
    this.count = 0;
    return out;
  }

  private grow(atLeast: number): void {
    let size = this.bytes.byteLength * 2;
    while (size < atLeast) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.used));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }
}

/** One record as the shard sees it. */
export interface ShardRecord {
  readonly input: StreamInput | Rejection;
  readonly peerId: number;
}

/**
 * Calls `each` for every record of `buffer`, in order. `originMs` is the reading thread's performance.timeOrigin:
 * receivedAt comes out on that thread's performance.now() clock, as the pipeline expects.
 */
export function readShardRecords(buffer: ArrayBuffer, shape: StreamShape, originMs: number, each: (input: StreamInput | Rejection, peerId: number) => void): void {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  const resolver = () => shape;
  for (let at = 0; at + SHARD_RECORD_HEADER_BYTES <= bytes.byteLength; ) {
    const length = view.getUint32(at, true);
    const peerId = view.getUint32(at + 4, true);
    const receivedAt = view.getFloat64(at + 8, true);
    const frame = bytes.subarray(at + SHARD_RECORD_HEADER_BYTES, at + SHARD_RECORD_HEADER_BYTES + length);
    each(decodeBinaryFrame(frame, resolver, Number.isNaN(receivedAt) ? undefined : receivedAt - originMs), peerId);
    at += SHARD_RECORD_HEADER_BYTES + length;
  }
}

function asFrame(input: StreamInput): IngestFrame {
  switch (input.kind) {
    case 'tick':
      return input.y === undefined
        ? { kind: 'tick', stream: input.stream, seq: input.seq, t: input.t, x: input.x }
        : { kind: 'tick', stream: input.stream, seq: input.seq, t: input.t, x: input.x, y: input.y };
    case 'label':
      return { kind: 'label', stream: input.stream, seq: input.seq, y: input.y };
    case 'drift':
      return input.session === undefined
        ? { kind: 'drift', stream: input.stream, seq: input.seq, t: input.t }
        : { kind: 'drift', stream: input.stream, seq: input.seq, t: input.t, session: input.session };
  }
}
