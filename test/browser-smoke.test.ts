// The browser foundation under the dashboard test: Debian's chromium, driven by playwright-core
// (test/support/browser.ts), loads a page from a loopback server, the page fetches data from the same server and
// draws it into a canvas, and the test reads back what arrived, the canvas pixels and the page's JS heap. When
// chromium cannot be had the test is skipped with the reason printed; CI (DRIFTLINE_REQUIRE_ALL_PARTS=1) treats
// that skip as a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { browserSkipReason, canvasPaintedPixels, chromiumPath, jsHeapUsage, launchChromium } from './support/browser.js';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>loading</title></head>
<body>
<canvas id="plot" width="200" height="100"></canvas>
<script>
(async () => {
  const res = await fetch('/data');
  const { token, points } = await res.json();
  const canvas = document.getElementById('plot');
  const ctx = canvas.getContext('2d');
  ctx.strokeStyle = '#d62728';
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((y, i) => {
    const px = (i / (points.length - 1)) * (canvas.width - 1);
    const py = (1 - y) * (canvas.height - 1);
    if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
  });
  ctx.stroke();
  document.body.dataset.points = String(points.length);
  document.title = token;
})().catch((err) => { document.title = 'error: ' + err; });
</script>
</body></html>`;

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

const reason = browserSkipReason();
if (reason) console.log(`[browser-smoke] skipped: ${reason}`);

test('chromium loads a page that fetches from its server and draws into a canvas', { skip: reason, timeout: 120_000 }, async (t) => {
  const token = `driftline-${randomBytes(6).toString('hex')}`;
  const points = Array.from({ length: 50 }, (_, i) => 0.5 + 0.4 * Math.sin(i / 5));
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (req.url === '/data') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, points }));
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await listen(server);
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const t0 = Date.now();
  const browser = await launchChromium();
  t.after(() => browser.close());
  t.diagnostic(`${chromiumPath()} (${browser.version()}) launched in ${Date.now() - t0} ms`);

  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });

  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForFunction(() => document.body.dataset.points !== undefined, undefined, { timeout: 30_000 });
  assert.equal(await page.title(), token, 'the page shows the token it fetched');
  assert.equal(await page.evaluate(() => document.body.dataset.points), String(points.length));
  assert.deepEqual(requests, ['GET /', 'GET /data']);

  const { painted, width, height } = await canvasPaintedPixels(page, '#plot');
  assert.equal(width * height, 200 * 100);
  // A 2-px line across 200 px paints a few hundred pixels; a blank canvas none, a filled one all.
  assert.ok(painted > 200 && painted < (width * height) / 2, `painted pixels: ${painted} of ${width * height}`);

  const heap = await jsHeapUsage(page);
  assert.ok(Number.isFinite(heap.usedSize) && heap.usedSize > 0, `CDP usedSize ${heap.usedSize}`);
  assert.ok(Number.isFinite(heap.totalSize) && heap.totalSize >= heap.usedSize, `CDP totalSize ${heap.totalSize}`);
  // Chromium's non-standard performance.memory (coarse unless --enable-precise-memory-info).
  const memory = await page.evaluate(() => {
    const m = (performance as unknown as { memory?: { usedJSHeapSize: number; totalJSHeapSize: number } }).memory;
    return m ? { used: m.usedJSHeapSize, total: m.totalJSHeapSize } : undefined;
  });
  assert.ok(memory, 'performance.memory is there');
  assert.ok(Number.isFinite(memory.used) && memory.used > 0, `performance.memory.usedJSHeapSize ${memory.used}`);
  t.diagnostic(`canvas: ${painted} painted pixels; heap: CDP used ${heap.usedSize} of ${heap.totalSize} B, performance.memory used ${memory.used} B`);

  assert.deepEqual(pageErrors, []);
});
