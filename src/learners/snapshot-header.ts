import { SnapshotError } from './errors.js';
import type { LearnerSpec } from './learner.js';

/**
 * The header of a learner snapshot, read without a learner: tools (`driftline checkpoint inspect`) and restore
 * paths that must tell a snapshot of another spec ('foreign-spec') from damaged bytes before creating a learner.
 *
 * Layout, as `snapshot()` in learner.ts writes it (little-endian):
 *
 *   offset 0   u32  magic 0x534e4c44 ('DLNS')
 *          4   u32  snapshot format (1)
 *          8   u32  S: byte length of the spec JSON
 *         12   u32  number of persistent floats
 *         16   S    the spec as canonical JSON (sorted keys), UTF-8
 *
 * then, from align8(16 + S), the counter block and the persistent state. The recurrent learner counts its
 * persistent floats in its arena's element type (Float32, or Float64 for double-precision gradient tests) and
 * puts its Float64 counter block before them; the decoders (src/learners/decoders) keep counters and state in one
 * Float64 block and count all of it. Both writers go through writeSnapshotHeader, and the conformance of this
 * reader with real snapshots is tested.
 */

export const SNAPSHOT_MAGIC = 0x534e4c44;
export const SNAPSHOT_FORMAT = 1;
const FIXED_BYTES = 16;

/** JSON with sorted keys, so that equal specs give equal bytes whatever order their fields were written in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Bytes a header takes before the payload, for a spec whose canonical JSON encodes to `specBytes` bytes. */
export function snapshotHeaderBytes(specBytes: number): number {
  return (FIXED_BYTES + specBytes + 7) & ~7;
}

/**
 * A zeroed snapshot buffer of header + `payloadBytes`, with the header written; the caller copies its payload in
 * from `headerBytes`.
 */
export function writeSnapshotHeader(
  specJson: Uint8Array,
  persistentFloats: number,
  payloadBytes: number,
): { bytes: Uint8Array; headerBytes: number } {
  const headerBytes = snapshotHeaderBytes(specJson.length);
  const bytes = new Uint8Array(headerBytes + payloadBytes);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, SNAPSHOT_MAGIC, true);
  view.setUint32(4, SNAPSHOT_FORMAT, true);
  view.setUint32(8, specJson.length, true);
  view.setUint32(12, persistentFloats, true);
  bytes.set(specJson, FIXED_BYTES);
  return { bytes, headerBytes };
}

export interface SnapshotHeader {
  readonly format: number;
  /** The spec exactly as stored (canonical JSON): equal specs give equal strings (see canonicalJson). */
  readonly specJson: string;
  readonly spec: LearnerSpec;
  readonly persistentFloats: number;
  /** Bytes before the counter block (the header, padded to 8). */
  readonly headerBytes: number;
}

/** Parses the header of `bytes` (a learner snapshot); throws a SnapshotError naming the problem. */
export function readSnapshotHeader(bytes: Uint8Array): SnapshotHeader {
  if (!(bytes instanceof Uint8Array)) throw new SnapshotError('a snapshot must be a Uint8Array');
  if (bytes.length < FIXED_BYTES) throw new SnapshotError(`not a driftline learner snapshot (only ${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== SNAPSHOT_MAGIC) throw new SnapshotError('not a driftline learner snapshot (bad magic)');
  const format = view.getUint32(4, true);
  if (format !== SNAPSHOT_FORMAT) throw new SnapshotError(`snapshot format ${format} is not supported (expected ${SNAPSHOT_FORMAT})`);
  const specLength = view.getUint32(8, true);
  const persistentFloats = view.getUint32(12, true);
  if (FIXED_BYTES + specLength > bytes.length) {
    throw new SnapshotError(`snapshot spec of ${specLength} bytes does not fit in ${bytes.length} bytes`);
  }
  let specJson: string;
  let spec: unknown;
  try {
    specJson = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(FIXED_BYTES, FIXED_BYTES + specLength));
    spec = JSON.parse(specJson);
  } catch (err) {
    throw new SnapshotError(`snapshot spec is not JSON: ${(err as Error).message}`);
  }
  if (spec == null || typeof spec !== 'object' || Array.isArray(spec)) throw new SnapshotError('snapshot spec is not a JSON object');
  return { format, specJson, spec: spec as LearnerSpec, persistentFloats, headerBytes: snapshotHeaderBytes(specLength) };
}
