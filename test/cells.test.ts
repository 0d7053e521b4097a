import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sigmoid, type Cell, type CellKind, type Init } from '../src/learners/cells/cell.js';
import { createStepCell as createCell, stepCellKinds as cellKinds } from '../src/learners/cells/registry.js';
import { createJsKernels } from '../src/learners/kernels/js-kernels.js';
import type { Kernels } from '../src/learners/kernels/kernels.js';
import { Random } from '../src/learners/random.js';

const inputSize = 3;
const hiddenSize = 5;
const fdStep = 1e-6;
// Central differences in double precision: truncation ~h^2, rounding ~1e-16 |L| / h ~ 1e-10.
const relTol = 1e-6;
const absTol = 1e-8;
// Floats between regions, so a write outside a cell's declared sizes shows up.
const guard = 8;
const guardValue = 777.25;

/** One cell on a Float64 heap: params, cache, state, delta, gState, gStatePrev, gOut, cache2, state2, delta2. */
interface Rig {
  readonly cell: Cell;
  readonly k: Kernels;
  readonly h: Float64Array;
  readonly params: number;
  readonly cache: number;
  readonly state: number;
  readonly delta: number;
  readonly gState: number;
  readonly gStatePrev: number;
  readonly gOut: number;
  readonly cache2: number;
  readonly state2: number;
  readonly delta2: number;
  readonly guards: readonly number[];
  readonly prefix: number;
}

function makeRig(kind: CellKind, seed: number, options: { leak?: number } = {}): Rig {
  const cell = createCell(kind, { inputSize, hiddenSize, ...options });
  const guards: number[] = [];
  let size = guard;
  guards.push(0);
  const take = (len: number): number => {
    const at = size;
    size += len;
    guards.push(size);
    size += guard;
    return at;
  };
  const params = take(cell.paramCount);
  const cache = take(cell.cacheSize);
  const state = take(cell.stateSize);
  const delta = take(cell.deltaSize);
  const gState = take(cell.stateSize);
  const gStatePrev = take(cell.stateSize);
  const gOut = take(cell.hiddenSize);
  const cache2 = take(cell.cacheSize);
  const state2 = take(cell.stateSize);
  const delta2 = take(cell.deltaSize);
  const h = new Float64Array(size);
  const k = createJsKernels(h as unknown as Float32Array);
  for (const g of guards) h.fill(guardValue, g, g + guard);
  const rig: Rig = {
    cell, k, h, params, cache, state, delta, gState, gStatePrev, gOut, cache2, state2, delta2, guards,
    prefix: cell.inputSize + cell.stateSize,
  };
  randomize(rig, new Random(seed));
  return rig;
}

function draw(init: Init, rnd: Random): number {
  switch (init.kind) {
    case 'uniform': return rnd.uniform(init.low, init.high);
    case 'normal': return init.std * rnd.normal();
    // Constants (biases) are moved off their init so that bias gradients are tested away from a special point.
    case 'constant': return init.value + rnd.uniform(-0.5, 0.5);
  }
}

/** Params around their init scale; x, s_{t-1}, gOut and gState uniform in (-1, 1). */
function randomize(r: Rig, rnd: Random): void {
  const { cell, h } = r;
  for (const b of cell.blocks) {
    for (let e = 0; e < b.rows * b.cols; e++) h[r.params + b.offset + e] = draw(b.init, rnd);
  }
  for (let j = 0; j < r.prefix; j++) h[r.cache + j] = rnd.uniform(-1, 1);
  for (let j = 0; j < cell.hiddenSize; j++) h[r.gOut + j] = rnd.uniform(-1, 1);
  for (let j = 0; j < cell.stateSize; j++) h[r.gState + j] = rnd.uniform(-1, 1);
}

function assertGuards(r: Rig, what: string): void {
  for (const g of r.guards) {
    for (let j = g; j < g + guard; j++) {
      assert.ok(r.h[j] === guardValue, `${r.cell.kind}: ${what} wrote outside its regions (float ${j})`);
    }
  }
}

/** Forward from the cache's prefix into cache2 / state2, leaving the cache itself alone. */
function forwardFresh(r: Rig): void {
  r.h.copyWithin(r.cache2, r.cache, r.cache + r.prefix);
  r.cell.forward(r.k, r.params, r.cache2, r.state2);
}

function dotAt(h: Float64Array, a: number, b: number, len: number): number {
  let s = 0;
  for (let j = 0; j < len; j++) s += h[a + j] * h[b + j];
  return s;
}

function centralDifference(r: Rig, at: number, loss: () => number): number {
  const saved = r.h[at];
  r.h[at] = saved + fdStep;
  const up = loss();
  r.h[at] = saved - fdStep;
  const down = loss();
  r.h[at] = saved;
  return (up - down) / (2 * fdStep);
}

function assertClose(analytic: number, fd: number, where: string): void {
  const err = Math.abs(analytic - fd);
  assert.ok(err <= relTol * Math.max(Math.abs(analytic), Math.abs(fd)) + absTol,
    `${where}: analytic ${analytic} vs finite difference ${fd} (error ${err.toExponential(2)})`);
}

/** The block's one-step gradient entry, assembled from its factors as the credit rules do. */
function factoredGradient(r: Rig, blockIndex: number, row: number, col: number): number {
  const b = r.cell.blocks[blockIndex];
  const d = r.h[r.delta + b.deltaOffset + row];
  if (b.columnOffset < 0) return d;
  return d * r.h[r.cache + b.columnOffset + (b.diag ? row : col)];
}

/** o_t as a function of s_t, from each cell's specification (not its code). */
function outputOf(kind: CellKind, s: Float64Array, at: number, unit: number): number {
  return kind === 'diagonal-linear' ? Math.tanh(s[at + unit]) : s[at + unit];
}

/** Checks every parameter of every block against finite differences of `loss` through a fresh forward. */
function checkParamGradients(r: Rig, loss: () => number, label: string): void {
  const { cell, h } = r;
  cell.blocks.forEach((b, bi) => {
    let largest = 0;
    for (let row = 0; row < b.rows; row++) {
      for (let col = 0; col < b.cols; col++) {
        const analytic = factoredGradient(r, bi, row, col);
        const fd = centralDifference(r, r.params + b.offset + row * b.cols + col, loss);
        assertClose(analytic, fd, `${cell.kind} ${label} d${b.name}[${row},${col}]`);
        largest = Math.max(largest, Math.abs(analytic));
      }
    }
    assert.ok(largest > 1e-6, `${cell.kind} ${label}: block ${b.name} has an all-zero gradient, the check is vacuous`);
  });
}

let gcFn: (() => void) | undefined;
function collectGarbage(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

const ticks = 10_000;

/** Runs `ticks` forward + outputBackward + backward steps on bounded inputs; returns the largest |s_t| seen. */
function run(r: Rig, cell: Cell, inputs: Float64Array): number {
  const { k, h } = r;
  const m = cell.inputSize;
  let largest = 0;
  for (let t = 0; t < ticks; t++) {
    for (let j = 0; j < m; j++) h[r.cache + j] = inputs[t * m + j];
    k.copy(r.cache + m, r.state, cell.stateSize);
    cell.forward(k, r.params, r.cache, r.state);
    cell.outputBackward(k, r.cache, r.gOut, r.gState);
    cell.backward(k, r.params, r.cache, r.gState, r.delta, r.gStatePrev);
    // Math.max keeps a NaN, so a non-finite state fails the bound.
    for (let j = 0; j < cell.stateSize; j++) largest = Math.max(largest, Math.abs(h[r.state + j]));
  }
  return largest;
}

// One small typed array or closure per tick is 300 KB and more over 10^4 ticks; an idle window grows < 1 KB.
const quietHeapGrowth = 64 * 1024;

interface Growth { readonly heapUsed: number; readonly arrayBuffers: number; readonly largest: number }

/**
 * Memory growth over `ticks` ticks once the JIT has settled. Interpreted code boxes doubles into heap numbers,
 * so the first windows grow even for a cell that allocates nothing; a cell that does allocate grows in every one.
 */
function steadyGrowth(r: Rig, cell: Cell, inputs: Float64Array): Growth {
  let growth: Growth = { heapUsed: Infinity, arrayBuffers: Infinity, largest: Infinity };
  for (let window = 0; window < 20; window++) {
    collectGarbage();
    const before = process.memoryUsage();
    const largest = run(r, cell, inputs);
    const after = process.memoryUsage();
    growth = {
      heapUsed: after.heapUsed - before.heapUsed,
      arrayBuffers: after.arrayBuffers - before.arrayBuffers,
      largest,
    };
    if (growth.heapUsed < quietHeapGrowth && growth.arrayBuffers <= 0) break;
  }
  return growth;
}

function boundedInputs(m: number, seed: number): Float64Array {
  const rnd = new Random(seed);
  const x = new Float64Array(ticks * m);
  for (let j = 0; j < x.length; j++) x[j] = rnd.uniform(-1, 1);
  return x;
}

for (const kind of cellKinds) {
  describe(kind, () => {
    test('layout: blocks tile the parameters, factors stay inside the cache and delta scratch', () => {
      const cell = createCell(kind, { inputSize, hiddenSize });
      assert.equal(cell.kind, kind);
      assert.equal(cell.inputSize, inputSize);
      assert.equal(cell.hiddenSize, hiddenSize);
      assert.ok(cell.stateSize >= hiddenSize);
      assert.ok(cell.outputOffset >= inputSize + cell.stateSize, 'o_t must not overlap the prefix');
      assert.ok(cell.outputOffset + hiddenSize <= cell.cacheSize);
      let offset = 0;
      for (const b of cell.blocks) {
        assert.equal(b.offset, offset, `${b.name} offset`);
        assert.equal(b.rows, hiddenSize, `${b.name} rows`);
        if (b.diag) assert.equal(b.cols, 1, `${b.name} cols`);
        assert.ok(b.deltaOffset >= 0 && b.deltaOffset + b.rows <= cell.deltaSize, `${b.name} deltaOffset`);
        const span = b.diag ? b.rows : b.cols;
        assert.ok(b.columnOffset === -1 || (b.columnOffset >= 0 && b.columnOffset + span <= cell.cacheSize),
          `${b.name} columnOffset`);
        offset += b.rows * b.cols;
      }
      assert.equal(cell.paramCount, offset);
      assert.equal(new Set(cell.blocks.map((b) => b.name)).size, cell.blocks.length, 'block names are unique');
    });

    test('(a) parameter gradients from factors match finite differences', () => {
      const r = makeRig(kind, 101);
      const { cell, k, h } = r;
      const n = cell.hiddenSize;
      const prefix = Array.from(h.subarray(r.cache, r.cache + r.prefix));
      cell.forward(k, r.params, r.cache, r.state);
      assert.deepEqual(Array.from(h.subarray(r.cache, r.cache + r.prefix)), prefix, 'forward changed the prefix');

      // L = gOut . o_t, through outputBackward.
      cell.outputBackward(k, r.cache, r.gOut, r.gState);
      cell.backward(k, r.params, r.cache, r.gState, r.delta, -1);
      assertGuards(r, 'forward/outputBackward/backward');
      checkParamGradients(r, () => {
        forwardFresh(r);
        return dotAt(h, r.gOut, r.cache2 + cell.outputOffset, n);
      }, 'L = gOut.o_t');

      // L = gState . s_t with gState over the whole state, which reaches the LSTM's c path as well.
      randomize(r, new Random(102));
      cell.forward(k, r.params, r.cache, r.state);
      cell.backward(k, r.params, r.cache, r.gState, r.delta, -1);
      checkParamGradients(r, () => {
        forwardFresh(r);
        return dotAt(h, r.gState, r.state2, cell.stateSize);
      }, 'L = gState.s_t');
      assertGuards(r, 'finite differences');
    });

    test('(b) dL/ds_{t-1} from backward matches finite differences over s_{t-1}', () => {
      const r = makeRig(kind, 202);
      const { cell, k, h } = r;
      const S = cell.stateSize;
      cell.forward(k, r.params, r.cache, r.state);
      // NaN first, so a cell that accumulates into gStatePrev instead of writing it fails.
      h.fill(Number.NaN, r.gStatePrev, r.gStatePrev + S);
      cell.backward(k, r.params, r.cache, r.gState, r.delta, r.gStatePrev);
      assertGuards(r, 'backward');
      for (let j = 0; j < S; j++) {
        const fd = centralDifference(r, r.cache + cell.inputSize + j, () => {
          forwardFresh(r);
          return dotAt(h, r.gState, r.state2, S);
        });
        assertClose(h[r.gStatePrev + j], fd, `${kind} dL/ds_{t-1}[${j}]`);
      }

      // gStatePrev may be gState itself (a BPTT loop stepping back in place): same factors, same result.
      const expected = Array.from(h.subarray(r.gStatePrev, r.gStatePrev + S));
      const factors = Array.from(h.subarray(r.delta, r.delta + cell.deltaSize));
      h.copyWithin(r.state2, r.gState, r.gState + S);
      cell.backward(k, r.params, r.cache, r.state2, r.delta2, r.state2);
      assert.deepEqual(Array.from(h.subarray(r.state2, r.state2 + S)), expected);
      assert.deepEqual(Array.from(h.subarray(r.delta2, r.delta2 + cell.deltaSize)), factors);
      assertGuards(r, 'aliased backward');
    });

    test('(c) outputBackward matches finite differences of gOut.o_t over s_t', () => {
      const r = makeRig(kind, 303);
      const { cell, k, h } = r;
      const n = cell.hiddenSize;
      const S = cell.stateSize;
      cell.forward(k, r.params, r.cache, r.state);
      for (let i = 0; i < n; i++) {
        const o = h[r.cache + cell.outputOffset + i];
        assertClose(o, outputOf(kind, h, r.state, i), `${kind} o_t[${i}] = G(s_t)`);
      }
      cell.outputBackward(k, r.cache, r.gOut, r.gState);
      assertGuards(r, 'outputBackward');
      const gOfState = (): number => {
        let s = 0;
        for (let i = 0; i < n; i++) s += h[r.gOut + i] * outputOf(kind, h, r.state, i);
        return s;
      };
      for (let j = 0; j < S; j++) {
        assertClose(h[r.gState + j], centralDifference(r, r.state + j, gOfState), `${kind} dL/ds_t[${j}]`);
      }

      // Composed with backward, with no knowledge of G: d(gOut.o_t)/ds_{t-1}.
      cell.backward(k, r.params, r.cache, r.gState, r.delta, r.gStatePrev);
      for (let j = 0; j < S; j++) {
        const fd = centralDifference(r, r.cache + cell.inputSize + j, () => {
          forwardFresh(r);
          return dotAt(h, r.gOut, r.cache2 + cell.outputOffset, n);
        });
        assertClose(h[r.gStatePrev + j], fd, `${kind} d(gOut.o_t)/ds_{t-1}[${j}]`);
      }
    });

    test('(d) unit alignment: a parameter of row i moves o_t and s_t only at unit i', () => {
      const r = makeRig(kind, 404);
      const { cell, k, h } = r;
      const n = cell.hiddenSize;
      const S = cell.stateSize;
      cell.forward(k, r.params, r.cache, r.state);
      for (const b of cell.blocks) {
        let movedOwnUnit = 0;
        for (let row = 0; row < b.rows; row++) {
          for (let col = 0; col < b.cols; col++) {
            const at = r.params + b.offset + row * b.cols + col;
            const saved = h[at];
            h[at] = saved + 0.37;
            forwardFresh(r);
            h[at] = saved;
            for (let u = 0; u < n; u++) {
              const moved = h[r.cache2 + cell.outputOffset + u] !== h[r.cache + cell.outputOffset + u];
              if (u === row) movedOwnUnit += moved ? 1 : 0;
              else assert.ok(!moved, `${kind}: ${b.name}[${row},${col}] moved o_t[${u}]`);
            }
            for (let j = 0; j < S; j++) {
              if (j % n === row) continue;
              assert.ok(h[r.state2 + j] === h[r.state + j], `${kind}: ${b.name}[${row},${col}] moved s_t[${j}]`);
            }
          }
        }
        assert.ok(movedOwnUnit > 0, `${kind}: no parameter of ${b.name} moved its own unit`);
      }
    });

    test('(e) 10^4 ticks allocate nothing and keep s_t finite and bounded', () => {
      const r = makeRig(kind, 505);
      const growth = steadyGrowth(r, r.cell, boundedInputs(r.cell.inputSize, 506));
      assert.ok(growth.arrayBuffers <= 0, `arrayBuffers grew by ${growth.arrayBuffers} bytes over 10^4 ticks`);
      assert.ok(growth.heapUsed < quietHeapGrowth, `heapUsed grew by ${growth.heapUsed} bytes over 10^4 ticks`);
      assert.ok(growth.largest < 100, `|s_t| reached ${growth.largest} on inputs in (-1, 1)`);
      assert.equal(r.k.allFinite(r.gStatePrev, r.cell.stateSize), 1);
      assert.equal(r.k.allFinite(r.delta, r.cell.deltaSize), 1);
      assertGuards(r, '10^4 ticks');
    });
  });
}

test('the allocation probe catches a cell that allocates one small array per tick', () => {
  const r = makeRig('tanh-rnn', 606);
  let sink: Float64Array | undefined;
  const allocating: Cell = Object.create(r.cell, {
    forward: {
      value: (k: Kernels, params: number, cache: number, state: number): void => {
        r.cell.forward(k, params, cache, state);
        sink = new Float64Array(r.cell.hiddenSize);
      },
    },
  });
  const growth = steadyGrowth(r, allocating, boundedInputs(r.cell.inputSize, 607));
  assert.ok(sink);
  assert.ok(growth.heapUsed >= quietHeapGrowth, `only ${growth.heapUsed} bytes over 10^4 allocating ticks`);
});

describe('createCell', () => {
  test('rejects an unknown kind, naming the known ones', () => {
    assert.throws(() => createCell('nope' as CellKind, { inputSize, hiddenSize }),
      /unknown cell kind 'nope': expected one of tanh-rnn, .*gru/);
  });

  test('rejects sizes that are not positive integers', () => {
    assert.throws(() => createCell('gru', { inputSize: 2.5, hiddenSize }), /inputSize must be a positive integer/);
    assert.throws(() => createCell('gru', { inputSize, hiddenSize: 0 }), /hiddenSize must be a positive integer/);
    assert.throws(() => createCell('lstm', { inputSize, hiddenSize: Number.NaN }),
      /hiddenSize must be a positive integer/);
  });

  test('leaky-rnn validates its leak, and leak 1 is the tanh RNN', () => {
    for (const leak of [0, -0.1, 1.5, Number.NaN]) {
      assert.throws(() => createCell('leaky-rnn', { inputSize, hiddenSize, leak }), /leak must be in \(0, 1\]/);
    }
    // Same block table and inits, so the same seed gives both rigs the same params and prefix.
    const leaky = makeRig('leaky-rnn', 7, { leak: 1 });
    const tanh = makeRig('tanh-rnn', 7);
    const table = (c: Cell) => c.blocks.map((b) => [b.name, b.offset, b.init]);
    assert.deepEqual(table(leaky.cell), table(tanh.cell));
    leaky.cell.forward(leaky.k, leaky.params, leaky.cache, leaky.state);
    tanh.cell.forward(tanh.k, tanh.params, tanh.cache, tanh.state);
    for (let i = 0; i < hiddenSize; i++) assertClose(leaky.h[leaky.state + i], tanh.h[tanh.state + i], `h_t[${i}]`);
  });

  test('init choices: forget and update gates open, diagonal decays in range', () => {
    const init = (kind: CellKind, name: string): Init => {
      const b = createCell(kind, { inputSize, hiddenSize }).blocks.find((x) => x.name === name);
      assert.ok(b, `${kind} has a block ${name}`);
      return b.init;
    };
    assert.deepEqual(init('lstm', 'b_f'), { kind: 'constant', value: 1 });
    assert.deepEqual(init('ugrnn', 'b_g'), { kind: 'constant', value: 1 });
    assert.deepEqual(init('diagonal-rnn', 'w'), { kind: 'uniform', low: 0, high: 1 });
    const nu = init('diagonal-linear', 'nu');
    assert.ok(nu.kind === 'uniform');
    assertClose(sigmoid(nu.low), 0.5, 'a at nu low');
    assertClose(sigmoid(nu.high), 0.99, 'a at nu high');
  });
});
