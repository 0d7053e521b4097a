// operate, the subscription plumbing every stream operator shares, and routeScoredAndDrift, the keyed dispatch of
// detectDrift and trackRecovery. Marble tests (TestScheduler) of operate itself: values, empty, error, the complete
// hook, a throwing next, a throwing complete hook, never-ending with unsubscribe, and the cleanup running exactly
// once however the subscription ends. Decisions tested here: once the output has closed, nothing more reaches the
// hooks (a synchronous source that keeps emitting after an error, or after the subscriber left); a throwing init is
// an error notification; bad hooks are programming errors.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { from, NEVER, Observable, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import type { DriftMarker, Prediction, ScoredTick } from '../src/streams/messages.js';
import { operate, type OperatorHooks } from '../src/streams/operate.js';
import type { PrequentialInput } from '../src/streams/prequential.js';
import { routeScoredAndDrift } from '../src/streams/route-scored-and-drift.js';

const scheduler = () => new TestScheduler((actual, expected) => assert.deepStrictEqual(actual, expected));

/**
 * A small stateful operator built with operate: doubles each number, emits the running sum when the source
 * completes, and counts its inits and cleanups so tests can see the per-subscription lifecycle.
 */
function doubleThenSum(
  counts = { inits: 0, cleanups: 0 },
  failures: { next?: (n: number) => boolean; complete?: boolean } = {},
) {
  return operate<number, number>((subscriber) => {
    counts.inits++;
    let sum = 0;
    return {
      next(n) {
        if (failures.next?.(n)) throw new Error(`bad ${n}`);
        sum += n;
        subscriber.next(2 * n);
      },
      complete() {
        if (failures.complete) throw new Error('flush failed');
        subscriber.next(sum);
      },
      cleanup: () => {
        counts.cleanups++;
        sum = Number.NaN;
      },
    };
  });
}

describe('operate', () => {
  test('values: next handles each message in order', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-b-c-', { a: 1, b: 2, c: 3 });
      expectObservable(source.pipe(doubleThenSum())).toBe('-a-b-c-', { a: 2, b: 4, c: 6 });
      expectSubscriptions(source.subscriptions).toBe('^');
    });
  });

  test('empty: the complete hook runs, then the output completes', () => {
    const counts = { inits: 0, cleanups: 0 };
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold<number>('|').pipe(doubleThenSum(counts))).toBe('(s|)', { s: 0 });
    });
    assert.deepEqual(counts, { inits: 1, cleanups: 1 });
  });

  test('complete hook: what it emits comes after the values and before the completion', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-b--|', { a: 1, b: 5 });
      expectObservable(source.pipe(doubleThenSum())).toBe('-a-b--(s|)', { a: 2, b: 10, s: 6 });
      expectSubscriptions(source.subscriptions).toBe('^-----!');
    });
  });

  test('without a complete hook the completion passes straight on', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const op = operate<string, string>((subscriber) => ({ next: (v) => subscriber.next(v.toUpperCase()) }));
      expectObservable(cold('-a-|').pipe(op)).toBe('-A-|');
    });
  });

  test('error: passes on unchanged, the complete hook does not run, the cleanup does', () => {
    const counts = { inits: 0, cleanups: 0 };
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-#', { a: 1 }, new Error('source broke'));
      expectObservable(source.pipe(doubleThenSum(counts))).toBe('-a-#', { a: 2 }, new Error('source broke'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
    assert.deepEqual(counts, { inits: 1, cleanups: 1 });
  });

  test('a throwing next becomes the error notification and the source is unsubscribed', () => {
    const counts = { inits: 0, cleanups: 0 };
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-b-c-|', { a: 1, b: 2, c: 3 });
      const op = doubleThenSum(counts, { next: (n) => n === 2 });
      expectObservable(source.pipe(op)).toBe('-a-#', { a: 2 }, new Error('bad 2'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
    assert.deepEqual(counts, { inits: 1, cleanups: 1 });
  });

  test('a throwing complete hook becomes the error notification instead of the completion', () => {
    const counts = { inits: 0, cleanups: 0 };
    scheduler().run(({ cold, expectObservable }) => {
      const op = doubleThenSum(counts, { complete: true });
      expectObservable(cold('-a-|', { a: 1 }).pipe(op)).toBe('-a-#', { a: 2 }, new Error('flush failed'));
    });
    assert.deepEqual(counts, { inits: 1, cleanups: 1 });
  });

  test('never-ending: no completion, and unsubscribing runs the cleanup once', () => {
    const counts = { inits: 0, cleanups: 0 };
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-b-c-d-', { a: 1, b: 2, c: 3, d: 4 });
      expectObservable(source.pipe(doubleThenSum(counts)), '^----!').toBe('-a-b-', { a: 2, b: 4 });
      expectSubscriptions(source.subscriptions).toBe('^----!');
    });
    assert.deepEqual(counts, { inits: 1, cleanups: 1 });
  });

  test('the cleanup runs once however the subscription ends, even when unsubscribed again afterwards', () => {
    const counts = { inits: 0, cleanups: 0 };
    const completed = from([1, 2]).pipe(doubleThenSum(counts)).subscribe();
    assert.equal(counts.cleanups, 1);
    completed.unsubscribe();
    assert.equal(counts.cleanups, 1);

    const errored = from([1, 2]).pipe(doubleThenSum(counts, { next: () => true })).subscribe({ error: () => {} });
    errored.unsubscribe();
    assert.equal(counts.cleanups, 2);

    const open = (NEVER as Observable<number>).pipe(doubleThenSum(counts)).subscribe();
    assert.equal(counts.cleanups, 2);
    open.unsubscribe();
    open.unsubscribe();
    assert.equal(counts.cleanups, 3);
    assert.equal(counts.inits, 3);
  });

  test('state is per subscription: init runs for each subscriber and they never share it', () => {
    const counts = { inits: 0, cleanups: 0 };
    const op = doubleThenSum(counts);
    const sums: number[] = [];
    const source = from([1, 2, 3]);
    source.pipe(op).subscribe((v) => sums.push(v));
    source.pipe(op).subscribe((v) => sums.push(v));
    // Each subscription ends with its own sum of 1 + 2 + 3: a shared sum would end the second one at 12.
    assert.deepEqual(sums, [2, 4, 6, 6, 2, 4, 6, 6]);
    assert.deepEqual(counts, { inits: 2, cleanups: 2 });
  });

  test('after a throw in next, a synchronous source that goes on emitting reaches no hook', () => {
    const seen: number[] = [];
    let completeRan = false;
    const op = operate<number, number>(() => ({
      next(n) {
        seen.push(n);
        if (n === 2) throw new Error('stop');
      },
      complete: () => void (completeRan = true),
    }));
    let error: unknown;
    from([1, 2, 3, 4]).pipe(op).subscribe({ error: (e) => (error = e) });
    assert.deepEqual(seen, [1, 2]);
    assert.equal(completeRan, false);
    assert.match(String(error), /stop/);
  });

  test('once the subscriber has left, a synchronous source reaches no hook', () => {
    const seen: number[] = [];
    const op = operate<number, number>((subscriber) => ({
      next(n) {
        seen.push(n);
        subscriber.next(n);
      },
    }));
    const out: number[] = [];
    from([1, 2, 3, 4]).pipe(op, take(2)).subscribe((v) => out.push(v));
    assert.deepEqual(out, [1, 2]);
    assert.deepEqual(seen, [1, 2]);
  });

  test('a throwing init is an error notification, and the source is not subscribed', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-|');
      const op = operate<string, string>(() => {
        throw new Error('no state');
      });
      expectObservable(source.pipe(op)).toBe('#', undefined, new Error('no state'));
      expectSubscriptions(source.subscriptions).toBe([]);
    });
  });

  test('bad hooks and a missing init are programming errors', () => {
    assert.throws(() => operate(undefined as never), /operate: init must be a function/);
    let error: unknown;
    from([1]).pipe(operate(() => ({}) as OperatorHooks<number>)).subscribe({ error: (e) => (error = e) });
    assert.ok(error instanceof TypeError);
    assert.match(String(error), /hooks with a next function/);
  });
});

describe('routeScoredAndDrift', () => {
  const scored = (seq: number, stream: unknown = 'a'): ScoredTick =>
    ({
      kind: 'scored', stream, seq, t: seq, y: Float32Array.of(1), yhat: Float32Array.of(0), yLast: Float32Array.of(0),
      yMean: Float32Array.of(0), delay: 0, heldOut: false, version: 0,
    }) as ScoredTick;
  const marker = (seq: number): DriftMarker => ({ kind: 'drift', stream: 'a', seq, t: seq, source: 'session' });
  const prediction: Prediction = { kind: 'prediction', stream: 'a', seq: 0, t: 0, yhat: Float32Array.of(0), version: 0, predictedAt: 0 };

  /** An operator whose handlers only record what they were given; everything else is the router's doing. */
  function recorder() {
    const handled: string[] = [];
    const op = operate<PrequentialInput, PrequentialInput>((subscriber) => ({
      next: routeScoredAndDrift(
        subscriber,
        (s) => void handled.push(`scored ${s.seq}`),
        (m) => void handled.push(`drift ${m.seq}`),
      ),
    }));
    return { handled, op };
  }
  const collect = (inputs: readonly unknown[], op: (s: Observable<PrequentialInput>) => Observable<PrequentialInput>) => {
    const out: PrequentialInput[] = [];
    from(inputs as PrequentialInput[]).pipe(op).subscribe((m) => out.push(m));
    return out;
  };

  test('keyed scored ticks and markers go to their handlers, which decide what passes on', () => {
    const { handled, op } = recorder();
    const out = collect([scored(1), marker(2), scored(3)], op);
    assert.deepEqual(handled, ['scored 1', 'drift 2', 'scored 3']);
    assert.deepEqual(out, []);
  });

  test('every other message passes on unchanged and reaches no handler', () => {
    const { handled, op } = recorder();
    const rejected = { kind: 'rejected', reason: 'dimension', message: 'm' } as const;
    const weird = { kind: 'something-else' };
    const out = collect([prediction, rejected, weird, null], op);
    assert.deepEqual(handled, []);
    assert.equal(out.length, 4);
    assert.equal(out[0], prediction);
    assert.equal(out[1], rejected);
    assert.equal(out[2], weird);
    assert.equal(out[3], null);
  });

  test('an unkeyed scored tick or marker becomes a malformed Rejection in its place', () => {
    const { handled, op } = recorder();
    const out = collect([scored(1, 7), { ...marker(2), seq: Number.NaN }, { kind: 'drift', stream: 'a' }, scored(4)], op);
    assert.deepEqual(handled, ['scored 4']);
    assert.deepEqual(out, [
      { kind: 'rejected', reason: 'malformed', message: 'scored message without a string stream key and a finite seq' },
      { kind: 'rejected', reason: 'malformed', message: 'drift message without a string stream key and a finite seq' },
      { kind: 'rejected', reason: 'malformed', message: 'drift message without a string stream key and a finite seq' },
    ]);
  });

  test('a throwing handler errors the output through operate', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const op = operate<PrequentialInput, PrequentialInput>((subscriber) => ({
        next: routeScoredAndDrift(
          subscriber,
          () => {
            throw new Error('handler broke');
          },
          (m) => subscriber.next(m),
        ),
      }));
      const source = cold<PrequentialInput>('-m-s-m-|', { m: marker(1), s: scored(2) });
      expectObservable(source.pipe(op)).toBe('-m-#', { m: marker(1) }, new Error('handler broke'));
    });
  });
});
