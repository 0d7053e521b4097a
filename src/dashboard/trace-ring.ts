// The dashboard's predicted-against-true points of one stream, kept in preallocated typed arrays: at 50 Hz every
// tick is a kept point, and an object and two arrays per tick were 3-4 % of the service's CPU with their garbage.
import type { TracePoint } from './dashboard-feed.js';

/** The last `capacity` trace points of a stream, for up to `outputs` outputs each. */
export class TraceRing {
  private readonly t: Float64Array;
  /** Predictions and labels, `outputs` slots per point; float32 as the learner's outputs and the frames' labels are. */
  private readonly yhat: Float32Array;
  private readonly y: Float32Array;
  private readonly shown: Uint16Array;
  private readonly heldOut: Uint8Array;
  /** Slots per point: whole outputs, as a fractional `outputs` option shows the whole ones below it. */
  private readonly outputs: number;
  private size = 0;
  private next = 0;

  constructor(private readonly capacity: number, outputs: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`TraceRing: capacity must be a positive integer, got ${String(capacity)}`);
    if (!(outputs >= 1) || !Number.isFinite(outputs)) throw new RangeError(`TraceRing: outputs must be a number >= 1, got ${String(outputs)}`);
    this.outputs = Math.min(Math.floor(outputs), 65535);
    this.t = new Float64Array(capacity);
    this.yhat = new Float32Array(capacity * this.outputs);
    this.y = new Float32Array(capacity * this.outputs);
    this.shown = new Uint16Array(capacity);
    this.heldOut = new Uint8Array(capacity);
  }

  /** Keeps a point: the first min(outputs, yhat.length) outputs. Allocates nothing. */
  push(t: number, yhat: ArrayLike<number>, y: ArrayLike<number>, heldOut: boolean): void {
    const i = this.next;
    const k = Math.min(this.outputs, yhat.length, y.length);
    const base = i * this.outputs;
    for (let j = 0; j < k; j++) {
      this.yhat[base + j] = yhat[j]!;
      this.y[base + j] = y[j]!;
    }
    this.t[i] = t;
    this.shown[i] = k;
    this.heldOut[i] = heldOut ? 1 : 0;
    this.next = (i + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  /** The newest point as the page receives it. */
  newest(): TracePoint {
    return this.pointAt((this.next - 1 + this.capacity) % this.capacity);
  }

  /** Oldest first, as the page receives them. */
  toArray(): TracePoint[] {
    const out: TracePoint[] = [];
    const first = this.size < this.capacity ? 0 : this.next;
    for (let n = 0; n < this.size; n++) out.push(this.pointAt((first + n) % this.capacity));
    return out;
  }

  private pointAt(i: number): TracePoint {
    const base = i * this.outputs;
    const k = this.shown[i]!;
    return { t: this.t[i]!, yhat: Array.from(this.yhat.subarray(base, base + k)), y: Array.from(this.y.subarray(base, base + k)), heldOut: this.heldOut[i] === 1 };
  }
}
