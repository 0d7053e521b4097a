// A workload for Kafka worker tests: 8 streams of float32-exact ticks produced at a steady pace into an input
// topic, `driftline run` workers of one group on it, and the checks that every run must pass whatever happened to
// the workers: no prediction missing, a repeat only with its model version, and every stream's final state
// byte-identical to one uninterrupted in-process run.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from, lastValueFrom, toArray } from 'rxjs';
import type { Admin, Consumer, Kafka, Producer } from 'kafkajs';
import { KafkaCheckpointStore } from '../../src/adapters/kafka/kafka-checkpoint-store.js';
import { PREDICTION_HEADERS } from '../../src/adapters/kafka/kafka-records.js';
import { encodeBinaryFrame } from '../../src/adapters/websocket/frames.js';
import { parseConfig } from '../../src/cli/config.js';
import { pipelineOptionsOf } from '../../src/cli/run.js';
import type { TickEvent } from '../../src/streams/messages.js';
import { createPipeline } from '../../src/streams/pipeline.js';
import type { DriftlineProcess } from './driftline-process.js';
import { testKafka } from './kafka-broker.js';
import { MemoryCheckpointStore } from './memory-checkpoint-store.js';

export const STREAMS = 8;
const PARTITIONS = 4;
const INPUTS = 16;

const learnerAndStreams = {
  streams: { inputSize: INPUTS, outputSize: 2, maxStreams: 64 },
  learner: { cell: { kind: 'tanh-rnn', hiddenSize: 16 }, credit: { rule: 'immediate' }, optimizer: { name: 'rmsprop', lr: 0.003 }, seed: 3 },
};

export interface WorkloadTopics {
  readonly inputTopic: string;
  readonly predictionsTopic: string;
  readonly changelogTopic: string;
}

/** Tick `seq` of stream `s`: float32-exact inputs and a label that depends on them, the same in every run. */
function tick(s: number, seq: number): TickEvent {
  const x = new Float32Array(INPUTS);
  for (let j = 0; j < INPUTS; j++) x[j] = Math.sin(0.013 * seq * (j + 1) + s) + (j === s ? 0.5 : 0);
  const y = Float32Array.of(x[0]! - 0.5 * x[3]!, Math.cos(0.02 * seq + s));
  return { kind: 'tick', stream: `s${s}`, seq, t: seq * 0.05, x, y };
}

/** Round-robin over the streams: what the producer sends, in order. */
export const workloadTicks = (ticksPerStream: number): TickEvent[] =>
  Array.from({ length: STREAMS * ticksPerStream }, (_, g) => tick(g % STREAMS, Math.floor(g / STREAMS)));

/** The topics of one test (input and predictions with PARTITIONS partitions; the workers create the changelog). */
export async function createWorkloadTopics(admin: Admin, suffix: string): Promise<WorkloadTopics> {
  const topics = { inputTopic: `driftline-in-${suffix}`, predictionsTopic: `driftline-out-${suffix}`, changelogTopic: `driftline-state-${suffix}` };
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: topics.inputTopic, numPartitions: PARTITIONS }, { topic: topics.predictionsTopic, numPartitions: PARTITIONS }] });
  return topics;
}

/** A `driftline run` config for workers of `groupId` (short commits and session timeout, so a test runs in a minute). */
export function writeWorkerConfig(dir: string, brokers: readonly string[], groupId: string, topics: WorkloadTopics): string {
  const file = join(dir, `${groupId}.json`);
  writeFileSync(file, JSON.stringify({
    ...learnerAndStreams,
    sources: { kafka: { brokers, groupId, ...topics, changelogPartitions: PARTITIONS, commitEveryRecords: 400, commitEveryMs: 300, sessionTimeoutMs: 6000 } },
    metrics: { port: 0 },
    log: { level: 'info' },
  }));
  return file;
}

/**
 * The ticks into the input topic, `perSend` records every `everyMs`. Stream s<i> goes to partition i mod 4, two
 * streams on each: by key hash these 8 keys would leave a partition empty, and a worker assigned only that one
 * would have no work to show.
 */
export async function produceSteadily(producer: Producer, topic: string, ticks: readonly TickEvent[], perSend: number, everyMs: number): Promise<void> {
  for (let at = 0; at < ticks.length; at += perSend) {
    const messages = ticks.slice(at, at + perSend).map((t) => ({ key: t.stream, partition: Number(t.stream.slice(1)) % PARTITIONS, value: Buffer.from(encodeBinaryFrame(t)) }));
    await producer.send({ topic, acks: -1, messages });
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Every prediction record of the topic as it comes (read_committed): "stream/seq" -> the model versions it came
 * with. A record this reader is handed again (its own group rebalanced before it committed) is counted once: a
 * repeat is another record.
 */
export async function readPredictions(consumer: Consumer, topic: string): Promise<{ readonly seen: Map<string, number[]>; count(): number }> {
  const seen = new Map<string, number[]>();
  const records = new Set<string>();
  let count = 0;
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const at = `${partition}:${message.offset}`;
      if (records.has(at)) return;
      records.add(at);
      const p = JSON.parse(message.value!.toString()) as { stream: string; seq: number };
      const key = `${p.stream}/${p.seq}`;
      seen.set(key, [...(seen.get(key) ?? []), Number(message.headers?.[PREDICTION_HEADERS.modelVersion]?.toString())]);
      count++;
    },
  });
  return { seen, count: () => count };
}

/**
 * Every prediction of the topic read afresh by a reader of its own, once `expected` are in (or after `withinMs`):
 * for a test whose running reader may have lived through a broker restart.
 */
export async function readAllPredictions(kafka: Kafka, topic: string, expected: number, withinMs: number): Promise<Map<string, number[]>> {
  const reader = kafka.consumer({ groupId: `driftline-final-reader-${randomBytes(6).toString('hex')}`, maxWaitTimeInMs: 200 });
  try {
    const predictions = await readPredictions(reader, topic);
    const deadline = Date.now() + withinMs;
    while (predictions.count() < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return predictions.seen;
  } finally {
    await reader.disconnect().catch(() => {});
  }
}

/** Waits until the group's committed offset is at the end of every partition of the topic. */
export async function waitCommittedToEnd(admin: Admin, groupId: string, topic: string, withinMs: number): Promise<void> {
  const ends = await admin.fetchTopicOffsets(topic);
  const deadline = Date.now() + withinMs;
  for (;;) {
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    // A partition that never had a record has no committed offset (-1).
    if (ends.every(({ partition, high }) => committed!.partitions.find((p) => p.partition === partition)?.offset === (high === '0' ? '-1' : high))) return;
    assert.ok(Date.now() < deadline, `the workers did not reach the end: ${JSON.stringify(committed)} of ${JSON.stringify(ends)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * What every run must end in: no (stream, seq) without a prediction, a repeat only with the same model version,
 * and each stream's changelog state byte-identical to the same pipeline run in-process without interruption.
 * @returns how many predictions were repeated.
 */
export async function assertExactlyOnce(kafka: Kafka, topics: WorkloadTopics, ticks: readonly TickEvent[], seen: ReadonlyMap<string, number[]>): Promise<number> {
  const missing = ticks.filter((t) => !seen.has(`${t.stream}/${t.seq}`)).map((t) => `${t.stream}/${t.seq}`);
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} ticks without a prediction`);
  const repeats = [...seen.values()].filter((v) => v.length > 1);
  for (const versions of repeats) assert.ok(versions.every((v) => v === versions[0]), `a repeated prediction with another model version: ${versions.join(', ')}`);

  const memory = new MemoryCheckpointStore();
  const reference = createPipeline({ ...pipelineOptionsOf(parseConfig(learnerAndStreams)), checkpoint: { store: memory } });
  await lastValueFrom(from(ticks).pipe(reference.operator, toArray()));
  await reference.flush();
  const changelog = await KafkaCheckpointStore.open({ kafka, topic: topics.changelogTopic });
  try {
    const states = await changelog.loadAll();
    assert.equal(states.size, STREAMS);
    const lastSeq = Math.max(...ticks.map((t) => t.seq));
    for (let s = 0; s < STREAMS; s++) {
      const got = states.get(`s${s}`)!;
      const expected = memory.saved.get(`s${s}`)!;
      assert.equal(got.meta.lastSeq, lastSeq);
      assert.ok(Buffer.from(got.snapshot).equals(Buffer.from(expected.snapshot)), `stream s${s}: learner snapshot differs from the uninterrupted run`);
      assert.deepEqual(got.parts, expected.parts, `stream s${s}: pipeline state`);
    }
  } finally {
    await changelog.close();
  }
  return repeats.length;
}

/** One test's workload: its topics, a worker config, a producer and a predictions reader, and its processes. */
export interface Workload {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly groupId: string;
  readonly topics: WorkloadTopics;
  /** A `driftline run` config for workers of the group. */
  readonly config: string;
  /** Connected; the test produces with it (produceSteadily). */
  readonly producer: Producer;
  readonly predictions: { readonly seen: Map<string, number[]>; count(): number };
  /** Worker processes the test started: killed at the end, whatever happened. */
  readonly workers: DriftlineProcess[];
}

/** Sets a workload up for `body`, and tears everything down after it (processes, clients, topics, files). */
export async function withWorkload(brokers: string[], label: string, body: (w: Workload) => Promise<void>): Promise<void> {
  const suffix = randomBytes(6).toString('hex');
  const groupId = `driftline-${label}-${suffix}`;
  const kafka = testKafka(brokers, `driftline-test-${label}-${suffix}`);
  const admin = kafka.admin();
  await admin.connect();
  const work = mkdtempSync(join(tmpdir(), `driftline-kafka-${label}-`));
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const reader = kafka.consumer({ groupId: `driftline-${label}-reader-${suffix}`, maxWaitTimeInMs: 200 });
  const workers: DriftlineProcess[] = [];
  try {
    const topics = await createWorkloadTopics(admin, suffix);
    const config = writeWorkerConfig(work, brokers, groupId, topics);
    const predictions = await readPredictions(reader, topics.predictionsTopic);
    await producer.connect();
    await body({ kafka, admin, groupId, topics, config, producer, predictions, workers });
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    await producer.disconnect().catch(() => {});
    await reader.disconnect().catch(() => {});
    const ours = (await admin.listTopics()).filter((t) => t.includes(suffix));
    await admin.deleteTopics({ topics: ours, timeout: 5000 }).catch(() => {});
    await admin.disconnect();
    rmSync(work, { recursive: true, force: true });
  }
}

/** Waits (up to withinMs) until the reader has seen `n` predictions. */
export async function waitForPredictions(w: Workload, n: number, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (w.predictions.count() < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}
