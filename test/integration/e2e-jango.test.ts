// End to end with real parts: `driftline run` as a process (WebSocket ingest, ws and metrics on free ports),
// `driftline replay` as a second process sending the real Jango sessions Day0 then Day16 over the ws ingest (binary
// frames, labels 5 ticks late, 100 times the recorded pace: ~21 s), a real Prometheus (Debian's package, through
// scripts/prometheus/prometheus.sh) scraping /metrics every second, and every assertion made through Prometheus'
// query API: the declared session boundary, a drift detection, the recovery figures, the prequential error of the
// learner and both reference predictors with the label delay they were measured at. Then SIGTERM: exit 0 and the
// stream's checkpoint on disk. Skipped, with the reason printed, when Prometheus or the Jango data is missing
// (CI, with DRIFTLINE_REQUIRE_ALL_PARTS=1, treats the skip as a failure).
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { jangoDataDir } from '../support/jango-data.js';
import { query, type VectorSample } from '../../src/metrics/prometheus-query.js';
import { poll } from '../support/prometheus-poll.js';
import { FileCheckpointStore } from '../../src/streams/file-checkpoint-store.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(REPO, 'scripts', 'prometheus', 'prometheus.sh');
const DATA = jangoDataDir();
const DAY0 = join(DATA, 'Day0.mat');
const DAY16 = join(DATA, 'Day16.mat');
/** Day0 (24,000 bins) and Day16 (18,000 bins) of 50 ms: 2,100 s recorded, 21 s at this pace. */
const SPEED = 100;
const TICKS = 24_000 + 18_000;
const LABEL_DELAY = 5;
const STREAM = 'jango';

function runScript(args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('bash', [SCRIPT, ...args], { cwd: REPO, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** The CLI from source, as a process; stderr collected (JSON log lines for `run`). */
function spawnCli(args: string[]): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stderr!.on('data', (c: Buffer) => (text += c.toString()));
  child.stdout!.resume();
  return { child, stderr: () => text, exited: new Promise((res) => child.on('exit', (code) => res(code))) };
}

async function readyLine(stderr: () => string, deadline: number): Promise<{ ingest: string; metrics: string }> {
  while (Date.now() < deadline) {
    for (const line of stderr().split('\n')) {
      if (!line.includes('"driftline ready"')) continue;
      const parsed = JSON.parse(line) as { ingest: string; metrics: string };
      return parsed;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`driftline run did not become ready:\n${stderr()}`);
}


test('Jango Day0 then Day16 over the ws ingest into driftline run, scraped by a real Prometheus', { timeout: 15 * 60_000 }, async (t) => {
  if (!existsSync(DAY0) || !existsSync(DAY16)) {
    const reason = `Jango data missing: ${DAY0} and ${DAY16} not found (set DRIFTLINE_JANGO_DIR)`;
    console.error(`[e2e-jango] SKIP: ${reason}`);
    t.skip(reason);
    return;
  }
  // Cleanups run last-registered first (node:test runs `after` hooks in registration order): Prometheus is
  // stopped through the pid file in the work dir before the work dir goes.
  const cleanups: (() => unknown)[] = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const work = mkdtempSync(join(tmpdir(), 'driftline-e2e-'));
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  const checkpoints = join(work, 'checkpoints');
  const config = join(work, 'driftline.yaml');
  writeFileSync(
    config,
    `# the E2E run: examples/configs/jango-websocket.yaml on free ports
streams: { inputSize: 96, outputSize: 2, maxStreams: 4, allow: [${STREAM}] }
learner:
  cell: { kind: tanh-rnn, hiddenSize: 32 }
  credit: { rule: immediate, lambda: 0 }
  optimizer: { name: rmsprop, lr: 0.1 }
sources: { websocket: { host: 127.0.0.1, port: 0 } }
evaluation:
  window: 1000
  reportEvery: 20
  normalizeInputs: true
  targetScaling: { kind: none }
  holdout: { kind: alternate, onSeconds: 10, offSeconds: 5 }
  recoveryTicks: 4000
drift:
  signal: normalized-error
  detectors: [{ kind: page-hinkley, threshold: 100, delta: 0.5, minInstances: 200, mode: up }]
  inputDetectors: [{ kind: page-hinkley, threshold: 50, delta: 0.05, minInstances: 200 }]
  cooldownTicks: 1000
checkpoint: { dir: ${checkpoints}, everyTicks: 5000 }
metrics: { host: 127.0.0.1, port: 0 }
log: { level: info }
`,
  );

  const run = spawnCli(['run', '--config', config]);
  let runExited = false;
  void run.exited.then(() => (runExited = true));
  cleanups.push(() => {
    if (!runExited) run.child.kill('SIGKILL');
  });
  const { ingest, metrics } = await readyLine(run.stderr, Date.now() + 30_000);
  const target = new URL(metrics).host;

  const runDir = join(work, 'prometheus');
  const started = await runScript(['start', target, runDir], 10 * 60_000);
  const baseUrl = started.stdout.trim().split('\n').pop() ?? '';
  if (started.code !== 0 || !/^http:\/\/127\.0\.0\.1:\d+$/.test(baseUrl)) {
    await runScript(['stop', runDir], 60_000);
    const reason = `Prometheus could not be started (scripts/prometheus/prometheus.sh start exited ${started.code}): ${started.stderr.trim().split('\n').slice(-3).join(' | ')}`;
    console.error(`[e2e-jango] SKIP: ${reason}`);
    t.skip(reason);
    return;
  }
  cleanups.push(async () => {
    const stopped = await runScript(['stop', runDir], 60_000);
    assert.equal(stopped.code, 0, `prometheus.sh stop failed: ${stopped.stderr}`);
  });
  await poll(baseUrl, `up{job="driftline",instance="${target}"}`, (r) => r.length === 1 && r[0].value === 1, Date.now() + 30_000);

  const replayStarted = Date.now();
  const replay = spawnCli(['replay', '--to', ingest, '--binary', '--label-delay', String(LABEL_DELAY), '--speed', String(SPEED), '--stream', STREAM, DAY0, DAY16]);
  const replayCode = await replay.exited;
  const replaySeconds = (Date.now() - replayStarted) / 1000;
  const summary = replay.stderr().trim().split('\n').pop() ?? '';
  t.diagnostic(`replay: ${replaySeconds.toFixed(1)} s; ${summary}`);
  assert.equal(replayCode, 0, replay.stderr().slice(-2000));
  assert.match(summary, new RegExp(`sent ${TICKS} ticks, ${TICKS} labels and 2 session boundaries .*refused by the server: 0`));

  // Every input counted, and the metrics of the end of the run scraped (a few more scrapes after the last frame).
  const deadline = Date.now() + 20_000;
  await poll(baseUrl, `driftline_events_total{stream="${STREAM}",source="websocket"}`, (r) => r.length === 1 && r[0].value === 2 * TICKS + 2, deadline);
  await new Promise((r) => setTimeout(r, 2500));

  // The session boundary: two declared sessions, the second one the drift the data declares.
  const sessions = await query(baseUrl, `driftline_sessions_total{stream="${STREAM}"}`);
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0].value, 2);
  const boundaryIncrease = await query(baseUrl, `max_over_time(driftline_sessions_total{stream="${STREAM}"}[10m]) - min_over_time(driftline_sessions_total{stream="${STREAM}"}[10m])`);
  assert.ok(boundaryIncrease.length === 1 && boundaryIncrease[0].value >= 1, `the counter rose while scraped: ${JSON.stringify(boundaryIncrease)}`);

  // A drift detection (on the learner's error, or on the inputs).
  const detections = await query(baseUrl, `sum by (stream) (driftline_drift_detections_total{stream="${STREAM}"})`);
  assert.equal(detections.length, 1, 'driftline_drift_detections_total has a series');
  assert.ok(detections[0].value > 0, `detections: ${detections[0].value}`);
  const byDetector = await query(baseUrl, `driftline_drift_detections_total{stream="${STREAM}"}`);
  t.diagnostic(`detections: ${byDetector.map((s) => `${s.metric.detector} ${s.value}`).join(', ')}`);

  // Recovery, per track: the residual of the last closed measurement, and a ratio at some point of the run, both
  // finite, on the learning ticks; the same on the held-out ticks when a measurement had some (the alternating
  // holdout puts a third of every recovery measurement there), never any other label value.
  const residual = await query(baseUrl, `driftline_recovery_residual{stream="${STREAM}"}`);
  const ratio = await query(baseUrl, `max_over_time(driftline_recovery_ratio{stream="${STREAM}"}[10m])`);
  const track = (samples: VectorSample[], heldOut: 'false' | 'true') => samples.filter((s) => s.metric.held_out === heldOut);
  for (const [name, samples] of [['driftline_recovery_residual', residual], ['driftline_recovery_ratio', ratio]] as const) {
    assert.ok(samples.every((s) => s.metric.held_out === 'false' || s.metric.held_out === 'true'), `${name}: held_out is 'false' or 'true'`);
  }
  const learningResidual = track(residual, 'false');
  assert.equal(learningResidual.length, 1, 'driftline_recovery_residual has a learning-track series');
  assert.ok(Number.isFinite(learningResidual[0].value) && learningResidual[0].value > 0, `learning residual ${learningResidual[0].value}`);
  const learningRatio = track(ratio, 'false');
  assert.equal(learningRatio.length, 1, 'driftline_recovery_ratio had a learning-track series during the run');
  assert.ok(Number.isFinite(learningRatio[0].value), `learning recovery ratio ${learningRatio[0].value}`);
  const heldOutResidual = track(residual, 'true');
  const heldOutRatio = track(ratio, 'true');
  assert.ok(heldOutResidual.length <= 1 && heldOutRatio.length <= 1);
  if (heldOutResidual.length === 1) assert.ok(Number.isFinite(heldOutResidual[0].value) && heldOutResidual[0].value > 0, `held-out residual ${heldOutResidual[0].value}`);
  if (heldOutRatio.length === 1) assert.ok(Number.isFinite(heldOutRatio[0].value), `held-out recovery ratio ${heldOutRatio[0].value}`);
  const shown = (samples: VectorSample[]) => (samples.length === 1 ? samples[0].value.toFixed(3) : 'none');
  t.diagnostic(
    `recovery, learning ticks: residual ${shown(learningResidual)}, highest ratio seen ${shown(learningRatio)}; ` +
      `held-out ticks: residual ${shown(heldOutResidual)}, highest ratio seen ${shown(heldOutRatio)}`,
  );

  // Prequential error: learner and both references, learning and held-out ticks, measured with the label delay.
  const mse = await query(baseUrl, `driftline_prequential_error{stream="${STREAM}",metric="mse"}`);
  const byKey = new Map(mse.map((s) => [`${s.metric.predictor}/${s.metric.held_out}`, s.value]));
  for (const predictor of ['learner', 'last-label', 'running-mean']) {
    for (const heldOut of ['false', 'true']) {
      const v = byKey.get(`${predictor}/${heldOut}`);
      assert.ok(v !== undefined && Number.isFinite(v) && v > 0, `${predictor} held_out=${heldOut}: ${v}`);
    }
  }
  const r2 = await query(baseUrl, `driftline_prequential_error{stream="${STREAM}",metric="r2",predictor="learner"}`);
  assert.equal(r2.length, 4, 'R2 per output (2) for each track (2)');
  assert.ok(r2.every((s) => Number.isFinite(s.value) && s.value <= 1));
  const delay = await query(baseUrl, `driftline_prequential_label_delay_ticks{stream="${STREAM}",held_out="false"}`);
  assert.equal(delay.length, 1, 'the label delay is exported beside the error');
  assert.ok(delay[0].value > LABEL_DELAY - 1 && delay[0].value <= LABEL_DELAY, `label delay ${delay[0].value}`);
  // The decoding measure: on held-out ticks (labels withheld from the learner) the learner beats the running mean
  // of the labels; the last label seen is no reference there, as it is stale by the holdout block.
  const learnerHeldOut = byKey.get('learner/true')!;
  const meanHeldOut = byKey.get('running-mean/true')!;
  t.diagnostic(
    `windowed MSE at the end of Day16 (label delay ${delay[0].value}): held out: learner ${learnerHeldOut.toExponential(3)}, ` +
      `last label ${byKey.get('last-label/true')!.toExponential(3)}, running mean ${meanHeldOut.toExponential(3)}; learning ticks: learner ` +
      `${byKey.get('learner/false')!.toExponential(3)}, last label ${byKey.get('last-label/false')!.toExponential(3)}, running mean ${byKey.get('running-mean/false')!.toExponential(3)}`,
  );
  assert.ok(learnerHeldOut < meanHeldOut, `held-out MSE: learner ${learnerHeldOut} vs running mean ${meanHeldOut}`);

  // Shutdown: SIGTERM, exit 0, and the stream's checkpoint flushed with the state after the last tick.
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr().slice(-2000));
  assert.match(run.stderr(), /"msg":"driftline stopped"/);
  const saved = await new FileCheckpointStore(checkpoints).loadAll();
  assert.ok(saved.has(STREAM), `checkpoint of '${STREAM}' in ${checkpoints}: ${[...saved.keys()].join(', ')}`);
  assert.equal(saved.get(STREAM)!.meta.lastSeq, TICKS - 1);
});
