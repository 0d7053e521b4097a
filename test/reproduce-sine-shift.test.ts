import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { reproduceCommand, UsageError } from '../src/cli/reproduce.js';
import { runSineShift, type SineShiftResults } from '../src/reproduce/sine-shift.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function capture() {
  let text = '';
  return { stream: { write: (chunk: string) => ((text += chunk), true), isTTY: false }, text: () => text };
}

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

  test('every run of the quick preset gives finite numbers', () => {
    assert.equal(results.settings.quick, true);
    assert.equal(results.trials.length, 2 + 2 * 4); // 2 lambdas x 1 n x 1 seed; 2 cells x 4 optimizers x 1 seed
    for (const t of results.trials) {
      assert.equal(t.diverged, false, `${t.cell} ${t.optimizer} lambda ${t.lambda} diverged`);
      for (const v of [t.ePre, t.eAdapt, t.eFrozen, t.residual, t.persistencePre, t.persistencePost]) {
        assert.ok(typeof v === 'number' && Number.isFinite(v) && v >= 0, `${t.cell} ${t.optimizer} lambda ${t.lambda}: ${v}`);
      }
      assert.equal(t.updates, results.settings.preTicks + results.settings.postTicks);
    }
  });

  test('lambda = 0 with RMSprop adapts: it beats its frozen copy after the shift and recovers most of the way', () => {
    const r = results.trials.find((t) => t.experiment === 'lambda-sweep' && t.lambda === 0);
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
    const r = results.trials[0];
    assert.ok(Math.abs(r.persistencePre - (1 - Math.cos((2 * Math.PI) / 25))) < 1e-3);
    assert.ok(Math.abs(r.persistencePost - (1 - Math.cos((2 * Math.PI) / 11))) < 1e-3);
  });

  test('tables on stdout, progress on stderr', () => {
    const out = stdout.text();
    assert.match(out, /\(a\) lambda sweep/);
    assert.match(out, /\(b\) optimizer isolation/);
    assert.match(out, /recovery %/);
    assert.match(out, /tanh-rnn-bypass\s+yes/);
    assert.match(out, /persistence baseline/);
    assert.match(stderr.text(), /runs done/);
  });

  test('PNG plots and results.json are written', async () => {
    const pngs = results.files.filter((f) => f.endsWith('.png'));
    assert.deepEqual(
      pngs.map((f) => f.slice(dir.length + 1)).sort(),
      ['error-around-shift-n16.png', 'optimizer-isolation.png', 'recovery-vs-lambda.png', 'residual-vs-lambda.png'],
    );
    for (const f of pngs) {
      const bytes = await readFile(f);
      assert.deepEqual([...bytes.subarray(0, 8)], PNG_SIGNATURE, f);
      assert.ok(bytes.length > 5000, `${f} is only ${bytes.length} bytes`);
    }
    const json = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8'));
    assert.equal(json.experiment, 'sine-shift');
    assert.equal(json.trials.length, results.trials.length);
    assert.equal(json.lambdaSweep.length, 2);
    assert.equal(json.optimizerIsolation.length, 8);
    assert.ok(json.traces.length >= 1);
  });

  test('same options, same numbers', async () => {
    const again = await runSineShift({ quick: true, outDir: null, quiet: true, experiments: ['lambda-sweep'] });
    const mine = results.trials.filter((t) => t.experiment === 'lambda-sweep');
    assert.deepEqual(
      again.trials.map((t) => [t.ePre, t.eAdapt, t.eFrozen, t.timeToRecovery]),
      mine.map((t) => [t.ePre, t.eAdapt, t.eFrozen, t.timeToRecovery]),
    );
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
});
