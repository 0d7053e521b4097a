// An in-memory CheckpointStore for pipeline tests: the newest checkpoint per stream, what was quarantined, and
// every save in order.
import type { CheckpointMeta, CheckpointStore, StoredCheckpoint } from '../../src/streams/checkpoint-store.js';

export class MemoryCheckpointStore implements CheckpointStore {
  readonly saved = new Map<string, StoredCheckpoint>();
  readonly saves: StoredCheckpoint[] = [];
  readonly quarantined: Array<{ stream: string; defect: string; checkpoint: StoredCheckpoint }> = [];

  async save(checkpoint: StoredCheckpoint): Promise<void> {
    this.saves.push(checkpoint);
    this.saved.set(checkpoint.meta.stream, checkpoint);
  }

  async loadAll(): Promise<Map<string, StoredCheckpoint>> {
    return new Map(this.saved);
  }

  async list(): Promise<Map<string, CheckpointMeta>> {
    return new Map([...this.saved].map(([k, c]) => [k, c.meta]));
  }

  async load(stream: string): Promise<StoredCheckpoint | undefined> {
    return this.saved.get(stream);
  }

  async quarantine(stream: string, defect: string): Promise<string> {
    const checkpoint = this.saved.get(stream);
    if (checkpoint === undefined) throw new Error(`no checkpoint of ${stream}`);
    this.saved.delete(stream);
    this.quarantined.push({ stream, defect, checkpoint });
    return `memory:quarantine/${stream}`;
  }
}
