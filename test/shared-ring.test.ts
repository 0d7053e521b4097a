import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { createSharedRing, RingReader, RingWriter } from '../src/cli/service/shared-ring.js';

const require = createRequire(import.meta.url);

const copyOut = (records: number[][]) => (memory: Uint8Array, offset: number, length: number) => records.push(Array.from(memory.subarray(offset, offset + length)));

test('records of every size come out whole and in order, across many wraps of the ring', () => {
  const buffer = createSharedRing(256);
  const writer = new RingWriter(buffer);
  const reader = new RingReader(buffer);
  const out: number[][] = [];
  const sent: number[][] = [];
  let n = 0;
  for (let round = 0; round < 2000; round++) {
    // Up to the largest record, so that every position of the end of the ring is met.
    const length = (round * 37) % (writer.maxRecordBytes + 1);
    const record = Array.from({ length }, (_, i) => (n + i) & 0xff);
    n++;
    if (!writer.tryWrite(Uint8Array.from(record))) {
      writer.publish();
      reader.drain(copyOut(out));
      assert.ok(writer.tryWrite(Uint8Array.from(record)), `round ${round}: room after the reader drained`);
    }
    sent.push(record);
    if (round % 3 === 0) {
      writer.publish();
      reader.drain(copyOut(out));
    }
  }
  writer.publish();
  reader.drain(copyOut(out));
  assert.equal(out.length, sent.length);
  assert.deepEqual(out, sent);
  assert.equal(reader.used, 0);
});

test('a full ring refuses a record without touching what is queued; unpublished records are not seen', () => {
  const buffer = createSharedRing(64);
  const writer = new RingWriter(buffer);
  const reader = new RingReader(buffer);
  let written = 0;
  while (writer.tryWrite(Uint8Array.of(written, written))) written++;
  assert.ok(written > 0);
  assert.equal(reader.drain(() => assert.fail('nothing published yet')), 0);
  writer.publish();
  const out: number[][] = [];
  assert.equal(reader.drain(copyOut(out)), written);
  assert.deepEqual(out, Array.from({ length: written }, (_, i) => [i, i]));
  assert.ok(writer.tryWrite(Uint8Array.of(9)), 'room again once read');
});

test('a record the ring could never hold, a capacity that is not a power of two and a foreign buffer are refused', () => {
  const writer = new RingWriter(createSharedRing(64));
  assert.throws(() => writer.reserve(writer.maxRecordBytes + 1), /does not fit a ring of 64 bytes/);
  assert.throws(() => writer.reserve(-1), RangeError);
  assert.throws(() => createSharedRing(100), /power of two/);
  assert.throws(() => createSharedRing(32), /power of two/);
  assert.throws(() => new RingReader(new ArrayBuffer(256) as unknown as SharedArrayBuffer), /SharedArrayBuffer/);
});

test('between threads: 100,000 records of random sizes arrive intact and in order, with the reader waiting asleep between bursts', async () => {
  const buffer = createSharedRing(4096);
  const back = createSharedRing(1024);
  const COUNT = 100_000;
  // The worker echoes a checksum of each record on the second ring: it reads and writes through the same code.
  const worker = new Worker(
    `
    const { workerData } = require('node:worker_threads');
    require(workerData.tsx);
    const { RingReader, RingWriter } = require(workerData.ring);
    const reader = new RingReader(workerData.buffer);
    const writer = new RingWriter(workerData.back);
    const sums = new Uint8Array(4);
    const dv = new DataView(sums.buffer);
    let seen = 0;
    (async () => {
      while (seen < workerData.count) {
        await reader.waitForRecords();
        reader.drain((m, o, l) => {
          let sum = l;
          for (let i = 0; i < l; i++) sum = (sum * 31 + m[o + i]) >>> 0;
          dv.setUint32(0, sum, true);
          while (!writer.tryWrite(sums)) { writer.publish(); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); }
          seen++;
        });
        writer.publish();
      }
    })();
    `,
    { eval: true, workerData: { buffer, back, count: COUNT, tsx: require.resolve('tsx/cjs'), ring: require.resolve('../src/cli/service/shared-ring.ts') } },
  );
  try {
    const writer = new RingWriter(buffer);
    const reader = new RingReader(back);
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const expected: number[] = [];
    const got: number[] = [];
    let sent = 0;
    while (got.length < COUNT) {
      // A burst, then whatever came back; the reader sleeps while the burst is built.
      for (let burst = 0; burst < 64 && sent < COUNT; burst++) {
        const record = new Uint8Array(Math.floor(random() * 200));
        for (let i = 0; i < record.length; i++) record[i] = Math.floor(random() * 256);
        if (!writer.tryWrite(record)) break;
        let sum = record.length;
        for (const b of record) sum = (sum * 31 + b) >>> 0;
        expected.push(sum);
        sent++;
      }
      writer.publish();
      if (reader.drain((m, o) => got.push(new DataView(m.buffer, m.byteOffset + o, 4).getUint32(0, true))) === 0) await reader.waitForRecords();
    }
    assert.equal(got.length, COUNT);
    assert.deepEqual(got, expected);
  } finally {
    await worker.terminate();
  }
});
