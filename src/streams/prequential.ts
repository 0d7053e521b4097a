import type { LearnerPool } from './learner-pool.js';
import { RefusedStreams } from './refused-streams.js';
import type { OperatorFunction } from 'rxjs';
import { Ewma } from '../evaluation/ewma.js';
import { rejection } from './messages.js';
import { operate } from './operate.js';
import type {
  ErrorFigures, Predictor, PrequentialReport, RecoveryReport, RejectionReason, ScoredTick, StreamOutput,
} from './messages.js';

/** Configuration of `prequential`, validated when the operator is created. */
export interface PrequentialOptions {
  /** Ticks in the sliding window of the windowed figures (mse, r2, accuracy, label delay): a positive integer. */
  readonly window: number;
  /** EWMA weight of the newest tick for mseEwma, in (0, 1]. */
  readonly ewmaAlpha: number;
  /** Emit a report after every k-th scored tick of a stream and track (a positive integer; default 1). */
  readonly every?: number;
  /** Also report argmax accuracy: the outputs are one score per class (default false). */
  readonly classification?: boolean;
  /** Most streams with scoring state at once (a positive integer or Infinity; default Infinity). */
  readonly maxStreams?: number;
  /** The learners' pool: a stream it evicts is forgotten here too. */
  readonly pool?: LearnerPool;
}

/** What prequential takes and gives: predictThenLearn's output plus the reports other operators add. */
export type PrequentialInput = StreamOutput | PrequentialReport | RecoveryReport;

/** The predictors every report covers, in the order their state is laid out. */
const PREDICTORS: readonly Predictor[] = ['learner', 'last-label', 'running-mean'];
const LEARNER = 0;
const LAST_LABEL = 1;
const RUNNING_MEAN = 2;

/**
 * A running sum that has fallen below this fraction of its peak since the last exact recompute has lost most of
 * its significant digits to cancellation (typical after a drift, when the error drops by orders of magnitude), so
 * it is recomputed from the ring at once instead of at the next periodic recompute.
 */
const CANCELLATION_LIMIT = 1e-3;

/** The arrays of a ScoredTick that scoring reads. */
const SCORED_ARRAYS = ['y', 'yhat', 'yLast', 'yMean'] as const;

/** Refused stream keys remembered so each is reported once; past this many the memory starts over. */
const REFUSED_KEYS_REMEMBERED = 10_000;

/**
 * Prequential (test-then-train) error per stream, always beside the two reference predictors that
 * predictThenLearn scores on the same ticks with the same label delay: the last label seen ('last-label',
 * persistence) and the running mean of the labels seen ('running-mean'). DESIGN section 5: with labels every tick
 * and an autocorrelated target, a low error alone says little; the skill scores say how much better than
 * persistence and the mean the learner is.
 *
 * Every message passes through unchanged and in order. After each `ScoredTick` (passed through first), its stream
 * and track are updated, where the track is the learning ticks (`heldOut` false) or the held-out ticks (`heldOut`
 * true, scored separately: the honest decoding measure); after every `every`-th scored tick of that stream and
 * track a `PrequentialReport` follows, with `seq` the tick's seq and, per predictor:
 *
 *   mse       over the last `window` scored ticks of the track: the mean over those ticks of the mean over
 *             outputs of the squared error;
 *   mseEwma   the bias-corrected EWMA (see `Ewma`) of each tick's mean squared error, over every scored tick of
 *             the track;
 *   r2[i]     1 - SSE_i / SST_i over the window, SST_i about the window's own mean of label i; NaN when the
 *             window holds fewer than 2 ticks or label i is constant over it (SST_i = 0);
 *   accuracy  with `classification`: the fraction of the window's ticks whose prediction has its largest value at
 *             the label's largest (the first one on ties);
 *
 * and skillVsLastLabel = 1 - mse(learner) / mse(last-label), skillVsRunningMean likewise (NaN when the reference
 * mse is 0), labelDelay = the mean label delay in ticks over the window, count = ticks in the window.
 *
 * Not scored, so that every predictor is scored on the same ticks:
 * - a tick whose yLast or yMean holds a NaN (no label had arrived when it was predicted): it passes through and
 *   nothing else happens, no report and no Rejection; windows and counts simply do not include it;
 * - a tick that cannot be scored: after passing it through a Rejection follows: 'malformed' (no y, yhat, yLast or
 *   yMean arrays, no outputs, or no finite non-negative delay), 'dimension' (a y of another length than the
 *   stream's first scored tick, or predictions of another length than y: a programming error upstream),
 *   'non-finite' (an infinite or NaN value in y or yhat, or an infinite reference), 'too-many-streams' (a new
 *   stream past `maxStreams`: reported once per refused key, its ticks pass through unscored).
 *
 * Memory per stream and track is fixed when its first tick is scored: Float64 rings of window x outputs for the
 * labels and for each predictor's squared errors, window-long rings of delays and hits. A tick costs O(outputs):
 * running sums are updated by adding the new tick and subtracting the one that leaves, and recomputed exactly
 * from the rings after every `window` ticks, or at once when a sum has fallen to a thousandth of its peak since
 * the last recompute, so rounding error cannot accumulate. The labels' SST uses a sliding Welford update and is
 * zero exactly when the window's labels are all equal (a run-length count, not a rounded sum). Nothing is
 * allocated per tick but the report. State is per subscription.
 */
export function prequential(options: PrequentialOptions): OperatorFunction<PrequentialInput, PrequentialInput> {
  if (options == null || typeof options !== 'object') throw new TypeError('prequential: options are required');
  const { window, ewmaAlpha, every = 1, classification = false, maxStreams = Infinity } = options;
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(`prequential: window must be a positive integer, got ${String(window)}`);
  }
  if (typeof ewmaAlpha !== 'number' || !(ewmaAlpha > 0 && ewmaAlpha <= 1)) {
    throw new RangeError(`prequential: ewmaAlpha must be a number in (0, 1], got ${String(ewmaAlpha)}`);
  }
  if (!Number.isInteger(every) || every < 1) {
    throw new RangeError(`prequential: every must be a positive integer, got ${String(every)}`);
  }
  if (typeof classification !== 'boolean') {
    throw new TypeError(`prequential: classification must be a boolean, got ${String(classification)}`);
  }
  if (!(maxStreams === Infinity || (Number.isInteger(maxStreams) && maxStreams >= 1))) {
    throw new RangeError(`prequential: maxStreams must be a positive integer or Infinity, got ${String(maxStreams)}`);
  }

  return operate<PrequentialInput, PrequentialInput>((subscriber) => {
    const streams = new Map<string, StreamScoring>();
    const refused = new RefusedStreams(REFUSED_KEYS_REMEMBERED);
    const off = options.pool?.onEvict((stream) => streams.delete(stream));
    const reject = (reason: RejectionReason, message: string, stream?: string, seq?: number) =>
      subscriber.next(rejection(reason, message, stream, seq));

    const streamOf = (tick: ScoredTick, outputs: number): StreamScoring | undefined => {
      const found = streams.get(tick.stream);
      if (found) return found;
      if (streams.size >= maxStreams) {
        if (!refused.firstRefusal(tick.stream)) return undefined;
        return void reject('too-many-streams', `stream '${tick.stream}' not scored: already scoring ${maxStreams} streams`, tick.stream, tick.seq);
      }
      const created = new StreamScoring(outputs);
      streams.set(tick.stream, created);
      return created;
    };

    const onScored = (tick: ScoredTick) => {
      const { stream, seq } = tick;
      const problem = malformation(tick);
      if (problem !== null) {
        const key = typeof stream === 'string' ? stream : undefined;
        const at = typeof seq === 'number' && Number.isFinite(seq) ? seq : undefined;
        return reject('malformed', `scored tick ${String(seq)} of stream '${String(stream)}' ${problem}`, key, at);
      }
      const out = tick.y.length;
      const s = streamOf(tick, out);
      if (!s) return;
      if (out !== s.outputs) {
        return reject('dimension', `scored tick ${seq} of stream '${stream}' has ${out} outputs, the stream's first had ${s.outputs}`, stream, seq);
      }
      if (tick.yhat.length !== out || tick.yLast.length !== out || tick.yMean.length !== out) {
        return reject('dimension', `scored tick ${seq} of stream '${stream}': yhat, yLast and yMean must have the ${out} values of y`, stream, seq);
      }
      if (hasNaN(tick.yLast) || hasNaN(tick.yMean)) return;
      const bad = firstNonFinite(tick);
      if (bad !== null) return reject('non-finite', `scored tick ${seq} of stream '${stream}': ${bad} is not finite`, stream, seq);

      const heldOut = tick.heldOut === true;
      let track = heldOut ? s.heldOut : s.learning;
      if (track === null) {
        track = new TrackScoring(window, out, ewmaAlpha, classification);
        if (heldOut) s.heldOut = track;
        else s.learning = track;
      }
      track.score(tick);
      if (track.scored % every === 0) subscriber.next(track.report(stream, seq, heldOut));
    };

    return {
      next(message) {
        subscriber.next(message);
        if (message?.kind === 'scored') onScored(message);
      },
      cleanup: () => {
        streams.clear();
        refused.clear();
        off?.();
      },
    };
  });
}

/** What is wrong with a scored tick's shape, or null when it can be scored. */
function malformation(tick: ScoredTick): string | null {
  if (typeof tick.stream !== 'string' || typeof tick.seq !== 'number' || !Number.isFinite(tick.seq)) {
    return 'has no string stream key and finite seq';
  }
  for (let n = 0; n < SCORED_ARRAYS.length; n++) {
    const name = SCORED_ARRAYS[n];
    const values: unknown = tick[name];
    if (values == null || typeof values !== 'object' || typeof (values as ArrayLike<number>).length !== 'number') {
      return `has no ${name} array`;
    }
  }
  if (tick.y.length === 0) return 'has no outputs';
  if (typeof tick.delay !== 'number' || !Number.isFinite(tick.delay) || tick.delay < 0) {
    return `has no finite non-negative delay (got ${String(tick.delay)})`;
  }
  return null;
}

function hasNaN(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (Number.isNaN(values[i])) return true;
  return false;
}

/** Names the first non-finite value the tick would be scored with, or null. */
function firstNonFinite(tick: ScoredTick): string | null {
  for (let n = 0; n < SCORED_ARRAYS.length; n++) {
    const name = SCORED_ARRAYS[n];
    const values = tick[name];
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) return `${name}[${i}] = ${String(v)}`;
    }
  }
  return null;
}

/** Index of the largest value, the first on ties. */
function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** One stream's scoring: its output size, fixed by its first scored tick, and a state per track. */
class StreamScoring {
  learning: TrackScoring | null = null;
  heldOut: TrackScoring | null = null;
  constructor(readonly outputs: number) {}
}

/** The sliding-window and EWMA state of one stream and track, for the three predictors. */
class TrackScoring {
  /** Ticks scored since the track began (for `every`). */
  scored = 0;
  private size = 0;
  private next = 0;
  private sinceRecompute = 0;
  private readonly labels: Float64Array;
  private readonly labelMean: Float64Array;
  /** Sum of squared deviations of each output's labels about their window mean (SST). */
  private readonly labelM2: Float64Array;
  private readonly labelM2Peak: Float64Array;
  /** How many of the newest labels of each output are equal to the newest: the window is constant when >= size. */
  private readonly equalRun: Float64Array;
  /** Per predictor p, slot k, output i: squared error at [p][k * outputs + i]. */
  private readonly squaredErrors: Float64Array[];
  /** Per predictor, the window's SSE of each output, and its peak since the last recompute. */
  private readonly sse: Float64Array[];
  private readonly ssePeak: Float64Array[];
  private readonly ewmas: Ewma[];
  /** Per predictor, 1 per window slot whose argmax matched (classification only). */
  private readonly hits: Uint8Array[];
  private readonly hitCount: Float64Array;
  private readonly delays: Float64Array;
  private delaySum = 0;

  constructor(
    private readonly window: number,
    private readonly outputs: number,
    ewmaAlpha: number,
    private readonly classification: boolean,
  ) {
    this.labels = new Float64Array(window * outputs);
    this.labelMean = new Float64Array(outputs);
    this.labelM2 = new Float64Array(outputs);
    this.labelM2Peak = new Float64Array(outputs);
    this.equalRun = new Float64Array(outputs);
    this.squaredErrors = PREDICTORS.map(() => new Float64Array(window * outputs));
    this.sse = PREDICTORS.map(() => new Float64Array(outputs));
    this.ssePeak = PREDICTORS.map(() => new Float64Array(outputs));
    this.ewmas = PREDICTORS.map(() => new Ewma({ alpha: ewmaAlpha }));
    this.hits = PREDICTORS.map(() => new Uint8Array(classification ? window : 0));
    this.hitCount = new Float64Array(PREDICTORS.length);
    this.delays = new Float64Array(window);
  }

  /** Adds a validated tick to the window (evicting the oldest once it is full) and to the EWMAs. */
  score(tick: ScoredTick): void {
    const { window, outputs } = this;
    const slot = this.next;
    const full = this.size === window;
    const base = slot * outputs;
    const previous = (slot === 0 ? window - 1 : slot - 1) * outputs;
    const y = tick.y;
    let cancelled = false;

    for (let i = 0; i < outputs; i++) {
      const x = y[i];
      const at = base + i;
      const mean = this.labelMean[i];
      let m2 = this.labelM2[i];
      if (full) {
        // Sliding Welford: replace the evicted label, keeping the update relative to the mean (no sum of squares).
        const evicted = this.labels[at];
        const delta = x - evicted;
        const updated = mean + delta / window;
        m2 += delta * (x - updated + (evicted - mean));
        this.labelMean[i] = updated;
      } else {
        const delta = x - mean;
        const updated = mean + delta / (this.size + 1);
        m2 += delta * (x - updated);
        this.labelMean[i] = updated;
      }
      this.equalRun[i] = this.size > 0 && x === this.labels[previous + i] ? Math.min(this.equalRun[i] + 1, window) : 1;
      this.labels[at] = x;
      if (m2 < 0) m2 = 0;
      this.labelM2[i] = m2;
      if (m2 > this.labelM2Peak[i]) this.labelM2Peak[i] = m2;
      else if (m2 < this.labelM2Peak[i] * CANCELLATION_LIMIT) cancelled = true;
    }

    for (let p = 0; p < PREDICTORS.length; p++) {
      const prediction = p === LEARNER ? tick.yhat : p === LAST_LABEL ? tick.yLast : tick.yMean;
      const errors = this.squaredErrors[p];
      const sse = this.sse[p];
      const peak = this.ssePeak[p];
      let tickSum = 0;
      for (let i = 0; i < outputs; i++) {
        const at = base + i;
        const d = prediction[i] - y[i];
        const e = d * d;
        let sum = sse[i] + e;
        if (full) sum -= errors[at];
        if (sum < 0) sum = 0;
        errors[at] = e;
        sse[i] = sum;
        tickSum += e;
        if (sum > peak[i]) peak[i] = sum;
        else if (sum < peak[i] * CANCELLATION_LIMIT) cancelled = true;
      }
      this.ewmas[p].update(tickSum / outputs);
      if (this.classification) {
        const hit = argmax(prediction) === argmax(y) ? 1 : 0;
        const hits = this.hits[p];
        this.hitCount[p] += hit - (full ? hits[slot] : 0);
        hits[slot] = hit;
      }
    }

    // Delays are integers in practice, so this sum is exact; it is recomputed with the rest all the same.
    this.delaySum += tick.delay - (full ? this.delays[slot] : 0);
    this.delays[slot] = tick.delay;

    this.next = slot + 1 === window ? 0 : slot + 1;
    if (!full) this.size++;
    this.scored++;
    if (++this.sinceRecompute >= window || cancelled) this.recompute();
  }

  /** The figures of the current window (allocates the report). */
  report(stream: string, seq: number, heldOut: boolean): PrequentialReport {
    const learner = this.figures(LEARNER);
    const lastLabel = this.figures(LAST_LABEL);
    const runningMean = this.figures(RUNNING_MEAN);
    return {
      kind: 'prequential',
      stream,
      seq,
      labelDelay: this.delaySum / this.size,
      heldOut,
      window: this.window,
      count: this.size,
      figures: { learner, 'last-label': lastLabel, 'running-mean': runningMean },
      skillVsLastLabel: skill(learner.mse, lastLabel.mse),
      skillVsRunningMean: skill(learner.mse, runningMean.mse),
    };
  }

  private figures(p: number): ErrorFigures {
    const { outputs, size } = this;
    const sse = this.sse[p];
    let total = 0;
    const r2 = new Array<number>(outputs);
    for (let i = 0; i < outputs; i++) {
      total += sse[i];
      const sst = this.labelM2[i];
      r2[i] = size < 2 || this.equalRun[i] >= size || !(sst > 0) ? NaN : 1 - sse[i] / sst;
    }
    const figures: { -readonly [K in keyof ErrorFigures]: ErrorFigures[K] } = {
      mse: total / (size * outputs),
      mseEwma: this.ewmas[p].value,
      r2,
    };
    if (this.classification) figures.accuracy = this.hitCount[p] / size;
    return figures;
  }

  /** Recomputes every running sum exactly from the rings (two-pass for the labels' SST). */
  private recompute(): void {
    const { outputs, size } = this;
    for (let i = 0; i < outputs; i++) {
      let sum = 0;
      for (let k = 0; k < size; k++) sum += this.labels[k * outputs + i];
      const mean = sum / size;
      let m2 = 0;
      for (let k = 0; k < size; k++) {
        const d = this.labels[k * outputs + i] - mean;
        m2 += d * d;
      }
      this.labelMean[i] = mean;
      this.labelM2[i] = m2;
      this.labelM2Peak[i] = m2;
    }
    for (let p = 0; p < PREDICTORS.length; p++) {
      const errors = this.squaredErrors[p];
      for (let i = 0; i < outputs; i++) {
        let sum = 0;
        for (let k = 0; k < size; k++) sum += errors[k * outputs + i];
        this.sse[p][i] = sum;
        this.ssePeak[p][i] = sum;
      }
      if (this.classification) {
        let count = 0;
        for (let k = 0; k < size; k++) count += this.hits[p][k];
        this.hitCount[p] = count;
      }
    }
    let delaySum = 0;
    for (let k = 0; k < size; k++) delaySum += this.delays[k];
    this.delaySum = delaySum;
    this.sinceRecompute = 0;
  }
}

/** 1 - mse / reference mse; NaN when the reference is perfect (no skill can be measured against it). */
function skill(mse: number, referenceMse: number): number {
  return referenceMse > 0 ? 1 - mse / referenceMse : NaN;
}
