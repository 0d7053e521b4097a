/**
 * The WebSocket edge (DESIGN section 7): producers send frames to `ingestPath`, subscribers on `predictionsPath`
 * receive predictions and metrics updates.
 *
 * - Auth: with `token` set, every upgrade needs `Authorization: Bearer <token>` or `?token=<token>` (HTTP 401 and
 *   a counted 'unauthorized' rejection otherwise). Without a token the server only starts on a loopback host.
 * - Size: `maxPayload` is the ws-level hard limit: a bigger message makes ws close that connection with 1009;
 *   it is counted as 'oversized' and logged, and other peers are unaffected. `maxFrameBytes` (default
 *   maxPayload / 4) is the application limit: a frame above it but within maxPayload gets an 'oversized' error
 *   reply and the connection stays open.
 * - Heartbeat: every `heartbeatMs` each peer is pinged; a peer that has not answered the previous ping is
 *   terminated (counted in `stats.heartbeatTerminations`).
 * - Bad input: each refused frame is logged, counted by reason, replied to its sender as
 *   `{type:'error', reason, message, stream?, seq?}` and emitted on `rejections`; the connection goes on.
 *   An input the edge accepted but a later stage refuses (the learner pool, the label join) is answered the same
 *   way through `replyTo(input, rejection)`: the server remembers which socket sent each emitted input.
 * - Backpressure: `publish` skips a subscriber whose `bufferedAmount` exceeds `maxBufferedBytes` and counts the
 *   drop, so server memory per subscriber stays bounded by about maxBufferedBytes plus one message.
 */
import { DEFAULT_OUTBOUND_TYPES, parseSubscriberFilter, wants, type SubscriberFilter } from './subscriber-filter.js';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { timingSafeEqual, createHash } from 'node:crypto';
import { Observable, Subject } from 'rxjs';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { rejection, type Rejection, type RejectionReason, type StreamInput } from '../../streams/messages.js';
import {
  IngestValidator,
  emptyReasonCounts,
  encodeErrorReply,
  encodeOutbound,
  type OutboundMessage,
  type ShapeLookup,
  type StreamShape,
} from './frames.js';

/** pino-compatible; logs are off unless one is given. */
export interface WsLogger {
  warn(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
}

export interface WebSocketServerOptions {
  readonly host?: string;
  /** 0 picks an ephemeral port. */
  readonly port?: number;
  readonly token?: string;
  readonly ingestPath?: string;
  readonly predictionsPath?: string;
  /** ws-level hard limit in bytes (close 1009 above it). Default 1 MiB. */
  readonly maxPayload?: number;
  /** Application limit in bytes (error reply, connection kept). Default maxPayload / 4. */
  readonly maxFrameBytes?: number;
  readonly heartbeatMs?: number;
  /** Per-subscriber cap on ws bufferedAmount before messages are dropped for it. Default 1 MiB. */
  readonly maxBufferedBytes?: number;
  readonly shapes: ShapeLookup;
  /** Accept streams the lookup does not know, with this shape (up to maxStreams). */
  readonly defaultShape?: StreamShape;
  readonly maxStreams?: number;
  /** Recent ticks per stream that a late label may name. Default 256. */
  readonly labelWindow?: number;
  readonly logger?: WsLogger;
}

export interface WebSocketServerStats {
  accepted: number;
  rejected: Record<RejectionReason, number>;
  published: number;
  droppedForSlowSubscribers: number;
  /** The largest subscriber bufferedAmount publish has seen (the memory bound: about maxBufferedBytes + one message). */
  peakSubscriberBufferedBytes: number;
  heartbeatTerminations: number;
  /** Error replies sent through `replyTo` (refusals after the edge); not in `rejected`, which counts the edge's. */
  laterRefusalsAnswered: number;
  ingestConnections: number;
  subscriberConnections: number;
}

export interface DriftlineWebSocketServer {
  /** Hot: accepted inputs, in arrival order. */
  readonly inputs: Observable<StreamInput>;
  readonly rejections: Observable<Rejection>;
  publish(message: OutboundMessage | string): void;
  /**
   * Sends `rejection` as an error reply to the peer that sent `input` (an object this server emitted on
   * `inputs`), as the edge does for the frames it refuses itself. False when the input did not come from this
   * server or its peer has gone.
   */
  replyTo(input: StreamInput, rejection: Rejection): boolean;
  readonly stats: Readonly<WebSocketServerStats>;
  readonly address: { host: string; port: number; url: string };
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

/** A subscriber that connected without a query (or through a path the upgrade did not see). */
const UNFILTERED: SubscriberFilter = { types: DEFAULT_OUTBOUND_TYPES };

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

interface Peer extends WebSocket {
  alive?: boolean;
}

export async function startWebSocketServer(options: WebSocketServerOptions): Promise<DriftlineWebSocketServer> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token;
  if (token !== undefined && token.length === 0) throw new Error('driftline ws: token must not be empty');
  if (token === undefined && !isLoopbackHost(host)) {
    throw new Error(
      `driftline ws: refusing to listen on ${host} without a token; set token (clients send "Authorization: Bearer <token>") or bind to 127.0.0.1`,
    );
  }
  const ingestPath = options.ingestPath ?? '/ingest';
  const predictionsPath = options.predictionsPath ?? '/predictions';
  const maxPayload = options.maxPayload ?? 1024 * 1024;
  const maxFrameBytes = options.maxFrameBytes ?? Math.floor(maxPayload / 4);
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
  const log = options.logger;

  const validator = new IngestValidator({
    shapes: options.shapes,
    ...(options.defaultShape ? { defaultShape: options.defaultShape } : {}),
    ...(options.maxStreams !== undefined ? { maxStreams: options.maxStreams } : {}),
    ...(options.labelWindow !== undefined ? { labelWindow: options.labelWindow } : {}),
    maxFrameBytes,
  });

  const stats: WebSocketServerStats = {
    accepted: 0,
    rejected: emptyReasonCounts(),
    published: 0,
    droppedForSlowSubscribers: 0,
    peakSubscriberBufferedBytes: 0,
    heartbeatTerminations: 0,
    laterRefusalsAnswered: 0,
    ingestConnections: 0,
    subscriberConnections: 0,
  };
  const inputs = new Subject<StreamInput>();
  const rejections = new Subject<Rejection>();
  // Weak: an input the consumers have dropped takes its entry with it, so no per-input bookkeeping is ever freed by hand.
  const senders = new WeakMap<StreamInput, WebSocket>();
  const filters = new WeakMap<WebSocket, SubscriberFilter>();

  const recordRejection = (r: Rejection, peer?: WebSocket, remote?: string): void => {
    stats.rejected[r.reason]++;
    log?.warn({ reason: r.reason, stream: r.stream, seq: r.seq, remote }, `driftline ws: rejected frame: ${r.message}`);
    if (peer && peer.readyState === WebSocket.OPEN) peer.send(encodeErrorReply(r));
    rejections.next(r);
  };

  const http: Server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('driftline: WebSocket upgrade required\n');
  });
  const ingest = new WebSocketServer({ noServer: true, maxPayload });
  const subscribers = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });

  const refuseUpgrade = (socket: Duplex, status: number, text: string, detail = text): void => {
    socket.on('error', () => {});
    const body = `${detail}\n`;
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  };

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://driftline.invalid');
    } catch {
      refuseUpgrade(socket, 400, 'Bad Request');
      return;
    }
    if (token !== undefined) {
      const auth = req.headers.authorization;
      const bearer = auth && /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
      const given = bearer || url.searchParams.get('token') || undefined;
      if (!tokenMatches(given, token)) {
        recordRejection(rejection('unauthorized', `missing or wrong bearer token from ${req.socket.remoteAddress ?? '?'}`), undefined, req.socket.remoteAddress);
        refuseUpgrade(socket, 401, 'Unauthorized');
        return;
      }
    }
    const target = url.pathname === ingestPath ? ingest : url.pathname === predictionsPath ? subscribers : undefined;
    if (target === undefined) {
      refuseUpgrade(socket, 404, 'Not Found');
      return;
    }
    let filter: SubscriberFilter | undefined;
    if (target === subscribers) {
      const parsed = parseSubscriberFilter(url.searchParams);
      if (typeof parsed === 'string') {
        refuseUpgrade(socket, 400, 'Bad Request', parsed);
        return;
      }
      filter = parsed;
    }
    target.handleUpgrade(req, socket, head, (ws) => {
      if (filter !== undefined) filters.set(ws, filter);
      target.emit('connection', ws, req);
    });
  });

  const watch = (ws: Peer, remote: string | undefined): void => {
    ws.alive = true;
    ws.on('pong', () => {
      ws.alive = true;
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the connection itself after a protocol error (1009 for a message above maxPayload).
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        recordRejection(rejection('oversized', `message above maxPayload (${maxPayload} bytes); connection closed with 1009`), undefined, remote);
      } else {
        log?.warn({ err: err.message, code: err.code, remote }, 'driftline ws: connection error');
      }
    });
  };

  ingest.on('connection', (ws: Peer, req: IncomingMessage) => {
    stats.ingestConnections++;
    const remote = req.socket.remoteAddress;
    watch(ws, remote);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const receivedAt = performance.now();
      let r: StreamInput | Rejection;
      try {
        r = validator.accept(isBinary ? (data as Buffer | ArrayBuffer | Buffer[]) : data.toString(), receivedAt);
      } catch (e) {
        r = rejection('malformed', `frame could not be decoded: ${(e as Error).message}`);
      }
      if (r.kind === 'rejected') {
        recordRejection(r, ws, remote);
        return;
      }
      stats.accepted++;
      senders.set(r, ws);
      inputs.next(r);
    });
    ws.on('close', () => {
      stats.ingestConnections--;
    });
  });

  subscribers.on('connection', (ws: Peer, req: IncomingMessage) => {
    stats.subscriberConnections++;
    watch(ws, req.socket.remoteAddress);
    ws.on('message', () => {
      // Read-only path: say so rather than drop silently (not counted as a rejected ingest frame).
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: 'error', reason: 'malformed', message: `${predictionsPath} is read-only; send frames to ${ingestPath}` }));
      }
    });
    ws.on('close', () => {
      stats.subscriberConnections--;
    });
  });

  const heartbeat = setInterval(() => {
    for (const wss of [ingest, subscribers]) {
      for (const c of wss.clients) {
        const ws = c as Peer;
        if (ws.alive === false) {
          stats.heartbeatTerminations++;
          log?.warn({}, 'driftline ws: peer missed a heartbeat; terminating');
          ws.terminate();
          continue;
        }
        ws.alive = false;
        try {
          ws.ping();
        } catch {
          /* socket already closing */
        }
      }
    }
  }, heartbeatMs);
  heartbeat.unref();

  await new Promise<void>((resolve, reject_) => {
    const onError = (e: Error): void => reject_(e);
    http.once('error', onError);
    http.listen(options.port ?? 0, host, () => {
      http.off('error', onError);
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  log?.info?.({ host, port }, 'driftline ws: listening');

  let closed: Promise<void> | undefined;
  return {
    inputs: inputs.asObservable(),
    rejections: rejections.asObservable(),
    stats,
    address: { host, port, url: `ws://${urlHost}:${port}` },
    publish(message: OutboundMessage | string): void {
      let text = typeof message === 'string' ? message : undefined;
      stats.published++;
      for (const ws of subscribers.clients) {
        if (ws.readyState !== WebSocket.OPEN) continue;
        if (typeof message !== 'string' && !wants(filters.get(ws) ?? UNFILTERED, message)) continue;
        const buffered = ws.bufferedAmount;
        if (buffered > stats.peakSubscriberBufferedBytes) stats.peakSubscriberBufferedBytes = buffered;
        if (buffered > maxBufferedBytes) {
          stats.droppedForSlowSubscribers++;
          continue;
        }
        text ??= encodeOutbound(message as OutboundMessage);
        ws.send(text);
      }
    },
    replyTo(input: StreamInput, rejection: Rejection): boolean {
      const peer = senders.get(input);
      if (peer === undefined || peer.readyState !== WebSocket.OPEN) return false;
      stats.laterRefusalsAnswered++;
      peer.send(encodeErrorReply(rejection));
      return true;
    },
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        clearInterval(heartbeat);
        for (const wss of [ingest, subscribers]) for (const ws of wss.clients) ws.terminate();
        ingest.close();
        subscribers.close();
        http.close(() => resolve());
        http.closeAllConnections?.();
        inputs.complete();
        rejections.complete();
      });
      return closed;
    },
  };
}
