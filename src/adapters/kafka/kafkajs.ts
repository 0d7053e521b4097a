// kafkajs, loaded with its read_committed filter replaced by one that decides as Kafka's Java consumer does.
import Module, { createRequire } from 'node:module';
import type * as KafkaJS from 'kafkajs';
import { withoutAbortedTransactions, type AbortedTransaction, type FetchedRecord } from './aborted-transactions.js';

const require = createRequire(import.meta.url);
const FILTER_MODULE = 'kafkajs/src/consumer/filterAbortedMessages.js';
const BATCH_MODULE = 'kafkajs/src/consumer/batch.js';

/**
 * kafkajs 2.2.4 (its last release) can hand a read_committed consumer records of aborted transactions and drop
 * committed ones (aborted-transactions.ts says when). Every driftline reader depends on that filter: the changelog's
 * reader must never restore a learner from a checkpoint whose transaction was aborted. kafkajs' batch module takes
 * its filter from Node's module cache, so the corrected one is put there before kafkajs loads. Every module of
 * driftline, its tests and its benchmarks imports kafkajs from here, never directly.
 */
function loadCorrected(): typeof KafkaJS {
  const filterPath = require.resolve(FILTER_MODULE);
  if (require.cache[require.resolve(BATCH_MODULE)] === undefined && require.cache[filterPath]?.exports !== withoutAbortedTransactions) {
    const corrected = new Module(filterPath);
    corrected.filename = filterPath;
    corrected.loaded = true;
    corrected.exports = withoutAbortedTransactions;
    require.cache[filterPath] = corrected;
  }
  assertAbortedRecordsFiltered();
  return require('kafkajs') as typeof KafkaJS;
}

/**
 * A fetch that begins inside two aborted transactions, on the batch class kafkajs' consumers use: the record of the
 * second must not come through. It does when kafkajs was loaded before this module (then its own filter stays).
 */
function assertAbortedRecordsFiltered(): void {
  const Batch = require(BATCH_MODULE) as new (topic: string, fetchedOffset: string, partitionData: object) => { messages: unknown[] };
  const record: FetchedRecord & { value: Buffer; headers: object } = { offset: '1', key: null, value: Buffer.alloc(0), headers: {}, isControlRecord: false, batchContext: { producerId: '2', inTransaction: true } };
  const abortedTransactions: AbortedTransaction[] = [{ producerId: '1', firstOffset: '0' }, { producerId: '2', firstOffset: '1' }];
  const batch = new Batch('driftline-self-test', '1', { partition: 0, highWatermark: '2', messages: [record], abortedTransactions });
  if (batch.messages.length !== 0) {
    throw new Error(`kafkajs was loaded before driftline corrected its read_committed filter, so its consumers can read records of aborted transactions; import kafkajs through src/adapters/kafka/kafkajs.ts only`);
  }
}

const kafkajs = loadCorrected();
export default kafkajs;
