import { crc32 } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { threadId } from 'node:worker_threads';
import {
  CheckpointDefectError, MAX_PENDING_LABELS,
  type CheckpointDefect, type CheckpointMeta, type CheckpointStore, type StoredCheckpoint,
} from './checkpoint-store.js';

export { CheckpointDefectError, type CheckpointDefect } from './checkpoint-store.js';

/**
 * Checkpoints as files, one per stream, in one directory.
 *
 * File format, version 2 (what this build writes), little-endian:
 *
 *   offset 0        u32  magic 0x4b434c44 ('DLCK')
 *          4        u32  format version (2)
 *          8        u32  L: byte length of the meta JSON
 *         12        L    meta JSON, UTF-8: { stream, lastSeq, version, tick, savedAt, pendingLabels?,
 *                        layout: { snapshotBytes: S, partsBytes: P } }
 *     12 + L        S    the learner snapshot
 *     12 + L + S    P    parts: u32 count, then per part: u16 name length N, N bytes UTF-8 name,
 *                        u32 byte length B, B bytes
 *     end - 4       u32  CRC-32 (IEEE, as zlib and PNG) of every byte before it
 *
 * The sizes live in the meta JSON so that the 12-byte header keeps the shape of format 1, and so that `list`
 * learns everything it checks (the file's exact length is 12 + L + S + P + 4) from the first 12 + L bytes and a
 * stat, without reading the snapshot. Format 1 (still read, never written) is the same without `layout` and
 * without the parts section: the snapshot runs from 12 + L up to the CRC.
 *
 * A save is atomic: the bytes go to a temp file in the same directory (name starting with `.tmp-`), are
 * fsynced, renamed over the stream's file, and the directory is fsynced where the platform allows it. A crash
 * (or a second SIGINT ending the shutdown flush) at any point leaves the stream's previous complete file, and at
 * worst a temp file, which `loadAll` and `list` remove. One writing process per directory: they treat temp files
 * of other processes as crash leftovers (the threads of one process, shards writing disjoint streams, keep each
 * other's; a dead thread's are removed at the next start).
 *
 * A file that cannot be used is never overwritten: it is moved into `<dir>/quarantine/` as
 * `<file name>.<UTC time>.<defect>` (plus `.<n>` should that name be taken), beside a `.txt` note of why.
 */

/** Extension of checkpoint files; other files in the directory are left alone. */
export const CHECKPOINT_FILE_EXTENSION = '.ckpt';
/** Prefix of in-progress writes; such a file that outlives its writer is a crash leftover. */
export const CHECKPOINT_TEMP_PREFIX = '.tmp-';
/** Temp names of this process: its pid, then the thread (shards of one process write the same directory). */
const THIS_PROCESS_TEMPS = `${CHECKPOINT_TEMP_PREFIX}${process.pid}-`;
/** Subdirectory of the store's directory that holds quarantined files. */
export const QUARANTINE_DIR_NAME = 'quarantine';
/** The file format this build writes. */
export const CHECKPOINT_FORMAT = 2;

const MAGIC = 0x4b434c44;
const READABLE_FORMATS: ReadonlySet<number> = new Set([1, 2]);
const HEADER_BYTES = 12;
const CRC_BYTES = 4;
/** Keys up to this many bytes are spelled out in hex (file names up to 199 characters); longer ones are hashed. */
const MAX_DIRECT_KEY_BYTES = 96;
/** One read usually holds header and meta; a meta longer than this costs a second read. */
const HEAD_READ_BYTES = 4096;
/** Files `list` reads at once: enough to keep the thread pool busy, few enough not to exhaust descriptors. */
const LIST_CONCURRENCY = 16;
const MAX_PART_NAME_BYTES = 0xffff;
const MAX_U32 = 0xffffffff;

/** A checkpoint file `loadAll` or `list` found damaged and moved to quarantine. */
export interface CorruptCheckpoint {
  /** Absolute path of the file now, in the quarantine directory. */
  readonly file: string;
  /** Absolute path where it was found. */
  readonly original: string;
  readonly defect: CheckpointDefect;
  /** Names the original file and the problem. */
  readonly message: string;
}

export interface FileCheckpointStoreOptions {
  /**
   * Called by `loadAll` and `list` for every checkpoint file they quarantine. Default: a process warning per
   * file, so damage is never silent. An exception thrown here makes the call reject. (`load` and `quarantine`
   * report through their own result instead.)
   */
  readonly onCorrupt?: (problem: CorruptCheckpoint) => void;
}

/** The parts of a checkpoint file that `list` reads: header and meta. */
export interface CheckpointFileHead {
  readonly format: number;
  readonly meta: CheckpointMeta;
  /** Format 2 only: byte lengths of the snapshot and of the parts section (count included). */
  readonly snapshotBytes?: number;
  readonly partsBytes?: number;
}

/** A whole checkpoint file, verified. */
export interface DecodedCheckpointFile {
  readonly format: number;
  readonly checkpoint: StoredCheckpoint;
}

interface Defect {
  readonly defect: CheckpointDefect;
  readonly message: string;
}

/**
 * A CheckpointStore over a directory (created, with its parents, if missing). Stream keys map to file names
 * through `checkpointFileName`, so any key, including '../x', '/', '' or a long unicode one, stays a distinct
 * file inside the directory.
 */
export class FileCheckpointStore implements CheckpointStore {
  /** The directory, resolved to an absolute path. */
  readonly dir: string;
  /** Where damaged files go: `<dir>/quarantine`, created on first use. */
  readonly quarantineDir: string;
  private readonly onCorrupt: (problem: CorruptCheckpoint) => void;
  /** Temp files of this store's writes in progress, which loadAll must not take for crash leftovers. */
  private readonly ownTemps = new Set<string>();
  private tempCounter = 0;
  /** Per file name, the tail of the operations queued on it: a save never races a load or a move of its file. */
  private readonly locks = new Map<string, Promise<void>>();
  private writes = 0;
  private idleWaiters: Array<() => void> = [];

  /**
   * Throws at once when `dir` cannot be made or written (a path under /proc, a parent that is a regular file, a
   * read-only mount): a service should fail at start-up, not at its first checkpoint.
   */
  constructor(dir: string, options: FileCheckpointStoreOptions = {}) {
    if (typeof dir !== 'string' || dir.length === 0) {
      throw new TypeError(`FileCheckpointStore: dir must be a non-empty path, got ${String(dir)}`);
    }
    const onCorrupt = options?.onCorrupt;
    if (onCorrupt !== undefined && typeof onCorrupt !== 'function') {
      throw new TypeError('FileCheckpointStore: onCorrupt must be a function');
    }
    this.dir = resolve(dir);
    this.quarantineDir = join(this.dir, QUARANTINE_DIR_NAME);
    // Synchronous on purpose: a directory that cannot be used is a configuration error, reported at creation.
    try {
      makeDirectorySync(this.dir);
      probeWritableSync(this.dir);
    } catch (err) {
      const error = new Error(`checkpoint.dir ${this.dir} is not a writable directory: ${(err as Error).message}`, { cause: err });
      (error as NodeJS.ErrnoException).code = (err as NodeJS.ErrnoException).code;
      throw error;
    }
    this.onCorrupt = onCorrupt ?? warnCorrupt;
  }

  /** Saves started and not yet settled (the shutdown path waits for them: see `idle`). */
  get pendingWrites(): number {
    return this.writes;
  }

  /** Resolves once no save is in flight (at once when none is). */
  idle(): Promise<void> {
    if (this.writes === 0) return Promise.resolve();
    return new Promise((resolvePromise) => this.idleWaiters.push(resolvePromise));
  }

  /** Writes the stream's checkpoint atomically, replacing its previous one; rejects if it could not. */
  async save(checkpoint: StoredCheckpoint): Promise<void> {
    this.writes++;
    try {
      const stream = (checkpoint as StoredCheckpoint | undefined)?.meta?.stream;
      const where = typeof stream === 'string' ? join(this.dir, checkpointFileName(stream)) : this.dir;
      let bytes: Uint8Array;
      try {
        bytes = encodeCheckpointFile(checkpoint);
      } catch (err) {
        throw new TypeError(`${where}: cannot save checkpoint: ${(err as Error).message}`);
      }
      const name = basename(where);
      await this.withFileLock(name, () => this.writeAtomically(where, bytes));
    } finally {
      if (--this.writes === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    }
  }

  /**
   * Every stream's checkpoint, keyed by stream. Damaged files are moved to quarantine and reported through
   * `onCorrupt`; temp files left by a crashed writer are removed; files without the checkpoint extension are
   * ignored. Rejects when the directory itself cannot be listed (a missing directory is empty), on a transient
   * error (out of file descriptors or memory), or when a damaged file cannot be moved aside (it would otherwise be
   * overwritten by the stream's next save).
   */
  async loadAll(): Promise<Map<string, StoredCheckpoint>> {
    const loaded = new Map<string, StoredCheckpoint>();
    for (const name of await this.checkpointNames()) {
      const file = join(this.dir, name);
      const outcome = await this.withFileLock(name, async (): Promise<StoredCheckpoint | CorruptCheckpoint | undefined> => {
        let bytes: Uint8Array;
        try {
          bytes = await readFile(file);
        } catch (err) {
          const problem = readProblem(err, file);
          return problem === undefined ? undefined : this.quarantineFound(file, problem);
        }
        const decoded = decodeFile(bytes);
        if ('defect' in decoded) return this.quarantineFound(file, decoded);
        const misplaced = misplacedProblem(name, decoded.checkpoint.meta.stream);
        if (misplaced) return this.quarantineFound(file, misplaced);
        return decoded.checkpoint;
      });
      if (outcome === undefined) continue;
      if ('original' in outcome) this.onCorrupt(outcome);
      else loaded.set(outcome.meta.stream, outcome);
    }
    return loaded;
  }

  /**
   * The meta of every stream's checkpoint, keyed by stream, from the header and meta JSON of each file (and its
   * length): the snapshots are not read, so their CRC is not checked either; `load` does that. Files whose header
   * or meta is damaged, or whose length disagrees with its meta, are quarantined and reported as by `loadAll`;
   * temp leftovers are removed. Rejects as `loadAll` does.
   */
  async list(): Promise<Map<string, CheckpointMeta>> {
    const names = await this.checkpointNames();
    const outcomes = new Array<CheckpointMeta | CorruptCheckpoint | undefined>(names.length);
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const i = next++;
        const name = names[i];
        const file = join(this.dir, name);
        outcomes[i] = await this.withFileLock(name, async () => {
          const head = await readHead(file);
          if (head === undefined) return undefined;
          if ('defect' in head) return this.quarantineFound(file, head);
          const misplaced = misplacedProblem(name, head.meta.stream);
          if (misplaced) return this.quarantineFound(file, misplaced);
          return head.meta;
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(LIST_CONCURRENCY, names.length) }, worker));
    const metas = new Map<string, CheckpointMeta>();
    for (const outcome of outcomes) {
      if (outcome === undefined) continue;
      if ('original' in outcome) this.onCorrupt(outcome);
      else metas.set(outcome.stream, outcome);
    }
    return metas;
  }

  /**
   * The stream's checkpoint, read whole and verified; undefined when it has none. A damaged one is moved to
   * quarantine first, then the call rejects with a CheckpointDefectError (`file`: where it was, `quarantined`:
   * where it is now), so the stream's next save writes a fresh file. Other I/O errors reject as they are.
   */
  async load(stream: string): Promise<StoredCheckpoint | undefined> {
    const name = checkpointFileName(stream);
    const file = join(this.dir, name);
    return this.withFileLock(name, async () => {
      let bytes: Uint8Array;
      let problem: Defect | undefined;
      try {
        bytes = await readFile(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        problem = readProblem(err, file);
        if (problem === undefined) return undefined;
        bytes = new Uint8Array(0);
      }
      if (problem === undefined) {
        const decoded = decodeFile(bytes);
        if ('defect' in decoded) problem = decoded;
        else if (decoded.checkpoint.meta.stream !== stream) {
          problem = { defect: 'misplaced', message: `holds stream ${JSON.stringify(decoded.checkpoint.meta.stream)}, not ${JSON.stringify(stream)}` };
        } else return decoded.checkpoint;
      }
      const found = await this.quarantineFound(file, problem);
      throw new CheckpointDefectError(problem.defect, file, `${found.message}; moved to ${found.file}`, found.file);
    });
  }

  /**
   * Moves the stream's checkpoint file into the quarantine directory (keeping its name, plus the UTC time and
   * `defect`; an earlier quarantined file is never overwritten) with a note holding `detail`, and returns its new
   * path. The stream's next save writes a fresh file. Rejects when the stream has no checkpoint file.
   */
  async quarantine(stream: string, defect: string, detail: string): Promise<string> {
    const name = checkpointFileName(stream);
    const file = join(this.dir, name);
    if (typeof defect !== 'string' || defect.length === 0) throw new TypeError(`${file}: quarantine needs a defect, got ${String(defect)}`);
    if (typeof detail !== 'string') throw new TypeError(`${file}: quarantine detail must be a string, got ${typeof detail}`);
    return this.withFileLock(name, async () => {
      try {
        await lstat(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        const error = new Error(`${file}: stream ${JSON.stringify(stream)} has no checkpoint file to quarantine`);
        (error as NodeJS.ErrnoException).code = 'ENOENT';
        throw error;
      }
      return this.moveAside(file, defect, detail);
    });
  }

  /** Names of checkpoint files, sorted; removes crash leftovers on the way. */
  private async checkpointNames(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    names.sort();
    const found: string[] = [];
    for (const name of names) {
      if (name.startsWith(CHECKPOINT_TEMP_PREFIX)) {
        const file = join(this.dir, name);
        // Another thread of this process (a shard) may be writing it now; a dead one's leftovers go at the next start.
        if (!this.ownTemps.has(file) && !name.startsWith(THIS_PROCESS_TEMPS)) await unlink(file).catch(() => undefined);
      } else if (name.endsWith(CHECKPOINT_FILE_EXTENSION)) {
        found.push(name);
      }
    }
    return found;
  }

  /** Moves a file found damaged aside; a failed move rejects, since the next save would overwrite the file. */
  private async quarantineFound(file: string, problem: Defect): Promise<CorruptCheckpoint> {
    const message = `${file}: ${problem.message}`;
    let moved: string;
    try {
      moved = await this.moveAside(file, problem.defect, message);
    } catch (err) {
      throw new Error(`${file} is damaged (${problem.defect}: ${problem.message}) and could not be moved to ${this.quarantineDir}: ${(err as Error).message}`, { cause: err });
    }
    return { file: moved, original: file, defect: problem.defect, message };
  }

  private async moveAside(file: string, defect: string, detail: string): Promise<string> {
    try {
      await mkdir(this.quarantineDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const base = `${basename(file).slice(0, 180)}.${utcStamp(new Date())}.${defectSlug(defect)}`;
    let target = '';
    for (let n = 0; ; n++) {
      if (n > 999) throw new Error(`${this.quarantineDir}: no free name for ${base}`);
      target = join(this.quarantineDir, n === 0 ? base : `${base}.${n}`);
      // link fails on an existing target where rename would replace it: a quarantined file is never overwritten.
      try {
        await link(file, target);
        await unlink(file);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') continue;
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK' && code !== 'EXDEV' && code !== 'ENOSYS') throw err;
        // No hard links here (or a directory): check then rename; this store's lock keeps the window ours.
        if (await pathExists(target)) continue;
        await rename(file, target);
        break;
      }
    }
    await this.syncDir(this.quarantineDir);
    await this.syncDir(this.dir);
    const note = `file: ${file}\ndefect: ${defect}\nquarantined at: ${new Date().toISOString()}\ndetail: ${detail}\n`;
    // The note only helps whoever inspects the file later; failing to write it must not fail the move.
    await writeFile(`${target}.txt`, note, { flag: 'wx' }).catch(() => undefined);
    return target;
  }

  private async writeAtomically(target: string, bytes: Uint8Array): Promise<void> {
    const temp = join(this.dir, `${THIS_PROCESS_TEMPS}${threadId}-${++this.tempCounter}`);
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
      throw withPath(err, `cannot write ${target}`);
    } finally {
      this.ownTemps.delete(temp);
    }
    try {
      await this.syncDir(this.dir);
    } catch (err) {
      throw withPath(err, `wrote ${target} but could not make it durable (fsync of ${this.dir})`);
    }
  }

  private async withFileLock<T>(name: string, body: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = previous.then(() => mine);
    this.locks.set(name, tail);
    await previous;
    try {
      return await body();
    } finally {
      release();
      if (this.locks.get(name) === tail) this.locks.delete(name);
    }
  }

  /** Makes a rename durable. Some platforms (Windows) cannot open or fsync a directory: that is not an error. */
  private async syncDir(dir: string): Promise<void> {
    let handle;
    try {
      handle = await open(dir, 'r');
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

/**
 * mkdirSync(recursive) loops forever on a path under /proc (each mkdir says ENOENT for a parent that exists),
 * so the missing ancestors are made one by one and any refusal is final.
 */
function makeDirectorySync(dir: string): void {
  const missing: string[] = [];
  for (let at = dir; ; at = dirname(at)) {
    try {
      if (!statSync(at).isDirectory()) throw new Error(`${at} is not a directory`);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(at) === at) throw err;
      missing.push(at);
    }
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
}

/** Permission bits do not tell (root, read-only mounts, ACLs): only a real write does. */
function probeWritableSync(dir: string): void {
  const probe = join(dir, `${CHECKPOINT_TEMP_PREFIX}probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(probe, 'wx');
  try {
    writeSync(fd, 'probe');
  } finally {
    closeSync(fd);
    try {
      unlinkSync(probe);
    } catch (err) {
      // Another store's loadAll over the same directory may have taken it for a leftover and removed it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** 20250131T235959.123Z: sortable, and free of ':' which some file systems refuse. */
function utcStamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '');
}

function defectSlug(defect: string): string {
  const slug = defect.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 24);
  return slug.length > 0 ? slug : 'defect';
}

/** Errors that say nothing about the file: retrying later may work, so the file must not be quarantined. */
function isTransient(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'EMFILE' || code === 'ENFILE' || code === 'ENOMEM' || code === 'EAGAIN' || code === 'EINTR';
}

/** A read error as a defect; undefined when the file vanished; throws when the error is not the file's fault. */
function readProblem(err: unknown, file: string): Defect | undefined {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  if (isTransient(err)) throw withPath(err, `cannot read ${file}`);
  return { defect: 'unreadable', message: `cannot read: ${(err as Error).message}` };
}

function misplacedProblem(name: string, stream: string): Defect | null {
  const expected = checkpointFileName(stream);
  return expected === name ? null : { defect: 'misplaced', message: `holds stream ${JSON.stringify(stream)}, whose file is ${expected}` };
}

function withPath(err: unknown, context: string): Error {
  const error = new Error(`${context}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code !== undefined) (error as NodeJS.ErrnoException).code = code;
  return error;
}

/** Header and meta of a file from its first bytes; undefined when the file is gone. */
async function readHead(file: string): Promise<(CheckpointFileHead & { readonly size: number }) | Defect | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    return readProblem(err, file);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { defect: 'unreadable', message: 'not a regular file' };
    const size = stat.size;
    let bytes = await readFully(handle, Math.min(size, HEAD_READ_BYTES));
    if (bytes.length < Math.min(size, HEAD_READ_BYTES)) return { defect: 'truncated', message: `shrank to ${bytes.length} bytes while read` };
    const fixed = parseFixedHeader(bytes, size);
    if ('defect' in fixed) return fixed;
    const needed = HEADER_BYTES + fixed.metaLength;
    if (bytes.length < needed) {
      bytes = await readFully(handle, needed);
      if (bytes.length < needed) return { defect: 'truncated', message: `shrank to ${bytes.length} bytes while read` };
    }
    const head = parseMeta(bytes, fixed.format, fixed.metaLength, size);
    return 'defect' in head ? head : { ...head, size };
  } catch (err) {
    return readProblem(err, file);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function readFully(handle: FileHandle, length: number): Promise<Uint8Array> {
  const buffer = Buffer.alloc(length);
  let at = 0;
  while (at < length) {
    const { bytesRead } = await handle.read(buffer, at, length - at, at);
    if (bytesRead === 0) break;
    at += bytesRead;
  }
  return buffer.subarray(0, at);
}

function dirSyncUnsupported(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'EISDIR' || code === 'EPERM' || code === 'EACCES' || code === 'EINVAL' || code === 'ENOTSUP';
}

function warnCorrupt(problem: CorruptCheckpoint): void {
  process.emitWarning(`quarantined checkpoint (${problem.defect}): ${problem.message}; moved to ${problem.file}`, 'CheckpointWarning');
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

/** The bytes of a format-2 checkpoint file. Throws a TypeError naming the problem for an invalid checkpoint. */
export function encodeCheckpointFile(checkpoint: StoredCheckpoint): Uint8Array {
  if (checkpoint == null || typeof checkpoint !== 'object') throw new TypeError('checkpoint must be an object');
  const { meta, snapshot, parts } = checkpoint;
  const problem = metaProblem(meta);
  if (problem) throw new TypeError(`checkpoint meta: ${problem}`);
  if (!(snapshot instanceof Uint8Array)) throw new TypeError('checkpoint snapshot must be a Uint8Array');
  const encodedParts = encodeParts(parts);
  const { stream, lastSeq, version, tick, savedAt, pendingLabels } = meta;
  const metaJson = Buffer.from(
    JSON.stringify({
      stream, lastSeq, version, tick, savedAt,
      ...(pendingLabels !== undefined ? { pendingLabels } : {}),
      layout: { snapshotBytes: snapshot.length, partsBytes: encodedParts.length },
    }),
    'utf8',
  );
  const total = HEADER_BYTES + metaJson.length + snapshot.length + encodedParts.length + CRC_BYTES;
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, CHECKPOINT_FORMAT, true);
  view.setUint32(8, metaJson.length, true);
  let at = HEADER_BYTES;
  bytes.set(metaJson, at);
  bytes.set(snapshot, (at += metaJson.length));
  bytes.set(encodedParts, (at += snapshot.length));
  view.setUint32(total - CRC_BYTES, crc32(bytes.subarray(0, total - CRC_BYTES)), true);
  return bytes;
}

function encodeParts(parts: StoredCheckpoint['parts']): Uint8Array {
  const entries: Array<[Uint8Array, Uint8Array]> = [];
  let size = 4;
  if (parts !== undefined) {
    if (parts == null || typeof (parts as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError('checkpoint parts must be a Map from name to Uint8Array');
    }
    const seen = new Set<string>();
    for (const entry of parts) {
      const [name, bytes] = entry as [unknown, unknown];
      if (typeof name !== 'string' || name.length === 0) throw new TypeError(`checkpoint part names must be non-empty strings, got ${JSON.stringify(name)}`);
      if (seen.has(name)) throw new TypeError(`checkpoint part ${JSON.stringify(name)} appears twice`);
      seen.add(name);
      if (!(bytes instanceof Uint8Array)) throw new TypeError(`checkpoint part ${JSON.stringify(name)} must be a Uint8Array`);
      if (bytes.length > MAX_U32) throw new TypeError(`checkpoint part ${JSON.stringify(name)} is larger than 4 GiB`);
      const encodedName = Buffer.from(name, 'utf8');
      if (encodedName.length > MAX_PART_NAME_BYTES) throw new TypeError(`checkpoint part name longer than ${MAX_PART_NAME_BYTES} bytes`);
      entries.push([encodedName, bytes]);
      size += 2 + encodedName.length + 4 + bytes.length;
    }
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, entries.length, true);
  let at = 4;
  for (const [name, bytes] of entries) {
    view.setUint16(at, name.length, true);
    out.set(name, at + 2);
    at += 2 + name.length;
    view.setUint32(at, bytes.length, true);
    out.set(bytes, at + 4);
    at += 4 + bytes.length;
  }
  return out;
}

/**
 * A whole checkpoint file, verified (format 1 or 2). Throws a CheckpointDefectError naming `file` and the problem.
 * For tools: the store itself also checks the file name against the stream.
 */
export function decodeCheckpointFile(bytes: Uint8Array, file: string): DecodedCheckpointFile {
  const decoded = decodeFile(bytes);
  if ('defect' in decoded) throw new CheckpointDefectError(decoded.defect, file, `${file}: ${decoded.message}`);
  return decoded;
}

/**
 * Header and meta from the first bytes of a checkpoint file (`bytes` may hold the whole file or only its first
 * 12 + meta-length bytes; `fileSize` is the whole file's length). Unverified: the CRC covers the whole file.
 * Throws a CheckpointDefectError naming `file` and the problem.
 */
export function decodeCheckpointHead(bytes: Uint8Array, fileSize: number, file: string): CheckpointFileHead {
  const fixed = parseFixedHeader(bytes, fileSize);
  if (!('defect' in fixed) && bytes.length < HEADER_BYTES + fixed.metaLength) {
    throw new RangeError(`${file}: decodeCheckpointHead needs the first ${HEADER_BYTES + fixed.metaLength} bytes, got ${bytes.length}`);
  }
  const head = 'defect' in fixed ? fixed : parseMeta(bytes, fixed.format, fixed.metaLength, fileSize);
  if ('defect' in head) throw new CheckpointDefectError(head.defect, file, `${file}: ${head.message}`);
  return head;
}

function parseFixedHeader(bytes: Uint8Array, fileSize: number): { format: number; metaLength: number } | Defect {
  if (fileSize < HEADER_BYTES + CRC_BYTES) return { defect: 'truncated', message: `only ${fileSize} bytes` };
  if (bytes.length < HEADER_BYTES) return { defect: 'truncated', message: `only ${bytes.length} bytes could be read` };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) return { defect: 'bad-magic', message: 'not a driftline checkpoint file' };
  const format = view.getUint32(4, true);
  if (!READABLE_FORMATS.has(format)) {
    return { defect: 'unsupported-format', message: `format ${format}, this build reads formats ${[...READABLE_FORMATS].join(' and ')}` };
  }
  const metaLength = view.getUint32(8, true);
  if (HEADER_BYTES + metaLength + CRC_BYTES > fileSize) {
    return { defect: 'truncated', message: `meta of ${metaLength} bytes does not fit in ${fileSize} bytes` };
  }
  return { format, metaLength };
}

/** Meta JSON and, for format 2, the layout it describes checked against the file's length. */
function parseMeta(bytes: Uint8Array, format: number, metaLength: number, fileSize: number): CheckpointFileHead | Defect {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + HEADER_BYTES, metaLength).toString('utf8'));
  } catch (err) {
    return { defect: 'bad-meta', message: `meta is not JSON: ${(err as Error).message}` };
  }
  const problem = metaProblem(parsed);
  if (problem) return { defect: 'bad-meta', message: problem };
  const raw = parsed as CheckpointMeta & { layout?: unknown };
  const meta: CheckpointMeta = {
    stream: raw.stream, lastSeq: raw.lastSeq, version: raw.version, tick: raw.tick, savedAt: raw.savedAt,
    ...(raw.pendingLabels !== undefined ? { pendingLabels: [...raw.pendingLabels] } : {}),
  };
  if (format === 1) return { format, meta };
  const layout = raw.layout as { snapshotBytes?: unknown; partsBytes?: unknown } | undefined;
  const snapshotBytes = layout?.snapshotBytes;
  const partsBytes = layout?.partsBytes;
  if (!isSize(snapshotBytes) || !isSize(partsBytes) || partsBytes < 4) {
    return { defect: 'bad-meta', message: `meta.layout must give snapshotBytes and partsBytes (>= 4) as byte counts, got ${JSON.stringify(raw.layout)}` };
  }
  const expected = HEADER_BYTES + metaLength + snapshotBytes + partsBytes + CRC_BYTES;
  if (fileSize < expected) return { defect: 'truncated', message: `${fileSize} bytes, its meta describes ${expected}` };
  if (fileSize > expected) return { defect: 'bad-meta', message: `${fileSize} bytes, its meta describes only ${expected}` };
  return { format, meta, snapshotBytes, partsBytes };
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function decodeFile(bytes: Uint8Array): DecodedCheckpointFile | Defect {
  const fixed = parseFixedHeader(bytes, bytes.length);
  if ('defect' in fixed) return fixed;
  const head = parseMeta(bytes, fixed.format, fixed.metaLength, bytes.length);
  // A length that disagrees with a readable meta is the more telling diagnosis; any other meta problem is
  // reported only once the CRC has ruled out plain damage.
  if ('defect' in head && head.defect === 'truncated') return head;
  const end = bytes.length - CRC_BYTES;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = view.getUint32(end, true);
  const actual = crc32(bytes.subarray(0, end));
  if (stored !== actual) {
    return { defect: 'crc-mismatch', message: `CRC-32 is ${hex32(actual)}, the file says ${hex32(stored)} (truncated or damaged)` };
  }
  if ('defect' in head) return head;
  const start = HEADER_BYTES + fixed.metaLength;
  const snapshotEnd = head.snapshotBytes === undefined ? end : start + head.snapshotBytes;
  // Copies into plain Uint8Arrays (a Buffer view would pin the whole file buffer).
  const snapshot = copyOf(bytes.subarray(start, snapshotEnd));
  if (head.format === 1) return { format: 1, checkpoint: { meta: head.meta, snapshot } };
  const parts = decodeParts(bytes.subarray(snapshotEnd, end));
  if ('defect' in parts) return parts;
  return { format: head.format, checkpoint: { meta: head.meta, snapshot, ...(parts.size > 0 ? { parts } : {}) } };
}

function copyOf(view: Uint8Array): Uint8Array {
  const copy = new Uint8Array(view.length);
  copy.set(view);
  return copy;
}

function decodeParts(section: Uint8Array): Map<string, Uint8Array> | Defect {
  const view = new DataView(section.buffer, section.byteOffset, section.byteLength);
  const bad = (message: string): Defect => ({ defect: 'bad-meta', message: `parts section: ${message}` });
  const count = view.getUint32(0, true);
  const parts = new Map<string, Uint8Array>();
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 2 > section.length) return bad(`part ${i} of ${count} starts past the end`);
    const nameLength = view.getUint16(at, true);
    at += 2;
    if (nameLength === 0 || at + nameLength + 4 > section.length) return bad(`part ${i}: name of ${nameLength} bytes does not fit`);
    let name: string;
    try {
      name = utf8.decode(section.subarray(at, at + nameLength));
    } catch {
      return bad(`part ${i}: name is not UTF-8`);
    }
    at += nameLength;
    const length = view.getUint32(at, true);
    at += 4;
    if (at + length > section.length) return bad(`part ${JSON.stringify(name)}: ${length} bytes do not fit`);
    if (parts.has(name)) return bad(`part ${JSON.stringify(name)} appears twice`);
    parts.set(name, copyOf(section.subarray(at, at + length)));
    at += length;
  }
  if (at !== section.length) return bad(`${section.length - at} bytes after the last part`);
  return parts;
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
  const pending = m.pendingLabels;
  if (pending !== undefined) {
    if (!Array.isArray(pending)) return `pendingLabels must be an array, got ${typeof pending}`;
    if (pending.length > MAX_PENDING_LABELS) return `pendingLabels holds ${pending.length} seqs, at most ${MAX_PENDING_LABELS} are allowed`;
    for (const seq of pending) {
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
        return `pendingLabels must hold non-negative safe integers, got ${String(seq)}`;
      }
    }
  }
  return null;
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
