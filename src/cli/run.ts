import { parseArgs } from 'node:util';
import { Subject, type Subscription } from 'rxjs';
import { startWebSocketServer, type DriftlineWebSocketServer, type WsLogger } from '../adapters/websocket/server.js';
import { DEFAULT_MAX_STREAMS, DriftlineMetrics } from '../metrics/driftline-metrics.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import type { StoredCheckpoint } from '../streams/checkpoint-store.js';
import { FileCheckpointStore } from '../streams/file-checkpoint-store.js';
import type { Rejection, StreamInput } from '../streams/messages.js';
import { createPipeline, type Pipeline, type PipelineOptions, type PipelineOutput } from '../streams/pipeline.js';
import { ConfigError, learnerSpecOf, loadConfig, type DriftlineConfig } from './config.js';
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

const usage = `usage: driftline run --config FILE

  --config, -c FILE   the YAML (or JSON) configuration: streams, learner, sources.websocket, evaluation,
                      drift, checkpoint, metrics, log (see examples/configs/)

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
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h', default: false } },
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
    } else {
      logger.warn({ signal }, 'driftline: second signal, exiting now without waiting for checkpoints');
      exit(1);
    }
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  try {
    try {
      service = await startDriftline(config, { logger });
    } catch (err) {
      logger.fatal({ err }, `driftline could not start: ${(err as Error).message}`);
      return 1;
    }
    if (received > 0) void service.stop();
    return await service.stopped;
  } finally {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
  }
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
}

/** A started service. */
export interface RunningDriftline {
  /** e.g. ws://127.0.0.1:8080/ingest */
  readonly ingestUrl: string;
  readonly predictionsUrl: string;
  /** e.g. http://127.0.0.1:9464/metrics */
  readonly metricsUrl: string;
  readonly metrics: DriftlineMetrics;
  readonly pipeline: Pipeline;
  /** Stops cleanly (idempotent); resolves when stopped. */
  stop(): Promise<void>;
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
    },
    normalize: e.normalizeInputs ? {} : false,
    inputDrift: { detectors: config.drift.inputDetectors, cooldownTicks: config.drift.cooldownTicks },
    holdout: e.holdout,
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
  const metrics = new DriftlineMetrics(registry, { maxStreams: Math.min(config.streams.maxStreams, DEFAULT_MAX_STREAMS) });

  let store: FileCheckpointStore | undefined;
  let initialState: Map<string, StoredCheckpoint> | undefined;
  if (config.checkpoint) {
    store = new FileCheckpointStore(config.checkpoint.dir, {
      onCorrupt: (problem) => log.warn({ file: problem.file, defect: problem.defect }, `skipped checkpoint: ${problem.message}`),
    });
    initialState = await store.loadAll();
    log.info({ dir: store.dir, streams: [...initialState.keys()] }, `restored ${initialState.size} checkpoint(s)`);
  }

  const fromConfig = pipelineOptionsOf(config, initialState);
  const base = options.pipelineOptions ? options.pipelineOptions(fromConfig) : fromConfig;
  const pipeline = createPipeline({
    ...base,
    pool: {
      ...base.pool,
      onRestoreError: (error, stream) => log.warn({ stream, err: error.message }, `stream '${stream}' starts fresh: its checkpoint could not be restored`),
    },
    ...(store && config.checkpoint
      ? {
          checkpoint: {
            store,
            everyTicks: config.checkpoint.everyTicks,
            onError: (error: Error, stream: string) => warnings.warn('checkpoint', { stream, err: error.message }, `checkpoint of stream '${stream}' not written`),
          },
        }
      : {}),
    onTickDuration: (seconds) => metrics.recordTickDuration(seconds),
  });

  let ready = false;
  const metricsServer: MetricsServer = await startMetricsServer({
    registry,
    host: config.metrics.host,
    port: config.metrics.port,
    ready: () => ready,
  });
  const wsLogger: WsLogger = {
    warn: (obj, msg) => warnings.warn(String((obj as { reason?: unknown }).reason ?? 'websocket'), obj, msg ?? 'driftline ws warning'),
    info: (obj, msg) => log.debug(obj, msg),
  };
  const shape = { inputSize: config.streams.inputSize, outputSize: config.streams.outputSize };
  const allowed = config.streams.allow ? new Set(config.streams.allow) : undefined;
  let ws: DriftlineWebSocketServer;
  try {
    ws = await startWebSocketServer({
      host: wsConfig.host,
      port: wsConfig.port,
      ...(wsConfig.token !== undefined ? { token: wsConfig.token } : {}),
      maxPayload: wsConfig.maxPayloadBytes,
      heartbeatMs: wsConfig.heartbeatMs,
      maxBufferedBytes: wsConfig.maxBufferedBytes,
      shapes: (stream) => (allowed === undefined || allowed.has(stream) ? shape : undefined),
      maxStreams: config.streams.maxStreams,
      // The edge refuses late labels by the same bound the learners use, and tells the sender.
      labelWindow: config.learner.maxLabelDelay,
      logger: wsLogger,
    });
  } catch (err) {
    await metricsServer.close();
    throw err;
  }

  const pool = pipeline.pool;
  const knownStreams = new Set<string>();
  const updateStreams = () => {
    metrics.setStreams(pool.size);
    if (knownStreams.size > pool.size) knownStreams.clear();
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
    switch (out.kind) {
      case 'rejected':
        warnings.warn(out.reason, { stream: out.stream, seq: out.seq }, `refused input: ${out.message}`);
        // Markers the drift detectors queued are fed in just before the next input; a Rejection naming another
        // stream or seq is not about what the peer sent.
        if (inFlight !== undefined && refusalOf(out, inFlight)) ws.replyTo(inFlight, out);
        return;
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
    if (ws.stats.subscriberConnections > 0) ws.publish(out);
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
  const rejectionSub = ws.rejections.subscribe((r) => metrics.observe(r));
  const inputSub = ws.inputs.subscribe((input) => {
    metrics.recordEvent(input.stream, 'websocket');
    inFlight = input;
    try {
      feed.next(input);
    } finally {
      inFlight = undefined;
    }
    if (pool.size !== knownStreams.size) updateStreams();
  });

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      ready = false;
      // No more input: sockets closed, then the pipeline drains and snapshots every learner as it completes.
      await ws.close();
      inputSub.unsubscribe();
      rejectionSub.unsubscribe();
      feed.complete();
      try {
        await pipeline.flush();
      } catch (err) {
        log.error({ err }, 'checkpoint flush failed');
        exitCode = 1;
      }
      outputSub.unsubscribe();
      warnings.flush();
      events.flush();
      const checkpoints = pipeline.checkpointer?.stats;
      await metricsServer.close();
      log.info(
        {
          accepted: ws.stats.accepted,
          rejectedAtEdge: Object.values(ws.stats.rejected).reduce((a, b) => a + b, 0),
          refusedLaterAndAnswered: ws.stats.laterRefusalsAnswered,
          ...(checkpoints ? { checkpointsSaved: checkpoints.saved, checkpointsFailed: checkpoints.failed } : {}),
        },
        'driftline stopped',
      );
      resolveStopped(exitCode);
    })();
    return stopping;
  };

  ready = true;
  const ingestUrl = `${ws.address.url}/ingest`;
  const predictionsUrl = `${ws.address.url}/predictions`;
  const metricsUrl = `${metricsServer.url}/metrics`;
  log.info(
    {
      ingest: ingestUrl,
      predictions: predictionsUrl,
      metrics: metricsUrl,
      streams: { inputSize: shape.inputSize, outputSize: shape.outputSize, maxStreams: config.streams.maxStreams },
      learner: `${config.learner.cell.kind} n=${config.learner.cell.hiddenSize}`,
    },
    'driftline ready',
  );
  return { ingestUrl, predictionsUrl, metricsUrl, metrics, pipeline, stop, stopped };
}

/** Whether a Rejection emitted while `input` was in the pipeline is about `input` (same stream, same seq if named). */
function refusalOf(r: Rejection, input: StreamInput): boolean {
  return (r.stream === undefined || r.stream === input.stream) && (r.seq === undefined || r.seq === input.seq);
}
