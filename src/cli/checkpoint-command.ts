import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readSnapshotHeader, type SnapshotHeader } from '../learners/snapshot-header.js';
import {
  CheckpointDefectError, decodeCheckpointFile, decodeCheckpointHead,
  type CheckpointFileHead, type DecodedCheckpointFile,
} from '../streams/file-checkpoint-store.js';

/**
 * `driftline checkpoint inspect FILE [--json]`: what a checkpoint file holds, for an operator deciding what to do
 * with a quarantined file or checking a live one. Read-only: unlike the store, it never moves a damaged file.
 *
 * Exit codes: 0 for a good file; 1 for a file that cannot be read or restored (the defect and the message, and
 * the meta when the header is still readable, marked unverified); 2 for a usage error.
 */

export interface CheckpointCommandIO {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: { write(chunk: string): unknown };
}

const usage = `usage: driftline checkpoint inspect FILE [--json]

  FILE     a checkpoint file (<checkpoint.dir>/*.ckpt, or one moved to <checkpoint.dir>/quarantine/)
  --json   one JSON object on stdout instead of text

  exit 0: a good checkpoint; 1: damaged or unreadable (defect and message shown); 2: usage error
`;

export async function checkpointCommand(args: readonly string[], io: CheckpointCommandIO = process): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'help' || sub === '--help' || sub === '-h') {
    io.stdout.write(usage);
    return 0;
  }
  if (sub !== 'inspect') {
    io.stderr.write(`${sub === undefined ? 'which checkpoint command?' : `unknown checkpoint command '${sub}'`}\n\n${usage}`);
    return 2;
  }
  let json: boolean;
  let files: string[];
  try {
    const parsed = parseArgs({ args: [...rest], options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    if (parsed.values.help) {
      io.stdout.write(usage);
      return 0;
    }
    json = parsed.values.json === true;
    files = parsed.positionals;
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (files.length !== 1) {
    io.stderr.write(`${files.length === 0 ? 'which file?' : `one file at a time, got ${files.length}`}\n\n${usage}`);
    return 2;
  }
  const report = await inspectCheckpoint(resolve(files[0]));
  io.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.ok ? 0 : 1;
}

export interface InspectedPart {
  readonly name: string;
  readonly bytes: number;
}

/** What `inspect` found: a good checkpoint, or the defect with whatever of the meta could still be read. */
export type CheckpointInspection =
  | {
      readonly ok: true;
      readonly file: string;
      readonly format: number;
      readonly stream: string;
      readonly lastSeq: number;
      readonly version: number;
      readonly tick: number;
      readonly savedAt: string;
      readonly pendingLabels: number;
      readonly snapshotBytes: number;
      readonly spec: unknown;
      readonly parts: readonly InspectedPart[];
    }
  | {
      readonly ok: false;
      readonly file: string;
      readonly defect: string;
      readonly message: string;
      /** Header and meta when they are still readable; not covered by a verified CRC. */
      readonly unverifiedMeta?: Record<string, unknown>;
    };

export async function inspectCheckpoint(file: string): Promise<CheckpointInspection> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    return { ok: false, file, defect: 'unreadable', message: `${file}: cannot read: ${(err as Error).message}` };
  }
  let decoded: DecodedCheckpointFile;
  try {
    decoded = decodeCheckpointFile(bytes, file);
  } catch (err) {
    if (!(err instanceof CheckpointDefectError)) throw err;
    const head = headOf(bytes, file);
    return { ok: false, file, defect: err.defect, message: err.message, ...(head ? { unverifiedMeta: head } : {}) };
  }
  const { meta, snapshot, parts } = decoded.checkpoint;
  let header: SnapshotHeader;
  try {
    header = readSnapshotHeader(snapshot);
  } catch (err) {
    // The file is intact but no learner can restore it: as useless as a damaged one.
    return {
      ok: false, file, defect: 'bad-snapshot', message: `${file}: the snapshot is not a learner snapshot: ${(err as Error).message}`,
      unverifiedMeta: { format: decoded.format, ...meta },
    };
  }
  return {
    ok: true,
    file,
    format: decoded.format,
    stream: meta.stream,
    lastSeq: meta.lastSeq,
    version: meta.version,
    tick: meta.tick,
    savedAt: isoTime(meta.savedAt),
    pendingLabels: meta.pendingLabels?.length ?? 0,
    snapshotBytes: snapshot.length,
    spec: header.spec,
    parts: [...(parts ?? new Map<string, Uint8Array>())].map(([name, b]) => ({ name, bytes: b.length })),
  };
}

function headOf(bytes: Uint8Array, file: string): Record<string, unknown> | undefined {
  let head: CheckpointFileHead;
  try {
    head = decodeCheckpointHead(bytes, bytes.length, file);
  } catch {
    return undefined;
  }
  const { pendingLabels, ...meta } = head.meta;
  return {
    format: head.format, ...meta, savedAt: isoTime(meta.savedAt),
    pendingLabels: pendingLabels?.length ?? 0,
    ...(head.snapshotBytes !== undefined ? { snapshotBytes: head.snapshotBytes } : {}),
  };
}

function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `invalid (${ms})` : date.toISOString();
}

function formatReport(r: CheckpointInspection): string {
  const line = (label: string, value: unknown) => `${`${label}:`.padEnd(15)}${String(value)}\n`;
  if (!r.ok) {
    let out = line('file', r.file) + line('status', 'DAMAGED') + line('defect', r.defect) + line('message', r.message);
    if (r.unverifiedMeta) {
      out += 'meta (unverified):\n';
      for (const [key, value] of Object.entries(r.unverifiedMeta)) out += `  ${line(key, typeof value === 'string' && key === 'stream' ? JSON.stringify(value) : value)}`;
    }
    return out;
  }
  let out =
    line('file', r.file) +
    line('status', 'ok') +
    line('format', r.format) +
    line('stream', JSON.stringify(r.stream)) +
    line('lastSeq', r.lastSeq) +
    line('version', `${r.version} updates`) +
    line('tick', r.tick) +
    line('savedAt', r.savedAt) +
    line('pendingLabels', r.pendingLabels) +
    line('snapshot', `${r.snapshotBytes} bytes`) +
    line('spec', JSON.stringify(r.spec)) +
    line('parts', r.parts.length === 0 ? 'none' : r.parts.length);
  for (const part of r.parts) out += `  ${part.name.padEnd(24)} ${part.bytes} bytes\n`;
  return out;
}
