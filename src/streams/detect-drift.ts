import type { MonoTypeOperatorFunction } from 'rxjs';
import type { DetectorSpec } from '../drift/detector.js';
import { Ewma } from '../evaluation/ewma.js';
import { rejection } from './messages.js';
import type { DriftMarker, ScoredTick } from './messages.js';
import { operate } from './operate.js';
import type { PrequentialInput } from './prequential.js';
import { routeScoredAndDrift } from './route-scored-and-drift.js';
import type { LearnerPool } from './learner-pool.js';
import { RefusedStreams } from './refused-streams.js';
import { detectionConfig, REFUSED_FIRST, refusal, StreamDetectorBank } from './stream-detector-bank.js';
import { MALFORMED, tickError } from './tick-error.js';

/**
 * What detectDrift feeds its detectors: 'error', the learner's per-tick squared error in the squared units of the
 * label; or 'normalized-error', that error divided by an estimate of the label variance, a unitless figure near
 * 1 - R2 per tick, so one detector configuration fits feeds of any scale.
 */
export type DriftSignal = 'error' | 'normalized-error';

/**
 * Half-life, in scored ticks, of the label-variance EWMA behind 'normalized-error'. It must be long beside a
 * detector's reaction time (Page-Hinkley needs tens to hundreds of ticks to fire), or the normalizer would follow
 * a rising error and hide the very drift it is there to expose; and short enough to follow a feed whose label
 * scale changes between sessions within a few thousand ticks.
 */
export const NORMALIZER_HALF_LIFE_TICKS = 1000;

/**
 * Scored ticks folded into the label-variance estimate before 'normalized-error' feeds anything. With fewer, the
 * estimate rests on a handful of (autocorrelated) labels, and its own noise, divided into every error, would look
 * like drift. After one half-life the bias-corrected EWMA weighs its values within a factor of two of each other:
 * a mean over about that many ticks.
 */
export const NORMALIZER_WARM_UP_TICKS = NORMALIZER_HALF_LIFE_TICKS;

export interface DetectDriftOptions {
  /** One detector per spec and stream; the spec's kind names the markers it raises. */
  readonly detectors: readonly DetectorSpec[];
  /**
   * Called with each detection's marker; the marker is NOT put into the operator's output (the pipeline feeds it
   * back into predictThenLearn, which forks the shadow and passes it on, so downstream sees each marker once).
   * A throwing `emit` is a programming error: the operator's output errors.
   */
  readonly emit: (marker: DriftMarker) => void;
  /** Scored ticks after any marker of the stream during which detections are not emitted (default 0). */
  readonly cooldownTicks?: number;
  /** Most streams watched at once; past it a stream passes through undetected (default: no limit). */
  readonly maxStreams?: number;
  /** The learners' pool: a stream it evicts is forgotten here too. */
  readonly pool?: LearnerPool;
  /**
   * Whether held-out ticks feed the detectors (default 'skip'). A learner's error on ticks whose labels it does not
   * get is higher by design (it cannot follow the label there), so every switch between learning and held-out
   * blocks would look like a drift: the holdout schedule, not the data, would raise the alarms.
   */
  readonly heldOutTicks?: 'skip' | 'include';
  /**
   * What the detectors are fed (default 'error'): the learner's tick error e_t, or with 'normalized-error'
   * e_t / v_t, v_t the label-variance estimate described at detectDrift. Detector thresholds are in the units of
   * this signal: squared label units for 'error', none for 'normalized-error'.
   */
  readonly signal?: DriftSignal;
}

/**
 * Drift detection on the learner's per-tick error. Per stream, one detector per spec (createDetector) is fed, for
 * every ScoredTick (held-out ones only with `heldOutTicks: 'include'`), the learner's error on it: the mean over
 * outputs of (yhat - y)^2 (tickError), e_t; or, with `signal: 'normalized-error'`, e_t / v_t.
 *
 * v_t is a label-variance estimate built only from labels that have arrived: the bias-corrected EWMA (see Ewma;
 * half-life NORMALIZER_HALF_LIFE_TICKS scored ticks) of the running-mean reference's tick error on scored ticks,
 * tickError(yMean, y), the reference prequential reports use. It is read before the tick's own reference error is
 * folded in, so a tick's label does not enter both e_t and v_t. Every scored tick of the stream with a finite
 * reference error is folded in, held-out ones too (their labels have arrived; the label scale does not depend on
 * the learner having used them), and v_t is kept across drift markers (the scale of the labels is the feed's, and
 * a new warm-up after each marker would blind detection). e_t / v_t averages to about MSE(learner) / MSE(running
 * mean), 1 - R2 against the running mean: unitless, so a threshold means the same on feeds whose labels differ in
 * scale. (Not in character: the error of a slowly varying label is autocorrelated, and Page-Hinkley then needs a
 * larger delta and threshold than River's defaults; see examples/configs/jango-websocket.yaml.) Why an EWMA
 * rather than a windowed mean: O(1) state, and no step when a large value leaves a window (a step in v_t would be a
 * step in the signal, that is, a false drift). Nothing is fed (the tick still passes on): before
 * NORMALIZER_WARM_UP_TICKS reference errors have been folded (ticks with a NaN yMean, predicted before any label,
 * have none), when v_t is 0 (every label so far equalled the running mean), or when the quotient is not finite.
 *
 * When a detector reports drift, `emit` receives `{ kind: 'drift', stream, seq: scored.seq + 1, t: scored.t,
 * source: spec.kind }`; two detectors that fire on the same tick give two markers. The ScoredTick itself passes on
 * first, so a marker fed back synchronously reaches downstream after the tick it was detected on.
 *
 * Cooldown: for `cooldownTicks` scored ticks after a marker of a stream, whether emitted here or passing through
 * (a declared 'session' boundary, a detection from detectInputDrift, or this operator's own marker coming back),
 * detections of that stream are not emitted; the detectors go on learning the new level meanwhile.
 *
 * A DriftMarker passing through resets the stream's detectors and starts its cooldown: a declared boundary or a
 * detection starts a new regime, and evidence gathered across it would only delay the next detection.
 *
 * Everything else passes through unchanged, in order. A 'scored' or 'drift' message without a string stream and a
 * finite seq, or a ScoredTick whose yhat and y are not number arrays of one length, becomes a 'malformed'
 * Rejection in its place. A ScoredTick whose error is not finite (a diverged learner) passes on without feeding
 * the detectors, which accept finite numbers only. Past `maxStreams` streams, a new stream's messages pass
 * through undetected, with one 'too-many-streams' Rejection after its first message. A yMean that is missing or of
 * another length than y only leaves v_t unchanged: the tick passes on as with 'error' (prequential, upstream,
 * reports it). Cooldown counts the ticks fed to the detectors. State is per subscription: per stream, the
 * detectors (bounded, see src/drift), a cooldown counter and, for 'normalized-error', an EWMA (four numbers). A
 * tick costs O(outputs) and allocates nothing.
 */
export function detectDrift(options: DetectDriftOptions): MonoTypeOperatorFunction<PrequentialInput> {
  const config = detectionConfig('detectDrift', options, '');
  const heldOutTicks = options.heldOutTicks ?? 'skip';
  if (heldOutTicks !== 'skip' && heldOutTicks !== 'include') {
    throw new RangeError(`detectDrift: heldOutTicks must be 'skip' or 'include', got ${String(heldOutTicks)}`);
  }
  const signal = options.signal ?? 'error';
  if (signal !== 'error' && signal !== 'normalized-error') {
    throw new RangeError(`detectDrift: signal must be 'error' or 'normalized-error', got ${String(signal)}`);
  }
  const includeHeldOut = heldOutTicks === 'include';
  const normalized = signal === 'normalized-error';
  return operate<PrequentialInput, PrequentialInput>((subscriber) => {
    const bank = new StreamDetectorBank(config);
    // 'normalized-error' only. Every bank call goes through this map's admission, so the bank watches a subset
    // of its streams, never refuses one itself, and both stay within maxStreams.
    const scales = new Map<string, LabelScale>();
    const refusedScales = new RefusedStreams();
    const off = options.pool?.onEvict((stream) => {
      bank.forget(stream);
      scales.delete(stream);
    });

    /** The stream's label scale, or undefined (reported once) when the stream is past maxStreams. */
    const scaleOf = (stream: string, seq: number): LabelScale | undefined => {
      let scale = scales.get(stream);
      if (scale !== undefined) return scale;
      if (scales.size >= config.maxStreams) {
        if (refusedScales.firstRefusal(stream)) subscriber.next(refusal(config, stream, seq));
        return undefined;
      }
      scale = new LabelScale();
      scales.set(stream, scale);
      return scale;
    };

    const onScored = (scored: ScoredTick) => {
      const error = tickError(scored.yhat, scored.y);
      if (error === MALFORMED) {
        return subscriber.next(rejection('malformed', `scored tick ${scored.seq} of stream '${scored.stream}' has no yhat and y of one length`, scored.stream, scored.seq));
      }
      subscriber.next(scored);
      let value = error;
      if (normalized) {
        const scale = scaleOf(scored.stream, scored.seq);
        if (scale === undefined) return;
        // Read before this tick's label is folded in, so the tick's own label is not in both e_t and v_t.
        const variance = scale.variance;
        scale.fold(tickError(scored.yMean, scored.y));
        // NaN while warming up, and a non-finite quotient when v_t = 0: both are filtered out below.
        value = error / variance;
      }
      if (!Number.isFinite(value) || (scored.heldOut && !includeHeldOut)) return;
      const admission = bank.observe(scored.stream, scored.seq + 1, scored.t, value);
      if (admission === REFUSED_FIRST) subscriber.next(refusal(config, scored.stream, scored.seq));
    };

    const onMarker = (marker: DriftMarker) => {
      subscriber.next(marker);
      if (normalized && scaleOf(marker.stream, marker.seq) === undefined) return;
      if (bank.markerPassed(marker.stream) === REFUSED_FIRST) subscriber.next(refusal(config, marker.stream, marker.seq));
    };

    return {
      next: routeScoredAndDrift(subscriber, onScored, onMarker),
      cleanup: () => {
        bank.clear();
        scales.clear();
        refusedScales.clear();
        off?.();
      },
    };
  });
}

/**
 * The label-variance estimate v_t of one stream: the bias-corrected EWMA (half-life NORMALIZER_HALF_LIFE_TICKS)
 * of the running-mean reference's tick error, NaN until NORMALIZER_WARM_UP_TICKS values have been folded in.
 */
class LabelScale {
  private readonly ewma = new Ewma({ halfLife: NORMALIZER_HALF_LIFE_TICKS });

  /** v_t, or NaN while warming up; 0 when every label so far equalled the running mean. */
  get variance(): number {
    return this.ewma.count >= NORMALIZER_WARM_UP_TICKS ? this.ewma.value : Number.NaN;
  }

  /** Folds in one tick's reference error; anything but a finite number (no label mean yet, a bad yMean) is skipped. */
  fold(referenceError: number): void {
    if (referenceError >= 0 && Number.isFinite(referenceError)) this.ewma.update(referenceError);
  }
}
