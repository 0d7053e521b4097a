import { parseArgs } from 'node:util';
import { Subject, type Subscription } from 'rxjs';
import { startWebSocketServer, type DriftlineWebSocketServer, type WsLogger } from '../adapters/websocket/server.js';
import { DEFAULT_MAX_STREAMS, DriftlineMetrics } from '../metrics/driftline-metrics.js';
import { createDashboardRoutes } from '../dashboard/dashboard-routes.js';
import { DashboardFeed } from '../dashboard/dashboard-feed.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import type { CheckpointMeta, StoredCheckpoint } from '../streams/checkpoint-store.js';
import { SnapshotError } from '../learners/errors.js';
import { createLearner, type LearnerSpec } from '../learners/learner.js';
import { rejection } from '../streams/messages.js';
import type { StreamMarks } from '../streams/predict-then-learn.js';
import { ProgressJournal } from '../streams/progress-journal.js';
import { FileCheckpointStore } from '../streams/file-checkpoint-store.js';
import type { Rejection, StreamInput } from '../streams/messages.js';
import { createPipeline, type Pipeline, type PipelineOptions, type PipelineOutput } from '../streams/pipeline.js';
import { ConfigError, describeLearner, learnerSpecOf, loadConfig, type DriftlineConfig } from './config.js';
import { createLogger, WarningLimiter, type Logger } from './logger.js';

/**
 * `driftline run --config file.yaml`: the long-running service.
 *
 *   ws ingest (frames, validated at the edge) -> pipeline (src/streams/pipeline.ts) -> ws subscribers + metrics
 *
 * Start-up: the config is validated first (a bad one: every bad field on stderr, exit 2, nothing started); then
 * checkpoints are restored from `checkpoint.dir` when it exists, the metrics endpoint (`metrics.host:port`, port 0:
 * any free one) and the WebSocket server (`sources.websocket`, streams of the shape in `streams`) start, and one
 * info line `driftline ready` gives the actual URLs (`ingest`, `predictions`, `metrics`).
 *
 * Logs: pino JSON lines on stderr (src/cli/logger.ts), at `log.level`. Refused input (at the ws edge or in the
 * pipeline) is counted in `driftline_events_rejected_total{reason}` and logged at warn, at most
 * `log.maxWarningsPerSecond` lines a second (the rest summarised), so a flood of bad frames cannot fill the log.
 * Either way the peer that sent the frame gets the error reply `{type:'error', reason, message, stream?, seq?}`:
 * the edge answers its own refusals, and a Rejection the pipeline emits while it processes an input from a peer
 * (the pipeline is synchronous, so that is the input in flight) is answered to that peer through the ws server.
 *
 * Subscribers on the predictions path get every prediction, drift marker, prequential report and recovery report
 * (scored ticks stay internal). Metrics: every output is observed, every accepted input counted per stream,
 * the synchronous processing time of each tick and label recorded, streams and learner state bytes set as
 * streams appear.
 *
 * Shutdown on SIGINT or SIGTERM: the ws server closes (no more input), the pipeline drains (pending drift markers,
 * a last checkpoint of every learner), the checkpoint writes are awaited, the metrics endpoint closes, exit 0. A
 * second signal exits 1 at once.
 */

/** Where `driftline run` writes and what it listens to (injectable for tests). */
export interface RunIO {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: { write(chunk: string): unknown };
  /** Where the signals come from; default `process`. */
  readonly signals?: Pick<NodeJS.Process, 'on' | 'off'>;
  /** Called on a second signal; default process.exit. */
  readonly exit?: (code: number) => void;
}

const usage = `usage: driftline run --config FILE [--no-dashboard]

  --config, -c FILE   the YAML (or JSON) configuration: streams, learner, sources.websocket, evaluation,
                      drift, checkpoint, metrics, log (see examples/configs/)
  --no-dashboard      no live dashboard (by default at the metrics address, /dashboard; same token as the
                      predictions path)

Logs are JSON lines on stderr. SIGINT or SIGTERM stops cleanly (checkpoints flushed); a second one exits at once.
`;

/** Runs `driftline run`; resolves with the exit code once the service has stopped. */
export async function runCommand(args: string[], io: RunIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string', short: 'c' },
        'no-dashboard': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    io.stderr.write(`driftline run: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(usage);
    return 0;
  }
  if (values.config === undefined) {
    io.stderr.write(`driftline run: --config FILE is required\n\n${usage}`);
    return 2;
  }
  let config: DriftlineConfig;
  try {
    config = loadConfig(values.config);
    if (config.sources.websocket === undefined) {
      throw new ConfigError(
        ['sources.websocket: driftline run needs a source; add a sources.websocket block (e.g. { host: 127.0.0.1, port: 8080 })'],
        values.config,
      );
    }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`driftline run: ${err.message}\n`);
    return 2;
  }

  const logger = createLogger({ level: config.log.level });
  const signals = io.signals ?? process;
  const exit = io.exit ?? ((code: number) => process.exit(code));
  // Listening before the start: a signal that comes while the servers start stops the service once it is up.
  let service: RunningDriftline | undefined;
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    received++;
    if (received === 1) {
      logger.info({ signal }, 'driftline stopping: no more input, draining, flushing checkpoints');
      void service?.stop();
    } else if (received === 2) {
      // Cutting the flush short would leave streams without their last state: finish it, then exit 1.
      logger.warn(
        { signal, checkpointWritesLeft: service?.pipeline.checkpointer?.writesInFlight ?? 0 },
        'driftline: second signal; finishing the checkpoint flush first (a third signal exits at once)',
      );
      service?.failStop();
    } else {
      logger.warn({ signal }, 'driftline: exiting now; checkpoints being written are left as they were (each file is whole or untouched)');
      exit(1);
    }
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  try {
    try {
      service = await startDriftline(config, { logger, dashboard: !values['no-dashboard'] });
    } catch (err) {
      // Start-up problems are the operator's to fix (a port in use, a directory that cannot be written): one
      // line that says what and where, not a stack trace.
      io.stderr.write(`driftline run: cannot start: ${startFailure(err)}\n`);
      return 2;
    }
    if (received > 1) service.failStop();
    else if (received > 0) void service.stop();
    return await service.stopped;
  } finally {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
  }
}

function startFailure(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e?.code === 'EADDRINUSE') return `${e.address ?? ''}:${e.port ?? ''} is already in use (another driftline, or change the port in the config)`;
  if (e?.code === 'EADDRNOTAVAIL') return `${e.address ?? ''} is not an address of this machine (check the host in the config)`;
  if (e?.code === 'EACCES' && e.port !== undefined) return `no permission to listen on port ${e.port} (use a port above 1023)`;
  return e instanceof Error ? e.message.split('\n')[0]! : String(err);
}

/** What startDriftline needs besides the config. */
export interface StartOptions {
  readonly logger: Logger;
  /**
   * Last say over the pipeline options the config describes (an embedding's per-stream learner specs, tighter
   * bounds than the config's), applied before the service adds its checkpoint, restore and timing hooks. The ws
   * edge still validates by the config, so whatever the pipeline refuses beyond that is answered to the sender.
   */
  readonly pipelineOptions?: (fromConfig: PipelineOptions) => PipelineOptions;
  /** Serve the live dashboard at the metrics address, /dashboard (default true). */
  readonly dashboard?: boolean;
}

/** Streams the dashboard of `driftline run` shows (the first ones seen). */
export const DASHBOARD_STREAMS = 64;

/** A started service. */
export interface RunningDriftline {
  /** e.g. ws://127.0.0.1:8080/ingest */
  readonly ingestUrl: string;
  readonly predictionsUrl: string;
  /** e.g. http://127.0.0.1:9464/metrics */
  readonly metricsUrl: string;
  /** e.g. http://127.0.0.1:9464/dashboard; undefined with the dashboard off. */
  readonly dashboardUrl?: string;
  readonly metrics: DriftlineMetrics;
  readonly pipeline: Pipeline;
  /** Stops cleanly (idempotent); resolves when stopped. */
  stop(): Promise<void>;
  /** Stops like stop(), but the exit code will be 1 (a second signal: the flush still finishes). */
  failStop(): void;
  /** Resolves with the exit code when the service has stopped: 0 after stop(), 1 after a pipeline failure. */
  readonly stopped: Promise<number>;
}

/** The pipeline options a config describes (shared by `driftline run` and `driftline replay --config`). */
export function pipelineOptionsOf(config: DriftlineConfig, initialState?: ReadonlyMap<string, StoredCheckpoint>): PipelineOptions {
  const e = config.evaluation;
  return {
    pool: {
      spec: learnerSpecOf(config),
      maxStreams: config.streams.maxStreams,
      ...(config.streams.allow ? { allowedStreams: config.streams.allow } : {}),
      ...(initialState ? { initialState } : {}),
      ...(config.checkpoint ? { onBadCheckpoint: config.checkpoint.onBadCheckpoint } : {}),
    },
    normalize: e.normalizeInputs === false ? false : e.normalizeInputs === true ? {} : { ...e.normalizeInputs },
    inputDrift: { detectors: config.drift.inputDetectors, cooldownTicks: config.drift.cooldownTicks, statistic: config.drift.inputStatistic },
    holdout: e.holdout,
    targetScaling: e.targetScaling,
    maxDelay: config.learner.maxLabelDelay,
    recoveryTicks: e.recoveryTicks,
    prequential: { window: e.window, ewmaAlpha: e.ewmaAlpha, every: e.reportEvery, classification: config.learner.loss === 'xent' },
    drift: { detectors: config.drift.detectors, cooldownTicks: config.drift.cooldownTicks, signal: config.drift.signal },
    recovery: { window: e.window, tolerance: e.tolerance },
  };
}

/** Starts the metrics endpoint, the ws server and the pipeline of `config`. */
export async function startDriftline(config: DriftlineConfig, options: StartOptions): Promise<RunningDriftline> {
  const log = options.logger;
  const wsConfig = config.sources.websocket;
  if (wsConfig === undefined) throw new Error('driftline run needs sources.websocket');
  const warnings = new WarningLimiter(log, { perSecond: config.log.maxWarningsPerSecond });
  // Drift and recovery lines are informative, but a badly tuned detector must not flood the log either.
  const events = new WarningLimiter({ warn: (obj: object, msg?: string) => log.info(obj, msg) }, { perSecond: config.log.maxWarningsPerSecond });

  const registry = createMetricsRegistry();
  const metrics = new DriftlineMetrics(registry, { maxStreams: Math.min(config.streams.maxStreams, DEFAULT_MAX_STREAMS), eventToPredictionAt: 'send' });

  // Checkpoints: only the index (each file's header) is read now; a stream's state is loaded on its next input.
  let store: FileCheckpointStore | undefined;
  let journal: ProgressJournal | undefined;
  let checkpointed: Map<string, CheckpointMeta> | undefined;
  if (config.checkpoint) {
    store = new FileCheckpointStore(config.checkpoint.dir, {
      onCorrupt: (problem) => {
        metrics.recordQuarantine(problem.defect);
        log.error({ file: problem.original, movedTo: problem.file, defect: problem.defect }, `checkpoint moved to quarantine: ${problem.message}`);
      },
    });
    checkpointed = await store.list();
    journal = new ProgressJournal(store.dir);
    const behind = [...checkpointed.values()].filter((m) => (journal!.previous.get(m.stream) ?? -1) > m.lastSeq).length;
    log.info(
      { dir: store.dir, streams: checkpointed.size, streamsBehindLastRun: behind },
      `${checkpointed.size} checkpoint(s) found; each stream is restored on its next input` +
        (behind > 0 ? `; ${behind} stream(s) will roll back to their checkpoint (the previous run stopped without its final flush)` : ''),
    );
  }
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

  const fromConfig = pipelineOptionsOf(config);
  const base = options.pipelineOptions ? options.pipelineOptions(fromConfig) : fromConfig;
  /** Called after each checkpoint write (saved or failed): paused producers may go on. Set once the server is up. */
  let afterWrite = (): void => {};
  /** When each stream being loaded from the store got its first held input. */
  const loadStarted = new Map<string, number>();
  /** Where each stream's last input came from, so its checkpoint can be acknowledged to that producer. */
  const producerOf = new Map<string, unknown>();
  let ws: DriftlineWebSocketServer | undefined;
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
        const previous = journal?.previous.get(stream);
        const rollback = previous === undefined ? 0 : Math.max(0, previous - checkpoint.meta.lastSeq);
        metrics.recordRollback(rollback);
        if (rollback > 0) {
          log.warn(
            { stream, checkpointSeq: checkpoint.meta.lastSeq, previousRunPredictedUpTo: previous, rollbackTicks: rollback },
            `stream '${stream}' restored ${rollback} tick(s) behind the previous run (it stopped without a final flush); re-sent ticks are predicted again, marked replayed`,
          );
        }
      },
    },
    ...(journal ? { replayedUpTo: (stream: string) => journal!.previous.get(stream) ?? -1 } : {}),
    ...(store && config.checkpoint
      ? {
          checkpoint: {
            store,
            everySeconds: config.checkpoint.everySeconds,
            ...(config.checkpoint.everyTicks !== undefined ? { everyTicks: config.checkpoint.everyTicks } : {}),
            checkpointed: checkpointed!.values(),
            onError: (error: Error, stream: string) => {
              afterWrite();
              warnings.warn('checkpoint', { stream, err: error.message }, `checkpoint of stream '${stream}' not written`);
            },
            onSaved: (checkpoint: StoredCheckpoint) => {
              afterWrite();
              const peer = producerOf.get(checkpoint.meta.stream);
              if (peer !== undefined) {
                const { stream, lastSeq, pendingLabels } = checkpoint.meta;
                ws?.sendTo(peer, { type: 'ack', stream, seq: lastSeq, pendingLabels: pendingLabels ?? [] });
              }
            },
          },
        }
      : {}),
    onTickDuration: (seconds) => metrics.recordTickDuration(seconds),
  });

  await warmUp(learnerSpecOf(config));

  let ready = false;
  // The dashboard follows the predictions path's auth; where that has no token, the metrics' (if any) still
  // guards it, so a dashboard on a non-loopback metrics address is never open.
  // The first DASHBOARD_STREAMS streams are shown: each keeps some hundreds of KB of rings, which a service of
  // thousands of streams should not pay for streams nobody looks at.
  const dashboardFeed = options.dashboard === false ? undefined : new DashboardFeed({ maxStreams: Math.min(config.streams.maxStreams, DASHBOARD_STREAMS) });
  const describeStream = (stream: string) => {
    const learner = pipeline.pool.peek(stream);
    return learner === undefined ? undefined : { learner: describeLearner(config), stateBytes: learner.stateBytes };
  };
  const dashboardToken = config.sources.websocket?.token ?? config.metrics.token;
  const dashboard = dashboardFeed === undefined
    ? undefined
    : createDashboardRoutes({ feed: dashboardFeed, describe: describeStream, ...(dashboardToken !== undefined ? { token: dashboardToken } : {}), onUnauthorized: () => metrics.recordRejection('unauthorized') });
  const metricsServer: MetricsServer = await startMetricsServer({
    registry,
    host: config.metrics.host,
    port: config.metrics.port,
    ready: () => ready,
    // One token guards every endpoint unless the metrics get their own.
    token: config.metrics.token ?? config.sources.websocket?.token,
    onUnauthorized: () => metrics.recordRejection('unauthorized'),
    ...(dashboard !== undefined ? { routes: dashboard.handle, onClose: dashboard.close } : {}),
  });
  const wsLogger: WsLogger = {
    warn: (obj, msg) => warnings.warn(String((obj as { reason?: unknown }).reason ?? 'websocket'), obj, msg ?? 'driftline ws warning'),
    info: (obj, msg) => log.debug(obj, msg),
  };
  const shape = { inputSize: config.streams.inputSize, outputSize: config.streams.outputSize };
  const allowed = config.streams.allow ? new Set(config.streams.allow) : undefined;
  try {
    ws = await startWebSocketServer({
      host: wsConfig.host,
      port: wsConfig.port,
      ...(wsConfig.token !== undefined ? { token: wsConfig.token } : {}),
      maxPayload: wsConfig.maxPayloadBytes,
      heartbeatMs: wsConfig.heartbeatMs,
      maxBufferedBytes: wsConfig.maxBufferedBytes,
      coalesceSends: wsConfig.coalesceSends,
      maxFramesPerMessage: wsConfig.maxFramesPerMessage,
      shapes: (stream) => (allowed === undefined || allowed.has(stream) ? shape : undefined),
      // Order, duplicates and stream limits are the pipeline's: it knows each stream's restored high-water mark.
      checkOrder: false,
      helloFields: { durable: store !== undefined },
      logger: wsLogger,
    });
  } catch (err) {
    await metricsServer.close();
    throw err;
  }
  const server = ws;
  metrics.trackSubscriberDrops(() => server.stats.droppedForSlowSubscribers);

  const pool = pipeline.pool;
  const knownStreams = new Set<string>();
  const updateStreams = () => {
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

  /** The input the pipeline is processing now; its Rejections go back to the peer that sent it. */
  let inFlight: StreamInput | undefined;

  const onOutput = (out: PipelineOutput) => {
    metrics.observe(out);
    dashboardFeed?.observe(out);
    switch (out.kind) {
      case 'prediction':
        // Written before the prediction can leave: after a crash the next run knows what was predicted.
        journal?.predicted(out.stream, out.seq);
        break;
      case 'rejected':
        warnings.warn(out.reason, { stream: out.stream, seq: out.seq }, `refused input: ${out.message}`);
        // Markers the drift detectors queued are fed in just before the next input; a Rejection naming another
        // stream or seq is not about what the peer sent.
        if (inFlight !== undefined && refusalOf(out, inFlight)) server.replyTo(inFlight, out);
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
    if (server.stats.subscriberConnections > 0) server.publish(out);
    // Measured to the send, not to the end of the pipeline: what a subscriber waits for.
    if (out.kind === 'prediction' && out.receivedAt !== undefined) metrics.recordEventToPrediction((performance.now() - out.receivedAt) / 1000);
  };

  const feed = new Subject<StreamInput>();
  let stopping: Promise<void> | undefined;
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));
  let exitCode = 0;

  const outputSub: Subscription = feed.pipe(pipeline.operator).subscribe({
    next: onOutput,
    error: (err: unknown) => {
      log.fatal({ err }, `driftline pipeline failed: ${(err as Error)?.message ?? String(err)}`);
      exitCode = 1;
      void stop();
    },
  });

  const process_ = (input: StreamInput) => {
    inFlight = input;
    try {
      feed.next(input);
    } finally {
      inFlight = undefined;
    }
    if (pool.size !== knownStreams.size || pipeline.evictions !== evictionsSeen) syncStreams();
  };
  /** Evictions already counted in the metrics. */
  let evictionsSeen = 0;
  const syncStreams = () => {
    for (; evictionsSeen < pipeline.evictions; evictionsSeen++) metrics.recordEviction();
    updateStreams();
  };
  /** Inputs of streams whose checkpoint is being loaded, in arrival order; fed once it is in. */
  const held = new Map<string, StreamInput[]>();
  /**
   * Past this many checkpoint writes in flight (streams evicted faster than the disk takes their state) the
   * senders are paused until the writes are down to half: memory stays bounded, and the producers slow to the
   * disk's pace instead of losing anything.
   */
  const PAUSE_ABOVE_WRITES = 256;
  /**
   * Past this many checkpoint loads in flight, or this many inputs held for them, the senders are paused until
   * both are down to half (their frames wait in TCP). Without the first bound a burst of 10,000 new keys started
   * 10,000 reads at once: every input waited behind all of them (11 s on average) and memory held them all.
   */
  const PAUSE_ABOVE_LOADS = 256;
  const PAUSE_ABOVE_HELD = 1024;
  /** A last bound, for frames that were already read when the sender was paused. */
  const MAX_HELD_PER_STREAM = 100_000;
  const paused = new Set<unknown>();
  /** Inputs in `held`, over all streams. */
  let heldInputs = 0;
  const writesInFlight = () => pipeline.checkpointer?.writesInFlight ?? 0;
  afterWrite = () => resumePaused();
  const pause = (peer: unknown) => {
    if (peer === undefined || paused.has(peer)) return;
    paused.add(peer);
    server.setPaused(peer, true);
  };
  const resumePaused = () => {
    if (paused.size === 0 || held.size > PAUSE_ABOVE_LOADS / 2 || heldInputs > PAUSE_ABOVE_HELD / 2 || writesInFlight() > PAUSE_ABOVE_WRITES / 2) return;
    for (const peer of paused) server.setPaused(peer, false);
    paused.clear();
  };
  const hold = (input: StreamInput, loading: Promise<void>) => {
    const queue: StreamInput[] = [input];
    held.set(input.stream, queue);
    heldInputs++;
    loadStarted.set(input.stream, performance.now());
    loading.then(
      () => undefined,
      (err: Error & { defect?: string; quarantined?: string }) => badCheckpoint(input.stream, err),
    ).finally(() => {
      held.delete(input.stream);
      heldInputs -= queue.length;
      if (!stopping) for (const next of queue) process_(next);
      loadStarted.delete(input.stream);
      resumePaused();
    });
  };
  // Refusals made at the edge: counted, and shown to subscribers like those the pipeline makes.
  const rejectionSub = server.rejections.subscribe((r) => {
    metrics.observe(r);
    if (server.stats.subscriberConnections > 0) server.publish(r);
  });
  const inputSub = server.inputs.subscribe((input) => {
    metrics.recordEvent(input.stream, 'websocket');
    const peer = server.peerOf(input);
    if (peer !== undefined) producerOf.set(input.stream, peer);
    const waiting = held.get(input.stream);
    if (waiting !== undefined) {
      if (heldInputs >= PAUSE_ABOVE_HELD) pause(peer);
      if (waiting.length < MAX_HELD_PER_STREAM) {
        waiting.push(input);
        heldInputs++;
      } else server.replyTo(input, rejection('stream-unavailable', `stream '${input.stream}' is being restored and already has ${MAX_HELD_PER_STREAM} inputs waiting; send again later`, input.stream, input.seq));
      return;
    }
    const loading = pipeline.prepare(input.stream);
    if (loading !== undefined) hold(input, loading);
    else process_(input);
    if (writesInFlight() > PAUSE_ABOVE_WRITES || held.size >= PAUSE_ABOVE_LOADS) pause(peer);
  });
  const resumeSub = server.resumeRequests.subscribe(({ peer, streams }) => {
    const marks: Record<string, StreamMarks> = {};
    for (const stream of streams ?? [...pool.keys()]) marks[stream] = pipeline.marks(stream) ?? { seq: -1, pendingLabels: [] };
    server.sendTo(peer, { type: 'resume', streams: marks });
  });

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

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      ready = false;
      if (evictTimer) clearInterval(evictTimer);
      // No more input: sockets closed, then the pipeline drains and snapshots every learner as it completes.
      await server.close();
      inputSub.unsubscribe();
      rejectionSub.unsubscribe();
      resumeSub.unsubscribe();
      feed.complete();
      try {
        await pipeline.flush();
        // Moves into quarantine and any other write still under way finish too: nothing is left half done.
        await store?.idle();
      } catch (err) {
        log.error({ err }, 'checkpoint flush failed');
        exitCode = 1;
      }
      journal?.close();
      outputSub.unsubscribe();
      warnings.flush();
      events.flush();
      const checkpoints = pipeline.checkpointer?.stats;
      await metricsServer.close();
      log.info(
        {
          accepted: server.stats.accepted,
          rejectedAtEdge: Object.values(server.stats.rejected).reduce((a, b) => a + b, 0),
          refusedLaterAndAnswered: server.stats.laterRefusalsAnswered,
          ...(checkpoints ? { checkpointsSaved: checkpoints.saved, checkpointsFailed: checkpoints.failed } : {}),
        },
        'driftline stopped',
      );
      resolveStopped(exitCode);
    })();
    return stopping;
  };

  ready = true;
  metrics.markStarted();
  const ingestUrl = `${server.address.url}/ingest`;
  const predictionsUrl = `${server.address.url}/predictions`;
  const metricsUrl = `${metricsServer.url}/metrics`;
  const dashboardUrl = dashboard === undefined ? undefined : `${metricsServer.url}/dashboard`;
  log.info(
    {
      ingest: ingestUrl,
      predictions: predictionsUrl,
      metrics: metricsUrl,
      ...(dashboardUrl !== undefined ? { dashboard: dashboardUrl } : {}),
      streams: { inputSize: shape.inputSize, outputSize: shape.outputSize, maxStreams: config.streams.maxStreams },
      learner: describeLearner(config),
    },
    'driftline ready',
  );
  return {
    ingestUrl,
    predictionsUrl,
    metricsUrl,
    ...(dashboardUrl !== undefined ? { dashboardUrl } : {}),
    metrics,
    pipeline,
    stop,
    failStop: () => {
      exitCode = 1;
      void stop();
    },
    stopped,
  };
}

/**
 * Runs a throwaway learner of the service's spec for a few hundred ticks before the service says it is ready:
 * the first ticks of a cold process pay for compiling the kernels and the JIT, and a producer should not.
 */
async function warmUp(spec: LearnerSpec): Promise<void> {
  const learner = createLearner({ ...spec, seed: spec.seed + 1 });
  const x = new Float32Array(spec.inputSize);
  const y = new Float32Array(spec.outputSize);
  for (let i = 0; i < 300; i++) {
    x[i % x.length] = Math.sin(i);
    learner.predict(x);
    learner.learn(y);
  }
}

/** Whether a Rejection emitted while `input` was in the pipeline is about `input` (same stream, same seq if named). */
function refusalOf(r: Rejection, input: StreamInput): boolean {
  return (r.stream === undefined || r.stream === input.stream) && (r.seq === undefined || r.seq === input.seq);
}
