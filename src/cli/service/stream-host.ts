import { Subject, type Subscription } from 'rxjs';
import { SnapshotError } from '../../learners/errors.js';
import type { DriftlineMetrics } from '../../metrics/driftline-metrics.js';
import type { CheckpointMeta, StoredCheckpoint } from '../../streams/checkpoint-store.js';
import type { FileCheckpointStore } from '../../streams/file-checkpoint-store.js';
import { rejection, type Rejection, type StreamInput } from '../../streams/messages.js';
import { createPipeline, type Pipeline, type PipelineOptions, type PipelineOutput } from '../../streams/pipeline.js';
import type { StreamMarks } from '../../streams/predict-then-learn.js';
import type { DriftlineConfig } from '../config.js';
import { WarningLimiter, type Logger } from '../logger.js';

/**
 * The streams half of `driftline run`: one pipeline with its learners, their checkpoints and everything that keeps
 * it bounded, driven input by input. Without shards the service runs one host on the main thread; with shards each
 * worker thread runs one (src/cli/service/shard-worker.ts) over its own streams. Either way the host knows producers
 * only as opaque peers, and tells its owner what to send them through `HostPeers`.
 *
 * - An input of a stream whose checkpoint is not in memory is held until the checkpoint is loaded; inputs behind
 *   it are held in order. Past 256 loads or 1,024 held inputs in flight (or 256 checkpoint writes) the sending
 *   peer is paused, and every paused peer is resumed once all are down to half: a burst of new keys or an eviction
 *   storm slows the producers to the disk's pace instead of filling memory.
 * - A Rejection the pipeline emits while it processes an input is answered to that input's peer.
 * - A saved checkpoint is acknowledged to the stream's last producer.
 * - Idle streams are checkpointed and evicted (`streams.idleSeconds`).
 */
export interface HostPeers<Peer> {
  /** The error reply for a refused input, to the peer that sent it. */
  reply(peer: Peer, rejection: Rejection): void;
  /** A checkpoint of `stream` is durable up to `seq`: the ack to its producer. */
  ack(peer: Peer, ack: { readonly type: 'ack'; readonly stream: string; readonly seq: number; readonly pendingLabels: readonly number[] }): void;
  /** Stop reading from the peer until `resumeAll`. */
  pause(peer: Peer): void;
  /** Read again from every paused peer. */
  resumeAll(paused: readonly Peer[]): void;
}

export interface StreamHostOptions<Peer> {
  readonly config: DriftlineConfig;
  readonly logger: Logger;
  /** Where the host records what it observes (its outputs, restores, evictions, stream counts). */
  readonly metrics: DriftlineMetrics;
  readonly peers: HostPeers<Peer>;
  /** Each output after the host has observed and logged it (publishing, the journal, the dashboard are the owner's). */
  readonly emit: (out: PipelineOutput) => void;
  /** The pipeline failed: the owner stops the service. */
  readonly onFailure: (err: unknown) => void;
  /** The config's pipeline options, with the embedding's last say (StartOptions.pipelineOptions). */
  readonly pipelineOptions: PipelineOptions;
  /** With `checkpoint` configured: the store, and the checkpoints it held at start-up (its streams only). */
  readonly store?: FileCheckpointStore;
  readonly checkpointed?: Iterable<CheckpointMeta>;
  /** Per stream, the highest seq predicted before this host started (a crashed earlier run, or a dead shard). */
  readonly predictedBefore?: ReadonlyMap<string, number>;
}

/** What a host's owner drives. */
export interface StreamHost<Peer> {
  readonly pipeline: Pipeline;
  /** One input from `peer` (undefined: no peer to answer). */
  accept(input: StreamInput, peer: Peer | undefined): void;
  /** Where each stream stands, for a producer that resumes; every live stream when `streams` is undefined. */
  marks(streams: readonly string[] | undefined): Record<string, StreamMarks>;
  /** The learner's state bytes of a live stream. */
  stateBytesOf(stream: string): number | undefined;
  /** After the source has stopped: drains the pipeline, writes every learner's last checkpoint, waits for the writes. */
  stop(): Promise<{ readonly checkpointsSaved?: number; readonly checkpointsFailed?: number; readonly flushFailed: boolean }>;
}

/** Past this many checkpoint writes in flight the senders are paused until the writes are down to half. */
const PAUSE_ABOVE_WRITES = 256;
/**
 * Past this many checkpoint loads in flight, or this many inputs held for them, the senders are paused until both
 * are down to half (their frames wait in TCP). Without the first bound a burst of 10,000 new keys started 10,000
 * reads at once: every input waited behind all of them (11 s on average) and memory held them all.
 */
const PAUSE_ABOVE_LOADS = 256;
const PAUSE_ABOVE_HELD = 1024;
/** A last bound, for frames that were already read when the sender was paused. */
const MAX_HELD_PER_STREAM = 100_000;

export function createStreamHost<Peer>(options: StreamHostOptions<Peer>): StreamHost<Peer> {
  const { config, metrics, peers, store } = options;
  const log = options.logger;
  const warnings = new WarningLimiter(log, { perSecond: config.log.maxWarningsPerSecond });
  // Drift and recovery lines are informative, but a badly tuned detector must not flood the log either.
  const events = new WarningLimiter({ warn: (obj: object, msg?: string) => log.info(obj, msg) }, { perSecond: config.log.maxWarningsPerSecond });

  const policy = config.checkpoint?.onBadCheckpoint ?? 'refuse';
  const then = policy === 'refuse' ? 'the stream is refused until driftline restarts (onBadCheckpoint: refuse)' : 'the stream starts fresh (onBadCheckpoint: fresh)';
  /** A checkpoint that could not be used: counted, logged with where it went, never overwritten. */
  const badCheckpoint = (stream: string, err: Error & { defect?: string; quarantined?: string }): void => {
    const defect = err.defect ?? 'unreadable';
    metrics.recordQuarantine(defect);
    log.error({ stream, defect, movedTo: err.quarantined, err: err.message }, `checkpoint of stream '${stream}' cannot be restored and was moved aside; ${then}`);
  };
  /** A checkpoint that reads fine but does not restore (another learner spec, another layout): moved aside here. */
  const quarantine = (stream: string, defect: string, err: Error): void => {
    metrics.recordQuarantine(defect);
    void store?.quarantine(stream, defect, err.message).then(
      (moved) => log.error({ stream, defect, movedTo: moved, err: err.message }, `checkpoint of stream '${stream}' cannot be restored and was moved aside; ${then}`),
      (moveError: Error) => log.error({ stream, defect, err: err.message, moveError: moveError.message }, `checkpoint of stream '${stream}' cannot be restored and could not be moved aside (it stays where it is); ${then}`),
    );
  };

  const predictedBefore = options.predictedBefore;
  const base = options.pipelineOptions;
  /** When each stream being loaded from the store got its first held input. */
  const loadStarted = new Map<string, number>();
  /** Where each stream's last input came from, so its checkpoint can be acknowledged to that producer. */
  const producerOf = new Map<string, Peer>();
  const pipeline = createPipeline({
    ...base,
    pool: {
      ...base.pool,
      onRestoreError: (error, stream) => quarantine(stream, error instanceof SnapshotError ? 'foreign-spec' : 'bad-meta', error),
      onRestored: (stream, checkpoint) => {
        // From the first held input to the learner back in memory; 0 for a checkpoint that was still in memory.
        const since = loadStarted.get(stream);
        loadStarted.delete(stream);
        metrics.recordRestore(since === undefined ? 0 : (performance.now() - since) / 1000);
        const previous = predictedBefore?.get(stream);
        const rollback = previous === undefined ? 0 : Math.max(0, previous - checkpoint.meta.lastSeq);
        metrics.recordRollback(rollback);
        if (rollback > 0) {
          log.warn(
            { stream, checkpointSeq: checkpoint.meta.lastSeq, predictedUpTo: previous, rollbackTicks: rollback },
            `stream '${stream}' restored ${rollback} tick(s) behind what was predicted before (a run or a shard stopped without its final flush); re-sent ticks are predicted again, marked replayed`,
          );
        }
      },
    },
    ...(predictedBefore ? { replayedUpTo: (stream: string) => predictedBefore.get(stream) ?? -1 } : {}),
    ...(store && config.checkpoint
      ? {
          checkpoint: {
            store,
            everySeconds: config.checkpoint.everySeconds,
            ...(config.checkpoint.everyTicks !== undefined ? { everyTicks: config.checkpoint.everyTicks } : {}),
            checkpointed: options.checkpointed ?? [],
            onError: (error: Error, stream: string) => {
              resumePaused();
              warnings.warn('checkpoint', { stream, err: error.message }, `checkpoint of stream '${stream}' not written`);
            },
            onSaved: (checkpoint: StoredCheckpoint) => {
              resumePaused();
              const { stream, lastSeq, pendingLabels } = checkpoint.meta;
              const peer = producerOf.get(stream);
              if (peer !== undefined) peers.ack(peer, { type: 'ack', stream, seq: lastSeq, pendingLabels: pendingLabels ?? [] });
            },
          },
        }
      : {}),
    onTickDuration: (seconds) => metrics.recordTickDuration(seconds),
  });
  const pool = pipeline.pool;

  const knownStreams = new Set<string>();
  /** Evictions already counted in the metrics. */
  let evictionsSeen = 0;
  const syncStreams = () => {
    for (; evictionsSeen < pipeline.evictions; evictionsSeen++) metrics.recordEviction();
    metrics.setStreams(pool.size);
    for (const key of knownStreams) {
      if (pool.has(key)) continue;
      knownStreams.delete(key);
      metrics.removeStream(key);
    }
    for (const key of pool.keys()) {
      if (knownStreams.has(key)) continue;
      knownStreams.add(key);
      const learner = pool.peek(key);
      if (learner) metrics.setLearnerStateBytes(key, learner.stateBytes);
    }
  };

  /** The input the pipeline is processing now, and its peer; its Rejections go back to that peer. */
  let inFlight: StreamInput | undefined;
  let inFlightPeer: Peer | undefined;
  const onOutput = (out: PipelineOutput) => {
    metrics.observe(out);
    switch (out.kind) {
      case 'rejected':
        warnings.warn(out.reason, { stream: out.stream, seq: out.seq }, `refused input: ${out.message}`);
        // Markers the drift detectors queued are fed in just before the next input; a Rejection naming another
        // stream or seq is not about what the peer sent.
        if (inFlight !== undefined && inFlightPeer !== undefined && refusalOf(out, inFlight)) peers.reply(inFlightPeer, out);
        break;
      case 'drift':
        events.warn(`drift:${out.source}`, { stream: out.stream, seq: out.seq, t: out.t, source: out.source, session: out.session }, out.source === 'session' ? `session boundary '${out.session ?? ''}'` : `drift detected by ${out.source}`);
        break;
      case 'recovery':
        // One line per track (`heldOut` in the fields too): learning-tick and held-out figures are different measures.
        events.warn('recovery', { ...out, kind: undefined }, `recovery on ${out.heldOut ? 'held-out' : 'learning'} ticks after the drift at seq ${out.seq} (${out.source})`);
        break;
      default:
        break;
    }
    options.emit(out);
  };

  const feed = new Subject<StreamInput>();
  let stopping = false;
  const outputSub: Subscription = feed.pipe(pipeline.operator).subscribe({ next: onOutput, error: (err: unknown) => options.onFailure(err) });

  const process_ = (input: StreamInput, peer: Peer | undefined) => {
    inFlight = input;
    inFlightPeer = peer;
    try {
      feed.next(input);
    } finally {
      inFlight = undefined;
      inFlightPeer = undefined;
    }
    if (pool.size !== knownStreams.size || pipeline.evictions !== evictionsSeen) syncStreams();
  };

  /** Inputs (and their peers) of streams whose checkpoint is being loaded, in arrival order; fed once it is in. */
  const held = new Map<string, { inputs: StreamInput[]; peers: (Peer | undefined)[] }>();
  const paused = new Set<Peer>();
  /** Inputs in `held`, over all streams. */
  let heldInputs = 0;
  const writesInFlight = () => pipeline.checkpointer?.writesInFlight ?? 0;
  const pause = (peer: Peer | undefined) => {
    if (peer === undefined || paused.has(peer)) return;
    paused.add(peer);
    peers.pause(peer);
  };
  function resumePaused(): void {
    if (paused.size === 0 || held.size > PAUSE_ABOVE_LOADS / 2 || heldInputs > PAUSE_ABOVE_HELD / 2 || writesInFlight() > PAUSE_ABOVE_WRITES / 2) return;
    const list = [...paused];
    paused.clear();
    peers.resumeAll(list);
  }
  const hold = (input: StreamInput, peer: Peer | undefined, loading: Promise<void>) => {
    const queue = { inputs: [input], peers: [peer] };
    held.set(input.stream, queue);
    heldInputs++;
    loadStarted.set(input.stream, performance.now());
    loading.then(
      () => undefined,
      (err: Error & { defect?: string; quarantined?: string }) => badCheckpoint(input.stream, err),
    ).finally(() => {
      held.delete(input.stream);
      heldInputs -= queue.inputs.length;
      if (!stopping) for (let i = 0; i < queue.inputs.length; i++) process_(queue.inputs[i]!, queue.peers[i]);
      loadStarted.delete(input.stream);
      resumePaused();
    });
  };

  // Idle streams are checkpointed and evicted; they come back from their checkpoint on their next input. Streams
  // that went quiet are checkpointed, so their producers are acknowledged.
  const evictTimer = store
    ? setInterval(() => {
        pipeline.checkpointer?.settleQuiet();
        const evicted = pipeline.evictIdle(config.streams.idleSeconds);
        if (evicted > 0) {
          syncStreams();
          log.debug({ evicted, live: pool.size }, 'idle streams checkpointed and evicted');
        }
      }, Math.min(1000, config.streams.idleSeconds * 500, (config.checkpoint?.everySeconds ?? 1) * 500))
    : undefined;
  evictTimer?.unref();

  return {
    pipeline,
    accept(input, peer) {
      if (peer !== undefined) producerOf.set(input.stream, peer);
      const waiting = held.get(input.stream);
      if (waiting !== undefined) {
        if (heldInputs >= PAUSE_ABOVE_HELD) pause(peer);
        if (waiting.inputs.length < MAX_HELD_PER_STREAM) {
          waiting.inputs.push(input);
          waiting.peers.push(peer);
          heldInputs++;
        } else if (peer !== undefined) {
          peers.reply(peer, rejection('stream-unavailable', `stream '${input.stream}' is being restored and already has ${MAX_HELD_PER_STREAM} inputs waiting; send again later`, input.stream, input.seq));
        }
        return;
      }
      const loading = pipeline.prepare(input.stream);
      if (loading !== undefined) hold(input, peer, loading);
      else process_(input, peer);
      if (writesInFlight() > PAUSE_ABOVE_WRITES || held.size >= PAUSE_ABOVE_LOADS) pause(peer);
    },
    marks(streams) {
      const marks: Record<string, StreamMarks> = {};
      for (const stream of streams ?? [...pool.keys()]) marks[stream] = pipeline.marks(stream) ?? { seq: -1, pendingLabels: [] };
      return marks;
    },
    stateBytesOf: (stream) => pool.peek(stream)?.stateBytes,
    async stop() {
      stopping = true;
      if (evictTimer) clearInterval(evictTimer);
      feed.complete();
      let flushFailed = false;
      try {
        await pipeline.flush();
        // Moves into quarantine and any other write still under way finish too: nothing is left half done.
        await store?.idle();
      } catch (err) {
        log.error({ err }, 'checkpoint flush failed');
        flushFailed = true;
      }
      outputSub.unsubscribe();
      warnings.flush();
      events.flush();
      const checkpoints = pipeline.checkpointer?.stats;
      return { ...(checkpoints ? { checkpointsSaved: checkpoints.saved, checkpointsFailed: checkpoints.failed } : {}), flushFailed };
    },
  };
}

/** Whether a Rejection emitted while `input` was in the pipeline is about `input` (same stream, same seq if named). */
function refusalOf(r: Rejection, input: StreamInput): boolean {
  return (r.stream === undefined || r.stream === input.stream) && (r.seq === undefined || r.seq === input.seq);
}
