// The per-event profile behind docs/performance.md (issue 18): `driftline run` (the built dist, as users run it)
// under V8's sampling profiler, fed closed-loop by this separate process: 8 streams, 96 floats and 2 labels per
// frame, JSON or binary, a window of frames in flight, for a fixed time. Self time is summed per function and then
// per stage of the per-event path (by source file), as shares of one thread's busy time (PROFILE_THREAD) over the run.
//
//   node --import tsx bench/support/profile-service.ts [json|binary] [seconds] [coalesce]
//
// Environment: PROFILE_STREAMS (default 8); PROFILE_SHARDS (streams.shards, default 1); PROFILE_THREAD (the thread
// whose profile is read: 0 the main thread, default; 1, 2, ... the shard workers); PROFILE_EVENTS (a cap on frames); PROFILE_REPO (another checkout's
// build, for A/B runs); PROFILE_CALIBRATION_STEP (the default detector's calibrationStep); PROFILE_NODE_FLAGS (extra node flags for the service); PACED_HZ (instead of the closed loop, send at this rate from a 1 ms timer, then print
// send-to-prediction latency and the longest busy stretches of the service's event loop with what ran in them).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { encodeBinaryFrame, encodeJsonFrame } from '../../src/adapters/websocket/frames.js';

// PROFILE_REPO: another checkout's build (e.g. a git worktree of the commit before a change) for an A/B run.
const REPO = process.env.PROFILE_REPO ?? fileURLToPath(new URL('../..', import.meta.url));
const kind = (process.argv[2] ?? 'json') as 'json' | 'binary';
const seconds = Number(process.argv[3] ?? 20);
const STREAMS = Number(process.env.PROFILE_STREAMS ?? 8);
const WINDOW = 64;
const coalesceSends = process.argv[4] === 'coalesce';
// At most this many frames (PROFILE_EVENTS): 40,000 over 8 streams stays below the 7,200 ticks per stream after
// which the default detector calibrates, to compare runs without that one-off cost.
const maxEvents = Number(process.env.PROFILE_EVENTS ?? Infinity);

const dir = mkdtempSync(path.join(os.tmpdir(), 'driftline-profile-'));
const config = {
  streams: { inputSize: 96, outputSize: 2, maxStreams: STREAMS, ...(process.env.PROFILE_SHARDS ? { shards: Number(process.env.PROFILE_SHARDS) } : {}) },
  learner: { cell: { kind: 'tanh-rnn', hiddenSize: 64 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: { name: 'rmsprop', lr: 1e-3 } },
  sources: { websocket: { host: '127.0.0.1', port: 0, coalesceSends } },
  metrics: { host: '127.0.0.1', port: 0 },
  log: { level: 'info' },
  // PROFILE_CALIBRATION_STEP: the default detector with its calibration spread over ticks (calibrationStep).
  ...(process.env.PROFILE_CALIBRATION_STEP
    ? { drift: { detectors: [{ kind: 'calibrated', detector: { kind: 'page-hinkley' }, falseAlarmsPerHour: 1, calibrationStep: Number(process.env.PROFILE_CALIBRATION_STEP) }] } }
    : {}),
};
writeFileSync(path.join(dir, 'c.json'), JSON.stringify(config));
// PROFILE_OFF=1: no sampling profiler (its own overhead, per thread, stays out of the CPU figures); PROFILE_RUN_ARGS:
// more arguments for `driftline run` (e.g. --no-dashboard).
const profiling = process.env.PROFILE_OFF !== '1';
const profilerFlags = profiling ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=200'] : [];
const runArgs = (process.env.PROFILE_RUN_ARGS ?? '').split(' ').filter(Boolean);
// PROFILE_ECHO=1: the echo floor (bench/support/echo-server.ts) instead of the service, under the same load and
// profile, for a stage-by-stage comparison with what the service adds.
const echo = process.env.PROFILE_ECHO === '1';
const nodeFlags = (process.env.PROFILE_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const child = echo
  ? spawn(process.execPath, [...nodeFlags, ...profilerFlags, '--import', 'tsx', 'bench/support/echo-server.ts', '--exit-with-stdin'], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] })
  : spawn(process.execPath, [...nodeFlags, ...profilerFlags, 'bin/driftline.js', 'run', '--config', path.join(dir, 'c.json'), ...runArgs], {
    cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'],
  });
const ready = await new Promise<Record<string, string>>((res, rej) => {
  let buf = '';
  // The service logs its readiness on stderr; the echo server prints its own on stdout.
  (echo ? child.stdout! : child.stderr!).on('data', (c: Buffer) => {
    buf += c.toString();
    for (const line of buf.split('\n')) {
      try {
        const o = JSON.parse(line) as Record<string, string>;
        if (o.msg === 'driftline ready' || o.msg === 'echo ready') res(o);
      } catch { /* partial line */ }
    }
  });
  child.on('exit', (code) => rej(new Error(`${echo ? 'echo server' : 'service'} exited ${code}: ${buf.slice(-500)}`)));
});

const inputs = Array.from({ length: 256 }, (_, i) => Float32Array.from({ length: 96 }, (_, j) => Math.sin(i * 0.1 + j)));
const sub = new WebSocket(`${ready.predictions}?type=prediction`);
await new Promise((r) => sub.once('open', r));
const ingest = new WebSocket(ready.ingest);
await new Promise((r) => ingest.once('open', r));
let sent = 0;
let received = 0;
const seqs = new Array<number>(STREAMS).fill(0);
const frame = (n: number) => {
  const s = n % STREAMS;
  const f = { kind: 'tick' as const, stream: `s${s}`, seq: seqs[s]!++, t: n * 0.02, x: inputs[n % inputs.length]!, y: Float32Array.of(Math.sin(n), Math.cos(n)) };
  return kind === 'json' ? encodeJsonFrame(f) : encodeBinaryFrame(f);
};
const started = Date.now();
const end = started + seconds * 1000;
const cpuBefore = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
const pacedHz = Number(process.env.PACED_HZ ?? 0);
const WARM_UP_MS = 5000;
let pacedStart = Infinity;
const sentAt = new Float64Array(pacedHz > 0 ? Math.ceil(Math.min(maxEvents, seconds * pacedHz)) + 1 : 0);
const lat: number[] = [];
const PRODUCER_GAP_MS = 10;
const producerGaps: { atMs: number; ms: number }[] = [];
const pump = () => {
  while (sent - received < WINDOW && Date.now() < end && sent < maxEvents) ingest.send(frame(sent++));
};
sub.on('message', (d) => {
  received++;
  if (pacedHz > 0) {
    const m = JSON.parse(d.toString()) as { stream: string; seq: number };
    const n = m.seq * STREAMS + Number(m.stream.slice(1));
    // The first WARM_UP_MS after the first send are left out: learners for every stream are created then, and
    // that start-up backlog would otherwise be the p99.
    if (sentAt[n]! - pacedStart >= WARM_UP_MS) lat.push(performance.now() - sentAt[n]!);
  } else pump();
});
if (pacedHz > 0) {
  const t0 = performance.now();
  pacedStart = t0;
  let lastTimerAt = t0;
  const timer = setInterval(() => {
    const now = performance.now();
    // The producer's own stalls: a gap here sends a burst afterwards, which the service then works off.
    if (now - lastTimerAt > PRODUCER_GAP_MS) producerGaps.push({ atMs: now - t0, ms: now - lastTimerAt });
    lastTimerAt = now;
    const due = Math.min(Math.floor(((performance.now() - t0) / 1000) * pacedHz), maxEvents, sentAt.length - 1);
    while (sent < due) {
      sentAt[sent] = performance.now();
      ingest.send(frame(sent++));
    }
    if (Date.now() >= end || sent >= maxEvents) clearInterval(timer);
  }, 1);
} else pump();
await new Promise<void>((r) => {
  const t = setInterval(() => {
    if ((Date.now() >= end || sent >= maxEvents) && received >= sent) {
      clearInterval(t);
      r();
    }
  }, 50);
});
const cpuAfter = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
// Per thread (main, shard workers, V8's and libuv's helpers), for the split between the main thread and the shards.
const threadCpu = readdirSync(`/proc/${child.pid}/task`).map((tid) => {
  const stat = readFileSync(`/proc/${child.pid}/task/${tid}/stat`, 'utf8');
  const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { tid, name, seconds: (Number(f[11]) + Number(f[12])) / 100 };
}).filter((t) => t.seconds > 0.05).sort((a, b) => b.seconds - a.seconds);
const ticks = (f: string[]) => Number(f[11]) + Number(f[12]);
const cpuSeconds = (ticks(cpuAfter) - ticks(cpuBefore)) / 100;
const wallSeconds = (Date.now() - started) / 1000;
ingest.close();
sub.close();
child.kill('SIGTERM');
await new Promise((r) => child.on('exit', r));

const summary = `${kind} frames${coalesceSends ? ', coalesceSends' : ''}, ${STREAMS} streams, ${wallSeconds.toFixed(1)} s ${pacedHz > 0 ? `paced at ${pacedHz}/s` : `closed loop (window ${WINDOW})`}: ${received} predictions, ${(received / wallSeconds).toFixed(0)}/s; service CPU ${cpuSeconds.toFixed(2)} s = ${((cpuSeconds / received) * 1e6).toFixed(1)} us/event`;
const threadLine = `threads (CPU s over the whole run, start-up included): ${threadCpu.map((t) => `${t.name}#${t.tid} ${t.seconds.toFixed(2)}`).join(', ')}`;
/** Paced runs: event-to-prediction latency after the warm-up, and the producer's own stalls (which send bursts). */
function printLatency(): void {
  const sorted = [...lat].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(2);
  console.log(`paced ${pacedHz}/s, after the first ${WARM_UP_MS / 1000} s: latency ms p50 ${q(0.5)} p99 ${q(0.99)} max ${q(1)}`);
  const worstGaps = [...producerGaps].sort((a, b) => b.ms - a.ms).slice(0, 8);
  console.log(
    `producer timer gaps over ${PRODUCER_GAP_MS} ms: ${producerGaps.length}` +
      (worstGaps.length > 0 ? `; longest ${worstGaps.map((g) => `${g.ms.toFixed(0)} ms at ${(g.atMs / 1000).toFixed(1)} s`).join(', ')}` : ''),
  );
}
if (!profiling) {
  console.log(threadLine);
  console.log(summary);
  if (lat.length > 0) printLatency();
  process.exit(0);
}
// PROFILE_THREAD: which thread's profile to read (Node's thread id in the file name: 0 is the main thread, shard
// workers are 1, 2, ...).
const profiledThread = Number(process.env.PROFILE_THREAD ?? 0);
const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && f.split('.').at(-3) === String(profiledThread));
if (file === undefined) throw new Error(`no profile of thread ${profiledThread} in ${dir}: ${readdirSync(dir).join(', ')}`);
interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }

/**
 * The stages of the per-event path, matched innermost first on each sample's stack (function name, then file):
 * a sample counts for the innermost frame that matches a rule, so JSON.parse under the frame decoder is decoding
 * and a socket write under a publish is publishing.
 */
const STAGES: readonly { stage: string; match: (fn: string, url: string) => boolean }[] = [
  { stage: 'garbage collection', match: (fn) => fn === '(garbage collector)' },
  { stage: 'publishing (encode, ws send, socket write)', match: (fn, url) => fn === 'encodeOutbound' || fn === 'writev' || fn === 'writevGeneric' || /ws\/lib\/sender/.test(url) || /websocket\/(server|subscribers?|publish)/.test(url) && /publish|send|broadcast/i.test(fn) },
  { stage: 'decode and validate frames', match: (fn, url) => /websocket\/frames/.test(url) },
  { stage: 'ws receive (framing, unmasking)', match: (_fn, url) => /ws\/lib\/(receiver|buffer-util|websocket\.js)/.test(url) },
  { stage: 'metrics (prom-client)', match: (_fn, url) => /metrics\/|prom-client/.test(url) },
  { stage: 'dashboard feed', match: (_fn, url) => /dashboard\//.test(url) },
  { stage: 'drift calibration (once per stream)', match: (_fn, url) => /drift\/(calibration|stationary-bootstrap|autocorrelation-time)/.test(url) },
  { stage: 'drift detectors', match: (_fn, url) => /drift\/|detect-drift|detector-bank|channel-novelty/.test(url) },
  { stage: 'recovery shadow', match: (_fn, url) => /track-recovery|recovery/.test(url) },
  { stage: 'prequential scoring', match: (_fn, url) => /prequential/.test(url) },
  { stage: 'normalization', match: (_fn, url) => /normaliz|target-scal/.test(url) },
  { stage: 'predict and learn (WASM kernels and learner)', match: (fn, url) => /^wasm/.test(url) || /learners\//.test(url) || /predict-then-learn/.test(url) },
  { stage: 'routing and rxjs', match: (_fn, url) => /rxjs|streams\/|route/.test(url) },
  { stage: 'sockets and event loop (node internals)', match: (_fn, url) => /^node:/.test(url) || url === '' },
];
const prof = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const self = new Map<number, number>();
for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i]!, (self.get(prof.samples[i]!) ?? 0) + (prof.timeDeltas[i] ?? 0));
const byFn = new Map<string, number>();
const byFile = new Map<string, number>();
let total = 0;
for (const n of prof.nodes) {
  const us = self.get(n.id) ?? 0;
  if (n.callFrame.functionName === '(idle)') continue;
  total += us;
  const url = n.callFrame.url.replace(/^file:\/\//, '').replace(REPO, '');
  const key = `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
  byFn.set(key, (byFn.get(key) ?? 0) + us);
  const fileKey = url === '' ? n.callFrame.functionName : url.replace(/^.*node_modules\//, 'node_modules/');
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
}
console.log(threadLine);
console.log(`${summary}; profile ${path.join(dir, file)}`);
const parent = new Map<number, Node>();
const byId = new Map<number, Node>();
for (const n of prof.nodes) {
  byId.set(n.id, n);
  for (const c of n.children ?? []) parent.set(c, n);
}
const byStage = new Map<string, number>();
for (const n of prof.nodes) {
  const us = self.get(n.id) ?? 0;
  if (us === 0 || n.callFrame.functionName === '(idle)') continue;
  let stage = 'other';
  for (let f: Node | undefined = n; f !== undefined; f = parent.get(f.id)) {
    const url = f.callFrame.url.replace(/^file:\/\//, '').replace(REPO, '');
    const rule = STAGES.find((r) => r.match(f!.callFrame.functionName, url));
    if (rule !== undefined && !(rule.stage.startsWith('sockets') && f !== n)) {
      stage = rule.stage;
      break;
    }
  }
  byStage.set(stage, (byStage.get(stage) ?? 0) + us);
}
// Per event of the whole service, from this thread's own busy time (its non-idle samples): with shards, the main
// thread's and each shard's figures add up to the process's.
const busySeconds = total / 1e6;
const perEvent = (share: number) => ((share * busySeconds) / received) * 1e6;
console.log(`\nthread ${profiledThread}${profiledThread === 0 ? ' (main)' : ' (a shard worker)'}: busy ${busySeconds.toFixed(2)} s of samples`);
console.log('\n| stage | share of the thread | us of this thread per event |\n|---|---:|---:|');
for (const [k, us] of [...byStage].sort((a, b) => b[1] - a[1])) console.log(`| ${k} | ${((100 * us) / total).toFixed(1)} % | ${perEvent(us / total).toFixed(1)} |`);
console.log(`| all | 100 % | ${perEvent(1).toFixed(1)} |`);
if (lat.length > 0) {
  printLatency();
  // The longest stretches of consecutive non-idle samples, and what ran most in each: where the loop stalled.
  const idle = new Set(prof.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  const stretches: { ms: number; at: number; top: Map<string, number> }[] = [];
  let cur: { ms: number; at: number; top: Map<string, number> } | undefined;
  let clock = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    clock += prof.timeDeltas[i] ?? 0;
    const id = prof.samples[i]!;
    if (idle.has(id)) {
      if (cur) stretches.push(cur);
      cur = undefined;
      continue;
    }
    cur ??= { ms: 0, at: clock / 1000, top: new Map() };
    cur.ms += (prof.timeDeltas[i] ?? 0) / 1000;
    let label = 'other';
    for (let f: Node | undefined = byId.get(id); f !== undefined; f = parent.get(f.id)) {
      const url = f.callFrame.url.replace(/^file:\/\//, '').replace(REPO, '');
      if (url.startsWith('dist/')) {
        label = `${f.callFrame.functionName} ${url}`;
        break;
      }
    }
    cur.top.set(label, (cur.top.get(label) ?? 0) + 1);
  }
  // Stretches in the start-up (learner creation, first backlog) are left out as the latencies are.
  const profileStartMs = stretches.length > 0 ? stretches[0]!.at : 0;
  for (const st of stretches.filter((x) => x.at - profileStartMs > WARM_UP_MS + 1000).sort((a, b) => b.ms - a.ms).slice(0, 8)) {
    const top = [...st.top].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${k} (${n})`).join('; ');
    console.log(`busy ${st.ms.toFixed(1)} ms at ${st.at.toFixed(0)} ms: ${top}`);
  }
}
console.log('\nself time by file (share of non-idle samples):');
for (const [k, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`);
console.log('\nself time by function:');
for (const [k, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`);
