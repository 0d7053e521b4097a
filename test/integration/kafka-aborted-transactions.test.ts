// Records of aborted transactions on the real broker, read by kafkajs as driftline loads it (kafkajs.ts): from every
// offset a consumer can begin at, exactly the committed records come through. With kafkajs 2.2.4's own filter a
// consumer beginning at offset 0 was handed both records of X and Y (test/kafka-aborted-transactions.test.ts has
// the same layout without a broker).
// Skips with the reason printed without a broker (CI fails on a skip).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { findBrokers, testKafka, within } from '../support/kafka-broker.js';

const { brokers, reason } = findBrokers();
if (reason) console.log(`[kafka-aborted-transactions] skipped: ${reason}`);

async function transactional(kafka: Kafka, id: string): Promise<Producer> {
  const producer = kafka.producer({ transactionalId: id, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  return producer;
}

/**
 * The partition's end as a read_committed reader sees it, once it is `expected` (the coordinator writes a marker
 * after answering the commit or abort, so the end can lag a moment), or what it is after 10 s.
 */
async function committedEnd(admin: Admin, topic: string, expected: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [partition] = await admin.fetchTopicOffsets(topic);
    const end = Number(partition!.high);
    if (end === expected || Date.now() > deadline) return end;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The values a read_committed consumer is handed from `start` to the end of the partition. */
async function readFrom(kafka: Kafka, topic: string, start: number, end: number): Promise<string[]> {
  const consumer = kafka.consumer({ groupId: `${topic}-from-${start}`, maxWaitTimeInMs: 200 });
  const values: string[] = [];
  let reachedEnd!: () => void;
  const done = new Promise<void>((r) => (reachedEnd = r));
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (Number(payload.lastOffset) >= end - 1) reachedEnd();
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void values.push(String(message.value)) });
  consumer.seek({ topic, partition: 0, offset: String(start) });
  try {
    await within(30_000, `read from offset ${start}`, done);
  } finally {
    await consumer.disconnect();
  }
  return values;
}

test('from every offset, a read_committed consumer gets the committed records only, none of the aborted ones', { skip: reason ?? false, timeout: 180_000 }, async () => {
  const kafka = testKafka(brokers!, 'aborted-transactions-test');
  const topic = `driftline-test-aborted-${process.pid}-${Date.now()}`;
  const admin = kafka.admin();
  await admin.connect();
  const producers: Producer[] = [];
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    // Three transactions open at once, each with one record (offsets 0, 1, 2); P aborts first, then X, then Y
    // (markers at 3, 4, 5); P's next owner, under the same transactional.id, commits one record (6, marker 7).
    const [x, y, p] = await Promise.all(['x', 'y', 'p'].map((name) => transactional(kafka, `${topic}-${name}`)));
    producers.push(x!, y!, p!);
    const open = { x: await x!.transaction(), y: await y!.transaction(), p: await p!.transaction() };
    for (const name of ['x', 'y', 'p'] as const) await open[name].send({ topic, messages: [{ value: `${name} (aborted)` }] });
    for (const name of ['p', 'x', 'y'] as const) {
      await open[name].abort();
      // The coordinator writes the marker after answering: a pause keeps the markers in the order of the aborts.
      await new Promise((r) => setTimeout(r, 300));
    }
    const nextOwner = await transactional(kafka, `${topic}-p`);
    producers.push(nextOwner);
    const committed = await nextOwner.transaction();
    await committed.send({ topic, messages: [{ value: 'p (committed)' }] });
    await committed.commit();
    const end = await committedEnd(admin, topic, 8);
    assert.equal(end, 8, 'the log is laid out as planned: 3 records, 3 abort markers, 1 record, 1 commit marker');

    const reads = await Promise.all([0, 1, 2, 3, 4, 5, 6].map((start) => readFrom(kafka, topic, start, end)));
    reads.forEach((values, start) => assert.deepEqual(values, ['p (committed)'], `a consumer beginning at offset ${start}`));
  } finally {
    await Promise.allSettled(producers.map((producer) => producer.disconnect()));
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  }
});
