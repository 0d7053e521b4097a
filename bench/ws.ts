// Section `ws`: the WebSocket edge on its real path. A driftline server (startWebSocketServer on 127.0.0.1, port 0)
// feeds `server.inputs` through the pipeline `driftline run` builds from its config (tanh RNN n = 64, 96 inputs,
// 2 outputs, immediate credit, RMSprop, labels in the frame; prequential reports, Page-Hinkley on the error,
// recovery tracking, DriftlineMetrics observing everything) and publishes every output with server.publish. Producers and subscribers
// run in a separate load-generator process (this same file, started with LOAD_GENERATOR_FLAG) so that the
// server's process has its core to itself and its RSS holds only the server. Three measurements:
//   1. throughput: a producer sends flat out (binary frames, then JSON frames), a subscriber reads everything;
//   2. latency at a steady 1 kHz: in the server (Prediction.predictedAt - receivedAt, one clock) and end to end
//      (producer send -> subscriber receive, both in the load generator, one clock; the paced producer is a
//      worker thread there that sleeps between slots, so it does not take the server's core);
//   3. a subscriber that never reads, beside one that does: RSS across the run and the counted drops.
// index.ts runs this section in a fresh `node --expose-gc` process, so RSS samples can follow a full GC.
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Subject, type Subscription } from 'rxjs';
import { WebSocket } from 'ws';
import { BINARY_PREFIX_BYTES, encodeBinaryFrame, encodeJsonFrame, encodeOutbound } from '../src/adapters/websocket/frames.js';
import { startWebSocketServer, type DriftlineWebSocketServer } from '../src/adapters/websocket/server.js';
import { wasmKernelsAvailable, wasmKernelsError } from '../src/learners/kernels/wasm-kernels.js';
import { parseConfig } from '../src/cli/config.js';
import { pipelineOptionsOf } from '../src/cli/run.js';
import { DriftlineMetrics } from '../src/metrics/driftline-metrics.js';
import { createMetricsRegistry } from '../src/metrics/registry.js';
import type { Prediction, StreamInput } from '../src/streams/messages.js';
import { createPipeline } from '../src/streams/pipeline.js';
import {
  INPUTS, LEARNING_RATE, OUTPUTS, bytes, inputPool, int, num, passFail, percentile, printTable,
  type BenchOptions, type TargetResult,
} from './common.js';

const HIDDEN = 64;
const STREAM = 'bench-0';
const THROUGHPUT_TARGET = 20_000;
const LATENCY_TARGET_MS = 2;
const RATE_HZ = 1000;
const RSS_GROWTH_TARGET_PCT = 2;
/** The server's default per-subscriber cap, passed explicitly so the notes can name it. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** The never-reading subscriber cannot answer pings; the heartbeat would otherwise terminate it mid-run. */
const HEARTBEAT_MS = 10 * 60_000;
/** RSS is sampled (without GC) every this many predictions in the never-reading-subscriber run. */
const RSS_SAMPLE_EVERY = 1000;
/** The flag that makes this file, run as a script, the load generator. */
export const LOAD_GENERATOR_FLAG = '--ws-load-generator';

interface Plan {
  readonly throughputWarm: number;
  readonly throughputCount: number;
  readonly latencyWarm: number;
  readonly latencyCount: number;
  readonly slowTotal: number;
  /**
   * Warm-up of the never-reading-subscriber run: it ends this many predictions after the first drop (when the
   * kernel's and the server's buffers for that subscriber are full), or at 3/4 of slowTotal if none comes by then.
   */
  readonly slowWarm: number;
  /** Longest a phase may take before it is reported as failed. */
  readonly phaseTimeoutMs: number;
}

const FULL: Plan = {
  throughputWarm: 20_000, throughputCount: 100_000, latencyWarm: 1_000, latencyCount: 10_000,
  slowTotal: 100_000, slowWarm: 10_000, phaseTimeoutMs: 120_000,
};
const QUICK: Plan = {
  throughputWarm: 2_000, throughputCount: 5_000, latencyWarm: 200, latencyCount: 1_000,
  slowTotal: 60_000, slowWarm: 10_000, phaseTimeoutMs: 30_000,
};

// ---- the protocol between the server process and the load generator ---------------------------------------

/** What the server process asks the load generator to do. Each command gets one reply. */
type LoadCommand =
  | { readonly cmd: 'throughput'; readonly url: string; readonly binary: boolean; readonly warm: number; readonly count: number }
  | { readonly cmd: 'latency'; readonly url: string; readonly warm: number; readonly count: number; readonly rateHz: number }
  | { readonly cmd: 'slow-start'; readonly url: string; readonly total: number }
  | { readonly cmd: 'slow-drain' };

interface ThroughputReply {
  readonly kind: 'throughput';
  readonly frameBytes: number;
  /** Producer send of the first timed event -> subscriber receipt of the last one, on the generator's clock. */
  readonly endToEndMs: number;
  readonly received: number;
}
interface LatencyReply {
  readonly kind: 'latency';
  /** Producer send -> subscriber receipt per timed event, ms; null (NaN through IPC's JSON) where none came. */
  readonly endToEndMs: (number | null)[];
  readonly received: number;
  readonly achievedHz: number;
  /** The largest delay of a send behind its 1 kHz schedule, ms. */
  readonly maxPacingLagMs: number;
}
interface SlowStartReply {
  readonly kind: 'slow-start';
  readonly fastReceived: number;
}
interface SlowDrainReply {
  readonly kind: 'slow-drain';
  readonly slowReceived: number;
  readonly fastReceived: number;
}
type LoadReply =
  | { readonly kind: 'ready' }
  | { readonly kind: 'failed'; readonly message: string }
  | ThroughputReply
  | LatencyReply
  | SlowStartReply
  | SlowDrainReply;

// ---- the server side ----------------------------------------------------------------------------------------

/** The load-generator process and a one-command-at-a-time request channel to it. */
class LoadGenerator {
  private pending: { resolve: (r: LoadReply) => void; reject: (e: Error) => void } | undefined;
  private exited: Error | undefined;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: LoadReply) => {
      const p = this.pending;
      this.pending = undefined;
      if (m.kind === 'failed') p?.reject(new Error(`ws load generator: ${m.message}`));
      else p?.resolve(m);
    });
    child.on('exit', (code, signal) => {
      this.exited = new Error(`ws load generator exited (${signal ?? code})`);
      this.pending?.reject(this.exited);
      this.pending = undefined;
    });
  }

  /** Starts this file as the load generator, with the same loader flags, and waits until it is ready. */
  static async start(): Promise<LoadGenerator> {
    const self = fileURLToPath(import.meta.url);
    const execArgv = process.execArgv.filter((a) => a !== '--expose-gc');
    const child = spawn(process.execPath, [...execArgv, self, LOAD_GENERATOR_FLAG], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const generator = new LoadGenerator(child);
    const first = await generator.next(30_000);
    if (first.kind !== 'ready') throw new Error(`ws load generator: expected 'ready', got '${first.kind}'`);
    return generator;
  }

  private next(timeoutMs: number): Promise<LoadReply> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise<LoadReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        reject(new Error(`ws load generator: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending = {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }

  async request<K extends LoadReply['kind']>(command: LoadCommand, kind: K, timeoutMs: number): Promise<Extract<LoadReply, { kind: K }>> {
    const reply = this.next(timeoutMs);
    this.child.send(command);
    const r = await reply;
    if (r.kind !== kind) throw new Error(`ws load generator: expected '${kind}', got '${r.kind}'`);
    return r as Extract<LoadReply, { kind: K }>;
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
  }
}

/** A fresh server with the pipeline under test. */
interface BenchServer {
  readonly server: DriftlineWebSocketServer;
  /** Rejections out of the pipeline (none are expected: every frame the bench sends is valid). */
  rejected: number;
  /** Set when the pipeline errored (a programming error); the waits below then stop. */
  failure: Error | undefined;
  /** Predictions published (server.stats.published also counts the other outputs). */
  predictionsPublished: number;
  close(): Promise<void>;
}

/**
 * Starts a server and the pipeline `driftline run` builds from its config (normalization off, prequential reports,
 * Page-Hinkley on the error, recovery tracking, DriftlineMetrics observing every output), and publishes every output
 * as the service does; the bench's subscribers ask for predictions only (`?type=prediction`). `onPrediction` runs
 * after each Prediction is published.
 */
async function startBenchServer(onPrediction: (p: Prediction, server: DriftlineWebSocketServer) => void): Promise<BenchServer> {
  const shape = { inputSize: INPUTS, outputSize: OUTPUTS };
  const server = await startWebSocketServer({
    host: '127.0.0.1', port: 0, shapes: (s) => (s === STREAM ? shape : undefined),
    maxBufferedBytes: MAX_BUFFERED_BYTES, heartbeatMs: HEARTBEAT_MS,
  });
  const config = parseConfig(
    {
      streams: { inputSize: INPUTS, outputSize: OUTPUTS, maxStreams: 1 },
      learner: { cell: { kind: 'tanh-rnn', hiddenSize: HIDDEN }, credit: { rule: 'immediate', lambda: 0 }, optimizer: { name: 'rmsprop', lr: LEARNING_RATE } },
      sources: { websocket: { port: 0 } },
    },
    'the ws bench config',
  );
  const metrics = new DriftlineMetrics(createMetricsRegistry());
  const pipeline = createPipeline({ ...pipelineOptionsOf(config), onTickDuration: (seconds) => metrics.recordTickDuration(seconds) });
  const bench: BenchServer = {
    server,
    rejected: 0,
    failure: undefined,
    predictionsPublished: 0,
    close: async () => {
      subscription.unsubscribe();
      await server.close();
    },
  };
  const feed = new Subject<StreamInput>();
  const inputs = server.inputs.subscribe((input) => {
    metrics.recordEvent(input.stream, 'websocket');
    feed.next(input);
  });
  const piped: Subscription = feed.pipe(pipeline.operator).subscribe({
    next: (out) => {
      metrics.observe(out);
      if (out.kind === 'rejected') bench.rejected++;
      server.publish(out);
      if (out.kind === 'prediction') {
        bench.predictionsPublished++;
        onPrediction(out, server);
      }
    },
    error: (err: unknown) => {
      bench.failure = err instanceof Error ? err : new Error(String(err));
    },
  });
  const subscription = { unsubscribe: () => { inputs.unsubscribe(); piped.unsubscribe(); } };
  return bench;
}

/** Resolves when `done()` is true, polled; rejects after timeoutMs or when the pipeline has failed. */
async function until(bench: BenchServer, done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!done()) {
    if (bench.failure) throw new Error(`the ws bench pipeline failed: ${bench.failure.message}`);
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface ThroughputResult {
  readonly frames: 'binary' | 'json';
  readonly frameBytes: number;
  readonly count: number;
  readonly serverMs: number;
  readonly serverRate: number;
  /** Server process CPU time (all threads) over wall time in the timed window. */
  readonly cpuShare: number;
  readonly endToEndRate: number;
  readonly received: number;
  readonly total: number;
  readonly dropped: number;
  readonly rejected: number;
}

async function measureThroughput(gen: LoadGenerator, binary: boolean, plan: Plan): Promise<ThroughputResult> {
  const first = plan.throughputWarm;
  const last = plan.throughputWarm + plan.throughputCount - 1;
  let startAt = NaN;
  let endAt = NaN;
  let cpuStart: NodeJS.CpuUsage | undefined;
  let cpuUsed: NodeJS.CpuUsage | undefined;
  const bench = await startBenchServer((p) => {
    if (p.seq === first) {
      startAt = p.receivedAt ?? p.predictedAt;
      cpuStart = process.cpuUsage();
    } else if (p.seq === last) {
      endAt = performance.now();
      cpuUsed = process.cpuUsage(cpuStart);
    }
  });
  try {
    const reply = await gen.request(
      { cmd: 'throughput', url: bench.server.address.url, binary, warm: plan.throughputWarm, count: plan.throughputCount },
      'throughput', plan.phaseTimeoutMs,
    );
    await until(bench, () => !Number.isNaN(endAt), plan.phaseTimeoutMs, 'the last prediction');
    const serverMs = endAt - startAt;
    const cpuMs = cpuUsed ? (cpuUsed.user + cpuUsed.system) / 1000 : NaN;
    return {
      frames: binary ? 'binary' : 'json', frameBytes: reply.frameBytes, count: plan.throughputCount, serverMs,
      serverRate: plan.throughputCount / (serverMs / 1000), cpuShare: cpuMs / serverMs,
      endToEndRate: plan.throughputCount / (reply.endToEndMs / 1000), received: reply.received,
      total: plan.throughputWarm + plan.throughputCount, dropped: bench.server.stats.droppedForSlowSubscribers,
      rejected: bench.rejected,
    };
  } finally {
    await bench.close();
  }
}

interface LatencyResult {
  readonly inServerMs: Float64Array;
  readonly endToEndMs: Float64Array;
  readonly received: number;
  readonly achievedHz: number;
  readonly maxPacingLagMs: number;
  readonly dropped: number;
  readonly rejected: number;
}

async function measureLatency(gen: LoadGenerator, plan: Plan): Promise<LatencyResult> {
  const warm = plan.latencyWarm;
  const inServer = new Float64Array(plan.latencyCount).fill(NaN);
  let seen = 0;
  const bench = await startBenchServer((p) => {
    seen++;
    if (p.seq >= warm && p.receivedAt !== undefined) inServer[p.seq - warm] = p.predictedAt - p.receivedAt;
  });
  try {
    const reply = await gen.request(
      { cmd: 'latency', url: bench.server.address.url, warm, count: plan.latencyCount, rateHz: RATE_HZ },
      'latency', plan.phaseTimeoutMs,
    );
    await until(bench, () => seen === warm + plan.latencyCount, plan.phaseTimeoutMs, 'every prediction');
    return {
      inServerMs: inServer.filter((v) => !Number.isNaN(v)),
      endToEndMs: Float64Array.from(reply.endToEndMs.filter((v): v is number => v !== null && !Number.isNaN(v))),
      received: reply.received, achievedHz: reply.achievedHz, maxPacingLagMs: reply.maxPacingLagMs,
      dropped: bench.server.stats.droppedForSlowSubscribers, rejected: bench.rejected,
    };
  } finally {
    await bench.close();
  }
}

interface SlowResult {
  readonly total: number;
  /** The prediction at which warm-up ended (see Plan.slowWarm). */
  readonly warm: number;
  /** Raw RSS every RSS_SAMPLE_EVERY predictions. */
  readonly rss: Float64Array;
  /** RSS after a full GC, at prediction `warm` and after the last one (NaN without global.gc). */
  readonly rssWarmGc: number;
  readonly rssEndGc: number;
  /** heapUsed at the same two points. */
  readonly heapWarmGc: number;
  readonly heapEndGc: number;
  readonly gcAvailable: boolean;
  readonly published: number;
  readonly dropped: number;
  readonly firstDropAt: number;
  readonly peakBuffered: number;
  readonly slowReceived: number;
  readonly fastReceived: number;
  readonly messageBytes: number;
  readonly rejected: number;
  readonly wallMs: number;
}

/** RSS after a full collection (twice: the first pass may only promote), or NaN without global.gc. */
function rssAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return NaN;
  gc();
  gc();
  return process.memoryUsage.rss();
}

async function measureSlowSubscriber(gen: LoadGenerator, plan: Plan): Promise<SlowResult> {
  const total = plan.slowTotal;
  const rss = new Float64Array(Math.floor(total / RSS_SAMPLE_EVERY));
  let seen = 0;
  let firstDropAt = -1;
  let rssWarmGc = NaN;
  let warmEnd = -1;
  let heapWarmGc = NaN;
  let startAt = NaN;
  const bench = await startBenchServer((p, server) => {
    seen++;
    if (seen === 1) startAt = performance.now();
    if (firstDropAt < 0 && server.stats.droppedForSlowSubscribers > 0) firstDropAt = p.seq;
    if (seen % RSS_SAMPLE_EVERY === 0) rss[seen / RSS_SAMPLE_EVERY - 1] = process.memoryUsage.rss();
    if (warmEnd < 0 && ((firstDropAt >= 0 && p.seq >= firstDropAt + plan.slowWarm) || seen >= 0.75 * total)) {
      warmEnd = seen;
      rssWarmGc = rssAfterGc();
      heapWarmGc = process.memoryUsage().heapUsed;
    }
  });
  const server = bench.server;
  try {
    await gen.request({ cmd: 'slow-start', url: server.address.url, total }, 'slow-start', plan.phaseTimeoutMs);
    await until(bench, () => seen === total, plan.phaseTimeoutMs, 'every prediction');
    const wallMs = performance.now() - startAt;
    const rssEndGc = rssAfterGc();
    const heapEndGc = process.memoryUsage().heapUsed;
    // Counted before the drain: once the slow subscriber reads again, nothing more is published.
    const dropped = server.stats.droppedForSlowSubscribers;
    const published = bench.predictionsPublished;
    const peakBuffered = server.stats.peakSubscriberBufferedBytes;
    const drained = await gen.request({ cmd: 'slow-drain' }, 'slow-drain', plan.phaseTimeoutMs);
    const messageBytes = Buffer.byteLength(
      encodeOutbound({ kind: 'prediction', stream: STREAM, seq: total - 1, t: (total - 1) / RATE_HZ, yhat: new Float32Array([0.123456789, -0.0123456789]), version: total - 1, predictedAt: 0 }),
    );
    return {
      total, warm: warmEnd, rss, rssWarmGc, rssEndGc, heapWarmGc, heapEndGc, gcAvailable: !Number.isNaN(rssEndGc), published, dropped,
      firstDropAt, peakBuffered, slowReceived: drained.slowReceived, fastReceived: drained.fastReceived, messageBytes,
      rejected: bench.rejected, wallMs,
    };
  } finally {
    await bench.close();
  }
}

const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');

/** Runs the section: throughput (binary, JSON), latency at 1 kHz, the never-reading subscriber. */
export async function runWs(options: BenchOptions): Promise<TargetResult[]> {
  const plan = options.quick ? QUICK : FULL;
  const cores = os.availableParallelism();
  const backend = wasmKernelsAvailable() ? 'wasm' : `js (WASM kernels unavailable: ${wasmKernelsError()})`;
  const gen = await LoadGenerator.start();
  const targets: TargetResult[] = [];
  const machineNote =
    `${cores} cores available (os.availableParallelism()): the server process (its JS on one thread) and the load ` +
    'generator process (producer and subscribers) each have one, when nothing else runs.';
  try {
    // 1. Throughput.
    const rows: ThroughputResult[] = [];
    for (const binary of [true, false]) rows.push(await measureThroughput(gen, binary, plan));
    const bin = rows[0]!;
    targets.push({
      section: 'ws',
      target: `ws ingest -> prediction out at n = ${HIDDEN}, binary frames: >= ${int(THROUGHPUT_TARGET)} events/s on the server's core`,
      measured: `${int(bin.serverRate)} events/s`,
      pass: bin.serverRate >= THROUGHPUT_TARGET,
    });
    printTable(
      `ws: ingest -> prediction out, tanh RNN n = ${HIDDEN}, ${INPUTS} inputs, ${OUTPUTS} outputs, immediate (lambda 0), RMSprop lr ${LEARNING_RATE}`,
      ['frames', 'frame bytes', 'events timed', 'server s', 'server events/s', 'server CPU', 'events / CPU-s', 'end-to-end events/s', 'subscriber got', 'target'],
      rows.map((r) => [
        r.frames, int(r.frameBytes), int(r.count), num(r.serverMs / 1000, 3), int(r.serverRate), `${Math.round(r.cpuShare * 100)} %`,
        int(r.serverRate / r.cpuShare),
        int(r.endToEndRate), `${int(r.received)} / ${int(r.total)}`,
        r.frames === 'binary' ? `>= ${int(THROUGHPUT_TARGET)} ${passFail(r.serverRate >= THROUGHPUT_TARGET)}` : '(info)',
      ]),
      [
        'One stream, labels in every frame; the producer sends flat out (up to 1 MiB in its socket buffer), one subscriber reads',
        `every prediction. After ${int(plan.throughputWarm)} warm-up events, server events/s = events timed / (receivedAt of the first timed event`,
        '-> return of server.publish for the last), on the server\'s clock: ws decode + validate, the run pipeline (predict, score, learn, prequential, drift, recovery, metrics),',
        'encodeOutbound + send. server CPU = process.cpuUsage() (all threads, GC helpers included) / that wall time; near 100 % means the',
        'server was the bottleneck, well below it that the load generator was; events / CPU-s = server events/s / server CPU, what one',
        'busy core would do (information; the target is on server events/s). end-to-end events/s: producer send of the first timed',
        'event -> subscriber receipt of the last, on the load generator\'s clock.',
        `Learner kernels: ${backend}. ${machineNote}`,
        ...rejectionNote(rows.map((r) => r.rejected), rows.map((r) => r.dropped)),
      ],
      'lrrrrrrrrl',
    );

    // 2. Latency at a steady 1 kHz.
    const lat = await measureLatency(gen, plan);
    const figures = [
      { name: 'in-server', clock: 'server', what: 'Prediction.predictedAt - receivedAt', samples: lat.inServerMs },
      { name: 'end-to-end', clock: 'load generator', what: 'producer send -> subscriber receive', samples: lat.endToEndMs },
    ].map((f) => ({
      ...f, p50: percentile(f.samples, 0.5), p90: percentile(f.samples, 0.9), p99: percentile(f.samples, 0.99),
      max: f.samples.length > 0 ? f.samples.reduce((a, b) => Math.max(a, b), -Infinity) : NaN,
    }));
    for (const f of figures) {
      targets.push({
        section: 'ws',
        target: `p99 ${f.name} latency (${f.what}) at a steady ${int(RATE_HZ)} Hz < ${LATENCY_TARGET_MS} ms`,
        measured: `${ms(f.p99)} ms`,
        pass: f.p99 < LATENCY_TARGET_MS,
      });
    }
    printTable(
      `ws: event-to-prediction latency at a steady ${int(RATE_HZ)} Hz, binary frames, n = ${HIDDEN}`,
      ['figure', 'measured as', 'clock', 'events', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'target'],
      figures.map((f) => [
        f.name, f.what, f.clock, int(f.samples.length), ms(f.p50), ms(f.p90), ms(f.p99), ms(f.max),
        `p99 < ${LATENCY_TARGET_MS} ms ${passFail(f.p99 < LATENCY_TARGET_MS)}`,
      ]),
      [
        'in-server: from the ingest socket\'s message event (receivedAt, set before decoding) to the Prediction\'s predictedAt (after',
        'predict, before encodeOutbound and send): the driftline_event_to_prediction_seconds figure. It leaves out the time the frame',
        'spent in the kernel and in ws before the message event, and the publish.',
        'end-to-end: from just before the producer\'s ws.send to the subscriber\'s message event, both in the load generator process',
        '(one clock): both processes\' ws framing and masking, loopback TCP twice, the server path above and its publish.',
        `${int(plan.latencyWarm)} warm-up events first. Pacing: the producer, a worker thread of the load generator, sleeps to just before`,
        `each 1 ms slot (Atomics.wait) and spins the last ${PACER_SPIN_MS} ms; achieved ${num(lat.achievedHz)} Hz, largest send lag behind the ` +
          `schedule ${ms(lat.maxPacingLagMs)} ms. Both figures are on process.hrtime (one monotonic clock per process).`,
        `subscriber got ${int(lat.received)} / ${int(plan.latencyWarm + plan.latencyCount)} predictions. ${machineNote}`,
        ...rejectionNote([lat.rejected], [lat.dropped]),
      ],
      'lllrrrrrl',
    );

    // 3. A subscriber that never reads.
    const slow = await measureSlowSubscriber(gen, plan);
    const missedSlow = slow.total - slow.slowReceived;
    const missedFast = slow.total - slow.fastReceived;
    const dropsMatch = slow.dropped === missedSlow + missedFast;
    const growth = slow.rssEndGc - slow.rssWarmGc;
    const growthPct = (growth / slow.rssWarmGc) * 100;
    const rssPass = slow.gcAvailable && growthPct <= RSS_GROWTH_TARGET_PCT;
    const dropsPass = slow.dropped > 0 && dropsMatch;
    const rawPeak = slow.rss.reduce((a, b) => Math.max(a, b), 0);
    const rawAfterWarm = slow.rss.subarray(Math.floor(slow.warm / RSS_SAMPLE_EVERY));
    const rawRange = rawAfterWarm.reduce((a, b) => Math.max(a, b), 0) - rawAfterWarm.reduce((a, b) => Math.min(a, b), Infinity);
    const signed = (b: number) => `${b >= 0 ? '+' : '-'}${bytes(Math.abs(b))}`;
    targets.push({
      section: 'ws',
      target: `never-reading subscriber over ${int(slow.total)} events: server RSS growth after warm-up <= +${RSS_GROWTH_TARGET_PCT} %`,
      measured: slow.gcAvailable ? `${signed(growth)} (${growthPct >= 0 ? '+' : ''}${num(growthPct, 2)} %)` : 'no global.gc: not measured',
      pass: rssPass,
    });
    targets.push({
      section: 'ws',
      target: 'never-reading subscriber: drops counted (> 0) and equal to the predictions the subscribers did not get',
      measured: `${int(slow.dropped)} dropped, ${int(missedSlow + missedFast)} not received`,
      pass: dropsPass,
    });
    const every = Math.max(1, Math.floor(slow.rss.length / 10));
    const trace: string[] = [];
    for (let i = every - 1; i < slow.rss.length; i += every) trace.push((slow.rss[i]! / 1e6).toFixed(1));
    printTable(
      `ws: a subscriber that never reads, ${int(slow.total)} events, binary frames, n = ${HIDDEN}`,
      ['measure', 'value', 'target'],
      [
        ['RSS first sample (prediction 1,000)', bytes(slow.rss[0]!), ''],
        ['RSS last sample (raw)', bytes(slow.rss[slow.rss.length - 1]!), ''],
        ['RSS peak (raw samples)', bytes(rawPeak), ''],
        [`RSS after full GC, prediction ${int(slow.warm)}`, slow.gcAvailable ? bytes(slow.rssWarmGc) : 'n/a', ''],
        [`RSS after full GC, prediction ${int(slow.total)}`, slow.gcAvailable ? bytes(slow.rssEndGc) : 'n/a', ''],
        ['RSS growth after warm-up (GC\'d)', slow.gcAvailable ? `${signed(growth)} (${growthPct >= 0 ? '+' : ''}${num(growthPct, 2)} %)` : 'n/a',
          `<= +${RSS_GROWTH_TARGET_PCT} % ${passFail(rssPass)}`],
        ['RSS range of raw samples after warm-up', bytes(rawRange), ''],
        ['heapUsed growth after warm-up (GC\'d)', slow.gcAvailable ? signed(slow.heapEndGc - slow.heapWarmGc) : 'n/a', '(info)'],
        ['predictions published', int(slow.published), ''],
        ['server.stats.droppedForSlowSubscribers', int(slow.dropped), `> 0, = not received ${passFail(dropsPass)}`],
        ['never-reading subscriber got (read after the run)', int(slow.slowReceived), ''],
        ['reading subscriber got', int(slow.fastReceived), ''],
        ['not received (both subscribers)', int(missedSlow + missedFast), ''],
        ['first drop at prediction', slow.firstDropAt >= 0 ? int(slow.firstDropAt) : 'none', ''],
        ['peak subscriber bufferedAmount (server.stats)', bytes(slow.peakBuffered), `cap ${bytes(MAX_BUFFERED_BYTES)}`],
      ],
      [
        'The never-reading subscriber completes the ws handshake, then its socket is paused (ws.pause(): the net.Socket stops',
        'reading), so the kernel buffers fill and then the server\'s per-subscriber bufferedAmount cap is what bounds memory. A second',
        'subscriber reads everything, to show it is unaffected. The producer sends flat out. After the run the paused subscriber',
        'resumes and reads what was queued for it (until 1 s without a message), so that the count of what it missed is exact.',
        `Raw RSS every ${int(RSS_SAMPLE_EVERY)} predictions (process.memoryUsage.rss(), no GC), MB at every tenth: ${trace.join(' ')}.`,
        `Warm-up ends ${int(plan.slowWarm)} predictions after the first drop (by then the kernel's and the server's buffers for the paused`,
        `subscriber are full and V8 has sized its young generation for the load); the GC'd samples follow global.gc() twice` +
          `${slow.gcAvailable ? '' : ' (unavailable here: run through bench/index.ts, which adds --expose-gc)'}.`,
        `All ${int(slow.total)} predictions are ${mb(slow.total * slow.messageBytes)} of JSON (about ${slow.messageBytes} bytes each); ` +
          `the run took ${num(slow.wallMs / 1000, 2)} s. Heartbeat set to ${HEARTBEAT_MS / 60_000} min here, since a paused peer cannot pong.`,
        ...rejectionNote([slow.rejected], []),
      ],
      'lrl',
    );
    if (options.quick) {
      process.stdout.write('  QUICK mode: small event counts; the ws figures are only indicative.\n');
    }
  } finally {
    gen.stop();
  }
  return targets;
}

function rejectionNote(rejected: number[], dropped: number[]): string[] {
  const r = rejected.reduce((a, b) => a + b, 0);
  const d = dropped.reduce((a, b) => a + b, 0);
  const notes: string[] = [];
  if (r > 0) notes.push(`WARNING: ${int(r)} frames were rejected by the pipeline.`);
  if (d > 0) notes.push(`Note: the server dropped ${int(d)} predictions for a reading subscriber that fell behind.`);
  return notes;
}

// ---- the load generator (a separate process) ---------------------------------------------------------------

/** Milliseconds on the monotonic clock every thread of a process shares (performance.now() has one origin per thread). */
function clockMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/** Encodes tick frames of the bench stream from a seeded pool: the official encoders once, then seq and t patched. */
class TickFrames {
  /** Binary frames of the pool, seq and t 0. */
  readonly binaryTemplates: Buffer[] = [];
  /** Where seq (float64 LE) sits in a binary frame; t follows it. */
  readonly seqOffset = BINARY_PREFIX_BYTES + Buffer.byteLength(STREAM);
  private readonly jsonTail: string[] = [];
  private readonly mask: number;

  constructor(readonly useBinary: boolean) {
    const { xs, ys } = inputPool(256);
    this.mask = xs.length - 1;
    for (let i = 0; i < xs.length; i++) {
      const frame = { kind: 'tick', stream: STREAM, seq: 0, t: 0, x: xs[i]!, y: ys[i]! } as const;
      this.binaryTemplates.push(Buffer.from(encodeBinaryFrame(frame)));
      const json = encodeJsonFrame(frame);
      this.jsonTail.push(json.slice(json.indexOf(',"x":')));
    }
  }

  /** A new frame for `seq` (ws masks client frames, so each send gets its own bytes). */
  frame(seq: number): Buffer | string {
    const t = seq / RATE_HZ;
    const i = seq & this.mask;
    if (!this.useBinary) return `{"stream":"${STREAM}","seq":${seq},"t":${t}${this.jsonTail[i]}`;
    const b = Buffer.from(this.binaryTemplates[i]!);
    b.writeDoubleLE(seq, this.seqOffset);
    b.writeDoubleLE(t, this.seqOffset + 8);
    return b;
  }

  get bytesPerFrame(): number {
    return this.useBinary ? this.binaryTemplates[0]!.length : Buffer.byteLength(this.frame(12_345) as string);
  }
}

function connect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** A subscriber that counts predictions and passes each one's seq and arrival time (clockMs) on. */
class Subscriber {
  received = 0;
  private lastAt = clockMs();

  constructor(readonly ws: WebSocket, onPrediction?: (seq: number, at: number) => void) {
    ws.on('message', (data, isBinary) => {
      const at = clockMs();
      this.lastAt = at;
      if (isBinary) return;
      const m = JSON.parse(data.toString()) as { type?: string; seq?: number };
      if (m.type !== 'prediction' || typeof m.seq !== 'number') return;
      this.received++;
      onPrediction?.(m.seq, at);
    });
  }

  /** Waits until `count` predictions have arrived, or none has for idleMs. */
  async settle(count: number, idleMs: number): Promise<void> {
    this.lastAt = Math.max(this.lastAt, clockMs());
    while (this.received < count && clockMs() - this.lastAt < idleMs) await new Promise((r) => setTimeout(r, 5));
  }
}

const SEND_WINDOW_BYTES = 1024 * 1024;
const SEND_BURST = 256;
const IDLE_MS = 3000;

/** Sends frames 0..total-1 as fast as the socket takes them; `onSend(seq, at)` just before each send. */
function sendFlatOut(ws: WebSocket, frames: TickFrames, total: number, onSend?: (seq: number, at: number) => void): Promise<void> {
  return new Promise((resolve) => {
    let seq = 0;
    const pump = (): void => {
      for (let burst = 0; seq < total && burst < SEND_BURST && ws.bufferedAmount < SEND_WINDOW_BYTES; burst++, seq++) {
        onSend?.(seq, clockMs());
        ws.send(frames.frame(seq));
      }
      if (seq < total) setImmediate(pump);
      else resolve();
    };
    pump();
  });
}

async function generatorThroughput(c: Extract<LoadCommand, { cmd: 'throughput' }>): Promise<ThroughputReply> {
  const frames = new TickFrames(c.binary);
  const total = c.warm + c.count;
  let sentFirst = NaN;
  let receivedLast = NaN;
  const sub = new Subscriber(await connect(`${c.url}/predictions?type=prediction`), (seq, at) => {
    if (seq === total - 1) receivedLast = at;
  });
  const producer = await connect(`${c.url}/ingest`);
  await sendFlatOut(producer, frames, total, (seq, at) => {
    if (seq === c.warm) sentFirst = at;
  });
  await sub.settle(total, IDLE_MS);
  producer.terminate();
  sub.ws.terminate();
  return { kind: 'throughput', frameBytes: frames.bytesPerFrame, endToEndMs: receivedLast - sentFirst, received: sub.received };
}

/** How long before each slot the paced producer stops sleeping and spins (futex wake-ups run late by tens of us). */
const PACER_SPIN_MS = 0.15;

/**
 * The paced producer, run in a worker thread of the load generator: it sleeps (Atomics.wait) until just before
 * each slot and spins the rest, so it keeps a steady schedule without taking a core from the server, and the
 * subscriber on the main thread reads without queueing behind it. Plain JavaScript (eval), so it needs no loader.
 * It writes each send time (clockMs) into the shared `sentAt` before the send.
 */
const PACED_PRODUCER_JS = `
const { workerData, parentPort } = require('node:worker_threads');
const WebSocket = require(workerData.wsModule);
const { url, templates, seqOffset, total, warm, periodMs, spinMs, rateHz } = workerData;
const sentAt = new Float64Array(workerData.sentAt);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const clockMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;
const ws = new WebSocket(url, { perMessageDeflate: false });
ws.on('error', (e) => parentPort.postMessage({ error: String((e && e.message) || e) }));
ws.on('open', async () => {
  const start = clockMs() + 5;
  let maxLag = 0;
  let firstMeasured = NaN;
  let lastSent = NaN;
  for (let seq = 0; seq < total; seq++) {
    const frame = Buffer.from(templates[seq % templates.length]);
    frame.writeDoubleLE(seq, seqOffset);
    frame.writeDoubleLE(seq / rateHz, seqOffset + 8);
    const due = start + seq * periodMs;
    const ahead = due - clockMs();
    if (ahead > spinMs) Atomics.wait(sleeper, 0, 0, ahead - spinMs);
    let now = clockMs();
    while (now < due) now = clockMs();
    if (seq >= warm && now - due > maxLag) maxLag = now - due;
    if (seq === warm) firstMeasured = now;
    sentAt[seq] = now;
    lastSent = now;
    ws.send(frame);
    // Lets this thread's event loop flush anything the socket did not take at once.
    if (seq % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  parentPort.postMessage({ done: true, maxLag, firstMeasured, lastSent });
  ws.close();
});
`;

interface PacedProducerReport {
  readonly maxLag: number;
  readonly firstMeasured: number;
  readonly lastSent: number;
}

async function generatorLatency(c: Extract<LoadCommand, { cmd: 'latency' }>): Promise<LatencyReply> {
  const frames = new TickFrames(true);
  const total = c.warm + c.count;
  const sentAt = new Float64Array(new SharedArrayBuffer(Float64Array.BYTES_PER_ELEMENT * total));
  const endToEnd = new Float64Array(c.count).fill(NaN);
  const sub = new Subscriber(await connect(`${c.url}/predictions?type=prediction`), (seq, at) => {
    if (seq >= c.warm && seq < total) endToEnd[seq - c.warm] = at - sentAt[seq]!;
  });
  const worker = new Worker(PACED_PRODUCER_JS, {
    eval: true,
    execArgv: [],
    workerData: {
      wsModule: createRequire(import.meta.url).resolve('ws'), url: `${c.url}/ingest`, templates: frames.binaryTemplates,
      seqOffset: frames.seqOffset, total, warm: c.warm, periodMs: 1000 / c.rateHz, spinMs: PACER_SPIN_MS, rateHz: RATE_HZ,
      sentAt: sentAt.buffer,
    },
  });
  try {
    const paced = await new Promise<PacedProducerReport>((resolve, reject) => {
      worker.on('message', (m: { error?: string } & PacedProducerReport) => (m.error ? reject(new Error(m.error)) : resolve(m)));
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`paced producer exited with ${code}`)));
    });
    await sub.settle(total, IDLE_MS);
    return {
      kind: 'latency', endToEndMs: Array.from(endToEnd), received: sub.received,
      achievedHz: (c.count - 1) / ((paced.lastSent - paced.firstMeasured) / 1000), maxPacingLagMs: paced.maxLag,
    };
  } finally {
    sub.ws.terminate();
    await worker.terminate();
  }
}

interface SlowRun {
  readonly slow: Subscriber;
  readonly fast: Subscriber;
  readonly total: number;
}
let slowRun: SlowRun | undefined;

async function generatorSlowStart(c: Extract<LoadCommand, { cmd: 'slow-start' }>): Promise<SlowStartReply> {
  const frames = new TickFrames(true);
  const slowSocket = await connect(`${c.url}/predictions?type=prediction`);
  // Handshake done; from here on nothing is read from this socket until slow-drain.
  slowSocket.pause();
  const slow = new Subscriber(slowSocket);
  const fast = new Subscriber(await connect(`${c.url}/predictions?type=prediction`));
  const producer = await connect(`${c.url}/ingest`);
  await sendFlatOut(producer, frames, c.total);
  await fast.settle(c.total, IDLE_MS);
  producer.terminate();
  slowRun = { slow, fast, total: c.total };
  return { kind: 'slow-start', fastReceived: fast.received };
}

async function generatorSlowDrain(): Promise<SlowDrainReply> {
  const run = slowRun;
  if (!run) throw new Error('slow-drain before slow-start');
  slowRun = undefined;
  run.slow.ws.resume();
  await run.slow.settle(run.total, 1000);
  run.slow.ws.terminate();
  run.fast.ws.terminate();
  return { kind: 'slow-drain', slowReceived: run.slow.received, fastReceived: run.fast.received };
}

function runLoadGenerator(): void {
  const reply = (m: LoadReply): void => {
    process.send?.(m);
  };
  process.on('message', (c: LoadCommand) => {
    const work =
      c.cmd === 'throughput' ? generatorThroughput(c)
      : c.cmd === 'latency' ? generatorLatency(c)
      : c.cmd === 'slow-start' ? generatorSlowStart(c)
      : generatorSlowDrain();
    work.then(reply, (err: unknown) => reply({ kind: 'failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }));
  });
  // The server process ended (or let go of us): nothing more to do.
  process.on('disconnect', () => process.exit(0));
  reply({ kind: 'ready' });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes(LOAD_GENERATOR_FLAG)) {
  if (typeof process.send !== 'function') {
    process.stderr.write('bench/ws.ts is the ws load generator only when started by bench/index.ts with an IPC channel\n');
    process.exit(2);
  }
  runLoadGenerator();
}
