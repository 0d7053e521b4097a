import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { demoCommand, type DemoSummary } from '../src/cli/demo.js';
import { ProgressBar } from '../src/cli/progress.js';
import { formatTable } from '../src/cli/table.js';
import { DriftingSignal } from '../src/simulator/drifting-signal.js';

function capture(isTTY = false) {
  let text = '';
  return { stream: { write: (chunk: string) => ((text += chunk), true), isTTY, columns: 120 }, text: () => text };
}

describe('driftline demo', () => {
  test('--ticks 3000 --rate 0 runs as fast as possible and prints a summary with the default label delay of 10', async () => {
    const stdout = capture();
    const stderr = capture();
    const started = performance.now();
    const summary = (await demoCommand(['--ticks', '3000', '--rate', '0'], { stdout: stdout.stream, stderr: stderr.stream })) as DemoSummary;
    assert.ok(performance.now() - started < 20_000);
    assert.equal(summary.ticks, 3000);
    // The labels of the last 10 ticks are still in flight when the stream ends.
    assert.equal(summary.scored, 2990);
    assert.equal(summary.version, 2990);
    assert.match(stdout.text(), /label delay: 10 tick/);
    assert.match(stdout.text(), /last label seen/);
    assert.match(stdout.text(), /running mean/);
    assert.match(stderr.text(), /label delay 10/);
    for (const v of Object.values(summary.mse)) assert.ok(Number.isFinite(v));
  });

  test('drift events get a recovery line; a label delay is honoured and stated', async () => {
    const stdout = capture();
    const summary = (await demoCommand(['--ticks', '6500', '--rate', '0', '--session', '2000', '--label-delay', '3', '--window', '500', '--quiet'], {
      stdout: stdout.stream,
      stderr: capture().stream,
    })) as DemoSummary;
    assert.equal(summary.scored, 6500 - 3);
    assert.equal(summary.version, 6500 - 3);
    assert.equal(summary.events.length, 3);
    assert.deepEqual(summary.events.map((e) => e.tick), [2000, 4000, 6000]);
    assert.deepEqual(summary.events.map((e) => e.complete), [true, true, false]);
    for (const e of summary.events) {
      assert.ok(Number.isFinite(e.ePre) && Number.isFinite(e.eAdapt) && Number.isFinite(e.eFrozen));
      // The frozen shadow is far worse after the tuning changed.
      assert.ok(e.eFrozen > e.ePre, `E_frozen ${e.eFrozen} vs E_pre ${e.ePre}`);
    }
    assert.match(stdout.text(), /drift at tick 2000 \(session 1\), label delay 3: recovery/);
    assert.match(stdout.text(), /label delay: 3 tick/);
  });

  test('a fixed rate is kept', async () => {
    const started = performance.now();
    await demoCommand(['--ticks', '400', '--rate', '2000', '--quiet'], { stdout: capture().stream, stderr: capture().stream });
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds >= 0.15 && seconds < 2, `400 ticks at 2000/s took ${seconds}s`);
  });

  test('bad options are refused with the usage', async () => {
    const io = { stdout: capture().stream, stderr: capture().stream };
    await assert.rejects(demoCommand(['--rate', '-1'], io), /--rate/);
    await assert.rejects(demoCommand(['--label-delay', '1.5'], io), /--label-delay/);
    await assert.rejects(demoCommand(['--nope'], io), /usage: driftline demo/);
  });
});

describe('DriftingSignal', () => {
  test('seeded, session boundaries declared, bounded values', () => {
    const a = new DriftingSignal({ seed: 3, sessionLength: 100 });
    const b = new DriftingSignal({ seed: 3, sessionLength: 100 });
    const drifts: number[] = [];
    for (let t = 0; t < 350; t++) {
      const d = a.next();
      b.next();
      if (d) drifts.push(t);
      assert.deepEqual(a.x, b.x);
      assert.ok(a.x.every((v) => Math.abs(v) < 2));
      assert.ok(Math.hypot(a.y[0], a.y[1]) < 2);
    }
    assert.deepEqual(drifts, [100, 200, 300]);
    assert.equal(a.session, 3);
  });
});

describe('ProgressBar', () => {
  test('not a TTY: a plain line every ~5 % and a final line', () => {
    const out = capture(false);
    let now = 0;
    const bar = new ProgressBar({ total: 100, unit: 'runs', stream: out.stream, now: () => now });
    for (let i = 0; i < 100; i++) {
      now += 10;
      bar.tick(1, `run ${i}`);
    }
    bar.finish('done');
    const lines = out.text().trimEnd().split('\n');
    assert.equal(lines.length, 21, `20 lines at 5 %, 10 %, ..., 100 %, then the final one:\n${out.text()}`);
    assert.ok(!out.text().includes('\r'));
    assert.match(lines[lines.length - 1], /100\/100 100%\s+in 1\.0s .*done/);
  });

  test('TTY: redraws one line in place', () => {
    const out = capture(true);
    let now = 0;
    const bar = new ProgressBar({ total: 10, stream: out.stream, now: () => now, label: 'x' });
    for (let i = 0; i < 10; i++) {
      now += 100;
      bar.tick();
    }
    bar.finish();
    assert.ok(out.text().includes('\r\x1b[2K['));
    assert.equal(out.text().split('\n').length, 2);
    assert.match(out.text(), /ETA/);
  });

  test('quiet writes nothing', () => {
    const out = capture(true);
    const bar = new ProgressBar({ total: 10, stream: out.stream, quiet: true });
    bar.tick(5);
    bar.finish();
    assert.equal(out.text(), '');
  });

  test('formatTable aligns columns', () => {
    const text = formatTable(['name', 'value'], [['a', '1.5'], ['longer', '10.25']]);
    assert.equal(text, ['name    value', '------  -----', 'a         1.5', 'longer  10.25'].join('\n'));
  });
});
