import { Observable, type MonoTypeOperatorFunction } from 'rxjs';
import type { DetectorSpec } from '../drift/detector.js';
import { isKeyed } from './join-labels.js';
import { rejection } from './messages.js';
import type { DriftMarker, ScoredTick } from './messages.js';
import type { PrequentialInput } from './prequential.js';
import { detectionConfig, REFUSED_FIRST, refusal, StreamDetectorBank } from './stream-detector-bank.js';
import { MALFORMED, tickError } from './tick-error.js';

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
  /**
   * Whether held-out ticks feed the detectors (default 'skip'). A learner's error on ticks whose labels it does not
   * get is higher by design (it cannot follow the label there), so every switch between learning and held-out
   * blocks would look like a drift: the holdout schedule, not the data, would raise the alarms.
   */
  readonly heldOutTicks?: 'skip' | 'include';
}

/**
 * Drift detection on the learner's per-tick error. Per stream, one detector per spec (createDetector) is fed, for
 * every ScoredTick (held-out ones only with `heldOutTicks: 'include'`), the learner's error on it: the mean over outputs of (yhat - y)^2. When a
 * detector reports drift, `emit` receives `{ kind: 'drift', stream, seq: scored.seq + 1, t: scored.t,
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
 * through undetected, with one 'too-many-streams' Rejection after its first message. State is per subscription:
 * per stream, the detectors (bounded, see src/drift) and a cooldown counter.
 */
export function detectDrift(options: DetectDriftOptions): MonoTypeOperatorFunction<PrequentialInput> {
  const config = detectionConfig('detectDrift', options, '');
  const heldOutTicks = options.heldOutTicks ?? 'skip';
  if (heldOutTicks !== 'skip' && heldOutTicks !== 'include') {
    throw new RangeError(`detectDrift: heldOutTicks must be 'skip' or 'include', got ${String(heldOutTicks)}`);
  }
  const includeHeldOut = heldOutTicks === 'include';
  return (source) =>
    new Observable<PrequentialInput>((subscriber) => {
      const bank = new StreamDetectorBank(config);

      const onScored = (scored: ScoredTick) => {
        const error = tickError(scored.yhat, scored.y);
        if (error === MALFORMED) {
          return subscriber.next(rejection('malformed', `scored tick ${scored.seq} of stream '${scored.stream}' has no yhat and y of one length`, scored.stream, scored.seq));
        }
        subscriber.next(scored);
        if (!Number.isFinite(error) || (scored.heldOut && !includeHeldOut)) return;
        const admission = bank.observe(scored.stream, scored.seq + 1, scored.t, error);
        if (admission === REFUSED_FIRST) subscriber.next(refusal(config, scored.stream, scored.seq));
      };

      const onMarker = (marker: DriftMarker) => {
        subscriber.next(marker);
        if (bank.markerPassed(marker.stream) === REFUSED_FIRST) subscriber.next(refusal(config, marker.stream, marker.seq));
      };

      const subscription = source.subscribe({
        next(message) {
          try {
            const kind = message?.kind;
            if (kind !== 'scored' && kind !== 'drift') return subscriber.next(message);
            if (!isKeyed(message)) return subscriber.next(rejection('malformed', `${kind} message without a string stream key and a finite seq`));
            if (kind === 'scored') onScored(message as ScoredTick);
            else onMarker(message as DriftMarker);
          } catch (err) {
            subscriber.error(err);
          }
        },
        error: (err) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        subscription.unsubscribe();
        bank.clear();
      };
    });
}
