// driftline reproduce bci on a small simulated recording: the protocols score the ticks they say they score, the
// references carry their real information age, a decoder with no label on the new session is its own frozen
// shadow, hyperparameters come from the first session only, and the artifacts are written.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { bufferedDecoder, kalmanDecoder, lruDecoder, recurrentDecoder, ridgeDecoder, runBciReproduction, type BciResults } from '../src/reproduce/bci.js';
import { createLearner } from '../src/learners/learner.js';
import { protocolsFor } from '../src/reproduce/bci-protocols.js';
import { simulateMotorCortexSessions } from '../src/simulator/motor-cortex.js';

describe('reproduce bci on the simulator', () => {
  let results: BciResults;
  const out = mkdtempSync(join(tmpdir(), 'driftline-bci-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  test('runs every protocol for every decoder and writes the report', async () => {
    const [first, second] = simulateMotorCortexSessions({ seed: 3, sessionSeconds: [240, 300] });
    results = await runBciReproduction({
      sessions: [first, second],
      dataDescription: 'simulator, seed 3, short sessions',
      decoders: [recurrentDecoder('gru', 16, { lr: [3e-4, 3e-3], lambda: [0] }), ridgeDecoder(2, [10, 1000]), kalmanDecoder([Infinity])],
      seeds: [1, 2],
      selectionSeed: 99,
      protocols: ['A1', 'B', 'C', 'D'],
      outDir: out,
      quiet: true,
    });
    for (const f of ['results.json', 'summary.md', 'r2-over-time-A1.png', 'r2-over-time-D.png']) assert.ok(existsSync(join(out, f)), f);
    const summary = readFileSync(join(out, 'summary.md'), 'utf8');
    assert.match(summary, /## Selection on the first session/);
    assert.match(summary, /persistence R2/);
  });

  test('each protocol scores its own ticks, beside persistence with its real information age', () => {
    const row = (protocol: string, range: string, decoder: string) => {
      const r = results.ranges.find((x) => x.protocol === protocol && x.range === range && x.decoder === decoder);
      assert.ok(r, `${protocol} ${range} ${decoder}`);
      return r;
    };
    const gru = 'gru n=16';
    // A1: the first minute of the new session (1200 bins) calibrates; the other 4800 are held out and scored.
    assert.equal(row('A1', 'rest', gru).ticks, 6000 - 1200);
    // Held out for minutes, persistence repeats the last calibration label: its mean age is half the block.
    assert.ok(Math.abs(row('A1', 'rest', gru).persistenceAge.mean! - 2400.5) < 1e-9);
    // B: every tick scored, every label 20 bins late, and the references exactly as late: when tick t is predicted
    // the newest label they have is tick t - 21's (tick t - 20's comes right after tick t; in the frame it is t - 1's).
    assert.equal(row('B', 'whole', gru).ticks, 6000);
    assert.equal(row('B', 'whole', gru).persistenceAge.mean, 21);
    // C: 30 s on, 30 s off from the boundary: half the session is scored.
    assert.equal(row('C', 'whole', gru).ticks, 3000);
    // D: no label after the boundary, so the decoder is its own frozen shadow, to the last digit.
    for (const d of [gru, 'ridge 2 bins', 'kalman']) {
      const r = row('D', 'whole', d);
      assert.equal(r.r2.n, d === gru ? 2 : 1, 'seeded decoders run every seed, deterministic ones once');
      assert.equal(r.r2.mean, r.frozenR2.mean, `${d}: D is the frozen decoder`);
    }
    // Decoding beats the persistence reference on held-out ticks, where persistence knows nothing new.
    assert.ok(row('A1', 'rest', gru).r2.mean! > row('A1', 'rest', gru).persistenceR2.mean! + 0.3);
  });

  test('hyperparameters are chosen on the first session, per A(k) for a decoder that recalibrates', () => {
    const forGru = results.selection.filter((s) => s.decoder === 'gru n=16');
    assert.deepEqual(forGru.map((s) => s.forProtocols), ['all']);
    assert.equal(forGru[0].candidates.length, 2);
    assert.ok(forGru[0].candidates.some((c) => c.value.lr === forGru[0].chosen.lr));
    const best = Math.max(...forGru[0].candidates.map((c) => c.r2 ?? -Infinity));
    assert.equal(forGru[0].candidates.find((c) => c.value.lr === forGru[0].chosen.lr)!.r2, best);
    const forRidge = results.selection.filter((s) => s.decoder === 'ridge 2 bins');
    assert.deepEqual(forRidge.map((s) => [s.forProtocols, s.learnedMinutes]), [['all', 3.2], ['A1', 1]]);
  });

  test('recovery at the boundary: the ratio, the residual and a frozen decoder that recovers nothing', () => {
    const d = results.recovery.find((r) => r.protocol === 'D' && r.decoder === 'ridge 2 bins');
    assert.ok(d);
    assert.equal(d.eAdapt.mean, d.eFrozen.mean);
    assert.ok(d.residual.mean! > 1, 'the drift hurt the frozen decoder');
    // A, C and D share their first session (its last minute held out), so a deterministic decoder has one E_pre
    // for all three: the error on those held-out ticks. B learned that minute and scores it prequentially.
    const ePre = (p: string) => results.recovery.find((r) => r.protocol === p && r.decoder === 'ridge 2 bins')!.ePre.mean;
    assert.equal(ePre('A1'), ePre('D'));
    assert.equal(ePre('C'), ePre('D'));
    assert.notEqual(ePre('B'), ePre('D'));
  });
});

test('protocolsFor: the ranges and schedules of the issue, in bins', () => {
  const ps = protocolsFor(18000, 0.05, 20, 24000, 1200);
  // A, C and D withhold the first session's last minute (a held-out E_pre); B keeps every label.
  for (const p of ps.filter((q) => q.name !== 'B')) {
    assert.deepEqual((p.holdout as unknown as { sessions: unknown[] }).sessions[0], { kind: 'firstMinutes', minutes: 19 });
  }
  assert.deepEqual(ps.find((p) => p.name === 'B')!.holdout, { kind: 'none' });
  assert.deepEqual(ps.map((p) => p.name), ['A1', 'A2', 'A5', 'B', 'C', 'D']);
  assert.deepEqual(ps.find((p) => p.name === 'A5')!.ranges, { rest: [6000, 18000] });
  assert.equal(ps.find((p) => p.name === 'B')!.labelDelayTicks, 20);
  assert.deepEqual(Object.keys(ps.find((p) => p.name === 'D')!.ranges), ['whole', 'after 1 min', 'after 2 min', 'after 5 min']);
});

test('the online LRU is a decoder of the reproduction: its rate on the grid, its spec a learner that adapts', () => {
  const entry = lruDecoder(8, 4, 2, { lr: [1e-4, 1e-3] });
  assert.equal(entry.name, 'lru H=8 N=4 L=2');
  assert.deepEqual(entry.candidates, [{ lr: 1e-4 }, { lr: 1e-3 }]);
  assert.equal(entry.seeded, true);
  const spec = entry.specOf(3, { lr: 1e-3 }, 5, 2);
  assert.deepEqual([spec.seed, 'credit' in spec && spec.credit], [3, { rule: 'online-lru', mode: 'online' }]);
  const learner = createLearner(spec);
  learner.predict([1, 2, 3, 4, 5]);
  assert.equal(learner.learn([0.5, -0.5]), 'applied');
});

test('the buffer-based decoders (tbptt, fpp) are decoders of the reproduction: their rule in the spec, a learner that adapts', () => {
  const tbptt = bufferedDecoder('gru', 8, { rule: 'tbptt', window: 10 }, { lr: [1e-4, 1e-3] });
  const fpp = bufferedDecoder('gru', 8, { rule: 'fpp', window: 5, updates: 4, buffer: 100 }, { lr: [1e-3] });
  assert.equal(tbptt.name, 'gru n=8 tbptt T=10');
  assert.equal(fpp.name, 'gru n=8 fpp T=5 M=4');
  assert.deepEqual(tbptt.candidates, [{ lr: 1e-4 }, { lr: 1e-3 }]);
  for (const entry of [tbptt, fpp]) {
    const spec = entry.specOf(3, { lr: 1e-3 }, 5, 2);
    const learner = createLearner(spec);
    const before = learner.readParameters();
    for (let t = 0; t < 20; t++) {
      learner.predict([1, 2, 3, 4, t]);
      assert.equal(learner.learn([0.5, -0.5]), 'applied');
    }
    assert.notDeepEqual(learner.readParameters(), before, `${entry.name} learned`);
  }
  const fppSpec = fpp.specOf(1, { lr: 1e-3 }, 5, 2);
  assert.deepEqual('credit' in fppSpec && fppSpec.credit, { rule: 'fpp', window: 5, updates: 4, buffer: 100 });
});
