/**
 * One decoder on one protocol: the sessions replayed through driftline's own pipeline (input normalization,
 * target scaling, predict-then-learn with the protocol's holdout and label delay, the frozen shadow from the
 * boundary), and every scored tick from `collectFrom` on kept in flat arrays for the figures (R2 per range, R2
 * over time, recovery). The pipeline is the one `driftline run` and `driftline replay --config` compose, so what is
 * measured here is what a user gets.
 */
import { lastValueFrom, tap } from 'rxjs';
import type { LearnerSpec } from '../learners/learner.js';
import { replaySessions, type ReplaySession } from '../adapters/replay/replay.js';
import type { HoldoutSpec } from '../streams/holdout.js';
import type { ScoredTick } from '../streams/messages.js';
import type { TargetScalingSpec } from '../streams/normalize-targets.js';
import { createPipeline } from '../streams/pipeline.js';

export interface StreamRunOptions {
  readonly holdout: HoldoutSpec;
  readonly labelDelayTicks: number;
  /** Global tick index (seq) from which scored ticks are kept. */
  readonly collectFrom: number;
  /** Ticks the frozen shadow predicts after each declared boundary (0: none). */
  readonly recoveryTicks: number;
  readonly targetScaling: TargetScalingSpec;
  /** A label may come up to maxDelay - 1 ticks late (at least labelDelayTicks + 1). */
  readonly maxDelay: number;
  /** Input normalizer decay (adaptive z-scoring of each channel; DESIGN's classic BCI normalizer). */
  readonly normalizeDecay: number;
  readonly onTicks?: (ticks: number) => void;
}

/** What one run leaves for the figures: per collected tick (index = seq - collectFrom). */
export interface CollectedRun {
  readonly ticks: number;
  readonly outputs: number;
  readonly y: Float32Array;
  readonly yhat: Float32Array;
  readonly yLast: Float32Array;
  readonly yFrozen: Float32Array;
  /** 1 where the tick was scored (its label arrived), 2 where it was also held out. */
  readonly status: Uint8Array;
  readonly referenceAge: Float32Array;
  /** 1 where yFrozen holds the frozen shadow's prediction. */
  readonly hasFrozen: Uint8Array;
  /** Mean wall-clock microseconds per input through the pipeline. */
  readonly microsPerTick: number;
  readonly labelsOutOfRange: number;
}

export const SCORED = 1;
export const HELD_OUT = 2;

export async function runStream(sessions: readonly ReplaySession[], spec: LearnerSpec, options: StreamRunOptions): Promise<CollectedRun> {
  const total = sessions.reduce((a, s) => a + s.t.length, 0);
  const ticks = total - options.collectFrom;
  if (ticks <= 0) throw new RangeError(`collectFrom ${options.collectFrom} is past the last of ${total} ticks`);
  const out = spec.outputSize;
  const run = {
    ticks,
    outputs: out,
    y: new Float32Array(ticks * out),
    yhat: new Float32Array(ticks * out),
    yLast: new Float32Array(ticks * out).fill(Number.NaN),
    yFrozen: new Float32Array(ticks * out).fill(Number.NaN),
    status: new Uint8Array(ticks),
    referenceAge: new Float32Array(ticks).fill(Number.NaN),
    hasFrozen: new Uint8Array(ticks),
    microsPerTick: 0,
    labelsOutOfRange: 0,
  };
  const pipeline = createPipeline({
    pool: { spec, maxStreams: 1 },
    normalize: { decay: options.normalizeDecay },
    holdout: options.holdout,
    maxDelay: options.maxDelay,
    recoveryTicks: options.recoveryTicks,
    targetScaling: options.targetScaling,
    prequential: { window: 1200, ewmaAlpha: 0.01, every: 1200 },
    drift: { detectors: [] },
    recovery: { window: 1200, tolerance: 0.5 },
  });
  const keep = (s: ScoredTick) => {
    const i = s.seq - options.collectFrom;
    if (i < 0) return;
    run.y.set(s.y, i * out);
    run.yhat.set(s.yhat, i * out);
    run.yLast.set(s.yLast, i * out);
    if (s.yFrozen) {
      run.yFrozen.set(s.yFrozen, i * out);
      run.hasFrozen[i] = 1;
    }
    run.status[i] = s.heldOut ? HELD_OUT : SCORED;
    if (s.referenceAge !== undefined) run.referenceAge[i] = s.referenceAge;
  };
  let inputs = 0;
  let rejections = '';
  const started = performance.now();
  await lastValueFrom(
    replaySessions(sessions, { stream: 'bci', speed: 'fast', labelDelayTicks: options.labelDelayTicks, progress: false, chunkTicks: 2000 }).pipe(
      tap((m) => {
        if (m.kind === 'tick' && ++inputs % 1000 === 0) options.onTicks?.(1000);
      }),
      pipeline.operator,
      tap((m) => {
        if (m.kind === 'scored') {
          keep(m);
          if (m.labelOutOfRange) run.labelsOutOfRange++;
        } else if (m.kind === 'rejected' && rejections === '') {
          rejections = `${m.reason}: ${m.message}`;
        }
      }),
    ),
    { defaultValue: undefined },
  );
  options.onTicks?.(inputs % 1000);
  run.microsPerTick = ((performance.now() - started) * 1000) / Math.max(1, inputs);
  // The replay is clean by construction: a refusal here is a harness bug, not a figure to report.
  if (rejections !== '') throw new Error(`the pipeline refused input of the replay: ${rejections}`);
  return run;
}

/** Mean over outputs of R2 = 1 - SSE / SST (SST around the range's own label mean) on the ticks `admit` picks. */
export function r2Of(run: CollectedRun, pick: 'yhat' | 'yLast' | 'yFrozen', from: number, to: number, admit: (i: number) => boolean): number | null {
  const out = run.outputs;
  const pred = run[pick];
  let total = 0;
  for (let o = 0; o < out; o++) {
    let n = 0;
    let sum = 0;
    for (let i = from; i < to; i++) {
      if (!admit(i)) continue;
      n++;
      sum += run.y[i * out + o];
    }
    if (n < 2) return null;
    const mean = sum / n;
    let sse = 0;
    let sst = 0;
    for (let i = from; i < to; i++) {
      if (!admit(i)) continue;
      const y = run.y[i * out + o];
      const e = y - pred[i * out + o];
      sse += e * e;
      sst += (y - mean) * (y - mean);
    }
    if (!(sst > 0) || !Number.isFinite(sse)) return null;
    total += 1 - sse / sst;
  }
  return total / out;
}

/** Mean squared error over outputs on the admitted ticks (null when none). */
export function mseOf(run: CollectedRun, pick: 'yhat' | 'yLast' | 'yFrozen', from: number, to: number, admit: (i: number) => boolean): number | null {
  const out = run.outputs;
  const pred = run[pick];
  let n = 0;
  let sse = 0;
  for (let i = from; i < to; i++) {
    if (!admit(i)) continue;
    for (let o = 0; o < out; o++) {
      const e = run.y[i * out + o] - pred[i * out + o];
      sse += e * e;
    }
    n += out;
  }
  return n === 0 || !Number.isFinite(sse) ? null : sse / n;
}

/** Mean information age of the references on the admitted ticks. */
export function meanReferenceAge(run: CollectedRun, from: number, to: number, admit: (i: number) => boolean): number | null {
  let n = 0;
  let sum = 0;
  for (let i = from; i < to; i++) {
    if (!admit(i) || Number.isNaN(run.referenceAge[i])) continue;
    n++;
    sum += run.referenceAge[i];
  }
  return n === 0 ? null : sum / n;
}
