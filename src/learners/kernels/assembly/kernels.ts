/**
 * WASM SIMD build of the per-tick kernels (AssemblyScript). The semantics are those of ../js-kernels.ts, the
 * plain-TypeScript twin, and test/kernels.test.ts checks that the two agree to float32 tolerance.
 *
 * Memory: imported (`env.memory`), owned and sized by the JS wrapper (../wasm-kernels.ts). This module has no
 * data, no runtime objects and never allocates; every export works on raw byte pointers into that memory.
 *
 * Calling convention (the wrapper does the mapping):
 *  - pointers are BYTE addresses (the wrapper passes float offset * 4);
 *  - the `a` operand of outerAcc/trace/traceNormSq/step* is a byte pointer, or ONES (0xFFFFFFFF, i.e. -1 as a
 *    signed i32) for "a vector of ones". The wrapper passes -1 for any negative float offset. 0xFFFFFFFF is not
 *    4-byte aligned, so it can never be the address of a float and the whole 4 GiB address space stays usable;
 *  - counts (rows, cols, len, m, k, n) are i32; a count <= 0 means an empty range;
 *  - flags (accumulate, diag) are i32, nonzero = true;
 *  - optimizer hyperparameters arrive as f64 so that derived constants (1 - b2, lr / bc1, 1 / bc2) are formed
 *    in double precision, as the twin does, before being rounded to f32 once.
 *
 * Arithmetic: f32 in the inner loops (f32x4 lanes plus scalar tails for lengths not divisible by 4). `dot`
 * accumulates exact f32*f32 products in f64 lanes; `traceNormSq` accumulates f32x4 lanes in blocks of at most
 * 256 floats and reduces each block into an f64 total.
 *
 * Speed: the optimizer id is dispatched once per run of contiguous parameters (a row, or a whole block), never
 * inside an inner loop. The loop helpers below are generic over compile-time TYPE TAGS (the optimizer core, the
 * gradient term, the trace mode) and branch with `if (is<Tag, X>())`, which AssemblyScript resolves while
 * compiling, so every instantiation is its own straight SIMD loop. (Passing the core as a constant @inline
 * argument does not work: AssemblyScript leaves such branches to Binaryen, whose -O3 first merges the four
 * otherwise identical copies back into one loop that branches on the core for every element.)
 */

// ---- constants --------------------------------------------------------------------------------------------

/** The "vector of ones" sentinel for the `a` operand. */
const ONES: usize = usize.MAX_VALUE;

// Optimizer cores (kernels.ts OptimizerCore). Any other id behaves as adam, like the twin.
const SGD: i32 = 0;
const MOMENTUM: i32 = 1;
const RMSPROP: i32 = 2;

// Compile-time type tags. Only their sizes matter, and tags are only ever compared within one family.
/** Optimizer core tags. */
type Sgd = u8;
type Momentum = u16;
type Rmsprop = u32;
type Adam = u64;
/** Term tags: the term t_j of a run j = 0 .. n-1 (u, w are float arrays, q a scalar). */
type Const = u8; //  t_j = q
type Vec = u16; //   t_j = q * u_j
type Vec2 = u32; //  t_j = (q * u_j) * w_j
/** Mode tags: what the term is. */
type Plain = u8; //  the gradient is t_j
type Trace = u16; // e_j = lam * E_j + t_j is written back to E, the gradient is c * e_j
type Gain = u32; //  like Trace with a per-element gain: the gradient is (c * gv_j) * e_j (a column run over rows)

/** True when tags A and B (of one family) are the same; resolved at compile time. */
@inline
function is<A, B>(): bool {
  return sizeof<A>() == sizeof<B>();
}

/** Floats per partial f32x4 reduction in traceNormSq before the block is added into the f64 total. */
const NORM_BLOCK_BYTES: usize = 256 << 2;

// ---- optimizer hyperparameters (set once per step call, read into locals once per run) --------------------

let hLr: f32 = 0;
let hB1: f32 = 0;
let hOmb1: f32 = 0; // 1 - b1
let hB2: f32 = 0;
let hOmb2: f32 = 0; // 1 - b2
let hEps: f32 = 0;
let hLrc: f32 = 0; // lr / bc1
let hIbc2: f32 = 0; // 1 / bc2

@inline
function setHyper(lr: f64, b1: f64, b2: f64, eps: f64, bc1: f64, bc2: f64): void {
  hLr = <f32>lr;
  hB1 = <f32>b1;
  hOmb1 = <f32>(1.0 - b1);
  hB2 = <f32>b2;
  hOmb2 = <f32>(1.0 - b2);
  hEps = <f32>eps;
  hLrc = <f32>(lr / bc1);
  hIbc2 = <f32>(1.0 / bc2);
}

// ---- small helpers ----------------------------------------------------------------------------------------

@inline
function bytes(n: i32): usize {
  return n > 0 ? <usize>n << 2 : 0;
}

/** Bytes of the leading part of an n-float run that whole f32x4 vectors cover. */
@inline
function simdBytes(nb: usize): usize {
  return nb & ~(<usize>15);
}

@inline
function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) +
    (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** [hsum(a), hsum(b), hsum(c), hsum(d)] with shuffles. */
@inline
function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7)); // a02 b02 a13 b13
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

// ---- the term t_j of one run (see the tags above) ---------------------------------------------------------

@inline
function termV<T>(o: usize, u: usize, w: usize, qV: v128): v128 {
  if (is<T, Const>()) return qV;
  if (is<T, Vec>()) return f32x4.mul(qV, v128.load(u + o));
  return f32x4.mul(f32x4.mul(qV, v128.load(u + o)), v128.load(w + o));
}

@inline
function termS<T>(o: usize, u: usize, w: usize, q: f32): f32 {
  if (is<T, Const>()) return q;
  if (is<T, Vec>()) return q * load<f32>(u + o);
  return q * load<f32>(u + o) * load<f32>(w + o);
}

// ---- optimizer cores, one f32x4 / one f32 -----------------------------------------------------------------

@inline
function coreV<O>(p: usize, s1: usize, s2: usize, g: v128,
  lr: v128, b1: v128, omb1: v128, b2: v128, omb2: v128, eps: v128, lrc: v128, ibc2: v128): void {
  if (is<O, Sgd>()) {
    v128.store(p, f32x4.sub(v128.load(p), f32x4.mul(lr, g)));
  } else if (is<O, Momentum>()) {
    const m = f32x4.add(f32x4.mul(b1, v128.load(s1)), g);
    v128.store(s1, m);
    v128.store(p, f32x4.sub(v128.load(p), f32x4.mul(lr, m)));
  } else if (is<O, Rmsprop>()) {
    const v = f32x4.add(f32x4.mul(b2, v128.load(s1)), f32x4.mul(omb2, f32x4.mul(g, g)));
    v128.store(s1, v);
    v128.store(p, f32x4.sub(v128.load(p), f32x4.div(f32x4.mul(lr, g), f32x4.add(f32x4.sqrt(v), eps))));
  } else {
    const m = f32x4.add(f32x4.mul(b1, v128.load(s1)), f32x4.mul(omb1, g));
    const v = f32x4.add(f32x4.mul(b2, v128.load(s2)), f32x4.mul(omb2, f32x4.mul(g, g)));
    v128.store(s1, m);
    v128.store(s2, v);
    v128.store(p, f32x4.sub(v128.load(p),
      f32x4.div(f32x4.mul(lrc, m), f32x4.add(f32x4.sqrt(f32x4.mul(v, ibc2)), eps))));
  }
}

@inline
function coreS<O>(p: usize, s1: usize, s2: usize, g: f32,
  lr: f32, b1: f32, omb1: f32, b2: f32, omb2: f32, eps: f32, lrc: f32, ibc2: f32): void {
  if (is<O, Sgd>()) {
    store<f32>(p, load<f32>(p) - lr * g);
  } else if (is<O, Momentum>()) {
    const m = b1 * load<f32>(s1) + g;
    store<f32>(s1, m);
    store<f32>(p, load<f32>(p) - lr * m);
  } else if (is<O, Rmsprop>()) {
    const v = b2 * load<f32>(s1) + omb2 * (g * g);
    store<f32>(s1, v);
    store<f32>(p, load<f32>(p) - (lr * g) / (Mathf.sqrt(v) + eps));
  } else {
    const m = b1 * load<f32>(s1) + omb1 * g;
    const v = b2 * load<f32>(s2) + omb2 * (g * g);
    store<f32>(s1, m);
    store<f32>(s2, v);
    store<f32>(p, load<f32>(p) - (lrc * m) / (Mathf.sqrt(v * ibc2) + eps));
  }
}

/**
 * Optimizer core O over a contiguous run of nb bytes (nb / 4 parameters) at p, s1, s2, with the gradient given
 * by term T and mode M. E (Trace, Gain), u (Vec, Vec2), w (Vec2) and gv (Gain) are byte pointers to runs
 * aligned with p; q is the term scalar, c the gain, lam the trace decay.
 */
@inline
function step<O, T, M>(nb: usize, p: usize, s1: usize, s2: usize,
  E: usize, u: usize, w: usize, gv: usize, q: f32, c: f32, lam: f32): void {
  const lr = hLr, b1 = hB1, omb1 = hOmb1, b2 = hB2, omb2 = hOmb2, eps = hEps, lrc = hLrc, ibc2 = hIbc2;
  const lrV = f32x4.splat(lr), b1V = f32x4.splat(b1), omb1V = f32x4.splat(omb1), b2V = f32x4.splat(b2);
  const omb2V = f32x4.splat(omb2), epsV = f32x4.splat(eps), lrcV = f32x4.splat(lrc), ibc2V = f32x4.splat(ibc2);
  const qV = f32x4.splat(q), cV = f32x4.splat(c), lamV = f32x4.splat(lam);
  const nv = simdBytes(nb);
  for (let o: usize = 0; o < nv; o += 16) {
    let g = termV<T>(o, u, w, qV);
    if (!is<M, Plain>()) {
      const e = f32x4.add(f32x4.mul(lamV, v128.load(E + o)), g);
      v128.store(E + o, e);
      g = is<M, Gain>() ? f32x4.mul(f32x4.mul(cV, v128.load(gv + o)), e) : f32x4.mul(cV, e);
    }
    coreV<O>(p + o, s1 + o, s2 + o, g, lrV, b1V, omb1V, b2V, omb2V, epsV, lrcV, ibc2V);
  }
  for (let o: usize = nv; o < nb; o += 4) {
    let g = termS<T>(o, u, w, q);
    if (!is<M, Plain>()) {
      const e = lam * load<f32>(E + o) + g;
      store<f32>(E + o, e);
      g = is<M, Gain>() ? (c * load<f32>(gv + o)) * e : c * e;
    }
    coreS<O>(p + o, s1 + o, s2 + o, g, lr, b1, omb1, b2, omb2, eps, lrc, ibc2);
  }
}

/** `step` with the runtime optimizer id dispatched once, outside the loop. */
@inline
function dispatch<T, M>(opt: i32, nb: usize, p: usize, s1: usize, s2: usize,
  E: usize, u: usize, w: usize, gv: usize, q: f32, c: f32, lam: f32): void {
  if (opt == SGD) step<Sgd, T, M>(nb, p, s1, s2, E, u, w, gv, q, c, lam);
  else if (opt == MOMENTUM) step<Momentum, T, M>(nb, p, s1, s2, E, u, w, gv, q, c, lam);
  else if (opt == RMSPROP) step<Rmsprop, T, M>(nb, p, s1, s2, E, u, w, gv, q, c, lam);
  else step<Adam, T, M>(nb, p, s1, s2, E, u, w, gv, q, c, lam);
}

/** E_j = lam E_j + t_j over a run of nb bytes. */
@inline
function traceRun<T>(nb: usize, E: usize, u: usize, w: usize, q: f32, lam: f32): void {
  const qV = f32x4.splat(q), lamV = f32x4.splat(lam);
  const nv = simdBytes(nb);
  for (let o: usize = 0; o < nv; o += 16) {
    v128.store(E + o, f32x4.add(f32x4.mul(lamV, v128.load(E + o)), termV<T>(o, u, w, qV)));
  }
  for (let o: usize = nv; o < nb; o += 4) {
    store<f32>(E + o, lam * load<f32>(E + o) + termS<T>(o, u, w, q));
  }
}

/** (gain (lam E + t))^2 for the four floats at byte offset o of a run (see normRun). */
@inline
function normSqV<T, M>(o: usize, E: usize, u: usize, w: usize, gv: usize, qV: v128, cV: v128, lamV: v128): v128 {
  const e = f32x4.add(f32x4.mul(lamV, v128.load(E + o)), termV<T>(o, u, w, qV));
  const v = is<M, Gain>() ? f32x4.mul(f32x4.mul(cV, v128.load(gv + o)), e) : f32x4.mul(cV, e);
  return f32x4.mul(v, v);
}

/**
 * Sum over a run of (gain_j (lam E_j + t_j))^2, E untouched; gain c (mode Trace) or c * gv_j (mode Gain).
 * f32x4 partial sums over blocks of at most NORM_BLOCK_BYTES, each reduced into the f64 total.
 */
@inline
function normRun<T, M>(nb: usize, E: usize, u: usize, w: usize, gv: usize, q: f32, c: f32, lam: f32): f64 {
  const qV = f32x4.splat(q), cV = f32x4.splat(c), lamV = f32x4.splat(lam);
  const nv = simdBytes(nb);
  let total: f64 = 0;
  for (let b: usize = 0; b < nv; b += NORM_BLOCK_BYTES) {
    const bend = b + NORM_BLOCK_BYTES < nv ? b + NORM_BLOCK_BYTES : nv;
    // Two accumulators (even and odd vectors) so the adds do not wait on each other.
    let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
    let o: usize = b;
    for (; o + 16 < bend; o += 32) {
      acc0 = f32x4.add(acc0, normSqV<T, M>(o, E, u, w, gv, qV, cV, lamV));
      acc1 = f32x4.add(acc1, normSqV<T, M>(o + 16, E, u, w, gv, qV, cV, lamV));
    }
    if (o < bend) acc0 = f32x4.add(acc0, normSqV<T, M>(o, E, u, w, gv, qV, cV, lamV));
    total += <f64>hsum(f32x4.add(acc0, acc1));
  }
  for (let o: usize = nv; o < nb; o += 4) {
    const e = lam * load<f32>(E + o) + termS<T>(o, u, w, q);
    const v = <f64>(is<M, Gain>() ? (c * load<f32>(gv + o)) * e : c * e);
    total += v * v;
  }
  return total;
}

// ---- dense linear algebra ---------------------------------------------------------------------------------

/** One row dot product of nb bytes (two f32x4 accumulators). */
@inline
function rowDot(r: usize, x: usize, nb: usize): f32 {
  const nv = simdBytes(nb);
  const nv2 = nb & ~(<usize>31);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let o: usize = 0;
  for (; o < nv2; o += 32) {
    a0 = f32x4.add(a0, f32x4.mul(v128.load(r + o), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(r + o, 16), v128.load(x + o, 16)));
  }
  if (o < nv) a0 = f32x4.add(a0, f32x4.mul(v128.load(r + o), v128.load(x + o)));
  let s = hsum(f32x4.add(a0, a1));
  for (o = nv; o < nb; o += 4) s += load<f32>(r + o) * load<f32>(x + o);
  return s;
}

/** y[0 .. nb) += A_row * xi over one row. */
@inline
function axpy1(y: usize, r: usize, xi: f32, nb: usize): void {
  const nv = simdBytes(nb);
  const xv = f32x4.splat(xi);
  for (let o: usize = 0; o < nv; o += 16) {
    v128.store(y + o, f32x4.add(v128.load(y + o), f32x4.mul(v128.load(r + o), xv)));
  }
  for (let o: usize = nv; o < nb; o += 4) store<f32>(y + o, load<f32>(y + o) + load<f32>(r + o) * xi);
}

/** y[0 .. nb) += r0 x0 + r1 x1 + r2 x2 + r3 x3 (added in that order), one load/store of y per 4 rows. */
@inline
function axpy4(y: usize, r0: usize, x0: f32, r1: usize, x1: f32, r2: usize, x2: f32, r3: usize, x3: f32,
  nb: usize): void {
  const nv = simdBytes(nb);
  const v0 = f32x4.splat(x0), v1 = f32x4.splat(x1), v2 = f32x4.splat(x2), v3 = f32x4.splat(x3);
  for (let o: usize = 0; o < nv; o += 16) {
    let s = v128.load(y + o);
    s = f32x4.add(s, f32x4.mul(v128.load(r0 + o), v0));
    s = f32x4.add(s, f32x4.mul(v128.load(r1 + o), v1));
    s = f32x4.add(s, f32x4.mul(v128.load(r2 + o), v2));
    s = f32x4.add(s, f32x4.mul(v128.load(r3 + o), v3));
    v128.store(y + o, s);
  }
  for (let o: usize = nv; o < nb; o += 4) {
    let s = load<f32>(y + o);
    s += load<f32>(r0 + o) * x0;
    s += load<f32>(r1 + o) * x1;
    s += load<f32>(r2 + o) * x2;
    s += load<f32>(r3 + o) * x3;
    store<f32>(y + o, s);
  }
}

/**
 * y[0 .. cols) += sum_i A[i, :] x[i] over `rows` rows of `rowBytes`, skipping rows whose x[i] == 0 exactly as
 * the twin does (so 0 * Inf in A never reaches y). Non-zero rows are gathered four at a time.
 */
function axpyRows(y: usize, A: usize, x: usize, rows: i32, rowBytes: usize): void {
  let r0: usize = 0, r1: usize = 0, r2: usize = 0;
  let x0: f32 = 0, x1: f32 = 0, x2: f32 = 0;
  let pending = 0;
  for (let i = 0; i < rows; i++) {
    const xi = load<f32>(x + (<usize>i << 2));
    if (xi == 0) continue;
    const r = A + <usize>i * rowBytes;
    if (pending == 0) { r0 = r; x0 = xi; pending = 1; }
    else if (pending == 1) { r1 = r; x1 = xi; pending = 2; }
    else if (pending == 2) { r2 = r; x2 = xi; pending = 3; }
    else { axpy4(y, r0, x0, r1, x1, r2, x2, r, xi, rowBytes); pending = 0; }
  }
  if (pending > 0) axpy1(y, r0, x0, rowBytes);
  if (pending > 1) axpy1(y, r1, x1, rowBytes);
  if (pending > 2) axpy1(y, r2, x2, rowBytes);
}

@inline
function fillBytes(x: usize, value: f32, nb: usize): void {
  const nv = simdBytes(nb);
  const v = f32x4.splat(value);
  for (let o: usize = 0; o < nv; o += 16) v128.store(x + o, v);
  for (let o: usize = nv; o < nb; o += 4) store<f32>(x + o, value);
}

// ---- exports ----------------------------------------------------------------------------------------------

/** y = A x (+ y when accumulate). Four rows at a time, one f32x4 accumulator per row. */
export function matVec(y: usize, A: usize, x: usize, rows: i32, cols: i32, accumulate: i32): void {
  const nb = bytes(cols);
  const nv = simdBytes(nb);
  let i = 0;
  for (; i + 4 <= rows; i += 4) {
    const r0 = A + <usize>i * nb, r1 = r0 + nb, r2 = r1 + nb, r3 = r2 + nb;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let o: usize = 0; o < nv; o += 16) {
      const xv = v128.load(x + o);
      a0 = f32x4.add(a0, f32x4.mul(v128.load(r0 + o), xv));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(r1 + o), xv));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(r2 + o), xv));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(r3 + o), xv));
    }
    let s = hsum4(a0, a1, a2, a3);
    if (nv < nb) {
      let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
      for (let o: usize = nv; o < nb; o += 4) {
        const xj = load<f32>(x + o);
        t0 += load<f32>(r0 + o) * xj;
        t1 += load<f32>(r1 + o) * xj;
        t2 += load<f32>(r2 + o) * xj;
        t3 += load<f32>(r3 + o) * xj;
      }
      s = f32x4.add(s, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(t0), 1, t1), 2, t2), 3, t3));
    }
    const yp = y + (<usize>i << 2);
    if (accumulate) s = f32x4.add(v128.load(yp), s);
    v128.store(yp, s);
  }
  for (; i < rows; i++) {
    const s = rowDot(A + <usize>i * nb, x, nb);
    const yp = y + (<usize>i << 2);
    store<f32>(yp, accumulate ? load<f32>(yp) + s : s);
  }
}

/** y = A^T x (+ y when accumulate). A is rows x cols. */
export function matTVec(y: usize, A: usize, x: usize, rows: i32, cols: i32, accumulate: i32): void {
  const nb = bytes(cols);
  if (!accumulate) fillBytes(y, 0, nb);
  axpyRows(y, A, x, rows, nb);
}

/** C = A B (+ C when accumulate). A is m x k, B is k x n. */
export function matMul(C: usize, A: usize, B: usize, m: i32, k: i32, n: i32, accumulate: i32): void {
  const nb = bytes(n);
  const kb = bytes(k);
  for (let i = 0; i < m; i++) {
    const c = C + <usize>i * nb;
    if (!accumulate) fillBytes(c, 0, nb);
    axpyRows(c, B, A + <usize>i * kb, k, nb);
  }
}

/** G += scale * d a^T (a == ONES: each row gets scale * d[i]). */
export function outerAcc(G: usize, d: usize, a: usize, rows: i32, cols: i32, scale: f32): void {
  const nb = bytes(cols);
  if (rows <= 0) return;
  if (cols == 1) {
    // A single column: run down the rows, G_i += (scale a_0) d_i.
    const q = a == ONES ? scale : scale * load<f32>(a);
    traceRun<Vec>(bytes(rows), G, d, 0, q, 1);
    return;
  }
  const nv = simdBytes(nb);
  for (let i = 0; i < rows; i++) {
    const di = scale * load<f32>(d + (<usize>i << 2));
    const r = G + <usize>i * nb;
    const dv = f32x4.splat(di);
    if (a == ONES) {
      for (let o: usize = 0; o < nv; o += 16) v128.store(r + o, f32x4.add(v128.load(r + o), dv));
      for (let o: usize = nv; o < nb; o += 4) store<f32>(r + o, load<f32>(r + o) + di);
    } else {
      for (let o: usize = 0; o < nv; o += 16) {
        v128.store(r + o, f32x4.add(v128.load(r + o), f32x4.mul(dv, v128.load(a + o))));
      }
      for (let o: usize = nv; o < nb; o += 4) store<f32>(r + o, load<f32>(r + o) + di * load<f32>(a + o));
    }
  }
}

/** Sum of x[i] y[i]; each f32 product is exact in f64 and summed in f64 lanes. */
export function dot(x: usize, y: usize, len: i32): f64 {
  const nb = bytes(len);
  const nv = simdBytes(nb);
  let acc0 = f64x2.splat(0), acc1 = f64x2.splat(0);
  for (let o: usize = 0; o < nv; o += 16) {
    const xv = v128.load(x + o), yv = v128.load(y + o);
    acc0 = f64x2.add(acc0, f64x2.mul(f64x2.promote_low_f32x4(xv), f64x2.promote_low_f32x4(yv)));
    acc1 = f64x2.add(acc1, f64x2.mul(
      f64x2.promote_low_f32x4(v128.shuffle<f32>(xv, xv, 2, 3, 2, 3)),
      f64x2.promote_low_f32x4(v128.shuffle<f32>(yv, yv, 2, 3, 2, 3))));
  }
  const acc = f64x2.add(acc0, acc1);
  let s = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
  for (let o: usize = nv; o < nb; o += 4) s += <f64>load<f32>(x + o) * <f64>load<f32>(y + o);
  return s;
}

/** 1 when every float in the range is finite (exponent bits not all ones), else 0. */
export function allFinite(x: usize, len: i32): i32 {
  const nb = bytes(len);
  const nv = simdBytes(nb);
  const EXP = i32x4.splat(0x7f800000);
  let bad = i32x4.splat(0);
  for (let o: usize = 0; o < nv; o += 16) {
    bad = v128.or(bad, i32x4.eq(v128.and(v128.load(x + o), EXP), EXP));
  }
  if (v128.any_true(bad)) return 0;
  for (let o: usize = nv; o < nb; o += 4) {
    if ((load<u32>(x + o) & 0x7f800000) == 0x7f800000) return 0;
  }
  return 1;
}

/** dst = src over len floats (memmove semantics). */
export function copy(dst: usize, src: usize, len: i32): void {
  memory.copy(dst, src, bytes(len));
}

/** x = value over len floats. */
export function fill(x: usize, value: f32, len: i32): void {
  fillBytes(x, value, bytes(len));
}

/** E = lambda E + d a^T (diag: a read element-wise, E_i = lambda E_i + d_i a_i). */
export function trace(E: usize, lambda: f32, d: usize, a: usize, rows: i32, cols: i32, diag: i32): void {
  if (rows <= 0) return;
  const nb = bytes(cols);
  const ones = a == ONES;
  if (cols == 1) {
    // One column: run down the rows.
    const rb = bytes(rows);
    if (ones) traceRun<Vec>(rb, E, d, 0, 1, lambda);
    else if (diag) traceRun<Vec2>(rb, E, d, a, 1, lambda);
    else traceRun<Vec>(rb, E, d, 0, load<f32>(a), lambda);
    return;
  }
  for (let i = 0; i < rows; i++) {
    const ib = <usize>i << 2;
    const di = load<f32>(d + ib);
    const r = E + <usize>i * nb;
    if (ones) traceRun<Const>(nb, r, 0, 0, di, lambda);
    else if (diag) traceRun<Const>(nb, r, 0, 0, di * load<f32>(a + ib), lambda);
    else traceRun<Vec>(nb, r, a, 0, di, lambda);
  }
}

/** Sum over the block of (g_i (lambda E_ij + d_i a_j))^2, E untouched. */
export function traceNormSq(E: usize, lambda: f32, d: usize, a: usize, g: usize, rows: i32, cols: i32,
  diag: i32): f64 {
  if (rows <= 0) return 0;
  const nb = bytes(cols);
  const ones = a == ONES;
  if (cols == 1) {
    const rb = bytes(rows);
    if (ones) return normRun<Vec, Gain>(rb, E, d, 0, g, 1, 1, lambda);
    if (diag) return normRun<Vec2, Gain>(rb, E, d, a, g, 1, 1, lambda);
    return normRun<Vec, Gain>(rb, E, d, 0, g, load<f32>(a), 1, lambda);
  }
  let s: f64 = 0;
  for (let i = 0; i < rows; i++) {
    const ib = <usize>i << 2;
    const di = load<f32>(d + ib);
    const gi = load<f32>(g + ib);
    const r = E + <usize>i * nb;
    if (ones) s += normRun<Const, Trace>(nb, r, 0, 0, 0, di, gi, lambda);
    else if (diag) s += normRun<Const, Trace>(nb, r, 0, 0, 0, di * load<f32>(a + ib), gi, lambda);
    else s += normRun<Vec, Trace>(nb, r, a, 0, 0, di, gi, lambda);
  }
  return s;
}

/** x_ij = s_i x_ij over a rows x cols block (per-unit trace decay). */
export function scaleRows(x: usize, s: usize, rows: i32, cols: i32): void {
  if (rows <= 0) return;
  if (cols == 1) {
    // One column: x_i = s_i x_i down the rows.
    const rb = bytes(rows);
    const rv = simdBytes(rb);
    for (let o: usize = 0; o < rv; o += 16) v128.store(x + o, f32x4.mul(v128.load(s + o), v128.load(x + o)));
    for (let o: usize = rv; o < rb; o += 4) store<f32>(x + o, load<f32>(s + o) * load<f32>(x + o));
    return;
  }
  const nb = bytes(cols);
  const nv = simdBytes(nb);
  for (let i = 0; i < rows; i++) {
    const si = load<f32>(s + (<usize>i << 2));
    const sv = f32x4.splat(si);
    const r = x + <usize>i * nb;
    for (let o: usize = 0; o < nv; o += 16) v128.store(r + o, f32x4.mul(sv, v128.load(r + o)));
    for (let o: usize = nv; o < nb; o += 4) store<f32>(r + o, si * load<f32>(r + o));
  }
}

/** Optimizer step with gradient gscale d_i a_j over a rows x cols block (a == ONES: gscale d_i). */
export function stepOuter(opt: i32, p: usize, s1: usize, s2: usize, d: usize, a: usize, rows: i32, cols: i32,
  gscale: f64, lr: f64, b1: f64, b2: f64, eps: f64, bc1: f64, bc2: f64): void {
  if (rows <= 0) return;
  setHyper(lr, b1, b2, eps, bc1, bc2);
  if (cols == 1) {
    // A column (typically a bias): the gradient runs down the rows, gscale a_0 d_i.
    const q = a == ONES ? <f32>gscale : <f32>(gscale * <f64>load<f32>(a));
    dispatch<Vec, Plain>(opt, bytes(rows), p, s1, s2, 0, d, 0, 0, q, 0, 0);
    return;
  }
  const nb = bytes(cols);
  const gs = <f32>gscale;
  for (let i = 0; i < rows; i++) {
    const di = gs * load<f32>(d + (<usize>i << 2));
    const o = <usize>i * nb;
    if (a == ONES) dispatch<Const, Plain>(opt, nb, p + o, s1 + o, s2 + o, 0, 0, 0, 0, di, 0, 0);
    else dispatch<Vec, Plain>(opt, nb, p + o, s1 + o, s2 + o, 0, a, 0, 0, di, 0, 0);
  }
}

/** Optimizer step with gradient gscale d_i a_i (a == ONES: gscale d_i). */
export function stepDiag(opt: i32, p: usize, s1: usize, s2: usize, d: usize, a: usize, len: i32,
  gscale: f64, lr: f64, b1: f64, b2: f64, eps: f64, bc1: f64, bc2: f64): void {
  if (len <= 0) return;
  setHyper(lr, b1, b2, eps, bc1, bc2);
  const gs = <f32>gscale;
  if (a == ONES) dispatch<Vec, Plain>(opt, bytes(len), p, s1, s2, 0, d, 0, 0, gs, 0, 0);
  else dispatch<Vec2, Plain>(opt, bytes(len), p, s1, s2, 0, d, a, 0, gs, 0, 0);
}

/** E = lambda E + d a^T fused with the step on gradient gscale g_i E_ij (diag: a read element-wise). */
export function stepTrace(opt: i32, p: usize, s1: usize, s2: usize, E: usize, lambda: f32, d: usize, a: usize,
  g: usize, rows: i32, cols: i32, diag: i32,
  gscale: f64, lr: f64, b1: f64, b2: f64, eps: f64, bc1: f64, bc2: f64): void {
  if (rows <= 0) return;
  setHyper(lr, b1, b2, eps, bc1, bc2);
  const gs = <f32>gscale;
  const ones = a == ONES;
  if (cols == 1) {
    const rb = bytes(rows);
    if (ones) dispatch<Vec, Gain>(opt, rb, p, s1, s2, E, d, 0, g, 1, gs, lambda);
    else if (diag) dispatch<Vec2, Gain>(opt, rb, p, s1, s2, E, d, a, g, 1, gs, lambda);
    else dispatch<Vec, Gain>(opt, rb, p, s1, s2, E, d, 0, g, load<f32>(a), gs, lambda);
    return;
  }
  const nb = bytes(cols);
  for (let i = 0; i < rows; i++) {
    const ib = <usize>i << 2;
    const di = load<f32>(d + ib);
    const gi = gs * load<f32>(g + ib);
    const o = <usize>i * nb;
    if (ones) dispatch<Const, Trace>(opt, nb, p + o, s1 + o, s2 + o, E + o, 0, 0, 0, di, gi, lambda);
    else if (diag) {
      dispatch<Const, Trace>(opt, nb, p + o, s1 + o, s2 + o, E + o, 0, 0, 0, di * load<f32>(a + ib), gi,
        lambda);
    } else dispatch<Vec, Trace>(opt, nb, p + o, s1 + o, s2 + o, E + o, a, 0, 0, di, gi, lambda);
  }
}

/** Optimizer step with a dense gradient gscale grad_i. */
export function stepDense(opt: i32, p: usize, s1: usize, s2: usize, grad: usize, len: i32,
  gscale: f64, lr: f64, b1: f64, b2: f64, eps: f64, bc1: f64, bc2: f64): void {
  if (len <= 0) return;
  setHyper(lr, b1, b2, eps, bc1, bc2);
  dispatch<Vec, Plain>(opt, bytes(len), p, s1, s2, 0, grad, 0, 0, <f32>gscale, 0, 0);
}
