// The worker side of the handoff section (bench/handoff.ts): a thread that owns some streams' stand-in learners
// and answers each event with a prediction, over one of three transports. Like the other bench workers it is
// eval'd plain JavaScript (no loader, starts in tens of ms, where a .ts worker under tsx takes about 300), so this
// module holds its source, the record layout both sides read, and the stand-in learner, which the main thread also
// runs inline for the baseline: one function, so that the work is the same on both sides to the instruction.
import type { MessagePort } from 'node:worker_threads';
import type { FailedReply, LoadedReply } from './worker-replies.js';

/**
 * One event record: stream index u32 at 0, seq f64 at 4, then inputs + outputs f32 (x, then y) at 12, all
 * little-endian. The f32 run starts on a 4-byte boundary in every record (12 + 4k), so both sides read and write
 * it through a Float32Array over the whole buffer rather than one DataView call per float.
 */
export const EVENT_HEADER_BYTES = 12;
export const eventBytes = (inputs: number, outputs: number): number => EVENT_HEADER_BYTES + 4 * (inputs + outputs);
/** One prediction record: stream index u32 at 0, seq f64 at 4, outputs f32 at 12. */
export const predictionBytes = (outputs: number): number => EVENT_HEADER_BYTES + 4 * outputs;
/** A transferred batch: u32 record count, then the records. 4, so that the f32 runs stay 4-byte aligned. */
export const BATCH_HEADER_BYTES = 4;
/**
 * A ring's control words (Int32 indices), each on its own 64-byte line so that the producer's and the consumer's
 * stores do not share a cache line: HEAD (records published, producer), TAIL (records consumed, consumer), SLEEP
 * (1 while the consumer waits, so that the producer calls Atomics.notify only then). Records start at RING_DATA.
 */
export const RING_HEAD = 0;
export const RING_TAIL = 16;
export const RING_SLEEP = 32;
export const RING_DATA_BYTES = 256;

/**
 * The stand-in learner: out[outAt + o] = sum_i w[wAt + o * inputs + i] * x[xAt + i]. Written with no inner
 * functions so that its source (String(predict), after the transpiler) runs as is in the worker.
 */
export function predict(w: Float32Array, wAt: number, x: Float32Array, xAt: number, out: Float32Array, outAt: number, inputs: number, outputs: number): void {
  for (let o = 0; o < outputs; o++) {
    const row = wAt + o * inputs;
    let acc = 0;
    for (let i = 0; i < inputs; i++) acc += w[row + i] * x[xAt + i];
    out[outAt + o] = acc;
  }
}

export interface HandoffWorkerData {
  /** Every stream's weights, outputs x inputs row-major, stream s at s * inputs * outputs. */
  readonly weights: Float32Array;
  /** Stream keys by index, as the per-event messages name them. */
  readonly keys: readonly string[];
  readonly inputs: number;
  readonly outputs: number;
}

export type HandoffCommand =
  | { readonly cmd: 'message' | 'batch' }
  | { readonly cmd: 'ring'; readonly events: SharedArrayBuffer; readonly replies: SharedArrayBuffer; readonly capacity: number }
  | { readonly cmd: 'stop' };

export type HandoffReply =
  | LoadedReply
  | FailedReply
  /** port: the worker's end of a fresh channel for 'message' and 'batch'; tid: its thread id, for /proc. */
  | { readonly kind: 'ready'; readonly tid: number | undefined; readonly port?: MessagePort }
  | { readonly kind: 'stopped' };

/**
 * Commands: 'message' and 'batch' make a MessageChannel and hand one end back in 'ready' (the transfer list is the
 * worker's to give, and the data then stays off the control port); 'ring' serves the two rings until 'stop'.
 *   message: {stream, seq, x, y} in, {stream, seq, yhat} out, one structured clone each way per event;
 *   batch:   a transferred buffer of event records in, a transferred buffer of prediction records out;
 *   ring:    records from the event ring, predictions to the reply ring in the same slots (one prediction per
 *            event, in order, so the reply ring's head is always the event ring's tail).
 */
export const HANDOFF_WORKER_JS = `
const { workerData, parentPort, MessageChannel } = require('node:worker_threads');
const { readlinkSync } = require('node:fs');
const predict = ${String(predict)};
const { weights, keys, inputs, outputs } = workerData;
const EVENT = ${EVENT_HEADER_BYTES} + 4 * (inputs + outputs), PRED = ${EVENT_HEADER_BYTES} + 4 * outputs, BATCH = ${BATCH_HEADER_BYTES};
const HEAD = ${RING_HEAD}, TAIL = ${RING_TAIL}, SLEEP = ${RING_SLEEP}, DATA = ${RING_DATA_BYTES};
const stride = inputs * outputs;
const index = new Map(keys.map((k, s) => [k, s]));
let tid;
try { tid = Number(/task\\/(\\d+)$/.exec(readlinkSync('/proc/thread-self'))[1]); } catch {}
const fail = (e) => parentPort.postMessage({ kind: 'failed', message: String((e && e.stack) || e) });
let port;
let ring;

const yhat = new Float32Array(outputs);
function onEvent(e) {
  predict(weights, index.get(e.stream) * stride, e.x, 0, yhat, 0, inputs, outputs);
  port.postMessage({ stream: e.stream, seq: e.seq, yhat });
}

function records(src, srcF, srcAt, dst, dstF, dstAt, n) {
  for (let i = 0; i < n; i++) {
    const a = srcAt + i * EVENT, b = dstAt + i * PRED;
    const s = src.getUint32(a, true);
    dst.setUint32(b, s, true);
    dst.setFloat64(b + 4, src.getFloat64(a + 4, true), true);
    predict(weights, s * stride, srcF, (a + ${EVENT_HEADER_BYTES}) >> 2, dstF, (b + ${EVENT_HEADER_BYTES}) >> 2, inputs, outputs);
  }
}

function onBatch(buf) {
  const n = new Uint32Array(buf, 0, 1)[0];
  const out = new ArrayBuffer(BATCH + n * PRED);
  new Uint32Array(out, 0, 1)[0] = n;
  records(new DataView(buf), new Float32Array(buf), BATCH, new DataView(out), new Float32Array(out), BATCH, n);
  port.postMessage(out, [out]);
}

// Drains the event ring whenever there is something in it, and otherwise waits on its HEAD with Atomics.waitAsync,
// which leaves this thread's event loop free (for 'stop') where Atomics.wait would block it.
function serveRing(m) {
  const ev = new Int32Array(m.events), rp = new Int32Array(m.replies);
  const evView = new DataView(m.events), evF = new Float32Array(m.events);
  const rpView = new DataView(m.replies), rpF = new Float32Array(m.replies);
  const cap = m.capacity, mask = cap - 1;
  let tail = 0;
  let stopped = false;
  ring = { stop() { stopped = true; Atomics.notify(ev, HEAD); } };
  const step = () => {
    Atomics.store(ev, SLEEP, 0);
    for (;;) {
      if (stopped) return void parentPort.postMessage({ kind: 'stopped' });
      const head = Atomics.load(ev, HEAD);
      if (head !== tail) {
        while (tail !== head) {
          const slot = tail & mask;
          const n = Math.min((head - tail) | 0, cap - slot);
          records(evView, evF, DATA + slot * EVENT, rpView, rpF, DATA + slot * PRED, n);
          tail = (tail + n) | 0;
        }
        // TAIL before the replies' HEAD: once main has a prediction, it may reuse that event's slot.
        Atomics.store(ev, TAIL, tail);
        Atomics.store(rp, HEAD, tail);
        if (Atomics.load(rp, SLEEP) === 1) Atomics.notify(rp, HEAD, 1);
        continue;
      }
      // SLEEP, then HEAD once more: the producer stores HEAD, then reads SLEEP, so one of the two sees the other.
      Atomics.store(ev, SLEEP, 1);
      if (Atomics.load(ev, HEAD) !== tail) { Atomics.store(ev, SLEEP, 0); continue; }
      const w = Atomics.waitAsync(ev, HEAD, tail);
      if (w.async) return void w.value.then(step, fail);
    }
  };
  step();
}

parentPort.on('message', (m) => {
  try {
    if (m.cmd === 'message' || m.cmd === 'batch') {
      const channel = new MessageChannel();
      port = channel.port2;
      port.on('message', m.cmd === 'message' ? onEvent : onBatch);
      parentPort.postMessage({ kind: 'ready', tid, port: channel.port1 }, [channel.port1]);
    } else if (m.cmd === 'ring') {
      serveRing(m);
      parentPort.postMessage({ kind: 'ready', tid });
    } else if (m.cmd === 'stop') {
      if (ring) { const r = ring; ring = undefined; r.stop(); }
      else {
        if (port) port.close();
        port = undefined;
        parentPort.postMessage({ kind: 'stopped' });
      }
    }
  } catch (e) { fail(e); }
});
parentPort.postMessage({ kind: 'loaded' });
`;
