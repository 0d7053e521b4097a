#!/usr/bin/env node
// Waits until a Kafka broker really serves clients: creates a throwaway topic,
// produces one message, joins a fresh consumer group and consumes that message.
// For the first seconds after start the group coordinator answers "loading"
// (COORDINATOR_LOAD_IN_PROGRESS); metadata and produce already work then, so a
// plain connect or produce is not enough of a check.
//
// Usage: node scripts/kafka/wait-ready.mjs <host:port> [--timeout <seconds>] [--pid <pid>]
//   --timeout  overall deadline, default 90 s (env DRIFTLINE_KAFKA_READY_TIMEOUT)
//   --pid      give up at once when this process (the broker JVM) has exited
// Exit codes: 0 ready, 1 deadline passed, 2 broker process gone, 64 usage.
// Progress goes to stderr; kafkajs logs are off unless DRIFTLINE_TEST_LOGS is set.

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';

function usage(msg) {
  process.stderr.write(`wait-ready: ${msg}\nusage: wait-ready.mjs <host:port> [--timeout s] [--pid pid]\n`);
  process.exit(64);
}

const args = process.argv.slice(2);
let brokers;
let timeoutS = Number(process.env.DRIFTLINE_KAFKA_READY_TIMEOUT || 90);
let pid;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--timeout') timeoutS = Number(args[++i]);
  else if (a === '--pid') pid = Number(args[++i]);
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else if (brokers === undefined) brokers = a;
  else usage(`unexpected argument ${a}`);
}
if (!brokers) usage('missing broker address');
if (!Number.isFinite(timeoutS) || timeoutS <= 0) usage('bad --timeout');
if (pid !== undefined && !(Number.isInteger(pid) && pid > 0)) usage('bad --pid');

const started = Date.now();
const deadline = started + timeoutS * 1000;
const elapsed = () => ((Date.now() - started) / 1000).toFixed(1);
const log = (msg) => process.stderr.write(`[wait-ready +${elapsed()}s] ${msg}\n`);

function brokerAlive() {
  if (pid === undefined) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** Rejects after ms with a labelled error; the promise itself is not cancelled. */
function within(ms, label, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const kafka = new Kafka({
  clientId: 'driftline-wait-ready',
  brokers: [brokers],
  connectionTimeout: 3000,
  requestTimeout: 10000,
  retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1000 },
  logLevel: process.env.DRIFTLINE_TEST_LOGS ? logLevel.INFO : logLevel.NOTHING,
});

async function attempt(n) {
  const suffix = randomBytes(6).toString('hex');
  const topic = `__driftline-ready-${suffix}`;
  const groupId = `driftline-ready-${suffix}`;
  const nonce = `ready-${suffix}`;
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 10000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 250, // disconnect waits for the fetch in flight
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 1000 },
  });
  let topicCreated = false;
  // Each attempt gets at most 30 s and never runs past the overall deadline.
  const attemptDeadline = Math.min(deadline, Date.now() + 30000);
  const step = (label, promise) => within(Math.max(500, attemptDeadline - Date.now()), label, promise);
  try {
    await step('admin connect', admin.connect());
    log(`attempt ${n}: connected to ${brokers}`);
    await step('create topic', admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
      waitForLeaders: true,
    }));
    topicCreated = true;
    log(`attempt ${n}: topic ${topic} created`);

    await step('producer connect', producer.connect());
    await step('produce', producer.send({ topic, acks: -1, messages: [{ key: 'k', value: nonce }] }));
    log(`attempt ${n}: produced one message`);

    await step('consumer connect', consumer.connect());
    let crashed;
    const crash = new Promise((_, reject) => {
      consumer.on(consumer.events.CRASH, (e) => {
        crashed = e.payload.error;
        reject(new Error(`consumer crashed: ${e.payload.error?.message ?? e.payload.error}`));
      });
    });
    crash.catch(() => {});
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      log(`attempt ${n}: joined group ${e.payload.groupId} (${Math.round(e.payload.duration)} ms)`);
    });
    const got = new Promise((resolve) => {
      consumer.subscribe({ topic, fromBeginning: true }).then(() =>
        consumer.run({
          eachMessage: async ({ message }) => {
            if (message.value?.toString() === nonce) resolve();
          },
        }),
      ).catch((err) => { crashed = err; });
    });
    await step('join group and consume', Promise.race([got, crash]));
    if (crashed) throw crashed;
    log(`attempt ${n}: consumed the message; broker is ready`);
  } finally {
    // Best effort, bounded: a broker that is still loading may not answer.
    await within(5000, 'consumer disconnect', consumer.disconnect()).catch(() => {});
    await within(5000, 'producer disconnect', producer.disconnect()).catch(() => {});
    if (topicCreated) {
      await within(5000, 'delete topic', admin.deleteTopics({ topics: [topic], timeout: 4000 })).catch(() => {});
    }
    await within(5000, 'admin disconnect', admin.disconnect()).catch(() => {});
  }
}

log(`waiting up to ${timeoutS}s for ${brokers}${pid ? ` (broker pid ${pid})` : ''}`);
for (let n = 1; ; n++) {
  if (!brokerAlive()) {
    log(`broker process ${pid} has exited`);
    process.exit(2);
  }
  try {
    await attempt(n);
    process.exit(0);
  } catch (err) {
    const reason = (err && (err.type || err.name)) ? `${err.type ?? err.name}: ${err.message}` : String(err);
    log(`attempt ${n} not ready yet: ${reason}`);
  }
  if (Date.now() + 1000 >= deadline) {
    log(`gave up after ${elapsed()}s`);
    process.exit(1);
  }
  if (!brokerAlive()) {
    log(`broker process ${pid} has exited`);
    process.exit(2);
  }
  await sleep(1000);
}
