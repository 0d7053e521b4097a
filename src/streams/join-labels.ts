import type { OperatorFunction } from 'rxjs';
import { rejection } from './messages.js';
import type { LabelEvent, Rejection, RejectionReason, StreamInput, TickEvent } from './messages.js';
import { operate } from './operate.js';
import type { StateReader, StateWriter } from './state-codec.js';

/** `SeqRing.locate` result: the seq was never seen (a future seq, a gap, or before the stream's first tick). */
export const SEQ_UNKNOWN = -1;
/** `SeqRing.locate` result: the seq is older than the window (its tick has left the ring). */
export const SEQ_TOO_LATE = -2;

/**
 * The seqs of the last `capacity` ticks of one stream, with a labelled flag each: constant memory, shared by
 * joinLabels and predictThenLearn. Ticks are numbered 0, 1, ... in arrival order (the stream's tick index);
 * index `i` lives in slot `i % capacity` until tick `i + capacity` replaces it. Seqs in the ring are strictly
 * increasing, so a seq is found by binary search.
 */
export class SeqRing {
  /** Ticks pushed so far. */
  count = 0;
  /** Seq of the last tick pushed (NaN before the first). */
  lastSeq = NaN;
  private firstSeq = NaN;
  private readonly seqs: Float64Array;
  /** 1 when the slot's tick has been labelled. */
  readonly labelled: Uint8Array;

  constructor(readonly capacity: number) {
    this.seqs = new Float64Array(capacity);
    this.labelled = new Uint8Array(capacity);
  }

  /** Why a tick with this seq may not be pushed ('duplicate', 'out-of-order'), or null when it may. */
  checkTick(seq: number): 'duplicate' | 'out-of-order' | null {
    if (this.count === 0) return null;
    if (seq === this.lastSeq) return 'duplicate';
    return seq < this.lastSeq ? 'out-of-order' : null;
  }

  /** Records a tick (after checkTick said yes); returns its tick index. */
  push(seq: number): number {
    const index = this.count++;
    const slot = index % this.capacity;
    this.seqs[slot] = seq;
    this.labelled[slot] = 0;
    if (index === 0) this.firstSeq = seq;
    this.lastSeq = seq;
    return index;
  }

  /** Tick index of `seq` if its tick is still in the window, else SEQ_UNKNOWN or SEQ_TOO_LATE. */
  locate(seq: number): number {
    if (this.count === 0 || !(seq <= this.lastSeq) || seq < this.firstSeq) return SEQ_UNKNOWN;
    let lo = Math.max(0, this.count - this.capacity);
    let hi = this.count - 1;
    if (seq < this.seqs[lo % this.capacity]) return this.count > this.capacity ? SEQ_TOO_LATE : SEQ_UNKNOWN;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.seqs[mid % this.capacity];
      if (s === seq) return mid;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return SEQ_UNKNOWN;
  }

  slotOf(index: number): number {
    return index % this.capacity;
  }

  /** Ticks between tick `index` and the newest tick (0 for the newest). */
  delayOf(index: number): number {
    return this.count - 1 - index;
  }

  /** Seqs of the ticks in the window that have no label yet, oldest first. */
  unlabelled(): number[] {
    const out: number[] = [];
    for (let i = Math.max(0, this.count - this.capacity); i < this.count; i++) {
      const slot = i % this.capacity;
      if (!this.labelled[slot]) out.push(this.seqs[slot]);
    }
    return out;
  }

  save(w: StateWriter): void {
    w.f64(this.count).f64(this.lastSeq).f64(this.firstSeq).array(this.seqs).array(this.labelled);
  }

  load(r: StateReader): void {
    this.count = r.f64();
    this.lastSeq = r.f64();
    this.firstSeq = r.f64();
    r.arrayInto(this.seqs);
    r.arrayInto(this.labelled);
  }
}

export interface JoinLabelsOptions {
  /** A label may come up to `maxDelay - 1` ticks after its tick (the last `maxDelay` ticks of its stream). */
  readonly maxDelay: number;
  /** Most streams tracked at once; a new stream past it is rejected 'too-many-streams'. Default: no limit. */
  readonly maxStreams?: number;
}

/**
 * Joins late labels to their ticks. Ticks pass through unless their seq is not past the stream's last seq
 * ('duplicate' when equal, 'out-of-order' when smaller). A label frame passes through when its tick is among
 * the last `maxDelay` ticks of its stream and has no label yet; otherwise it becomes a Rejection:
 * 'label-unknown-tick' (a seq never seen: a future seq, a gap, or a stream with no ticks), 'label-too-late' (the
 * tick has left the window; with bounded state a seq older than the window that was never seen is reported the
 * same way), 'label-duplicate' (a second label, including for a tick whose frame carried y). Drift markers and
 * upstream Rejections pass through. State is per subscription and per stream: a ring of `maxDelay` seqs and
 * labelled flags. Malformed messages (no string stream, no finite seq) become 'malformed' Rejections.
 */
export function joinLabels(options: JoinLabelsOptions): OperatorFunction<StreamInput | Rejection, StreamInput | Rejection> {
  const maxDelay = options?.maxDelay;
  if (!Number.isInteger(maxDelay) || maxDelay < 1) {
    throw new RangeError(`joinLabels: maxDelay must be a positive integer, got ${String(maxDelay)}`);
  }
  const maxStreams = options.maxStreams ?? Infinity;
  if (!(maxStreams >= 1)) throw new RangeError(`joinLabels: maxStreams must be >= 1, got ${String(maxStreams)}`);

  return operate<StreamInput | Rejection, StreamInput | Rejection>((subscriber) => {
    const rings = new Map<string, SeqRing>();
    const reject = (reason: RejectionReason, message: string, stream?: string, seq?: number) =>
      subscriber.next(rejection(reason, message, stream, seq));

    const onTick = (tick: TickEvent) => {
      let ring = rings.get(tick.stream);
      if (!ring) {
        if (rings.size >= maxStreams) {
          return reject('too-many-streams', `stream '${tick.stream}' refused: already tracking ${maxStreams} streams`, tick.stream, tick.seq);
        }
        ring = new SeqRing(maxDelay);
        rings.set(tick.stream, ring);
      }
      const problem = ring.checkTick(tick.seq);
      if (problem) {
        return reject(problem, `tick ${tick.seq} of stream '${tick.stream}' is not after the last tick ${ring.lastSeq}`, tick.stream, tick.seq);
      }
      const index = ring.push(tick.seq);
      if (tick.y !== undefined) ring.labelled[ring.slotOf(index)] = 1;
      subscriber.next(tick);
    };

    const onLabel = (label: LabelEvent) => {
      const ring = rings.get(label.stream);
      const index = ring ? ring.locate(label.seq) : SEQ_UNKNOWN;
      if (index === SEQ_UNKNOWN) {
        return reject('label-unknown-tick', `label for tick ${label.seq} of stream '${label.stream}', which was never seen`, label.stream, label.seq);
      }
      if (index === SEQ_TOO_LATE) {
        return reject('label-too-late', `label for tick ${label.seq} of stream '${label.stream}' came more than ${maxDelay - 1} ticks late`, label.stream, label.seq);
      }
      const slot = ring!.slotOf(index);
      if (ring!.labelled[slot]) {
        return reject('label-duplicate', `tick ${label.seq} of stream '${label.stream}' already has a label`, label.stream, label.seq);
      }
      ring!.labelled[slot] = 1;
      subscriber.next(label);
    };

    return {
      next(message) {
        if (message?.kind === 'rejected' || message?.kind === 'drift') return subscriber.next(message);
        if (!isKeyed(message)) return reject('malformed', 'message without a string stream key and a finite seq');
        if (message.kind === 'tick') return onTick(message);
        if (message.kind === 'label') return onLabel(message);
        const other = message as { kind?: unknown; stream: string; seq: number };
        reject('malformed', `unknown message kind '${String(other.kind)}'`, other.stream, other.seq);
      },
      cleanup: () => rings.clear(),
    };
  });
}

/** A message with a string stream and a finite numeric seq. */
export function isKeyed(message: unknown): message is { kind: string; stream: string; seq: number } {
  if (message == null || typeof message !== 'object') return false;
  const m = message as { stream?: unknown; seq?: unknown };
  return typeof m.stream === 'string' && typeof m.seq === 'number' && Number.isFinite(m.seq);
}
