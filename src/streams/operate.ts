import { Observable, type OperatorFunction, type Subscriber } from 'rxjs';

/**
 * What an operator does with its source's notifications, for one subscription. `operate` asks for it once per
 * subscription, so per-stream state lives in the closures of the hooks and two subscribers never share it.
 */
export interface OperatorHooks<T> {
  /** Handles one message from the source. A throw becomes the output's error notification. */
  readonly next: (message: T) => void;
  /**
   * Runs when the source completes, before the output completes: the place to emit what is still open. A throw
   * becomes the output's error notification instead of the completion.
   */
  readonly complete?: () => void;
  /** Releases the subscription's state; runs once, when the subscription ends (complete, error or unsubscribe). */
  readonly cleanup?: () => void;
}

/**
 * Makes an operator from its per-subscription logic, after RxJS's own `operate` and `createOperatorSubscriber`:
 * on each subscription `init` builds the state and the hooks (a throw in `init` is an error notification), the
 * source is subscribed, its errors pass on unchanged, `complete` runs before the output completes, and the
 * teardown unsubscribes from the source and then runs `cleanup`.
 *
 * Once the output has closed (an error sent, or the subscriber gone) nothing more reaches the hooks: a synchronous
 * source may go on emitting until its subscription is returned, and those messages would otherwise still run
 * learners and callbacks whose results nobody receives. The hooks object and the source observer are created once
 * per subscription; nothing is allocated per message.
 */
export function operate<T, R>(init: (subscriber: Subscriber<R>) => OperatorHooks<T>): OperatorFunction<T, R> {
  if (typeof init !== 'function') throw new TypeError('operate: init must be a function that returns the hooks');
  return (source) =>
    new Observable<R>((subscriber) => {
      const hooks = init(subscriber);
      if (hooks == null || typeof hooks.next !== 'function') {
        throw new TypeError('operate: init must return hooks with a next function');
      }
      const { next, complete, cleanup } = hooks;
      const subscription = source.subscribe({
        next(message) {
          if (subscriber.closed) return;
          try {
            next(message);
          } catch (err) {
            subscriber.error(err);
          }
        },
        error: (err) => subscriber.error(err),
        complete() {
          if (subscriber.closed) return;
          if (complete !== undefined) {
            try {
              complete();
            } catch (err) {
              subscriber.error(err);
              return;
            }
          }
          subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        if (cleanup !== undefined) cleanup();
      };
    });
}
