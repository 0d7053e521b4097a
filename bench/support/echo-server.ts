// The floor of the `streams` bench section (bench/streams.ts): a trivial WebSocket server that takes the same ingest
// frames as `driftline run` and answers each tick with a prediction message of the same shape, with no learner
// behind it. Per frame it does what any server of this protocol must: the ws receive (unmasking), the decode of
// the frame with the same codec the service uses (src/adapters/websocket/frames.ts: JSON.parse and validation for
// text frames, the little-endian binary decode for binary ones), a running mean of each stream's labels as its
// "prediction" (predicted before the tick's own label is added, as a learner would), encodeOutbound and the send
// to every /predictions subscriber (skipping one whose bufferedAmount is above 1 MiB and counting the drop, as the
// service does). It keeps no order checks, metrics, logs, drift detection or evaluation.
//
//   node --import tsx bench/support/echo-server.ts [--inputs 96] [--outputs 2] [--host 127.0.0.1] [--port 0] [--exit-with-stdin]
//
// When listening it prints one JSON line on stdout: {"msg":"echo ready","ingest":"ws://.../ingest","predictions":
// "ws://.../predictions"}. On SIGTERM or SIGINT (or, with --exit-with-stdin, when its stdin ends) it closes, prints
// {"msg":"echo stopped", accepted, rejected, published, dropped} and exits 0.
import { parseArgs } from 'node:util';
import type { IncomingMessage } from 'node:http';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { decodeIngestMessageFrames, encodeErrorReply, encodeOutbound, type IngestMessage, type StreamShape } from '../../src/adapters/websocket/frames.js';
import type { Rejection } from '../../src/streams/messages.js';

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '96' },
    outputs: { type: 'string', default: '2' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'exit-with-stdin': { type: 'boolean', default: false },
  },
  strict: true,
});
const shape: StreamShape = { inputSize: Number(values.inputs), outputSize: Number(values.outputs) };
const MAX_BUFFERED_BYTES = 1024 * 1024;

/** A stream's running mean of its labels, and how many labels it holds. */
interface StreamMean {
  n: number;
  readonly mean: Float64Array;
}
const streams = new Map<string, StreamMean>();
const stats = { accepted: 0, rejected: 0, published: 0, dropped: 0 };
const subscribers = new Set<WebSocket>();

/** A message may hold several frames (a batch), each served as if it came alone, as driftline does. */
function onMessage(producer: WebSocket, data: RawData, isBinary: boolean): void {
  decodeIngestMessageFrames(isBinary ? (data as Buffer) : data.toString(), () => shape, (r) => onFrame(producer, r));
}

function onFrame(producer: WebSocket, r: IngestMessage | Rejection): void {
  if (r.kind === 'rejected') {
    stats.rejected++;
    if (producer.readyState === WebSocket.OPEN) producer.send(encodeErrorReply(r));
    return;
  }
  stats.accepted++;
  if (r.kind !== 'tick') return;
  let s = streams.get(r.stream);
  if (s === undefined) streams.set(r.stream, (s = { n: 0, mean: new Float64Array(shape.outputSize) }));
  const yhat = Float32Array.from(s.mean);
  const version = s.n;
  if (r.y !== undefined) {
    s.n++;
    for (let i = 0; i < s.mean.length; i++) s.mean[i]! += (r.y[i]! - s.mean[i]!) / s.n;
  }
  if (subscribers.size === 0) return;
  const text = encodeOutbound({ kind: 'prediction', stream: r.stream, seq: r.seq, t: r.t, yhat, version, predictedAt: performance.now() });
  stats.published++;
  for (const sub of subscribers) {
    if (sub.readyState !== WebSocket.OPEN) continue;
    if (sub.bufferedAmount > MAX_BUFFERED_BYTES) {
      stats.dropped++;
      continue;
    }
    sub.send(text);
  }
}

const wss = new WebSocketServer({ host: values.host, port: Number(values.port), perMessageDeflate: false, maxPayload: 1024 * 1024 });
wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
  ws.on('error', () => {});
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/predictions') {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
  } else if (path === '/ingest') {
    ws.on('message', (data, isBinary) => onMessage(ws, data, isBinary));
  } else {
    ws.close(1008, 'use /ingest or /predictions');
  }
});
wss.once('listening', () => {
  const { port } = wss.address() as { port: number };
  const base = `ws://${values.host}:${port}`;
  process.stdout.write(`${JSON.stringify({ msg: 'echo ready', ingest: `${base}/ingest`, predictions: `${base}/predictions`, pid: process.pid })}\n`);
});
wss.once('error', (err) => {
  process.stderr.write(`echo server: ${err.message}\n`);
  process.exit(2);
});

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  for (const c of wss.clients) c.terminate();
  wss.close(() => {
    process.stdout.write(`${JSON.stringify({ msg: 'echo stopped', ...stats, streams: streams.size })}\n`, () => process.exit(0));
  });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Started by the bench with a pipe on stdin (--exit-with-stdin): when the bench goes, so does this server.
if (values['exit-with-stdin']) {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
