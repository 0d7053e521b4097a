/**
 * The learning rate of one sine-shift configuration, chosen on the pre-shift phase only.
 *
 * Why. Comparing credit rules (or optimizers) at one common rate measures the rate as much as the rule: at RMSprop
 * lr 1e-3 the tanh RNN at n = 64 never fits the sine before the shift for lambda >= 0.75, so its "recovery" divides
 * by noise. The paper's claims are about the rules, so each configuration gets its best rate, chosen without
 * looking at anything the claims are scored on: not the shift, not the ticks after it, not the scored seeds.
 *
 * Rule. For every rate of the grid and every selection seed, the configuration learns the pre-shift stream alone
 * (t = 0 .. t0 - 1; the caller's scorer never builds a tick at or after t0) and is scored by E_pre, its MSE over
 * the last W ticks before t0. A rate's score is the mean E_pre over the selection seeds; a run that diverged
 * scores +infinity, so one diverged seed makes the rate's score infinite. The lowest score wins. Near-ties are
 * not merged (a margin would be one more knob to tune); exact ties, including all-infinite grids, go to the
 * smaller rate, the more conservative step. A chosen rate at either end of the grid is flagged: the best rate may
 * lie outside it.
 *
 * This file is pure: the scorer is injected, so the rule is tested on made-up scores.
 */

/** E_pre of one pre-shift run; null when it diverged. */
export interface PreShiftScore {
  readonly ePre: number | null;
  readonly persistencePre: number;
  readonly diverged: boolean;
  /** Ticks the run was shown: t0 unless it diverged first (an audit that it stopped at t0). */
  readonly ticks: number;
}

export type PreShiftScorer = (lr: number, seed: number) => PreShiftScore;

export interface RateCandidate {
  readonly lr: number;
  /** E_pre per selection seed (in the order of the selection seeds); null where the run diverged. */
  readonly ePre: (number | null)[];
  /** Mean E_pre over the selection seeds; null stands for +infinity (a seed diverged). */
  readonly score: number | null;
  /** Ticks each selection run was shown, per selection seed. */
  readonly ticks: number[];
}

export interface RateChoice {
  readonly selectionSeeds: readonly number[];
  readonly grid: readonly number[];
  readonly candidates: RateCandidate[];
  readonly chosen: number;
  /** The chosen rate's score (mean E_pre over the selection seeds); null when every candidate diverged. */
  readonly chosenScore: number | null;
  /** Persistence MSE over the same pre-shift window (the signal is deterministic, so one number). */
  readonly persistencePre: number;
  /** The chosen rate's mean E_pre is below the persistence error: it fitted the sine on the selection seeds. */
  readonly fittedOnSelection: boolean;
  /** 'low' or 'high' when the chosen rate is the grid's smallest or largest (and the grid has several). */
  readonly atGridEdge: 'low' | 'high' | null;
}

/** Index of the winning candidate: the lowest finite score, ties to the smaller rate; 0 when none is finite. */
export function chooseRateIndex(candidates: readonly Pick<RateCandidate, 'lr' | 'score'>[]): number {
  let best = -1;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i];
    if (c.score === null || !Number.isFinite(c.score)) continue;
    if (best < 0) {
      best = i;
      continue;
    }
    const b = candidates[best];
    if (c.score < (b.score as number) || (c.score === b.score && c.lr < b.lr)) best = i;
  }
  if (best >= 0) return best;
  let smallest = 0;
  for (let i = 1; i < candidates.length; i++) if (candidates[i].lr < candidates[smallest].lr) smallest = i;
  return smallest;
}

/** Scores every rate of `grid` on every selection seed and picks one (the rule in the file comment). */
export function selectRate(grid: readonly number[], selectionSeeds: readonly number[], score: PreShiftScorer): RateChoice {
  if (grid.length === 0) throw new RangeError('the rate grid is empty');
  if (selectionSeeds.length === 0) throw new RangeError('no selection seeds');
  const sorted = [...new Set(grid)].sort((a, b) => a - b);
  let persistencePre = Number.NaN;
  const candidates: RateCandidate[] = sorted.map((lr) => {
    const ePre: (number | null)[] = [];
    const ticks: number[] = [];
    let sum = 0;
    let infinite = false;
    for (const seed of selectionSeeds) {
      const s = score(lr, seed);
      if (Number.isFinite(s.persistencePre)) persistencePre = s.persistencePre;
      const e = s.diverged || s.ePre === null || !Number.isFinite(s.ePre) ? null : s.ePre;
      ePre.push(e);
      ticks.push(s.ticks);
      if (e === null) infinite = true;
      else sum += e;
    }
    return { lr, ePre, score: infinite ? null : sum / selectionSeeds.length, ticks };
  });
  const i = chooseRateIndex(candidates);
  const chosen = candidates[i];
  return {
    selectionSeeds: [...selectionSeeds],
    grid: sorted,
    candidates,
    chosen: chosen.lr,
    chosenScore: chosen.score,
    persistencePre,
    fittedOnSelection: chosen.score !== null && chosen.score < persistencePre,
    atGridEdge: sorted.length < 2 ? null : i === 0 ? 'low' : i === sorted.length - 1 ? 'high' : null,
  };
}
