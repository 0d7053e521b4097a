import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { field, readMat, toRowMajorFloat32, type MatNumeric } from '../src/adapters/replay/mat5.js';
import { labelTrack, loadJangoSession, type JangoSession } from '../src/adapters/replay/jango.js';
import {
  AXIS_TRANSFORMS,
  TRIAL_TABLE_LABELS,
  applyAxisTransform,
  describeTransform,
  detectForceFrame,
  parseTrialTable,
  type AxisTransform,
  type JangoTrial,
} from '../src/adapters/replay/force-frame.js';
import { jangoDataDir } from './support/jango-data.js';
import { mulberry32 } from './support/driftline-process.js';

const DATA = jangoDataDir();
const DAY0 = join(DATA, 'Day0.mat');
const DAY16 = join(DATA, 'Day16.mat');
const hasData = existsSync(DAY0) && existsSync(DAY16);
const noData = hasData ? false : `Jango data missing: ${DAY0} and ${DAY16} not found (CI has them)`;
if (!hasData) console.log(`SKIP Jango alignment data tests: ${noData}`);

// ---- helpers -------------------------------------------------------------------------------------------------

function pearson(a: readonly number[], b: readonly number[]): number {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n;
  const mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/**
 * Per axis, correlation of the mean force over the last 0.5 s of each rewarded trial with the target centre. A
 * plain scan over all bins, independent of force-frame.ts's windowing, so the two check each other.
 */
function endForceCorrelation(s: JangoSession): { r: number[][]; n: number } {
  const fx: number[] = [];
  const fy: number[] = [];
  const cx: number[] = [];
  const cy: number[] = [];
  for (const trial of s.trials) {
    if (!trial.rewarded) continue;
    let sx = 0;
    let sy = 0;
    let k = 0;
    for (let i = 0; i < s.nBins; i++) {
      if (s.t[i] >= trial.end - 0.5 && s.t[i] < trial.end) {
        sx += s.y[i * 2];
        sy += s.y[i * 2 + 1];
        k++;
      }
    }
    if (k === 0) continue;
    fx.push(sx / k);
    fy.push(sy / k);
    cx.push(trial.targetCenter[0]);
    cy.push(trial.targetCenter[1]);
  }
  return {
    r: [
      [pearson(fx, cx), pearson(fx, cy)],
      [pearson(fy, cx), pearson(fy, cy)],
    ],
    n: fx.length,
  };
}

/** Least squares y ~ [emg, 1] with the normal equations in Float64 (15 unknowns), one weight row per output. */
function fitLinear(x: Float32Array, nIn: number, y: Float32Array, nOut: number): number[][] {
  const p = nIn + 1;
  const n = x.length / nIn;
  const a = Array.from({ length: p }, () => new Float64Array(p));
  const b = Array.from({ length: nOut }, () => new Float64Array(p));
  const row = new Float64Array(p);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < nIn; j++) row[j] = x[i * nIn + j];
    row[nIn] = 1;
    for (let u = 0; u < p; u++) {
      for (let v = 0; v < p; v++) a[u][v] += row[u] * row[v];
      for (let k = 0; k < nOut; k++) b[k][u] += row[u] * y[i * nOut + k];
    }
  }
  return b.map((rhs) => solve(a, rhs));
}

function solve(a: Float64Array[], rhs: Float64Array): number[] {
  const n = rhs.length;
  const m = a.map((r, i) => [...r, rhs[i]]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[piv][c])) piv = r;
    [m[c], m[piv]] = [m[piv], m[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r][c] / m[c][c];
      for (let k = c; k <= n; k++) m[r][k] -= f * m[c][k];
    }
  }
  return m.map((r, i) => r[n] / r[i]);
}

/** R2 per output of a fitted linear map, against the target's own mean. */
function r2(w: number[][], x: Float32Array, nIn: number, y: Float32Array): number[] {
  const nOut = w.length;
  const n = x.length / nIn;
  return w.map((wk, k) => {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += y[i * nOut + k];
    mean /= n;
    let sse = 0;
    let sst = 0;
    for (let i = 0; i < n; i++) {
      let pred = wk[nIn];
      for (let j = 0; j < nIn; j++) pred += wk[j] * x[i * nIn + j];
      sse += (y[i * nOut + k] - pred) ** 2;
      sst += (y[i * nOut + k] - mean) ** 2;
    }
    return 1 - sse / sst;
  });
}

const mean = (v: number[]): number => v.reduce((s, x) => s + x, 0) / v.length;

/** A standard normal draw (Box-Muller) from a uniform source. */
function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

// ---- a synthetic session of the 8-target isometric task ------------------------------------------------------

interface Synthetic {
  /** Column-major rows x 12, as the MAT file stores it. */
  readonly table: Float64Array;
  readonly rows: number;
  readonly trials: JangoTrial[];
  readonly t: Float64Array;
  /** Force as the file would record it (the true frame with `transform` undone). */
  readonly raw: Float32Array;
  /** Force in the task frame. */
  readonly aligned: Float32Array;
}

/**
 * Trials to 8 targets at radius 10 (as in the Jango files), 1.2 s from target to trial end with the force on
 * target for the last 0.7 s, a rest offset like the real one, Gaussian noise. `related: false` draws the hold
 * force at random, unrelated to the target. The raw force is such that `transform` maps it to the task frame.
 */
function synthetic(opts: { perTarget: number; transform: AxisTransform; seed: number; noise?: number; related?: boolean; onlyX?: boolean; failedEvery?: number }): Synthetic {
  const rand = mulberry32(opts.seed);
  const noise = opts.noise ?? 200;
  const rows = opts.perTarget * 8;
  const table = new Float64Array(rows * 12);
  const set = (i: number, j: number, v: number): void => {
    table[i + j * rows] = v;
  };
  const spans: [number, number, number, number][] = []; // hold from, hold to, gx, gy
  let time = 1;
  for (let i = 0; i < rows; i++) {
    const id = (i % 8) + 1;
    const ang = ((id - 1) * Math.PI) / 4;
    const cx = Math.round(10 * Math.cos(ang) * 100) / 100;
    const cy = Math.round(10 * Math.sin(ang) * 100) / 100;
    const start = time;
    const on = start + 0.5;
    const end = on + 1.2;
    const failed = opts.failedEvery !== undefined && i % opts.failedEvery === 0;
    [start, cx - 2, cy + 2, cx + 2, cy - 2, on, on + 0.001, end, failed ? 70 : 82, id, 0, 0].forEach((v, j) => set(i, j, v));
    let gx = 300 * cx;
    let gy = 300 * cy;
    if (opts.related === false || failed) {
      gx = 3000 * gaussian(rand);
      gy = 3000 * gaussian(rand);
    }
    if (opts.onlyX) gy = 3000 * gaussian(rand);
    spans.push([end - 0.7, end, gx, gy]);
    time = end + 1;
  }
  const nBins = Math.ceil(time / 0.05) + 10;
  const t = new Float64Array(nBins);
  const aligned = new Float32Array(nBins * 2);
  let s = 0;
  for (let i = 0; i < nBins; i++) {
    t[i] = i * 0.05;
    while (s < spans.length && spans[s][1] <= t[i]) s++;
    const hold = s < spans.length && t[i] >= spans[s][0] ? spans[s] : undefined;
    aligned[i * 2] = -1500 + (hold ? hold[2] : 0) + noise * gaussian(rand);
    aligned[i * 2 + 1] = -1200 + (hold ? hold[3] : 0) + noise * gaussian(rand);
  }
  // aligned[k] = signs[k] * raw[permutation[k]], so raw[permutation[k]] = signs[k] * aligned[k].
  const raw = new Float32Array(nBins * 2);
  const { permutation: p, signs: sg } = opts.transform;
  for (let i = 0; i < nBins; i++) {
    raw[i * 2 + p[0]] = sg[0] * aligned[i * 2];
    raw[i * 2 + p[1]] = sg[1] * aligned[i * 2 + 1];
  }
  return { table, rows, trials: parseTrialTable(table, rows, 12, TRIAL_TABLE_LABELS), t, raw, aligned };
}

// ---- a MAT v5 writer for small hand-made recordings ----------------------------------------------------------

const MI = { INT8: 1, UINT16: 4, INT32: 5, UINT32: 6, DOUBLE: 9, MATRIX: 14 };
const MX = { CELL: 1, STRUCT: 2, CHAR: 4, DOUBLE: 6 };

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function element(type: number, data: Uint8Array): Uint8Array {
  return concat(u32(type), u32(data.length), data, new Uint8Array((8 - (data.length % 8)) % 8));
}

function int32s(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  values.forEach((v, i) => new DataView(b.buffer).setInt32(i * 4, v, true));
  return b;
}

function matrixEl(cls: number, dims: number[], name: string, body: Uint8Array[]): Uint8Array {
  const flags = element(MI.UINT32, concat(u32(cls), u32(0)));
  return element(MI.MATRIX, concat(flags, element(MI.INT32, int32s(dims)), element(MI.INT8, new TextEncoder().encode(name)), ...body));
}

const W = {
  double(name: string, rows: number, cols: number, columnMajor: ArrayLike<number>): Uint8Array {
    const b = new Uint8Array(rows * cols * 8);
    const v = new DataView(b.buffer);
    for (let i = 0; i < rows * cols; i++) v.setFloat64(i * 8, columnMajor[i], true);
    return matrixEl(MX.DOUBLE, [rows, cols], name, [element(MI.DOUBLE, b)]);
  },
  char(name: string, text: string): Uint8Array {
    const b = new Uint8Array(text.length * 2);
    for (let i = 0; i < text.length; i++) new DataView(b.buffer).setUint16(i * 2, text.charCodeAt(i), true);
    return matrixEl(MX.CHAR, [1, text.length], name, [element(MI.UINT16, b)]);
  },
  cellOfStrings(name: string, items: readonly string[]): Uint8Array {
    return matrixEl(MX.CELL, [1, items.length], name, items.map((s) => W.char('', s)));
  },
  struct(name: string, fields: [string, (fieldName: string) => Uint8Array][]): Uint8Array {
    const len = 32;
    const names = new Uint8Array(fields.length * len);
    fields.forEach(([f], i) => names.set(new TextEncoder().encode(f), i * len));
    // The field name length is a small data element, as MATLAB writes it.
    const lenEl = concat(u32((4 << 16) | MI.INT32), int32s([len]));
    return matrixEl(MX.STRUCT, [1, 1], name, [lenEl, element(MI.INT8, names), ...fields.map(([, make]) => make(''))]);
  },
  file(...elements: Uint8Array[]): Uint8Array {
    const h = new Uint8Array(128).fill(32);
    h.set(new TextEncoder().encode('MATLAB 5.0 MAT-file, hand-built by driftline tests'));
    h.fill(0, 116, 124);
    new DataView(h.buffer).setUint16(124, 0x0100, true);
    h[126] = 'I'.charCodeAt(0);
    h[127] = 'M'.charCodeAt(0);
    return concat(h, ...elements);
  },
};

function toColumnMajor(rowMajor: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i + j * rows] = rowMajor[i * cols + j];
  return out;
}

type FieldMaker = [string, (name: string) => Uint8Array];

/** The fields of a binnedData for a synthetic session; the caller drops or replaces some to break it. */
function binnedFields(s: Synthetic): FieldMaker[] {
  const n = s.t.length;
  const spikes = new Float64Array(n * 2).map((_, i) => (i % 7) * 20);
  const emg = new Float64Array(n * 3).map((_, i) => (i % 5) / 5);
  return [
    ['timeframe', (nm) => W.double(nm, n, 1, s.t)],
    ['spikeratedata', (nm) => W.double(nm, n, 2, spikes)],
    ['forcedatabin', (nm) => W.double(nm, n, 2, toColumnMajor(s.raw, n, 2))],
    ['forcelabels', (nm) => W.cellOfStrings(nm, ['Force_x', 'Force_y'])],
    ['emgdatabin', (nm) => W.double(nm, n, 3, emg)],
    ['emgguide', (nm) => W.cellOfStrings(nm, ['FCRr', 'ECU', 'Brad'])],
    ['trialtable', (nm) => W.double(nm, s.rows, 12, s.table)],
    ['trialtablelabels', (nm) => W.cellOfStrings(nm, TRIAL_TABLE_LABELS)],
  ];
}

function without(fields: FieldMaker[], name: string): FieldMaker[] {
  return fields.filter(([f]) => f !== name);
}

function replacing(fields: FieldMaker[], name: string, make: (name: string) => Uint8Array): FieldMaker[] {
  return fields.map((f) => (f[0] === name ? [name, make] : f));
}

// ---- the real sessions ---------------------------------------------------------------------------------------

describe('Jango force in the task frame (real sessions)', { skip: noData }, () => {
  let d0: JangoSession;
  let d16: JangoSession;
  let d0raw: JangoSession;
  let d16raw: JangoSession;
  before(async () => {
    if (!hasData) return;
    [d0, d16, d0raw, d16raw] = await Promise.all([
      loadJangoSession(DAY0),
      loadJangoSession(DAY16),
      loadJangoSession(DAY0, { alignForce: false }),
      loadJangoSession(DAY16, { alignForce: false }),
    ]);
  });

  test('Day0 is detected as swapped (no sign flip), Day16 as the identity, both with a wide margin', () => {
    for (const s of [d0, d16]) {
      const f = s.forceFrame;
      console.log(
        `${s.name}: ${describeTransform(f)} applied=${f.applied} score=${f.score.toFixed(4)} runnerUp=${f.runnerUp.toFixed(4)} rewardedTrials=${f.rewardedTrials} window=${f.windowSeconds} s`,
      );
    }
    assert.equal(d0.forceFrame.applied, true);
    assert.deepEqual(d0.forceFrame.permutation, [1, 0]);
    assert.deepEqual(d0.forceFrame.signs, [1, 1]);
    assert.deepEqual(d0.yLabels, ['Force_y', 'Force_x']);
    assert.equal(d16.forceFrame.applied, true);
    assert.deepEqual(d16.forceFrame.permutation, [0, 1]);
    assert.deepEqual(d16.forceFrame.signs, [1, 1]);
    assert.deepEqual(d16.yLabels, ['Force_x', 'Force_y']);
    // Measured: scores 0.997 (both), runner-up 0.001 (Day0) and 0.019 (Day16); 296 and 224 rewarded trials.
    for (const s of [d0, d16]) {
      assert.ok(s.forceFrame.score > 0.95, `${s.name} score ${s.forceFrame.score}`);
      assert.ok(s.forceFrame.runnerUp < 0.2, `${s.name} runner-up ${s.forceFrame.runnerUp}`);
      assert.equal(s.forceFrame.reason, undefined);
    }
    assert.equal(d0.forceFrame.rewardedTrials, 296);
    assert.equal(d16.forceFrame.rewardedTrials, 224);
  });

  test('after alignment both sessions follow the target axes (end-of-trial force vs target centre)', () => {
    for (const [s, raw] of [
      [d0, d0raw],
      [d16, d16raw],
    ] as const) {
      const { r, n } = endForceCorrelation(s);
      const before = endForceCorrelation(raw).r;
      console.log(
        `${s.name} (${n} rewarded trials): aligned r(x,x)=${r[0][0].toFixed(4)} r(y,y)=${r[1][1].toFixed(4)} r(x,y)=${r[0][1].toFixed(4)} r(y,x)=${r[1][0].toFixed(4)}; ` +
          `as recorded r(x,x)=${before[0][0].toFixed(4)} r(y,y)=${before[1][1].toFixed(4)}`,
      );
      // Measured 0.997 on both axes of both files; the cross terms within +-0.03.
      assert.ok(r[0][0] > 0.95 && r[1][1] > 0.95, `${s.name}: ${JSON.stringify(r)}`);
      assert.ok(Math.abs(r[0][1]) < 0.2 && Math.abs(r[1][0]) < 0.2, `${s.name}: ${JSON.stringify(r)}`);
    }
    // The reason the loader aligns at all: as recorded, Day0's columns match the other target axis.
    const r0 = endForceCorrelation(d0raw).r;
    assert.ok(Math.abs(r0[0][0]) < 0.2 && r0[0][1] > 0.95 && r0[1][0] > 0.95, JSON.stringify(r0));
  });

  test('alignForce: false leaves Day0 exactly as the file records it (and says what it would have done)', () => {
    const mat = readMat(readFileSync(DAY0));
    const force = field(mat.binnedData, 'forcedatabin') as MatNumeric;
    assert.deepEqual(d0raw.y, toRowMajorFloat32(force));
    assert.deepEqual(d0raw.yLabels, ['Force_x', 'Force_y']);
    assert.equal(d0raw.forceFrame.applied, false);
    assert.deepEqual(d0raw.forceFrame.permutation, [0, 1]);
    assert.deepEqual(d0raw.forceFrame.candidate?.permutation, [1, 0]);
    assert.match(d0raw.forceFrame.reason ?? '', /alignForce is false; the detected transform would be swap/);
    // Aligned Day0 is the raw matrix with its columns swapped, value for value.
    assert.deepEqual(d0.y, applyAxisTransform(d0raw.y, { permutation: [1, 0], signs: [1, 1] }));
    for (let i = 0; i < d0.nBins; i += 997) assert.ok(d0.y[i * 2] === d0raw.y[i * 2 + 1] && d0.y[i * 2 + 1] === d0raw.y[i * 2]);
    // Day16 is the identity either way.
    assert.deepEqual(d16.y, d16raw.y);
  });

  test('the trial table is parsed', () => {
    assert.equal(d0.trials.length, 299);
    assert.equal(d16.trials.length, 224);
    assert.equal(d0.trials.filter((t) => t.rewarded).length, 296);
    assert.equal(d16.trials.filter((t) => t.rewarded).length, 224);
    assert.deepEqual(
      [...new Set(d0.trials.map((t) => t.targetId))].sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    const first = d0.trials[0];
    assert.deepEqual(first.targetCenter, [-10, 0]);
    assert.equal(first.targetId, 5);
    assert.equal(first.result, 'R');
    assert.ok(Math.abs(first.start - 1.4662333) < 1e-6 && Math.abs(first.end - 3.5661333) < 1e-6);
    for (const s of [d0, d16]) {
      for (const t of s.trials) assert.ok(t.start < t.targetOn && t.targetOn < t.end && t.end <= s.t[s.nBins - 1] + s.binSeconds, JSON.stringify(t));
    }
  });

  test('EMG serves as a second label track; a session loaded without it says so, naming the file', async () => {
    const e = labelTrack(d0, 'emg');
    assert.equal(e.nOutputs, 14);
    assert.equal(e.y.length, d0.nBins * 14);
    assert.equal(e.labels.length, 14);
    assert.equal(e.labels[0], 'FCRr');
    const f = labelTrack(d0, 'force');
    assert.equal(f.nOutputs, 2);
    assert.equal(f.y, d0.y);
    assert.deepEqual(f.labels, ['Force_y', 'Force_x']);
    const noEmg = await loadJangoSession(DAY16, { emg: false });
    assert.throws(() => labelTrack(noEmg, 'emg'), (err: Error) => err.message.includes(DAY16) && /no EMG label track: loaded with \{ emg: false \}/.test(err.message));
  });

  test('cross-day: an EMG->force map fitted on Day0 carries to Day16 once both are aligned', () => {
    const wAligned = fitLinear(d0.emg!, 14, d0.y, 2);
    const wRaw = fitLinear(d0raw.emg!, 14, d0raw.y, 2);
    const within = r2(wAligned, d0.emg!, 14, d0.y);
    const aligned = r2(wAligned, d16.emg!, 14, d16.y);
    const unaligned = r2(wRaw, d16raw.emg!, 14, d16raw.y);
    const fmt = (v: number[]): string => `x ${v[0].toFixed(3)}, y ${v[1].toFixed(3)}, mean ${mean(v).toFixed(3)}`;
    console.log(`EMG->force least squares (14 EMG + intercept, all bins): Day0 within-session R2 ${fmt(within)}`);
    console.log(`  Day0 -> Day16 aligned R2 ${fmt(aligned)}; as recorded R2 ${fmt(unaligned)}`);
    // Measured: aligned mean 0.79 (x 0.83, y 0.75), as recorded -0.91 (x -0.80, y -1.02). Loose on purpose.
    assert.ok(mean(aligned) > 0.5, `aligned R2 ${mean(aligned)}`);
    assert.ok(mean(unaligned) < 0.3, `unaligned R2 ${mean(unaligned)}`);
  });

  test('a truncated Day0 (its first 10 kB) gives an error naming the file and binnedData', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'driftline-jango-trunc-'));
    try {
      const path = join(dir, 'Day0-truncated.mat');
      writeFileSync(path, readFileSync(DAY0).subarray(0, 10 * 1024));
      await assert.rejects(loadJangoSession(path), (err: Error) => {
        assert.equal(err.name, 'MatFormatError');
        assert.ok(err.message.startsWith(`${path}: cannot read it as a MAT v5 file holding 'binnedData' (10240 bytes): `), err.message);
        assert.match(err.message, /claims \d+ bytes but only \d+ remain/);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- the pure search on synthetic sessions -------------------------------------------------------------------

describe('detectForceFrame on synthetic sessions', () => {
  test('each of the 8 signed axis permutations is recovered', () => {
    AXIS_TRANSFORMS.forEach((transform, k) => {
      const s = synthetic({ perTarget: 6, transform, seed: 100 + k });
      const f = detectForceFrame({ trials: s.trials, t: s.t, y: s.raw, nOutputs: 2 });
      assert.equal(f.applied, true, `${describeTransform(transform)}: ${f.reason}`);
      assert.deepEqual({ permutation: f.permutation, signs: f.signs }, transform, describeTransform(transform));
      assert.ok(f.score > 0.95 && f.score - f.runnerUp > 0.5, `${describeTransform(transform)}: ${f.score} vs ${f.runnerUp}`);
      assert.equal(f.rewardedTrials, 48);
      // Applying it gives back the task-frame force.
      assert.deepEqual(applyAxisTransform(s.raw, f), s.aligned);
    });
  });

  test('failed trials do not count as evidence', () => {
    const transform: AxisTransform = { permutation: [1, 0], signs: [-1, 1] };
    const s = synthetic({ perTarget: 8, transform, seed: 7, failedEvery: 3 });
    const f = detectForceFrame({ trials: s.trials, t: s.t, y: s.raw, nOutputs: 2 });
    assert.equal(f.applied, true);
    assert.deepEqual([f.permutation, f.signs], [transform.permutation, transform.signs]);
    assert.equal(f.rewardedTrials, s.trials.filter((t) => t.rewarded).length);
    assert.equal(f.rewardedTrials, 64 - Math.ceil(64 / 3));
  });

  test('force unrelated to the targets keeps the identity, applied: false, with a reason', () => {
    const s = synthetic({ perTarget: 6, transform: { permutation: [1, 0], signs: [1, -1] }, seed: 3, related: false });
    const f = detectForceFrame({ trials: s.trials, t: s.t, y: s.raw, nOutputs: 2 });
    console.log(`unrelated force: score ${f.score.toFixed(3)}, runner-up ${f.runnerUp.toFixed(3)}: ${f.reason}`);
    assert.equal(f.applied, false);
    assert.deepEqual([f.permutation, f.signs], [[0, 1], [1, 1]]);
    assert.match(f.reason ?? '', /^(weak evidence|ambiguous): .*force kept in the file's column order$/);
  });

  test('only one axis related to the targets is ambiguous, and keeps the identity', () => {
    const s = synthetic({ perTarget: 6, transform: { permutation: [1, 0], signs: [1, 1] }, seed: 5, onlyX: true });
    const f = detectForceFrame({ trials: s.trials, t: s.t, y: s.raw, nOutputs: 2 });
    console.log(`one axis only: score ${f.score.toFixed(3)}, runner-up ${f.runnerUp.toFixed(3)}: ${f.reason}`);
    assert.equal(f.applied, false);
    assert.deepEqual([f.permutation, f.signs], [[0, 1], [1, 1]]);
    assert.match(f.reason ?? '', /^ambiguous: /);
  });

  test('too few rewarded trials keeps the identity', () => {
    const s = synthetic({ perTarget: 6, transform: { permutation: [1, 0], signs: [1, 1] }, seed: 9 });
    const few = s.trials.map((t, i) => (i < 5 ? t : { ...t, rewarded: false }));
    const f = detectForceFrame({ trials: few, t: s.t, y: s.raw, nOutputs: 2 });
    assert.equal(f.applied, false);
    assert.deepEqual([f.permutation, f.signs], [[0, 1], [1, 1]]);
    assert.equal(f.rewardedTrials, 5);
    assert.ok(Number.isNaN(f.score));
    assert.match(f.reason ?? '', /^only 5 rewarded trials with force in the last 0.5 s \(need 16\)/);
  });

  test('targets that never leave one axis cannot decide the frame', () => {
    const s = synthetic({ perTarget: 6, transform: { permutation: [0, 1], signs: [1, 1] }, seed: 11 });
    const flat = s.trials.map((t) => ({ ...t, targetCenter: [t.targetCenter[0], 0] as [number, number] }));
    const f = detectForceFrame({ trials: flat, t: s.t, y: s.raw, nOutputs: 2 });
    assert.equal(f.applied, false);
    assert.match(f.reason ?? '', /do not vary along y/);
  });

  test('a trial table whose labels disagree with the layout read is refused', () => {
    const s = synthetic({ perTarget: 2, transform: { permutation: [0, 1], signs: [1, 1] }, seed: 1 });
    const labels: string[] = [...TRIAL_TABLE_LABELS];
    labels[7] = 'reward time';
    assert.throws(() => parseTrialTable(s.table, s.rows, 12, labels), /trialtablelabels: column 8 is 'reward time', expected 'trial end time'/);
    assert.throws(() => parseTrialTable(s.table.subarray(0, s.rows * 11), s.rows, 11), /trialtable is 16x11, expected 12 columns/);
  });
});

// ---- loader errors and a hand-made recording end to end ------------------------------------------------------

describe('loadJangoSession on hand-made and broken files', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'driftline-jango-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const swapFlip: AxisTransform = { permutation: [1, 0], signs: [1, -1] };
  const write = (name: string, bytes: Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const rejectsWith = async (p: Promise<unknown>, path: string, pattern: RegExp): Promise<void> => {
    await assert.rejects(p, (err: Error) => {
      assert.ok(err.message.startsWith(`${path}: `), err.message);
      assert.match(err.message, pattern);
      return true;
    });
  };

  test('a recorded swap with a sign flip is undone at load, labels following their columns', async () => {
    const s = synthetic({ perTarget: 4, transform: swapFlip, seed: 21 });
    const path = write('swapped.mat', W.file(W.struct('binnedData', binnedFields(s))));
    const session = await loadJangoSession(path);
    assert.equal(session.forceFrame.applied, true, session.forceFrame.reason);
    assert.deepEqual([session.forceFrame.permutation, session.forceFrame.signs], [swapFlip.permutation, swapFlip.signs]);
    assert.deepEqual(session.yLabels, ['Force_y', '-Force_x']);
    assert.deepEqual(session.y, s.aligned);
    assert.equal(session.trials.length, 32);
    assert.deepEqual(labelTrack(session, 'emg').labels, ['FCRr', 'ECU', 'Brad']);
    const raw = await loadJangoSession(path, { alignForce: false });
    assert.deepEqual(raw.y, s.raw);
    assert.deepEqual(raw.yLabels, ['Force_x', 'Force_y']);
  });

  test('a missing file', async () => {
    const path = join(dir, 'nope.mat');
    await assert.rejects(loadJangoSession(path), (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.message.includes(path));
  });

  test('a file that is not MAT', async () => {
    const path = write('notes.mat', new TextEncoder().encode('trial,force_x,force_y\n'.repeat(20)));
    await rejectsWith(loadJangoSession(path), path, /cannot read it as a MAT v5 file holding 'binnedData' \(440 bytes\): MAT file: bad endian indicator/);
    const tiny = write('tiny.mat', new TextEncoder().encode('hello'));
    await rejectsWith(loadJangoSession(tiny), tiny, /truncated header \(5 of 128 bytes\)/);
  });

  test('a MAT file without binnedData', async () => {
    const path = write('other.mat', W.file(W.double('spikes', 2, 2, [1, 2, 3, 4])));
    await rejectsWith(loadJangoSession(path), path, /no variable 'binnedData' \(variables: spikes\)/);
  });

  test('binnedData without trialtable: refused while aligning, naming the field; loads with alignForce: false', async () => {
    const s = synthetic({ perTarget: 2, transform: swapFlip, seed: 2 });
    const path = write('no-trialtable.mat', W.file(W.struct('binnedData', without(without(binnedFields(s), 'trialtable'), 'trialtablelabels'))));
    await rejectsWith(loadJangoSession(path), path, /binnedData has no field 'trialtable', which aligning the force to the task frame needs \(pass alignForce: false/);
    const session = await loadJangoSession(path, { alignForce: false });
    assert.deepEqual(session.trials, []);
    assert.deepEqual(session.y, s.raw);
    assert.equal(session.forceFrame.applied, false);
    assert.match(session.forceFrame.reason ?? '', /alignForce is false and binnedData has no trialtable/);
  });

  test('binnedData without forcedatabin, and a trial table of the wrong shape or labels', async () => {
    const s = synthetic({ perTarget: 2, transform: swapFlip, seed: 4 });
    const noForce = write('no-force.mat', W.file(W.struct('binnedData', without(binnedFields(s), 'forcedatabin'))));
    await rejectsWith(loadJangoSession(noForce), noForce, /binnedData has no field 'forcedatabin'/);
    const n = s.t.length;
    const short = write('short-force.mat', W.file(W.struct('binnedData', replacing(binnedFields(s), 'forcedatabin', (nm) => W.double(nm, n - 1, 2, s.raw.subarray(0, (n - 1) * 2))))));
    await rejectsWith(loadJangoSession(short), short, new RegExp(`binnedData\\.forcedatabin has ${n - 1} rows, timeframe ${n}`));
    const narrow = write('narrow-table.mat', W.file(W.struct('binnedData', replacing(binnedFields(s), 'trialtable', (nm) => W.double(nm, s.rows, 11, s.table)))));
    // A table that is wrong is refused also when not aligning: the trials are part of what the loader returns.
    await rejectsWith(loadJangoSession(narrow, { alignForce: false }), narrow, /binnedData\.trialtable is 16x11, expected 12 columns/);
    const relabelled: string[] = [...TRIAL_TABLE_LABELS];
    relabelled[8] = 'tgt_id';
    relabelled[9] = 'Result(R,A,I,orN)';
    const swappedCols = write('relabelled.mat', W.file(W.struct('binnedData', replacing(binnedFields(s), 'trialtablelabels', (nm) => W.cellOfStrings(nm, relabelled)))));
    await rejectsWith(loadJangoSession(swappedCols), swappedCols, /binnedData\.trialtablelabels: column 9 is 'tgt_id', expected 'Result\(R,A,I,orN\)'/);
  });

  test('a recording without EMG loads; asking for the EMG track names the file and the field', async () => {
    const s = synthetic({ perTarget: 4, transform: swapFlip, seed: 6 });
    const path = write('no-emg.mat', W.file(W.struct('binnedData', without(binnedFields(s), 'emgdatabin'))));
    const session = await loadJangoSession(path);
    assert.equal(session.nEmg, 0);
    assert.throws(
      () => labelTrack(session, 'emg'),
      (err: Error) => err.message === `${path}: no EMG label track: binnedData has no field emgdatabin`,
    );
    assert.deepEqual(labelTrack(session, 'force').labels, ['Force_y', '-Force_x']);
  });
});
