/**
 * The metrics endpoint: a plain node:http server exposing an injected Registry.
 *
 *   GET /metrics  the registry in Prometheus text format (Content-Type: registry.contentType)
 *   GET /healthz  200 'ok' while the process serves requests (liveness)
 *   GET /readyz   200 'ready' when ready() is true, else 503 'not ready' (readiness)
 *   anything else 404; a method other than GET (or HEAD) on a known path: 405 with an Allow header
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServerOptions {
  readonly registry: Registry;
  /** Interface to listen on; default loopback only. */
  readonly host?: string;
  /** Port; 0 (the default) lets the kernel choose a free one. */
  readonly port?: number;
  /** Readiness for /readyz; default always ready. */
  readonly ready?: () => boolean;
}

export interface MetricsServer {
  /** Base URL, e.g. http://127.0.0.1:38211 (append /metrics). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const PATHS = new Set(['/metrics', '/healthz', '/readyz']);

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { registry, host = '127.0.0.1', port = 0, ready = () => true } = options;

  const send = (res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (!PATHS.has(path)) return send(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    switch (path) {
      case '/metrics':
        return send(res, 200, await registry.metrics(), registry.contentType);
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
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
