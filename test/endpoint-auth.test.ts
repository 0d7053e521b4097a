// Every endpoint guarded (DESIGN section 7): the auth matrix of the metrics endpoint (/metrics, /healthz, /readyz)
// and the WebSocket paths (ingest, predictions) x {no token, wrong token, right token}, for a loopback bind without
// a token (all open) and a bind on every interface (0.0.0.0) with one. Real sockets; the tests only ever connect to
// 127.0.0.1, whatever the bind. A non-loopback bind without a token must refuse to start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { WebSocket } from 'ws';
import { startWebSocketServer, type DriftlineWebSocketServer } from '../src/adapters/websocket/server.js';
import type { StreamShape } from '../src/adapters/websocket/frames.js';
import { bearerTokenMatches, bearerTokenOf, tokenMatches } from '../src/metrics/bearer-token.js';
import { DriftlineMetrics } from '../src/metrics/driftline-metrics.js';
import { isLoopbackHost } from '../src/metrics/loopback.js';
import { createMetricsRegistry } from '../src/metrics/registry.js';
import { startMetricsServer, type MetricsServer } from '../src/metrics/server.js';
import { parseConfig } from '../src/cli/config.js';
import { createLogger } from '../src/cli/logger.js';
import { startDriftline } from '../src/cli/run.js';

const TOKEN = 'correct-horse-battery-staple';
const WRONG = 'correct-horse-battery-stapler';

type Credential = 'none' | 'wrong' | 'right';
const CREDENTIALS: readonly Credential[] = ['none', 'wrong', 'right'];

function authHeader(credential: Credential): Record<string, string> {
  if (credential === 'none') return {};
  return { authorization: `Bearer ${credential === 'right' ? TOKEN : WRONG}` };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request to 127.0.0.1:port, whatever interface the server is bound to. */
function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The HTTP status of a WebSocket upgrade to 127.0.0.1:port: 101 when accepted, else the refusal's status. */
function upgrade(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
}

async function withMetricsServer(
  options: Omit<Parameters<typeof startMetricsServer>[0], 'registry'>,
  body: (server: MetricsServer, refused: () => number) => Promise<void>,
): Promise<void> {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const metrics = new DriftlineMetrics(registry);
  metrics.recordEvent('s1', 'websocket');
  let refused = 0;
  const server = await startMetricsServer({ registry, ...options, onUnauthorized: () => refused++ });
  try {
    await body(server, () => refused);
  } finally {
    await server.close();
  }
}

/** The probes answer everyone, and say nothing beyond their one word. */
async function assertProbesOpen(port: number): Promise<void> {
  for (const credential of CREDENTIALS) {
    const health = await get(port, '/healthz', authHeader(credential));
    assert.equal(health.status, 200, `/healthz with ${credential} token`);
    assert.equal(health.body, 'ok\n');
    const ready = await get(port, '/readyz', authHeader(credential));
    assert.equal(ready.status, 200, `/readyz with ${credential} token`);
    assert.equal(ready.body, 'ready\n');
  }
}

// ---- the metrics endpoint --------------------------------------------------------------------------------------

test('metrics, loopback bind without a token: every endpoint open, whatever the client sends', async () => {
  await withMetricsServer({ host: '127.0.0.1' }, async (server, refused) => {
    for (const credential of CREDENTIALS) {
      const res = await get(server.port, '/metrics', authHeader(credential));
      assert.equal(res.status, 200, `/metrics with ${credential} token`);
      assert.match(res.body, /^driftline_events_total\{stream="s1",source="websocket"\} 1$/m);
    }
    await assertProbesOpen(server.port);
    assert.equal(refused(), 0);
  });
});

test('metrics, bound to 0.0.0.0 with a token: /metrics 401, 401, 200; the probes stay open with minimal bodies', async () => {
  let ready = true;
  await withMetricsServer({ host: '0.0.0.0', token: TOKEN, ready: () => ready }, async (server, refused) => {
    const expected: Record<Credential, number> = { none: 401, wrong: 401, right: 200 };
    for (const credential of CREDENTIALS) {
      const res = await get(server.port, '/metrics', authHeader(credential));
      assert.equal(res.status, expected[credential], `/metrics with ${credential} token`);
      if (res.status === 401) {
        assert.match(String(res.headers['www-authenticate']), /^Bearer\b/);
        assert.equal(res.body.split('\n').filter(Boolean).length, 1, 'a one-line body');
        assert.match(res.body, /Authorization: Bearer/);
        assert.doesNotMatch(res.body, /driftline_|s1/, 'nothing of the exposition leaks');
      } else {
        assert.match(res.body, /^driftline_events_total\{stream="s1",source="websocket"\} 1$/m);
      }
    }
    assert.equal(refused(), 2, 'each refused request is reported once');

    // Other ways of presenting a token do not count: the query (it ends up in access logs), another scheme, HEAD.
    const viaQuery = await get(server.port, `/metrics?token=${TOKEN}`);
    assert.equal(viaQuery.status, 401);
    const basic = await get(server.port, '/metrics', { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` });
    assert.equal(basic.status, 401);
    const head = await get(server.port, '/metrics', {}, 'HEAD');
    assert.equal(head.status, 401);
    const lowerScheme = await get(server.port, '/metrics', { authorization: `bearer ${TOKEN}` });
    assert.equal(lowerScheme.status, 200, 'the scheme is case-insensitive (RFC 7235)');
    assert.equal(refused(), 5);

    await assertProbesOpen(server.port);
    ready = false;
    const notReady = await get(server.port, '/readyz');
    assert.equal(notReady.status, 503);
    assert.equal(notReady.body, 'not ready\n');
    assert.equal(refused(), 5, 'probes are never counted as refusals');
  });
});

test('metrics, loopback bind with a token: the token is enforced there too', async () => {
  await withMetricsServer({ token: TOKEN }, async (server) => {
    assert.equal((await get(server.port, '/metrics')).status, 401);
    assert.equal((await get(server.port, '/metrics', authHeader('right'))).status, 200);
    assert.equal((await get(server.port, '/healthz')).status, 200);
  });
});

test('metrics, non-loopback bind without a token: refused at start with one line naming host, token and fix', async () => {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  for (const host of ['0.0.0.0', '::']) {
    await assert.rejects(startMetricsServer({ registry, host, port: 0 }), (err: Error) => {
      assert.ok(err.message.includes(host), err.message);
      assert.match(err.message, /metrics\.token/);
      assert.match(err.message, /127\.0\.0\.1/);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
  }
  await assert.rejects(startMetricsServer({ registry, host: '0.0.0.0', token: '' }), /metrics\.token is empty/);
  // An explicit undefined (config.metrics.token ?? ws token, both absent) means no token.
  await assert.rejects(startMetricsServer({ registry, host: '0.0.0.0', token: undefined }), /without a token/);
});

// ---- the WebSocket paths ---------------------------------------------------------------------------------------

const shape: StreamShape = { inputSize: 3, outputSize: 1 };

async function withWsServer(
  options: { host: string; token?: string },
  body: (server: DriftlineWebSocketServer) => Promise<void>,
): Promise<void> {
  const server = await startWebSocketServer({ ...options, port: 0, shapes: () => shape });
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

const WS_PATHS = ['/ingest', '/predictions'] as const;

test('ws, loopback bind without a token: ingest and predictions accept every client', async () => {
  await withWsServer({ host: '127.0.0.1' }, async (server) => {
    const port = server.address.port;
    for (const path of WS_PATHS) {
      for (const credential of CREDENTIALS) {
        assert.equal(await upgrade(port, path, authHeader(credential)), 101, `${path} with ${credential} token (header)`);
        if (credential !== 'none') {
          const token = credential === 'right' ? TOKEN : WRONG;
          assert.equal(await upgrade(port, `${path}?token=${token}`), 101, `${path} with ${credential} token (query)`);
        }
      }
    }
    assert.equal(server.stats.rejected.unauthorized, 0);
  });
});

test('ws, bound to 0.0.0.0 with a token: upgrades refused with 401 without or with a wrong token, by header or query', async () => {
  await withWsServer({ host: '0.0.0.0', token: TOKEN }, async (server) => {
    const port = server.address.port;
    let refusals = 0;
    for (const path of WS_PATHS) {
      assert.equal(await upgrade(port, path), 401, `${path} without a token`);
      assert.equal(await upgrade(port, path, authHeader('wrong')), 401, `${path} with a wrong token (header)`);
      assert.equal(await upgrade(port, `${path}?token=${WRONG}`), 401, `${path} with a wrong token (query)`);
      refusals += 3;
      assert.equal(await upgrade(port, path, authHeader('right')), 101, `${path} with the token (header)`);
      assert.equal(await upgrade(port, `${path}?token=${encodeURIComponent(TOKEN)}`), 101, `${path} with the token (query)`);
    }
    assert.equal(server.stats.rejected.unauthorized, refusals, 'every refused upgrade is counted');
  });
});

test('ws, non-loopback bind without a token: refused at start', async () => {
  await assert.rejects(startWebSocketServer({ host: '0.0.0.0', port: 0, shapes: () => shape }), (err: Error) => {
    assert.match(err.message, /0\.0\.0\.0/);
    assert.match(err.message, /without a token/);
    assert.match(err.message, /127\.0\.0\.1/);
    return true;
  });
});

// ---- one token for every endpoint of driftline run ----------------------------------------------------------------

test('driftline run: sources.websocket.token guards /metrics too, and refused scrapes are counted as unauthorized', async () => {
  const config = parseConfig({
    streams: { inputSize: 3, outputSize: 1, maxStreams: 4 },
    learner: { cell: { kind: 'tanh-rnn', hiddenSize: 4 }, credit: { rule: 'immediate' }, optimizer: { name: 'sgd', lr: 0.01 } },
    sources: { websocket: { host: '127.0.0.1', port: 0, token: TOKEN } },
    drift: { detectors: [] },
    metrics: { port: 0 },
    log: { level: 'silent' },
  });
  const service = await startDriftline(config, { logger: createLogger({ level: 'silent' }) });
  try {
    const port = Number(new URL(service.metricsUrl).port);
    assert.equal((await get(port, '/metrics')).status, 401);
    assert.equal((await get(port, '/metrics', authHeader('wrong'))).status, 401);
    const ok = await get(port, '/metrics', authHeader('right'));
    assert.equal(ok.status, 200);
    assert.match(ok.body, /^driftline_events_rejected_total\{reason="unauthorized"\} 2$/m);
    assert.equal((await get(port, '/healthz')).status, 200);
    assert.equal(await upgrade(Number(new URL(service.ingestUrl).port), '/ingest'), 401);
    assert.equal(await upgrade(Number(new URL(service.ingestUrl).port), '/ingest', authHeader('right')), 101);
    // The dashboard follows the predictions path: its page loads (it holds no data and explains a refusal), its data
    // needs the token, as a header or as ?token= (a browser's EventSource cannot set headers).
    assert.equal(service.dashboardUrl, `${new URL(service.metricsUrl).origin}/dashboard`);
    assert.equal((await get(port, '/dashboard')).status, 200);
    const refused = await get(port, '/dashboard/api/streams');
    assert.equal(refused.status, 401);
    assert.match(refused.body, /needs the token of the predictions path/);
    assert.equal((await get(port, '/dashboard/api/streams?token=wrong-token-of-some-length')).status, 401);
    assert.equal((await get(port, `/dashboard/api/streams?token=${TOKEN}`)).status, 200);
    assert.equal((await get(port, '/dashboard/api/streams', authHeader('right'))).status, 200);
  } finally {
    await service.stop();
  }
});

test('metrics.token, when given, is the one /metrics takes; a short one is refused by the config', async () => {
  const base = {
    streams: { inputSize: 3, outputSize: 1 },
    learner: { cell: { kind: 'tanh-rnn', hiddenSize: 4 }, credit: { rule: 'immediate' }, optimizer: { name: 'sgd', lr: 0.01 } },
    sources: { websocket: { host: '127.0.0.1', port: 0, token: WRONG } },
    drift: { detectors: [] },
    log: { level: 'silent' },
  };
  assert.throws(() => parseConfig({ ...base, metrics: { port: 0, token: 'short' } }), /metrics\.token: a bearer token needs at least 16 characters/);
  assert.throws(
    () => parseConfig({ ...base, sources: { websocket: { maxPayloadBytes: 32 * 1024 * 1024 } } }),
    /sources\.websocket\.maxPayloadBytes: maxPayloadBytes is at most 16777216 \(16 MiB\)/,
  );
  assert.equal(parseConfig({ ...base, sources: { websocket: { maxPayloadBytes: 16 * 1024 * 1024 } } }).sources.websocket?.maxPayloadBytes, 16 * 1024 * 1024);
  const service = await startDriftline(parseConfig({ ...base, metrics: { port: 0, token: TOKEN } }), { logger: createLogger({ level: 'silent' }) });
  try {
    const port = Number(new URL(service.metricsUrl).port);
    assert.equal((await get(port, '/metrics', { authorization: `Bearer ${WRONG}` })).status, 401, 'the ws token does not open /metrics then');
    assert.equal((await get(port, '/metrics', authHeader('right'))).status, 200);
  } finally {
    await service.stop();
  }
});

// ---- the shared helpers ----------------------------------------------------------------------------------------

test('bearer token helpers and isLoopbackHost', () => {
  assert.equal(bearerTokenOf(`Bearer ${TOKEN}`), TOKEN);
  assert.equal(bearerTokenOf(`bearer   ${TOKEN}  `), TOKEN);
  assert.equal(bearerTokenOf('Bearer '), undefined);
  assert.equal(bearerTokenOf(`Basic ${TOKEN}`), undefined);
  assert.equal(bearerTokenOf(undefined), undefined);
  assert.ok(bearerTokenMatches(`Bearer ${TOKEN}`, TOKEN));
  assert.ok(!bearerTokenMatches(`Bearer ${WRONG}`, TOKEN));
  assert.ok(!bearerTokenMatches(`Bearer ${TOKEN.slice(0, -1)}`, TOKEN), 'a prefix is not the token');
  assert.ok(!bearerTokenMatches(undefined, TOKEN));
  assert.ok(tokenMatches(TOKEN, TOKEN));
  assert.ok(!tokenMatches(undefined, TOKEN));
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.org', '128.0.0.1']) assert.ok(!isLoopbackHost(host), host);
});
