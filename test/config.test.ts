// A bad config file is refused at start with a message that names the field and the fix.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, learnerSpecOf, loadConfig, parseConfig } from '../src/cli/config.js';
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

const cases: [string, unknown, RegExp][] = [
  ['an unknown cell kind', { ...minimal, learner: { ...minimal.learner, cell: { kind: 'tanh-rn', hiddenSize: 64 } } }, /learner\.cell\.kind: .*tanh-rnn/],
  ['a negative size', { ...minimal, streams: { inputSize: -1, outputSize: 2 } }, /streams\.inputSize: .*>0/],
  ['a misspelt field', { ...minimal, streams: { inputSize: 96, outputSize: 2, maxStream: 3 } }, /streams: unknown field\(s\) 'maxStream'/],
  ['a port of the wrong type', { ...minimal, sources: { websocket: { port: '80' } } }, /sources\.websocket\.port: .*number/],
  ['an unknown holdout kind', { ...minimal, evaluation: { holdout: { kind: 'sometimes' } } }, /evaluation\.holdout\.kind/],
  ['a lambda of 1', { ...minimal, learner: { ...minimal.learner, credit: { rule: 'immediate', lambda: 1 } } }, /learner\.credit\.lambda/],
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
  assert.equal(loadConfig(good).learner.cell.kind, 'gru');
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'streams: [unclosed');
  assert.throws(() => loadConfig(broken), /not valid YAML/);
  assert.throws(() => loadConfig(join(dir, 'missing.yaml')), /cannot read the file/);
});
