import type { Subscriber } from 'rxjs';
import { isKeyed } from './join-labels.js';
import { rejection } from './messages.js';
import type { DriftMarker, ScoredTick } from './messages.js';
import type { PrequentialInput } from './prequential.js';

/**
 * The `next` of an operator that watches scored ticks and drift markers per stream (detectDrift, trackRecovery):
 * every other message passes on unchanged; a 'scored' or 'drift' message without a string stream key and a finite
 * seq becomes a 'malformed' Rejection in its place, since it cannot be given to any stream's state; a keyed one
 * goes to `onScored` or `onMarker`, which decide what passes on. Built once per subscription.
 */
export function routeScoredAndDrift(
  subscriber: Subscriber<PrequentialInput>,
  onScored: (scored: ScoredTick) => void,
  onMarker: (marker: DriftMarker) => void,
): (message: PrequentialInput) => void {
  return (message) => {
    const kind = message?.kind;
    if (kind !== 'scored' && kind !== 'drift') return subscriber.next(message);
    if (!isKeyed(message)) return subscriber.next(rejection('malformed', `${kind} message without a string stream key and a finite seq`));
    if (kind === 'scored') onScored(message as ScoredTick);
    else onMarker(message as DriftMarker);
  };
}
