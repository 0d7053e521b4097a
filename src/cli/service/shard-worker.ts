import { parentPort, workerData } from 'node:worker_threads';
import { encodeOutbound, type OutboundMessage } from '../../adapters/websocket/frames.js';
import { outboundTypeOf } from '../../adapters/websocket/subscriber-filter.js';
import { createLogger } from '../logger.js';
import { pipelineOptionsOf } from '../run.js';
import { learnerSpecOf } from '../config.js';
import { DriftlineMetrics, DEFAULT_MAX_STREAMS } from '../../metrics/driftline-metrics.js';
import { createMetricsRegistry } from '../../metrics/registry.js';
import { FileCheckpointStore } from '../../streams/file-checkpoint-store.js';
import type { StoredCheckpoint } from '../../streams/checkpoint-store.js';
import { outboundTypeBit, type FromShard, type ShardTurn, type ShardWorkerData, type ToShard } from './shard-protocol.js';
import { readShardRecords, SHOWN_ON_DASHBOARD } from './shard-records.js';
import { RingReader } from './shared-ring.js';
import { createStreamHost } from './stream-host.js';
import { warmUpLearner } from './warm-up.js';

/**
 * A shard of `driftline run` (src/cli/service/shard-pool.ts): one worker thread running a stream host over the streams
 * whose key hashes to it. It reads its inputs from the record buffers the main thread transfers, and sends back one
 * `turn` message per turn of its event loop with everything the main thread has to do: publish (outputs encoded
 * here, for the types some subscriber wants), journal and time the predictions, answer, acknowledge, pause or
 * resume peers, and feed the dashboard the outputs of the streams it shows. Metrics are recorded here, in this
 * thread's registry, and merged into the main thread's at each scrape.
 */
const port = parentPort;
if (port === null) throw new Error('shard-worker.ts runs as a worker thread of driftline run');
const data = workerData as ShardWorkerData;
const { config } = data;
const post = (message: FromShard) => port.postMessage(message);

const logger = createLogger({ level: config.log.level }).child({ shard: data.shard });
// Process-wide series (CPU, memory, event loop) are the main thread's: a worker's would be counted once per shard.
const registry = createMetricsRegistry({ defaultMetrics: false });
const metrics = new DriftlineMetrics(registry, { maxStreams: Math.min(data.maxStreams, DEFAULT_MAX_STREAMS), eventToPredictionAt: 'send' });
/**
 * A checkpoint may become durable only after the predictions it covers have left the process: once it is, a producer
 * that resumes does not send those ticks again, so a prediction still queued here or on the main thread when the
 * process is killed would never reach a subscriber. (Without shards the prediction is written to its socket in the
 * same turn as the tick, long before the checkpoint.) So each save waits for a barrier: the main thread answers it
 * after it has published every turn this shard sent before it.
 */
class PublishedFirstCheckpointStore extends FileCheckpointStore {
  override async save(checkpoint: StoredCheckpoint): Promise<void> {
    await outputsPublished();
    return super.save(checkpoint);
  }
}
const store = config.checkpoint
  ? new PublishedFirstCheckpointStore(config.checkpoint.dir, {
      onCorrupt: (problem) => {
        metrics.recordQuarantine(problem.defect);
        logger.error({ file: problem.original, movedTo: problem.file, defect: problem.defect }, `checkpoint moved to quarantine: ${problem.message}`);
      },
    })
  : undefined;

/** Saves waiting for the barrier sent after the current turn. */
let barrierWaiters: (() => void)[] = [];
const barriers = new Map<number, (() => void)[]>();
let barrierId = 0;
/** Resolves once the main thread has published everything this shard emitted so far. */
function outputsPublished(): Promise<void> {
  current();
  return new Promise((resolve) => barrierWaiters.push(resolve));
}

/** The turn being gathered; sent at the end of the turn in which it got its first item. */
let turn: { -readonly [K in keyof ShardTurn]: ShardTurn[K] } | undefined;
const current = () => {
  if (turn === undefined) {
    turn = { type: 'turn', consumed: 0 };
    setImmediate(sendTurn);
  }
  return turn;
};
function sendTurn(): void {
  const t = turn;
  turn = undefined;
  if (t !== undefined) post(t);
  if (barrierWaiters.length > 0) {
    const id = ++barrierId;
    barriers.set(id, barrierWaiters);
    barrierWaiters = [];
    post({ type: 'barrier', id });
  }
}
type ListKey = Exclude<keyof ShardTurn, 'type' | 'consumed'>;
const push = <K extends ListKey>(key: K, item: NonNullable<ShardTurn[K]>[number]): void => {
  const t = current() as unknown as Record<string, unknown[] | undefined>;
  (t[key as string] ??= []).push(item);
};

const wantedTypes = new Int32Array(data.wantedTypes);
const shown = new Set<string>();
const bytesSent = new Set<string>();

const fromConfig = pipelineOptionsOf(config);
const host = createStreamHost<number>({
  config,
  logger,
  metrics,
  store,
  checkpointed: data.checkpointed,
  predictedBefore: data.predictedBefore,
  pipelineOptions: { ...fromConfig, pool: { ...fromConfig.pool, maxStreams: data.maxStreams } },
  peers: {
    reply: (peer, rejection) => push('replies', [peer, rejection]),
    ack: (peer, ack) => push('acks', [peer, { ...ack }]),
    pause: (peer) => push('pause', peer),
    resumeAll: (peers) => {
      for (const peer of peers) push('resume', peer);
    },
  },
  emit: (out) => {
    if (out.kind === 'prediction') {
      push('predictedStreams', out.stream);
      push('predictedSeqs', out.seq);
      push('predictedReceivedAt', out.receivedAt === undefined ? Number.NaN : out.receivedAt + performance.timeOrigin);
    }
    if ((Atomics.load(wantedTypes, 0) & outboundTypeBit(outboundTypeOf(out))) !== 0) {
      push('kinds', out.kind);
      push('streams', 'stream' in out ? out.stream : undefined);
      push('texts', encodeOutbound(out as OutboundMessage));
    }
    if (out.kind !== 'prediction' && out.kind !== 'rejected' && 'stream' in out && shown.has(out.stream)) {
      push('shown', out);
      if (!bytesSent.has(out.stream)) {
        const bytes = host.stateBytesOf(out.stream);
        if (bytes !== undefined) {
          bytesSent.add(out.stream);
          push('stateBytes', [out.stream, bytes]);
        }
      }
    }
  },
  onFailure: (err) => {
    logger.fatal({ err }, `driftline shard ${data.shard}: pipeline failed: ${(err as Error)?.message ?? String(err)}`);
    post({ type: 'failed', message: (err as Error)?.message ?? String(err) });
  },
});

const shape = { inputSize: config.streams.inputSize, outputSize: config.streams.outputSize };
const ring = new RingReader(data.ring);
let stopping = false;
/** Feeds the host every input published to the ring so far. */
function takeInputs(): void {
  const taken = readShardRecords(ring, shape, performance.timeOrigin, (input, peerId, flags) => {
    // The main thread validated every input already: a refusal here is a fault of the handover, said loudly.
    if (input.kind === 'rejected') {
      logger.error({ reason: input.reason }, `shard ${data.shard}: an input did not survive the handover: ${input.message}`);
      return;
    }
    if ((flags & SHOWN_ON_DASHBOARD) !== 0) shown.add(input.stream);
    host.accept(input, peerId === 0 ? undefined : peerId);
  });
  if (taken > 0) current().consumed += taken;
}
/** One drain per turn of this thread's event loop, so its messages, timers and checkpoint writes get their turns. */
async function pumpInputs(): Promise<void> {
  while (!stopping) {
    await ring.waitForRecords();
    if (stopping) return;
    takeInputs();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
port.on('message', (message: ToShard) => {
  switch (message.type) {
    case 'marks':
      post({ type: 'marks', id: message.id, marks: host.marks(message.streams) });
      return;
    case 'barrier':
      for (const resolve of barriers.get(message.id) ?? []) resolve();
      barriers.delete(message.id);
      return;
    case 'metrics':
      void registry.getMetricsAsJSON().then((json) => post({ type: 'metrics', id: message.id, metrics: json }));
      return;
    case 'stop':
      // The main thread published its last inputs before asking: they are learned before the last checkpoints.
      takeInputs();
      stopping = true;
      void host.stop().then((stats) => {
        sendTurn();
        post({ type: 'stopped', ...stats });
        port.close();
      });
      return;
  }
});

warmUpLearner(learnerSpecOf(config));
post({ type: 'ready' });
void pumpInputs();
