// `driftline demo --bci` (npm start): the motor-cortex simulator through examples/bci-decoder/jango.yaml's decoder
// and calibrated detectors, the session change unannounced: the detector on the inputs finds it, the dashboard
// and /metrics are served while it runs, and the stream of the same seed gives the same detections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bciDemoCommand, type BciDemoSummary } from '../src/cli/demo-bci.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

async function run(args: string[]): Promise<{ out: string; err: string; summary: BciDemoSummary | undefined; scraped: string }> {
  let out = '';
  let err = '';
  let scraped = '';
  const io = {
    stdout: { write: (c: string) => ((out += c), true) },
    stderr: { write: (c: string) => ((err += c), true), isTTY: false },
  };
  let finished = false;
  const done = bciDemoCommand(args, io).finally(() => (finished = true));
  // Scrape /metrics once while the demo runs (the server closes when it ends).
  const scrape = (async () => {
    while (!finished && !/metrics: (\S+)/.test(out)) await new Promise((r) => setTimeout(r, 5));
    const url = /metrics: (\S+)/.exec(out)?.[1];
    if (url !== undefined && !finished) scraped = await (await fetch(url)).text();
  })();
  const summary = await done;
  await scrape.catch(() => undefined);
  return { out, err, summary, scraped };
}

test('the unannounced session change is found on the inputs within 60 bins, with no more than one false alarm in session 1', { timeout: 120_000 }, async () => {
  const { out, summary, scraped } = await run(['--bci', '--rate', '0', '--quiet', '--ticks', '26000']);
  assert.match(out, /not announced: the detectors must find it/);
  assert.match(out, /dashboard: http:\/\/127\.0\.0\.1:\d+\/dashboard\?stream=bci/);
  assert.match(scraped, /driftline_events_total|driftline_ticks_total|driftline_prequential_error/);
  assert.equal(summary!.ticks, 26_000);
  assert.ok(summary!.drifts.every((d) => d.source === 'input-calibrated-page-hinkley' || d.source === 'calibrated-page-hinkley'), JSON.stringify(summary!.drifts));
  const before = summary!.drifts.filter((d) => d.seq < 24_000);
  const first = summary!.drifts.find((d) => d.seq >= 24_000);
  assert.ok(before.length <= 1, `false alarms in session 1: ${JSON.stringify(before)}`);
  assert.ok(first !== undefined && first.seq - 24_000 <= 60, `the change at bin 24000 found at ${first?.seq}`);
  assert.ok(!summary!.drifts.some((d) => d.source === 'session'), 'nothing announced');
});

test('--declare-sessions announces the change; --help; bad arguments say what is wrong', async () => {
  const declared = await run(['--bci', '--rate', '0', '--quiet', '--ticks', '24010', '--declare-sessions', '--no-dashboard']);
  assert.ok(declared.summary!.drifts.some((d) => d.source === 'session' && d.seq === 24_000), JSON.stringify(declared.summary!.drifts));
  assert.doesNotMatch(declared.out, /dashboard:/);
  const help = await run(['--bci', '--help']);
  assert.match(help.out, /usage: driftline demo --bci/);
  const quiet = { stdout: { write: () => true }, stderr: { write: () => true } };
  await assert.rejects(bciDemoCommand(['--bci', '--rate=-1'], quiet), /--rate must be a number >= 0, got '-1'/);
  await assert.rejects(bciDemoCommand(['--bci', '--ticks', '1.5'], quiet), /--ticks must be a positive integer, got '1.5'/);
  await assert.rejects(bciDemoCommand(['--bci', '--frobnicate'], quiet), /Unknown option '--frobnicate'[\s\S]*usage: driftline demo --bci/);
});

test('npm start is the BCI demo (through the built CLI)', () => {
  const r = spawnSync('npm', ['start', '--silent', '--', '--help'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /usage: driftline demo --bci/);
});
