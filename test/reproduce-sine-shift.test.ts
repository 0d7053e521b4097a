import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatSineShiftReport, parseProtocol, reproduceCommand, UsageError } from '../src/cli/reproduce.js';
import {
  configKey, PROTOCOL_LABELS, resolveSineShiftSettings, runSineShift, runSineShiftTrial, selectRates, summarize,
  type RateSelection, type SineShiftResults, type SineShiftSettings, type SummaryRow, type TrialResult,
} from '../src/reproduce/sine-shift.js';
import { CLAIM_THRESHOLDS, distinguishable, evaluateSineShiftClaims, type ClaimVerdict } from '../src/reproduce/sine-shift-claims.js';
import { chooseRateIndex, selectRate } from '../src/reproduce/sine-shift-rate-selection.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function capture() {
  let text = '';
  return { stream: { write: (chunk: string) => ((text += chunk), true), isTTY: false }, text: () => text };
}

const protocolOf = (r: SineShiftResults, p: 'selected' | 'fixed') => {
  const found = r.protocols.find((x) => x.protocol === p);
  assert.ok(found, `protocol ${p} missing`);
  return found;
};

describe('reproduce sine-shift --quick', () => {
  let dir = '';
  let results: SineShiftResults;
  const stdout = capture();
  const stderr = capture();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'driftline-sine-shift-'));
    results = (await reproduceCommand(['sine-shift', '--quick', '--out', dir], { stdout: stdout.stream, stderr: stderr.stream })) as SineShiftResults;
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('both protocols run by default, the fair one first; every run gives finite numbers', () => {
    assert.equal(results.settings.quick, true);
    assert.deepEqual(results.protocols.map((p) => p.protocol), ['selected', 'fixed']);
    assert.deepEqual(results.protocols.map((p) => p.label), ['rate chosen on pre-shift phase', 'fixed rate (not tuned)']);
    for (const p of results.protocols) {
      assert.equal(p.trials.length, 2 + 2 * 4); // 2 lambdas x 1 n x 1 seed; 2 cells x 4 optimizers x 1 seed
      for (const t of p.trials) {
        assert.equal(t.diverged, false, `${p.protocol} ${t.cell} ${t.optimizer} lambda ${t.lambda} diverged`);
        for (const v of [t.ePre, t.eAdapt, t.eFrozen, t.residual, t.persistencePre, t.persistencePost]) {
          assert.ok(typeof v === 'number' && Number.isFinite(v) && v >= 0, `${t.cell} ${t.optimizer} lambda ${t.lambda}: ${v}`);
        }
        assert.equal(t.updates, results.settings.preTicks + results.settings.postTicks);
        // Fitted means E_pre below the persistence error over the same window, nothing else.
        assert.equal(t.fitted, (t.ePre as number) < t.persistencePre);
      }
    }
  });

  test('the selected protocol scores each configuration at the rate chosen for it, the fixed one at learningRates', () => {
    const s = results.settings;
    assert.equal(results.selection.length, 2 + 2 * 4);
    const chosen = new Map(results.selection.map((r) => [configKey(r), r.chosen]));
    for (const t of protocolOf(results, 'selected').trials) {
      assert.equal(t.lr, chosen.get(configKey(t)));
      assert.ok(s.rateGrids[t.optimizer].includes(t.lr));
      assert.ok(s.seeds.includes(t.seed) && !s.selectionSeeds.includes(t.seed));
    }
    for (const t of protocolOf(results, 'fixed').trials) assert.equal(t.lr, s.learningRates[t.optimizer]);
    // The quick grid is small (3 rates, 1 selection seed) so the test file stays fast.
    for (const r of results.selection) {
      assert.equal(r.candidates.length, 3);
      assert.deepEqual(r.selectionSeeds, [1001]);
    }
  });

  test('lambda = 0 with RMSprop adapts: it beats its frozen copy after the shift and recovers most of the way', () => {
    const r = protocolOf(results, 'fixed').trials.find((t) => t.experiment === 'lambda-sweep' && t.lambda === 0);
    assert.ok(r);
    assert.ok((r.eAdapt as number) < (r.eFrozen as number), `E_adapt ${r.eAdapt} vs E_frozen ${r.eFrozen}`);
    // Measured 1.00 in this setting; the ratio saturates near 1 whenever E_frozen >> E_pre.
    assert.ok((r.recovery as number) > 0.5, `recovery ${r.recovery}`);
    // And it predicts the sine far better than persistence before and after the shift.
    assert.ok((r.ePre as number) < 0.5 * r.persistencePre);
    assert.ok((r.eAdapt as number) < 0.5 * r.persistencePost);
    assert.notEqual(r.timeToRecovery, null);
  });

  test('the persistence baseline is 1 - cos(2 pi / P) on a unit sine', () => {
    const r = results.protocols[0].trials[0];
    assert.ok(Math.abs(r.persistencePre - (1 - Math.cos((2 * Math.PI) / 25))) < 1e-3);
    assert.ok(Math.abs(r.persistencePost - (1 - Math.cos((2 * Math.PI) / 11))) < 1e-3);
  });

  test('tables on stdout state the task and the protocol, progress on stderr', () => {
    const out = stdout.text();
    assert.match(out, /=== rate chosen on pre-shift phase ===[\s\S]*=== fixed rate \(not tuned\) ===/);
    assert.match(out, /rate selection \[rate chosen on pre-shift phase\]/);
    assert.match(out, /\(a\) lambda sweep \[rate chosen on pre-shift phase\]/);
    assert.match(out, /\(b\) optimizer isolation \[fixed rate \(not tuned\)\]/);
    assert.match(out, /recovery %/);
    assert.match(out, /tanh-rnn-bypass\s+yes/);
    assert.match(out, /persistence baseline/);
    // Every results table is preceded by the task constants and its protocol (selection, (a), (b) per protocol).
    assert.equal(out.match(/^ {2}task: sine, amplitude 1, period 25 -> 11 ticks at t0 = 1500, 1500 ticks after; W = 500; time to recovery: MSE over the last 100 ticks <= \(1 \+ 0\.5\) E_pre$/gm)?.length, 6);
    assert.match(out, /protocol: rate chosen on pre-shift phase: .*selection seeds 1001 .*rmsprop \{3e-4, 0\.001, 0\.003\}.*scored seeds 1 on the full stream/);
    assert.match(out, /protocol: fixed rate \(not tuned\): rmsprop lr 0\.001, sgd lr 0\.01/);
    // Every mean says how many seeds it covers.
    assert.match(out, /\(1\/1\)/);
    assert.match(out, /verdict: rate chosen on pre-shift phase\s+verdict: fixed rate \(not tuned\)/);
    assert.match(out, /\[fig1-default-no-recovery\] Fig\. 1 caption: "The standard default \(lambda = 0\.95\) produces 0% recovery at both scales\."/);
    assert.match(stderr.text(), /scored runs and 30 pre-shift selection runs done/);
  });

  test('PNG plots and results.json are written, claims and selection included', async () => {
    const pngs = results.files.filter((f) => f.endsWith('.png'));
    assert.deepEqual(
      pngs.map((f) => f.slice(dir.length + 1)).sort(),
      [
        'error-around-shift-n16-fixed-rate.png', 'error-around-shift-n16.png', 'optimizer-isolation-fixed-rate.png', 'optimizer-isolation.png',
        'recovery-vs-lambda.png', 'residual-vs-lambda.png',
      ],
    );
    for (const f of pngs) {
      const bytes = await readFile(f);
      assert.deepEqual([...bytes.subarray(0, 8)], PNG_SIGNATURE, f);
      assert.ok(bytes.length > 5000, `${f} is only ${bytes.length} bytes`);
    }
    const json = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8'));
    assert.equal(json.experiment, 'sine-shift');
    assert.equal(json.protocols.length, 2);
    assert.equal(json.selection.length, 10);
    for (const p of json.protocols) {
      assert.equal(p.trials.length, 10);
      assert.equal(p.lambdaSweep.length, 2);
      assert.equal(p.optimizerIsolation.length, 8);
      assert.ok(p.traces.length >= 1);
      assert.equal(p.claims.length, 10);
      for (const c of p.claims) assert.ok(['reproduced', 'not reproduced', 'not testable'].includes(c.verdict), c.verdict);
    }
  });

  test('same options, same numbers', async () => {
    const again = await runSineShift({ quick: true, outDir: null, quiet: true, experiments: ['lambda-sweep'] });
    for (const p of ['selected', 'fixed'] as const) {
      const mine = protocolOf(results, p).trials.filter((t) => t.experiment === 'lambda-sweep');
      assert.deepEqual(
        protocolOf(again, p).trials.map((t) => [t.lr, t.ePre, t.eAdapt, t.eFrozen, t.timeToRecovery]),
        mine.map((t) => [t.lr, t.ePre, t.eAdapt, t.eFrozen, t.timeToRecovery]),
      );
    }
  });
});

describe('rate selection sees the pre-shift phase and the selection seeds only', () => {
  const base = resolveSineShiftSettings({ quick: true, experiments: ['lambda-sweep'] });
  let selection: RateSelection[];
  before(() => {
    selection = selectRates(base);
  });

  test('each selection run is shown exactly the t0 pre-shift ticks', () => {
    for (const r of selection) {
      for (const c of r.candidates) assert.deepEqual(c.ticks, base.selectionSeeds.map(() => base.preTicks), `${configKey(r)} lr ${c.lr}`);
    }
  });

  test('the choice is the same whether 10 or 10,000 ticks follow the shift, and whatever the shift is', () => {
    // Settings built by hand: the window need not fit in 10 post-shift ticks for a selection that never runs them.
    const short: SineShiftSettings = { ...base, postTicks: 10, periodAfter: 3, tolerance: 0, recoveryWindow: 5 };
    const long: SineShiftSettings = { ...base, postTicks: 10_000, periodAfter: 40 };
    const a = selectRates(short);
    const b = selectRates(long);
    assert.deepEqual(a, selection);
    assert.deepEqual(b, selection);
  });

  test('a selection score is the E_pre of a full run from the selection seed, not from a scored seed', () => {
    const r = selection.find((x) => x.lambda === 0);
    assert.ok(r);
    const c = r.candidates[0];
    const trial = (seed: number) =>
      runSineShiftTrial({ ...r, protocol: 'selected', lr: c.lr, seed }, base);
    // Bit for bit: the selection ran the same pre-shift ticks as the scored run does before t0.
    assert.equal(c.ePre[0], trial(base.selectionSeeds[0]).ePre);
    assert.notEqual(c.ePre[0], trial(base.seeds[0]).ePre);
  });

  test('changing the scored seeds does not move the choice; changing the selection seeds does move the scores', () => {
    const otherScored = selectRates({ ...base, seeds: [2, 3] });
    assert.deepEqual(otherScored, selection);
    const otherSelection = selectRates({ ...base, selectionSeeds: [1002] });
    assert.notDeepEqual(otherSelection.map((x) => x.candidates.map((c) => c.score)), selection.map((x) => x.candidates.map((c) => c.score)));
  });

  test('selection seeds must not be scored seeds', () => {
    assert.throws(() => resolveSineShiftSettings({ seeds: [1, 1001], selectionSeeds: [1001, 1002] }), /selection seeds must not be scored seeds: 1001/);
    assert.throws(() => resolveSineShiftSettings({ rateGrids: { sgd: [] } }), /sgd rate grid/);
    assert.throws(() => resolveSineShiftSettings({ protocols: [] }), /no protocol/);
  });

  test('the default grids are stated, sorted, and hold the fixed rates', () => {
    const s = resolveSineShiftSettings({});
    assert.deepEqual(s.rateGrids.rmsprop, [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]);
    assert.deepEqual(s.rateGrids.sgd, [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1]);
    assert.deepEqual(s.rateGrids.momentum, [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]);
    assert.deepEqual(s.selectionSeeds, [1001, 1002]);
    for (const o of ['sgd', 'momentum', 'rmsprop', 'adam'] as const) assert.ok(s.rateGrids[o].includes(s.learningRates[o]), o);
    assert.deepEqual(resolveSineShiftSettings({ rateGrids: { adam: [0.1, 0.01, 0.1] } }).rateGrids.adam, [0.01, 0.1]);
  });
});

describe('the rate rule', () => {
  test('lowest mean E_pre wins, exact ties go to the smaller rate, a diverged seed makes a rate infinite', () => {
    assert.equal(chooseRateIndex([{ lr: 1e-3, score: 0.2 }, { lr: 1e-2, score: 0.1 }, { lr: 1e-1, score: 0.3 }]), 1);
    assert.equal(chooseRateIndex([{ lr: 1e-3, score: 0.1 }, { lr: 1e-2, score: 0.1 }]), 0);
    assert.equal(chooseRateIndex([{ lr: 1e-3, score: null }, { lr: 1e-2, score: 0.5 }]), 1);
    assert.equal(chooseRateIndex([{ lr: 1e-2, score: null }, { lr: 1e-3, score: null }]), 1); // none finite: the smallest rate

    // Seed 2 diverges at the largest rate, which would otherwise be best.
    const scorer = (lr: number, seed: number) => ({
      ePre: lr === 1 && seed === 2 ? null : 1 / lr / 100 + seed * 1e-4,
      persistencePre: 0.03,
      diverged: lr === 1 && seed === 2,
      ticks: 100,
    });
    const choice = selectRate([1, 0.1, 0.01], [1, 2], scorer);
    assert.deepEqual(choice.grid, [0.01, 0.1, 1]);
    assert.equal(choice.candidates[2].score, null);
    assert.deepEqual(choice.candidates[2].ePre, [0.01 + 1e-4, null]);
    assert.equal(choice.chosen, 0.1);
    assert.ok(Math.abs((choice.chosenScore as number) - (0.1 + 1.5e-4)) < 1e-12);
    assert.equal(choice.fittedOnSelection, false); // 0.1 > persistence 0.03
    assert.equal(choice.atGridEdge, null);
    const edge = selectRate([0.01, 0.1], [1], (lr) => ({ ePre: lr, persistencePre: 0.03, diverged: false, ticks: 100 }));
    assert.equal(edge.chosen, 0.01);
    assert.equal(edge.atGridEdge, 'low');
    assert.equal(edge.fittedOnSelection, true);
  });
});

/** A made-up trial: seed `seed` of one configuration, fitted unless said otherwise. */
function fake(over: Partial<TrialResult> = {}): TrialResult {
  return {
    experiment: 'lambda-sweep', cell: 'tanh-rnn', outputBypass: false, hiddenSize: 64, lambda: 0, optimizer: 'rmsprop',
    protocol: 'selected', lr: 1e-3, seed: 1, diverged: false, fitted: true, ePre: 0.001, eAdapt: 0.001, eFrozen: 0.1,
    recovery: 1, residual: 1, timeToRecovery: 200, persistencePre: 0.0314, persistencePost: 0.159, updates: 20_000, skippedNonFinite: 0,
    seconds: 0, ...over,
  };
}

/** Five seeds of one configuration with these recoveries (%); 'unfit' for a seed that did not fit, 'div' diverged. */
function runs(config: Partial<TrialResult>, recoveries: readonly (number | 'unfit' | 'div')[]): TrialResult[] {
  return recoveries.map((r, i) => {
    const seed = i + 1;
    if (r === 'div') return fake({ ...config, seed, diverged: true, fitted: false, ePre: null, eAdapt: null, eFrozen: null, recovery: null, residual: null, timeToRecovery: null });
    if (r === 'unfit') return fake({ ...config, seed, fitted: false, ePre: 0.0628, recovery: 0.5, residual: 3, timeToRecovery: 99 });
    return fake({ ...config, seed, recovery: r / 100 });
  });
}

describe('did not fit: left out of the means, counted and listed', () => {
  const trials = [
    fake({ seed: 1, recovery: 0.98, timeToRecovery: 100 }),
    fake({ seed: 2, recovery: 0.99, timeToRecovery: 200 }),
    fake({ seed: 3, recovery: 1.0, timeToRecovery: null }),
    // Did not fit: E_pre twice the persistence error; its recovery (5 = 500 %) and time would move the means.
    fake({ seed: 4, fitted: false, ePre: 0.0628, recovery: 5, residual: 60, timeToRecovery: 99 }),
    fake({ seed: 5, diverged: true, fitted: false, ePre: 0.002, eAdapt: null, eFrozen: null, recovery: null, residual: null, timeToRecovery: null }),
  ];
  const unfit = runs({ lambda: 0.95 }, ['unfit', 'unfit', 'unfit', 'unfit', 'unfit']);
  const [row, unfitRow] = summarize([...trials, ...unfit]);

  test('recovery, residual and time to recovery are over the fitted runs; the rest say why they are out', () => {
    assert.equal(row.runs, 5);
    assert.equal(row.fitted, 3);
    assert.equal(row.diverged, 1);
    assert.equal(row.recovery.n, 3);
    assert.ok(Math.abs((row.recovery.mean as number) - 99) < 1e-9);
    assert.ok(Math.abs((row.recovery.std as number) - 1) < 1e-9);
    assert.equal(row.residual.n, 3);
    assert.deepEqual([row.timeToRecovery.mean, row.timeToRecovery.n, row.recovered], [150, 2, 2]);
    assert.deepEqual(row.notRecovered, [3]);
    assert.deepEqual(row.dropped, [
      { seed: 4, reason: 'did not fit', ePreOverPersistence: 2 },
      { seed: 5, reason: 'diverged', ePreOverPersistence: 0.002 / 0.0314 },
    ]);
    // E_pre is the evidence of not fitting, so its mean covers every run that reached t0.
    assert.equal(row.ePre.n, 5);
    assert.deepEqual([unfitRow.fitted, unfitRow.recovery.mean, unfitRow.recovery.n, unfitRow.timeToRecovery.n], [0, null, 0, 0]);
  });

  test('the tables print "did not fit", k/N on every mean and the seeds left out with the reason', () => {
    const settings = resolveSineShiftSettings({ protocols: ['fixed'], experiments: ['lambda-sweep'], seeds: 5 });
    const fixedTrials = [...trials, ...unfit].map((t) => ({ ...t, protocol: 'fixed' as const }));
    const lambdaSweep = summarize(fixedTrials);
    const text = formatSineShiftReport({
      experiment: 'sine-shift', createdAt: '', seconds: 1, backend: 'js', settings, t0: settings.preTicks, selection: [], files: [],
      protocols: [{
        protocol: 'fixed', label: PROTOCOL_LABELS.fixed, trials: fixedTrials, lambdaSweep, optimizerIsolation: [], traces: [],
        claims: evaluateSineShiftClaims(lambdaSweep, [], settings),
      }],
    });
    assert.match(text, /99\.0 \+- 1\.0 \(3\/5\)/);
    assert.match(text, /150 \(2\/5\)/);
    assert.match(text, /did not fit \(0\/5\)\s+did not fit \(0\/5\)\s+did not fit \(0\/5\)/);
    assert.match(text, /n=64 lambda=0 \(lr 0\.001\): seed 4 did not fit \(E_pre 2\.000x the persistence error\); seed 5 diverged; seed 3 never came within tolerance/);
    assert.match(text, /n=64 lambda=0\.95 \(lr 0\.001\): seeds 1, 2, 3, 4, 5 did not fit/);
    assert.doesNotMatch(text, /500\.0|155\.|120\./); // the unfit seed's 500 % would have made the mean 119.4
  });

  test('a real run at an absurd rate does not fit and is reported so', async () => {
    const r = await runSineShift({ quick: true, outDir: null, quiet: true, protocols: ['fixed'], experiments: ['lambda-sweep'], lambdas: [0], learningRates: { rmsprop: 1 } });
    const [t] = r.protocols[0].trials;
    assert.equal(t.fitted, false, `E_pre ${t.ePre} vs persistence ${t.persistencePre}`);
    const [s] = r.protocols[0].lambdaSweep;
    assert.equal(s.recovery.mean, null);
    assert.equal(s.dropped[0].reason, t.diverged ? 'diverged' : 'did not fit');
    assert.match(formatSineShiftReport(r), t.diverged ? /diverged \(0\/1\)/ : /did not fit \(0\/1\)/);
  });
});

describe('claim verdicts', () => {
  const settings = resolveSineShiftSettings({});
  const sweep = (n: number, lambda: number, recoveries: readonly (number | 'unfit' | 'div')[]) => runs({ hiddenSize: n, lambda }, recoveries);
  const iso = (cell: string, optimizer: TrialResult['optimizer'], recoveries: readonly (number | 'unfit' | 'div')[]) =>
    runs({ experiment: 'optimizer-isolation', cell: cell as TrialResult['cell'], outputBypass: cell === 'tanh-rnn-bypass', optimizer }, recoveries);
  const near = (m: number) => [m - 0.2, m - 0.1, m, m + 0.1, m + 0.2];

  /** Lambda sweep rows: recovery per lambda at n = 64 and 256 (every lambda of the default sweep). */
  function sweepRows(at64: Record<number, number | 'unfit'>, at256: Record<number, number | 'unfit'>): SummaryRow[] {
    const ts: TrialResult[] = [];
    for (const [n, table] of [[64, at64], [256, at256]] as const) {
      for (const l of settings.lambdas) {
        const v = table[l];
        ts.push(...sweep(n, l, v === 'unfit' ? ['unfit', 'unfit', 'unfit', 'unfit', 'unfit'] : near(v)));
      }
    }
    return summarize(ts);
  }
  function isoRows(table: Record<string, number | 'unfit'>): SummaryRow[] {
    const ts: TrialResult[] = [];
    for (const [key, v] of Object.entries(table)) {
      const [cell, optimizer] = key.split(':');
      ts.push(...iso(cell, optimizer as TrialResult['optimizer'], v === 'unfit' ? ['unfit', 'unfit', 'unfit', 'unfit', 'unfit'] : near(v)));
    }
    return summarize(ts);
  }
  const verdicts = (claims: ClaimVerdict[]) => Object.fromEntries(claims.map((c) => [c.id, c.verdict]));

  test('the paper\'s picture is reproduced claim by claim', () => {
    const lambdaSweep = sweepRows(
      { 0: 95, 0.25: 97, 0.5: 99, 0.75: 60, 0.9: 20, 0.95: 2 },
      { 0: 99.5, 0.25: 99.2, 0.5: 99, 0.75: 70, 0.9: 30, 0.95: 1 },
    );
    const isolation = isoRows({
      'tanh-rnn:sgd': 5, 'tanh-rnn:momentum': 4, 'tanh-rnn:rmsprop': 99, 'tanh-rnn:adam': 98,
      'tanh-rnn-bypass:sgd': 99, 'tanh-rnn-bypass:momentum': 99, 'tanh-rnn-bypass:rmsprop': 99, 'tanh-rnn-bypass:adam': 98,
    });
    assert.deepEqual(verdicts(evaluateSineShiftClaims(lambdaSweep, isolation, settings)), {
      'fig1-default-no-recovery': 'reproduced',
      'fig1-safe-plateau': 'reproduced',
      'fig1-n256-indistinguishable': 'reproduced',
      'fig1-optimum-shrinks': 'reproduced',
      'fig2a-only-beta2-adapts': 'reproduced',
      'fig2a-momentum-adds-nothing': 'reproduced',
      'abstract-bypass-rule': 'reproduced',
      'reported-sine-n64': 'reproduced',
      'reported-sine-n1024': 'not testable',
      'reported-beta2-alone-bad-decay': 'not testable',
    });
  });

  test('everything recovering everywhere contradicts the claims that something fails', () => {
    const all = Object.fromEntries(settings.lambdas.map((l) => [l, 99.5]));
    const lambdaSweep = sweepRows(all, all);
    const isolation = isoRows({
      'tanh-rnn:sgd': 99, 'tanh-rnn:momentum': 99, 'tanh-rnn:rmsprop': 99, 'tanh-rnn:adam': 99,
      'tanh-rnn-bypass:sgd': 99, 'tanh-rnn-bypass:adam': 99,
    });
    const claims = evaluateSineShiftClaims(lambdaSweep, isolation, settings);
    const v = verdicts(claims);
    assert.equal(v['fig1-default-no-recovery'], 'not reproduced');
    assert.equal(v['fig1-safe-plateau'], 'reproduced');
    assert.equal(v['fig1-n256-indistinguishable'], 'reproduced');
    assert.equal(v['fig1-optimum-shrinks'], 'not reproduced'); // every lambda is near-optimal at both sizes
    assert.match(claims.find((c) => c.id === 'fig1-optimum-shrinks')?.reason ?? '', /smallest near-optimal decay is 0 at n = 64 and 0 at n = 256/);
    assert.equal(v['fig2a-only-beta2-adapts'], 'not reproduced');
    assert.equal(v['abstract-bypass-rule'], 'not reproduced');
    assert.match(claims.find((c) => c.id === 'fig1-default-no-recovery')?.measured ?? '', /n=64: 99\.5 \+- 0\.2 % \(5\/5\); n=256: 99\.5/);
    assert.match(claims.find((c) => c.id === 'fig2a-only-beta2-adapts')?.reason ?? '', /sgd adapts without beta2/);
  });

  test('a configuration that did not fit cannot show a failure, and fails a claim that it works', () => {
    const lambdaSweep = sweepRows(
      { 0: 99, 0.25: 'unfit', 0.5: 99, 0.75: 'unfit', 0.9: 'unfit', 0.95: 'unfit' },
      { 0: 99, 0.25: 99, 0.5: 99, 0.75: 'unfit', 0.9: 'unfit', 0.95: 0 },
    );
    const isolation = isoRows({
      'tanh-rnn:sgd': 'unfit', 'tanh-rnn:momentum': 'unfit', 'tanh-rnn:rmsprop': 99, 'tanh-rnn:adam': 99,
      'tanh-rnn-bypass:sgd': 'unfit', 'tanh-rnn-bypass:adam': 99,
    });
    const claims = evaluateSineShiftClaims(lambdaSweep, isolation, settings);
    const v = verdicts(claims);
    assert.equal(v['fig1-default-no-recovery'], 'not testable');
    assert.match(claims.find((c) => c.id === 'fig1-default-no-recovery')?.reason ?? '', /did not fit .* at n = 64/);
    assert.equal(v['fig1-safe-plateau'], 'not reproduced');
    assert.match(claims.find((c) => c.id === 'fig1-safe-plateau')?.reason ?? '', /n = 64 lambda = 0\.25: not every seed fitted/);
    assert.equal(v['fig2a-only-beta2-adapts'], 'not testable');
    assert.equal(v['fig2a-momentum-adds-nothing'], 'reproduced'); // adam vs rmsprop compared; momentum vs sgd not
    assert.match(claims.find((c) => c.id === 'fig2a-momentum-adds-nothing')?.reason ?? '', /not compared: momentum vs sgd/);
    // "SGD suffices" with the bypass is a claim that it works: an sgd that did not fit there contradicts it.
    assert.equal(v['abstract-bypass-rule'], 'not reproduced');
    assert.match(claims.find((c) => c.id === 'abstract-bypass-rule')?.reason ?? '', /^sgd with bypass did not fit on every seed$/);
    // One seed that did not fit is enough to keep a configuration from reproducing a claim...
    const at256 = summarize(sweep(256, 0.95, near(1)));
    const default95 = (at64: readonly (number | 'unfit')[]) =>
      verdicts(evaluateSineShiftClaims([...summarize(runs({ hiddenSize: 64, lambda: 0.95 }, at64)), ...at256], [], settings))['fig1-default-no-recovery'];
    assert.equal(default95([0, 0, 0, 0, 'unfit']), 'not testable');
    // ...but a fitted majority that recovers contradicts "0% recovery"; a fitted minority does not.
    assert.equal(default95([80, 90, 85, 'unfit', 'unfit']), 'not reproduced');
    assert.equal(default95([80, 90, 'unfit', 'unfit', 'unfit']), 'not testable');
  });

  test('momentum that helps, and told-apart means', () => {
    const isolation = isoRows({ 'tanh-rnn:sgd': 40, 'tanh-rnn:momentum': 48, 'tanh-rnn:rmsprop': 99, 'tanh-rnn:adam': 99 });
    assert.equal(verdicts(evaluateSineShiftClaims([], isolation, settings))['fig2a-momentum-adds-nothing'], 'not reproduced');
    assert.equal(distinguishable({ mean: 99, std: 0, n: 5 }, { mean: 99.5, std: 0, n: 5 }), false); // within the 1-point margin
    assert.equal(distinguishable({ mean: 95, std: 0.5, n: 5 }, { mean: 99, std: 0.5, n: 5 }), true);
    assert.equal(distinguishable({ mean: 95, std: 5, n: 5 }, { mean: 99, std: 5, n: 5 }), false); // 4 < 2 * 3.16
    assert.equal(CLAIM_THRESHOLDS.equivalencePoints, 1);
  });

  test('claims whose experiment did not run are not testable', () => {
    const only = resolveSineShiftSettings({ experiments: ['optimizer-isolation'] });
    const v = verdicts(evaluateSineShiftClaims([], [], only));
    for (const id of ['fig1-default-no-recovery', 'fig1-safe-plateau', 'fig1-n256-indistinguishable', 'fig1-optimum-shrinks', 'reported-sine-n64']) assert.equal(v[id], 'not testable', id);
  });
});

describe('reproduce command line', () => {
  const io = () => ({ stdout: { write: () => true }, stderr: { write: () => true } });

  test('an unknown experiment is a clear usage error', async () => {
    await assert.rejects(reproduceCommand(['sine-shfit'], io()), (e: unknown) => e instanceof UsageError && /unknown experiment 'sine-shfit'.*sine-shift/.test(e.message));
    await assert.rejects(reproduceCommand([], io()), (e: unknown) => e instanceof UsageError && /which experiment/.test(e.message));
    await assert.rejects(reproduceCommand(['sine-shift', '--bogus'], io()), UsageError);
    await assert.rejects(reproduceCommand(['sine-shift', '--seeds', '0'], io()), /--seeds/);
  });

  test('--protocol fixed|selected|both', async () => {
    assert.deepEqual(parseProtocol(undefined), ['selected', 'fixed']);
    assert.deepEqual(parseProtocol('both'), ['selected', 'fixed']);
    assert.deepEqual(parseProtocol('selected'), ['selected']);
    assert.deepEqual(parseProtocol('fixed'), ['fixed']);
    assert.throws(() => parseProtocol('tuned'), (e: unknown) => e instanceof UsageError && /--protocol must be fixed, selected or both, got 'tuned'/.test(e.message));
    await assert.rejects(reproduceCommand(['sine-shift', '--quick', '--protocol', 'tuned'], io()), UsageError);

    const dir = await mkdtemp(join(tmpdir(), 'driftline-sine-shift-protocol-'));
    try {
      const out = capture();
      const fixed = (await reproduceCommand(['sine-shift', '--quick', '--quiet', '--protocol', 'fixed', '--out', dir], { stdout: out.stream, stderr: capture().stream })) as SineShiftResults;
      assert.deepEqual(fixed.protocols.map((p) => p.protocol), ['fixed']);
      assert.deepEqual(fixed.selection, []);
      assert.doesNotMatch(out.text(), /rate chosen on pre-shift phase ===/);
      assert.match(out.text(), /no verdict under the fair protocol/);
      const selected = (await reproduceCommand(['sine-shift', '--quick', '--quiet', '--protocol', 'selected', '--out', dir], io())) as SineShiftResults;
      assert.deepEqual(selected.protocols.map((p) => p.protocol), ['selected']);
      assert.equal(selected.selection.length, 10);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
