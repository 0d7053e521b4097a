/**
 * The two-sample Kolmogorov-Smirnov test for two samples of the same size n, giving the statistic and p-value
 * that `scipy.stats.ks_2samp(x, y)` (two-sided, method 'auto') gives, bit for bit. Equal sizes are all KSWIN
 * needs (stat_size values against stat_size values), and they are the case where scipy's exact p-value is a
 * closed-form alternating sum rather than a lattice-path count.
 *
 * Statistic. scipy evaluates both empirical CDFs at every pooled value (counts of values <= t over n), takes
 * the largest difference either way, then, on its exact path, rounds D * n to an integer h and returns h / n.
 * The float differences are within a few ulps of integers over n, so h is exactly the integer
 * max_t |#{x <= t} - #{y <= t}|; that is what `ksDistanceCount` computes, in one merge pass over the sorted
 * samples (ties within or across samples are counted together, as scipy's searchsorted(side='right') does).
 *
 * P-value. For 1 <= h <= n, P(D >= h/n) under the null is
 *
 *     2 * sum_{k>=1} (-1)^(k+1) * C(2n, n - k h) / C(2n, n),
 *
 * which scipy evaluates (`_compute_prob_outside_square`) as a Horner-like nest P = A_0 (1 - A_1 (1 - A_2 ...))
 * from the innermost k = floor(n/h) outwards, each ratio A_k formed as a running product of h factors
 * (n - k h - j) / (n + k h + j + 1). `ksEqualSizePValue` performs those floating-point operations in the same
 * order, so the doubles agree exactly. h = 0 gives 1.
 *
 * One known difference: for a few (n, h) with small h the nest overshoots 1 by an ulp or two (for example
 * n = 30, h = 1 gives 1.0000000000000004); scipy then discards the exact value and uses its asymptotic
 * `kstwo.sf(h/n, round(n/2))`. Here the value is clipped to 1 instead. For n = 30 and n = 50 (the sizes River's
 * KSWIN defaults and common settings use) scipy's fallback also returns exactly 1, so nothing differs; over
 * n <= 400 the fallback happens for 360 (n, h) pairs, 33 of which scipy reports as a p-value in
 * [0.99996, 1) rather than 1. Only an alpha in that range could decide a detection differently.
 */

/** h = n * D: the largest gap between the two samples' counts at or below any pooled value. */
export function ksDistanceCount(sortedX: ArrayLike<number>, sortedY: ArrayLike<number>): number {
  const n = sortedX.length;
  const m = sortedY.length;
  let i = 0;
  let j = 0;
  let h = 0;
  while (i < n || j < m) {
    const t = j >= m || (i < n && sortedX[i] <= sortedY[j]) ? sortedX[i] : sortedY[j];
    while (i < n && sortedX[i] <= t) i++;
    while (j < m && sortedY[j] <= t) j++;
    const gap = i > j ? i - j : j - i;
    if (gap > h) h = gap;
  }
  return h;
}

/** scipy's two-sided exact p-value for D = h/n between two samples of size n (clipped to [0, 1]). */
export function ksEqualSizePValue(n: number, h: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`ksEqualSizePValue: n must be an integer >= 1, got ${n}`);
  if (!Number.isInteger(h) || h < 0 || h > n) throw new RangeError(`ksEqualSizePValue: h must be an integer in [0, n=${n}], got ${h}`);
  if (h === 0) return 1;
  let nest = 0;
  for (let k = Math.floor(n / h); k >= 0; k--) {
    let ratio = 1;
    for (let j = 0; j < h; j++) ratio = ((n - k * h - j) * ratio) / (n + k * h + j + 1);
    nest = ratio * (1 - nest);
  }
  const p = 2 * nest;
  return p > 1 ? 1 : p < 0 ? 0 : p;
}

export interface KsResult {
  /** D = h / n, the value scipy reports as the statistic. */
  readonly statistic: number;
  readonly pValue: number;
}

/**
 * `scipy.stats.ks_2samp(x, y)` for equal-size samples of finite numbers. Copies and sorts its inputs; a caller
 * testing repeatedly (as KSWIN does) sorts into its own buffers and uses the two functions above instead.
 */
export function ksTwoSample(x: ArrayLike<number>, y: ArrayLike<number>): KsResult {
  const n = x.length;
  if (n < 1 || y.length !== n) {
    throw new RangeError(`ksTwoSample: both samples must be non-empty and of equal size, got ${x.length} and ${y.length}`);
  }
  const sx = Float64Array.from(x);
  const sy = Float64Array.from(y);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(sx[i]) || !Number.isFinite(sy[i])) throw new RangeError('ksTwoSample: samples must be finite numbers');
  }
  sx.sort();
  sy.sort();
  const h = ksDistanceCount(sx, sy);
  return { statistic: h / n, pValue: ksEqualSizePValue(n, h) };
}
