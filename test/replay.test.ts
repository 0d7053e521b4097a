import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { deflateSync } from 'node:zlib';
import { describe, test, before, after } from 'node:test';
import fc from 'fast-check';
import { VirtualAction, VirtualTimeScheduler, firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { MatFormatError, at, column, field, numel, readMat, type MatValue, type MatNumeric } from '../src/adapters/replay/mat5.js';
import { loadJangoSession, type JangoSession } from '../src/adapters/replay/jango.js';
import { readNdjson, type NdjsonRejection } from '../src/adapters/replay/ndjson.js';
import { replaySessions, type ReplaySession } from '../src/adapters/replay/replay.js';
import type { StreamInput, TickEvent, LabelEvent, DriftMarker } from '../src/streams/messages.js';
import { jangoDataDir } from './support/jango-data.js';

const DATA = jangoDataDir();
const DAY0 = join(DATA, 'Day0.mat');
const DAY16 = join(DATA, 'Day16.mat');
const hasData = existsSync(DAY0) && existsSync(DAY16);
const noData = hasData ? false : `Jango data missing: ${DAY0} and ${DAY16} not found (CI has them)`;
if (!hasData) console.log(`SKIP data tests: ${noData}`);

// ---- a MAT v5 byte builder for hand-made files ---------------------------------------------------------------

const MI = { INT8: 1, UINT8: 2, INT16: 3, UINT16: 4, INT32: 5, UINT32: 6, SINGLE: 7, DOUBLE: 9, INT64: 12, MATRIX: 14, COMPRESSED: 15, UTF8: 16 };
const MX = { CELL: 1, STRUCT: 2, CHAR: 4, SPARSE: 5, DOUBLE: 6, SINGLE: 7, INT8: 8, UINT8: 9, INT16: 10, INT32: 12 };

class Builder {
  constructor(readonly le = true) {}
  u32(v: number): Uint8Array {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, this.le);
    return b;
  }
  typed(type: number, values: number[]): Uint8Array {
    const size = { 1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 16: 1 }[type] as number;
    const b = new Uint8Array(values.length * size);
    const v = new DataView(b.buffer);
    values.forEach((x, i) => {
      const o = i * size;
      if (type === MI.INT8) v.setInt8(o, x);
      else if (type === MI.UINT8 || type === MI.UTF8) v.setUint8(o, x);
      else if (type === MI.INT16) v.setInt16(o, x, this.le);
      else if (type === MI.UINT16) v.setUint16(o, x, this.le);
      else if (type === MI.INT32) v.setInt32(o, x, this.le);
      else if (type === MI.UINT32) v.setUint32(o, x, this.le);
      else if (type === MI.SINGLE) v.setFloat32(o, x, this.le);
      else v.setFloat64(o, x, this.le);
    });
    return b;
  }
  /** A data element in the normal format, padded to 8 bytes. */
  element(type: number, data: Uint8Array): Uint8Array {
    const pad = (8 - (data.length % 8)) % 8;
    return concat(this.u32(type), this.u32(data.length), data, new Uint8Array(pad));
  }
  /** A data element in the small format (<= 4 bytes). */
  small(type: number, data: Uint8Array): Uint8Array {
    assert.ok(data.length <= 4);
    const tag = new Uint8Array(4);
    const dv = new DataView(tag.buffer);
    // Bytes count in the upper 16 bits, type in the lower 16 bits, of a uint32 in file order.
    dv.setUint32(0, (data.length << 16) | type, this.le);
    const body = new Uint8Array(4);
    body.set(data);
    return concat(tag, body);
  }
  name(s: string): Uint8Array {
    const b = new TextEncoder().encode(s);
    return b.length <= 4 && b.length > 0 ? this.small(MI.INT8, b) : this.element(MI.INT8, b);
  }
  matrix(cls: number, dims: number[], name: string, body: Uint8Array[], flags = 0, nzmax = 0): Uint8Array {
    const content = concat(this.element(MI.UINT32, concat(this.u32(cls | flags), this.u32(nzmax))), this.element(MI.INT32, this.typed(MI.INT32, dims)), this.name(name), ...body);
    return this.element(MI.MATRIX, content);
  }
  header(text = 'MATLAB 5.0 MAT-file, hand-built by driftline tests'): Uint8Array {
    const h = new Uint8Array(128).fill(32);
    h.set(new TextEncoder().encode(text));
    h.fill(0, 116, 124);
    new DataView(h.buffer).setUint16(124, 0x0100, this.le);
    const ind = this.le ? 'IM' : 'MI';
    h[126] = ind.charCodeAt(0);
    h[127] = ind.charCodeAt(1);
    return h;
  }
  file(...elements: Uint8Array[]): Uint8Array {
    return concat(this.header(), ...elements);
  }
  compressed(element: Uint8Array): Uint8Array {
    const z = deflateSync(element);
    return concat(this.u32(MI.COMPRESSED), this.u32(z.length), z);
  }
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

const le = new Builder(true);

function num(v: MatValue | undefined): MatNumeric {
  assert.ok(v && v.kind === 'numeric', `expected numeric, got ${v?.kind}`);
  return v;
}

// ---- hand-built files ----------------------------------------------------------------------------------------

describe('readMat on hand-built MAT v5 bytes', () => {
  test('uncompressed double matrix, column-major, with at() and column()', () => {
    const bytes = le.file(le.matrix(MX.DOUBLE, [2, 3], 'A', [le.element(MI.DOUBLE, le.typed(MI.DOUBLE, [1, 2, 3, 4, 5, 6.5]))]));
    const m = readMat(bytes);
    const a = num(m.A);
    assert.equal(a.class, 'double');
    assert.equal(a.stored, 'double');
    assert.deepEqual(a.dims, [2, 3]);
    assert.ok(a.data instanceof Float64Array);
    assert.deepEqual(Array.from(a.data), [1, 2, 3, 4, 5, 6.5]);
    assert.equal(at(a, 1, 2), 6.5);
    assert.equal(at(a, 0, 1), 3);
    assert.deepEqual(Array.from(column(a, 1) as ArrayLike<number>), [3, 4]);
    assert.throws(() => at(a, 2, 0), RangeError);
  });

  test('a Node Buffer (what readFile returns, often a view into a larger pool) reads the same as a Uint8Array', () => {
    const bytes = le.file(le.matrix(MX.DOUBLE, [2, 3], 'A', [le.element(MI.DOUBLE, le.typed(MI.DOUBLE, [1, 2, 3, 4, 5, 6.5]))]));
    // The file's bytes at an offset inside a bigger buffer, as Buffer views from the pool are.
    const pool = Buffer.alloc(bytes.length + 24, 0xee);
    pool.set(bytes, 24);
    const view = pool.subarray(24);
    assert.deepEqual(Array.from(num(readMat(view).A).data as ArrayLike<number>), [1, 2, 3, 4, 5, 6.5]);
  });

  test('small data element format: a 1x1 double stored as one uint8 byte in the tag, and a 4-char name', () => {
    const bytes = le.file(le.matrix(MX.DOUBLE, [1, 1], 'abcd', [le.small(MI.UINT8, new Uint8Array([200]))]));
    const v = num(readMat(bytes).abcd);
    assert.equal(v.stored, 'uint8');
    assert.ok(v.data instanceof Float64Array);
    assert.deepEqual(Array.from(v.data), [200]);
    // Two int16 values in a small element.
    const b2 = le.file(le.matrix(MX.INT16, [1, 2], 'w', [le.small(MI.INT16, le.typed(MI.INT16, [-3, 7]))]));
    assert.deepEqual(Array.from(num(readMat(b2).w).data as ArrayLike<number>), [-3, 7]);
  });

  test('int16 class stored as int8 converts to Int16Array', () => {
    const bytes = le.file(le.matrix(MX.INT16, [3, 1], 'k', [le.element(MI.INT8, le.typed(MI.INT8, [-128, 0, 127]))]));
    const k = num(readMat(bytes).k);
    assert.equal(k.class, 'int16');
    assert.equal(k.stored, 'int8');
    assert.ok(k.data instanceof Int16Array);
    assert.deepEqual(Array.from(k.data), [-128, 0, 127]);
  });

  test('double class stored as uint16 (what spikeratedata does)', () => {
    const bytes = le.file(le.matrix(MX.DOUBLE, [2, 2], 'r', [le.element(MI.UINT16, le.typed(MI.UINT16, [0, 20, 65535, 40]))]));
    const r = num(readMat(bytes).r);
    assert.ok(r.data instanceof Float64Array);
    assert.deepEqual(Array.from(r.data), [0, 20, 65535, 40]);
  });

  test('complex: real and imaginary parts', () => {
    const bytes = le.file(
      le.matrix(MX.DOUBLE, [1, 2], 'z', [le.element(MI.DOUBLE, le.typed(MI.DOUBLE, [1.5, -2])), le.element(MI.INT8, le.typed(MI.INT8, [3, -4]))], 0x0800),
    );
    const z = num(readMat(bytes).z);
    assert.deepEqual(Array.from(z.data as ArrayLike<number>), [1.5, -2]);
    assert.ok(z.imag instanceof Float64Array);
    assert.deepEqual(Array.from(z.imag), [3, -4]);
  });

  test('char arrays: uint16 (UTF-16) 1xN, 2xN column-major, and UTF-8', () => {
    const s = 'héllo';
    const one = le.matrix(MX.CHAR, [1, s.length], 's', [le.element(MI.UINT16, le.typed(MI.UINT16, Array.from(s, (c) => c.charCodeAt(0))))]);
    // ['ab'; 'cd'] is stored column-major: a c b d.
    const two = le.matrix(MX.CHAR, [2, 2], 'm', [le.element(MI.UINT16, le.typed(MI.UINT16, Array.from('acbd', (c) => c.charCodeAt(0))))]);
    const u8 = le.matrix(MX.CHAR, [1, 2], 'u', [le.small(MI.UTF8, new TextEncoder().encode('ñ!'))]);
    const m = readMat(le.file(one, two, u8));
    assert.equal(m.s.kind, 'char');
    assert.equal(m.s.kind === 'char' && m.s.text, 'héllo');
    assert.deepEqual(m.m.kind === 'char' && m.m.rows, ['ab', 'cd']);
    assert.equal(m.u.kind === 'char' && m.u.text, 'ñ!');
  });

  test('cell array with a number, a string and an empty []', () => {
    const bytes = le.file(
      le.matrix(MX.CELL, [1, 3], 'c', [
        le.matrix(MX.DOUBLE, [1, 1], '', [le.element(MI.DOUBLE, le.typed(MI.DOUBLE, [42]))]),
        le.matrix(MX.CHAR, [1, 2], '', [le.element(MI.UINT16, le.typed(MI.UINT16, [104, 105]))]),
        le.element(MI.MATRIX, new Uint8Array(0)),
      ]),
    );
    const c = readMat(bytes).c;
    assert.ok(c.kind === 'cell');
    assert.deepEqual(c.dims, [1, 3]);
    assert.deepEqual(Array.from(num(c.cells[0]).data as ArrayLike<number>), [42]);
    assert.equal(c.cells[1].kind === 'char' && c.cells[1].text, 'hi');
    assert.equal(numel(c.cells[2]), 0);
  });

  test('struct 1x2 with two fields, compressed', () => {
    const fieldLen = 8;
    const names = new Uint8Array(2 * fieldLen);
    names.set(new TextEncoder().encode('alpha'), 0);
    names.set(new TextEncoder().encode('b'), fieldLen);
    const scalar = (v: number) => le.matrix(MX.DOUBLE, [1, 1], '', [le.element(MI.DOUBLE, le.typed(MI.DOUBLE, [v]))]);
    const str = (s: string) => le.matrix(MX.CHAR, [1, s.length], '', [le.element(MI.UINT16, le.typed(MI.UINT16, Array.from(s, (c) => c.charCodeAt(0))))]);
    const st = le.matrix(MX.STRUCT, [1, 2], 'S', [le.small(MI.INT32, le.typed(MI.INT32, [fieldLen])), le.element(MI.INT8, names), scalar(1), str('one'), scalar(2), str('two')]);
    const plain = readMat(le.file(st));
    const packed = readMat(le.file(le.compressed(st)));
    for (const m of [plain, packed]) {
      const s = m.S;
      assert.ok(s.kind === 'struct');
      assert.deepEqual(s.fields, ['alpha', 'b']);
      assert.equal(s.elements.length, 2);
      assert.deepEqual(Array.from(num(field(s, 'alpha', 1)).data as ArrayLike<number>), [2]);
      const b0 = field(s, 'b', 0);
      assert.equal(b0.kind === 'char' && b0.text, 'one');
      assert.throws(() => field(s, 'nope'), /no field 'nope'.*alpha, b/);
    }
  });

  test('logical array, and int32 / single classes', () => {
    const m = readMat(
      le.file(
        le.matrix(MX.UINT8, [1, 3], 'L', [le.small(MI.UINT8, new Uint8Array([1, 0, 1]))], 0x0200),
        le.matrix(MX.SINGLE, [1, 2], 'f', [le.element(MI.SINGLE, le.typed(MI.SINGLE, [0.5, -1.25]))]),
        le.matrix(MX.INT32, [1, 1], 'i', [le.small(MI.INT32, le.typed(MI.INT32, [-7]))]),
      ),
    );
    assert.equal(m.L.kind, 'logical');
    assert.deepEqual(m.L.kind === 'logical' && Array.from(m.L.data), [1, 0, 1]);
    assert.ok(num(m.f).data instanceof Float32Array);
    assert.deepEqual(Array.from(num(m.f).data as ArrayLike<number>), [0.5, -1.25]);
    assert.ok(num(m.i).data instanceof Int32Array);
    assert.equal(at(num(m.i), 0, 0), -7);
  });

  test('sparse double', () => {
    // [0 5; 7 0]: column 0 has row 1 = 7, column 1 has row 0 = 5.
    const sp = le.matrix(MX.SPARSE, [2, 2], 'sp', [le.element(MI.INT32, le.typed(MI.INT32, [1, 0])), le.element(MI.INT32, le.typed(MI.INT32, [0, 1, 2])), le.element(MI.DOUBLE, le.typed(MI.DOUBLE, [7, 5]))], 0, 2);
    const v = readMat(le.file(sp)).sp;
    assert.ok(v.kind === 'sparse');
    assert.deepEqual(Array.from(v.ir), [1, 0]);
    assert.deepEqual(Array.from(v.jc), [0, 1, 2]);
    assert.deepEqual(Array.from(v.data), [7, 5]);
  });

  test('big-endian files read the same', () => {
    const be = new Builder(false);
    const bytes = be.file(
      be.matrix(MX.DOUBLE, [2, 2], 'A', [be.element(MI.DOUBLE, be.typed(MI.DOUBLE, [1.5, 2, -3, 4]))]),
      be.matrix(MX.INT16, [1, 2], 'w', [be.small(MI.INT16, be.typed(MI.INT16, [-300, 301]))]),
      be.matrix(MX.CHAR, [1, 2], 'c', [be.element(MI.UINT16, be.typed(MI.UINT16, [0x4f, 0x4b]))]),
    );
    const m = readMat(bytes);
    assert.deepEqual(Array.from(num(m.A).data as ArrayLike<number>), [1.5, 2, -3, 4]);
    assert.deepEqual(Array.from(num(m.w).data as ArrayLike<number>), [-300, 301]);
    assert.equal(m.c.kind === 'char' && m.c.text, 'OK');
  });

  test('clear errors: header, version 7.3, truncation, bad sizes', () => {
    assert.throws(() => readMat(new Uint8Array(10)), (e: unknown) => e instanceof MatFormatError && /truncated header/.test(e.message));
    const v73 = le.header();
    new DataView(v73.buffer).setUint16(124, 0x0200, true);
    assert.throws(() => readMat(v73), /v7\.3 \(HDF5\)/);
    const good = le.file(le.matrix(MX.DOUBLE, [2, 3], 'A', [le.element(MI.DOUBLE, le.typed(MI.DOUBLE, [1, 2, 3, 4, 5, 6]))]));
    assert.throws(
      () => readMat(good.subarray(0, good.length - 20)),
      (e: unknown) => e instanceof MatFormatError && /claims \d+ bytes but only \d+ remain at byte 128/.test(e.message) && e.offset === 128,
    );
    // Dimensions that do not match the data.
    const bad = le.file(le.matrix(MX.DOUBLE, [4, 3], 'A', [le.element(MI.DOUBLE, le.typed(MI.DOUBLE, [1, 2, 3, 4, 5, 6]))]));
    assert.throws(() => readMat(bad), /holds 6 values, expected 12 at byte \d+/);
    // A corrupt zlib stream names the element's offset.
    const z = le.file(le.compressed(le.matrix(MX.DOUBLE, [1, 1], 'x', [le.element(MI.DOUBLE, le.typed(MI.DOUBLE, [1]))])));
    z[140] ^= 0xff;
    assert.throws(() => readMat(z), /at byte 128/);
    // A cell claiming a billion cells in a few bytes fails before allocating.
    assert.throws(() => readMat(le.file(le.matrix(MX.CELL, [100000, 10000], 'c', []))), /cannot fit/);
    // So does a struct without fields claiming 2^62 elements.
    const noFields = le.matrix(MX.STRUCT, [2147483647, 2147483647], 'e', [le.small(MI.INT32, le.typed(MI.INT32, [8])), le.element(MI.INT8, new Uint8Array(0))]);
    assert.throws(() => readMat(le.file(noFields)), /struct without fields claims/);
  });

  const validFiles = (): Uint8Array[] => {
    const st = le.matrix(MX.STRUCT, [1, 1], 'S', [
      le.small(MI.INT32, le.typed(MI.INT32, [8])),
      le.element(MI.INT8, new TextEncoder().encode('a\0\0\0\0\0\0\0')),
      le.matrix(MX.CELL, [1, 1], '', [le.matrix(MX.CHAR, [1, 2], '', [le.small(MI.UINT16, le.typed(MI.UINT16, [65, 66]))])]),
    ]);
    const dbl = le.matrix(MX.DOUBLE, [2, 3], 'A', [le.element(MI.UINT16, le.typed(MI.UINT16, [1, 2, 3, 4, 5, 6]))]);
    return [le.file(st, dbl), le.file(le.compressed(st), le.compressed(dbl))];
  };

  const mustFailCleanly = (bytes: Uint8Array): boolean => {
    try {
      readMat(bytes);
      return true; // a mutation may still be a valid file
    } catch (e) {
      return e instanceof MatFormatError && e.message.length > 0;
    }
  };

  test('random bytes, and random headers + bodies: a MatFormatError, never a crash (fast-check, 500 cases)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => mustFailCleanly(b)), { numRuns: 250 });
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 600 }), (little, body) => mustFailCleanly(concat(new Builder(little).header(), body))),
      { numRuns: 250 },
    );
  });

  test('mutated and truncated valid files: a MatFormatError or a valid read (fast-check, 500 cases)', () => {
    const files = validFiles();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(), fc.boolean(), (which, edits, cut, truncate) => {
        const f = files[which].slice();
        for (const [pos, val] of edits) f[128 + (pos % (f.length - 128))] = val;
        const bytes = truncate ? f.subarray(0, cut % (f.length + 1)) : f;
        return mustFailCleanly(bytes);
      }),
      { numRuns: 500 },
    );
  });
});

// ---- the real Jango files -------------------------------------------------------------------------------------

describe('readMat on the Jango sessions', { skip: noData }, () => {
  let day0: Record<string, MatValue>;
  let day16: Record<string, MatValue>;
  const bd = (m: Record<string, MatValue>) => m.binnedData;
  before(() => {
    let t = performance.now();
    day0 = readMat(readFileSync(DAY0));
    console.log(`readMat Day0.mat: ${(performance.now() - t).toFixed(0)} ms`);
    t = performance.now();
    day16 = readMat(readFileSync(DAY16));
    console.log(`readMat Day16.mat: ${(performance.now() - t).toFixed(0)} ms`);
  });

  test('binnedData is a 1x1 struct with the README fields', () => {
    for (const m of [day0, day16]) {
      const b = bd(m);
      assert.ok(b.kind === 'struct');
      assert.deepEqual(b.dims, [1, 1]);
      assert.equal(b.fields.length, 21);
      for (const f of ['timeframe', 'spikeratedata', 'forcedatabin', 'emgdatabin', 'neuronIDs', 'trialtable', 'forcelabels', 'emgguide', 'trialtablelabels']) {
        assert.ok(b.fields.includes(f), f);
      }
      const fl = field(b, 'forcelabels');
      assert.ok(fl.kind === 'cell');
      assert.deepEqual(fl.cells.map((c) => (c.kind === 'char' ? c.text : '?')), ['Force_x', 'Force_y']);
      const eg = field(b, 'emgguide');
      assert.ok(eg.kind === 'cell');
      assert.deepEqual(
        eg.cells.map((c) => (c.kind === 'char' ? c.text : '?')),
        ['FCRr', 'FCUu', 'FDPr', 'FDPu', 'FDSu', 'PL', 'PT', 'APB', 'FPB', 'FDS', 'ECU', 'ECRb', 'EDC1', 'Brad'],
      );
    }
  });

  test('Day0: timeframe 24000x1 from 0 step 0.05; spikeratedata 24000x96 multiples of 20; forcedatabin 24000x2 single; trialtable 299x12', () => {
    const b = bd(day0);
    const tf = num(field(b, 'timeframe'));
    assert.deepEqual(tf.dims, [24000, 1]);
    assert.equal(tf.data[0], 0);
    for (let i = 1; i < 24000; i++) assert.ok(Math.abs((tf.data[i] as number) - (tf.data[i - 1] as number) - 0.05) < 1e-9, `step at ${i}`);
    const sp = num(field(b, 'spikeratedata'));
    assert.deepEqual(sp.dims, [24000, 96]);
    assert.equal(sp.class, 'double');
    assert.equal(sp.stored, 'uint16');
    let nonzero = 0;
    for (const v of sp.data as Float64Array) {
      if (v % 20 !== 0 || v < 0) assert.fail(`spike rate ${v} is not a count x 20`);
      if (v !== 0) nonzero++;
    }
    assert.ok(nonzero > 100000);
    const fo = num(field(b, 'forcedatabin'));
    assert.deepEqual(fo.dims, [24000, 2]);
    assert.equal(fo.class, 'single');
    assert.ok(fo.data instanceof Float32Array);
    const tt = num(field(b, 'trialtable'));
    assert.deepEqual(tt.dims, [299, 12]);
    assert.deepEqual(num(field(b, 'emgdatabin')).dims, [24000, 14]);
    const ids = num(field(b, 'neuronIDs'));
    assert.deepEqual(ids.dims, [96, 2]);
  });

  test('Day16: 18000 rows; channel ids 67 and 70 (1-based, columns 66 and 69) are all zero and missing from neuronIDs', () => {
    const b = bd(day16);
    const sp = num(field(b, 'spikeratedata'));
    assert.deepEqual(sp.dims, [18000, 96]);
    assert.deepEqual(num(field(b, 'timeframe')).dims, [18000, 1]);
    const zeroCols: number[] = [];
    for (let j = 0; j < 96; j++) if (column(sp, j).every((v) => v === 0)) zeroCols.push(j);
    assert.deepEqual(zeroCols, [66, 69]);
    const ids = num(field(b, 'neuronIDs'));
    assert.deepEqual(ids.dims, [94, 2]);
    const present = new Set(Array.from(column(ids, 0) as ArrayLike<number>, Number));
    const missing = Array.from({ length: 96 }, (_, i) => i + 1).filter((c) => !present.has(c));
    assert.deepEqual(missing, [67, 70]);
  });

  test('cross-check against mat-for-js (GPL, dev-only oracle): same numbers and dims', async () => {
    // @ts-expect-error mat-for-js ships no type declarations; the cast below gives the one function used.
    const { read } = (await import('mat-for-js')) as { read: (b: ArrayBuffer) => { data: Record<string, unknown> } };
    for (const [path, mine] of [
      [DAY0, day0],
      [DAY16, day16],
    ] as const) {
      const buf = readFileSync(path);
      const t = performance.now();
      const theirs = read(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer).data.binnedData as Record<string, unknown>;
      console.log(`mat-for-js ${path}: ${(performance.now() - t).toFixed(0)} ms`);
      const b = bd(mine);
      assert.ok(b.kind === 'struct');
      assert.deepEqual(Object.keys(theirs).sort(), [...b.fields].sort());
      for (const f of b.fields) compareValue(`${path}:${f}`, field(b, f), theirs[f]);
      // Element by element for the three arrays the replay uses.
      for (const f of ['timeframe', 'spikeratedata', 'forcedatabin']) {
        const v = num(field(b, f));
        const [m, n] = v.dims;
        const o = theirs[f] as unknown[];
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            const want = n === 1 ? (o[i] as number) : (o[i] as number[])[j];
            if (v.data[i + j * m] !== want) assert.fail(`${path}:${f}(${i},${j}) = ${v.data[i + j * m]}, mat-for-js ${want}`);
          }
        }
      }
    }
  });
});

/** mat-for-js gives nested arrays (rows of columns), flat arrays for vectors, strings for char rows, objects for scalar structs. */
function compareValue(where: string, mine: MatValue, theirs: unknown): void {
  if (mine.kind === 'struct') {
    assert.ok(theirs && typeof theirs === 'object' && !Array.isArray(theirs), `${where}: struct`);
    assert.deepEqual(Object.keys(theirs as object).sort(), [...mine.fields].sort(), where);
    for (const f of mine.fields) compareValue(`${where}.${f}`, field(mine, f), (theirs as Record<string, unknown>)[f]);
    return;
  }
  if (mine.kind === 'char') {
    if (mine.dims[0] === 1) assert.equal(theirs, mine.text, where);
    return;
  }
  if (mine.kind === 'cell') {
    const flat = (theirs as unknown[]).flat();
    assert.equal(flat.length, numel(mine), `${where}: cell count`);
    return;
  }
  if (mine.kind !== 'numeric' && mine.kind !== 'logical') return;
  const [m, n] = mine.dims;
  if (numel(mine) === 0) {
    assert.equal((theirs as unknown[]).length, 0, where);
    return;
  }
  if (m === 1 && n === 1) {
    const t = Array.isArray(theirs) ? theirs[0] : theirs;
    assert.equal(t, Number(mine.data[0]), where);
    return;
  }
  const o = theirs as unknown[];
  if (m === 1 || n === 1) {
    assert.equal(o.length, m * n, `${where}: length`);
    assert.ok(!Array.isArray(o[0]), `${where}: vector`);
    return;
  }
  assert.equal(o.length, m, `${where}: rows`);
  assert.equal((o[0] as unknown[]).length, n, `${where}: columns`);
}

describe('loadJangoSession', { skip: noData }, () => {
  test('both sessions: names, shapes, row-major x and y, 96 columns kept', async () => {
    let t = performance.now();
    const d0 = await loadJangoSession(DAY0, { alignForce: false });
    console.log(`loadJangoSession Day0: ${(performance.now() - t).toFixed(0)} ms`);
    t = performance.now();
    const d16 = await loadJangoSession(DAY16, { alignForce: false });
    console.log(`loadJangoSession Day16: ${(performance.now() - t).toFixed(0)} ms`);
    assert.equal(d0.name, 'Jango_20160626_WFiso_R10T4_001');
    assert.equal(d16.name, 'Jango_20160711_WFiso_R10T4_001');
    assert.equal(d0.nBins, 24000);
    assert.equal(d16.nBins, 18000);
    for (const s of [d0, d16]) {
      assert.equal(s.nChannels, 96);
      assert.equal(s.nOutputs, 2);
      assert.ok(Math.abs(s.binSeconds - 0.05) < 1e-9);
      assert.equal(s.x.length, s.nBins * 96);
      assert.equal(s.y.length, s.nBins * 2);
      assert.equal(s.nEmg, 14);
      assert.deepEqual(s.yLabels, ['Force_x', 'Force_y']);
    }
    // Row-major against the column-major source.
    const m = readMat(readFileSync(DAY16));
    const sp = num(field(m.binnedData, 'spikeratedata'));
    const fo = num(field(m.binnedData, 'forcedatabin'));
    for (const [i, j] of [[0, 0], [17999, 95], [1234, 50], [9000, 66]]) {
      assert.equal(d16.x[i * 96 + j], at(sp, i, j));
    }
    for (const [i, j] of [[0, 0], [17999, 1], [777, 1]]) assert.equal(d16.y[i * 2 + j], at(fo, i, j));
    for (let i = 0; i < d16.nBins; i++) assert.ok(d16.x[i * 96 + 66] === 0 && d16.x[i * 96 + 69] === 0);
    assert.equal(d16.channelIds.length, 94);
  });
});

// ---- NDJSON --------------------------------------------------------------------------------------------------

describe('readNdjson', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'driftline-ndjson-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('ticks, labels and session frames; bad lines reported with their line numbers', async () => {
    const lines = [
      '{"stream":"s","seq":0,"t":0,"session":"A"}',
      '{"stream":"s","seq":0,"t":0,"x":[1,2],"y":[0.5]}',
      'not json',
      '',
      '{"stream":"s","seq":1,"t":0.05,"x":[3,4]}',
      '{"stream":"s","seq":1,"y":[1.5]}',
      '{"stream":"s","seq":2,"t":0.1,"x":[1,"a"]}',
      '[1,2]',
      '{"seq":3,"t":0.15,"x":[1,2]}',
      '{"stream":"s","seq":-1,"t":0.15,"x":[1,2]}',
      '{"stream":"s","seq":3,"t":0.15,"x":[1,2,3]}',
    ];
    const path = join(dir, 'frames.ndjson');
    writeFileSync(path, lines.join('\n') + '\n');
    const out: (StreamInput | NdjsonRejection)[] = [];
    for await (const f of readNdjson(path, { nInputs: 2 })) out.push(f);
    assert.equal(out.length, 10);
    const d = out[0] as DriftMarker;
    assert.deepEqual(d, { kind: 'drift', stream: 's', seq: 0, t: 0, source: 'session', session: 'A' });
    const t0 = out[1] as TickEvent;
    assert.equal(t0.kind, 'tick');
    assert.deepEqual(Array.from(t0.x), [1, 2]);
    assert.deepEqual(Array.from(t0.y ?? []), [0.5]);
    const rejections = out.filter((o): o is NdjsonRejection => o.kind === 'rejected');
    assert.deepEqual(
      rejections.map((r) => [r.line, r.reason]),
      [
        [3, 'malformed'],
        [7, 'malformed'],
        [8, 'malformed'],
        [9, 'malformed'],
        [10, 'malformed'],
        [11, 'dimension'],
      ],
    );
    for (const r of rejections) assert.match(r.message, new RegExp(`^line ${r.line}: `));
    const label = out.find((o) => o.kind === 'label') as LabelEvent;
    assert.equal(label.seq, 1);
    assert.deepEqual(Array.from(label.y), [1.5]);
  });

  test('reads from a stream line by line', async () => {
    const src = Readable.from(['{"stream":"a","seq":0,"t":1,"x":[1]}\n{"stream":"a","se', 'q":1,"t":2,"x":[2]}\r\n']);
    const out: (StreamInput | NdjsonRejection)[] = [];
    for await (const f of readNdjson(src)) out.push(f);
    assert.deepEqual(out.map((o) => [o.kind, o.seq]), [['tick', 0], ['tick', 1]]);
  });
});

// ---- replay --------------------------------------------------------------------------------------------------

function synthetic(name: string, n: number, t0 = 0, bin = 0.05): ReplaySession {
  const t = new Float64Array(n);
  const x = new Float32Array(n * 3);
  const y = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    t[i] = t0 + i * bin;
    x.set([i, i + 0.5, -i], i * 3);
    y.set([i * 10, -i * 10], i * 2);
  }
  return { name, t, x, nChannels: 3, y, nOutputs: 2, binSeconds: bin };
}

describe('replaySessions', () => {
  let sessions: JangoSession[] = [];
  before(async () => {
    if (hasData) sessions = [await loadJangoSession(DAY0), await loadJangoSession(DAY16)];
  });

  test('both Jango sessions, fast: markers at the boundaries, 42,000 ticks, seq and t strictly increasing', { skip: noData }, async () => {
    const start = performance.now();
    const all = await lastValueFrom(replaySessions(sessions, { stream: 'jango', speed: 'fast', progress: false }).pipe(toArray()));
    console.log(`replay of 42,000 ticks (fast): ${(performance.now() - start).toFixed(0)} ms`);
    const first = all[0] as DriftMarker;
    assert.equal(first.kind, 'drift');
    assert.equal(first.source, 'session');
    assert.equal(first.session, 'Jango_20160626_WFiso_R10T4_001');
    assert.equal(first.seq, 0);
    const markers = all.map((m, i) => [m, i] as const).filter(([m]) => m.kind === 'drift');
    assert.equal(markers.length, 2);
    const [m2, idx] = markers[1];
    assert.equal((m2 as DriftMarker).session, 'Jango_20160711_WFiso_R10T4_001');
    const next = all[idx + 1] as TickEvent;
    assert.equal(next.kind, 'tick');
    assert.equal(next.seq, 24000);
    assert.equal(m2.seq, 24000);
    assert.equal((m2 as DriftMarker).t, next.t);
    assert.equal((all[idx - 1] as TickEvent).seq, 23999);
    const ticks = all.filter((m): m is TickEvent => m.kind === 'tick');
    assert.equal(ticks.length, 42000);
    for (let i = 1; i < ticks.length; i++) {
      if (!(ticks[i].seq > ticks[i - 1].seq && ticks[i].t > ticks[i - 1].t)) assert.fail(`not increasing at tick ${i}`);
    }
    assert.ok(Math.abs(ticks[24000].t - ticks[23999].t - 0.05) < 1e-9);
    assert.equal(ticks[0].x.length, 96);
    assert.deepEqual(Array.from(ticks[24000].x), Array.from(sessions[1].x.subarray(0, 96)));
    assert.deepEqual(Array.from(ticks[24000].y ?? []), Array.from(sessions[1].y.subarray(0, 2)));
  });

  test('labelDelayTicks 5: each label follows the tick 5 later, across the boundary, the last 5 after the last tick', { skip: noData }, async () => {
    const all = await lastValueFrom(replaySessions(sessions, { stream: 'jango', speed: 'fast', labelDelayTicks: 5, progress: false }).pipe(toArray()));
    const ticks = all.filter((m): m is TickEvent => m.kind === 'tick');
    const labels = all.filter((m): m is LabelEvent => m.kind === 'label');
    assert.equal(ticks.length, 42000);
    assert.equal(labels.length, 42000);
    assert.ok(ticks.every((t) => t.y === undefined));
    let lastTickSeq = -1;
    let k = 0;
    for (const m of all) {
      if (m.kind === 'tick') lastTickSeq = m.seq;
      else if (m.kind === 'label') {
        assert.equal(m.seq, k++);
        assert.equal(lastTickSeq, Math.min(m.seq + 5, 41999), `label ${m.seq} after tick ${lastTickSeq}`);
      }
    }
    assert.deepEqual(Array.from(labels[24001].y), Array.from(sessions[1].y.subarray(2, 4)));
  });

  test('fast mode yields to the event loop between chunks, and unsubscribing stops it', async () => {
    const s = synthetic('big', 5000);
    let timerFired = 0;
    const timer = setInterval(() => timerFired++, 0);
    const seen: number[] = [];
    let ticksWhenTimerFirst = -1;
    await new Promise<void>((resolve) => {
      const sub = replaySessions([s], { stream: 'x', speed: 'fast', progress: false, chunkTicks: 500 }).subscribe((m) => {
        if (m.kind !== 'tick') return;
        seen.push(m.seq);
        if (timerFired > 0 && ticksWhenTimerFirst < 0) ticksWhenTimerFirst = seen.length;
        if (seen.length === 2500) {
          sub.unsubscribe();
          setTimeout(resolve, 20);
        }
      });
    });
    clearInterval(timer);
    assert.equal(seen.length, 2500);
    assert.ok(ticksWhenTimerFirst > 0 && ticksWhenTimerFirst < 2500, `a timer ran during the replay (${ticksWhenTimerFirst})`);
    const firstTen = await firstValueFrom(replaySessions([s], { stream: 'x', speed: 'fast', progress: false }).pipe(take(10), toArray()));
    assert.equal(firstTen.length, 10);
  });

  test("'recorded' speed in virtual time: each tick at its bin time, sessions back to back, labels with their ticks", () => {
    const vs = new VirtualTimeScheduler(VirtualAction, Infinity);
    const a = synthetic('A', 4, 100); // t 100 .. 100.15: the first session keeps its times
    const b = synthetic('B', 3, 7, 0.1); // shifted to start one bin (0.05 s) after A's last bin
    const got: [number, StreamInput][] = [];
    replaySessions([a, b], { stream: 's', speed: 'recorded', labelDelayTicks: 2, progress: false, scheduler: vs }).subscribe((m) => got.push([vs.now(), m]));
    vs.flush();
    const ticks = got.filter(([, m]) => m.kind === 'tick') as [number, TickEvent][];
    assert.deepEqual(ticks.map(([, m]) => m.seq), [0, 1, 2, 3, 4, 5, 6]);
    const ts = ticks.map(([, m]) => m.t);
    const want = [100, 100.05, 100.1, 100.15, 100.2, 100.3, 100.4];
    ts.forEach((t, i) => assert.ok(Math.abs(t - want[i]) < 1e-9, `t ${t} vs ${want[i]}`));
    // Virtual ms = (t - t0) * 1000.
    ticks.forEach(([at, m]) => assert.ok(Math.abs(at - (m.t - 100) * 1000) <= 1, `tick ${m.seq} at ${at} ms`));
    const marker = got.find(([, m]) => m.kind === 'drift' && m.session === 'B');
    assert.ok(marker && Math.abs(marker[0] - 200) <= 1 && marker[1].seq === 4);
    // Labels 2 ticks late; the last two one bin (of B: 0.1 s) apart after the last tick.
    const labels = got.filter(([, m]) => m.kind === 'label') as [number, LabelEvent][];
    assert.deepEqual(labels.map(([, m]) => m.seq), [0, 1, 2, 3, 4, 5, 6]);
    assert.ok(Math.abs(labels[0][0] - 100) <= 1);
    assert.ok(Math.abs(labels[5][0] - 500) <= 1 && Math.abs(labels[6][0] - 600) <= 1, `${labels[5][0]} ${labels[6][0]}`);
    assert.deepEqual(Array.from(labels[4][1].y), [0, -0]);
  });

  test('speed 20x on a real slice respects timing (40 bins of 50 ms -> ~97.5 ms)', { skip: noData }, async () => {
    const s = sessions[0];
    const n = 40;
    const slice: ReplaySession = { name: 'slice', t: s.t.slice(0, n), x: s.x.slice(0, n * 96), nChannels: 96, y: s.y.slice(0, n * 2), nOutputs: 2 };
    const start = performance.now();
    const times: number[] = [];
    await lastValueFrom(replaySessions([slice], { stream: 's', speed: 20, progress: false }).pipe(toArray()));
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 90 && elapsed < 1000, `elapsed ${elapsed} ms`);
    // And the per-tick schedule in virtual time.
    const vs = new VirtualTimeScheduler(VirtualAction, Infinity);
    replaySessions([slice], { stream: 's', speed: 20, progress: false, scheduler: vs }).subscribe((m) => {
      if (m.kind === 'tick') times.push(vs.now());
    });
    vs.flush();
    times.forEach((at, i) => assert.ok(Math.abs(at - i * 2.5) <= 1, `tick ${i} at ${at}`));
  });

  test('progress bar to a given stream; unsubscribing a recorded replay stops it', async () => {
    const written: string[] = [];
    const s = synthetic('P', 3000);
    await lastValueFrom(replaySessions([s], { stream: 'p', speed: 'fast', progress: { stream: { write: (c: string) => written.push(c) }, tty: false } }));
    assert.ok(written.length > 0);
    assert.match(written[written.length - 1], /3000\/3000/);
    const vs = new VirtualTimeScheduler(VirtualAction, Infinity);
    let n = 0;
    const sub = replaySessions([s], { stream: 'p', speed: 'recorded', progress: false, scheduler: vs }).subscribe(() => n++);
    vs.maxFrames = 1000; // 1 s of virtual time = 20 bins
    vs.flush();
    sub.unsubscribe();
    const before = n;
    vs.maxFrames = Infinity;
    vs.flush();
    assert.equal(n, before);
    assert.ok(before > 0 && before < 100);
  });
});
