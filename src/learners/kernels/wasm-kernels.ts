import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { createJsKernels } from './js-kernels.js';
import type { KernelBackend, Kernels } from './kernels.js';

/**
 * The WASM SIMD kernels (built from ./assembly/kernels.ts into build/kernels.wasm by `npm run build`).
 *
 * One WebAssembly.Memory per kernel set, sized up front to the arena and never grown, so the `heap` view stays
 * valid (DESIGN.md section 10). The module is read and compiled once per process; each createWasmKernels call
 * instantiates it over a fresh memory. Methods forward float offsets as byte pointers (offset * 4) and allocate
 * nothing per call. An `a` offset < 0 ("a vector of ones") is passed as -1, which the module reads as the
 * unaligned sentinel 0xFFFFFFFF (never a float's address), so all of a 4 GiB memory stays addressable.
 */

/** Works from src/learners/kernels/ (tsx) and from dist/learners/kernels/ (compiled): both are three levels deep. */
const WASM_URL = new URL('../../../build/kernels.wasm', import.meta.url);

const WASM_PAGE_BYTES = 65536;
const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit

interface KernelExports {
  matVec(y: number, A: number, x: number, rows: number, cols: number, accumulate: number): void;
  matTVec(y: number, A: number, x: number, rows: number, cols: number, accumulate: number): void;
  matMul(C: number, A: number, B: number, m: number, k: number, n: number, accumulate: number): void;
  outerAcc(G: number, d: number, a: number, rows: number, cols: number, scale: number): void;
  dot(x: number, y: number, len: number): number;
  allFinite(x: number, len: number): number;
  copy(dst: number, src: number, len: number): void;
  fill(x: number, value: number, len: number): void;
  trace(E: number, lambda: number, d: number, a: number, rows: number, cols: number, diag: number): void;
  traceNormSq(E: number, lambda: number, d: number, a: number, g: number, rows: number, cols: number,
    diag: number): number;
  scaleRows(x: number, s: number, rows: number, cols: number): void;
  stepOuter(opt: number, p: number, s1: number, s2: number, d: number, a: number, rows: number, cols: number,
    gscale: number, lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number): void;
  stepDiag(opt: number, p: number, s1: number, s2: number, d: number, a: number, len: number,
    gscale: number, lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number): void;
  stepTrace(opt: number, p: number, s1: number, s2: number, E: number, lambda: number, d: number, a: number,
    g: number, rows: number, cols: number, diag: number,
    gscale: number, lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number): void;
  stepDense(opt: number, p: number, s1: number, s2: number, grad: number, len: number,
    gscale: number, lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number): void;
}

const EXPORT_NAMES: readonly (keyof KernelExports)[] = [
  'matVec', 'matTVec', 'matMul', 'outerAcc', 'dot', 'allFinite', 'copy', 'fill',
  'trace', 'traceNormSq', 'scaleRows', 'stepOuter', 'stepDiag', 'stepTrace', 'stepDense',
];

// Loaded lazily, once per process (success or failure).
let loaded = false;
let cachedModule: WebAssembly.Module | null = null;
let loadError: string | null = null;

/**
 * V8 calls WASM exports from JS through a generic wrapper, and after 1,000 calls of one export of one instance
 * compiles a wrapper for it, costing that call about a millisecond. Each learner owns an instance, so every learner
 * paid it on the same tick (333 for the kernels called three times a tick, 499 for twice): 70-110 ms for 100
 * streams in step, the backlogs behind the service's p99 (docs/performance.md). Per-signature wrappers from the
 * start remove that cost and leave the steady tick unchanged. Checked on V8 11 (Node 20) and V8 12 (Node 22, the
 * Docker image's); other versions keep their default (their wrappers may differ, and an unknown flag prints an
 * error). `npm run bench -- tick` shows whether learners in step stall.
 */
function useSignatureWrappers(): void {
  const major = process.versions.v8.split('.')[0];
  if (major === '11' || major === '12') setFlagsFromString('--no-wasm-generic-wrapper');
}

function load(): WebAssembly.Module | null {
  if (loaded) return cachedModule;
  loaded = true;
  const path = fileURLToPath(WASM_URL);
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = new Uint8Array(readFileSync(path)); // a copy over a plain ArrayBuffer, as BufferSource wants
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    loadError = code === 'ENOENT'
      ? `WASM kernels not built: ${path} is missing. Run \`npm run build\` (or \`node scripts/build.mjs\`).`
      : `WASM kernels unreadable: ${path}: ${(err as Error).message}. Run \`npm run build\`.`;
    return null;
  }
  if (!WebAssembly.validate(bytes)) {
    loadError = `WASM kernels do not validate: ${path}. This runtime may lack WebAssembly SIMD (Node >= 16.4 ` +
      `has it); otherwise the file is stale or corrupt: run \`npm run build\`. The 'js' kernel backend works ` +
      `everywhere.`;
    return null;
  }
  try {
    useSignatureWrappers();
    const mod = new WebAssembly.Module(bytes);
    const names = new Set(WebAssembly.Module.exports(mod).map((e) => e.name));
    const missing = EXPORT_NAMES.filter((n) => !names.has(n));
    if (missing.length > 0) {
      loadError = `WASM kernels at ${path} lack exports ${missing.join(', ')}: run \`npm run build\`.`;
      return null;
    }
    cachedModule = mod;
  } catch (err) {
    loadError = `WASM kernels failed to compile: ${path}: ${(err as Error).message}. Run \`npm run build\`.`;
  }
  return cachedModule;
}

/** True when build/kernels.wasm exists and this runtime can compile it (WebAssembly SIMD). */
export function wasmKernelsAvailable(): boolean {
  return load() !== null;
}

/** Why the WASM kernels are unavailable (with the fix), or null when they are available. */
export function wasmKernelsError(): string | null {
  return load() === null ? loadError : null;
}

/** Pages to hold floatCount floats: at least one, never more than the wasm32 limit. */
function pagesFor(floatCount: number): number {
  if (!Number.isInteger(floatCount) || floatCount < 0) {
    throw new RangeError(`floatCount must be a non-negative integer, got ${floatCount}`);
  }
  const pages = Math.max(1, Math.ceil((floatCount * 4) / WASM_PAGE_BYTES));
  if (pages > MAX_PAGES) {
    throw new RangeError(`floatCount ${floatCount} exceeds the 4 GiB WebAssembly memory limit`);
  }
  return pages;
}

/**
 * WASM SIMD kernels over a fresh arena of at least floatCount floats (rounded up to whole 64 KiB pages; `heap`
 * covers all of it). Throws with instructions when build/kernels.wasm is missing or cannot run here.
 */
export function createWasmKernels(floatCount: number): Kernels {
  const pages = pagesFor(floatCount);
  const mod = load();
  if (mod === null) throw new Error(loadError ?? 'WASM kernels unavailable: run `npm run build`.');
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const instance = new WebAssembly.Instance(mod, { env: { memory } });
  const x = instance.exports as unknown as KernelExports;
  const heap = new Float32Array(memory.buffer);

  // Bound once here; the methods below only do arithmetic on their arguments and call these.
  const matVec = x.matVec, matTVec = x.matTVec, matMul = x.matMul, outerAcc = x.outerAcc, dot = x.dot;
  const allFinite = x.allFinite, copy = x.copy, fill = x.fill, trace = x.trace, traceNormSq = x.traceNormSq;
  const scaleRows = x.scaleRows;
  const stepOuter = x.stepOuter, stepDiag = x.stepDiag, stepTrace = x.stepTrace, stepDense = x.stepDense;

  const backend: KernelBackend = 'wasm';
  return {
    backend,
    heap,

    matVec(y, A, xx, rows, cols, accumulate) {
      matVec(y * 4, A * 4, xx * 4, rows, cols, accumulate);
    },
    matTVec(y, A, xx, rows, cols, accumulate) {
      matTVec(y * 4, A * 4, xx * 4, rows, cols, accumulate);
    },
    matMul(C, A, B, m, k, n, accumulate) {
      matMul(C * 4, A * 4, B * 4, m, k, n, accumulate);
    },
    outerAcc(G, d, a, rows, cols, scale) {
      outerAcc(G * 4, d * 4, a < 0 ? -1 : a * 4, rows, cols, scale);
    },
    dot(xx, y, len) {
      return dot(xx * 4, y * 4, len);
    },
    allFinite(xx, len) {
      return allFinite(xx * 4, len);
    },
    copy(dst, src, len) {
      copy(dst * 4, src * 4, len);
    },
    fill(xx, value, len) {
      fill(xx * 4, value, len);
    },
    trace(E, lambda, d, a, rows, cols, diag) {
      trace(E * 4, lambda, d * 4, a < 0 ? -1 : a * 4, rows, cols, diag);
    },
    traceNormSq(E, lambda, d, a, g, rows, cols, diag) {
      return traceNormSq(E * 4, lambda, d * 4, a < 0 ? -1 : a * 4, g * 4, rows, cols, diag);
    },
    scaleRows(xx, s, rows, cols) {
      scaleRows(xx * 4, s * 4, rows, cols);
    },
    stepOuter(opt, p, s1, s2, d, a, rows, cols, gscale, lr, b1, b2, eps, bc1, bc2) {
      stepOuter(opt, p * 4, s1 * 4, s2 * 4, d * 4, a < 0 ? -1 : a * 4, rows, cols,
        gscale, lr, b1, b2, eps, bc1, bc2);
    },
    stepDiag(opt, p, s1, s2, d, a, len, gscale, lr, b1, b2, eps, bc1, bc2) {
      stepDiag(opt, p * 4, s1 * 4, s2 * 4, d * 4, a < 0 ? -1 : a * 4, len, gscale, lr, b1, b2, eps, bc1, bc2);
    },
    stepTrace(opt, p, s1, s2, E, lambda, d, a, g, rows, cols, diag, gscale, lr, b1, b2, eps, bc1, bc2) {
      stepTrace(opt, p * 4, s1 * 4, s2 * 4, E * 4, lambda, d * 4, a < 0 ? -1 : a * 4, g * 4, rows, cols, diag,
        gscale, lr, b1, b2, eps, bc1, bc2);
    },
    stepDense(opt, p, s1, s2, grad, len, gscale, lr, b1, b2, eps, bc1, bc2) {
      stepDense(opt, p * 4, s1 * 4, s2 * 4, grad * 4, len, gscale, lr, b1, b2, eps, bc1, bc2);
    },
  };
}

/**
 * Kernels over a fresh arena of floatCount floats. 'wasm' (the default) throws with instructions when the WASM
 * build is unavailable (check wasmKernelsAvailable() first to fall back); 'js' is the plain-TypeScript twin.
 */
export function createKernels(floatCount: number, backend: KernelBackend = 'wasm'): Kernels {
  if (backend === 'js') return createJsKernels(new Float32Array(floatCount));
  return createWasmKernels(floatCount);
}
