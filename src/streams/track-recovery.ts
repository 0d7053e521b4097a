import type { OperatorFunction } from 'rxjs';
import { RecoveryMeter } from '../evaluation/recovery.js';
import { WindowedMean } from '../evaluation/windowed-mean.js';
import type { LearnerPool } from './learner-pool.js';
import { RefusedStreams } from './refused-streams.js';
import { refusal } from './stream-detector-bank.js';
import { MALFORMED, tickError } from './tick-error.js';
import { rejection } from './messages.js';
import type { DriftMarker, RecoveryReport, ScoredTick } from './messages.js';
import { operate } from './operate.js';
import type { PrequentialInput } from './prequential.js';
import { routeScoredAndDrift } from './route-scored-and-drift.js';

export interface TrackRecoveryOptions {
  /** Same value as predictThenLearn's recoveryTicks (the shadow's lifetime); a positive integer. */
  readonly recoveryTicks: number;
  /** Ticks of each track's windowed learner error that its E_pre is read from, and RecoveryMeter's window. */
  readonly window: number;
  /** Recovered when windowed E_adapt <= (1 + tolerance) * E_pre. */
  readonly tolerance: number;
  /** Most streams tracked at once; past it a stream passes through unmeasured (default: no limit). */
  readonly maxStreams?: number;
  /** The learners' pool: a stream it evicts is forgotten here too (a recovery being measured ends). */
  readonly pool?: LearnerPool;
}

/**
 * Recovery after every drift marker (DESIGN section 5), measured with RecoveryMeter on the frozen shadow that
 * predictThenLearn forks at the marker (ScoredTick.yFrozen), per track as the prequential reports are: the
 * learning ticks (labels given to the learner) and the held-out ticks (`ScoredTick.heldOut`: labels withheld, the
 * decoding measure) are measured apart. A learner can look good on learning ticks by tracking the label, so an
 * E_pre from one track and an E_adapt from the other would compare two different things (with a holdout at the
 * end of every session, E_pre at a boundary would be held-out error and E_adapt learning error). Errors are
 * tickError's: the mean over outputs of (yhat - y)^2.
 *
 * Per stream and track, a WindowedMean of `window` scored ticks holds the learner's error on the track's scored
 * ticks, except the skipped ones below. When a DriftMarker passes, each track's mean is that track's E_pre, and a
 * measurement of the marker starts on both tracks:
 *
 * - Ticks predicted before the marker reached predictThenLearn are scored after it when labels come late; they
 *   carry no yFrozen (or, with a detection marker during an earlier shadow, that earlier shadow's). Until the
 *   first ScoredTick with yFrozen and seq >= marker.seq (on either track), the stream's ScoredTicks are skipped;
 *   so is, all measurement long, any ScoredTick with seq < marker.seq, or without yFrozen and with seq below the
 *   first measured one (a late label out of order). Skipped ticks go to neither a meter nor an E_pre window:
 *   E_pre was read when the marker passed, and in the window they would mix the tail of the old regime into the
 *   next E_pre; the meter needs a frozen prediction they lack.
 * - From the first ScoredTick with yFrozen on, each such tick feeds its own track's RecoveryMeter (window
 *   min(window, recoveryTicks), the tolerance given) with the learner's error (E_adapt) and the frozen shadow's
 *   error (E_frozen); the learner's error also goes on into the track's E_pre window, ready for the next marker.
 * - The measurement closes, on both tracks at once, when the two meters together have seen `recoveryTicks` ticks
 *   (the marker's measured ticks: the shadow predicted that many, whichever track each fell on), when a ScoredTick
 *   without yFrozen and with seq above the first measured one arrives (the shadow has ended), when the stream's
 *   next marker passes (the next measurement starts right after), or when the source completes (each open
 *   measurement reports what it has; an error notification reports nothing).
 *
 * Right after the message that closed a measurement come its RecoveryReports: one per track that measured at
 * least one tick, the learning track's first, then the held-out one's. A track with no tick in the measurement
 * (no holdout, or the holdout fell outside the shadow's ticks) emits nothing, and a measurement that closes before
 * its first tick emits no report at all: there are no E_adapt and E_frozen to report. Each report has the
 * marker's seq and source, `heldOut` naming its track, the track's ePre, and its meter's eFrozen, eAdapt, recovery
 * and residual (E_adapt / E_pre). ticksToRecovery counts from the drift: the number of the marker's measured ticks
 * (both tracks) before the tick on which the track's windowed E_adapt first came within tolerance of its E_pre (the
 * meter's recovery rule on the track's own ticks), so with a single track it is the meter's timeToRecovery;
 * secondsToRecovery is the t of that tick minus the t of the marker's first measured tick. E_pre of a track is not
 * available when fewer than max(1, floor(window / 4)) of its scored ticks were in its window when the marker
 * passed, or their mean error was 0 (nothing to compare with): its report then has ePre NaN, recovery null,
 * residual NaN and ticksToRecovery and secondsToRecovery null, while eFrozen and eAdapt are still measured. With
 * no shadow in predictThenLearn (its recoveryTicks 0) no tick carries yFrozen: a measurement then waits, skipping
 * every tick, until the next marker or the end, and reports nothing.
 *
 * A marker that comes before the stream's first ScoredTick (the first session a replay declares) starts no
 * measurement and gets no report: nothing came before it to recover.
 *
 * Everything else passes through unchanged, in order. A 'scored' or 'drift' message without a string stream and a
 * finite seq, or a ScoredTick whose yhat and y are not number arrays of one length, becomes a 'malformed'
 * Rejection in its place; a tick whose learner or frozen error is not finite passes on and is left out of the
 * window and the meter (both take finite numbers only). Past `maxStreams` streams, a new stream passes through
 * unmeasured, with one 'too-many-streams' Rejection after its first message. State is per subscription: per stream
 * and track, one WindowedMean and one RecoveryMeter, preallocated and re-armed in place for each marker.
 */
export function trackRecovery(options: TrackRecoveryOptions): OperatorFunction<PrequentialInput, PrequentialInput> {
  if (options == null || typeof options !== 'object') throw new TypeError('trackRecovery: options are required');
  const { recoveryTicks, window, tolerance } = options;
  if (!Number.isInteger(recoveryTicks) || recoveryTicks < 1) {
    throw new RangeError(`trackRecovery: recoveryTicks must be a positive integer (predictThenLearn's shadow lifetime), got ${String(recoveryTicks)}`);
  }
  if (!Number.isInteger(window) || window < 1) throw new RangeError(`trackRecovery: window must be a positive integer, got ${String(window)}`);
  if (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance < 0) {
    throw new RangeError(`trackRecovery: tolerance must be a finite number >= 0, got ${String(tolerance)}`);
  }
  const maxStreams = options.maxStreams ?? Infinity;
  if (typeof maxStreams !== 'number' || !(maxStreams >= 1) || (Number.isFinite(maxStreams) && !Number.isInteger(maxStreams))) {
    throw new RangeError(`trackRecovery: maxStreams must be a positive integer or Infinity, got ${String(maxStreams)}`);
  }
  const bound = { name: 'trackRecovery', maxStreams };
  const meterWindow = Math.min(window, recoveryTicks);
  const minPreTicks = Math.max(1, Math.floor(window / 4));

  return operate<PrequentialInput, PrequentialInput>((subscriber) => {
    const streams = new Map<string, StreamRecovery>();
    const refused = new RefusedStreams();
    const off = options.pool?.onEvict((stream) => streams.delete(stream));

    /** The stream's state, created on first sight; undefined (after one Rejection) past the bound. */
    const stateOf = (stream: string, seq: number): StreamRecovery | undefined => {
      const found = streams.get(stream);
      if (found) return found;
      if (streams.size >= maxStreams) {
        if (refused.firstRefusal(stream)) subscriber.next(refusal(bound, stream, seq));
        return undefined;
      }
      const s = new StreamRecovery(window, meterWindow, tolerance);
      streams.set(stream, s);
      return s;
    };

    const close = (s: StreamRecovery, stream: string) => {
      s.phase = IDLE;
      if (s.learning.meter.ticks > 0) subscriber.next(s.report(stream, s.learning, false));
      if (s.heldOut.meter.ticks > 0) subscriber.next(s.report(stream, s.heldOut, true));
    };

    const onScored = (scored: ScoredTick) => {
      const adaptError = tickError(scored.yhat, scored.y);
      const frozenError = scored.yFrozen === undefined ? Number.NaN : tickError(scored.yFrozen, scored.y);
      if (adaptError === MALFORMED || frozenError === MALFORMED) {
        return subscriber.next(rejection('malformed', `scored tick ${scored.seq} of stream '${scored.stream}' has no yhat, y (and yFrozen) of one length`, scored.stream, scored.seq));
      }
      subscriber.next(scored);
      const s = stateOf(scored.stream, scored.seq);
      if (!s) return;
      s.scoredTicks++;
      const track = scored.heldOut === true ? s.heldOut : s.learning;
      const adaptFinite = Number.isFinite(adaptError);
      if (s.phase !== IDLE) {
        const hasFrozen = scored.yFrozen !== undefined;
        if (scored.seq < s.markerSeq) return;
        if (s.phase === WAITING) {
          if (!hasFrozen) return;
          s.phase = MEASURING;
          s.firstSeq = scored.seq;
          s.firstT = scored.t;
        } else if (!hasFrozen) {
          if (scored.seq < s.firstSeq) return;
          close(s, scored.stream);
          if (adaptFinite) track.errors.push(adaptError);
          return;
        }
        if (!adaptFinite || !Number.isFinite(frozenError)) return;
        track.errors.push(adaptError);
        const wasRecovered = track.meter.recovered;
        track.meter.update(adaptError, frozenError);
        const measured = s.learning.meter.ticks + s.heldOut.meter.ticks;
        if (!wasRecovered && track.meter.recovered) {
          track.recoveredAt = measured - 1;
          track.recoveredT = scored.t;
        }
        if (measured >= recoveryTicks) close(s, scored.stream);
        return;
      }
      if (adaptFinite) track.errors.push(adaptError);
    };

    const onMarker = (marker: DriftMarker) => {
      subscriber.next(marker);
      const s = stateOf(marker.stream, marker.seq);
      if (!s) return;
      if (s.phase !== IDLE) close(s, marker.stream);
      // A marker before the stream's first scored tick opens the stream (a replay declares its first session
      // too): there is no earlier regime to recover from, so nothing is measured and no report follows.
      if (s.scoredTicks === 0) return;
      s.begin(marker, minPreTicks);
    };

    return {
      next: routeScoredAndDrift(subscriber, onScored, onMarker),
      // Each open measurement reports what it has before the output completes.
      complete: () => {
        for (const [stream, s] of streams) if (s.phase !== IDLE) close(s, stream);
      },
      cleanup: () => {
        streams.clear();
        refused.clear();
        off?.();
      },
    };
  });
}

/** No marker being measured. */
const IDLE = 0;
/** A marker passed; waiting for the first ScoredTick that carries the shadow's prediction. */
const WAITING = 1;
/** Feeding the meters. */
const MEASURING = 2;
type Phase = typeof IDLE | typeof WAITING | typeof MEASURING;

/** One track of a stream (learning ticks or held-out ticks): its E_pre window, its meter, where it recovered. */
class TrackState {
  readonly errors: WindowedMean;
  readonly meter: RecoveryMeter;
  /** NaN when E_pre was not available at the marker. */
  ePre = Number.NaN;
  /** Measured ticks of the marker (both tracks) before the one this track recovered on; -1: not recovered. */
  recoveredAt = -1;
  recoveredT = Number.NaN;

  constructor(window: number, meterWindow: number, tolerance: number) {
    this.errors = new WindowedMean(window);
    // E_pre 1 is a placeholder: `begin` re-arms the meter with each marker's E_pre.
    this.meter = new RecoveryMeter(1, { window: meterWindow, tolerance });
  }

  /** Reads E_pre from the window and re-arms the meter for a marker that just passed. */
  begin(minPreTicks: number): void {
    const mean = this.errors.mean;
    this.ePre = this.errors.count >= minPreTicks && mean > 0 && Number.isFinite(mean) ? mean : Number.NaN;
    // Without an E_pre the meter still measures E_adapt and E_frozen; the figures relative to E_pre are dropped.
    this.meter.start(Number.isNaN(this.ePre) ? 1 : this.ePre);
    this.recoveredAt = -1;
    this.recoveredT = Number.NaN;
  }
}

/** Per-stream state: both tracks and the marker being measured. */
class StreamRecovery {
  readonly learning: TrackState;
  readonly heldOut: TrackState;
  phase: Phase = IDLE;
  /** Scored ticks of the stream so far, both tracks. */
  scoredTicks = 0;
  markerSeq = 0;
  markerSource = '';
  /** seq and t of the marker's first measured tick, either track. */
  firstSeq = 0;
  firstT = 0;

  constructor(window: number, meterWindow: number, tolerance: number) {
    this.learning = new TrackState(window, meterWindow, tolerance);
    this.heldOut = new TrackState(window, meterWindow, tolerance);
  }

  /** Reads each track's E_pre and re-arms both meters for a marker that just passed. */
  begin(marker: DriftMarker, minPreTicks: number): void {
    this.learning.begin(minPreTicks);
    this.heldOut.begin(minPreTicks);
    this.phase = WAITING;
    this.markerSeq = marker.seq;
    this.markerSource = String(marker.source);
  }

  report(stream: string, track: TrackState, heldOut: boolean): RecoveryReport {
    const m = track.meter;
    const known = !Number.isNaN(track.ePre);
    const recovered = known && track.recoveredAt >= 0;
    return {
      kind: 'recovery',
      stream,
      seq: this.markerSeq,
      source: this.markerSource,
      heldOut,
      ePre: track.ePre,
      eFrozen: m.eFrozen,
      eAdapt: m.eAdapt,
      recovery: known ? m.recovery : null,
      residual: known ? m.residual : Number.NaN,
      ticksToRecovery: recovered ? track.recoveredAt : null,
      secondsToRecovery: recovered ? track.recoveredT - this.firstT : null,
    };
  }
}
