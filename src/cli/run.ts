import { availableParallelism } from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startWebSocketServer, type DriftlineWebSocketServer, type WsLogger } from '../adapters/websocket/server.js';
import { DEFAULT_MAX_STREAMS, DriftlineMetrics } from '../metrics/driftline-metrics.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import type { CheckpointMeta, StoredCheckpoint } from '../streams/checkpoint-store.js';
import type { StreamMarks } from '../streams/predict-then-learn.js';
import { ProgressJournal } from '../streams/progress-journal.js';
import { FileCheckpointStore } from '../streams/file-checkpoint-store.js';
import type { StreamInput } from '../streams/messages.js';
import type { Pipeline, PipelineOptions } from '../streams/pipeline.js';
import { startShardPool, type ShardPool } from './service/shard-pool.js';
import { createStreamHost } from './service/stream-host.js';
import { warmUpLearner } from './service/warm-up.js';
import { SATURATION_SAMPLE_MS, SaturationWatch } from './service/saturation-watch.js';
import { ConfigError, describeLearner, learnerSpecOf, loadConfig, type DriftlineConfig } from './config.js';
import { createLogger, WarningLimiter, type Logger } from './logger.js';
import { startKafkaDriftline } from './run-kafka.js';
import { createServiceDashboard, DASHBOARD_STREAMS } from './service-dashboard.js';

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
    if (config.sources.websocket === undefined && config.sources.kafka === undefined) {
      throw new ConfigError(
        ['sources: driftline run needs a source; add a sources.websocket block (e.g. { host: 127.0.0.1, port: 8080 }) or a sources.kafka one'],
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
  let service: Pick<RunningDriftline, 'stop' | 'failStop' | 'stopped' | 'pipeline'> | undefined;
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    received++;
    if (received === 1) {
      logger.info({ signal }, 'driftline stopping: no more input, draining, flushing checkpoints');
      void service?.stop();
    } else if (received === 2) {
      // Cutting the flush short would leave streams without their last state: finish it, then exit 1.
      logger.warn(
        { signal, checkpointWritesLeft: service?.pipeline?.checkpointer?.writesInFlight ?? 0 },
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
      service = config.sources.kafka !== undefined
        ? await startKafkaDriftline(config, { logger, dashboard: !values['no-dashboard'] })
        : await startDriftline(config, { logger, dashboard: !values['no-dashboard'] });
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
  /** The pipeline, when the streams run on this thread (streams.shards: 1). */
  readonly pipeline?: Pipeline;
  /** The shards, with streams.shards > 1. */
  readonly shards?: ShardPool;
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

/** Starts the metrics endpoint, the ws server and the pipeline of `config` (in shards with `streams.shards` > 1). */
export async function startDriftline(config: DriftlineConfig, options: StartOptions): Promise<RunningDriftline> {
  const log = options.logger;
  const wsConfig = config.sources.websocket;
  if (wsConfig === undefined) throw new Error('driftline run needs sources.websocket');
  const sharded = config.streams.shards > 1;
  if (sharded && options.pipelineOptions !== undefined) {
    throw new Error('pipelineOptions cannot reach shard workers (a function does not cross threads): use streams.shards: 1 with it');
  }
  const warnings = new WarningLimiter(log, { perSecond: config.log.maxWarningsPerSecond });

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

  let ready = false;
  /** Set once the streams run: the learner's state bytes of a live stream. */
  let stateBytesOf: (stream: string) => number | undefined = () => undefined;
  /** Set with shards: /metrics merges every shard's registry into this thread's. */
  let metricsText: (() => Promise<string>) | undefined;
  // The dashboard follows the predictions path's auth; where that has no token, the metrics' (if any) still
  // guards it, so a dashboard on a non-loopback metrics address is never open.
  const serviceDashboard = options.dashboard === false
    ? undefined
    : createServiceDashboard(config, { token: config.sources.websocket?.token ?? config.metrics.token, stateBytesOf: (stream) => stateBytesOf(stream), onUnauthorized: () => metrics.recordRejection('unauthorized') });
  const dashboardFeed = serviceDashboard?.feed;
  const dashboard = serviceDashboard?.routes;
  const metricsServer: MetricsServer = await startMetricsServer({
    registry,
    host: config.metrics.host,
    port: config.metrics.port,
    ready: () => ready,
    // One token guards every endpoint unless the metrics get their own.
    token: config.metrics.token ?? config.sources.websocket?.token,
    onUnauthorized: () => metrics.recordRejection('unauthorized'),
    metricsText: () => (metricsText ?? (() => registry.metrics()))(),
    ...(dashboard !== undefined ? { routes: dashboard.handle, onClose: dashboard.close } : {}),
  });
  const wsLogger: WsLogger = {
    warn: (obj, msg) => warnings.warn(String((obj as { reason?: unknown }).reason ?? 'websocket'), obj, msg ?? 'driftline ws warning'),
    info: (obj, msg) => log.debug(obj, msg),
  };
  const shape = { inputSize: config.streams.inputSize, outputSize: config.streams.outputSize };
  const allowed = config.streams.allow ? new Set(config.streams.allow) : undefined;
  let server: DriftlineWebSocketServer;
  try {
    server = await startWebSocketServer({
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
  metrics.trackSubscriberDrops(() => server.stats.droppedForSlowSubscribers);

  let stopping: Promise<void> | undefined;
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));
  let exitCode = 0;
  const onFailure = (err: unknown) => {
    log.fatal({ err }, `driftline pipeline failed: ${(err as Error)?.message ?? String(err)}`);
    exitCode = 1;
    void stop();
  };

  /** The streams: one host on this thread, or shards of worker threads. */
  let engine: {
    accept(input: StreamInput, peer: unknown): void;
    marks(streams: readonly string[] | undefined): Record<string, StreamMarks> | Promise<Record<string, StreamMarks>>;
    stop(): Promise<{ readonly checkpointsSaved?: number; readonly checkpointsFailed?: number; readonly flushFailed: boolean }>;
  };
  let pipeline: Pipeline | undefined;
  let shardPool: ShardPool | undefined;
  try {
    if (sharded) {
      shardPool = await startShardPool({
        config,
        logger: log,
        metrics,
        registry,
        server,
        ...(store ? { store, checkpointed: checkpointed!.values() } : {}),
        ...(journal ? { journal } : {}),
        ...(dashboardFeed ? { dashboard: dashboardFeed } : {}),
        dashboardStreams: DASHBOARD_STREAMS,
        onFailure,
      });
      engine = shardPool;
      stateBytesOf = shardPool.stateBytesOf;
      metricsText = shardPool.metricsText;
    } else {
      const fromConfig = pipelineOptionsOf(config);
      const host = createStreamHost<unknown>({
        config,
        logger: log,
        metrics,
        ...(store ? { store, checkpointed: checkpointed!.values() } : {}),
        ...(journal ? { predictedBefore: journal.previous } : {}),
        pipelineOptions: options.pipelineOptions ? options.pipelineOptions(fromConfig) : fromConfig,
        peers: {
          reply: (peer, r) => server.answer(peer, r),
          ack: (peer, ack) => server.sendTo(peer, ack),
          pause: (peer) => server.setPaused(peer, true),
          resumeAll: (peers) => {
            for (const peer of peers) server.setPaused(peer, false);
          },
        },
        emit: (out) => {
          dashboardFeed?.observe(out);
          // Written before the prediction can leave: after a crash the next run knows what was predicted.
          if (out.kind === 'prediction') journal?.predicted(out.stream, out.seq);
          if (server.stats.subscriberConnections > 0) server.publish(out);
          // Measured to the send, not to the end of the pipeline: what a subscriber waits for.
          if (out.kind === 'prediction' && out.receivedAt !== undefined) metrics.recordEventToPrediction((performance.now() - out.receivedAt) / 1000);
        },
        onFailure,
      });
      warmUpLearner(learnerSpecOf(config));
      engine = host;
      pipeline = host.pipeline;
      stateBytesOf = host.stateBytesOf;
    }
  } catch (err) {
    await server.close();
    await metricsServer.close();
    throw err;
  }

  // Refusals made at the edge: counted, and shown to subscribers like those the pipeline makes.
  const rejectionSub = server.rejections.subscribe((r) => {
    metrics.observe(r);
    if (server.stats.subscriberConnections > 0) server.publish(r);
  });
  const inputSub = server.inputs.subscribe((input) => {
    metrics.recordEvent(input.stream, 'websocket');
    engine.accept(input, server.peerOf(input));
  });
  const resumeSub = server.resumeRequests.subscribe(({ peer, streams }) => {
    void Promise.resolve(engine.marks(streams)).then((marks) => server.sendTo(peer, { type: 'resume', streams: marks }));
  });
  // One thread for everything: say so when it stays saturated while other cores could learn.
  const saturation = new SaturationWatch({ shards: config.streams.shards, cores: availableParallelism(), warn: (fields, message) => log.warn(fields, message) });
  let loopSoFar: EventLoopUtilization = performance.eventLoopUtilization();
  const saturationTimer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    saturation.sample(performance.eventLoopUtilization(now, loopSoFar).utilization);
    loopSoFar = now;
  }, SATURATION_SAMPLE_MS);
  saturationTimer.unref();

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      ready = false;
      clearInterval(saturationTimer);
      // No more input: sockets closed, then the pipeline drains and snapshots every learner as it completes.
      await server.close();
      inputSub.unsubscribe();
      rejectionSub.unsubscribe();
      resumeSub.unsubscribe();
      const checkpoints = await engine.stop();
      if (checkpoints.flushFailed) exitCode = 1;
      journal?.close();
      warnings.flush();
      await metricsServer.close();
      log.info(
        {
          accepted: server.stats.accepted,
          rejectedAtEdge: Object.values(server.stats.rejected).reduce((a, b) => a + b, 0),
          refusedLaterAndAnswered: server.stats.laterRefusalsAnswered,
          ...(checkpoints.checkpointsSaved !== undefined ? { checkpointsSaved: checkpoints.checkpointsSaved, checkpointsFailed: checkpoints.checkpointsFailed } : {}),
          ...(shardPool ? { shards: config.streams.shards, shardRestarts: shardPool.restarts } : {}),
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
      streams: { inputSize: shape.inputSize, outputSize: shape.outputSize, maxStreams: config.streams.maxStreams, shards: config.streams.shards },
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
    ...(pipeline ? { pipeline } : {}),
    ...(shardPool ? { shards: shardPool } : {}),
    stop,
    failStop: () => {
      exitCode = 1;
      void stop();
    },
    stopped,
  };
}
