/**
 * Where learner checkpoints go (DESIGN section 1: "checkpoint --> changelog (kafka compacted topic | file)").
 * A store keeps the newest checkpoint per stream key and nothing else, like a compacted changelog: saving a
 * stream's checkpoint replaces its previous one. The file store lives in file-checkpoint-store.ts; a Kafka
 * compacted-topic store is meant to implement the same interface, so the checkpoint operator knows neither.
 *
 * A checkpoint that cannot be read is quarantined, never overwritten (DESIGN section 7): the store moves it aside
 * where an operator can inspect it, and the stream's next save starts a fresh entry.
 */

/** What a snapshot reflects, so a restarted worker knows where the learner's knowledge ends. */
export interface CheckpointMeta {
  readonly stream: string;
  /**
   * The stream's durable high-water mark (DESIGN section 6): the highest tick seq whose frame the learner had
   * fully processed when the snapshot was taken (predicted, and learned the label the frame itself carried).
   * A tick at or below it is never learned again after a restore.
   */
  readonly lastSeq: number;
  /** learner.version (updates applied) in the snapshot. */
  readonly version: number;
  /** learner.tick (index of the last predicted tick) in the snapshot. */
  readonly tick: number;
  /** Date.now() when the snapshot was taken. */
  readonly savedAt: number;
  /**
   * Seqs of ticks at or below `lastSeq` whose label had not arrived when the snapshot was taken. The learner
   * still waits for them, so the resume protocol asks producers to re-send exactly these labels. Absent or
   * empty: none pending. Non-negative safe integers, at most MAX_PENDING_LABELS of them.
   */
  readonly pendingLabels?: readonly number[];
}

/** Most pending label seqs one checkpoint carries (a learner's label window is far smaller). */
export const MAX_PENDING_LABELS = 65536;

/** One stream's state: `snapshot` is `learner.snapshot()`, restorable with `learner.restore`. */
export interface StoredCheckpoint {
  readonly meta: CheckpointMeta;
  readonly snapshot: Uint8Array;
  /**
   * Per-stream state of pipeline operators beyond the learner, by operator name (e.g. 'predict-then-learn',
   * 'normalize-inputs'). Opaque bytes to the store, which keeps them with the snapshot so the two never
   * disagree. Stores return no `parts` for a checkpoint that has none.
   */
  readonly parts?: ReadonlyMap<string, Uint8Array>;
}

/**
 * Why a checkpoint could not be used: a closed set, for logs and metrics (the `defect` label of
 * driftline_checkpoints_quarantined_total). 'foreign-spec' is never found by a store: callers use it when the
 * snapshot is intact but belongs to a learner with another spec.
 */
export type CheckpointDefect =
  | 'truncated'
  | 'bad-magic'
  | 'unsupported-format'
  | 'crc-mismatch'
  | 'bad-meta'
  | 'misplaced'
  | 'unreadable'
  | 'foreign-spec';

/**
 * A stream's checkpoint that cannot be read. Not retriable: the bytes will not improve. When the store already
 * moved the file aside, `quarantined` says where to; the stream's next save then writes a fresh entry.
 */
export class CheckpointDefectError extends Error {
  override readonly name = 'CheckpointDefectError';
  readonly retriable = false;
  constructor(
    readonly defect: CheckpointDefect,
    /** The checkpoint's location where it was found (a file path for the file store). */
    readonly file: string,
    message: string,
    readonly quarantined?: string,
  ) {
    super(message);
  }
}

/**
 * Durable newest-checkpoint-per-stream storage.
 *
 * - `save` resolves once the checkpoint is durable and replaces the stream's previous one; it rejects when it
 *   could not be written (the previous one then stays).
 * - `loadAll` returns the newest complete checkpoint of every stream, keyed by `meta.stream`. Damaged entries
 *   are moved to quarantine and reported, never a reason to reject and never left to be overwritten.
 * - `list` returns the meta of every stream's checkpoint without reading the snapshots, for a service that
 *   restores streams lazily; entries it can already tell are damaged are quarantined as by loadAll.
 * - `load` reads and verifies one stream's checkpoint: undefined when there is none; a damaged one is quarantined
 *   and rejects with a CheckpointDefectError.
 * - `quarantine` moves the stream's current checkpoint aside (a caller found it unusable, e.g. 'foreign-spec')
 *   and returns where it went; it rejects when the stream has none. Quarantined entries are never overwritten.
 */
export interface CheckpointStore {
  save(checkpoint: StoredCheckpoint): Promise<void>;
  loadAll(): Promise<Map<string, StoredCheckpoint>>;
  list(): Promise<Map<string, CheckpointMeta>>;
  load(stream: string): Promise<StoredCheckpoint | undefined>;
  quarantine(stream: string, defect: string, detail: string): Promise<string>;
}
