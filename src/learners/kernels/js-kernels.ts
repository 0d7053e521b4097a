import { OptimizerCore, type Kernels } from './kernels.js';

/**
 * The plain-TypeScript twin of the WASM SIMD kernels: the readable reference the WASM build is tested against,
 * and the fallback where WebAssembly SIMD is unavailable. It accepts a Float64Array heap as well, which gradient
 * tests use for finite differences in double precision.
 */
export function createJsKernels(heap: Float32Array): Kernels {
  const h = heap;

  // One optimizer element update; small enough for V8 to inline into the loops below.
  function apply(opt: number, pi: number, s1: number, s2: number, g: number,
    lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number): void {
    if (opt === OptimizerCore.sgd) {
      h[pi] -= lr * g;
    } else if (opt === OptimizerCore.momentum) {
      const m = b1 * h[s1] + g;
      h[s1] = m;
      h[pi] -= lr * m;
    } else if (opt === OptimizerCore.rmsprop) {
      const v = b2 * h[s1] + (1 - b2) * g * g;
      h[s1] = v;
      h[pi] -= (lr * g) / (Math.sqrt(v) + eps);
    } else {
      const m = b1 * h[s1] + (1 - b1) * g;
      const v = b2 * h[s2] + (1 - b2) * g * g;
      h[s1] = m;
      h[s2] = v;
      h[pi] -= (lr * (m / bc1)) / (Math.sqrt(v / bc2) + eps);
    }
  }

  return {
    backend: 'js',
    heap: h,

    matVec(y, A, x, rows, cols, accumulate) {
      for (let i = 0; i < rows; i++) {
        let s = 0;
        const r = A + i * cols;
        for (let j = 0; j < cols; j++) s += h[r + j] * h[x + j];
        h[y + i] = accumulate ? h[y + i] + s : s;
      }
    },

    matTVec(y, A, x, rows, cols, accumulate) {
      if (!accumulate) for (let j = 0; j < cols; j++) h[y + j] = 0;
      for (let i = 0; i < rows; i++) {
        const xi = h[x + i];
        if (xi === 0) continue;
        const r = A + i * cols;
        for (let j = 0; j < cols; j++) h[y + j] += h[r + j] * xi;
      }
    },

    matMul(C, A, B, m, k, n, accumulate) {
      for (let i = 0; i < m; i++) {
        const c = C + i * n;
        if (!accumulate) for (let j = 0; j < n; j++) h[c + j] = 0;
        for (let l = 0; l < k; l++) {
          const ail = h[A + i * k + l];
          if (ail === 0) continue;
          const b = B + l * n;
          for (let j = 0; j < n; j++) h[c + j] += ail * h[b + j];
        }
      }
    },

    outerAcc(G, d, a, rows, cols, scale) {
      for (let i = 0; i < rows; i++) {
        const di = scale * h[d + i];
        const r = G + i * cols;
        if (a < 0) for (let j = 0; j < cols; j++) h[r + j] += di;
        else for (let j = 0; j < cols; j++) h[r + j] += di * h[a + j];
      }
    },

    dot(x, y, len) {
      let s = 0;
      for (let i = 0; i < len; i++) s += h[x + i] * h[y + i];
      return s;
    },

    allFinite(x, len) {
      for (let i = 0; i < len; i++) if (!Number.isFinite(h[x + i])) return 0;
      return 1;
    },

    copy(dst, src, len) {
      h.copyWithin(dst, src, src + len);
    },

    fill(x, value, len) {
      h.fill(value, x, x + len);
    },

    trace(E, lambda, d, a, rows, cols, diag) {
      for (let i = 0; i < rows; i++) {
        const di = h[d + i];
        const r = E + i * cols;
        for (let j = 0; j < cols; j++) {
          h[r + j] = lambda * h[r + j] + di * (a < 0 ? 1 : diag ? h[a + i] : h[a + j]);
        }
      }
    },

    traceNormSq(E, lambda, d, a, g, rows, cols, diag) {
      let s = 0;
      for (let i = 0; i < rows; i++) {
        const di = h[d + i];
        const gi = h[g + i];
        const r = E + i * cols;
        for (let j = 0; j < cols; j++) {
          const v = gi * (lambda * h[r + j] + di * (a < 0 ? 1 : diag ? h[a + i] : h[a + j]));
          s += v * v;
        }
      }
      return s;
    },

    scaleRows(x, s, rows, cols) {
      for (let i = 0; i < rows; i++) {
        const si = h[s + i];
        const r = x + i * cols;
        for (let j = 0; j < cols; j++) h[r + j] *= si;
      }
    },

    stepOuter(opt, p, s1, s2, d, a, rows, cols, gscale, lr, b1, b2, eps, bc1, bc2) {
      for (let i = 0; i < rows; i++) {
        const di = gscale * h[d + i];
        const o = i * cols;
        for (let j = 0; j < cols; j++) {
          const g = a < 0 ? di : di * h[a + j];
          apply(opt, p + o + j, s1 + o + j, s2 + o + j, g, lr, b1, b2, eps, bc1, bc2);
        }
      }
    },

    stepDiag(opt, p, s1, s2, d, a, len, gscale, lr, b1, b2, eps, bc1, bc2) {
      for (let i = 0; i < len; i++) {
        const g = gscale * h[d + i] * (a < 0 ? 1 : h[a + i]);
        apply(opt, p + i, s1 + i, s2 + i, g, lr, b1, b2, eps, bc1, bc2);
      }
    },

    stepTrace(opt, p, s1, s2, E, lambda, d, a, g, rows, cols, diag, gscale, lr, b1, b2, eps, bc1, bc2) {
      for (let i = 0; i < rows; i++) {
        const di = h[d + i];
        const gi = gscale * h[g + i];
        const o = i * cols;
        for (let j = 0; j < cols; j++) {
          const aj = a < 0 ? 1 : diag ? h[a + i] : h[a + j];
          const e = lambda * h[E + o + j] + di * aj;
          h[E + o + j] = e;
          apply(opt, p + o + j, s1 + o + j, s2 + o + j, gi * e, lr, b1, b2, eps, bc1, bc2);
        }
      }
    },

    stepDense(opt, p, s1, s2, grad, len, gscale, lr, b1, b2, eps, bc1, bc2) {
      for (let i = 0; i < len; i++) {
        apply(opt, p + i, s1 + i, s2 + i, gscale * h[grad + i], lr, b1, b2, eps, bc1, bc2);
      }
    },
  };
}
