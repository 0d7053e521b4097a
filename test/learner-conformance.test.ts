// The conformance suite every learner passes (after River's check_estimator): one spec per
// cell x credit rule x optimizer, and each classical decoder, each held to the same behavioural contract.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cellKinds, diagonalJacobianKinds } from '../src/learners/cells/registry.js';
import type { CreditSpec } from '../src/learners/credit/registry.js';
import { InvalidInputError, InvalidLabelError } from '../src/learners/errors.js';
import type { DecoderSpec } from '../src/learners/decoders/decoder-spec.js';
import { createLearner, type LearnerSpec, type RecurrentLearnerSpec } from '../src/learners/learner.js';
import { adam, momentum, rmsprop, sgd, withClipping, type OptimizerSpec } from '../src/learners/optim/transform.js';
import { Random } from '../src/learners/random.js';

const credits: Record<string, CreditSpec> = {
  'immediate(0)': { rule: 'immediate', lambda: 0 },
  'immediate(0.5)': { rule: 'immediate', lambda: 0.5 },
  rtrl: { rule: 'rtrl' },
  'tbptt(4)': { rule: 'tbptt', window: 4 },
};
/** The LRU stack learns through its own rule, in each of the paper's modes. */
const lruCredits: Record<string, CreditSpec> = {
  'online-lru(online)': { rule: 'online-lru', mode: 'online' },
  'online-lru(truncated-1)': { rule: 'online-lru', mode: 'truncated-1' },
  'online-lru(spatial)': { rule: 'online-lru', mode: 'spatial' },
  'online-lru(bptt)': { rule: 'online-lru', mode: 'bptt' },
};
const creditsOf = (cell: (typeof cellKinds)[number]) => (cell === 'lru' ? lruCredits : credits);
const optimizers: Record<string, OptimizerSpec> = {
  sgd: sgd(0.02),
  momentum: momentum(0.002, 0.9),
  rmsprop: rmsprop(0.003),
  'adam+clip': withClipping(adam(0.003), 1),
};
const M = 3;
const OUT = 2;

function specOf(cell: (typeof cellKinds)[number], credit: CreditSpec, optimizer: OptimizerSpec): RecurrentLearnerSpec {
  // The LRU: two layers of 4 complex units, so spatial backpropagation across layers is part of the contract.
  const shape = cell === 'lru' ? { units: 4, layers: 2 } : {};
  return { cell: { kind: cell, hiddenSize: 8, ...shape }, credit, optimizer, inputSize: M, outputSize: OUT, seed: 7, loss: 'mse' };
}

/**
 * A seeded toy stream every architecture can learn: slowly varying AR(1) inputs (so leaky and gated cells can
 * follow them) and a target linear in the current and previous input.
 */
function toyStream(seed: number, ticks: number): { xs: Float32Array[]; ys: Float32Array[] } {
  const rng = new Random(seed);
  const xs: Float32Array[] = [];
  const ys: Float32Array[] = [];
  let prev = new Float32Array(M);
  for (let t = 0; t < ticks; t++) {
    const x = Float32Array.from({ length: M }, (_, j) => 0.9 * prev[j] + 0.436 * rng.normal());
    xs.push(x);
    ys.push(Float32Array.from([0.5 * x[0] - 0.3 * x[1] + 0.2 * prev[2], 0.4 * x[2]]));
    prev = x;
  }
  return { xs, ys };
}

const stream = toyStream(1, 3000);

/** The behavioural contract, for any learner spec on the toy stream. */
function checkContract(spec: LearnerSpec): void {
  // Inputs are left unmutated.
  const a = createLearner(spec);
  const x0 = Float32Array.from(stream.xs[0]);
  const y0 = Float32Array.from(stream.ys[0]);
  a.predict(x0);
  a.learn(y0);
  assert.deepEqual(x0, stream.xs[0]);
  assert.deepEqual(y0, stream.ys[0]);

  // Same seed, same bytes.
  const b = createLearner(spec);
  b.predict(stream.xs[0]);
  b.learn(stream.ys[0]);
  for (let t = 1; t < 40; t++) {
    a.predict(stream.xs[t]);
    a.learn(stream.ys[t]);
    b.predict(stream.xs[t]);
    b.learn(stream.ys[t]);
  }
  assert.deepEqual(a.snapshot(), b.snapshot());

  // restore(snapshot()) is exact: the restored learner continues identically.
  const saved = a.snapshot();
  const c = createLearner(spec);
  c.predict(stream.xs[5]);
  c.restore(saved);
  assert.deepEqual(c.snapshot(), saved);
  for (let t = 40; t < 60; t++) {
    const ya = Array.from(a.predict(stream.xs[t]));
    const yc = Array.from(c.predict(stream.xs[t]));
    assert.deepEqual(yc, ya);
    a.learn(stream.ys[t]);
    c.learn(stream.ys[t]);
  }
  assert.deepEqual(c.snapshot(), a.snapshot());
  assert.equal(c.version, a.version);

  // Bad input throws a typed error and changes nothing.
  const before = a.snapshot();
  assert.throws(() => a.predict(new Float32Array(M + 1)), (e: unknown) => e instanceof InvalidInputError && e.problem === 'dimension');
  assert.throws(() => a.predict(Float32Array.from([0, NaN, 0])), (e: unknown) => e instanceof InvalidInputError && e.problem === 'non-finite');
  assert.throws(() => a.predict(Float32Array.from([0, Infinity, 0])), (e: unknown) => e instanceof InvalidInputError);
  assert.throws(() => a.learn(Float32Array.from([0, -Infinity])), (e: unknown) => e instanceof InvalidLabelError && e.problem === 'non-finite');
  assert.throws(() => a.learn(new Float32Array(OUT + 1)), (e: unknown) => e instanceof InvalidLabelError && e.problem === 'dimension');
  assert.throws(() => a.learn(stream.ys[0], a.tick), (e: unknown) => e instanceof InvalidLabelError && e.problem === 'duplicate');
  assert.throws(() => a.learn(stream.ys[0], a.tick + 1), (e: unknown) => e instanceof InvalidLabelError && e.problem === 'future-tick');
  assert.deepEqual(a.snapshot(), before);

  // Convergence on the toy target, and constant state over 10^4 ticks.
  const learner = createLearner(spec);
  const bytes = learner.stateBytes;
  let early = 0;
  let late = 0;
  const T = 10_000;
  for (let t = 0; t < T; t++) {
    const i = t % stream.xs.length;
    const yhat = learner.predict(stream.xs[i]);
    let se = 0;
    for (let j = 0; j < OUT; j++) se += (yhat[j] - stream.ys[i][j]) ** 2;
    if (t < 500) early += se;
    if (t >= T - 500) late += se;
    learner.learn(stream.ys[i]);
  }
  assert.equal(learner.stateBytes, bytes);
  assert.equal(learner.version, T);
  assert.equal(learner.stats.skippedNonFinite, 0);
  // A least-squares readout (RLS) is fitted within the first 500 ticks already: then the bar is the error itself,
  // below 2 % of the target's variance over the last 500 ticks.
  const converged = late < 0.02 * targetVariance * 500;
  assert.ok(late < 0.5 * early || converged, `error should at least halve: first 500 ticks ${early.toFixed(2)}, last 500 ${late.toFixed(2)}`);
}

/** Sum over outputs of the variance of the toy target. */
const targetVariance = (() => {
  let v = 0;
  for (let j = 0; j < OUT; j++) {
    const mean = stream.ys.reduce((a, y) => a + y[j], 0) / stream.ys.length;
    v += stream.ys.reduce((a, y) => a + (y[j] - mean) ** 2, 0) / stream.ys.length;
  }
  return v;
})();

for (const cell of cellKinds) {
  describe(`learner ${cell}`, () => {
    for (const [creditName, credit] of Object.entries(creditsOf(cell))) {
      for (const [optName, optimizer] of Object.entries(optimizers)) {
        const spec = specOf(cell, credit, optimizer);
        test(`${creditName} + ${optName}`, () => checkContract(spec));
      }
    }
  });
}

// lambda 'exact' on the cells that declare a diagonal state Jacobian: the only cells it is defined for.
describe("learners with lambda 'exact'", () => {
  for (const cell of diagonalJacobianKinds()) {
    for (const [optName, optimizer] of Object.entries(optimizers)) {
      test(`${cell}: immediate(exact) + ${optName}`, () => checkContract(specOf(cell, { rule: 'immediate', lambda: 'exact' }, optimizer)));
    }
  }
});

// Fixed-point propagation keeps a buffer of states, inputs and labels in its credit state: bounded, snapshotted,
// restored. With every cell, and the variants of both buffer-based rules on two of them.
describe('buffer-based learners', () => {
  const fpp: CreditSpec = { rule: 'fpp', window: 3, buffer: 64, updates: 2 };
  for (const cell of cellKinds.filter((kind) => kind !== 'lru')) {
    for (const optName of ['rmsprop', 'adam+clip'] as const) {
      test(`${cell}: fpp(3, N 64, M 2) + ${optName}`, () => checkContract(specOf(cell, fpp, optimizers[optName])));
    }
  }
  const variants: Record<string, CreditSpec> = {
    'tbptt(4, every 2)': { rule: 'tbptt', window: 4, every: 2 },
    'tbptt(4, every 4)': { rule: 'tbptt', window: 4, every: 4 },
    'fpp without state updating': { ...fpp, updateStates: false },
    'fpp, decay schedule': { ...fpp, schedule: { kind: 'decay', horizonTicks: 5000 } },
    'fpp, random schedule': { ...fpp, schedule: { kind: 'random', horizonTicks: 5000 } },
  };
  for (const cell of ['tanh-rnn', 'gru'] as const) {
    for (const [name, credit] of Object.entries(variants)) {
      test(`${cell}: ${name} + rmsprop`, () => checkContract(specOf(cell, credit, optimizers.rmsprop)));
    }
  }
});

// The RLS readout (src/learners/rls-readout.ts) under the same contract, with and without a bypass and with
// eligibility traces below it.
describe('recurrent learners with an RLS readout', () => {
  for (const cell of ['tanh-rnn', 'tanh-rnn-bypass', 'gru', 'lstm'] as const) {
    test(`${cell} + immediate(0.5) + rmsprop, readout rls`, () =>
      checkContract({ ...specOf(cell, credits['immediate(0.5)'], optimizers.rmsprop), readout: { kind: 'rls', halfLifeTicks: 5000 } }));
  }
});

// The classical decoders (src/learners/decoders) under the same contract. Their weights stay zero until they
// have seen labels (ridge and kalman until their first refit), which the convergence check's first 500 ticks
// include: the contract holds as stated, nothing is adapted. Kalman is a generative model of x given y and the
// toy target is not one, so it converges to its best linear-Gaussian fit rather than to zero error.
const decoderSpecs: Record<string, DecoderSpec['decoder']> = {
  'rls (defaults)': { kind: 'rls' },
  'rls (forgetting, 2 lags)': { kind: 'rls', lags: 2, halfLifeTicks: 2000, delta: 0.1 },
  'ridge (defaults)': { kind: 'ridge' },
  'ridge (forgetting, resetOnSession)': { kind: 'ridge', lags: 2, halfLifeTicks: 3000, refitEvery: 50, resetOnSession: true },
  'kalman (defaults)': { kind: 'kalman' },
  'kalman (forgetting)': { kind: 'kalman', halfLifeTicks: 3000, refitEvery: 100, ridge: 0.01 },
};

function decoderSpecOf(decoder: DecoderSpec['decoder'], extra: Partial<DecoderSpec> = {}): DecoderSpec {
  return { decoder, inputSize: M, outputSize: OUT, seed: 7, loss: 'mse', ...extra };
}

describe('decoders', () => {
  for (const [name, decoder] of Object.entries(decoderSpecs)) {
    test(name, () => checkContract(decoderSpecOf(decoder)));
  }

  for (const kind of ['rls', 'ridge', 'kalman'] as const) {
    const spec = decoderSpecOf({ kind, refitEvery: kind === 'rls' ? undefined : 20 } as DecoderSpec['decoder']);

    test(`${kind}: labels older than the ring are dropped and counted, not thrown`, () => {
      const learner = createLearner({ ...spec, maxLabelDelay: 4 });
      for (let t = 0; t < 10; t++) learner.predict(stream.xs[t]);
      assert.equal(learner.learn(stream.ys[5], 5), 'dropped-late');
      assert.equal(learner.stats.droppedLate, 1);
      assert.equal(learner.version, 0);
      assert.equal(learner.learn(stream.ys[6], 6), 'applied');
      assert.equal(learner.version, 1);
    });

    test(`${kind}: a frozen fork predicts like its origin and refuses labels`, () => {
      const learner = createLearner(spec);
      for (let t = 0; t < 50; t++) {
        learner.predict(stream.xs[t]);
        learner.learn(stream.ys[t]);
      }
      const frozen = learner.fork();
      assert.equal(frozen.frozen, true);
      assert.deepEqual(Array.from(frozen.predict(stream.xs[50])), Array.from(learner.predict(stream.xs[50])));
      assert.throws(() => frozen.learn(stream.ys[50]), (e: unknown) => e instanceof InvalidLabelError && e.problem === 'frozen');
      assert.equal(learner.fork({ frozen: false }).learn(stream.ys[50]), 'applied');
    });

    test(`${kind}: restore refuses a snapshot of another spec and leaves the learner as it was`, () => {
      const a = createLearner(spec);
      a.predict(stream.xs[0]);
      const before = a.snapshot();
      assert.throws(() => a.restore(createLearner({ ...spec, seed: 8 }).snapshot()), /another spec/);
      assert.throws(() => a.restore(createLearner(specOf('tanh-rnn', credits.rtrl, sgd(0.1))).snapshot()), /another spec/);
      assert.throws(() => a.restore(new Uint8Array(40)), /not a driftline/);
      assert.deepEqual(a.snapshot(), before);
    });
  }

  test('a decoder spec error names the field', () => {
    const rls = decoderSpecOf({ kind: 'rls' });
    assert.throws(() => createLearner({ ...rls, inputSize: 0 }), /inputSize/);
    assert.throws(() => createLearner({ ...rls, decoder: { kind: 'rls', lags: 0 } }), /decoder\.lags/);
    assert.throws(() => createLearner({ ...rls, decoder: { kind: 'rls', delta: -1 } }), /decoder\.delta/);
    assert.throws(() => createLearner({ ...rls, decoder: { kind: 'ridge', halfLifeTicks: 0 } }), /decoder\.halfLifeTicks/);
    assert.throws(() => createLearner({ ...rls, decoder: { kind: 'ridge', refitEvery: 1.5 } }), /decoder\.refitEvery/);
    assert.throws(() => createLearner({ ...rls, decoder: { kind: 'kalman', ridge: NaN } }), /decoder\.ridge/);
    assert.throws(() => createLearner({ ...rls, decoder: { kind: 'kalman', lags: 2 } as DecoderSpec['decoder'] }), /decoder\.lags: is not an option of 'kalman'/);
    assert.throws(() => createLearner({ ...rls, decoder: { kind: 'lms' } as unknown as DecoderSpec['decoder'] }), /decoder\.kind/);
    assert.throws(() => createLearner({ ...rls, loss: 'xent' as 'mse' }), /loss/);
    assert.throws(() => createLearner({ ...rls, decoder: { kind: 'rls', lags: 100 }, inputSize: 96 }), /decoder\.lags.*9601 features/);
  });
});

describe('learner protocol', () => {
  const spec = specOf('tanh-rnn', { rule: 'immediate', lambda: 0 }, rmsprop(0.003));

  for (const [creditName, credit] of Object.entries(credits)) {
    test(`${creditName}: a label d ticks late is credited exactly as it would have been on time`, () => {
      // Both learners have the same parameters when the label for tick 30 is learned; the late one has run
      // 9 more ticks since. The ring (and, for traced rules, the credit frontier) must make that invisible.
      const traced = specOf('gru', credit, sgd(0.01));
      const onTime = createLearner(traced);
      const late = createLearner(traced);
      for (let t = 0; t <= 30; t++) onTime.predict(stream.xs[t]);
      for (let t = 0; t < 40; t++) late.predict(stream.xs[t]);
      onTime.learn(stream.ys[30], 30);
      late.learn(stream.ys[30], 30);
      assert.deepEqual(late.readParameters(), onTime.readParameters());
      assert.notDeepEqual(late.readParameters(), createLearner(traced).readParameters());
      assert.equal(late.stats.staleCredit, 0);
    });
  }

  test('labels older than the ring are dropped and counted, not thrown', () => {
    const learner = createLearner({ ...spec, maxLabelDelay: 4 });
    for (let t = 0; t < 10; t++) learner.predict(stream.xs[t]);
    const before = learner.snapshot();
    assert.equal(learner.learn(stream.ys[5], 5), 'dropped-late');
    assert.equal(learner.stats.droppedLate, 1);
    assert.equal(learner.version, 0);
    // Only the drop counter differs.
    assert.equal(learner.learn(stream.ys[6], 6), 'applied');
    assert.notDeepEqual(learner.snapshot(), before);
  });

  test('traced credit: an out-of-order label is learned with the current traces and counted', () => {
    const c = createLearner(specOf('gru', { rule: 'immediate', lambda: 0.5 }, sgd(0.01)));
    for (let t = 0; t < 20; t++) c.predict(stream.xs[t]);
    assert.equal(c.learn(stream.ys[15], 15), 'applied');
    assert.equal(c.learn(stream.ys[12], 12), 'applied');
    assert.equal(c.stats.staleCredit, 1);
    assert.equal(c.version, 2);
  });

  test('xent: predictions are probabilities and learning reduces the loss', () => {
    const learner = createLearner({ ...spec, outputSize: 3, loss: 'xent' });
    const rng = new Random(3);
    let early = 0;
    let late = 0;
    for (let t = 0; t < 6000; t++) {
      const x = Float32Array.from({ length: M }, () => rng.normal());
      const cls = x[0] > 0.5 ? 0 : x[0] < -0.5 ? 1 : 2;
      const p = learner.predict(x);
      const sum = p[0] + p[1] + p[2];
      assert.ok(Math.abs(sum - 1) < 1e-5);
      const loss = -Math.log(Math.max(p[cls], 1e-9));
      if (t < 500) early += loss;
      if (t >= 5500) late += loss;
      const y = new Float32Array(3);
      y[cls] = 1;
      learner.learn(y);
    }
    assert.ok(late < 0.6 * early, `cross-entropy should fall: ${early.toFixed(1)} -> ${late.toFixed(1)}`);
  });

  test('a frozen fork predicts like its origin and refuses labels', () => {
    const learner = createLearner(spec);
    for (let t = 0; t < 50; t++) {
      learner.predict(stream.xs[t]);
      learner.learn(stream.ys[t]);
    }
    const frozen = learner.fork();
    assert.deepEqual(Array.from(frozen.predict(stream.xs[50])), Array.from(learner.predict(stream.xs[50])));
    assert.throws(() => frozen.learn(stream.ys[50]), (e: unknown) => e instanceof InvalidLabelError && e.problem === 'frozen');
  });

  test('restore refuses a snapshot of another spec and leaves the learner as it was', () => {
    const a = createLearner(spec);
    const other = createLearner({ ...spec, cell: { kind: 'tanh-rnn', hiddenSize: 9 } });
    const before = a.snapshot();
    assert.throws(() => a.restore(other.snapshot()), /does not match|another spec/);
    assert.throws(() => a.restore(new Uint8Array(40)), /not a driftline/);
    assert.deepEqual(a.snapshot(), before);
  });

  test('a spec error names the field', () => {
    assert.throws(() => createLearner({ ...spec, inputSize: 0 }), /inputSize/);
    assert.throws(() => createLearner({ ...spec, credit: { rule: 'immediate', lambda: 1.5 } }), /credit\.lambda/);
    assert.throws(() => createLearner({ ...spec, optimizer: { chain: [] } }), /optimizer/);
    assert.throws(() => createLearner({ ...spec, loss: 'hinge' as 'mse' }), /loss/);
  });

  test('the wasm and js backends agree to float32 tolerance over 500 ticks', () => {
    const wasm = createLearner(spec, { backend: 'wasm' });
    const js = createLearner(spec, { backend: 'js' });
    assert.equal(wasm.backend, 'wasm');
    assert.equal(js.backend, 'js');
    let maxDiff = 0;
    for (let t = 0; t < 500; t++) {
      const a = wasm.predict(stream.xs[t]);
      const b = js.predict(stream.xs[t]);
      for (let j = 0; j < OUT; j++) maxDiff = Math.max(maxDiff, Math.abs(a[j] - b[j]));
      wasm.learn(stream.ys[t]);
      js.learn(stream.ys[t]);
    }
    assert.ok(maxDiff < 1e-3, `max |wasm - js| = ${maxDiff}`);
  });
});
