/**
 * Puts a Jango session's 2-D wrist force into the task frame (force x along the target x axis, force y along the
 * target y axis), using only the rig's own record of the task: the trial table and the force during trials.
 *
 * Why it is needed: the force sensor's columns are not wired the same way in every session. In Day0 the column
 * labelled Force_x follows the targets' y axis and Force_y their x axis (swapped, no sign flip); Day16 follows the
 * target axes as labelled. A decoder or an EMG-to-force map carried from one session to the other then scores
 * R2 about -1, a problem of bookkeeping, not of neural drift, so it is fixed at load time rather than learned.
 *
 * How: at the end of a rewarded trial the monkey has held the cursor in the target, so the force then points at
 * the target. Per rewarded trial the force is averaged over the last `windowSeconds` (default 0.5 s) before the
 * trial end, and each of the 8 signed axis permutations of 2-D is scored by how well it maps that force onto the
 * target centre: the mean over the two axes of the Pearson correlation between the transformed force and the
 * target centre coordinate. Correlation, not cosine, because the raw force has a large constant offset (about
 * -1200 to -1700 units at rest in both files), which shifts every angle but not a correlation.
 *
 * Why 0.5 s: in both files every rewarded trial ends at least 1.08 s after the outer target appeared (median
 * 1.22 s), and the correlation between force and target is 0.997 for the last 0.25 s and the last 0.5 s, 0.995
 * for the last 1 s, but 0.28-0.44 for the 0.5 s before that (the movement). Half a second (10 bins) averages out
 * bin noise and stays inside the hold; it is also clipped to start no earlier than the outer target's appearance,
 * so a short trial never averages in the force from before the target was shown.
 *
 * The identity is kept, with `applied: false` and a reason, when the evidence is weak: too few usable rewarded
 * trials, targets that do not vary along both axes, a best score below `minScore`, or a best score within
 * `minMargin` of the runner-up (the margin equals the weaker axis' correlation when the other pairings are near
 * zero, so it guards against a frame decided by one axis alone).
 */

/** One row of the trial table. Times are in seconds, on the clock of `timeframe`. */
export interface JangoTrial {
  readonly start: number;
  readonly end: number;
  /** When the outer target appeared. */
  readonly targetOn: number;
  /** Centre of the target box, ((ULx + LRx) / 2, (ULy + LRy) / 2). */
  readonly targetCenter: [number, number];
  /** Result code 82 ('R'). */
  readonly rewarded: boolean;
  /** The result as its character ('R', 'A', 'I', 'N', 'F', ...). */
  readonly result: string;
  readonly targetId: number;
  readonly catchTrial: boolean;
}

export type Sign = 1 | -1;

/** Aligned column k = signs[k] * raw column permutation[k]. */
export interface AxisTransform {
  readonly permutation: [number, number];
  readonly signs: [Sign, Sign];
}

export interface ForceFrame extends AxisTransform {
  /** The transform is in effect on y. False keeps the identity (see `reason`); a confident identity is applied. */
  readonly applied: boolean;
  /** Score (mean per-axis correlation with the target centre, -1..1) of the best candidate; NaN if not evaluated. */
  readonly score: number;
  /** Score of the second-best candidate; NaN if not evaluated. */
  readonly runnerUp: number;
  /** Rewarded, non-catch trials that had force bins in their window: the evidence the scores come from. */
  readonly rewardedTrials: number;
  /** The best-scoring candidate, also when it was not applied. */
  readonly candidate?: AxisTransform;
  readonly windowSeconds: number;
  /** Why the identity was kept (or, when applied, nothing). */
  readonly reason?: string;
}

export interface ForceFrameOptions {
  /** Averaging window before each trial end, s (default 0.5). */
  readonly windowSeconds?: number;
  /** Fewer usable rewarded trials than this keeps the identity (default 16: two per target of the 8-target task). */
  readonly minTrials?: number;
  /** A best score below this keeps the identity (default 0.5). */
  readonly minScore?: number;
  /** A best score less than this above the runner-up keeps the identity (default 0.25). */
  readonly minMargin?: number;
}

export interface ForceFrameInput {
  readonly trials: readonly JangoTrial[];
  /** Bin times, s, strictly increasing. */
  readonly t: ArrayLike<number>;
  /** Force, row-major, nOutputs (must be 2) per bin. */
  readonly y: ArrayLike<number>;
  readonly nOutputs: number;
}

/** Column meanings the parser relies on, as `trialtablelabels` spells them in the Jango files. */
export const TRIAL_TABLE_LABELS = [
  'trial start time',
  'tgt ULx',
  'tgt ULy',
  'tgt LRx',
  'tgt LRy',
  'outer target time',
  'go/catch',
  'trial end time',
  'Result(R,A,I,orN)',
  'tgt_id',
  'catch',
  'adapt',
] as const;

const REWARDED = 82; // 'R'
const IDENTITY: AxisTransform = { permutation: [0, 1], signs: [1, 1] };

/** The 8 signed axis permutations of 2-D, identity first (so it wins exact ties). */
export const AXIS_TRANSFORMS: readonly AxisTransform[] = (() => {
  const out: AxisTransform[] = [];
  for (const permutation of [
    [0, 1],
    [1, 0],
  ] as [number, number][]) {
    for (const s0 of [1, -1] as Sign[]) for (const s1 of [1, -1] as Sign[]) out.push({ permutation, signs: [s0, s1] });
  }
  return out;
})();

/**
 * Parses the trial table from its column-major data (rows x cols, as MAT stores it). `labels`, when given, must
 * name the columns read as TRIAL_TABLE_LABELS does (case and spaces ignored); `what` names the field in errors.
 */
export function parseTrialTable(
  data: ArrayLike<number>,
  rows: number,
  cols: number,
  labels?: readonly string[],
  what = 'trialtable',
): JangoTrial[] {
  if (cols !== TRIAL_TABLE_LABELS.length) throw new Error(`${what} is ${rows}x${cols}, expected ${TRIAL_TABLE_LABELS.length} columns (${TRIAL_TABLE_LABELS.join(', ')})`);
  if (data.length !== rows * cols) throw new Error(`${what} holds ${data.length} values for ${rows}x${cols}`);
  if (labels !== undefined) {
    if (labels.length !== cols) throw new Error(`${what}labels has ${labels.length} labels for ${cols} columns of ${what}`);
    const norm = (s: string): string => s.replace(/\s+/g, '').toLowerCase();
    // 'go/catch' and 'adapt' are not read, so a relabelling of those alone does not stop the load.
    for (const j of [0, 1, 2, 3, 4, 5, 7, 8, 9, 10]) {
      if (norm(labels[j]) !== norm(TRIAL_TABLE_LABELS[j])) {
        throw new Error(`${what}labels: column ${j + 1} is '${labels[j]}', expected '${TRIAL_TABLE_LABELS[j]}': the trial table's layout differs from the one this loader reads`);
      }
    }
  }
  const at = (i: number, j: number): number => Number(data[i + j * rows]);
  const trials: JangoTrial[] = [];
  for (let i = 0; i < rows; i++) {
    const code = at(i, 8);
    trials.push({
      start: at(i, 0),
      end: at(i, 7),
      targetOn: at(i, 5),
      targetCenter: [(at(i, 1) + at(i, 3)) / 2, (at(i, 2) + at(i, 4)) / 2],
      rewarded: code === REWARDED,
      result: Number.isInteger(code) && code > 0 && code < 0x10000 ? String.fromCharCode(code) : String(code),
      targetId: at(i, 9),
      catchTrial: at(i, 10) !== 0 && !Number.isNaN(at(i, 10)),
    });
  }
  return trials;
}

export interface EndOfTrialForce {
  /** Index into `trials` of each trial used. */
  readonly trialIndex: number[];
  /** Mean force per trial used, nOutputs per row. */
  readonly force: Float64Array;
  /** Target centre per trial used, 2 per row. */
  readonly center: Float64Array;
}

/**
 * Mean force over [max(end - windowSeconds, targetOn), end) of each rewarded, non-catch trial with finite target
 * and times; trials whose window holds no bin (e.g. past the recording) or a non-finite force value are left out.
 */
export function endOfTrialForce(input: ForceFrameInput, windowSeconds = 0.5): EndOfTrialForce {
  const { trials, t, y, nOutputs } = input;
  const trialIndex: number[] = [];
  const force: number[] = [];
  const center: number[] = [];
  const sum = new Float64Array(nOutputs);
  trials.forEach((trial, k) => {
    if (!trial.rewarded || trial.catchTrial) return;
    const [cx, cy] = trial.targetCenter;
    if (![trial.end, cx, cy].every(Number.isFinite)) return;
    const from = Number.isFinite(trial.targetOn) ? Math.max(trial.end - windowSeconds, trial.targetOn) : trial.end - windowSeconds;
    sum.fill(0);
    let n = 0;
    for (let i = lowerBound(t, from); i < t.length && t[i] < trial.end; i++) {
      for (let j = 0; j < nOutputs; j++) sum[j] += y[i * nOutputs + j];
      n++;
    }
    if (n === 0 || !sum.every(Number.isFinite)) return;
    trialIndex.push(k);
    for (let j = 0; j < nOutputs; j++) force.push(sum[j] / n);
    center.push(cx, cy);
  });
  return { trialIndex, force: Float64Array.from(force), center: Float64Array.from(center) };
}

/** Finds the signed axis permutation that puts end-of-trial force into the target frame (see the file comment). */
export function detectForceFrame(input: ForceFrameInput, options: ForceFrameOptions = {}): ForceFrame {
  const windowSeconds = options.windowSeconds ?? 0.5;
  const minTrials = options.minTrials ?? 16;
  const minScore = options.minScore ?? 0.5;
  const minMargin = options.minMargin ?? 0.25;
  if (input.nOutputs !== 2) throw new Error(`force has ${input.nOutputs} columns; the task-frame search is for 2-D force`);
  if (input.y.length !== input.t.length * 2) throw new Error(`force holds ${input.y.length} values for ${input.t.length} bins x 2`);

  const { force, center } = endOfTrialForce(input, windowSeconds);
  const n = center.length / 2;
  const keep = (reason: string, score = NaN, runnerUp = NaN, candidate?: AxisTransform): ForceFrame => ({
    applied: false,
    ...IDENTITY,
    score,
    runnerUp,
    rewardedTrials: n,
    ...(candidate ? { candidate } : {}),
    windowSeconds,
    reason: `${reason}; force kept in the file's column order`,
  });
  if (n < minTrials) return keep(`only ${n} rewarded trials with force in the last ${windowSeconds} s (need ${minTrials})`);

  // r[j][k]: raw force column j against target axis k; every candidate's score is a signed mean of two of them.
  const r = [0, 1].map((j) => [0, 1].map((k) => pearson(force, j, center, k, n)));
  for (const k of [0, 1]) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      lo = Math.min(lo, center[i * 2 + k]);
      hi = Math.max(hi, center[i * 2 + k]);
    }
    if (!(hi > lo)) return keep(`the targets of the ${n} rewarded trials do not vary along ${k === 0 ? 'x' : 'y'}, so that axis cannot be matched`);
  }
  const rr = r.map((row) => row.map((v) => (Number.isNaN(v) ? 0 : v))); // a constant force column matches nothing
  const scored = AXIS_TRANSFORMS.map((tr) => ({ tr, score: (tr.signs[0] * rr[tr.permutation[0]][0] + tr.signs[1] * rr[tr.permutation[1]][1]) / 2 }));
  // Stable sort: on an exact tie the identity (listed first) stays ahead.
  scored.sort((a, b) => b.score - a.score);
  const [best, second] = scored;
  if (best.score < minScore) {
    return keep(`weak evidence: the best transform (${describeTransform(best.tr)}) scores r = ${best.score.toFixed(3)} < ${minScore} over ${n} rewarded trials`, best.score, second.score, best.tr);
  }
  if (best.score - second.score < minMargin) {
    return keep(
      `ambiguous: the best transform (${describeTransform(best.tr)}, r = ${best.score.toFixed(3)}) is within ${minMargin} of the runner-up (${describeTransform(second.tr)}, r = ${second.score.toFixed(3)})`,
      best.score,
      second.score,
      best.tr,
    );
  }
  return { applied: true, ...best.tr, score: best.score, runnerUp: second.score, rewardedTrials: n, candidate: best.tr, windowSeconds };
}

/** y (row-major, 2 per bin) with the transform applied, as a new array; the input is left as it is. */
export function applyAxisTransform(y: Float32Array, tr: AxisTransform): Float32Array {
  const out = new Float32Array(y.length);
  const [p0, p1] = tr.permutation;
  const [s0, s1] = tr.signs;
  for (let i = 0; i + 1 < y.length; i += 2) {
    out[i] = s0 * y[i + p0];
    out[i + 1] = s1 * y[i + p1];
  }
  return out;
}

/** Labels that follow their columns, '-' marking a flipped sign (e.g. ['Force_y', 'Force_x'] after a swap). */
export function transformLabels(labels: readonly string[], tr: AxisTransform): string[] {
  if (labels.length !== 2) return [...labels];
  return [0, 1].map((k) => (tr.signs[k] < 0 ? '-' : '') + labels[tr.permutation[k]]);
}

export function isIdentity(tr: AxisTransform): boolean {
  return tr.permutation[0] === 0 && tr.permutation[1] === 1 && tr.signs[0] === 1 && tr.signs[1] === 1;
}

/** 'identity', 'swap', 'swap, flip x', 'flip y', ...: the flips name the aligned axes. */
export function describeTransform(tr: AxisTransform): string {
  const parts: string[] = [];
  if (tr.permutation[0] === 1) parts.push('swap');
  if (tr.signs[0] < 0) parts.push('flip x');
  if (tr.signs[1] < 0) parts.push('flip y');
  return parts.length === 0 ? 'identity' : parts.join(', ');
}

function pearson(a: Float64Array, ja: number, b: Float64Array, jb: number, n: number): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i * 2 + ja];
    mb += b[i * 2 + jb];
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i * 2 + ja] - ma;
    const db = b[i * 2 + jb] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : NaN;
}

function lowerBound(t: ArrayLike<number>, v: number): number {
  let lo = 0;
  let hi = t.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (t[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
