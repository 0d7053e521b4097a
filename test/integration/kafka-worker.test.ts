// The Kafka worker against the real broker (issue 19, item 4a): Jango Day0 then Day16 produced into a topic as one
// stream, a worker of a consumer group predicting and learning on every tick, predictions read back from the
// output topic, the learner's state in the changelog byte-identical to the same pipeline run in-process.
// Skips with the reason printed without a broker or the data (CI fails on a skip).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { lastValueFrom, map, toArray, type Observable } from 'rxjs';
import { KafkaCheckpointStore } from '../../src/adapters/kafka/kafka-checkpoint-store.js';
import { PREDICTION_HEADERS } from '../../src/adapters/kafka/kafka-records.js';
import { KafkaWorker } from '../../src/adapters/kafka/kafka-worker.js';
import { loadJangoSession } from '../../src/adapters/replay/jango.js';
import { replaySessions } from '../../src/adapters/replay/replay.js';
import { decodeFrame, encodeBinaryFrame } from '../../src/adapters/websocket/frames.js';
import { parseConfig } from '../../src/cli/config.js';
import { replayToKafka } from '../../src/cli/replay-kafka.js';
import { pipelineOptionsOf } from '../../src/cli/run.js';
import type { Rejection, StreamInput } from '../../src/streams/messages.js';
import { createPipeline } from '../../src/streams/pipeline.js';
import { findBrokers, testKafka } from '../support/kafka-broker.js';
import { jangoDataDir } from '../support/jango-data.js';
import { MemoryCheckpointStore } from '../support/memory-checkpoint-store.js';

const { brokers, reason: noBroker } = findBrokers();
const dir = jangoDataDir();
const noData = existsSync(join(dir, 'Day0.mat')) && existsSync(join(dir, 'Day16.mat')) ? undefined : `no Jango sessions in ${dir}`;
const reason = noBroker ?? noData;
if (reason) console.log(`[kafka-worker] skipped: ${reason}`);

const config = parseConfig({
  streams: { inputSize: 96, outputSize: 2 },
  learner: { cell: { kind: 'tanh-rnn', hiddenSize: 16 }, credit: { rule: 'immediate' }, optimizer: { name: 'rmsprop', lr: 0.003 }, seed: 7 },
});

/** The replay of both sessions as stream 'jango', each input as a binary frame decodes (what the worker sees). */
async function jangoInputs(): Promise<Observable<StreamInput>> {
  const sessions = await Promise.all(['Day0.mat', 'Day16.mat'].map((f) => loadJangoSession(join(dir, f))));
  const shape = { inputSize: 96, outputSize: 2 };
  return replaySessions(sessions, { stream: 'jango', speed: 'fast', labelDelayTicks: 0, progress: false }).pipe(
    map((input) => {
      const decoded = decodeFrame(encodeBinaryFrame(input), () => shape);
      if (decoded.kind === 'rejected') throw new Error(decoded.message);
      return decoded;
    }),
  );
}

test('a worker predicts and learns on every tick of Jango Day0 then Day16 from a topic: one prediction per tick, state as in-process', { skip: reason ?? false, timeout: 300_000 }, async () => {
  const suffix = randomBytes(6).toString('hex');
  const inputTopic = `driftline-frames-${suffix}`;
  const predictionsTopic = `driftline-predictions-${suffix}`;
  const changelogTopic = `driftline-state-${suffix}`;
  const groupId = `driftline-workers-${suffix}`;
  const kafka = testKafka(brokers!, `driftline-test-worker-${suffix}`);
  const admin = kafka.admin();
  await admin.connect();
  const reader = kafka.consumer({ groupId: `driftline-test-reader-${suffix}`, maxWaitTimeInMs: 200 });
  let changelog: KafkaCheckpointStore | undefined;
  let worker: KafkaWorker | undefined;
  try {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: inputTopic, numPartitions: 4 }, { topic: predictionsTopic, numPartitions: 4 }] });
    const produced = await replayToKafka(await jangoInputs(), { kafka, topic: inputTopic, binary: true });
    assert.equal(produced.sessions, 2);

    changelog = await KafkaCheckpointStore.open({ kafka, topic: changelogTopic, partitions: 4 });
    const refused: string[] = [];
    worker = await KafkaWorker.start({
      kafka, groupId, inputTopic, predictionsTopic, changelog,
      pipeline: pipelineOptionsOf(config), shape: { inputSize: 96, outputSize: 2 },
      onRefused: (r: Rejection) => refused.push(`${r.reason}: ${r.message}`),
    });

    // Every prediction, read_committed, as it comes.
    const predictions: { seq: number; version: number; partition: string; offset: string }[] = [];
    await reader.connect();
    await reader.subscribe({ topics: [predictionsTopic], fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message }) => {
        const value = JSON.parse(message.value!.toString()) as { seq: number; version: number; stream: string };
        const header = (name: string) => message.headers?.[name]?.toString() ?? '';
        assert.equal(message.key?.toString(), 'jango');
        assert.equal(Number(header(PREDICTION_HEADERS.modelVersion)), value.version);
        predictions.push({ seq: value.seq, version: value.version, partition: header(PREDICTION_HEADERS.sourcePartition), offset: header(PREDICTION_HEADERS.sourceOffset) });
      },
    });
    const deadline = Date.now() + 240_000;
    while (predictions.length < produced.ticks && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    await worker.stop();
    const stats = worker.stats;
    worker = undefined;

    assert.deepEqual(refused, []);
    assert.equal(stats.records, produced.records);
    assert.equal(predictions.length, produced.ticks, `one prediction per tick (${predictions.length} of ${produced.ticks})`);
    assert.deepEqual(predictions.map((p) => p.seq), Array.from({ length: produced.ticks }, (_, i) => i), 'each tick once, in order');
    assert.ok(stats.commits >= 2, `${stats.commits} commits`);
    // Every prediction names its input record; the offsets are that partition's, rising.
    assert.equal(new Set(predictions.map((p) => p.partition)).size, 1);
    for (let i = 1; i < predictions.length; i++) assert.ok(BigInt(predictions[i]!.offset) > BigInt(predictions[i - 1]!.offset));
    assert.ok(predictions.at(-1)!.version > predictions[0]!.version, 'learning on the way');

    // The group's committed offset is the end of the input, and the changelog holds the state of the last tick.
    const committed = await admin.fetchOffsets({ groupId, topics: [inputTopic] });
    const ends = await admin.fetchTopicOffsets(inputTopic);
    for (const { partition, high } of ends) {
      assert.equal(committed[0]!.partitions.find((p) => p.partition === partition)!.offset, high === '0' ? '-1' : high, `partition ${partition}`);
    }
    const saved = await changelog.load('jango');
    assert.ok(saved !== undefined);
    assert.equal(saved.meta.lastSeq, produced.ticks - 1);

    // The same pipeline in-process over the same frames ends in the same bytes.
    const memory = new MemoryCheckpointStore();
    const reference = createPipeline({ ...pipelineOptionsOf(config), checkpoint: { store: memory } });
    await lastValueFrom((await jangoInputs()).pipe(reference.operator, toArray()));
    await reference.flush();
    const expected = memory.saved.get('jango')!;
    assert.ok(Buffer.from(saved.snapshot).equals(Buffer.from(expected.snapshot)), 'learner snapshot byte-identical to the in-process run');
    assert.deepEqual(saved.parts, expected.parts);
  } finally {
    await worker?.stop().catch(() => {});
    await reader.disconnect().catch(() => {});
    await changelog?.close();
    const topics = (await admin.listTopics()).filter((t) => t.endsWith(suffix) || t.endsWith(`${suffix}.quarantine`));
    await admin.deleteTopics({ topics, timeout: 5000 }).catch(() => {});
    await admin.disconnect();
  }
});

test('bad records are refused by reason, kept whole in the dead-letter topic, and the partition goes on', { skip: noBroker ?? false, timeout: 120_000 }, async () => {
  const suffix = randomBytes(6).toString('hex');
  const inputTopic = `driftline-bad-in-${suffix}`;
  const predictionsTopic = `driftline-bad-out-${suffix}`;
  const deadLetterTopic = `driftline-bad-dlq-${suffix}`;
  const kafka = testKafka(brokers!, `driftline-test-bad-${suffix}`);
  const admin = kafka.admin();
  await admin.connect();
  const reader = kafka.consumer({ groupId: `driftline-test-bad-reader-${suffix}`, maxWaitTimeInMs: 200 });
  let changelog: KafkaCheckpointStore | undefined;
  let worker: KafkaWorker | undefined;
  try {
    await admin.createTopics({ waitForLeaders: true, topics: [inputTopic, predictionsTopic, deadLetterTopic].map((topic) => ({ topic, numPartitions: 2 })) });
    const shape = { inputSize: 3, outputSize: 2 };
    const good = (stream: string, seq: number) => Buffer.from(encodeBinaryFrame({ kind: 'tick', stream, seq, t: seq * 0.05, x: [Math.sin(seq), 1, -1], y: [0.5, Math.cos(seq)] }));
    const bad: { key: Buffer | null; value: Buffer | null; reason: string }[] = [
      { key: Buffer.from('a'), value: Buffer.from('{"stream":'), reason: 'malformed' },
      { key: Buffer.from('a'), value: Buffer.from(encodeBinaryFrame({ kind: 'tick', stream: 'a', seq: 1000, t: 50, x: [1, 2], y: [0, 0] })), reason: 'dimension' },
      { key: Buffer.from('b'), value: Buffer.from(encodeBinaryFrame({ kind: 'tick', stream: 'b', seq: 1000, t: 50, x: [1, Number.NaN, 3], y: [0, 0] })), reason: 'non-finite' },
      { key: Buffer.from('a'), value: good('b', 1000), reason: 'malformed' },
      { key: Buffer.from('b'), value: null, reason: 'malformed' },
      { key: null, value: good('a', 1000), reason: 'malformed' },
    ];
    const producer = kafka.producer();
    await producer.connect();
    const messages = [];
    for (let seq = 0; seq < 300; seq++) {
      messages.push({ key: 'a', value: good('a', seq) }, { key: 'b', value: good('b', seq) });
      if (seq % 50 === 25) messages.push(bad[(seq - 25) / 50]!);
    }
    await producer.send({ topic: inputTopic, acks: -1, messages: messages.map(({ key, value }) => ({ key, value })) });
    await producer.disconnect();

    changelog = await KafkaCheckpointStore.open({ kafka, topic: `driftline-bad-state-${suffix}` });
    const refused: string[] = [];
    const firstPredictions: [string, number][] = [];
    worker = await KafkaWorker.start({
      kafka, groupId: `driftline-bad-${suffix}`, inputTopic, predictionsTopic, changelog, deadLetterTopic,
      pipeline: pipelineOptionsOf(parseConfig({ streams: shape, learner: { cell: { kind: 'tanh-rnn', hiddenSize: 4 }, credit: { rule: 'immediate' }, optimizer: { name: 'sgd', lr: 0.01 } } })),
      shape,
      onRefused: (r) => refused.push(r.reason),
      onFirstPrediction: (stream, seconds) => firstPredictions.push([stream, seconds]),
    });
    const read: { topic: string; key: Buffer | null; value: Buffer | null; headers: Record<string, string> }[] = [];
    await reader.connect();
    await reader.subscribe({ topics: [predictionsTopic, deadLetterTopic], fromBeginning: true });
    await reader.run({
      eachMessage: async ({ topic, message }) => {
        read.push({ topic, key: message.key, value: message.value, headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])) });
      },
    });
    const deadline = Date.now() + 60_000;
    while (read.length < 600 + bad.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await worker.stop();
    worker = undefined;

    assert.deepEqual(refused.sort(), bad.map((b) => b.reason).sort());
    assert.equal(read.filter((r) => r.topic === predictionsTopic).length, 600, 'every good tick predicted, on both streams');
    const letters = read.filter((r) => r.topic === deadLetterTopic);
    assert.equal(letters.length, bad.length);
    for (const b of bad) {
      const kept = letters.find((l) => (l.value === null ? b.value === null : b.value !== null && l.value.equals(b.value)) && String(l.key) === String(b.key));
      assert.ok(kept, `kept whole: ${String(b.key)} / ${b.reason}`);
      assert.equal(kept.headers['driftline-reason'], b.reason);
      assert.equal(kept.headers['driftline-source-topic'], inputTopic);
      assert.match(kept.headers['driftline-source-offset']!, /^\d+$/);
    }
    assert.deepEqual(firstPredictions.map(([s]) => s).sort(), ['a', 'b']);
    for (const [, seconds] of firstPredictions) assert.ok(seconds > 0 && seconds < 60);
  } finally {
    await worker?.stop().catch(() => {});
    await reader.disconnect().catch(() => {});
    await changelog?.close();
    const ours = (await admin.listTopics()).filter((t) => t.includes(suffix));
    await admin.deleteTopics({ topics: ours, timeout: 5000 }).catch(() => {});
    await admin.disconnect();
  }
});
