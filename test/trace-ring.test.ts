import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TracePoint } from '../src/dashboard/dashboard-feed.js';
import { TraceRing } from '../src/dashboard/trace-ring.js';

test('the trace ring keeps the last points, oldest first, each with its shown outputs, through many wraps', () => {
  for (const [capacity, outputs] of [[1, 1], [5, 2], [7, 4], [64, 3]] as const) {
    const ring = new TraceRing(capacity, outputs);
    const kept: TracePoint[] = [];
    for (let i = 0; i < 500; i++) {
      // Streams with fewer, as many and more outputs than are shown; float32 values, as the pipeline's are.
      const n = 1 + (i % 6);
      const yhat = Float32Array.from({ length: n }, (_, j) => Math.sin(i + j));
      const y = Float32Array.from({ length: n }, (_, j) => Math.cos(i * j));
      ring.push(i * 0.02, yhat, y, i % 3 === 0);
      const k = Math.min(n, outputs);
      const point = { t: i * 0.02, yhat: Array.from(yhat.subarray(0, k)), y: Array.from(y.subarray(0, k)), heldOut: i % 3 === 0 };
      kept.push(point);
      if (kept.length > capacity) kept.shift();
      assert.deepEqual(ring.newest(), point, `capacity ${capacity}, outputs ${outputs}, point ${i}`);
      if (i % 37 === 0 || i === 499) assert.deepEqual(ring.toArray(), kept, `capacity ${capacity}, outputs ${outputs}, after point ${i}`);
    }
  }
});

test('an empty trace ring has no points; bad sizes are refused', () => {
  assert.deepEqual(new TraceRing(3, 2).toArray(), []);
  assert.throws(() => new TraceRing(0, 2), /capacity/);
  assert.throws(() => new TraceRing(3, 0), /outputs/);
  assert.throws(() => new TraceRing(3, Number.NaN), /outputs/);
});
