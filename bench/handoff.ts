// Section `handoff`: what it costs the main thread, per event, to hand an event to a worker thread and take its
// prediction back. Issue 18 would have `driftline run` keep the sockets and the routing on the main thread and shard
// the streams by key over worker_threads, each worker owning its streams' learners; these are the figures to choose
// its transport and batch size by, before it is built.
//
// Transports, each with 1 and 2 workers (stream s goes to worker s % workers):
//   (a) message:  one postMessage per event ({stream, seq, x, y}, a structured clone) and one per prediction back;
//   (b) transfer: the events for a worker packed into one ArrayBuffer of records (bench/support/handoff-worker.ts has
//                 the layout), transferred when it holds `batch` events or at the end of the turn (setImmediate); one
//                 transferred buffer of prediction records back per batch;
//   (c) ring:     a SharedArrayBuffer single-producer single-consumer ring of the same records per worker and
//                 direction; the producer publishes its head per `batch` events (or at the end of the turn) and calls
//                 Atomics.notify only when the consumer has said it is waiting; both sides wait with
//                 Atomics.waitAsync, so neither blocks its event loop.
// plus the baseline: the same work inline on the main thread. The worker's work per event (a 2 x 96 dot product
// with the stream's weights, bench/support/handoff-worker.ts's predict) is the same function for every transport and
// for the inline row, so that the differences between rows are the transport's.
//
// Load: closed loop, so that the run is bounded and every row is at its own saturation. The main thread keeps up to
// `window` events in flight (max(2 x batch, MIN_WINDOW_PER_WORKER) per worker: two batches, one being worked on
// while the next is packed) and, whenever the window has room for it, takes a "socket read" of batch x workers events
// (batch 1 for (a)), stamped once on arrival, routes each by its key (a Map lookup, as the server would) and hands
// it off. A round trip is from that stamp to the main thread taking the prediction.
//
// CPU: the main thread's from process.threadCpuUsage() where Node has it (not Node 20: it came in 23.9), else from
// /proc/thread-self/schedstat (the kernel's ns of CPU of this thread), else its event-loop utilisation; the workers'
// from /proc/self/task/<tid>/schedstat, each worker having told its tid. ELU is printed beside CPU as a cross-check.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { MessagePort } from 'node:worker_threads';
import { INPUTS, OUTPUTS, inputPool, int, num, printTable, type BenchOptions, type InputPool, type TargetResult } from './common.js';
import {
  BATCH_HEADER_BYTES, EVENT_HEADER_BYTES, HANDOFF_WORKER_JS, RING_DATA_BYTES, RING_HEAD, RING_SLEEP, RING_TAIL, eventBytes,
  predict, predictionBytes, type HandoffCommand, type HandoffReply, type HandoffWorkerData,
} from './support/handoff-worker.js';
import { WorkerReplies } from './support/worker-replies.js';

const STREAMS = 64;
const KEYS = Array.from({ length: STREAMS }, (_, s) => `s${String(s).padStart(2, '0')}`);
/** The main thread's key -> stream index, the routing table it keeps in the sharded design. */
const ROUTES = new Map(KEYS.map((k, s) => [k, s]));
const STRIDE = INPUTS * OUTPUTS;
const EVENT_BYTES = eventBytes(INPUTS, OUTPUTS);
const PRED_BYTES = predictionBytes(OUTPUTS);
const WORKER_COUNTS = [1, 2] as const;
const BATCHES = [1, 8, 64, 512] as const;
const MIN_WINDOW_PER_WORKER = 64;
/** Events per turn of the inline baseline (its "socket read"). */
const INLINE_TURN = 64;
/** Power-of-two sizes, so that slots are masks: input pool, send stamps (> any window). */
const POOL = 256;
const SENT_SLOTS = 1 << 13;
/**
 * One event in this many has its prediction checked against predict run here, so that a wrong layout or route fails
 * the section. Prime, so that the checked events go round every stream.
 */
const VERIFY_EVERY = 1021;
/** The design load of issue 18, for the conclusion's budget line. */
const DESIGN_RATE = 50_000;
/** Two rows' main-thread costs closer than this (relative) are called a tie in the conclusions. */
const TIE = 0.1;
const STOP_TIMEOUT_MS = 10_000;

interface Plan {
  readonly warmMs: number;
  readonly measureMs: number;
  readonly notes: readonly string[];
}
const FULL: Plan = { warmMs: 150, measureMs: 650, notes: [] };
const QUICK: Plan = {
  warmMs: 40, measureMs: 80,
  notes: ['QUICK mode: 40 ms warm-up and 80 ms measured per row (full: 150 and 650 ms); the figures are only indicative.'],
};

type Kind = 'inline' | 'message' | 'transfer' | 'ring';
interface RowSpec {
  readonly kind: Kind;
  readonly workers: number;
  readonly batch: number;
}
const LABELS: Record<Kind, string> = { inline: 'inline (no worker)', message: '(a) message/event', transfer: '(b) transfer/batch', ring: '(c) SAB ring' };

function rowSpecs(): RowSpec[] {
  const specs: RowSpec[] = [{ kind: 'inline', workers: 0, batch: INLINE_TURN }];
  for (const workers of WORKER_COUNTS) specs.push({ kind: 'message', workers, batch: 1 });
  for (const kind of ['transfer', 'ring'] as const) {
    for (const workers of WORKER_COUNTS) for (const batch of BATCHES) specs.push({ kind, workers, batch });
  }
  return specs;
}

// ES2024's Atomics.waitAsync, which Node 20 has and this project's lib setting (ES2022) does not declare.
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, index: number, value: number): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
}).waitAsync;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- clocks -----------------------------------------------------------------------------------------------------

/** The first field of a schedstat file: ns this thread has run. NaN when there is none (not Linux, no /proc). */
function schedstatNs(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}

const threadCpuUsage = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage;
/** The main thread's CPU in ns, by the best source this Node and OS have (NaN: only ELU is left). */
const MAIN_CPU: { readonly source: string; readonly ns: () => number } =
  threadCpuUsage !== undefined
    ? { source: 'process.threadCpuUsage()', ns: () => { const u = threadCpuUsage.call(process); return (u.user + u.system) * 1000; } }
    : Number.isFinite(schedstatNs('/proc/thread-self/schedstat'))
      ? { source: '/proc/thread-self/schedstat', ns: () => schedstatNs('/proc/thread-self/schedstat') }
      : { source: 'event-loop utilisation (no per-thread CPU clock here)', ns: () => NaN };

/** Round trips in log-spaced bins, 16 a doubling (4.4 % wide) from 1/16 us: a sort of a row's million samples would take longer than the row. */
class Histogram {
  private static readonly PER_DOUBLING = 16;
  private static readonly FLOOR_LOG2_US = -4;
  private readonly counts = new Float64Array(Histogram.PER_DOUBLING * 32);
  n = 0;

  add(ms: number): void {
    const bin = Math.floor((Math.log2(ms * 1000) - Histogram.FLOOR_LOG2_US) * Histogram.PER_DOUBLING);
    // A zero round trip (log2 = -Infinity) goes to the first bin, as does anything below it.
    this.counts[bin > 0 ? Math.min(bin, this.counts.length - 1) : 0]++;
    this.n++;
  }

  /** Nearest-rank quantile, as the middle of its bin, in ms. */
  quantile(q: number): number {
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let b = 0; b < this.counts.length; b++) {
      seen += this.counts[b];
      if (seen >= rank) return 2 ** ((b + 0.5) / Histogram.PER_DOUBLING + Histogram.FLOOR_LOG2_US) / 1000;
    }
    return NaN;
  }
}

// ---- one run: the event source and the predictions' sink, shared by every transport ----------------------------------

interface Transport {
  /** Messages (a), transferred buffers (b) or ring publishes (c) so far, main -> workers. */
  readonly flushes: number;
  start(): void;
  send(worker: number, s: number, key: string, seq: number, x: Float32Array, y: Float32Array): void;
  close(): void;
}

class Run {
  transport!: Transport;
  running = true;
  measuring = false;
  inFlight = 0;
  sent = 0;
  /** Replies the main thread has taken: prediction messages (a), transferred buffers (b), ring drains (c), turns (inline). */
  replies = 0;
  measured = 0;
  mismatches = 0;
  readonly latency = new Histogram();
  private readonly sentAt = new Float64Array(SENT_SLOTS);
  private readonly expected = new Float32Array(OUTPUTS);

  constructor(
    private readonly shards: number, readonly window: number, private readonly chunk: number,
    private readonly pool: InputPool, private readonly weights: Float32Array,
  ) {}

  /** Takes socket reads of `chunk` events while the window has room for one, at most a window's worth per call. */
  refill(): void {
    for (let budget = this.window; budget > 0 && this.running && this.inFlight + this.chunk <= this.window; budget -= this.chunk) {
      const now = performance.now();
      for (let i = 0; i < this.chunk; i++) {
        const g = this.sent++;
        const key = KEYS[g % STREAMS];
        const s = ROUTES.get(key)!;
        this.sentAt[g & (SENT_SLOTS - 1)] = now;
        this.inFlight++;
        this.transport.send(s % this.shards, s, key, (g - s) / STREAMS, this.pool.xs[g & (POOL - 1)], this.pool.ys[g & (POOL - 1)]);
      }
    }
  }

  /** The time a reply is taken at, read once for all the predictions in it. */
  takenAt(): number {
    this.replies++;
    return performance.now();
  }

  /** The main thread takes event (s, seq)'s prediction, yhat[at ..], at `now`. */
  complete(s: number, seq: number, yhat: Float32Array, at: number, now: number): void {
    const g = seq * STREAMS + s;
    this.inFlight--;
    if (this.measuring) {
      this.measured++;
      this.latency.add(now - this.sentAt[g & (SENT_SLOTS - 1)]);
    }
    if (g % VERIFY_EVERY === 0) {
      predict(this.weights, s * STRIDE, this.pool.xs[g & (POOL - 1)], 0, this.expected, 0, INPUTS, OUTPUTS);
      for (let o = 0; o < OUTPUTS; o++) if (yhat[at + o] !== this.expected[o]) this.mismatches++;
    }
  }

  /** n prediction records from `at`. */
  takePredictions(view: DataView, f32: Float32Array, at: number, n: number, now: number): void {
    for (let i = 0; i < n; i++, at += PRED_BYTES) {
      this.complete(view.getUint32(at, true), view.getFloat64(at + 4, true), f32, (at + EVENT_HEADER_BYTES) >> 2, now);
    }
  }
}

function writeEvent(view: DataView, f32: Float32Array, at: number, s: number, seq: number, x: Float32Array, y: Float32Array): void {
  view.setUint32(at, s, true);
  view.setFloat64(at + 4, seq, true);
  const f = (at + EVENT_HEADER_BYTES) >> 2;
  f32.set(x, f);
  f32.set(y, f + INPUTS);
}

// ---- the transports (main-thread side) ------------------------------------------------------------------------------

class Inline implements Transport {
  flushes = 0;
  private readonly streams = new Int32Array(INLINE_TURN);
  private readonly seqs = new Float64Array(INLINE_TURN);
  private readonly outs = new Float32Array(INLINE_TURN * OUTPUTS);
  private n = 0;

  constructor(private readonly run: Run, private readonly weights: Float32Array) {}

  start(): void {
    // One socket read a turn, whose predictions are taken together at its end, on one clock reading, as the other
    // transports take a reply's.
    const turn = () => {
      if (!this.run.running) return;
      this.run.refill();
      const now = this.run.takenAt();
      for (let i = 0; i < this.n; i++) this.run.complete(this.streams[i], this.seqs[i], this.outs, i * OUTPUTS, now);
      this.n = 0;
      setImmediate(turn);
    };
    turn();
  }

  send(_worker: number, s: number, _key: string, seq: number, x: Float32Array): void {
    predict(this.weights, s * STRIDE, x, 0, this.outs, this.n * OUTPUTS, INPUTS, OUTPUTS);
    this.streams[this.n] = s;
    this.seqs[this.n++] = seq;
  }

  close(): void {}
}

class PerEventMessages implements Transport {
  flushes = 0;

  constructor(private readonly run: Run, private readonly ports: readonly MessagePort[]) {
    for (const port of ports) {
      port.on('message', (m: { stream: string; seq: number; yhat: Float32Array }) => {
        run.complete(ROUTES.get(m.stream)!, m.seq, m.yhat, 0, run.takenAt());
        run.refill();
      });
    }
  }

  start(): void {
    this.run.refill();
  }

  send(worker: number, _s: number, key: string, seq: number, x: Float32Array, y: Float32Array): void {
    this.ports[worker].postMessage({ stream: key, seq, x, y });
    this.flushes++;
  }

  close(): void {
    for (const port of this.ports) port.close();
  }
}

/** Queues each worker's events, flushing a worker's batch once it is full and every batch at the end of the turn. */
abstract class Batcher implements Transport {
  flushes = 0;
  private readonly pending: Int32Array;
  private scheduled = false;

  constructor(protected readonly run: Run, protected readonly batch: number, workers: number) {
    this.pending = new Int32Array(workers);
  }

  abstract start(): void;
  abstract close(): void;
  /** Writes the event as the i-th of worker w's batch. */
  protected abstract write(w: number, i: number, s: number, seq: number, x: Float32Array, y: Float32Array): void;
  protected abstract flush(w: number, n: number): void;

  send(w: number, s: number, _key: string, seq: number, x: Float32Array, y: Float32Array): void {
    const i = this.pending[w]++;
    this.write(w, i, s, seq, x, y);
    if (i + 1 >= this.batch) this.flushWorker(w);
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  private flushWorker(w: number): void {
    const n = this.pending[w];
    this.pending[w] = 0;
    this.flushes++;
    this.flush(w, n);
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    for (let w = 0; w < this.pending.length; w++) if (this.pending[w] > 0) this.flushWorker(w);
  };
}

class TransferredBatches extends Batcher {
  private readonly buffers: ArrayBuffer[] = [];
  private readonly views: DataView[] = [];
  private readonly floats: Float32Array[] = [];

  constructor(run: Run, batch: number, private readonly ports: readonly MessagePort[]) {
    super(run, batch, ports.length);
    for (const port of ports) {
      port.on('message', (out: ArrayBuffer) => {
        run.takePredictions(new DataView(out), new Float32Array(out), BATCH_HEADER_BYTES, new Uint32Array(out, 0, 1)[0], run.takenAt());
        run.refill();
      });
    }
  }

  start(): void {
    this.run.refill();
  }

  protected write(w: number, i: number, s: number, seq: number, x: Float32Array, y: Float32Array): void {
    if (i === 0) {
      // A fresh buffer per batch: the last one went to the worker with its transfer.
      const buffer = new ArrayBuffer(BATCH_HEADER_BYTES + this.batch * EVENT_BYTES);
      this.buffers[w] = buffer;
      this.views[w] = new DataView(buffer);
      this.floats[w] = new Float32Array(buffer);
    }
    writeEvent(this.views[w], this.floats[w], BATCH_HEADER_BYTES + i * EVENT_BYTES, s, seq, x, y);
  }

  protected flush(w: number, n: number): void {
    const buffer = this.buffers[w];
    new Uint32Array(buffer, 0, 1)[0] = n;
    this.ports[w].postMessage(buffer, [buffer]);
  }

  close(): void {
    for (const port of this.ports) port.close();
  }
}

interface RingPair {
  readonly events: SharedArrayBuffer;
  readonly replies: SharedArrayBuffer;
  readonly eventControl: Int32Array;
  readonly eventView: DataView;
  readonly eventFloats: Float32Array;
  readonly replyControl: Int32Array;
  readonly replyView: DataView;
  readonly replyFloats: Float32Array;
  /** Events written (main's own count; published to HEAD on flush), predictions taken. */
  head: number;
  tail: number;
}

function ringPair(capacity: number): RingPair {
  const events = new SharedArrayBuffer(RING_DATA_BYTES + capacity * EVENT_BYTES);
  const replies = new SharedArrayBuffer(RING_DATA_BYTES + capacity * PRED_BYTES);
  return {
    events, replies, eventControl: new Int32Array(events), eventView: new DataView(events), eventFloats: new Float32Array(events),
    replyControl: new Int32Array(replies), replyView: new DataView(replies), replyFloats: new Float32Array(replies), head: 0, tail: 0,
  };
}

/**
 * The worker writes event i's prediction into reply slot i, so the reply ring needs no TAIL of its own: the window
 * (<= capacity) means event i + capacity is not made before main has taken prediction i.
 */
class SharedRings extends Batcher {
  private closed = false;
  private readonly watchers: (() => void)[];

  constructor(run: Run, batch: number, private readonly rings: readonly RingPair[], private readonly capacity: number) {
    super(run, batch, rings.length);
    this.watchers = rings.map((_, w) => () => this.watch(w));
  }

  start(): void {
    for (const watch of this.watchers) watch();
    this.run.refill();
  }

  protected write(w: number, _i: number, s: number, seq: number, x: Float32Array, y: Float32Array): void {
    const r = this.rings[w];
    writeEvent(r.eventView, r.eventFloats, RING_DATA_BYTES + (r.head & (this.capacity - 1)) * EVENT_BYTES, s, seq, x, y);
    r.head = (r.head + 1) | 0;
  }

  protected flush(w: number): void {
    const r = this.rings[w];
    if (((r.head - Atomics.load(r.eventControl, RING_TAIL)) | 0) > this.capacity) throw new Error('handoff: event ring overrun (window > capacity)');
    Atomics.store(r.eventControl, RING_HEAD, r.head);
    if (Atomics.load(r.eventControl, RING_SLEEP) === 1) Atomics.notify(r.eventControl, RING_HEAD, 1);
  }

  /** Takes what worker w has replied, one drain a turn (so that timers and the end-of-turn flush run between). */
  private watch(w: number): void {
    if (this.closed) return;
    const r = this.rings[w];
    Atomics.store(r.replyControl, RING_SLEEP, 0);
    const head = Atomics.load(r.replyControl, RING_HEAD);
    if (head !== r.tail) {
      const now = this.run.takenAt();
      while (r.tail !== head) {
        const slot = r.tail & (this.capacity - 1);
        const n = Math.min((head - r.tail) | 0, this.capacity - slot);
        this.run.takePredictions(r.replyView, r.replyFloats, RING_DATA_BYTES + slot * PRED_BYTES, n, now);
        r.tail = (r.tail + n) | 0;
      }
      this.run.refill();
      return void setImmediate(this.watchers[w]);
    }
    // SLEEP, then HEAD once more: the worker stores HEAD, then reads SLEEP, so one of the two sees the other.
    Atomics.store(r.replyControl, RING_SLEEP, 1);
    if (Atomics.load(r.replyControl, RING_HEAD) !== r.tail) return void setImmediate(this.watchers[w]);
    const wait = waitAsync(r.replyControl, RING_HEAD, r.tail);
    if (wait.async) void wait.value.then(this.watchers[w]);
    else setImmediate(this.watchers[w]);
  }

  close(): void {
    this.closed = true;
    // Wakes this thread's own pending waits, so that none is left behind the run.
    for (const r of this.rings) Atomics.notify(r.replyControl, RING_HEAD);
  }
}

// ---- one row ----------------------------------------------------------------------------------------------------------

type Handoff = WorkerReplies<HandoffReply, HandoffCommand>;

interface Row {
  readonly spec: RowSpec;
  readonly window: number;
  readonly meanBatch: number;
  readonly perReply: number;
  readonly rate: number;
  readonly mainUs: number;
  readonly eluUs: number;
  readonly workerUs: number;
  readonly p50: number;
  readonly p99: number;
}

/** Starts the transport's worker side on each of the row's workers; their tids and, for (a) and (b), ports. */
async function openWorkers(workers: readonly Handoff[], command: (w: number) => HandoffCommand): Promise<{ tids: (number | undefined)[]; ports: MessagePort[] }> {
  const replies = await Promise.all(
    workers.map((worker, w) => {
      const ready = worker.expect('ready', STOP_TIMEOUT_MS);
      worker.send(command(w));
      return ready;
    }),
  );
  return { tids: replies.map((r) => r.tid), ports: replies.flatMap((r) => (r.port ? [r.port] : [])) };
}

async function openTransport(spec: RowSpec, run: Run, workers: readonly Handoff[], weights: Float32Array): Promise<{ transport: Transport; tids: (number | undefined)[] }> {
  if (spec.kind === 'inline') return { transport: new Inline(run, weights), tids: [] };
  if (spec.kind === 'ring') {
    let capacity = 1;
    while (capacity < run.window) capacity *= 2;
    const rings = workers.map(() => ringPair(capacity));
    const { tids } = await openWorkers(workers, (w) => ({ cmd: 'ring', events: rings[w].events, replies: rings[w].replies, capacity }));
    return { transport: new SharedRings(run, spec.batch, rings, capacity), tids };
  }
  const { tids, ports } = await openWorkers(workers, () => ({ cmd: spec.kind === 'message' ? 'message' : 'batch' }));
  const transport = spec.kind === 'message' ? new PerEventMessages(run, ports) : new TransferredBatches(run, spec.batch, ports);
  return { transport, tids };
}

interface Sample {
  readonly at: number;
  readonly mainNs: number;
  readonly workerNs: number;
  readonly elu: EventLoopUtilization;
  readonly sent: number;
  readonly flushes: number;
  readonly replies: number;
}

function sample(tids: readonly (number | undefined)[], run: Run): Sample {
  let workerNs = tids.length > 0 ? 0 : NaN;
  for (const tid of tids) workerNs += tid === undefined ? NaN : schedstatNs(`/proc/self/task/${tid}/schedstat`);
  return { at: performance.now(), mainNs: MAIN_CPU.ns(), workerNs, elu: performance.eventLoopUtilization(), sent: run.sent, flushes: run.transport.flushes, replies: run.replies };
}

async function measureRow(spec: RowSpec, plan: Plan, pool: InputPool, weights: Float32Array, allWorkers: readonly Handoff[]): Promise<Row> {
  const workers = allWorkers.slice(0, spec.workers);
  const inline = spec.kind === 'inline';
  const window = inline ? INLINE_TURN : Math.max(2 * spec.batch, MIN_WINDOW_PER_WORKER) * spec.workers;
  const run = new Run(Math.max(1, spec.workers), window, inline ? INLINE_TURN : spec.batch * spec.workers, pool, weights);
  const { transport, tids } = await openTransport(spec, run, workers, weights);
  run.transport = transport;
  let a: Sample;
  let b: Sample;
  try {
    transport.start();
    await sleep(plan.warmMs);
    a = sample(tids, run);
    run.measuring = true;
    await sleep(plan.measureMs);
    run.measuring = false;
    b = sample(tids, run);
    run.running = false;
    const deadline = performance.now() + STOP_TIMEOUT_MS;
    while (run.inFlight > 0) {
      if (performance.now() > deadline) throw new Error(`handoff: ${run.inFlight} events of ${LABELS[spec.kind]} x ${spec.workers} unanswered after ${STOP_TIMEOUT_MS} ms`);
      await sleep(1);
    }
  } finally {
    transport.close();
    await Promise.all(
      workers.map((worker) => {
        const stopped = worker.expect('stopped', STOP_TIMEOUT_MS);
        worker.send({ cmd: 'stop' });
        return stopped;
      }),
    );
  }
  if (run.inFlight !== 0) throw new Error(`handoff: ${-run.inFlight} predictions of ${LABELS[spec.kind]} x ${spec.workers} came twice`);
  if (run.mismatches > 0) throw new Error(`handoff: ${run.mismatches} predictions of ${LABELS[spec.kind]} x ${spec.workers} differ from predict run inline`);
  const n = run.measured;
  const mainNs = b.mainNs - a.mainNs;
  const eluUs = (performance.eventLoopUtilization(b.elu, a.elu).active * 1000) / n;
  return {
    spec, window,
    meanBatch: (b.sent - a.sent) / (b.flushes - a.flushes),
    perReply: n / (b.replies - a.replies),
    rate: (n * 1000) / (b.at - a.at),
    mainUs: Number.isFinite(mainNs) ? mainNs / 1000 / n : eluUs,
    eluUs,
    workerUs: (b.workerNs - a.workerNs) / 1000 / n,
    p50: run.latency.quantile(0.5),
    p99: run.latency.quantile(0.99),
  };
}

// ---- the section --------------------------------------------------------------------------------------------------------

/** Three significant figures (no exponent below 1,000), 'n/a' for what was not measured. */
const fig = (x: number) => (!Number.isFinite(x) ? 'n/a' : x >= 100 ? num(x) : x.toPrecision(3));
const us = (x: number) => `${fig(x)} us`;

function conclusions(rows: readonly Row[]): string[] {
  const find = (kind: Kind, workers: number, batch: number) => rows.find((r) => r.spec.kind === kind && r.spec.workers === workers && r.spec.batch === batch);
  const base = find('message', 1, 1);
  const inline = find('inline', 0, INLINE_TURN);
  if (!base || !inline) return [];
  const at64 = (workers: number) =>
    rows.filter((r) => r.spec.batch === 64 && r.spec.workers === workers && r.spec.kind !== 'inline').sort((x, y) => x.mainUs - y.mainUs);
  const lines: string[] = [];
  for (const workers of WORKER_COUNTS) {
    const [best, next] = at64(workers);
    if (!best) continue;
    // Within TIE of each other, the order is noise on this machine more than a finding.
    const tie = next !== undefined && next.mainUs < best.mainUs * (1 + TIE);
    lines.push(
      `At batch 64 with ${workers} worker${workers > 1 ? 's' : ''}, ${LABELS[best.spec.kind]} costs the main thread least: ${us(best.mainUs)}/event, ` +
        `${fig(best.mainUs / base.mainUs)}x of (a) with 1 worker` +
        (next ? ` (${LABELS[next.spec.kind]}: ${us(next.mainUs)}${tie ? `, within ${TIE * 100} %: no clear winner` : ''}).` : '.'),
    );
  }
  const handoffs = rows.filter((r) => r.spec.kind !== 'inline').sort((x, y) => x.mainUs - y.mainUs);
  const cheapest = handoffs[0];
  lines.push(
    `Cheapest of all: ${LABELS[cheapest.spec.kind]}, ${cheapest.spec.workers} worker${cheapest.spec.workers > 1 ? 's' : ''}, batch ${cheapest.spec.batch}: ` +
      `${us(cheapest.mainUs)}/event on the main thread, against ${us(inline.mainUs)} for doing the stand-in work inline and ${us(base.mainUs)} for (a).`,
  );
  const [best2] = at64(2);
  if (best2) {
    const budget = 1e6 / DESIGN_RATE;
    const cores = os.availableParallelism();
    lines.push(
      `At ${int(DESIGN_RATE)} events/s the main thread has ${fig(budget)} us per event: ${LABELS[best2.spec.kind]} at batch 64 with 2 workers takes ${us(best2.mainUs)}, ` +
        `leaving ${us(budget - best2.mainUs)} for ws receive and publishing; its workers take ${us(best2.workerUs)}/event of the ${fig((cores * 1e6) / DESIGN_RATE)} us of CPU ` +
        `per event that ${cores} cores give.`,
    );
  }
  return lines;
}

/** Runs the section: every (transport, workers, batch) row in this process, one after another, on the same two workers. */
export async function runHandoff(options: BenchOptions): Promise<TargetResult[]> {
  if (os.endianness() !== 'LE') throw new Error('handoff: the records are little-endian and written through typed arrays; this machine is big-endian');
  const plan = options.quick ? QUICK : FULL;
  const pool = inputPool(POOL);
  const weights = new Float32Array(STREAMS * STRIDE);
  for (let i = 0; i < weights.length; i++) weights[i] = (((i * 7919) % 1999) / 1999 - 0.5) * 0.2;
  const data: HandoffWorkerData = { weights, keys: KEYS, inputs: INPUTS, outputs: OUTPUTS };
  const started = performance.now();
  const loadBefore = os.loadavg();

  const workers: Handoff[] = [];
  const rows: Row[] = [];
  try {
    for (let w = 0; w < Math.max(...WORKER_COUNTS); w++) {
      workers.push(await WorkerReplies.start<HandoffReply, HandoffCommand>(`handoff worker ${w}`, HANDOFF_WORKER_JS, data));
    }
    for (const spec of rowSpecs()) rows.push(await measureRow(spec, plan, pool, weights, workers));
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }

  const base = rows.find((r) => r.spec.kind === 'message' && r.spec.workers === 1)!;
  printTable(
    `handoff: main-thread cost per event of handing ${INPUTS} + ${OUTPUTS} floats to a worker and taking ${OUTPUTS} back (closed loop)`,
    ['transport', 'workers', 'batch', 'window', 'ev/send', 'ev/reply', 'events/s', 'main CPU us/ev', 'main ELU us/ev', 'worker CPU us/ev', 'p50 ms', 'p99 ms', 'main / (a) x1'],
    rows.map((r) => {
      const inline = r.spec.kind === 'inline';
      return [
        LABELS[r.spec.kind], inline ? '-' : String(r.spec.workers), inline ? '-' : String(r.spec.batch), int(r.window), inline ? '-' : fig(r.meanBatch),
        fig(r.perReply), int(r.rate), fig(r.mainUs), fig(r.eluUs), fig(r.workerUs), fig(r.p50), fig(r.p99), `${fig(r.mainUs / base.mainUs)}x`,
      ];
    }),
    [
      `Closed loop: up to 'window' events in flight (max(2 x batch, ${MIN_WINDOW_PER_WORKER}) per worker); whenever the window has room, the main thread takes a`,
      `"socket read" of batch x workers events (inline: ${INLINE_TURN} a turn), stamps it once, routes each event by its key and hands it off. events/s is`,
      'then each row\'s saturation rate, and p50 / p99 (stamp -> main thread has the prediction, log bins 4.4 % wide) include the wait',
      'behind the window: latency at saturation, not at a light load. ev/send: events per message, transfer or ring publish to a worker;',
      'ev/reply: events per reply the main thread takes (a message, a transferred buffer, a drain of the reply ring; inline, a turn):',
      'each reply is a wake-up or at least a callback, and its fixed cost is spread over these.',
      `main CPU: this thread's CPU from ${MAIN_CPU.source}${threadCpuUsage === undefined ? ' (process.threadCpuUsage() is not in this Node)' : ''}, over the events`,
      'answered in the measured time; main ELU: performance.eventLoopUtilization() active time over the same events, a cross-check that',
      'counts wall time, so it runs above CPU while this thread waits for a core. Both include the bench\'s own bookkeeping (route lookup,',
      'latency bin and one check in 1,021 per event, a clock reading per socket read and per reply taken, which is per event for (a)),',
      'which the inline row pays too: inline is the floor, the stand-in work done on this thread.',
      'worker CPU: the row\'s workers\' CPU from /proc/self/task/<tid>/schedstat, summed, per event: receive, decode, a 2 x 96 dot',
      `product, the reply. Records: stream u32, seq f64, ${INPUTS} + ${OUTPUTS} f32 (${EVENT_BYTES} B) in, stream, seq, ${OUTPUTS} f32 (${PRED_BYTES} B) back;`,
      '(b) allocates a fresh buffer per batch each way (no pool), (c) rings hold max(window) records, rounded up to a power of two.',
      `${STREAMS} streams round-robin, stream s on worker s % workers. With 2 workers, 3 busy threads share ${os.availableParallelism()} cores (os.availableParallelism()).`,
      `Load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; the section took ${num((performance.now() - started) / 1000, 1)} s.`,
      ...plan.notes,
      ...conclusions(rows),
    ],
    'lrrrrrrrrrrrr',
  );
  return [];
}
