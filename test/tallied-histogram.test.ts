import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import type { RegistryContentType } from 'prom-client';
import { Random } from '../src/learners/random.js';
import { TalliedHistogram } from '../src/metrics/tallied-histogram.js';
import { EVENT_TO_PREDICTION_BUCKETS, LABEL_LAG_BUCKETS, TICK_DURATION_BUCKETS } from '../src/metrics/driftline-metrics.js';

interface Setup {
  readonly name: string;
  readonly help: string;
  readonly buckets: readonly number[];
  readonly label?: string;
}

const TICK: Setup = { name: 'tick_seconds', help: 'Time per tick, in seconds.', buckets: TICK_DURATION_BUCKETS };
const LAG: Setup = { name: 'lag_ticks', help: 'Ticks "late"\\ or\nnot.', buckets: LABEL_LAG_BUCKETS };
const PHASED: Setup = {
  name: 'latency_seconds',
  help: 'Latency, in seconds, by phase.',
  buckets: EVENT_TO_PREDICTION_BUCKETS,
  label: 'phase',
};

/** A TalliedHistogram and a prom-client Histogram of the same definition, each in its own registry. */
function pair(setup: Setup, contentType: RegistryContentType = Registry.PROMETHEUS_CONTENT_TYPE) {
  const ours = new Registry();
  const theirs = new Registry();
  // prom-client's typings take no constructor argument and bind a Registry to the Prometheus format.
  for (const registry of [ours, theirs]) (registry as Registry<RegistryContentType>).setContentType(contentType);
  const labelNames = setup.label === undefined ? [] : [setup.label];
  const tallied = new TalliedHistogram<string>({ ...setup, labelNames: labelNames as [string], registers: [ours] });
  const reference = new Histogram({ ...setup, buckets: [...setup.buckets], labelNames, registers: [theirs] });
  const observe = (value: number, labelValue?: string): void => {
    if (setup.label === undefined || labelValue === undefined) {
      tallied.observe(value);
      reference.observe(value);
    } else {
      tallied.observe(value, { [setup.label]: labelValue });
      reference.observe({ [setup.label]: labelValue }, value);
    }
  };
  const assertSameOutput = async (): Promise<void> => {
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.deepEqual(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());
  };
  return { ours, theirs, tallied, reference, observe, assertSameOutput };
}

/** Values on, just beside, between, below and above the bounds, and some far off. */
function randomValue(random: Random, buckets: readonly number[]): number {
  const bound = buckets[Math.floor(random.next() * buckets.length)];
  switch (Math.floor(random.next() * 6)) {
    case 0:
      return bound;
    case 1:
      return bound * (1 + 1e-12) + 1e-300;
    case 2:
      return bound * (1 - 1e-12) - 1e-300;
    case 3:
      return random.uniform(0, buckets[buckets.length - 1] * 1.5);
    case 4:
      return Math.round(random.uniform(-3, buckets[buckets.length - 1] * 2));
    default:
      return bound * Math.exp(random.normal());
  }
}

for (const setup of [TICK, LAG, PHASED]) {
  test(`${setup.name}: random observations print as prom-client's Histogram prints them`, async () => {
    for (let seed = 1; seed <= 25; seed++) {
      const random = new Random(seed);
      const { observe, assertSameOutput } = pair(setup);
      const n = Math.floor(random.next() * 400);
      // A third phase value, first seen late, checks series order and first-use tallies.
      const phases = ['steady', 'cold', 'warm\n"x"'];
      for (let i = 0; i < n; i++) {
        const phase = phases[Math.min(2, Math.floor(random.next() * (i < n / 2 ? 2 : 3)))];
        observe(randomValue(random, setup.buckets), phase);
      }
      await assertSameOutput();
    }
  });
}

test('the same with default labels and in the OpenMetrics format', async () => {
  for (const setup of [TICK, PHASED]) {
    const random = new Random(7);
    const { ours, theirs, observe, assertSameOutput } = pair(setup, Registry.OPENMETRICS_CONTENT_TYPE);
    for (const registry of [ours, theirs]) registry.setDefaultLabels({ instance: 'a', zone: 'b' });
    for (let i = 0; i < 100; i++) observe(randomValue(random, setup.buckets), i % 3 === 0 ? 'cold' : 'steady');
    await assertSameOutput();
    assert.match(await ours.metrics(), /zone="b"[^}]*\} \d+\n# EOF\n$/);
  }
});

test('zero observations print what prom-client prints: zero buckets unlabelled, no series labelled', async () => {
  for (const setup of [TICK, PHASED]) await pair(setup).assertSameOutput();
  const { ours } = pair(LAG);
  const text = await ours.metrics();
  assert.match(text, /^lag_ticks_bucket\{le="0"\} 0$/m);
  assert.match(text, /^lag_ticks_bucket\{le="\+Inf"\} 0$/m);
  assert.match(text, /^lag_ticks_sum 0$/m);
  assert.match(text, /^lag_ticks_count 0$/m);
});

test('a value on a bound counts in that bucket (le is inclusive); just above it, in the next', async () => {
  const registry = new Registry();
  const buckets = [0, 1, 2.5, 10];
  const histogram = new TalliedHistogram({ name: 'h', help: 'h', buckets, registers: [registry] });
  for (const b of buckets) histogram.observe(b);
  histogram.observe(-1);
  histogram.observe(2.5000000000000004);
  histogram.observe(11);
  const text = await registry.metrics();
  const cumulative = [2, 3, 4, 6, 7];
  for (const [i, le] of ['0', '1', '2.5', '10', '+Inf'].entries()) {
    assert.match(text, new RegExp(`^h_bucket\\{le="${le.replace('+', '\\+')}"\\} ${cumulative[i]}$`, 'm'));
  }
});

test('reset() and Registry.resetMetrics() forget observations the way prom-client does', async () => {
  for (const setup of [TICK, PHASED]) {
    const { ours, theirs, tallied, reference, observe, assertSameOutput } = pair(setup);
    observe(0.001, 'cold');
    observe(0.3, 'steady');
    tallied.reset();
    reference.reset();
    // prom-client prints no series after a reset, not even the unlabelled zero series.
    await assertSameOutput();
    observe(0.02, 'steady');
    observe(7, 'cold');
    await assertSameOutput();
    ours.resetMetrics();
    theirs.resetMetrics();
    await assertSameOutput();
    observe(0.0005, 'cold');
    await assertSameOutput();
  }
});

test('a non-finite value throws and leaves the tallies as they were', async () => {
  for (const setup of [TICK, PHASED]) {
    const { tallied, observe, assertSameOutput } = pair(setup);
    observe(0.004, 'cold');
    const labels = setup.label === undefined ? undefined : { [setup.label]: 'cold' };
    for (const bad of [NaN, Infinity, -Infinity]) assert.throws(() => tallied.observe(bad, labels), TypeError);
    await assertSameOutput();
  }
});

test('a labelled histogram refuses an observation without its label', () => {
  const histogram = new TalliedHistogram<'phase'>({
    name: 'p',
    help: 'p',
    buckets: [1],
    labelNames: ['phase'],
    registers: [],
  });
  assert.throws(() => histogram.observe(1), TypeError);
});

test('the definition is checked: bucket order, label names, duplicate registration', () => {
  const make = (buckets: number[], labelNames: [string] | [] = [], registers: Registry[] = []) =>
    new TalliedHistogram<string>({ name: 'x', help: 'x', buckets, labelNames, registers });
  assert.throws(() => make([1, 0.5]), RangeError);
  assert.throws(() => make([1, 1]), RangeError);
  assert.throws(() => make([1, Infinity]), RangeError);
  assert.throws(() => make([1], ['le']));
  assert.throws(() => make([1], ['a-b']));
  const registry = new Registry();
  make([1], [], [registry]);
  assert.throws(() => make([1], [], [registry]), /already been registered/);
});
