import type { Cell } from '../cells/cell.js';
import type { CreditContext, CreditRule } from './credit-rule.js';
import { accumulateFactors, stepDenseGradient } from './dense-gradient.js';

/**
 * How the length and number of updates change over a run (Nath & White 2019, section 4.5). Both schedules move in
 * five stages, one per fifth of `horizonTicks`, and stay in the last one after it:
 *  - decay: stage s uses windows of ceil(T / 2^s) ticks and round(M T / that) updates, so the compute per tick
 *    stays about M T while the updates shorten toward T one-step updates ("decay T by 2 and increase the number
 *    of updates by 2 after each 20 % of training");
 *  - random: each of the M updates is one T-step update with probability 1 - 0.2 s, else T one-step updates
 *    ("decay the probability of choosing T-step updates by 20 %", read as 20 points per stage).
 */
export type FppSchedule =
  | { readonly kind: 'fixed' }
  | { readonly kind: 'decay'; readonly horizonTicks: number }
  | { readonly kind: 'random'; readonly horizonTicks: number };

export interface FppOptions {
  /** T: ticks each update recomputes from its stored start state. */
  readonly window: number;
  /** N: transitions kept (the newest N ticks). */
  readonly buffer: number;
  /** M: sampled updates per label. */
  readonly updates: number;
  /** lambda: weight of the fixed-point penalty lambda/2 ||s_i - s_hat_i||^2. */
  readonly lambda: number;
  /** Step size of the plain gradient steps on the stored states. */
  readonly stateRate: number;
  /** false: "FPP without state updating", the buffer's states stay as computed and the penalty is dropped. */
  readonly updateStates: boolean;
  readonly schedule: FppSchedule;
}

/**
 * Fixed Point Propagation (Nath & White 2019, section 3.2): the recurrent states are auxiliary variables kept in
 * a buffer of the newest N ticks (s_j after tick j, x_j, and y_j once its label came). At each label, M
 * transitions are sampled; for a sample i the rule recomputes s_hat_i = f applied T times from the stored
 * s_{i-T} over x_{i-T+1..i}, and takes one gradient step on
 *   L_i = l(yhat(s_hat_i), y_i) + lambda/2 ||s_i - s_hat_i||^2                            (3.6)
 * for the cell's parameters and the readout (the optimizer), and for s_{i-T} and s_i (plain steps of stateRate):
 *   dL/ds_{i-T} = [dl/ds_hat_i - lambda (s_i - s_hat_i)]^T ds_hat_i/ds_{i-T},  dL/ds_i = lambda (s_i - s_hat_i),
 *   dL/dW = [dl/ds_hat_i - lambda (s_i - s_hat_i)]^T ds_hat_i/dW,            dL/dbeta = dl/dbeta at s_hat_i (3.7).
 * A sampled tick whose label has not come yet (late labels) keeps the penalty term only.
 *
 * The live state the next predict starts from is the buffer's newest state, so an update of it carries into the
 * stream. Samples never start before the current sequence (Learner.resetSequence). Memory is constant: the buffer
 * (N (stateSize + inputs + outputs + 1) floats) and T tick caches of scratch. Sampling is a hash of the learner's
 * seed, the tick and the update's index, so the same seed gives the same bytes and a snapshot needs no generator.
 *
 * The readout learns only through the samples, as in the thesis (stepsReadout): at a label, nothing else steps.
 * A sample whose gradient is not finite steps nothing; the label's other samples still step, and the label counts
 * as skipped (the learner's stats.skippedNonFinite).
 */
export class FixedPointPropagationRule implements CreditRule {
  readonly name = 'fpp' as const;
  readonly stateSize: number;
  readonly scratchSize: number;
  readonly tracksTicks = false;
  readonly windowed = true;
  readonly stepsReadout = true;
  private c!: CreditContext;
  private buffer = 0;
  private caches = 0;
  private sHat = 0;
  private diff = 0;
  private gS = 0;
  private gPrev = 0;
  private grad = 0;
  private yhat = 0;
  private err = 0;
  private gOut = 0;
  private readonly entrySize: number;
  private readonly xAt: number;
  private readonly yAt: number;
  private readonly labelledAt: number;

  constructor(private readonly cell: Cell, readonly options: FppOptions, private readonly outputs: number) {
    const S = cell.stateSize;
    this.xAt = S;
    this.yAt = S + cell.inputSize;
    this.labelledAt = this.yAt + outputs;
    this.entrySize = this.labelledAt + 1;
    this.stateSize = options.buffer * this.entrySize;
    // Every stage's window is at most T: scratch holds T tick caches.
    this.scratchSize = options.window * cell.cacheSize + 4 * S + cell.paramCount + 2 * outputs + cell.hiddenSize;
  }

  attach(context: CreditContext, state: number, scratch: number): void {
    const S = this.cell.stateSize;
    this.c = context;
    this.buffer = state;
    this.caches = scratch;
    this.sHat = this.caches + this.options.window * this.cell.cacheSize;
    this.diff = this.sHat + S;
    this.gS = this.diff + S;
    this.gPrev = this.gS + S;
    this.grad = this.gPrev + S;
    this.yhat = this.grad + this.cell.paramCount;
    this.err = this.yhat + this.outputs;
    this.gOut = this.err + this.outputs;
  }

  advance(): void {
    // The buffer is written by observe and update; nothing runs between labels.
  }

  observe(cache: number, tick: number): void {
    const { k } = this.c;
    const entry = this.entry(tick);
    k.copy(entry, this.c.state, this.cell.stateSize);
    k.copy(entry + this.xAt, cache, this.cell.inputSize);
    k.heap[entry + this.labelledAt] = 0;
  }

  update(cache: number): boolean {
    const c = this.c;
    const h = c.k.heap;
    const last = c.lastTick();
    const tick = c.tickOfCache(cache);
    if (tick > last - this.options.buffer) {
      const entry = this.entry(tick);
      c.k.copy(entry + this.yAt, c.label, this.outputs);
      h[entry + this.labelledAt] = 1;
    }
    const lo = Math.max(last - this.options.buffer + 1, c.sequenceStart());
    let allFinite = true;
    let first = true;
    const stage = fppStage(this.options.schedule, last);
    const updates = fppUpdates(this.options, stage);
    const stageWindow = fppWindow(this.options, stage);
    for (let m = 0; m < updates; m++) {
      let window = stageWindow;
      let repeats = 1;
      if (this.options.schedule.kind === 'random' && unitHash(c.seed, last, 2 * m + 1) >= 1 - 0.2 * stage) {
        repeats = window;
        window = 1;
      }
      for (let r = 0; r < repeats; r++) {
        // i - window must be a stored tick of this sequence.
        const firstTarget = lo + window;
        if (last < firstTarget) continue;
        const i = firstTarget + Math.floor(unitHash(c.seed, last, 2 * (m * this.options.window + r)) * (last - firstTarget + 1));
        if (!first) c.params.beginUpdate();
        first = false;
        if (!this.sampleUpdate(i, window)) allFinite = false;
      }
    }
    if (this.options.updateStates) c.k.copy(c.state, this.entry(last), this.cell.stateSize);
    return allFinite;
  }

  /** The buffer entry of a tick (its slot in the ring of N). */
  private entry(tick: number): number {
    return this.buffer + (tick % this.options.buffer) * this.entrySize;
  }

  /** A copy of what the buffer holds for a tick (diagnostics and tests; allocates). */
  bufferEntry(tick: number): { state: Float64Array; x: Float64Array; y: Float64Array; labelled: boolean } {
    const h = this.c.k.heap;
    const entry = this.entry(tick);
    return {
      state: Float64Array.from(h.subarray(entry, entry + this.cell.stateSize)),
      x: Float64Array.from(h.subarray(entry + this.xAt, entry + this.xAt + this.cell.inputSize)),
      y: Float64Array.from(h.subarray(entry + this.yAt, entry + this.yAt + this.outputs)),
      labelled: h[entry + this.labelledAt] === 1,
    };
  }

  /** One step on L_i with a window of T ticks; false (nothing stepped) when the gradient is not finite. */
  private sampleUpdate(i: number, T: number): boolean {
    const c = this.c;
    const { k, cell } = c;
    const h = k.heap;
    const S = cell.stateSize;
    const m = cell.inputSize;
    const P = cell.paramCount;
    const { lambda, stateRate, updateStates } = this.options;
    const start = this.entry(i - T);
    const target = this.entry(i);
    const labelled = h[target + this.labelledAt] === 1;
    if (!labelled && !updateStates) return true;

    // s_hat_i: T steps of the cell from the stored s_{i-T}, each in its own cache for the way back.
    k.copy(this.sHat, start, S);
    for (let r = 0; r < T; r++) {
      const at = this.caches + r * cell.cacheSize;
      k.copy(at, this.entry(i - T + 1 + r) + this.xAt, m);
      k.copy(at + m, this.sHat, S);
      cell.forward(k, c.cellParams, at, this.sHat);
    }
    const last = this.caches + (T - 1) * cell.cacheSize;

    // dL/ds_hat_i = dl/ds_hat_i - lambda (s_i - s_hat_i).
    for (let j = 0; j < S; j++) h[this.diff + j] = h[target + j] - h[this.sHat + j];
    k.fill(this.gS, 0, S);
    if (labelled) {
      c.readout.predict(last, this.yhat);
      for (let o = 0; o < this.outputs; o++) h[this.err + o] = h[this.yhat + o] - h[target + this.yAt + o];
      if (!k.allFinite(this.err, this.outputs)) return false;
      c.readout.backward(this.err, this.gOut);
      cell.outputBackward(k, last, this.gOut, this.gS);
    }
    if (updateStates) for (let j = 0; j < S; j++) h[this.gS + j] -= lambda * h[this.diff + j];

    // Back over the T steps: the weights' gradient, and dL/ds_{i-T} in gS at the end.
    k.fill(this.grad, 0, P);
    for (let r = T - 1; r >= 0; r--) {
      const at = this.caches + r * cell.cacheSize;
      cell.backward(k, c.cellParams, at, this.gS, c.delta, this.gPrev);
      if (!k.allFinite(c.delta, cell.deltaSize)) return false;
      accumulateFactors(c, this.grad, at);
      k.copy(this.gS, this.gPrev, S);
    }
    if (!k.allFinite(this.grad, P) || !k.allFinite(this.gS, S)) return false;

    if (labelled) c.readout.step(this.err, last);
    stepDenseGradient(c, this.grad);
    if (updateStates) {
      for (let j = 0; j < S; j++) h[start + j] -= stateRate * h[this.gS + j];
      for (let j = 0; j < S; j++) h[target + j] -= stateRate * lambda * h[this.diff + j];
    }
    return true;
  }
}

/** The schedule's stage at a tick: 0 to 4, one per fifth of the horizon (always 0 for 'fixed'). */
export function fppStage(schedule: FppSchedule, tick: number): number {
  if (schedule.kind === 'fixed') return 0;
  return Math.min(4, Math.floor((5 * tick) / schedule.horizonTicks));
}

/** The window of a stage's updates (before the random schedule's coin). */
export function fppWindow(options: Pick<FppOptions, 'window' | 'schedule'>, stage: number): number {
  return options.schedule.kind === 'decay' ? Math.max(1, Math.ceil(options.window / 2 ** stage)) : options.window;
}

/** The number of updates of a stage. */
export function fppUpdates(options: Pick<FppOptions, 'window' | 'updates' | 'schedule'>, stage: number): number {
  if (options.schedule.kind !== 'decay') return options.updates;
  return Math.max(1, Math.round((options.updates * options.window) / fppWindow(options, stage)));
}

/**
 * A uniform draw in [0, 1) from (seed, tick, index) alone (a splitmix-style mix), so sampling needs no stored
 * generator state and the same seed and stream give the same samples.
 */
export function unitHash(seed: number, tick: number, index: number): number {
  let z = mix32(seed | 0);
  z = mix32(z ^ (tick % 4294967296 | 0));
  z = mix32(z ^ (Math.floor(tick / 4294967296) | 0));
  z = mix32(z ^ (index | 0));
  return z / 4294967296;
}

function mix32(x: number): number {
  let z = (x + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}
