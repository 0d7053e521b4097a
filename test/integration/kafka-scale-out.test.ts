// Scale-out by consumer group (issue 19, item 4b): two `driftline run` workers on 4 partitions and 8 streams both
// take records; a third joins, takes records and leaves (SIGTERM: it commits and leaves the group); the run still
// ends exactly once, every stream's state byte-identical to one uninterrupted in-process run.
// Skips with the reason printed without a broker (CI fails on a skip).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDriftlineProcess, type DriftlineProcess } from '../support/driftline-process.js';
import { findBrokers } from '../support/kafka-broker.js';
import { assertExactlyOnce, produceSteadily, waitCommittedToEnd, waitForPredictions, withWorkload, workloadTicks } from '../support/kafka-workload.js';

const { brokers, reason } = findBrokers();
if (reason) console.log(`[kafka-scale-out] skipped: ${reason}`);

/** Records a worker has taken from Kafka so far, from its own /metrics. */
async function eventsOf(worker: DriftlineProcess): Promise<number> {
  const text = await (await fetch(worker.metrics, { signal: AbortSignal.timeout(5000) })).text();
  let sum = 0;
  for (const m of text.matchAll(/^driftline_events_total\{[^}]*source="kafka"[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
  return sum;
}

/** The streams a worker's live dashboard shows, with what it says of each learner. */
async function dashboardStreamsOf(worker: DriftlineProcess): Promise<{ stream: string; info: { learner: string; stateBytes: number } | null }[]> {
  const url = worker.metrics.replace(/\/metrics$/, '/dashboard/api/streams');
  const body = (await (await fetch(url, { signal: AbortSignal.timeout(5000) })).json()) as { streams: { stream: string; info: { learner: string; stateBytes: number } | null }[] };
  return body.streams;
}

/** Waits until every worker has taken records. */
async function untilAllWork(workers: readonly DriftlineProcess[], withinMs: number, what: string): Promise<number[]> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const counts = await Promise.all(workers.map(eventsOf));
    if (counts.every((n) => n > 0)) return counts;
    assert.ok(Date.now() < deadline, `${what}: records taken ${counts.join(', ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('two workers share 4 partitions; a third joins and leaves; the run still ends exactly once', { skip: reason ?? false, timeout: 600_000 }, async () => {
  await withWorkload(brokers!, 'scale', async (w) => {
    const ticks = workloadTicks(2000);
    const [a, b] = [await startDriftlineProcess(w.config, 60_000), await startDriftlineProcess(w.config, 60_000)];
    w.workers.push(a!, b!);
    const sending = produceSteadily(w.producer, w.topics.inputTopic, ticks, 20, 40);
    await untilAllWork([a!, b!], 60_000, 'both workers take records');
    // Each worker's dashboard shows the streams it serves, live learners with their state.
    for (const worker of [a!, b!]) {
      const shown = await dashboardStreamsOf(worker);
      assert.ok(shown.length > 0 && shown.every((s) => /^s[0-7]$/.test(s.stream)), `dashboard streams: ${JSON.stringify(shown.map((s) => s.stream))}`);
      assert.ok(shown.some((s) => s.info !== null && s.info.stateBytes > 0 && s.info.learner.length > 0), `dashboard learner info: ${JSON.stringify(shown)}`);
    }

    // A third joins (a rebalance), works, and leaves cleanly (another).
    const third = await startDriftlineProcess(w.config, 60_000);
    w.workers.push(third);
    await untilAllWork([third], 60_000, 'the third worker takes records');
    third.child.kill('SIGTERM');
    assert.equal(await third.exited, 0, JSON.stringify(third.log().slice(-5)));

    await sending;
    await waitCommittedToEnd(w.admin, w.groupId, w.topics.inputTopic, 240_000);
    const perWorker = await Promise.all([a!, b!].map(eventsOf));
    for (const worker of [a!, b!]) worker.child.kill('SIGTERM');
    for (const worker of [a!, b!]) assert.equal(await worker.exited, 0, JSON.stringify(worker.log().slice(-5)));
    await waitForPredictions(w, ticks.length, 30_000);

    const repeated = await assertExactlyOnce(w.kafka, w.topics, ticks, w.predictions.seen);
    console.log(`[kafka-scale-out] records taken by the two workers ${perWorker.join(' and ')} (and by the third, which left); ${w.predictions.count()} predictions read, ${repeated} repeated`);
  });
});
