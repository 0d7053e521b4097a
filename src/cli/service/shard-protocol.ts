import type { DriftlineConfig } from '../config.js';
import { OUTBOUND_TYPES, type OutboundType } from '../../adapters/websocket/subscriber-filter.js';
import type { CheckpointMeta } from '../../streams/checkpoint-store.js';
import type { Rejection } from '../../streams/messages.js';
import type { PipelineOutput } from '../../streams/pipeline.js';
import type { StreamMarks } from '../../streams/predict-then-learn.js';

/**
 * The messages between the main thread and a shard's worker (src/cli/service/shard-pool.ts, shard-worker.ts). Inputs
 * go down through a shared ring (shard-records.ts); everything a turn of the worker produces comes back in
 * one `turn` message. Peers are numbered by the main thread; 0 is no peer.
 */

/** What a worker is started with. */
export interface ShardWorkerData {
  readonly shard: number;
  readonly shards: number;
  readonly config: DriftlineConfig;
  /** Live learners this shard may hold (its part of streams.maxStreams). */
  readonly maxStreams: number;
  /** This shard's checkpoints in the store (its streams only). */
  readonly checkpointed: readonly CheckpointMeta[];
  /** Per stream, the highest seq predicted before this worker started (the journal's marks). */
  readonly predictedBefore: ReadonlyMap<string, number>;
  /** The ring its inputs come through (shard-records.ts). */
  readonly ring: SharedArrayBuffer;
  /**
   * One Int32 shared by all shards: a bit per outbound type (outboundTypeBit) some subscriber wants, so only those
   * are encoded. Shared memory, not a message, so that it is never behind the inputs it applies to: the main
   * thread stores it before it publishes the ring.
   */
  readonly wantedTypes: SharedArrayBuffer;
}

const TYPE_BITS = Object.fromEntries(OUTBOUND_TYPES.map((type, i) => [type, 1 << i])) as Record<OutboundType, number>;

/** The bit of an outbound type in ShardWorkerData.wantedTypes. */
export function outboundTypeBit(type: OutboundType): number {
  return TYPE_BITS[type];
}

export type ToShard =
  | { readonly type: 'marks'; readonly id: number; readonly streams: readonly string[] | undefined }
  | { readonly type: 'metrics'; readonly id: number }
  /** The answer to a barrier: every turn sent before it has been published. */
  | { readonly type: 'barrier'; readonly id: number }
  | { readonly type: 'stop' };

/** One turn's results. Arrays are parallel; empty ones are left out. */
export interface ShardTurn {
  readonly type: 'turn';
  /** Inputs taken off the records this turn (processed or held for a checkpoint load). */
  readonly consumed: number;
  /** Encoded outputs for subscribers, in output order. */
  readonly kinds?: PipelineOutput['kind'][];
  readonly streams?: (string | undefined)[];
  readonly texts?: string[];
  /** Predictions: stream, seq and receivedAt (ms since the epoch, NaN when not stamped), for the journal and latency. */
  readonly predictedStreams?: string[];
  readonly predictedSeqs?: number[];
  readonly predictedReceivedAt?: number[];
  /** Outputs of shown streams for the dashboard, and their learners' state bytes. */
  readonly shown?: PipelineOutput[];
  readonly stateBytes?: [string, number][];
  readonly replies?: [number, Rejection][];
  readonly acks?: [number, { type: 'ack'; stream: string; seq: number; pendingLabels: readonly number[] }][];
  readonly pause?: number[];
  readonly resume?: number[];
}

export type FromShard =
  | ShardTurn
  | { readonly type: 'ready' }
  /** Sent after a turn whose checkpoints wait: answer once the turns before it are published. */
  | { readonly type: 'barrier'; readonly id: number }
  | { readonly type: 'marks'; readonly id: number; readonly marks: Record<string, StreamMarks> }
  | { readonly type: 'metrics'; readonly id: number; readonly metrics: unknown }
  | { readonly type: 'stopped'; readonly checkpointsSaved?: number; readonly checkpointsFailed?: number; readonly flushFailed: boolean }
  | { readonly type: 'failed'; readonly message: string };
