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
 * then, from align8(16 + S), the counter block and the persistent state. learner.ts keeps these constants
 * private; the conformance of this reader with real snapshots is tested, so a change there fails here.
 */

const SNAPSHOT_MAGIC = 0x534e4c44;
const SNAPSHOT_FORMAT = 1;
const FIXED_BYTES = 16;

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
  return { format, specJson, spec: spec as LearnerSpec, persistentFloats, headerBytes: (FIXED_BYTES + specLength + 7) & ~7 };
}
