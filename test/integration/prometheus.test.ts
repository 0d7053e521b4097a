// A real Prometheus scrape: a metrics server with observed values, Prometheus (scripts/prometheus/prometheus.sh,
// which installs Debian's package when none is on PATH and we are root) scraping it every second, and the
// values read back through Prometheus' query API. When Prometheus cannot be had the test is skipped with the
// reason printed; CI (DRIFTLINE_REQUIRE_ALL_PARTS=1) treats that skip as a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMetricsRegistry } from '../../src/metrics/registry.js';
import { DriftlineMetrics } from '../../src/metrics/driftline-metrics.js';
import { startMetricsServer } from '../../src/metrics/server.js';
import { query } from '../../src/metrics/prometheus-query.js';
import { poll } from '../support/prometheus-poll.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(REPO_ROOT, 'scripts', 'prometheus', 'prometheus.sh');
/** Room for a first-time apt-get install; a start on its own takes well under a second. */
const START_TIMEOUT_MS = 10 * 60_000;
const SCRAPE_DEADLINE_MS = 30_000;

function runScript(args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile('bash', [SCRIPT, ...args], { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolvePromise({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}


test('a real Prometheus scrapes driftline metrics', { timeout: START_TIMEOUT_MS + 2 * SCRAPE_DEADLINE_MS }, async (t) => {
  const registry = createMetricsRegistry();
  const metrics = new DriftlineMetrics(registry);
  metrics.observe({
    kind: 'recovery', stream: 's1', seq: 500, source: 'session', heldOut: false, ePre: 0.1, eFrozen: 1.1, eAdapt: 0.35,
    recovery: 0.75, residual: 3.5, ticksToRecovery: 120, secondsToRecovery: 2,
  });
  // The same drift on the held-out ticks: a series of its own (held_out="true").
  metrics.observe({
    kind: 'recovery', stream: 's1', seq: 500, source: 'session', heldOut: true, ePre: 0.2, eFrozen: 1.2, eAdapt: 0.45,
    recovery: 0.25, residual: 2.25, ticksToRecovery: 300, secondsToRecovery: 5,
  });
  metrics.observe({
    kind: 'prequential', stream: 's1', seq: 100, labelDelay: 3, heldOut: false, window: 50, count: 100,
    figures: {
      learner: { mse: 0.25, mseEwma: 0.3, r2: [0.9] },
      'last-label': { mse: 0.5, mseEwma: 0.55, r2: [0.8] },
      'running-mean': { mse: 1, mseEwma: 1.1, r2: [0] },
    },
    skillVsLastLabel: 0.5, skillVsRunningMean: 0.75,
  });
  metrics.observe({ kind: 'drift', stream: 's1', seq: 500, t: 10, source: 'session' });
  metrics.recordEvent('s1', 'simulator');
  metrics.setStreams(1);

  const server = await startMetricsServer({ registry });
  t.after(() => server.close());

  const runDir = mkdtempSync(join(tmpdir(), 'driftline-prometheus-'));
  const target = `127.0.0.1:${server.port}`;
  const t0 = Date.now();
  const started = await runScript(['start', target, runDir], START_TIMEOUT_MS);
  const baseUrl = started.stdout.trim().split('\n').pop() ?? '';
  if (started.code !== 0 || !/^http:\/\/127\.0\.0\.1:\d+$/.test(baseUrl)) {
    await runScript(['stop', runDir], 60_000);
    rmSync(runDir, { recursive: true, force: true });
    const reason =
      `Prometheus could not be started (scripts/prometheus/prometheus.sh start exited ${started.code}): ` +
      started.stderr.trim().split('\n').slice(-3).join(' | ');
    console.error(`[prometheus test] SKIP: ${reason}`);
    t.skip(reason);
    return;
  }
  t.after(async () => {
    const stopped = await runScript(['stop', runDir], 60_000);
    rmSync(runDir, { recursive: true, force: true });
    assert.equal(stopped.code, 0, `prometheus.sh stop failed: ${stopped.stderr}`);
  });
  t.diagnostic(`Prometheus ${baseUrl} started in ${Date.now() - t0} ms, scraping ${target}`);

  const deadline = Date.now() + SCRAPE_DEADLINE_MS;
  const up = await poll(baseUrl, `up{job="driftline",instance="${target}"}`, (r) => r.length === 1 && r[0].value === 1, deadline);
  assert.equal(up[0].value, 1);

  const ratio = await poll(baseUrl, 'driftline_recovery_ratio{stream="s1"}', (r) => r.length === 2, deadline);
  const ratioByTrack = new Map(ratio.map((s) => [s.metric.held_out, s.value]));
  assert.equal(ratioByTrack.get('false'), 0.75);
  assert.equal(ratioByTrack.get('true'), 0.25);
  assert.equal(ratio[0].metric.instance, target);
  const ttr = await query(baseUrl, 'driftline_time_to_recovery_seconds_sum{held_out="true"}');
  assert.equal(ttr[0]?.value, 5);

  const errors = await poll(
    baseUrl,
    'driftline_prequential_error{stream="s1",held_out="false"}',
    (r) => r.length === 9, // 3 predictors x (mse, mse_ewma, r2 output 0)
    deadline,
  );
  const byKey = new Map(errors.map((s) => [`${s.metric.predictor}/${s.metric.metric}/${s.metric.output ?? ''}`, s.value]));
  assert.equal(byKey.get('learner/mse/'), 0.25);
  assert.equal(byKey.get('learner/mse_ewma/'), 0.3);
  assert.equal(byKey.get('learner/r2/0'), 0.9);
  assert.equal(byKey.get('last-label/mse/'), 0.5);
  assert.equal(byKey.get('running-mean/mse_ewma/'), 1.1);

  // A value that changes after the first scrapes shows up on a later scrape.
  metrics.observe({
    kind: 'recovery', stream: 's1', seq: 900, source: 'page-hinkley', heldOut: false, ePre: 0.1, eFrozen: 2, eAdapt: 0.1,
    recovery: 1, residual: 1, ticksToRecovery: 10, secondsToRecovery: 0.5,
  });
  await poll(baseUrl, 'driftline_recovery_ratio{stream="s1",held_out="false"}', (r) => r.length === 1 && r[0].value === 1, deadline);
  // The held-out track's ratio is untouched by a learning-track report.
  const heldOutRatio = await query(baseUrl, 'driftline_recovery_ratio{stream="s1",held_out="true"}');
  assert.equal(heldOutRatio[0]?.value, 0.25);

  const sessions = await query(baseUrl, 'driftline_sessions_total{stream="s1"}');
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0].value, 1);
  const skill = await query(baseUrl, 'driftline_prequential_skill{stream="s1",reference="running-mean"}');
  assert.equal(skill[0]?.value, 0.75);
});
