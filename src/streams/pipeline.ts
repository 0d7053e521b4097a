import { Observable, Subject, type MonoTypeOperatorFunction, type OperatorFunction } from 'rxjs';
import type { DetectorSpec } from '../drift/detector.js';
import { createCheckpointer, type Checkpointer } from './checkpoint.js';
import type { CheckpointStore } from './checkpoint-store.js';
import { detectDrift, type DriftSignal } from './detect-drift.js';
import { detectInputDrift } from './detect-input-drift.js';
import type { HoldoutSpec } from './holdout.js';
import { LearnerPool, type LearnerPoolOptions } from './learner-pool.js';
import type { DriftMarker, Rejection, StreamInput } from './messages.js';
import { normalizeInputs, type NormalizeInputsOptions } from './normalize-inputs.js';
import { predictThenLearn } from './predict-then-learn.js';
import { prequential, type PrequentialInput } from './prequential.js';
import { trackRecovery } from './track-recovery.js';

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
  };
  /** predictThenLearn: labels withheld from the learner (default none). */
  readonly holdout?: HoldoutSpec;
  /** predictThenLearn: a label may come up to `maxDelay - 1` ticks late. */
  readonly maxDelay: number;
  /** predictThenLearn and trackRecovery: ticks the frozen shadow predicts after each drift marker. */
  readonly recoveryTicks: number;
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
    readonly everyTicks: number;
    readonly onError?: (error: Error, stream: string) => void;
  };
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
  const checkpointer =
    options.checkpoint === undefined
      ? undefined
      : createCheckpointer({
          pool,
          store: options.checkpoint.store,
          everyTicks: options.checkpoint.everyTicks,
          ...(options.checkpoint.onError ? { onError: options.checkpoint.onError } : {}),
        });

  /** The operators of one run, wired to that run's marker queue. */
  const build = (emit: (marker: DriftMarker) => void) => {
    const pre: MonoTypeOperatorFunction<StreamInput | Rejection>[] = [];
    if (options.normalize) pre.push(normalizeInputs({ maxStreams, ...options.normalize }));
    if (options.inputDrift && options.inputDrift.detectors.length > 0) {
      pre.push(detectInputDrift({ maxStreams, ...options.inputDrift, emit }));
    }
    const ptl = predictThenLearn({
      pool: () => pool,
      recoveryTicks: options.recoveryTicks,
      maxDelay: options.maxDelay,
      ...(options.holdout ? { holdout: options.holdout } : {}),
      ...(options.referencesDuringHoldout ? { referencesDuringHoldout: options.referencesDuringHoldout } : {}),
    });
    const post: MonoTypeOperatorFunction<PipelineOutput>[] = [
      prequential({ maxStreams, ...options.prequential }),
    ];
    if (options.drift.detectors.length > 0) {
      post.push(detectDrift({
        detectors: options.drift.detectors,
        maxStreams,
        emit,
        ...cooldown(options.drift.cooldownTicks),
        ...(options.drift.signal !== undefined ? { signal: options.drift.signal } : {}),
      }));
    }
    post.push(trackRecovery({ recoveryTicks: options.recoveryTicks, maxStreams, ...options.recovery }));
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
        running = false;
      };
    });

  return {
    operator,
    pool,
    ...(checkpointer ? { checkpointer } : {}),
    flush(): Promise<void> {
      if (!checkpointer) return Promise.resolve();
      return finalFlush ?? checkpointer.flush();
    },
  };
}

function cooldown(ticks: number | undefined): { cooldownTicks?: number } {
  return ticks === undefined ? {} : { cooldownTicks: ticks };
}
