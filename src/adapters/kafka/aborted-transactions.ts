// Which records of a read_committed fetch belong to aborted transactions, decided the way Kafka's Java consumer does.

/** A record as kafkajs decodes it, with what the transaction filter reads. */
export interface FetchedRecord {
  readonly offset: string;
  readonly key: Buffer | null;
  readonly isControlRecord: boolean;
  readonly batchContext: { readonly producerId: string; readonly inTransaction: boolean };
}

/** An aborted transaction a fetch response lists: the producer that ran it and its first offset. */
export interface AbortedTransaction {
  readonly producerId: string;
  readonly firstOffset: string;
}

/** A control record's key is its version (int16) and its type (int16): type 0 is an abort marker. */
function isAbortMarker(record: FetchedRecord): boolean {
  const key = record.key;
  return key !== null && key.length >= 4 && key.readInt16BE(2) === 0;
}

/**
 * The records of a fetch without those of the aborted transactions it lists (control records are kept: kafkajs
 * drops them after). A producer is aborted from the first offset of an aborted transaction of its own until its
 * abort marker; every listed transaction that began at or before a record is taken into account before that
 * record is judged, however far into those transactions the fetch begins.
 *
 * kafkajs 2.2.4 takes the listed transactions in the order the broker lists them, which is not by first offset, and
 * at most one per record. So its read_committed consumers are handed records of aborted transactions, even from the
 * start of a partition, whenever transactions were open together on it (a dead worker's transactions on several
 * partitions, aborted when their new owners fence it), and it can take a producer for aborted after its abort
 * marker and drop the next owner's committed records. test/integration/kafka-aborted-transactions.test.ts shows
 * it on the real broker.
 */
export function withoutAbortedTransactions<R extends FetchedRecord>({ messages, abortedTransactions }: { messages: R[]; abortedTransactions?: readonly AbortedTransaction[] }): R[] {
  if (!abortedTransactions || abortedTransactions.length === 0) return messages;
  const pending = abortedTransactions
    .map(({ producerId, firstOffset }) => ({ producerId, firstOffset: BigInt(firstOffset) }))
    .sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  const abortedProducers = new Set<string>();
  let next = 0;
  return messages.filter((record) => {
    const offset = BigInt(record.offset);
    while (next < pending.length && pending[next]!.firstOffset <= offset) abortedProducers.add(pending[next++]!.producerId);
    const { producerId, inTransaction } = record.batchContext;
    if (record.isControlRecord) {
      if (isAbortMarker(record)) abortedProducers.delete(producerId);
      return true;
    }
    return !(inTransaction && abortedProducers.has(producerId));
  });
}
