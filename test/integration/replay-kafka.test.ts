// `driftline replay --to kafka://...` against the real broker (issue 19, item 3): Jango Day0 then Day16 produced as
// one stream, read back record by record. Skips with the reason printed without a broker or the data (CI fails then).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { decodeKafkaRecord } from '../../src/adapters/kafka/kafka-records.js';
import { replayCommand } from '../../src/cli/replay.js';
import { parseKafkaTarget } from '../../src/cli/replay-kafka.js';
import type { StreamInput } from '../../src/streams/messages.js';
import { findBrokers, testKafka } from '../support/kafka-broker.js';
import { jangoDataDir } from '../support/jango-data.js';

const { brokers, reason: noBroker } = findBrokers();
const dir = jangoDataDir();
const noData = existsSync(join(dir, 'Day0.mat')) && existsSync(join(dir, 'Day16.mat')) ? undefined : `no Jango sessions in ${dir}`;
const reason = noBroker ?? noData;
if (reason) console.log(`[replay-kafka] skipped: ${reason}`);

function capture() {
  let text = '';
  return { stream: { write: (c: string) => ((text += c), true), isTTY: false, columns: 80 }, text: () => text };
}

test('replay --to kafka:// produces Jango Day0 then Day16 as one stream, every frame a record keyed by it, in order', { skip: reason ?? false, timeout: 180_000 }, async () => {
  const suffix = randomBytes(6).toString('hex');
  const topic = `driftline-replay-${suffix}`;
  const kafka = testKafka(brokers!, `driftline-test-replay-${suffix}`);
  const admin = kafka.admin();
  await admin.connect();
  const consumer = kafka.consumer({ groupId: `driftline-test-replay-${suffix}`, maxWaitTimeInMs: 200 });
  try {
    const target = `kafka://${brokers!.join(',')}/${topic}`;
    const files = [join(dir, 'Day0.mat'), join(dir, 'Day16.mat')];
    const args = ['--to', target, '--speed', 'fast', '--binary', '--label-delay', '2', '--stream', 'jango', '--quiet', ...files];

    // A topic nobody created is named, not created.
    const missing = capture();
    assert.equal(await replayCommand(args, { stdout: capture().stream, stderr: missing.stream }), 1);
    assert.match(missing.text(), new RegExp(`topic '${topic}' does not exist; create it first`));
    assert.equal((await admin.listTopics()).includes(topic), false);

    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2 }] });
    const err = capture();
    assert.equal(await replayCommand(args, { stdout: capture().stream, stderr: err.stream }), 0, err.text());
    const m = /produced (\d+) records \((\d+) ticks, (\d+) labels, (\d+) session boundaries\) of stream 'jango'/.exec(err.text());
    assert.ok(m, err.text());
    const [records, ticks, labels, sessions] = m.slice(1).map(Number) as [number, number, number, number];
    assert.equal(records, ticks + labels + sessions);
    assert.equal(sessions, 2, 'a declared boundary before each session');
    assert.equal(labels, ticks, 'every tick\'s label, 2 ticks late, in its own frame');
    assert.ok(ticks > 30_000, `${ticks} ticks of two sessions`);

    // Read back: all on the stream's one partition, in the order produced, each one frame of stream 'jango'.
    const shape = { inputSize: 0, outputSize: 2 };
    const inputs: StreamInput[] = [];
    const partitions = new Set<number>();
    let bad = 0;
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        partitions.add(partition);
        // The channel count is the first session's; read from the first tick.
        const probe = decodeKafkaRecord(message.key, message.value, () => ({ ...shape, inputSize: inputWidth(message.value!) }));
        if (probe.kind === 'rejected') bad++;
        else inputs.push(probe);
      },
    });
    const deadline = Date.now() + 60_000;
    while (inputs.length + bad < records && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(bad, 0);
    assert.equal(inputs.length, records);
    assert.equal(partitions.size, 1, 'one key, one partition');
    assert.deepEqual(inputs.slice(0, 2).map((i) => i.kind), ['drift', 'tick']);
    const tickSeqs = inputs.filter((i) => i.kind === 'tick').map((i) => i.seq);
    assert.deepEqual(tickSeqs, Array.from({ length: ticks }, (_, i) => i), 'ticks 0, 1, 2, ... across both sessions');
    const firstLabel = inputs.findIndex((i) => i.kind === 'label');
    assert.equal(inputs[firstLabel]!.seq, 0);
    assert.equal(inputs.filter((i) => i.kind === 'drift').map((i) => (i as { session?: string }).session).length, 2);

    assert.throws(() => parseKafkaTarget('kafka://host/topic'), /'host' in 'kafka:\/\/host\/topic' is not HOST:PORT/);
    assert.throws(() => parseKafkaTarget('kafka://h:1/bad topic'), /is not a Kafka topic name/);
  } finally {
    await consumer.disconnect().catch(() => {});
    await admin.deleteTopics({ topics: [topic], timeout: 5000 }).catch(() => {});
    await admin.disconnect();
  }
});

/** The x width a binary tick frame declares (the decoder checks it against the shape); 0 for other frames. */
function inputWidth(value: Buffer): number {
  // Binary frame (docs/websocket-frames.md): magic, version, type, flags, key length (u8), key, seq (f64), t (f64), nx (u16), ...
  if (value[0] !== 0xd1 || value[2] !== 1) return 0;
  return value.readUInt16LE(5 + value[4]! + 16);
}
