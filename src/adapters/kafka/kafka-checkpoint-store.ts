// Learner state in a compacted Kafka topic (DESIGN section 6): the changelog a worker restores its streams from.
import { randomBytes } from 'node:crypto';
// kafkajs is CommonJS; its enums are read from the default export.
import kafkajs from './kafkajs.js';
import type { Admin, Consumer, Kafka, Producer } from 'kafkajs';
import {
  CheckpointDefectError,
  type CheckpointMeta,
  type CheckpointStore,
  type StoredCheckpoint,
} from '../../streams/checkpoint-store.js';
import { EXACT_PRODUCER } from './producer-options.js';
import { decodeCheckpointFile, encodeCheckpointFile, type CorruptCheckpoint } from '../../streams/file-checkpoint-store.js';

/** Largest checkpoint record the changelog topic accepts when this store creates it (topic max.message.bytes). */
export const CHANGELOG_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface KafkaCheckpointStoreOptions {
  /** A kafkajs client; the store makes its own admin, producer and consumer from it and closes them in `close`. */
  readonly kafka: Kafka;
  /** The changelog topic: key = stream, value = one checkpoint (the file store's CRC-checked format 2). */
  readonly topic: string;
  /** Where damaged checkpoints are kept, one record each, never overwritten. Default `<topic>.quarantine`. */
  readonly quarantineTopic?: string;
  /** Partitions of the topics when this store creates them (default 1). An existing topic keeps its own. */
  readonly partitions?: number;
  /** Replication factor of the topics when this store creates them (default: the broker's). */
  readonly replicationFactor?: number;
  /** How long `loadAll`, `list` and `load` wait for the changelog to be read up to its end (default 30 s). */
  readonly catchUpTimeoutMs?: number;
  /** As the file store's: every checkpoint `loadAll` and `list` quarantine. Default: a process warning each. */
  readonly onCorrupt?: (problem: CorruptCheckpoint) => void;
}

/** The changelog topic exists with a policy that would delete state, or cannot be created or read. */
export class ChangelogTopicError extends Error {
  override readonly name = 'ChangelogTopicError';
  constructor(readonly topic: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The newest record of one stream in the changelog, as read. */
interface Entry {
  readonly partition: number;
  readonly offset: string;
  readonly value: Buffer;
}

/**
 * A CheckpointStore on a compacted Kafka topic, the changelog that Kafka Streams keeps for its state stores: each
 * save is one record keyed by stream, so compaction keeps the newest checkpoint of every stream and nothing else.
 *
 * - `open` creates the topic with cleanup.policy=compact when missing, and refuses an existing one whose policy is
 *   not compacting: a `delete` topic would drop state after its retention, silently.
 * - `save` resolves once the broker has acknowledged the record from every in-sync replica (acks = -1), through an
 *   idempotent producer with one request in flight, so a retried save is neither doubled nor reordered.
 * - The store reads the topic continuously with its own consumer (its own group, no committed offsets, committed
 *   transactions only) into a view
 *   of the newest record per stream, as a KTable does. `loadAll`, `list` and `load` first wait until that view has
 *   read every partition up to the end it has when they are called, so they see every save acknowledged before.
 *   The view holds the newest bytes of every stream (what a restore needs anyway).
 * - A record that does not decode (truncated, bad CRC, wrong stream in its meta) is copied, whole, to the
 *   quarantine topic under a key of its own (`<stream>@<partition>:<offset>`, never reused, so compaction never
 *   removes it), with headers naming the defect; then the stream's entry is deleted (a tombstone), and its next
 *   save starts afresh. Nothing damaged is overwritten or dropped unseen.
 */
export class KafkaCheckpointStore implements CheckpointStore {
  readonly topic: string;
  readonly quarantineTopic: string;
  private readonly admin: Admin;
  private readonly producer: Producer;
  private readonly kafka: Kafka;
  /** Replaced by a fresh one when kafkajs gives up on it (rebuildReader). */
  private reader: Consumer;
  /** Counts readers: events of a replaced one are ignored. */
  private readerGeneration = 0;
  private readonly view = new Map<string, Entry>();
  /** Per partition, the offset after the last record the view has read. */
  private readonly readUpTo = new Map<number, bigint>();
  private readonly waiters = new Set<() => void>();
  private readonly catchUpTimeoutMs: number;
  private readonly onCorrupt: (problem: CorruptCheckpoint) => void;
  /** The last error that stopped a reader, for the message of a load that times out meanwhile. */
  private readerError: Error | undefined;
  private closed = false;

  private constructor(
    options: KafkaCheckpointStoreOptions,
    parts: { admin: Admin; producer: Producer; reader: Consumer; quarantineTopic: string },
  ) {
    this.topic = options.topic;
    this.quarantineTopic = parts.quarantineTopic;
    this.admin = parts.admin;
    this.producer = parts.producer;
    this.reader = parts.reader;
    this.kafka = options.kafka;
    this.catchUpTimeoutMs = options.catchUpTimeoutMs ?? 30_000;
    this.onCorrupt = options.onCorrupt ?? warnCorrupt;
  }

  /**
   * Connects, makes sure both topics exist (the changelog compacted), and starts reading the changelog.
   * @throws ChangelogTopicError naming the topic when it is not compacted or cannot be created; the kafkajs error
   *   (after its own retries with backoff) when no broker answers.
   */
  static async open(options: KafkaCheckpointStoreOptions): Promise<KafkaCheckpointStore> {
    const { kafka, topic } = options;
    if (typeof topic !== 'string' || topic.length === 0) throw new TypeError('KafkaCheckpointStore: topic must be a non-empty string');
    const quarantineTopic = options.quarantineTopic ?? `${topic}.quarantine`;
    const partitions = options.partitions ?? 1;
    if (!Number.isSafeInteger(partitions) || partitions < 1) throw new RangeError(`KafkaCheckpointStore: partitions must be a positive integer, got ${partitions}`);
    const onCorrupt = options.onCorrupt;
    if (onCorrupt !== undefined && typeof onCorrupt !== 'function') throw new TypeError('KafkaCheckpointStore: onCorrupt must be a function');

    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer(EXACT_PRODUCER);
    const reader = changelogReader(kafka);
    try {
      const compact = [{ name: 'cleanup.policy', value: 'compact' }];
      await ensureTopic(admin, topic, partitions, options.replicationFactor, [
        ...compact,
        { name: 'max.message.bytes', value: String(CHANGELOG_MAX_MESSAGE_BYTES) },
      ]);
      await ensureTopic(admin, quarantineTopic, 1, options.replicationFactor, [
        ...compact,
        { name: 'max.message.bytes', value: String(CHANGELOG_MAX_MESSAGE_BYTES) },
      ]);
      const policy = await cleanupPolicy(admin, topic);
      if (!policy.split(',').map((p) => p.trim()).includes('compact')) {
        throw new ChangelogTopicError(
          topic,
          `changelog topic '${topic}' has cleanup.policy=${policy}: checkpoints there would be deleted after its retention; use a topic with cleanup.policy=compact`,
        );
      }
      await producer.connect();
      const store = new KafkaCheckpointStore(options, { admin, producer, reader, quarantineTopic });
      await store.startReading();
      return store;
    } catch (err) {
      await Promise.allSettled([reader.disconnect(), producer.disconnect(), admin.disconnect()]);
      throw err;
    }
  }

  async save(checkpoint: StoredCheckpoint): Promise<void> {
    this.checkOpen();
    await this.producer.send({ topic: this.topic, acks: -1, messages: [this.record(checkpoint)] });
  }

  /**
   * The changelog record of a checkpoint, for a writer that puts it in a transaction of its own (a Kafka worker
   * commits its checkpoints, its predictions and its input offsets together). Readers see only committed records.
   * @throws TypeError naming the stream for an invalid checkpoint.
   */
  record(checkpoint: StoredCheckpoint): { key: string; value: Buffer } {
    const stream = (checkpoint as StoredCheckpoint | undefined)?.meta?.stream;
    let bytes: Uint8Array;
    try {
      bytes = encodeCheckpointFile(checkpoint);
    } catch (err) {
      throw new TypeError(`${this.locationOf(typeof stream === 'string' ? stream : '?')}: cannot save checkpoint: ${(err as Error).message}`);
    }
    return { key: stream as string, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  }

  /** Every stream's newest checkpoint; damaged ones are quarantined and reported through onCorrupt. */
  async loadAll(): Promise<Map<string, StoredCheckpoint>> {
    await this.catchUp();
    const loaded = new Map<string, StoredCheckpoint>();
    for (const [stream, entry] of [...this.view]) {
      const decoded = this.decode(stream, entry);
      if (decoded instanceof CheckpointDefectError) {
        this.onCorrupt(await this.quarantineEntry(stream, entry, decoded.defect, decoded.message));
        continue;
      }
      loaded.set(stream, decoded);
    }
    return loaded;
  }

  /** Every stream's checkpoint meta. The view holds whole records, so this verifies them as loadAll does. */
  async list(): Promise<Map<string, CheckpointMeta>> {
    const all = await this.loadAll();
    return new Map([...all].map(([stream, checkpoint]) => [stream, checkpoint.meta]));
  }

  async load(stream: string): Promise<StoredCheckpoint | undefined> {
    await this.catchUp();
    const entry = this.view.get(stream);
    if (entry === undefined) return undefined;
    const decoded = this.decode(stream, entry);
    if (!(decoded instanceof CheckpointDefectError)) return decoded;
    const moved = await this.quarantineEntry(stream, entry, decoded.defect, decoded.message);
    throw new CheckpointDefectError(decoded.defect, moved.original, decoded.message, moved.file);
  }

  async quarantine(stream: string, defect: string, detail: string): Promise<string> {
    await this.catchUp();
    const entry = this.view.get(stream);
    if (entry === undefined) throw new Error(`${this.locationOf(stream)}: no checkpoint to quarantine`);
    return (await this.quarantineEntry(stream, entry, defect, detail)).file;
  }

  /** Stops reading and disconnects; saves in flight are not awaited (the checkpointer's flush does that first). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const wake of this.waiters) wake();
    await Promise.allSettled([this.reader.disconnect(), this.producer.disconnect(), this.admin.disconnect()]);
  }

  /** Where a stream's checkpoint lives, for messages: kafka://<topic>/<stream>. */
  locationOf(stream: string): string {
    return `kafka://${this.topic}/${encodeURIComponent(stream)}`;
  }

  private async startReading(): Promise<void> {
    const reader = this.reader;
    const generation = ++this.readerGeneration;
    const current = () => generation === this.readerGeneration && !this.closed;
    await reader.connect();
    await reader.subscribe({ topics: [this.topic], fromBeginning: true });
    // A batch of transaction markers or aborted records reaches no eachBatch, yet moves the read position: the
    // end of every batch, processed or filtered, says where reading stands.
    reader.on(reader.events.END_BATCH_PROCESS, ({ payload }) => {
      if (!current()) return;
      const next = BigInt(payload.lastOffset) + 1n;
      if (next > (this.readUpTo.get(payload.partition) ?? 0n)) this.readUpTo.set(payload.partition, next);
      for (const wake of this.waiters) wake();
    });
    reader.on(reader.events.CRASH, (event) => {
      if (!current()) return;
      this.readerError = event.payload.error;
      // kafkajs restarts a consumer after a retriable error by itself; after another (a group coordinator not
      // found while the broker restarts) it stops for good, and the view would never move again.
      if (!event.payload.restart) void this.rebuildReader(1000);
    });
    await reader.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat }) => {
        if (!current()) return;
        for (const message of batch.messages) {
          const stream = message.key?.toString('utf8');
          if (stream === undefined) continue;
          if (message.value === null) this.view.delete(stream);
          else this.view.set(stream, { partition: batch.partition, offset: message.offset, value: message.value });
        }
        await heartbeat();
      },
    });
  }

  /**
   * A fresh reader in a fresh group (the old member would hold the group until its session times out), reading the
   * changelog from its start into an empty view; retried with backoff (up to 30 s) while the brokers cannot be
   * reached. Loads wait meanwhile, up to their catch-up timeout.
   */
  private async rebuildReader(backoffMs: number): Promise<void> {
    if (this.closed) return;
    const old = this.reader;
    this.readerGeneration++;
    this.view.clear();
    this.readUpTo.clear();
    void old.disconnect().catch(() => {});
    await new Promise((r) => setTimeout(r, backoffMs).unref());
    if (this.closed) return;
    this.reader = changelogReader(this.kafka);
    try {
      await this.startReading();
    } catch (err) {
      this.readerError = err as Error;
      void this.rebuildReader(Math.min(30_000, backoffMs * 2));
    }
  }

  /** Resolves once the view has read every partition up to the end it had when called. */
  private async catchUp(): Promise<void> {
    this.checkOpen();
    const ends = await this.admin.fetchTopicOffsets(this.topic);
    const behind = () =>
      ends.some(({ partition, high, low }) => BigInt(high) > BigInt(low) && (this.readUpTo.get(partition) ?? BigInt(low)) < BigInt(high));
    const deadline = Date.now() + this.catchUpTimeoutMs;
    while (behind()) {
      this.checkOpen();
      const left = deadline - Date.now();
      if (left <= 0) {
        const lag = ends.map(({ partition, high }) => `partition ${partition} at ${this.readUpTo.get(partition) ?? 0} of ${high}`).join(', ');
        const last = this.readerError === undefined ? '' : `; its reader last failed with: ${this.readerError.message}`;
        throw new ChangelogTopicError(this.topic, `changelog topic '${this.topic}' not read to its end within ${this.catchUpTimeoutMs} ms (${lag})${last}`, { cause: this.readerError });
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 200));
        this.waiters.add(wake);
      });
    }
  }

  private decode(stream: string, entry: Entry): StoredCheckpoint | CheckpointDefectError {
    const where = `${this.locationOf(stream)} (partition ${entry.partition}, offset ${entry.offset})`;
    try {
      const { checkpoint } = decodeCheckpointFile(entry.value, where);
      if (checkpoint.meta.stream !== stream) {
        return new CheckpointDefectError('misplaced', where, `${where}: holds the checkpoint of stream '${checkpoint.meta.stream}'`);
      }
      return checkpoint;
    } catch (err) {
      if (err instanceof CheckpointDefectError) return err;
      return new CheckpointDefectError('unreadable', where, `${where}: ${(err as Error).message}`);
    }
  }

  /** Copies the record to the quarantine topic, then deletes the stream's entry (a tombstone). */
  private async quarantineEntry(stream: string, entry: Entry, defect: string, detail: string): Promise<CorruptCheckpoint> {
    const key = `${stream}@${entry.partition}:${entry.offset}`;
    const original = `${this.locationOf(stream)} (partition ${entry.partition}, offset ${entry.offset})`;
    await this.producer.send({
      topic: this.quarantineTopic,
      acks: -1,
      messages: [{
        key,
        value: entry.value,
        headers: { stream, defect, detail, 'source-topic': this.topic, 'source-partition': String(entry.partition), 'source-offset': entry.offset },
      }],
    });
    // Only once the copy is durable: the tombstone removes the stream's entry, so its next save starts afresh.
    await this.producer.send({ topic: this.topic, acks: -1, messages: [{ key: stream, value: null }] });
    if (this.view.get(stream) === entry) this.view.delete(stream);
    return {
      file: `kafka://${this.quarantineTopic}/${encodeURIComponent(key)}`,
      original,
      defect: defect as CorruptCheckpoint['defect'],
      message: `${original}: ${detail}`,
    };
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`KafkaCheckpointStore on '${this.topic}' is closed`);
  }
}

/** Its own group, never committed: the view is read from the start of the changelog. A short long-poll: close()
 * waits for the fetch in flight. */
function changelogReader(kafka: Kafka): Consumer {
  return kafka.consumer({ groupId: `driftline-changelog-reader-${randomBytes(8).toString('hex')}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 500 });
}

async function ensureTopic(
  admin: Admin,
  topic: string,
  numPartitions: number,
  replicationFactor: number | undefined,
  configEntries: { name: string; value: string }[],
): Promise<void> {
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions, ...(replicationFactor !== undefined ? { replicationFactor } : {}), configEntries }],
    });
  } catch (err) {
    // Created meanwhile by another worker of the group: fine, its policy is checked next.
    if ((err as { type?: string }).type === 'TOPIC_ALREADY_EXISTS') return;
    throw new ChangelogTopicError(topic, `cannot create topic '${topic}': ${(err as Error).message}`, { cause: err });
  }
}

async function cleanupPolicy(admin: Admin, topic: string): Promise<string> {
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }],
  });
  const entry = described.resources[0]?.configEntries.find((e) => e.configName === 'cleanup.policy');
  if (entry === undefined) throw new ChangelogTopicError(topic, `cannot read cleanup.policy of topic '${topic}'`);
  return entry.configValue;
}

function warnCorrupt(problem: CorruptCheckpoint): void {
  process.emitWarning(`${problem.message}; kept at ${problem.file}`, { code: 'DRIFTLINE_CHECKPOINT_QUARANTINED' });
}
