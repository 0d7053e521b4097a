import { Observable, Subject, type MonoTypeOperatorFunction, type OperatorFunction } from 'rxjs';
import type { DetectorSpec } from '../drift/detector.js';
import { createCheckpointer, type Checkpointer } from './checkpoint.js';
import type { CheckpointMeta, CheckpointStore, StoredCheckpoint } from './checkpoint-store.js';
import { detectDrift, type DriftSignal } from './detect-drift.js';
import { detectInputDrift, type InputStatistic } from './detect-input-drift.js';
import type { HoldoutSpec } from './holdout.js';
import { LearnerPool, type LearnerPoolOptions } from './learner-pool.js';
import type { DriftMarker, Rejection, StreamInput } from './messages.js';
import { normalizeInputs, type NormalizeInputsOptions } from './normalize-inputs.js';
import { PREDICT_THEN_LEARN_PART, predictThenLearn, type PredictThenLearnPart, type StreamMarks } from './predict-then-learn.js';
import { prequential, type PrequentialInput } from './prequential.js';
import { trackRecovery } from './track-recovery.js';
import type { TargetScalingSpec } from './normalize-targets.js';

/** Everything a pipeline emits: predictions, scored ticks, drift markers, Rejections, and the reports. */
export type PipelineOutput = PrequentialInput;

/** The options of every operator the pipeline composes, and what it adds (tick timing, checkpoints). */
export interface PipelineOptions {
  /** The learners; the pipeline creates the one pool that predictThenLearn and the checkpointer share. */
  readonly pool: LearnerPoolOptions;
  /** Adaptive z-scoring of the inputs before everything else (default: off). */
  readonly normalize?: NormalizeInputsOptions | false;
  /** Detectors on an input statistic of each tick, before the learner (default: none). */
  readonly inputDrift?: {
    readonly detectors: readonly DetectorSpec[];
    readonly cooldownTicks?: number;
    readonly maxStreams?: number;
    /** What the detectors see per tick (default 'population-mean'); see detectInputDrift. */
    readonly statistic?: InputStatistic;
  };
  /** predictThenLearn: labels withheld from the learner (default none). */
  readonly holdout?: HoldoutSpec;
  /** predictThenLearn: a label may come up to `maxDelay - 1` ticks late. */
  readonly maxDelay: number;
  /** predictThenLearn and trackRecovery: ticks the frozen shadow predicts after each drift marker (0: no recovery measured). */
  readonly recoveryTicks: number;
  /** predictThenLearn: labels standardized per stream for the learner (default none; see normalize-targets.ts). */
  readonly targetScaling?: TargetScalingSpec;
  readonly referencesDuringHoldout?: 'withheld' | 'seen';
  /** prequential: windowed and EWMA error per stream and track. */
  readonly prequential: {
    readonly window: number;
    readonly ewmaAlpha: number;
    readonly every?: number;
    readonly classification?: boolean;
  };
  /**
   * Detectors on the learner's per-tick error (an empty list: no detection); `signal` says whether they see the
   * error itself or the error over the label variance (detectDrift; default 'error').
   */
  readonly drift: { readonly detectors: readonly DetectorSpec[]; readonly cooldownTicks?: number; readonly signal?: DriftSignal };
  /** trackRecovery: window of E_pre and the recovery meter, and the tolerance of time to recovery. */
  readonly recovery: { readonly window: number; readonly tolerance: number };
  /** Checkpoints of every learner in the pool (default: none). */
  readonly checkpoint?: {
    readonly store: CheckpointStore;
    readonly everyTicks?: number;
    /** Snapshot a stream at least this often while it runs (default 5 s; see createCheckpointer). */
    readonly everySeconds?: number;
    readonly onError?: (error: Error, stream: string) => void;
    readonly onSaved?: (checkpoint: StoredCheckpoint) => void;
    /**
     * Streams that have a checkpoint in the store but are not loaded (`store.list()` at start-up). With it,
     * streams are restored lazily (`prepare`), and a stream past `pool.maxStreams` evicts the least recently
     * used one (checkpointed first) instead of being refused.
     */
    readonly checkpointed?: Iterable<CheckpointMeta>;
  };
  /** predictThenLearn: per stream, the highest seq a crashed previous run predicted (marks replays). */
  readonly replayedUpTo?: (stream: string) => number;
  /** Bound on per-stream state in the operators that take one (default: pool.maxStreams). */
  readonly maxStreams?: number;
  /**
   * Called after each tick or label input has been processed, with the seconds its synchronous processing took
   * through the whole chain (a tick: predict, and learn when it carries its label; a late label: scoring and
   * learning). For `driftline_tick_duration_seconds`; the pipeline itself knows nothing of metrics.
   */
  readonly onTickDuration?: (seconds: number, input: StreamInput) => void;
}

/** A composed pipeline: its operator, the learner pool it shares with the checkpointer, and flush. */
export interface Pipeline {
  /**
   * The whole chain as one operator: [normalizeInputs] -> [detectInputDrift] -> predictThenLearn -> prequential
   * -> detectDrift -> trackRecovery -> [checkpointer]. One subscription at a time (the pool is shared); a second
   * concurrent subscription gets an error notification.
   */
  readonly operator: OperatorFunction<StreamInput | Rejection, PipelineOutput>;
  /** The learners (one per stream key), shared with the checkpointer. Cleared when a run ends. */
  readonly pool: LearnerPool;
  readonly checkpointer?: Checkpointer;
  /**
   * Makes `stream` ready for its next input: undefined when it is (live, new, or restorable at once), else a
   * promise that resolves once its checkpoint has been loaded from the store and offered to the pool (the
   * caller holds the stream's inputs until then). A checkpoint that cannot be loaded rejects with the store's
   * error; the pool then refuses the stream or starts it fresh, by its onBadCheckpoint policy.
   */
  prepare(stream: string): Promise<void> | undefined;
  /** Checkpoints and evicts every live stream idle for at least `idleSeconds`; returns how many it evicted. */
  evictIdle(idleSeconds: number): number;
  /** Where a stream stands for a producer that resumes (live, or from its checkpoint's meta), or undefined. */
  marks(stream: string): StreamMarks | undefined;
  /** Streams evicted so far (checkpointed and dropped from memory). */
  readonly evictions: number;
  /**
   * Checkpoints every learner and waits for the writes. While the run is on, it snapshots the pool now; after the
   * source completed, it waits for the snapshot the pipeline took at completion (the pool is released at the end
   * of a run, so that snapshot is the run's last state). Resolves at once without checkpointing.
   */
  flush(): Promise<void>;
}

/**
 * The stream processing of `driftline run` and `driftline replay --config` as one operator (DESIGN section 1).
 *
 * Detected drift is fed back: detectInputDrift and detectDrift hand each marker to the pipeline's queue instead of
 * emitting it, and the queue is drained into predictThenLearn synchronously before the next input message (and
 * when the source completes). So a marker is never pushed into predictThenLearn while predictThenLearn is still
 * emitting (no re-entrancy), the order is deterministic (a detection on tick k lands before tick k + 1, the first
 * tick after it, as its seq says), and every marker passes predictThenLearn (which forks the frozen shadow) and
 * reaches trackRecovery and the subscriber exactly once. Drift markers that arrive from the source (declared
 * session boundaries) go the whole way in order.
 *
 * When the source completes, the queue is drained, then (with a checkpoint store) every learner is snapshotted
 * before the completion reaches predictThenLearn, whose teardown releases the pool; `flush()` waits for those
 * writes. Bad options throw here; bad input becomes Rejections in the output.
 */
export function createPipeline(options: PipelineOptions): Pipeline {
  if (options == null || typeof options !== 'object') throw new TypeError('createPipeline: options are required');
  if (options.onTickDuration !== undefined && typeof options.onTickDuration !== 'function') {
    throw new TypeError('createPipeline: onTickDuration must be a function');
  }
  const pool = new LearnerPool(options.pool);
  const maxStreams = options.maxStreams ?? pool.maxStreams;
  const ptlMarks = (stream: string) => (pool.part(PREDICT_THEN_LEARN_PART) as PredictThenLearnPart | undefined)?.marks(stream);
  /** Streams whose newest checkpoint is in the store: known for lazy restore and resume marks. */
  const stored = new Map<string, StreamMarks>();
  const lazy = options.checkpoint?.checkpointed !== undefined;
  for (const meta of options.checkpoint?.checkpointed ?? []) stored.set(meta.stream, { seq: meta.lastSeq, pendingLabels: meta.pendingLabels ?? [] });
  const onSaved = options.checkpoint?.onSaved;
  const checkpointer =
    options.checkpoint === undefined
      ? undefined
      : createCheckpointer({
          pool,
          store: options.checkpoint.store,
          ...(options.checkpoint.everyTicks !== undefined ? { everyTicks: options.checkpoint.everyTicks } : {}),
          ...(options.checkpoint.everySeconds !== undefined ? { everySeconds: options.checkpoint.everySeconds } : {}),
          ...(options.checkpoint.onError ? { onError: options.checkpoint.onError } : {}),
          marks: ptlMarks,
          onSaved: (checkpoint) => {
            stored.set(checkpoint.meta.stream, { seq: checkpoint.meta.lastSeq, pendingLabels: checkpoint.meta.pendingLabels ?? [] });
            onSaved?.(checkpoint);
          },
        });
  /** Live streams, least recently used first (a Map keeps insertion order; each input moves its stream last). */
  const lastActive = new Map<string, number>();
  let evictions = 0;
  const evict = (stream: string): void => {
    if (!checkpointer || !pool.has(stream)) return;
    void checkpointer.checkpointNow(stream);
    pool.evict(stream);
    lastActive.delete(stream);
    evictions++;
  };
  /**
   * Before an input: restore an offered checkpoint now (so every operator, the normalizer first, finds its
   * part), or make room by evicting the least recently used stream. A label or marker only brings back a stream
   * that has a checkpoint waiting: one for a stream never seen must not take a learner's slot.
   */
  const admit = (stream: string, kind: string): void => {
    if (pool.has(stream)) {
      lastActive.delete(stream);
      lastActive.set(stream, performance.now());
      return;
    }
    if (kind !== 'tick' && !pool.hasOffer(stream)) return;
    if (lazy && pool.size >= pool.maxStreams && pool.allows(stream) && !pool.isRefused(stream)) {
      const oldest = lastActive.keys().next();
      if (!oldest.done) evict(oldest.value);
    }
    try {
      pool.get(stream);
    } catch {
      // predictThenLearn meets the same refusal and answers it as a Rejection.
      return;
    }
    lastActive.set(stream, performance.now());
  };

  /** The operators of one run, wired to that run's marker queue. */
  const build = (emit: (marker: DriftMarker) => void) => {
    const pre: MonoTypeOperatorFunction<StreamInput | Rejection>[] = [];
    if (options.normalize) pre.push(normalizeInputs({ maxStreams, ...options.normalize, pool }));
    if (options.inputDrift && options.inputDrift.detectors.length > 0) {
      pre.push(detectInputDrift({ maxStreams, ...options.inputDrift, emit, pool }));
    }
    const ptl = predictThenLearn({
      pool: () => pool,
      recoveryTicks: options.recoveryTicks,
      maxDelay: options.maxDelay,
      ...(options.holdout ? { holdout: options.holdout } : {}),
      ...(options.referencesDuringHoldout ? { referencesDuringHoldout: options.referencesDuringHoldout } : {}),
      ...(options.replayedUpTo ? { replayedUpTo: options.replayedUpTo } : {}),
      ...(options.targetScaling ? { targetScaling: options.targetScaling } : {}),
    });
    const post: MonoTypeOperatorFunction<PipelineOutput>[] = [
      prequential({ maxStreams, ...options.prequential, pool }),
    ];
    if (options.drift.detectors.length > 0) {
      post.push(detectDrift({
        detectors: options.drift.detectors,
        maxStreams,
        emit,
        pool,
        ...cooldown(options.drift.cooldownTicks),
        ...(options.drift.signal !== undefined ? { signal: options.drift.signal } : {}),
      }));
    }
    // With no shadow (recoveryTicks 0) there is no recovery to measure.
    if (options.recoveryTicks > 0) post.push(trackRecovery({ recoveryTicks: options.recoveryTicks, maxStreams, ...options.recovery, pool }));
    if (checkpointer) post.push(checkpointer.operator);
    return { pre, ptl, post };
  };
  // Options the operators refuse throw now, not at the first subscription.
  build(() => {});

  let running = false;
  let finalFlush: Promise<void> | undefined;
  const onTickDuration = options.onTickDuration;

  const operator: OperatorFunction<StreamInput | Rejection, PipelineOutput> = (source) =>
    new Observable<PipelineOutput>((subscriber) => {
      if (running) {
        subscriber.error(new Error('createPipeline: the pipeline is already running (its learner pool is shared; create another pipeline)'));
        return undefined;
      }
      running = true;
      finalFlush = undefined;
      const queue: DriftMarker[] = [];
      const { pre, ptl, post } = build((marker) => {
        queue.push(marker);
      });
      const input = new Subject<StreamInput | Rejection>();
      const core = new Subject<StreamInput | Rejection>();

      let draining = false;
      const drain = () => {
        if (draining) return;
        draining = true;
        try {
          // A marker can lead to more markers only through further input, but loop until empty regardless.
          for (let i = 0; i < queue.length; i++) core.next(queue[i]);
          queue.length = 0;
        } finally {
          draining = false;
        }
      };

      const coreOut = (post as OperatorFunction<PipelineOutput, PipelineOutput>[]).reduce<Observable<PipelineOutput>>(
        (o, op) => o.pipe(op),
        core.pipe(ptl),
      );
      const coreSub = coreOut.subscribe({
        next: (message) => subscriber.next(message),
        error: (err) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });

      const preOut = (pre as OperatorFunction<StreamInput | Rejection, StreamInput | Rejection>[]).reduce<Observable<StreamInput | Rejection>>(
        (o, op) => o.pipe(op),
        input,
      );
      const preSub = preOut.subscribe({
        next: (message) => core.next(message),
        error: (err) => core.error(err),
        complete: () => {
          drain();
          // Snapshot while the pool still holds the learners: predictThenLearn releases it on completion.
          if (checkpointer && !subscriber.closed) {
            finalFlush = checkpointer.flush();
            finalFlush.catch(() => {});
          }
          core.complete();
        },
      });

      const sourceSub = source.subscribe({
        next: (message) => {
          if (subscriber.closed) return;
          drain();
          if (message?.kind !== 'rejected' && typeof message?.stream === 'string') admit(message.stream, message.kind);
          if (onTickDuration !== undefined && (message?.kind === 'tick' || message?.kind === 'label')) {
            const started = performance.now();
            input.next(message);
            try {
              onTickDuration((performance.now() - started) / 1000, message);
            } catch (err) {
              // A throwing callback is a programming error: the output errors, as in the operators.
              subscriber.error(err);
            }
          } else {
            input.next(message);
          }
          checkpointer?.settle();
        },
        error: (err) => input.error(err),
        complete: () => {
          drain();
          input.complete();
        },
      });

      return () => {
        sourceSub.unsubscribe();
        preSub.unsubscribe();
        coreSub.unsubscribe();
        queue.length = 0;
        lastActive.clear();
        running = false;
      };
    });

  const store = options.checkpoint?.store;
  return {
    operator,
    pool,
    ...(checkpointer ? { checkpointer } : {}),
    prepare(stream: string): Promise<void> | undefined {
      if (!lazy || store === undefined || checkpointer === undefined) return undefined;
      if (pool.has(stream) || pool.hasOffer(stream) || pool.isRefused(stream) || !pool.allows(stream)) return undefined;
      const unconfirmed = checkpointer.unconfirmed(stream);
      if (unconfirmed !== undefined) {
        pool.offer(unconfirmed);
        return undefined;
      }
      if (!stored.has(stream)) return undefined;
      return store.load(stream).then(
        (checkpoint) => {
          // A newer snapshot may have been handed to the store while this one loaded.
          const newer = checkpointer.unconfirmed(stream);
          if (newer !== undefined) pool.offer(newer);
          else if (checkpoint !== undefined && !pool.has(stream)) pool.offer(checkpoint);
        },
        (err: unknown) => {
          stored.delete(stream);
          const error = err instanceof Error ? err : new Error(String(err));
          if (pool.onBadCheckpoint === 'refuse') pool.refuse(stream, error);
          throw error;
        },
      );
    },
    evictIdle(idleSeconds: number): number {
      const before = evictions;
      const cutoff = performance.now() - idleSeconds * 1000;
      for (const [stream, at] of lastActive) {
        if (at > cutoff) break;
        evict(stream);
      }
      return evictions - before;
    },
    marks(stream: string): StreamMarks | undefined {
      const live = ptlMarks(stream);
      if (live !== undefined) return live;
      // An evicted stream whose checkpoint is still being written stands where that checkpoint does.
      const pending = checkpointer?.unconfirmed(stream)?.meta;
      if (pending !== undefined) return { seq: pending.lastSeq, pendingLabels: pending.pendingLabels ?? [] };
      return stored.get(stream);
    },
    get evictions() {
      return evictions;
    },
    flush(): Promise<void> {
      if (!checkpointer) return Promise.resolve();
      return finalFlush ?? checkpointer.flush();
    },
  };
}

function cooldown(ticks: number | undefined): { cooldownTicks?: number } {
  return ticks === undefined ? {} : { cooldownTicks: ticks };
}
