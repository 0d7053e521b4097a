// The dashboard's HTTP side: the page, its scripts, the stream list and a server-sent event feed per stream.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { bearerTokenMatches, tokenMatches } from '../metrics/bearer-token.js';
import type { DashboardFeed } from './dashboard-feed.js';

/**
 * Where `npm run build` puts the page and uPlot (scripts/build.mjs copies src/dashboard/page and uplot's dist):
 * build/dashboard beside dist/ and src/, so the same path works from either.
 */
export const DASHBOARD_ASSETS = fileURLToPath(new URL('../../build/dashboard/', import.meta.url));

const ASSETS: Readonly<Record<string, string>> = {
  '/dashboard': 'index.html',
  '/dashboard/': 'index.html',
  '/dashboard/app.js': 'app.js',
  '/dashboard/style.css': 'style.css',
  '/dashboard/uPlot.iife.min.js': 'uPlot.iife.min.js',
  '/dashboard/uPlot.min.css': 'uPlot.min.css',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

export interface DashboardRoutesOptions {
  readonly feed: DashboardFeed;
  /** Bearer token the data endpoints require (the predictions path's), as header or `?token=`; none: open. */
  readonly token?: string;
  /** What the page shows of a stream's learner: its spec in words and its state bytes; undefined when unknown. */
  readonly describe?: (stream: string) => { readonly learner: string; readonly stateBytes: number } | undefined;
  /** Milliseconds between two batches to each page (default 250). */
  readonly flushMs?: number;
  /** Milliseconds between two heartbeats, which tell a page the feed is alive when nothing changes (default 2000). */
  readonly heartbeatMs?: number;
  /** Folder of the built page (default DASHBOARD_ASSETS). */
  readonly assetsDir?: string;
  /** Called for each data request refused for its token. */
  readonly onUnauthorized?: () => void;
}

export interface DashboardRoutes {
  /** Serves `path` if it is the dashboard's; false otherwise (the caller goes on with its own routes). */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
  /** Pages connected to the event feed. */
  readonly pages: number;
  /** Ends every event feed and stops the timers. */
  close(): void;
}

/**
 * Routes of the live dashboard, to mount on an HTTP server (the metrics server does):
 *
 *   GET /dashboard                   the page (static; it holds no data, so it loads without a token and can say
 *                                    what is wrong when the data endpoints refuse one)
 *   GET /dashboard/{app.js,style.css,uPlot.iife.min.js,uPlot.min.css}   its scripts, built into build/dashboard
 *   GET /dashboard/api/streams       JSON: the streams shown, with their learner and state bytes
 *   GET /dashboard/api/events?stream=S   server-sent events: 'snapshot' (everything kept of S), then 'batch'
 *                                    every flushMs with what is new, 'heartbeat' every heartbeatMs with the stream's
 *                                    latest event time; a stream not seen yet waits (the page says so)
 *
 * The data endpoints need the token when one is set (`Authorization: Bearer` or `?token=`, since a browser's
 * EventSource cannot set headers): 401 with a JSON error otherwise. An unknown stream in /api/events is not an
 * error: the stream may not have started; the snapshot says `known: false`.
 */
export function createDashboardRoutes(options: DashboardRoutesOptions): DashboardRoutes {
  const { feed, token, describe, onUnauthorized } = options;
  const flushMs = options.flushMs ?? 250;
  const heartbeatMs = options.heartbeatMs ?? 2000;
  const assetsDir = options.assetsDir ?? DASHBOARD_ASSETS;
  const cache = new Map<string, Buffer>();
  const pages = new Set<ServerResponse>();
  const heartbeats = new Set<() => void>();

  const flushTimer = setInterval(() => feed.flush(), flushMs);
  flushTimer.unref();
  const heartbeatTimer = setInterval(() => {
    for (const beat of heartbeats) beat();
  }, heartbeatMs);
  heartbeatTimer.unref();

  const asset = (name: string): Buffer | undefined => {
    let bytes = cache.get(name);
    if (bytes === undefined) {
      try {
        bytes = readFileSync(`${assetsDir}${name}`);
      } catch {
        return undefined;
      }
      cache.set(name, bytes);
    }
    return bytes;
  };

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(text);
  };

  const authorized = (req: IncomingMessage, url: URL): boolean => {
    if (token === undefined) return true;
    const query = url.searchParams.get('token');
    return bearerTokenMatches(req.headers.authorization, token) || (query !== null && tokenMatches(query, token));
  };

  const info = (stream: string) => {
    try {
      return describe?.(stream);
    } catch {
      return undefined;
    }
  };

  const events = (res: ServerResponse, url: URL) => {
    const stream = url.searchParams.get('stream');
    if (stream === null || stream === '') return json(res, 400, { error: 'missing ?stream=: pick one of /dashboard/api/streams' });
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    const snapshot = feed.snapshot(stream);
    send('snapshot', { known: snapshot !== undefined, info: info(stream) ?? null, view: snapshot ?? { stream, trace: [], error: [], markers: [], recoveries: [] } });
    const unsubscribe = feed.subscribe(stream, (view) => send('batch', view));
    const beat = () => {
      const summary = feed.list().find((s) => s.stream === stream);
      send('heartbeat', { now: Date.now(), known: summary !== undefined, lastT: summary?.lastT ?? null, scoredTicks: summary?.scoredTicks ?? 0, info: info(stream) ?? null });
    };
    heartbeats.add(beat);
    pages.add(res);
    const end = () => {
      unsubscribe();
      heartbeats.delete(beat);
      pages.delete(res);
    };
    // The response's close, not the request's: a request emits 'close' as soon as its (empty) body is read.
    res.on('close', end);
  };

  return {
    handle(req, res, path) {
      const file = ASSETS[path];
      const isApi = path === '/dashboard/api/streams' || path === '/dashboard/api/events';
      if (file === undefined && !isApi) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('method not allowed\n');
        return true;
      }
      if (file !== undefined) {
        const bytes = asset(file);
        if (bytes === undefined) {
          res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end(`dashboard asset ${file} missing from ${assetsDir}: run \`npm run build\`\n`);
          return true;
        }
        res.writeHead(200, { 'Content-Type': CONTENT_TYPES[file.split('.').pop() as string] ?? 'application/octet-stream', 'Content-Length': bytes.length, 'Cache-Control': 'no-cache' });
        res.end(req.method === 'HEAD' ? undefined : bytes);
        return true;
      }
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (!authorized(req, url)) {
        try {
          onUnauthorized?.();
        } catch {
          // Counting a refusal must never turn it into a 500.
        }
        json(res, 401, { error: 'unauthorized: the dashboard needs the token of the predictions path; open /dashboard?token=<token>' });
        return true;
      }
      if (path === '/dashboard/api/streams') {
        json(res, 200, { streams: feed.list().map((s) => ({ ...s, info: info(s.stream) ?? null })) });
        return true;
      }
      events(res, url);
      return true;
    },
    get pages() {
      return pages.size;
    },
    close() {
      clearInterval(flushTimer);
      clearInterval(heartbeatTimer);
      for (const res of pages) res.end();
      pages.clear();
      heartbeats.clear();
    },
  };
}
