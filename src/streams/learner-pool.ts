import { createLearner, type Learner, type LearnerOptions, type LearnerSpec } from '../learners/learner.js';

/**
 * One learner per stream key, created from a spec the first time the key is seen. The pool is bounded: past
 * `maxStreams` keys `get` throws a `TooManyStreamsError`, and with an allowlist a key outside it throws an
 * `UnknownStreamError`. Both are typed, non-retriable errors the stream operators turn into `Rejection`s; an
 * error thrown by a spec function (or by `createLearner` for a bad spec) is a programming error and propagates.
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
}

export class LearnerPool {
  readonly maxStreams: number;
  private readonly spec: LearnerSpecSource;
  private readonly allowed: ReadonlySet<string> | undefined;
  private readonly learnerOptions: LearnerOptions | undefined;
  private readonly learners = new Map<string, Learner>();

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
  }

  /** The learner of `key`, created on first sight. Throws UnknownStreamError / TooManyStreamsError. */
  get(key: string): Learner {
    const found = this.learners.get(key);
    if (found) return found;
    if (!this.allows(key)) throw new UnknownStreamError(key);
    if (this.learners.size >= this.maxStreams) throw new TooManyStreamsError(key, this.maxStreams);
    const spec = typeof this.spec === 'function' ? this.spec(key) : this.spec;
    const learner = createLearner(spec, this.learnerOptions);
    this.learners.set(key, learner);
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
}

export function createLearnerPool(options: LearnerPoolOptions): LearnerPool {
  return new LearnerPool(options);
}
