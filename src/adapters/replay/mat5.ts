/**
 * A reader for MATLAB Level 5 MAT-files (MAT v5, also what MATLAB writes with -v6 and -v7), written from the
 * MathWorks "MAT-File Format" document.
 *
 * Layout: a 128-byte header (116 bytes of text, 8 bytes subsystem-data offset, version 0x0100, endian indicator
 * 'IM' for a little-endian file, 'MI' for a big-endian one), then data elements. Each element has an 8-byte tag
 * (type, byte count) followed by its data padded to 8 bytes; the "small data element" packs type and count
 * (<= 4 bytes) into the first 4 bytes and the data into the next 4. A top-level miCOMPRESSED element holds one
 * zlib stream that inflates to further elements (no padding after it). An miMATRIX element holds sub-elements:
 * array flags (class, complex/global/logical bits), dimensions, name, then by class: real (and imaginary) data
 * for numeric classes, whose stored type may differ from the class (a double array stored as uint16 is
 * converted here to a Float64Array); characters for char arrays; one miMATRIX per element for cells; field
 * name length, field names, then one miMATRIX per field per element for structs (and objects, after the class
 * name); row indices, column starts and values for sparse arrays.
 *
 * Data are kept column-major as stored (MATLAB's order): element (i, j) of an m x n array is data[i + j * m].
 * Malformed input throws a MatFormatError naming the byte offset; it never loops, overflows the stack or
 * allocates beyond what the input's sizes allow. MAT v7.3 files (HDF5) and Level 4 files are refused with a
 * clear message. Function handles and opaque (MCOS) objects are returned as { kind: 'unsupported' }.
 */
import { inflateSync } from 'node:zlib';

export type NumericClass = 'double' | 'single' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64';

export type NumericData =
  | Float64Array
  | Float32Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** The storage type names of the MAT v5 data types (miINT8 ... miUTF32). */
export type MatDataType =
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'single'
  | 'double'
  | 'int64'
  | 'uint64'
  | 'utf8'
  | 'utf16'
  | 'utf32';

export interface MatNumeric {
  readonly kind: 'numeric';
  readonly class: NumericClass;
  readonly dims: number[];
  /** Column-major, converted to the class's type. */
  readonly data: NumericData;
  /** Imaginary part, when the complex flag is set. */
  readonly imag?: NumericData;
  /** The type the real part was stored as in the file (may differ from the class). */
  readonly stored: MatDataType;
  readonly global?: boolean;
}

export interface MatLogical {
  readonly kind: 'logical';
  readonly dims: number[];
  /** Column-major, 0 or 1. */
  readonly data: Uint8Array;
}

export interface MatChar {
  readonly kind: 'char';
  readonly dims: number[];
  /** One string per row (row i = characters (i, 0), (i, 1), ...); a 1xN array is one row. */
  readonly rows: string[];
  /** The rows joined with '\n' (the whole string for a 1xN array). */
  readonly text: string;
}

export interface MatCell {
  readonly kind: 'cell';
  readonly dims: number[];
  /** Column-major. */
  readonly cells: MatValue[];
}

export interface MatStruct {
  readonly kind: 'struct';
  readonly dims: number[];
  readonly fields: string[];
  /** Column-major, one record per element. */
  readonly elements: Record<string, MatValue>[];
  /** For MATLAB objects (class mxOBJECT): the class name. */
  readonly className?: string;
}

export interface MatSparse {
  readonly kind: 'sparse';
  readonly dims: number[];
  readonly logical: boolean;
  /** Row index of each stored value. */
  readonly ir: Int32Array;
  /** Column starts: values of column j are at jc[j] .. jc[j + 1] - 1. Length columns + 1. */
  readonly jc: Int32Array;
  readonly data: Float64Array;
  readonly imag?: Float64Array;
}

export interface MatUnsupported {
  readonly kind: 'unsupported';
  readonly dims: number[];
  /** The MATLAB array class (e.g. 'function', 'opaque'). */
  readonly class: string;
}

export type MatValue = MatNumeric | MatLogical | MatChar | MatCell | MatStruct | MatSparse | MatUnsupported;

export interface MatHeader {
  readonly text: string;
  readonly version: number;
  readonly littleEndian: boolean;
  readonly subsystemOffset: bigint;
}

export interface ReadMatOptions {
  /** Upper bound on the inflated size of one miCOMPRESSED element (default 1 GiB): guards against zip bombs. */
  readonly maxInflatedBytes?: number;
}

/** Thrown for malformed, truncated or unsupported input; `offset` is the byte offset (in the file) where it was found. */
export class MatFormatError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.name = 'MatFormatError';
    this.offset = offset;
  }
}

// Data types (MAT-File Format, table 1-1).
const mi = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  INT64: 12,
  UINT64: 13,
  MATRIX: 14,
  COMPRESSED: 15,
  UTF8: 16,
  UTF16: 17,
  UTF32: 18,
} as const;

const typeInfo: Record<number, { name: MatDataType; size: number }> = {
  [mi.INT8]: { name: 'int8', size: 1 },
  [mi.UINT8]: { name: 'uint8', size: 1 },
  [mi.INT16]: { name: 'int16', size: 2 },
  [mi.UINT16]: { name: 'uint16', size: 2 },
  [mi.INT32]: { name: 'int32', size: 4 },
  [mi.UINT32]: { name: 'uint32', size: 4 },
  [mi.SINGLE]: { name: 'single', size: 4 },
  [mi.DOUBLE]: { name: 'double', size: 8 },
  [mi.INT64]: { name: 'int64', size: 8 },
  [mi.UINT64]: { name: 'uint64', size: 8 },
  [mi.UTF8]: { name: 'utf8', size: 1 },
  [mi.UTF16]: { name: 'utf16', size: 2 },
  [mi.UTF32]: { name: 'utf32', size: 4 },
};

// Array classes (MAT-File Format, table 1-3).
const mx = {
  CELL: 1,
  STRUCT: 2,
  OBJECT: 3,
  CHAR: 4,
  SPARSE: 5,
  FUNCTION: 16,
  OPAQUE: 17,
} as const;

const numericClassById: Record<number, NumericClass> = {
  6: 'double',
  7: 'single',
  8: 'int8',
  9: 'uint8',
  10: 'int16',
  11: 'uint16',
  12: 'int32',
  13: 'uint32',
  14: 'int64',
  15: 'uint64',
};

const FLAG_COMPLEX = 0x0800;
const FLAG_GLOBAL = 0x0400;
const FLAG_LOGICAL = 0x0200;
const MAX_DEPTH = 200;

interface Tag {
  readonly type: number;
  /** Bytes of data. */
  readonly size: number;
  /** Offset of the data in the buffer. */
  readonly dataStart: number;
  /** Offset of the next element (after padding). */
  readonly next: number;
  readonly offset: number;
}

/** A buffer being parsed, with where its bytes came from for error messages. */
class Source {
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly le: boolean,
    /** File offset of the compressed element this buffer was inflated from, or -1 for the file itself. */
    readonly compressedAt: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(message: string, offset: number): never {
    if (this.compressedAt < 0) throw new MatFormatError(`MAT file: ${message} at byte ${offset}`, offset);
    throw new MatFormatError(
      `MAT file: ${message} at byte ${offset} of the data inflated from the miCOMPRESSED element at byte ${this.compressedAt}`,
      this.compressedAt,
    );
  }

  u32(offset: number): number {
    return this.view.getUint32(offset, this.le);
  }

  /** Reads the tag at `offset`; `end` bounds the enclosing element. */
  tag(offset: number, end: number): Tag {
    if (offset + 8 > end) this.fail(`truncated data element tag (${end - offset} of 8 bytes)`, offset);
    const first = this.u32(offset);
    const small = first >>> 16;
    if (small !== 0) {
      const size = small;
      const type = first & 0xffff;
      if (size > 4) this.fail(`small data element of type ${type} claims ${size} bytes (at most 4)`, offset);
      return { type, size, dataStart: offset + 4, next: offset + 8, offset };
    }
    const type = first;
    const size = this.u32(offset + 4);
    const dataStart = offset + 8;
    if (size > end - dataStart) this.fail(`data element of type ${type} claims ${size} bytes but only ${end - dataStart} remain`, offset);
    const padded = type === mi.COMPRESSED ? size : size + ((8 - (size % 8)) % 8);
    // The padding of the last element may be missing at the end of its container.
    return { type, size, dataStart, next: Math.min(dataStart + padded, end), offset };
  }

  /** The data of a tag as a typed array of its storage type (copied, aligned, in host order). */
  numeric(tag: Tag): NumericData {
    const info = typeInfo[tag.type];
    if (!info || tag.type === mi.UTF8 || tag.type === mi.UTF16 || tag.type === mi.UTF32) {
      this.fail(`expected a numeric data element, found type ${tag.type}`, tag.offset);
    }
    if (tag.size % info.size !== 0) this.fail(`data element of type ${info.name} has ${tag.size} bytes, not a multiple of ${info.size}`, tag.offset);
    // Uint8Array's slice, not Buffer's: on a Buffer, slice is a view, and the typed array below would start at byte 0 of the file.
    const copy = Uint8Array.prototype.slice.call(this.bytes, tag.dataStart, tag.dataStart + tag.size);
    if (!this.le && info.size > 1) swapBytes(copy, info.size);
    const buf = copy.buffer;
    const n = tag.size / info.size;
    switch (tag.type) {
      case mi.INT8:
        return new Int8Array(buf, 0, n);
      case mi.UINT8:
        return new Uint8Array(buf, 0, n);
      case mi.INT16:
        return new Int16Array(buf, 0, n);
      case mi.UINT16:
        return new Uint16Array(buf, 0, n);
      case mi.INT32:
        return new Int32Array(buf, 0, n);
      case mi.UINT32:
        return new Uint32Array(buf, 0, n);
      case mi.SINGLE:
        return new Float32Array(buf, 0, n);
      case mi.DOUBLE:
        return new Float64Array(buf, 0, n);
      case mi.INT64:
        return new BigInt64Array(buf, 0, n);
      default:
        return new BigUint64Array(buf, 0, n);
    }
  }
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const tmp = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = tmp;
    }
  }
}

/** Reads the 128-byte header. */
export function readMatHeader(bytes: Uint8Array): MatHeader {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('readMat expects a Uint8Array (or Buffer)');
  if (bytes.length < 128) throw new MatFormatError(`MAT file: truncated header (${bytes.length} of 128 bytes) at byte 0`, 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const indicator = String.fromCharCode(bytes[126], bytes[127]);
  let le: boolean;
  if (indicator === 'IM') le = true;
  else if (indicator === 'MI') le = false;
  else {
    if (bytes[0] === 0 || bytes[1] === 0 || bytes[2] === 0 || bytes[3] === 0) {
      throw new MatFormatError('MAT file: not a Level 5 MAT-file (no endian indicator at byte 126; a Level 4 MAT-file is not supported)', 126);
    }
    throw new MatFormatError(`MAT file: bad endian indicator ${JSON.stringify(indicator)} at byte 126 (expected 'IM' or 'MI')`, 126);
  }
  const version = view.getUint16(124, le);
  if (version === 0x0200) {
    throw new MatFormatError('MAT file: version 0x0200 at byte 124 is a MAT v7.3 (HDF5) file, which this reader does not support; save with -v7', 124);
  }
  if (version !== 0x0100) throw new MatFormatError(`MAT file: unsupported version 0x${version.toString(16).padStart(4, '0')} at byte 124 (expected 0x0100)`, 124);
  let text = '';
  for (let i = 0; i < 116; i++) text += String.fromCharCode(bytes[i]);
  text = text.replace(/[\0 ]+$/, '');
  return { text, version, littleEndian: le, subsystemOffset: view.getBigUint64(116, le) };
}

/**
 * Reads every named variable of a MAT v5 file. Unnamed top-level elements (the subsystem data MATLAB appends
 * for objects) are skipped.
 */
export function readMat(bytes: Uint8Array, options: ReadMatOptions = {}): Record<string, MatValue> {
  const header = readMatHeader(bytes);
  const maxInflated = options.maxInflatedBytes ?? 1 << 30;
  const file = new Source(bytes, header.littleEndian, -1);
  const out: Record<string, MatValue> = Object.create(null) as Record<string, MatValue>;
  let offset = 128;
  const end = bytes.length;
  while (offset < end) {
    // Trailing padding shorter than a tag, or all zeros, ends the file.
    if (end - offset < 8) {
      if (bytes.subarray(offset, end).every((b) => b === 0)) break;
      file.fail(`truncated data element tag (${end - offset} of 8 bytes)`, offset);
    }
    const tag = file.tag(offset, end);
    if (tag.type === mi.COMPRESSED) {
      const inflated = inflate(file, tag, maxInflated);
      const inner = new Source(new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength), header.littleEndian, tag.offset);
      let o = 0;
      while (o < inner.bytes.length) {
        if (inner.bytes.length - o < 8 && inner.bytes.subarray(o).every((b) => b === 0)) break;
        const t = inner.tag(o, inner.bytes.length);
        addVariable(out, inner, t);
        o = t.next;
      }
    } else {
      addVariable(out, file, tag);
    }
    offset = tag.next;
  }
  return out;
}

function inflate(file: Source, tag: Tag, maxOutputLength: number): Buffer {
  try {
    return inflateSync(file.bytes.subarray(tag.dataStart, tag.dataStart + tag.size), { maxOutputLength });
  } catch (err) {
    return file.fail(`cannot inflate miCOMPRESSED element (${(err as Error).message})`, tag.offset);
  }
}

function addVariable(out: Record<string, MatValue>, src: Source, tag: Tag): void {
  if (tag.type !== mi.MATRIX) src.fail(`expected a top-level miMATRIX (14) or miCOMPRESSED (15) element, found type ${tag.type}`, tag.offset);
  const { name, value } = readMatrix(src, tag, 0);
  if (name !== '') out[name] = value;
}

function readName(src: Source, tag: Tag): string {
  if (tag.type !== mi.INT8 && tag.type !== mi.UINT8 && tag.type !== mi.UTF8) src.fail(`expected an array name (miINT8), found type ${tag.type}`, tag.offset);
  return new TextDecoder('utf-8').decode(src.bytes.subarray(tag.dataStart, tag.dataStart + tag.size)).replace(/\0+$/, '');
}

function product(dims: number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Reads one miMATRIX element (its tag already read). */
function readMatrix(src: Source, tag: Tag, depth: number): { name: string; value: MatValue } {
  if (depth > MAX_DEPTH) src.fail(`arrays nested deeper than ${MAX_DEPTH}`, tag.offset);
  const end = tag.dataStart + tag.size;
  // An empty miMATRIX (no sub-elements) is an empty double array: what MATLAB writes for [] in cells and fields.
  if (tag.size === 0) {
    return { name: '', value: { kind: 'numeric', class: 'double', dims: [0, 0], data: new Float64Array(0), stored: 'double' } };
  }
  let at = tag.dataStart;
  const next = (): Tag => {
    const t = src.tag(at, end);
    at = t.next;
    return t;
  };

  const flagsTag = next();
  if (flagsTag.type !== mi.UINT32 || flagsTag.size !== 8) src.fail(`expected array flags (miUINT32, 8 bytes), found type ${flagsTag.type} with ${flagsTag.size} bytes`, flagsTag.offset);
  const flags = src.u32(flagsTag.dataStart);
  const nzmax = src.u32(flagsTag.dataStart + 4);
  const classId = flags & 0xff;
  const complex = (flags & FLAG_COMPLEX) !== 0;
  const global = (flags & FLAG_GLOBAL) !== 0;
  const logical = (flags & FLAG_LOGICAL) !== 0;

  const dimsTag = next();
  if (dimsTag.type !== mi.INT32) src.fail(`expected dimensions (miINT32), found type ${dimsTag.type}`, dimsTag.offset);
  const dims = Array.from(src.numeric(dimsTag) as Int32Array);
  if (dims.length < 2) src.fail(`array has ${dims.length} dimensions (at least 2 expected)`, dimsTag.offset);
  if (dims.some((d) => d < 0)) src.fail(`negative dimension in [${dims.join(', ')}]`, dimsTag.offset);
  const numel = product(dims);

  const name = readName(src, next());
  const remaining = (): number => end - at;

  if (classId === mx.CELL) {
    // Each cell is an miMATRIX element of at least 8 bytes.
    if (numel * 8 > remaining()) src.fail(`cell array of ${numel} cells cannot fit in ${remaining()} bytes`, tag.offset);
    const cells: MatValue[] = new Array(numel);
    for (let i = 0; i < numel; i++) {
      const t = next();
      if (t.type !== mi.MATRIX) src.fail(`cell ${i} is not an miMATRIX element (type ${t.type})`, t.offset);
      cells[i] = readMatrix(src, t, depth + 1).value;
    }
    return { name, value: { kind: 'cell', dims, cells } };
  }

  if (classId === mx.STRUCT || classId === mx.OBJECT) {
    let className: string | undefined;
    if (classId === mx.OBJECT) className = readName(src, next());
    const lenTag = next();
    if (lenTag.type !== mi.INT32 || lenTag.size !== 4) src.fail(`expected the field name length (miINT32, 4 bytes), found type ${lenTag.type} with ${lenTag.size} bytes`, lenTag.offset);
    const fieldLen = src.view.getInt32(lenTag.dataStart, src.le);
    const namesTag = next();
    if (namesTag.type !== mi.INT8 && namesTag.type !== mi.UINT8) src.fail(`expected the field names (miINT8), found type ${namesTag.type}`, namesTag.offset);
    if (fieldLen <= 0 && namesTag.size > 0) src.fail(`field name length ${fieldLen} with ${namesTag.size} bytes of names`, lenTag.offset);
    if (fieldLen > 0 && namesTag.size % fieldLen !== 0) src.fail(`field names take ${namesTag.size} bytes, not a multiple of the field name length ${fieldLen}`, namesTag.offset);
    const nFields = fieldLen > 0 ? namesTag.size / fieldLen : 0;
    const fields: string[] = [];
    const decoder = new TextDecoder('utf-8');
    for (let f = 0; f < nFields; f++) {
      const raw = src.bytes.subarray(namesTag.dataStart + f * fieldLen, namesTag.dataStart + (f + 1) * fieldLen);
      const zero = raw.indexOf(0);
      fields.push(decoder.decode(zero >= 0 ? raw.subarray(0, zero) : raw));
    }
    // Elements of a struct without fields take no bytes: bound them so a forged size cannot loop for ever.
    if (nFields === 0 && numel > 1 << 24) src.fail(`struct without fields claims ${numel} elements (at most ${1 << 24})`, tag.offset);
    if (numel * nFields * 8 > remaining()) src.fail(`struct of ${numel} elements x ${nFields} fields cannot fit in ${remaining()} bytes`, tag.offset);
    const elements: Record<string, MatValue>[] = new Array(numel);
    for (let e = 0; e < numel; e++) {
      const record: Record<string, MatValue> = Object.create(null) as Record<string, MatValue>;
      for (const field of fields) {
        const t = next();
        if (t.type !== mi.MATRIX) src.fail(`field '${field}' of element ${e} is not an miMATRIX element (type ${t.type})`, t.offset);
        record[field] = readMatrix(src, t, depth + 1).value;
      }
      elements[e] = record;
    }
    const value: MatStruct = className === undefined ? { kind: 'struct', dims, fields, elements } : { kind: 'struct', dims, fields, elements, className };
    return { name, value };
  }

  if (classId === mx.CHAR) {
    const t = next();
    let codes: number[] | Uint16Array | Uint32Array | Uint8Array;
    if (t.type === mi.UTF8) {
      const s = new TextDecoder('utf-8').decode(src.bytes.subarray(t.dataStart, t.dataStart + t.size));
      codes = Array.from(s, (c) => c.codePointAt(0) ?? 0);
    } else if (t.type === mi.UTF16) {
      codes = src.numeric({ ...t, type: mi.UINT16 }) as Uint16Array;
    } else if (t.type === mi.UTF32) {
      codes = src.numeric({ ...t, type: mi.UINT32 }) as Uint32Array;
    } else {
      const raw = src.numeric(t);
      if (raw instanceof BigInt64Array || raw instanceof BigUint64Array) src.fail('char data stored as a 64-bit integer type', t.offset);
      codes = Array.from(raw as ArrayLike<number>, (v) => v);
    }
    if (codes.length !== numel) src.fail(`char array [${dims.join('x')}] holds ${codes.length} characters, expected ${numel}`, t.offset);
    const m = dims[0];
    const cols = m === 0 ? 0 : numel / m;
    const rows: string[] = [];
    for (let i = 0; i < m; i++) {
      let row = '';
      for (let j = 0; j < cols; j++) {
        const c = codes[i + j * m];
        row += c <= 0x10ffff ? String.fromCodePoint(c) : '\ufffd';
      }
      rows.push(row);
    }
    return { name, value: { kind: 'char', dims, rows, text: rows.join('\n') } };
  }

  if (classId === mx.SPARSE) {
    if (dims.length !== 2) src.fail(`sparse array with ${dims.length} dimensions`, dimsTag.offset);
    const irTag = next();
    const jcTag = next();
    const ir = toInt32(src, irTag);
    const jc = toInt32(src, jcTag);
    if (jc.length !== dims[1] + 1) src.fail(`sparse column index has ${jc.length} entries, expected ${dims[1] + 1}`, jcTag.offset);
    const nnz = jc[dims[1]];
    if (nnz < 0 || nnz > ir.length || nnz > nzmax) src.fail(`sparse array claims ${nnz} non-zeros (ir has ${ir.length}, nzmax ${nzmax})`, jcTag.offset);
    for (let j = 0; j < dims[1]; j++) if (jc[j] > jc[j + 1] || jc[j] < 0) src.fail('sparse column starts are not non-decreasing', jcTag.offset);
    for (let k = 0; k < nnz; k++) if (ir[k] < 0 || ir[k] >= dims[0]) src.fail(`sparse row index ${ir[k]} out of range`, irTag.offset);
    const realTag = next();
    const data = convert(src, realTag, src.numeric(realTag), 'double') as Float64Array;
    if (data.length < nnz) src.fail(`sparse array has ${data.length} values for ${nnz} non-zeros`, realTag.offset);
    let imag: Float64Array | undefined;
    if (complex) {
      const imagTag = next();
      imag = convert(src, imagTag, src.numeric(imagTag), 'double') as Float64Array;
      if (imag.length < nnz) src.fail(`sparse array has ${imag.length} imaginary values for ${nnz} non-zeros`, imagTag.offset);
    }
    const value: MatSparse = {
      kind: 'sparse',
      dims,
      logical,
      ir: ir.slice(0, nnz),
      jc,
      data: data.slice(0, nnz),
      ...(imag ? { imag: imag.slice(0, nnz) } : {}),
    };
    return { name, value };
  }

  const cls = numericClassById[classId];
  if (cls === undefined) {
    if (classId === mx.FUNCTION || classId === mx.OPAQUE) {
      return { name, value: { kind: 'unsupported', dims, class: classId === mx.FUNCTION ? 'function' : 'opaque' } };
    }
    src.fail(`unknown array class ${classId}`, flagsTag.offset);
  }

  const realTag = next();
  const stored = typeInfo[realTag.type]?.name;
  const real = src.numeric(realTag);
  if (real.length !== numel) src.fail(`array [${dims.join('x')}] holds ${real.length} values, expected ${numel}`, realTag.offset);
  if (logical) {
    const data = new Uint8Array(numel);
    for (let i = 0; i < numel; i++) data[i] = real[i] ? 1 : 0;
    return { name, value: { kind: 'logical', dims, data } };
  }
  const data = convert(src, realTag, real, cls);
  let imag: NumericData | undefined;
  if (complex) {
    const imagTag = next();
    const im = src.numeric(imagTag);
    if (im.length !== numel) src.fail(`imaginary part holds ${im.length} values, expected ${numel}`, imagTag.offset);
    imag = convert(src, imagTag, im, cls);
  }
  const value: MatNumeric = {
    kind: 'numeric',
    class: cls,
    dims,
    data,
    stored,
    ...(imag ? { imag } : {}),
    ...(global ? { global } : {}),
  };
  return { name, value };
}

function toInt32(src: Source, tag: Tag): Int32Array {
  const raw = src.numeric(tag);
  if (raw instanceof Int32Array) return raw;
  if (raw instanceof BigInt64Array || raw instanceof BigUint64Array) return Int32Array.from(raw, (v) => Number(v));
  return Int32Array.from(raw as ArrayLike<number>);
}

const ctorByClass = {
  double: Float64Array,
  single: Float32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
} as const;

/** Converts stored values to the array's class (MATLAB stores e.g. integer-valued doubles in the smallest integer type). */
function convert(src: Source, tag: Tag, raw: NumericData, cls: NumericClass): NumericData {
  const isBig = raw instanceof BigInt64Array || raw instanceof BigUint64Array;
  if (cls === 'int64' || cls === 'uint64') {
    if ((cls === 'int64' && raw instanceof BigInt64Array) || (cls === 'uint64' && raw instanceof BigUint64Array)) return raw;
    const n = raw.length;
    const out = cls === 'int64' ? new BigInt64Array(n) : new BigUint64Array(n);
    for (let i = 0; i < n; i++) {
      const v = raw[i];
      if (typeof v === 'bigint') out[i] = v;
      else {
        if (!Number.isInteger(v)) src.fail(`non-integer value ${v} stored for a ${cls} array`, tag.offset);
        out[i] = BigInt(v);
      }
    }
    return out;
  }
  const Ctor = ctorByClass[cls];
  if (raw instanceof Ctor) return raw;
  if (isBig) {
    const out = new Ctor(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = Number(raw[i]);
    return out;
  }
  return new Ctor(raw as ArrayLike<number>);
}

// ---- helpers -------------------------------------------------------------------------------------------------

/** Number of elements of an array with these dimensions. */
export function numel(value: { readonly dims: readonly number[] }): number {
  let n = 1;
  for (const d of value.dims) n *= d;
  return n;
}

function rowsOf(value: MatNumeric | MatLogical): number {
  return value.dims[0];
}

/** Column j (0-based) of a 2-D numeric or logical array: a view (no copy) of the column-major data. */
export function column<T extends MatNumeric | MatLogical>(value: T, j: number): T['data'] {
  const m = rowsOf(value);
  const cols = m === 0 ? 0 : numel(value) / m;
  if (!Number.isInteger(j) || j < 0 || j >= cols) throw new RangeError(`column ${j} out of range (array is ${value.dims.join('x')})`);
  return value.data.subarray(j * m, (j + 1) * m) as T['data'];
}

/** Element (i, j), 0-based, of a 2-D numeric or logical array. */
export function at(value: MatNumeric | MatLogical, i: number, j = 0): number | bigint {
  const m = rowsOf(value);
  const cols = m === 0 ? 0 : numel(value) / m;
  if (!Number.isInteger(i) || i < 0 || i >= m || !Number.isInteger(j) || j < 0 || j >= cols) {
    throw new RangeError(`index (${i}, ${j}) out of range (array is ${value.dims.join('x')})`);
  }
  return value.data[i + j * m];
}

/** A field of a struct element (default the first), or an error naming what is there. */
export function field(value: MatValue, name: string, element = 0): MatValue {
  if (value.kind !== 'struct') throw new TypeError(`expected a struct to read field '${name}', found ${value.kind}`);
  const record = value.elements[element];
  if (record === undefined) throw new RangeError(`struct has ${value.elements.length} elements, no element ${element}`);
  const v = record[name];
  if (v === undefined) throw new Error(`struct has no field '${name}' (fields: ${value.fields.join(', ')})`);
  return v;
}

/** A numeric array's data as a row-major Float32Array (m x n, row i at [i * n, (i + 1) * n)). */
export function toRowMajorFloat32(value: MatNumeric | MatLogical): Float32Array {
  const m = value.dims[0];
  const n = m === 0 ? 0 : numel(value) / m;
  const out = new Float32Array(m * n);
  const d = value.data;
  for (let j = 0; j < n; j++) {
    const base = j * m;
    for (let i = 0; i < m; i++) out[i * n + j] = Number(d[base + i]);
  }
  return out;
}
