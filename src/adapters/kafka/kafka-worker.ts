// One worker of a Kafka consumer group: frames in, predictions out, learner state in the changelog, exactly once.
import { Subject, type Subscription } from 'rxjs';
import type { Admin, Consumer, EachBatchPayload, Kafka, Producer } from 'kafkajs';
import type { StreamShape } from '../websocket/frames.js';
import { CheckpointDefectError, type StoredCheckpoint } from '../../streams/checkpoint-store.js';
import { rejection, type Rejection, type StreamInput } from '../../streams/messages.js';
import { checkpointOfStream } from '../../streams/checkpoint.js';
import { createPipeline, type Pipeline, type PipelineOptions, type PipelineOutput } from '../../streams/pipeline.js';
import { decodeKafkaRecord, predictionRecord, sourceHeaders, type RecordPosition } from './kafka-records.js';
import { EXACT_PRODUCER } from './producer-options.js';
import type { KafkaCheckpointStore } from './kafka-checkpoint-store.js';

export interface KafkaWorkerOptions {
  readonly kafka: Kafka;
  /** The consumer group: every worker of one deployment uses the same. */
  readonly groupId: string;
  /** Frames in: key = stream, value = one frame (kafka-records.ts). */
  readonly inputTopic: string;
  /** Predictions out: key = stream, headers naming the model version and the input record. */
  readonly predictionsTopic: string;
  /**
   * Labels from a producer of their own: label frames keyed by their stream. Each is forwarded into the input topic,
   * keyed the same, in one transaction with the labels topic's offset; so it lands in its stream's partition after
   * the ticks already there and joins them in order there, exactly once and the same on every replay. Ticks must
   * be partitioned by their key (the default partitioner), as the forwarded labels are.
   */
  readonly labelsTopic?: string;
  /** The learner-state changelog (read for restores; written inside this worker's transactions). */
  readonly changelog: KafkaCheckpointStore;
  /** The pipeline of every stream, without checkpoint options: the worker checkpoints in its commits. */
  readonly pipeline: Omit<PipelineOptions, 'checkpoint'>;
  /** Every stream's frame shape. */
  readonly shape: StreamShape;
  readonly maxFrameBytes?: number;
  /** A partition's work is committed once this many records are uncommitted (default 2,000)... */
  readonly commitEveryRecords?: number;
  /** ...or once its oldest uncommitted record is this old (default 1,000 ms). */
  readonly commitEveryMs?: number;
  /**
   * How long the group waits for a silent worker before its partitions go to the others (kafkajs sessionTimeout,
   * default 30,000 ms; at least the broker's group.min.session.timeout.ms, 6,000 by default).
   */
  readonly sessionTimeoutMs?: number;
  /**
   * Records refused at the edge (they do not decode, the wrong dimension, non-finite values, too large) are also
   * written here, whole, inside the partition's commit, with headers naming the reason and the input record.
   */
  readonly deadLetterTopic?: string;
  /** A stream's first prediction since its partition was assigned here, and how long after the assignment. */
  readonly onFirstPrediction?: (stream: string, seconds: number) => void;
  /** Each record accepted at the edge (decoded, of the right shape), before the pipeline. */
  readonly onRecord?: (input: StreamInput, at: RecordPosition) => void;
  /** A record refused (bad frame, duplicate): the caller logs and counts it; the partition goes on. */
  readonly onRefused?: (rejection: Rejection, at: RecordPosition) => void;
  /** Every pipeline output but refusals (predictions, scores, drift markers, reports), for metrics and dashboards. */
  readonly onOutput?: (output: PipelineOutput) => void;
  /** The worker cannot go on (a pipeline failure). */
  readonly onFailure?: (error: Error) => void;
  /** kafkajs gave up on the consumer (`cause`); a new one joins the group in `backoffMs`. */
  readonly onConsumerRestart?: (cause: Error, backoffMs: number) => void;
}

export interface KafkaWorkerStats {
  records: number;
  predictions: number;
  refused: number;
  commits: number;
  /** Streams restored from the changelog. */
  restores: number;
  /** Streams dropped from memory unsaved: their partition left this worker, or a commit failed. */
  dropped: number;
  /** Commits that failed (then the partition's uncommitted work is dropped and read again). */
  failedCommits: number;
  /**
   * Records delivered below their partition's committed offset after an assignment (a previous owner committed them
   * after this worker's consumer had read the offset), skipped unprocessed.
   */
  skippedCommitted: number;
}

/** One partition's work since its last commit (of the input, or of the labels), and the producer that commits it. */
interface PartitionTask {
  readonly topic: string;
  readonly partition: number;
  /** Where its records go: predictions for an input partition, the input topic for a labels partition. */
  readonly outputTopic: string;
  readonly producer: Producer;
  /** Streams of this partition live in this worker. */
  readonly streams: Set<string>;
  /** Streams with records since the last commit: their checkpoints go into the next one. */
  touched: Set<string>;
  outgoing: { key: string; value: string | Buffer; headers: Record<string, string> }[];
  deadLetters: { key: Buffer | null; value: Buffer | null; headers: Record<string, string> }[];
  /** When the partition was assigned here (performance.now()), and the streams predicted since. */
  assignedAt: number;
  readonly predictedSinceAssignment: Set<string>;
  /** The offset after the last record processed. */
  nextOffset: bigint;
  uncommitted: number;
  firstUncommittedAt: number;
  /** The commit in flight, if any: one at a time per partition. */
  committing: Promise<void>;
  /** Set when the partition left this worker: nothing of it is committed any more. */
  gone: boolean;
  /** The offset of this worker's last successful commit of the partition (-1 before the first). */
  committedOffset: bigint;
  /** Set at every assignment: before its next record, the partition's committed offset is settled again. */
  settleOffset: boolean;
  /** Records below this offset are committed already (by this worker or a previous owner) and skipped. */
  skipBelow: bigint;
}

/**
 * A consumer-group member that runs the pipeline on the partitions it is assigned (DESIGN section 6), exactly once
 * in the way Kafka Streams is: per input partition a transactional producer (transactional.id = group, topic and
 * partition), and every commit is one transaction holding the partition's predictions since the last commit, the
 * checkpoint of every stream with records since then, and the input offset after the last record. So the
 * predictions, the learner state and the read position become visible together or not at all:
 *
 * - A worker that dies mid-way leaves an open transaction; whoever is assigned the partition next opens the same
 *   transactional.id, which aborts it and fences the dead one (a zombie's later commit fails), restores each stream
 *   from the changelog as of the last commit, and reads from the committed offset. No record updates a learner
 *   twice, and a read_committed consumer sees each prediction once (with kafkajs loaded through ./kafkajs.ts).
 * - Beneath that, each learner's own high-water mark (the last seq it learned) refuses a tick it has already seen,
 *   whoever re-sends it (a producer after a reconnect): refused as a duplicate, never learned again.
 * - A commit that fails drops the partition's streams from memory and reads the partition again from its last
 *   commit; a partition that leaves this worker at a rebalance is dropped the same way, unsaved.
 *
 * Records are processed in partition order, one partition batch at a time (kafkajs heartbeats between records),
 * and a bad record is refused and skipped, never stopping its partition. A labels topic's partitions are tasks of
 * the same kind whose output is the input topic: each label is forwarded, in its own partition's transactions, to
 * its stream's input partition, and joins its tick there (options.labelsTopic).
 */
export class KafkaWorker {
  readonly stats: KafkaWorkerStats = { records: 0, predictions: 0, refused: 0, commits: 0, restores: 0, dropped: 0, failedCommits: 0, skippedCommitted: 0 };
  readonly pipeline: Pipeline;
  /** By taskKey(topic, partition). */
  private readonly tasks = new Map<string, PartitionTask>();
  /** Per partition assigned here (taskKey), when (performance.now()) it was assigned. */
  private readonly assignedAt = new Map<string, number>();
  private readonly inputs = new Subject<StreamInput | Rejection>();
  private readonly subscription: Subscription;
  private consumer: Consumer | undefined;
  /** Reads committed offsets after a partition's previous owner is fenced. */
  private admin: Admin | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The record being processed: where its outputs go. */
  private currentTask: PartitionTask | undefined;
  private currentPosition: RecordPosition | undefined;
  private readonly commitEveryRecords: number;
  private readonly commitEveryMs: number;
  private stopping = false;
  /** A commit outside a batch failed: the next batch rethrows it, so kafkajs restarts the consumer and rejoins. */
  private commitFailure: Error | undefined;

  private constructor(private readonly options: KafkaWorkerOptions) {
    this.commitEveryRecords = options.commitEveryRecords ?? 2000;
    this.commitEveryMs = options.commitEveryMs ?? 1000;
    if (!(Number.isSafeInteger(this.commitEveryRecords) && this.commitEveryRecords >= 1)) throw new RangeError(`KafkaWorker: commitEveryRecords must be a positive integer, got ${this.commitEveryRecords}`);
    if (!(this.commitEveryMs > 0)) throw new RangeError(`KafkaWorker: commitEveryMs must be positive, got ${this.commitEveryMs}`);
    this.pipeline = createPipeline(options.pipeline);
    this.subscription = this.inputs.pipe(this.pipeline.operator).subscribe({
      next: (out) => this.onOutput(out),
      error: (err) => this.fail(err instanceof Error ? err : new Error(String(err))),
    });
  }

  /** Joins the group and starts consuming; resolves once the consumer runs. */
  static async start(options: KafkaWorkerOptions): Promise<KafkaWorker> {
    const worker = new KafkaWorker(options);
    const admin = options.kafka.admin();
    worker.admin = admin;
    try {
      await admin.connect();
      await worker.runConsumer();
    } catch (err) {
      await worker.consumer?.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
      worker.subscription.unsubscribe();
      throw err;
    }
    worker.timer = setInterval(() => worker.commitDue(), Math.max(50, worker.commitEveryMs / 2));
    worker.timer.unref();
    return worker;
  }

  /** A consumer of the group on the worker's topics, running; resolves once it runs. */
  private async runConsumer(): Promise<void> {
    const { kafka, groupId, sessionTimeoutMs, inputTopic, labelsTopic } = this.options;
    const consumer = kafka.consumer({
      groupId,
      maxWaitTimeInMs: 500,
      allowAutoTopicCreation: false,
      ...(sessionTimeoutMs !== undefined ? { sessionTimeout: sessionTimeoutMs, heartbeatInterval: Math.max(500, Math.floor(sessionTimeoutMs / 6)) } : {}),
    });
    this.consumer = consumer;
    await consumer.connect();
    const topics = labelsTopic === undefined ? [inputTopic] : [inputTopic, labelsTopic];
    await consumer.subscribe({ topics, fromBeginning: true });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      if (this.consumer === consumer) this.onAssignment(topics.flatMap((topic) => (payload.memberAssignment[topic] ?? []).map((partition) => taskKey(topic, partition))));
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      // kafkajs restarts a consumer after a retriable error by itself; after another (a group coordinator not found
      // while a broker restarts) it stops for good, and this worker would take no record again.
      if (!payload.restart && this.consumer === consumer && !this.stopping) void this.replaceConsumer(payload.error, 1000);
    });
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (batch) => this.onBatch(batch) });
  }

  /**
   * After kafkajs gave up on the consumer: every partition's uncommitted work is dropped (as at a rebalance) and a
   * new consumer joins the group, retried with backoff up to 30 s while the brokers cannot be reached. The next
   * owner of each partition, this worker or another, goes on from its last commit.
   */
  private async replaceConsumer(cause: Error, backoffMs: number): Promise<void> {
    this.options.onConsumerRestart?.(cause, backoffMs);
    const old = this.consumer;
    this.consumer = undefined;
    for (const task of [...this.tasks.values()]) this.removeTask(task);
    await old?.disconnect().catch(() => {});
    await new Promise((r) => setTimeout(r, backoffMs).unref());
    if (this.stopping) return;
    try {
      await this.runConsumer();
    } catch (err) {
      await (this.consumer as Consumer | undefined)?.disconnect().catch(() => {});
      this.consumer = undefined;
      if (!this.stopping) void this.replaceConsumer(err as Error, Math.min(30_000, backoffMs * 2));
    }
  }

  /** Stops consuming, commits what has been processed, leaves the group. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await this.consumer?.stop();
    for (const task of this.tasks.values()) await this.commit(task).catch(() => {});
    await Promise.allSettled([...this.tasks.values()].map((t) => t.producer.disconnect()));
    this.tasks.clear();
    await this.consumer?.disconnect();
    await this.admin?.disconnect();
    this.subscription.unsubscribe();
  }

  private async onBatch({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> {
    const failure = this.commitFailure;
    if (failure !== undefined) {
      this.commitFailure = undefined;
      throw failure;
    }
    const task = this.tasks.get(taskKey(batch.topic, batch.partition)) ?? (await this.openTask(batch.topic, batch.partition));
    if (task.settleOffset) await this.settleOffset(task);
    const { shape, maxFrameBytes } = this.options;
    const forwardsLabels = batch.topic !== this.options.inputTopic;
    const resolver = () => shape;
    let sinceHeartbeat = 0;
    for (const message of batch.messages) {
      if (!isRunning() || isStale() || task.gone) break;
      const offset = BigInt(message.offset);
      if (offset < task.skipBelow) {
        this.stats.skippedCommitted++;
        resolveOffset(message.offset);
        continue;
      }
      const position: RecordPosition = { topic: batch.topic, partition: batch.partition, offset: message.offset };
      let decoded = decodeKafkaRecord(message.key, message.value, resolver, { receivedAt: performance.now(), maxFrameBytes });
      if (forwardsLabels && decoded.kind !== 'rejected' && decoded.kind !== 'label') {
        decoded = rejection('malformed', `the labels topic carries label frames only; this record holds a ${decoded.kind}`, decoded.stream, 'seq' in decoded ? decoded.seq : undefined);
      }
      this.stats.records++;
      if (decoded.kind === 'rejected') {
        this.refuse(decoded, position);
        if (this.options.deadLetterTopic !== undefined) {
          task.deadLetters.push({
            key: message.key,
            value: message.value,
            headers: { 'driftline-reason': decoded.reason, 'driftline-message': decoded.message, ...sourceHeaders(position) },
          });
        }
      } else if (forwardsLabels) {
        task.outgoing.push({ key: decoded.stream, value: message.value!, headers: sourceHeaders(position) });
      } else {
        const stream = decoded.stream;
        if (!this.pipeline.pool.has(stream) && !this.pipeline.pool.hasOffer(stream)) {
          await this.restore(stream);
          // A commit of this partition failed meanwhile: the record is read again after the restart.
          if (task.gone) break;
        }
        this.options.onRecord?.(decoded, position);
        task.streams.add(stream);
        task.touched.add(stream);
        this.currentTask = task;
        this.currentPosition = position;
        try {
          this.inputs.next(decoded);
        } finally {
          this.currentTask = undefined;
          this.currentPosition = undefined;
        }
      }
      task.nextOffset = offset + 1n;
      // Resolved is kafkajs' fetch position, not a commit (autoCommit is off): without it the next fetch would
      // deliver the record again. A restart or a rebalance reads from the committed offsets.
      resolveOffset(message.offset);
      if (task.uncommitted++ === 0) task.firstUncommittedAt = Date.now();
      if (task.uncommitted >= this.commitEveryRecords) await this.commit(task);
      if (++sinceHeartbeat >= 256) {
        sinceHeartbeat = 0;
        await heartbeat();
      }
    }
    // A label waits for its forwarding commit to reach its tick's partition, and past the stream's maxLabelDelay it
    // is too late: labels are committed at the end of every batch, not every commitEveryMs.
    if (forwardsLabels && task.uncommitted > 0 && !task.gone) await this.commit(task);
    await heartbeat();
  }

  /** The transactional producer of a partition: opening it aborts the previous owner's open transaction. */
  private async openTask(topic: string, partition: number): Promise<PartitionTask> {
    const { kafka, groupId, inputTopic, predictionsTopic } = this.options;
    const producer = kafka.producer({ ...EXACT_PRODUCER, transactionalId: `${groupId}.${topic}.${partition}` });
    try {
      await producer.connect();
    } catch (err) {
      await producer.disconnect().catch(() => {});
      throw err;
    }
    const key = taskKey(topic, partition);
    const task: PartitionTask = {
      topic, partition, outputTopic: topic === inputTopic ? predictionsTopic : inputTopic,
      producer, streams: new Set(), touched: new Set(), outgoing: [], deadLetters: [], nextOffset: -1n,
      assignedAt: this.assignedAt.get(key) ?? performance.now(), predictedSinceAssignment: new Set(),
      uncommitted: 0, firstUncommittedAt: 0, committing: Promise.resolve(), gone: false,
      committedOffset: -1n, settleOffset: true, skipBelow: -1n,
    };
    this.tasks.set(key, task);
    return task;
  }

  /**
   * Where a partition's work resumes after an assignment. kafkajs reads the committed offset when the group forms,
   * before this worker's transactional producer has fenced the previous owner, which can still commit in between
   * (a live worker's timer, mid-rebalance; Kafka's fix, KIP-447, fences offset commits by group generation, which
   * kafkajs does not send). So the offset is read again once that cannot happen: for a partition new here after
   * opening its producer (which completes or aborts the previous owner's transaction and fences it), for one kept
   * across the rebalance after its own commit in flight ends (nobody else could have committed it). Records below
   * it are skipped: processing them again would publish their predictions a second time.
   */
  private async settleOffset(task: PartitionTask): Promise<void> {
    task.settleOffset = false;
    await task.committing;
    if (task.committedOffset >= 0n) {
      task.skipBelow = task.committedOffset;
      return;
    }
    const [topic] = await this.admin!.fetchOffsets({ groupId: this.options.groupId, topics: [task.topic] });
    const committed = topic?.partitions.find((p) => p.partition === task.partition)?.offset;
    task.skipBelow = committed !== undefined && /^\d+$/.test(committed) ? BigInt(committed) : -1n;
  }

  /** A stream first seen here: its state as of the last commit that wrote it, if any. */
  private async restore(stream: string): Promise<void> {
    let checkpoint: StoredCheckpoint | undefined;
    try {
      checkpoint = await this.options.changelog.load(stream);
    } catch (err) {
      // Not read (the changelog cannot be reached): the stream must not start afresh over the state it has there.
      // The error ends the batch unprocessed from this record; kafkajs reads it again once the consumer restarts.
      if (!(err instanceof CheckpointDefectError)) throw err;
      // Damaged: the store has moved it aside and named it; the stream starts afresh.
      this.options.onRefused?.({ kind: 'rejected', reason: 'stream-unavailable', stream, message: `checkpoint of '${stream}' not restored: ${(err as Error).message}` }, { topic: this.options.changelog.topic, partition: -1, offset: '-1' });
      return;
    }
    if (checkpoint === undefined) return;
    this.pipeline.pool.offer(checkpoint);
    this.stats.restores++;
  }

  private onOutput(out: PipelineOutput): void {
    const task = this.currentTask;
    const position = this.currentPosition;
    if (out.kind === 'prediction' && task !== undefined && position !== undefined) {
      task.outgoing.push(predictionRecord(out, position));
      this.stats.predictions++;
      if (!task.predictedSinceAssignment.has(out.stream)) {
        task.predictedSinceAssignment.add(out.stream);
        this.options.onFirstPrediction?.(out.stream, (performance.now() - task.assignedAt) / 1000);
      }
      this.options.onOutput?.(out);
      return;
    }
    if (out.kind === 'rejected') {
      this.refuse(out, position ?? { topic: this.options.inputTopic, partition: -1, offset: '-1' });
      return;
    }
    this.options.onOutput?.(out);
  }

  private refuse(rejection: Rejection, at: RecordPosition): void {
    this.stats.refused++;
    this.options.onRefused?.(rejection, at);
  }

  /** Commits every partition whose oldest uncommitted record has waited commitEveryMs (a quiet partition too). */
  private commitDue(): void {
    const now = Date.now();
    for (const task of this.tasks.values()) {
      if (task.uncommitted > 0 && now - task.firstUncommittedAt >= this.commitEveryMs) {
        void this.commit(task).catch((err: Error) => {
          if (!this.stopping) this.commitFailure = err;
        });
      }
    }
  }

  /**
   * One transaction: the partition's predictions and stream checkpoints since the last commit, and the offset after
   * its last record. What it covers is taken at once (between two records), so records that come while it is in
   * flight go into the next one.
   */
  private commit(task: PartitionTask): Promise<void> {
    const run = task.committing.then(async () => {
      if (task.gone || task.uncommitted === 0) return;
      const outgoing = task.outgoing;
      const deadLetters = task.deadLetters;
      const checkpoints = [...task.touched].map((stream) => this.checkpointOf(stream)).filter((c): c is StoredCheckpoint => c !== undefined);
      const offset = task.nextOffset;
      task.outgoing = [];
      task.deadLetters = [];
      task.touched = new Set();
      task.uncommitted = 0;
      const { changelog, groupId } = this.options;
      const transaction = await task.producer.transaction();
      try {
        if (outgoing.length > 0) await transaction.send({ topic: task.outputTopic, messages: outgoing });
        if (deadLetters.length > 0) await transaction.send({ topic: this.options.deadLetterTopic!, messages: deadLetters });
        if (checkpoints.length > 0) await transaction.send({ topic: changelog.topic, messages: checkpoints.map((c) => changelog.record(c)) });
        await transaction.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: task.topic, partitions: [{ partition: task.partition, offset: String(offset) }] }] });
        await transaction.commit();
        task.committedOffset = offset;
        this.stats.commits++;
      } catch (err) {
        await transaction.abort().catch(() => {});
        this.stats.failedCommits++;
        // Fenced (the partition has a new owner) or the broker failed: nothing since the last commit is kept. The
        // error ends the batch; kafkajs restarts the consumer, which rejoins and reads from the committed offsets,
        // into streams restored from the changelog.
        this.removeTask(task);
        throw err;
      }
    });
    task.committing = run.catch(() => {});
    return run;
  }

  private checkpointOf(stream: string): StoredCheckpoint | undefined {
    const marks = this.pipeline.marks(stream);
    return marks === undefined ? undefined : checkpointOfStream(this.pipeline.pool, stream, marks.seq, marks.pendingLabels);
  }


  /**
   * After a rebalance: a partition that left this worker, or whose work was not all committed (the consumer reads
   * it again from its committed offset), has its streams dropped from memory unsaved, to be restored from the
   * changelog when their records come.
   */
  private onAssignment(keys: readonly string[]): void {
    const assigned = new Set(keys);
    const now = performance.now();
    for (const key of keys) if (!this.tasks.has(key) || this.tasks.get(key)!.uncommitted > 0) this.assignedAt.set(key, now);
    for (const task of this.tasks.values()) task.settleOffset = true;
    for (const key of [...this.assignedAt.keys()]) if (!assigned.has(key)) this.assignedAt.delete(key);
    for (const [key, task] of [...this.tasks]) {
      if (!assigned.has(key)) {
        this.removeTask(task);
      } else if (task.uncommitted > 0) {
        this.dropTask(task);
        task.gone = false;
        task.assignedAt = now;
      }
    }
  }

  /** A partition this worker lets go: dropped as below, forgotten, its producer closed after its commit in flight. */
  private removeTask(task: PartitionTask): void {
    this.dropTask(task);
    const key = taskKey(task.topic, task.partition);
    if (this.tasks.get(key) === task) this.tasks.delete(key);
    void task.committing.then(() => task.producer.disconnect()).catch(() => {});
  }

  /** Forgets a partition's uncommitted work and drops its streams from memory, unsaved. */
  private dropTask(task: PartitionTask): void {
    task.gone = true;
    task.outgoing = [];
    task.deadLetters = [];
    task.touched = new Set();
    task.uncommitted = 0;
    task.predictedSinceAssignment.clear();
    for (const stream of task.streams) if (this.pipeline.pool.evict(stream)) this.stats.dropped++;
    task.streams.clear();
  }

  private fail(error: Error): void {
    if (this.options.onFailure) this.options.onFailure(error);
    else process.emitWarning(`driftline kafka worker failed: ${error.message}`, { code: 'DRIFTLINE_KAFKA_WORKER_FAILED' });
  }
}

/** A partition of one of the worker's topics, as its tasks and assignments are keyed. */
function taskKey(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}
