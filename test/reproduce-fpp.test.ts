// driftline reproduce fpp (issue 21, item 4): the protocol's pieces (the configurations, rate selection on the
// selection seed, a run's online scores) and a --quick run end to end through worker threads, reused on a second run.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { reproduceCommand, UsageError } from '../src/cli/reproduce.js';
import type { FppResults } from '../src/cli/reproduce-fpp.js';
import {
  DEFAULT_FPP_SETTINGS, fppConfigKey, fppConfigs, fppLearnerSpec, fppReferences, runFppJob, selectFppRates,
  type FppJob, type FppRunResult,
} from '../src/reproduce/fpp.js';
import { captureIo } from './support/capture-io.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the fpp protocol', () => {
  test('every world runs FPP, FPP without state updating and T-BPTT at each T, M = 4, and FPP at N 100 and 10000', () => {
    const configs = fppConfigs(DEFAULT_FPP_SETTINGS);
    assert.equal(configs.length, 3 * 4 * (3 + 2 + 2));
    assert.equal(new Set(configs.map(fppConfigKey)).size, configs.length);
    const stochastic = configs.filter((c) => c.world === 'stochastic' && c.window === 5);
    assert.deepEqual(stochastic.map(fppConfigKey).sort(), [
      'stochastic-fpp-T5-M1-N100', 'stochastic-fpp-T5-M1-N1000', 'stochastic-fpp-T5-M1-N10000', 'stochastic-fpp-T5-M4-N1000',
      'stochastic-fpp-no-state-T5-M1-N1000', 'stochastic-fpp-no-state-T5-M4-N1000', 'stochastic-tbptt-T5-M1-N0',
    ]);
    const job = { ...configs.find((c) => fppConfigKey(c) === 'stochastic-fpp-no-state-T5-M4-N1000')!, role: 'scored', learningRate: 0.01, seed: 2, ticks: 10, curvePoints: 2 } as const;
    assert.deepEqual(fppLearnerSpec(job).credit, { rule: 'fpp', window: 5, buffer: 1000, updates: 4, updateStates: false });
    assert.equal(fppLearnerSpec(job).cell.hiddenSize, 32);
  });

  test('each configuration keeps the rate of its lowest mean online cross-entropy on the selection seed (ties: the smaller)', () => {
    const settings = { ...DEFAULT_FPP_SETTINGS, worlds: ['cycle6'] as const, windows: [1], moreUpdates: [], otherBuffers: [], learningRates: [0.01, 0.001] };
    const run = (method: FppJob['method'], learningRate: number, meanCrossEntropy: number) => ({
      job: { world: 'cycle6', method, window: 1, updates: 1, buffer: method === 'tbptt' ? 0 : 1000, learningRate },
      meanCrossEntropy,
    }) as unknown as FppRunResult;
    const rates = selectFppRates(settings, [
      run('fpp', 0.01, 0.3), run('fpp', 0.001, 0.4),
      run('fpp-no-state', 0.01, 0.5), run('fpp-no-state', 0.001, 0.5),
      run('tbptt', 0.01, 0.6), run('tbptt', 0.001, 0.2),
    ]);
    assert.deepEqual(Object.fromEntries(rates), { 'cycle6-fpp-T1-M1-N1000': 0.01, 'cycle6-fpp-no-state-T1-M1-N1000': 0.001, 'cycle6-tbptt-T1-M1-N0': 0.001 });
  });

  test('a run scores online before learning, is the same for the same seed, and learns the cycle', () => {
    const job: FppJob = { world: 'cycle6', method: 'tbptt', window: 6, updates: 1, buffer: 0, role: 'scored', learningRate: 0.01, seed: 1, ticks: 20_000, curvePoints: 4 };
    const r = runFppJob(job);
    assert.deepEqual(r.curve.map((p) => p.tick), [4999, 9999, 14_999, 19_999]);
    const { usPerTick: _a, ...same } = r;
    const { usPerTick: _b, ...again } = runFppJob(job);
    assert.deepEqual(again, same);
    // Always 0 scores 5/6 on 6-CycleWorld; a window as long as the cycle learns it.
    assert.ok(r.finalAccuracy > 0.95, `final accuracy ${r.finalAccuracy}`);
    assert.ok(r.curve[0].crossEntropy > r.finalCrossEntropy);
    assert.equal(r.skippedNonFinite, 0);
  });

  test("the reference rows: an ideal predictor's and a memoryless one's, exact", () => {
    const [ideal, shortLag, memoryless] = fppReferences();
    assert.equal(ideal.accuracy.cycle10, 1);
    assert.ok(Math.abs(ideal.crossEntropy.stochastic! - 0.4545) < 1e-3);
    assert.ok(Math.abs(shortLag.crossEntropy.stochastic! - 0.5192) < 1e-3);
    assert.ok(Math.abs(memoryless.accuracy.cycle6! - 5 / 6) < 1e-12);
    assert.ok(Math.abs(memoryless.crossEntropy.stochastic! - 0.6616) < 1e-3);
  });
});

describe('driftline reproduce fpp', () => {
  test('--quick runs end to end, writes its tables, plots and runs, and a second run reuses them', async () => {
    const out = mkdtempSync(join(tmpdir(), 'driftline-fpp-'));
    dirs.push(out);
    const first = captureIo();
    const results = (await reproduceCommand(['fpp', '--quick', '--quiet', '--worlds', 'cycle6', '--jobs', '2', '--out', out], first.io)) as FppResults;
    const text = first.out();
    assert.match(text, /QUICK smoke run: not the protocol/);
    for (const label of ['FPP without state updating', 'T-BPTT', 'ideal predictor', "The thesis' direction", 'buffer size']) assert.ok(text.includes(label), label);
    for (const f of ['results.json', 'summary.md', 'fpp-curves.png', 'fpp-updates.png']) assert.ok(existsSync(join(out, f)), f);
    // 2 windows x (3 methods + 2 at M 2 + FPP at N 100) configurations, each one selection and one scored run.
    assert.equal(results.summary.length, 12);
    assert.equal(readdirSync(join(out, 'runs')).length, 24);

    const second = captureIo();
    const again = (await reproduceCommand(['fpp', '--quick', '--worlds', 'cycle6', '--no-plots', '--out', out], second.io)) as FppResults;
    assert.match(second.err(), /scored runs: 0 to run, 12 reused/);
    assert.deepEqual(again.summary, results.summary);
  });

  test('bad options are refused with the usage', async () => {
    await assert.rejects(reproduceCommand(['fpp', '--worlds', 'mars'], captureIo().io), (e: unknown) => e instanceof UsageError && /unknown 'mars'/.test(e.message));
    await assert.rejects(reproduceCommand(['fpp', '--rates', '0,1'], captureIo().io), UsageError);
    await assert.rejects(reproduceCommand(['fpp', '--bogus'], captureIo().io), UsageError);
  });
});
