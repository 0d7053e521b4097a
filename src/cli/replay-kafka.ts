// `driftline replay --to kafka://BROKERS/TOPIC`: a recording produced into a topic, one record per frame.
import kafkajs from '../adapters/kafka/kafkajs.js';
import type { Kafka } from 'kafkajs';
import type { Observable } from 'rxjs';
import { encodeBinaryFrame, encodeJsonFrame } from '../adapters/websocket/frames.js';
import { EXACT_PRODUCER } from '../adapters/kafka/producer-options.js';
import type { StreamInput } from '../streams/messages.js';

/** Where a replay goes on Kafka. */
export interface KafkaTarget {
  readonly brokers: readonly string[];
  readonly topic: string;
}

/** Records per produce request: large enough to amortize the round trip, small enough to stay far below 1 MB. */
const RECORDS_PER_SEND = 500;

/**
 * `kafka://host:port[,host:port...]/topic`. @throws Error naming what is wrong (a URL with a comma-separated host
 * list is not a WHATWG URL, so it is read here).
 */
export function parseKafkaTarget(text: string): KafkaTarget {
  const m = /^kafka:\/\/([^/?#]+)\/([^/?#]+)$/.exec(text);
  if (!m) throw new Error(`a Kafka target is kafka://HOST:PORT[,HOST:PORT...]/TOPIC, got '${text}'`);
  const brokers = m[1]!.split(',');
  for (const broker of brokers) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(broker)) throw new Error(`'${broker}' in '${text}' is not HOST:PORT`);
  }
  const topic = decodeURIComponent(m[2]!);
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(topic) || topic === '.' || topic === '..') {
    throw new Error(`'${topic}' is not a Kafka topic name (1 to 249 of A-Z a-z 0-9 . _ -)`);
  }
  return { brokers, topic };
}

export interface KafkaReplayOptions {
  readonly kafka: Kafka;
  readonly topic: string;
  /** Binary frames (the documented little-endian layout) instead of JSON text. */
  readonly binary: boolean;
}

export interface KafkaReplayResult {
  readonly ticks: number;
  readonly labels: number;
  readonly sessions: number;
  readonly records: number;
}

/**
 * Produces every input of `inputs` into the topic as one record keyed by its stream (kafka-records.ts reads it
 * back), in order, through an idempotent producer with acks from every in-sync replica: a stream's records keep
 * their order on its partition, and a retried request neither doubles nor reorders them. Resolves once every
 * record is acknowledged.
 * @throws Error naming the topic when it does not exist (it is not created here: its partition count decides how
 *   many workers can share the streams), or the broker's error when a request fails after kafkajs' retries.
 */
export async function replayToKafka(inputs: Observable<StreamInput>, options: KafkaReplayOptions): Promise<KafkaReplayResult> {
  const { kafka, topic, binary } = options;
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = await admin.listTopics();
    if (!topics.includes(topic)) throw new Error(`topic '${topic}' does not exist; create it first (its partitions decide how many workers can share the streams)`);
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer(EXACT_PRODUCER);
  await producer.connect();
  const counts = { ticks: 0, labels: 0, sessions: 0, records: 0 };
  let pending: { key: string; value: Buffer }[] = [];
  let sending: Promise<void> = Promise.resolve();
  let failure: Error | undefined;
  const flush = (): void => {
    if (pending.length === 0) return;
    const messages = pending;
    pending = [];
    sending = sending.then(async () => {
      if (failure !== undefined) return;
      try {
        await producer.send({ topic, acks: -1, messages });
        counts.records += messages.length;
      } catch (err) {
        failure = err as Error;
      }
    });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const subscription = inputs.subscribe({
        next: (input) => {
          if (failure !== undefined) {
            queueMicrotask(() => subscription.unsubscribe());
            resolve();
            return;
          }
          if (input.kind === 'tick') counts.ticks++;
          else if (input.kind === 'label') counts.labels++;
          else counts.sessions++;
          const encoded = binary ? encodeBinaryFrame(input) : encodeJsonFrame(input);
          pending.push({ key: input.stream, value: typeof encoded === 'string' ? Buffer.from(encoded, 'utf8') : Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength) });
          if (pending.length >= RECORDS_PER_SEND) flush();
        },
        error: reject,
        complete: resolve,
      });
    });
    flush();
    await sending;
    if (failure !== undefined) throw new Error(`producing to topic '${topic}' failed: ${failure.message}`, { cause: failure });
    return counts;
  } finally {
    await producer.disconnect();
  }
}

/** A kafkajs client for the command line: its own logs only at error level, on stderr through kafkajs' logger. */
export function cliKafka(target: KafkaTarget, clientId: string): Kafka {
  return new kafkajs.Kafka({ clientId, brokers: [...target.brokers], logLevel: kafkajs.logLevel.ERROR, connectionTimeout: 5000 });
}
