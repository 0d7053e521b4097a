// driftline reproduce copy-task (issue 20, item 5): the task's layout, the protocol's pieces (rate selection on
// the selection seed, held-out evaluation by a frozen copy), and a --quick run end to end through worker threads,
// with its results reused from OUT/runs on a second run.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { reproduceCommand, UsageError } from '../src/cli/reproduce.js';
import { QUICK_COPY_SETTINGS, type CopyTaskResults } from '../src/cli/reproduce-copy-task.js';
import { createLearner } from '../src/learners/learner.js';
import { Random } from '../src/learners/random.js';
import {
  copyLearnerSpec, evaluateCopy, runCopyJob, selectRates, type CopyJob, type CopyRunResult,
} from '../src/reproduce/copy-task.js';
import { CopyTask } from '../src/simulator/copy-task.js';
import { captureIo } from './support/capture-io.js';

const io = captureIo;

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the copy task', () => {
  test('20 steps of 7 bits, 7 blanks, a marker at tick 27, the pattern recalled at ticks 28..47', () => {
    const task = new CopyTask();
    assert.equal(task.length, 48);
    assert.equal(task.inputSize, 8);
    assert.equal(task.outputSize, 7);
    assert.equal(task.markerTick, 27);
    const rng = new Random(5);
    task.next(rng);
    const pattern = Array.from({ length: 20 }, (_, t) => Array.from(task.input(t).subarray(0, 7)));
    for (let t = 0; t < 20; t++) assert.equal(task.input(t)[7], 0);
    for (let t = 20; t < 48; t++) {
      assert.deepEqual(Array.from(task.input(t)), t === 27 ? [0, 0, 0, 0, 0, 0, 0, 1] : [0, 0, 0, 0, 0, 0, 0, 0], `input at tick ${t}`);
    }
    for (let t = 0; t < 48; t++) assert.equal(task.recalls(t), t >= 28);
    for (let t = 28; t < 48; t++) assert.deepEqual(Array.from(task.target(t)), pattern[t - 28]);
    const bits = pattern.flat();
    assert.ok(bits.every((b) => b === 0 || b === 1));
    const ones = bits.reduce((a: number, b) => a + b, 0);
    assert.ok(ones > 40 && ones < 100, `${ones} of 140 bits are 1: Bernoulli(1/2)`);
    task.next(rng);
    assert.notDeepEqual(Array.from({ length: 20 }, (_, t) => Array.from(task.input(t).subarray(0, 7))), pattern);
  });

  test('its sizes are checked', () => {
    assert.throws(() => new CopyTask({ bits: 0 }), /bits must be a positive integer/);
    assert.throws(() => new CopyTask({ padLength: -1 }), /padLength must be a non-negative integer/);
  });
});

describe('the protocol', () => {
  const job: CopyJob = {
    purpose: 'scored', method: 'online', learningRate: 1e-3, seed: 3, sequences: 40, evalEvery: 20, testSequences: 5,
    network: { hiddenSize: 8, units: 4, layers: 1, rMin: 0, rMax: 1 },
  };

  test('held-out accuracy is measured by a frozen copy from a zero state, and leaves the learner as it was', () => {
    const task = new CopyTask();
    const learner = createLearner(copyLearnerSpec(job, task));
    const before = learner.snapshot();
    const a = evaluateCopy(learner, task, 5);
    const b = evaluateCopy(learner, task, 5);
    assert.deepEqual(a, b, 'the same held-out sequences every time');
    assert.deepEqual(learner.snapshot(), before);
    assert.ok(a.accuracy > 0.2 && a.accuracy < 0.8, `an untrained network is near chance: ${a.accuracy}`);
    assert.ok(a.loss > 0.5 && a.loss < 1, `near log 2 per bit: ${a.loss}`);
  });

  test('a run evaluates every evalEvery sequences and is the same for the same seed', () => {
    const r = runCopyJob(job);
    assert.deepEqual(r.curve.map((p) => p.sequences), [20, 40]);
    assert.equal(r.finalAccuracy, r.curve[1].accuracy);
    assert.deepEqual(runCopyJob(job).curve, r.curve);
  });

  test("each method keeps its own best rate from the selection runs (ties: the smaller)", () => {
    const run = (method: CopyJob['method'], learningRate: number, finalAccuracy: number) =>
      ({ job: { ...job, purpose: 'selection', method, learningRate }, finalAccuracy }) as CopyRunResult;
    const settings = { ...QUICK_COPY_SETTINGS, methods: ['online', 'spatial'] as const, learningRates: [1e-4, 1e-3] };
    const rates = selectRates(settings, [run('online', 1e-3, 0.7), run('online', 1e-4, 0.9), run('spatial', 1e-3, 0.6), run('spatial', 1e-4, 0.6)]);
    assert.deepEqual(rates, { online: 1e-4, spatial: 1e-4 });
  });
});

describe('driftline reproduce copy-task', () => {
  test('--quick runs every method end to end and writes its tables, plot and runs; a second run reuses them', async () => {
    const out = mkdtempSync(join(tmpdir(), 'driftline-copy-'));
    dirs.push(out);
    const first = io();
    const results = (await reproduceCommand(['copy-task', '--quick', '--quiet', '--out', out], first.io)) as CopyTaskResults;
    assert.ok(results && 'summary' in results);
    const text = first.out();
    for (const label of ['online LRU (traces)', '1-step truncated', 'spatial only', 'BPTT (reference)']) assert.match(text, new RegExp(label.replace(/[()]/g, '\\$&')));
    assert.match(text, /QUICK smoke run: not the protocol/);
    assert.match(text, /Target: the online LRU at 99 % or more: (met|not met)/);
    for (const f of ['results.json', 'summary.md', 'copy-task-accuracy.png']) assert.ok(existsSync(join(out, f)), f);
    assert.equal(readdirSync(join(out, 'runs')).length, 8, '4 selection and 4 scored runs saved');
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.equal(saved.scored.length, 4);
    assert.equal(saved.summary[0].curve.length, 3);

    const second = io();
    const again = await reproduceCommand(['copy-task', '--quick', '--out', out], second.io);
    assert.match(second.err(), /scored runs: 0 to run, 4 reused/);
    assert.deepEqual((again as CopyTaskResults).summary, results.summary);

    // A run saved by other code is not reused: it runs again, and the same code gives the same numbers.
    const runFile = readdirSync(join(out, 'runs')).find((f) => f.startsWith('scored-spatial'))!;
    const path = join(out, 'runs', runFile);
    const stale = JSON.parse(readFileSync(path, 'utf8'));
    writeFileSync(path, JSON.stringify({ ...stale, codeHash: 'other-code' }));
    const third = io();
    const rerun = (await reproduceCommand(['copy-task', '--quick', '--out', out], third.io)) as CopyTaskResults;
    assert.match(third.err(), /produced by other code \(other-code, now [0-9a-f]{16}\): running it again/);
    assert.match(third.err(), /scored runs: 1 to run, 3 reused/);
    const accuracies = (r: CopyTaskResults) => r.summary.map((m) => [m.method, m.finalAccuracies, m.curve]);
    assert.deepEqual(accuracies(rerun), accuracies(results));
  });

  test('bad options are refused by name', async () => {
    await assert.rejects(reproduceCommand(['copy-task', '--methods', 'online,rtrl'], io().io), (e: unknown) => e instanceof UsageError && /--methods: unknown 'rtrl'/.test(e.message));
    await assert.rejects(reproduceCommand(['copy-task', '--rates', '0.1,x'], io().io), (e: unknown) => e instanceof UsageError && /--rates/.test(e.message));
    await assert.rejects(reproduceCommand(['copy-task', '--seeds', '0'], io().io), (e: unknown) => e instanceof UsageError && /--seeds/.test(e.message));
  });
});
