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

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', ...files], {
  cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'],
});
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4000);
});
const code = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));

if (startedKafka && env.DRIFTLINE_KEEP_KAFKA !== '1') run('bash', ['scripts/kafka/broker.sh', 'stop'], { stdio: 'ignore' });

const skipped = Number(/# skipped (\d+)/.exec(tail)?.[1] ?? 0);
if (code === 0 && skipped > 0 && env.DRIFTLINE_REQUIRE_ALL_PARTS === '1') {
  log(`${skipped} test(s) skipped while DRIFTLINE_REQUIRE_ALL_PARTS=1: a real part was missing (see the skip reasons above)`);
  process.exit(1);
}
process.exit(code);
