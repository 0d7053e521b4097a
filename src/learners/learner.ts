import { fanInUniform, initBlock, zeros, BlockTable, type Cell, type CellKind, type ForwardCell, type ParamGroup } from './cells/cell.js';
import { LRU_DEFAULTS } from './cells/lru.js';
import { createCell, hasDefaultOutputBypass } from './cells/registry.js';
import type { CreditRule } from './credit/credit-rule.js';
import { createCreditRule, type CreditSpec } from './credit/registry.js';
import { createDecoder } from './decoders/create-decoder.js';
import type { DecoderSpec } from './decoders/decoder-spec.js';
import { InvalidInputError, InvalidLabelError, InvalidSpecError, SnapshotError } from './errors.js';
import type { Kernels, KernelBackend } from './kernels/kernels.js';
import { createKernels, wasmKernelsAvailable } from './kernels/wasm-kernels.js';
import { compileOptimizer, type CompiledOptimizer } from './optim/compile.js';
import { isGrouped, type GroupedOptimizerSpec, type OptimizerSpec } from './optim/transform.js';
import { ParameterSet, type BoundBlock } from './parameters.js';
import { Random } from './random.js';
import { RlsReadout, validateRlsReadout, type RlsReadoutSpec } from './rls-readout.js';
import { canonicalJson, snapshotHeaderBytes, SNAPSHOT_FORMAT, SNAPSHOT_MAGIC, writeSnapshotHeader } from './snapshot-header.js';

export { canonicalJson } from './snapshot-header.js';

export interface CellSpec {
  readonly kind: CellKind;
  readonly hiddenSize: number;
  /** Leak rate of `leaky-rnn`. */
  readonly leak?: number;
  /** `lru`: complex units per layer (default hiddenSize, the model width), layers (default 1). */
  readonly units?: number;
  readonly layers?: number;
  /** `lru`: |lambda| drawn in [rMin, rMax] (default 0, 1), arg(lambda) in [0, maxPhase] (default 2 pi). */
  readonly rMin?: number;
  readonly rMax?: number;
  readonly maxPhase?: number;
  /** Input-to-output bypass in the readout (yhat = V o + D x + c); defaults to true only for tanh-rnn-bypass. */
  readonly outputBypass?: boolean;
}

export interface RecurrentLearnerSpec {
  readonly cell: CellSpec;
  readonly credit: CreditSpec;
  readonly optimizer: OptimizerSpec | GroupedOptimizerSpec;
  readonly inputSize: number;
  readonly outputSize: number;
  readonly seed: number;
  /** mse: identity outputs, 1/2 squared error; xent: softmax, cross-entropy; bce: a sigmoid per output, binary cross-entropy (multi-label, bits). */
  readonly loss: 'mse' | 'xent' | 'bce';
  /** K: a label may arrive up to K - 1 ticks after its prediction; older ones are dropped and counted. */
  readonly maxLabelDelay?: number;
  /** The readout fitted by recursive least squares instead of the optimizer (default: gradient steps). */
  readonly readout?: RlsReadoutSpec;
}

/** A recurrent learner (cell, credit rule, optimizer) or a classical decoder (rls, ridge, kalman). */
export type LearnerSpec = RecurrentLearnerSpec | DecoderSpec;

export function isDecoderSpec(spec: LearnerSpec): spec is DecoderSpec {
  return spec != null && typeof spec === 'object' && 'decoder' in spec;
}

export type LearnOutcome = 'applied' | 'dropped-late' | 'skipped-non-finite';

export interface LearnerStats {
  /** Updates skipped because the error or the gradient was not finite. */
  readonly skippedNonFinite: number;
  /** Labels that came more than maxLabelDelay ticks late. */
  readonly droppedLate: number;
  /** Labels credited with credit state already past their tick (out of order, traced rules). */
  readonly staleCredit: number;
}

export interface Learner {
  readonly spec: LearnerSpec;
  readonly backend: KernelBackend;
  /** Advances the recurrent state one tick and returns yhat_t (a view the next predict overwrites). */
  predict(x: ArrayLike<number>): Float32Array;
  /** Learns from the label of tick `tick` (default: the last predicted one). */
  learn(y: ArrayLike<number>, tick?: number): LearnOutcome;
  /** Versioned binary state: spec, parameters, optimizer state, recurrent state, credit state, ring, counters. */
  snapshot(): Uint8Array;
  /** Restores a snapshot of a learner with the same spec; restore(snapshot()) is exact. */
  restore(bytes: Uint8Array): void;
  /** A copy with the same state that only predicts (the frozen shadow for recovery measurements). */
  fork(options?: { frozen?: boolean }): Learner;
  /** Persistent state in bytes (what a snapshot carries beyond its header); constant for the lifetime. */
  readonly stateBytes: number;
  /** Scratch bytes the learner also holds (rewritten every tick, not snapshotted). */
  readonly scratchBytes: number;
  /** Updates applied so far: the model version a prediction carries. */
  readonly version: number;
  /** Index of the last predicted tick (-1 before the first). */
  readonly tick: number;
  readonly frozen: boolean;
  readonly stats: LearnerStats;
  /** Parameter count, cell and readout. */
  readonly paramCount: number;
  /** A copy of every parameter, cell blocks then readout blocks, in block order (exact for either arena). */
  readParameters(): Float64Array;
  /** A new recording session of the same source began (decoders may recalibrate; see src/learners/decoders). */
  sessionStarted?(): void;
  /**
   * An independent sequence begins (the copy task's next sequence): the recurrent state and the credit state
   * (traces) return to zero; parameters and optimizer state stay. Labels of earlier ticks still in the label
   * window are then credited with same-tick derivatives only (by the traced rules, counted as staleCredit).
   * Recurrent learners have it; the classical decoders, which keep no recurrent state, do not.
   */
  resetSequence?(): void;
}

export interface LearnerOptions {
  /** Kernel backend; default 'wasm' where the compiled kernels load, else 'js'. */
  readonly backend?: KernelBackend;
  /**
   * Supplies the kernels over an arena of the given size instead of `backend`; gradient tests pass the JS twin
   * over a Float64Array to read gradients in double precision.
   */
  readonly kernels?: (floatCount: number) => Kernels;
}

/** The label window (tick caches in the ring) when a spec sets no maxLabelDelay. */
export const DEFAULT_MAX_LABEL_DELAY = 32;

// Fixed slots of the Float64 counter block; ring ticks and learned flags follow.
const M_VERSION = 0;
const M_TICKS = 1;
const M_FRONTIER = 2;
const M_SKIPPED = 3;
const M_DROPPED = 4;
const M_STALE = 5;
const M_GROUP_COUNTS = 6; // three groups
const M_RING = 9;

export function createLearner(spec: LearnerSpec, options: LearnerOptions = {}): Learner {
  if (isDecoderSpec(spec)) return createDecoder(spec);
  const backend = options.backend ?? (options.kernels ? 'js' : defaultBackend());
  return new RecurrentLearner(validateSpec(spec), options.kernels ?? ((floats) => createKernels(floats, backend)));
}

let warnedNoWasm = false;
function defaultBackend(): KernelBackend {
  if (wasmKernelsAvailable()) return 'wasm';
  if (!warnedNoWasm) {
    warnedNoWasm = true;
    process.emitWarning('driftline: WASM SIMD kernels unavailable (run `npm run build`); using the plain-JS kernels');
  }
  return 'js';
}

/** Rounds arena regions up to 16 floats so SIMD loads stay aligned. */
function align(n: number): number {
  return (n + 15) & ~15;
}

class RecurrentLearner implements Learner {
  readonly backend: KernelBackend;
  readonly stateBytes: number;
  readonly scratchBytes: number;
  readonly paramCount: number;
  private readonly k: Kernels;
  private readonly cell: ForwardCell;
  private readonly rule: CreditRule;
  private readonly params: ParameterSet;
  private readonly readoutBlocks: BoundBlock[];
  private readonly meta: Float64Array;
  /** Ticks a label may be late (maxLabelDelay): older labels are dropped. */
  private readonly labelWindow: number;
  /** Tick caches in the ring: the label window, plus the history a windowed rule reads behind a label. */
  private readonly R: number;
  private readonly m: number;
  private readonly n: number;
  private readonly out: number;
  private readonly bypass: boolean;
  private readonly xent: boolean;
  private readonly bce: boolean;
  private readonly creditState: number;
  /** Meta slot of the first tick of the current sequence (windowed rules only), else -1. */
  private readonly sequenceStartSlot: number;
  // Arena offsets.
  private readonly cellParams: number;
  private readonly readoutParams: number;
  private readonly state: number;
  private readonly ring: number;
  private readonly slotSize: number;
  private readonly yhatInSlot: number;
  private readonly persistentFloats: number;
  private readonly err: number;
  /** The label being learned, where a rule that keeps labels (fixed-point propagation's buffer) reads it. */
  private readonly label: number;
  private readonly gOut: number;
  private readonly yView: Float32Array;
  private readonly yOut: number;
  private readonly V: number;
  private readonly c: number;
  private readonly D: number;
  private isFrozen = false;
  /** The readout fitted by recursive least squares (spec.readout), or null for gradient steps. */
  private readonly rls: RlsReadout | null;

  constructor(readonly spec: RecurrentLearnerSpec, private readonly makeKernels: (floatCount: number) => Kernels) {
    const m = spec.inputSize;
    const out = spec.outputSize;
    const { kind, hiddenSize, leak, units, layers, rMin, rMax, maxPhase } = spec.cell;
    const cell = createCell(kind, { inputSize: m, hiddenSize, leak, units, layers, rMin, rMax, maxPhase });
    const n = cell.hiddenSize;
    const S = cell.stateSize;
    this.cell = cell;
    this.m = m;
    this.n = n;
    this.out = out;
    this.labelWindow = spec.maxLabelDelay ?? DEFAULT_MAX_LABEL_DELAY;
    this.bypass = spec.cell.outputBypass ?? hasDefaultOutputBypass(spec.cell.kind);
    this.xent = spec.loss === 'xent';
    this.bce = spec.loss === 'bce';
    this.rule = createCreditRule(spec.credit, cell, out);
    if (this.rule.stepsReadout === true && spec.readout !== undefined) {
      throw new InvalidSpecError('readout', `rule '${this.rule.name}' steps the readout on its own samples; it takes no recursive-least-squares readout`);
    }
    this.R = this.labelWindow + (this.rule.history ?? 0);

    const readout = new BlockTable();
    readout.add('V', 'readout', { rows: out, cols: n }, fanInUniform(n), 0, cell.outputOffset);
    readout.add('c', 'readout', { rows: out, cols: 1, diag: true }, zeros, 0, -1);
    if (this.bypass) readout.add('D', 'readout', { rows: out, cols: m }, zeros, 0, 0);

    const optimizers = compileGroups(spec.optimizer);
    const slotsPerParam = (g: ParamGroup) => optimizers[g].slots;
    const cellSlotFloats = cell.blocks.reduce((s, b) => s + b.rows * b.cols * slotsPerParam(b.group), 0);
    const readoutSlotFloats = readout.blocks.reduce((s, b) => s + b.rows * b.cols * slotsPerParam(b.group), 0);

    // Persistent regions first (they are what a snapshot copies), scratch after.
    let at = 0;
    const take = (floats: number) => {
      const start = at;
      at += align(floats);
      return start;
    };
    this.cellParams = take(cell.paramCount);
    this.readoutParams = take(readout.paramCount);
    const slotBase = take(cellSlotFloats + readoutSlotFloats);
    this.state = take(S);
    this.slotSize = align(cell.cacheSize + out);
    this.yhatInSlot = cell.cacheSize;
    this.ring = take(this.slotSize * this.R);
    const creditState = take(this.rule.stateSize);
    this.creditState = creditState;
    this.persistentFloats = at;
    const delta = take(cell.deltaSize);
    this.gOut = take(n);
    const gState = take(S);
    const gStatePrev = take(S);
    const ones = take(n);
    const zerosAt = take(n);
    this.err = take(out);
    this.label = take(out);
    const yOut = take(out);
    const creditScratch = take(this.rule.scratchSize);
    const totalFloats = at;

    this.k = makeKernels(totalFloats);
    this.backend = this.k.backend;
    const rlsLayout = spec.readout === undefined ? undefined : {
      outputs: out, features: n, featureOffset: cell.outputOffset, V: -1, c: -1, D: this.bypass ? 0 : -1, inputs: m,
    };
    const rlsFloats = rlsLayout === undefined ? 0 : RlsReadout.stateFloats(rlsLayout);
    // A windowed rule's sequence start goes last, so every other learner's snapshot layout is unchanged.
    this.sequenceStartSlot = this.rule.windowed ? M_RING + 2 * this.R + rlsFloats : -1;
    this.meta = new Float64Array(M_RING + 2 * this.R + rlsFloats + (this.rule.windowed ? 1 : 0));
    this.params = new ParameterSet(
      this.k,
      [
        ...cell.blocks.map((block) => ({ block, base: this.cellParams })),
        ...readout.blocks.map((block) => ({ block, base: this.readoutParams })),
      ],
      optimizers,
      slotBase,
      this.meta.subarray(M_GROUP_COUNTS, M_GROUP_COUNTS + 3),
    );
    const cellBlocks = this.params.bound.slice(0, cell.blocks.length);
    this.readoutBlocks = this.params.bound.slice(cell.blocks.length);
    this.V = this.readoutBlocks[0].p;
    this.c = this.readoutBlocks[1].p;
    this.D = this.bypass ? this.readoutBlocks[2].p : -1;
    this.paramCount = cell.paramCount + readout.paramCount;
    this.rls = rlsLayout === undefined || spec.readout === undefined
      ? null
      : new RlsReadout(spec.readout, { ...rlsLayout, V: this.V, c: this.c, D: this.D }, this.meta.subarray(M_RING + 2 * this.R, M_RING + 2 * this.R + rlsFloats));

    this.rule.attach(
      {
        // createCreditRule refused every rule that calls one-step derivatives for a cell without them.
        k: this.k, cell: cell as Cell, params: this.params, cellBlocks, cellParams: this.cellParams,
        delta, gOut: this.gOut, gState, gStatePrev, ones, zeros: zerosAt,
        cacheOfTick: (tick) => this.cacheOfTick(tick),
        tickOfCache: (cache) => this.meta[M_RING + Math.round((cache - this.ring) / this.slotSize)],
        state: this.state, label: this.label, seed: spec.seed,
        lastTick: () => this.meta[M_TICKS] - 1,
        sequenceStart: () => (this.sequenceStartSlot >= 0 ? this.meta[this.sequenceStartSlot] : 0),
        readout: {
          predict: (cache, yhat) => this.readout(cache, yhat),
          backward: (err, gOut) => this.k.matTVec(gOut, this.V, err, out, n, 0),
          step: (err, cache) => this.stepReadout(err, cache),
        },
      },
      creditState,
      creditScratch,
    );
    this.k.fill(ones, 1, n);
    this.yOut = yOut;
    this.yView = this.k.heap.subarray(yOut, yOut + out);

    // Float32 on both backends; a Float64 arena (double-precision gradient tests) takes twice as much.
    const floatBytes = this.k.heap.BYTES_PER_ELEMENT;
    this.stateBytes = this.persistentFloats * floatBytes + this.meta.byteLength;
    this.scratchBytes = (totalFloats - this.persistentFloats) * floatBytes;
    this.initialize();
  }

  get version(): number {
    return this.meta[M_VERSION];
  }

  get tick(): number {
    return this.meta[M_TICKS] - 1;
  }

  get frozen(): boolean {
    return this.isFrozen;
  }

  get stats(): LearnerStats {
    return {
      skippedNonFinite: this.meta[M_SKIPPED],
      droppedLate: this.meta[M_DROPPED],
      staleCredit: this.meta[M_STALE],
    };
  }

  predict(x: ArrayLike<number>): Float32Array {
    const m = this.m;
    if (x == null || typeof x !== 'object' || x.length !== m) {
      throw new InvalidInputError('dimension', `input has ${x?.length ?? 'no'} values, expected ${m}`);
    }
    for (let i = 0; i < m; i++) {
      const v = x[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new InvalidInputError('non-finite', `input[${i}] is ${v}, not a finite number`);
      }
    }
    const meta = this.meta;
    const k = this.k;
    const h = k.heap;
    const tick = meta[M_TICKS];
    const slotIndex = tick % this.R;
    const evicted = meta[M_RING + slotIndex];
    if (this.rule.tracksTicks && !this.isFrozen && evicted >= 0) this.advanceFrontierTo(evicted);

    const cache = this.ring + slotIndex * this.slotSize;
    for (let i = 0; i < m; i++) h[cache + i] = x[i];
    k.copy(cache + m, this.state, this.cell.stateSize);
    this.cell.forward(k, this.cellParams, cache, this.state);
    this.readout(cache, this.yOut);
    k.copy(cache + this.yhatInSlot, this.yOut, this.out);

    meta[M_RING + slotIndex] = tick;
    meta[M_RING + this.R + slotIndex] = 0;
    meta[M_TICKS] = tick + 1;
    this.rule.observe?.(cache, tick);
    return this.yView;
  }

  learn(y: ArrayLike<number>, tick: number = this.meta[M_TICKS] - 1): LearnOutcome {
    const out = this.out;
    if (this.isFrozen) throw new InvalidLabelError('frozen', 'this learner is a frozen copy: it predicts only');
    if (y == null || typeof y !== 'object' || y.length !== out) {
      throw new InvalidLabelError('dimension', `label has ${y?.length ?? 'no'} values, expected ${out}`);
    }
    for (let i = 0; i < out; i++) {
      const v = y[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new InvalidLabelError('non-finite', `label[${i}] is ${v}, not a finite number`);
      }
    }
    const meta = this.meta;
    const ticks = meta[M_TICKS];
    if (!Number.isInteger(tick) || tick < 0 || tick >= ticks) {
      throw new InvalidLabelError('future-tick', `label for tick ${tick}, but the last predicted tick is ${ticks - 1}`);
    }
    if (tick < ticks - this.labelWindow) {
      meta[M_DROPPED]++;
      return 'dropped-late';
    }
    const slotIndex = tick % this.R;
    if (meta[M_RING + this.R + slotIndex] === 1) {
      throw new InvalidLabelError('duplicate', `tick ${tick} has already been learned`);
    }

    const k = this.k;
    const h = k.heap;
    const cache = this.ring + slotIndex * this.slotSize;
    const yhat = cache + this.yhatInSlot;
    const err = this.err;
    // Softmax with cross-entropy, sigmoids with binary cross-entropy and identity with 1/2 squared error share
    // dL/dz = yhat - y.
    for (let i = 0; i < out; i++) h[err + i] = h[yhat + i] - y[i];
    meta[M_RING + this.R + slotIndex] = 1;
    if (!k.allFinite(err, out)) {
      meta[M_SKIPPED]++;
      return 'skipped-non-finite';
    }
    k.matTVec(this.gOut, this.V, err, out, this.n, 0);
    for (let i = 0; i < out; i++) h[this.label + i] = y[i];

    this.params.beginUpdate();
    let fresh = true;
    if (this.rule.tracksTicks) {
      if (meta[M_FRONTIER] < tick - 1) this.advanceFrontierTo(tick - 1);
      fresh = meta[M_FRONTIER] === tick - 1;
      if (!fresh) meta[M_STALE]++;
    }
    if (!this.rule.update(cache, fresh)) {
      meta[M_SKIPPED]++;
      return 'skipped-non-finite';
    }
    if (fresh && this.rule.tracksTicks) meta[M_FRONTIER] = tick;

    if (this.rls !== null) {
      if (!this.rls.update(h, cache, y)) {
        meta[M_SKIPPED]++;
        return 'skipped-non-finite';
      }
      meta[M_VERSION]++;
      return 'applied';
    }
    if (this.rule.stepsReadout !== true) this.stepReadout(err, cache);
    meta[M_VERSION]++;
    return 'applied';
  }

  /** One optimizer step of the readout with dL/dz = err at the features and inputs cached at `cache`. */
  private stepReadout(err: number, cache: number): void {
    const p = this.params;
    const rb = this.readoutBlocks;
    if (p.groupClips(2)) {
      let normSq = 0;
      for (let i = 0; i < rb.length; i++) normSq += p.factoredNormSq(rb[i], err, this.readoutColumn(rb[i], cache));
      p.clipGroup(2, normSq);
    }
    for (let i = 0; i < rb.length; i++) p.stepFactored(rb[i], err, this.readoutColumn(rb[i], cache));
  }

  snapshot(): Uint8Array {
    const specJson = new TextEncoder().encode(canonicalJson(this.spec));
    const metaBytes = this.meta.byteLength;
    const arenaBytes = this.persistentFloats * this.k.heap.BYTES_PER_ELEMENT;
    const { bytes, headerBytes } = writeSnapshotHeader(specJson, this.persistentFloats, metaBytes + arenaBytes);
    bytes.set(new Uint8Array(this.meta.buffer, this.meta.byteOffset, metaBytes), headerBytes);
    bytes.set(new Uint8Array(this.k.heap.buffer, this.k.heap.byteOffset, arenaBytes), headerBytes + metaBytes);
    return bytes;
  }

  restore(bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array) || bytes.length < 16) throw new SnapshotError('not a driftline learner snapshot');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0, true) !== SNAPSHOT_MAGIC) throw new SnapshotError('not a driftline learner snapshot (bad magic)');
    const format = view.getUint32(4, true);
    if (format !== SNAPSHOT_FORMAT) throw new SnapshotError(`snapshot format ${format} is not supported (expected ${SNAPSHOT_FORMAT})`);
    const specLength = view.getUint32(8, true);
    const floats = view.getUint32(12, true);
    const headerBytes = snapshotHeaderBytes(specLength);
    const metaBytes = this.meta.byteLength;
    const floatBytes = this.k.heap.BYTES_PER_ELEMENT;
    if (bytes.length !== headerBytes + metaBytes + floats * floatBytes || floats !== this.persistentFloats) {
      throw new SnapshotError('snapshot size does not match this learner');
    }
    const spec = new TextDecoder().decode(bytes.subarray(16, 16 + specLength));
    if (spec !== canonicalJson(this.spec)) throw new SnapshotError('snapshot was taken from a learner with another spec');
    new Uint8Array(this.meta.buffer, this.meta.byteOffset, metaBytes).set(bytes.subarray(headerBytes, headerBytes + metaBytes));
    new Uint8Array(this.k.heap.buffer, this.k.heap.byteOffset, floats * floatBytes).set(
      bytes.subarray(headerBytes + metaBytes, headerBytes + metaBytes + floats * floatBytes),
    );
  }

  fork(options: { frozen?: boolean } = {}): Learner {
    const copy = new RecurrentLearner(this.spec, this.makeKernels);
    copy.restore(this.snapshot());
    copy.isFrozen = options.frozen ?? true;
    return copy;
  }

  resetSequence(): void {
    this.k.fill(this.state, 0, this.cell.stateSize);
    if (this.rule.resetSequence !== undefined) this.rule.resetSequence();
    else this.k.fill(this.creditState, 0, this.rule.stateSize);
    // The traces now describe no tick before this one: never advance them over the old ticks in the ring.
    if (this.rule.tracksTicks) this.meta[M_FRONTIER] = this.meta[M_TICKS] - 1;
    if (this.sequenceStartSlot >= 0) this.meta[this.sequenceStartSlot] = this.meta[M_TICKS];
  }

  private cacheOfTick(tick: number): number {
    const meta = this.meta;
    if (tick < 0 || tick < meta[M_TICKS] - this.R) return -1;
    if (this.sequenceStartSlot >= 0 && tick < meta[this.sequenceStartSlot]) return -1;
    const slotIndex = tick % this.R;
    return meta[M_RING + slotIndex] === tick ? this.ring + slotIndex * this.slotSize : -1;
  }

  readParameters(): Float64Array {
    const copy = new Float64Array(this.paramCount);
    let at = 0;
    for (const b of this.params.bound) {
      copy.set(this.k.heap.subarray(b.p, b.p + b.size), at);
      at += b.size;
    }
    return copy;
  }

  private initialize(): void {
    const rng = new Random(this.spec.seed);
    const h = this.k.heap;
    const drawsItself = this.cell.initialize !== undefined;
    this.cell.initialize?.(h, this.cellParams, rng);
    for (let i = drawsItself ? this.cell.blocks.length : 0; i < this.params.bound.length; i++) {
      const b = this.params.bound[i];
      initBlock(h, b.p, b.block, rng);
    }
    const meta = this.meta;
    meta[M_FRONTIER] = -1;
    for (let i = 0; i < this.R; i++) meta[M_RING + i] = -1;
    this.rls?.reset();
  }

  /** The prediction (after the loss's output function) from the features and inputs cached at `cache`, into `y`. */
  private readout(cache: number, y: number): void {
    const k = this.k;
    const h = k.heap;
    const out = this.out;
    k.matVec(y, this.V, cache + this.cell.outputOffset, out, this.n, 0);
    if (this.bypass) k.matVec(y, this.D, cache, out, this.m, 1);
    for (let i = 0; i < out; i++) h[y + i] += h[this.c + i];
    if (this.bce) {
      for (let i = 0; i < out; i++) h[y + i] = 1 / (1 + Math.exp(-h[y + i]));
    } else if (this.xent) {
      let max = -Infinity;
      for (let i = 0; i < out; i++) if (h[y + i] > max) max = h[y + i];
      let sum = 0;
      for (let i = 0; i < out; i++) {
        const e = Math.exp(h[y + i] - max);
        h[y + i] = e;
        sum += e;
      }
      for (let i = 0; i < out; i++) h[y + i] /= sum;
    }
  }

  private readoutColumn(b: BoundBlock, cache: number): number {
    return b.block.columnOffset < 0 ? -1 : cache + b.block.columnOffset;
  }

  /** Advances the credit state, in tick order, over every cached tick up to `tick`. */
  private advanceFrontierTo(tick: number): void {
    const meta = this.meta;
    for (let t = meta[M_FRONTIER] + 1; t <= tick; t++) {
      const slotIndex = t % this.R;
      if (meta[M_RING + slotIndex] === t) this.rule.advance(this.ring + slotIndex * this.slotSize);
      meta[M_FRONTIER] = t;
    }
  }
}

function compileGroups(spec: OptimizerSpec | GroupedOptimizerSpec): Record<ParamGroup, CompiledOptimizer> {
  if (spec == null || typeof spec !== 'object') throw new InvalidSpecError('optimizer', 'is required');
  if (!isGrouped(spec)) {
    const all = compileOptimizer(spec);
    return { recurrent: all, input: all, readout: all };
  }
  const base = compileOptimizer(spec.default, 'optimizer.default');
  return {
    recurrent: spec.recurrent ? compileOptimizer(spec.recurrent, 'optimizer.recurrent') : base,
    input: spec.input ? compileOptimizer(spec.input, 'optimizer.input') : base,
    readout: spec.readout ? compileOptimizer(spec.readout, 'optimizer.readout') : base,
  };
}


function validateSpec(spec: RecurrentLearnerSpec): RecurrentLearnerSpec {
  if (spec == null || typeof spec !== 'object') throw new InvalidSpecError('spec', 'must be an object');
  const positiveInt = (v: unknown, field: string, max = 1 << 20) => {
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) {
      throw new InvalidSpecError(field, `must be an integer in [1, ${max}], got ${String(v)}`);
    }
  };
  positiveInt(spec.inputSize, 'inputSize');
  positiveInt(spec.outputSize, 'outputSize');
  if (spec.cell == null || typeof spec.cell !== 'object') throw new InvalidSpecError('cell', 'must be an object');
  positiveInt(spec.cell.hiddenSize, 'cell.hiddenSize');
  validateLruShape(spec.cell, positiveInt);
  if (spec.maxLabelDelay !== undefined) positiveInt(spec.maxLabelDelay, 'maxLabelDelay', 1 << 16);
  if (!Number.isInteger(spec.seed)) throw new InvalidSpecError('seed', `must be an integer, got ${String(spec.seed)}`);
  if (spec.loss !== 'mse' && spec.loss !== 'xent' && spec.loss !== 'bce') {
    throw new InvalidSpecError('loss', `must be 'mse', 'xent' or 'bce', got ${String(spec.loss)}`);
  }
  if (spec.loss === 'xent' && spec.outputSize < 2) throw new InvalidSpecError('outputSize', 'xent needs at least 2 classes');
  if (spec.readout !== undefined) validateRlsReadout(spec.readout, spec.loss);
  return JSON.parse(JSON.stringify(spec)) as RecurrentLearnerSpec;
}

/** The LRU's own fields: valid on `lru` only (elsewhere a typo would pass unnoticed), in range there. */
function validateLruShape(cell: CellSpec, positiveInt: (v: unknown, field: string, max?: number) => void): void {
  const fields = ['units', 'layers', 'rMin', 'rMax', 'maxPhase'] as const;
  if (cell.kind !== 'lru') {
    for (const field of fields) {
      if (cell[field] !== undefined) throw new InvalidSpecError(`cell.${field}`, `applies to cell 'lru' only, not '${cell.kind}'`);
    }
    return;
  }
  if (cell.units !== undefined) positiveInt(cell.units, 'cell.units', 1 << 12);
  if (cell.layers !== undefined) positiveInt(cell.layers, 'cell.layers', 64);
  const rMin = cell.rMin ?? LRU_DEFAULTS.rMin;
  const rMax = cell.rMax ?? LRU_DEFAULTS.rMax;
  if (typeof rMin !== 'number' || typeof rMax !== 'number' || !(rMin >= 0 && rMin < rMax && rMax <= 1)) {
    throw new InvalidSpecError('cell.rMin', `needs 0 <= rMin < rMax <= 1, got rMin ${String(rMin)}, rMax ${String(rMax)}`);
  }
  const maxPhase = cell.maxPhase ?? LRU_DEFAULTS.maxPhase;
  if (typeof maxPhase !== 'number' || !(maxPhase > 0 && maxPhase <= 2 * Math.PI)) {
    throw new InvalidSpecError('cell.maxPhase', `must be in (0, 2 pi], got ${String(maxPhase)}`);
  }
}
