// `npm run bench -- kafka` (issue 19, item 5): events/s through Kafka -> learner (tanh RNN n = 64, 96 inputs) ->
// predictions topic, with 1 and 2 `driftline run` workers of one consumer group, beside a plain kafkajs
// consume-decode-produce loop with the same transactional commits and no learning (bench/support/kafka-plain-loop.ts),
// the floor, all in the same run against the same input.
//
// The input (8 streams, round-robin, binary frames, labels in the ticks) is produced into a 4-partition topic first.
// Each scenario is a fresh consumer group (and, for workers, a fresh changelog) reading it from the start. The first
// 8,000 ticks of every stream are not timed (the streams calibrate their drift detectors in them); the rate is the
// rest's events over the time from the group's committed offsets passing the primed part to their reaching the end
// of every partition. CPU is each process's utime + stime (/proc) over that window.
// Needs a broker (DRIFTLINE_KAFKA_BROKERS, or scripts/kafka/broker.sh start); without one the section says so.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs from '../src/adapters/kafka/kafkajs.js';
import type { Admin } from 'kafkajs';
import { EXACT_PRODUCER } from '../src/adapters/kafka/producer-options.js';
import { encodeBinaryFrame } from '../src/adapters/websocket/frames.js';
import { findBrokers } from '../test/support/kafka-broker.js';
import { cpuSeconds } from './support/proc-stat.js';
import { INPUTS, OUTPUTS, int, num, printTable, type BenchOptions, type TargetResult } from './common.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const STREAMS = 8;
const PARTITIONS = 4;
const HIDDEN = 64;
const PER_WORKER_TARGET = 30_000;
const PRIME_TICKS = 8_000;

interface Scenario {
  readonly name: string;
  readonly kind: 'plain' | 'workers';
  readonly processes: number;
}
// The floor runs first and last: the first process of a run also pays for a cold broker cache and this machine's
// noise, and the faster of the two is the floor (the ratio is then the harder one).
const SCENARIOS: readonly Scenario[] = [
  { name: 'plain loop (floor), first', kind: 'plain', processes: 1 },
  { name: '1 worker', kind: 'workers', processes: 1 },
  { name: '2 workers', kind: 'workers', processes: 2 },
  { name: 'plain loop (floor), last', kind: 'plain', processes: 1 },
];
/** With DRIFTLINE_BENCH_KAFKA_CPU_PROF=DIR every process writes a V8 CPU profile into DIR (node --cpu-prof). */
const PROFILE_DIR = process.env.DRIFTLINE_BENCH_KAFKA_CPU_PROF;

interface Outcome {
  readonly scenario: Scenario;
  readonly seconds: number;
  /** Events timed (the input after the priming, from the committed offsets when timing began). */
  readonly events: number;
  readonly eventsPerSecond: number;
  readonly cpuSeconds: number;
}

/** Starts a process and resolves once a stdout or stderr line matches `ready`. */
function startProcess(args: string[], ready: RegExp, timeoutMs = 60_000): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`not ready in ${timeoutMs} ms: ${seen.slice(-400)}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (ready.test(seen)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before ready: ${seen.slice(-400)}`));
    });
  });
}

/** The sum of the group's committed offsets over the topic's partitions. */
async function committedTotal(admin: Admin, groupId: string, topic: string): Promise<number> {
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return committed!.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
}

/** Waits until the group's committed offset is at or past `ends` on every partition (an empty one has none). */
async function untilCommitted(admin: Admin, groupId: string, topic: string, ends: readonly { partition: number; high: string }[], what: string): Promise<void> {
  const deadline = performance.now() + 600_000;
  for (;;) {
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    if (ends.every(({ partition, high }) => high === '0' || Number(committed!.partitions.find((p) => p.partition === partition)?.offset ?? -1) >= Number(high))) return;
    if (performance.now() > deadline) throw new Error(`${what}: not there after 600 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function runKafka(options: BenchOptions): Promise<TargetResult[]> {
  const { brokers, reason } = findBrokers();
  if (brokers === undefined) {
    process.stdout.write(`\nkafka: not run: ${reason}\n`);
    return [];
  }
  const events = options.quick ? 40_000 : 200_000;
  // Every stream is first fed PRIME_TICKS ticks, untimed, as the streams bench primes its service: a stream's drift
  // detectors calibrate once in its first few thousand ticks (about 0.3 s of CPU each), a cost of its first minutes
  // that a 25,000-tick measurement would otherwise spread over every event.
  const primeEvents = STREAMS * PRIME_TICKS;
  const suffix = randomBytes(6).toString('hex');
  const inputTopic = `driftline-bench-in-${suffix}`;
  const kafka = new kafkajs.Kafka({ clientId: `driftline-bench-${suffix}`, brokers, logLevel: kafkajs.logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const work = mkdtempSync(join(tmpdir(), 'driftline-bench-kafka-'));
  const created: string[] = [inputTopic];
  const outcomes: Outcome[] = [];
  const children: ChildProcess[] = [];
  try {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: inputTopic, numPartitions: PARTITIONS }] });
    const producer = kafka.producer(EXACT_PRODUCER);
    await producer.connect();
    const producedAt = performance.now();
    let primeEnds: { partition: number; high: string }[] = [];
    for (let at = 0; at < primeEvents + events; at += 1000) {
      if (at === primeEvents) primeEnds = await admin.fetchTopicOffsets(inputTopic);
      const messages = [];
      for (let g = at; g < Math.min(primeEvents + events, at + 1000); g++) {
        const s = g % STREAMS;
        const seq = Math.floor(g / STREAMS);
        const x = Float32Array.from({ length: INPUTS }, (_, j) => Math.sin(0.01 * seq * (j + 1) + s));
        const frame = encodeBinaryFrame({ kind: 'tick', stream: `s${s}`, seq, t: seq * 0.02, x, y: [x[0]!, x[1]!] });
        messages.push({ key: `s${s}`, partition: s % PARTITIONS, value: Buffer.from(frame) });
      }
      await producer.send({ topic: inputTopic, acks: -1, messages });
    }
    const produceSeconds = (performance.now() - producedAt) / 1000;
    await producer.disconnect();
    const ends = await admin.fetchTopicOffsets(inputTopic);

    for (const [index, scenario] of SCENARIOS.entries()) {
      const tag = `${scenario.kind}${scenario.processes}-${index}-${suffix}`;
      const groupId = `driftline-bench-${tag}`;
      const outputTopic = `driftline-bench-out-${tag}`;
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic: outputTopic, numPartitions: PARTITIONS }] });
      created.push(outputTopic);
      let args: string[];
      let ready: RegExp;
      if (scenario.kind === 'plain') {
        args = ['--import', 'tsx', 'bench/support/kafka-plain-loop.ts', brokers.join(','), groupId, inputTopic, outputTopic, String(INPUTS), String(OUTPUTS)];
        ready = /"msg":"plain ready"/;
      } else {
        const changelogTopic = `driftline-bench-state-${tag}`;
        created.push(changelogTopic, `${changelogTopic}.quarantine`);
        const config = join(work, `${tag}.json`);
        writeFileSync(config, JSON.stringify({
          streams: { inputSize: INPUTS, outputSize: OUTPUTS },
          learner: { cell: { kind: 'tanh-rnn', hiddenSize: HIDDEN }, credit: { rule: 'immediate' }, optimizer: { name: 'rmsprop', lr: 0.001 } },
          sources: { kafka: { brokers, groupId, inputTopic, predictionsTopic: outputTopic, changelogTopic, changelogPartitions: PARTITIONS, sessionTimeoutMs: 6000 } },
          metrics: { port: 0 },
          log: { level: 'info' },
        }));
        args = ['--import', 'tsx', 'src/cli/main.ts', 'run', '--config', config];
        ready = /"msg":"driftline ready"/;
      }
      if (PROFILE_DIR !== undefined) args = ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, ...args];
      const procs = await Promise.all(Array.from({ length: scenario.processes }, () => startProcess(args, ready)));
      children.push(...procs);
      await untilCommitted(admin, groupId, inputTopic, primeEnds, `${scenario.name}, priming`);
      const started = performance.now();
      const cpuBefore = procs.map((p) => cpuSeconds(p.pid));
      const fromOffset = await committedTotal(admin, groupId, inputTopic);
      await untilCommitted(admin, groupId, inputTopic, ends, `${scenario.name}: the end of the input`);
      const seconds = (performance.now() - started) / 1000;
      const cpuSpent = procs.reduce((sum, p, i) => sum + cpuSeconds(p.pid) - cpuBefore[i]!, 0);
      // The events timed: from the committed offsets when timing began (a commit can pass the primed end).
      const timed = ends.reduce((sum, e) => sum + Number(e.high), 0) - fromOffset;
      for (const p of procs) p.kill('SIGTERM');
      await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
      outcomes.push({ scenario, seconds, events: timed, eventsPerSecond: timed / seconds, cpuSeconds: cpuSpent });
      process.stderr.write(`[kafka] ${scenario.name}: ${int(timed / seconds)} events/s over ${int(timed)} events, ${num(cpuSpent, 1)} CPU s\n`);
    }

    const plain = outcomes.filter((o) => o.scenario.kind === 'plain').reduce((a, b) => (b.eventsPerSecond > a.eventsPerSecond ? b : a));
    const one = outcomes.find((o) => o.scenario.kind === 'workers' && o.scenario.processes === 1)!;
    const two = outcomes.find((o) => o.scenario.kind === 'workers' && o.scenario.processes === 2)!;
    printTable(
      `kafka: the last ${int(events)} events timed (after ${int(primeEvents)} untimed; each row says how many it timed) of ${STREAMS} streams (${INPUTS} inputs, binary frames) through a ${PARTITIONS}-partition topic; tanh RNN n = ${HIDDEN}`,
      ['scenario', 'processes', 'events timed', 'seconds', 'events/s', 'events/s per process', 'CPU s', 'CPU us/event', 'vs plain loop'],
      outcomes.map((o) => [
        o.scenario.name, String(o.scenario.processes), int(o.events), num(o.seconds, 2), int(o.eventsPerSecond), int(o.eventsPerSecond / o.scenario.processes),
        num(o.cpuSeconds, 1), num((o.cpuSeconds / o.events) * 1e6, 1), `${num(o.eventsPerSecond / plain.eventsPerSecond, 2)}x`,
      ]),
      [
        `The input was produced first (${num(produceSeconds, 1)} s). Each scenario is a fresh consumer group reading all of it: first ${int(PRIME_TICKS)} ticks`,
        'of every stream, untimed (each stream\'s drift detectors calibrate once in them), then the events timed: from the committed offsets',
        'then to the committed offsets at the end of every partition (commits every 2,000 records or 1 s per partition, one',
        'transaction each, in both the workers and the plain loop). The plain loop decodes each frame and produces a prediction record',
        'of the same shape without a learner; it runs first and last, and the faster run is the floor the ratios use.',
        'This machine has 2 cores shared with the broker and this bench: 2 workers compete for them.',
      ],
      'lrrrrrrrr',
    );
    return [
      {
        section: 'kafka',
        target: `events/s per worker process >= ${int(PER_WORKER_TARGET)} (1 worker)`,
        measured: `${int(one.eventsPerSecond)} events/s`,
        pass: one.eventsPerSecond >= PER_WORKER_TARGET,
      },
      {
        section: 'kafka',
        target: '1 worker within 2x of the plain consume-and-produce loop (events/s)',
        measured: `${num(plain.eventsPerSecond / one.eventsPerSecond, 2)}x slower (${int(one.eventsPerSecond)} vs ${int(plain.eventsPerSecond)}); 2 workers / 1 worker: ${num(two.eventsPerSecond / one.eventsPerSecond, 2)}x`,
        pass: plain.eventsPerSecond / one.eventsPerSecond <= 2,
      },
    ];
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    const existing = new Set(await admin.listTopics().catch(() => [] as string[]));
    const ours = created.filter((t) => existing.has(t));
    if (ours.length > 0) await admin.deleteTopics({ topics: ours, timeout: 5000 }).catch(() => {});
    await admin.disconnect();
    rmSync(work, { recursive: true, force: true });
  }
}
