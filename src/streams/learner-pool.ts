import { createLearner, type Learner, type LearnerOptions, type LearnerSpec } from '../learners/learner.js';
import type { StoredCheckpoint } from './checkpoint-store.js';

/**
 * One learner per stream key, created from a spec the first time the key is seen. The pool is bounded: past
 * `maxStreams` keys `get` throws a `TooManyStreamsError`, and with an allowlist a key outside it throws an
 * `UnknownStreamError`. Both are typed, non-retriable errors the stream operators turn into `Rejection`s; an
 * error thrown by a spec function (or by `createLearner` for a bad spec) is a programming error and propagates.
 * With `initialState` (checkpoints loaded at startup) or `offer(checkpoint)` (one loaded later, e.g. for a stream
 * that was evicted) a new learner resumes from its stream's checkpoint.
 *
 * Per-stream state that pipeline operators keep beside the learner (the label join, the references, the input
 * normalizer) travels with it: each operator registers a `StreamStatePart`; `snapshotStream` collects the
 * learner's snapshot and every part's bytes, `evict` drops them all, and a restore hands each part its bytes
 * back through `takeRestoredPart`. So a stream checkpointed, evicted and restored resumes exactly.
 */

/** Per-stream state an operator keeps beside the learner, saved and restored with it. */
export interface StreamStatePart {
  /** Unique per pool, e.g. 'predict-then-learn'. */
  readonly name: string;
  /** The stream's state as bytes, or undefined when the part holds none for it. */
  save(stream: string): Uint8Array | undefined;
  /** Forgets the stream's state (eviction). */
  drop(stream: string): void;
  /**
   * Throws when `bytes` would not restore into `learner`'s stream (checked before the stream is restored, so a
   * bad part is handled like a bad snapshot: the stream refused or fresh, by policy).
   */
  check(bytes: Uint8Array, learner: Learner): void;
}

/** What the pool did with a checkpoint that could not be restored. */
export type BadCheckpointPolicy = 'refuse' | 'fresh';

/** Raised by `get` for a stream whose checkpoint could not be restored while the policy is 'refuse'. */
export class StreamUnavailableError extends Error {
  override readonly name = 'StreamUnavailableError';
  readonly retriable = false;
  constructor(readonly key: string, readonly restoreError: Error) {
    super(`stream '${key}' refused: its checkpoint could not be restored (${restoreError.message}); it was moved aside, see the log`);
  }
}

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
   * Called when a checkpoint cannot be restored (a SnapshotError: another spec, another format, damaged bytes;
   * or a part's bytes that do not fit). With `onBadCheckpoint: 'fresh'` the learner then starts fresh; with
   * 'refuse' (the default) the stream is refused (`StreamUnavailableError`) until the pool is rebuilt. Default
   * callback: a process warning. An exception thrown here propagates from `get`.
   */
  readonly onRestoreError?: (error: Error, stream: string, checkpoint: StoredCheckpoint) => void;
  readonly onBadCheckpoint?: BadCheckpointPolicy;
  /** Called after a stream's checkpoint was restored into its new learner. */
  readonly onRestored?: (stream: string, checkpoint: StoredCheckpoint) => void;
}

export class LearnerPool {
  readonly maxStreams: number;
  private readonly spec: LearnerSpecSource;
  private readonly allowed: ReadonlySet<string> | undefined;
  private readonly learnerOptions: LearnerOptions | undefined;
  private readonly learners = new Map<string, Learner>();
  private readonly onRestoreError: (error: Error, stream: string, checkpoint: StoredCheckpoint) => void;
  private readonly onRestored: ((stream: string, checkpoint: StoredCheckpoint) => void) | undefined;
  private readonly badCheckpointPolicy: BadCheckpointPolicy;
  /** Checkpoints waiting for their stream's next learner; each is used once. */
  private readonly offered = new Map<string, StoredCheckpoint>();
  /** Streams refused because their checkpoint could not be restored (policy 'refuse'). */
  private readonly unavailable = new Map<string, StreamUnavailableError>();
  private readonly parts = new Map<string, StreamStatePart>();
  private readonly evictListeners = new Set<(stream: string) => void>();
  /** Part bytes of streams just restored, until their operator takes them. */
  private readonly restoredParts = new Map<string, ReadonlyMap<string, Uint8Array>>();

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
    const { initialState, onRestoreError, onRestored } = options;
    if (initialState !== undefined && (initialState == null || typeof (initialState as { get?: unknown }).get !== 'function')) {
      throw new TypeError('LearnerPool: initialState must be a Map from stream key to stored checkpoint');
    }
    if (onRestoreError !== undefined && typeof onRestoreError !== 'function') {
      throw new TypeError('LearnerPool: onRestoreError must be a function');
    }
    if (onRestored !== undefined && typeof onRestored !== 'function') throw new TypeError('LearnerPool: onRestored must be a function');
    const policy = options.onBadCheckpoint ?? 'refuse';
    if (policy !== 'refuse' && policy !== 'fresh') {
      throw new RangeError(`LearnerPool: onBadCheckpoint must be 'refuse' or 'fresh', got ${String(policy)}`);
    }
    this.badCheckpointPolicy = policy;
    if (initialState) for (const [key, checkpoint] of initialState) this.offered.set(key, checkpoint);
    this.onRestoreError = onRestoreError ?? warnRestoreError;
    this.onRestored = onRestored;
  }

  /** Registers an operator's per-stream state; returns the unregister function. */
  registerPart(part: StreamStatePart): () => void {
    if (this.parts.has(part.name)) throw new Error(`LearnerPool: a state part named '${part.name}' is already registered`);
    this.parts.set(part.name, part);
    return () => {
      if (this.parts.get(part.name) === part) this.parts.delete(part.name);
    };
  }

  /**
   * The bytes of part `name` from the checkpoint `stream` was just restored from (once), for the operator that
   * creates the stream's state. Undefined for a fresh stream or a checkpoint without that part.
   */
  takeRestoredPart(stream: string, name: string): Uint8Array | undefined {
    const parts = this.restoredParts.get(stream);
    if (parts === undefined) return undefined;
    const bytes = parts.get(name);
    if (bytes !== undefined) {
      const rest = new Map(parts);
      rest.delete(name);
      if (rest.size === 0) this.restoredParts.delete(stream);
      else this.restoredParts.set(stream, rest);
    }
    return bytes;
  }

  /**
   * Calls `listener` with each evicted stream: operators whose per-stream state is not worth checkpointing
   * (error windows, detectors) forget the stream, so memory follows the live learners, not every key ever seen.
   * Returns the unsubscribe function.
   */
  onEvict(listener: (stream: string) => void): () => void {
    this.evictListeners.add(listener);
    return () => void this.evictListeners.delete(listener);
  }

  /** The registered part called `name`, if any. */
  part(name: string): StreamStatePart | undefined {
    return this.parts.get(name);
  }

  /** Refuses `key` from now on (its checkpoint could not be loaded and the policy is 'refuse'). */
  refuse(key: string, error: Error): void {
    this.unavailable.set(key, new StreamUnavailableError(key, error));
  }

  /** Whether `key` is refused because its checkpoint could not be restored. */
  isRefused(key: string): boolean {
    return this.unavailable.has(key);
  }

  /** The policy for checkpoints that cannot be restored. */
  get onBadCheckpoint(): BadCheckpointPolicy {
    return this.badCheckpointPolicy;
  }

  /** A checkpoint for the next learner of its stream (replaces one offered before and not used yet). */
  offer(checkpoint: StoredCheckpoint): void {
    this.offered.set(checkpoint.meta.stream, checkpoint);
  }

  /** Whether a checkpoint waits for `key`'s next learner. */
  hasOffer(key: string): boolean {
    return this.offered.has(key);
  }

  /** The learner's snapshot and every registered part's bytes for `key`, or undefined when it is not live. */
  snapshotStream(key: string): { snapshot: Uint8Array; parts: Map<string, Uint8Array> } | undefined {
    const learner = this.learners.get(key);
    if (learner === undefined) return undefined;
    const parts = new Map<string, Uint8Array>();
    for (const part of this.parts.values()) {
      const bytes = part.save(key);
      if (bytes !== undefined) parts.set(part.name, bytes);
    }
    return { snapshot: learner.snapshot(), parts };
  }

  /** Drops the learner of `key` and every part's state of it (checkpoint it first); true if it was live. */
  evict(key: string): boolean {
    if (!this.learners.delete(key)) return false;
    for (const part of this.parts.values()) part.drop(key);
    for (const listener of this.evictListeners) listener(key);
    this.restoredParts.delete(key);
    return true;
  }

  /** Allows a refused stream again (after its checkpoint was moved aside and the operator said so). */
  forgetRefusal(key: string): boolean {
    return this.unavailable.delete(key);
  }

  /** The learner of `key`, created on first sight. Throws UnknownStreamError / TooManyStreamsError. */
  get(key: string): Learner {
    const found = this.learners.get(key);
    if (found) return found;
    if (!this.allows(key)) throw new UnknownStreamError(key);
    const refused = this.unavailable.get(key);
    if (refused !== undefined) throw refused;
    if (this.learners.size >= this.maxStreams) throw new TooManyStreamsError(key, this.maxStreams);
    const spec = typeof this.spec === 'function' ? this.spec(key) : this.spec;
    let learner = createLearner(spec, this.learnerOptions);
    const checkpoint = this.offered.get(key);
    let restoreError: Error | undefined;
    if (checkpoint !== undefined) {
      this.offered.delete(key);
      try {
        learner.restore(checkpoint.snapshot);
        this.checkParts(checkpoint, learner);
      } catch (err) {
        restoreError = err instanceof Error ? err : new Error(String(err));
        // restore validates before it writes, but a fresh learner is certain not to carry half a snapshot.
        learner = createLearner(spec, this.learnerOptions);
      }
    }
    if (restoreError !== undefined && checkpoint !== undefined) {
      const refuse = this.badCheckpointPolicy === 'refuse';
      if (refuse) this.unavailable.set(key, new StreamUnavailableError(key, restoreError));
      this.onRestoreError(restoreError, key, checkpoint);
      if (refuse) throw this.unavailable.get(key)!;
    } else if (checkpoint !== undefined) {
      if (checkpoint.parts && checkpoint.parts.size > 0) this.restoredParts.set(key, checkpoint.parts);
    }
    this.learners.set(key, learner);
    if (restoreError === undefined && checkpoint !== undefined) this.onRestored?.(key, checkpoint);
    return learner;
  }

  /** Refuses a checkpoint whose parts name no registered part (written by another pipeline layout). */
  private checkParts(checkpoint: StoredCheckpoint, learner: Learner): void {
    if (!checkpoint.parts) return;
    for (const [name, bytes] of checkpoint.parts) {
      const part = this.parts.get(name);
      if (part === undefined) throw new Error(`the checkpoint holds state '${name}' that this pipeline does not keep (another configuration)`);
      part.check(bytes, learner);
    }
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
    return this.evict(key);
  }

  /** Drops every learner. */
  clear(): void {
    for (const key of [...this.learners.keys()]) this.evict(key);
  }
}

function warnRestoreError(error: Error, stream: string): void {
  process.emitWarning(`stream '${stream}': its checkpoint could not be restored (${error.message})`, 'CheckpointWarning');
}
