import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { demoCommand, type DemoSummary } from '../src/cli/demo.js';
import { ProgressBar } from '../src/report/progress.js';
import { formatTable } from '../src/cli/table.js';
import { PageHinkley } from '../src/drift/page-hinkley.js';
import { createLearner, type Learner } from '../src/learners/learner.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import { DriftingSignal } from '../src/simulator/drifting-signal.js';

function capture(isTTY = false) {
  let text = '';
  return { stream: { write: (chunk: string) => ((text += chunk), true), isTTY, columns: 120 }, text: () => text };
}

/** Runs the demo with captured output; throws if it printed only the usage. */
async function demo(args: string[], extra: { signals?: EventEmitter } = {}) {
  const stdout = capture();
  const stderr = capture();
  const io = { stdout: stdout.stream, stderr: stderr.stream, ...(extra.signals ? { signals: extra.signals as unknown as NodeJS.Process } : {}) };
  const summary = (await demoCommand(args, io)) as DemoSummary;
  assert.ok(summary, 'the demo returned a summary');
  return { summary, stdout: stdout.text(), stderr: stderr.text() };
}

function close(actual: number, expected: number, what: string, rel = 1e-9) {
  assert.ok(Number.isFinite(actual) && Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

interface ReferenceTick {
  readonly seq: number;
  readonly heldOut: boolean;
  /** A label had arrived when it was predicted (the references exist). */
  readonly referenced: boolean;
  readonly learner: number;
  readonly lastLabel: number;
  readonly runningMean: number;
  readonly frozen: number;
}

/**
 * The demo's semantics written out by hand, without the stream spine: the same DriftingSignal and learner spec,
 * predict tick g, then the label of tick g - d arrives; it is scored, the learner learns from it unless its tick
 * is in the last `heldOutFrom..sessionLength` ticks of its session, and the references (last label, running mean)
 * take it on the same condition. The last d labels arrive after the last tick. At a session boundary a frozen fork
 * predicts the next `recoveryTicks` ticks. Returns the scored ticks in arrival order and the boundaries.
 */
function referenceRun(o: { ticks: number; seed: number; sessionLength: number; delay: number; heldOutFrom: number; recoveryTicks: number }) {
  const sim = new DriftingSignal({ seed: o.seed, sessionLength: o.sessionLength });
  const learner = createLearner({
    cell: { kind: 'tanh-rnn', hiddenSize: 64 },
    credit: { rule: 'immediate', lambda: 0 },
    optimizer: rmsprop(1e-3),
    inputSize: 8,
    outputSize: 2,
    seed: o.seed,
    loss: 'mse',
    maxLabelDelay: Math.max(32, o.delay + 1),
  });
  const err = (a: ArrayLike<number>, y: ArrayLike<number>) => ((a[0] - y[0]) ** 2 + (a[1] - y[1]) ** 2) / 2;
  const lastLabel = new Float32Array(2).fill(NaN);
  const labelMean = new Float64Array(2);
  let labels = 0;
  let shadow: Learner | null = null;
  let shadowLeft = 0;
  const pending: { seq: number; y: Float32Array; yhat: Float32Array; yLast: Float32Array; yMean: Float32Array; yFrozen: Float32Array | null; tick: number; heldOut: boolean }[] = [];
  const scored: ReferenceTick[] = [];
  const boundaries: number[] = [];
  for (let g = 0; g < o.ticks + o.delay; g++) {
    if (g < o.ticks) {
      if (sim.next()) {
        boundaries.push(g);
        shadow = learner.fork({ frozen: true });
        shadowLeft = o.recoveryTicks;
      }
      const yhat = learner.predict(sim.x).slice();
      const yMean = labels > 0 ? Float32Array.from(labelMean) : new Float32Array(2).fill(NaN);
      let yFrozen: Float32Array | null = null;
      if (shadow !== null) {
        yFrozen = shadow.predict(sim.x).slice();
        if (--shadowLeft <= 0) shadow = null;
      }
      pending.push({ seq: g, y: sim.y.slice(), yhat, yLast: lastLabel.slice(), yMean, yFrozen, tick: learner.tick, heldOut: g % o.sessionLength >= o.heldOutFrom });
    }
    if (g - o.delay >= 0 && g - o.delay < o.ticks) {
      const p = pending.shift()!;
      scored.push({
        seq: p.seq,
        heldOut: p.heldOut,
        referenced: !Number.isNaN(p.yLast[0]),
        learner: err(p.yhat, p.y),
        lastLabel: err(p.yLast, p.y),
        runningMean: err(p.yMean, p.y),
        frozen: p.yFrozen === null ? NaN : err(p.yFrozen, p.y),
      });
      if (!p.heldOut) {
        learner.learn(p.y, p.tick);
        labels++;
        for (let i = 0; i < 2; i++) {
          lastLabel[i] = p.y[i];
          labelMean[i] += (p.y[i] - labelMean[i]) / labels;
        }
      }
    }
  }
  return { scored, boundaries, version: learner.version };
}

describe('driftline demo', () => {
  test('--ticks 3000 --rate 0: every tick scored through the spine, default label delay 10, summary and live line from the reports', async () => {
    const started = performance.now();
    const { summary, stdout, stderr } = await demo(['--ticks', '3000', '--rate', '0']);
    assert.ok(performance.now() - started < 20_000);
    assert.equal(summary.ticks, 3000);
    // The simulator delivers the last 10 labels after the last tick, as a replay does: every tick is scored.
    assert.equal(summary.scored, 3000);
    // No holdout before tick 8000 of a 10,000-tick session: every label was learned from.
    assert.equal(summary.version, 3000);
    // Ticks 0..10 were predicted before any label arrived: no reference prediction, so prequential skips them.
    assert.equal(summary.learning.ticks, 3000 - 11);
    assert.equal(summary.heldOut.ticks, 0);
    assert.equal(summary.learning.last?.count, 1000);
    for (const v of Object.values(summary.learning.mse)) assert.ok(Number.isFinite(v));
    assert.match(stdout, /label delay: 10 tick/);
    assert.match(stdout, /last label seen/);
    assert.match(stdout, /running mean/);
    // The last live line (not a TTY: printed at the end) shows the last report's figures with its label delay.
    const report = summary.learning.last!;
    const f = report.figures;
    const liveLine = stderr.trimEnd().split('\n').at(-1)!;
    assert.ok(
      liveLine.includes(`learning (label delay ${Number.isInteger(report.labelDelay) ? report.labelDelay : report.labelDelay.toFixed(2)}) ${f.learner.mse.toFixed(4)} / ${f['last-label'].mse.toFixed(4)} / ${f['running-mean'].mse.toFixed(4)}`),
      liveLine,
    );
    assert.match(liveLine, /^tick 3000\/3000  session 0  v3000 /);
  });

  test('figures equal a hand-written predict-then-learn loop: held-out and learning MSE beside both references, recovery per track at each boundary', async () => {
    const args = ['--ticks', '6500', '--rate', '0', '--session', '2000', '--label-delay', '3', '--window', '500', '--detector', 'none', '--quiet'];
    const { summary, stdout } = await demo(args);
    const recoveryTicks = 2000 - 3;
    const ref = referenceRun({ ticks: 6500, seed: 1, sessionLength: 2000, delay: 3, heldOutFrom: 1600, recoveryTicks });

    // Holdout: ticks 1600..1999 of each session, so 3 x 400 held out; the learner learned from the rest.
    assert.equal(summary.scored, 6500);
    assert.equal(summary.heldOut.ticks, 1200);
    assert.equal(summary.learning.ticks, 6500 - 1200 - 4);
    assert.equal(summary.version, 6500 - 1200);
    assert.equal(summary.version, ref.version);

    for (const [name, heldOut] of [['learning', false], ['held out', true]] as const) {
      const ticks = ref.scored.filter((t) => t.referenced && t.heldOut === heldOut);
      const track = heldOut ? summary.heldOut : summary.learning;
      assert.equal(track.ticks, ticks.length);
      close(track.mse.learner, mean(ticks.map((t) => t.learner)), `${name} learner MSE`);
      close(track.mse['last-label'], mean(ticks.map((t) => t.lastLabel)), `${name} last-label MSE`);
      close(track.mse['running-mean'], mean(ticks.map((t) => t.runningMean)), `${name} running-mean MSE`);
      const window = ticks.slice(-500);
      const last = track.last!;
      assert.equal(last.count, 500);
      close(last.figures.learner.mse, mean(window.map((t) => t.learner)), `${name} windowed learner MSE`);
      close(last.figures['last-label'].mse, mean(window.map((t) => t.lastLabel)), `${name} windowed last-label MSE`);
      close(last.figures['running-mean'].mse, mean(window.map((t) => t.runningMean)), `${name} windowed running-mean MSE`);
    }
    // Labels withheld from the references too: during a held-out block the last label seen is hours old, so
    // persistence does far worse there than on learning ticks; the learner still beats both references.
    assert.ok(summary.heldOut.mse['last-label'] > 2 * summary.learning.mse['last-label']);
    assert.ok(summary.heldOut.mse.learner < summary.heldOut.mse['running-mean']);
    // The held-out row of the table: the learner beside both references, each with the track's label delay.
    const h = summary.heldOut.last!.figures;
    assert.match(stdout, new RegExp(`held out\\s+1200\\s+3\\s+learner\\s+${summary.heldOut.mse.learner.toFixed(4)}\\s+${h.learner.mse.toFixed(4)}`));
    assert.match(stdout, new RegExp(`last label seen\\s+${summary.heldOut.mse['last-label'].toFixed(4)}\\s+${h['last-label'].mse.toFixed(4)}`));
    assert.match(stdout, new RegExp(`running mean\\s+${summary.heldOut.mse['running-mean'].toFixed(4)}\\s+${h['running-mean'].mse.toFixed(4)}`));

    // One recovery line per declared boundary and track measured; the last boundary's measurement is cut by the
    // end of the stream after 500 ticks, all of them learning ticks (held-out ticks start at 1600 of a session).
    assert.deepEqual(ref.boundaries, [2000, 4000, 6000]);
    assert.deepEqual(summary.drifts, ref.boundaries.map((tick) => ({ tick, source: 'session' })));
    assert.deepEqual(
      summary.events.map((e) => [e.tick, e.heldOut, e.declared, e.ticks, e.trackTicks, e.complete]),
      [
        [2000, false, true, recoveryTicks, 1600, true], [2000, true, true, recoveryTicks, recoveryTicks - 1600, true],
        [4000, false, true, recoveryTicks, 1600, true], [4000, true, true, recoveryTicks, recoveryTicks - 1600, true],
        [6000, false, true, 500, 500, false],
      ],
    );
    assert.equal(stdout.match(/^drift at tick \d+ \(session \d\), learning ticks, label delay 3: recovery/gm)?.length, 3);
    assert.equal(stdout.match(/^drift at tick \d+ \(session \d\), held-out ticks, label delay 3: recovery/gm)?.length, 2);
    assert.match(stdout, /drift at tick 6000 \(session 3\), learning ticks, label delay 3: .*measurement ended after 500 of 1997 ticks/);
    // Every report's figures, recomputed per track from the hand-written loop (DESIGN section 5): E_pre over the
    // track's last 500 ticks scored before the marker (labels of ticks up to boundary - 4; the 3 ticks before an
    // earlier boundary, scored after it, are stale and counted nowhere), E_frozen and E_adapt over the track's last
    // 500 of the ticks measured after it; time to recovery: the first of those ticks (counted over both tracks) at
    // which the track's MSE over its last 500 is within 50% of its E_pre.
    const stale = (seq: number) => ref.boundaries.some((b) => seq >= b - 3 && seq < b);
    for (const e of summary.events) {
      const r = e.report;
      const what = `${e.tick} ${e.heldOut ? 'held out' : 'learning'}`;
      const before = ref.scored.filter((t) => t.seq < e.tick - 3 && !stale(t.seq) && t.heldOut === e.heldOut).slice(-500);
      const measured = ref.scored.filter((t) => t.seq >= e.tick && t.seq < Math.min(e.tick + recoveryTicks, 6500));
      const own = measured.filter((t) => t.heldOut === e.heldOut);
      assert.equal(own.length, e.trackTicks, `${what}: ticks`);
      const ePre = mean(before.map((t) => t.learner));
      close(r.ePre, ePre, `${what}: E_pre`, 1e-7);
      close(r.eAdapt, mean(own.slice(-500).map((t) => t.learner)), `${what}: E_adapt`, 1e-7);
      close(r.eFrozen, mean(own.slice(-500).map((t) => t.frozen)), `${what}: E_frozen`, 1e-7);
      close(r.recovery!, (r.eFrozen - r.eAdapt) / (r.eFrozen - r.ePre), `${what}: recovery`);
      close(r.residual, r.eAdapt / r.ePre, `${what}: residual`);
      let recoveredOn: ReferenceTick | undefined;
      for (let i = 499; i < own.length && recoveredOn === undefined; i++) {
        if (mean(own.slice(i - 499, i + 1).map((t) => t.learner)) <= 1.5 * ePre) recoveredOn = own[i];
      }
      assert.equal(r.ticksToRecovery, recoveredOn === undefined ? null : measured.indexOf(recoveredOn), `${what}: ticks to recovery`);
      if (recoveredOn !== undefined) close(r.secondsToRecovery!, (recoveredOn.seq - e.tick) / 2000, `${what}: seconds to recovery`);
    }
    // The tracks differ: at the first boundary E_pre of held-out error is not E_pre of learning error.
    assert.notEqual(summary.events[0].report.ePre, summary.events[1].report.ePre);
    for (const e of summary.events) assert.ok(e.report.eFrozen > e.report.ePre, `the new tuning hurts the frozen shadow: ${JSON.stringify(e.report)}`);
    assert.match(stdout, /label delay: 3 tick/);
    assert.match(stdout, /drifts: 3 declared \(session boundaries at 2000, 4000, 6000\), 0 detected \(no detector\)/);
  });

  test('page-hinkley on the learner error: the detection a hand-fed detector finds is printed, marked detected, and measured', async () => {
    const { summary, stdout } = await demo(['--ticks', '4000', '--rate', '0', '--quiet']);
    const ref = referenceRun({ ticks: 4000, seed: 1, sessionLength: 10_000, delay: 10, heldOutFrom: 8000, recoveryTicks: 5000 });
    const ph = new PageHinkley({ mode: 'up' });
    const firing = ref.scored.find((t) => ph.update(t.learner).driftDetected);
    assert.ok(firing, 'page-hinkley fires on this stream within 4000 ticks');
    const tick = firing.seq + 1;
    assert.deepEqual(summary.drifts[0], { tick, source: 'page-hinkley' });
    // The cooldown (recoveryTicks + label delay scored ticks) keeps any later detection out of this run.
    assert.equal(summary.drifts.length, 1);
    assert.match(stdout, new RegExp(`^drift detected by page-hinkley at tick ${tick} \\(session 0\\), from the learner's error$`, 'm'));
    assert.match(stdout, new RegExp(`^drift detected by page-hinkley at tick ${tick} \\(session 0\\), learning ticks, label delay 10: recovery`, 'm'));
    // Session 0 has no held-out tick before 8000: the learning track only.
    assert.equal(summary.events.length, 1);
    const [event] = summary.events;
    assert.equal(event.declared, false);
    assert.equal(event.heldOut, false);
    assert.equal(event.trackTicks, event.ticks);
    // The detection comes with the label of tick `tick - 1`, 10 ticks late: the frozen shadow is forked before the
    // next tick, tick + 10, and measured from there to the end of the stream.
    assert.equal(event.ticks, 4000 - (tick + 10));
    assert.equal(event.complete, false);
    assert.match(stdout, new RegExp(`^${tick}\\s+0\\s+detected \\(page-hinkley\\)\\s+learning\\s+${event.ticks} \\(cut\\)`, 'm'));
    assert.match(stdout, new RegExp(`0 declared \\(session boundaries\\), 1 detected \\(page-hinkley on the learner's error: ${tick} by page-hinkley\\)`));
  });

  test('the same seed gives the same output at --rate 0; another seed does not', async () => {
    const args = ['--ticks', '4500', '--rate', '0', '--session', '1500', '--window', '300'];
    // Timing and the dashboard's free port differ from run to run; nothing else may.
    const timing = (text: string) =>
      text.replace(/ticks in [^,]+,/, 'ticks in T,').replace(/\d+ ticks\/s/g, 'R ticks/s').replace(/http:\/\/127\.0\.0\.1:\d+/g, 'http://127.0.0.1:P');
    const a = await demo(args);
    const b = await demo(args);
    const c = await demo([...args, '--seed', '2']);
    assert.equal(timing(a.stdout), timing(b.stdout));
    assert.equal(timing(a.stderr), timing(b.stderr));
    const urls = { metricsUrl: '', dashboardUrl: '' };
    assert.deepEqual({ ...a.summary, seconds: 0, ...urls }, { ...b.summary, seconds: 0, ...urls });
    assert.notEqual(c.summary.learning.mse.learner, a.summary.learning.mse.learner);
  });

  test('--metrics-port serves driftline_prequential_error on 127.0.0.1 while the demo runs, and closes after', async () => {
    const stdout = capture();
    let url: string | undefined;
    let body = '';
    const write = stdout.stream.write;
    const scraped = new Promise<void>((resolve, reject) => {
      stdout.stream.write = (chunk: string) => {
        const found = /^metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics) /m.exec(chunk);
        if (found && url === undefined) {
          url = found[1];
          void (async () => {
            // Poll until both tracks have been reported (held-out ticks start at tick 800 of each session).
            for (let i = 0; i < 60 && !/driftline_prequential_error\{[^}]*held_out="true"/.test(body); i++) {
              await new Promise((r) => setTimeout(r, 50));
              body = await (await fetch(url!)).text();
            }
          })().then(resolve, reject);
        }
        return write(chunk);
      };
    });
    const summary = (await demoCommand(['--ticks', '4000', '--rate', '2000', '--session', '1000', '--metrics-port', '0', '--quiet'], {
      stdout: stdout.stream,
      stderr: capture().stream,
    })) as DemoSummary;
    await scraped;
    assert.equal(summary.metricsUrl, url);
    // Series as { labels, value }, label order aside.
    const series = body
      .split('\n')
      .filter((line) => line.startsWith('driftline_prequential_error{'))
      .map((line) => ({ labels: new Set(line.slice(line.indexOf('{') + 1, line.indexOf('}')).split(',')), value: Number(line.slice(line.indexOf('}') + 2)) }));
    for (const heldOut of ['false', 'true']) {
      for (const predictor of ['learner', 'last-label', 'running-mean']) {
        const found = series.find((s) => s.labels.has(`predictor="${predictor}"`) && s.labels.has('metric="mse"') && s.labels.has(`held_out="${heldOut}"`));
        assert.ok(found && Number.isFinite(found.value) && found.value > 0, `${predictor} held_out=${heldOut} mse in\n${body}`);
      }
    }
    assert.match(body, /^driftline_events_total\{stream="demo",source="simulator"\} \d+/m);
    await assert.rejects(fetch(url!), 'the endpoint is closed when the demo ends');
  });

  test('Ctrl-C ends the stream early: open measurements report what they have, the summary is printed, the command resolves', async () => {
    const signals = new EventEmitter();
    const timer = setTimeout(() => signals.emit('SIGINT'), 700);
    const { summary, stdout } = await demo(['--ticks', '40000', '--rate', '2000', '--session', '500', '--label-delay', '2', '--quiet'], { signals });
    clearTimeout(timer);
    assert.equal(summary.interrupted, true);
    assert.ok(summary.ticks > 500 && summary.ticks < 40000, `${summary.ticks} ticks`);
    assert.match(stdout, /^summary \(interrupted\): /m);
    assert.equal(signals.listenerCount('SIGINT'), 0);
    assert.equal(signals.listenerCount('SIGTERM'), 0);
    // Every declared boundary got its learning-track recovery report (the last one with what it had), in order.
    const declared = summary.drifts.filter((d) => d.source === 'session').map((d) => d.tick);
    assert.ok(declared.length >= 1);
    assert.deepEqual(summary.events.filter((e) => e.declared && !e.heldOut).map((e) => e.tick), declared.filter((t) => t < summary.ticks - 2));
  });

  test('a fixed rate is kept', async () => {
    const started = performance.now();
    await demoCommand(['--ticks', '400', '--rate', '2000', '--quiet'], { stdout: capture().stream, stderr: capture().stream });
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds >= 0.15 && seconds < 2, `400 ticks at 2000/s took ${seconds}s`);
  });

  test('--holdout 0 turns the holdout off', async () => {
    const { summary, stdout } = await demo(['--ticks', '2500', '--rate', '0', '--session', '1000', '--holdout', '0', '--quiet']);
    assert.equal(summary.heldOut.ticks, 0);
    assert.equal(summary.version, 2500);
    assert.match(stdout, /holdout: none/);
    assert.doesNotMatch(stdout, /held out\s+\d/);
  });

  test('bad options are refused with the usage', async () => {
    const io = { stdout: capture().stream, stderr: capture().stream };
    await assert.rejects(demoCommand(['--rate', '-1'], io), /--rate/);
    await assert.rejects(demoCommand(['--label-delay', '1.5'], io), /--label-delay/);
    await assert.rejects(demoCommand(['--holdout', '1'], io), /--holdout must be a fraction/);
    await assert.rejects(demoCommand(['--detector', 'cusum'], io), /--detector must be/);
    await assert.rejects(demoCommand(['--metrics-port', '70000'], io), /--metrics-port must be a port/);
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
