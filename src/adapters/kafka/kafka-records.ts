// What a Kafka record means to driftline: an input frame in, a prediction out (DESIGN section 6).
import { decodeFrame, encodeOutbound, type ShapeResolver } from '../websocket/frames.js';
import { rejection, type Prediction, type Rejection, type StreamInput } from '../../streams/messages.js';

/** Where a record sits: what a checkpoint reflects and what a prediction's headers name. */
export interface RecordPosition {
  readonly topic: string;
  readonly partition: number;
  /** Kafka's offset, a decimal string (int64). */
  readonly offset: string;
}

export interface KafkaRecordLimits {
  /** Records longer than this many bytes are refused as 'oversized' before parsing. */
  readonly maxFrameBytes?: number;
  readonly receivedAt?: number;
}

/**
 * The input frame a record holds. The key is the stream (DESIGN section 6): it decides the partition, so a
 * stream's records stay in order. The value is one frame of the WebSocket protocol (docs/websocket-frames.md):
 * the little-endian binary frame, or its JSON text. The frame's own stream must be the key: a record whose frame
 * names another stream would be ordered with the wrong ones. Batches and control messages do not travel on Kafka
 * (a record is already the unit of a batch), and a record without key or value is refused, named.
 */
export function decodeKafkaRecord(
  key: Buffer | null,
  value: Buffer | null,
  resolver: ShapeResolver,
  limits: KafkaRecordLimits = {},
): StreamInput | Rejection {
  if (key === null || key.length === 0) return rejection('malformed', 'record has no key: the key names the stream');
  const stream = key.toString('utf8');
  if (value === null) return rejection('malformed', `record of stream '${stream}' has no value (a tombstone is not a frame)`, stream);
  const decoded = decodeFrame(value, resolver, limits);
  if (decoded.kind === 'rejected') return decoded.stream === undefined ? { ...decoded, stream } : decoded;
  if (decoded.stream !== stream) {
    const seq = 'seq' in decoded ? decoded.seq : undefined;
    return rejection('malformed', `record keyed '${stream}' holds a frame of stream '${decoded.stream}': the key must name the frame's stream`, stream, seq);
  }
  return decoded;
}

/** Header names of a prediction record. */
export const PREDICTION_HEADERS = {
  modelVersion: 'driftline-model-version',
  sourceTopic: 'driftline-source-topic',
  sourcePartition: 'driftline-source-partition',
  sourceOffset: 'driftline-source-offset',
  replayed: 'driftline-replayed',
} as const;

/** The headers naming the input record a record comes from (a prediction, a dead letter, a forwarded label). */
export function sourceHeaders(source: RecordPosition): Record<string, string> {
  return {
    [PREDICTION_HEADERS.sourceTopic]: source.topic,
    [PREDICTION_HEADERS.sourcePartition]: String(source.partition),
    [PREDICTION_HEADERS.sourceOffset]: source.offset,
  };
}

/**
 * A prediction as a record: key = stream, value = the JSON a WebSocket subscriber gets, headers naming the model
 * version and the input record it answers (and, for a tick predicted again after a crash, that it is a replay).
 */
export function predictionRecord(
  prediction: Prediction,
  source: RecordPosition,
): { key: string; value: string; headers: Record<string, string> } {
  const headers = sourceHeaders(source);
  headers[PREDICTION_HEADERS.modelVersion] = String(prediction.version);
  if (prediction.replayed === true) headers[PREDICTION_HEADERS.replayed] = 'true';
  return { key: prediction.stream, value: encodeOutbound(prediction), headers };
}
