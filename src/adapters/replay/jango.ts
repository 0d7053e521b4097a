/**
 * Loads one Jango session (monkey motor-cortex recordings of the Miller lab, described in the README beside the data files)
 * from its MAT v5 file into row-major Float32 arrays ready to replay as a stream.
 *
 * The file holds one struct `binnedData`; the fields read are `timeframe` (bin times, s), `spikeratedata` (bins x 96
 * channels, spike rate in Hz = count x 20), `forcedatabin` (bins x 2, wrist force: the decoding target),
 * `emgdatabin` (bins x 14, optional), `neuronIDs`, the label cell arrays `forcelabels` and `emgguide`, and
 * `meta.filename` for the session name. All 96 channel columns are kept, also channels that are silent in a
 * session (Day16: channel ids 67 and 70, columns 66 and 69 0-based, are all zero and missing from neuronIDs).
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { type MatValue, type MatNumeric, field, numel, readMat, toRowMajorFloat32 } from './mat5.js';

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
  /** Force, row-major: bin i is y[i * nOutputs .. (i + 1) * nOutputs). */
  readonly y: Float32Array;
  readonly yLabels: string[];
  /** EMG envelopes, row-major, when the file has them. */
  readonly emg?: Float32Array;
  readonly nEmg: number;
  readonly emgLabels: string[];
  /** Channel ids present in neuronIDs (first column), 1-based as in the file. */
  readonly channelIds: number[];
}

export interface LoadJangoOptions {
  /** Also read the EMG (default true). */
  readonly emg?: boolean;
}

export async function loadJangoSession(path: string, options: LoadJangoOptions = {}): Promise<JangoSession> {
  const bytes = await readFile(path);
  try {
    return jangoFromMat(readMat(bytes), path, options);
  } catch (err) {
    (err as Error).message = `${path}: ${(err as Error).message}`;
    throw err;
  }
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
  if (spikes.dims[0] !== nBins) throw new Error(`spikeratedata has ${spikes.dims[0]} rows, timeframe ${nBins}`);
  if (force.dims[0] !== nBins) throw new Error(`forcedatabin has ${force.dims[0]} rows, timeframe ${nBins}`);
  for (let i = 1; i < nBins; i++) {
    if (!(t[i] > t[i - 1])) throw new Error(`timeframe is not strictly increasing at row ${i}`);
  }
  const binSeconds = nBins > 1 ? (t[nBins - 1] - t[0]) / (nBins - 1) : 0.05;

  let emg: Float32Array | undefined;
  let nEmg = 0;
  if (options.emg !== false && binned.fields.includes('emgdatabin')) {
    const e = matrix(binned, 'emgdatabin');
    if (e.dims[0] === nBins && e.dims[1] > 0) {
      emg = toRowMajorFloat32(e);
      nEmg = e.dims[1];
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
    y: toRowMajorFloat32(force),
    yLabels: labels(binned, 'forcelabels'),
    ...(emg ? { emg } : {}),
    nEmg,
    emgLabels: emg ? labels(binned, 'emgguide') : [],
    channelIds,
  };
}

function matrix(s: MatValue, name: string): MatNumeric {
  const v = field(s, name);
  if (v.kind !== 'numeric' || v.dims.length !== 2 || v.imag) throw new Error(`binnedData.${name} is not a real 2-D numeric array`);
  return v;
}

function toFloat64(v: MatNumeric): Float64Array {
  if (numel(v) !== v.dims[0]) throw new Error(`timeframe is ${v.dims.join('x')}, expected a column`);
  return v.data instanceof Float64Array ? v.data : Float64Array.from(v.data as ArrayLike<number>, Number);
}

function labels(s: MatValue, name: string): string[] {
  if (s.kind !== 'struct' || !s.fields.includes(name)) return [];
  const v = field(s, name);
  if (v.kind !== 'cell') return [];
  return v.cells.map((c) => (c.kind === 'char' ? c.text : ''));
}
