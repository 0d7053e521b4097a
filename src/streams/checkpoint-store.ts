/**
 * Where learner checkpoints go (DESIGN section 1: "checkpoint --> changelog (kafka compacted topic | file)").
 * A store keeps the newest checkpoint per stream key and nothing else, like a compacted changelog: saving a
 * stream's checkpoint replaces its previous one. The file store lives in file-checkpoint-store.ts; a Kafka
 * compacted-topic store is meant to implement the same interface, so the checkpoint operator knows neither.
 */

/** What a snapshot reflects, so a restarted worker knows where the learner's knowledge ends. */
export interface CheckpointMeta {
  readonly stream: string;
  /** Seq of the last tick the learner had predicted when the snapshot was taken. */
  readonly lastSeq: number;
  /** learner.version (updates applied) in the snapshot. */
  readonly version: number;
  /** learner.tick (index of the last predicted tick) in the snapshot. */
  readonly tick: number;
  /** Date.now() when the snapshot was taken. */
  readonly savedAt: number;
}

/** One stream's learner state: `snapshot` is `learner.snapshot()`, restorable with `learner.restore`. */
export interface StoredCheckpoint {
  readonly meta: CheckpointMeta;
  readonly snapshot: Uint8Array;
}

/**
 * Durable newest-checkpoint-per-stream storage. `save` resolves once the checkpoint is durable and replaces the
 * stream's previous one; it rejects when it could not be written (the previous one then stays). `loadAll`
 * returns the newest complete checkpoint of every stream, keyed by `meta.stream`; damaged entries are the
 * store's to skip and report, never a reason to reject.
 */
export interface CheckpointStore {
  save(checkpoint: StoredCheckpoint): Promise<void>;
  loadAll(): Promise<Map<string, StoredCheckpoint>>;
}
