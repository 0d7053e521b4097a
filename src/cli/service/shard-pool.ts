import type { Worker } from 'node:worker_threads';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { WebSocket } from 'ws';
import type { DriftlineWebSocketServer } from '../../adapters/websocket/server.js';
import type { DriftlineConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { DashboardFeed } from '../../dashboard/dashboard-feed.js';
import type { DriftlineMetrics } from '../../metrics/driftline-metrics.js';
import type { CheckpointMeta } from '../../streams/checkpoint-store.js';
import type { FileCheckpointStore } from '../../streams/file-checkpoint-store.js';
import { rejection, type StreamInput } from '../../streams/messages.js';
import type { StreamMarks } from '../../streams/predict-then-learn.js';
import type { ProgressJournal } from '../../streams/progress-journal.js';
import { outboundTypeBit, type FromShard, type ShardTurn, type ShardWorkerData, type ToShard } from './shard-protocol.js';
import { ShardRecordWriter, SHOWN_ON_DASHBOARD } from './shard-records.js';
import { createSharedRing, RingWriter } from './shared-ring.js';
import { shardOf } from './shard-of.js';
import { startModuleWorker } from './module-worker.js';

/**
 * The main thread's side of `streams.shards: N > 1`: N worker threads (shard-worker.ts), each a stream host over the
 * streams whose key hashes to it (shard-of.ts), so learning uses every core while this thread keeps the sockets,
 * the progress journal, the metrics endpoint and the dashboard.
 *
 * - Inputs go to each shard through a shared ring (shared-ring.ts, shard-records.ts), published once per turn; the
 *   worker is woken only when it sleeps. Past MAX_IN_FLIGHT inputs not yet taken by a shard (or a full ring), the
 *   peers sending to it are paused until it is down to half.
 * - A shard's turn comes back as one message: the outputs already encoded for the types some subscriber wants (so
 *   this thread only writes them to sockets), predictions to journal before they are published, replies, acks,
 *   pauses, and the shown streams' outputs for the dashboard.
 * - /metrics: each shard's registry, gathered as JSON at scrape time and merged with this thread's (streams are
 *   disjoint across shards, so summing is exact).
 * - A shard that dies is restarted and counted (driftline_shard_restarts_total). What it had not checkpointed is
 *   gone, so every peer that sent to it is disconnected (close code 1012) and its client resumes from the
 *   checkpoints (the resume protocol): nothing is lost, nothing learned twice. The other shards keep serving.
 * - Same seeds, same bytes: a stream is learned by the same code with the same spec in whichever thread.
 */
export interface ShardPoolOptions {
  readonly config: DriftlineConfig;
  readonly logger: Logger;
  /** The main thread's metrics: inputs counted at the edge, event-to-prediction at the send, shard restarts. */
  readonly metrics: DriftlineMetrics;
  readonly registry: Registry;
  readonly server: DriftlineWebSocketServer;
  readonly store?: FileCheckpointStore;
  readonly checkpointed?: Iterable<CheckpointMeta>;
  readonly journal?: ProgressJournal;
  readonly dashboard?: DashboardFeed;
  readonly dashboardStreams: number;
  /** A shard's pipeline failed (not a crash: its input or its config): the service stops. */
  readonly onFailure: (err: Error) => void;
}

export interface ShardPool {
  accept(input: StreamInput, peer: unknown): void;
  marks(streams: readonly string[] | undefined): Promise<Record<string, StreamMarks>>;
  /** The Prometheus text of this thread's registry merged with every shard's. */
  metricsText(): Promise<string>;
  stateBytesOf(stream: string): number | undefined;
  /** Shards restarted so far. */
  readonly restarts: number;
  /** The live worker of `shard` (for tests that kill one). */
  workerOf(shard: number): Worker;
  stop(): Promise<{ checkpointsSaved?: number; checkpointsFailed?: number; flushFailed: boolean }>;
}

/** Inputs handed to a shard and not yet taken, past which its senders are paused. */
const MAX_IN_FLIGHT = 8_192;
/** Bytes of each shard's input ring: 8,192 records of 96 floats and 2 labels take about 3.6 MB. */
const RING_BYTES = 8 * 1024 * 1024;
/** How long a scrape waits for a shard's metrics. */
const METRICS_TIMEOUT_MS = 5_000;
const RESTART_CLOSE_CODE = 1012;
/** A sleeping shard is woken at most this often, unless WAKE_BATCH inputs wait for it. */
const WAKE_INTERVAL_MS = 1;
const WAKE_BATCH = 64;
/** A shard dying more often than this within a minute is not a crash to ride out: the service stops. */
const MAX_DEATHS_PER_MINUTE = 5;

interface Shard {
  readonly index: number;
  worker: Worker;
  ready: boolean;
  writer: ShardRecordWriter;
  /** The ring of the live worker (a restarted one gets a fresh ring). */
  ring: SharedArrayBuffer;
  /** Inputs pushed to it and not yet reported taken. */
  inFlight: number;
  /** Peers whose inputs went to it since it last started: cut off if it dies. */
  readonly peers: Set<number>;
  readonly pending: Map<number, { message: ToShard; resolve: (value: unknown) => void }>;
  /** When it died, over the last minute. */
  readonly deaths: number[];
  /** When its worker was last woken to read the ring (performance.now()), and the timer of a deferred wake-up. */
  lastWake: number;
  wakeTimer?: NodeJS.Timeout | undefined;
  stopped?: (stats: { checkpointsSaved?: number; checkpointsFailed?: number; flushFailed: boolean }) => void;
}

export async function startShardPool(options: ShardPoolOptions): Promise<ShardPool> {
  const { config, logger: log, metrics, server, journal, dashboard } = options;
  const n = config.streams.shards;
  const durable = config.checkpoint !== undefined;
  // With checkpoints a shard's pool evicts its least recently used stream past its part of maxStreams; without, the
  // limit is kept here, over all shards, as one pool would keep it.
  const perShardStreams = durable ? Math.ceil(config.streams.maxStreams / n) : config.streams.maxStreams;
  const admitted = durable ? undefined : new Set<string>();
  const workerUrl = new URL(`./shard-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

  const peerIds = new Map<unknown, number>();
  const peersById = new Map<number, unknown>();
  let nextPeer = 1;
  const peerId = (peer: unknown): number => {
    if (peer === undefined) return 0;
    let id = peerIds.get(peer);
    if (id === undefined) {
      id = nextPeer++;
      peerIds.set(peer, id);
      peersById.set(id, peer);
    }
    return id;
  };
  /** Peers disconnected after a shard died: what they still send is dropped (they resume once reconnected). */
  const cut = new Set<number>();
  /** Per peer, who holds it paused: shard indices, and -1 for this thread's own bound. */
  const pausedBy = new Map<number, Set<number>>();
  const setPaused = (id: number, by: number, on: boolean) => {
    let set = pausedBy.get(id);
    if (on) {
      if (set === undefined) pausedBy.set(id, (set = new Set()));
      const was = set.size;
      set.add(by);
      if (was === 0) server.setPaused(peersById.get(id), true);
    } else if (set !== undefined && set.delete(by) && set.size === 0) {
      pausedBy.delete(id);
      server.setPaused(peersById.get(id), false);
    }
  };
  // Connections come and go; their numbers go with them.
  const prune = setInterval(() => {
    for (const [id, peer] of peersById) {
      if ((peer as WebSocket).readyState !== WebSocket.CLOSED) continue;
      peersById.delete(id);
      peerIds.delete(peer);
      cut.delete(id);
      pausedBy.delete(id);
      for (const shard of shards) shard.peers.delete(id);
    }
  }, 10_000);
  prune.unref();

  const stateBytes = new Map<string, number>();
  const shownStreams = new Set<string>();
  const wantedTypes = new SharedArrayBuffer(4);
  const wantedMask = new Int32Array(wantedTypes);
  let requestId = 0;
  let stopping = false;
  let restarts = 0;
  /** Set once every shard has started: a shard that dies while starting fails the start instead. */
  let started = false;

  const spawn = (index: number, checkpointed: readonly CheckpointMeta[]): Worker => {
    const shard = shards[index]!;
    const workerData: ShardWorkerData = {
      ring: shard.ring,
      wantedTypes,
      shard: index,
      shards: n,
      config,
      maxStreams: perShardStreams,
      checkpointed,
      predictedBefore: journal?.marksNow() ?? new Map(),
    };
    const worker = startModuleWorker(workerUrl, workerData);
    worker.on('message', (message: FromShard) => onMessage(shards[index]!, message));
    worker.on('error', (err) => log.error({ shard: index, err }, `driftline shard ${index} failed: ${err.message}`));
    worker.on('exit', (code) => onExit(shards[index]!, worker, code));
    return worker;
  };

  const freshRing = (shard: Shard) => {
    shard.ring = createSharedRing(RING_BYTES);
    shard.writer = new ShardRecordWriter(new RingWriter(shard.ring));
  };
  const byShard: CheckpointMeta[][] = Array.from({ length: n }, () => []);
  for (const meta of options.checkpointed ?? []) byShard[shardOf(meta.stream, n)]!.push(meta);
  const shards: Shard[] = [];
  for (let i = 0; i < n; i++) {
    shards.push({ index: i, worker: undefined as unknown as Worker, ready: false, writer: undefined as unknown as ShardRecordWriter, ring: undefined as unknown as SharedArrayBuffer, inFlight: 0, peers: new Set(), pending: new Map(), deaths: [], lastWake: -Infinity });
  }

  /** A control message; one for a shard that is (re)starting is sent when it is ready (requests) or not needed. */
  const send = (shard: Shard, message: ToShard) => {
    if (shard.ready) shard.worker.postMessage(message);
  };

  let flushScheduled = false;
  const flush = (force = false) => {
    flushScheduled = false;
    // Before the inputs are published: a shard must never take an input under an older mask than its subscribers'.
    let mask = 0;
    for (const type of server.wantedTypes()) mask |= outboundTypeBit(type);
    Atomics.store(wantedMask, 0, mask);
    const now = performance.now();
    for (const shard of shards) {
      const writer = shard.writer;
      if (writer.count === 0 && writer.waiting === 0) continue;
      // A sleeping shard is woken at most once per WAKE_INTERVAL_MS unless a batch is large: a wake-up (a futex call
      // here, a thread switch and an event-loop turn there) costs more than a quiet turn's few inputs.
      if (force || !writer.readerSleeping || writer.count >= WAKE_BATCH || now - shard.lastWake >= WAKE_INTERVAL_MS) publishNow(shard, now);
      else shard.wakeTimer ??= setTimeout(() => publishNow(shard, performance.now()), WAKE_INTERVAL_MS - (now - shard.lastWake));
    }
  };
  const publishNow = (shard: Shard, now: number) => {
    if (shard.wakeTimer !== undefined) clearTimeout(shard.wakeTimer);
    shard.wakeTimer = undefined;
    if (shard.writer.readerSleeping) shard.lastWake = now;
    shard.writer.publish();
  };

  const onMessage = (shard: Shard, message: FromShard) => {
    switch (message.type) {
      case 'ready':
        shard.ready = true;
        // Requests made while it (re)started.
        for (const { message: request } of shard.pending.values()) send(shard, request);
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flush);
        }
        return;
      case 'turn':
        return onTurn(shard, message);
      case 'barrier': {
        // After this turn's end, when coalesced and batched sends have gone to their sockets too.
        const worker = shard.worker;
        setImmediate(() => worker.postMessage({ type: 'barrier', id: message.id } satisfies ToShard));
        return;
      }
      case 'marks':
      case 'metrics': {
        const request = shard.pending.get(message.id);
        shard.pending.delete(message.id);
        request?.resolve(message.type === 'marks' ? message.marks : message.metrics);
        return;
      }
      case 'stopped':
        shard.stopped?.(message);
        return;
      case 'failed':
        options.onFailure(new Error(`shard ${shard.index}: ${message.message}`));
        return;
    }
  };

  const onTurn = (shard: Shard, turn: ShardTurn) => {
    shard.inFlight -= turn.consumed;
    // Records that found the ring full go in now that the shard has taken some.
    if (turn.consumed > 0 && shard.writer.waiting > 0) shard.writer.publish();
    if (turn.predictedStreams !== undefined && journal !== undefined) {
      // Written before the predictions can leave: after a crash the next run knows what was predicted.
      for (let i = 0; i < turn.predictedStreams.length; i++) journal.predicted(turn.predictedStreams[i]!, turn.predictedSeqs![i]!);
    }
    if (turn.texts !== undefined) {
      for (let i = 0; i < turn.texts.length; i++) server.publishEncoded({ kind: turn.kinds![i]!, stream: turn.streams![i], text: turn.texts[i]! });
    }
    if (turn.predictedReceivedAt !== undefined) {
      // Measured to the send, not to the end of the pipeline: what a subscriber waits for.
      const now = performance.timeOrigin + performance.now();
      for (const at of turn.predictedReceivedAt) if (!Number.isNaN(at)) metrics.recordEventToPrediction((now - at) / 1000);
    }
    if (turn.stateBytes !== undefined) for (const [stream, bytes] of turn.stateBytes) stateBytes.set(stream, bytes);
    if (turn.shown !== undefined && dashboard !== undefined) for (const out of turn.shown) dashboard.observe(out);
    if (turn.replies !== undefined) for (const [id, r] of turn.replies) server.answer(peersById.get(id), r);
    if (turn.acks !== undefined) for (const [id, ack] of turn.acks) server.sendTo(peersById.get(id), ack);
    if (turn.pause !== undefined) for (const id of turn.pause) setPaused(id, shard.index, true);
    if (turn.resume !== undefined) for (const id of turn.resume) setPaused(id, shard.index, false);
    if (shard.inFlight <= MAX_IN_FLIGHT / 2 && shard.writer.waiting === 0) for (const id of shard.peers) if (pausedBy.get(id)?.has(-1)) resumeIfAllBelow(id);
  };
  const resumeIfAllBelow = (id: number) => {
    for (const shard of shards) if (shard.inFlight > MAX_IN_FLIGHT / 2 || shard.writer.waiting > 0) return;
    setPaused(id, -1, false);
  };

  const onExit = (shard: Shard, worker: Worker, code: number) => {
    if (worker !== shard.worker || stopping || !started) return;
    shard.ready = false;
    restarts++;
    const now = Date.now();
    shard.deaths.push(now);
    while (shard.deaths[0]! < now - 60_000) shard.deaths.shift();
    if (shard.deaths.length > MAX_DEATHS_PER_MINUTE) {
      options.onFailure(new Error(`shard ${shard.index} died ${shard.deaths.length} times within a minute (last exit code ${code}); not restarting it again`));
      return;
    }
    metrics.recordShardRestart();
    const peers = [...shard.peers];
    log.error(
      { shard: shard.index, exitCode: code, inputsLost: shard.inFlight, peersDisconnected: peers.length },
      `driftline shard ${shard.index} died (exit code ${code}); restarting it from its streams' checkpoints, its producers are disconnected to resume from them`,
    );
    // What it held and had not checkpointed is gone; its producers re-send it after resuming.
    for (const id of peers) {
      cut.add(id);
      server.disconnect(peersById.get(id), RESTART_CLOSE_CODE, `driftline shard ${shard.index} restarted; resume`);
      setPaused(id, shard.index, false);
    }
    shard.peers.clear();
    shard.inFlight = 0;
    // Its ring goes with it; inputs for its streams from now on wait in a fresh one for the new worker.
    if (shard.wakeTimer !== undefined) clearTimeout(shard.wakeTimer);
    shard.wakeTimer = undefined;
    freshRing(shard);
    void (async () => {
      let checkpointed: CheckpointMeta[] = [];
      if (options.store !== undefined) {
        try {
          checkpointed = [...(await options.store.list()).values()].filter((m) => shardOf(m.stream, n) === shard.index);
        } catch (err) {
          log.error({ shard: shard.index, err }, `shard ${shard.index}: the checkpoints could not be listed; its streams start from the store as they load`);
        }
      } else {
        log.warn({ shard: shard.index }, `shard ${shard.index} had no checkpoints to come back from (no checkpoint in the config): its streams start fresh`);
      }
      if (stopping) return;
      shard.worker = spawn(shard.index, checkpointed);
    })();
  };

  const request = (shard: Shard, make: (id: number) => ToShard): Promise<unknown> =>
    new Promise((resolve) => {
      const id = ++requestId;
      const message = make(id);
      shard.pending.set(id, { message, resolve });
      send(shard, message);
    });

  const readies = shards.map(
    (shard) =>
      new Promise<void>((resolve, reject) => {
        freshRing(shard);
        shard.worker = spawn(shard.index, byShard[shard.index]!);
        shard.worker.once('message', () => resolve());
        shard.worker.once('exit', (code) => reject(new Error(`shard ${shard.index} exited with code ${code} while starting`)));
      }),
  );
  try {
    await Promise.all(readies);
    started = true;
  } catch (err) {
    stopping = true;
    clearInterval(prune);
    await Promise.all(shards.map((shard) => shard.worker?.terminate()));
    throw err;
  }

  return {
    accept(input, peer) {
      const id = peerId(peer);
      if (cut.has(id)) return;
      const stream = input.stream;
      if (admitted !== undefined && !admitted.has(stream)) {
        if (admitted.size >= config.streams.maxStreams) {
          const refusal = rejection('too-many-streams', `stream '${stream}' refused: the pool already holds its maximum of ${config.streams.maxStreams} streams`, stream, input.seq);
          metrics.observe(refusal);
          if (peer !== undefined) server.answer(peer, refusal);
          return;
        }
        admitted.add(stream);
      }
      const shard = shards[shardOf(stream, n)]!;
      if (dashboard !== undefined && shownStreams.size < options.dashboardStreams) shownStreams.add(stream);
      if (id !== 0) shard.peers.add(id);
      shard.writer.push(input, id, shownStreams.has(stream) ? SHOWN_ON_DASHBOARD : 0, input.kind === 'tick' && input.receivedAt !== undefined ? performance.timeOrigin + input.receivedAt : Number.NaN);
      shard.inFlight++;
      if ((shard.inFlight > MAX_IN_FLIGHT || shard.writer.waiting > 0) && id !== 0) setPaused(id, -1, true);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    },
    async marks(streams) {
      const asked: (string[] | undefined)[] = shards.map(() => (streams === undefined ? undefined : []));
      if (streams !== undefined) for (const stream of streams) asked[shardOf(stream, n)]!.push(stream);
      const answers = await Promise.all(
        shards.map((shard, i) => (asked[i]?.length === 0 ? {} : request(shard, (id) => ({ type: 'marks', id, streams: asked[i] })))),
      );
      return Object.assign({}, ...answers) as Record<string, StreamMarks>;
    },
    async metricsText() {
      const timeout = (i: number) =>
        new Promise<undefined>((resolve) =>
          setTimeout(() => {
            log.warn({ shard: i }, `shard ${i} did not answer the scrape within ${METRICS_TIMEOUT_MS} ms; its series are left out of this one`);
            resolve(undefined);
          }, METRICS_TIMEOUT_MS).unref(),
        );
      const parts = await Promise.all(shards.map((shard, i) => Promise.race([request(shard, (id) => ({ type: 'metrics', id })), timeout(i)])));
      const own = await options.registry.getMetricsAsJSON();
      const merged = AggregatorRegistry.aggregate([own, ...parts.filter((p) => p !== undefined)] as Parameters<typeof AggregatorRegistry.aggregate>[0]);
      return merged.metrics();
    },
    stateBytesOf: (stream) => stateBytes.get(stream),
    get restarts() {
      return restarts;
    },
    workerOf: (shard) => shards[shard]!.worker,
    async stop() {
      flush(true);
      stopping = true;
      clearInterval(prune);
      const all = await Promise.all(
        shards.map(
          (shard) =>
            new Promise<{ checkpointsSaved?: number; checkpointsFailed?: number; flushFailed: boolean }>((resolve) => {
              if (!shard.ready) return resolve({ flushFailed: true });
              shard.stopped = resolve;
              shard.worker.once('exit', () => resolve({ flushFailed: true }));
              shard.worker.postMessage({ type: 'stop' } satisfies ToShard);
            }),
        ),
      );
      for (const shard of shards) await shard.worker.terminate();
      const sum = (k: 'checkpointsSaved' | 'checkpointsFailed') => (durable ? all.reduce((a, s) => a + (s[k] ?? 0), 0) : undefined);
      return { ...(durable ? { checkpointsSaved: sum('checkpointsSaved')!, checkpointsFailed: sum('checkpointsFailed')! } : {}), flushFailed: all.some((s) => s.flushFailed) };
    },
  };
}
