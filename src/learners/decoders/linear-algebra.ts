/**
 * Dense Float64 linear algebra for the decoders, in place on caller-owned row-major arrays with explicit offsets,
 * so that a tick (and a refit inside a tick) allocates nothing: not even a subarray.
 */

/**
 * Overwrites the lower triangle of the symmetric n x n matrix at `a[off..]` with its Cholesky factor L
 * (A = L L^T), reading only the lower triangle. Returns false, leaving the matrix partly overwritten, when A is
 * not numerically positive definite or holds a non-finite value.
 *
 * The inner products run along rows i and j, both contiguous, which is what keeps a 1000 x 1000 factorization
 * in cache-friendly loops.
 */
export function choleskyInPlace(a: Float64Array, n: number, off = 0): boolean {
  for (let i = 0; i < n; i++) {
    const ri = off + i * n;
    for (let j = 0; j <= i; j++) {
      const rj = off + j * n;
      let s = a[ri + j];
      for (let k = 0; k < j; k++) s -= a[ri + k] * a[rj + k];
      if (i === j) {
        // `!(s > 0)` also catches NaN.
        if (!(s > 0) || s === Infinity) return false;
        a[ri + i] = Math.sqrt(s);
      } else {
        a[ri + j] = s / a[rj + j];
      }
    }
  }
  return true;
}

/** Solves L L^T x = b in place (b at `b[bOff..bOff+n)`), with L from choleskyInPlace. */
export function choleskySolveInPlace(l: Float64Array, n: number, lOff: number, b: Float64Array, bOff: number): void {
  for (let i = 0; i < n; i++) {
    const ri = lOff + i * n;
    let s = b[bOff + i];
    for (let k = 0; k < i; k++) s -= l[ri + k] * b[bOff + k];
    b[bOff + i] = s / l[ri + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = b[bOff + i];
    for (let k = i + 1; k < n; k++) s -= l[lOff + k * n + i] * b[bOff + k];
    b[bOff + i] = s / l[lOff + i * n + i];
  }
}

/** Copies the upper triangle of the n x n matrix at `m[off..]` onto its lower triangle. */
export function mirrorUpper(m: Float64Array, n: number, off = 0): void {
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) m[off + i * n + j] = m[off + j * n + i];
  }
}

/** Replaces the n x n matrix at `m[off..]` by (M + M^T) / 2. */
export function symmetrize(m: Float64Array, n: number, off = 0): void {
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = 0.5 * (m[off + i * n + j] + m[off + j * n + i]);
      m[off + i * n + j] = v;
      m[off + j * n + i] = v;
    }
  }
}

/**
 * Solves A X = B for the n x n matrix A and n x c matrix B (both row-major, overwritten: B becomes X) by
 * Gaussian elimination with partial pivoting. For the decoders' small systems (n = outputs), which need not be
 * symmetric. Returns false when A is singular to working precision or not finite.
 */
export function solveInPlace(A: Float64Array, aOff: number, n: number, B: Float64Array, bOff: number, c: number): boolean {
  for (let col = 0; col < n; col++) {
    let pivot = col;
    let best = Math.abs(A[aOff + col * n + col]);
    for (let r = col + 1; r < n; r++) {
      const v = Math.abs(A[aOff + r * n + col]);
      if (v > best) {
        best = v;
        pivot = r;
      }
    }
    if (!(best > 0) || best === Infinity) return false;
    if (pivot !== col) {
      for (let k = 0; k < n; k++) swap(A, aOff + col * n + k, aOff + pivot * n + k);
      for (let k = 0; k < c; k++) swap(B, bOff + col * c + k, bOff + pivot * c + k);
    }
    const d = A[aOff + col * n + col];
    for (let r = col + 1; r < n; r++) {
      const f = A[aOff + r * n + col] / d;
      if (f === 0) continue;
      for (let k = col; k < n; k++) A[aOff + r * n + k] -= f * A[aOff + col * n + k];
      for (let k = 0; k < c; k++) B[bOff + r * c + k] -= f * B[bOff + col * c + k];
    }
  }
  for (let col = n - 1; col >= 0; col--) {
    const d = A[aOff + col * n + col];
    for (let k = 0; k < c; k++) {
      let s = B[bOff + col * c + k];
      for (let j = col + 1; j < n; j++) s -= A[aOff + col * n + j] * B[bOff + j * c + k];
      B[bOff + col * c + k] = s / d;
    }
  }
  return true;
}

function swap(m: Float64Array, i: number, j: number): void {
  const t = m[i];
  m[i] = m[j];
  m[j] = t;
}

/** Whether `m[off..off+n)` holds only finite values. */
export function allFinite(m: Float64Array, off: number, n: number): boolean {
  for (let i = off; i < off + n; i++) if (!Number.isFinite(m[i])) return false;
  return true;
}

/**
 * Whether every |m[i]| over `m[off..off+n)` is at most `bound` (false for NaN). A boolean, not the maximum: a
 * double returned from a call V8 does not inline is a heap allocation, and this runs on every label.
 */
export function allWithin(m: ArrayLike<number>, off: number, n: number, bound: number): boolean {
  for (let i = off; i < off + n; i++) if (!(Math.abs(m[i]) <= bound)) return false;
  return true;
}

/**
 * Inputs and labels up to this magnitude keep products of two of them (1e300) and sums of a million such finite;
 * the statistics-based decoders skip a label whose features or values go beyond it.
 */
export const MAGNITUDE_LIMIT = 1e150;

/*
 * Packed symmetric storage: the upper triangle of an n x n symmetric matrix, row by row, row i holding columns
 * i..n-1. Half the memory of the full matrix, and a symmetric matrix updated through it stays exactly symmetric.
 */

/** Floats of a packed n x n symmetric matrix. */
export function packedSize(n: number): number {
  return (n * (n + 1)) / 2;
}

/** Offset of row i (element (i, i)) in a packed n x n symmetric matrix. */
export function packedRow(i: number, n: number): number {
  return i * n - (i * (i - 1)) / 2;
}

/** u = S v for the packed symmetric n x n matrix S: each stored element is read once and used twice. */
export function packedMatVec(S: Float64Array, n: number, v: Float64Array, u: Float64Array): void {
  u.fill(0, 0, n);
  for (let i = 0, row = 0; i < n; i++) {
    const vi = v[i];
    let s = u[i] + S[row] * vi;
    for (let j = i + 1, at = row + 1; j < n; j++, at++) {
      const p = S[at];
      s += p * v[j];
      u[j] += p * vi;
    }
    u[i] = s;
    row += n - i;
  }
}

/** S <- lambda S + a a^T (`a` at `a[0..n)`) for the packed symmetric n x n matrix S. */
export function packedRankOneUpdate(S: Float64Array, n: number, lambda: number, a: ArrayLike<number>): void {
  for (let i = 0, row = 0; i < n; i++) {
    const ai = a[i];
    if (lambda === 1) {
      if (ai !== 0) for (let j = i, at = row; j < n; j++, at++) S[at] += ai * a[j];
    } else {
      for (let j = i, at = row; j < n; j++, at++) S[at] = lambda * S[at] + ai * a[j];
    }
    row += n - i;
  }
}

/** Writes the packed symmetric n x n matrix S into the lower triangle of the full row-major matrix at `A[off..]`. */
export function unpackLower(S: Float64Array, n: number, A: Float64Array, off = 0): void {
  for (let i = 0, row = 0; i < n; i++) {
    // Column i of the lower triangle is row i of the upper.
    for (let j = i, at = row; j < n; j++, at++) A[off + j * n + i] = S[at];
    row += n - i;
  }
}

/** The dot product of the n values of `a` from `off` with the first n of `b` (a weight row times the features). */
export function dotRow(a: Float64Array, off: number, b: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[off + i] * b[i];
  return s;
}
