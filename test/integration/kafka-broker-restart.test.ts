// A broker restart mid-stream (issue 19, item 4d): a broker of this test's own (scripts/kafka/broker.sh in a run
// dir of its own, on free ports) is stopped and started again on its data while a `driftline run` worker is in the
// middle of the input. The same worker process resumes by itself and the run ends exactly once: no prediction
// missing, a repeat only with its model version, every stream's state byte-identical to an uninterrupted run.
// Skips with the reason printed without a broker (the main one shows that Java and the jars are there; CI fails on
// a skip).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO, startDriftlineProcess } from '../support/driftline-process.js';
import { findBrokers } from '../support/kafka-broker.js';
import { assertExactlyOnce, produceSteadily, readAllPredictions, waitCommittedToEnd, waitForPredictions, withWorkload, workloadTicks } from '../support/kafka-workload.js';

const { reason } = findBrokers();
if (reason) console.log(`[kafka-broker-restart] skipped: ${reason}`);

const run = promisify(execFile);
const progress = (what: string) => process.stderr.write(`[kafka-broker-restart] ${new Date().toISOString()} ${what}\n`);

/** broker.sh `command` on this test's run dir; the last line of its output is the broker's address. */
async function brokerScript(command: 'start' | 'restart' | 'stop', runDir: string): Promise<string> {
  // Down for 10 s on restart: past kafkajs' own retries (about 9 s), so a consumer gives up and must be replaced.
  const env = { ...process.env, DRIFTLINE_KAFKA_RUN: runDir, DRIFTLINE_KAFKA_PORT: '0', DRIFTLINE_KAFKA_CONTROLLER_PORT: '0', DRIFTLINE_KAFKA_HEAP: '384m', DRIFTLINE_KAFKA_RESTART_PAUSE: '10' };
  const { stdout } = await run('bash', [join(REPO, 'scripts/kafka/broker.sh'), command], { env, timeout: 180_000 });
  return stdout.trim().split('\n').pop() ?? '';
}

test('the broker restarts mid-stream: the same worker resumes by itself and the run ends exactly once', { skip: reason ?? false, timeout: 600_000 }, async () => {
  const runDir = mkdtempSync(join(tmpdir(), 'driftline-kafka-restart-'));
  try {
    const address = await brokerScript('start', runDir);
    assert.match(address, /^127\.0\.0\.1:\d+$/);
    await withWorkload([address], 'restart', async (w) => {
      // The first half waits in the topic before the worker starts, so the restart comes while it works through it.
      const ticks = workloadTicks(2400);
      const half = ticks.length / 2;
      await produceSteadily(w.producer, w.topics.inputTopic, ticks.slice(0, half), 200, 0);
      const worker = await startDriftlineProcess(w.config, 60_000);
      w.workers.push(worker);
      progress('first half produced, worker ready');
      await waitForPredictions(w, 1000, 60_000);
      const before = w.predictions.count();
      assert.ok(before >= 1000 && before < half, `the restart comes mid-stream (${before} of ${half} predictions)`);
      progress(`${before} predictions read; restarting the broker`);
      const restartStarted = performance.now();
      await brokerScript('restart', runDir);
      const restartSeconds = (performance.now() - restartStarted) / 1000;
      assert.equal(worker.child.exitCode, null, 'the worker lived through the broker restart');

      progress('broker back; producing the second half');
      await produceSteadily(w.producer, w.topics.inputTopic, ticks.slice(half), 40, 10);
      progress('second half produced');
      try {
        await waitCommittedToEnd(w.admin, w.groupId, w.topics.inputTopic, 240_000);
      } catch (err) {
        const lines = worker.log().filter((l) => !/ECONNREFUSED/.test(String(l.msg))).slice(-20);
        throw new Error(`${(err as Error).message}; the worker (exit code ${worker.child.exitCode}) last logged: ${JSON.stringify(lines)}`, { cause: err });
      }
      progress('the worker committed the end of the input');
      worker.child.kill('SIGTERM');
      assert.equal(await worker.exited, 0, JSON.stringify(worker.log().slice(-5)));
      // Read afresh: the test's running reader lived through the restart too, and is not what is tested.
      const seen = await readAllPredictions(w.kafka, w.topics.predictionsTopic, ticks.length, 60_000);
      progress(`${seen.size} ticks with a prediction read`);

      const repeated = await assertExactlyOnce(w.kafka, w.topics, ticks, seen);
      const stats = worker.log().find((l) => l.msg === 'driftline stopped');
      const consumerRestarts = worker.log().filter((l) => /consumer stopped for good/.test(String(l.msg))).length;
      console.log(`[kafka-broker-restart] restarted after ${before} predictions, down and up again in ${restartSeconds.toFixed(1)} s; ${repeated} predictions repeated; the worker replaced its consumer ${consumerRestarts} time(s); worker ${JSON.stringify(stats ?? {})}`);
    });
  } finally {
    await brokerScript('stop', runDir).catch(() => {});
    rmSync(runDir, { recursive: true, force: true });
  }
});
