// `npm run bench -- dashboard`: what the live dashboard costs the service. The demo runs as fast as it can
// (--rate 0), metrics served in every case, without the dashboard, with it but no page, and with a page's event feed connected (an HTTP client
// that reads the server-sent events and discards them, so only the server's side is measured), interleaved and
// repeated; events per second of each beside the first. Target (issue 17): under 5 % of the events per second.
import { request } from 'node:http';
import { demoCommand, type DemoSummary } from '../src/cli/demo.js';
import { printTable, type BenchOptions, type TargetResult } from './common.js';

type Mode = 'no dashboard' | 'dashboard, no page' | 'dashboard, one page';
const MODES: readonly Mode[] = ['no dashboard', 'dashboard, no page', 'dashboard, one page'];

/** Connects to the page's event feed once the demo prints its dashboard URL; resolves with the bytes read at close. */
function attachPage(out: { text: string }): { done: () => Promise<number> } {
  let bytes = 0;
  let closed: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    const m = /dashboard: (\S+)/.exec(out.text);
    if (m === null) return;
    clearInterval(timer);
    const url = new URL(m[1]);
    const events = new URL(`/dashboard/api/events${url.search}`, url);
    closed = new Promise<void>((resolve) => {
      const req = request(events, (res) => {
        res.on('data', (chunk: Buffer) => (bytes += chunk.length));
        res.on('close', resolve);
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
  }, 5);
  return {
    done: async () => {
      clearInterval(timer);
      await closed;
      return bytes;
    },
  };
}

async function once(mode: Mode, ticks: number): Promise<{ eventsPerSecond: number; bytes: number }> {
  const out = { text: '' };
  const io = { stdout: { write: (c: string) => ((out.text += c), true) }, stderr: { write: () => true, isTTY: false } };
  // Metrics on in every mode (the dashboard shares their server): the difference is the dashboard's alone.
  const args = ['--ticks', String(ticks), '--rate', '0', '--quiet', '--metrics-port', '0', ...(mode === 'no dashboard' ? ['--no-dashboard'] : [])];
  const page = mode === 'dashboard, one page' ? attachPage(out) : undefined;
  const summary = (await demoCommand(args, io)) as DemoSummary;
  const bytes = (await page?.done()) ?? 0;
  return { eventsPerSecond: summary.ticks / summary.seconds, bytes };
}

export async function runDashboard(options: BenchOptions): Promise<TargetResult[]> {
  const ticks = options.quick ? 20_000 : 120_000;
  const rounds = options.quick ? 1 : 5;
  const results = new Map<Mode, { eventsPerSecond: number[]; bytes: number[] }>(MODES.map((m) => [m, { eventsPerSecond: [], bytes: [] }]));
  await once('no dashboard', 5000); // warm the JIT and the kernels before anything is measured
  for (let r = 0; r < rounds; r++) {
    for (const mode of MODES) {
      const { eventsPerSecond, bytes } = await once(mode, ticks);
      results.get(mode)!.eventsPerSecond.push(eventsPerSecond);
      results.get(mode)!.bytes.push(bytes);
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const base = median(results.get('no dashboard')!.eventsPerSecond);
  const rows = MODES.map((mode) => {
    const r = results.get(mode)!;
    const eps = median(r.eventsPerSecond);
    return [mode, eps.toFixed(0), (eps / base).toFixed(3), r.eventsPerSecond.map((v) => v.toFixed(0)).join(' '), mode === 'dashboard, one page' ? `${(median(r.bytes) / 1024).toFixed(0)} KiB` : '-'];
  });
  printTable(
    `dashboard: driftline demo --rate 0, ${ticks} ticks per run, ${rounds} interleaved round(s)`,
    ['mode', 'events/s (median)', 'ratio', 'per round', 'sent to the page'],
    rows,
    ['A page is an HTTP client reading the server-sent events and discarding them: the server\'s cost only (drawing happens in the browser).'],
  );
  const withPage = median(results.get('dashboard, one page')!.eventsPerSecond) / base;
  return [{ section: 'dashboard', target: 'a page costs under 5 % of events/s', measured: `${((1 - withPage) * 100).toFixed(1)} %`, pass: withPage >= 0.95 }];
}
