import type { MonoTypeOperatorFunction } from 'rxjs';
import type { CheckpointStore, StoredCheckpoint } from './checkpoint-store.js';
import { LearnerPool } from './learner-pool.js';
import type { Prediction } from './messages.js';
import { operate } from './operate.js';
import type { StreamMarks } from './predict-then-learn.js';
import type { PrequentialInput } from './prequential.js';

export interface CheckpointerOptions {
  /** The pool predictThenLearn uses (`predictThenLearn({ pool: () => pool, ... })`). */
  readonly pool: LearnerPool;
  readonly store: CheckpointStore;
  /** Snapshot a stream after every `everyTicks` predictions of it (a positive integer; default: no tick bound). */
  readonly everyTicks?: number;
  /**
   * Snapshot a stream whose last snapshot is at least this many seconds old when a tick of it is processed:
   * the bound on how much a crash rolls back, in time (default 5).
   */
  readonly everySeconds?: number;
  /** A failed write (the stream goes on). Default: a process warning. */
  readonly onError?: (error: Error, stream: string) => void;
  /** A checkpoint the store confirmed durable (the resume protocol acknowledges producers from here). */
  readonly onSaved?: (checkpoint: StoredCheckpoint) => void;
  /** Where each live stream stands (predictThenLearn's marks): pendingLabels go into the meta. */
  readonly marks?: (stream: string) => StreamMarks | undefined;
  /** Clock in milliseconds (injectable for tests). Default performance.now. */
  readonly now?: () => number;
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
  /**
   * Takes the snapshots that have come due. The pipeline calls it after each input has gone through the whole
   * synchronous chain, so a snapshot never falls between a tick's prediction and the learning of the label its
   * own frame carried: `meta.lastSeq` is a tick whose frame is fully applied (the stream's high-water mark).
   */
  settle(): void;
  /**
   * Snapshots every stream with predictions since its last snapshot that is older than `everySeconds`: a
   * stream that went quiet is made durable too (call it from a timer; the producer is acknowledged from there).
   */
  settleQuiet(): void;
  /** Snapshots `stream` now (before an eviction); resolves when the write has finished. */
  checkpointNow(stream: string): Promise<void>;
  /** The newest checkpoint of `stream` handed to the store and not yet confirmed, if any (a restore must prefer it). */
  unconfirmed(stream: string): StoredCheckpoint | undefined;
  /** Snapshot every learner in the pool now and wait for all writes (called on SIGINT/SIGTERM). */
  flush(): Promise<void>;
  /** Writes handed to the store that have not finished. */
  readonly writesInFlight: number;
  readonly stats: CheckpointerStats;
}

/**
 * The checkpoint of a live stream of `pool`: its learner's snapshot, every registered state part, and the meta with
 * the given high-water mark and pending labels; undefined when the stream is not live. The snapshot is a copy.
 */
export function checkpointOfStream(pool: LearnerPool, stream: string, lastSeq: number, pendingLabels: readonly number[]): StoredCheckpoint | undefined {
  const learner = pool.peek(stream);
  const state = pool.snapshotStream(stream);
  if (learner === undefined || state === undefined) return undefined;
  return {
    meta: { stream, lastSeq, version: learner.version, tick: learner.tick, savedAt: Date.now(), pendingLabels },
    snapshot: state.snapshot,
    parts: state.parts,
  };
}

/** Per-stream progress since the stream's last snapshot. */
interface StreamProgress {
  predictionsSinceSnapshot: number;
  /** Seq of the last Prediction of the stream that passed. */
  lastSeq: number;
  /** Clock (ms) of the stream's last snapshot, or of its first prediction. */
  snapshotAt: number;
  due: boolean;
}

/** The write queue of one stream while it is busy: one write in flight, at most one waiting. */
interface StreamWriter {
  inFlight: StoredCheckpoint;
  pending: StoredCheckpoint | null;
  /** Number of the newest checkpoint handed to this writer, and of the newest one finished (saved or failed). */
  scheduled: number;
  finished: number;
  waiters: Array<{ readonly upTo: number; readonly resolve: () => void }>;
}

/**
 * Checkpoints the learners of `pool` into `store` as the stream runs (DESIGN sections 1 and 6). The operator
 * passes every message through unchanged and notes each Prediction; `settle()`, called once the input has been
 * fully processed, snapshots each stream that is due: `everyTicks` predictions or `everySeconds` since its last
 * snapshot. The checkpoint holds the learner's snapshot, every registered state part of the stream (the label
 * join, the normalizer) and the meta { lastSeq, version, tick, pendingLabels }.
 *
 * The snapshot is taken synchronously (a copy of the state); the write is asynchronous. Each stream has at most
 * one write in flight; a snapshot due while one is in flight waits, and a newer one replaces a waiting one
 * (`stats.coalesced`), so at most two snapshots per stream are held. A failed write is counted in
 * `stats.failed` and reported through `onError`; the stream goes on and the next snapshot is tried as usual.
 *
 * `flush()` snapshots every learner in the pool that has had a Prediction pass and resolves once every write
 * handed to the store up to then, in flight or waiting, has finished, failed ones included. predictThenLearn
 * clears its pool when its subscription ends, so flush before unsubscribing.
 */
export function createCheckpointer(options: CheckpointerOptions): Checkpointer {
  if (options == null || typeof options !== 'object') throw new TypeError('createCheckpointer: options are required');
  const { pool, store } = options;
  if (!(pool instanceof LearnerPool)) throw new TypeError('createCheckpointer: pool must be a LearnerPool');
  if (store == null || typeof store.save !== 'function') {
    throw new TypeError('createCheckpointer: store must be a CheckpointStore (with a save method)');
  }
  const everyTicks = options.everyTicks ?? Infinity;
  if (everyTicks !== Infinity && (!Number.isInteger(everyTicks) || everyTicks < 1)) {
    throw new RangeError(`createCheckpointer: everyTicks must be a positive integer, got ${String(everyTicks)}`);
  }
  const everySeconds = options.everySeconds ?? (options.everyTicks === undefined ? 5 : Infinity);
  if (!(everySeconds > 0)) throw new RangeError(`createCheckpointer: everySeconds must be > 0, got ${String(everySeconds)}`);
  const everyMs = everySeconds * 1000;
  for (const name of ['onError', 'onSaved', 'marks', 'now'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw new TypeError(`createCheckpointer: ${name} must be a function`);
  }
  const onError = options.onError ?? warnWriteFailed;
  const onSaved = options.onSaved;
  const marks = options.marks;
  const now = options.now ?? (() => performance.now());

  const stats = { saved: 0, failed: 0, coalesced: 0 };
  const progress = new Map<string, StreamProgress>();
  const writers = new Map<string, StreamWriter>();
  /** Writers with a checkpoint waiting behind the one in flight. */
  let waiting = 0;
  /** Streams with a snapshot due at the next settle(). */
  const due: string[] = [];

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
    writer.inFlight = checkpoint;
    // Promise.resolve().then turns a store that throws synchronously into a failed write like any other.
    Promise.resolve()
      .then(() => store.save(checkpoint))
      .then(
        () => {
          stats.saved++;
          try {
            onSaved?.(checkpoint);
          } catch (callbackError) {
            process.emitWarning(`checkpoint onSaved callback threw: ${String(callbackError)}`, 'CheckpointWarning');
          }
        },
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
          waiting--;
          startWrite(stream, writer, next, writer.scheduled);
        } else {
          writers.delete(stream);
        }
      });
  };

  /** Hands a checkpoint to the store; resolves when it (or a newer one replacing it) has finished. */
  const schedule = (checkpoint: StoredCheckpoint): Promise<void> => {
    const stream = checkpoint.meta.stream;
    let writer = writers.get(stream);
    if (writer === undefined) {
      writer = { inFlight: checkpoint, pending: null, scheduled: 1, finished: 0, waiters: [] };
      writers.set(stream, writer);
      startWrite(stream, writer, checkpoint, 1);
    } else {
      if (writer.pending !== null) stats.coalesced++;
      else waiting++;
      writer.pending = checkpoint;
      writer.scheduled++;
    }
    const w = writer;
    const upTo = w.scheduled;
    return new Promise<void>((resolve) => w.waiters.push({ upTo, resolve }));
  };

  const snapshotOf = (stream: string, p: StreamProgress): StoredCheckpoint | undefined => {
    const checkpoint = checkpointOfStream(pool, stream, p.lastSeq, marks?.(stream)?.pendingLabels ?? []);
    if (checkpoint === undefined) return undefined;
    p.predictionsSinceSnapshot = 0;
    p.snapshotAt = now();
    p.due = false;
    return checkpoint;
  };

  const progressOf = (stream: string): StreamProgress => {
    let p = progress.get(stream);
    if (p === undefined) {
      // Bound the map by the pool: forget streams whose learner the pool has dropped.
      if (progress.size >= pool.maxStreams) for (const key of progress.keys()) if (!pool.has(key)) progress.delete(key);
      p = { predictionsSinceSnapshot: 0, lastSeq: NaN, snapshotAt: now(), due: false };
      progress.set(stream, p);
    }
    return p;
  };

  const onPrediction = (prediction: Prediction) => {
    if (!pool.has(prediction.stream)) return;
    const p = progressOf(prediction.stream);
    p.lastSeq = prediction.seq;
    if (p.due) return;
    if (++p.predictionsSinceSnapshot >= everyTicks || now() - p.snapshotAt >= everyMs) {
      p.due = true;
      due.push(prediction.stream);
    }
  };

  // A learner or pool that throws in onPrediction is a programming error, as in predictThenLearn: operate turns it
  // into an error notification, and the prediction does not pass.
  const operator: MonoTypeOperatorFunction<PrequentialInput> = operate<PrequentialInput, PrequentialInput>((subscriber) => ({
    next(message) {
      if (message?.kind === 'prediction') onPrediction(message);
      subscriber.next(message);
    },
  }));

  const settle = (): void => {
    for (let i = 0; i < due.length; i++) {
      const stream = due[i];
      const p = progress.get(stream);
      if (p === undefined || !p.due) continue;
      const checkpoint = snapshotOf(stream, p);
      if (checkpoint !== undefined) void schedule(checkpoint);
      else p.due = false;
    }
    due.length = 0;
  };

  const settleQuiet = (): void => {
    const t = now();
    for (const [stream, p] of progress) {
      if (p.predictionsSinceSnapshot > 0 && !p.due && t - p.snapshotAt >= everyMs && pool.has(stream)) {
        p.due = true;
        due.push(stream);
      }
    }
    settle();
  };

  const checkpointNow = (stream: string): Promise<void> => {
    const p = progress.get(stream);
    if (p === undefined || Number.isNaN(p.lastSeq)) return Promise.resolve();
    const checkpoint = snapshotOf(stream, p);
    return checkpoint === undefined ? Promise.resolve() : schedule(checkpoint);
  };

  const flush = (): Promise<void> => {
    settle();
    const waits: Promise<void>[] = [];
    for (const stream of pool.keys()) waits.push(checkpointNow(stream));
    for (const writer of writers.values()) {
      if (writer.finished >= writer.scheduled) continue;
      waits.push(new Promise<void>((resolve) => writer.waiters.push({ upTo: writer.scheduled, resolve })));
    }
    return Promise.all(waits).then(() => undefined);
  };

  return {
    operator,
    settle,
    settleQuiet,
    checkpointNow,
    unconfirmed: (stream) => {
      const w = writers.get(stream);
      return w === undefined ? undefined : (w.pending ?? w.inFlight);
    },
    flush,
    get writesInFlight() {
      return writers.size + waiting;
    },
    stats,
  };
}

function warnWriteFailed(error: Error, stream: string): void {
  process.emitWarning(`checkpoint of stream '${stream}' not written: ${error.message}`, 'CheckpointWarning');
}
