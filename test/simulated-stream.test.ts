import assert from 'node:assert/strict';
import { test } from 'node:test';
import { firstValueFrom, lastValueFrom, take, toArray, VirtualTimeScheduler } from 'rxjs';
import { simulatedStream } from '../src/adapters/simulator/simulated-stream.js';
import { DriftingSignal } from '../src/simulator/drifting-signal.js';
import type { StreamInput } from '../src/streams/messages.js';

const collect = (options: Parameters<typeof simulatedStream>[0]): Promise<StreamInput[]> =>
  lastValueFrom(simulatedStream(options).pipe(toArray()));

test('fast: every tick in order, session changes declared where the signal redraws its tuning', async () => {
  const events = await collect({ stream: 's', seed: 3, sessionLength: 1000, ticks: 2500, speed: 'fast', chunkTicks: 300 });
  const ticks = events.filter((e) => e.kind === 'tick');
  const markers = events.filter((e) => e.kind === 'drift');
  assert.deepEqual(ticks.map((e) => e.seq), Array.from({ length: 2500 }, (_, i) => i));
  assert.deepEqual(markers.map((m) => [m.seq, m.kind === 'drift' && m.source, m.kind === 'drift' && m.session]), [
    [1000, 'session', 'session-1'],
    [2000, 'session', 'session-2'],
  ]);
  // The marker comes right before the first tick of its session.
  const at = events.findIndex((e) => e.kind === 'drift');
  assert.equal(events[at + 1].kind, 'tick');
  assert.equal(events[at + 1].seq, 1000);

  const direct = new DriftingSignal({ seed: 3, sessionLength: 1000 });
  for (const tick of ticks) {
    direct.next();
    assert.ok(tick.kind === 'tick' && tick.y !== undefined);
    assert.deepEqual(Array.from(tick.x), Array.from(direct.x), `x of tick ${tick.seq}`);
    assert.deepEqual(Array.from(tick.y), Array.from(direct.y), `y of tick ${tick.seq}`);
    assert.equal(tick.t, tick.seq / 1000);
  }
});

test('labels arrive labelDelayTicks late, once each, with the tick\'s own y, including after the last tick', async () => {
  const delay = 7;
  const events = await collect({ stream: 's', seed: 5, ticks: 300, speed: 'fast', labelDelayTicks: delay, declareSessions: false });
  const direct = new DriftingSignal({ seed: 5 });
  const ys: number[][] = [];
  for (let i = 0; i < 300; i++) {
    direct.next();
    ys.push(Array.from(direct.y));
  }
  let lastTick = -1;
  const labelled: number[] = [];
  for (const e of events) {
    if (e.kind === 'tick') {
      assert.equal(e.y, undefined, 'no label in the frame when labels are delayed');
      lastTick = e.seq;
    } else if (e.kind === 'label') {
      // It comes right after tick seq + delay, or after the last tick for the stream's final labels.
      assert.equal(lastTick, Math.min(e.seq + delay, 299), `label of tick ${e.seq}`);
      assert.deepEqual(Array.from(e.y), ys[e.seq]);
      labelled.push(e.seq);
    } else {
      assert.fail(`unexpected ${e.kind}`);
    }
  }
  assert.deepEqual(labelled, Array.from({ length: 300 }, (_, i) => i));
  // Each label owns its array: later labels did not overwrite earlier ones.
  const labels = events.filter((e) => e.kind === 'label');
  assert.deepEqual(Array.from(labels[0].y), ys[0]);
});

test('same seed, same stream; another seed, another stream', async () => {
  const a = await collect({ stream: 's', seed: 11, ticks: 200, speed: 'fast' });
  const b = await collect({ stream: 's', seed: 11, ticks: 200, speed: 'fast' });
  const c = await collect({ stream: 's', seed: 12, ticks: 200, speed: 'fast' });
  const xs = (events: StreamInput[]) => events.flatMap((e) => (e.kind === 'tick' ? Array.from(e.x) : []));
  assert.deepEqual(xs(a), xs(b));
  assert.notDeepEqual(xs(a), xs(c));
});

test('recorded: paced at ratePerSecond on the scheduler clock', () => {
  const scheduler = new VirtualTimeScheduler();
  const seen: number[] = [];
  const sub = simulatedStream({ stream: 's', ticks: 50, ratePerSecond: 100, scheduler }).subscribe((e) => {
    if (e.kind === 'tick') seen.push(scheduler.now());
  });
  scheduler.flush();
  sub.unsubscribe();
  assert.equal(seen.length, 50);
  // Tick k is due at k * 10 ms.
  seen.forEach((at, k) => assert.ok(at >= k * 10 && at < k * 10 + 10, `tick ${k} at ${at} ms`));
});

test('an endless stream stops when unsubscribed', async () => {
  const first = await firstValueFrom(simulatedStream({ stream: 's', speed: 'fast' }).pipe(take(5000), toArray()));
  assert.equal(first.length, 5000);
});

test('bad options are refused with the option named', () => {
  assert.throws(() => simulatedStream({ stream: '' }), /stream/);
  assert.throws(() => simulatedStream({ stream: 's', ticks: -1 }), /ticks/);
  assert.throws(() => simulatedStream({ stream: 's', ratePerSecond: 0 }), /ratePerSecond/);
  assert.throws(() => simulatedStream({ stream: 's', labelDelayTicks: 1.5 }), /labelDelayTicks/);
  assert.throws(() => simulatedStream({ stream: 's', speed: 'slow' as 'fast' }), /speed/);
});
