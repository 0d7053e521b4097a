// The service's warning that one thread is saturated while other cores idle (src/cli/service/saturation-watch.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SATURATED_SAMPLES, SATURATED_UTILIZATION, SaturationWatch } from '../src/cli/service/saturation-watch.js';

function watch(shards: number, cores: number) {
  const warnings: { fields: object; message: string }[] = [];
  return { watch: new SaturationWatch({ shards, cores, warn: (fields, message) => warnings.push({ fields, message }) }), warnings };
}

test('one shard saturated for SATURATED_SAMPLES samples in a row on several cores: warned once, naming the fix', () => {
  const { watch: w, warnings } = watch(1, 4);
  // A calmer sample in between starts the count again.
  for (let i = 0; i < SATURATED_SAMPLES - 1; i++) assert.equal(w.sample(0.99), false);
  assert.equal(w.sample(SATURATED_UTILIZATION - 0.01), false);
  for (let i = 0; i < SATURATED_SAMPLES - 1; i++) assert.equal(w.sample(1), false);
  assert.equal(warnings.length, 0);
  assert.equal(w.sample(SATURATED_UTILIZATION), true);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.message, /4 cores are available: set streams\.shards: auto/);
  assert.deepEqual(warnings[0]!.fields, { eventLoopUtilization: SATURATED_UTILIZATION, shards: 1, cores: 4 });
  // Once: a service that stays saturated does not repeat it every 10 s.
  for (let i = 0; i < 10 * SATURATED_SAMPLES; i++) assert.equal(w.sample(1), false);
  assert.equal(warnings.length, 1);
});

test('silent where shards would not help: shards already on, or a single core', () => {
  for (const [shards, cores] of [[2, 4], [1, 1]] as const) {
    const { watch: w, warnings } = watch(shards, cores);
    for (let i = 0; i < 5 * SATURATED_SAMPLES; i++) assert.equal(w.sample(1), false);
    assert.equal(warnings.length, 0, `shards ${shards}, cores ${cores}`);
  }
});
