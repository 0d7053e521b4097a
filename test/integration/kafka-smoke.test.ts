// Smoke test against a real Kafka broker (scripts/kafka/broker.sh start): test/support/kafka-broker.ts finds it, or
// the test is skipped with the reason printed (CI treats that skip as a failure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Admin, Consumer, Producer } from 'kafkajs';
import { findBrokers, testKafka, within } from '../support/kafka-broker.js';

const MESSAGES = 1000;
const FLOATS = 96;
const KEYS = ['stream-0', 'stream-1', 'stream-2', 'stream-3'];
const TEST_TIMEOUT_MS = 60_000;
const CONSUME_DEADLINE_MS = 40_000;

/** The payload of message `seq`: 96 little-endian Float32 values, distinct per message. */
function payload(seq: number): Buffer {
  const buf = Buffer.alloc(FLOATS * 4);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let j = 0; j < FLOATS; j++) {
    // Exact in float32 for the first value; the rest mix signs, fractions and small magnitudes.
    const v = j === 0 ? seq : Math.sin(seq * 0.37 + j) * (j % 7 === 0 ? 1e-30 : 1e3) * (j % 2 ? -1 : 1);
    view.setFloat32(j * 4, v, true);
  }
  return buf;
}

const { brokers, reason } = findBrokers();
if (reason) console.log(`[kafka-smoke] skipped: ${reason}`);

test(
  'kafka smoke: 1,000 Float32 messages over 4 keys arrive exactly once, intact, in per-key order',
  { skip: reason ?? false, timeout: TEST_TIMEOUT_MS },
  async () => {
    const suffix = randomBytes(6).toString('hex');
    const topic = `driftline-smoke-${suffix}`;
    const groupId = `driftline-smoke-${suffix}`;
    const kafka = testKafka(brokers!, `driftline-smoke-${suffix}`);
    const admin: Admin = kafka.admin();
    // Idempotent producer, one request in flight: retries cannot duplicate or reorder.
    const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    const consumer: Consumer = kafka.consumer({
      groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      // Short long-poll: disconnect waits for the fetch in flight, which would otherwise idle 5 s.
      maxWaitTimeInMs: 500,
    });
    let topicCreated = false;

    try {
      await admin.connect();
      const created = await admin.createTopics({
        topics: [{ topic, numPartitions: 2, replicationFactor: 1 }],
        waitForLeaders: true,
      });
      assert.equal(created, true, `topic ${topic} was not created`);
      topicCreated = true;

      await producer.connect();
      for (let start = 0; start < MESSAGES; start += 250) {
        const messages = [];
        for (let seq = start; seq < Math.min(MESSAGES, start + 250); seq++) {
          messages.push({ key: KEYS[seq % KEYS.length], value: payload(seq), headers: { seq: String(seq) } });
        }
        await producer.send({ topic, acks: -1, messages });
      }

      type Received = { key: string; seq: number; partition: number; offset: string; value: Buffer };
      const received: Received[] = [];
      let done!: () => void;
      const allIn = new Promise<void>((res) => { done = res; });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          // No assertions in here: a throw would make kafkajs redeliver the message.
          received.push({
            key: message.key?.toString() ?? '<no key>',
            seq: Number(message.headers?.seq?.toString()),
            partition,
            offset: message.offset,
            value: Buffer.from(message.value ?? Buffer.alloc(0)),
          });
          if (received.length >= MESSAGES) done();
        },
      });
      await within(CONSUME_DEADLINE_MS, `consuming ${MESSAGES} messages`, allIn).catch((err: Error) => {
        throw new Error(`${err.message}; received ${received.length}`);
      });
      // A short grace period so that duplicates, if any, show up in the count.
      await new Promise((r) => setTimeout(r, 500));

      assert.equal(received.length, MESSAGES, 'each message arrives exactly once (count)');
      const seen = new Set<number>();
      const lastSeqByKey = new Map<string, number>();
      const partitionByKey = new Map<string, number>();
      for (const m of received) {
        assert.ok(Number.isInteger(m.seq) && m.seq >= 0 && m.seq < MESSAGES, `bad seq header ${m.seq}`);
        assert.ok(!seen.has(m.seq), `message ${m.seq} delivered twice`);
        seen.add(m.seq);
        assert.equal(m.key, KEYS[m.seq % KEYS.length], `key of message ${m.seq}`);
        assert.equal(m.value.length, FLOATS * 4);
        assert.ok(m.value.equals(payload(m.seq)), `payload bytes of message ${m.seq} differ`);
        assert.equal(m.value.readFloatLE(0), m.seq);
        const last = lastSeqByKey.get(m.key) ?? -1;
        assert.ok(m.seq > last, `key ${m.key}: message ${m.seq} after ${last}`);
        lastSeqByKey.set(m.key, m.seq);
        const p = partitionByKey.get(m.key);
        assert.ok(p === undefined || p === m.partition, `key ${m.key} seen on partitions ${p} and ${m.partition}`);
        partitionByKey.set(m.key, m.partition);
      }
      assert.equal(seen.size, MESSAGES);
      assert.deepEqual([...lastSeqByKey.keys()].sort(), KEYS);
      // kafkajs' default (murmur2) partitioner puts stream-1/2 on partition 0 and stream-0/3 on 1.
      assert.deepEqual(new Set(partitionByKey.values()), new Set([0, 1]), 'both partitions carried messages');
    } finally {
      const quiet = (label: string, p: Promise<unknown>) => within(10_000, label, p).catch(() => {});
      await quiet('consumer disconnect', consumer.disconnect());
      await quiet('producer disconnect', producer.disconnect());
      if (topicCreated) await quiet('delete topic', admin.deleteTopics({ topics: [topic], timeout: 5000 }));
      await quiet('admin disconnect', admin.disconnect());
    }
  },
);
