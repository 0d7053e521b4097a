import { Random } from '../learners/random.js';

/**
 * Seeded multi-session recordings of a simulated motor-cortex population during an isometric center-out wrist
 * task, shaped like the Jango recordings (/work/shared/data/jango/README.md) so that they can stand in for them: 96
 * channels, 50 ms bins, spike rates in Hz (count / binSeconds), 2-D wrist force in raw units as the target.
 *
 * Behaviour. Trials of about 2.8 s: a hold at the center (0.8-1.6 s), then the force setpoint jumps to one of 8
 * targets on a circle of radius `targetRadius` about `forceCenter` (per trial, 8% jitter of the radius and 5 degrees
 * of the angle) and stays there (1.2-2.0 s) before jumping back. The force follows the setpoint as a critically
 * damped second-order system (exact discretisation; 90% of a step in `settleSeconds`), so it moves smoothly with a
 * bell-shaped speed. The recorded force adds slow fluctuations that the population does not encode (other muscles,
 * the sensor: two cascaded AR(1) stages, tau 0.25 s each, sd `forceNoise`); they are what holds a decoder's R2
 * near Jango's 0.6-0.75 instead of near 1. With the defaults the force has Jango's statistics: mean about
 * `forceCenter`, sd about 1,700 per axis, lag-1 autocorrelation 0.993, 0.35 after 1 s.
 *
 * Population. Each live channel records one unit, cosine-tuned to the intended force f (the recorded force without
 * its unencoded fluctuations) ahead of time, so that lagged bins tell about the present force, and a little to its
 * derivative:
 *   u(t)      = (f(t + leadSeconds) - restForce + derivativeSeconds * f'(t + leadSeconds)) / targetRadius
 *   drive_i   = baseline_i + gain_i * (cos th_i, sin th_i) . u(t)
 *   rate_i(t) = softplus_4Hz(drive_i) * exp(eta_i(t) - privateNoise^2 / 2)
 *   count     ~ Poisson(rate_i(t) * binSeconds)
 * with eta_i a slow private log-rate noise (AR(1), tau 0.5 s, sd `privateNoise`). The drive is force relative to a
 * relaxed arm (`restForce`), not to the center target: holding the center takes force (Jango's mean force is far
 * from 0), which is what makes a rotation of the tuning move the channels' mean rates too. Baselines are log-normal
 * (median `baselineHz`, log-sd 0.6) and kept in [3, 110] Hz, the range of Jango's per-channel mean rates; gains
 * are the baseline times a log-normal depth (median `modulationDepth`, log-sd 0.4), at most 110 Hz, for a
 * `tunedFraction` of the units and 0 for the others. With the defaults the per-channel mean rates spread like
 * Jango's (10 / 50 / 90% quantiles about 12 / 32 / 65 Hz, Jango's 15 / 38 / 72), the median Fano factor of the
 * counts is 1.1 (Jango 1.05), 25-30% of the bins are empty (Jango 22-28%), and a `silentFraction` of the
 * channels records nothing.
 *
 * Drift at each session boundary; within a session everything is stationary apart from the noise. The preferred
 * directions rotate together by an angle drawn from `rotationDegrees`, of random sign, plus a per-unit jitter
 * (sd `jitterDegrees`); gains and baselines take log-normal factors (log-sd `gainDrift`, `baselineDrift`); a
 * `remapFraction` of the live channels now records another neuron (new preferred direction and gain, same
 * baseline); a `dropFraction` of the channels goes silent (Jango's Day16 lost two) and an `appearFraction` picks up
 * a new unit on a channel that was silent (as many as there are). The task is the same in every session; only the
 * neural code moves. The defaults are calibrated against Jango's Day0 -> Day16. Per-channel mean rates correlate
 * 0.5-0.75 across the boundary (Jango 0.57). A least-squares decoder on the last 4 bins, fit on the first half of
 * session 1, scores R2 0.69-0.72 on its second half and about 0.7 again when refit on session 2, but from -0.6 to
 * 0.43 when applied frozen to session 2: drops of 0.28-1.29 over seeds 1-16, median 0.79, under 0.3 for one seed
 * in 16 (Jango's drop is 0.63 averaged over its axes: 0.2 on one, 1.06 on the other). A frozen decoder keeps part
 * of its skill because it shrinks towards the mean as it loses the units it relied on; it fails outright where
 * the baseline changes of its heavily weighted channels add up to a bias, which is a matter of luck, here as in
 * Jango.
 *
 * Determinism: the same options give the same bytes. The tuning, each session's behaviour and each
 * session's spikes draw from separate generators seeded from `seed`, so a session's tuning and force do not depend on
 * how long the sessions before it are. Cost: about 0.3-0.4 s for 20 minutes of 96 channels; the outputs plus O(bins)
 * Float64 scratch for the force, and nothing allocated per bin.
 *
 * Each session is structurally a ReplaySession (src/adapters/replay/replay.ts), so `replaySessions` replays them
 * as one stream with a session marker at each boundary.
 */
export interface MotorCortexOptions {
  readonly seed: number;
  /** Recording channels, one unit each at most (default 96, a Utah array). */
  readonly channels?: number;
  /** Bin width in seconds (default 0.05). */
  readonly binSeconds?: number;
  /** Number of sessions (default: the length of `sessionSeconds` when it is an array, else 2). */
  readonly sessions?: number;
  /**
   * Length of each session in seconds, one number for all or one per session (default 1200 for the first session
   * and 900 for the others, Jango's Day0 and Day16).
   */
  readonly sessionSeconds?: number | readonly number[];
  /** Prefix of the session names, `${name}_seed${seed}_S${k}` with k from 1 (default 'SimCortex'). */
  readonly name?: string;
  /** Radius of the target circle, raw force units (default 3000, for a force sd of about 1,700 per axis). */
  readonly targetRadius?: number;
  /** Force at the center target, raw units (default [-1200, -1700], about Jango's mean force). */
  readonly forceCenter?: readonly [number, number];
  /** Force reading of a relaxed arm, the zero of the neural drive, raw units (default [0, 0]). */
  readonly restForce?: readonly [number, number];
  /** Time for the force to reach 90% of a setpoint step, seconds (default 0.45). */
  readonly settleSeconds?: number;
  /** sd of the slow force fluctuations that the population does not encode, raw units (default 800). */
  readonly forceNoise?: number;
  /** How far the neural drive leads the force, seconds (default 0.1). */
  readonly leadSeconds?: number;
  /** Weight of the force derivative in the drive, seconds (default 0.1). */
  readonly derivativeSeconds?: number;
  /** Fraction of the units tuned to force; the others fire at their baseline (default 0.8). */
  readonly tunedFraction?: number;
  /** Median baseline drive, Hz (default 32). */
  readonly baselineHz?: number;
  /** Median modulation depth (gain / baseline) of the tuned units (default 0.5). */
  readonly modulationDepth?: number;
  /** sd of each unit's slow private log-rate noise (default 0.1). */
  readonly privateNoise?: number;
  /** Fraction of the channels silent in the first session (default 0.03). */
  readonly silentFraction?: number;
  /** Common rotation of the preferred directions at each boundary, degrees, of random sign (default [25, 45]). */
  readonly rotationDegrees?: readonly [number, number];
  /** sd of each unit's own extra rotation at each boundary, degrees (default 10). */
  readonly jitterDegrees?: number;
  /** Log-sd of each unit's gain factor at each boundary (default 0.3). */
  readonly gainDrift?: number;
  /** Log-sd of each unit's baseline factor at each boundary (default 0.5). */
  readonly baselineDrift?: number;
  /** Fraction of the live channels that record another neuron after each boundary (default 0.5). */
  readonly remapFraction?: number;
  /** Fraction of the channels whose unit goes silent at each boundary (default 0.02, 2 of 96). */
  readonly dropFraction?: number;
  /** Fraction of the channels on which a unit appears at each boundary, if that many were silent (default 0.02). */
  readonly appearFraction?: number;
}

/** The generating parameters of one session, for tests and for scoring recovered tuning. */
export interface MotorCortexTruth {
  /** Session index from 0. */
  readonly index: number;
  /** Common rotation of the preferred directions from the previous session, radians (0 for the first). */
  readonly rotation: number;
  /** Sum of the rotations since the first session, radians. */
  readonly totalRotation: number;
  /** Preferred direction of each unit, radians. */
  readonly preferredDirection: Float64Array;
  /** Modulation of each unit, Hz per targetRadius of force (0 for untuned units). */
  readonly gain: Float64Array;
  /** Drive of each unit with the arm relaxed (force = restForce), Hz, before the softplus. */
  readonly baseline: Float64Array;
  /** 1 where the channel records a unit in this session, 0 where it is silent. */
  readonly present: Uint8Array;
  /** Units silent here that were present in the previous session. */
  readonly dropped: number[];
  /** Units present here that were silent in the previous session. */
  readonly appeared: number[];
  /** Live units that record a different neuron than in the previous session (new tuning). */
  readonly remapped: number[];
  /** Force setpoint per bin: the target index 0-7, or -1 for the center. */
  readonly target: Int8Array;
}

export interface SimulatedSession {
  readonly name: string;
  /** Bin times in seconds: i * binSeconds, from 0. */
  readonly t: Float64Array;
  /** Spike rates in Hz, row-major: bin i is x[i * nChannels .. (i + 1) * nChannels); always count / binSeconds. */
  readonly x: Float32Array;
  readonly nChannels: number;
  /** Force, row-major, 2 per bin, raw units. */
  readonly y: Float32Array;
  readonly nOutputs: 2;
  readonly binSeconds: number;
  readonly yLabels: string[];
  readonly truth: MotorCortexTruth;
}

const TARGETS = 8;
const SOFTPLUS_HZ = 4;
const FORCE_NOISE_TAU = 0.25;
const PRIVATE_NOISE_TAU = 0.5;
const BASELINE_LOG_SD = 0.6;
const DEPTH_LOG_SD = 0.4;
const MIN_HZ = 3;
const MAX_HZ = 110;
const RADIUS_JITTER = 0.08;
const ANGLE_JITTER = (5 * Math.PI) / 180;
const CENTER_HOLD: readonly [number, number] = [0.8, 1.6];
const OUTER_HOLD: readonly [number, number] = [1.2, 2.0];
/** 90% rise of a critically damped step is at omega t = 3.89. */
const RISE_90 = 3.8897;

interface Tuning {
  readonly theta: Float64Array;
  readonly gain: Float64Array;
  readonly baseline: Float64Array;
  readonly present: Uint8Array;
}

/** Generates the sessions; see the module comment for the model. */
export function simulateMotorCortexSessions(options: MotorCortexOptions): SimulatedSession[] {
  const seed = options.seed;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const channels = options.channels ?? 96;
  if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`channels must be a positive integer, got ${channels}`);
  const bin = options.binSeconds ?? 0.05;
  if (!(bin > 0 && bin <= 1)) throw new RangeError(`binSeconds must be in (0, 1], got ${bin}`);
  const lengths = sessionLengths(options);
  const radius = positive('targetRadius', options.targetRadius ?? 3000);
  const center = options.forceCenter ?? [-1200, -1700];
  const rest = options.restForce ?? [0, 0];
  for (const [name, v] of [['forceCenter', center], ['restForce', rest]] as const) {
    if (v.length !== 2 || !(Number.isFinite(v[0]) && Number.isFinite(v[1]))) throw new RangeError(`${name} must be two finite numbers, got [${v}]`);
  }
  const settle = positive('settleSeconds', options.settleSeconds ?? 0.45);
  const forceNoise = nonNegative('forceNoise', options.forceNoise ?? 800);
  const lead = nonNegative('leadSeconds', options.leadSeconds ?? 0.1);
  const derivative = nonNegative('derivativeSeconds', options.derivativeSeconds ?? 0.1);
  const tunedFraction = fraction('tunedFraction', options.tunedFraction ?? 0.8);
  const privateNoise = nonNegative('privateNoise', options.privateNoise ?? 0.1);
  const silentFraction = fraction('silentFraction', options.silentFraction ?? 0.03);
  const rotation = options.rotationDegrees ?? [25, 45];
  if (!(rotation.length === 2 && rotation[0] >= 0 && rotation[1] >= rotation[0] && rotation[1] <= 180)) {
    throw new RangeError(`rotationDegrees must be 0 <= low <= high <= 180, got [${rotation}]`);
  }
  const jitter = (nonNegative('jitterDegrees', options.jitterDegrees ?? 10) * Math.PI) / 180;
  const gainDrift = nonNegative('gainDrift', options.gainDrift ?? 0.3);
  const baselineDrift = nonNegative('baselineDrift', options.baselineDrift ?? 0.5);
  const dropFraction = fraction('dropFraction', options.dropFraction ?? 0.02);
  const appearFraction = fraction('appearFraction', options.appearFraction ?? 0.02);
  const remapFraction = fraction('remapFraction', options.remapFraction ?? 0.5);
  const units: UnitPrior = {
    tunedFraction,
    baselineHz: positive('baselineHz', options.baselineHz ?? 32),
    depth: nonNegative('modulationDepth', options.modulationDepth ?? 0.5),
  };
  const prefix = options.name ?? 'SimCortex';
  if (typeof prefix !== 'string' || prefix === '') throw new RangeError('name must be a non-empty string');

  // Separate streams, so the tuning and a session's force do not shift when another session's length changes.
  const master = new Random(seed);
  const tuningRng = new Random(master.nextUint32());
  const sessionSeeds = lengths.map(() => [master.nextUint32(), master.nextUint32()] as const);

  const behaviour = { radius, center, omega: RISE_90 / settle, forceNoise, bin };
  const neural = { leadBins: Math.round(lead / bin), derivative, radius, privateNoise, offsetX: center[0] - rest[0], offsetY: center[1] - rest[1] };
  const tuning = initialTuning(tuningRng, channels, units, silentFraction);
  const out: SimulatedSession[] = [];
  let totalRotation = 0;
  for (let k = 0; k < lengths.length; k++) {
    let angle = 0;
    let dropped: number[] = [];
    let appeared: number[] = [];
    let remapped: number[] = [];
    if (k > 0) {
      const deg = tuningRng.uniform(rotation[0], rotation[1]) * (tuningRng.next() < 0.5 ? -1 : 1);
      angle = (deg * Math.PI) / 180;
      const drift = { angle, jitter, gainDrift, baselineDrift, dropFraction, appearFraction, remapFraction, units };
      ({ dropped, appeared, remapped } = driftTuning(tuningRng, tuning, drift));
      totalRotation += angle;
    }
    const n = lengths[k];
    const force = simulateForce(new Random(sessionSeeds[k][0]), n + neural.leadBins, behaviour);
    const x = new Float32Array(n * channels);
    fireUnits(new Random(sessionSeeds[k][1]), x, n, channels, bin, force, tuning, neural);
    const y = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      y[2 * i] = force.fx[i];
      y[2 * i + 1] = force.fy[i];
    }
    const t = new Float64Array(n);
    for (let i = 0; i < n; i++) t[i] = i * bin;
    out.push({
      name: `${prefix}_seed${seed}_S${k + 1}`,
      t,
      x,
      nChannels: channels,
      y,
      nOutputs: 2,
      binSeconds: bin,
      yLabels: ['Force_x', 'Force_y'],
      truth: {
        index: k,
        rotation: angle,
        totalRotation,
        preferredDirection: Float64Array.from(tuning.theta),
        gain: Float64Array.from(tuning.gain),
        baseline: Float64Array.from(tuning.baseline),
        present: Uint8Array.from(tuning.present),
        dropped,
        appeared,
        remapped,
        target: force.target.slice(0, n),
      },
    });
  }
  return out;
}

function sessionLengths(options: MotorCortexOptions): number[] {
  const given = options.sessionSeconds;
  const count = options.sessions ?? (Array.isArray(given) ? given.length : 2);
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`sessions must be a positive integer, got ${count}`);
  let seconds: number[];
  if (given === undefined) seconds = Array.from({ length: count }, (_, k) => (k === 0 ? 1200 : 900));
  else if (typeof given === 'number') seconds = new Array<number>(count).fill(given);
  else {
    if (given.length !== count) throw new RangeError(`sessionSeconds has ${given.length} entries for ${count} sessions`);
    seconds = [...given];
  }
  const bin = options.binSeconds ?? 0.05;
  return seconds.map((s) => {
    if (!(s > 0 && Number.isFinite(s))) throw new RangeError(`sessionSeconds must be > 0, got ${s}`);
    return Math.max(1, Math.round(s / bin));
  });
}

function positive(name: string, v: number): number {
  if (!(v > 0 && Number.isFinite(v))) throw new RangeError(`${name} must be > 0, got ${v}`);
  return v;
}

function nonNegative(name: string, v: number): number {
  if (!(v >= 0 && Number.isFinite(v))) throw new RangeError(`${name} must be >= 0, got ${v}`);
  return v;
}

function fraction(name: string, v: number): number {
  if (!(v >= 0 && v <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${v}`);
  return v;
}

interface UnitPrior {
  readonly tunedFraction: number;
  readonly baselineHz: number;
  readonly depth: number;
}

/** New preferred direction and gain for unit i; a new baseline too unless one is given. */
function drawUnit(rng: Random, tuning: Tuning, i: number, prior: UnitPrior, baseline?: number): void {
  tuning.theta[i] = rng.uniform(-Math.PI, Math.PI);
  // Drawn even when unused, so that every unit takes the same number of draws whatever happens to it.
  const fresh = clamp(prior.baselineHz * Math.exp(BASELINE_LOG_SD * rng.normal()), MIN_HZ, MAX_HZ);
  tuning.baseline[i] = baseline ?? fresh;
  const depth = prior.depth * Math.exp(DEPTH_LOG_SD * rng.normal());
  tuning.gain[i] = rng.next() < prior.tunedFraction ? Math.min(MAX_HZ, depth * tuning.baseline[i]) : 0;
}

function clamp(v: number, low: number, high: number): number {
  return v < low ? low : v > high ? high : v;
}

function initialTuning(rng: Random, channels: number, prior: UnitPrior, silentFraction: number): Tuning {
  const tuning: Tuning = {
    theta: new Float64Array(channels),
    gain: new Float64Array(channels),
    baseline: new Float64Array(channels),
    present: new Uint8Array(channels).fill(1),
  };
  for (let i = 0; i < channels; i++) drawUnit(rng, tuning, i, prior);
  for (const i of pick(rng, range(channels), Math.round(silentFraction * channels))) tuning.present[i] = 0;
  return tuning;
}

interface DriftParams {
  readonly angle: number;
  readonly jitter: number;
  readonly gainDrift: number;
  readonly baselineDrift: number;
  readonly dropFraction: number;
  readonly appearFraction: number;
  readonly remapFraction: number;
  readonly units: UnitPrior;
}

function driftTuning(rng: Random, tuning: Tuning, p: DriftParams): { dropped: number[]; appeared: number[]; remapped: number[] } {
  const channels = tuning.present.length;
  for (let i = 0; i < channels; i++) {
    tuning.theta[i] = wrap(tuning.theta[i] + p.angle + p.jitter * rng.normal());
    tuning.gain[i] = Math.min(MAX_HZ, tuning.gain[i] * Math.exp(p.gainDrift * rng.normal()));
    tuning.baseline[i] = clamp(tuning.baseline[i] * Math.exp(p.baselineDrift * rng.normal()), MIN_HZ, MAX_HZ);
  }
  const live = range(channels).filter((i) => tuning.present[i] === 1);
  const silent = range(channels).filter((i) => tuning.present[i] === 0);
  // A channel's threshold-crossing rate is mostly its electrode's background, so a remapped channel keeps its
  // baseline; what changes is the neuron that dominates its modulation. (Redrawing the baseline too would make the
  // per-channel mean rates correlate about 0.3 across sessions, where Jango's correlate 0.57.)
  const remapped = pick(rng, live, Math.round(p.remapFraction * live.length)).sort((a, b) => a - b);
  for (const i of remapped) drawUnit(rng, tuning, i, p.units, tuning.baseline[i]);
  const dropped = pick(rng, live, Math.min(live.length, Math.round(p.dropFraction * channels))).sort((a, b) => a - b);
  const appeared = pick(rng, silent, Math.min(silent.length, Math.round(p.appearFraction * channels))).sort((a, b) => a - b);
  for (const i of dropped) tuning.present[i] = 0;
  // A unit that appears on a silent channel owes nothing to whatever was recorded there before.
  for (const i of appeared) {
    tuning.present[i] = 1;
    drawUnit(rng, tuning, i, p.units);
  }
  return { dropped, appeared, remapped: remapped.filter((i) => tuning.present[i] === 1) };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** k distinct elements of `from` (partial Fisher-Yates on a copy). */
function pick(rng: Random, from: readonly number[], k: number): number[] {
  const a = [...from];
  for (let j = 0; j < k; j++) {
    const r = j + Math.floor(rng.next() * (a.length - j));
    const tmp = a[j];
    a[j] = a[r];
    a[r] = tmp;
  }
  return a.slice(0, k);
}

function wrap(a: number): number {
  return a - 2 * Math.PI * Math.floor((a + Math.PI) / (2 * Math.PI));
}

interface Force {
  /** Recorded force, raw units (intended force + unencoded noise + center). */
  readonly fx: Float64Array;
  readonly fy: Float64Array;
  /** Intended force about the center and its derivative (per second): what the population encodes. */
  readonly px: Float64Array;
  readonly py: Float64Array;
  readonly vx: Float64Array;
  readonly vy: Float64Array;
  readonly target: Int8Array;
}

function simulateForce(
  rng: Random,
  n: number,
  b: { radius: number; center: readonly [number, number]; omega: number; forceNoise: number; bin: number },
): Force {
  const f: Force = {
    fx: new Float64Array(n),
    fy: new Float64Array(n),
    px: new Float64Array(n),
    py: new Float64Array(n),
    vx: new Float64Array(n),
    vy: new Float64Array(n),
    target: new Int8Array(n),
  };
  const dt = b.bin;
  const w = b.omega;
  const decay = Math.exp(-w * dt);
  // Two cascaded AR(1) stages: an OU process alone has a kink at lag 0 and would make the force rougher bin to
  // bin than Jango's (lag-1 autocorrelation 0.993). Var of the second stage is (1-a)^2 (1+a^2) / (1-a^2)^2 times
  // the first's, so the first is scaled up to leave `forceNoise` as the sd of the output.
  const noiseA = Math.exp(-dt / FORCE_NOISE_TAU);
  const a2 = noiseA * noiseA;
  const firstSd = b.forceNoise / Math.sqrt(((1 - noiseA) ** 2 * (1 + a2)) / (1 - a2) ** 2);
  const noiseB = firstSd * Math.sqrt(1 - a2);
  let px = 0;
  let py = 0;
  let vx = 0;
  let vy = 0;
  let sx = 0;
  let sy = 0;
  let ox = firstSd * rng.normal();
  let oy = firstSd * rng.normal();
  let nx = ox;
  let ny = oy;
  // Burn in the cascade (10 time constants), so the first bins are not rougher than the rest.
  for (let i = 0; i < Math.ceil((10 * FORCE_NOISE_TAU) / dt); i++) {
    ox = noiseA * ox + noiseB * rng.normal();
    oy = noiseA * oy + noiseB * rng.normal();
    nx = noiseA * nx + (1 - noiseA) * ox;
    ny = noiseA * ny + (1 - noiseA) * oy;
  }
  let target = -1;
  // Start somewhere inside a center hold, so sessions do not all open with a trial at the same instant.
  let remaining = rng.uniform(0, CENTER_HOLD[1]);
  for (let i = 0; i < n; i++) {
    remaining -= dt;
    if (remaining <= 0) {
      if (target < 0) {
        target = Math.floor(rng.next() * TARGETS);
        const a = (2 * Math.PI * target) / TARGETS + ANGLE_JITTER * rng.normal();
        const r = b.radius * (1 + RADIUS_JITTER * rng.normal());
        sx = r * Math.cos(a);
        sy = r * Math.sin(a);
        remaining += rng.uniform(OUTER_HOLD[0], OUTER_HOLD[1]);
      } else {
        target = -1;
        sx = 0;
        sy = 0;
        remaining += rng.uniform(CENTER_HOLD[0], CENTER_HOLD[1]);
      }
    }
    // Exact step of e'' = -w^2 e - 2 w e' (e = p - s): (e + (v + w e) dt) e^{-w dt}, (v - w (v + w e) dt) e^{-w dt}.
    const ex = px - sx;
    const ey = py - sy;
    const cx = vx + w * ex;
    const cy = vy + w * ey;
    px = sx + (ex + cx * dt) * decay;
    py = sy + (ey + cy * dt) * decay;
    vx = (vx - w * cx * dt) * decay;
    vy = (vy - w * cy * dt) * decay;
    ox = noiseA * ox + noiseB * rng.normal();
    oy = noiseA * oy + noiseB * rng.normal();
    nx = noiseA * nx + (1 - noiseA) * ox;
    ny = noiseA * ny + (1 - noiseA) * oy;
    f.px[i] = px;
    f.py[i] = py;
    f.vx[i] = vx;
    f.vy[i] = vy;
    f.fx[i] = b.center[0] + px + nx;
    f.fy[i] = b.center[1] + py + ny;
    f.target[i] = target;
  }
  return f;
}

function fireUnits(
  rng: Random,
  x: Float32Array,
  n: number,
  channels: number,
  bin: number,
  force: Force,
  tuning: Tuning,
  p: { leadBins: number; derivative: number; radius: number; privateNoise: number; offsetX: number; offsetY: number },
): void {
  const ux = new Float64Array(n);
  const uy = new Float64Array(n);
  const inv = 1 / p.radius;
  for (let i = 0; i < n; i++) {
    const k = i + p.leadBins;
    ux[i] = (p.offsetX + force.px[k] + p.derivative * force.vx[k]) * inv;
    uy[i] = (p.offsetY + force.py[k] + p.derivative * force.vy[k]) * inv;
  }
  const etaA = Math.exp(-bin / PRIVATE_NOISE_TAU);
  // Uniform innovations (sqrt(12) (u - 1/2) has unit variance): an AR(1) that sums ~10 of them within its time
  // constant is Gaussian to the eye, and a Box-Muller normal per unit and bin took a fifth of the generation time.
  const etaB = p.privateNoise * Math.sqrt(1 - etaA * etaA) * Math.sqrt(12);
  // exp(eta - s^2/2) has mean 1, so the noise adds variance without moving the mean rate.
  const etaBias = (p.privateNoise * p.privateNoise) / 2;
  const scale = 1 / bin;
  // Unit by unit, so a unit's tuning and noise state stay in registers across its bins.
  for (let j = 0; j < channels; j++) {
    if (tuning.present[j] === 0) continue;
    const base = tuning.baseline[j];
    const gx = tuning.gain[j] * Math.cos(tuning.theta[j]);
    const gy = tuning.gain[j] * Math.sin(tuning.theta[j]);
    let eta = p.privateNoise * rng.normal();
    for (let i = 0, at = j; i < n; i++, at += channels) {
      eta = etaA * eta + etaB * (rng.next() - 0.5);
      const rate = softplus(base + gx * ux[i] + gy * uy[i]) * Math.exp(eta - etaBias);
      x[at] = poisson(rng, rate * bin) * scale;
    }
  }
}

function softplus(d: number): number {
  const z = d / SOFTPLUS_HZ;
  if (z > 15) return d; // log1p(e^-15) * 4 Hz < 1e-6 Hz
  return SOFTPLUS_HZ * (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z)));
}

const LOG_FACTORIAL = (() => {
  const t = new Float64Array(256);
  for (let k = 1; k < t.length; k++) t[k] = t[k - 1] + Math.log(k);
  return t;
})();

function logFactorial(k: number): number {
  if (k < LOG_FACTORIAL.length) return LOG_FACTORIAL[k];
  // Stirling's series, accurate to ~1e-12 for k >= 256.
  const x = k + 1;
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * x) - 1 / (360 * x * x * x);
}

/**
 * Poisson(mu) count. Inversion (one uniform, O(mu) steps) for the small means that spike counts in a bin have;
 * Hormann's PTRS transformed rejection (1993) above, whose cost does not grow with mu.
 */
function poisson(rng: Random, mu: number): number {
  if (!(mu > 0)) return 0;
  if (mu < 12) {
    let p = Math.exp(-mu);
    let cdf = p;
    const u = rng.next();
    let k = 0;
    while (u > cdf && k < 200) {
      k++;
      p *= mu / k;
      cdf += p;
    }
    return k;
  }
  const slam = Math.sqrt(mu);
  const logMu = Math.log(mu);
  const b = 0.931 + 2.53 * slam;
  const a = -0.059 + 0.02483 * b;
  const invAlpha = 1.1239 + 1.1328 / (b - 3.4);
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const u = rng.next() - 0.5;
    const v = rng.next();
    const us = 0.5 - Math.abs(u);
    const k = Math.floor(((2 * a) / us + b) * u + mu + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (Math.log(v) + Math.log(invAlpha) - Math.log(a / (us * us) + b) <= -mu + k * logMu - logFactorial(k)) return k;
  }
}
