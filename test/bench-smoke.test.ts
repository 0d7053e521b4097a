// Smoke test of the benchmark harness: `bench/index.ts --quick state tick`, `--quick ws`, `--quick service` and
// `--quick streams` (with its shortest settings, DRIFTLINE_BENCH_STREAMS_SMOKE=1) run to the end in a child process and
// print their tables with finite numbers. They check that the benchmarks run, not how fast anything is.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));
const TIMEOUT_MS = 240_000;

/** Numbers as the tables print them: digits with thousands separators and decimals. */
const number = (s: string) => Number(s.replace(/,/g, ''));

/** Runs bench/index.ts with these arguments, fails unless it finished with exit code 0, and returns its stdout. */
function benchStdout(args: string[], timeoutMs: number): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/index.ts', ...args], {
    cwd: root, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024,
  });
  const out = r.stdout ?? '';
  assert.equal(r.error, undefined, `bench did not finish: ${r.error?.message}\n${out}\n${r.stderr}`);
  assert.equal(r.status, 0, `bench exited with ${r.status}\n${out}\n${r.stderr}`);
  return out;
}

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
  for (const title of ['tick: predict + learn latency', 'tick: 100 learners in step', 'tick: many learners ticked in turn', 'tick: roofline bound', 'state: learner.stateBytes', 'state: RTRL / immediate', 'targets']) {
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

  // Learners ticked in turn: 8 and 1,000 on one thread, 500 on each of 2 threads (one figure per thread).
  const turnRow = /^\s*(8|1,000|500 per thread)\s+(1|2)\s+([\d.]+(?: \/ [\d.]+)?)\s+([\d.]+)x\s+([\d,]+)$/gm;
  const turns = [...out.matchAll(turnRow)];
  assert.deepEqual(turns.map((m) => `${m[1]} ${m[2]}`), ['8 1', '1,000 1', '500 per thread 2'], `expected 3 rows of learners in turn\n${out}`);
  for (const m of turns) {
    const perThread = m[3]!.split(' / ').map(number);
    assert.equal(perThread.length, Number(m[2]), `one figure per thread: ${m[0]}`);
    for (const v of [...perThread, number(m[4]!), number(m[5]!)]) assert.ok(Number.isFinite(v) && v > 0, `learners in turn: ${m[0]}`);
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

test('bench --quick ws runs the WebSocket path and prints its tables', { timeout: 90_000 }, () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/index.ts', '--quick', 'ws'], {
    cwd: root, encoding: 'utf8', timeout: 80_000, maxBuffer: 16 * 1024 * 1024,
  });
  const out = r.stdout ?? '';
  assert.equal(r.error, undefined, `bench did not finish: ${r.error?.message}\n${out}\n${r.stderr}`);
  assert.equal(r.status, 0, `bench exited with ${r.status}\n${out}\n${r.stderr}`);
  for (const title of ['ws: ingest -> prediction out', 'ws: event-to-prediction latency', 'ws: a subscriber that never reads', 'targets']) {
    assert.ok(out.includes(title), `missing table '${title}'\n${out}`);
  }
  assert.doesNotMatch(out, /tick: predict \+ learn latency/, 'tick was not asked for');
  assert.match(out, /\d+ cores available \(os\.availableParallelism\(\)\)/);

  // Throughput rows: frames, frame bytes, events timed, server s, server events/s, CPU %, events / CPU-s,
  // end-to-end events/s, got / sent, target.
  const tpRow = /^\s*(binary|json)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)\s+([\d,]+)\s+(\d+) %\s+([\d,]+)\s+([\d,]+)\s+([\d,]+) \/ ([\d,]+)\s+(.*)$/gm;
  const tp = new Map([...out.matchAll(tpRow)].map((m) => [m[1], m]));
  assert.deepEqual([...tp.keys()], ['binary', 'json'], `expected a binary and a json throughput row\n${out}`);
  for (const m of tp.values()) {
    const [frameBytes, timed, seconds, rate, cpuPct, perCpuSecond, e2eRate, got, sent] = m.slice(2, 11).map(number);
    assert.ok(frameBytes > 0 && timed > 0 && seconds > 0 && rate > 0 && cpuPct > 0 && e2eRate > 0, `implausible row: ${m[0]}`);
    // CPU % is printed rounded to a whole percent, so allow its half-percent of rounding.
    assert.ok(Math.abs(perCpuSecond - rate / (cpuPct / 100)) <= perCpuSecond * (0.6 / cpuPct) + 1, `events / CPU-s: ${m[0]}`);
    // The rate is the count over the time, as printed (seconds are rounded to 3 decimals).
    assert.ok(Math.abs(rate - timed / seconds) <= timed / seconds * 0.05 + 1, `rate ${rate} vs ${timed} / ${seconds} s`);
    assert.ok(got <= sent && got > 0, `subscriber got ${got} of ${sent}`);
  }
  // 96 float32 inputs and 2 labels on the 7-byte key 'bench-0': 25 + 7 + 4 (96 + 2) bytes, as docs/websocket-frames.md lays out.
  assert.equal(number(tp.get('binary')![2]), 25 + 7 + 4 * 98);
  assert.ok(number(tp.get('json')![2]) > number(tp.get('binary')![2]), 'JSON frames are longer than binary ones');
  assert.match(tp.get('binary')![11], /^>= 20,000 (PASS|FAIL)$/);

  // Latency rows: both figures, with ordered percentiles.
  const latRow = /^\s*(in-server|end-to-end)\s+.+?\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+p99 < 2 ms (PASS|FAIL)$/gm;
  const lat = [...out.matchAll(latRow)];
  assert.deepEqual(lat.map((m) => m[1]), ['in-server', 'end-to-end'], `expected both latency figures\n${out}`);
  for (const m of lat) {
    const [events, p50, p90, p99, max] = m.slice(2, 7).map(number);
    assert.ok(events > 0, `no latency samples: ${m[0]}`);
    assert.ok(p50 >= 0 && p50 <= p90 && p90 <= p99 && p99 <= max, `percentiles out of order: ${m[0]}`);
  }

  // The never-reading subscriber: drops happened, and they are exactly what the two subscribers did not get.
  const field = (name: string) => {
    const m = new RegExp(`^\\s*${name.replace(/[.()]/g, '\\$&')}\\s+([\\d,]+)\\s*`, 'm').exec(out);
    assert.ok(m, `no '${name}' row\n${out}`);
    return number(m[1]);
  };
  const published = field('predictions published');
  const dropped = field('server.stats.droppedForSlowSubscribers');
  const slowGot = field('never-reading subscriber got (read after the run)');
  const fastGot = field('reading subscriber got');
  assert.ok(dropped > 0, 'a subscriber that never reads must cost drops once the buffers are full');
  assert.equal(dropped, 2 * published - slowGot - fastGot);
  assert.equal(field('not received (both subscribers)'), dropped);
  assert.match(out, /RSS growth after warm-up \(GC'd\)\s+[+-][\d.,]+ [kMG]?B \([+-][\d.]+ %\)/);

  // Five ws targets in the summary, each PASS or FAIL.
  const targets = out.slice(out.lastIndexOf('\ntargets\n'));
  assert.equal([...targets.matchAll(/^\s*ws\s+.+\s(PASS|FAIL)$/gm)].length, 5, `expected 5 ws targets\n${targets}`);
});

test('bench --quick service runs the real driftline run process and prints its cold / steady table', { timeout: 130_000 }, () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/index.ts', '--quick', 'service'], {
    cwd: root, encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 1024 * 1024,
  });
  const out = r.stdout ?? '';
  assert.equal(r.error, undefined, `bench did not finish: ${r.error?.message}\n${out}\n${r.stderr}`);
  assert.equal(r.status, 0, `bench exited with ${r.status}\n${out}\n${r.stderr}`);
  assert.ok(out.includes('service: driftline run, cold start vs steady'), `missing the service table\n${out}`);
  assert.doesNotMatch(out, /ws: event-to-prediction latency/, 'ws was not asked for');

  // Client rows: figure, phase, window, events, p50, p99, max, mean (ms), percentiles in order.
  const clientRow = /^\s*end-to-end \(client\)\s+(cold|steady)\s+.+? s\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$/gm;
  const client = [...out.matchAll(clientRow)];
  assert.deepEqual(client.map((m) => m[1]), ['cold', 'steady'], `expected a cold and a steady client row\n${out}`);
  for (const m of client) {
    const [events, p50, p99, max, mean] = m.slice(2, 7).map(number);
    assert.ok(events > 0, `no samples: ${m[0]}`);
    assert.ok(p50 >= 0 && p50 <= p99 && p99 <= max && mean > 0 && mean <= max, `implausible row: ${m[0]}`);
  }

  // Server rows: bucket bounds ('<= X' or '> X'), in order, and an exact mean.
  const bucket = (s: string) => (s.startsWith('>') ? Infinity : number(s.replace('<= ', '')));
  const serverRow = /^\s*in-server \(\/metrics buckets\)\s+(cold|steady)\s+.+? s\s+([\d,]+)\s+((?:<=|>) [\d.]+)\s+((?:<=|>) [\d.]+)\s+((?:<=|>) [\d.]+)\s+([\d.]+)$/gm;
  const server = [...out.matchAll(serverRow)];
  assert.deepEqual(server.map((m) => m[1]), ['cold', 'steady'], `expected a cold and a steady server row\n${out}`);
  for (const m of server) {
    const events = number(m[2]);
    const [p50, p99, max] = [m[3], m[4], m[5]].map(bucket);
    assert.ok(events > 0 && p50 > 0 && p50 <= p99 && p99 <= max && number(m[6]) > 0, `implausible row: ${m[0]}`);
  }

  // Both ratios, and every event accounted for: the client's and the server's counts are all the frames sent.
  assert.match(out, /^\s*end-to-end cold p99 \/ steady p99\s+[\d.]+x$/m);
  assert.match(out, /^\s*in-server cold p99 \/ steady p99\s+[\d.]+x \(bounds\)$/m);
  const got = /subscriber got ([\d,]+) \/ ([\d,]+) predictions/.exec(out);
  assert.ok(got, `no event count\n${out}`);
  assert.equal(number(got[1]), number(got[2]), 'the subscriber missed predictions');
  assert.equal(number(client[0]![2]) + number(client[1]![2]), number(got[2]));
  assert.equal(number(server[0]![2]) + number(server[1]![2]), number(got[2]));
  assert.match(out, /Service exit code after SIGTERM: 0;/);
});

test('bench --quick streams runs the service beside the echo floor and prints its tables', { timeout: 90_000 }, () => {
  // The shortest settings: 100 streams at 50 Hz and the max-rate ramp, 1.5 s each, JSON and binary, service and echo.
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/index.ts', '--quick', 'streams'], {
    cwd: root, encoding: 'utf8', timeout: 80_000, maxBuffer: 16 * 1024 * 1024,
    env: { ...process.env, DRIFTLINE_BENCH_STREAMS_SMOKE: '1' },
  });
  const out = r.stdout ?? '';
  assert.equal(r.error, undefined, `bench did not finish: ${r.error?.message}\n${out}\n${r.stderr}`);
  assert.equal(r.status, 0, `bench exited with ${r.status}\n${out}\n${r.stderr}`);
  for (const title of [
    'streams: events/s, CPU and RSS per server process', 'streams: event-to-prediction latency', 'streams: service / echo floor',
    'streams: max-rate:', 'streams: the load generator',
  ]) {
    assert.ok(out.includes(title), `missing table '${title}'\n${out}`);
  }
  assert.doesNotMatch(out, /service: driftline run, cold start vs steady/, 'service was not asked for');
  assert.match(out, /SMOKE settings/);

  const scenario = String.raw`(100 streams @ 50 Hz|max-rate \(100 streams\))\s+(json|binary)\s+(service, 2 shards|service|echo)`;
  const n = String.raw`([\d,.]+|n/a)`;
  const finite = (s: string) => Number.isFinite(number(s));
  const key = (m: RegExpMatchArray) => `${m[1]} ${m[2]} ${m[3]}`;
  const expected = ['100 streams @ 50 Hz', 'max-rate (100 streams)'].flatMap((sc) => ['json', 'binary'].flatMap((f) => ['service', 'service, 2 shards', 'echo'].map((k) => `${sc} ${f} ${k}`)));

  // Events/s rows: offered, served, sent, predicted, unpredicted, shed, refused, sub drops, CPU %, main thread %,
  // CPU us/ev, RSS MB.
  const rows = [...out.matchAll(new RegExp(String.raw`^\s*${scenario}\s+${n}\s+${n}\s+${n}\s+${n}\s+${n}\s+${n}\s+${n}\s+${n}\s+(\d+) %\s+(\d+) %\s+${n}\s+${n}$`, 'gm'))];
  assert.deepEqual(rows.map(key).sort(), [...expected].sort(), `expected a row per scenario, frames and server\n${out}`);
  for (const m of rows) {
    const [offered, served, sent, predicted, unpredicted, shed, refused, , cpuPct, mainPct, cpuPerEvent, rss] = m.slice(4, 16);
    assert.ok(number(offered!) > 0 && number(sent!) > 0 && number(predicted!) > 0, `nothing sent or predicted: ${m[0]}`);
    assert.equal(number(sent!) - number(predicted!), number(unpredicted!), `unpredicted = sent - predicted: ${m[0]}`);
    assert.ok(finite(shed!) && finite(cpuPct!) && number(cpuPerEvent!) > 0 && number(rss!) > 10, `implausible row: ${m[0]}`);
    // The main thread is one of the process's threads (whole percents, so a percent of rounding each).
    assert.ok(number(mainPct!) <= number(cpuPct!) + 1, `main thread above its process: ${m[0]}`);
    assert.equal(number(refused!), 0, `every frame the bench sends is valid: ${m[0]}`);
    // The max-rate service row may have no sustained rate on a loaded machine (it fell behind at once); the rest must.
    if (!(m[1]!.startsWith('max-rate') && m[3] !== 'echo')) assert.ok(number(served!) > 0, `no served rate: ${m[0]}`);
  }

  // Latency rows: warm n, p50, p99, max, then n, p50, p99, max, in order where there are samples.
  const lat = [...out.matchAll(new RegExp(String.raw`^\s*${scenario}\s+${n}\s+${n}\s+${n}\s+${n}\s+${n}\s+${n}\s+${n}\s+${n}$`, 'gm'))];
  assert.deepEqual(lat.map(key).sort(), [...expected].sort(), `expected a latency row per run\n${out}`);
  for (const m of lat) {
    for (const [count, p50, p99, max] of [m.slice(4, 8), m.slice(8, 12)]) {
      if (number(count!) === 0) continue;
      assert.ok(number(p50!) >= 0 && number(p50!) <= number(p99!) && number(p99!) <= number(max!), `percentiles out of order: ${m[0]}`);
    }
    assert.ok(number(m[4]!) > 0, `no warm-up samples: ${m[0]}`);
  }

  // Ratios: one row per scenario, frames and service (1 and 2 shards), the CPU per event ratio finite.
  const ratios = [...out.matchAll(/^\s*(100 streams @ 50 Hz|max-rate \(100 streams\))\s+(json|binary)\s+(service, 2 shards|service)\s+[\d,.]+\s+[\d,.]+\s+([\d.]+)x\s/gm)];
  assert.equal(ratios.length, 8, `expected 8 service / echo rows\n${out}`);
  for (const m of ratios) assert.ok(number(m[4]!) > 0, `CPU ratio: ${m[0]}`);

  // Every server exited cleanly after SIGTERM.
  const exits = [...out.matchAll(new RegExp(String.raw`^\s*${scenario}\s+.*\s(-?\d+|null)$`, 'gm'))].filter((m) => /\d+ \/ \d+/.test(m[0]));
  assert.equal(exits.length, 12, `expected 12 generator rows\n${out}`);
  for (const m of exits) assert.equal(m[4], '0', `a server did not exit 0: ${m[0]}`);
});

test('bench --quick handoff measures every transport, worker count and batch in this process', { timeout: 70_000 }, () => {
  const out = benchStdout(['--quick', 'handoff'], 60_000);
  assert.ok(out.includes('handoff: main-thread cost per event'), `missing the handoff table\n${out}`);
  assert.doesNotMatch(out, /tick: predict \+ learn latency/, 'tick was not asked for');
  const headers = ['transport', 'workers', 'batch', 'window', 'ev/send', 'ev/reply', 'events/s', 'main CPU us/ev', 'main ELU us/ev', 'worker CPU us/ev', 'p50 ms', 'p99 ms', 'main / (a) x1'];
  assert.match(out, new RegExp(String.raw`^\s*${headers.map((h) => h.replace(/[()/]/g, '\\$&')).join(String.raw`\s+`)}$`, 'm'), `header\n${out}`);

  // Rows: transport, workers, batch, window, ev/send, ev/reply, events/s, main CPU, main ELU, worker CPU, p50, p99, ratio.
  const n = String.raw`([\d,.]+)`;
  const row = new RegExp(
    String.raw`^\s*(inline \(no worker\)|\(a\) message/event|\(b\) transfer/batch|\(c\) SAB ring)\s+(-|\d+)\s+(-|\d+)\s+${n}\s+(-|[\d,.]+)\s+${n}\s+${n}\s+${n}\s+${n}\s+([\d,.]+|n/a)\s+${n}\s+${n}\s+${n}x$`,
    'gm',
  );
  const rows = new Map([...out.matchAll(row)].map((m) => [`${m[1]} ${m[2]} ${m[3]}`, m]));
  const expected = [
    'inline (no worker) - -', '(a) message/event 1 1', '(a) message/event 2 1',
    ...['(b) transfer/batch', '(c) SAB ring'].flatMap((t) => ['1', '2'].flatMap((w) => ['1', '8', '64', '512'].map((b) => `${t} ${w} ${b}`))),
  ];
  assert.deepEqual([...rows.keys()].sort(), [...expected].sort(), `expected a row per transport, workers and batch\n${out}`);
  for (const [key, m] of rows) {
    const inline = key.startsWith('inline');
    const [window, perReply, rate, mainUs, eluUs, p50, p99, ratio] = [m[4], m[6], m[7], m[8], m[9], m[11], m[12], m[13]].map((s) => number(s!));
    for (const v of [window, perReply, rate, mainUs, eluUs, p50, p99, ratio]) assert.ok(Number.isFinite(v) && v > 0, `not a finite positive figure in ${m[0]}`);
    assert.ok(p99 >= p50, `p99 < p50: ${m[0]}`);
    if (inline) assert.equal(m[10], 'n/a', 'no worker, no worker CPU');
    else {
      assert.ok(number(m[10]!) > 0, `worker CPU: ${m[0]}`);
      const batch = number(m[3]!);
      assert.ok(number(m[5]!) > 0 && number(m[5]!) <= batch, `ev/send within 1..${batch}: ${m[0]}`);
    }
  }
  assert.equal(number(rows.get('(a) message/event 1 1')![13]!), 1, '(a) with 1 worker is the ratio base');
  // The conclusions are computed: a transport named for batch 64 and both worker counts, and the 50,000 events/s budget.
  assert.match(out, /^\s*At batch 64 with 1 worker, \((a|b|c)\) .+ costs the main thread least: [\d.]+ us\/event/m);
  assert.match(out, /^\s*At batch 64 with 2 workers, \((a|b|c)\) .+ costs the main thread least: [\d.]+ us\/event/m);
  assert.match(out, /^\s*At 50,000 events\/s the main thread has 20\.0 us per event: .+ leaving -?[\d.]+ us for ws receive and publishing/m);
});

test('bench --quick lru compares the online LRU with the tanh RNN at equal parameter count', { timeout: TIMEOUT_MS + 10_000 }, () => {
  const out = benchStdout(['--quick', 'lru'], TIMEOUT_MS);
  // Rows: shape, params, us/tick, stateBytes, tanh n, params, us/tick, stateBytes, time ratio, state ratio.
  const row = /^\s*H (\d+), N (\d+), L (\d+)\s+([\d,]+)\s+([\d,.]+)\s+([\d.]+ [kM]B)\s+n (\d+)\s+([\d,]+)\s+([\d,.]+)\s+([\d.]+ [kM]B)\s+([\d.]+)x\s+([\d.]+)x$/gm;
  const rows = [...out.matchAll(row)];
  assert.equal(rows.length, 3, `expected 3 shapes\n${out}`);
  for (const m of rows) {
    const [lruParams, tanhParams] = [number(m[4]!), number(m[8]!)];
    assert.ok(Math.abs(lruParams - tanhParams) / lruParams < 0.02, `parameter counts within 2 %: ${m[0]}`);
    assert.ok(number(m[11]!) > 0 && number(m[12]!) > 0, `ratios: ${m[0]}`);
  }
  const modes = [...out.matchAll(/^\s*(online|truncated-1|spatial|bptt)\s+([\d,.]+)\s+([\d.]+)x\s+[\d.]+ [kM]B$/gm)].map((m) => m[1]);
  assert.deepEqual(modes, ['online', 'truncated-1', 'spatial', 'bptt']);
});

test('bench --quick fpp times tbptt and fpp against immediate derivatives at two hidden sizes', { timeout: TIMEOUT_MS + 10_000 }, () => {
  const out = benchStdout(['--quick', 'fpp'], TIMEOUT_MS);
  assert.ok(out.includes('fpp: tbptt and fpp per tick against immediate derivatives'), `missing the fpp table\n${out}`);
  // Rows: credit, then per hidden size (32, 64): us/tick, time ratio, its range over rounds, stateBytes, state ratio.
  const size = String.raw`\s+([\d,.]+)\s+([\d.]+)x\s+(-|[\d.]+-[\d.]+)\s+([\d.]+ k?B)\s+([\d.]+)x`;
  const row = new RegExp(String.raw`^\s*(immediate \(lambda 0\)|tbptt T \d+(?:, every \d+)?|fpp T \d+, M \d+(?:, no state updates)?)${size}${size}$`, 'gm');
  const rows = new Map([...out.matchAll(row)].map((m) => [m[1]!, m]));
  assert.deepEqual([...rows.keys()], [
    'immediate (lambda 0)', 'tbptt T 1', 'tbptt T 3', 'tbptt T 5', 'tbptt T 10', 'tbptt T 10, every 10',
    'fpp T 1, M 1', 'fpp T 1, M 4', 'fpp T 3, M 1', 'fpp T 3, M 4', 'fpp T 5, M 1', 'fpp T 5, M 4', 'fpp T 10, M 1', 'fpp T 10, M 4',
    'fpp T 5, M 1, no state updates',
  ], `expected a row per rule\n${out}`);
  for (const [label, m] of rows) {
    for (const at of [2, 7]) {
      const [us, time, state] = [m[at]!, m[at + 1]!, m[at + 4]!].map(number);
      assert.ok(us > 0 && time > 0 && state >= 1, `implausible figures: ${m[0]}`);
      if (label.startsWith('immediate')) assert.ok(time === 1 && state === 1, 'immediate is the ratio base');
      // fpp's buffer of 1,000 transitions dominates its state; tbptt keeps T - 1 more tick caches, at most.
      if (label.startsWith('fpp')) assert.ok(state > 4, `the fpp buffer: ${m[0]}`);
      else assert.ok(state < 1.5, `tbptt's state: ${m[0]}`);
    }
  }
});
