/**
 * A small binary codec for the per-stream state that pipeline operators keep beside the learner (the label-join
 * ring, the reference predictors, the input normalizer). A checkpoint carries these bytes next to the learner's
 * snapshot, so that a restored stream resumes exactly where it left off (DESIGN section 6: a run with restarts
 * ends in the same bytes as one without). Numbers are little-endian; arrays carry their length, so a reader
 * refuses bytes of another shape instead of misreading them.
 */

/** Raised when part bytes do not decode to the state the reader expects. */
export class StreamStateError extends Error {
  override readonly name = 'StreamStateError';
  readonly retriable = false;
}

export class StateWriter {
  private chunks: Uint8Array[] = [];
  private size = 0;

  f64(value: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    return this.push(b);
  }

  /** A typed array with its element count; Float64Array, Float32Array or Uint8Array. */
  array(values: Float64Array | Float32Array | Uint8Array): this {
    this.f64(values.length);
    const copy = new Uint8Array(values.byteLength);
    copy.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return this.push(copy);
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  private push(b: Uint8Array): this {
    this.chunks.push(b);
    this.size += b.length;
    return this;
  }
}

export class StateReader {
  private at = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array, private readonly what: string) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }

  /** Reads an array written by `StateWriter.array` into `into`, which must have the same length. */
  arrayInto(into: Float64Array | Float32Array | Uint8Array): void {
    const n = this.f64();
    if (n !== into.length) throw new StreamStateError(`${this.what}: an array of ${n} values where ${into.length} are expected (another shape)`);
    this.need(into.byteLength);
    new Uint8Array(into.buffer, into.byteOffset, into.byteLength).set(this.buf.subarray(this.at, this.at + into.byteLength));
    this.at += into.byteLength;
  }

  /** Throws unless every byte was read. */
  end(): void {
    if (this.at !== this.buf.length) throw new StreamStateError(`${this.what}: ${this.buf.length - this.at} bytes left over (another format)`);
  }

  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new StreamStateError(`${this.what}: truncated (${this.buf.length} bytes)`);
  }
}
