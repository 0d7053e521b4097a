/**
 * Loads one Jango session (monkey motor-cortex recordings of the Miller lab, described in the README beside the data files)
 * from its MAT v5 file into row-major Float32 arrays ready to replay as a stream.
 *
 * The file holds one struct `binnedData`; the fields read are `timeframe` (bin times, s), `spikeratedata` (bins x 96
 * channels, spike rate in Hz = count x 20), `forcedatabin` (bins x 2, wrist force: the decoding target),
 * `emgdatabin` (bins x 14, optional), `neuronIDs`, the label cell arrays `forcelabels` and `emgguide`, and
 * `meta.filename` for the session name. All 96 channel columns are kept, also channels that are silent in a
 * session (Day16: channel ids 67 and 70, columns 66 and 69 0-based, are all zero and missing from neuronIDs).
 *
 * The force is put into the task frame by default (force-frame.ts): the sessions do not record it with the same
 * column wiring (Day0 has Force_x and Force_y swapped relative to the targets, Day16 does not), and a map carried
 * across sessions must not have to learn a relabelling. That needs `trialtable` (and reads `trialtablelabels` to
 * check its layout); `alignForce: false` loads the columns as the file has them and does without a trial table.
 *
 * Every error names the file, and the variable or field when the problem is in one.
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { type MatValue, type MatNumeric, field, numel, readMat, toRowMajorFloat32 } from './mat5.js';
import {
  type ForceFrame,
  type ForceFrameOptions,
  type JangoTrial,
  applyAxisTransform,
  describeTransform,
  detectForceFrame,
  isIdentity,
  parseTrialTable,
  transformLabels,
} from './force-frame.js';

export type { ForceFrame, ForceFrameOptions, JangoTrial } from './force-frame.js';

export interface JangoSession {
  /** meta.filename of the file (e.g. 'Jango_20160626_WFiso_R10T4_001'), else the file's base name. */
  readonly name: string;
  readonly path: string;
  /** Bin width in seconds (0.05), from timeframe. */
  readonly binSeconds: number;
  readonly nBins: number;
  /** Bin times in seconds as recorded (timeframe). */
  readonly t: Float64Array;
  readonly nChannels: number;
  /** Spike rates, row-major: bin i is x[i * nChannels .. (i + 1) * nChannels). */
  readonly x: Float32Array;
  readonly nOutputs: number;
  /** Force, row-major: bin i is y[i * nOutputs .. (i + 1) * nOutputs); in the task frame when forceFrame.applied. */
  readonly y: Float32Array;
  /** The file's force labels, following their columns ('Force_y' first after a swap, '-' before a flipped one). */
  readonly yLabels: string[];
  /** What was done to the force columns, for the caller to log. */
  readonly forceFrame: ForceFrame;
  /** The trial table, one entry per row; empty when the file has none (allowed only with alignForce: false). */
  readonly trials: JangoTrial[];
  /** EMG envelopes, row-major, when the file has them. */
  readonly emg?: Float32Array;
  readonly nEmg: number;
  readonly emgLabels: string[];
  /** Why `emg` is absent, when it is. */
  readonly emgMissing?: string;
  /** Channel ids present in neuronIDs (first column), 1-based as in the file. */
  readonly channelIds: number[];
}

export interface LoadJangoOptions {
  /** Also read the EMG (default true). */
  readonly emg?: boolean;
  /** Put the force into the task frame (default true); needs binnedData.trialtable and 2 force columns. */
  readonly alignForce?: boolean;
  /** Window and evidence thresholds of the task-frame search. */
  readonly forceFrameOptions?: ForceFrameOptions;
}

export async function loadJangoSession(path: string, options: LoadJangoOptions = {}): Promise<JangoSession> {
  // A missing or unreadable file: Node's own error (code ENOENT, EISDIR, ...) already names the path.
  const file = await readFile(path);
  // A plain Uint8Array view, not the Buffer: mat5.ts copies element data with slice(), which on a Buffer is a view
  // of the whole file, so an uncompressed (-v6) element would be read from byte 0 of the file.
  const bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
  let mat: Record<string, MatValue>;
  try {
    mat = readMat(bytes);
  } catch (err) {
    // The whole struct is one compressed element, so a truncated file fails before any field can be named.
    (err as Error).message = `${path}: cannot read it as a MAT v5 file holding 'binnedData' (${bytes.length} bytes): ${(err as Error).message}`;
    throw err;
  }
  try {
    return jangoFromMat(mat, path, options);
  } catch (err) {
    (err as Error).message = `${path}: ${(err as Error).message}`;
    throw err;
  }
}

export interface LabelTrack {
  /** Row-major, nOutputs per bin. */
  readonly y: Float32Array;
  readonly nOutputs: number;
  readonly labels: string[];
}

/** The force or the EMG of a session as the labels of a stream; throws, naming the file, when the track is missing. */
export function labelTrack(session: JangoSession, track: 'force' | 'emg'): LabelTrack {
  if (track === 'force') {
    if (session.nOutputs === 0) throw new Error(`${session.path}: no force label track (binnedData.forcedatabin has no columns)`);
    return { y: session.y, nOutputs: session.nOutputs, labels: session.yLabels };
  }
  if (track === 'emg') {
    if (session.emg === undefined || session.nEmg === 0) {
      throw new Error(`${session.path}: no EMG label track: ${session.emgMissing ?? 'binnedData.emgdatabin was not loaded'}`);
    }
    return { y: session.emg, nOutputs: session.nEmg, labels: session.emgLabels };
  }
  throw new Error(`${session.path}: unknown label track '${String(track)}' (expected 'force' or 'emg')`);
}

/** Builds a session from an already-read MAT file (`path` is used for the name fallback and messages). */
export function jangoFromMat(mat: Record<string, MatValue>, path: string, options: LoadJangoOptions = {}): JangoSession {
  const binned = mat.binnedData;
  if (binned === undefined) throw new Error(`no variable 'binnedData' (variables: ${Object.keys(mat).join(', ') || 'none'})`);
  if (binned.kind !== 'struct' || binned.elements.length !== 1) throw new Error(`'binnedData' is not a 1x1 struct`);

  const t = toFloat64(matrix(binned, 'timeframe'));
  const nBins = t.length;
  const spikes = matrix(binned, 'spikeratedata');
  const force = matrix(binned, 'forcedatabin');
  if (spikes.dims[0] !== nBins) throw new Error(`binnedData.spikeratedata has ${spikes.dims[0]} rows, timeframe ${nBins}`);
  if (force.dims[0] !== nBins) throw new Error(`binnedData.forcedatabin has ${force.dims[0]} rows, timeframe ${nBins}`);
  for (let i = 1; i < nBins; i++) {
    if (!(t[i] > t[i - 1])) throw new Error(`binnedData.timeframe is not strictly increasing at row ${i}`);
  }
  const binSeconds = nBins > 1 ? (t[nBins - 1] - t[0]) / (nBins - 1) : 0.05;

  // EMG is optional: a session without a usable one still replays force; labelTrack reports why it is absent.
  let emg: Float32Array | undefined;
  let nEmg = 0;
  let emgMissing: string | undefined;
  if (options.emg === false) emgMissing = 'loaded with { emg: false }';
  else if (!binned.fields.includes('emgdatabin')) emgMissing = 'binnedData has no field emgdatabin';
  else {
    const e = matrix(binned, 'emgdatabin');
    if (e.dims[0] !== nBins) emgMissing = `binnedData.emgdatabin has ${e.dims[0]} rows, timeframe ${nBins}`;
    else if (e.dims[1] === 0) emgMissing = 'binnedData.emgdatabin has no columns';
    else {
      emg = toRowMajorFloat32(e);
      nEmg = e.dims[1];
    }
  }

  const trials = binned.fields.includes('trialtable') ? trialTable(binned) : [];
  const align = options.alignForce !== false;
  let y = toRowMajorFloat32(force);
  let yLabels = labels(binned, 'forcelabels');
  let forceFrame: ForceFrame;
  if (!binned.fields.includes('trialtable')) {
    if (align) {
      throw new Error(`binnedData has no field 'trialtable', which aligning the force to the task frame needs (pass alignForce: false to keep the file's column order)`);
    }
    forceFrame = notEvaluated('alignForce is false and binnedData has no trialtable');
  } else if (force.dims[1] !== 2) {
    if (align) throw new Error(`binnedData.forcedatabin has ${force.dims[1]} columns; aligning the force to the task frame needs 2 (pass alignForce: false)`);
    forceFrame = notEvaluated(`alignForce is false and binnedData.forcedatabin has ${force.dims[1]} columns`);
  } else {
    const detected = detectForceFrame({ trials, t, y, nOutputs: 2 }, options.forceFrameOptions);
    if (!align) {
      // Still searched (it is cheap), so a caller who opts out can log what the file would have needed.
      const would = detected.applied ? `the detected transform would be ${describeTransform(detected)}` : (detected.reason ?? '');
      forceFrame = { ...detected, applied: false, permutation: [0, 1], signs: [1, 1], reason: `alignForce is false; ${would}` };
    } else {
      forceFrame = detected;
      if (detected.applied && !isIdentity(detected)) {
        y = applyAxisTransform(y, detected);
        yLabels = transformLabels(yLabels, detected);
      }
    }
  }

  let name = basename(path, extname(path));
  if (binned.fields.includes('meta')) {
    const meta = field(binned, 'meta');
    if (meta.kind === 'struct' && meta.fields.includes('filename')) {
      const f = field(meta, 'filename');
      if (f.kind === 'char' && f.text.trim() !== '') name = f.text.trim();
    }
  }

  let channelIds: number[] = [];
  if (binned.fields.includes('neuronIDs')) {
    const ids = field(binned, 'neuronIDs');
    if (ids.kind === 'numeric' && ids.dims[0] > 0) channelIds = Array.from(ids.data.subarray(0, ids.dims[0]), Number);
  }

  return {
    name,
    path,
    binSeconds,
    nBins,
    t,
    nChannels: spikes.dims[1],
    x: toRowMajorFloat32(spikes),
    nOutputs: force.dims[1],
    y,
    yLabels,
    forceFrame,
    trials,
    ...(emg ? { emg } : {}),
    nEmg,
    emgLabels: emg ? labels(binned, 'emgguide') : [],
    ...(emgMissing !== undefined ? { emgMissing } : {}),
    channelIds,
  };
}

function notEvaluated(reason: string): ForceFrame {
  return { applied: false, permutation: [0, 1], signs: [1, 1], score: NaN, runnerUp: NaN, rewardedTrials: 0, windowSeconds: NaN, reason };
}

function trialTable(binned: MatValue): JangoTrial[] {
  const tt = matrix(binned, 'trialtable');
  // MATLAB writes an empty table as 0x0: no trials, not a wrong layout.
  if (tt.dims[0] === 0) return [];
  let tl: string[] | undefined;
  if (binned.kind === 'struct' && binned.fields.includes('trialtablelabels')) {
    const v = field(binned, 'trialtablelabels');
    if (v.kind !== 'cell' || v.cells.some((c) => c.kind !== 'char')) throw new Error(`binnedData.trialtablelabels is not a cell array of strings`);
    tl = v.cells.map((c) => (c.kind === 'char' ? c.text : ''));
  }
  return parseTrialTable(tt.data as ArrayLike<number>, tt.dims[0], tt.dims[1], tl, 'binnedData.trialtable');
}

function matrix(s: MatValue, name: string): MatNumeric {
  if (s.kind === 'struct' && !s.fields.includes(name)) throw new Error(`binnedData has no field '${name}' (fields: ${s.fields.join(', ') || 'none'})`);
  const v = field(s, name);
  if (v.kind !== 'numeric' || v.dims.length !== 2 || v.imag) throw new Error(`binnedData.${name} is not a real 2-D numeric array`);
  return v;
}

function toFloat64(v: MatNumeric): Float64Array {
  if (numel(v) !== v.dims[0]) throw new Error(`binnedData.timeframe is ${v.dims.join('x')}, expected a column`);
  return v.data instanceof Float64Array ? v.data : Float64Array.from(v.data as ArrayLike<number>, Number);
}

function labels(s: MatValue, name: string): string[] {
  if (s.kind !== 'struct' || !s.fields.includes(name)) return [];
  const v = field(s, name);
  if (v.kind !== 'cell') return [];
  return v.cells.map((c) => (c.kind === 'char' ? c.text : ''));
}
