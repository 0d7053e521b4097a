// examples/bci-decoder/jango.yaml is the decoder `driftline reproduce bci` measures: replayed in-process with a
// protocol, it scores on the real Jango sessions exactly what the reproduction reports for the same seed. So the
// figures of the example's README come from the config a user runs, with its documented values.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { loadJangoSession } from '../src/adapters/replay/jango.js';
import { learnerSpecOf, loadConfig } from '../src/cli/config.js';
import { replayCommand } from '../src/cli/replay.js';
import { protocolsFor } from '../src/reproduce/bci-protocols.js';
import { HELD_OUT, r2Of, runStream } from '../src/reproduce/bci-run.js';
import { jangoDataDir } from './support/jango-data.js';

const DATA = jangoDataDir();
const DAY0 = join(DATA, 'Day0.mat');
const DAY16 = join(DATA, 'Day16.mat');
const noData = existsSync(DAY0) && existsSync(DAY16) ? false : `Jango data missing: ${DAY0} and ${DAY16} not found (CI has them)`;
const CONFIG = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'bci-decoder', 'jango.yaml');

describe('examples/bci-decoder/jango.yaml on the real sessions', { skip: noData }, () => {
  test('driftline replay --protocol A1 with the config scores what the reproduction measures for its seed', async () => {
    let text = '';
    const code = await replayCommand(['--config', CONFIG, '--protocol', 'A1', '--quiet', DAY0, DAY16], {
      stdout: { write: (c: string) => (text += c) },
      stderr: { write: () => true, isTTY: false } as never,
    });
    assert.equal(code, 0);
    const line = text.split('\n').find((l) => /^Jango_20160711\S* +whole +held-out /.test(l));
    assert.ok(line, text);
    const replayR2 = Number(line.trim().split(/ +/)[5]);

    const config = loadConfig(CONFIG);
    const [d0, d16] = [await loadJangoSession(DAY0, { emg: false }), await loadJangoSession(DAY16, { emg: false })];
    const a1 = protocolsFor(d16.nBins, d16.binSeconds, 20, d0.nBins, 1200).find((p) => p.name === 'A1')!;
    const run = await runStream([d0, d16], learnerSpecOf(config), {
      holdout: a1.holdout, labelDelayTicks: 0, collectFrom: d0.nBins, recoveryTicks: 0, targetScaling: { kind: 'standardize' },
      maxDelay: config.learner.maxLabelDelay, normalizeDecay: 0.9995,
    });
    const reproduced = r2Of(run, 'yhat', 0, run.ticks, (i) => run.status[i] === HELD_OUT)!;
    console.log(`A1 on Day16 with ${CONFIG}: replay ${replayR2}, reproduction ${reproduced.toFixed(4)}`);
    assert.ok(Math.abs(replayR2 - reproduced) < 1e-3, `replay ${replayR2} vs reproduction ${reproduced}`);
    // The example decodes: well above the recalibration baseline (a 10-bin ridge refit on the minute, 0.72).
    assert.ok(reproduced > 0.8, `A1 R2 ${reproduced}`);
  });
});
