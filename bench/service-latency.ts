// Section `service`: cold-start and steady latency of the real `driftline run` process. The service is spawned
// from source (`node --import tsx src/cli/main.ts run --config <tmp config>`, loopback, ports 0, no checkpoints),
// and the 'driftline ready' JSON line on its stderr gives the ingest, predictions and metrics URLs. At once a
// producer sends binary tick frames (96 inputs, 2 labels; 8 streams round-robin) on a steady 1 kHz open-loop
// schedule for about 10 s, while a subscriber on /predictions takes the time each prediction arrives. This bench
// process is the load generator: the producer is a worker thread (it sleeps between slots, as in bench/ws.ts) and
// the subscriber is the main thread, so send and receipt are read on one clock (process.hrtime).
//
// Two figures, each for the first DEFAULT_COLD_START_SECONDS (3 s) after ready ('cold') and for the rest ('steady'):
//   1. end to end, client side: producer send -> subscriber receipt, exact per event;
//   2. in the service: driftline_event_to_prediction_seconds{phase="cold"|"steady"}, scraped from /metrics after
//      the last prediction came in; its quantiles are histogram bucket bounds, its mean (_sum / _count) is exact.
// And cold p99 / steady p99 of both, from this one run.
//
// Before the service starts, the generator's own code (the worker's send loop, the ws client, the subscriber's
// JSON handling) runs for a while against an in-process echo server, so that the client-side cold figures are
// the service's cold start and not the load generator's.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { BINARY_PREFIX_BYTES, encodeBinaryFrame } from '../src/adapters/websocket/frames.js';
import { DEFAULT_COLD_START_SECONDS } from '../src/metrics/driftline-metrics.js';
import { INPUTS, LEARNING_RATE, OUTPUTS, inputPool, int, num, percentile, printTable, type BenchOptions, type TargetResult } from './common.js';
import { CLOCK_MS_JS, clockMs } from './support/clock.js';
import { PRODUCER_SOCKET_JS, producerSocketData, type ProducerSocketCommand, type ProducerSocketReply } from './support/producer-socket.js';
import { ServerProcess, serviceSpec, writeServiceConfig } from './support/service-process.js';
import { WorkerReplies } from './support/worker-replies.js';

const HIDDEN = 64;
const STREAMS = 8;
/** Events per second over all streams together (each stream gets RATE_HZ / STREAMS). */
const RATE_HZ = 1000;
const PER_STREAM_HZ = RATE_HZ / STREAMS;
const COLD_MS = DEFAULT_COLD_START_SECONDS * 1000;
const POOL = 256;
/** How long before each slot the producer stops sleeping and spins (futex wake-ups run late by tens of us). */
const PACER_SPIN_MS = 0.15;
/** A send more than this behind its slot is counted as late. */
const LATE_MS = 0.5;
const HISTOGRAM = 'driftline_event_to_prediction_seconds';

interface Plan {
  /** Events the service gets: RATE_HZ for this long (the cold phase is the first COLD_MS of it). */
  readonly runMs: number;
  /** Events sent to the in-process echo server first, to warm the load generator's own code. */
  readonly generatorWarmEvents: number;
  /** Longest wait for 'driftline ready'. */
  readonly readyTimeoutMs: number;
}

const FULL: Plan = { runMs: 10_000, generatorWarmEvents: 2_000, readyTimeoutMs: 60_000 };
const QUICK: Plan = { runMs: 4_500, generatorWarmEvents: 500, readyTimeoutMs: 60_000 };

// ---- frames ---------------------------------------------------------------------------------------------------

const streamKey = (s: number) => `bench-${s}`;

/** Binary tick frames, STREAMS x POOL templates (seq and t 0, patched per send); every key has the same length. */
function frameTemplates(): { templates: Uint8Array[]; seqOffset: number; frameBytes: number } {
  const { xs, ys } = inputPool(POOL);
  const templates: Uint8Array[] = [];
  for (let s = 0; s < STREAMS; s++) {
    for (let i = 0; i < POOL; i++) {
      templates.push(encodeBinaryFrame({ kind: 'tick', stream: streamKey(s), seq: 0, t: 0, x: xs[i]!, y: ys[i]! }));
    }
  }
  return { templates, seqOffset: BINARY_PREFIX_BYTES + Buffer.byteLength(streamKey(0)), frameBytes: templates[0]!.byteLength };
}

// ---- the producer (a worker thread of this process) ---------------------------------------------------------

/**
 * The paced producer. Commands: connect(url) -> 'open'; go(total, sentAt) -> 'done' (event g goes to stream
 * g % STREAMS with seq floor(g / STREAMS), at start + g ms, open loop: a send never waits for a prediction);
 * close -> 'closed' with the error replies the service sent. It sleeps (Atomics.wait) until just before each slot
 * and spins the rest, and writes each send time (process.hrtime, ms) into the shared sentAt just before the send.
 * Plain JavaScript (eval), so it needs no loader.
 */
const PRODUCER_JS = `${PRODUCER_SOCKET_JS}
${CLOCK_MS_JS}
const { templates, seqOffset, streams, pool, periodMs, spinMs, perStreamHz, lateMs } = workerData;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
parentPort.on('message', (m) => {
  if (m.cmd === 'go') {
    pace(m.total, new Float64Array(m.sentAt)).catch((e) => parentPort.postMessage({ kind: 'failed', message: String(e && e.stack || e) }));
  } else socketCommand(m);
});
async function pace(total, sentAt) {
  const start = clockMs() + 0.5;
  let maxLag = 0;
  let late = 0;
  let maxBuffered = 0;
  for (let g = 0; g < total; g++) {
    const s = g % streams;
    const seq = (g - s) / streams;
    const frame = Buffer.from(templates[s * pool + (seq % pool)]);
    frame.writeDoubleLE(seq, seqOffset);
    frame.writeDoubleLE(seq / perStreamHz, seqOffset + 8);
    const due = start + g * periodMs;
    const ahead = due - clockMs();
    if (ahead > spinMs) Atomics.wait(sleeper, 0, 0, ahead - spinMs);
    let now = clockMs();
    while (now < due) now = clockMs();
    const lag = now - due;
    if (lag > maxLag) maxLag = lag;
    if (lag > lateMs) late++;
    sentAt[g] = now;
    ws.send(frame);
    if (ws.bufferedAmount > maxBuffered) maxBuffered = ws.bufferedAmount;
    // Lets this thread's event loop flush anything the socket did not take at once.
    if (g % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  parentPort.postMessage({ kind: 'done', start, last: sentAt[total - 1], maxLag, late, maxBuffered });
}
parentPort.postMessage({ kind: 'loaded' });
`;

interface PacedRun {
  readonly start: number;
  readonly last: number;
  readonly maxLag: number;
  readonly late: number;
  readonly maxBuffered: number;
}
type ProducerReply = ProducerSocketReply | ({ readonly kind: 'done' } & PacedRun);
type Producer = WorkerReplies<ProducerReply, ProducerSocketCommand | { cmd: 'go'; total: number; sentAt: SharedArrayBuffer }>;

function startProducer(templates: Uint8Array[], seqOffset: number): Promise<Producer> {
  return WorkerReplies.start('service bench producer', PRODUCER_JS, {
    socket: producerSocketData({ zeroMask: false, closeTimeoutMs: undefined }), templates, seqOffset, streams: STREAMS, pool: POOL,
    periodMs: 1000 / RATE_HZ, spinMs: PACER_SPIN_MS, perStreamHz: PER_STREAM_HZ, lateMs: LATE_MS,
  });
}

// ---- the subscriber (this thread) ------------------------------------------------------------------------------

const STREAM_INDEX = new Map(Array.from({ length: STREAMS }, (_, s) => [streamKey(s), s] as const));

/** Takes the arrival time (clockMs) of each prediction into receivedAt[seq * STREAMS + stream index]. */
class Subscriber {
  received = 0;
  duplicates = 0;
  private lastAt = clockMs();

  private constructor(readonly ws: WebSocket, private readonly receivedAt: Float64Array) {
    ws.on('message', (data, isBinary) => {
      const at = clockMs();
      this.lastAt = at;
      if (isBinary) return;
      const m = JSON.parse(data.toString()) as { type?: string; stream?: string; seq?: number };
      if (m.type !== 'prediction' || typeof m.seq !== 'number' || m.stream === undefined) return;
      const s = STREAM_INDEX.get(m.stream);
      if (s === undefined) return;
      const g = m.seq * STREAMS + s;
      if (g >= receivedAt.length) return;
      if (!Number.isNaN(receivedAt[g]!)) {
        this.duplicates++;
        return;
      }
      receivedAt[g] = at;
      this.received++;
    });
  }

  static connect(url: string, receivedAt: Float64Array): Promise<Subscriber> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once('open', () => resolve(new Subscriber(ws, receivedAt)));
      ws.once('error', reject);
    });
  }

  /** Waits until `count` predictions have arrived, or none has for idleMs. */
  async settle(count: number, idleMs: number): Promise<void> {
    this.lastAt = Math.max(this.lastAt, clockMs());
    while (this.received < count && clockMs() - this.lastAt < idleMs) await new Promise((r) => setTimeout(r, 5));
  }
}

// ---- warming the load generator against an in-process echo server ---------------------------------------------

/**
 * Runs the producer and a subscriber against a ws server in this process that answers every binary frame with a
 * prediction-shaped JSON message of its stream and seq. Nothing of it is measured: it only JIT-compiles the
 * generator's send loop, the ws client code and the subscriber's handler before the service starts.
 */
async function warmGenerator(producer: Producer, seqOffset: number, events: number): Promise<void> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => (wss.once('listening', resolve), wss.once('error', reject)));
  const subscribers = new Set<WebSocket>();
  wss.on('connection', (ws, req) => {
    if (req.url?.startsWith('/predictions')) {
      subscribers.add(ws);
      ws.on('close', () => subscribers.delete(ws));
      return;
    }
    ws.on('message', (data, isBinary) => {
      if (!isBinary) return;
      const b = data as Buffer;
      const stream = b.toString('utf8', BINARY_PREFIX_BYTES, seqOffset);
      const seq = b.readDoubleLE(seqOffset);
      const out = JSON.stringify({ type: 'prediction', stream, seq, t: b.readDoubleLE(seqOffset + 8), yhat: [0.1234567, -0.0123456], version: seq });
      for (const s of subscribers) s.send(out);
    });
  });
  const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
  try {
    const receivedAt = new Float64Array(events).fill(NaN);
    const sub = await Subscriber.connect(`${url}/predictions`, receivedAt);
    const open = producer.expect('open', 10_000);
    producer.send({ cmd: 'connect', url: `${url}/ingest` });
    await open;
    const done = producer.expect('done', events + 30_000);
    producer.send({ cmd: 'go', total: events, sentAt: new SharedArrayBuffer(8 * events) });
    await done;
    await sub.settle(events, 1000);
    const closed = producer.expect('closed', 10_000);
    producer.send({ cmd: 'close' });
    await closed;
    sub.ws.terminate();
  } finally {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }
}

// ---- the histogram from /metrics ------------------------------------------------------------------------------

interface PhaseHistogram {
  /** Upper bounds (seconds; the last is Infinity) and cumulative counts, ascending. */
  readonly buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

function parseLabels(text: string): Map<string, string> {
  const labels = new Map<string, string>();
  for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels.set(m[1]!, m[2]!);
  return labels;
}

/** The phase="cold" and phase="steady" series of the histogram, and the sum of a counter's series. */
function parseExposition(text: string): { phases: Map<string, PhaseHistogram>; counter: (name: string) => number } {
  const phases = new Map<string, PhaseHistogram>();
  const counters = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const [, name, labelText, valueText] = m;
    const value = Number(valueText);
    counters.set(name!, (counters.get(name!) ?? 0) + value);
    if (!name!.startsWith(`${HISTOGRAM}_`)) continue;
    const labels = parseLabels(labelText ?? '');
    const phase = labels.get('phase');
    if (phase === undefined) continue;
    let h = phases.get(phase);
    if (!h) phases.set(phase, (h = { buckets: [], sum: 0, count: 0 }));
    if (name === `${HISTOGRAM}_bucket`) {
      const le = labels.get('le');
      h.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), count: value });
    } else if (name === `${HISTOGRAM}_sum`) h.sum = value;
    else if (name === `${HISTOGRAM}_count`) h.count = value;
  }
  for (const h of phases.values()) h.buckets.sort((a, b) => a.le - b.le);
  return { phases, counter: (name) => counters.get(name) ?? 0 };
}

/** The upper bound (seconds) of the bucket holding the nearest-rank q-quantile; NaN for an empty histogram. */
function bucketQuantile(h: PhaseHistogram | undefined, q: number): number {
  if (!h || h.count === 0) return NaN;
  const rank = Math.max(1, Math.ceil(q * h.count));
  return h.buckets.find((b) => b.count >= rank)?.le ?? Infinity;
}

/** The upper bound (seconds) of the highest non-empty bucket. */
function bucketMax(h: PhaseHistogram | undefined): number {
  if (!h || h.count === 0) return NaN;
  let prev = 0;
  let top = NaN;
  for (const b of h.buckets) {
    if (b.count > prev) top = b.le;
    prev = b.count;
  }
  return top;
}

// ---- the section ----------------------------------------------------------------------------------------------

const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
/** A bucket bound in seconds as 'le X ms' (the value is at most X and above the bound before it). */
const bound = (s: number) => (Number.isNaN(s) ? 'n/a' : s === Infinity ? `> ${ms(2500)}` : `<= ${ms(s * 1000)}`);
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${num(a / b, 2)}x` : 'n/a');

function stats(samples: Float64Array): { n: number; p50: number; p99: number; max: number; mean: number } {
  let max = -Infinity;
  let sum = 0;
  for (const v of samples) {
    if (v > max) max = v;
    sum += v;
  }
  const n = samples.length;
  return { n, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), max: n > 0 ? max : NaN, mean: n > 0 ? sum / n : NaN };
}

/** Runs the section: the real service, cold and steady latency, client side and from its own histogram. */
export async function runServiceLatency(options: BenchOptions): Promise<TargetResult[]> {
  const plan = options.quick ? QUICK : FULL;
  const total = Math.round((plan.runMs * RATE_HZ) / 1000);
  const { templates, seqOffset, frameBytes } = frameTemplates();

  const dir = mkdtempSync(path.join(os.tmpdir(), 'driftline-bench-service-'));
  const configFile = writeServiceConfig(dir, { maxStreams: STREAMS, hiddenSize: HIDDEN });

  const producer = await startProducer(templates, seqOffset);
  let service: ServerProcess | undefined;
  let sub: Subscriber | undefined;
  try {
    await warmGenerator(producer, seqOffset, plan.generatorWarmEvents);

    const sentBuffer = new SharedArrayBuffer(8 * total);
    const sentAt = new Float64Array(sentBuffer).fill(NaN);
    const receivedAt = new Float64Array(total).fill(NaN);
    const spawnedAt = clockMs();
    service = ServerProcess.spawn(serviceSpec('driftline run', configFile, 15_000));
    const { urls, at: readyAt } = await service.ready(plan.readyTimeoutMs);
    // Right at ready: the producer connects to ingest and the subscriber to predictions, side by side; the first
    // frame goes out once both are open (a prediction published before the subscriber is there would be lost).
    const open = producer.expect('open', 10_000);
    producer.send({ cmd: 'connect', url: urls.ingest });
    [sub] = await Promise.all([Subscriber.connect(`${urls.predictions}?type=prediction`, receivedAt), open]);
    const done = producer.expect('done', plan.runMs + 60_000);
    producer.send({ cmd: 'go', total, sentAt: sentBuffer });
    const paced = await done;
    await sub.settle(total, 3000);
    const settledAt = clockMs();

    if (urls.metrics === undefined) throw new Error(`'driftline ready' gave no metrics URL`);
    const response = await fetch(urls.metrics);
    if (!response.ok) throw new Error(`GET ${urls.metrics}: ${response.status} ${response.statusText}`);
    const exposition = parseExposition(await response.text());
    const closed = producer.expect('closed', 10_000);
    producer.send({ cmd: 'close' });
    const { errorReplies, firstError } = await closed;
    sub.ws.terminate();
    const exitCode = await service.stop();

    // ---- figures ----
    const cold: number[] = [];
    const steady: number[] = [];
    // The same, from each event's slot on the schedule instead of its actual send: what a source that cannot wait would see.
    const coldFromSlot: number[] = [];
    const steadyFromSlot: number[] = [];
    const periodMs = 1000 / RATE_HZ;
    let missing = 0;
    for (let g = 0; g < total; g++) {
      const r = receivedAt[g]!;
      if (Number.isNaN(r)) {
        missing++;
        continue;
      }
      const isCold = sentAt[g]! - readyAt < COLD_MS;
      (isCold ? cold : steady).push(r - sentAt[g]!);
      (isCold ? coldFromSlot : steadyFromSlot).push(r - (paced.start + g * periodMs));
    }
    const client = { cold: stats(Float64Array.from(cold)), steady: stats(Float64Array.from(steady)) };
    const fromSlot = { cold: stats(Float64Array.from(coldFromSlot)), steady: stats(Float64Array.from(steadyFromSlot)) };
    const loadAfter = os.loadavg();
    const hCold = exposition.phases.get('cold');
    const hSteady = exposition.phases.get('steady');
    const server = [hCold, hSteady].map((h) => ({
      n: h?.count ?? 0, p50: bucketQuantile(h, 0.5), p99: bucketQuantile(h, 0.99), max: bucketMax(h),
      mean: h && h.count > 0 ? h.sum / h.count : NaN,
    }));
    const [sCold, sSteady] = server as [(typeof server)[0], (typeof server)[0]];
    const firstSendAfterReady = sentAt[0]! - readyAt;
    const endAfterReady = paced.last - readyAt;
    const achievedHz = (total - 1) / ((paced.last - paced.start) / 1000);
    const window = (phase: 'cold' | 'steady') =>
      phase === 'cold' ? `${num(firstSendAfterReady / 1000, 3)}-${num(COLD_MS / 1000, 1)} s` : `${num(COLD_MS / 1000, 1)}-${num(endAfterReady / 1000, 1)} s`;
    const rejected = exposition.counter('driftline_events_rejected_total');
    const dropped = exposition.counter('driftline_subscriber_messages_dropped_total');
    const accepted = service.stopLine?.accepted;

    printTable(
      `service: driftline run, cold start vs steady at ${int(RATE_HZ)} Hz (${STREAMS} streams), tanh RNN n = ${HIDDEN}, ${INPUTS} inputs, ${OUTPUTS} outputs, binary frames`,
      ['figure', 'phase', 'after ready', 'events', 'p50 ms', 'p99 ms', 'max ms', 'mean ms'],
      [
        ...(['cold', 'steady'] as const).map((p) => {
          const c = client[p];
          return ['end-to-end (client)', p, window(p), int(c.n), ms(c.p50), ms(c.p99), ms(c.max), ms(c.mean)];
        }),
        ...([['cold', sCold], ['steady', sSteady]] as const).map(([p, s]) => [
          'in-server (/metrics buckets)', p, p === 'cold' ? `0-${num(COLD_MS / 1000, 1)} s` : `from ${num(COLD_MS / 1000, 1)} s`, int(s.n),
          bound(s.p50), bound(s.p99), bound(s.max), ms(s.mean * 1000),
        ]),
        ['end-to-end cold p99 / steady p99', '', '', '', '', ratio(client.cold.p99, client.steady.p99), '', ''],
        ['in-server cold p99 / steady p99', '', '', '', '', `${ratio(sCold.p99, sSteady.p99)} (bounds)`, '', ''],
      ],
      [
        `The service: \`node --import tsx src/cli/main.ts run --config <tmp>\` from source (loopback, ports 0, no checkpoints; Page-Hinkley,`,
        `prequential reports and recovery tracking at their defaults; RMSprop lr ${LEARNING_RATE}, immediate credit), spawned fresh for this run;`,
        `'driftline ready' came ${num((readyAt - spawnedAt) / 1000, 2)} s after the spawn (the service warms its kernels before it says so).`,
        `Load: ${int(total)} tick frames (${frameBytes} bytes, labels included) to ${STREAMS} streams round-robin (${num(PER_STREAM_HZ, 0)} Hz each), on an`,
        `open-loop ${int(RATE_HZ)} Hz schedule from the moment the ready line was read (a send never waits for a prediction, so a service that`,
        `falls behind queues frames and its queueing shows in the figures). Producer and subscriber connected and the first frame went out`,
        `${ms(firstSendAfterReady)} ms after the ready line was read; the last ${num(endAfterReady / 1000, 2)} s after it. Achieved ${num(achievedHz)} Hz; largest send`,
        `lag behind the schedule ${ms(paced.maxLag)} ms, ${int(paced.late)} sends more than ${LATE_MS} ms late; peak producer bufferedAmount ${int(paced.maxBuffered)} B.`,
        `Timed from each event's slot on the schedule instead of its actual send (what a source that cannot wait would see), end-to-end p99 is`,
        `${ms(fromSlot.cold.p99)} ms cold, ${ms(fromSlot.steady.p99)} ms steady (max ${ms(fromSlot.cold.max)} / ${ms(fromSlot.steady.max)} ms).`,
        'end-to-end (client): from just before the producer\'s ws.send (a worker thread of the bench process) to the subscriber\'s message',
        'event (its main thread), both on process.hrtime of the bench process: ws framing and masking, loopback TCP twice, the service\'s',
        'decode, pipeline (predict, score, learn, prequential, drift, recovery, metrics), JSON encode and send, and the subscriber\'s read.',
        `Exact per event. Phase by send time: cold = sent less than ${DEFAULT_COLD_START_SECONDS} s after this process read the ready line.`,
        `in-server: ${HISTOGRAM}{phase} scraped from /metrics once the last prediction was in: from the ingest socket's`,
        'message event (receivedAt) to the moment the prediction is handed to the subscribers\' sockets, on the service\'s clock. Phase by',
        `the service's own clock: cold = sent less than ${DEFAULT_COLD_START_SECONDS} s after markStarted(), just before it logs ready. It leaves out the kernel and ws`,
        'time before the message event and everything after the send. p50 / p99 / max are BUCKET BOUNDS, not measured values: "<= X" means',
        'the nearest-rank quantile lies in the bucket (previous bound, X] (bounds 0.1, 0.25, 0.5, 1, 2.5, 5, 10, ... ms); mean = _sum / _count is exact.',
        'The two phase boundaries are on different clocks: they differ by the time from markStarted() to this process reading the ready line',
        '(a few ms), so the two cold counts may differ by a few events. Ratios: end-to-end exact, from this run; in-server a ratio of',
        'bucket bounds, so coarse (1.00x = the same bucket).',
        `Events: subscriber got ${int(total - missing)} / ${int(total)} predictions (${int(sub.duplicates)} duplicates); the histogram counted ${int(sCold.n + sSteady.n)};` +
          ` the service accepted ${accepted === undefined ? 'n/a' : int(Number(accepted))}; driftline_events_rejected_total ${int(rejected)}, error replies to the producer ${int(errorReplies)}` +
          `${firstError ? ` (first: ${firstError})` : ''}; driftline_subscriber_messages_dropped_total ${int(dropped)}.`,
        `Service exit code after SIGTERM: ${exitCode}; log lines at warn or above: ${service.warnings}${service.firstWarning ? ` (first: ${service.firstWarning})` : ''}.` +
          ` All predictions were in ${ms(settledAt - paced.last)} ms after the last send.`,
        `The load generator's own code ran ${int(plan.generatorWarmEvents)} events against an in-process echo server first, so the cold client figures are`,
        `the service's cold start and not the generator's. ${os.availableParallelism()} cores available: the service process and the bench process`,
        `(producer thread + subscriber) share them; load average at the end of the run ${loadAfter.map((l) => l.toFixed(2)).join(' ')}.`,
        ...(options.quick ? [`QUICK mode: ${num(plan.runMs / 1000, 1)} s of load instead of ${num(FULL.runMs / 1000, 0)} s; the steady figures rest on few events.`] : []),
      ],
      'lllrrrrr',
    );
  } catch (err) {
    if (service) process.stderr.write(`--- driftline run stderr (last lines) ---\n${service.logTail}\n---\n`);
    throw err;
  } finally {
    sub?.ws.terminate();
    await service?.stop();
    await producer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return [];
}
