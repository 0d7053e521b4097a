import { decodeBinaryFrame, encodeBinaryFrame, type StreamShape } from '../../adapters/websocket/frames.js';
import type { Rejection, StreamInput } from '../../streams/messages.js';
import type { RingReader, RingWriter } from './shared-ring.js';

/**
 * The inputs the main thread hands a shard, as records of its shared ring (shared-ring.ts): each validated input
 * re-encoded as a version-1 binary frame (docs/websocket-frames.md) after a 16-byte header: the peer that sent it
 * (u32, 0 for none), flags (u32: SHOWN_ON_DASHBOARD), and when it entered driftline (f64, ms since the epoch: a
 * worker's performance.now() has its own origin). Little-endian. The ring replaced one postMessage per turn, which cost the main thread more than
 * anything else it did for a shard (docs/performance.md, "Shards").
 */
export const SHARD_RECORD_HEADER_BYTES = 16;
/** Record flag: the dashboard shows this input's stream, so the shard sends its outputs along. */
export const SHOWN_ON_DASHBOARD = 1;

/** Writes one shard's inputs into its ring; what finds the ring full waits here, in order, for room. */
export class ShardRecordWriter {
  private readonly view: DataView;
  private readonly waitingRecords: Uint8Array[] = [];
  /** Records written since the last publish(). */
  count = 0;

  constructor(private readonly ring: RingWriter) {
    const memory = ring.memory;
    this.view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
  }

  /** Whether the shard sleeps until woken by the next publish(). */
  get readerSleeping(): boolean {
    return this.ring.readerSleeping;
  }

  /** Records that found the ring full and wait for room (the shard is behind: its senders should be paused). */
  get waiting(): number {
    return this.waitingRecords.length;
  }

  /** Appends `input` from peer `peerId`, received at `receivedAtEpochMs` (NaN: not stamped). */
  push(input: StreamInput, peerId: number, flags: number, receivedAtEpochMs: number): void {
    // An input is already a frame (a drift marker from the edge is a declared session boundary).
    const frame = encodeBinaryFrame(input);
    const length = SHARD_RECORD_HEADER_BYTES + frame.byteLength;
    this.count++;
    if (this.waitingRecords.length === 0) {
      const at = this.ring.reserve(length);
      if (at >= 0) {
        this.view.setUint32(at, peerId, true);
        this.view.setUint32(at + 4, flags, true);
        this.view.setFloat64(at + 8, receivedAtEpochMs, true);
        this.ring.memory.set(frame, at + SHARD_RECORD_HEADER_BYTES);
        this.ring.commit();
        return;
      }
    }
    const record = new Uint8Array(length);
    const view = new DataView(record.buffer);
    view.setUint32(0, peerId, true);
    view.setUint32(4, flags, true);
    view.setFloat64(8, receivedAtEpochMs, true);
    record.set(frame, SHARD_RECORD_HEADER_BYTES);
    this.waitingRecords.push(record);
  }

  /** Moves waiting records into the ring as far as it has room, and makes everything written visible to the shard. */
  publish(): void {
    let moved = 0;
    while (moved < this.waitingRecords.length && this.ring.tryWrite(this.waitingRecords[moved]!)) moved++;
    if (moved > 0) this.waitingRecords.splice(0, moved);
    this.ring.publish();
    this.count = 0;
  }
}

/**
 * Calls `each` for every record published to the shard's ring since the last call, in order; returns how many.
 * `originMs` is the reading thread's performance.timeOrigin: receivedAt comes out on that thread's
 * performance.now() clock, as the pipeline expects.
 */
export function readShardRecords(reader: RingReader, shape: StreamShape, originMs: number, each: (input: StreamInput | Rejection, peerId: number, flags: number) => void): number {
  const resolver = () => shape;
  let view: DataView | undefined;
  return reader.drain((memory, offset, length) => {
    view ??= new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
    const peerId = view.getUint32(offset, true);
    const flags = view.getUint32(offset + 4, true);
    const receivedAt = view.getFloat64(offset + 8, true);
    // The decoder copies what it keeps (floats, key, session name): nothing refers to the ring after the call.
    const frame = memory.subarray(offset + SHARD_RECORD_HEADER_BYTES, offset + length);
    each(decodeBinaryFrame(frame, resolver, Number.isNaN(receivedAt) ? undefined : receivedAt - originMs), peerId, flags);
  });
}
