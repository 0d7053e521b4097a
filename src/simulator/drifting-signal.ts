import { Random } from '../learners/random.js';

/**
 * A seeded simulated stream whose input-output relation drifts abruptly, after the cross-session BCI setting:
 * the same intended movement, recorded through electrodes whose tuning changes between sessions.
 *
 * Latent. A noisy 2-D limit-cycle oscillator: z_{t+1} = g_t R(w) z_t + sigma_z eps_t, with R(w) the rotation by
 * w = 2 pi / period and g_t = 1 + 0.02 (1 - |z_t|^2) pulling the radius back towards 1, so the amplitude stays near 1
 * while the phase wanders with the noise.
 *
 * Observation ("neural" channels). x_t,i = tanh(m_i . z_t + b_i) + sigma_x nu_t,i for i < channels: each channel
 * is tuned to a direction m_i of the latent with a baseline b_i (m_i ~ N(0, I), b_i ~ N(0, 0.3^2)).
 *
 * Target. The latent itself, y_t = z_t (a 2-D "velocity" the decoder must read out). The readout never changes.
 *
 * Drift. Every `sessionLength` ticks a new session starts and the tuning (every m_i and b_i) is redrawn: the same
 * latent now reaches the channels through another mixing. `next()` returns true on the first tick of every session
 * after the first: that tick is the drift event t0 the stream declares.
 *
 * `next()` allocates nothing: `x` and `y` are overwritten in place.
 */
export interface DriftingSignalOptions {
  readonly seed?: number;
  /** Input channels (default 8). */
  readonly channels?: number;
  /** Ticks per session (default 10,000). */
  readonly sessionLength?: number;
  /** Period of the latent oscillator in ticks (default 40). */
  readonly period?: number;
  /** Latent noise sigma_z (default 0.02). */
  readonly latentNoise?: number;
  /** Observation noise sigma_x (default 0.05). */
  readonly observationNoise?: number;
}

export class DriftingSignal {
  readonly inputSize: number;
  readonly outputSize = 2;
  readonly sessionLength: number;
  readonly period: number;
  /** x_t after `next()`. */
  readonly x: Float32Array;
  /** y_t = z_t after `next()`. */
  readonly y: Float32Array;
  private readonly rng: Random;
  private readonly tuning: Float64Array; // channels x 2
  private readonly baseline: Float64Array;
  private readonly cosW: number;
  private readonly sinW: number;
  private readonly latentNoise: number;
  private readonly observationNoise: number;
  private z0 = 1;
  private z1 = 0;
  private t = -1;
  private sessionIndex = 0;

  constructor(options: DriftingSignalOptions = {}) {
    const channels = options.channels ?? 8;
    const sessionLength = options.sessionLength ?? 10_000;
    const period = options.period ?? 40;
    if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`channels must be a positive integer, got ${channels}`);
    if (!Number.isInteger(sessionLength) || sessionLength < 1) throw new RangeError(`sessionLength must be a positive integer, got ${sessionLength}`);
    if (!(period > 2)) throw new RangeError(`period must be > 2 ticks, got ${period}`);
    this.inputSize = channels;
    this.sessionLength = sessionLength;
    this.period = period;
    this.latentNoise = options.latentNoise ?? 0.02;
    this.observationNoise = options.observationNoise ?? 0.05;
    this.rng = new Random(options.seed ?? 1);
    this.tuning = new Float64Array(channels * 2);
    this.baseline = new Float64Array(channels);
    this.x = new Float32Array(channels);
    this.y = new Float32Array(2);
    const w = (2 * Math.PI) / period;
    this.cosW = Math.cos(w);
    this.sinW = Math.sin(w);
    this.z0 = Math.cos(this.rng.uniform(0, 2 * Math.PI));
    this.z1 = Math.sqrt(1 - this.z0 * this.z0);
    this.drawTuning();
  }

  /** Index of the current tick (-1 before the first `next()`). */
  get tick(): number {
    return this.t;
  }

  /** Session of the current tick, from 0. */
  get session(): number {
    return this.sessionIndex;
  }

  /** Advances one tick, filling x and y; returns true when this tick starts a new session (a drift event). */
  next(): boolean {
    this.t++;
    let drift = false;
    if (this.t > 0) {
      const rng = this.rng;
      const r2 = this.z0 * this.z0 + this.z1 * this.z1;
      const g = 1 + 0.02 * (1 - r2);
      const a = g * (this.cosW * this.z0 - this.sinW * this.z1) + this.latentNoise * rng.normal();
      const b = g * (this.sinW * this.z0 + this.cosW * this.z1) + this.latentNoise * rng.normal();
      this.z0 = a;
      this.z1 = b;
      if (this.t % this.sessionLength === 0) {
        this.sessionIndex++;
        this.drawTuning();
        drift = true;
      }
    }
    const m = this.tuning;
    for (let i = 0; i < this.inputSize; i++) {
      this.x[i] = Math.tanh(m[2 * i] * this.z0 + m[2 * i + 1] * this.z1 + this.baseline[i]) + this.observationNoise * this.rng.normal();
    }
    this.y[0] = this.z0;
    this.y[1] = this.z1;
    return drift;
  }

  private drawTuning(): void {
    for (let i = 0; i < this.tuning.length; i++) this.tuning[i] = this.rng.normal();
    for (let i = 0; i < this.baseline.length; i++) this.baseline[i] = 0.3 * this.rng.normal();
  }
}
