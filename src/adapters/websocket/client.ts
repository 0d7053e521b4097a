/**
 * An ingest client: sends ticks, late labels and session boundaries to a remote driftline's ingest path.
 *
 * - Reconnects after any close with exponential backoff and "equal jitter": attempt n waits
 *   d = min(maxBackoffMs, initialBackoffMs * 2^n) scaled by (0.5 + 0.5 * random()), random injectable for tests.
 * - Resume (docs/websocket-frames.md, "Resume"): every frame is kept until the server acknowledges that the
 *   state reflecting it is durable (`{type:'ack'}` after a checkpoint). After a reconnect the client asks where
 *   each of its streams stands (`{type:'resume'}`), drops what the server already has, and sends the rest again
 *   in the original order, before any new frame. With a server that crashed and restarted from its checkpoints,
 *   that re-sends exactly what the crash lost; the server never learns a tick twice. At most `maxUnackedFrames`
 *   frames are kept: past it the oldest is dropped and counted (`stats.droppedUnacked`), and a crash could then
 *   lose it. A server that does not speak the protocol (no `hello` within `helloTimeoutMs`) gets plain sends.
 * - Server error replies (`{type:'error', reason, message, stream?, seq?}`) arrive on `errors`.
 * - `framesPerMessage` > 1: the frames sent within one turn of the event loop leave at the turn's end, packed into
 *   batch messages (docs/websocket-frames.md, "Batches"). Only the wire changes: each frame is still kept,
 *   acknowledged, resent and counted on its own, in the same order, so resume and drain() work as before.
 */
import { Observable, Subject } from 'rxjs';
import { WebSocket } from 'ws';
import {
  binaryBatchBytes,
  checkFramesPerMessage,
  encodeBinaryFrame,
  encodeJsonFrame,
  jsonBatchOverheadBytes,
  packBinaryBatch,
  packJsonBatch,
  type ErrorReply,
  type IngestFrame,
} from './frames.js';

export interface IngestClientOptions {
  /**
   * e.g. ws://127.0.0.1:8080/ingest; or a function read at every connect attempt, to fail over to another
   * address (the resume protocol then picks up wherever the stream's state is).
   */
  readonly url: string | (() => string);
  readonly token?: string;
  /** Send binary frames (default JSON text). */
  readonly binary?: boolean;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Frames kept until acknowledged (written or not). Default 100,000. */
  readonly maxUnackedFrames?: number;
  /** @deprecated the former bound on frames queued while disconnected; read as maxUnackedFrames. */
  readonly maxQueuedFrames?: number;
  /** How long to wait for the server's hello after connecting before sending without resume. Default 2,000 ms. */
  readonly helloTimeoutMs?: number;
  /** Uniform [0, 1) source for the jitter; pass a seeded one for deterministic tests. Default Math.random. */
  readonly random?: () => number;
  /**
   * Default 1: every frame is its own message, at once. n > 1: frames sent within one turn of the event loop wait
   * for the turn's end and leave as batches of up to n (a lone frame still goes as a plain frame). A message costs
   * the server more to receive and answer than its frame costs to handle (8.1 us of CPU per event at one per
   * message, 2.2 us at 100), so this is for producers that send many frames at once (all of a rig's arrays, many
   * streams through a gateway). The server must take batches (the hello does not say), and this many: n at most
   * its maxFramesPerMessage (default 4,096). 1..65,535.
   */
  readonly framesPerMessage?: number;
  /**
   * The most bytes one message may carry: the server's maxPayload, above which it closes the connection. A batch
   * (framesPerMessage > 1) stops growing before it passes it, and send() refuses (throws) a single frame larger
   * than it, which would otherwise close the connection again after every reconnect. Default 1 MiB, the server's
   * default.
   */
  readonly maxMessageBytes?: number;
}

export interface IngestClientStats {
  sent: number;
  /** WebSocket messages written with frames in them: sent when every frame goes alone, fewer with framesPerMessage. */
  messages: number;
  /** Frames not yet written to a socket (waiting for a connection or for the resume answer). */
  queued: number;
  /** Frames kept until acknowledged (written or not). */
  unacked: number;
  /** Frames the server acknowledged as durable (or said it already had) and the client let go. */
  acked: number;
  /** Frames sent again after a reconnect because the server did not have them. */
  resent: number;
  /** Unacknowledged frames dropped because more than maxUnackedFrames were kept (a crash could lose them). */
  droppedUnacked: number;
  /** The same count, under its former name. */
  droppedWhileDisconnected: number;
  connects: number;
  /** Messages from the server that were not error replies (or not JSON). */
  unexpectedMessages: number;
  /** Frames handed to the socket that it could not write out (the connection dropped under them). */
  failedSends: number;
}

/** Where a stream stands on the server: every tick frame up to `seq` is applied, labels in `pendingLabels` are not. */
export interface ResumeMark {
  readonly seq: number;
  readonly pendingLabels: readonly number[];
}

export interface IngestClient {
  /** Sends now when connected (and resumed), else keeps it for later, in order (bounded). */
  send(frame: IngestFrame): void;
  /**
   * Resolves when every frame sent so far has been acknowledged as durable by the server (or the server said it
   * had it). Rejects when the client is closed first.
   */
  settled(): Promise<void>;
  /** The server's instance id from its hello (a new one means the server restarted). */
  readonly serverInstance: string | undefined;
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

/** One frame kept until acknowledged. */
interface Kept {
  readonly stream: string;
  readonly kind: 'tick' | 'label' | 'session';
  readonly seq: number;
  readonly data: string | Uint8Array;
  acked: boolean;
}

/** Whether the server's mark covers a frame: it need not be sent again. */
export function markCovers(mark: ResumeMark, kind: 'tick' | 'label' | 'session', seq: number): boolean {
  if (seq > mark.seq) return false;
  return kind !== 'label' || !mark.pendingLabels.includes(seq);
}

export function createIngestClient(options: IngestClientOptions): IngestClient {
  const initialBackoffMs = options.initialBackoffMs ?? 100;
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  const maxKept = options.maxUnackedFrames ?? options.maxQueuedFrames ?? 100_000;
  const helloTimeoutMs = options.helloTimeoutMs ?? 2_000;
  const random = options.random ?? Math.random;
  const binary = options.binary ?? false;
  const framesPerMessage = options.framesPerMessage ?? 1;
  const maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
  checkFramesPerMessage(framesPerMessage, 'framesPerMessage');
  if (!(maxMessageBytes > 0)) throw new RangeError(`maxMessageBytes must be positive, got ${maxMessageBytes}`);
  const packs = framesPerMessage > 1;
  const errors = new Subject<ErrorReply>();
  const connected = new Subject<void>();
  const stats: IngestClientStats = {
    sent: 0, messages: 0, queued: 0, unacked: 0, acked: 0, resent: 0, droppedUnacked: 0, droppedWhileDisconnected: 0,
    connects: 0, unexpectedMessages: 0, failedSends: 0,
  };
  /** Every frame not yet acknowledged, in send order; `written` of them have gone to the current socket. */
  let kept: Kept[] = [];
  let head = 0;
  let written = 0;
  /** Whether the server speaks the resume protocol (its hello said so); frames are kept only then. */
  let resumable = false;
  let ws: WebSocket | undefined;
  /** True once the current socket may take new frames directly (hello and resume answer done). */
  let ready = false;
  let serverInstance: string | undefined;
  let attempt = 0;
  let timer: NodeJS.Timeout | undefined;
  let helloTimer: NodeJS.Timeout | undefined;
  let closing = false;
  /** Frames handed to the socket whose write callback has not come yet. */
  let inFlight = 0;
  let unwrittenBytes = 0;
  const drainWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  const settleWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];

  const live = (): number => kept.length - head;
  const refreshStats = (): void => {
    stats.unacked = resumable ? live() - countAcked() : 0;
    stats.queued = kept.length - written;
  };
  let ackedInside = 0;
  const countAcked = (): number => ackedInside;
  const settleDrains = (): void => {
    if (inFlight === 0 && written === kept.length) for (const w of drainWaiters.splice(0)) w.resolve();
    if (inFlight === 0 && written === kept.length && (!resumable || live() === ackedInside)) {
      for (const w of settleWaiters.splice(0)) w.resolve();
    }
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
    stats.messages++;
  };
  /** The frames of the batch being packed; reused, emptied after each batch so that it holds no frame for long. */
  const packing: (string | Uint8Array)[] = [];
  const messageBytes = (count: number, frameBytes: number): number =>
    binary ? binaryBatchBytes(count, frameBytes) : frameBytes + jsonBatchOverheadBytes(count);
  /** Writes the next unacknowledged kept frames from `written` on as one message; how many went. */
  const writePacked = (sock: WebSocket): number => {
    let frameBytes = 0;
    while (written < kept.length && packing.length < framesPerMessage) {
      const k = kept[written]!;
      if (k.acked) {
        written++;
        unwrittenBytes -= byteLength(k.data);
        continue;
      }
      const bytes = byteLength(k.data);
      // A frame too big to share a message still goes, alone.
      if (packing.length > 0 && messageBytes(packing.length + 1, frameBytes + bytes) > maxMessageBytes) break;
      packing.push(k.data);
      frameBytes += bytes;
      written++;
      unwrittenBytes -= bytes;
    }
    const count = packing.length;
    if (count === 1) write(sock, packing[0]!);
    else if (count > 1) {
      const data = binary ? packBinaryBatch(packing as Uint8Array[]) : packJsonBatch(packing as string[]);
      inFlight++;
      // One callback per batch (not per frame): a failed write loses all of its frames.
      sock.send(data, (err?: Error) => {
        if (err) stats.failedSends += count - 1;
        onWritten(err);
      });
      stats.sent += count;
      stats.messages++;
    }
    packing.length = 0;
    return count;
  };
  let flushScheduled: NodeJS.Immediate | undefined;
  const flush = (): void => {
    flushScheduled = undefined;
    if (ws && ready && ws.readyState === WebSocket.OPEN) writeOut(ws, false);
  };
  /** Drops acknowledged frames at the head, and compacts when most of the array is dead. */
  const compact = (): void => {
    while (head < kept.length && kept[head]!.acked) {
      head++;
      ackedInside--;
    }
    if (head > 1024 && head * 2 > kept.length) {
      kept = kept.slice(head);
      written -= head;
      head = 0;
    }
    if (written < head) written = head;
  };
  /** Lets go of every kept frame of `stream` that `mark` covers. */
  const release = (stream: string, mark: ResumeMark): void => {
    for (let i = head; i < kept.length; i++) {
      const k = kept[i]!;
      if (k.acked || k.stream !== stream || !markCovers(mark, k.kind, k.seq)) continue;
      k.acked = true;
      ackedInside++;
      stats.acked++;
      if (i >= written) unwrittenBytes -= byteLength(k.data);
    }
    compact();
    refreshStats();
    settleDrains();
  };
  /** Writes every kept frame from `written` on (skipping acknowledged ones). */
  const writeOut = (sock: WebSocket, resending: boolean): void => {
    while (packs && written < kept.length && sock.readyState === WebSocket.OPEN) {
      const count = writePacked(sock);
      if (resending) stats.resent += count;
    }
    while (written < kept.length && sock.readyState === WebSocket.OPEN) {
      const k = kept[written++]!;
      unwrittenBytes -= byteLength(k.data);
      if (k.acked) continue;
      write(sock, k.data);
      if (resending) stats.resent++;
    }
    if (!resumable) {
      // Nothing to keep for a server without acks: the written frames are gone.
      kept = kept.slice(written);
      head = 0;
      written = 0;
      ackedInside = 0;
    }
    refreshStats();
    settleDrains();
  };
  const becomeReady = (sock: WebSocket, resending: boolean): void => {
    if (ws !== sock || ready) return;
    clearTimeout(helloTimer);
    ready = true;
    writeOut(sock, resending);
    connected.next();
  };

  const onControl = (sock: WebSocket, m: { type?: unknown; [k: string]: unknown }): boolean => {
    if (m.type === 'hello') {
      const instance = typeof m.instance === 'string' ? m.instance : undefined;
      serverInstance = instance;
      resumable = m.durable === true;
      // Everything kept goes again unless the server says it has it: ask for the marks first.
      written = head;
      unwrittenBytes = 0;
      for (let i = head; i < kept.length; i++) if (!kept[i]!.acked) unwrittenBytes += byteLength(kept[i]!.data);
      const streams = [...new Set(kept.slice(head).filter((k) => !k.acked).map((k) => k.stream))];
      if (!resumable || streams.length === 0) {
        becomeReady(sock, false);
        return true;
      }
      sock.send(JSON.stringify({ type: 'resume', streams }));
      return true;
    }
    if (m.type === 'resume' || m.type === 'ack') {
      const marks: Record<string, unknown> =
        m.type === 'ack' ? { [String(m.stream)]: { seq: m.seq, pendingLabels: m.pendingLabels } } : ((m.streams ?? {}) as Record<string, unknown>);
      for (const [stream, raw] of Object.entries(marks)) {
        const mark = raw as { seq?: unknown; pendingLabels?: unknown };
        if (typeof mark?.seq !== 'number') continue;
        const pending = Array.isArray(mark.pendingLabels) ? (mark.pendingLabels as number[]) : [];
        release(stream, { seq: mark.seq, pendingLabels: pending });
      }
      if (m.type === 'resume') becomeReady(sock, true);
      return true;
    }
    return false;
  };

  const connect = (): void => {
    if (closing) return;
    const headers: Record<string, string> = {};
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const sock = new WebSocket(typeof options.url === 'function' ? options.url() : options.url, { headers });
    ws = sock;
    ready = false;
    sock.on('open', () => {
      attempt = 0;
      stats.connects++;
      // A server that predates the protocol sends no hello: then plain sends, as before.
      helloTimer = setTimeout(() => {
        resumable = false;
        becomeReady(sock, false);
      }, helloTimeoutMs);
      helloTimer.unref?.();
    });
    sock.on('message', (data, isBinary) => {
      if (isBinary) {
        stats.unexpectedMessages++;
        return;
      }
      try {
        const m = JSON.parse(data.toString()) as { type?: unknown };
        if (m && (m as ErrorReply).type === 'error') errors.next(m as ErrorReply);
        else if (!(m && onControl(sock, m as { type?: unknown }))) stats.unexpectedMessages++;
      } catch {
        stats.unexpectedMessages++;
      }
    });
    sock.on('error', () => {
      /* a 'close' follows; reconnect happens there */
    });
    sock.on('close', () => {
      clearTimeout(helloTimer);
      if (ws === sock) {
        ws = undefined;
        ready = false;
      }
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
    get serverInstance() {
      return serverInstance;
    },
    stats,
    send(frame: IngestFrame): void {
      if (closing) throw new Error('driftline ws client: send after close');
      const data = binary ? encodeBinaryFrame(frame) : encodeJsonFrame(frame);
      // The server closes a connection whose message passes its maxPayload; kept and re-sent after every reconnect,
      // such a frame would close every connection after it.
      if (byteLength(data) > maxMessageBytes) {
        throw new RangeError(
          `driftline ws client: a frame of ${byteLength(data)} bytes (stream '${frame.stream}', seq ${frame.seq}) is larger than maxMessageBytes (${maxMessageBytes}), the most one message may carry (the server's maxPayload); it was not sent`,
        );
      }
      if (live() >= maxKept) {
        // Full: let the oldest go, counted; a crash of the server could now lose it.
        const oldest = kept[head]!;
        if (!oldest.acked) {
          stats.droppedUnacked++;
          stats.droppedWhileDisconnected++;
          if (head >= written) unwrittenBytes -= byteLength(oldest.data);
          oldest.acked = true;
          ackedInside++;
        }
        compact();
      }
      const kind = frame.kind === 'drift' ? 'session' : frame.kind;
      kept.push({ stream: frame.stream, kind, seq: frame.seq, data, acked: false });
      unwrittenBytes += byteLength(data);
      if (packs) {
        // The rest of this turn's frames join it; they all leave when the turn ends.
        flushScheduled ??= setImmediate(flush);
        refreshStats();
      } else if (ws && ready && ws.readyState === WebSocket.OPEN && written === kept.length - 1) writeOut(ws, false);
      else refreshStats();
    },
    get bufferedAmount() {
      return (ws?.bufferedAmount ?? 0) + unwrittenBytes;
    },
    drain(): Promise<void> {
      if (closing) return Promise.reject(new Error('driftline ws client: drain after close'));
      return new Promise<void>((resolve, reject) => {
        drainWaiters.push({ resolve, reject });
        settleDrains();
      });
    },
    settled(): Promise<void> {
      if (closing) return Promise.reject(new Error('driftline ws client: settled after close'));
      return new Promise<void>((resolve, reject) => {
        settleWaiters.push({ resolve, reject });
        settleDrains();
      });
    },
    close(): Promise<void> {
      closing = true;
      if (timer) clearTimeout(timer);
      if (flushScheduled) clearImmediate(flushScheduled);
      clearTimeout(helloTimer);
      for (const w of drainWaiters.splice(0)) w.reject(new Error('driftline ws client: closed before its frames were written'));
      for (const w of settleWaiters.splice(0)) w.reject(new Error('driftline ws client: closed before its frames were acknowledged'));
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
