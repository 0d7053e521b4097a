/**
 * The metrics endpoint: a plain node:http server exposing an injected Registry.
 *
 *   GET /metrics  the registry in Prometheus text format (Content-Type: registry.contentType); with `token` set
 *                 it needs `Authorization: Bearer <token>` (401 with `WWW-Authenticate: Bearer` otherwise)
 *   GET /healthz  200 'ok' while the process serves requests (liveness)
 *   GET /readyz   200 'ready' when ready() is true, else 503 'not ready' (readiness)
 *   anything else 404; a method other than GET (or HEAD) on a known path: 405 with an Allow header
 *
 * The probes stay open (orchestrators probe without credentials), so their bodies say nothing beyond the three
 * words above. Off loopback the server refuses to start without a token: the exposition names every stream.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { bearerTokenMatches } from './bearer-token.js';
import { isLoopbackHost } from './loopback.js';

export interface MetricsServerOptions {
  readonly registry: Registry;
  /** Interface to listen on; default loopback only. */
  readonly host?: string;
  /** Port; 0 (the default) lets the kernel choose a free one. */
  readonly port?: number;
  /** Readiness for /readyz; default always ready. */
  readonly ready?: () => boolean;
  /**
   * Bearer token GET /metrics requires. Optional on a loopback host; required on any other (start-up throws
   * without one). `undefined` is accepted so a caller can pass `config.metrics.token ?? otherToken` as is.
   */
  readonly token?: string | undefined;
  /** Called once per /metrics request refused for a missing or wrong token (e.g. to count it). */
  readonly onUnauthorized?: () => void;
  /**
   * More routes on the same port (the dashboard's): called for a path that is not one of the above; true when it
   * answered, false to let the server answer 404. It does its own authorization.
   */
  readonly routes?: (req: IncomingMessage, res: ServerResponse, path: string) => boolean;
  /** The text GET /metrics serves, when it is not the registry's alone (shards merged at scrape); default registry.metrics(). */
  readonly metricsText?: () => Promise<string>;
  /** Called first on close(), before the server stops (e.g. to end long-lived responses it cannot close itself). */
  readonly onClose?: () => void;
}

export interface MetricsServer {
  /** Base URL, e.g. http://127.0.0.1:38211 (append /metrics). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const PATHS = new Set(['/metrics', '/healthz', '/readyz']);

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { registry, host = '127.0.0.1', port = 0, ready = () => true, token, onUnauthorized, routes, onClose } = options;
  const metricsText = options.metricsText ?? (() => registry.metrics());
  if (token !== undefined && token.length === 0) {
    throw new Error('driftline metrics: metrics.token is empty; give a token of at least 16 characters or leave it out on a loopback host');
  }
  if (token === undefined && !isLoopbackHost(host)) {
    throw new Error(
      `driftline metrics: refusing to serve /metrics on ${host} without a token; set metrics.token (or sources.websocket.token; scrapers send "Authorization: Bearer <token>") or bind metrics.host to 127.0.0.1`,
    );
  }

  const send = (res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (!PATHS.has(path)) {
      if (routes?.(req, res, path) === true) return;
      return send(res, 404, 'not found\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    switch (path) {
      case '/metrics':
        if (token !== undefined && !bearerTokenMatches(req.headers.authorization, token)) {
          try {
            onUnauthorized?.();
          } catch {
            // Counting a refusal must never turn it into a 500.
          }
          res.setHeader('WWW-Authenticate', 'Bearer realm="driftline"');
          return send(res, 401, 'unauthorized: GET /metrics needs "Authorization: Bearer <token>" (metrics.token)\n');
        }
        return send(res, 200, await metricsText(), registry.contentType);
      case '/healthz':
        return send(res, 200, 'ok\n');
      default: {
        let isReady = false;
        try {
          isReady = ready();
        } catch {
          isReady = false;
        }
        return isReady ? send(res, 200, 'ready\n') : send(res, 503, 'not ready\n');
      }
    }
  };

  const server = createServer((req, res) => {
    // Drain any request body so keep-alive connections stay usable.
    req.resume();
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      send(res, 500, `metrics collection failed: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });

  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve, reject) => {
        onClose?.();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
