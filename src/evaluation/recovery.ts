import { WindowedMean } from './windowed-mean.js';

/**
 * Recovery after one drift event (DESIGN.md section 5), as a small pure object: no streams, no learners, no clock.
 * Time is counted in ticks (calls to `update`), so the same meter serves a simulation and a live stream.
 *
 * The caller measures, before the drift at t0, E_pre: the windowed error of the learner over its last ticks before
 * t0, and at t0 takes a frozen shadow copy of the learner. From t0 on it feeds, per tick, the error of the
 * adapting learner and the error of the frozen copy on that tick (tick t0 first). The meter reports
 *
 *   E_adapt, E_frozen  the means of the fed errors over the last `window` ticks fed (fewer while fewer were fed);
 *                      fed for a post-drift period of P ticks, they are the errors over ticks (t0 + P - window,
 *                      t0 + P], i.e. how well each model does once the adapting one has had time to adapt;
 *   recovery           (E_frozen - E_adapt) / (E_frozen - E_pre) over that window: 1 = back to pre-drift quality,
 *                      0 = no better than not adapting at all, above 1 = better than before the drift; null when
 *                      E_frozen <= E_pre (the drift did not hurt the frozen model, so there was nothing to recover
 *                      and the ratio has no meaning);
 *   residual           E_adapt / E_pre over the same window: 1 = as good as before the drift. Reported beside
 *                      recovery because the ratio saturates when E_frozen >> E_pre;
 *   timeToRecovery     the index k (ticks since t0; the tick at t0 is k = 0) of the first tick whose windowed
 *                      E_adapt, the mean over the `recoveryWindow` ticks k - recoveryWindow + 1 .. k, satisfies
 *                      E_adapt <= (1 + tolerance) * E_pre; null while that has not happened. The window must be
 *                      full before a tick can qualify (a partly filled window is one lucky tick away from a false
 *                      recovery), so k >= recoveryWindow - 1: the answer includes the window's own latency. Use a
 *                      recoveryWindow shorter than `window` when that latency matters.
 *
 * Defaults: tolerance 0.5, recoveryWindow = window. Errors must be finite (RangeError otherwise); E_pre must be a
 * finite number > 0. `update` allocates nothing; `start` re-arms the meter for the next drift event in place.
 */
export interface RecoveryMeterOptions {
  /** Ticks over which E_adapt and E_frozen (hence recovery and residual) are averaged. */
  readonly window: number;
  /** Ticks of the windowed E_adapt that time to recovery compares with E_pre; default `window`. */
  readonly recoveryWindow?: number;
  /** Recovered when windowed E_adapt <= (1 + tolerance) * E_pre; default 0.5. */
  readonly tolerance?: number;
}

export interface RecoveryResult {
  /** Ticks fed since t0. */
  readonly ticks: number;
  readonly ePre: number;
  readonly eAdapt: number;
  readonly eFrozen: number;
  readonly recovery: number | null;
  readonly residual: number;
  readonly timeToRecovery: number | null;
}

export class RecoveryMeter {
  readonly window: number;
  readonly recoveryWindow: number;
  readonly tolerance: number;
  private readonly adapt: WindowedMean;
  private readonly frozen: WindowedMean;
  private readonly adaptRecent: WindowedMean;
  private pre = Number.NaN;
  private threshold = Number.NaN;
  private n = 0;
  private ttr = -1;

  constructor(ePre: number, options: RecoveryMeterOptions) {
    const { window, recoveryWindow = window, tolerance = 0.5 } = options ?? ({} as RecoveryMeterOptions);
    if (!Number.isInteger(window) || window < 1) throw new RangeError(`window must be a positive integer, got ${window}`);
    if (!Number.isInteger(recoveryWindow) || recoveryWindow < 1) {
      throw new RangeError(`recoveryWindow must be a positive integer, got ${recoveryWindow}`);
    }
    if (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance < 0) {
      throw new RangeError(`tolerance must be a finite number >= 0, got ${tolerance}`);
    }
    this.window = window;
    this.recoveryWindow = recoveryWindow;
    this.tolerance = tolerance;
    this.adapt = new WindowedMean(window);
    this.frozen = new WindowedMean(window);
    this.adaptRecent = new WindowedMean(recoveryWindow);
    this.start(ePre);
  }

  /** Re-arms the meter for a new drift event with its E_pre (no allocation). */
  start(ePre: number): this {
    if (typeof ePre !== 'number' || !Number.isFinite(ePre) || ePre <= 0) {
      throw new RangeError(`ePre must be a finite number > 0, got ${ePre}`);
    }
    this.pre = ePre;
    this.threshold = (1 + this.tolerance) * ePre;
    this.adapt.reset();
    this.frozen.reset();
    this.adaptRecent.reset();
    this.n = 0;
    this.ttr = -1;
    return this;
  }

  /** Feeds one post-drift tick: the adapting learner's error and the frozen copy's error on it. */
  update(eAdapt: number, eFrozen: number): this {
    if (typeof eAdapt !== 'number' || !Number.isFinite(eAdapt)) throw new RangeError(`eAdapt must be finite, got ${eAdapt}`);
    if (typeof eFrozen !== 'number' || !Number.isFinite(eFrozen)) throw new RangeError(`eFrozen must be finite, got ${eFrozen}`);
    this.adapt.push(eAdapt);
    this.frozen.push(eFrozen);
    this.adaptRecent.push(eAdapt);
    if (this.ttr < 0 && this.adaptRecent.full && this.adaptRecent.mean <= this.threshold) this.ttr = this.n;
    this.n++;
    return this;
  }

  get ticks(): number {
    return this.n;
  }

  get ePre(): number {
    return this.pre;
  }

  /** Mean adapting error over the last `window` ticks fed; NaN before the first. */
  get eAdapt(): number {
    return this.adapt.mean;
  }

  /** Mean frozen error over the last `window` ticks fed; NaN before the first. */
  get eFrozen(): number {
    return this.frozen.mean;
  }

  get recovery(): number | null {
    if (this.n === 0) return null;
    const gap = this.frozen.mean - this.pre;
    return gap > 0 ? (this.frozen.mean - this.adapt.mean) / gap : null;
  }

  get residual(): number {
    return this.adapt.mean / this.pre;
  }

  get timeToRecovery(): number | null {
    return this.ttr < 0 ? null : this.ttr;
  }

  get recovered(): boolean {
    return this.ttr >= 0;
  }

  /** The current figures as a plain object (allocates; call it when reporting, not per tick). */
  result(): RecoveryResult {
    return {
      ticks: this.n,
      ePre: this.pre,
      eAdapt: this.eAdapt,
      eFrozen: this.eFrozen,
      recovery: this.recovery,
      residual: this.residual,
      timeToRecovery: this.timeToRecovery,
    };
  }
}
