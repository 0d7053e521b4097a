/**
 * An ingest client: sends ticks, late labels and session boundaries to a remote driftline's ingest path.
 *
 * - Reconnects after any close with exponential backoff and "equal jitter": attempt n waits
 *   d = min(maxBackoffMs, initialBackoffMs * 2^n) scaled by (0.5 + 0.5 * random()), random injectable for tests.
 * - While disconnected, frames are kept in a bounded queue (`maxQueuedFrames`); when it is full the oldest is
 *   dropped and counted (`stats.droppedWhileDisconnected`). The queue is flushed in order on reconnect.
 * - The protocol has no acks: a frame handed to a socket that then breaks may be lost (at most once). The server's
 *   seq check makes re-sending safe, so a producer that needs more can resend from its last acknowledged seq.
 * - Server error replies (`{type:'error', reason, message, stream?, seq?}`) arrive on `errors`.
 */
import { Observable, Subject } from 'rxjs';
import { WebSocket } from 'ws';
import { encodeBinaryFrame, encodeJsonFrame, type ErrorReply, type IngestFrame } from './frames.js';

export interface IngestClientOptions {
  /** e.g. ws://127.0.0.1:8080/ingest */
  readonly url: string;
  readonly token?: string;
  /** Send binary frames (default JSON text). */
  readonly binary?: boolean;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Frames kept while disconnected. Default 10,000. */
  readonly maxQueuedFrames?: number;
  /** Uniform [0, 1) source for the jitter; pass a seeded one for deterministic tests. Default Math.random. */
  readonly random?: () => number;
}

export interface IngestClientStats {
  sent: number;
  queued: number;
  droppedWhileDisconnected: number;
  connects: number;
  /** Messages from the server that were not error replies (or not JSON). */
  unexpectedMessages: number;
  /** Frames handed to the socket that it could not write out (the connection dropped under them). */
  failedSends: number;
}

export interface IngestClient {
  /** Sends now when connected, else queues (bounded). */
  send(frame: IngestFrame): void;
  readonly errors: Observable<ErrorReply>;
  /** Emits each time a connection opens (the first and every reconnect). */
  readonly connected: Observable<void>;
  readonly isConnected: boolean;
  readonly stats: Readonly<IngestClientStats>;
  /** Bytes handed to send() and not yet written to the OS, plus the bytes of frames queued while disconnected. */
  readonly bufferedAmount: number;
  /**
   * Resolves when every frame sent so far has left this process: the disconnected queue is empty and the socket
   * has written every frame out (or failed to: `stats.failedSends`). A producer awaits it to pace itself to the
   * network, and before exiting so that nothing is left behind. Rejects when the client is closed first.
   */
  drain(): Promise<void>;
  /** Stops reconnecting and closes; queued frames are discarded (their count stays in stats.queued). */
  close(): Promise<void>;
}

/** The backoff before reconnect attempt `attempt` (0-based). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.5 + 0.5 * random()));
}

const byteLength = (data: string | Uint8Array): number => (typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength);

export function createIngestClient(options: IngestClientOptions): IngestClient {
  const initialBackoffMs = options.initialBackoffMs ?? 100;
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  const maxQueued = options.maxQueuedFrames ?? 10_000;
  const random = options.random ?? Math.random;
  const binary = options.binary ?? false;
  const errors = new Subject<ErrorReply>();
  const connected = new Subject<void>();
  const stats: IngestClientStats = { sent: 0, queued: 0, droppedWhileDisconnected: 0, connects: 0, unexpectedMessages: 0, failedSends: 0 };
  const queue: (string | Uint8Array)[] = [];
  let qHead = 0;
  let ws: WebSocket | undefined;
  let attempt = 0;
  let timer: NodeJS.Timeout | undefined;
  let closing = false;
  /** Frames handed to the socket whose write callback has not come yet. */
  let inFlight = 0;
  let queuedBytes = 0;
  const drainWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];

  const queueLength = (): number => queue.length - qHead;
  const settleDrains = (): void => {
    if (inFlight !== 0 || queueLength() !== 0) return;
    for (const w of drainWaiters.splice(0)) w.resolve();
  };
  // One callback for every write: allocated once, not per frame.
  const onWritten = (err?: Error): void => {
    inFlight--;
    if (err) stats.failedSends++;
    settleDrains();
  };
  const write = (sock: WebSocket, data: string | Uint8Array): void => {
    inFlight++;
    sock.send(data, onWritten);
    stats.sent++;
  };

  const connect = (): void => {
    if (closing) return;
    const headers: Record<string, string> = {};
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const sock = new WebSocket(options.url, { headers });
    ws = sock;
    sock.on('open', () => {
      attempt = 0;
      stats.connects++;
      while (queueLength() > 0 && sock.readyState === WebSocket.OPEN) {
        const f = queue[qHead]!;
        queue[qHead++] = '';
        write(sock, f);
      }
      queue.length = 0;
      qHead = 0;
      queuedBytes = 0;
      stats.queued = 0;
      connected.next();
      settleDrains();
    });
    sock.on('message', (data, isBinary) => {
      if (isBinary) {
        stats.unexpectedMessages++;
        return;
      }
      try {
        const m = JSON.parse(data.toString()) as ErrorReply;
        if (m && m.type === 'error') errors.next(m);
        else stats.unexpectedMessages++;
      } catch {
        stats.unexpectedMessages++;
      }
    });
    sock.on('error', () => {
      /* a 'close' follows; reconnect happens there */
    });
    sock.on('close', () => {
      if (ws === sock) ws = undefined;
      if (closing) return;
      const d = backoffDelay(attempt++, initialBackoffMs, maxBackoffMs, random);
      timer = setTimeout(connect, d);
    });
  };
  connect();

  return {
    errors: errors.asObservable(),
    connected: connected.asObservable(),
    get isConnected() {
      return ws?.readyState === WebSocket.OPEN;
    },
    stats,
    send(frame: IngestFrame): void {
      if (closing) throw new Error('driftline ws client: send after close');
      const data = binary ? encodeBinaryFrame(frame) : encodeJsonFrame(frame);
      if (ws && ws.readyState === WebSocket.OPEN && queueLength() === 0) {
        write(ws, data);
        return;
      }
      if (queueLength() >= maxQueued) {
        queuedBytes -= byteLength(queue[qHead]!);
        queue[qHead++] = '';
        stats.droppedWhileDisconnected++;
        if (qHead > 1024 && qHead * 2 > queue.length) {
          queue.splice(0, qHead);
          qHead = 0;
        }
      }
      queue.push(data);
      queuedBytes += byteLength(data);
      stats.queued = queueLength();
    },
    get bufferedAmount() {
      return (ws?.bufferedAmount ?? 0) + queuedBytes;
    },
    drain(): Promise<void> {
      if (closing) return Promise.reject(new Error('driftline ws client: drain after close'));
      return new Promise<void>((resolve, reject) => {
        drainWaiters.push({ resolve, reject });
        settleDrains();
      });
    },
    close(): Promise<void> {
      closing = true;
      if (timer) clearTimeout(timer);
      for (const w of drainWaiters.splice(0)) w.reject(new Error('driftline ws client: closed before its frames were written'));
      const sock = ws;
      const done = new Promise<void>((resolve) => {
        if (!sock || sock.readyState === WebSocket.CLOSED) return resolve();
        sock.once('close', () => resolve());
        if (sock.readyState === WebSocket.CONNECTING) sock.terminate();
        else sock.close(1000);
        setTimeout(() => {
          sock.terminate();
          resolve();
        }, 1000).unref();
      });
      return done.then(() => {
        errors.complete();
        connected.complete();
      });
    },
  };
}
