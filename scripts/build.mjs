#!/usr/bin/env node
// Build driftline:
//   1. compile the AssemblyScript SIMD kernels (src/learners/kernels/assembly/kernels.ts) to build/kernels.wasm;
//   2. compile the TypeScript sources to dist/ with `tsc -p tsconfig.json`
//      (skipped when DRIFTLINE_BUILD_KERNELS_ONLY=1);
//   3. put the dashboard page (src/dashboard/page) and uPlot's browser build (node_modules/uplot/dist) into
//      build/dashboard, which the dashboard serves: bundled here, never fetched from a CDN.
// Plain Node ESM, no dependencies beyond node_modules (assemblyscript, typescript). Run by `npm run build` and by
// `prepare` (so `npm ci` on a clean clone builds). Exits non-zero on any failure.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const kernelsSource = 'src/learners/kernels/assembly/kernels.ts';
const kernelsOut = 'build/kernels.wasm';

// The flags are the contract with src/learners/kernels/wasm-kernels.ts: the module imports its memory as
// env.memory, imports nothing else, exports only the kernels, and contains no runtime (nothing allocates).
const ascArgs = [
  kernelsSource,
  '--outFile', kernelsOut,
  '-O3', // --optimizeLevel 3 --shrinkLevel 0
  '--converge',
  '--noAssert',
  '--runtime', 'stub',
  '--importMemory',
  '--noExportMemory',
  '--initialMemory', '0',
  '--enable', 'simd',
  '--use', 'abort=', // no env.abort import
];

function log(msg) {
  process.stdout.write(`[build] ${msg}\n`);
}

function fail(msg) {
  process.stderr.write(`[build] FAILED: ${msg}\n`);
  process.exit(1);
}

async function buildKernels() {
  log(`asc ${ascArgs.join(' ')}`);
  let asc;
  try {
    asc = (await import('assemblyscript/asc')).default;
  } catch (err) {
    fail(`cannot load the AssemblyScript compiler (is node_modules installed? run \`npm ci\`): ${err.message}`);
  }
  mkdirSync(join(root, 'build'), { recursive: true });
  const { error } = await asc.main(ascArgs, { stdout: process.stdout, stderr: process.stderr });
  if (error) fail(`asc: ${error.message}`);

  // Check the artifact is what the wrapper expects.
  const bytes = readFileSync(join(root, kernelsOut));
  if (!WebAssembly.validate(bytes)) fail(`${kernelsOut} does not validate (WebAssembly SIMD unsupported?)`);
  const mod = new WebAssembly.Module(bytes);
  const imports = WebAssembly.Module.imports(mod).map((i) => `${i.module}.${i.name}:${i.kind}`);
  if (imports.length !== 1 || imports[0] !== 'env.memory:memory') {
    fail(`${kernelsOut} must import exactly env.memory, but imports [${imports.join(', ')}]`);
  }
  const exports = WebAssembly.Module.exports(mod).map((e) => e.name);
  log(`wrote ${kernelsOut} (${statSync(join(root, kernelsOut)).size} bytes; exports ${exports.join(', ')})`);
}

function buildTypeScript() {
  if (process.env.DRIFTLINE_BUILD_KERNELS_ONLY === '1') {
    log('DRIFTLINE_BUILD_KERNELS_ONLY=1: skipping tsc');
    return;
  }
  const require = createRequire(import.meta.url);
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc');
  } catch {
    fail('cannot find typescript (run `npm ci`)');
  }
  log(`tsc -p tsconfig.json (${relative(root, tsc)})`);
  const res = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (res.error) fail(`tsc: ${res.error.message}`);
  if (res.status !== 0) fail(`tsc exited with status ${res.status ?? res.signal}`);
  log('wrote dist/');
}

function buildDashboard() {
  const out = join(root, 'build', 'dashboard');
  mkdirSync(out, { recursive: true });
  const page = join(root, 'src', 'dashboard', 'page');
  for (const name of readdirSync(page)) copyFileSync(join(page, name), join(out, name));
  const require = createRequire(import.meta.url);
  let uplotDist;
  try {
    uplotDist = dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  } catch {
    fail('cannot find uplot (a devDependency: run `npm ci`)');
  }
  for (const name of ['uPlot.iife.min.js', 'uPlot.min.css']) copyFileSync(join(uplotDist, name), join(out, name));
  log(`wrote build/dashboard (${readdirSync(out).join(', ')})`);
}

process.chdir(root);
await buildKernels();
buildDashboard();
buildTypeScript();
log('done');
