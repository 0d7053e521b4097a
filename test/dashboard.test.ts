// The dashboard's server side without a browser: the feed keeps bounded, thinned views and batches them; the
// routes serve the page, the stream list and the event feed, refuse a wrong token, and close their feeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DashboardFeed, type StreamView } from '../src/dashboard/dashboard-feed.js';
import { createDashboardRoutes } from '../src/dashboard/dashboard-routes.js';
import type { PrequentialReport, ScoredTick } from '../src/streams/messages.js';

const scored = (stream: string, seq: number, t: number, heldOut = false, outputs = 2): ScoredTick => {
  const y = Float32Array.from({ length: outputs }, (_, i) => seq + i);
  return { kind: 'scored', stream, seq, t, y, yhat: y.map((v) => v / 2), yLast: y, yMean: y, delay: 0, heldOut, version: seq };
};
const report = (stream: string, seq: number, heldOut: boolean, mse: number): PrequentialReport => {
  const f = (m: number) => ({ mse: m, mseEwma: m, r2: [0] });
  return { kind: 'prequential', stream, seq, labelDelay: 0, heldOut, window: 10, count: 10, figures: { learner: f(mse), 'last-label': f(2 * mse), 'running-mean': f(3 * mse) }, skillVsLastLabel: 0, skillVsRunningMean: 0 };
};

test('the feed thins traces and errors by event time, keeps rings of fixed length and the first outputs only', () => {
  const feed = new DashboardFeed({ tracePoints: 100, errorPoints: 10, traceIntervalSeconds: 0.1, outputs: 1 });
  for (let i = 0; i < 10_000; i++) {
    feed.observe(scored('s', i, i * 0.001));
    if (i % 10 === 0) feed.observe(report('s', i, i % 20 === 0, 0.5));
  }
  const view = feed.snapshot('s')!;
  assert.equal(view.trace.length, 100, 'ring of 100');
  // One point per 0.1 s of event time: the last 100 of the 100 kept over 10 s, 0.1 s apart, oldest first.
  assert.ok(view.trace.every((p, i) => i === 0 || (p.t - view.trace[i - 1].t >= 0.1 - 1e-9 && p.t - view.trace[i - 1].t < 0.1 + 0.0011)), 'one point per 0.1 s');
  assert.deepEqual(view.trace[0].y.length, 1);
  assert.equal(view.error.length, 10);
  assert.ok(view.error.some((p) => p.heldOut) && view.error.some((p) => !p.heldOut), 'both tracks');
  assert.deepEqual(feed.list(), [{ stream: 's', outputs: 2, lastT: 9.999, scoredTicks: 10_000 }]);
  assert.equal(feed.snapshot('other'), undefined);
  assert.throws(() => new DashboardFeed({ tracePoints: 0 }), /tracePoints must be a number >= 1/);
});

test('subscribers get one batch per flush with what arrived since, nothing when nothing did, and nothing after unsubscribing', () => {
  const feed = new DashboardFeed({ traceIntervalSeconds: 0 });
  const batches: StreamView[] = [];
  const off = feed.subscribe('s', (v) => batches.push(v));
  feed.flush();
  assert.equal(batches.length, 0);
  // The stream appears after the subscription: its points still reach the subscriber.
  for (let i = 0; i < 5; i++) feed.observe(scored('s', i, i));
  feed.observe({ kind: 'drift', stream: 's', seq: 5, t: 5, source: 'session', session: 'b' } as never);
  feed.observe({ kind: 'recovery', stream: 's', seq: 5, source: 'session', heldOut: false, ePre: 1, eFrozen: 2, eAdapt: 1, recovery: 1, residual: 1, ticksToRecovery: 3, secondsToRecovery: 3 } as never);
  feed.observe(scored('other', 0, 0));
  feed.flush();
  assert.equal(batches.length, 1);
  assert.equal(batches[0].trace.length, 5);
  assert.deepEqual(batches[0].markers, [{ t: 5, seq: 5, source: 'session', session: 'b' }]);
  assert.equal(batches[0].recoveries[0].t, 5, "a recovery is placed at its marker's time");
  feed.flush();
  assert.equal(batches.length, 1, 'an empty flush sends nothing');
  off();
  feed.observe(scored('s', 6, 6));
  feed.flush();
  assert.equal(batches.length, 1);
  assert.equal(feed.snapshot('s')!.trace.length, 6, 'the rings go on without subscribers');
});

test('past maxStreams a new stream is not shown', () => {
  const feed = new DashboardFeed({ maxStreams: 2 });
  for (const s of ['a', 'b', 'c']) feed.observe(scored(s, 0, 0));
  assert.deepEqual(feed.list().map((s) => s.stream), ['a', 'b']);
});

test('the routes: page and scripts, the stream list, the event feed, a wrong token, a bad method, a clean close', async () => {
  const feed = new DashboardFeed({ traceIntervalSeconds: 0 });
  for (let i = 0; i < 3; i++) feed.observe(scored('s', i, i));
  const token = 'a-token-of-sixteen-chars';
  const routes = createDashboardRoutes({ feed, token, flushMs: 20, heartbeatMs: 50, describe: (s) => (s === 's' ? { learner: 'lstm n = 8', stateBytes: 99 } : undefined) });
  const server = createServer((req, res) => {
    if (!routes.handle(req, res, new URL(req.url ?? '/', 'http://x').pathname)) {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const page = await fetch(`${base}/dashboard`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /uPlot\.iife\.min\.js/);
    for (const asset of ['app.js', 'style.css', 'uPlot.iife.min.js', 'uPlot.min.css']) assert.equal((await fetch(`${base}/dashboard/${asset}`)).status, 200, asset);
    assert.equal((await fetch(`${base}/dashboard/other.js`)).status, 404);
    assert.equal((await fetch(`${base}/dashboard`, { method: 'POST' })).status, 405);

    const refused = await fetch(`${base}/dashboard/api/streams?token=wrong`);
    assert.equal(refused.status, 401);
    assert.match((await refused.json()).error, /open \/dashboard\?token=<token>/);
    const streams = await (await fetch(`${base}/dashboard/api/streams`, { headers: { authorization: `Bearer ${token}` } })).json();
    assert.deepEqual(streams, { streams: [{ stream: 's', outputs: 2, lastT: 2, scoredTicks: 3, info: { learner: 'lstm n = 8', stateBytes: 99 } }] });
    assert.equal((await fetch(`${base}/dashboard/api/events?token=${token}`)).status, 400, 'no stream named');

    // The event feed: a snapshot, then a batch of what arrives, then heartbeats; an unknown stream waits.
    const events = await fetch(`${base}/dashboard/api/events?stream=s&token=${token}`);
    assert.match(events.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = events.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const seen = () => [...text.matchAll(/event: (\w+)\ndata: (.*)\n\n/g)].map((m) => ({ event: m[1], data: JSON.parse(m[2]) }));
    const read = async (until: (e: ReturnType<typeof seen>) => boolean) => {
      while (!until(seen())) text += decoder.decode((await reader.read()).value);
    };
    await read((e) => e.length >= 1);
    assert.equal(seen()[0].event, 'snapshot');
    assert.equal(seen()[0].data.known, true);
    assert.equal(seen()[0].data.view.trace.length, 3);
    assert.equal(routes.pages, 1);
    feed.observe(scored('s', 3, 3));
    await read((e) => e.some((x) => x.event === 'batch') && e.some((x) => x.event === 'heartbeat'));
    assert.equal(seen().find((x) => x.event === 'batch')!.data.trace.length, 1);
    assert.equal(seen().find((x) => x.event === 'heartbeat')!.data.lastT, 3);
    routes.close();
    await reader.read().then(async function drain(r): Promise<void> {
      if (!r.done) return reader.read().then(drain);
    });
    assert.equal(routes.pages, 0, 'close() ended the feed');
  } finally {
    routes.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
