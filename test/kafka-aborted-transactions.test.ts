// The read_committed filter driftline loads kafkajs with (src/adapters/kafka/aborted-transactions.ts), on records
// laid out as the broker lays them out when a fetch begins inside several aborted transactions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withoutAbortedTransactions, type FetchedRecord } from '../src/adapters/kafka/aborted-transactions.js';
import kafkajs from '../src/adapters/kafka/kafkajs.js';
import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const ABORT = Buffer.from([0, 0, 0, 0]);
const COMMIT = Buffer.from([0, 0, 0, 1]);

interface Row extends FetchedRecord { readonly label: string }

function data(offset: number, producerId: string, label: string, inTransaction = true): Row {
  return { offset: String(offset), key: Buffer.from(label), isControlRecord: false, batchContext: { producerId, inTransaction }, label };
}
function marker(offset: number, producerId: string, key: Buffer): Row {
  return { offset: String(offset), key, isControlRecord: true, batchContext: { producerId, inTransaction: true }, label: `${key.equals(ABORT) ? 'abort' : 'commit'}-${producerId}` };
}

// X, Y and P each write one record and abort (markers 3, 4, 5, P's first); P's next owner (same producer id, as a
// transactional.id keeps its producer id across owners) then commits one record.
const LOG: Row[] = [
  data(0, 'X', 'x'), data(1, 'Y', 'y'), data(2, 'P', 'p'),
  marker(3, 'P', ABORT), marker(4, 'X', ABORT), marker(5, 'Y', ABORT),
  data(6, 'P', 'p-committed'), marker(7, 'P', COMMIT),
  data(8, '-1', 'plain', false),
];
const ABORTED = [{ producerId: 'X', firstOffset: '0' }, { producerId: 'Y', firstOffset: '1' }, { producerId: 'P', firstOffset: '2' }];

/** What the broker lists for a fetch from `start`: the aborted transactions whose last offset (marker) is at or after it. */
function listedFrom(start: number) {
  const lastOffset: Record<string, number> = { X: 4, Y: 5, P: 3 };
  return ABORTED.filter((t) => lastOffset[t.producerId]! >= start);
}

test('a fetch from any offset keeps exactly the committed records and non-transactional ones', () => {
  for (let start = 0; start < LOG.length; start++) {
    const kept = withoutAbortedTransactions({ messages: LOG.slice(start), abortedTransactions: listedFrom(start) })
      .filter((r) => !r.isControlRecord)
      .map((r) => r.label);
    const expected = ['p-committed', 'plain'].filter((label) => LOG.findIndex((r) => r.label === label) >= start);
    assert.deepEqual(kept, expected, `fetch from offset ${start}`);
  }
});

test('a producer aborted twice is filtered in both of its transactions and not between them', () => {
  const log: Row[] = [
    data(0, 'A', 'a1'), marker(1, 'A', ABORT), data(2, 'A', 'a2-committed'), marker(3, 'A', COMMIT),
    data(4, 'A', 'a3'), marker(5, 'A', ABORT), data(6, 'A', 'a4-committed'), marker(7, 'A', COMMIT),
  ];
  const kept = withoutAbortedTransactions({ messages: log, abortedTransactions: [{ producerId: 'A', firstOffset: '4' }, { producerId: 'A', firstOffset: '0' }] })
    .filter((r) => !r.isControlRecord)
    .map((r) => r.label);
  assert.deepEqual(kept, ['a2-committed', 'a4-committed']);
});

test('a fetch without aborted transactions is returned as it is', () => {
  const messages = LOG.slice(0, 3);
  assert.equal(withoutAbortedTransactions({ messages }), messages);
  assert.equal(withoutAbortedTransactions({ messages, abortedTransactions: [] }), messages);
});

test('kafkajs loaded before driftline corrected it is refused by name, not used with its own filter', () => {
  const script = "require('kafkajs'); import('./src/adapters/kafka/kafkajs.ts').then(() => console.log('loaded'), (e) => console.log(e.message));";
  const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.match(out, /kafkajs was loaded before driftline corrected its read_committed filter/);
  assert.equal(typeof kafkajs.Kafka, 'function', 'loaded through driftline first, kafkajs passes the same check');
});
