// Section `streams`: the real `driftline run` process under many streams, beside a trivial echo server (the floor)
// measured with the same load generator in the same run.
//
// Servers. The service is spawned from source (`node --import tsx src/cli/main.ts run --config <tmp>`: 96 inputs,
// 2 outputs, tanh RNN n = 64, immediate credit, RMSprop, maxStreams 1,000, loopback, ports 0, no checkpoints, the
// default pipeline otherwise: label standardization, prequential reports, calibrated Page-Hinkley on the error,
// recovery tracking, metrics, the dashboard feed); its 'driftline ready' line on stderr gives the URLs. The floor is
// bench/support/echo-server.ts in its own process: the same ws receive and frame decode (the service's codec), a
// running mean of each stream's labels as the prediction, the same prediction message to subscribers. A FRESH
// server process (service or echo) is started for every run (scenario x frames x server), so each run's CPU, RSS
// and warm-up are its own: no learners, heap or backlog carry over from the run before.
//
// Load. This bench process (separate from both servers) is the load generator: a worker thread sends the frames on
// an open-loop schedule (a send never waits for a prediction), and the main thread subscribes to /predictions
// (?type=prediction) and takes each prediction's arrival time; send and receipt are read on one clock
// (process.hrtime) and matched by (stream, seq). Streams are round-robin: event g goes to stream g % N with seq
// floor(g / N), every stream at the same rate. The worker sleeps (Atomics.wait) between sends; at rates above
// 1 kHz it wakes at most once per WAKE_MS and sends every event that is due in a burst, so that it does not take
// a core spinning. It counts sends more than LATE_MS behind their slot, so a figure is never blamed on a server
// when the generator was the one behind. While its socket holds more than SHED_ABOVE_BYTES unsent (the server is
// not reading), it skips the events that fall due and counts them ('shed'), which bounds the backlog and so the
// bench's memory and the time to drain it.
//
// Scenarios, each with JSON and binary frames, each against the service and the echo floor:
//   1, 100 and 1,000 streams at 50 Hz each (50, 5,000 and 50,000 events/s), for runMs; the first warmMs apart;
//   1,000 streams again with the frames that fall due together (one wake of the generator, about 50 at 50,000/s)
//   sent as batches of up to 100 frames per message;
//   (DRIFTLINE_BENCH_STREAMS_SUSTAINED=<streams> instead: that many streams at 50 Hz for 60 s, binary frames, 2 shards,
//   1 shard and the echo floor;)
//   (DRIFTLINE_BENCH_STREAMS_RATIO=<rounds> instead: the 8-stream JSON max-rate scenario alone, service then echo, that
//   many rounds, the CPU target judged on the median round;)
//   max-rate: 100 and 8 streams, warmMs at RAMP_FROM_HZ, then a geometric ramp of the offered rate (the same factor every
//   second) up to RAMP_TO_HZ. The ramp stops once the oldest unanswered event is STALL_MS old (the server has fallen
//   behind). Bins of the ramp by send time "keep up" when every event sent in them was predicted with p99 <=
//   KEEP_UP_P99_MS and none was shed; the sustained rate is the highest rate actually sent in a bin that kept up,
//   before the first two bins in a row that did not. When the generator could not send the offered rate there, the
//   figure is the generator's limit, and is marked so.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { BINARY_PREFIX_BYTES, encodeBinaryFrame, encodeJsonFrame } from '../src/adapters/websocket/frames.js';
import { INPUTS, OUTPUTS, inputPool, int, num, printTable, type BenchOptions, type TargetResult } from './common.js';
import { CLOCK_MS_JS, clockMs } from './support/clock.js';
import { PRODUCER_SOCKET_JS, producerSocketData, type ProducerSocketCommand, type ProducerSocketReply } from './support/producer-socket.js';
import { ServerProcess, killServers, serviceSpec, writeServiceConfig, type ServerSpec } from './support/service-process.js';
import { WorkerReplies } from './support/worker-replies.js';
import { clockTicksPerSecond, cpuSeconds, rssBytes } from './support/proc-stat.js';

const HIDDEN = 64;
const PER_STREAM_HZ = 50;
const MAX_STREAMS = 1000;
const POOL = 256;
/** Stream keys are 's' and 4 digits, so every binary frame has the same layout. */
const KEY_DIGITS = 4;
const streamKey = (s: number) => `s${String(s).padStart(KEY_DIGITS, '0')}`;
/** Stream time between two ticks of a stream, as the frames' t. */
const T_PER_SEQ = 1 / PER_STREAM_HZ;
/** Above 1 kHz the producer wakes at most once per this many ms and sends what is due in a burst. */
const WAKE_MS = 1;
/** How long before an exact slot the producer stops sleeping and spins (futex wake-ups run late by tens of us). */
const SPIN_MS = 0.15;
/** A send more than this behind its slot is late (a burst at WAKE_MS granularity stays well inside it). */
const LATE_MS = 2;
/** The producer skips ('sheds') events while its socket holds more than this. */
const SHED_ABOVE_BYTES = 8 * 1024 * 1024;
/** Max-rate: the warm-up rate (where the ramp starts), the top of the ramp, and the stream count. */
const RAMP_FROM_HZ = 1000;
const RAMP_TO_HZ = 80_000;
const RAMP_STREAMS = 100;
/** Max-rate: stop the ramp once the oldest unanswered event is this old. */
const STALL_MS = 500;
const KEEP_UP_P99_MS = 50;
/** Settle: wait for the last predictions until none has come for this long (or the plan's cap). */
const SETTLE_IDLE_MS = 3000;
const ECHO_SCRIPT = fileURLToPath(new URL('./support/echo-server.ts', import.meta.url));
/** Set (to 1) for the smoke test's shortest settings: 2 scenarios, 1.5 s runs (only meaningful with --quick). */
export const SMOKE_ENV = 'DRIFTLINE_BENCH_STREAMS_SMOKE';

type ScenarioKind = 'paced' | 'ramp';
interface Scenario {
  readonly name: string;
  readonly kind: ScenarioKind;
  readonly streams: number;
  /** Frames per message at most (default 1): frames that fall due together are sent as one batch. */
  readonly perMessage?: number;
  /**
   * Ticks per stream sent at PRIME_HZ before the warm-up, unmeasured: enough to take every stream of the service
   * through its detector calibration, so that the measured window holds the steady state only.
   */
  readonly primeTicks?: number;
}
interface Plan {
  readonly label: string;
  readonly runMs: number;
  readonly warmMs: number;
  readonly scenarios: readonly Scenario[];
  /** Longest wait for the last predictions after the last send. */
  readonly settleCapMs: number;
  /** Generator warm-up against an echo server before anything is measured, per frame kind. */
  readonly generatorWarmMs: number;
  readonly binMs: number;
  readonly readyTimeoutMs: number;
  readonly notes: readonly string[];
  /** Frame kinds and servers to run each scenario with (default: both kinds; 1 shard, 2 shards from 100 streams, echo). */
  readonly binaryOnly?: boolean;
  readonly jsonOnly?: boolean;
  readonly servers?: readonly ServerKind[];
}

const paced = (streams: number, perMessage = 1): Scenario => ({
  name: `${int(streams)} stream${streams === 1 ? '' : 's'} @ ${PER_STREAM_HZ} Hz${perMessage > 1 ? `, <= ${perMessage}/msg` : ''}`,
  kind: 'paced',
  streams,
  perMessage,
});
/** 1,000 streams with the frames that fall due together sent as batches (the producer wakes every WAKE_MS). */
const BATCHED_1000 = paced(1000, 100);
const ramp = (streams: number): Scenario => ({ name: `max-rate (${int(streams)} streams)`, kind: 'ramp', streams });
const RAMP = ramp(RAMP_STREAMS);
/**
 * Issue 18's CPU target is stated on 8 streams of JSON frames at the highest rate they are served: per event, in
 * the steady state. Every stream is first taken through its detector calibration (a start-up cost of about 0.3 s a
 * stream, reported beside the target), which otherwise falls inside the ramp: 8 streams due within the same second
 * stalled the service for seconds and stopped the ramp with the service half idle.
 */
const RAMP_8: Scenario = { ...ramp(8), name: 'max-rate (8 streams, primed)', primeTicks: 8_000 };
/** The priming rate (events/s in all): well inside what the service serves on JSON frames (12,000-15,000/s). */
const PRIME_HZ = 8_000;
const primeMsOf = (scenario: Scenario): number => ((scenario.primeTicks ?? 0) * scenario.streams * 1000) / PRIME_HZ;
/** The CPU-per-event target: the service within this factor of the echo floor (JSON, 8 streams, max rate). */
const CPU_RATIO_TARGET = 2;
/**
 * The service's default calibrated detector settles for 60 s and calibrates on the next 300 s of 50 ms ticks
 * (docs/drift-calibration.md): no stream calibrates before its 7,200th tick. A run whose warm-up fed a stream fewer
 * ticks has all of its calibrations inside the measured window, so their time (from /metrics) can be told apart.
 */
const TICKS_BEFORE_CALIBRATION = 7_200;
/** The latency target at 1,000 streams x 50 Hz on binary frames, after the warm-up (ms). */
const P99_TARGET_MS = 20;

const FULL: Plan = {
  label: 'full', runMs: 20_000, warmMs: 5_000, scenarios: [paced(1), paced(100), paced(1000), BATCHED_1000, RAMP, RAMP_8], settleCapMs: 30_000,
  generatorWarmMs: 1500, binMs: 250, readyTimeoutMs: 60_000, notes: [],
};
const QUICK: Plan = {
  label: 'quick', runMs: 4_000, warmMs: 1_000, scenarios: [paced(1), paced(100), paced(1000), BATCHED_1000, RAMP, RAMP_8], settleCapMs: 15_000,
  generatorWarmMs: 1000, binMs: 100, readyTimeoutMs: 60_000,
  notes: ['QUICK mode: 4 s runs with the first 1 s apart (full: 20 s, first 5 s apart); the figures are only indicative.'],
};
/**
 * SUSTAINED_ENV=<streams>: instead of the plan, one long run at 50 Hz per stream on binary frames against the
 * service with 2 shards, with 1 shard and the echo floor: the sustained form of issue 18's latency target, at a
 * stream count this machine can serve (the 1,000-stream scenario saturates it).
 */
export const SUSTAINED_ENV = 'DRIFTLINE_BENCH_STREAMS_SUSTAINED';
const SUSTAINED_RUN_MS = 65_000;
const sustainedPlan = (streams: number): Plan => ({
  label: 'sustained', runMs: SUSTAINED_RUN_MS, warmMs: 5_000, scenarios: [paced(streams)], settleCapMs: 30_000,
  generatorWarmMs: 1500, binMs: 250, readyTimeoutMs: 60_000, binaryOnly: true, servers: [SHARDED, 'service', 'echo'],
  notes: [`SUSTAINED (${SUSTAINED_ENV}=${streams}): ${int(streams)} streams at ${PER_STREAM_HZ} Hz for ${(SUSTAINED_RUN_MS - 5_000) / 1000} s after a 5 s warm-up, binary frames only.`],
});
/**
 * RATIO_ENV=<rounds>: instead of the plan, only the CPU-per-event target's scenario (JSON frames, 8 streams at max
 * rate), service then echo floor, repeated for that many rounds; the target is judged on the median round. One round
 * of each server is a single draw on a shared machine, and the ratio moved by 0.3x between such draws.
 */
export const RATIO_ENV = 'DRIFTLINE_BENCH_STREAMS_RATIO';
const MAX_RATIO_ROUNDS = 9;
const ratioPlan = (rounds: number): Plan => ({
  label: 'ratio', runMs: 20_000, warmMs: 5_000,
  scenarios: Array.from({ length: rounds }, (_, i) => ({ ...RAMP_8, name: `${RAMP_8.name}, round ${i + 1}` })),
  settleCapMs: 30_000, generatorWarmMs: 1500, binMs: 250, readyTimeoutMs: 60_000, jsonOnly: true, servers: ['service', 'echo'],
  notes: [`RATIO (${RATIO_ENV}=${rounds}): the 8-stream JSON max-rate scenario only, ${rounds} rounds of service then echo floor; the target is judged on the median round.`],
});
const SMOKE: Plan = {
  label: 'smoke', runMs: 1_500, warmMs: 500, scenarios: [paced(100), RAMP], settleCapMs: 8_000,
  generatorWarmMs: 300, binMs: 100, readyTimeoutMs: 60_000,
  notes: [`SMOKE settings (${SMOKE_ENV}=1): 2 scenarios, 1.5 s runs with the first 0.5 s apart; a check that the section runs, not a measurement.`],
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- the servers (child processes) ------------------------------------------------------------------------------

/** `driftline run` as configured, the same with `streams.shards: 2`, or the echo floor. */
type ServerKind = 'service' | typeof SHARDED | 'echo';
const SHARDED = 'service, 2 shards';
/** Scenarios with at least this many streams also run against the sharded service. */
const SHARDED_FROM_STREAMS = 100;

function serverSpec(kind: ServerKind, configFile: string): ServerSpec {
  if (kind === 'service' || kind === SHARDED) return serviceSpec('service', configFile, 10_000);
  // The echo server prints its two lines on stdout (and errors on stderr), and exits when its stdin closes, so it
  // cannot outlive this process even if this one is killed.
  return {
    name: 'echo', args: ['--import', 'tsx', ECHO_SCRIPT, '--inputs', String(INPUTS), '--outputs', String(OUTPUTS), '--exit-with-stdin'],
    jsonOn: 'stdout', readyMsg: 'echo ready', stoppedMsg: 'echo stopped', stdin: 'pipe', stopTimeoutMs: 10_000,
  };
}

/** Sums of the named counters (over all label sets) in a Prometheus exposition. */
function counters(text: string, names: readonly string[]): Map<string, number> {
  const out = new Map<string, number>(names.map((n) => [n, 0]));
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && out.has(m[1]!)) out.set(m[1]!, out.get(m[1]!)! + Number(m[2]));
  }
  return out;
}

/** driftline_detector_calibration_seconds_total from a service's /metrics; NaN when unreadable. */
async function calibrationSecondsOf(metricsUrl: string): Promise<number> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) });
    return counters(await res.text(), ['driftline_detector_calibration_seconds_total']).get('driftline_detector_calibration_seconds_total')!;
  } catch {
    return NaN;
  }
}

// ---- the producer (a worker thread of this process) -------------------------------------------------------------

/**
 * The open-loop producer. Commands: connect(url) -> 'open'; go -> 'done'; close -> 'closed' (with the error replies
 * the server sent it). For go: event g is due at start + due[g] ms (due: a shared Float64Array the main thread
 * fills from the schedule), goes to stream g % streams with seq floor(g / streams), and its send time (clockMs) is
 * written to the shared sentAt[g] just before the send, or -1 when it is shed. control[0] != 0 stops it (the
 * max-rate ramp); control[1] is how many events it has dealt with. Frames come from a pool of templates made with
 * the codec's own encoders, patched per send (key digits, seq, t). The client masks with a zero key (ws's
 * generateMask), which spares the generator the XOR; the servers unmask every frame all the same.
 * Plain JavaScript (eval), so it needs no loader.
 */
const PRODUCER_JS = `${PRODUCER_SOCKET_JS}
${CLOCK_MS_JS}
const { binaryTemplates, jsonTails, keyOffset, seqOffset, pool, tPerSeq, spinMs, wakeMs, lateMs, keyDigits } = workerData;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const immediate = () => new Promise((r) => setImmediate(r));
parentPort.on('message', (m) => {
  if (m.cmd === 'go') {
    run(m).catch((e) => parentPort.postMessage({ kind: 'failed', message: String((e && e.stack) || e) }));
  } else socketCommand(m);
});
async function run(m) {
  const { binary, streams, total, start, shedAbove } = m;
  const due = new Float64Array(m.due);
  const sentAt = new Float64Array(m.sentAt);
  const control = new Int32Array(m.control);
  const words = new Uint32Array(streams);
  const heads = new Array(streams);
  for (let s = 0; s < streams; s++) {
    const d = String(s).padStart(keyDigits, '0');
    words[s] = ((d.charCodeAt(0) << 24) | (d.charCodeAt(1) << 16) | (d.charCodeAt(2) << 8) | d.charCodeAt(3)) >>> 0;
    heads[s] = '{"stream":"s' + d + '","seq":';
  }
  // Frames due together leave in one message of up to perMessage frames (a batch: docs/websocket-frames.md).
  const perMessage = m.perMessage;
  const pending = [];
  const flush = () => {
    if (pending.length === 0) return;
    if (pending.length === 1) ws.send(pending[0]);
    else if (binary) {
      let bytes = 6;
      for (const f of pending) bytes += 4 + f.length;
      const batch = Buffer.allocUnsafe(bytes);
      batch[0] = 0xd1; batch[1] = 0x01; batch[2] = 0x04; batch[3] = 0x00;
      batch.writeUInt16LE(pending.length, 4);
      let at = 6;
      for (const f of pending) { batch.writeUInt32LE(f.length, at); f.copy(batch, at + 4); at += 4 + f.length; }
      ws.send(batch);
    } else ws.send('[' + pending.join(',') + ']');
    pending.length = 0;
  };
  let late = 0, maxLag = 0, shed = 0, sent = 0, maxBuffered = 0, sinceYield = 0, g = 0;
  let lastWake = -Infinity;
  let stopped = false;
  while (g < total) {
    if (Atomics.load(control, 0) !== 0) { stopped = true; break; }
    const dueAt = start + due[g];
    let now = clockMs();
    if (now < dueAt) {
      // Let this thread's event loop flush what the socket did not take at once, then sleep to the next wake.
      flush();
      await immediate();
      sinceYield = 0;
      const wakeAt = Math.max(dueAt, lastWake + wakeMs);
      const exact = wakeAt === dueAt;
      now = clockMs();
      const ahead = wakeAt - now - (exact ? spinMs : 0);
      if (ahead > 0) Atomics.wait(sleeper, 0, 0, ahead);
      if (exact) while ((now = clockMs()) < dueAt) {}
      else now = clockMs();
      lastWake = now;
    }
    // Every event due by now, in a burst (one event at low rates).
    while (g < total && start + due[g] <= now) {
      const s = g % streams;
      const seq = (g - s) / streams;
      if (ws.bufferedAmount > shedAbove) {
        sentAt[g] = -1;
        shed++;
      } else {
        const i = (seq + s) % pool;
        let frame;
        if (binary) {
          frame = Buffer.from(binaryTemplates[i]);
          frame.writeUInt32BE(words[s], keyOffset + 1);
          frame.writeDoubleLE(seq, seqOffset);
          frame.writeDoubleLE(seq * tPerSeq, seqOffset + 8);
        } else {
          frame = heads[s] + seq + ',"t":' + seq * tPerSeq + jsonTails[i];
        }
        const at = clockMs();
        const lag = at - (start + due[g]);
        if (lag > maxLag) maxLag = lag;
        if (lag > lateMs) late++;
        sentAt[g] = at;
        pending.push(frame);
        if (pending.length >= perMessage) flush();
        sent++;
        const b = ws.bufferedAmount;
        if (b > maxBuffered) maxBuffered = b;
      }
      g++;
      Atomics.store(control, 1, g);
      if (++sinceYield >= 64) { flush(); await immediate(); sinceYield = 0; }
      now = clockMs();
    }
  }
  flush();
  parentPort.postMessage({ kind: 'done', attempted: g, sent, shed, late, maxLag, maxBuffered, stopped });
}
parentPort.postMessage({ kind: 'loaded' });
`;

interface ProducerDone {
  readonly attempted: number;
  readonly sent: number;
  readonly shed: number;
  readonly late: number;
  readonly maxLag: number;
  readonly maxBuffered: number;
  readonly stopped: boolean;
}
type ProducerReply = ProducerSocketReply | ({ readonly kind: 'done' } & ProducerDone);

interface GoCommand {
  readonly cmd: 'go';
  readonly binary: boolean;
  readonly streams: number;
  /** Frames per message at most: those due together leave as one batch. */
  readonly perMessage: number;
  readonly total: number;
  readonly start: number;
  readonly shedAbove: number;
  readonly due: SharedArrayBuffer;
  readonly sentAt: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
}

type Producer = WorkerReplies<ProducerReply, ProducerSocketCommand | GoCommand>;

function startProducer(): Promise<Producer> {
  const { xs, ys } = inputPool(POOL);
  const binaryTemplates: Uint8Array[] = [];
  const jsonTails: string[] = [];
  for (let i = 0; i < POOL; i++) {
    const frame = { kind: 'tick', stream: streamKey(0), seq: 0, t: 0, x: xs[i]!, y: ys[i]! } as const;
    binaryTemplates.push(encodeBinaryFrame(frame));
    const json = encodeJsonFrame(frame);
    jsonTails.push(json.slice(json.indexOf(',"x":')));
  }
  return WorkerReplies.start('streams bench producer', PRODUCER_JS, {
    socket: producerSocketData({ zeroMask: true, closeTimeoutMs: 2000 }), binaryTemplates, jsonTails, keyOffset: BINARY_PREFIX_BYTES,
    seqOffset: BINARY_PREFIX_BYTES + 1 + KEY_DIGITS, pool: POOL, tPerSeq: T_PER_SEQ, spinMs: SPIN_MS, wakeMs: WAKE_MS,
    lateMs: LATE_MS, keyDigits: KEY_DIGITS,
  });
}

// ---- the subscriber (this thread) ---------------------------------------------------------------------------------

const PREDICTION_PREFIX = Buffer.from('{"type":"prediction","stream":"s');
const SEQ_FIELD = Buffer.from('","seq":');

/**
 * Takes the arrival time (clockMs) of each prediction into receivedAt[seq * streams + stream index]. The common
 * message ({"type":"prediction","stream":"sNNNN","seq":N,...}, as encodeOutbound writes it) is read straight from
 * the bytes; anything else goes through JSON.parse.
 */
class Subscriber {
  received = 0;
  duplicates = 0;
  /** Predictions of streams or seqs this run did not send, and messages that are not predictions. */
  unknown = 0;
  lastAt = clockMs();

  private constructor(readonly ws: WebSocket, private readonly receivedAt: Float64Array, private readonly streams: number) {
    ws.on('message', (data: Buffer, isBinary) => {
      const at = clockMs();
      this.lastAt = at;
      if (isBinary) return void this.unknown++;
      const ids = Subscriber.fast(data) ?? Subscriber.slow(data);
      if (ids === undefined || ids.s >= this.streams) return void this.unknown++;
      const g = ids.seq * this.streams + ids.s;
      if (g >= this.receivedAt.length) return void this.unknown++;
      if (!Number.isNaN(this.receivedAt[g]!)) return void this.duplicates++;
      this.receivedAt[g] = at;
      this.received++;
    });
  }

  private static fast(b: Buffer): { s: number; seq: number } | undefined {
    const p = PREDICTION_PREFIX.length;
    if (b.length < p + KEY_DIGITS + SEQ_FIELD.length + 1 || b.compare(PREDICTION_PREFIX, 0, p, 0, p) !== 0) return undefined;
    let s = 0;
    for (let i = p; i < p + KEY_DIGITS; i++) {
      const c = b[i]! - 48;
      if (c < 0 || c > 9) return undefined;
      s = s * 10 + c;
    }
    let at = p + KEY_DIGITS;
    if (b.compare(SEQ_FIELD, 0, SEQ_FIELD.length, at, at + SEQ_FIELD.length) !== 0) return undefined;
    at += SEQ_FIELD.length;
    let seq = 0;
    let digits = 0;
    for (; at < b.length; at++, digits++) {
      const c = b[at]! - 48;
      if (c < 0 || c > 9) break;
      seq = seq * 10 + c;
    }
    return digits > 0 && b[at] === 44 /* , */ ? { s, seq } : undefined;
  }

  private static slow(b: Buffer): { s: number; seq: number } | undefined {
    let m: { type?: unknown; stream?: unknown; seq?: unknown };
    try {
      m = JSON.parse(b.toString()) as typeof m;
    } catch {
      return undefined;
    }
    if (m.type !== 'prediction' || typeof m.seq !== 'number' || typeof m.stream !== 'string') return undefined;
    const k = /^s(\d{4})$/.exec(m.stream);
    return k ? { s: Number(k[1]), seq: m.seq } : undefined;
  }

  static connect(url: string, receivedAt: Float64Array, streams: number): Promise<Subscriber> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      const timer = setTimeout(() => (ws.terminate(), reject(new Error(`subscriber: no connection to ${url} within 10 s`))), 10_000);
      ws.once('open', () => (clearTimeout(timer), resolve(new Subscriber(ws, receivedAt, streams))));
      ws.once('error', (e) => (clearTimeout(timer), reject(e)));
    });
  }

  /** Waits until `count` predictions have arrived, none has for idleMs, or capMs have passed. */
  async settle(count: () => number, idleMs: number, capMs: number): Promise<void> {
    const end = clockMs() + capMs;
    this.lastAt = Math.max(this.lastAt, clockMs());
    while (this.received < count() && clockMs() - this.lastAt < idleMs && clockMs() < end) await sleep(5);
  }
}

// ---- schedules ---------------------------------------------------------------------------------------------------

interface Schedule {
  /** Due time of each event, ms after the start. */
  readonly due: Float64Array;
  /** The offered rate (events/s) at a time (ms after the start). */
  rateAt(ms: number): number;
}

function pacedSchedule(streams: number, runMs: number): Schedule {
  const rate = streams * PER_STREAM_HZ;
  const total = Math.round((runMs / 1000) * rate);
  const due = new Float64Array(new SharedArrayBuffer(8 * total));
  for (let g = 0; g < total; g++) due[g] = (g * 1000) / rate;
  return { due, rateAt: () => rate };
}

/**
 * RAMP_FROM_HZ for warmMs, then a geometric ramp (rate x e^(k tau)) to RAMP_TO_HZ over the rest of runMs; with
 * primeEvents, those first at PRIME_HZ (primeMs), and the rest after them.
 */
function rampSchedule(warmMs: number, runMs: number, primeEvents = 0): Schedule {
  const a = RAMP_FROM_HZ;
  const rampS = (runMs - warmMs) / 1000;
  const k = Math.log(RAMP_TO_HZ / RAMP_FROM_HZ) / rampS;
  const primeMs = (primeEvents * 1000) / PRIME_HZ;
  const warmEvents = Math.round((warmMs / 1000) * a);
  // Events in the ramp: the integral of a e^(k tau) over [0, rampS].
  const total = primeEvents + warmEvents + Math.floor((a * (Math.exp(k * rampS) - 1)) / k);
  const due = new Float64Array(new SharedArrayBuffer(8 * total));
  for (let g = 0; g < total; g++) {
    const h = g - primeEvents;
    if (h < 0) due[g] = (g * 1000) / PRIME_HZ;
    else if (h < warmEvents) due[g] = primeMs + (h * 1000) / a;
    else due[g] = primeMs + warmMs + (Math.log(1 + (k * (h - warmEvents)) / a) / k) * 1000;
  }
  return {
    due,
    rateAt: (ms) => (ms < primeMs ? PRIME_HZ : ms < primeMs + warmMs ? a : a * Math.exp((k * (ms - primeMs - warmMs)) / 1000)),
  };
}

// ---- one run ---------------------------------------------------------------------------------------------------------

interface Latency {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank quantiles (as bench/common.ts percentile) of one sorted copy. */
function latency(values: number[]): Latency {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  const at = (q: number) => (n === 0 ? NaN : sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!);
  return { n, p50: at(0.5), p99: at(0.99), max: n === 0 ? NaN : sorted[n - 1]! };
}

interface RampResult {
  /** Highest rate actually sent in a bin that kept up, before the first two failing bins in a row. */
  readonly sustained: number;
  /** The offered (scheduled) rate of that bin. */
  readonly sustainedOffered: number;
  /** True when the generator sent less than 90 % of the offered rate in that bin: the figure is its limit. */
  readonly generatorLimited: boolean;
  /** True when every bin kept up to the end of the ramp. */
  readonly reachedTop: boolean;
  /** Offered rate when the ramp stopped (stall) or ended. */
  readonly stoppedAtRate: number;
  readonly stalled: boolean;
  /** Most predictions received in any PEAK_WINDOW_MS window, per second. */
  readonly peakServed: number;
  /** Send time (ms after start) up to which the ramp kept up. */
  readonly keptUpUntilMs: number;
}

interface RunResult {
  readonly scenario: Scenario;
  readonly binary: boolean;
  readonly server: ServerKind;
  readonly offered: number;
  readonly attempted: number;
  readonly sent: number;
  readonly shed: number;
  readonly predicted: number;
  /** Predictions received per second in the measured window (receipt time). */
  readonly served: number;
  readonly refused: number;
  readonly subscriberDrops: number;
  readonly errorReplies: number;
  readonly firstError: string | undefined;
  /** Server CPU seconds per prediction after the warm-up, and its share of one core in the measured window. */
  readonly cpuPerEvent: number;
  /**
   * The same without the time the service spent calibrating drift detectors (once per stream, after 7,200 of its
   * ticks: a start-up cost, not a per-event one); NaN for the echo server or when calibrations may have run in the
   * warm-up. calibrationSeconds: that time, from driftline_detector_calibration_seconds_total.
   */
  readonly cpuPerEventWithoutCalibration: number;
  readonly calibrationSeconds: number;
  /** Of calibrationSeconds, the part after the warm-up CPU sample (the measured window). */
  readonly calibrationSecondsInWindow: number;
  readonly cpuShare: number;
  /** The server's main thread's share of one core in the measured window: near 100 % it is what limits the rate. */
  readonly mainThreadCpuShare: number;
  /** This bench process's CPU share (generator worker + subscriber + everything else here) in the window. */
  readonly benchCpuShare: number;
  readonly rss: number;
  readonly warm: Latency;
  readonly rest: Latency;
  readonly late: number;
  readonly maxLag: number;
  readonly maxBuffered: number;
  readonly achievedSendRate: number;
  readonly duplicates: number;
  readonly unknown: number;
  readonly settleMs: number;
  readonly exitCode: number | null;
  readonly warnings: number;
  readonly firstWarning: string | undefined;
  readonly ramp: RampResult | undefined;
  /** Predictions of events sent after the knee (max-rate only): queued behind a server that had fallen behind. */
  readonly pastKnee: Latency | undefined;
}

const PEAK_WINDOW_MS = 500;

function peakRate(receivedAt: Float64Array): number {
  const times = Float64Array.from(receivedAt.filter((v) => !Number.isNaN(v))).sort();
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < times.length; hi++) {
    while (times[hi]! - times[lo]! > PEAK_WINDOW_MS) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return (best * 1000) / PEAK_WINDOW_MS;
}

function analyseRamp(schedule: Schedule, plan: Plan, start: number, sentAt: Float64Array, receivedAt: Float64Array, attempted: number, stalled: boolean): RampResult {
  const due = schedule.due;
  // Bins of the ramp by actual send time (a shed event, which has none, by its slot).
  const bins: { sent: number; shed: number; predicted: number; lat: number[] }[] = [];
  for (let g = 0; g < attempted; g++) {
    const s = sentAt[g]!;
    if (Number.isNaN(s)) continue;
    const t = (s < 0 ? start + due[g]! : s) - start - plan.warmMs;
    if (t < 0) continue;
    const bin = (bins[Math.floor(t / plan.binMs)] ??= { sent: 0, shed: 0, predicted: 0, lat: [] });
    if (s < 0) {
      bin.shed++;
      continue;
    }
    bin.sent++;
    const r = receivedAt[g]!;
    if (!Number.isNaN(r)) {
      bin.predicted++;
      bin.lat.push(r - s);
    }
  }
  const used = Array.from(bins, (b) => b ?? { sent: 0, shed: 0, predicted: 0, lat: [] });
  const keeps = used.map((b) => b.shed === 0 && b.sent > 0 && b.predicted === b.sent && latency(b.lat).p99 <= KEEP_UP_P99_MS);
  let knee = used.length;
  for (let i = 0; i < used.length; i++) {
    if (!keeps[i] && (i + 1 >= used.length || !keeps[i + 1])) {
      knee = i;
      break;
    }
  }
  let sustained = NaN;
  let sustainedOffered = NaN;
  for (let i = 0; i < knee; i++) {
    const sent = (used[i]!.sent * 1000) / plan.binMs;
    if (keeps[i] && !(sent <= sustained)) {
      sustained = sent;
      sustainedOffered = schedule.rateAt(plan.warmMs + (i + 0.5) * plan.binMs);
    }
  }
  const lastDue = attempted > 0 ? due[Math.min(attempted, due.length) - 1]! : 0;
  // The last bin is cut short when the ramp ends or stops inside it: it is only part of a bin.
  return {
    sustained,
    sustainedOffered,
    generatorLimited: sustained < 0.9 * sustainedOffered,
    reachedTop: knee === used.length && !stalled && attempted === due.length,
    stoppedAtRate: schedule.rateAt(lastDue),
    stalled,
    peakServed: peakRate(receivedAt),
    keptUpUntilMs: plan.warmMs + knee * plan.binMs,
  };
}

interface RunContext {
  readonly plan: Plan;
  readonly producer: Producer;
  readonly configFile: string;
  readonly shardedConfigFile: string;
}

async function measure(ctx: RunContext, scenario: Scenario, binary: boolean, kind: ServerKind, report = true): Promise<RunResult> {
  const { producer } = ctx;
  const schedule = scenario.kind === 'ramp'
    ? rampSchedule(ctx.plan.warmMs, ctx.plan.runMs, (scenario.primeTicks ?? 0) * scenario.streams)
    : pacedSchedule(scenario.streams, ctx.plan.runMs);
  // A primed scenario's priming is part of its warm-up: nothing in it is measured.
  const primeMs = primeMsOf(scenario);
  const plan: Plan = { ...ctx.plan, warmMs: ctx.plan.warmMs + primeMs, runMs: ctx.plan.runMs + primeMs };
  const total = schedule.due.length;
  const sentBuffer = new SharedArrayBuffer(8 * total);
  const sentAt = new Float64Array(sentBuffer).fill(NaN);
  const receivedAt = new Float64Array(total).fill(NaN);
  const control = new Int32Array(new SharedArrayBuffer(8));

  const server = ServerProcess.spawn(serverSpec(kind, kind === SHARDED ? ctx.shardedConfigFile : ctx.configFile));
  let sub: Subscriber | undefined;
  let connected = false;
  let stallTimer: NodeJS.Timeout | undefined;
  const sampleTimers: NodeJS.Timeout[] = [];
  try {
    const { urls } = await server.ready(plan.readyTimeoutMs);
    producer.reset();
    const open = producer.expect('open', 10_000);
    producer.send({ cmd: 'connect', url: urls.ingest });
    [sub] = await Promise.all([Subscriber.connect(`${urls.predictions}?type=prediction`, receivedAt, scenario.streams), open]);
    connected = true;

    // CPU samples of the server (and of this process) at the start, at the end of the warm-up and at the end of the
    // schedule; the last one after the settle.
    const sample = () => ({ at: clockMs(), server: cpuSeconds(server.pid), serverMain: cpuSeconds(server.pid, true), bench: process.cpuUsage() });
    type Sample = ReturnType<typeof sample>;
    const start = clockMs() + 50;
    let warmSample: Sample | undefined;
    let endSample: Sample | undefined;
    // The calibration time so far at the end of the warm-up, so that the window's own is known.
    const metricsUrl = urls.metrics;
    let calibrationAtWarm: Promise<number> = Promise.resolve(0);
    sampleTimers.push(setTimeout(() => {
      warmSample = sample();
      if (metricsUrl !== undefined) calibrationAtWarm = calibrationSecondsOf(metricsUrl);
    }, start + plan.warmMs - clockMs()));
    sampleTimers.push(setTimeout(() => (endSample = sample()), start + plan.runMs - clockMs()));

    // Max-rate: stop the ramp once the oldest unanswered event is STALL_MS old.
    let stalled = false;
    if (scenario.kind === 'ramp') {
      let head = 0;
      stallTimer = setInterval(() => {
        // Not in the warm-up, which for a primed ramp holds the calibrations' stall on purpose.
        if (clockMs() < start + plan.warmMs) return;
        const dealt = Atomics.load(control, 1);
        while (head < dealt && (sentAt[head]! < 0 || !Number.isNaN(receivedAt[head]!))) head++;
        if (head < dealt && !Number.isNaN(sentAt[head]!) && clockMs() - sentAt[head]! > STALL_MS) {
          stalled = true;
          Atomics.store(control, 0, 1);
          clearInterval(stallTimer);
        }
      }, 20);
    }

    const done = producer.expect('done', plan.runMs + 60_000);
    producer.send({ cmd: 'go', binary, streams: scenario.streams, perMessage: scenario.perMessage ?? 1, total, start, shedAbove: SHED_ABOVE_BYTES, due: schedule.due.buffer as SharedArrayBuffer, sentAt: sentBuffer, control: control.buffer as SharedArrayBuffer });
    const paced = await done;
    if (stallTimer) clearInterval(stallTimer);
    // A run cut short by the ramp's stop still has its end sample taken now.
    for (const t of sampleTimers) clearTimeout(t);
    endSample ??= sample();
    warmSample ??= endSample;
    const settleStart = clockMs();
    await sub.settle(() => paced.sent, SETTLE_IDLE_MS, plan.settleCapMs);
    const settleMs = clockMs() - settleStart;
    const settled = sample();
    const rss = rssBytes(server.pid);

    let refused = NaN;
    let subscriberDrops = NaN;
    let calibrationSeconds = NaN;
    if (urls.metrics !== undefined) {
      try {
        const res = await fetch(urls.metrics, { signal: AbortSignal.timeout(5000) });
        const c = counters(await res.text(), ['driftline_events_rejected_total', 'driftline_subscriber_messages_dropped_total', 'driftline_detector_calibration_seconds_total']);
        refused = c.get('driftline_events_rejected_total')!;
        subscriberDrops = c.get('driftline_subscriber_messages_dropped_total')!;
        calibrationSeconds = c.get('driftline_detector_calibration_seconds_total')!;
      } catch {
        /* reported as n/a */
      }
    }
    const calibrationSecondsInWindow = calibrationSeconds - (await calibrationAtWarm);
    const closed = producer.expect('closed', 10_000);
    producer.send({ cmd: 'close' });
    const { errorReplies, firstError } = await closed;
    connected = false;
    sub.ws.terminate();
    const exitCode = await server.stop();
    if (kind === 'echo' && server.stopLine) {
      refused = Number(server.stopLine.rejected);
      subscriberDrops = Number(server.stopLine.dropped);
    }

    // ---- figures ----
    const warmLat: number[] = [];
    const restLat: number[] = [];
    const pastKneeLat: number[] = [];
    const ramp = scenario.kind === 'ramp' ? analyseRamp(schedule, plan, start, sentAt, receivedAt, paced.attempted, stalled) : undefined;
    let predicted = 0;
    /** Predictions received after the warm-up CPU sample: the work the CPU after it paid for (a backlog included). */
    let receivedAfterWarmSample = 0;
    let receivedInWindow = 0;
    let firstSend = Infinity;
    let lastSend = -Infinity;
    const windowEnd = Math.min(start + plan.runMs, endSample.at);
    for (let g = 0; g < paced.attempted; g++) {
      const s = sentAt[g]!;
      if (Number.isNaN(s) || s < 0) continue;
      if (s < firstSend) firstSend = s;
      if (s > lastSend) lastSend = s;
      const r = receivedAt[g]!;
      if (Number.isNaN(r)) continue;
      predicted++;
      const sinceStart = s - start;
      if (sinceStart < plan.warmMs) warmLat.push(r - s);
      else {
        if (ramp && sinceStart >= ramp.keptUpUntilMs) pastKneeLat.push(r - s);
        else restLat.push(r - s);
      }
      if (r >= start + plan.warmMs && r < windowEnd) receivedInWindow++;
      if (r >= warmSample.at) receivedAfterWarmSample++;
    }
    const windowS = (windowEnd - (start + plan.warmMs)) / 1000;
    const servedInWindow = windowS > 0 ? receivedInWindow / windowS : NaN;
    const cpuAfterWarm = settled.server - warmSample.server;
    const windowWall = (endSample.at - warmSample.at) / 1000;
    const benchCpu = (endSample.bench.user + endSample.bench.system - warmSample.bench.user - warmSample.bench.system) / 1e6;
    const offered = scenario.kind === 'ramp' ? ramp!.stoppedAtRate : scenario.streams * PER_STREAM_HZ;
    return {
      scenario, binary, server: kind, offered, attempted: paced.attempted, sent: paced.sent, shed: paced.shed, predicted,
      served: scenario.kind === 'ramp' ? ramp!.sustained : servedInWindow,
      refused, subscriberDrops, errorReplies, firstError,
      cpuPerEvent: receivedAfterWarmSample > 0 ? cpuAfterWarm / receivedAfterWarmSample : NaN,
      cpuPerEventWithoutCalibration: receivedAfterWarmSample > 0 ? (cpuAfterWarm - calibrationSecondsInWindow) / receivedAfterWarmSample : NaN,
      calibrationSeconds,
      calibrationSecondsInWindow,
      cpuShare: windowWall > 0 ? (endSample.server - warmSample.server) / windowWall : NaN,
      mainThreadCpuShare: windowWall > 0 ? (endSample.serverMain - warmSample.serverMain) / windowWall : NaN,
      benchCpuShare: windowWall > 0 ? benchCpu / windowWall : NaN,
      rss, warm: latency(warmLat), rest: latency(restLat), late: paced.late, maxLag: paced.maxLag, maxBuffered: paced.maxBuffered,
      achievedSendRate: paced.sent > 1 ? ((paced.sent - 1) * 1000) / (lastSend - firstSend) : NaN,
      duplicates: sub.duplicates, unknown: sub.unknown, settleMs, exitCode, warnings: server.warnings, firstWarning: server.firstWarning,
      ramp, pastKnee: ramp ? latency(pastKneeLat) : undefined,
    };
  } catch (err) {
    if (report) process.stderr.write(`--- ${kind} output (last lines) ---\n${server.logTail}\n---\n`);
    throw err;
  } finally {
    if (stallTimer) clearInterval(stallTimer);
    for (const t of sampleTimers) clearTimeout(t);
    if (connected) {
      // The producer's socket to a server that is going away: close it so the next run can connect.
      const closed = producer.expect('closed', 5_000).catch(() => undefined);
      producer.send({ cmd: 'close' });
      await closed;
    }
    sub?.ws.terminate();
    await server.stop();
  }
}

// ---- the section ---------------------------------------------------------------------------------------------------

const ms = (x: number) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) : 'n/a');
const rate = (x: number) => (Number.isFinite(x) ? int(x) : 'n/a');
const count = (x: number) => (Number.isFinite(x) ? int(x) : 'n/a');
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${num(a / b, 2)}x` : 'n/a');
const frames = (binary: boolean) => (binary ? 'binary' : 'json');

/** Runs the section: every scenario with both frame kinds against the service and the echo floor. */
export async function runStreams(options: BenchOptions): Promise<TargetResult[]> {
  const smoke = process.env[SMOKE_ENV] === '1';
  const sustained = process.env[SUSTAINED_ENV];
  if (sustained !== undefined && !(Number.isSafeInteger(Number(sustained)) && Number(sustained) >= 1 && Number(sustained) <= MAX_STREAMS)) {
    throw new Error(`${SUSTAINED_ENV} must be a stream count from 1 to ${MAX_STREAMS}, got '${sustained}'`);
  }
  const ratioRounds = process.env[RATIO_ENV];
  if (ratioRounds !== undefined && !(Number.isSafeInteger(Number(ratioRounds)) && Number(ratioRounds) >= 1 && Number(ratioRounds) <= MAX_RATIO_ROUNDS)) {
    throw new Error(`${RATIO_ENV} must be a round count from 1 to ${MAX_RATIO_ROUNDS}, got '${ratioRounds}'`);
  }
  const plan = sustained !== undefined
    ? sustainedPlan(Number(sustained))
    : ratioRounds !== undefined ? ratioPlan(Number(ratioRounds)) : smoke ? SMOKE : options.quick ? QUICK : FULL;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'driftline-bench-streams-'));
  const configFile = writeServiceConfig(dir, { maxStreams: MAX_STREAMS, hiddenSize: HIDDEN });
  const shardedConfigFile = writeServiceConfig(dir, { maxStreams: MAX_STREAMS, hiddenSize: HIDDEN, shards: 2 });
  const started = clockMs();
  const loadBefore = os.loadavg();

  // Stopped from outside (Ctrl-C, a test's timeout): the servers go too.
  const onSignal = (signal: NodeJS.Signals): void => {
    killServers();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const producer = await startProducer();
  const ctx: RunContext = { plan, producer, configFile, shardedConfigFile };
  const results: RunResult[] = [];
  try {
    // The generator's own code (send loop, ws client, subscriber) is JIT-warmed against an echo server first.
    const warmPlan: Plan = { ...plan, runMs: plan.generatorWarmMs, warmMs: 0 };
    for (const binary of [true, false]) await measure({ ...ctx, plan: warmPlan }, paced(100), binary, 'echo', false);

    for (const scenario of plan.scenarios) {
      for (const binary of plan.binaryOnly === true ? [true] : plan.jsonOnly === true ? [false] : [false, true]) {
        const kinds: readonly ServerKind[] = plan.servers ?? (scenario.streams >= SHARDED_FROM_STREAMS ? ['service', SHARDED, 'echo'] : ['service', 'echo']);
        for (const kind of kinds) {
          const r = await measure(ctx, scenario, binary, kind);
          results.push(r);
          process.stderr.write(
            `[streams] ${scenario.name}, ${frames(binary)}, ${kind}: served ${rate(r.served)} ev/s, p99 ${ms(r.rest.p99)} ms, CPU ${ms(r.cpuPerEvent * 1e6)} us/ev\n`,
          );
        }
      }
    }
  } finally {
    await producer.stop();
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const wallS = (clockMs() - started) / 1000;

  const label = (r: RunResult) => [r.scenario.name, frames(r.binary), r.server];
  const warmS = num(plan.warmMs / 1000, 1);
  const runS = num(plan.runMs / 1000, 1);
  const binarySize = 25 + (1 + KEY_DIGITS) + 4 * (INPUTS + OUTPUTS);

  printTable(
    `streams: events/s, CPU and RSS per server process; tanh RNN n = ${HIDDEN}, ${INPUTS} inputs, ${OUTPUTS} outputs; service vs echo floor`,
    ['scenario', 'frames', 'server', 'offered ev/s', 'served ev/s', 'sent', 'predicted', 'unpredicted', 'shed', 'refused', 'sub drops', 'CPU %', 'main thread %', 'CPU us/ev', 'RSS MB'],
    results.map((r) => [
      ...label(r), rate(r.offered), rate(r.served), count(r.sent), count(r.predicted), count(r.sent - r.predicted), count(r.shed),
      count(r.refused), count(r.subscriberDrops), Number.isFinite(r.cpuShare) ? `${num(r.cpuShare * 100, 0)} %` : 'n/a',
      Number.isFinite(r.mainThreadCpuShare) ? `${num(r.mainThreadCpuShare * 100, 0)} %` : 'n/a',
      ms(r.cpuPerEvent * 1e6), Number.isFinite(r.rss) ? num(r.rss / 1e6, 1) : 'n/a',
    ]),
    [
      `Each row is a fresh server process: \`driftline run\` from source (the default pipeline) or bench/support/echo-server.ts (decode,`,
      `running mean of the labels, the same prediction message). ${runS} s of open-loop load per run, the first ${warmS} s apart as warm-up.`,
      `offered: the schedule's rate (${PER_STREAM_HZ} Hz per stream, round-robin); for max-rate, the ramp's rate when it stopped (or its top).`,
      `served: predictions received per second from ${warmS} s to the end of the schedule (receipt time: above offered while a backlog`,
      `from the warm-up drains); for max-rate, the sustained rate where predictions kept up (see the max-rate table).`,
      `sent: frames sent over the whole run; predicted: of those, predictions received; unpredicted = sent - predicted (after waiting`,
      `up to ${num(plan.settleCapMs / 1000, 0)} s, or until ${num(SETTLE_IDLE_MS / 1000, 0)} s without one). shed: events the generator skipped while more than ${SHED_ABOVE_BYTES / 2 ** 20} MiB sat unsent`,
      `in its socket (the server was not reading). refused: the service's driftline_events_rejected_total from /metrics (the echo`,
      `server's own count of refused frames); sub drops: predictions the server skipped for this subscriber (driftline_subscriber_`,
      `messages_dropped_total; the echo server's count), which would mean the bench's subscriber fell behind, not the server.`,
      `CPU: of the server process (all threads), from /proc/<pid>/stat utime + stime (${clockTicksPerSecond()} ticks/s): % of one core from the end of the`,
      `warm-up to the end of the schedule; main thread %: the same for its main thread alone (/proc/<pid>/task/<pid>/stat: sockets,`,
      `routing, publishing; with shards the learners run on other threads), near 100 % it is what limits the rate; us/ev: its CPU from the end of the warm-up to the last prediction over the predictions`,
      `received in that time (so a backlog left by the warm-up is paid for by the events it holds).`,
      `RSS: VmRSS of the server process after the last prediction came in. Binary frames are ${binarySize} bytes (key 's' + 4 digits, 96 + 2 float32).`,
      ...plan.notes,
    ],
    'lllrrrrrrrrrrrr',
  );

  printTable(
    `streams: event-to-prediction latency (ms), send -> receipt on the bench's clock; warm-up (first ${warmS} s) apart`,
    ['scenario', 'frames', 'server', 'warm n', 'warm p50', 'warm p99', 'warm max', 'n', 'p50', 'p99', 'max'],
    results.map((r) => [
      ...label(r), count(r.warm.n), ms(r.warm.p50), ms(r.warm.p99), ms(r.warm.max), count(r.rest.n), ms(r.rest.p50), ms(r.rest.p99), ms(r.rest.max),
    ]),
    [
      `From just before the producer's ws.send (a worker thread of this bench process) to the subscriber's message event (its main`,
      'thread), exact per event, matched by (stream, seq): ws framing, loopback TCP both ways, the server\'s decode and work, its JSON',
      'encode and send, and the subscriber\'s read. A server that falls behind an open-loop schedule queues frames, and the queue shows',
      `here. Warm-up by send time: the first ${warmS} s after the first slot. For max-rate, n / p50 / p99 / max are the events sent after the`,
      `warm-up up to the knee of the ramp (those after it queued behind a saturated server: see the max-rate table).`,
    ],
    'lllrrrrrrrr',
  );

  const ratioRows: string[][] = [];
  for (const scenario of plan.scenarios) {
    for (const binary of [false, true]) for (const kind of ['service', SHARDED] as const) {
      const s = results.find((r) => r.scenario === scenario && r.binary === binary && r.server === kind);
      const e = results.find((r) => r.scenario === scenario && r.binary === binary && r.server === 'echo');
      if (!s || !e) continue;
      ratioRows.push([
        scenario.name, frames(binary), kind, ms(s.cpuPerEvent * 1e6), ms(e.cpuPerEvent * 1e6), ratio(s.cpuPerEvent, e.cpuPerEvent),
        `${ms(s.calibrationSeconds)} / ${ms(s.calibrationSecondsInWindow)}`, ms(s.cpuPerEventWithoutCalibration * 1e6), ratio(s.cpuPerEventWithoutCalibration, e.cpuPerEvent),
        rate(s.served), rate(e.served) + (e.ramp?.reachedTop ? '+' : ''), ratio(s.served, e.served), ratio(s.rest.p99, e.rest.p99),
        Number.isFinite(s.rss) && Number.isFinite(e.rss) ? `${num(s.rss / 1e6, 0)} / ${num(e.rss / 1e6, 0)} MB` : 'n/a',
      ]);
    }
  }
  printTable(
    'streams: service / echo floor, measured in the same run',
    ['scenario', 'frames', 'service', 'svc us/ev', 'echo us/ev', 'CPU/ev ratio', 'calibration s: all / window', 'svc us/ev w/o cal.', 'ratio w/o cal.', 'svc served/s', 'echo served/s', 'served ratio', 'p99 ratio', 'RSS svc / echo'],
    ratioRows,
    [
      'CPU/ev ratio: the service\'s CPU per prediction over the echo server\'s (how much the learner and the pipeline cost beyond the',
      'ws edge and the codec). calibration s: the service\'s time calibrating drift detectors (driftline_detector_calibration_',
      `seconds_total), once per stream after ${int(TICKS_BEFORE_CALIBRATION)} of its ticks: over the run, and in the measured window (after the warm-up; a`,
      `'primed' scenario first feeds every stream ${int(RAMP_8.primeTicks ?? 0)} ticks at ${int(PRIME_HZ)} ev/s, unmeasured, so that its window holds none); w/o cal.:`,
      'the CPU per event and its ratio without the window\'s calibrations (their time is wall time, a little above the CPU it took when',
      'the machine is busy, so the figure w/o cal. is a slight underestimate). served ratio: events/s served by the service over the echo\'s (1.00x while both keep up with the',
      'schedule); p99 ratio: post-warm-up p99 latency. A \'+\' on the echo\'s max-rate figure: it kept up to the top of the ramp',
      `(${int(RAMP_TO_HZ)} ev/s), so its true ceiling is higher and the ratio an upper bound.`,
    ],
    'lllrrrrrrrrrrr',
  );

  const rampRows = results
    .filter((r) => r.ramp)
    .map((r) => {
      const x = r.ramp!;
      return [
        int(r.scenario.streams), frames(r.binary), r.server, rate(x.sustained) + (x.reachedTop ? '+' : ''), rate(x.sustainedOffered), x.generatorLimited ? 'yes' : 'no',
        rate(x.peakServed), x.stalled ? `stalled at ${rate(x.stoppedAtRate)}` : x.reachedTop ? `top (${rate(x.stoppedAtRate)})` : `ended at ${rate(x.stoppedAtRate)}`,
        count(r.pastKnee?.n ?? 0), ms(r.pastKnee?.p99 ?? NaN), ms(r.pastKnee?.max ?? NaN),
      ];
    });
  if (rampRows.length > 0) {
    printTable(
      `streams: max-rate: ${int(RAMP_FROM_HZ)} ev/s for ${warmS} s, then a geometric ramp to ${int(RAMP_TO_HZ)} ev/s over ${num((plan.runMs - plan.warmMs) / 1000, 1)} s`,
      ['streams', 'frames', 'server', 'sustained ev/s', 'offered there', 'gen-limited', 'peak served ev/s', 'ramp', 'past knee n', 'past knee p99', 'past knee max'],
      rampRows,
      [
        `sustained: the most events actually sent in a ${plan.binMs} ms bin of the ramp (by send time), per second, among the bins in which every`,
        `event sent was predicted with p99 <= ${KEEP_UP_P99_MS} ms and none was shed, before the first two bins in a row that were not ('+': every`,
        'bin kept up to the top of the ramp). offered there: the schedule\'s rate in that bin. gen-limited: yes when the generator sent',
        'less than 90 % of it, so that the sustained figure is the load generator\'s limit on this machine, not the server\'s.',
        `peak served: the most predictions received in any ${PEAK_WINDOW_MS} ms, per second, including the backlog drained after the ramp`,
        `stopped: the server's throughput when saturated. ramp: the ramp stops once the oldest unanswered event is ${STALL_MS} ms old`,
        `('stalled'). past knee: latency (ms) of the events sent after the knee, which queued behind a saturated server.`,
        `A primed scenario first feeds every stream ${int(RAMP_8.primeTicks ?? 0)} ticks at ${int(PRIME_HZ)} ev/s (past the detectors' calibration), then the same warm-up`,
        'and ramp; the priming is unmeasured and not watched for stalls.',
      ],
      'rllrrlrrrrr',
    );
  }

  printTable(
    'streams: the load generator (this bench process), per run',
    ['scenario', 'frames', 'server', 'sent ev/s', 'late sends', 'max lag ms', 'peak buffered', 'bench CPU %', 'settle s', 'dup / other', 'error replies', 'exit'],
    results.map((r) => [
      ...label(r), rate(r.achievedSendRate), `${count(r.late)}${r.sent > 0 ? ` (${num((100 * r.late) / Math.max(1, r.sent), 1)} %)` : ''}`, ms(r.maxLag),
      r.maxBuffered >= 1e6 ? `${num(r.maxBuffered / 1e6, 1)} MB` : `${int(r.maxBuffered / 1e3)} kB`,
      Number.isFinite(r.benchCpuShare) ? `${num(r.benchCpuShare * 100, 0)} %` : 'n/a', num(r.settleMs / 1000, 2),
      `${int(r.duplicates)} / ${int(r.unknown)}`, `${int(r.errorReplies)}${r.firstError ? ` (${r.firstError.slice(0, 40)})` : ''}`, String(r.exitCode),
    ]),
    [
      `sent ev/s: first to last send of the run. late sends: more than ${LATE_MS} ms behind their slot (above ${int(1000 / WAKE_MS)} ev/s the generator sends in`,
      `bursts every ${WAKE_MS} ms, so lags up to about ${WAKE_MS} ms are by design); any late sends mean the offered rate was not kept and the server is`,
      'not to blame for them. peak buffered: the most the producer\'s socket held unsent. bench CPU %: this whole process (producer',
      `thread, subscriber, the rest), % of one core in the measured window; ${os.availableParallelism()} cores available, shared by it and the server.`,
      'settle: the wait for the last predictions after the last send. dup / other: duplicate predictions / messages that were not',
      'predictions of this run. exit: the server\'s exit code after SIGTERM.',
      `Load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; the section took ${num(wallS, 0)} s.` +
        (results.some((r) => r.warnings > 0)
          ? ` Service warn+ log lines: ${results.filter((r) => r.warnings > 0).map((r) => `${r.scenario.name}/${frames(r.binary)} ${r.warnings} (${r.firstWarning})`).join('; ')}.`
          : ''),
    ],
    'lllrrrrrrrrr',
  );
  return streamsTargets(results);
}

/** Issue 18's targets, from this run's rows (absent when the plan did not run the scenario). */
function streamsTargets(results: readonly RunResult[]): TargetResult[] {
  const targets: TargetResult[] = [];
  // The 1,000-stream latency target, and the same for the stream count of a sustained run.
  const sustainedStreams = Number(process.env[SUSTAINED_ENV] ?? 1000);
  for (const t of results.filter((r) => r.scenario.kind === 'paced' && r.scenario.streams === sustainedStreams && r.binary && r.server !== 'echo')) {
    const lost = t.sent - t.predicted + t.shed;
    targets.push({
      section: 'streams',
      target: `${t.scenario.name}, binary frames, ${t.server}: all served, p99 after warm-up < ${P99_TARGET_MS} ms, nothing shed or unpredicted`,
      measured: `${rate(t.served)} of ${rate(t.offered)} ev/s, p99 ${ms(t.rest.p99)} ms, ${int(lost)} shed or unpredicted`,
      pass: t.served >= 0.99 * t.offered && t.rest.p99 < P99_TARGET_MS && lost === 0,
    });
  }
  // One pair per round (the full and quick plans have one round; RATIO_ENV several): judged on the median round.
  const pairs = results
    .filter((r) => r.scenario.kind === 'ramp' && r.scenario.streams === RAMP_8.streams && !r.binary && r.server === 'service')
    .map((s) => ({ s, e: results.find((r) => r.scenario === s.scenario && !r.binary && r.server === 'echo') }))
    .filter((p): p is { s: RunResult; e: RunResult } => p.e !== undefined)
    .map((p) => ({ ...p, steady: p.s.cpuPerEventWithoutCalibration / p.e.cpuPerEvent }))
    .sort((a, b) => (Number.isNaN(a.steady) ? 1 : Number.isNaN(b.steady) ? -1 : a.steady - b.steady));
  if (pairs.length > 0) {
    // Per event: the calibrations the run holds are a start-up cost of each stream, shown beside it, not in it.
    const { s, e, steady } = pairs[(pairs.length - 1) >> 1]!;
    const all = s.cpuPerEvent / e.cpuPerEvent;
    const rounds = pairs.length > 1 ? `median of ${pairs.length} rounds (${pairs.map((p) => `${num(p.steady)}x`).join(', ')}): ` : '';
    targets.push({
      section: 'streams',
      target: `CPU per event, JSON frames, 8 streams at max rate: service within ${CPU_RATIO_TARGET}x of the echo floor (detector calibrations apart)`,
      measured:
        `${rounds}${num(steady)}x (${ms(s.cpuPerEventWithoutCalibration * 1e6)} vs ${ms(e.cpuPerEvent * 1e6)} us/ev); ` +
        `with the run's ${ms(s.calibrationSeconds)} s of calibration: ${num(all)}x (${ms(s.cpuPerEvent * 1e6)} us/ev)`,
      pass: steady <= CPU_RATIO_TARGET,
    });
  }
  return targets;
}
