import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, register as globalRegistry } from 'prom-client';
import { createMetricsRegistry } from '../src/metrics/registry.js';
import { DriftlineMetrics, OTHER_LABEL } from '../src/metrics/driftline-metrics.js';
import { startMetricsServer } from '../src/metrics/server.js';
import type {
  DriftMarker,
  ErrorFigures,
  Prediction,
  PrequentialReport,
  RecoveryReport,
  Rejection,
  ScoredTick,
} from '../src/streams/messages.js';

// ---- a small parser for the Prometheus text format ----------------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    assert.ok(m, `unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const lm of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      }
    }
    const raw = m[3];
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    samples.push({ name: m[1], labels, value });
  }
  return samples;
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/** The value of the one sample matching name and labels (exactly one must match). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = find(samples, name, labels);
  assert.equal(hits.length, 1, `${name}${JSON.stringify(labels)}: ${hits.length} samples, want 1`);
  return hits[0].value;
}

async function scrape(registry: Registry): Promise<Sample[]> {
  return parseExposition(await registry.metrics());
}

function fresh(options?: ConstructorParameters<typeof DriftlineMetrics>[1]) {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  return { registry, metrics: new DriftlineMetrics(registry, options) };
}

// ---- hand-made messages ------------------------------------------------------------------------------------

const f32 = (...v: number[]) => Float32Array.from(v);

function figures(mse: number, mseEwma: number, r2: number[], accuracy?: number): ErrorFigures {
  return accuracy === undefined ? { mse, mseEwma, r2 } : { mse, mseEwma, r2, accuracy };
}

function prequential(over: Partial<PrequentialReport> = {}): PrequentialReport {
  return {
    kind: 'prequential',
    stream: 's1',
    seq: 100,
    labelDelay: 3,
    heldOut: false,
    window: 50,
    count: 100,
    figures: {
      learner: figures(0.25, 0.3, [0.9, 0.75]),
      'last-label': figures(0.5, 0.55, [0.8, 0.5]),
      'running-mean': figures(1, 1.1, [0, -0.25]),
    },
    skillVsLastLabel: 0.5,
    skillVsRunningMean: 0.75,
    ...over,
  };
}

function recovery(over: Partial<RecoveryReport> = {}): RecoveryReport {
  return {
    kind: 'recovery',
    stream: 's1',
    seq: 500,
    source: 'session',
    heldOut: false,
    ePre: 0.1,
    eFrozen: 1.1,
    eAdapt: 0.35,
    recovery: 0.75,
    residual: 3.5,
    ticksToRecovery: 120,
    secondsToRecovery: 2,
    ...over,
  };
}

const drift = (source: string, stream = 's1'): DriftMarker => ({ kind: 'drift', stream, seq: 10, t: 1.5, source });

// ---- tests -------------------------------------------------------------------------------------------------

test('createMetricsRegistry: a fresh registry with default metrics, never the global one', async () => {
  const a = createMetricsRegistry();
  const b = createMetricsRegistry({ prefix: 'driftline_' });
  const none = createMetricsRegistry({ defaultMetrics: false });
  assert.notEqual(a, globalRegistry);
  assert.notEqual(a, b);
  assert.ok(find(await scrape(a), 'process_cpu_user_seconds_total').length === 1);
  assert.ok(find(await scrape(b), 'driftline_process_cpu_user_seconds_total').length === 1);
  assert.equal((await none.metrics()).trim(), '');
  assert.equal(find(parseExposition(await globalRegistry.metrics()), 'process_cpu_user_seconds_total').length, 0);
});

test('observe: prequential report sets error, skill and label-delay gauges', async () => {
  const { registry, metrics } = fresh();
  metrics.observe(prequential());
  metrics.observe(
    prequential({
      heldOut: true,
      figures: {
        learner: figures(0.4, 0.45, [0.6], 0.875),
        'last-label': figures(0.8, 0.85, [0.2], 0.5),
        'running-mean': figures(1.6, 1.65, [0], 0.25),
      },
      skillVsLastLabel: 0.5,
      skillVsRunningMean: 0.75,
    }),
  );
  const s = await scrape(registry);
  const err = 'driftline_prequential_error';
  assert.equal(value(s, err, { stream: 's1', predictor: 'learner', metric: 'mse', held_out: 'false' }), 0.25);
  assert.equal(value(s, err, { stream: 's1', predictor: 'learner', metric: 'mse_ewma', held_out: 'false' }), 0.3);
  assert.equal(value(s, err, { stream: 's1', predictor: 'learner', metric: 'r2', held_out: 'false', output: '0' }), 0.9);
  assert.equal(value(s, err, { stream: 's1', predictor: 'learner', metric: 'r2', held_out: 'false', output: '1' }), 0.75);
  assert.equal(value(s, err, { stream: 's1', predictor: 'last-label', metric: 'mse', held_out: 'false' }), 0.5);
  assert.equal(value(s, err, { stream: 's1', predictor: 'running-mean', metric: 'r2', held_out: 'false', output: '1' }), -0.25);
  assert.equal(value(s, err, { stream: 's1', predictor: 'learner', metric: 'mse', held_out: 'true' }), 0.4);
  assert.equal(value(s, err, { stream: 's1', predictor: 'learner', metric: 'accuracy', held_out: 'true' }), 0.875);
  assert.equal(find(s, err, { metric: 'accuracy', held_out: 'false' }).length, 0, 'no accuracy without class outputs');
  // mse and mse_ewma carry no output label.
  assert.equal(find(s, err, { metric: 'mse' })[0].labels.output, undefined);
  // 3 predictors x (mse, mse_ewma, 2 r2) + 3 x (mse, mse_ewma, 1 r2, accuracy)
  assert.equal(find(s, err).length, 24);
  assert.equal(value(s, 'driftline_prequential_skill', { stream: 's1', reference: 'last-label', held_out: 'false' }), 0.5);
  assert.equal(value(s, 'driftline_prequential_skill', { stream: 's1', reference: 'running-mean', held_out: 'true' }), 0.75);
  assert.equal(value(s, 'driftline_prequential_label_delay_ticks', { stream: 's1', held_out: 'false' }), 3);
});

test('observe: r2 outputs are capped at maxOutputs', async () => {
  const { registry, metrics } = fresh({ maxOutputs: 2 });
  const wide = figures(1, 1, [0.1, 0.2, 0.3, 0.4, 0.5]);
  metrics.observe(prequential({ figures: { learner: wide, 'last-label': wide, 'running-mean': wide } }));
  const s = await scrape(registry);
  assert.deepEqual(
    find(s, 'driftline_prequential_error', { predictor: 'learner', metric: 'r2' }).map((x) => x.labels.output).sort(),
    ['0', '1'],
  );
});

test('observe: recovery report sets ratio, residual and time to recovery, per track (held_out)', async () => {
  const { registry, metrics } = fresh();
  metrics.observe(recovery());
  metrics.observe(recovery({ stream: 's2', recovery: 1.25, residual: 0.8, secondsToRecovery: 20 }));
  // The same drift on the held-out ticks of s1: its own series, beside the learning track's.
  metrics.observe(recovery({ heldOut: true, recovery: 0.5, residual: 6, secondsToRecovery: 40 }));
  let s = await scrape(registry);
  assert.equal(value(s, 'driftline_recovery_ratio', { stream: 's1', held_out: 'false' }), 0.75);
  assert.equal(value(s, 'driftline_recovery_ratio', { stream: 's1', held_out: 'true' }), 0.5);
  assert.equal(value(s, 'driftline_recovery_ratio', { stream: 's2', held_out: 'false' }), 1.25);
  assert.equal(find(s, 'driftline_recovery_ratio', { stream: 's2', held_out: 'true' }).length, 0);
  assert.equal(value(s, 'driftline_recovery_residual', { stream: 's1', held_out: 'false' }), 3.5);
  assert.equal(value(s, 'driftline_recovery_residual', { stream: 's1', held_out: 'true' }), 6);
  assert.equal(value(s, 'driftline_time_to_recovery_seconds_count', { held_out: 'false' }), 2);
  assert.equal(value(s, 'driftline_time_to_recovery_seconds_sum', { held_out: 'false' }), 22);
  assert.equal(value(s, 'driftline_time_to_recovery_seconds_bucket', { held_out: 'false', le: '2.5' }), 1);
  assert.equal(value(s, 'driftline_time_to_recovery_seconds_bucket', { held_out: 'false', le: '+Inf' }), 2);
  assert.equal(value(s, 'driftline_time_to_recovery_seconds_count', { held_out: 'true' }), 1);
  assert.equal(value(s, 'driftline_time_to_recovery_seconds_sum', { held_out: 'true' }), 40);
  assert.equal(value(s, 'driftline_time_to_recovery_seconds_bucket', { held_out: 'true', le: '30' }), 0);

  // A drift that did not hurt has no ratio: the stale one of that track goes, the other track's stays; never
  // recovered: no histogram sample.
  metrics.observe(recovery({ recovery: null, residual: 1, secondsToRecovery: null, ticksToRecovery: null }));
  s = await scrape(registry);
  assert.equal(find(s, 'driftline_recovery_ratio', { stream: 's1', held_out: 'false' }).length, 0);
  assert.equal(value(s, 'driftline_recovery_ratio', { stream: 's1', held_out: 'true' }), 0.5);
  assert.equal(value(s, 'driftline_recovery_ratio', { stream: 's2', held_out: 'false' }), 1.25);
  assert.equal(value(s, 'driftline_recovery_residual', { stream: 's1', held_out: 'false' }), 1);
  assert.equal(value(s, 'driftline_recovery_residual', { stream: 's1', held_out: 'true' }), 6);
  assert.equal(value(s, 'driftline_time_to_recovery_seconds_count', { held_out: 'false' }), 2);
  // And the held-out track's own null removes only its own ratio.
  metrics.observe(recovery({ heldOut: true, recovery: null, residual: 2, secondsToRecovery: null, ticksToRecovery: null }));
  s = await scrape(registry);
  assert.equal(find(s, 'driftline_recovery_ratio', { stream: 's1' }).length, 0);
  assert.equal(value(s, 'driftline_recovery_ratio', { stream: 's2', held_out: 'false' }), 1.25);
  assert.equal(value(s, 'driftline_recovery_residual', { stream: 's1', held_out: 'true' }), 2);
});

test('observe: drift markers count sessions or detections and set the last drift time', async () => {
  let nowMs = 1_700_000_000_000;
  const { registry, metrics } = fresh({ now: () => nowMs });
  metrics.observe(drift('session'));
  nowMs += 5_000;
  metrics.observe(drift('page-hinkley'));
  metrics.observe(drift('page-hinkley'));
  metrics.observe(drift('adwin', 's2'));
  const s = await scrape(registry);
  assert.equal(value(s, 'driftline_sessions_total', { stream: 's1' }), 1);
  assert.equal(find(s, 'driftline_sessions_total', { stream: 's2' }).length, 0);
  assert.equal(value(s, 'driftline_drift_detections_total', { stream: 's1', detector: 'page-hinkley' }), 2);
  assert.equal(value(s, 'driftline_drift_detections_total', { stream: 's2', detector: 'adwin' }), 1);
  assert.equal(find(s, 'driftline_drift_detections_total', { detector: 'session' }).length, 0);
  assert.equal(value(s, 'driftline_last_drift_timestamp_seconds', { stream: 's1' }), 1_700_000_005);

  const onlySession = fresh({ now: () => 1_000 });
  onlySession.metrics.observe(drift('session', 'x'));
  const s2 = await scrape(onlySession.registry);
  assert.equal(value(s2, 'driftline_last_drift_timestamp_seconds', { stream: 'x' }), 1);
  assert.equal(value(s2, 'driftline_sessions_total', { stream: 'x' }), 1);
});

test('observe: predictions, scored ticks and rejections; record and set methods', async () => {
  const { registry, metrics } = fresh();
  const prediction: Prediction = {
    kind: 'prediction', stream: 's1', seq: 1, t: 0, yhat: f32(0), version: 0, receivedAt: 1000, predictedAt: 1002,
  };
  metrics.observe(prediction);
  metrics.observe({ ...prediction, receivedAt: undefined }); // no receive time: nothing to record
  const scored = (delay: number, heldOut: boolean): ScoredTick => ({
    kind: 'scored', stream: 's1', seq: 1, t: 0, y: f32(1), yhat: f32(0.5), yLast: f32(0.9), yMean: f32(0.2),
    delay, heldOut, version: 1,
  });
  metrics.observe(scored(0, false));
  metrics.observe(scored(7, false));
  metrics.observe(scored(3, true));
  metrics.observe({ ...scored(1, false), labelOutOfRange: true });
  const rejection: Rejection = { kind: 'rejected', stream: 's1', seq: 2, reason: 'dimension', message: 'x has 3, want 4' };
  metrics.observe(rejection);
  metrics.observe(rejection);
  metrics.observe({ ...rejection, reason: 'some new reason' as Rejection['reason'] });
  metrics.recordEvent('s1', 'kafka');
  metrics.recordEvent('s1', 'kafka');
  metrics.recordEvent('s2', 'websocket');
  metrics.recordTickDuration(0.0003);
  metrics.recordTickDuration(0.002);
  metrics.setLearnerStateBytes('s1', 4096);
  metrics.setStreams(2);

  const s = await scrape(registry);
  assert.equal(value(s, 'driftline_event_to_prediction_seconds_count'), 1);
  assert.equal(value(s, 'driftline_event_to_prediction_seconds_sum'), 0.002);
  assert.equal(value(s, 'driftline_label_lag_ticks_count'), 4);
  assert.equal(value(s, 'driftline_label_lag_ticks_sum'), 11);
  assert.equal(value(s, 'driftline_label_lag_ticks_bucket', { le: '0' }), 1);
  assert.equal(value(s, 'driftline_label_lag_ticks_bucket', { le: '5' }), 3);
  assert.equal(value(s, 'driftline_updates_total', { stream: 's1' }), 3, 'held-out ticks are not updates');
  assert.equal(value(s, 'driftline_labels_out_of_range_total', { stream: 's1' }), 1, 'a label out of range is learned from and counted');
  assert.equal(value(s, 'driftline_events_rejected_total', { reason: 'dimension' }), 2);
  assert.equal(value(s, 'driftline_events_rejected_total', { reason: OTHER_LABEL }), 1);
  assert.equal(value(s, 'driftline_events_total', { stream: 's1', source: 'kafka' }), 2);
  assert.equal(value(s, 'driftline_events_total', { stream: 's2', source: 'websocket' }), 1);
  assert.equal(value(s, 'driftline_tick_duration_seconds_count'), 2);
  assert.equal(value(s, 'driftline_tick_duration_seconds_bucket', { le: '0.0005' }), 1);
  assert.equal(value(s, 'driftline_learner_state_bytes', { stream: 's1' }), 4096);
  assert.equal(value(s, 'driftline_streams'), 2);
});

test('non-finite values never reach prom-client and are counted as dropped', async () => {
  const { registry, metrics } = fresh();
  const bad = figures(NaN, Infinity, [NaN, 0.5], -Infinity);
  metrics.observe(
    prequential({ figures: { learner: bad, 'last-label': bad, 'running-mean': figures(1, 1, [0]) }, skillVsLastLabel: NaN, skillVsRunningMean: -Infinity, labelDelay: NaN }),
  );
  metrics.observe(recovery({ recovery: Infinity, residual: NaN, secondsToRecovery: NaN }));
  metrics.recordTickDuration(NaN);
  metrics.recordTickDuration(Infinity);
  metrics.setLearnerStateBytes('s1', NaN);
  metrics.setStreams(Infinity);
  metrics.observe({ kind: 'prediction', stream: 's1', seq: 1, t: 0, yhat: f32(0), version: 0, receivedAt: NaN, predictedAt: 5 });
  metrics.observe({
    kind: 'scored', stream: 's1', seq: 1, t: 0, y: f32(1), yhat: f32(1), yLast: f32(NaN), yMean: f32(NaN),
    delay: NaN, heldOut: false, version: 0,
  });

  const text = await registry.metrics();
  const s = parseExposition(text);
  for (const sample of s) {
    // +Inf appears only as a bucket bound (le="+Inf"), never as a value.
    assert.ok(Number.isFinite(sample.value), `non-finite sample value: ${sample.name}${JSON.stringify(sample.labels)} ${sample.value}`);
  }
  assert.doesNotMatch(text, /^[^#].* (NaN|[+-]?Inf)$/m, 'no sample line carries a non-finite value');
  const dropped = (metric: string) => value(s, 'driftline_metrics_dropped_non_finite_total', { metric });
  // learner and last-label each: mse, mse_ewma, r2[0], accuracy = 4 x 2
  assert.equal(dropped('driftline_prequential_error'), 8);
  assert.equal(dropped('driftline_prequential_skill'), 2);
  assert.equal(dropped('driftline_prequential_label_delay_ticks'), 1);
  assert.equal(dropped('driftline_recovery_ratio'), 1);
  assert.equal(dropped('driftline_recovery_residual'), 1);
  assert.equal(dropped('driftline_time_to_recovery_seconds'), 1);
  assert.equal(dropped('driftline_tick_duration_seconds'), 2);
  assert.equal(dropped('driftline_learner_state_bytes'), 1);
  assert.equal(dropped('driftline_streams'), 1);
  assert.equal(dropped('driftline_event_to_prediction_seconds'), 1);
  assert.equal(dropped('driftline_label_lag_ticks'), 1);
  // The finite values of the same messages went through.
  assert.equal(value(s, 'driftline_prequential_error', { predictor: 'learner', metric: 'r2', output: '1' }), 0.5);
  assert.equal(value(s, 'driftline_prequential_error', { predictor: 'running-mean', metric: 'mse' }), 1);
  assert.equal(value(s, 'driftline_updates_total', { stream: 's1' }), 1);
  assert.equal(value(s, 'driftline_tick_duration_seconds_count'), 0);
  assert.equal(value(s, 'driftline_tick_duration_seconds_sum'), 0);
});

test('stream label cardinality is capped at maxStreams; later streams become _other', async () => {
  const { registry, metrics } = fresh({ maxStreams: 3 });
  for (let i = 0; i < 10; i++) {
    metrics.recordEvent(`s${i}`, 'kafka');
    metrics.setLearnerStateBytes(`s${i}`, 100 + i);
    metrics.observe(drift('session', `s${i}`));
  }
  metrics.recordEvent('s1', 'kafka'); // a stream seen before the cap keeps its own label
  const s = await scrape(registry);
  const streamsOf = (name: string) => [...new Set(find(s, name).map((x) => x.labels.stream))].sort();
  assert.deepEqual(streamsOf('driftline_events_total'), [OTHER_LABEL, 's0', 's1', 's2']);
  assert.deepEqual(streamsOf('driftline_learner_state_bytes'), [OTHER_LABEL, 's0', 's1', 's2']);
  assert.deepEqual(streamsOf('driftline_sessions_total'), [OTHER_LABEL, 's0', 's1', 's2']);
  assert.equal(value(s, 'driftline_events_total', { stream: OTHER_LABEL }), 7);
  assert.equal(value(s, 'driftline_events_total', { stream: 's1' }), 2);
  assert.equal(value(s, 'driftline_sessions_total', { stream: OTHER_LABEL }), 7);

  const big = fresh();
  for (let i = 0; i < 1500; i++) big.metrics.recordEvent(`stream-${i}`, 'replay');
  const series = find(await scrape(big.registry), 'driftline_events_total');
  assert.equal(series.length, 1001, 'default cap: 1000 streams plus _other');
  assert.equal(series.find((x) => x.labels.stream === OTHER_LABEL)?.value, 500);
  assert.throws(() => fresh({ maxStreams: 0 }), RangeError);
});

test('metrics server: /metrics, /healthz, /readyz, 404 and 405 over real HTTP', async (t) => {
  const registry = createMetricsRegistry();
  const metrics = new DriftlineMetrics(registry);
  metrics.observe(recovery());
  let ready = false;
  const server = await startMetricsServer({ registry, ready: () => ready });
  t.after(() => server.close());
  assert.ok(server.port > 0);
  assert.equal(server.url, `http://127.0.0.1:${server.port}`);

  const res = await fetch(`${server.url}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), registry.contentType);
  const body = await res.text();
  assert.match(body, /^# HELP /m);
  const s = parseExposition(body);
  assert.equal(value(s, 'driftline_recovery_ratio', { stream: 's1', held_out: 'false' }), 0.75);
  assert.ok(find(s, 'process_resident_memory_bytes').length === 1, 'default metrics are served');

  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 200);
  assert.equal((await health.text()).trim(), 'ok');

  const notReady = await fetch(`${server.url}/readyz`);
  assert.equal(notReady.status, 503);
  await notReady.text();
  ready = true;
  const isReady = await fetch(`${server.url}/readyz`);
  assert.equal(isReady.status, 200);
  await isReady.text();

  const missing = await fetch(`${server.url}/nope`);
  assert.equal(missing.status, 404);
  await missing.text();
  const withQuery = await fetch(`${server.url}/metrics?x=1`);
  assert.equal(withQuery.status, 200);
  await withQuery.text();

  const post = await fetch(`${server.url}/metrics`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.match(post.headers.get('allow') ?? '', /GET/);
  await post.text();
  const del = await fetch(`${server.url}/healthz`, { method: 'DELETE' });
  assert.equal(del.status, 405);
  await del.text();

  await server.close();
  await server.close(); // idempotent
  await assert.rejects(fetch(`${server.url}/healthz`));
});

test('metrics server: the ephemeral ports of two servers differ; a throwing ready() means not ready', async (t) => {
  const registry = new Registry();
  const a = await startMetricsServer({ registry });
  const b = await startMetricsServer({ registry, port: 0, ready: () => { throw new Error('boom'); } });
  t.after(async () => { await a.close(); await b.close(); });
  assert.notEqual(a.port, b.port);
  const r = await fetch(`${b.url}/readyz`);
  assert.equal(r.status, 503);
  await r.text();
  const ok = await fetch(`${a.url}/readyz`);
  assert.equal(ok.status, 200, 'ready by default');
  await ok.text();
});

// ---- metrics of issue 14: drops, evictions and restores, quarantine, rollback, replay, cold start --------------

test('subscriber drops: recorded counts and a running total read at scrape time add up; never down', async () => {
  let wsTotal = 0;
  const { registry, metrics } = fresh({ droppedForSlowSubscribers: () => wsTotal });
  const dropped = async () => value(await scrape(registry), 'driftline_subscriber_messages_dropped_total');
  assert.equal(await dropped(), 0);
  wsTotal = 5;
  assert.equal(await dropped(), 5);
  assert.equal(await dropped(), 5, 'a second scrape adds nothing new');
  metrics.recordSubscriberDrops(2);
  wsTotal = 7;
  assert.equal(await dropped(), 9);
  // A new source (a restarted server) counts from its own total; the counter keeps what it had.
  let second = 3;
  metrics.trackSubscriberDrops(() => second);
  assert.equal(await dropped(), 12);
  second = 1; // went down: read as a new source again
  assert.equal(await dropped(), 13);
  metrics.trackSubscriberDrops(() => NaN);
  metrics.recordSubscriberDrops(Infinity);
  metrics.recordSubscriberDrops(-4);
  const s = await scrape(registry);
  assert.equal(value(s, 'driftline_subscriber_messages_dropped_total'), 13);
  assert.equal(value(s, 'driftline_metrics_dropped_non_finite_total', { metric: 'driftline_subscriber_messages_dropped_total' }), 2);
  metrics.trackSubscriberDrops(() => {
    throw new Error('gone');
  });
  assert.equal(await dropped(), 13, 'a throwing source does not fail the scrape');
});

test('learner state bytes: the total follows sets and removals; _other is the sum of the streams past the cap', async () => {
  const { registry, metrics } = fresh({ maxStreams: 2 });
  metrics.setLearnerStateBytes('a', 100);
  metrics.setLearnerStateBytes('b', 200);
  metrics.setLearnerStateBytes('c', 30);
  metrics.setLearnerStateBytes('d', 40);
  metrics.setLearnerStateBytes('a', 150); // set again: replaces, not adds
  let s = await scrape(registry);
  assert.equal(value(s, 'driftline_live_learners_state_bytes'), 420);
  assert.equal(value(s, 'driftline_learner_state_bytes', { stream: 'a' }), 150);
  assert.equal(value(s, 'driftline_learner_state_bytes', { stream: OTHER_LABEL }), 70);
  metrics.removeStream('c');
  metrics.removeStream('b');
  s = await scrape(registry);
  assert.equal(value(s, 'driftline_live_learners_state_bytes'), 190);
  assert.equal(value(s, 'driftline_learner_state_bytes', { stream: OTHER_LABEL }), 40);
  assert.equal(find(s, 'driftline_learner_state_bytes', { stream: 'b' }).length, 0);
  metrics.removeStream('d');
  metrics.removeStream('a');
  metrics.removeStream('never-seen');
  s = await scrape(registry);
  assert.equal(value(s, 'driftline_live_learners_state_bytes'), 0);
  assert.equal(find(s, 'driftline_learner_state_bytes').length, 0, 'no stale series, _other included');
});

test('removeStream: every per-stream series of the stream goes, others stay, and its label slot is freed', async () => {
  const { registry, metrics } = fresh({ maxStreams: 2 });
  for (const stream of ['s1', 's2']) {
    metrics.recordEvent(stream, 'websocket');
    metrics.recordEvent(stream, 'kafka');
    metrics.setLearnerStateBytes(stream, 64);
    metrics.observe(prequential({ stream }));
    const held = figures(1, 1, [0.5], 0.75);
    metrics.observe(prequential({ stream, heldOut: true, figures: { learner: held, 'last-label': held, 'running-mean': held } }));
    metrics.observe(recovery({ stream }));
    metrics.observe(recovery({ stream, heldOut: true }));
    metrics.observe(drift('session', stream));
    metrics.observe(drift('page-hinkley', stream));
    metrics.observe({
      kind: 'scored', stream, seq: 1, t: 0, y: f32(1), yhat: f32(1), yLast: f32(1), yMean: f32(1), delay: 0, heldOut: false, version: 0,
      labelOutOfRange: true,
    });
  }
  const perStream = (s: Sample[], stream: string) => s.filter((x) => x.labels.stream === stream).map((x) => x.name);
  const before = await scrape(registry);
  const names = new Set(perStream(before, 's1'));
  for (const name of [
    'driftline_events_total', 'driftline_prequential_error', 'driftline_prequential_label_delay_ticks',
    'driftline_prequential_skill', 'driftline_drift_detections_total', 'driftline_last_drift_timestamp_seconds',
    'driftline_recovery_ratio', 'driftline_recovery_residual', 'driftline_learner_state_bytes',
    'driftline_updates_total', 'driftline_labels_out_of_range_total', 'driftline_sessions_total',
  ]) {
    assert.ok(names.has(name), `${name} has an s1 series before the removal`);
  }
  const s2Before = perStream(before, 's2').length;

  metrics.removeStream('s1');
  let s = await scrape(registry);
  assert.deepEqual(perStream(s, 's1'), [], 'no series of s1 is left');
  assert.equal(perStream(s, 's2').length, s2Before, 's2 keeps all of its series');
  assert.equal(value(s, 'driftline_time_to_recovery_seconds_count', { held_out: 'false' }), 2, 'histograms without a stream label stay');

  // The slot is free: a new stream gets its own label instead of '_other'.
  metrics.recordEvent('s3', 'websocket');
  metrics.recordEvent('s4', 'websocket');
  s = await scrape(registry);
  assert.equal(value(s, 'driftline_events_total', { stream: 's3', source: 'websocket' }), 1);
  assert.equal(value(s, 'driftline_events_total', { stream: OTHER_LABEL, source: 'websocket' }), 1);
  // A stream counted under '_other' leaves the shared series alone.
  metrics.removeStream('s4');
  s = await scrape(registry);
  assert.equal(value(s, 'driftline_events_total', { stream: OTHER_LABEL, source: 'websocket' }), 1);
});

test('evictions, restores and their duration', async () => {
  const { registry, metrics } = fresh();
  metrics.setLearnerStateBytes('s1', 10);
  metrics.recordEviction();
  metrics.recordEviction('s1');
  metrics.recordRestore(0.0002);
  metrics.recordRestore(0.02);
  metrics.recordRestore(NaN);
  const s = await scrape(registry);
  assert.equal(value(s, 'driftline_streams_evicted_total'), 2);
  assert.equal(find(s, 'driftline_learner_state_bytes', { stream: 's1' }).length, 0, 'recordEviction(stream) removes the stream');
  assert.equal(value(s, 'driftline_streams_restored_total'), 3, 'a restore counts even when its duration is unusable');
  assert.equal(value(s, 'driftline_stream_restore_seconds_count'), 2);
  assert.equal(value(s, 'driftline_stream_restore_seconds_bucket', { le: '0.00025' }), 1);
  assert.equal(value(s, 'driftline_stream_restore_seconds_bucket', { le: '0.025' }), 2);
  assert.equal(value(s, 'driftline_stream_restore_seconds_bucket', { le: '1' }), 2);
  assert.equal(find(s, 'driftline_stream_restore_seconds_bucket', { le: '0.0001' }).length, 1, 'buckets start at 1e-4');
  assert.equal(value(s, 'driftline_metrics_dropped_non_finite_total', { metric: 'driftline_stream_restore_seconds' }), 1);
});

test('quarantined checkpoints: a zero series per known defect, unknown defects as _other', async () => {
  const { registry, metrics } = fresh();
  let s = await scrape(registry);
  assert.deepEqual(
    find(s, 'driftline_checkpoints_quarantined_total').map((x) => x.labels.defect).sort(),
    ['bad-magic', 'bad-meta', 'crc-mismatch', 'foreign-spec', 'misplaced', 'truncated', 'unreadable', 'unsupported-format'],
  );
  metrics.recordQuarantine('crc-mismatch');
  metrics.recordQuarantine('crc-mismatch');
  metrics.recordQuarantine('foreign-spec');
  metrics.recordQuarantine('something new');
  s = await scrape(registry);
  assert.equal(value(s, 'driftline_checkpoints_quarantined_total', { defect: 'crc-mismatch' }), 2);
  assert.equal(value(s, 'driftline_checkpoints_quarantined_total', { defect: 'foreign-spec' }), 1);
  assert.equal(value(s, 'driftline_checkpoints_quarantined_total', { defect: 'truncated' }), 0);
  assert.equal(value(s, 'driftline_checkpoints_quarantined_total', { defect: OTHER_LABEL }), 1);
});

test('checkpoint rollback ticks: a histogram with buckets 0 .. 1e5; non-finite and negative kept out', async () => {
  const { registry, metrics } = fresh();
  for (const ticks of [0, 0, 7, 4999, 200000]) metrics.recordRollback(ticks);
  metrics.recordRollback(NaN);
  metrics.recordRollback(-3);
  const s = await scrape(registry);
  const bucket = (le: string) => value(s, 'driftline_checkpoint_rollback_ticks_bucket', { le });
  assert.deepEqual(
    find(s, 'driftline_checkpoint_rollback_ticks_bucket').map((x) => x.labels.le),
    ['0', '1', '10', '100', '1000', '10000', '100000', '+Inf'],
  );
  assert.equal(bucket('0'), 2);
  assert.equal(bucket('10'), 3);
  assert.equal(bucket('10000'), 4);
  assert.equal(bucket('+Inf'), 5);
  assert.equal(value(s, 'driftline_checkpoint_rollback_ticks_sum'), 205006);
  assert.equal(value(s, 'driftline_metrics_dropped_non_finite_total', { metric: 'driftline_checkpoint_rollback_ticks' }), 1);
});

test('replayed ticks: counted from predictions marked replayed and through recordReplayed', async () => {
  const { registry, metrics } = fresh();
  const prediction: Prediction = { kind: 'prediction', stream: 's1', seq: 1, t: 0, yhat: f32(0), version: 0, predictedAt: 1 };
  metrics.observe(prediction);
  metrics.observe({ ...prediction, replayed: true } as Prediction);
  metrics.observe({ ...prediction, replayed: 'yes' } as unknown as Prediction); // only a real true counts
  metrics.recordReplayed();
  metrics.recordReplayed(3);
  const s = await scrape(registry);
  assert.equal(value(s, 'driftline_ticks_replayed_total'), 5);
});

test('event to prediction: phase cold, then steady; markStarted restarts it; "send" leaves it to the service', async () => {
  let clock = 1_000;
  const { registry, metrics } = fresh({ monotonicNow: () => clock, coldStartSeconds: 2 });
  const prediction: Prediction = {
    kind: 'prediction', stream: 's1', seq: 1, t: 0, yhat: f32(0), version: 0, receivedAt: 10, predictedAt: 11,
  };
  metrics.observe(prediction);
  clock += 1_999;
  metrics.recordEventToPrediction(0.004);
  clock += 1;
  metrics.observe(prediction);
  metrics.recordEventToPrediction(0.5);
  let s = await scrape(registry);
  assert.equal(value(s, 'driftline_event_to_prediction_seconds_count', { phase: 'cold' }), 2);
  assert.equal(value(s, 'driftline_event_to_prediction_seconds_sum', { phase: 'cold' }), 0.005);
  assert.equal(value(s, 'driftline_event_to_prediction_seconds_count', { phase: 'steady' }), 2);
  metrics.markStarted();
  metrics.recordEventToPrediction(0.001);
  s = await scrape(registry);
  assert.equal(value(s, 'driftline_event_to_prediction_seconds_count', { phase: 'cold' }), 3);

  const atSend = fresh({ eventToPredictionAt: 'send', coldStartSeconds: 0 });
  atSend.metrics.observe(prediction);
  atSend.metrics.observe({ ...prediction, replayed: true } as Prediction);
  atSend.metrics.recordEventToPrediction(0.003);
  s = await scrape(atSend.registry);
  assert.equal(value(s, 'driftline_event_to_prediction_seconds_count'), 1, 'observe() leaves the latency to the sender');
  assert.equal(value(s, 'driftline_event_to_prediction_seconds_count', { phase: 'steady' }), 1, 'coldStartSeconds 0: steady at once');
  assert.equal(value(s, 'driftline_ticks_replayed_total'), 1, 'replays are still counted from observe()');
  assert.throws(() => fresh({ coldStartSeconds: -1 }), /coldStartSeconds/);
  assert.throws(() => fresh({ eventToPredictionAt: 'later' as 'send' }), /eventToPredictionAt/);
});

test('recordRejection counts a refusal made outside the pipeline, e.g. an unauthorized scrape', async () => {
  const { registry, metrics } = fresh();
  metrics.recordRejection('unauthorized');
  metrics.recordRejection('unauthorized');
  const s = await scrape(registry);
  assert.equal(value(s, 'driftline_events_rejected_total', { reason: 'unauthorized' }), 2);
});

test('scrape-time updates: events, updates and prequential figures wait for the scrape, which shows the same values; a stream removed before it leaves nothing', async () => {
  const { registry, metrics } = fresh({ maxStreams: 4 });
  for (let i = 0; i < 1000; i++) metrics.recordEvent('a', 'websocket');
  for (let i = 0; i < 7; i++) metrics.recordEvent('a', 'kafka');
  metrics.recordEvent('b', 'websocket');
  metrics.observe(prequential({ stream: 'a', figures: { learner: figures(9, 9, [0]), 'last-label': figures(9, 9, [0]), 'running-mean': figures(9, 9, [0]) } }));
  metrics.observe(prequential({ stream: 'a' })); // the later report is the one a scrape shows
  metrics.observe(prequential({ stream: 'b' }));
  let s = await scrape(registry);
  assert.equal(value(s, 'driftline_events_total', { stream: 'a', source: 'websocket' }), 1000);
  assert.equal(value(s, 'driftline_events_total', { stream: 'a', source: 'kafka' }), 7);
  const expected = prequential({ stream: 'a' }).figures.learner!.mse;
  assert.equal(value(s, 'driftline_prequential_error', { stream: 'a', predictor: 'learner', metric: 'mse', held_out: 'false' }), expected);
  // Counts go on from what was scraped.
  metrics.recordEvent('a', 'websocket');
  s = await scrape(registry);
  assert.equal(value(s, 'driftline_events_total', { stream: 'a', source: 'websocket' }), 1001);
  // Pending for b, then b is evicted: the next scrape must not bring b's series back.
  metrics.recordEvent('b', 'websocket');
  metrics.observe(prequential({ stream: 'b' }));
  metrics.removeStream('b');
  s = await scrape(registry);
  assert.equal(find(s, 'driftline_events_total', { stream: 'b' }).length, 0);
  assert.equal(find(s, 'driftline_prequential_error', { stream: 'b' }).length, 0);
  assert.equal(find(s, 'driftline_updates_total', { stream: 'b' }).length, 0);
});
