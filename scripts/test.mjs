#!/usr/bin/env node
// `npm test`: makes sure the package is installed and built, starts the real services the tests need (the Kafka
// broker through scripts/kafka/broker.sh, Debian's prometheus and chromium when missing), runs every test file with Node's test runner, and stops what it started.
// A service that cannot be had is reported, and only the tests that need it skip, each printing why. With
// DRIFTLINE_REQUIRE_ALL_PARTS=1 (set by .ci/run) any skipped test fails the run.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const log = (msg) => process.stderr.write(`[driftline test] ${msg}\n`);

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...options });
  return { code: r.status ?? 1, stdout: r.stdout ?? '' };
}

if (!existsSync(join(root, 'node_modules', '.package-lock.json'))) {
  log('node_modules missing: running npm ci');
  if (run('npm', ['ci'], { stdio: 'inherit' }).code !== 0) process.exit(1);
}
if (!existsSync(join(root, 'build', 'kernels.wasm')) || !existsSync(join(root, 'dist', 'cli', 'main.js'))) {
  log('build output missing: running npm run build');
  if (run('npm', ['run', 'build'], { stdio: 'inherit' }).code !== 0) process.exit(1);
}

// The tests run through tsx, which strips types without checking them: check src, test and bench first.
log('type-checking src, test and bench (tsc -p tsconfig.check.json)');
if (run('npx', ['tsc', '-p', 'tsconfig.check.json'], { stdio: 'inherit' }).code !== 0) {
  log('type errors: fix them first (npm run typecheck)');
  process.exit(1);
}

const env = { ...process.env };
let startedKafka = false;
if (env.DRIFTLINE_KAFKA_BROKERS) {
  log(`using the Kafka broker at ${env.DRIFTLINE_KAFKA_BROKERS}`);
} else if (env.DRIFTLINE_NO_KAFKA === '1') {
  log('DRIFTLINE_NO_KAFKA=1: Kafka tests will skip');
} else {
  log('starting the Kafka broker (scripts/kafka/broker.sh start)');
  const r = run('bash', ['scripts/kafka/broker.sh', 'start']);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code === 0 && /^[\w.-]+:\d+$/.test(last)) {
    env.DRIFTLINE_KAFKA_BROKERS = last;
    startedKafka = true;
    log(`Kafka broker ready at ${last}`);
  } else {
    env.DRIFTLINE_KAFKA_UNAVAILABLE = `the Kafka broker could not be started (scripts/kafka/broker.sh start exited ${r.code})`;
    log(env.DRIFTLINE_KAFKA_UNAVAILABLE);
  }
}

// Prometheus for the metrics integration tests: installed from Debian's package when missing and permitted
// (root with apt-get); the tests start and stop their own server. When it cannot be had they skip, saying why.
if (env.DRIFTLINE_NO_PROMETHEUS !== '1' && run('bash', ['scripts/prometheus/prometheus.sh', 'install']).code !== 0) {
  log('Prometheus is not installed and could not be installed: the tests that need it will skip');
}

// Chromium for the browser tests, the same way (scripts/chromium/chromium.sh); the tests launch it themselves.
if (env.DRIFTLINE_NO_CHROMIUM !== '1' && run('bash', ['scripts/chromium/chromium.sh', 'install']).code !== 0) {
  log('Chromium is not installed and could not be installed: the browser tests will skip');
}

function findTests(dir) {
  const files = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files.push(...findTests(p));
    else if (name.endsWith('.test.ts')) files.push(relative(root, p));
  }
  return files;
}
const selected = process.argv.slice(2);
const files = selected.length > 0 ? selected : findTests(join(root, 'test'));

// Guards against a hung run (CI stops at 90 minutes and shows little of why): each test has a timeout unless it sets
// its own; the runner runs in its own process group, so a process a test leaked is killed (and named) once its test
// file has exited, and whatever is left at the end too; a line names the running test and its processes when the
// output goes quiet; and the whole run stops past DRIFTLINE_TEST_RUN_MINUTES (default 40; the suite takes about 6
// here), saying where it was. Not --test-force-exit: on Node 20 it ended a file before its last test had reported,
// without a word.
const TEST_TIMEOUT_MS = Number(env.DRIFTLINE_TEST_TIMEOUT_MS ?? 600_000);
const RUN_LIMIT_MS = Number(env.DRIFTLINE_TEST_RUN_MINUTES ?? 40) * 60_000;
const QUIET_MS = Number(env.DRIFTLINE_TEST_QUIET_SECONDS ?? 120) * 1000;
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=tap', `--test-timeout=${TEST_TIMEOUT_MS}`, ...files],
  { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'], detached: true },
);
const startedAt = Date.now();
let lastOutputAt = Date.now();
let running = '(none yet)';
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  lastOutputAt = Date.now();
  const text = chunk.toString();
  for (const m of text.matchAll(/^# Subtest: (.*)$/gm)) running = m[1];
  tail = (tail + text).slice(-4000);
});

/** The processes of the runner's group: the runner, one process per test file, and whatever those started. */
function groupMembers() {
  const r = spawnSync('ps', ['-e', '-o', 'pgid=,pid=,ppid=,etime=,args='], { encoding: 'utf8' });
  return (r.stdout ?? '')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] === String(child.pid) && !f.includes('<defunct>'))
    .map((f) => ({ pid: Number(f[1]), ppid: Number(f[2]), line: `${f[1]} ${f[3]} ${f.slice(4).join(' ')}`.slice(0, 160) }));
}
function descendants() {
  return groupMembers().map((m) => m.line);
}
// A process whose test file has exited (its parent is no longer in the group) still holds that file's output pipe,
// and the runner waits for the pipe to close: such a process is killed, and named.
function killOrphans() {
  const members = groupMembers();
  const pids = new Set(members.map((m) => m.pid));
  for (const m of members) {
    if (m.pid === child.pid || pids.has(m.ppid)) continue;
    log(`killing a process whose test file has exited (a test leaked it): ${m.line}`);
    try {
      process.kill(m.pid, 'SIGKILL');
    } catch {
      // It exited meanwhile.
    }
  }
}
function killGroup(signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}
const minutes = (ms) => (ms / 60_000).toFixed(1);
let stoppedForTime = false;
const watchdog = setInterval(() => {
  killOrphans();
  const now = Date.now();
  if (now - startedAt > RUN_LIMIT_MS) {
    stoppedForTime = true;
    log(`the tests ran past ${minutes(RUN_LIMIT_MS)} min; stopping them. Last test started: ${running}`);
    for (const line of descendants()) log(`  still running: ${line}`);
    killGroup('SIGKILL');
  } else if (now - lastOutputAt > QUIET_MS) {
    log(`no test output for ${minutes(now - lastOutputAt)} min (${minutes(now - startedAt)} min in); last test started: ${running}`);
    for (const line of descendants()) log(`  running: ${line}`);
    lastOutputAt = now;
  }
}, 10_000);

const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
clearInterval(watchdog);
// Whatever a test left behind (a browser, a server) would hold the pipes open and keep CI waiting.
const leftovers = descendants();
if (leftovers.length > 0) {
  log(`killing ${leftovers.length} process(es) the tests left running:`);
  for (const line of leftovers) log(`  ${line}`);
  killGroup('SIGKILL');
}
await Promise.race([new Promise((r) => child.stdout.on('close', r)), new Promise((r) => setTimeout(r, 5000))]);

if (startedKafka && env.DRIFTLINE_KEEP_KAFKA !== '1') run('bash', ['scripts/kafka/broker.sh', 'stop'], { stdio: 'ignore', timeout: 120_000 });
if (stoppedForTime) process.exit(1);

const skipped = Number(/# skipped (\d+)/.exec(tail)?.[1] ?? 0);
if (code === 0 && skipped > 0 && env.DRIFTLINE_REQUIRE_ALL_PARTS === '1') {
  log(`${skipped} test(s) skipped while DRIFTLINE_REQUIRE_ALL_PARTS=1: a real part was missing (see the skip reasons above)`);
  process.exit(1);
}
process.exit(code);
