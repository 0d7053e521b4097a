import type { MonoTypeOperatorFunction } from 'rxjs';
import type { CheckpointStore, StoredCheckpoint } from './checkpoint-store.js';
import { LearnerPool } from './learner-pool.js';
import type { Prediction } from './messages.js';
import { operate } from './operate.js';
import type { PrequentialInput } from './prequential.js';

export interface CheckpointerOptions {
  /** The pool predictThenLearn uses (`predictThenLearn({ pool: () => pool, ... })`). */
  readonly pool: LearnerPool;
  readonly store: CheckpointStore;
  /** Snapshot a stream after every `everyTicks` predictions of it (a positive integer). */
  readonly everyTicks: number;
  /** A failed write (the stream goes on). Default: a process warning. */
  readonly onError?: (error: Error, stream: string) => void;
}

/** Counters of a checkpointer's writes; live values. */
export interface CheckpointerStats {
  /** Checkpoints the store confirmed. */
  readonly saved: number;
  /** Writes the store refused. */
  readonly failed: number;
  /** Snapshots dropped unwritten because a newer one of the same stream replaced them while a write was in flight. */
  readonly coalesced: number;
}

/** A checkpoint operator bound to one pool and one store, with a flush for shutdown. */
export interface Checkpointer {
  readonly operator: MonoTypeOperatorFunction<PrequentialInput>;
  /** Snapshot every learner in the pool now and wait for all writes (called on SIGINT/SIGTERM). */
  flush(): Promise<void>;
  readonly stats: CheckpointerStats;
}

/** Per-stream progress since the stream's last snapshot. */
interface StreamProgress {
  predictionsSinceSnapshot: number;
  /** Seq of the last Prediction of the stream that passed. */
  lastSeq: number;
}

/** The write queue of one stream while it is busy: one write in flight, at most one waiting. */
interface StreamWriter {
  pending: StoredCheckpoint | null;
  /** Number of the newest checkpoint handed to this writer, and of the newest one finished (saved or failed). */
  scheduled: number;
  finished: number;
  waiters: Array<{ readonly upTo: number; readonly resolve: () => void }>;
}

/**
 * Checkpoints the learners of `pool` into `store` as the stream runs (DESIGN section 1). The operator passes
 * every message through unchanged. When a Prediction passes and it is at least the `everyTicks`-th Prediction
 * of its stream since that stream's last snapshot, the stream's learner (`pool.peek`) is snapshotted first. At
 * that moment the learner has predicted that tick and learned every label that came before it, so the meta is
 * { lastSeq: prediction.seq, version: learner.version, tick: learner.tick }. This holds only when the operator
 * runs in the same synchronous chain as predictThenLearn (no scheduler in between), which is how it is meant
 * to be piped.
 *
 * The snapshot is taken synchronously (a copy of the learner's state); the write is asynchronous. Each stream
 * has at most one write in flight; a snapshot due while one is in flight waits, and a newer one replaces a
 * waiting one (`stats.coalesced`), so at most two snapshots per stream are held. A failed write is counted in
 * `stats.failed` and reported through `onError`; the stream goes on and the next snapshot is tried as usual.
 *
 * `flush()` snapshots every learner in the pool that has had a Prediction pass (its meta.lastSeq is that
 * Prediction's seq, version and tick are the learner's now) and resolves once every write handed to the store
 * up to then, in flight or waiting, has finished, failed ones included. predictThenLearn clears its pool when
 * its subscription ends, so flush before unsubscribing; to checkpoint the end of a finite source, call flush
 * from a `complete` handler downstream of this operator (it runs before the pool is cleared).
 *
 * The counters describe the pool's learners, which belong to whichever subscription uses the pool, so they live
 * with the checkpointer rather than per subscription. Configuration errors throw here.
 */
export function createCheckpointer(options: CheckpointerOptions): Checkpointer {
  if (options == null || typeof options !== 'object') throw new TypeError('createCheckpointer: options are required');
  const { pool, store, everyTicks } = options;
  if (!(pool instanceof LearnerPool)) throw new TypeError('createCheckpointer: pool must be a LearnerPool');
  if (store == null || typeof store.save !== 'function') {
    throw new TypeError('createCheckpointer: store must be a CheckpointStore (with a save method)');
  }
  if (!Number.isInteger(everyTicks) || everyTicks < 1) {
    throw new RangeError(`createCheckpointer: everyTicks must be a positive integer, got ${String(everyTicks)}`);
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw new TypeError('createCheckpointer: onError must be a function');
  }
  const onError = options.onError ?? warnWriteFailed;

  const stats = { saved: 0, failed: 0, coalesced: 0 };
  const progress = new Map<string, StreamProgress>();
  const writers = new Map<string, StreamWriter>();

  const report = (error: unknown, stream: string) => {
    const err = error instanceof Error ? error : new Error(String(error));
    try {
      onError(err, stream);
    } catch (callbackError) {
      // This runs in a promise callback: rethrowing would be an unhandled rejection that ends the process.
      process.emitWarning(`checkpoint onError callback threw: ${String(callbackError)}`, 'CheckpointWarning');
    }
  };

  const startWrite = (stream: string, writer: StreamWriter, checkpoint: StoredCheckpoint, number: number) => {
    // Promise.resolve().then turns a store that throws synchronously into a failed write like any other.
    Promise.resolve()
      .then(() => store.save(checkpoint))
      .then(
        () => void stats.saved++,
        (error: unknown) => {
          stats.failed++;
          report(error, stream);
        },
      )
      .then(() => {
        writer.finished = number;
        if (writer.waiters.length > 0) {
          const still = writer.waiters.filter((w) => w.upTo > number);
          for (const w of writer.waiters) if (w.upTo <= number) w.resolve();
          writer.waiters = still;
        }
        const next = writer.pending;
        if (next !== null) {
          writer.pending = null;
          startWrite(stream, writer, next, writer.scheduled);
        } else {
          writers.delete(stream);
        }
      });
  };

  const schedule = (checkpoint: StoredCheckpoint) => {
    const stream = checkpoint.meta.stream;
    const writer = writers.get(stream);
    if (writer === undefined) {
      const fresh: StreamWriter = { pending: null, scheduled: 1, finished: 0, waiters: [] };
      writers.set(stream, fresh);
      startWrite(stream, fresh, checkpoint, 1);
      return;
    }
    if (writer.pending !== null) stats.coalesced++;
    writer.pending = checkpoint;
    writer.scheduled++;
  };

  const snapshotOf = (stream: string, lastSeq: number): StoredCheckpoint | undefined => {
    const learner = pool.peek(stream);
    if (learner === undefined) return undefined;
    const snapshot = learner.snapshot();
    return { meta: { stream, lastSeq, version: learner.version, tick: learner.tick, savedAt: Date.now() }, snapshot };
  };

  const progressOf = (stream: string): StreamProgress => {
    let p = progress.get(stream);
    if (p === undefined) {
      // Bound the map by the pool: forget streams whose learner the pool has dropped.
      if (progress.size >= pool.maxStreams) for (const key of progress.keys()) if (!pool.has(key)) progress.delete(key);
      p = { predictionsSinceSnapshot: 0, lastSeq: NaN };
      progress.set(stream, p);
    }
    return p;
  };

  const onPrediction = (prediction: Prediction) => {
    if (!pool.has(prediction.stream)) return;
    const p = progressOf(prediction.stream);
    p.lastSeq = prediction.seq;
    if (++p.predictionsSinceSnapshot < everyTicks) return;
    const checkpoint = snapshotOf(prediction.stream, prediction.seq);
    if (checkpoint === undefined) return;
    p.predictionsSinceSnapshot = 0;
    schedule(checkpoint);
  };

  // A learner or pool that throws in onPrediction is a programming error, as in predictThenLearn: operate turns it
  // into an error notification, and the prediction does not pass.
  const operator: MonoTypeOperatorFunction<PrequentialInput> = operate<PrequentialInput, PrequentialInput>((subscriber) => ({
    next(message) {
      if (message?.kind === 'prediction') onPrediction(message);
      subscriber.next(message);
    },
  }));

  const flush = (): Promise<void> => {
    for (const stream of pool.keys()) {
      const p = progress.get(stream);
      if (p === undefined || Number.isNaN(p.lastSeq)) continue;
      const checkpoint = snapshotOf(stream, p.lastSeq);
      if (checkpoint === undefined) continue;
      p.predictionsSinceSnapshot = 0;
      schedule(checkpoint);
    }
    const waits: Promise<void>[] = [];
    for (const writer of writers.values()) {
      if (writer.finished >= writer.scheduled) continue;
      waits.push(new Promise<void>((resolve) => writer.waiters.push({ upTo: writer.scheduled, resolve })));
    }
    return Promise.all(waits).then(() => undefined);
  };

  return { operator, flush, stats };
}

function warnWriteFailed(error: Error, stream: string): void {
  process.emitWarning(`checkpoint of stream '${stream}' not written: ${error.message}`, 'CheckpointWarning');
}
