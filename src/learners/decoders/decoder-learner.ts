import { InvalidInputError, InvalidLabelError, SnapshotError } from '../errors.js';
import type { KernelBackend } from '../kernels/kernels.js';
import { DEFAULT_MAX_LABEL_DELAY, type Learner, type LearnerStats, type LearnOutcome } from '../learner.js';
import { canonicalJson, readSnapshotHeader, writeSnapshotHeader } from '../snapshot-header.js';
import type { DecoderSpec } from './decoder-spec.js';
import { LaggedInputRing } from './lagged-features.js';

/** What model.learn reports: the label was absorbed (and whether a refit it triggered failed), or skipped. */
export type ModelLearn = 'applied' | 'applied-refit-failed' | 'skipped';

/**
 * The numeric part of a decoder (rls, ridge, kalman). DecoderLearner owns the protocol around it: input and label
 * checks, the label window, counters, snapshots, forks. A model keeps everything that must survive a snapshot in
 * the region of the learner's Float64 state it is given, and allocates its scratch once.
 */
export interface DecoderModel {
  /** Input vectors a feature vector holds (1 for a model that reads only the current input). */
  readonly lags: number;
  readonly persistentFloats: number;
  readonly scratchBytes: number;
  readonly paramCount: number;
  /** Takes `state[offset, offset + persistentFloats)` as its persistent region and writes its initial values. */
  attach(state: Float64Array, offset: number): void;
  /** Writes the prediction from the features of the current tick; may advance predict-side state (kalman). */
  predict(phi: Float64Array, yhat: Float32Array): void;
  /** Learns the finite label `y` of the tick whose features are `phi`. */
  learn(phi: Float64Array, y: ArrayLike<number>, tick: number): ModelLearn;
  /** Fits from the statistics now; false when the fit was not finite (the previous model is kept). */
  refit(): boolean;
  /** A new session began; `frozen` forks must leave learning state alone. */
  sessionStarted(frozen: boolean): void;
  readParameters(into: Float64Array): void;
}

/**
 * A decoder as the stream operators see it, plus the two calls that only decoders answer. Where the Learner
 * protocol reads differently for a decoder:
 *
 * - `version` counts the labels absorbed, as for the recurrent learner, also between the refits of ridge and
 *   kalman, whose weights change only at a refit.
 * - `stats.skippedNonFinite` also counts refits whose solution was not finite (the previous model is kept);
 *   `stats.staleCredit` is always 0: no decoder carries credit state across ticks.
 * - `readParameters()`: rls and ridge, the weights, one row per output over the features
 *   [x_t, x_{t-1}, ..., x_{t-lags+1}, 1]; kalman, the output rows of A (outputs x (outputs + 1)), then H
 *   (inputs x (outputs + 1)), then W (outputs x outputs), all row-major. RLS's P and the statistics are state,
 *   not parameters, as optimizer slots are for the recurrent learner.
 * - `backend` is 'js': the decoders run in plain TypeScript, in Float64.
 */
export interface Decoder extends Learner {
  readonly spec: DecoderSpec;
  /** A new recording session began: ridge with resetOnSession recalibrates, kalman resets its posterior, rls does nothing. */
  sessionStarted(): void;
  /** Fits from the accumulated statistics now instead of at the next scheduled refit (no-op for rls). */
  refit(): void;
  fork(options?: { frozen?: boolean }): Decoder;
}

// Counter slots at the start of the Float64 state; the learned flags of the label window, the input ring and
// the model's region follow.
const C_VERSION = 0;
const C_TICKS = 1;
const C_SKIPPED = 2;
const C_DROPPED = 3;
const C_FLAGS = 4;

export class DecoderLearner implements Decoder {
  readonly backend: KernelBackend = 'js';
  readonly stateBytes: number;
  readonly scratchBytes: number;
  readonly paramCount: number;
  private readonly model: DecoderModel;
  private readonly state: Float64Array;
  private readonly ring: LaggedInputRing;
  private readonly phi: Float64Array;
  private readonly yhat: Float32Array;
  private readonly K: number;
  private readonly m: number;
  private readonly out: number;
  private readonly specJson: string;
  private readonly specBytes: Uint8Array;
  private isFrozen = false;

  /** `spec` must have passed validateDecoderSpec; `makeModel` builds the model of this spec (also for forks). */
  constructor(readonly spec: DecoderSpec, private readonly makeModel: (spec: DecoderSpec) => DecoderModel) {
    this.m = spec.inputSize;
    this.out = spec.outputSize;
    this.K = spec.maxLabelDelay ?? DEFAULT_MAX_LABEL_DELAY;
    const model = makeModel(spec);
    this.model = model;
    const ringBase = C_FLAGS + this.K;
    const modelBase = ringBase + LaggedInputRing.floats(this.m, model.lags, this.K);
    this.state = new Float64Array(modelBase + model.persistentFloats);
    this.ring = new LaggedInputRing(this.state, ringBase, this.m, model.lags, this.K);
    model.attach(this.state, modelBase);
    this.phi = new Float64Array(this.ring.featureCount);
    this.yhat = new Float32Array(this.out);
    this.paramCount = model.paramCount;
    this.stateBytes = this.state.byteLength;
    this.scratchBytes = model.scratchBytes + this.phi.byteLength + this.yhat.byteLength;
    this.specJson = canonicalJson(spec);
    this.specBytes = new TextEncoder().encode(this.specJson);
  }

  get version(): number {
    return this.state[C_VERSION];
  }

  get tick(): number {
    return this.state[C_TICKS] - 1;
  }

  get frozen(): boolean {
    return this.isFrozen;
  }

  get stats(): LearnerStats {
    return { skippedNonFinite: this.state[C_SKIPPED], droppedLate: this.state[C_DROPPED], staleCredit: 0 };
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
    const s = this.state;
    const tick = s[C_TICKS];
    this.ring.write(tick, x);
    this.ring.features(tick, this.phi);
    this.model.predict(this.phi, this.yhat);
    s[C_FLAGS + (tick % this.K)] = 0;
    s[C_TICKS] = tick + 1;
    return this.yhat;
  }

  learn(y: ArrayLike<number>, tick: number = this.state[C_TICKS] - 1): LearnOutcome {
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
    const s = this.state;
    const ticks = s[C_TICKS];
    if (!Number.isInteger(tick) || tick < 0 || tick >= ticks) {
      throw new InvalidLabelError('future-tick', `label for tick ${tick}, but the last predicted tick is ${ticks - 1}`);
    }
    if (tick < ticks - this.K) {
      s[C_DROPPED]++;
      return 'dropped-late';
    }
    const flag = C_FLAGS + (tick % this.K);
    if (s[flag] === 1) throw new InvalidLabelError('duplicate', `tick ${tick} has already been learned`);
    s[flag] = 1;
    this.ring.features(tick, this.phi);
    const result = this.model.learn(this.phi, y, tick);
    if (result === 'skipped') {
      s[C_SKIPPED]++;
      return 'skipped-non-finite';
    }
    // The label is in the statistics either way; a refit that failed kept the previous weights.
    if (result === 'applied-refit-failed') s[C_SKIPPED]++;
    s[C_VERSION]++;
    return 'applied';
  }

  sessionStarted(): void {
    this.model.sessionStarted(this.isFrozen);
  }

  refit(): void {
    if (this.isFrozen) throw new InvalidLabelError('frozen', 'this learner is a frozen copy: it does not refit');
    if (!this.model.refit()) this.state[C_SKIPPED]++;
  }

  snapshot(): Uint8Array {
    const s = this.state;
    const { bytes, headerBytes } = writeSnapshotHeader(this.specBytes, s.length, s.byteLength);
    bytes.set(new Uint8Array(s.buffer, s.byteOffset, s.byteLength), headerBytes);
    return bytes;
  }

  restore(bytes: Uint8Array): void {
    const header = readSnapshotHeader(bytes);
    if (header.specJson !== this.specJson) throw new SnapshotError('snapshot was taken from a learner with another spec');
    const s = this.state;
    if (header.persistentFloats !== s.length || bytes.length !== header.headerBytes + s.byteLength) {
      throw new SnapshotError('snapshot size does not match this learner');
    }
    new Uint8Array(s.buffer, s.byteOffset, s.byteLength).set(bytes.subarray(header.headerBytes));
  }

  fork(options: { frozen?: boolean } = {}): Decoder {
    const copy = new DecoderLearner(this.spec, this.makeModel);
    copy.restore(this.snapshot());
    copy.isFrozen = options.frozen ?? true;
    return copy;
  }

  readParameters(): Float64Array {
    const into = new Float64Array(this.paramCount);
    this.model.readParameters(into);
    return into;
  }
}
