// Kafka records as driftline reads and writes them (issue 19, item 1): no broker needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeKafkaRecord, PREDICTION_HEADERS, predictionRecord } from '../src/adapters/kafka/kafka-records.js';
import { encodeBinaryBatch, encodeBinaryFrame, encodeJsonFrame, type IngestFrame } from '../src/adapters/websocket/frames.js';
import type { Rejection, StreamInput, TickEvent } from '../src/streams/messages.js';

const shape = { inputSize: 3, outputSize: 2 };
const resolver = () => shape;
const tick: IngestFrame = { kind: 'tick', stream: 'bci-1', seq: 7, t: 0.14, x: [0.5, -1, 2], y: [1, -0.25] };
const key = (s: string) => Buffer.from(s, 'utf8');
const binary = (f: IngestFrame) => Buffer.from(encodeBinaryFrame(f));
const json = (f: IngestFrame) => Buffer.from(encodeJsonFrame(f), 'utf8');

function asTick(r: StreamInput | Rejection): TickEvent {
  assert.equal(r.kind, 'tick', JSON.stringify(r));
  return r as TickEvent;
}

test('a record keyed by its stream holding a binary or JSON frame is that frame', () => {
  for (const value of [binary(tick), json(tick)]) {
    const t = asTick(decodeKafkaRecord(key('bci-1'), value, resolver, { receivedAt: 12.5 }));
    assert.equal(t.stream, 'bci-1');
    assert.equal(t.seq, 7);
    assert.equal(t.t, 0.14);
    assert.deepEqual(Array.from(t.x), [0.5, -1, 2]);
    assert.deepEqual(Array.from(t.y!), [1, -0.25]);
    assert.equal(t.receivedAt, 12.5);
  }
  const label = decodeKafkaRecord(key('bci-1'), binary({ kind: 'label', stream: 'bci-1', seq: 3, y: [0, 1] }), resolver);
  assert.equal(label.kind, 'label');
  const session = decodeKafkaRecord(key('bci-1'), json({ kind: 'session', stream: 'bci-1', seq: 8, t: 0.16, session: 'day16' }), resolver);
  assert.equal(session.kind, 'drift');
});

test('a record that is not one frame of its key\'s stream is refused with the reason and the stream named', () => {
  const refused = (k: Buffer | null, v: Buffer | null, limits = {}) => {
    const r = decodeKafkaRecord(k, v, resolver, limits);
    assert.equal(r.kind, 'rejected', JSON.stringify(r));
    return r as Rejection;
  };
  assert.match(refused(null, binary(tick)).message, /no key: the key names the stream/);
  assert.equal(refused(Buffer.alloc(0), binary(tick)).reason, 'malformed');
  const tombstone = refused(key('bci-1'), null);
  assert.equal(tombstone.stream, 'bci-1');
  assert.match(tombstone.message, /no value/);
  const elsewhere = refused(key('bci-2'), binary(tick));
  assert.deepEqual([elsewhere.reason, elsewhere.stream, elsewhere.seq], ['malformed', 'bci-2', 7]);
  assert.match(elsewhere.message, /keyed 'bci-2' holds a frame of stream 'bci-1'/);

  const wide = refused(key('bci-1'), binary({ ...tick, x: [1, 2, 3, 4] } as IngestFrame));
  assert.deepEqual([wide.reason, wide.stream], ['dimension', 'bci-1']);
  const nan = refused(key('bci-1'), binary({ ...tick, x: [1, Number.NaN, 3] } as IngestFrame));
  assert.deepEqual([nan.reason, nan.stream], ['non-finite', 'bci-1']);
  const big = refused(key('bci-1'), json(tick), { maxFrameBytes: 16 });
  assert.deepEqual([big.reason, big.stream], ['oversized', 'bci-1']);
  const garbage = refused(key('bci-1'), Buffer.from('{"stream":'));
  assert.deepEqual([garbage.reason, garbage.stream], ['malformed', 'bci-1'], 'the key names the stream of a frame that does not parse');
  assert.equal(refused(key('bci-1'), Buffer.from(encodeBinaryBatch([tick, { ...tick, seq: 8 } as IngestFrame]))).reason, 'malformed');
});

test('a prediction record is keyed by stream, holds the subscriber JSON and names its model version and input record', () => {
  const prediction = { kind: 'prediction' as const, stream: 'bci-1', seq: 7, t: 0.14, yhat: Float32Array.of(0.5, -2), version: 41, predictedAt: 1 };
  const source = { topic: 'frames', partition: 3, offset: '9007199254740993' };
  const record = predictionRecord(prediction, source);
  assert.equal(record.key, 'bci-1');
  assert.deepEqual(JSON.parse(record.value), { type: 'prediction', stream: 'bci-1', seq: 7, t: 0.14, yhat: [0.5, -2], version: 41 });
  assert.deepEqual(record.headers, {
    [PREDICTION_HEADERS.modelVersion]: '41',
    [PREDICTION_HEADERS.sourceTopic]: 'frames',
    [PREDICTION_HEADERS.sourcePartition]: '3',
    [PREDICTION_HEADERS.sourceOffset]: '9007199254740993',
  });
  const again = predictionRecord({ ...prediction, replayed: true }, source);
  assert.equal(again.headers[PREDICTION_HEADERS.replayed], 'true');
  assert.equal(JSON.parse(again.value).replayed, true);
});
