/**
 * driftline's metric definitions (DESIGN section 5) on an injected prom-client Registry, fed from the messages
 * the stream operators emit. Prometheus conventions: base units (seconds, bytes), `_total` on counters, and
 * bounded label values: the `stream` label is capped at `maxStreams` distinct values (later streams share
 * '_other'), the free-form `source` and `detector` labels at `maxSources`, `reason` is the closed
 * RejectionReason set, `defect` the closed QUARANTINE_DEFECTS set, `phase` is 'cold' or 'steady', and R2 is
 * exported per output with an `output` label capped at `maxOutputs`. `removeStream` takes an evicted stream's
 * series out of every per-stream metric and frees its label slot.
 *
 * Non-finite numbers never reach prom-client (a NaN poisons a counter or histogram sum for good): they are
 * dropped and counted in `driftline_metrics_dropped_non_finite_total{metric}`.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { TalliedHistogram } from './tallied-histogram.js';
import type {
  DriftMarker,
  ErrorFigures,
  Predictor,
  PrequentialReport,
  RecoveryReport,
  RejectionReason,
  StreamOutput,
} from '../streams/messages.js';
import { REJECTION_REASONS } from '../streams/messages.js';
import { calibrationsSoFar } from '../drift/calibration-tally.js';

export interface DriftlineMetricsOptions {
  /** Distinct `stream` label values kept; streams seen after the cap is reached are labelled '_other'. */
  readonly maxStreams?: number;
  /** Distinct `source` (events) and `detector` (drift) label values kept each; later ones become '_other'. */
  readonly maxSources?: number;
  /** R2 is exported for outputs 0 .. maxOutputs-1 only (label `output`). */
  readonly maxOutputs?: number;
  /** Wall clock in milliseconds since the Unix epoch, for `driftline_last_drift_timestamp_seconds`. */
  readonly now?: () => number;
  /** Monotonic clock in milliseconds, for the cold-start phase; default performance.now. */
  readonly monotonicNow?: () => number;
  /**
   * Seconds after construction (or markStarted()) during which event-to-prediction latencies are labelled
   * phase="cold": JIT warm-up, WASM instantiation and checkpoint restores would otherwise hide in the steady
   * figure. Default 3.
   */
  readonly coldStartSeconds?: number;
  /**
   * Where `driftline_event_to_prediction_seconds` is measured: 'pipeline' (default) from each Prediction that
   * observe() sees, 'send' only through recordEventToPrediction() when the prediction goes out to subscribers
   * (observe() then skips it, so no latency is counted twice).
   */
  readonly eventToPredictionAt?: 'pipeline' | 'send';
  /** Running total of messages the WebSocket server skipped for slow subscribers, read at scrape time. */
  readonly droppedForSlowSubscribers?: () => number;
}

/** The label value that stands for every value past a cap. */
export const OTHER_LABEL = '_other';

export const DEFAULT_MAX_STREAMS = 1000;
export const DEFAULT_MAX_SOURCES = 32;
export const DEFAULT_MAX_OUTPUTS = 32;

/** Seconds; a tick (predict + learn) runs in microseconds to milliseconds. */
export const TICK_DURATION_BUCKETS = [
  1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25,
];
/** Seconds from a frame entering driftline to its prediction. */
export const EVENT_TO_PREDICTION_BUCKETS = [
  1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
/** Seconds from a drift until the windowed error is back within tolerance of its pre-drift level. */
export const TIME_TO_RECOVERY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Ticks between a tick and the arrival of its label. */
export const LABEL_LAG_BUCKETS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000];
/** Seconds to restore one stream's learner from its checkpoint. */
export const STREAM_RESTORE_BUCKETS = [1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** Ticks a restored stream lost: processed by the previous run after the checkpoint it was restored from. */
export const ROLLBACK_TICKS_BUCKETS = [0, 1, 10, 100, 1000, 10000, 100000];

/** Why a checkpoint file was quarantined (the `defect` label); anything else is counted as '_other'. */
export const QUARANTINE_DEFECTS = [
  'truncated',
  'bad-magic',
  'unsupported-format',
  'crc-mismatch',
  'bad-meta',
  'misplaced',
  'unreadable',
  'foreign-spec',
] as const;
export type QuarantineDefect = (typeof QUARANTINE_DEFECTS)[number];
const KNOWN_QUARANTINE_DEFECTS: ReadonlySet<string> = new Set<string>(QUARANTINE_DEFECTS);

export const DEFAULT_COLD_START_SECONDS = 3;

/** Shared label sets, so that a per-event observation allocates none. */
const COLD_PHASE = Object.freeze({ phase: 'cold' });
const STEADY_PHASE = Object.freeze({ phase: 'steady' });

const KNOWN_REJECTION_REASONS: ReadonlySet<string> = new Set<string>(REJECTION_REASONS);

const PREDICTORS: readonly Predictor[] = ['learner', 'last-label', 'running-mean'];
/** Every `metric` label value of driftline_prequential_error that carries no `output` label. */
const PLAIN_ERROR_METRICS = ['mse', 'mse_ewma', 'accuracy'] as const;
const HELD_OUT = ['false', 'true'] as const;
const REFERENCES = ['last-label', 'running-mean'] as const;

/** Keeps at most `max` distinct values; every later value maps to '_other'. */
class CappedLabel {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}
  map(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return OTHER_LABEL;
    this.seen.add(value);
    return value;
  }
  get size(): number {
    return this.seen.size;
  }
  has(value: string): boolean {
    return this.seen.has(value);
  }
  /** Frees a value's slot, so a stream that comes later gets its own label again. */
  release(value: string): void {
    this.seen.delete(value);
  }
  values(): IterableIterator<string> {
    return this.seen.values();
  }
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  return value;
}

export class DriftlineMetrics {
  readonly eventsTotal: Counter<'stream' | 'source'>;
  readonly eventsRejectedTotal: Counter<'reason'>;
  readonly tickDurationSeconds: TalliedHistogram;
  readonly eventToPredictionSeconds: TalliedHistogram<'phase'>;
  readonly prequentialError: Gauge<'stream' | 'predictor' | 'metric' | 'held_out' | 'output'>;
  readonly prequentialLabelDelayTicks: Gauge<'stream' | 'held_out'>;
  readonly prequentialSkill: Gauge<'stream' | 'reference' | 'held_out'>;
  readonly driftDetectionsTotal: Counter<'stream' | 'detector'>;
  readonly lastDriftTimestampSeconds: Gauge<'stream'>;
  readonly recoveryRatio: Gauge<'stream' | 'held_out'>;
  readonly recoveryResidual: Gauge<'stream' | 'held_out'>;
  readonly timeToRecoverySeconds: Histogram<'held_out'>;
  readonly learnerStateBytes: Gauge<'stream'>;
  readonly learnerStateBytesTotal: Gauge<string>;
  readonly labelLagTicks: TalliedHistogram;
  readonly updatesTotal: Counter<'stream'>;
  readonly labelsOutOfRangeTotal: Counter<'stream'>;
  readonly sessionsTotal: Counter<'stream'>;
  readonly streams: Gauge<string>;
  readonly droppedNonFiniteTotal: Counter<'metric'>;
  readonly subscriberMessagesDroppedTotal: Counter<string>;
  readonly streamsEvictedTotal: Counter<string>;
  readonly shardRestartsTotal: Counter<string>;
  readonly streamsRestoredTotal: Counter<string>;
  readonly streamRestoreSeconds: Histogram<string>;
  readonly assignmentToFirstPredictionSeconds: Histogram<string>;
  readonly checkpointsQuarantinedTotal: Counter<'defect'>;
  readonly checkpointRollbackTicks: Histogram<string>;
  readonly ticksReplayedTotal: Counter<string>;
  readonly detectorCalibrationsTotal: Counter<string>;
  readonly detectorCalibrationSecondsTotal: Counter<string>;

  private readonly streamLabels: CappedLabel;
  /**
   * Per-event counts and the latest prequential report per stream label and track, applied to their metrics at
   * scrape time (each metric's collect): prom-client hashes a label set on every update, which cost more per event
   * than the prequential scoring itself (docs/performance.md). A scrape sees the same values as before.
   */
  private readonly pendingEvents = new Map<string, Map<string, number>>();
  private readonly pendingUpdates = new Map<string, number>();
  /** By track (index 0: learning ticks, 1: held out), then stream label. */
  private readonly pendingPrequential = [new Map<string, PrequentialReport>(), new Map<string, PrequentialReport>()] as const;
  private readonly sourceLabels: CappedLabel;
  private readonly detectorLabels: CappedLabel;
  private readonly maxOutputs: number;
  private readonly now: () => number;
  private readonly monotonicNow: () => number;
  private readonly coldStartMs: number;
  private readonly eventToPredictionInObserve: boolean;
  private startedAt: number;
  /** Live learners' state bytes by stream key (not label: '_other' stands for many keys), summed at scrape time. */
  private readonly stateBytes = new Map<string, { label: string; bytes: number }>();
  private readSubscriberDrops: (() => number) | undefined;
  private lastSubscriberDrops = 0;

  constructor(readonly registry: Registry, options: DriftlineMetricsOptions = {}) {
    this.streamLabels = new CappedLabel(positiveInt('maxStreams', options.maxStreams, DEFAULT_MAX_STREAMS));
    this.sourceLabels = new CappedLabel(positiveInt('maxSources', options.maxSources, DEFAULT_MAX_SOURCES));
    this.detectorLabels = new CappedLabel(positiveInt('maxSources', options.maxSources, DEFAULT_MAX_SOURCES));
    this.maxOutputs = positiveInt('maxOutputs', options.maxOutputs, DEFAULT_MAX_OUTPUTS);
    this.now = options.now ?? Date.now;
    this.monotonicNow = options.monotonicNow ?? (() => performance.now());
    this.coldStartMs = nonNegative('coldStartSeconds', options.coldStartSeconds, DEFAULT_COLD_START_SECONDS) * 1000;
    const at = options.eventToPredictionAt ?? 'pipeline';
    if (at !== 'pipeline' && at !== 'send') {
      throw new RangeError(`eventToPredictionAt must be 'pipeline' or 'send', got ${JSON.stringify(at)}`);
    }
    this.eventToPredictionInObserve = at === 'pipeline';
    this.startedAt = this.monotonicNow();
    this.readSubscriberDrops = options.droppedForSlowSubscribers;
    const registers = [registry];
    // prom-client calls collect() with `this` bound to the metric, so the collectors reach this object through `self`.
    const self = this;

    this.eventsTotal = new Counter({
      name: 'driftline_events_total',
      help: 'Input events accepted, by stream and source adapter.',
      labelNames: ['stream', 'source'],
      registers,
      collect() {
        // Counts are zeroed, not their maps dropped, so that the next event of a stream allocates nothing.
        for (const [stream, bySource] of self.pendingEvents) {
          for (const [source, n] of bySource) {
            if (n === 0) continue;
            this.inc({ stream, source }, n);
            bySource.set(source, 0);
          }
        }
      },
    });
    this.eventsRejectedTotal = new Counter({
      name: 'driftline_events_rejected_total',
      help: 'Input events refused by the operators, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.tickDurationSeconds = new TalliedHistogram({
      name: 'driftline_tick_duration_seconds',
      help: 'Time to process one tick (predict + learn), in seconds.',
      buckets: TICK_DURATION_BUCKETS,
      registers,
    });
    this.eventToPredictionSeconds = new TalliedHistogram({
      name: 'driftline_event_to_prediction_seconds',
      help:
        'Time from a frame entering driftline to its prediction, in seconds; phase="cold" in the first seconds ' +
        'after start (warm-up, restores), "steady" after.',
      labelNames: ['phase'],
      buckets: EVENT_TO_PREDICTION_BUCKETS,
      registers,
    });
    this.prequentialError = new Gauge({
      name: 'driftline_prequential_error',
      help:
        'Prequential (test-then-train) error of a predictor over the window: metric is mse, mse_ewma, ' +
        'r2 (one series per output) or accuracy; held_out="true" covers only holdout ticks.',
      labelNames: ['stream', 'predictor', 'metric', 'held_out', 'output'],
      registers,
      collect() {
        self.flushPrequential();
      },
    });
    this.prequentialLabelDelayTicks = new Gauge({
      name: 'driftline_prequential_label_delay_ticks',
      help:
        'Mean label delay, in ticks, of the ticks in the prequential window: the delay the error series with the ' +
        'same stream and held_out labels was measured with.',
      labelNames: ['stream', 'held_out'],
      registers,
      collect() {
        self.flushPrequential();
      },
    });
    this.prequentialSkill = new Gauge({
      name: 'driftline_prequential_skill',
      help: 'Skill of the learner against a reference predictor: 1 - mse(learner) / mse(reference).',
      labelNames: ['stream', 'reference', 'held_out'],
      registers,
      collect() {
        self.flushPrequential();
      },
    });
    this.driftDetectionsTotal = new Counter({
      name: 'driftline_drift_detections_total',
      help: 'Drifts detected by a detector (declared session boundaries are in driftline_sessions_total).',
      labelNames: ['stream', 'detector'],
      registers,
    });
    this.lastDriftTimestampSeconds = new Gauge({
      name: 'driftline_last_drift_timestamp_seconds',
      help: 'Unix time (wall clock when observed) of the last drift event, detected or declared.',
      labelNames: ['stream'],
      registers,
    });
    this.recoveryRatio = new Gauge({
      name: 'driftline_recovery_ratio',
      help:
        'Recovery after the last drift that hurt: (E_frozen - E_adapt) / (E_frozen - E_pre); 1 = back to ' +
        'pre-drift quality. Absent when the last drift did not hurt. held_out="true" covers only holdout ticks.',
      labelNames: ['stream', 'held_out'],
      registers,
    });
    this.recoveryResidual = new Gauge({
      name: 'driftline_recovery_residual',
      help: 'E_adapt / E_pre after the last drift (1 = as good as before the drift). held_out="true" covers only holdout ticks.',
      labelNames: ['stream', 'held_out'],
      registers,
    });
    this.timeToRecoverySeconds = new Histogram({
      name: 'driftline_time_to_recovery_seconds',
      help: 'Time from a drift until the windowed error came within tolerance of E_pre, in seconds. held_out="true" covers only holdout ticks.',
      labelNames: ['held_out'],
      buckets: TIME_TO_RECOVERY_BUCKETS,
      registers,
    });
    this.learnerStateBytes = new Gauge({
      name: 'driftline_learner_state_bytes',
      help: "Bytes of learner state held for the stream ('_other': the sum over the streams past the label cap).",
      labelNames: ['stream'],
      registers,
      collect() {
        // '_other' stands for many streams, so it is their sum, not whichever was set last.
        let other = 0;
        let any = false;
        for (const entry of self.stateBytes.values()) {
          if (entry.label !== OTHER_LABEL) continue;
          other += entry.bytes;
          any = true;
        }
        if (any) this.set({ stream: OTHER_LABEL }, other);
        else this.remove({ stream: OTHER_LABEL });
      },
    });
    this.learnerStateBytesTotal = new Gauge({
      name: 'driftline_live_learners_state_bytes',
      help: 'Bytes of learner state held over all live streams.',
      registers,
      collect() {
        let total = 0;
        for (const entry of self.stateBytes.values()) total += entry.bytes;
        this.set(total);
      },
    });
    this.labelLagTicks = new TalliedHistogram({
      name: 'driftline_label_lag_ticks',
      help: 'Ticks between a tick and the arrival of its label.',
      buckets: LABEL_LAG_BUCKETS,
      registers,
    });
    this.updatesTotal = new Counter({
      name: 'driftline_updates_total',
      help: 'Learner updates (scored ticks whose label the learner learned from; holdout ticks excluded).',
      labelNames: ['stream'],
      registers,
      collect() {
        for (const [stream, n] of self.pendingUpdates) {
          if (n === 0) continue;
          this.inc({ stream }, n);
          self.pendingUpdates.set(stream, 0);
        }
      },
    });
    this.labelsOutOfRangeTotal = new Counter({
      name: 'driftline_labels_out_of_range_total',
      help: "Labels far outside the stream's target statistics (evaluation.targetScaling): learned from all the same, counted because they are either a real change or a unit mistake upstream.",
      labelNames: ['stream'],
      registers,
    });
    this.sessionsTotal = new Counter({
      name: 'driftline_sessions_total',
      help: 'Session boundaries declared by the data.',
      labelNames: ['stream'],
      registers,
    });
    this.streams = new Gauge({
      name: 'driftline_streams',
      help: 'Streams currently open.',
      registers,
    });
    this.droppedNonFiniteTotal = new Counter({
      name: 'driftline_metrics_dropped_non_finite_total',
      help: 'Non-finite values (NaN, +-Infinity) dropped before they reached a metric, by metric name.',
      labelNames: ['metric'],
      registers,
    });
    this.subscriberMessagesDroppedTotal = new Counter({
      name: 'driftline_subscriber_messages_dropped_total',
      help: 'Messages not sent to a subscriber because its send buffer was over the cap (a slow subscriber).',
      registers,
      collect() {
        self.pullSubscriberDrops();
      },
    });
    this.streamsEvictedTotal = new Counter({
      name: 'driftline_streams_evicted_total',
      help: 'Streams whose learner was evicted from memory (checkpointed first when checkpoints are on).',
      registers,
    });
    this.shardRestartsTotal = new Counter({
      name: 'driftline_shard_restarts_total',
      help: 'Shard worker threads that died and were restarted (their streams came back from their checkpoints).',
      registers,
    });
    this.streamsRestoredTotal = new Counter({
      name: 'driftline_streams_restored_total',
      help: 'Streams whose learner was restored from a checkpoint (at start-up or after an eviction).',
      registers,
    });
    this.streamRestoreSeconds = new Histogram({
      name: 'driftline_stream_restore_seconds',
      help: "Time to restore one stream's learner from its checkpoint, in seconds.",
      buckets: STREAM_RESTORE_BUCKETS,
      registers,
    });
    this.assignmentToFirstPredictionSeconds = new Histogram({
      name: 'driftline_kafka_assignment_to_first_prediction_seconds',
      help: 'Per stream, from its partition being assigned to this worker to its first prediction here (restore included), in seconds.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.checkpointsQuarantinedTotal = new Counter({
      name: 'driftline_checkpoints_quarantined_total',
      help: 'Checkpoint files set aside unread (never overwritten), by defect.',
      labelNames: ['defect'],
      registers,
    });
    // Zero series for the closed set: an alert on increase() needs the series before the first quarantine.
    for (const defect of QUARANTINE_DEFECTS) this.checkpointsQuarantinedTotal.inc({ defect }, 0);
    this.checkpointRollbackTicks = new Histogram({
      name: 'driftline_checkpoint_rollback_ticks',
      help:
        'Per stream restored after a crash: ticks the previous run had processed after the checkpoint it was ' +
        'restored from (work redone or lost).',
      buckets: ROLLBACK_TICKS_BUCKETS,
      registers,
    });
    // Totals kept by the calibrations themselves (src/drift/calibration-tally.ts), copied in at each scrape.
    const calibrationCounter = (name: string, help: string, read: (t: ReturnType<typeof calibrationsSoFar>) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read(calibrationsSoFar()));
        },
      });
    this.detectorCalibrationsTotal = calibrationCounter(
      'driftline_detector_calibrations_total',
      'Calibrated drift detectors that chose their setting (once per stream and detector, on the update that completes its segment).',
      (t) => t.count,
    );
    this.detectorCalibrationSecondsTotal = calibrationCounter(
      'driftline_detector_calibration_seconds_total',
      'Wall time spent calibrating drift detectors, in seconds: it runs on the event loop, so no stream of the thread is served meanwhile.',
      (t) => t.seconds,
    );
    this.ticksReplayedTotal = new Counter({
      name: 'driftline_ticks_replayed_total',
      help: 'Predictions emitted again, marked replayed, for ticks re-sent after a restart (not learned again).',
      registers,
    });
  }

  /** Updates the metrics a message carries; messages with nothing to record are ignored. */
  observe(output: StreamOutput | PrequentialReport | RecoveryReport): void {
    switch (output.kind) {
      case 'prediction': {
        // Read defensively: the field is newer than some producers of Prediction.
        if ((output as { replayed?: boolean }).replayed === true) this.ticksReplayedTotal.inc();
        if (this.eventToPredictionInObserve && output.receivedAt !== undefined) {
          this.recordEventToPrediction((output.predictedAt - output.receivedAt) / 1000);
        }
        return;
      }
      case 'scored': {
        if (this.finite('driftline_label_lag_ticks', output.delay)) this.labelLagTicks.observe(output.delay);
        if (!output.heldOut) {
          const label = this.stream(output.stream);
          this.pendingUpdates.set(label, (this.pendingUpdates.get(label) ?? 0) + 1);
        }
        if (output.labelOutOfRange === true) this.labelsOutOfRangeTotal.inc({ stream: this.stream(output.stream) });
        return;
      }
      case 'drift':
        this.observeDrift(output);
        return;
      case 'rejected': {
        const reason = KNOWN_REJECTION_REASONS.has(output.reason) ? output.reason : OTHER_LABEL;
        this.eventsRejectedTotal.inc({ reason });
        return;
      }
      case 'prequential':
        this.observePrequential(output);
        return;
      case 'recovery':
        this.observeRecovery(output);
        return;
      default:
        return;
    }
  }

  /** Counts one accepted input event of `stream` from the adapter `source` (e.g. 'kafka', 'websocket'). */
  recordEvent(stream: string, source: string): void {
    const label = this.stream(stream);
    let bySource = this.pendingEvents.get(label);
    if (bySource === undefined) this.pendingEvents.set(label, (bySource = new Map()));
    const sourceLabel = this.sourceLabels.map(source);
    bySource.set(sourceLabel, (bySource.get(sourceLabel) ?? 0) + 1);
  }

  /** Counts one refused input (e.g. 'unauthorized' for a request without the right token) outside observe(). */
  recordRejection(reason: RejectionReason): void {
    this.eventsRejectedTotal.inc({ reason: KNOWN_REJECTION_REASONS.has(reason) ? reason : OTHER_LABEL });
  }

  /** Records the duration of one tick (predict + learn), in seconds. */
  recordTickDuration(seconds: number): void {
    if (this.finite('driftline_tick_duration_seconds', seconds)) this.tickDurationSeconds.observe(seconds);
  }

  /**
   * Records the seconds from a frame entering driftline to its prediction, labelled by the phase at the time of
   * the call. With eventToPredictionAt 'send', call it as the prediction goes out to subscribers.
   */
  recordEventToPrediction(seconds: number): void {
    if (!this.finite('driftline_event_to_prediction_seconds', seconds)) return;
    const phase = this.monotonicNow() - this.startedAt < this.coldStartMs ? COLD_PHASE : STEADY_PHASE;
    this.eventToPredictionSeconds.observe(seconds, phase);
  }

  /** Restarts the cold-start phase now (e.g. when the service is ready, after restores and start-up). */
  markStarted(): void {
    this.startedAt = this.monotonicNow();
  }

  /** Sets the state bytes of the stream's learner; the total over live streams follows. */
  setLearnerStateBytes(stream: string, bytes: number): void {
    if (!this.finite('driftline_learner_state_bytes', bytes)) return;
    const label = this.stream(stream);
    this.stateBytes.set(stream, { label, bytes });
    // '_other' is summed at scrape time.
    if (label !== OTHER_LABEL) this.learnerStateBytes.set({ stream: label }, bytes);
  }

  /**
   * Forgets an evicted or closed stream: its series go from every metric with a `stream` label, its bytes from
   * the state total, and its label slot is freed. A stream counted under '_other' only leaves the total (the
   * shared series stand for other streams too). Counters of a stream that comes back start again from 0, which
   * Prometheus reads as a counter reset.
   */
  removeStream(stream: string): void {
    this.stateBytes.delete(stream);
    if (stream === OTHER_LABEL || !this.streamLabels.has(stream)) return;
    this.streamLabels.release(stream);
    // Every per-stream metric must be listed here, or an evicted stream leaves a stale series; what waits for the
    // next scrape goes too, or that scrape would bring the series back.
    this.pendingEvents.delete(stream);
    this.pendingUpdates.delete(stream);
    for (const byStream of this.pendingPrequential) byStream.delete(stream);
    const s = { stream };
    for (const source of [...this.sourceLabels.values(), OTHER_LABEL]) this.eventsTotal.remove({ ...s, source });
    for (const detector of [...this.detectorLabels.values(), OTHER_LABEL]) {
      this.driftDetectionsTotal.remove({ ...s, detector });
    }
    for (const held_out of HELD_OUT) {
      for (const predictor of PREDICTORS) {
        for (const metric of PLAIN_ERROR_METRICS) this.prequentialError.remove({ ...s, predictor, metric, held_out });
        for (let i = 0; i < this.maxOutputs; i++) {
          this.prequentialError.remove({ ...s, predictor, metric: 'r2', held_out, output: String(i) });
        }
      }
      for (const reference of REFERENCES) this.prequentialSkill.remove({ ...s, reference, held_out });
      this.prequentialLabelDelayTicks.remove({ ...s, held_out });
      this.recoveryRatio.remove({ ...s, held_out });
      this.recoveryResidual.remove({ ...s, held_out });
    }
    this.lastDriftTimestampSeconds.remove(s);
    this.learnerStateBytes.remove(s);
    this.updatesTotal.remove(s);
    this.labelsOutOfRangeTotal.remove(s);
    this.sessionsTotal.remove(s);
  }

  /** Counts one eviction; with `stream`, also removeStream(stream). */
  /** Counts one shard worker restarted after it died. */
  recordShardRestart(): void {
    this.shardRestartsTotal.inc();
  }

  recordEviction(stream?: string): void {
    this.streamsEvictedTotal.inc();
    if (stream !== undefined) this.removeStream(stream);
  }

  /** Counts one restore from a checkpoint and its duration (a non-finite duration is dropped, the restore still counted). */
  /** A Kafka worker's first prediction of a stream since its partition was assigned (docs/kafka.md). */
  recordAssignmentToFirstPrediction(seconds: number): void {
    if (this.finite('driftline_kafka_assignment_to_first_prediction_seconds', seconds)) this.assignmentToFirstPredictionSeconds.observe(seconds);
  }

  recordRestore(seconds: number): void {
    this.streamsRestoredTotal.inc();
    if (this.finite('driftline_stream_restore_seconds', seconds)) this.streamRestoreSeconds.observe(seconds);
  }

  /** Counts one quarantined checkpoint file; a defect outside QUARANTINE_DEFECTS is counted as '_other'. */
  recordQuarantine(defect: QuarantineDefect | (string & {})): void {
    this.checkpointsQuarantinedTotal.inc({ defect: KNOWN_QUARANTINE_DEFECTS.has(defect) ? defect : OTHER_LABEL });
  }

  /** Records the ticks one restored stream rolled back (processed after its checkpoint by the crashed run). */
  recordRollback(ticks: number): void {
    // A negative rollback is a caller's arithmetic error; it would pull the histogram's sum down.
    if (this.finite('driftline_checkpoint_rollback_ticks', ticks) && ticks >= 0) this.checkpointRollbackTicks.observe(ticks);
  }

  /** Counts `n` (default 1) predictions re-emitted as replayed; observe() counts Predictions with replayed: true itself. */
  recordReplayed(n = 1): void {
    if (this.finite('driftline_ticks_replayed_total', n) && n > 0) this.ticksReplayedTotal.inc(n);
  }

  /** Counts `n` messages skipped for slow subscribers (alternative to trackSubscriberDrops; both add up). */
  recordSubscriberDrops(n: number): void {
    if (this.finite('driftline_subscriber_messages_dropped_total', n) && n > 0) this.subscriberMessagesDroppedTotal.inc(n);
  }

  /**
   * Reads a running total of slow-subscriber drops (e.g. `() => ws.stats.droppedForSlowSubscribers`) at every
   * scrape and adds what it gained since the last read. A new source, or one whose total went down (a restarted
   * server), is counted from its current total: the counter never goes down.
   */
  trackSubscriberDrops(read: () => number): void {
    this.pullSubscriberDrops();
    this.readSubscriberDrops = read;
    this.lastSubscriberDrops = 0;
  }

  setStreams(n: number): void {
    if (this.finite('driftline_streams', n)) this.streams.set(n);
  }

  /** The `stream` label value for a stream key: itself, or '_other' once maxStreams keys have been seen. */
  stream(key: string): string {
    return this.streamLabels.map(key);
  }

  private observeDrift(marker: DriftMarker): void {
    const stream = this.stream(marker.stream);
    if (marker.source === 'session') this.sessionsTotal.inc({ stream });
    else this.driftDetectionsTotal.inc({ stream, detector: this.detectorLabels.map(marker.source) });
    const seconds = this.now() / 1000;
    if (this.finite('driftline_last_drift_timestamp_seconds', seconds)) {
      this.lastDriftTimestampSeconds.set({ stream }, seconds);
    }
  }

  private observePrequential(report: PrequentialReport): void {
    // The last report per stream label and track is what a scrape shows, so only it is kept until then.
    this.pendingPrequential[report.heldOut ? 1 : 0].set(this.stream(report.stream), report);
  }

  private flushPrequential(): void {
    for (const byStream of this.pendingPrequential) {
      for (const [stream, report] of byStream) this.applyPrequential(stream, report);
      byStream.clear();
    }
  }

  private applyPrequential(stream: string, report: PrequentialReport): void {
    const held_out = report.heldOut ? 'true' : 'false';
    for (const predictor of PREDICTORS) {
      const figures: ErrorFigures | undefined = report.figures[predictor];
      if (figures === undefined) continue;
      const base = { stream, predictor, held_out };
      this.setError({ ...base, metric: 'mse' }, figures.mse);
      this.setError({ ...base, metric: 'mse_ewma' }, figures.mseEwma);
      const outputs = Math.min(figures.r2.length, this.maxOutputs);
      for (let i = 0; i < outputs; i++) this.setError({ ...base, metric: 'r2', output: String(i) }, figures.r2[i]);
      if (figures.accuracy !== undefined) this.setError({ ...base, metric: 'accuracy' }, figures.accuracy);
    }
    if (this.finite('driftline_prequential_label_delay_ticks', report.labelDelay)) {
      this.prequentialLabelDelayTicks.set({ stream, held_out }, report.labelDelay);
    }
    if (this.finite('driftline_prequential_skill', report.skillVsLastLabel)) {
      this.prequentialSkill.set({ stream, reference: 'last-label', held_out }, report.skillVsLastLabel);
    }
    if (this.finite('driftline_prequential_skill', report.skillVsRunningMean)) {
      this.prequentialSkill.set({ stream, reference: 'running-mean', held_out }, report.skillVsRunningMean);
    }
  }

  private setError(
    labels: { stream: string; predictor: string; held_out: string; metric: string; output?: string },
    value: number,
  ): void {
    if (this.finite('driftline_prequential_error', value)) this.prequentialError.set(labels, value);
  }

  private observeRecovery(report: RecoveryReport): void {
    const stream = this.stream(report.stream);
    // Per track, as the prequential error: a learning-tick figure and a held-out one are not the same measure.
    const held_out = report.heldOut === true ? 'true' : 'false';
    if (report.recovery === null) {
      // The drift did not hurt this track: there is no ratio, and the previous drift's ratio would mislead.
      this.recoveryRatio.remove({ stream, held_out });
    } else if (this.finite('driftline_recovery_ratio', report.recovery)) {
      this.recoveryRatio.set({ stream, held_out }, report.recovery);
    }
    if (this.finite('driftline_recovery_residual', report.residual)) {
      this.recoveryResidual.set({ stream, held_out }, report.residual);
    }
    if (report.secondsToRecovery !== null && this.finite('driftline_time_to_recovery_seconds', report.secondsToRecovery)) {
      this.timeToRecoverySeconds.observe({ held_out }, report.secondsToRecovery);
    }
  }

  private pullSubscriberDrops(): void {
    const read = this.readSubscriberDrops;
    if (read === undefined) return;
    let total: number;
    try {
      total = read();
    } catch {
      // A broken source must not fail the whole scrape; its drops are picked up at the next good read.
      return;
    }
    if (!this.finite('driftline_subscriber_messages_dropped_total', total)) return;
    const gained = total >= this.lastSubscriberDrops ? total - this.lastSubscriberDrops : total;
    this.lastSubscriberDrops = total;
    if (gained > 0) this.subscriberMessagesDroppedTotal.inc(gained);
  }

  /** True when `value` is a finite number; otherwise counts it as dropped for `metric`. */
  private finite(metric: string, value: number): boolean {
    if (typeof value === 'number' && Number.isFinite(value)) return true;
    this.droppedNonFiniteTotal.inc({ metric });
    return false;
  }
}
