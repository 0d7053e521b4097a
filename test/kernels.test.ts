/**
 * The WASM SIMD kernels against their plain-TypeScript twin: identical heaps in, agreement to float32 tolerance
 * out, for every Kernels method over sizes that are and are not multiples of 4, misaligned offsets, a >= 0 and
 * a < 0 (ones), diag 0/1, accumulate 0/1 and all four optimizer cores.
 *
 * Tolerances (the twin computes each expression in float64 and rounds once on store; the WASM build computes in
 * float32, and reduces dot products in SIMD lanes):
 *  - element-wise results (trace, steps, fill, outer products): |w - j| <= 1e-5 max(|w|, |j|) + 1e-6;
 *    scaleRows is one float32 product per element on both sides: bit-identical;
 *  - sums (matVec, matTVec, matMul): |w - j| <= 1e-5 S + 1e-7, where S is the same sum over absolute values
 *    (a relative bound on the result itself would be meaningless under cancellation; float32 summation of n
 *    terms in 4 lanes is good to about (n / 4) 6e-8 S, 2e-6 S at n = 130);
 *  - dot: float64 on both sides, only the summation order differs: 1e-12 S;
 *  - traceNormSq: a sum of squares (no cancellation), 1e-5 relative.
 * Everything outside a kernel's outputs must stay bit-identical.
 *
 * Needs build/kernels.wasm (`npm run build`); without it these tests fail, saying so.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createJsKernels } from '../src/learners/kernels/js-kernels.js';
import { OptimizerCore, type Kernels } from '../src/learners/kernels/kernels.js';
import {
  createKernels,
  createWasmKernels,
  wasmKernelsAvailable,
  wasmKernelsError,
} from '../src/learners/kernels/wasm-kernels.js';

const SIZES = [1, 3, 4, 7, 16, 33, 130];
const CORES = [OptimizerCore.sgd, OptimizerCore.momentum, OptimizerCore.rmsprop, OptimizerCore.adam];
const CORE_NAMES = ['sgd', 'momentum', 'rmsprop', 'adam'];
const ARENA = 1 << 17; // floats: room for four 130 x 130 blocks plus vectors

// Non-trivial hyperparameters (step 3 of adam, so the bias corrections matter).
const H = { gscale: 0.7, lr: 0.03, b1: 0.9, b2: 0.99, eps: 1e-6, bc1: 1 - 0.9 ** 3, bc2: 1 - 0.99 ** 3 };
const LAMBDA = 0.8;

// ---- helpers ------------------------------------------------------------------------------------------------

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Out {
  off: number;
  n: number;
  /** Per-element scale S for sums; when absent the element-wise bound applies. */
  scale?: ArrayLike<number>;
}

/** A wasm and a js kernel set over identical heaps, plus a bump allocator with random misalignment. */
class Pair {
  readonly w: Kernels;
  readonly j: Kernels;
  readonly rand: () => number;
  private next = 0;
  private highWater = 0;

  constructor(seed: number, floats = ARENA) {
    this.w = createWasmKernels(floats);
    this.j = createJsKernels(new Float32Array(this.w.heap.length));
    this.rand = prng(seed);
  }

  /** Start a case: both heaps identical again, allocator reset. */
  begin(): void {
    this.j.heap.set(this.w.heap);
    this.next = 0;
  }

  /** n floats at a random offset that is 0..3 floats past a 4-float boundary. */
  alloc(n: number): number {
    const off = ((this.next + 3) & ~3) + Math.floor(this.rand() * 4);
    this.next = off + Math.max(n, 0);
    this.highWater = Math.max(this.highWater, this.next);
    assert.ok(this.next <= this.w.heap.length - 64, 'test arena too small');
    return off;
  }

  /** n random floats in [lo, hi), written to both heaps; returns the offset. */
  random(n: number, lo = -1, hi = 1): number {
    const off = this.alloc(n);
    for (let i = 0; i < n; i++) {
      const v = Math.fround(lo + (hi - lo) * this.rand());
      this.w.heap[off + i] = v;
      this.j.heap[off + i] = v;
    }
    return off;
  }

  /** Compare the outputs to tolerance and everything else used so far (plus a margin) bit for bit. */
  check(label: string, outs: Out[]): void {
    const wh = this.w.heap, jh = this.j.heap;
    const end = Math.min(this.next + 64, wh.length);
    const isOut = new Uint8Array(end);
    for (const o of outs) {
      for (let i = 0; i < o.n; i++) {
        const k = o.off + i;
        isOut[k] = 1;
        const a = wh[k], b = jh[k];
        if (Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))) continue;
        const tol = o.scale !== undefined
          ? 1e-5 * o.scale[i] + 1e-7
          : 1e-5 * Math.max(Math.abs(a), Math.abs(b)) + 1e-6;
        if (!(Math.abs(a - b) <= tol)) {
          assert.fail(`${label}: output[${i}] (heap ${k}) wasm ${a} vs js ${b}, |diff| ${Math.abs(a - b)} > ${tol}`);
        }
      }
    }
    const wb = new Uint32Array(wh.buffer, wh.byteOffset, end), jb = new Uint32Array(jh.buffer, jh.byteOffset, end);
    for (let k = 0; k < end; k++) {
      if (!isOut[k] && wb[k] !== jb[k]) assert.fail(`${label}: heap[${k}] outside the outputs changed (wasm ${wh[k]}, js ${jh[k]})`);
    }
  }

  /** The wasm heap past everything any case used must never have been written. */
  checkUntouchedTail(): void {
    const h = this.w.heap;
    for (let k = this.highWater + 64; k < h.length; k++) {
      if (h[k] !== 0) assert.fail(`wasm wrote heap[${k}] beyond every case's data`);
    }
  }
}

function both(p: Pair, f: (k: Kernels) => void): void {
  f(p.w);
  f(p.j);
}

/** a operands to try: a real vector at `off`, and ones. */
function aModes(off: number): [string, number][] {
  return [['a', off], ['ones', -1]];
}

// ---- availability ---------------------------------------------------------------------------------------------

test('build/kernels.wasm is built and loads (run `npm run build` if this fails)', () => {
  assert.ok(wasmKernelsAvailable(), wasmKernelsError() ?? 'WASM kernels unavailable: run `npm run build`');
});

describe('createKernels', () => {
  test('wasm: heap covers whole pages, at least one, and holds floatCount', () => {
    for (const [n, pages] of [[0, 1], [1, 1], [16384, 1], [16385, 2], [100000, 7]] as const) {
      const k = createKernels(n);
      assert.equal(k.backend, 'wasm');
      assert.equal(k.heap.length, pages * 16384, `floatCount ${n}`);
    }
  });

  test('js: a plain Float32Array of floatCount', () => {
    const k = createKernels(1000, 'js');
    assert.equal(k.backend, 'js');
    assert.equal(k.heap.length, 1000);
  });

  test('instances have separate memories', () => {
    const a = createWasmKernels(64), b = createWasmKernels(64);
    a.fill(0, 5, 64);
    assert.equal(b.heap[0], 0);
    assert.notEqual(a.heap.buffer, b.heap.buffer);
  });

  test('rejects invalid sizes', () => {
    assert.throws(() => createWasmKernels(-1), RangeError);
    assert.throws(() => createWasmKernels(1.5), RangeError);
    assert.throws(() => createWasmKernels(2 ** 31), RangeError);
  });
});

// ---- dense linear algebra -------------------------------------------------------------------------------------

describe('linear algebra', () => {
  test('matVec', () => {
    const p = new Pair(1);
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        for (const acc of [0, 1]) {
          p.begin();
          const A = p.random(rows * cols), x = p.random(cols), y = p.random(rows);
          const S = new Float64Array(rows);
          for (let i = 0; i < rows; i++) {
            let s = acc ? Math.abs(p.w.heap[y + i]) : 0;
            for (let c = 0; c < cols; c++) s += Math.abs(p.w.heap[A + i * cols + c] * p.w.heap[x + c]);
            S[i] = s;
          }
          both(p, (k) => k.matVec(y, A, x, rows, cols, acc));
          p.check(`matVec ${rows}x${cols} acc=${acc}`, [{ off: y, n: rows, scale: S }]);
        }
      }
    }
    p.checkUntouchedTail();
  });

  test('matTVec', () => {
    const p = new Pair(2);
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        for (const acc of [0, 1]) {
          p.begin();
          const A = p.random(rows * cols), x = p.random(rows), y = p.random(cols);
          // Some exact zeros in x (the twin skips those rows).
          for (let i = 0; i < rows; i += 3) p.w.heap[x + i] = p.j.heap[x + i] = 0;
          const S = new Float64Array(cols);
          for (let c = 0; c < cols; c++) {
            let s = acc ? Math.abs(p.w.heap[y + c]) : 0;
            for (let i = 0; i < rows; i++) s += Math.abs(p.w.heap[A + i * cols + c] * p.w.heap[x + i]);
            S[c] = s;
          }
          both(p, (k) => k.matTVec(y, A, x, rows, cols, acc));
          p.check(`matTVec ${rows}x${cols} acc=${acc}`, [{ off: y, n: cols, scale: S }]);
        }
      }
    }
    p.checkUntouchedTail();
  });

  test('matTVec and matMul skip zero factors like the twin (0 * Inf never reaches the result)', () => {
    const p = new Pair(3);
    for (const rows of [1, 5, 9]) {
      for (const cols of [3, 8]) {
        p.begin();
        const A = p.random(rows * cols), x = p.random(rows), y = p.random(cols);
        for (let i = 0; i < rows; i += 2) {
          p.w.heap[x + i] = p.j.heap[x + i] = 0;
          p.w.heap[A + i * cols] = p.j.heap[A + i * cols] = Infinity;
          p.w.heap[A + i * cols + 1] = p.j.heap[A + i * cols + 1] = NaN;
        }
        both(p, (k) => k.matTVec(y, A, x, rows, cols, 0));
        assert.equal(p.w.allFinite(y, cols), 1);
        p.check(`matTVec zeros ${rows}x${cols}`, [{ off: y, n: cols, scale: new Array(cols).fill(rows) }]);

        // matMul with A (1 x rows) = x: C = x^T B, B = A above.
        const C = p.alloc(cols);
        both(p, (k) => k.matMul(C, x, A, 1, rows, cols, 0));
        assert.equal(p.w.allFinite(C, cols), 1);
        p.check(`matMul zeros ${rows}x${cols}`, [
          { off: y, n: cols, scale: new Array(cols).fill(rows) }, // from matTVec above
          { off: C, n: cols, scale: new Array(cols).fill(rows) },
        ]);
      }
    }
  });

  test('matMul agrees with the twin and with a naive float64 loop', () => {
    const p = new Pair(4);
    for (const m of [1, 3, 4, 7, 16]) {
      for (const kk of SIZES) {
        for (const n of SIZES) {
          for (const acc of [0, 1]) {
            p.begin();
            const A = p.random(m * kk), B = p.random(kk * n), C = p.random(m * n);
            const h = p.w.heap;
            const want = new Float64Array(m * n), S = new Float64Array(m * n);
            for (let i = 0; i < m; i++) {
              for (let c = 0; c < n; c++) {
                let s = acc ? h[C + i * n + c] : 0, sa = Math.abs(s);
                for (let l = 0; l < kk; l++) {
                  const t = h[A + i * kk + l] * h[B + l * n + c];
                  s += t;
                  sa += Math.abs(t);
                }
                want[i * n + c] = s;
                S[i * n + c] = sa;
              }
            }
            both(p, (k) => k.matMul(C, A, B, m, kk, n, acc));
            const label = `matMul ${m}x${kk}x${n} acc=${acc}`;
            p.check(label, [{ off: C, n: m * n, scale: S }]);
            for (let e = 0; e < m * n; e++) {
              const got = h[C + e];
              assert.ok(Math.abs(got - want[e]) <= 1e-5 * S[e] + 1e-7, `${label}: naive [${e}] ${want[e]} vs ${got}`);
            }
          }
        }
      }
    }
    p.checkUntouchedTail();
  });

  test('outerAcc', () => {
    const p = new Pair(5);
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        p.begin();
        const G = p.random(rows * cols), d = p.random(rows), av = p.random(cols);
        for (const [name, a] of aModes(av)) {
          both(p, (k) => k.outerAcc(G, d, a, rows, cols, -1.3));
          p.check(`outerAcc ${rows}x${cols} ${name}`, [{ off: G, n: rows * cols }]);
        }
      }
    }
    p.checkUntouchedTail();
  });

  test('any negative a means ones', () => {
    const p = new Pair(6);
    p.begin();
    const G = p.random(7 * 5), d = p.random(7);
    both(p, (k) => k.outerAcc(G, d, -5, 7, 5, 0.5));
    p.check('outerAcc a=-5', [{ off: G, n: 35 }]);
  });
});

// ---- reductions and memory ops ------------------------------------------------------------------------------

describe('reductions and memory ops', () => {
  test('dot', () => {
    const p = new Pair(7);
    for (const len of [0, ...SIZES, 1000, 4099]) {
      p.begin();
      const x = p.random(len), y = p.random(len);
      let S = 0;
      for (let i = 0; i < len; i++) S += Math.abs(p.w.heap[x + i] * p.w.heap[y + i]);
      const a = p.w.dot(x, y, len), b = p.j.dot(x, y, len);
      assert.ok(Math.abs(a - b) <= 1e-12 * S, `dot len=${len}: wasm ${a} vs js ${b}`);
      p.check(`dot ${len}`, []);
    }
  });

  test('allFinite catches NaN and +-Infinity anywhere, accepts every finite value', () => {
    const p = new Pair(8);
    const finite = [0, -0, 1, -1, 3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45,
      1.1754943508222875e-38];
    for (const len of [0, ...SIZES, 257]) {
      p.begin();
      const x = p.random(len, -1e30, 1e30);
      for (let i = 0; i < len; i++) if (i % 5 === 0) p.w.heap[x + i] = finite[i % finite.length];
      assert.equal(p.w.allFinite(x, len), 1, `finite len=${len}`);
      assert.equal(p.j.allFinite(x, len), 1);
      for (const bad of [NaN, Infinity, -Infinity]) {
        for (const pos of new Set([0, len - 1, len >> 1, len - 2, (len & ~3) - 1])) {
          if (pos < 0 || pos >= len) continue;
          const keep = p.w.heap[x + pos];
          p.w.heap[x + pos] = bad;
          assert.equal(p.w.allFinite(x, len), 0, `${bad} at ${pos} of ${len}`);
          p.w.heap[x + pos] = keep;
        }
      }
      // A NaN just outside the range does not count.
      p.w.heap[x + len] = NaN;
      assert.equal(p.w.allFinite(x, len), 1, `NaN just past len=${len}`);
      p.w.heap[x + len] = 0;
    }
    // A NaN with a payload and a negative quiet NaN.
    p.begin();
    const x = p.random(8);
    const bits = new Uint32Array(p.w.heap.buffer);
    for (const pattern of [0x7f800001, 0xffc00000, 0x7fffffff]) {
      bits[x + 6] = pattern;
      assert.equal(p.w.allFinite(x, 8), 0, `bits 0x${pattern.toString(16)}`);
    }
  });

  test('copy and fill', () => {
    const p = new Pair(9);
    for (const len of [0, ...SIZES]) {
      p.begin();
      const src = p.random(len), dst = p.random(len), x = p.random(len + 3);
      both(p, (k) => k.copy(dst, src, len));
      both(p, (k) => k.fill(x, 0.1, len));
      p.check(`copy/fill ${len}`, [{ off: dst, n: len }, { off: x, n: len }]);
      for (let i = 0; i < len; i++) {
        assert.equal(p.w.heap[dst + i], p.w.heap[src + i]);
        assert.equal(p.w.heap[x + i], Math.fround(0.1));
      }
      // Overlapping ranges behave like copyWithin in both directions.
      const buf = p.random(len + 5);
      both(p, (k) => k.copy(buf + 2, buf, len));
      p.check(`copy overlap fwd ${len}`, [{ off: buf, n: len + 5 }]);
      both(p, (k) => k.copy(buf, buf + 3, len));
      p.check(`copy overlap back ${len}`, [{ off: buf, n: len + 5 }]);
    }
    p.checkUntouchedTail();
  });
});

// ---- traces ---------------------------------------------------------------------------------------------------

describe('traces', () => {
  test('trace', () => {
    const p = new Pair(10);
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        for (const diag of [0, 1]) {
          for (const ones of [false, true]) {
            p.begin();
            const E = p.random(rows * cols), d = p.random(rows), av = p.random(Math.max(rows, cols));
            const a = ones ? -1 : av;
            both(p, (k) => k.trace(E, LAMBDA, d, a, rows, cols, diag));
            p.check(`trace ${rows}x${cols} diag=${diag} ${ones ? 'ones' : 'a'}`, [{ off: E, n: rows * cols }]);
          }
        }
      }
    }
    p.checkUntouchedTail();
  });

  test('scaleRows', () => {
    const p = new Pair(12);
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        p.begin();
        const x = p.random(rows * cols), sv = p.random(rows, -1.5, 1.5);
        both(p, (k) => k.scaleRows(x, sv, rows, cols));
        const label = `scaleRows ${rows}x${cols}`;
        p.check(label, [{ off: x, n: rows * cols }]);
        for (let i = 0; i < rows * cols; i++) {
          assert.ok(Object.is(p.w.heap[x + i], p.j.heap[x + i]), `${label}: x[${i}] wasm ${p.w.heap[x + i]} vs js ${p.j.heap[x + i]}`);
        }
      }
    }
    p.checkUntouchedTail();
  });

  test('traceNormSq', () => {
    const p = new Pair(11);
    // SIZES x SIZES, plus runs longer than the 256-float blocks the WASM build reduces into float64.
    const shapes = SIZES.flatMap((r) => SIZES.map((c) => [r, c])).concat([[1000, 1], [3, 700]]);
    for (const [rows, cols] of shapes) {
      for (const diag of [0, 1]) {
        for (const ones of [false, true]) {
          p.begin();
          const E = p.random(rows * cols), d = p.random(rows), g = p.random(rows);
          const av = p.random(Math.max(rows, cols));
          const a = ones ? -1 : av;
          const w = p.w.traceNormSq(E, LAMBDA, d, a, g, rows, cols, diag);
          const j = p.j.traceNormSq(E, LAMBDA, d, a, g, rows, cols, diag);
          const label = `traceNormSq ${rows}x${cols} diag=${diag} ${ones ? 'ones' : 'a'}`;
          assert.ok(Math.abs(w - j) <= 1e-5 * j + 1e-12, `${label}: wasm ${w} vs js ${j}`);
          p.check(label, []);
        }
      }
    }
  });
});

// ---- optimizer steps ------------------------------------------------------------------------------------------

/** Slot arrays for a core: s1 for momentum/rmsprop/adam (non-negative for rmsprop), s2 >= 0 for adam. */
function slots(p: Pair, opt: number, n: number): [number, number] {
  const s1 = opt === OptimizerCore.rmsprop ? p.random(n, 0, 0.5) : p.random(n, -0.5, 0.5);
  const s2 = p.random(n, 0, 0.5);
  return [s1, s2];
}

function stateOuts(opt: number, pp: number, s1: number, s2: number, n: number): Out[] {
  const outs: Out[] = [{ off: pp, n }];
  if (opt !== OptimizerCore.sgd) outs.push({ off: s1, n });
  if (opt === OptimizerCore.adam) outs.push({ off: s2, n });
  return outs;
}

describe('optimizer steps', () => {
  for (const opt of CORES) {
    const core = CORE_NAMES[opt];

    test(`stepOuter ${core}`, () => {
      const p = new Pair(100 + opt);
      for (const rows of SIZES) {
        for (const cols of SIZES) {
          for (const ones of [false, true]) {
            p.begin();
            const n = rows * cols;
            const pp = p.random(n), [s1, s2] = slots(p, opt, n), d = p.random(rows), av = p.random(cols);
            const a = ones ? -1 : av;
            both(p, (k) => k.stepOuter(opt, pp, s1, s2, d, a, rows, cols,
              H.gscale, H.lr, H.b1, H.b2, H.eps, H.bc1, H.bc2));
            p.check(`stepOuter ${core} ${rows}x${cols} ${ones ? 'ones' : 'a'}`, stateOuts(opt, pp, s1, s2, n));
          }
        }
      }
      p.checkUntouchedTail();
    });

    test(`stepDiag ${core}`, () => {
      const p = new Pair(200 + opt);
      for (const len of [0, ...SIZES, 1000]) {
        for (const ones of [false, true]) {
          p.begin();
          const pp = p.random(len), [s1, s2] = slots(p, opt, len), d = p.random(len), av = p.random(len);
          const a = ones ? -1 : av;
          both(p, (k) => k.stepDiag(opt, pp, s1, s2, d, a, len, H.gscale, H.lr, H.b1, H.b2, H.eps, H.bc1, H.bc2));
          p.check(`stepDiag ${core} ${len} ${ones ? 'ones' : 'a'}`, stateOuts(opt, pp, s1, s2, len));
        }
      }
      p.checkUntouchedTail();
    });

    test(`stepTrace ${core}`, () => {
      const p = new Pair(300 + opt);
      for (const rows of SIZES) {
        for (const cols of SIZES) {
          for (const diag of [0, 1]) {
            for (const ones of [false, true]) {
              p.begin();
              const n = rows * cols;
              const pp = p.random(n), [s1, s2] = slots(p, opt, n), E = p.random(n);
              const d = p.random(rows), g = p.random(rows), av = p.random(Math.max(rows, cols));
              const a = ones ? -1 : av;
              both(p, (k) => k.stepTrace(opt, pp, s1, s2, E, LAMBDA, d, a, g, rows, cols, diag,
                H.gscale, H.lr, H.b1, H.b2, H.eps, H.bc1, H.bc2));
              p.check(`stepTrace ${core} ${rows}x${cols} diag=${diag} ${ones ? 'ones' : 'a'}`,
                [...stateOuts(opt, pp, s1, s2, n), { off: E, n }]);
            }
          }
        }
      }
      p.checkUntouchedTail();
    });

    test(`stepDense ${core}`, () => {
      const p = new Pair(400 + opt);
      for (const len of [0, ...SIZES, 1000]) {
        p.begin();
        const pp = p.random(len), [s1, s2] = slots(p, opt, len), grad = p.random(len, -3, 3);
        both(p, (k) => k.stepDense(opt, pp, s1, s2, grad, len, H.gscale, H.lr, H.b1, H.b2, H.eps, H.bc1, H.bc2));
        p.check(`stepDense ${core} ${len}`, stateOuts(opt, pp, s1, s2, len));
      }
      p.checkUntouchedTail();
    });
  }

  test('repeated steps stay together (100 rmsprop and adam steps on one state)', () => {
    for (const opt of [OptimizerCore.rmsprop, OptimizerCore.adam]) {
      const p = new Pair(500 + opt);
      p.begin();
      const rows = 33, cols = 130, n = rows * cols;
      const pp = p.random(n), [s1, s2] = slots(p, opt, n), E = p.random(n), d = p.random(rows), g = p.random(rows);
      const av = p.random(cols);
      for (let t = 1; t <= 100; t++) {
        const bc1 = 1 - H.b1 ** t, bc2 = 1 - H.b2 ** t;
        both(p, (k) => k.stepTrace(opt, pp, s1, s2, E, LAMBDA, d, av, g, rows, cols, 0,
          H.gscale, 0.001, H.b1, H.b2, 1e-8, bc1, bc2));
      }
      // Drift compounds over steps: a looser (still float32-scale) bound.
      for (const [name, off] of [['p', pp], ['s1', s1], ['E', E]] as const) {
        for (let i = 0; i < n; i++) {
          const a = p.w.heap[off + i], b = p.j.heap[off + i];
          assert.ok(Math.abs(a - b) <= 1e-4 * Math.max(Math.abs(a), Math.abs(b)) + 1e-5,
            `${CORE_NAMES[opt]} ${name}[${i}] after 100 steps: wasm ${a} vs js ${b}`);
        }
      }
    }
  });
});

// ---- allocation ---------------------------------------------------------------------------------------------

test('repeated calls allocate nothing and never grow the memory', () => {
  const k = createWasmKernels(1 << 16);
  const buffer = k.heap.buffer, bytes = buffer.byteLength;
  const h = k.heap;
  for (let i = 0; i < 20000; i++) h[i] = Math.sin(i) * 0.5;
  const run = (times: number): number => {
    let sink = 0;
    for (let t = 0; t < times; t++) {
      k.matVec(20000, 0, 1000, 16, 33, t & 1);
      k.matTVec(20100, 0, 1000, 16, 33, 0);
      k.matMul(21000, 0, 2000, 4, 7, 16, 0);
      k.outerAcc(22000, 0, t & 1 ? -1 : 100, 7, 9, 0.1);
      sink += k.dot(0, 500, 130);
      sink += k.allFinite(0, 130);
      k.copy(23000, 0, 33);
      k.fill(23100, 0.5, 33);
      k.trace(24000, 0.9, 0, -1, 7, 9, 0);
      sink += k.traceNormSq(24000, 0.9, 0, 100, 200, 7, 9, 0);
      k.scaleRows(24000, 100, 7, 9);
      k.stepOuter(OptimizerCore.rmsprop, 30000, 31000, 32000, 0, 100, 16, 33, 0.5, 1e-3, 0.9, 0.99, 1e-8, 0.1, 0.01);
      k.stepDiag(OptimizerCore.adam, 33000, 34000, 35000, 0, -1, 33, 0.5, 1e-3, 0.9, 0.99, 1e-8, 0.1, 0.01);
      k.stepTrace(OptimizerCore.momentum, 36000, 37000, 38000, 39000, 0.9, 0, 100, 200, 16, 33, 0,
        0.5, 1e-3, 0.9, 0.99, 1e-8, 0.1, 0.01);
      k.stepDense(OptimizerCore.sgd, 40000, 41000, 42000, 0, 130, 0.5, 1e-3, 0.9, 0.99, 1e-8, 0.1, 0.01);
    }
    return sink;
  };
  run(2000); // warm up (JIT tiers)
  const before = process.memoryUsage().arrayBuffers;
  run(50000);
  const after = process.memoryUsage().arrayBuffers;
  assert.ok(after - before < 64 * 1024, `arrayBuffers grew by ${after - before} bytes over 750k kernel calls`);
  assert.equal(k.heap.buffer, buffer);
  assert.equal(buffer.byteLength, bytes, 'memory grew (views would detach)');
});
