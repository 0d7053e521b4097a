/**
 * The WebSocket edge (DESIGN section 7): producers send frames to `ingestPath`, subscribers on `predictionsPath`
 * receive predictions and metrics updates.
 *
 * - Auth: with `token` set, every upgrade needs `Authorization: Bearer <token>` or `?token=<token>` (HTTP 401 and
 *   a counted 'unauthorized' rejection otherwise). Without a token the server only starts on a loopback host.
 * - Size and encoding: `maxPayload` is the ws-level hard limit: a bigger message makes ws close that connection
 *   with 1009; it is counted as 'oversized' and logged, and other peers are unaffected. A text message that is
 *   not valid UTF-8 makes ws close with 1007; counted as 'malformed', likewise. `maxFrameBytes` (default
 *   maxPayload / 4) is the application limit: a frame above it but within maxPayload gets an 'oversized' error
 *   reply and the connection stays open.
 * - Batches: one message may hold up to `maxFramesPerMessage` frames (binary type 4, or a JSON array); each is
 *   handled as if it had come alone, and a batch whose container is damaged is refused whole with one reply.
 *   Receiving and answering a message, not decoding its frame, is most of what a lone event costs (8.1 us of CPU
 *   per event at one per message, 2.2 us at 100 per message, on a bare ws server).
 * - Heartbeat: every `heartbeatMs` each peer is pinged; a peer that has not answered the previous ping is
 *   terminated (counted in `stats.heartbeatTerminations`).
 * - Bad input: each refused frame is logged, counted by reason, replied to its sender as
 *   `{type:'error', reason, message, stream?, seq?}` and emitted on `rejections`; the connection goes on.
 *   An input the edge accepted but a later stage refuses (the learner pool, the label join) is answered the same
 *   way through `replyTo(input, rejection)`: the server remembers which socket sent each emitted input.
 * - Backpressure: `publish` skips a subscriber whose `bufferedAmount` exceeds `maxBufferedBytes` and counts the
 *   drop, so server memory per subscriber stays bounded by about maxBufferedBytes plus one message.
 * - Subscriber batches: a subscriber that connected with `?batch=turn` gets the messages of one event-loop turn
 *   as one JSON array of them, sent by one setImmediate for all such subscribers (bounded by
 *   MAX_SUBSCRIBER_BATCH_MESSAGES and MAX_SUBSCRIBER_BATCH_CHARS; a bigger turn leaves in several). Sending a
 *   message, not encoding it, is most of what publishing costs. The drop check stays per message, when it is
 *   published: the bound becomes about maxBufferedBytes plus one batch.
 * - Order: with `checkOrder: false` the edge keeps no per-stream state (seq order, label window, maxStreams);
 *   the pipeline checks those against the high-water marks it restored, and answers through `replyTo`.
 * - Control: every ingest connection first gets `{type:'hello', instance, protocol: 1, ...helloFields}`; a
 *   resume request (`{type:'resume', streams?}`) is not a frame: it goes to `resumeRequests` for the application
 *   to answer with `sendTo(peer, ...)`.
 * - Stop: `close()` sends every peer a close frame (1001, 'driftline stopping'), waits up to `closeTimeoutMs`
 *   for the handshakes (frames that arrive meanwhile are still delivered), then terminates the rest.
 */
import { DEFAULT_OUTBOUND_TYPES, parseSubscriberFilter, wants, type OutboundType, type SubscriberFilter } from './subscriber-filter.js';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { tokenMatches } from '../../metrics/bearer-token.js';
import { isLoopbackHost } from '../../metrics/loopback.js';
import { Observable, Subject } from 'rxjs';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { randomUUID } from 'node:crypto';
import { rejection, type Rejection, type RejectionReason, type StreamInput } from '../../streams/messages.js';
import {
  DEFAULT_MAX_FRAMES_PER_MESSAGE,
  IngestValidator,
  type IngestMessage,
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
  /**
   * Most frames one batch message may hold (1..65,535; default 4,096). maxPayload still bounds the message and
   * maxFrameBytes each frame in it.
   */
  readonly maxFramesPerMessage?: number;
  readonly heartbeatMs?: number;
  /** Per-subscriber cap on ws bufferedAmount before messages are dropped for it. Default 1 MiB. */
  readonly maxBufferedBytes?: number;
  /**
   * Default false. True: the messages published to a subscriber within one turn of the event loop leave in one
   * socket write (its socket is corked at the first and uncorked by setImmediate), instead of one system call per
   * message: publishing is the largest stage of an event (docs/performance.md). A message waits at most until the
   * current turn ends. A `?batch=turn` subscriber is not corked: its turn already leaves as one message.
   */
  readonly coalesceSends?: boolean;
  readonly shapes: ShapeLookup;
  /** Accept streams the lookup does not know, with this shape (up to maxStreams). */
  readonly defaultShape?: StreamShape;
  readonly maxStreams?: number;
  /** Recent ticks per stream that a late label may name. Default 256. */
  readonly labelWindow?: number;
  /**
   * Default true. False: the edge only decodes and validates shapes and values and keeps no per-stream state
   * (maxStreams and labelWindow are then unused); order, duplicates and stream limits are the pipeline's.
   */
  readonly checkOrder?: boolean;
  /** Extra fields for the hello each ingest connection gets first (they cannot replace type, instance, protocol). */
  readonly helloFields?: Readonly<Record<string, unknown>>;
  /** How long `close()` waits for peers to answer its close frame before terminating them. Default 500 ms. */
  readonly closeTimeoutMs?: number;
  readonly logger?: WsLogger;
}

/** The version of the ingest control protocol (hello, resume) that the hello announces. */
export const INGEST_PROTOCOL_VERSION = 1;

/** A resume request from an ingest peer; answer it with `sendTo(peer, ...)`. */
export interface WsResumeRequest {
  /** Opaque: pass it back to `sendTo`. */
  readonly peer: unknown;
  /** The streams asked about; undefined for all the application has. */
  readonly streams: readonly string[] | undefined;
}

export interface WebSocketServerStats {
  accepted: number;
  rejected: Record<RejectionReason, number>;
  published: number;
  droppedForSlowSubscribers: number;
  /**
   * The largest subscriber bufferedAmount publish has seen (the memory bound: about maxBufferedBytes + one
   * message, or + one batch for a `?batch=turn` subscriber).
   */
  peakSubscriberBufferedBytes: number;
  heartbeatTerminations: number;
  /** Error replies sent through `replyTo` (refusals after the edge); not in `rejected`, which counts the edge's. */
  laterRefusalsAnswered: number;
  ingestConnections: number;
  subscriberConnections: number;
}

/** An outbound message already encoded to its JSON text, with what subscriber filters look at. */
export interface EncodedOutbound {
  readonly kind: OutboundMessage['kind'];
  readonly stream?: string | undefined;
  readonly text: string;
}

export interface DriftlineWebSocketServer {
  /** Hot: accepted inputs, in arrival order. */
  readonly inputs: Observable<StreamInput>;
  readonly rejections: Observable<Rejection>;
  /**
   * To every subscriber that wants it. A string is sent as given, unfiltered: it must be the JSON text of one
   * message object, since a `?batch=turn` subscriber gets it as an element of its array.
   */
  publish(message: OutboundMessage | string): void;
  /** Like publish, for a message encoded elsewhere (a shard's worker): filtered by its kind and stream. */
  publishEncoded(message: EncodedOutbound): void;
  /** The message types some open subscriber wants (the union of their filters): what is worth encoding. */
  wantedTypes(): ReadonlySet<OutboundType>;
  /**
   * Sends `rejection` as an error reply to the peer that sent `input` (an object this server emitted on
   * `inputs`), as the edge does for the frames it refuses itself. False when the input did not come from this
   * server or its peer has gone.
   */
  replyTo(input: StreamInput, rejection: Rejection): boolean;
  /** Hot: resume requests from ingest peers, already validated (a malformed one got an error reply instead). */
  readonly resumeRequests: Observable<WsResumeRequest>;
  /** JSON-encodes `message` and sends it to `peer` (an ingest peer of this server). False when it is not open. */
  sendTo(peer: unknown, message: object): boolean;
  /** The ingest peer that sent `input` (an object this server emitted on `inputs`), or undefined. */
  peerOf(input: StreamInput): unknown | undefined;
  /** Sends `rejection` as an error reply to `peer` (an ingest peer of this server), as replyTo does. */
  answer(peer: unknown, rejection: Rejection): boolean;
  /** Closes an ingest peer's connection with `code` (e.g. 1012: its frames were lost in a restart; it resumes). */
  disconnect(peer: unknown, code: number, reason: string): void;
  /**
   * Stops (true) or restarts (false) reading from an ingest peer: backpressure while the application cannot
   * take its frames yet (a stream being restored). Frames already read still arrive.
   */
  setPaused(peer: unknown, paused: boolean): void;
  /** Chosen once per start; every hello carries it, so a producer can tell that the server restarted. */
  readonly instance: string;
  readonly stats: Readonly<WebSocketServerStats>;
  readonly address: { host: string; port: number; url: string };
  close(): Promise<void>;
}

/** A subscriber that connected without a query (or through a path the upgrade did not see). */
const UNFILTERED: SubscriberFilter = { types: DEFAULT_OUTBOUND_TYPES };

/** Most messages in one `?batch=turn` array; as many as an ingest batch may hold by default. */
export const MAX_SUBSCRIBER_BATCH_MESSAGES = DEFAULT_MAX_FRAMES_PER_MESSAGE;
/**
 * Longest `?batch=turn` array text, in UTF-16 code units (bytes, for the ASCII text nearly every message is):
 * 1 MiB, the ingest side's default maxPayload, so a peer built with the same limits can read it. A single message
 * longer than this still goes, as an array of one.
 */
export const MAX_SUBSCRIBER_BATCH_CHARS = 1024 * 1024;

/** What a `?batch=turn` subscriber has been given this turn and not yet sent; one per subscriber, reused. */
interface TurnBatch {
  readonly ws: WebSocket;
  /** Each the text the message would have had alone. */
  readonly texts: string[];
  /** Length of the array text they make: `[`, the texts with a comma between, `]`. */
  chars: number;
}

// Re-exported: the one definition lives with the metrics endpoint, which must not import an adapter.
export { isLoopbackHost };

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
  const maxFramesPerMessage = options.maxFramesPerMessage ?? DEFAULT_MAX_FRAMES_PER_MESSAGE;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
  const coalesceSends = options.coalesceSends ?? false;
  // Coalesced sends and `?batch=turn` both wait for the end of the event-loop turn: one setImmediate serves both.
  let turnEndScheduled = false;
  const atTurnEnd = (): void => {
    if (turnEndScheduled) return;
    turnEndScheduled = true;
    setImmediate(endTurn);
  };
  // ws exposes no cork; its underlying net.Socket (the documented-in-source `_socket`) has one.
  const corked = new Set<Socket>();
  const uncorkAll = () => {
    for (const socket of corked) socket.uncork();
    corked.clear();
  };
  const corkFor = (ws: WebSocket) => {
    const socket = (ws as unknown as { _socket?: Socket })._socket;
    if (socket === undefined || corked.has(socket)) return;
    socket.cork();
    corked.add(socket);
    atTurnEnd();
  };
  const log = options.logger;

  const validator = new IngestValidator({
    shapes: options.shapes,
    ...(options.defaultShape ? { defaultShape: options.defaultShape } : {}),
    ...(options.maxStreams !== undefined ? { maxStreams: options.maxStreams } : {}),
    ...(options.labelWindow !== undefined ? { labelWindow: options.labelWindow } : {}),
    ...(options.checkOrder !== undefined ? { checkOrder: options.checkOrder } : {}),
    maxFrameBytes,
    maxFramesPerMessage,
  });
  const closeTimeoutMs = options.closeTimeoutMs ?? 500;
  const instance = randomUUID();
  // Encoded once: it is the same for every connection of this start.
  const hello = JSON.stringify({ ...options.helloFields, type: 'hello', instance, protocol: INGEST_PROTOCOL_VERSION });

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
  const resumeRequests = new Subject<WsResumeRequest>();
  /** Set by close(): an upgrade that completes after it is sent away at once. */
  let stopping = false;
  // Weak: an input the consumers have dropped takes its entry with it, so no per-input bookkeeping is ever freed by hand.
  const senders = new WeakMap<StreamInput, WebSocket>();
  const filters = new WeakMap<WebSocket, SubscriberFilter>();
  const turnBatches = new WeakMap<WebSocket, TurnBatch>();
  /** Batches holding messages; emptied by one setImmediate per turn for all of them. */
  const batchesDue = new Set<TurnBatch>();
  const sendBatch = (batch: TurnBatch): void => {
    // A subscriber that is going away misses what was pending, as it misses what is published after it left.
    if (batch.ws.readyState === WebSocket.OPEN) batch.ws.send(`[${batch.texts.join(',')}]`);
    batch.texts.length = 0;
    batch.chars = 0;
  };
  const flushBatches = (): void => {
    for (const batch of batchesDue) if (batch.texts.length > 0) sendBatch(batch);
    batchesDue.clear();
  };
  function endTurn(): void {
    turnEndScheduled = false;
    flushBatches();
    uncorkAll();
  }
  const addToBatch = (batch: TurnBatch, text: string): void => {
    if (batch.texts.length > 0 && batch.chars + 1 + text.length > MAX_SUBSCRIBER_BATCH_CHARS) sendBatch(batch);
    batch.chars += batch.texts.length === 0 ? text.length + 2 : text.length + 1;
    batch.texts.push(text);
    if (batch.texts.length >= MAX_SUBSCRIBER_BATCH_MESSAGES) {
      sendBatch(batch);
      return;
    }
    if (batch.texts.length > 1) return;
    batchesDue.add(batch);
    atTurnEnd();
  };
  /** For replies outside publish: a batching subscriber parses arrays only, so they join its batch. */
  const sendToSubscriber = (ws: WebSocket, text: string): void => {
    const batch = turnBatches.get(ws);
    if (batch === undefined) ws.send(text);
    else addToBatch(batch, text);
  };

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
    if (stopping) {
      refuseUpgrade(socket, 503, 'Service Unavailable', 'driftline is stopping');
      return;
    }
    target.handleUpgrade(req, socket, head, (ws) => {
      if (stopping) {
        // close() has already said goodbye to the peers it saw; this one came too late to be among them.
        ws.terminate();
        return;
      }
      if (filter !== undefined) filters.set(ws, filter);
      if (filter?.batch === 'turn') turnBatches.set(ws, { ws, texts: [], chars: 0 });
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
      } else if (err.code === 'WS_ERR_INVALID_UTF8') {
        recordRejection(rejection('malformed', 'text message is not valid UTF-8; connection closed with 1007'), undefined, remote);
      } else {
        log?.warn({ err: err.message, code: err.code, remote }, 'driftline ws: connection error');
      }
    });
  };

  ingest.on('connection', (ws: Peer, req: IncomingMessage) => {
    stats.ingestConnections++;
    const remote = req.socket.remoteAddress;
    watch(ws, remote);
    ws.send(hello);
    // Once per connection: a batch calls it per frame, so no closure per message.
    const handle = (r: IngestMessage | Rejection): void => {
      if (r.kind === 'rejected') {
        recordRejection(r, ws, remote);
        return;
      }
      if (r.kind === 'resume') {
        resumeRequests.next({ peer: ws, streams: r.streams });
        return;
      }
      stats.accepted++;
      senders.set(r, ws);
      inputs.next(r);
    };
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const receivedAt = performance.now();
      try {
        validator.acceptEach(isBinary ? (data as Buffer | ArrayBuffer | Buffer[]) : data.toString(), receivedAt, handle);
      } catch (e) {
        recordRejection(rejection('malformed', `frame could not be decoded: ${(e as Error).message}`), ws, remote);
      }
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
        sendToSubscriber(ws, JSON.stringify({ type: 'error', reason: 'malformed', message: `${predictionsPath} is read-only; send frames to ${ingestPath}` }));
      }
    });
    ws.on('close', () => {
      stats.subscriberConnections--;
      const batch = turnBatches.get(ws);
      if (batch !== undefined) {
        // The turn's flush usually finds it closing and drops the batch first; whichever comes first, nothing of
        // this subscriber stays pending or in the due set.
        batch.texts.length = 0;
        batch.chars = 0;
        batchesDue.delete(batch);
      }
    });
  });

  const heartbeat = setInterval(() => {
    for (const wss of [ingest, subscribers]) {
      for (const c of wss.clients) {
        const ws = c as Peer;
        // A peer the application paused (backpressure) cannot have its pong read: it is not dead.
        if (ws.isPaused) continue;
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

  /** Sends one message to every subscriber whose filter wants it (`about` undefined: to every one), encoding it at most once. */
  const publishText = (about: Pick<OutboundMessage, 'kind' | 'stream'> | undefined, encoded: string | undefined): void => {
    let text = encoded;
    stats.published++;
    for (const ws of subscribers.clients) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      const filter = filters.get(ws) ?? UNFILTERED;
      if (about !== undefined && !wants(filter, about)) continue;
      // Checked per message, batched or not: a drop is one prediction missed, never a batch's worth at once.
      // A pending batch is not in bufferedAmount yet, so a batching subscriber's bound is one batch above it.
      const buffered = ws.bufferedAmount;
      if (buffered > stats.peakSubscriberBufferedBytes) stats.peakSubscriberBufferedBytes = buffered;
      if (buffered > maxBufferedBytes) {
        stats.droppedForSlowSubscribers++;
        continue;
      }
      text ??= encodeOutbound(about as OutboundMessage);
      const batch = filter.batch === undefined ? undefined : turnBatches.get(ws);
      if (batch !== undefined) {
        addToBatch(batch, text);
        continue;
      }
      if (coalesceSends) corkFor(ws);
      ws.send(text);
    }
  };

  /** `peer` when it is an ingest peer of this server (the handle is opaque: anything else is a caller's mix-up), else undefined. */
  const ingestPeer = (peer: unknown): WebSocket | undefined => (peer instanceof WebSocket && ingest.clients.has(peer) ? peer : undefined);
  const answer = (peer: unknown, rejection: Rejection): boolean => {
    const ws = ingestPeer(peer);
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return false;
    stats.laterRefusalsAnswered++;
    ws.send(encodeErrorReply(rejection));
    return true;
  };

  let closed: Promise<void> | undefined;
  return {
    inputs: inputs.asObservable(),
    rejections: rejections.asObservable(),
    stats,
    address: { host, port, url: `ws://${urlHost}:${port}` },
    publish(message: OutboundMessage | string): void {
      publishText(typeof message === 'string' ? undefined : message, typeof message === 'string' ? message : undefined);
    },
    publishEncoded(message: EncodedOutbound): void {
      publishText(message, message.text);
    },
    wantedTypes(): ReadonlySet<OutboundType> {
      const types = new Set<OutboundType>();
      for (const ws of subscribers.clients) {
        if (ws.readyState !== WebSocket.OPEN) continue;
        for (const t of (filters.get(ws) ?? UNFILTERED).types) types.add(t);
      }
      return types;
    },
    replyTo(input: StreamInput, rejection: Rejection): boolean {
      return answer(senders.get(input), rejection);
    },
    resumeRequests: resumeRequests.asObservable(),
    sendTo(peer: unknown, message: object): boolean {
      const ws = ingestPeer(peer);
      if (ws === undefined || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify(message));
      return true;
    },
    peerOf(input: StreamInput): unknown | undefined {
      return senders.get(input);
    },
    answer,
    disconnect(peer: unknown, code: number, reason: string): void {
      const ws = ingestPeer(peer);
      if (ws === undefined) return;
      if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
      else ws.terminate();
    },
    setPaused(peer: unknown, paused: boolean): void {
      const ws = ingestPeer(peer);
      if (ws === undefined || ws.readyState !== WebSocket.OPEN) return;
      if (paused) ws.pause();
      else ws.resume();
    },
    instance,
    close(): Promise<void> {
      closed ??= (async () => {
        stopping = true;
        clearInterval(heartbeat);
        // What was published before close() reaches batching subscribers ahead of the close frame, as it does the others.
        flushBatches();
        const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()));
        // A close frame with 1001 tells producers this is a stop, not a crash (which they see as 1006).
        const peers = [...ingest.clients, ...subscribers.clients];
        const handshakes = peers.map((ws) =>
          ws.readyState === WebSocket.CLOSED ? undefined : new Promise<void>((resolve) => ws.once('close', () => resolve())),
        );
        for (const ws of peers) if (ws.readyState === WebSocket.OPEN) ws.close(1001, 'driftline stopping');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all(handshakes),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, closeTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
        for (const ws of peers) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
        ingest.close();
        subscribers.close();
        http.closeAllConnections?.();
        await httpClosed;
        // Only now: frames that arrived during the handshakes were still delivered.
        inputs.complete();
        rejections.complete();
        resumeRequests.complete();
      })();
      return closed;
    },
  };
}
