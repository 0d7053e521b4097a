// The ingest connection of a bench's producer worker: connect, counting the error replies the server sends back,
// and close. The producers are eval'd plain JavaScript (they need no loader and start fast), so this is source to
// put at the top of one, not a module it can import; the pacing around it is each section's own.
import { createRequire } from 'node:module';
import type { FailedReply, LoadedReply } from './worker-replies.js';

export interface ProducerSocketOptions {
  /**
   * Masks every frame with a zero key (ws's generateMask), which spares the generator the XOR at high rates; the
   * server unmasks every frame all the same.
   */
  readonly zeroMask: boolean;
  /** Terminates the socket when its close handshake takes longer, so that a server going away cannot hang the next run. */
  readonly closeTimeoutMs: number | undefined;
}

/** What PRODUCER_SOCKET_JS reads from workerData.socket. */
export function producerSocketData(options: ProducerSocketOptions): ProducerSocketOptions & { readonly wsModule: string } {
  // The worker runs without this process's loader, so it gets ws by its resolved path.
  return { ...options, wsModule: createRequire(import.meta.url).resolve('ws') };
}

export type ProducerSocketCommand = { readonly cmd: 'connect'; readonly url: string } | { readonly cmd: 'close' };
export type ProducerSocketReply =
  | LoadedReply
  | FailedReply
  | { readonly kind: 'open' }
  | { readonly kind: 'closed'; readonly errorReplies: number; readonly firstError: string | undefined };

/**
 * Defines workerData, parentPort, WebSocket, the socket `ws`, and socketCommand(m), which handles connect (-> 'open')
 * and close (-> 'closed' with the error replies the server sent) and returns false for any other command.
 */
export const PRODUCER_SOCKET_JS = `
const { workerData, parentPort } = require('node:worker_threads');
const WebSocket = require(workerData.socket.wsModule);
const { zeroMask, closeTimeoutMs } = workerData.socket;
const wsOptions = zeroMask
  ? { perMessageDeflate: false, generateMask: (mask) => { mask[0] = 0; mask[1] = 0; mask[2] = 0; mask[3] = 0; } }
  : { perMessageDeflate: false };
let ws;
let errorReplies = 0;
let firstError;
function socketCommand(m) {
  if (m.cmd === 'connect') {
    errorReplies = 0;
    firstError = undefined;
    ws = new WebSocket(m.url, wsOptions);
    ws.on('error', (e) => parentPort.postMessage({ kind: 'failed', message: String((e && e.message) || e) }));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let o;
      try { o = JSON.parse(String(data)); } catch { return; }
      if (o && o.type === 'error') { errorReplies++; if (firstError === undefined) firstError = o.reason + ': ' + o.message; }
    });
    ws.on('open', () => parentPort.postMessage({ kind: 'open' }));
    return true;
  }
  if (m.cmd === 'close') {
    const closed = () => parentPort.postMessage({ kind: 'closed', errorReplies, firstError });
    if (ws && ws.readyState === WebSocket.OPEN) {
      const timer = closeTimeoutMs === undefined ? undefined : setTimeout(() => { ws.terminate(); }, closeTimeoutMs);
      ws.once('close', () => { clearTimeout(timer); closed(); });
      ws.close();
    } else closed();
    return true;
  }
  return false;
}
`;
