import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { replaySessions, type ReplaySession } from '../src/adapters/replay/replay.js';
import { simulateMotorCortexSessions, type SimulatedSession } from '../src/simulator/motor-cortex.js';
import type { DriftMarker, TickEvent } from '../src/streams/messages.js';

const SEED = 1;
const LAGS = 4;

const bytes = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameBytes = (a: ArrayBufferView, b: ArrayBufferView): boolean => bytes(a).equals(bytes(b));
const deg = (rad: number): number => (rad * 180) / Math.PI;

// ---- a least-squares decoder on the last LAGS bins, as the Jango README measures it ------------------------------

interface Decoder {
  /** (1 + LAGS * c) x 2, row-major: intercept, then lag 0 channels, lag 1 channels, ... */
  readonly w: Float64Array;
  readonly c: number;
}

/** Features of bin t: [1, x_t, x_{t-1}, ..., x_{t-LAGS+1}] into f at stride `stride` (column-major blocks). */
function features(s: SimulatedSession, t: number, f: Float64Array, r: number, stride: number): void {
  const c = s.nChannels;
  f[r] = 1;
  for (let l = 0; l < LAGS; l++) {
    const row = (t - l) * c;
    for (let j = 0; j < c; j++) f[(1 + l * c + j) * stride + r] = s.x[row + j];
  }
}

/** Normal equations in Float64, solved by Cholesky, fit on bins [from, to) (from >= LAGS - 1). */
function fit(s: SimulatedSession, from: number, to: number): Decoder {
  const c = s.nChannels;
  const d = 1 + LAGS * c;
  const G = new Float64Array(d * d);
  const B = new Float64Array(d * 2);
  // Blocks of R bins (a multiple of 4), features column-major: each entry of X'X is then a short dot product in
  // registers, faster than rank-1 updates of a 1.2 MB matrix.
  const R = 64;
  const F = new Float64Array(d * R);
  const Y = new Float64Array(2 * R);
  for (let t0 = from; t0 < to; t0 += R) {
    const rows = Math.min(R, to - t0);
    F.fill(0);
    Y.fill(0);
    for (let r = 0; r < rows; r++) {
      features(s, t0 + r, F, r, R);
      Y[r] = s.y[2 * (t0 + r)];
      Y[R + r] = s.y[2 * (t0 + r) + 1];
    }
    for (let a = 0; a < d; a++) {
      const oa = a * R;
      for (let b = a; b < d; b++) {
        const ob = b * R;
        let a0 = 0;
        let a1 = 0;
        let a2 = 0;
        let a3 = 0;
        for (let r = 0; r < R; r += 4) {
          a0 += F[oa + r] * F[ob + r];
          a1 += F[oa + r + 1] * F[ob + r + 1];
          a2 += F[oa + r + 2] * F[ob + r + 2];
          a3 += F[oa + r + 3] * F[ob + r + 3];
        }
        G[a * d + b] += a0 + a1 + (a2 + a3);
      }
      let y0 = 0;
      let y1 = 0;
      for (let r = 0; r < R; r++) {
        y0 += F[oa + r] * Y[r];
        y1 += F[oa + r] * Y[R + r];
      }
      B[2 * a] += y0;
      B[2 * a + 1] += y1;
    }
  }
  for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) G[a * d + b] = G[b * d + a];
  // Silent channels give all-zero columns; a ridge of 1e-4 of the mean feature power keeps the system definite
  // without shrinking the fit measurably.
  let power = 0;
  for (let a = 1; a < d; a++) power += G[a * d + a];
  for (let a = 1; a < d; a++) G[a * d + a] += (1e-4 * power) / (d - 1);
  for (let j = 0; j < d; j++) {
    let diag = G[j * d + j];
    for (let k = 0; k < j; k++) diag -= G[j * d + k] * G[j * d + k];
    const l = Math.sqrt(diag);
    G[j * d + j] = l;
    for (let i = j + 1; i < d; i++) {
      let v = G[i * d + j];
      for (let k = 0; k < j; k++) v -= G[i * d + k] * G[j * d + k];
      G[i * d + j] = v / l;
    }
  }
  const w = new Float64Array(d * 2);
  const z = new Float64Array(d);
  for (let o = 0; o < 2; o++) {
    for (let i = 0; i < d; i++) {
      let v = B[2 * i + o];
      for (let k = 0; k < i; k++) v -= G[i * d + k] * z[k];
      z[i] = v / G[i * d + i];
    }
    for (let i = d - 1; i >= 0; i--) {
      let v = z[i];
      for (let k = i + 1; k < d; k++) v -= G[k * d + i] * w[2 * k + o];
      w[2 * i + o] = v / G[i * d + i];
    }
  }
  return { w, c };
}

/** R2 per output of the decoder on bins [from, to). */
function r2(dec: Decoder, s: SimulatedSession, from: number, to: number): [number, number] {
  assert.equal(s.nChannels, dec.c);
  const d = dec.w.length / 2;
  const f = new Float64Array(d);
  const out: number[] = [];
  for (let o = 0; o < 2; o++) {
    let mean = 0;
    for (let t = from; t < to; t++) mean += s.y[2 * t + o];
    mean /= to - from;
    let sse = 0;
    let sst = 0;
    for (let t = from; t < to; t++) {
      features(s, t, f, 0, 1);
      let p = 0;
      for (let a = 0; a < d; a++) p += dec.w[2 * a + o] * f[a];
      sse += (s.y[2 * t + o] - p) ** 2;
      sst += (s.y[2 * t + o] - mean) ** 2;
    }
    out.push(1 - sse / sst);
  }
  return out as [number, number];
}

const mean2 = (v: readonly [number, number]): number => (v[0] + v[1]) / 2;
const fmt = (v: readonly number[]): string => v.map((x) => x.toFixed(3)).join(', ');

/** Channel j's samples in a session. */
function channel(s: SimulatedSession, j: number): Float32Array {
  const n = s.t.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = s.x[i * s.nChannels + j];
  return out;
}

// ---- the tests ----------------------------------------------------------------------------------------------------

describe('simulateMotorCortexSessions, defaults (Jango-shaped)', () => {
  let sessions: SimulatedSession[];

  before(() => {
    const start = performance.now();
    sessions = simulateMotorCortexSessions({ seed: SEED });
    console.log(`defaults (20 + 15 min, 96 channels): ${(performance.now() - start).toFixed(0)} ms`);
    const one = performance.now();
    simulateMotorCortexSessions({ seed: SEED + 1, sessions: 1, sessionSeconds: 1200 });
    console.log(`one session of 20 min, 96 channels: ${(performance.now() - one).toFixed(0)} ms`);
  });

  test('shapes, names and the time axis', () => {
    assert.equal(sessions.length, 2);
    const bins = [24_000, 18_000];
    sessions.forEach((s, k) => {
      assert.equal(s.name, `SimCortex_seed${SEED}_S${k + 1}`);
      assert.equal(s.nChannels, 96);
      assert.equal(s.nOutputs, 2);
      assert.equal(s.binSeconds, 0.05);
      assert.deepEqual(s.yLabels, ['Force_x', 'Force_y']);
      assert.equal(s.t.length, bins[k]);
      assert.equal(s.x.length, bins[k] * 96);
      assert.equal(s.y.length, bins[k] * 2);
      assert.equal(s.truth.index, k);
      assert.equal(s.truth.target.length, bins[k]);
      assert.equal(s.t[0], 0);
      for (let i = 1; i < s.t.length; i++) {
        assert.ok(s.t[i] > s.t[i - 1], `t not increasing at ${i}`);
        assert.ok(Math.abs(s.t[i] - s.t[i - 1] - 0.05) < 1e-9, `step at ${i}`);
      }
      assert.ok(Math.abs(s.t[s.t.length - 1] - (bins[k] - 1) * 0.05) < 1e-9);
    });
  });

  test('rates are spike counts x 20 Hz; force is finite and Jango-sized', () => {
    for (const s of sessions) {
      let maxCount = 0;
      let spikes = 0;
      for (let i = 0; i < s.x.length; i++) {
        const v = s.x[i];
        assert.ok(v >= 0 && Number.isFinite(v), `x[${i}] = ${v}`);
        const count = v * s.binSeconds;
        assert.ok(Math.abs(count - Math.round(count)) < 1e-6, `x[${i}] = ${v} is not a count / binSeconds`);
        maxCount = Math.max(maxCount, Math.round(count));
        spikes += Math.round(count);
      }
      const n = s.t.length;
      const sd: number[] = [];
      const mean: number[] = [];
      for (let o = 0; o < 2; o++) {
        let m = 0;
        for (let i = 0; i < n; i++) m += s.y[2 * i + o];
        m /= n;
        let v = 0;
        for (let i = 0; i < n; i++) {
          assert.ok(Number.isFinite(s.y[2 * i + o]));
          v += (s.y[2 * i + o] - m) ** 2;
        }
        mean.push(m);
        sd.push(Math.sqrt(v / n));
      }
      const meanRate = spikes / n / s.binSeconds / s.nChannels;
      const force = `force mean [${mean.map((m) => m.toFixed(0))}] sd [${sd.map((v) => v.toFixed(0))}]`;
      console.log(`${s.name}: mean rate ${meanRate.toFixed(1)} Hz, max count ${maxCount}, ${force}`);
      assert.ok(meanRate > 15 && meanRate < 60, `mean rate ${meanRate}`);
      for (const v of sd) assert.ok(v > 1200 && v < 2300, `force sd ${v}`);
    }
  });

  test('a least-squares decoder on 4 lagged bins: R2 0.5-0.9 within a session, at least 0.3 lower frozen on the next', () => {
    const [s1, s2] = sessions;
    const h1 = s1.t.length / 2;
    const h2 = s2.t.length / 2;
    const start = performance.now();
    const dec1 = fit(s1, LAGS - 1, h1);
    const dec2 = fit(s2, LAGS - 1, h2);
    const within1 = r2(dec1, s1, h1, s1.t.length);
    const within2 = r2(dec2, s2, h2, s2.t.length);
    const frozen = r2(dec1, s2, h2, s2.t.length);
    console.log(`decoders fit and scored in ${(performance.now() - start).toFixed(0)} ms`);
    console.log(`R2 within session 1 (held-out half): [${fmt(within1)}], mean ${mean2(within1).toFixed(3)}`);
    console.log(`R2 within session 2 (refit, held-out half): [${fmt(within2)}], mean ${mean2(within2).toFixed(3)}`);
    console.log(`R2 of the session-1 decoder frozen on session 2 (same half): [${fmt(frozen)}], mean ${mean2(frozen).toFixed(3)}`);
    for (const v of [...within1, ...within2]) assert.ok(v >= 0.5 && v <= 0.9, `within-session R2 ${v}`);
    assert.ok(mean2(within1) - mean2(frozen) >= 0.3, `frozen decoder lost only ${mean2(within1) - mean2(frozen)} R2`);
    assert.ok(mean2(within2) - mean2(frozen) >= 0.3, `refit recovers only ${mean2(within2) - mean2(frozen)} R2`);
  });

  test('ground truth: the drift at the boundary is what the data show', () => {
    const [s1, s2] = sessions;
    const t1 = s1.truth;
    const t2 = s2.truth;
    assert.equal(t1.rotation, 0);
    assert.deepEqual([t1.dropped, t1.appeared, t1.remapped], [[], [], []]);
    const r = Math.abs(deg(t2.rotation));
    assert.ok(r >= 25 && r <= 45, `rotation ${deg(t2.rotation)} degrees`);
    assert.equal(t2.totalRotation, t2.rotation);

    // Units that dropped out are silent in session 2 and fired in session 1; appeared ones the other way round.
    assert.equal(t2.dropped.length, 2);
    for (const j of t2.dropped) {
      assert.equal(t1.present[j], 1);
      assert.equal(t2.present[j], 0);
      assert.ok(channel(s2, j).every((v) => v === 0), `dropped unit ${j} fires in session 2`);
      assert.ok(channel(s1, j).some((v) => v > 0), `dropped unit ${j} never fired in session 1`);
    }
    assert.ok(t2.appeared.length > 0);
    for (const j of t2.appeared) {
      assert.equal(t1.present[j], 0);
      assert.ok(channel(s1, j).every((v) => v === 0), `appeared unit ${j} fires in session 1`);
      assert.ok(channel(s2, j).some((v) => v > 0), `appeared unit ${j} never fires in session 2`);
    }
    for (const [s, truth] of [[s1, t1], [s2, t2]] as const) {
      for (let j = 0; j < s.nChannels; j++) if (truth.present[j] === 0) assert.ok(channel(s, j).every((v) => v === 0), `silent channel ${j} of ${s.name}`);
    }

    // The units that kept their neuron rotated by the common angle, give or take their jitter.
    let sx = 0;
    let sy = 0;
    let kept = 0;
    const moved = new Set([...t2.remapped, ...t2.appeared, ...t2.dropped]);
    for (let j = 0; j < s1.nChannels; j++) {
      if (moved.has(j) || t1.present[j] === 0) continue;
      const dth = t2.preferredDirection[j] - t1.preferredDirection[j];
      sx += Math.cos(dth);
      sy += Math.sin(dth);
      kept++;
    }
    const meanRotation = deg(Math.atan2(sy, sx));
    console.log(`rotation ${deg(t2.rotation).toFixed(1)} deg; kept units' mean rotation ${meanRotation.toFixed(1)} deg over ${kept} units`);
    console.log(`remapped ${t2.remapped.length} units, dropped [${t2.dropped}], appeared [${t2.appeared}]`);
    assert.ok(Math.abs(meanRotation - deg(t2.rotation)) < 5);
    assert.ok(kept > 30);

    // Per-channel mean rates decorrelate across the boundary about as much as Jango's (0.57).
    const means = [s1, s2].map((s) => {
      const m = new Float64Array(s.nChannels);
      for (let i = 0; i < s.t.length; i++) for (let j = 0; j < s.nChannels; j++) m[j] += s.x[i * s.nChannels + j] / s.t.length;
      return m;
    });
    const corr = pearson(means[0], means[1]);
    console.log(`per-channel mean rates correlate ${corr.toFixed(2)} across the boundary`);
    assert.ok(corr > 0.3 && corr < 0.9, `mean-rate correlation ${corr}`);

    // The force is the same task in both sessions: a target per trial, the center between trials.
    for (const s of sessions) {
      const seen = new Set(s.truth.target);
      assert.deepEqual([...seen].sort((a, b) => a - b), [-1, 0, 1, 2, 3, 4, 5, 6, 7]);
    }
  });

  test('replaySessions takes the sessions as they are and declares each one', async () => {
    const short = simulateMotorCortexSessions({ seed: SEED, sessionSeconds: [30, 20] });
    const replayable: readonly ReplaySession[] = short;
    const all = await lastValueFrom(replaySessions(replayable, { stream: 'sim', speed: 'fast', progress: false }).pipe(toArray()));
    const markers = all.filter((m): m is DriftMarker => m.kind === 'drift');
    const ticks = all.filter((m): m is TickEvent => m.kind === 'tick');
    assert.deepEqual(
      markers.map((m) => [m.seq, m.source, m.session]),
      [
        [0, 'session', `SimCortex_seed${SEED}_S1`],
        [600, 'session', `SimCortex_seed${SEED}_S2`],
      ],
    );
    assert.equal(ticks.length, 1000);
    assert.equal(all.indexOf(markers[1]) + 1, all.indexOf(ticks[600]));
    // Time runs on across the boundary, one bin after the last bin of session 1.
    assert.ok(Math.abs(ticks[600].t - 30) < 1e-9, `t ${ticks[600].t}`);
    const [a, b] = short;
    assert.deepEqual(Array.from(ticks[5].x), Array.from(a.x.subarray(5 * 96, 6 * 96)));
    assert.deepEqual(Array.from(ticks[5].y ?? []), Array.from(a.y.subarray(10, 12)));
    assert.deepEqual(Array.from(ticks[607].x), Array.from(b.x.subarray(7 * 96, 8 * 96)));
    assert.deepEqual(Array.from(ticks[607].y ?? []), Array.from(b.y.subarray(14, 16)));
  });
});

function pearson(a: Float64Array, b: Float64Array): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] / n;
    mb += b[i] / n;
  }
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

describe('simulateMotorCortexSessions, determinism and options', () => {
  const small = { sessionSeconds: [60, 45, 45] } as const;

  test('same seed, same bytes; another seed, other bytes', () => {
    const a = simulateMotorCortexSessions({ seed: 7, ...small });
    const b = simulateMotorCortexSessions({ seed: 7, ...small });
    const c = simulateMotorCortexSessions({ seed: 8, ...small });
    assert.equal(a.length, 3);
    for (let k = 0; k < a.length; k++) {
      assert.ok(sameBytes(a[k].x, b[k].x) && sameBytes(a[k].y, b[k].y) && sameBytes(a[k].t, b[k].t), `session ${k}`);
      assert.ok(sameBytes(a[k].truth.preferredDirection, b[k].truth.preferredDirection));
      assert.ok(sameBytes(a[k].truth.baseline, b[k].truth.baseline) && sameBytes(a[k].truth.gain, b[k].truth.gain));
      assert.ok(sameBytes(a[k].truth.present, b[k].truth.present) && sameBytes(a[k].truth.target, b[k].truth.target));
      assert.equal(a[k].truth.rotation, b[k].truth.rotation);
      assert.ok(!sameBytes(a[k].x, c[k].x), `seeds 7 and 8 give the same x in session ${k}`);
      assert.ok(!sameBytes(a[k].y, c[k].y), `seeds 7 and 8 give the same y in session ${k}`);
    }
    assert.ok(sameBytes(a[0].t, c[0].t));
  });

  test("a session's tuning and force do not depend on the earlier sessions' lengths", () => {
    const a = simulateMotorCortexSessions({ seed: 7, sessionSeconds: [60, 45] });
    const b = simulateMotorCortexSessions({ seed: 7, sessionSeconds: [20, 45] });
    assert.ok(sameBytes(a[1].y, b[1].y));
    assert.ok(sameBytes(a[1].x, b[1].x));
    assert.ok(sameBytes(a[1].truth.preferredDirection, b[1].truth.preferredDirection));
  });

  test('session lengths, channels, bin width and name', () => {
    const s = simulateMotorCortexSessions({ seed: 3, channels: 16, binSeconds: 0.02, sessions: 3, sessionSeconds: 10, name: 'Rig' });
    assert.deepEqual(
      s.map((x) => [x.name, x.t.length, x.nChannels, x.x.length, x.binSeconds]),
      [1, 2, 3].map((k) => [`Rig_seed3_S${k}`, 500, 16, 8000, 0.02]),
    );
    for (const x of s[0].x) assert.ok(Math.abs(x * 0.02 - Math.round(x * 0.02)) < 1e-6);
    assert.deepEqual(simulateMotorCortexSessions({ seed: 3, sessions: 3, sessionSeconds: 1 }).map((x) => x.t.length), [20, 20, 20]);
    // Default lengths, 1200 s then 900 s, in bins of 1 s to keep it cheap.
    assert.deepEqual(simulateMotorCortexSessions({ seed: 3, sessions: 3, binSeconds: 1 }).map((x) => x.t.length), [1200, 900, 900]);
    // No drift knobs: the population carries over unchanged.
    const still = simulateMotorCortexSessions({
      seed: 3,
      sessionSeconds: [5, 5],
      rotationDegrees: [0, 0],
      jitterDegrees: 0,
      gainDrift: 0,
      baselineDrift: 0,
      remapFraction: 0,
      dropFraction: 0,
      appearFraction: 0,
    });
    assert.ok(sameBytes(still[0].truth.baseline, still[1].truth.baseline) && sameBytes(still[0].truth.gain, still[1].truth.gain));
    assert.ok(sameBytes(still[0].truth.present, still[1].truth.present));
    for (let j = 0; j < 96; j++) assert.ok(Math.abs(Math.sin(still[1].truth.preferredDirection[j] - still[0].truth.preferredDirection[j])) < 1e-12);
  });

  test('bad options are refused', () => {
    const bad: Array<Parameters<typeof simulateMotorCortexSessions>[0]> = [
      { seed: 1.5 },
      { seed: 1, channels: 0 },
      { seed: 1, binSeconds: 0 },
      { seed: 1, sessions: 0 },
      { seed: 1, sessions: 3, sessionSeconds: [10, 10] },
      { seed: 1, sessionSeconds: -1 },
      { seed: 1, rotationDegrees: [40, 20] },
      { seed: 1, remapFraction: 1.5 },
      { seed: 1, forceNoise: Number.NaN },
      { seed: 1, name: '' },
    ];
    for (const options of bad) assert.throws(() => simulateMotorCortexSessions(options), RangeError, JSON.stringify(options));
  });
});
