import { createLearner, type Learner, type LearnerOptions, type LearnerSpec } from '../learners/learner.js';
import type { StoredCheckpoint } from './checkpoint-store.js';

/**
 * One learner per stream key, created from a spec the first time the key is seen. The pool is bounded: past
 * `maxStreams` keys `get` throws a `TooManyStreamsError`, and with an allowlist a key outside it throws an
 * `UnknownStreamError`. Both are typed, non-retriable errors the stream operators turn into `Rejection`s; an
 * error thrown by a spec function (or by `createLearner` for a bad spec) is a programming error and propagates.
 * With `initialState` (checkpoints loaded at startup) a new learner resumes from its stream's checkpoint.
 */

/** Raised when a new key would take the pool past its configured number of streams. */
export class TooManyStreamsError extends Error {
  override readonly name = 'TooManyStreamsError';
  readonly retriable = false;
  constructor(readonly key: string, readonly maxStreams: number) {
    super(`stream '${key}' refused: the pool already holds its maximum of ${maxStreams} streams`);
  }
}

/** Raised when a key is not in the pool's allowlist. */
export class UnknownStreamError extends Error {
  override readonly name = 'UnknownStreamError';
  readonly retriable = false;
  constructor(readonly key: string) {
    super(`stream '${key}' refused: it is not in the list of allowed streams`);
  }
}

/** One spec for every stream, or a spec per stream key. */
export type LearnerSpecSource = LearnerSpec | ((key: string) => LearnerSpec);

export interface LearnerPoolOptions {
  readonly spec: LearnerSpecSource;
  /** Most stream keys the pool holds at once (a positive integer). */
  readonly maxStreams: number;
  /** When given, only these keys are accepted. */
  readonly allowedStreams?: Iterable<string>;
  /** Passed to createLearner (kernel backend). */
  readonly learnerOptions?: LearnerOptions;
  /**
   * Checkpoints by stream key (e.g. `await store.loadAll()`). When the pool creates the learner of a key found
   * here, it restores the checkpoint's snapshot into it. Each entry is used once per pool: a key deleted and
   * created again starts fresh rather than going back to the startup state.
   */
  readonly initialState?: ReadonlyMap<string, StoredCheckpoint>;
  /**
   * Called when a checkpoint in `initialState` cannot be restored (a SnapshotError: another spec, another
   * format, damaged bytes); the learner then starts fresh. Default: a process warning. An exception thrown
   * here propagates from `get`, like one from a spec function (the fresh learner is already in the pool).
   */
  readonly onRestoreError?: (error: Error, stream: string) => void;
}

export class LearnerPool {
  readonly maxStreams: number;
  private readonly spec: LearnerSpecSource;
  private readonly allowed: ReadonlySet<string> | undefined;
  private readonly learnerOptions: LearnerOptions | undefined;
  private readonly learners = new Map<string, Learner>();
  private readonly initialState: ReadonlyMap<string, StoredCheckpoint> | undefined;
  private readonly onRestoreError: (error: Error, stream: string) => void;
  /** Keys whose initial state has been used (at most initialState.size of them). */
  private readonly restoredKeys = new Set<string>();

  constructor(options: LearnerPoolOptions) {
    if (options == null || typeof options !== 'object') throw new TypeError('LearnerPool: options are required');
    if (!Number.isInteger(options.maxStreams) || options.maxStreams < 1) {
      throw new RangeError(`LearnerPool: maxStreams must be a positive integer, got ${String(options.maxStreams)}`);
    }
    if (options.spec == null || (typeof options.spec !== 'object' && typeof options.spec !== 'function')) {
      throw new TypeError('LearnerPool: spec must be a learner spec or a function from stream key to spec');
    }
    this.maxStreams = options.maxStreams;
    this.spec = options.spec;
    this.allowed = options.allowedStreams ? new Set(options.allowedStreams) : undefined;
    this.learnerOptions = options.learnerOptions;
    const { initialState, onRestoreError } = options;
    if (initialState !== undefined && (initialState == null || typeof (initialState as { get?: unknown }).get !== 'function')) {
      throw new TypeError('LearnerPool: initialState must be a Map from stream key to stored checkpoint');
    }
    if (onRestoreError !== undefined && typeof onRestoreError !== 'function') {
      throw new TypeError('LearnerPool: onRestoreError must be a function');
    }
    this.initialState = initialState;
    this.onRestoreError = onRestoreError ?? warnRestoreError;
  }

  /** The learner of `key`, created on first sight. Throws UnknownStreamError / TooManyStreamsError. */
  get(key: string): Learner {
    const found = this.learners.get(key);
    if (found) return found;
    if (!this.allows(key)) throw new UnknownStreamError(key);
    if (this.learners.size >= this.maxStreams) throw new TooManyStreamsError(key, this.maxStreams);
    const spec = typeof this.spec === 'function' ? this.spec(key) : this.spec;
    let learner = createLearner(spec, this.learnerOptions);
    const checkpoint = this.takeInitialState(key);
    let restoreError: Error | undefined;
    if (checkpoint !== undefined) {
      try {
        learner.restore(checkpoint.snapshot);
      } catch (err) {
        restoreError = err instanceof Error ? err : new Error(String(err));
        // restore validates before it writes, but a fresh learner is certain not to carry half a snapshot.
        learner = createLearner(spec, this.learnerOptions);
      }
    }
    this.learners.set(key, learner);
    if (restoreError !== undefined) this.onRestoreError(restoreError, key);
    return learner;
  }

  /** The learner of `key` if the pool holds one; never creates. */
  peek(key: string): Learner | undefined {
    return this.learners.get(key);
  }

  has(key: string): boolean {
    return this.learners.has(key);
  }

  /** Whether the allowlist (if any) admits `key`; says nothing about the stream limit. */
  allows(key: string): boolean {
    return this.allowed === undefined || this.allowed.has(key);
  }

  keys(): IterableIterator<string> {
    return this.learners.keys();
  }

  get size(): number {
    return this.learners.size;
  }

  /** Drops the learner of `key`, freeing its slot; true if there was one. */
  delete(key: string): boolean {
    return this.learners.delete(key);
  }

  /** Drops every learner. */
  clear(): void {
    this.learners.clear();
  }

  private takeInitialState(key: string): StoredCheckpoint | undefined {
    if (this.initialState === undefined || this.restoredKeys.has(key)) return undefined;
    const checkpoint = this.initialState.get(key);
    if (checkpoint !== undefined) this.restoredKeys.add(key);
    return checkpoint;
  }
}

function warnRestoreError(error: Error, stream: string): void {
  process.emitWarning(`stream '${stream}' starts fresh: its checkpoint could not be restored (${error.message})`, 'CheckpointWarning');
}
