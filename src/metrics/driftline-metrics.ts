/**
 * driftline's metric definitions (DESIGN section 5) on an injected prom-client Registry, fed from the messages
 * the stream operators emit. Prometheus conventions: base units (seconds, bytes), `_total` on counters, and
 * bounded label values: the `stream` label is capped at `maxStreams` distinct values (later streams share
 * '_other'), the free-form `source` and `detector` labels at `maxSources`, `reason` is the closed
 * RejectionReason set, and R2 is exported per output with an `output` label capped at `maxOutputs`.
 *
 * Non-finite numbers never reach prom-client (a NaN poisons a counter or histogram sum for good): they are
 * dropped and counted in `driftline_metrics_dropped_non_finite_total{metric}`.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
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

export interface DriftlineMetricsOptions {
  /** Distinct `stream` label values kept; streams seen after the cap is reached are labelled '_other'. */
  readonly maxStreams?: number;
  /** Distinct `source` (events) and `detector` (drift) label values kept each; later ones become '_other'. */
  readonly maxSources?: number;
  /** R2 is exported for outputs 0 .. maxOutputs-1 only (label `output`). */
  readonly maxOutputs?: number;
  /** Wall clock in milliseconds since the Unix epoch, for `driftline_last_drift_timestamp_seconds`. */
  readonly now?: () => number;
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

const KNOWN_REJECTION_REASONS: ReadonlySet<string> = new Set<string>(REJECTION_REASONS);

const PREDICTORS: readonly Predictor[] = ['learner', 'last-label', 'running-mean'];

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
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

export class DriftlineMetrics {
  readonly eventsTotal: Counter<'stream' | 'source'>;
  readonly eventsRejectedTotal: Counter<'reason'>;
  readonly tickDurationSeconds: Histogram<string>;
  readonly eventToPredictionSeconds: Histogram<string>;
  readonly prequentialError: Gauge<'stream' | 'predictor' | 'metric' | 'held_out' | 'output'>;
  readonly prequentialLabelDelayTicks: Gauge<'stream' | 'held_out'>;
  readonly prequentialSkill: Gauge<'stream' | 'reference' | 'held_out'>;
  readonly driftDetectionsTotal: Counter<'stream' | 'detector'>;
  readonly lastDriftTimestampSeconds: Gauge<'stream'>;
  readonly recoveryRatio: Gauge<'stream' | 'held_out'>;
  readonly recoveryResidual: Gauge<'stream' | 'held_out'>;
  readonly timeToRecoverySeconds: Histogram<'held_out'>;
  readonly learnerStateBytes: Gauge<'stream'>;
  readonly labelLagTicks: Histogram<string>;
  readonly updatesTotal: Counter<'stream'>;
  readonly sessionsTotal: Counter<'stream'>;
  readonly streams: Gauge<string>;
  readonly droppedNonFiniteTotal: Counter<'metric'>;

  private readonly streamLabels: CappedLabel;
  private readonly sourceLabels: CappedLabel;
  private readonly detectorLabels: CappedLabel;
  private readonly maxOutputs: number;
  private readonly now: () => number;

  constructor(readonly registry: Registry, options: DriftlineMetricsOptions = {}) {
    this.streamLabels = new CappedLabel(positiveInt('maxStreams', options.maxStreams, DEFAULT_MAX_STREAMS));
    this.sourceLabels = new CappedLabel(positiveInt('maxSources', options.maxSources, DEFAULT_MAX_SOURCES));
    this.detectorLabels = new CappedLabel(positiveInt('maxSources', options.maxSources, DEFAULT_MAX_SOURCES));
    this.maxOutputs = positiveInt('maxOutputs', options.maxOutputs, DEFAULT_MAX_OUTPUTS);
    this.now = options.now ?? Date.now;
    const registers = [registry];

    this.eventsTotal = new Counter({
      name: 'driftline_events_total',
      help: 'Input events accepted, by stream and source adapter.',
      labelNames: ['stream', 'source'],
      registers,
    });
    this.eventsRejectedTotal = new Counter({
      name: 'driftline_events_rejected_total',
      help: 'Input events refused by the operators, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.tickDurationSeconds = new Histogram({
      name: 'driftline_tick_duration_seconds',
      help: 'Time to process one tick (predict + learn), in seconds.',
      buckets: TICK_DURATION_BUCKETS,
      registers,
    });
    this.eventToPredictionSeconds = new Histogram({
      name: 'driftline_event_to_prediction_seconds',
      help: 'Time from a frame entering driftline to its prediction, in seconds.',
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
    });
    this.prequentialLabelDelayTicks = new Gauge({
      name: 'driftline_prequential_label_delay_ticks',
      help:
        'Mean label delay, in ticks, of the ticks in the prequential window: the delay the error series with the ' +
        'same stream and held_out labels was measured with.',
      labelNames: ['stream', 'held_out'],
      registers,
    });
    this.prequentialSkill = new Gauge({
      name: 'driftline_prequential_skill',
      help: 'Skill of the learner against a reference predictor: 1 - mse(learner) / mse(reference).',
      labelNames: ['stream', 'reference', 'held_out'],
      registers,
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
      help: 'Bytes of learner state held for the stream.',
      labelNames: ['stream'],
      registers,
    });
    this.labelLagTicks = new Histogram({
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
  }

  /** Updates the metrics a message carries; messages with nothing to record are ignored. */
  observe(output: StreamOutput | PrequentialReport | RecoveryReport): void {
    switch (output.kind) {
      case 'prediction': {
        if (output.receivedAt !== undefined) {
          const seconds = (output.predictedAt - output.receivedAt) / 1000;
          if (this.finite('driftline_event_to_prediction_seconds', seconds)) {
            this.eventToPredictionSeconds.observe(seconds);
          }
        }
        return;
      }
      case 'scored': {
        if (this.finite('driftline_label_lag_ticks', output.delay)) this.labelLagTicks.observe(output.delay);
        if (!output.heldOut) this.updatesTotal.inc({ stream: this.stream(output.stream) });
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
    this.eventsTotal.inc({ stream: this.stream(stream), source: this.sourceLabels.map(source) });
  }

  /** Records the duration of one tick (predict + learn), in seconds. */
  recordTickDuration(seconds: number): void {
    if (this.finite('driftline_tick_duration_seconds', seconds)) this.tickDurationSeconds.observe(seconds);
  }

  setLearnerStateBytes(stream: string, bytes: number): void {
    if (this.finite('driftline_learner_state_bytes', bytes)) {
      this.learnerStateBytes.set({ stream: this.stream(stream) }, bytes);
    }
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
    const stream = this.stream(report.stream);
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

  /** True when `value` is a finite number; otherwise counts it as dropped for `metric`. */
  private finite(metric: string, value: number): boolean {
    if (typeof value === 'number' && Number.isFinite(value)) return true;
    this.droppedNonFiniteTotal.inc({ metric });
    return false;
  }
}
