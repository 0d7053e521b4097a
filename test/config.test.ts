// A bad config file is refused at start with a message that names the field and the fix.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { ConfigError, DEFAULT_SERVICE_CALIBRATION_STEP, describeLearner, learnerSpecOf, loadConfig, parseConfig } from '../src/cli/config.js';
import { pipelineOptionsOf } from '../src/cli/run.js';
import { createLearner } from '../src/learners/learner.js';
import { createStepCell } from '../src/learners/cells/registry.js';
import { FixedPointPropagationRule } from '../src/learners/credit/fixed-point-propagation.js';
import { createCreditRule, FPP_DEFAULTS, type CreditSpec } from '../src/learners/credit/registry.js';
import { TruncatedBpttRule } from '../src/learners/credit/truncated-bptt.js';
import { InvalidSpecError } from '../src/learners/errors.js';

const minimal = {
  streams: { inputSize: 96, outputSize: 2 },
  learner: { cell: { kind: 'tanh-rnn', hiddenSize: 64 }, credit: { rule: 'immediate' }, optimizer: { name: 'rmsprop', lr: 0.001 } },
};

test('a minimal config gets documented defaults and yields a learner spec createLearner accepts', () => {
  const config = parseConfig(minimal);
  assert.equal(config.evaluation.window, 1000);
  assert.equal(config.metrics.port, 9464);
  assert.deepEqual(config.evaluation.holdout, { kind: 'none' });
  const learner = createLearner(learnerSpecOf(config));
  assert.equal(learner.spec.inputSize, 96);
  assert.equal(learner.spec.maxLabelDelay, 32);
});

test('the drift, evaluation and log fields the pipeline needs have defaults and accept what they document', () => {
  const defaults = parseConfig(minimal);
  assert.deepEqual(defaults.drift, {
    detectors: [{ kind: 'calibrated', detector: { kind: 'page-hinkley' }, falseAlarmsPerHour: 1, tickSeconds: 0.05, calibrationStep: DEFAULT_SERVICE_CALIBRATION_STEP }],
    inputDetectors: [],
    inputStatistic: 'population-mean',
    cooldownTicks: 0,
    signal: 'error',
    tickSeconds: 0.05,
  });
  assert.equal(defaults.evaluation.reportEvery, 10);
  assert.equal(defaults.evaluation.recoveryTicks, 2000);
  assert.deepEqual(defaults.log, { level: 'info', maxWarningsPerSecond: 10 });
  const config = parseConfig({
    ...minimal,
    evaluation: { reportEvery: 20, window: 500 },
    drift: {
      detectors: [{ kind: 'page-hinkley', threshold: 2e8, delta: 2e6, mode: 'up' }],
      inputDetectors: [{ kind: 'adwin', delta: 0.002 }],
      cooldownTicks: 1000,
    },
  });
  assert.equal(config.evaluation.reportEvery, 20);
  // A partly given block keeps the defaults of the fields it leaves out.
  assert.equal(config.evaluation.ewmaAlpha, 0.01);
  assert.equal(config.evaluation.window, 500);
  assert.deepEqual(config.drift.inputDetectors, [{ kind: 'adwin', delta: 0.002 }]);
  assert.equal(config.drift.detectors[0].kind === 'page-hinkley' && config.drift.detectors[0].mode, 'up');
  assert.equal(config.drift.cooldownTicks, 1000);
  assert.equal(config.drift.signal, 'error', 'a drift block without signal keeps the raw error');
});

test('drift.signal: normalized-error is accepted and reaches the pipeline options; the default error too', () => {
  const normalized = parseConfig({ ...minimal, drift: { signal: 'normalized-error', detectors: [{ kind: 'page-hinkley', threshold: 100, delta: 0.5 }] } });
  assert.equal(normalized.drift.signal, 'normalized-error');
  assert.equal(pipelineOptionsOf(normalized).drift.signal, 'normalized-error');
  assert.equal(pipelineOptionsOf(parseConfig(minimal)).drift.signal, 'error');
});

const cases: [string, unknown, RegExp][] = [
  ['an unknown cell kind', { ...minimal, learner: { ...minimal.learner, cell: { kind: 'tanh-rn', hiddenSize: 64 } } }, /learner\.cell\.kind: .*tanh-rnn/],
  ['a negative size', { ...minimal, streams: { inputSize: -1, outputSize: 2 } }, /streams\.inputSize: .*>0/],
  ['a misspelt field', { ...minimal, streams: { inputSize: 96, outputSize: 2, maxStream: 3 } }, /streams: unknown field\(s\) 'maxStream'/],
  ['a port of the wrong type', { ...minimal, sources: { websocket: { port: '80' } } }, /sources\.websocket\.port: .*number/],
  ['an unknown holdout kind', { ...minimal, evaluation: { holdout: { kind: 'sometimes' } } }, /evaluation\.holdout\.kind/],
  ['a lambda of 1', { ...minimal, learner: { ...minimal.learner, credit: { rule: 'immediate', lambda: 1 } } }, /learner\.credit\.lambda/],
  ['a negative cooldown', { ...minimal, drift: { cooldownTicks: -1 } }, /drift\.cooldownTicks: .*>=0/],
  ['an unknown input detector', { ...minimal, drift: { inputDetectors: [{ kind: 'cusum' }] } }, /drift\.inputDetectors\.0\.kind/],
  ['a Page-Hinkley mode that does not exist', { ...minimal, drift: { detectors: [{ kind: 'page-hinkley', mode: 'sideways' }] } }, /drift\.detectors\.0\.mode: .*"up"/],
  ['a drift signal that does not exist', { ...minimal, drift: { signal: 'normalised-error' } }, /drift\.signal: .*"normalized-error"/],
  ['a drift signal of the wrong type', { ...minimal, drift: { signal: true } }, /drift\.signal: .*"error"/],
  ['a report interval of 0', { ...minimal, evaluation: { reportEvery: 0 } }, /evaluation\.reportEvery: .*>0/],
  ['a warning budget of 0', { ...minimal, log: { maxWarningsPerSecond: 0 } }, /log\.maxWarningsPerSecond/],
  ['a short token', { ...minimal, sources: { websocket: { token: 'abc' } } }, /sources\.websocket\.token: a bearer token needs at least 16/],
];
for (const [name, raw, message] of cases) {
  test(`refuses ${name}, naming the field`, () => {
    assert.throws(() => parseConfig(raw, 'driftline.yaml'), (e: unknown) => e instanceof ConfigError && message.test(e.message) && /driftline\.yaml/.test(e.message));
  });
}

test('loadConfig reads YAML and reports unreadable or invalid files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-config-'));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'streams: {inputSize: 4, outputSize: 1}\nlearner:\n  cell: {kind: gru, hiddenSize: 8}\n  credit: {rule: rtrl}\n  optimizer: {name: adam, lr: 0.01, clipNorm: 1}\n');
  assert.equal(loadConfig(good).learner.cell?.kind, 'gru');
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'streams: [unclosed');
  assert.throws(() => loadConfig(broken), /not valid YAML/);
  assert.throws(() => loadConfig(join(dir, 'missing.yaml')), /cannot read the file/);
});

test('the example configs in examples/configs and examples/bci-decoder are valid', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples');
  const files = ['configs', 'bci-decoder'].flatMap((d) => readdirSync(join(root, d)).filter((f) => f.endsWith('.yaml')).map((f) => join(d, f)));
  assert.ok(files.length >= 2);
  for (const file of files) {
    const config = loadConfig(join(root, file));
    assert.ok(config.sources.websocket, `${file} configures a source for driftline run`);
    createLearner(learnerSpecOf(config));
  }
});

test('learner: a classical decoder instead of a recurrent cell, one or the other, with errors naming the field', () => {
  const decoder = parseConfig({ ...minimal, learner: { decoder: { kind: 'ridge', lags: 10, alpha: 100, resetOnSession: true }, maxLabelDelay: 64 } });
  const spec = learnerSpecOf(decoder);
  assert.deepEqual((spec as { decoder: unknown }).decoder, { kind: 'ridge', lags: 10, alpha: 100, resetOnSession: true });
  assert.equal(createLearner(spec).spec.maxLabelDelay, 64);
  const problems = (raw: unknown) => {
    try {
      parseConfig(raw);
    } catch (err) {
      return (err as ConfigError).problems.join('\n');
    }
    return '';
  };
  assert.match(problems({ ...minimal, learner: { ...minimal.learner, decoder: { kind: 'rls' } } }), /learner\.cell: a learner is either a decoder or a recurrent cell/);
  assert.match(problems({ ...minimal, learner: { optimizer: { name: 'sgd', lr: 0.1 } } }), /learner\.cell: required/);
  assert.match(problems({ ...minimal, learner: { decoder: { kind: 'kalman', lags: 3 } } }), /learner\.decoder: unknown field\(s\) 'lags'/);
  assert.match(problems({ ...minimal, learner: { decoder: { kind: 'wiener' } } }), /learner\.decoder\.kind/);
  const withRls = learnerSpecOf(parseConfig({ ...minimal, learner: { ...minimal.learner, readout: { kind: 'rls', halfLifeTicks: 24000 } } }));
  assert.deepEqual((withRls as { readout?: unknown }).readout, { kind: 'rls', halfLifeTicks: 24000 });
  createLearner(withRls);
  assert.match(problems({ ...minimal, learner: { decoder: { kind: 'rls' }, readout: { kind: 'rls' } } }), /learner\.readout: a learner is either a decoder/);
});

test('evaluation: per-session holdouts and target scaling (standardize by default) reach the pipeline options', () => {
  const defaults = pipelineOptionsOf(parseConfig(minimal));
  assert.deepEqual(defaults.targetScaling, { kind: 'standardize' });
  const config = parseConfig({
    ...minimal,
    evaluation: {
      holdout: { kind: 'bySession', sessions: [{ kind: 'none' }, { kind: 'firstMinutes', minutes: 2 }] },
      targetScaling: { kind: 'standardize', halfLifeLabels: 5000 },
    },
  });
  const options = pipelineOptionsOf(config);
  assert.deepEqual(options.holdout, { kind: 'bySession', sessions: [{ kind: 'none' }, { kind: 'firstMinutes', minutes: 2 }] });
  assert.deepEqual(options.targetScaling, { kind: 'standardize', halfLifeLabels: 5000 });
  assert.deepEqual(pipelineOptionsOf(parseConfig({ ...minimal, evaluation: { targetScaling: { kind: 'none' } } })).targetScaling, { kind: 'none' });
  assert.throws(() => parseConfig({ ...minimal, evaluation: { holdout: { kind: 'bySession', sessions: [] } } }), /evaluation\.holdout\.sessions/);
  assert.throws(() => parseConfig({ ...minimal, evaluation: { holdout: { kind: 'bySession', sessions: [{ kind: 'bySession', sessions: [] }] } } }), /evaluation\.holdout\.sessions\.0/);
});

test('a calibrated detector takes the stream tick from drift.tickSeconds unless it sets its own, and a budget that cannot be calibrated is refused by name', () => {
  const config = parseConfig({
    ...minimal,
    drift: {
      tickSeconds: 0.02,
      detectors: [
        { kind: 'calibrated', detector: { kind: 'adwin' }, falseAlarmsPerHour: 2 },
        { kind: 'calibrated', detector: { kind: 'kswin', seed: 3 }, falseAlarmsPerHour: 1, tickSeconds: 0.1, calibrationSeconds: 600, calibrationStep: 50_000 },
      ],
    },
  });
  assert.deepEqual(config.drift.detectors.map((d) => d.kind === 'calibrated' && d.tickSeconds), [0.02, 0.1]);
  // The step reaches the detector; without it, driftline run's default step.
  assert.deepEqual(config.drift.detectors.map((d) => d.kind === 'calibrated' && d.calibrationStep), [DEFAULT_SERVICE_CALIBRATION_STEP, 50_000]);
  for (const [what, drift, message] of [
    ['the option calibration chooses', { detectors: [{ kind: 'calibrated', detector: { kind: 'page-hinkley', threshold: 5 }, falseAlarmsPerHour: 1 }] }, /drift\.detectors\.0\.detector: unknown field\(s\) 'threshold'/],
    ['a budget too small for a 1 ms tick', { tickSeconds: 0.001, detectors: [{ kind: 'calibrated', detector: { kind: 'page-hinkley' }, falseAlarmsPerHour: 0.01 }] }, /drift\.detectors\.0: .*raise the budget or lower runs/],
    ['a warm-up under 100 ticks', { detectors: [{ kind: 'calibrated', detector: { kind: 'adwin' }, falseAlarmsPerHour: 1, calibrationSeconds: 2 }] }, /drift\.detectors\.0: .*calibrationSeconds must cover at least 100 ticks/],
    ['an undetectable kind', { detectors: [{ kind: 'calibrated', detector: { kind: 'ddm' }, falseAlarmsPerHour: 1 }] }, /drift\.detectors\.0\.detector/],
    ['a fractional step', { detectors: [{ kind: 'calibrated', detector: { kind: 'adwin' }, falseAlarmsPerHour: 1, calibrationStep: 0.5 }] }, /drift\.detectors\.0\.calibrationStep/],
  ] as const) {
    assert.throws(() => parseConfig({ ...minimal, drift }), (err: unknown) => err instanceof ConfigError && message.test(err.message), what);
  }
});

test("streams.shards: 1 by default, a count, or 'auto' for one per core; anything else is refused, naming the field", () => {
  assert.equal(parseConfig(minimal).streams.shards, 1);
  assert.equal(parseConfig({ ...minimal, streams: { ...minimal.streams, shards: 3 } }).streams.shards, 3);
  assert.equal(parseConfig({ ...minimal, streams: { ...minimal.streams, shards: 'auto' } }).streams.shards, Math.min(64, availableParallelism()));
  for (const bad of [0, 1.5, 65, 'two']) {
    assert.throws(() => parseConfig({ ...minimal, streams: { ...minimal.streams, shards: bad } }), (e: unknown) => e instanceof ConfigError && /streams\.shards/.test(e.message), String(bad));
  }
});

test('a Kafka source with a labels topic is accepted; one topic in two roles is refused by name', () => {
  const kafka = { brokers: ['127.0.0.1:9092'], groupId: 'g', inputTopic: 'frames', predictionsTopic: 'predictions', changelogTopic: 'state' };
  const withLabels = parseConfig({ ...minimal, sources: { kafka: { ...kafka, labelsTopic: 'labels', deadLetterTopic: 'refused' } } });
  assert.equal(withLabels.sources.kafka?.labelsTopic, 'labels');
  for (const clash of [{ labelsTopic: 'frames' }, { deadLetterTopic: 'predictions' }, { labelsTopic: 'x', deadLetterTopic: 'x' }, { changelogTopic: 'frames' }]) {
    assert.throws(() => parseConfig({ ...minimal, sources: { kafka: { ...kafka, ...clash } } }), (err: Error) => err instanceof ConfigError && /must be different topics/.test(err.message), JSON.stringify(clash));
  }
});

test("the online LRU is a learner a config can name: cell 'lru' with rule 'online-lru', in each mode", () => {
  const lru = { kind: 'lru', hiddenSize: 16, units: 8, layers: 2, rMin: 0.5, rMax: 0.99 };
  for (const mode of ['online', 'truncated-1', 'spatial', 'bptt'] as const) {
    const config = parseConfig({ ...minimal, learner: { ...minimal.learner, cell: lru, credit: { rule: 'online-lru', mode } } });
    const learner = createLearner(learnerSpecOf(config));
    learner.predict(new Float32Array(96));
    assert.equal(learner.learn(new Float32Array(2)), 'applied');
  }
  const defaults = parseConfig({ ...minimal, learner: { ...minimal.learner, cell: lru, credit: { rule: 'online-lru' } } });
  assert.deepEqual(defaults.learner.credit, { rule: 'online-lru', mode: 'online' });
  const refused = (learner: object, pattern: RegExp) =>
    assert.throws(() => parseConfig({ ...minimal, learner: { ...minimal.learner, ...learner } }), pattern);
  refused({ cell: lru, credit: { rule: 'immediate' } }, /learner\.credit\.rule: cell 'lru' learns with rule 'online-lru'/);
  refused({ credit: { rule: 'online-lru' } }, /learner\.credit\.rule: 'online-lru' learns cell 'lru' only/);
  refused({ cell: { kind: 'gru', hiddenSize: 8, layers: 2 } }, /learner\.cell\.layers: applies to cell 'lru' only/);
  refused({ cell: lru, credit: { rule: 'online-lru', mode: 'full' } }, /learner\.credit\.mode/);
  refused({ cell: { ...lru, rMax: 1.5 }, credit: { rule: 'online-lru' } }, /learner\.cell\.rMax/);
});

describe('credit rules tbptt and fpp in a config', () => {
  const withCredit = (credit: unknown, learner: object = {}) => ({ ...minimal, learner: { ...minimal.learner, credit, ...learner } });
  const problemsOf = (raw: unknown): readonly string[] => {
    try {
      parseConfig(raw);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.problems;
    }
    assert.fail('the config was accepted');
  };
  /** The rule the learner builds from a spec, on the config's cell (96 inputs, 64 units of tanh-rnn, 2 outputs). */
  const ruleOf = (credit: CreditSpec) => createCreditRule(credit, createStepCell('tanh-rnn', { inputSize: 96, hiddenSize: 64 }), 2);

  test('tbptt: every defaults to 1, as the learner takes it; the spec reaches the learner unchanged, and it learns', () => {
    const config = parseConfig(withCredit({ rule: 'tbptt', window: 10 }));
    assert.deepEqual(config.learner.credit, { rule: 'tbptt', window: 10, every: 1 });
    const bare = ruleOf({ rule: 'tbptt', window: 10 });
    assert.ok(bare instanceof TruncatedBpttRule);
    assert.deepEqual([bare.window, bare.every], [10, 1], "the learner's own default is the one the config filled");
    const spec = learnerSpecOf(config);
    assert.deepEqual((spec as { credit: unknown }).credit, config.learner.credit);
    const learner = createLearner(spec);
    assert.deepEqual((learner.spec as { credit: unknown }).credit, { rule: 'tbptt', window: 10, every: 1 });
    for (let t = 0; t < 3; t++) {
      learner.predict(new Float32Array(96).fill(0.1 * t));
      assert.equal(learner.learn(new Float32Array(2)), 'applied');
    }
    assert.equal(describeLearner(config), 'tanh-rnn n = 64, tbptt (T 10, every 1), rmsprop lr 0.001');
    const every = parseConfig(withCredit({ rule: 'tbptt', window: 4, every: 4 }));
    assert.deepEqual(every.learner.credit, { rule: 'tbptt', window: 4, every: 4 });
    assert.match(describeLearner(every), /tbptt \(T 4, every 4\)/);
  });

  test('fpp: the defaults filled are FPP_DEFAULTS and a fixed schedule, the options the learner derives from the bare spec', () => {
    const config = parseConfig(withCredit({ rule: 'fpp', window: 5, updates: 4 }));
    const filled = { rule: 'fpp', window: 5, buffer: 1000, updates: 4, lambda: 1, stateRate: 0.1, updateStates: true, schedule: { kind: 'fixed' } };
    assert.deepEqual(config.learner.credit, filled);
    assert.deepEqual({ ...FPP_DEFAULTS, updates: 4 }, { buffer: 1000, updates: 4, lambda: 1, stateRate: 0.1, updateStates: true });
    const bare = ruleOf({ rule: 'fpp', window: 5, updates: 4 });
    assert.ok(bare instanceof FixedPointPropagationRule);
    const { rule: _rule, ...options } = filled;
    assert.deepEqual(bare.options, options, 'the learner fills the same defaults from the bare spec');
    const spec = learnerSpecOf(config);
    assert.deepEqual((spec as { credit: unknown }).credit, filled);
    const learner = createLearner(spec);
    assert.deepEqual((learner.spec as { credit: unknown }).credit, filled);
    for (let t = 0; t < 8; t++) {
      learner.predict(new Float32Array(96).fill(Math.sin(t)));
      assert.equal(learner.learn(new Float32Array([0.5, -0.5])), 'applied');
    }
    assert.equal(learner.version, 8);
    assert.equal(describeLearner(config), 'tanh-rnn n = 64, fpp (T 5, N 1000, M 4), rmsprop lr 0.001');

    // Every field given: each reaches the rule as written, and the summary names what is not the default.
    const full = { rule: 'fpp', window: 3, buffer: 50, updates: 2, lambda: 0.5, stateRate: 0.05, updateStates: false, schedule: { kind: 'decay', horizonTicks: 5000 } } as const;
    const fullConfig = parseConfig(withCredit(full));
    assert.deepEqual(fullConfig.learner.credit, full);
    const built = ruleOf((learnerSpecOf(fullConfig) as { credit: CreditSpec }).credit);
    assert.deepEqual((built as FixedPointPropagationRule).options, { window: 3, buffer: 50, updates: 2, lambda: 0.5, stateRate: 0.05, updateStates: false, schedule: { kind: 'decay', horizonTicks: 5000 } });
    assert.equal(describeLearner(fullConfig), 'tanh-rnn n = 64, fpp (T 3, N 50, M 2, lambda 0.5, state rate 0.05, no state updates, decay schedule over 5000 ticks), rmsprop lr 0.001');
    assert.match(describeLearner(parseConfig(withCredit({ rule: 'fpp', window: 5, schedule: { kind: 'random', horizonTicks: 100 } }))), /fpp \(T 5, N 1000, M 1, random schedule over 100 ticks\)/);
    assert.deepEqual(parseConfig(withCredit({ rule: 'fpp', window: 5, schedule: { kind: 'fixed' } })).learner.credit, { ...filled, updates: 1 });
  });

  const bad: [string, unknown, object, string, RegExp][] = [
    ['a window of 0', { rule: 'tbptt', window: 0 }, {}, 'window', /\[1, 1024\]/],
    ['a window past 1024', { rule: 'fpp', window: 1025, buffer: 2000 }, {}, 'window', /\[1, 1024\]/],
    ['a fractional window', { rule: 'tbptt', window: 2.5 }, {}, 'window', /integer/],
    ['every above the window', { rule: 'tbptt', window: 3, every: 4 }, {}, 'every', /at most window \(3\), got 4/],
    ['every of 0', { rule: 'tbptt', window: 3, every: 0 }, {}, 'every', /integer in \[1, /],
    ['a buffer equal to the window', { rule: 'fpp', window: 5, buffer: 5 }, {}, 'buffer', /more than window \(5\), got 5/],
    ['a window the default buffer cannot hold', { rule: 'fpp', window: 1000 }, {}, 'buffer', /more than window \(1000\), got 1000 \(the default\)/],
    ['updates of 0', { rule: 'fpp', window: 5, updates: 0 }, {}, 'updates', /\[1, 64\]/],
    ['updates past 64', { rule: 'fpp', window: 5, updates: 65 }, {}, 'updates', /\[1, 64\]/],
    ['a negative lambda', { rule: 'fpp', window: 5, lambda: -1 }, {}, 'lambda', />= 0/],
    ['a state rate of 0', { rule: 'fpp', window: 5, stateRate: 0 }, {}, 'stateRate', /\(0, 10\]/],
    ['a state rate past 10', { rule: 'fpp', window: 5, stateRate: 11 }, {}, 'stateRate', /\(0, 10\]/],
    ['updateStates that is not a boolean', { rule: 'fpp', window: 5, updateStates: 'no' }, {}, 'updateStates', /boolean/],
    ['an unknown schedule kind', { rule: 'fpp', window: 5, schedule: { kind: 'cosine' } }, {}, 'schedule.kind', /'fixed' \| 'decay' \| 'random'/],
    ['a decay schedule without horizonTicks', { rule: 'fpp', window: 5, schedule: { kind: 'decay' } }, {}, 'schedule.horizonTicks', /required for schedules 'decay' and 'random'/],
    ['a random schedule over 4 ticks', { rule: 'fpp', window: 5, schedule: { kind: 'random', horizonTicks: 4 } }, {}, 'schedule.horizonTicks', /integer >= 5/],
    ['horizonTicks on a fixed schedule', { rule: 'fpp', window: 5, schedule: { kind: 'fixed', horizonTicks: 100 } }, {}, 'schedule', /unknown field\(s\) 'horizonTicks'/],
    ['an unknown field in tbptt', { rule: 'tbptt', window: 5, buffer: 10 }, {}, '', /unknown field\(s\) 'buffer'/],
    ['an unknown field in fpp', { rule: 'fpp', window: 5, windw: 3 }, {}, '', /unknown field\(s\) 'windw'/],
    ['fpp with an RLS readout', { rule: 'fpp', window: 5 }, { readout: { kind: 'rls' } }, 'readout', /'fpp' steps the readout itself.*remove 'readout'/],
    ['tbptt on cell lru', { rule: 'tbptt', window: 5 }, { cell: { kind: 'lru', hiddenSize: 8 } }, 'rule', /not 'tbptt', which needs a cell with one-step derivatives \(tanh-rnn, .*\)/],
    ['fpp on cell lru', { rule: 'fpp', window: 5 }, { cell: { kind: 'lru', hiddenSize: 8 } }, 'rule', /not 'fpp', which needs a cell with one-step derivatives/],
  ];
  for (const [name, credit, learner, field, message] of bad) {
    test(`refuses ${name}, naming learner.${field === 'readout' ? 'readout' : `credit${field ? `.${field}` : ''}`}`, () => {
      const problems = problemsOf(withCredit(credit, learner));
      const path = field === 'readout' ? 'learner.readout' : `learner.credit${field ? `.${field}` : ''}`;
      const named = problems.filter((p) => p.startsWith(`${path}: `));
      assert.equal(named.length, 1, `one problem names ${path}:\n${problems.join('\n')}`);
      assert.match(named[0]!, message);
      assert.equal(problems.length, 1, `only that problem:\n${problems.join('\n')}`);
    });
  }

  test('the learner refuses what the config refuses in the credit object, by the same field', () => {
    // The config's checks mirror createCreditRule's: a spec built without the config meets the same limits.
    const cases: [CreditSpec, string][] = [
      [{ rule: 'tbptt', window: 0 }, 'credit.window'],
      [{ rule: 'tbptt', window: 3, every: 4 }, 'credit.every'],
      [{ rule: 'fpp', window: 5, buffer: 5 }, 'credit.buffer'],
      [{ rule: 'fpp', window: 5, updates: 0 }, 'credit.updates'],
      [{ rule: 'fpp', window: 5, lambda: -1 }, 'credit.lambda'],
      [{ rule: 'fpp', window: 5, stateRate: 0 }, 'credit.stateRate'],
      [{ rule: 'fpp', window: 5, schedule: { kind: 'decay' } as never }, 'credit.schedule.horizonTicks'],
      [{ rule: 'fpp', window: 5, schedule: { kind: 'cosine' } as never }, 'credit.schedule.kind'],
    ];
    for (const [credit, field] of cases) {
      assert.throws(() => ruleOf(credit), (e: unknown) => e instanceof InvalidSpecError && e.field === field, JSON.stringify(credit));
      assert.ok(problemsOf(withCredit(credit)).some((p) => p.startsWith(`learner.${field}: `)), JSON.stringify(credit));
    }
    const spec = learnerSpecOf(parseConfig(withCredit({ rule: 'fpp', window: 5 })));
    assert.throws(() => createLearner({ ...spec, readout: { kind: 'rls' } } as never), (e: unknown) => e instanceof InvalidSpecError && e.field === 'readout');
  });
});
