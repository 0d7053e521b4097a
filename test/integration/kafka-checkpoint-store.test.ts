// The learner-state changelog on a real Kafka broker (issue 19, item 2): a CheckpointStore on a compacted topic.
// Each test uses topics of its own. Without a broker every test skips with the reason printed (CI fails on that).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import kafkajs from '../../src/adapters/kafka/kafkajs.js';
import type { Kafka } from 'kafkajs';
import { ChangelogTopicError, KafkaCheckpointStore } from '../../src/adapters/kafka/kafka-checkpoint-store.js';
import type { StoredCheckpoint } from '../../src/streams/checkpoint-store.js';
import type { CorruptCheckpoint } from '../../src/streams/file-checkpoint-store.js';
import { findBrokers, testKafka } from '../support/kafka-broker.js';

const { brokers, reason } = findBrokers();
if (reason) console.log(`[kafka-checkpoint-store] skipped: ${reason}`);
const options = { skip: reason ?? false, timeout: 90_000 };

/** A checkpoint whose every byte depends on (stream, version). */
function checkpoint(stream: string, version: number): StoredCheckpoint {
  const snapshot = new Uint8Array(5000 + version);
  for (let i = 0; i < snapshot.length; i++) snapshot[i] = (i * 31 + version * 7 + stream.length) & 0xff;
  return {
    meta: { stream, lastSeq: 10 * version + 9, version, tick: 10 * version + 9, savedAt: 1_700_000_000_000 + version, pendingLabels: [10 * version + 8] },
    snapshot,
    parts: new Map([['predict-then-learn', Uint8Array.of(version, 1, 2, 3)]]),
  };
}

/** Fresh topic names and a client per test; the topics are deleted afterwards. */
async function withTopics<T>(label: string, body: (kafka: Kafka, topic: string) => Promise<T>): Promise<T> {
  const suffix = randomBytes(6).toString('hex');
  const topic = `driftline-changelog-${label}-${suffix}`;
  const kafka = testKafka(brokers!, `driftline-test-${label}-${suffix}`);
  try {
    return await body(kafka, topic);
  } finally {
    const admin = kafka.admin();
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const ours = [topic, `${topic}.quarantine`].filter((t) => existing.has(t));
    if (ours.length > 0) await admin.deleteTopics({ topics: ours, timeout: 5000 }).catch(() => {});
    await admin.disconnect();
  }
}

async function topicConfig(kafka: Kafka, topic: string): Promise<Map<string, string>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }] });
    return new Map(described.resources[0]!.configEntries.map((e) => [e.configName, e.configValue]));
  } finally {
    await admin.disconnect();
  }
}

/** Every record of a topic, read from the start with a throwaway group. */
async function readAll(kafka: Kafka, topic: string, expected: number): Promise<{ key: string; value: Buffer | null; headers: Record<string, string> }[]> {
  const consumer = kafka.consumer({ groupId: `driftline-test-read-${randomBytes(6).toString('hex')}`, maxWaitTimeInMs: 200 });
  const records: { key: string; value: Buffer | null; headers: Record<string, string> }[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
      records.push({ key: message.key?.toString() ?? '', value: message.value, headers });
    },
  });
  const deadline = Date.now() + 20_000;
  while (records.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await consumer.disconnect();
  return records;
}

test('the changelog store creates a compacted topic and gives back the newest checkpoint of every stream, byte for byte, to a restarted worker too', options, async () => {
  await withTopics('roundtrip', async (kafka, topic) => {
    const store = await KafkaCheckpointStore.open({ kafka, topic, partitions: 3 });
    try {
      const config = await topicConfig(kafka, topic);
      assert.equal(config.get('cleanup.policy'), 'compact');
      assert.equal((await topicConfig(kafka, store.quarantineTopic)).get('cleanup.policy'), 'compact');
      assert.deepEqual(await store.loadAll(), new Map(), 'a new changelog is empty');

      const streams = ['bci-1', 'bci-2', 'a stream/with:odd chars', 'ключ'];
      for (const version of [1, 2, 3]) for (const stream of streams) await store.save(checkpoint(stream, version));
      const all = await store.loadAll();
      assert.deepEqual([...all.keys()].sort(), [...streams].sort());
      for (const stream of streams) assert.deepEqual(all.get(stream), checkpoint(stream, 3), `${stream}: the newest save, whole`);
      assert.deepEqual(await store.load('bci-2'), checkpoint('bci-2', 3));
      assert.equal(await store.load('never-saved'), undefined);
      assert.deepEqual((await store.list()).get('bci-1'), checkpoint('bci-1', 3).meta);

      // A worker that starts after a crash opens the same topic and reads the same state.
      const restarted = await KafkaCheckpointStore.open({ kafka, topic });
      try {
        assert.deepEqual(await restarted.loadAll(), all);
        // And it sees what the first one saves after it has opened.
        await store.save(checkpoint('bci-1', 4));
        assert.deepEqual(await restarted.load('bci-1'), checkpoint('bci-1', 4));
      } finally {
        await restarted.close();
      }
    } finally {
      await store.close();
    }
    await assert.rejects(store.save(checkpoint('late', 1)), /is closed/);
  });
});

test('a damaged record is copied whole to the quarantine topic, named, and tombstoned; the stream then starts afresh', options, async () => {
  await withTopics('damage', async (kafka, topic) => {
    const corrupt: CorruptCheckpoint[] = [];
    const store = await KafkaCheckpointStore.open({ kafka, topic, onCorrupt: (p) => corrupt.push(p) });
    try {
      await store.save(checkpoint('good', 1));
      await store.save(checkpoint('flipped', 1));
      // Damage written by someone else: a flipped byte, a truncated record, and a record under the wrong key.
      const good = Buffer.from((await readAll(kafka, topic, 2)).find((r) => r.key === 'flipped')!.value!);
      const flipped = Buffer.from(good);
      flipped[100] ^= 0xff;
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({
        topic,
        acks: -1,
        messages: [
          { key: 'flipped', value: flipped },
          { key: 'cut', value: good.subarray(0, 40) },
          { key: 'elsewhere', value: good },
        ],
      });
      await producer.disconnect();

      const loaded = await store.loadAll();
      assert.deepEqual([...loaded.keys()], ['good']);
      assert.deepEqual(
        corrupt.map((p) => [p.original.split(' ')[0], p.defect]).sort(),
        [[`kafka://${topic}/cut`, 'truncated'], [`kafka://${topic}/elsewhere`, 'misplaced'], [`kafka://${topic}/flipped`, 'crc-mismatch']],
      );
      for (const p of corrupt) assert.match(p.file, new RegExp(`^kafka://${store.quarantineTopic.replace(/\./g, '\\.')}/`));

      // Kept aside, byte for byte, under keys never reused, with the reason in the headers.
      const kept = await readAll(kafka, store.quarantineTopic, 3);
      assert.equal(kept.length, 3);
      const flippedKept = kept.find((r) => r.key.startsWith('flipped@'))!;
      assert.ok(flippedKept.value!.equals(flipped));
      assert.equal(flippedKept.headers.defect, 'crc-mismatch');
      assert.equal(flippedKept.headers['source-topic'], topic);
      assert.ok(kept.find((r) => r.key.startsWith('elsewhere@'))!.value!.equals(good));

      // Reported once: the entries are gone from the changelog, so a new worker finds nothing to report.
      const again: CorruptCheckpoint[] = [];
      const restarted = await KafkaCheckpointStore.open({ kafka, topic, onCorrupt: (p) => again.push(p) });
      try {
        assert.deepEqual([...(await restarted.loadAll()).keys()], ['good']);
        assert.deepEqual(again, []);
        // The stream's next save starts a fresh entry.
        await restarted.save(checkpoint('flipped', 2));
        assert.deepEqual(await restarted.load('flipped'), checkpoint('flipped', 2));
      } finally {
        await restarted.close();
      }
    } finally {
      await store.close();
    }
  });
});

test('quarantine moves a stream\'s checkpoint aside on request (a foreign spec) and load names a damaged one', options, async () => {
  await withTopics('quarantine', async (kafka, topic) => {
    const store = await KafkaCheckpointStore.open({ kafka, topic });
    try {
      await store.save(checkpoint('s', 1));
      const where = await store.quarantine('s', 'foreign-spec', 'snapshot of a learner with another spec');
      assert.match(where, new RegExp(`^kafka://${store.quarantineTopic.replace(/\./g, '\\.')}/s%40`));
      assert.equal(await store.load('s'), undefined);
      await assert.rejects(store.quarantine('s', 'foreign-spec', 'again'), /no checkpoint to quarantine/);
      const kept = await readAll(kafka, store.quarantineTopic, 1);
      assert.equal(kept[0]!.headers.defect, 'foreign-spec');
      assert.deepEqual(kept[0]!.value!.length > 5000, true);

      const producer = kafka.producer();
      await producer.connect();
      await producer.send({ topic, acks: -1, messages: [{ key: 'bad', value: Buffer.from('not a checkpoint at all, but long enough to have a header') }] });
      await producer.disconnect();
      await assert.rejects(store.load('bad'), (err: Error & { defect?: string; quarantined?: string }) => {
        assert.equal(err.name, 'CheckpointDefectError');
        assert.equal(err.defect, 'bad-magic');
        assert.match(err.quarantined ?? '', /bad%40/);
        return true;
      });
      assert.equal(await store.load('bad'), undefined, 'moved aside, not reported twice');
    } finally {
      await store.close();
    }
  });
});

test('a topic that would delete state is refused by name, and an unreachable broker is an error naming it', options, async () => {
  await withTopics('policy', async (kafka, topic) => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'delete' }] }] });
    await admin.disconnect();
    await assert.rejects(KafkaCheckpointStore.open({ kafka, topic }), (err: Error) => {
      assert.ok(err instanceof ChangelogTopicError);
      assert.match(err.message, new RegExp(`changelog topic '${topic}' has cleanup.policy=delete`));
      return true;
    });
  });
  const unreachable = testKafka(['127.0.0.1:1'], 'driftline-test-unreachable');
  const started = Date.now();
  await assert.rejects(
    KafkaCheckpointStore.open({ kafka: unreachable, topic: 'driftline-never' }),
    (err: Error) => /127\.0\.0\.1:1/.test(err.message) && /ECONNREFUSED|Connection/i.test(err.message),
  );
  assert.ok(Date.now() - started < 60_000);
});
