// Smoke test of the benchmark harness: `bench/index.ts --quick state tick` runs to the end in a child process and
// prints its tables with finite numbers. It checks that the benchmarks run, not how fast anything is.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));
const TIMEOUT_MS = 240_000;

/** Numbers as the tables print them: digits with thousands separators and decimals. */
const number = (s: string) => Number(s.replace(/,/g, ''));

test('bench --quick state tick prints its tables', { timeout: TIMEOUT_MS + 10_000 }, () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/index.ts', '--quick', 'state', 'tick'], {
    cwd: root, encoding: 'utf8', timeout: TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024,
  });
  const out = r.stdout ?? '';
  assert.equal(r.error, undefined, `bench did not finish: ${r.error?.message}\n${out}\n${r.stderr}`);
  assert.equal(r.status, 0, `bench exited with ${r.status}\n${out}\n${r.stderr}`);

  // Machine info and the section titles.
  assert.match(out, /node v\d+\.\d+\.\d+/);
  assert.match(out, /cpu: .+, \d+ cores/);
  for (const title of ['tick: predict + learn latency', 'tick: roofline bound', 'state: learner.stateBytes', 'state: RTRL / immediate', 'targets']) {
    assert.ok(out.includes(title), `missing table '${title}'\n${out}`);
  }
  assert.doesNotMatch(out, /memory: WASM learner/, 'memory was not asked for');

  // Tick rows: n, variant, median us, p99 us, wasm speedup, ticks measured. wasm and js for every n.
  const tickRow = /^\s*(64|256|1024)\s+(wasm|js|tfjs-cpu|tfjs-wasm)\s+([\d,.]+)\s+([\d,.]+)\s+([\d,.]+)x\s+([\d,]+)/gm;
  const seen = new Map<string, number[]>();
  for (const m of out.matchAll(tickRow)) seen.set(`${m[1]} ${m[2]}`, [m[3], m[4], m[5], m[6]].map(number));
  for (const n of [64, 256, 1024]) {
    for (const variant of ['wasm', 'js']) {
      const values = seen.get(`${n} ${variant}`);
      assert.ok(values, `no tick row for n = ${n}, ${variant}\n${out}`);
      const [med, p99, speedup, ticks] = values;
      for (const v of values) assert.ok(Number.isFinite(v), `non-finite number in ${n} ${variant}: ${values}`);
      assert.ok(med > 0 && p99 >= med && speedup > 0 && ticks >= 3, `implausible row ${n} ${variant}: ${values}`);
    }
    assert.equal(seen.get(`${n} wasm`)![2], 1, 'wasm speedup over itself is 1.00x');
  }

  // Roofline rows: n, params, bytes/tick, bound us, wasm median us, wasm / bound, PASS|FAIL.
  const roofRow = /^\s*(64|256|1024)\s+([\d,]+)\s+([\d,]+)\s+([\d,.]+)\s+([\d,.]+)\s+([\d,.]+)\s+(PASS|FAIL)/gm;
  const roof = [...out.matchAll(roofRow)];
  assert.equal(roof.length, 3, `expected 3 roofline rows\n${out}`);
  for (const m of roof) for (const v of m.slice(2, 7).map(number)) assert.ok(Number.isFinite(v) && v > 0, `roofline row: ${m[0]}`);
  assert.match(out, /copy [\d.]+ GB\/s/);

  // State rows: immediate and rtrl for every n, with finite byte counts.
  const stateRow = /^\s*(64|256|1024)\s+(immediate|rtrl)\s+(constructed|formula)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s/gm;
  const states = [...out.matchAll(stateRow)];
  assert.equal(states.length, 6, `expected 6 state rows\n${out}`);
  for (const m of states) {
    for (const v of m.slice(4, 7).map(number)) assert.ok(Number.isFinite(v) && v > 0, `state row: ${m[0]}`);
  }
  assert.doesNotMatch(out, /DIFFERS/, 'the stateBytes formula disagrees with a constructed learner');
});
