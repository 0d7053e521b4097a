import type { Observable } from 'rxjs';
import { DriftingSignal, type DriftingSignalOptions } from '../../simulator/drifting-signal.js';
import type { DriftMarker, StreamInput } from '../../streams/messages.js';
import { checkPacing, pacedTicks, type PacingOptions } from './paced-ticks.js';

export interface SimulatedStreamOptions extends DriftingSignalOptions, PacingOptions {
  /** Declare each session change as a DriftMarker with source 'session' (default true). */
  readonly declareSessions?: boolean;
}

/**
 * The simulator as a source adapter: a DriftingSignal (seeded, tuning redrawn every session) emitted as stream
 * events, so that the whole spine (operators, metrics, sinks) runs with no external service. Session changes are
 * declared as drift markers, the way a replayed recording declares its session boundaries; with
 * `declareSessions: false` the drift is unannounced and only a detector can find it.
 *
 * Each event owns fresh copies of x and y (messages own their arrays); pending delayed labels live in a
 * preallocated ring of `labelDelayTicks + 1` labels. A label `labelDelayTicks` late arrives right after the tick that
 * many ticks later (ScoredTick.delay equals labelDelayTicks), as in a replay. The pacing is paced-ticks.ts'.
 */
export function simulatedStream(options: SimulatedStreamOptions): Observable<StreamInput> {
  const pacing = checkPacing(options, 'simulatedStream');
  const { stream } = pacing;
  const declareSessions = options.declareSessions ?? true;

  return pacedTicks(pacing, (subscriber) => {
    // A new signal per subscription: every subscriber sees the same seeded stream from its start.
    const signal = new DriftingSignal(options);
    let session = 0;
    return {
      outputSize: signal.outputSize,
      x: signal.x,
      y: signal.y,
      advance(seq: number, t: number): void {
        if (signal.next() && declareSessions) {
          session++;
          const marker: DriftMarker = { kind: 'drift', stream, seq, t, source: 'session', session: `session-${session}` };
          subscriber.next(marker);
        }
      },
    };
  });
}
