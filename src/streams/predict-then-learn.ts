import type { OperatorFunction } from 'rxjs';
import { InvalidInputError, InvalidLabelError } from '../learners/errors.js';
import { DEFAULT_MAX_LABEL_DELAY, type Learner } from '../learners/learner.js';
import { holdoutSchedule, validateHoldoutSpec, type HoldoutSchedule, type HoldoutSpec } from './holdout.js';
import { rejection } from './messages.js';
import { isKeyed, SEQ_TOO_LATE, SEQ_UNKNOWN, SeqRing } from './join-labels.js';
import { LearnerPool, StreamUnavailableError, TooManyStreamsError, UnknownStreamError, type LearnerPoolOptions, type StreamStatePart } from './learner-pool.js';
import { StateReader, StateWriter, StreamStateError } from './state-codec.js';
import { TargetScaler, validateTargetScaling, type TargetScalingSpec } from './normalize-targets.js';

/** Format 2 adds the target statistics, the holdout's session count and the references' last label seq. */
const STREAM_STATE_FORMAT = 2;
import type {
  DriftMarker, LabelEvent, Prediction, Rejection, RejectionReason, ScoredTick, StreamInput, StreamOutput, TickEvent,
} from './messages.js';
import { operate } from './operate.js';

export interface PredictThenLearnOptions {
  /**
   * The learners: pool options (a new pool per subscription), or a factory the operator calls once per
   * subscription. Either way the pool belongs to that subscription and is cleared when it ends; a factory lets a
   * caller (a test, the checkpoint operator) keep a reference to the pool and reach its learners.
   */
  readonly pool: LearnerPoolOptions | (() => LearnerPool);
  /** Labels withheld from the learner (default: none). One schedule per stream. */
  readonly holdout?: HoldoutSpec;
  /** How many ticks after a drift marker the frozen shadow predicts (0: no shadow). */
  readonly recoveryTicks: number;
  /**
   * A label may come up to `maxDelay - 1` ticks after its tick. Capped per stream at the learner's own
   * window (spec.maxLabelDelay, default 32), so that every label scored is also one the learner can learn from.
   */
  readonly maxDelay: number;
  /**
   * Whether the reference predictors (last label, running mean) see labels of held-out ticks. Default
   * 'withheld': they get exactly the labels the learner gets, so on holdout ticks every predictor faces the same
   * information. 'seen' feeds them every label that arrives.
   */
  readonly referencesDuringHoldout?: 'withheld' | 'seen';
  /**
   * Per stream, the highest seq a previous run predicted before it stopped (a crash can leave it above the
   * restored checkpoint). A tick at or below it is predicted again for a producer that re-sent it, and its
   * Prediction is marked `replayed`. Default: nothing is a replay.
   */
  readonly replayedUpTo?: (stream: string) => number;
  /**
   * Labels standardized per stream for the learner, predictions scaled back to the user's units (default
   * none; see normalize-targets.ts). Scored ticks, predictions and metrics stay in the user's units.
   */
  readonly targetScaling?: TargetScalingSpec;
}

/** Name of predictThenLearn's per-stream state in a checkpoint. */
export const PREDICT_THEN_LEARN_PART = 'predict-then-learn';

/** Where a stream stands, for the resume protocol: what a producer must send again. */
export interface StreamMarks {
  /** The highest tick seq processed (-1 before any). */
  readonly seq: number;
  /** Ticks at or below `seq` whose label has not come yet (their label frames must still be sent). */
  readonly pendingLabels: readonly number[];
}

/** predictThenLearn's state part, which also answers where each live stream stands. */
export interface PredictThenLearnPart extends StreamStatePart {
  marks(stream: string): StreamMarks | undefined;
}

/**
 * Test-then-train per stream (DESIGN section 1). On a tick: the learner predicts, a `Prediction` is emitted
 * (yhat copied, version = the learner's update count, predictedAt = performance.now()), and what scoring needs
 * is kept in a bounded ring (the yhat, the reference predictions of that moment, the frozen shadow's prediction,
 * the learner's tick index, the holdout decision for the tick's t). If the tick carries y, the label is handled
 * right after. On a label (same frame or later): a `ScoredTick` is emitted (version: the one that made the
 * prediction; delay: ticks of the stream between the tick and the label's arrival), then the learner learns
 * from it unless the tick is held out, then the reference predictors take the label (they update on arrival,
 * so they face the same label delay as the learner). On a drift marker: it passes on, a frozen fork of the
 * learner predicts the next `recoveryTicks` ticks (ScoredTick.yFrozen), and a 'session' marker restarts the
 * holdout schedule's session and tells the learner (`sessionStarted`, where it has one).
 *
 * Bad input never errors the stream: pool refusals ('too-many-streams', 'unknown-stream'), learner input and
 * label errors ('dimension', 'non-finite', 'malformed'), duplicate/out-of-order ticks, and unknown, late or
 * duplicate labels become `Rejection`s, with no learner state touched. Upstream Rejections pass through.
 * Programming errors (a spec function or pool factory that throws, an invalid learner spec) are error
 * notifications. Configuration errors throw when the operator is created.
 */
export function predictThenLearn(options: PredictThenLearnOptions): OperatorFunction<StreamInput | Rejection, StreamOutput> {
  if (options == null || typeof options !== 'object') throw new TypeError('predictThenLearn: options are required');
  const { pool: poolSource, recoveryTicks, maxDelay } = options;
  if (!Number.isInteger(maxDelay) || maxDelay < 1) {
    throw new RangeError(`predictThenLearn: maxDelay must be a positive integer, got ${String(maxDelay)}`);
  }
  if (!Number.isInteger(recoveryTicks) || recoveryTicks < 0) {
    throw new RangeError(`predictThenLearn: recoveryTicks must be a non-negative integer, got ${String(recoveryTicks)}`);
  }
  if (poolSource == null || (typeof poolSource !== 'object' && typeof poolSource !== 'function')) {
    throw new TypeError('predictThenLearn: pool must be pool options or a pool factory');
  }
  const holdout: HoldoutSpec = validateHoldoutSpec(options.holdout ?? { kind: 'none' });
  const targetScaling: TargetScalingSpec = validateTargetScaling(options.targetScaling ?? { kind: 'none' });
  const referencesSeeHeldOut = (options.referencesDuringHoldout ?? 'withheld') === 'seen';
  const replayedUpTo = options.replayedUpTo;
  if (replayedUpTo !== undefined && typeof replayedUpTo !== 'function') throw new TypeError('predictThenLearn: replayedUpTo must be a function');

  return operate<StreamInput | Rejection, StreamOutput>((subscriber) => {
    const pool = typeof poolSource === 'function' ? poolSource() : new LearnerPool(poolSource);
    if (!(pool instanceof LearnerPool)) throw new TypeError('predictThenLearn: the pool factory must return a LearnerPool');
    const streams = new Map<string, StreamState>();
    const reject = (reason: RejectionReason, message: string, stream?: string, seq?: number) =>
      subscriber.next(rejection(reason, message, stream, seq));
    const live = (stream: string): StreamState | undefined => {
      const s = streams.get(stream);
      return s && pool.peek(stream) === s.learner ? s : undefined;
    };
    const part: PredictThenLearnPart = {
      name: PREDICT_THEN_LEARN_PART,
      save: (stream) => live(stream)?.save(),
      drop: (stream) => void streams.delete(stream),
      check: (bytes, learner) => new StreamState(learner, maxDelay, holdoutSchedule(holdout), targetScaling).load(bytes),
      marks: (stream) => {
        const s = live(stream);
        if (s === undefined) return undefined;
        return { seq: s.ring.count === 0 ? -1 : s.ring.lastSeq, pendingLabels: s.ring.unlabelled() };
      },
    };
    const unregister = pool.registerPart(part);

    /** The stream's state, created with its learner on first sight; undefined after a Rejection. */
    const stateOf = (stream: string, seq: number): StreamState | undefined => {
      const found = streams.get(stream);
      if (found && pool.peek(stream) === found.learner) return found;
      let learner: Learner;
      try {
        learner = pool.get(stream);
      } catch (err) {
        if (err instanceof TooManyStreamsError) return void reject('too-many-streams', err.message, stream, seq);
        if (err instanceof UnknownStreamError) return void reject('unknown-stream', err.message, stream, seq);
        if (err instanceof StreamUnavailableError) return void reject('stream-unavailable', err.message, stream, seq);
        throw err;
      }
      const state = new StreamState(learner, maxDelay, holdoutSchedule(holdout), targetScaling);
      const restored = pool.takeRestoredPart(stream, PREDICT_THEN_LEARN_PART);
      if (restored !== undefined) state.load(restored);
      state.replayUpTo = replayedUpTo?.(stream) ?? -1;
      streams.set(stream, state);
      return state;
    };

    const onTick = (tick: TickEvent) => {
      if (typeof tick.t !== 'number' || !Number.isFinite(tick.t)) {
        return reject('malformed', `tick ${tick.seq} of stream '${tick.stream}' has no finite t`, tick.stream, tick.seq);
      }
      const s = stateOf(tick.stream, tick.seq);
      if (!s) return;
      let problem = s.ring.checkTick(tick.seq);
      // A tick re-sent after a reconnect or a restart is one this stream has already learned from: a duplicate.
      if (problem === 'out-of-order' && s.ring.locate(tick.seq) >= 0) problem = 'duplicate';
      if (problem) {
        const what = problem === 'duplicate' ? 'was already processed (at or below the stream\'s high-water mark)' : `is not after the last tick ${s.ring.lastSeq}`;
        return reject(problem, `tick ${tick.seq} of stream '${tick.stream}' ${what}`, tick.stream, tick.seq);
      }
      let yhat: Float32Array;
      try {
        yhat = s.learner.predict(tick.x);
      } catch (err) {
        if (err instanceof InvalidInputError) {
          return reject(err.problem === 'not-float32' ? 'malformed' : err.problem, `tick ${tick.seq} of stream '${tick.stream}': ${err.message}`, tick.stream, tick.seq);
        }
        throw err;
      }
      const index = s.ring.push(tick.seq);
      const slot = s.ring.slotOf(index);
      const out = s.out;
      const at = slot * out;
      s.yhat.set(yhat, at);
      s.targets.toUser(s.yhat, at);
      s.yLast.set(s.lastLabel, at);
      s.referenceAge[slot] = s.lastLabelSeq < 0 ? NaN : tick.seq - s.lastLabelSeq;
      for (let i = 0; i < out; i++) s.yMean[at + i] = s.labelCount > 0 ? s.labelMean[i] : NaN;
      s.learnerTick[slot] = s.learner.tick;
      s.t[slot] = tick.t;
      s.version[slot] = s.learner.version;
      s.heldOut[slot] = s.holdout.isHeldOut(tick.t) ? 1 : 0;
      if (s.shadow !== null) {
        s.yFrozen.set(s.shadow.predict(tick.x), at);
        s.shadowTargets.toUser(s.yFrozen, at);
        s.hasFrozen[slot] = 1;
        if (--s.shadowTicksLeft <= 0) s.shadow = null;
      } else {
        s.hasFrozen[slot] = 0;
      }
      const prediction: Prediction = {
        kind: 'prediction',
        stream: tick.stream,
        seq: tick.seq,
        t: tick.t,
        yhat: s.yhat.slice(at, at + out),
        version: s.version[slot],
        ...(tick.receivedAt !== undefined ? { receivedAt: tick.receivedAt } : {}),
        predictedAt: performance.now(),
        ...(tick.seq <= s.replayUpTo ? { replayed: true } : {}),
      };
      subscriber.next(prediction);
      if (tick.y !== undefined) onLabelOf(s, tick.stream, tick.seq, index, tick.y);
    };

    const onLabel = (label: LabelEvent) => {
      // A stream just restored (its first input after a restart or an eviction may be a re-sent late label) has a
      // learner in the pool but no state here yet: create it from the checkpoint's part.
      const s = live(label.stream) ?? (pool.has(label.stream) ? stateOf(label.stream, label.seq) : undefined);
      if (!s) {
        if (!pool.allows(label.stream)) {
          return reject('unknown-stream', `stream '${label.stream}' refused: it is not in the list of allowed streams`, label.stream, label.seq);
        }
        return reject('label-unknown-tick', `label for tick ${label.seq} of stream '${label.stream}', which was never seen`, label.stream, label.seq);
      }
      const index = s.ring.locate(label.seq);
      if (index === SEQ_UNKNOWN) {
        return reject('label-unknown-tick', `label for tick ${label.seq} of stream '${label.stream}', which was never seen`, label.stream, label.seq);
      }
      if (index === SEQ_TOO_LATE) {
        return reject('label-too-late', `label for tick ${label.seq} of stream '${label.stream}' came more than ${s.ring.capacity - 1} ticks late`, label.stream, label.seq);
      }
      onLabelOf(s, label.stream, label.seq, index, label.y);
    };

    const onLabelOf = (s: StreamState, stream: string, seq: number, index: number, y: ArrayLike<number>) => {
      const out = s.out;
      if (y == null || typeof y !== 'object' || typeof y.length !== 'number') {
        return reject('malformed', `label for tick ${seq} of stream '${stream}' is not an array of numbers`, stream, seq);
      }
      if (y.length !== out) {
        return reject('dimension', `label for tick ${seq} of stream '${stream}' has ${y.length} values, expected ${out}`, stream, seq);
      }
      for (let i = 0; i < out; i++) {
        const v = y[i];
        if (typeof v !== 'number' || !Number.isFinite(v)) {
          return reject('non-finite', `label for tick ${seq} of stream '${stream}': label[${i}] is ${String(v)}, not a finite number`, stream, seq);
        }
      }
      const slot = s.ring.slotOf(index);
      if (s.ring.labelled[slot]) {
        return reject('label-duplicate', `tick ${seq} of stream '${stream}' already has a label`, stream, seq);
      }
      s.ring.labelled[slot] = 1;
      const at = slot * out;
      const heldOut = s.heldOut[slot] === 1;
      const labelOutOfRange = heldOut ? false : s.targets.observe(y);
      const age = s.referenceAge[slot];
      const scored: ScoredTick = {
        kind: 'scored',
        stream,
        seq,
        t: s.t[slot],
        y: Float32Array.from(y),
        yhat: s.yhat.slice(at, at + out),
        yLast: s.yLast.slice(at, at + out),
        yMean: s.yMean.slice(at, at + out),
        ...(s.hasFrozen[slot] ? { yFrozen: s.yFrozen.slice(at, at + out) } : {}),
        delay: s.ring.delayOf(index),
        ...(Number.isNaN(age) ? {} : { referenceAge: age }),
        heldOut,
        version: s.version[slot],
        ...(labelOutOfRange ? { labelOutOfRange } : {}),
      };
      subscriber.next(scored);
      if (!heldOut) {
        try {
          s.learner.learn(s.targets.toLearner(y), s.learnerTick[slot]);
        } catch (err) {
          if (!(err instanceof InvalidLabelError) || err.problem === 'frozen') throw err;
          const reason: RejectionReason =
            err.problem === 'future-tick' ? 'label-unknown-tick'
            : err.problem === 'duplicate' ? 'label-duplicate'
            : err.problem === 'not-float32' ? 'malformed'
            : err.problem;
          return reject(reason, `label for tick ${seq} of stream '${stream}': ${err.message}`, stream, seq);
        }
      }
      if (!heldOut || referencesSeeHeldOut) s.takeLabel(y, seq);
    };

    const onDrift = (marker: DriftMarker) => {
      const s = stateOf(marker.stream, marker.seq);
      if (!s) return;
      if (marker.source === 'session') {
        // A declared boundary names the first tick of the new session: it must come before that tick, once.
        if (marker.seq === s.lastSessionSeq) {
          return reject('duplicate', `session boundary at seq ${marker.seq} of stream '${marker.stream}' was already declared`, marker.stream, marker.seq);
        }
        if (s.ring.count > 0 && marker.seq <= s.ring.lastSeq) {
          return reject('out-of-order', `session boundary at seq ${marker.seq} of stream '${marker.stream}' comes after tick ${s.ring.lastSeq}; it must name the next tick`, marker.stream, marker.seq);
        }
        s.lastSessionSeq = marker.seq;
        s.holdout.sessionStarted(marker.t);
        // A learner with per-session state (a ridge decoder that recalibrates, a Kalman filter's posterior) hears of
        // the boundary before the frozen shadow is forked, so the shadow is the decoder as it enters the session.
        s.learner.sessionStarted?.();
      }
      if (recoveryTicks > 0) {
        s.shadow = s.learner.fork({ frozen: true });
        s.shadowTargets.copyFrom(s.targets);
        s.shadowTicksLeft = recoveryTicks;
      }
      subscriber.next(marker);
    };

    return {
      next(message) {
        if (message?.kind === 'rejected') return subscriber.next(message);
        if (!isKeyed(message)) return reject('malformed', 'message without a string stream key and a finite seq');
        const keyed: { kind: string; stream: string; seq: number } = message;
        switch (keyed.kind) {
          case 'tick':
            return onTick(message as TickEvent);
          case 'label':
            return onLabel(message as LabelEvent);
          case 'drift':
            return onDrift(message as DriftMarker);
          default:
            return reject('malformed', `unknown message kind '${String(keyed.kind)}'`, keyed.stream, keyed.seq);
        }
      },
      cleanup: () => {
        streams.clear();
        pool.clear();
        unregister();
      },
    };
  });
}

/** Per-stream scoring state: preallocated rings of the last `capacity` ticks, reference predictors, shadow. */
class StreamState {
  readonly ring: SeqRing;
  readonly out: number;
  readonly learnerTick: Float64Array;
  readonly t: Float64Array;
  readonly version: Float64Array;
  readonly heldOut: Uint8Array;
  readonly hasFrozen: Uint8Array;
  readonly yhat: Float32Array;
  readonly yLast: Float32Array;
  readonly yMean: Float32Array;
  readonly yFrozen: Float32Array;
  /** Ticks between each tick and the last label the references had when it was predicted (NaN before any). */
  readonly referenceAge: Float64Array;
  /** Seq of the last label the references took (-1 before any). */
  lastLabelSeq = -1;
  readonly targets: TargetScaler;
  /** The target statistics the frozen shadow's model was trained with. */
  readonly shadowTargets: TargetScaler;
  /** The last label seen (NaN before any). */
  readonly lastLabel: Float32Array;
  readonly labelMean: Float64Array;
  labelCount = 0;
  shadow: Learner | null = null;
  shadowTicksLeft = 0;
  /** Ticks at or below this seq were predicted by a previous run (their predictions are marked replayed). */
  replayUpTo = -1;
  /** Seq of the last declared session boundary (-1 before any). */
  lastSessionSeq = -1;

  constructor(readonly learner: Learner, maxDelay: number, readonly holdout: HoldoutSchedule, targetScaling: TargetScalingSpec) {
    const capacity = Math.min(maxDelay, learner.spec.maxLabelDelay ?? DEFAULT_MAX_LABEL_DELAY);
    const out = learner.spec.outputSize;
    this.ring = new SeqRing(capacity);
    this.out = out;
    this.learnerTick = new Float64Array(capacity);
    this.t = new Float64Array(capacity);
    this.version = new Float64Array(capacity);
    this.heldOut = new Uint8Array(capacity);
    this.hasFrozen = new Uint8Array(capacity);
    this.yhat = new Float32Array(capacity * out);
    this.yLast = new Float32Array(capacity * out);
    this.yMean = new Float32Array(capacity * out);
    this.yFrozen = new Float32Array(capacity * out);
    this.referenceAge = new Float64Array(capacity);
    this.targets = new TargetScaler(targetScaling, out);
    this.shadowTargets = new TargetScaler(targetScaling, out);
    this.lastLabel = new Float32Array(out).fill(NaN);
    this.labelMean = new Float64Array(out);
  }

  /**
   * Everything a restored stream needs to go on exactly: the ring and what scoring keeps per tick, the
   * references and the holdout schedule. The frozen shadow is not kept: a recovery measurement ends at a restart.
   */
  save(): Uint8Array {
    const w = new StateWriter().f64(STREAM_STATE_FORMAT);
    this.ring.save(w);
    w.array(this.learnerTick).array(this.t).array(this.version).array(this.heldOut);
    w.array(this.yhat).array(this.yLast).array(this.yMean);
    w.array(this.lastLabel).array(this.labelMean).f64(this.labelCount).f64(this.holdout.origin).f64(this.lastSessionSeq);
    w.f64(this.holdout.session).f64(this.lastLabelSeq).array(this.referenceAge).array(this.targets.save());
    return w.bytes();
  }

  load(bytes: Uint8Array): void {
    const r = new StateReader(bytes, 'predict-then-learn state');
    const format = r.f64();
    if (format !== 1 && format !== STREAM_STATE_FORMAT) {
      throw new StreamStateError(`predict-then-learn state format ${format}, this build reads 1 and ${STREAM_STATE_FORMAT}`);
    }
    this.ring.load(r);
    r.arrayInto(this.learnerTick);
    r.arrayInto(this.t);
    r.arrayInto(this.version);
    r.arrayInto(this.heldOut);
    r.arrayInto(this.yhat);
    r.arrayInto(this.yLast);
    r.arrayInto(this.yMean);
    r.arrayInto(this.lastLabel);
    r.arrayInto(this.labelMean);
    this.labelCount = r.f64();
    this.holdout.origin = r.f64();
    this.lastSessionSeq = r.f64();
    if (format >= 2) {
      this.holdout.session = r.f64();
      this.lastLabelSeq = r.f64();
      r.arrayInto(this.referenceAge);
      const targets = new Float64Array(TargetScaler.savedFloats(this.out));
      r.arrayInto(targets);
      this.targets.load(targets);
    } else {
      // Format 1 predates these: a stream restored from it starts them afresh.
      this.holdout.session = 0;
      this.lastLabelSeq = -1;
      this.referenceAge.fill(NaN);
    }
    r.end();
    this.hasFrozen.fill(0);
  }

  /** The reference predictors take a label that has arrived. */
  takeLabel(y: ArrayLike<number>, seq: number): void {
    this.lastLabelSeq = seq;
    const n = ++this.labelCount;
    for (let i = 0; i < this.out; i++) {
      this.lastLabel[i] = y[i];
      this.labelMean[i] += (y[i] - this.labelMean[i]) / n;
    }
  }
}
