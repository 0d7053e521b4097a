/**
 * Whole-session figures of a replay: per session and track (learning ticks, held-out ticks), R2 and MSE of the
 * learner and of the two references over every scored tick of the session (not a trailing window), with the
 * mean label delay and the mean information age of the references. On held-out ticks the references get no label
 * (by default), so persistence there repeats a label that grows older through the block: its age says how much it
 * knew, and the figures make no sense without it (DESIGN section 5).
 *
 * Sums only: O(outputs) per scored tick, constant memory per (session, track, range).
 */
import type { ScoredTick } from '../streams/messages.js';

export type ScoredPredictor = 'learner' | 'last-label' | 'running-mean';
const PREDICTORS: readonly ScoredPredictor[] = ['learner', 'last-label', 'running-mean'];

export interface SessionScore {
  readonly session: string;
  readonly heldOut: boolean;
  /** 'whole' or the name of a chosen range. */
  readonly range: string;
  readonly ticks: number;
  readonly meanDelay: number;
  /** Mean information age of the references in ticks (NaN when they had no label yet). */
  readonly meanReferenceAge: number;
  /** Mean over outputs of 1 - SSE / SST, by predictor; NaN where a predictor had no prediction or SST is 0. */
  readonly r2: Readonly<Record<ScoredPredictor, number>>;
  readonly mse: Readonly<Record<ScoredPredictor, number>>;
}

class Sums {
  ticks = 0;
  delay = 0;
  age = 0;
  aged = 0;
  /** SSE per predictor and output; counts per predictor (a reference with NaN before any label is skipped). */
  readonly sse: Float64Array;
  readonly counts: Float64Array;
  readonly refSumY: Float64Array;
  readonly refSumY2: Float64Array;

  constructor(readonly outputs: number) {
    this.sse = new Float64Array(PREDICTORS.length * outputs);
    this.counts = new Float64Array(PREDICTORS.length);
    // Per predictor, the label sums over the ticks it predicted (its own SST).
    this.refSumY = new Float64Array(PREDICTORS.length * outputs);
    this.refSumY2 = new Float64Array(PREDICTORS.length * outputs);
  }

  add(s: ScoredTick): void {
    this.ticks++;
    this.delay += s.delay;
    if (s.referenceAge !== undefined) {
      this.age += s.referenceAge;
      this.aged++;
    }
    // In PREDICTORS order.
    this.addPrediction(0, s.y, s.yhat);
    this.addPrediction(1, s.y, s.yLast);
    this.addPrediction(2, s.y, s.yMean);
  }

  /** One predictor's prediction of a scored tick; skipped while it has none (a reference before any label). */
  private addPrediction(p: number, y: Float32Array, pred: Float32Array): void {
    const out = this.outputs;
    for (let o = 0; o < out; o++) if (!Number.isFinite(pred[o])) return;
    this.counts[p]++;
    for (let o = 0; o < out; o++) {
      const e = y[o] - pred[o];
      this.sse[p * out + o] += e * e;
      this.refSumY[p * out + o] += y[o];
      this.refSumY2[p * out + o] += y[o] * y[o];
    }
  }

  score(session: string, heldOut: boolean, range: string): SessionScore {
    const out = this.outputs;
    const r2 = {} as Record<ScoredPredictor, number>;
    const mse = {} as Record<ScoredPredictor, number>;
    PREDICTORS.forEach((name, p) => {
      const n = this.counts[p];
      let r = 0;
      let e = 0;
      for (let o = 0; o < out; o++) {
        const sst = this.refSumY2[p * out + o] - (this.refSumY[p * out + o] * this.refSumY[p * out + o]) / n;
        r += sst > 0 ? 1 - this.sse[p * out + o] / sst : NaN;
        e += this.sse[p * out + o];
      }
      r2[name] = n >= 2 ? r / out : NaN;
      mse[name] = n >= 1 ? e / (n * out) : NaN;
    });
    return {
      session, heldOut, range, ticks: this.ticks,
      meanDelay: this.ticks > 0 ? this.delay / this.ticks : NaN,
      meanReferenceAge: this.aged > 0 ? this.age / this.aged : NaN,
      r2, mse,
    };
  }
}

/** A range of each session, in seconds from the session's first tick: [fromSeconds, toSeconds). */
export interface ScoreRange {
  readonly name: string;
  readonly fromSeconds: number;
  readonly toSeconds: number;
}

export class SessionScores {
  private readonly sums = new Map<string, { session: string; heldOut: boolean; range: string; sums: Sums }>();
  private session = '';
  private sessionStart = Number.NaN;

  constructor(private readonly outputs: number, private readonly ranges: readonly ScoreRange[] = []) {}

  /** A session began (a declared boundary) at time t. */
  startSession(name: string, t: number): void {
    this.session = name;
    this.sessionStart = t;
  }

  add(s: ScoredTick): void {
    if (Number.isNaN(this.sessionStart)) this.sessionStart = s.t;
    this.into('whole', s);
    const elapsed = s.t - this.sessionStart;
    for (const r of this.ranges) if (elapsed >= r.fromSeconds && elapsed < r.toSeconds) this.into(r.name, s);
  }

  private into(range: string, s: ScoredTick): void {
    const key = `${this.session}\u0000${s.heldOut}\u0000${range}`;
    let entry = this.sums.get(key);
    if (entry === undefined) {
      entry = { session: this.session, heldOut: s.heldOut, range, sums: new Sums(this.outputs) };
      this.sums.set(key, entry);
    }
    entry.sums.add(s);
  }

  /** Every (session, track, range) seen, in the order first seen. */
  scores(): SessionScore[] {
    return [...this.sums.values()].map((e) => e.sums.score(e.session, e.heldOut, e.range));
  }
}
