import type { OperatorFunction } from 'rxjs';
import { RecoveryMeter } from '../evaluation/recovery.js';
import { WindowedMean } from '../evaluation/windowed-mean.js';
import { refusal, RefusedStreams } from './stream-detector-bank.js';
import { MALFORMED, tickError } from './tick-error.js';
import { rejection } from './messages.js';
import type { DriftMarker, RecoveryReport, ScoredTick } from './messages.js';
import { operate } from './operate.js';
import type { PrequentialInput } from './prequential.js';
import { routeScoredAndDrift } from './route-scored-and-drift.js';

export interface TrackRecoveryOptions {
  /** Same value as predictThenLearn's recoveryTicks (the shadow's lifetime); a positive integer. */
  readonly recoveryTicks: number;
  /** Ticks of the windowed learner error that E_pre is read from, and RecoveryMeter's window. */
  readonly window: number;
  /** Recovered when windowed E_adapt <= (1 + tolerance) * E_pre. */
  readonly tolerance: number;
  /** Most streams tracked at once; past it a stream passes through unmeasured (default: no limit). */
  readonly maxStreams?: number;
}

/**
 * Recovery after every drift marker (DESIGN section 5), measured with RecoveryMeter on the frozen shadow that
 * predictThenLearn forks at the marker (ScoredTick.yFrozen). Errors are tickError's: the mean over outputs of
 * (yhat - y)^2.
 *
 * Per stream, a WindowedMean of `window` scored ticks holds the learner's error on every scored tick (held-out ones
 * too), except the skipped ones below. When a DriftMarker passes, its mean is E_pre, and a measurement starts:
 *
 * - Ticks predicted before the marker reached predictThenLearn are scored after it when labels come late; they
 *   carry no yFrozen (or, with a detection marker during an earlier shadow, that earlier shadow's). Until the
 *   first ScoredTick with yFrozen and seq >= marker.seq, the stream's ScoredTicks are skipped; so is, all
 *   measurement long, any ScoredTick with seq < marker.seq, or without yFrozen and with seq below the first
 *   measured one (a late label out of order). Skipped ticks go to neither the meter nor the E_pre window: E_pre
 *   was read when the marker passed, and in the window they would mix the tail of the old regime into the next
 *   E_pre; the meter needs a frozen prediction they lack.
 * - From the first ScoredTick with yFrozen on, RecoveryMeter (window min(window, recoveryTicks), the tolerance
 *   given) is fed the learner's error (E_adapt) and the frozen shadow's error (E_frozen) of each such tick; the
 *   learner's error also goes on into the E_pre window, ready for the next marker.
 * - The measurement closes when the meter has seen `recoveryTicks` ticks, when a ScoredTick without yFrozen and
 *   with seq above the first measured one arrives (the shadow has ended), when the stream's next marker passes
 *   (the next measurement starts right after), or when the source completes (each open measurement reports what
 *   it has; an error notification reports nothing).
 *
 * The RecoveryReport comes right after the message that closed its measurement: seq and source of the marker,
 * ePre, and the meter's eFrozen, eAdapt, recovery, residual (E_adapt / E_pre) and ticksToRecovery (its
 * timeToRecovery: ticks from the first measured tick, which is 0); secondsToRecovery is the t of the tick that
 * recovered minus the t of the first measured tick. E_pre is not available when fewer than
 * max(1, floor(window / 4)) scored ticks were in the window when the marker passed, or their mean error was 0
 * (nothing to compare with): the report then has ePre NaN, recovery null, residual NaN and ticksToRecovery and
 * secondsToRecovery null, while eFrozen and eAdapt are still measured. A measurement that closes before its first
 * tick has eFrozen and eAdapt NaN. With no shadow in predictThenLearn (its recoveryTicks 0) no tick carries
 * yFrozen: a measurement then waits, skipping every tick, until the next marker or the end.
 *
 * A marker that comes before the stream's first ScoredTick (the first session a replay declares) starts no
 * measurement and gets no report: nothing came before it to recover.
 *
 * Everything else passes through unchanged, in order. A 'scored' or 'drift' message without a string stream and a
 * finite seq, or a ScoredTick whose yhat and y are not number arrays of one length, becomes a 'malformed'
 * Rejection in its place; a tick whose learner or frozen error is not finite passes on and is left out of the
 * window and the meter (both take finite numbers only). Past `maxStreams` streams, a new stream passes through
 * unmeasured, with one 'too-many-streams' Rejection after its first message. State is per subscription: per stream,
 * one WindowedMean and one RecoveryMeter, re-armed in place for each marker.
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
      const report = s.report(stream);
      s.phase = IDLE;
      subscriber.next(report);
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
          if (adaptFinite) s.errors.push(adaptError);
          return;
        }
        if (!adaptFinite || !Number.isFinite(frozenError)) return;
        s.errors.push(adaptError);
        const wasRecovered = s.meter.recovered;
        s.meter.update(adaptError, frozenError);
        if (!wasRecovered && s.meter.recovered) s.recoveredT = scored.t;
        if (s.meter.ticks >= recoveryTicks) close(s, scored.stream);
        return;
      }
      if (adaptFinite) s.errors.push(adaptError);
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
      },
    };
  });
}

/** No marker being measured. */
const IDLE = 0;
/** A marker passed; waiting for the first ScoredTick that carries the shadow's prediction. */
const WAITING = 1;
/** Feeding the meter. */
const MEASURING = 2;
type Phase = typeof IDLE | typeof WAITING | typeof MEASURING;

/** Per-stream state: the E_pre window, the meter and the marker being measured. */
class StreamRecovery {
  readonly errors: WindowedMean;
  readonly meter: RecoveryMeter;
  phase: Phase = IDLE;
  /** Scored ticks of the stream so far. */
  scoredTicks = 0;
  markerSeq = 0;
  markerSource = '';
  /** NaN when E_pre was not available at the marker. */
  ePre = Number.NaN;
  firstSeq = 0;
  firstT = 0;
  recoveredT = Number.NaN;

  constructor(window: number, meterWindow: number, tolerance: number) {
    this.errors = new WindowedMean(window);
    // E_pre 1 is a placeholder: `begin` re-arms the meter with each marker's E_pre.
    this.meter = new RecoveryMeter(1, { window: meterWindow, tolerance });
  }

  /** Reads E_pre and re-arms the meter for a marker that just passed. */
  begin(marker: DriftMarker, minPreTicks: number): void {
    const mean = this.errors.mean;
    this.ePre = this.errors.count >= minPreTicks && mean > 0 && Number.isFinite(mean) ? mean : Number.NaN;
    // Without an E_pre the meter still measures E_adapt and E_frozen; the figures relative to E_pre are dropped.
    this.meter.start(Number.isNaN(this.ePre) ? 1 : this.ePre);
    this.phase = WAITING;
    this.markerSeq = marker.seq;
    this.markerSource = String(marker.source);
    this.recoveredT = Number.NaN;
  }

  report(stream: string): RecoveryReport {
    const m = this.meter;
    const known = !Number.isNaN(this.ePre);
    const ticksToRecovery = known ? m.timeToRecovery : null;
    return {
      kind: 'recovery',
      stream,
      seq: this.markerSeq,
      source: this.markerSource,
      ePre: this.ePre,
      eFrozen: m.eFrozen,
      eAdapt: m.eAdapt,
      recovery: known ? m.recovery : null,
      residual: known ? m.residual : Number.NaN,
      ticksToRecovery,
      secondsToRecovery: ticksToRecovery === null ? null : this.recoveredT - this.firstT,
    };
  }
}
