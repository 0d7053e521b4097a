// `driftline run` with `sources.kafka`: one worker of a consumer group, with its /metrics endpoint.
import kafkajs from '../adapters/kafka/kafkajs.js';
import type { Kafka, logCreator, SASLOptions } from 'kafkajs';
import { KafkaCheckpointStore } from '../adapters/kafka/kafka-checkpoint-store.js';
import { KafkaWorker } from '../adapters/kafka/kafka-worker.js';
import { DEFAULT_MAX_STREAMS, DriftlineMetrics } from '../metrics/driftline-metrics.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { startMetricsServer } from '../metrics/server.js';
import type { Pipeline } from '../streams/pipeline.js';
import type { DriftlineConfig } from './config.js';
import { WarningLimiter, type Logger } from './logger.js';
import { pipelineOptionsOf } from './run.js';
import { createServiceDashboard } from './service-dashboard.js';

type KafkaSource = NonNullable<DriftlineConfig['sources']['kafka']>;

/** How long a stop may take to commit and leave the group before the process ends anyway. */
const STOP_TIMEOUT_MS = 30_000;

/** A started Kafka worker: what the signal handling of `driftline run` drives. */
export interface RunningKafkaDriftline {
  readonly metricsUrl: string;
  /** e.g. http://127.0.0.1:9464/dashboard; undefined with the dashboard off. */
  readonly dashboardUrl?: string;
  readonly worker: KafkaWorker;
  readonly pipeline: Pipeline;
  stop(): Promise<void>;
  failStop(): void;
  /** The exit code once stopped: 0 after stop(), 1 after failStop() or a failure of the worker. */
  readonly stopped: Promise<number>;
}

/** kafkajs' own log lines, at warn and above, through the service's logger. */
function kafkaLogs(log: Logger): logCreator {
  return () => ({ namespace, level, log: entry }) => {
    const { message, ...rest } = entry;
    if (level <= kafkajs.logLevel.ERROR) log.error({ kafka: namespace, ...rest }, `kafka: ${message}`);
    else if (level === kafkajs.logLevel.WARN) log.warn({ kafka: namespace, ...rest }, `kafka: ${message}`);
  };
}

function kafkaClientOf(source: KafkaSource, log: Logger): Kafka {
  return new kafkajs.Kafka({
    clientId: source.clientId,
    brokers: source.brokers,
    connectionTimeout: 5000,
    logLevel: kafkajs.logLevel.WARN,
    logCreator: kafkaLogs(log),
    ...(source.ssl !== undefined ? { ssl: source.ssl as boolean } : {}),
    ...(source.sasl !== undefined ? { sasl: source.sasl as SASLOptions } : {}),
  });
}

/**
 * Opens the changelog (created compacted when missing), joins the group and serves /metrics. Bad records are
 * refused, counted in driftline_events_rejected_total{reason} and logged (rate-limited); the partition goes on.
 * @throws when the brokers cannot be reached (after kafkajs' retries with backoff) or the changelog topic would
 *   delete state: the message names the brokers or the topic.
 */
export async function startKafkaDriftline(config: DriftlineConfig, options: { readonly logger: Logger; readonly dashboard?: boolean }): Promise<RunningKafkaDriftline> {
  const source = config.sources.kafka;
  if (source === undefined) throw new Error('startKafkaDriftline needs sources.kafka');
  const log = options.logger;
  const warnings = new WarningLimiter(log, { perSecond: config.log.maxWarningsPerSecond });
  const registry = createMetricsRegistry();
  const metrics = new DriftlineMetrics(registry, { maxStreams: Math.min(config.streams.maxStreams, DEFAULT_MAX_STREAMS), eventToPredictionAt: 'pipeline' });
  const kafka = kafkaClientOf(source, log);
  let changelog: KafkaCheckpointStore;
  try {
    changelog = await KafkaCheckpointStore.open({
      kafka,
      topic: source.changelogTopic,
      partitions: source.changelogPartitions,
      onCorrupt: (problem) => {
        metrics.recordQuarantine(problem.defect);
        log.error({ checkpoint: problem.original, movedTo: problem.file, defect: problem.defect }, `checkpoint moved to quarantine: ${problem.message}`);
      },
    });
  } catch (err) {
    throw new Error(`Kafka brokers ${source.brokers.join(',')}: ${(err as Error).message}`, { cause: err });
  }
  let ready = false;
  let worker: KafkaWorker | undefined;
  // As with WebSockets: the streams this worker serves, behind the metrics' token.
  const serviceDashboard = options.dashboard === false
    ? undefined
    : createServiceDashboard(config, { token: config.metrics.token, stateBytesOf: (stream) => worker?.pipeline.pool.peek(stream)?.stateBytes, onUnauthorized: () => metrics.recordRejection('unauthorized') });
  const dashboard = serviceDashboard?.routes;
  const metricsServer = await startMetricsServer({
    registry,
    host: config.metrics.host,
    port: config.metrics.port,
    ready: () => ready,
    ...(config.metrics.token !== undefined ? { token: config.metrics.token } : {}),
    onUnauthorized: () => metrics.recordRejection('unauthorized'),
    ...(dashboard !== undefined ? { routes: dashboard.handle, onClose: dashboard.close } : {}),
  });

  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));
  let exitCode = 0;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      ready = false;
      // Bounded: what is not committed by then is read again by the next owner of its partitions (exactly once
      // holds however a worker ends), and an operator's SIGTERM must end the process.
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        (worker?.stop() ?? Promise.resolve()).then(() => 'stopped' as const),
        new Promise<'timed-out'>((resolve) => (timer = setTimeout(() => resolve('timed-out'), STOP_TIMEOUT_MS))),
      ]).catch((err: Error) => {
        log.error({ err: err.message }, 'driftline: the Kafka worker did not stop cleanly');
        return 'failed' as const;
      });
      clearTimeout(timer);
      if (outcome !== 'stopped') exitCode = 1;
      if (outcome === 'timed-out') log.error({ timeoutMs: STOP_TIMEOUT_MS, stats: worker ? { ...worker.stats } : undefined }, 'driftline: the Kafka worker did not stop in time; its uncommitted work is left to the next owner of its partitions');
      await changelog.close();
      warnings.flush();
      await metricsServer.close();
      log.info(worker ? { ...worker.stats } : {}, 'driftline stopped');
      resolveStopped(exitCode);
    })();
    return stopping;
  };
  try {
    worker = await KafkaWorker.start({
      kafka,
      groupId: source.groupId,
      inputTopic: source.inputTopic,
      predictionsTopic: source.predictionsTopic,
      changelog,
      pipeline: pipelineOptionsOf(config),
      shape: { inputSize: config.streams.inputSize, outputSize: config.streams.outputSize },
      maxFrameBytes: source.maxFrameBytes,
      commitEveryRecords: source.commitEveryRecords,
      commitEveryMs: source.commitEveryMs,
      sessionTimeoutMs: source.sessionTimeoutMs,
      ...(source.deadLetterTopic !== undefined ? { deadLetterTopic: source.deadLetterTopic } : {}),
      ...(source.labelsTopic !== undefined ? { labelsTopic: source.labelsTopic } : {}),
      onFirstPrediction: (_stream, seconds) => metrics.recordAssignmentToFirstPrediction(seconds),
      onRefused: (r, at) => {
        metrics.recordRejection(r.reason);
        warnings.warn(r.reason, { reason: r.reason, stream: r.stream, seq: r.seq, topic: at.topic, partition: at.partition, offset: at.offset }, `driftline kafka: refused record: ${r.message}`);
      },
      onRecord: (input) => metrics.recordEvent(input.stream, 'kafka'),
      onOutput: (out) => {
        metrics.observe(out);
        serviceDashboard?.feed.observe(out);
      },
      onConsumerRestart: (cause, backoffMs) => log.warn({ err: cause.message, backoffMs }, 'driftline kafka: the consumer stopped for good; a new one joins the group, its partitions resume from their last commits'),
      onFailure: (err) => {
        log.error({ err: err.message }, 'driftline: the Kafka worker failed; stopping');
        exitCode = 1;
        void stop();
      },
    });
  } catch (err) {
    await changelog.close();
    await metricsServer.close();
    throw new Error(`Kafka brokers ${source.brokers.join(',')}: ${(err as Error).message}`, { cause: err });
  }
  metrics.markStarted();
  ready = true;
  const dashboardUrl = dashboard === undefined ? undefined : `${metricsServer.url}/dashboard`;
  log.info(
    { metrics: `${metricsServer.url}/metrics`, ...(dashboardUrl !== undefined ? { dashboard: dashboardUrl } : {}), brokers: source.brokers, groupId: source.groupId, inputTopic: source.inputTopic, predictionsTopic: source.predictionsTopic, changelogTopic: source.changelogTopic },
    'driftline ready',
  );
  return {
    metricsUrl: `${metricsServer.url}/metrics`,
    ...(dashboardUrl !== undefined ? { dashboardUrl } : {}),
    worker,
    pipeline: worker.pipeline,
    stop,
    failStop: () => {
      exitCode = 1;
      void stop();
    },
    stopped,
  };
}
