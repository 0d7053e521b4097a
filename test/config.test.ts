// A bad config file is refused at start with a message that names the field and the fix.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { ConfigError, DEFAULT_SERVICE_CALIBRATION_STEP, learnerSpecOf, loadConfig, parseConfig } from '../src/cli/config.js';
import { pipelineOptionsOf } from '../src/cli/run.js';
import { createLearner } from '../src/learners/learner.js';

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
