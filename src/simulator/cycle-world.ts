/**
 * CycleWorld (Tanner & Sutton 2005, as used in Nath & White's Fixed Point Propagation thesis, section 4.1): a
 * deterministic cycle of `period` steps whose observation is 1 at the cycle's last step and 0 at every other. The
 * task is to predict the next observation bit, so a learner must count how long ago it last saw the 1: the
 * dependency back in time is the period, which is why the thesis runs it at p = 6 and p = 10.
 *
 * At tick t the input x_t is the observation at tick t and the target y_t is the observation at tick t + 1. The cycle
 * step at tick t is (phase + t) mod p and the observation is 1 at step p - 1 (the thesis' "time-step p", counted
 * from 1); with the default phase 0 the first 1 is the input of tick p - 1 and the target of tick p - 2. Another
 * `phase` starts the world elsewhere in its cycle, so that a learner's first ticks are not always the same.
 *
 * The always-0 predictor is right on all but one tick of each period (accuracy 1 - 1/p: 83.3 % at p = 6, 90 % at
 * p = 10, the thesis' "naive predictor"), so accuracy near that value means nothing was learnt. The ideal
 * predictor, which knows where it is in the cycle, is always right and sure (accuracy 1, cross-entropy 0).
 *
 * There is nothing random here; the options object has the shape of the other simulators' so that callers build
 * them alike. `next()` allocates nothing: `x` and `y` are overwritten in place and stay valid views.
 */
export interface CycleWorldOptions {
  /** Steps per cycle, an integer >= 2 (default 6). */
  readonly period?: number;
  /** The cycle step at tick 0, an integer in [0, period) (default 0). */
  readonly phase?: number;
}

export class CycleWorld {
  readonly inputSize = 1;
  readonly outputSize = 1;
  readonly period: number;
  readonly phase: number;
  /** Accuracy of predicting 0 on every tick: 1 - 1/p. */
  readonly alwaysZeroAccuracy: number;
  /**
   * Expected binary cross-entropy (nats per tick) of the best predictor that does not know where it is in the
   * cycle: the constant 1/p, scoring H(1/p). (The always-0 predictor itself has infinite cross-entropy.)
   */
  readonly constantPredictorCrossEntropy: number;
  /** The ideal predictor knows the cycle step, so it is always right. */
  readonly idealAccuracy = 1;
  /** ... and always sure: cross-entropy 0 nats per tick. */
  readonly idealCrossEntropy = 0;
  /** x_t after `next()`: the observation at tick t. */
  readonly x: Float32Array;
  /** y_t after `next()`: the observation at tick t + 1, the bit to predict. */
  readonly y: Float32Array;
  private t = -1;

  constructor(options: CycleWorldOptions = {}) {
    const period = options.period ?? 6;
    const phase = options.phase ?? 0;
    if (!Number.isInteger(period) || period < 2) throw new RangeError(`cycle world: period must be an integer >= 2, got ${String(period)}`);
    if (!Number.isInteger(phase) || phase < 0 || phase >= period) {
      throw new RangeError(`cycle world: phase must be an integer in [0, ${period}), got ${String(phase)}`);
    }
    this.period = period;
    this.phase = phase;
    this.alwaysZeroAccuracy = 1 - 1 / period;
    const q = 1 / period;
    this.constantPredictorCrossEntropy = -(q * Math.log(q) + (1 - q) * Math.log(1 - q));
    this.x = new Float32Array(1);
    this.y = new Float32Array(1);
  }

  /** Index of the current tick (-1 before the first `next()`). */
  get tick(): number {
    return this.t;
  }

  /** The cycle step of the current tick, in [0, period) (meaningless before the first `next()`). */
  get step(): number {
    return (this.phase + this.t) % this.period;
  }

  /** Advances one tick, filling x and y. */
  next(): void {
    this.t++;
    const step = this.step;
    this.x[0] = step === this.period - 1 ? 1 : 0;
    this.y[0] = step === this.period - 2 ? 1 : 0;
  }
}
