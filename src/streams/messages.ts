/**
 * What flows through the stream operators. Every message names its stream key; per-stream order is the order
 * of `seq`. Adapters produce `StreamInput`s (already decoded and validated against the stream's shape), the
 * operators turn them into `StreamOutput`s, and the metrics and sinks subscribe to those.
 *
 * Float32Arrays in messages are owned by the message: an operator that keeps one beyond the call copies it.
 */

/** One tick: inputs, and the label of this same tick when the frame carries it. */
export interface TickEvent {
  readonly kind: 'tick';
  readonly stream: string;
  /** Per-stream sequence number; strictly increasing within a stream. */
  readonly seq: number;
  /** Event time in seconds on the source's clock. */
  readonly t: number;
  readonly x: Float32Array;
  readonly y?: Float32Array;
  /** performance.now() when the frame entered driftline, for event-to-prediction latency. */
  readonly receivedAt?: number;
}

/** A label that arrives after its tick, in a later frame. */
export interface LabelEvent {
  readonly kind: 'label';
  readonly stream: string;
  /** The seq of the tick it labels. */
  readonly seq: number;
  readonly y: Float32Array;
}

/** A drift event: a session boundary the data declares, or a detection. The tick `seq` is the first after it. */
export interface DriftMarker {
  readonly kind: 'drift';
  readonly stream: string;
  readonly seq: number;
  readonly t: number;
  /** 'session' for a declared boundary, else the detector's name. */
  readonly source: string;
  /** Session name for a declared boundary. */
  readonly session?: string;
}

export type StreamInput = TickEvent | LabelEvent | DriftMarker;

/** The prediction for one tick, made before its label was used. */
export interface Prediction {
  readonly kind: 'prediction';
  readonly stream: string;
  readonly seq: number;
  readonly t: number;
  readonly yhat: Float32Array;
  /** The learner's update count when it predicted. */
  readonly version: number;
  readonly receivedAt?: number;
  readonly predictedAt: number;
  /**
   * True when this tick was predicted before, by a run that crashed after it: the producer re-sent it and the
   * restored learner predicted it again (DESIGN section 6). Absent otherwise.
   */
  readonly replayed?: boolean;
}

/**
 * A tick whose label has arrived, scored test-then-train: the learner's prediction and the reference
 * predictors' predictions were all made at the tick, before the label; `delay` is how many ticks later the
 * label came. `heldOut` ticks were scored but withheld from the learner (holdout blocks).
 */
export interface ScoredTick {
  readonly kind: 'scored';
  readonly stream: string;
  readonly seq: number;
  readonly t: number;
  readonly y: Float32Array;
  readonly yhat: Float32Array;
  /** Persistence: the last label seen when the tick was predicted (NaN before any label). */
  readonly yLast: Float32Array;
  /** The running mean of the labels seen when the tick was predicted (NaN before any label). */
  readonly yMean: Float32Array;
  /** The frozen shadow's prediction while a recovery is being measured. */
  readonly yFrozen?: Float32Array;
  readonly delay: number;
  /**
   * The information age of the references (yLast, yMean): ticks between this tick and the last label they had
   * when it was predicted. It equals `delay` when every label arrives; on held-out ticks it grows, because the
   * references get no label the learner does not get. Absent before any label.
   */
  readonly referenceAge?: number;
  readonly heldOut: boolean;
  readonly version: number;
  /** The label lay far outside the stream's target statistics (learned from all the same; see normalize-targets.ts). */
  readonly labelOutOfRange?: boolean;
}

/** Input the operators refused; the stream goes on. `reason` is a bounded label value for metrics. */
export interface Rejection {
  readonly kind: 'rejected';
  readonly stream?: string;
  readonly seq?: number;
  readonly reason: RejectionReason;
  readonly message: string;
}

/** Every reason a message can be refused for: a closed set, so it is a bounded metric label. */
export const REJECTION_REASONS = [
  'malformed',
  'dimension',
  'non-finite',
  'oversized',
  'unknown-stream',
  'too-many-streams',
  'duplicate',
  'out-of-order',
  'label-unknown-tick',
  'label-too-late',
  'label-duplicate',
  'unauthorized',
  /** The stream's checkpoint could not be restored and the service is configured to refuse it (onBadCheckpoint). */
  'stream-unavailable',
] as const;

export type RejectionReason = (typeof REJECTION_REASONS)[number];

/** A Rejection, with `stream` and `seq` present only when known. */
export function rejection(reason: RejectionReason, message: string, stream?: string, seq?: number): Rejection {
  const r: { -readonly [K in keyof Rejection]: Rejection[K] } = { kind: 'rejected', reason, message };
  if (stream !== undefined) r.stream = stream;
  if (seq !== undefined) r.seq = seq;
  return r;
}

export type StreamOutput = Prediction | ScoredTick | DriftMarker | Rejection;

/** Which predictor an error figure belongs to: the learner or one of the two reference predictors. */
export type Predictor = 'learner' | 'last-label' | 'running-mean';

/** Error figures of one predictor over the window and as an EWMA. */
export interface ErrorFigures {
  readonly mse: number;
  readonly mseEwma: number;
  /** R2 per output over the window (1 - SSE / SST of the labels in the window). */
  readonly r2: readonly number[];
  /** Classification accuracy over the window, for class outputs (argmax), else undefined. */
  readonly accuracy?: number;
}

/**
 * Prequential error of one stream after a scored tick, for every predictor, on the same ticks with the same
 * label delay. `heldOut` reports cover only the holdout ticks (labels withheld from the learner): the honest
 * decoding measure. `skill` = 1 - mse(learner) / mse(reference).
 */
export interface PrequentialReport {
  readonly kind: 'prequential';
  readonly stream: string;
  readonly seq: number;
  readonly labelDelay: number;
  readonly heldOut: boolean;
  readonly window: number;
  readonly count: number;
  readonly figures: Readonly<Record<Predictor, ErrorFigures>>;
  readonly skillVsLastLabel: number;
  readonly skillVsRunningMean: number;
}

/**
 * Recovery after one drift event (DESIGN section 5) on one track, reported when its measurement window closes.
 * `heldOut` reports cover only the holdout ticks (labels withheld from the learner): E_pre, E_frozen and E_adapt
 * all from those ticks, the honest decoding measure; the others cover only the learning ticks. A drift gets one
 * report per track that had ticks in its measurement, the learning track's first.
 */
export interface RecoveryReport {
  readonly kind: 'recovery';
  readonly stream: string;
  /** The first tick after the drift, and where the drift came from. */
  readonly seq: number;
  readonly source: string;
  readonly heldOut: boolean;
  readonly ePre: number;
  readonly eFrozen: number;
  readonly eAdapt: number;
  /** (E_frozen - E_adapt) / (E_frozen - E_pre); null when the drift did not hurt (E_frozen <= E_pre). */
  readonly recovery: number | null;
  readonly residual: number;
  /**
   * Ticks and seconds from the drift until the track's windowed error came within tolerance of its E_pre (ticks
   * counted over both tracks, as the stream ran); null: never.
   */
  readonly ticksToRecovery: number | null;
  readonly secondsToRecovery: number | null;
}
