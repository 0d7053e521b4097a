// The floor of the `kafka` bench section (bench/kafka.ts): a consumer-group member that does what a driftline
// Kafka worker does around its learners and nothing else. Per record: the frame decoded with the same codec
// (src/adapters/kafka/kafka-records.ts), a prediction record of the same shape (yhat = the frame's own label, no
// learner), and per input partition one transaction per 2,000 records or 1 s holding the outputs and the offset,
// as the worker commits.
//
//   node --import tsx bench/support/kafka-plain-loop.ts BROKERS GROUP INPUT_TOPIC OUTPUT_TOPIC INPUTS OUTPUTS
//
// Prints {"msg":"plain ready"} on stdout once the consumer runs; exits 0 on SIGTERM.
import kafkajs from '../../src/adapters/kafka/kafkajs.js';
import type { Producer } from 'kafkajs';
import { decodeKafkaRecord, predictionRecord } from '../../src/adapters/kafka/kafka-records.js';
import { EXACT_PRODUCER } from '../../src/adapters/kafka/producer-options.js';

const [brokers, groupId, inputTopic, outputTopic, inputs, outputs] = process.argv.slice(2);
const shape = { inputSize: Number(inputs), outputSize: Number(outputs) };
const kafka = new kafkajs.Kafka({ clientId: 'driftline-bench-plain', brokers: brokers!.split(','), logLevel: kafkajs.logLevel.ERROR });
const consumer = kafka.consumer({ groupId: groupId!, maxWaitTimeInMs: 500 });
const COMMIT_EVERY = 2000;
const COMMIT_MS = 1000;

interface Task {
  producer: Producer;
  outgoing: { key: string; value: string; headers: Record<string, string> }[];
  next: bigint;
  uncommitted: number;
  since: number;
  /** One transaction at a time per producer. */
  lock: Promise<void>;
}
const tasks = new Map<number, Task>();

function commit(partition: number, task: Task): Promise<void> {
  const run = task.lock.then(async () => {
    if (task.uncommitted === 0) return;
    const messages = task.outgoing;
    const offset = task.next;
    task.outgoing = [];
    task.uncommitted = 0;
    const transaction = await task.producer.transaction();
    if (messages.length > 0) await transaction.send({ topic: outputTopic!, messages });
    await transaction.sendOffsets({ consumerGroupId: groupId!, topics: [{ topic: inputTopic!, partitions: [{ partition, offset: String(offset) }] }] });
    await transaction.commit();
  });
  task.lock = run.catch(() => {});
  return run;
}

await consumer.connect();
await consumer.subscribe({ topics: [inputTopic!], fromBeginning: true });
await consumer.run({
  autoCommit: false,
  eachBatchAutoResolve: false,
  eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
    let task = tasks.get(batch.partition);
    if (task === undefined) {
      const producer = kafka.producer({ ...EXACT_PRODUCER, transactionalId: `${groupId}.${inputTopic}.${batch.partition}` });
      await producer.connect();
      tasks.set(batch.partition, (task = { producer, outgoing: [], next: 0n, uncommitted: 0, since: Date.now(), lock: Promise.resolve() }));
    }
    for (const message of batch.messages) {
      const input = decodeKafkaRecord(message.key, message.value, () => shape);
      if (input.kind === 'tick') {
        const yhat = Float32Array.from(input.y ?? new Float32Array(shape.outputSize));
        task.outgoing.push(predictionRecord({ kind: 'prediction', stream: input.stream, seq: input.seq, t: input.t, yhat, version: 0, predictedAt: 0 }, { topic: inputTopic!, partition: batch.partition, offset: message.offset }));
      }
      task.next = BigInt(message.offset) + 1n;
      resolveOffset(message.offset);
      if (task.uncommitted++ === 0) task.since = Date.now();
      if (task.uncommitted >= COMMIT_EVERY) await commit(batch.partition, task);
    }
    if (Date.now() - task.since >= COMMIT_MS) await commit(batch.partition, task);
    await heartbeat();
  },
});
const timer = setInterval(() => {
  for (const [partition, task] of tasks) if (task.uncommitted > 0 && Date.now() - task.since >= COMMIT_MS) void commit(partition, task);
}, 250);
process.stdout.write(`${JSON.stringify({ msg: 'plain ready' })}\n`);
process.on('SIGTERM', () => {
  clearInterval(timer);
  void (async () => {
    await consumer.stop();
    for (const [partition, task] of tasks) await commit(partition, task).catch(() => {});
    await Promise.allSettled([...tasks.values()].map((t) => t.producer.disconnect()));
    await consumer.disconnect();
    process.exit(0);
  })();
});
