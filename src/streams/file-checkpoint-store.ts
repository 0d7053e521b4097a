import { crc32 } from 'node:zlib';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { CheckpointMeta, CheckpointStore, StoredCheckpoint } from './checkpoint-store.js';

/**
 * Checkpoints as files, one per stream, in one directory.
 *
 * File format (version 1), little-endian:
 *
 *   offset 0   u32  magic 0x4b434c44 ('DLCK')
 *          4   u32  format version (1)
 *          8   u32  L: byte length of the meta JSON
 *         12   L    meta JSON, UTF-8 ({ stream, lastSeq, version, tick, savedAt })
 *     12 + L   ...  the learner snapshot, up to 4 bytes before the end
 *     end - 4  u32  CRC-32 (IEEE, as zlib and PNG) of every byte before it
 *
 * A save is atomic: the bytes go to a temp file in the same directory (name starting with `.tmp-`), are
 * fsynced, renamed over the stream's file, and the directory is fsynced where the platform allows it. A crash
 * at any point leaves the stream's previous complete file, and at worst a temp file, which `loadAll` removes.
 * One writing process per directory: `loadAll` treats temp files it did not create itself as crash leftovers.
 */

/** Extension of checkpoint files; other files in the directory are left alone. */
export const CHECKPOINT_FILE_EXTENSION = '.ckpt';
/** Prefix of in-progress writes; such a file that outlives its writer is a crash leftover. */
export const CHECKPOINT_TEMP_PREFIX = '.tmp-';

const MAGIC = 0x4b434c44;
const FORMAT = 1;
const HEADER_BYTES = 12;
const CRC_BYTES = 4;
/** Keys up to this many bytes are spelled out in hex (file names up to 199 characters); longer ones are hashed. */
const MAX_DIRECT_KEY_BYTES = 96;

/** Why a checkpoint file was skipped by `loadAll`: a closed set, for logs and metrics. */
export type CheckpointDefect =
  | 'truncated'
  | 'bad-magic'
  | 'unsupported-format'
  | 'crc-mismatch'
  | 'bad-meta'
  | 'misplaced'
  | 'unreadable';

/** A checkpoint file `loadAll` skipped. The file is left in place for inspection; the next save replaces it. */
export interface CorruptCheckpoint {
  /** Absolute path of the file. */
  readonly file: string;
  readonly defect: CheckpointDefect;
  readonly message: string;
}

export interface FileCheckpointStoreOptions {
  /**
   * Called by `loadAll` for every checkpoint file it skips. Default: a process warning per file, so damage is
   * never silent. An exception thrown here makes `loadAll` reject.
   */
  readonly onCorrupt?: (problem: CorruptCheckpoint) => void;
}

/**
 * A CheckpointStore over a directory (created, with its parents, if missing). Stream keys map to file names
 * through `checkpointFileName`, so any key, including '../x', '/', '' or a long unicode one, stays a distinct
 * file inside the directory.
 */
export class FileCheckpointStore implements CheckpointStore {
  /** The directory, resolved to an absolute path. */
  readonly dir: string;
  private readonly onCorrupt: (problem: CorruptCheckpoint) => void;
  /** Temp files of this store's writes in progress, which loadAll must not take for crash leftovers. */
  private readonly ownTemps = new Set<string>();
  private tempCounter = 0;

  constructor(dir: string, options: FileCheckpointStoreOptions = {}) {
    if (typeof dir !== 'string' || dir.length === 0) {
      throw new TypeError(`FileCheckpointStore: dir must be a non-empty path, got ${String(dir)}`);
    }
    const onCorrupt = options?.onCorrupt;
    if (onCorrupt !== undefined && typeof onCorrupt !== 'function') {
      throw new TypeError('FileCheckpointStore: onCorrupt must be a function');
    }
    this.dir = resolve(dir);
    // Synchronous on purpose: a directory that cannot be made is a configuration error, reported at creation.
    mkdirSync(this.dir, { recursive: true });
    this.onCorrupt = onCorrupt ?? warnCorrupt;
  }

  /** Writes the stream's checkpoint atomically, replacing its previous one; rejects if it could not. */
  async save(checkpoint: StoredCheckpoint): Promise<void> {
    const bytes = encodeCheckpoint(checkpoint);
    const target = join(this.dir, checkpointFileName(checkpoint.meta.stream));
    const temp = join(this.dir, `${CHECKPOINT_TEMP_PREFIX}${process.pid}-${++this.tempCounter}`);
    this.ownTemps.add(temp);
    try {
      const handle = await open(temp, 'wx');
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    } finally {
      this.ownTemps.delete(temp);
    }
    await this.syncDir();
  }

  /**
   * Every stream's checkpoint, keyed by stream. Damaged files are skipped and reported through `onCorrupt`;
   * temp files left by a crashed writer are removed; files without the checkpoint extension are ignored.
   * Rejects only when the directory itself cannot be listed (a missing directory is empty).
   */
  async loadAll(): Promise<Map<string, StoredCheckpoint>> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    names.sort();
    const loaded = new Map<string, StoredCheckpoint>();
    for (const name of names) {
      const file = join(this.dir, name);
      if (name.startsWith(CHECKPOINT_TEMP_PREFIX)) {
        if (!this.ownTemps.has(file)) await unlink(file).catch(() => undefined);
        continue;
      }
      if (!name.endsWith(CHECKPOINT_FILE_EXTENSION)) continue;
      let bytes: Uint8Array;
      try {
        bytes = await readFile(file);
      } catch (err) {
        this.onCorrupt({ file, defect: 'unreadable', message: `cannot read ${file}: ${(err as Error).message}` });
        continue;
      }
      const decoded = decodeCheckpoint(bytes);
      if ('defect' in decoded) {
        this.onCorrupt({ file, defect: decoded.defect, message: `${file}: ${decoded.message}` });
        continue;
      }
      const expected = checkpointFileName(decoded.meta.stream);
      if (expected !== name) {
        this.onCorrupt({ file, defect: 'misplaced', message: `${file} holds stream ${JSON.stringify(decoded.meta.stream)}, whose file is ${expected}` });
        continue;
      }
      loaded.set(decoded.meta.stream, decoded);
    }
    return loaded;
  }

  /** Makes the rename durable. Some platforms (Windows) cannot open or fsync a directory: that is not an error. */
  private async syncDir(): Promise<void> {
    let handle;
    try {
      handle = await open(this.dir, 'r');
    } catch (err) {
      if (dirSyncUnsupported(err)) return;
      throw err;
    }
    try {
      await handle.sync();
    } catch (err) {
      if (!dirSyncUnsupported(err)) throw err;
    } finally {
      await handle.close();
    }
  }
}

function dirSyncUnsupported(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'EISDIR' || code === 'EPERM' || code === 'EACCES' || code === 'EINVAL' || code === 'ENOTSUP';
}

function warnCorrupt(problem: CorruptCheckpoint): void {
  process.emitWarning(`skipped checkpoint (${problem.defect}): ${problem.message}`, 'CheckpointWarning');
}

/**
 * The file name of a stream's checkpoint: distinct for distinct keys, a safe single path component on every
 * platform, at most 199 characters. Keys of up to 96 bytes are spelled out in lowercase hex (lowercase, so names
 * stay distinct on case-insensitive file systems): `k-<hex of UTF-8>.ckpt`, or `u-<hex of UTF-16LE>.ckpt` for
 * a key with unpaired surrogates (which UTF-8 cannot carry, and would merge). Longer keys become
 * `h-<SHA-256 of the tagged bytes>.ckpt`. The full key is also inside the file.
 */
export function checkpointFileName(stream: string): string {
  if (typeof stream !== 'string') throw new TypeError(`checkpoint stream key must be a string, got ${typeof stream}`);
  const wellFormed = isWellFormedUtf16(stream);
  const tag = wellFormed ? 'k' : 'u';
  const bytes = Buffer.from(stream, wellFormed ? 'utf8' : 'utf16le');
  if (bytes.length <= MAX_DIRECT_KEY_BYTES) return `${tag}-${bytes.toString('hex')}${CHECKPOINT_FILE_EXTENSION}`;
  const digest = createHash('sha256').update(tag).update(bytes).digest('hex');
  return `h-${digest}${CHECKPOINT_FILE_EXTENSION}`;
}

function isWellFormedUtf16(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return false;
    const next = s.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/** CRC-32 (IEEE, as zlib, gzip and PNG): Node's own (node:zlib, Node >= 20.15). */
export { crc32 };

function encodeCheckpoint(checkpoint: StoredCheckpoint): Uint8Array {
  if (checkpoint == null || typeof checkpoint !== 'object') throw new TypeError('checkpoint must be an object');
  const { meta, snapshot } = checkpoint;
  const problem = metaProblem(meta);
  if (problem) throw new TypeError(`checkpoint meta: ${problem}`);
  if (!(snapshot instanceof Uint8Array)) throw new TypeError('checkpoint snapshot must be a Uint8Array');
  const { stream, lastSeq, version, tick, savedAt } = meta;
  const metaJson = Buffer.from(JSON.stringify({ stream, lastSeq, version, tick, savedAt }), 'utf8');
  const total = HEADER_BYTES + metaJson.length + snapshot.length + CRC_BYTES;
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, FORMAT, true);
  view.setUint32(8, metaJson.length, true);
  bytes.set(metaJson, HEADER_BYTES);
  bytes.set(snapshot, HEADER_BYTES + metaJson.length);
  view.setUint32(total - CRC_BYTES, crc32(bytes.subarray(0, total - CRC_BYTES)), true);
  return bytes;
}

function decodeCheckpoint(bytes: Uint8Array): StoredCheckpoint | { defect: CheckpointDefect; message: string } {
  if (bytes.length < HEADER_BYTES + CRC_BYTES) return { defect: 'truncated', message: `only ${bytes.length} bytes` };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) return { defect: 'bad-magic', message: 'not a driftline checkpoint file' };
  const format = view.getUint32(4, true);
  if (format !== FORMAT) return { defect: 'unsupported-format', message: `format ${format}, this build reads ${FORMAT}` };
  const metaLength = view.getUint32(8, true);
  const end = bytes.length - CRC_BYTES;
  if (HEADER_BYTES + metaLength > end) {
    return { defect: 'truncated', message: `meta of ${metaLength} bytes does not fit in ${bytes.length} bytes` };
  }
  const stored = view.getUint32(end, true);
  const actual = crc32(bytes.subarray(0, end));
  if (stored !== actual) {
    return { defect: 'crc-mismatch', message: `CRC-32 is ${hex32(actual)}, the file says ${hex32(stored)} (truncated or damaged)` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + HEADER_BYTES, metaLength).toString('utf8'));
  } catch (err) {
    return { defect: 'bad-meta', message: `meta is not JSON: ${(err as Error).message}` };
  }
  const problem = metaProblem(parsed);
  if (problem) return { defect: 'bad-meta', message: problem };
  const { stream, lastSeq, version, tick, savedAt } = parsed as CheckpointMeta;
  // A copy into a plain Uint8Array (Buffer#slice would be a view that pins the whole file buffer).
  const snapshot = new Uint8Array(end - HEADER_BYTES - metaLength);
  snapshot.set(bytes.subarray(HEADER_BYTES + metaLength, end));
  return { meta: { stream, lastSeq, version, tick, savedAt }, snapshot };
}

/** What is wrong with a meta object, or null when it is a valid CheckpointMeta. */
function metaProblem(meta: unknown): string | null {
  if (meta == null || typeof meta !== 'object') return 'meta must be an object';
  const m = meta as Record<string, unknown>;
  if (typeof m.stream !== 'string') return 'stream must be a string';
  for (const field of ['lastSeq', 'version', 'tick', 'savedAt'] as const) {
    const v = m[field];
    if (typeof v !== 'number' || !Number.isFinite(v)) return `${field} must be a finite number, got ${String(v)}`;
  }
  return null;
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
