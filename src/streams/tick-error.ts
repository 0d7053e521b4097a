/**
 * Shared by the drift and recovery operators: one definition of a tick's error, so detection and recovery
 * measure the same thing.
 */
/** `tickError` result when the arrays cannot be compared (not arrays, different lengths, empty). */
export const MALFORMED = -1;

/**
 * The per-tick error every drift and recovery figure is built on: the mean over outputs of (yhat - y)^2. Returns
 * MALFORMED when the two are not array-likes of one non-zero length, and NaN (or Infinity) when a value is not
 * finite, so that callers can tell a broken message from a diverged prediction.
 */
export function tickError(yhat: ArrayLike<number> | undefined, y: ArrayLike<number> | undefined): number {
  if (yhat == null || y == null || typeof yhat !== 'object' || typeof y !== 'object') return MALFORMED;
  const n = y.length;
  if (typeof n !== 'number' || n < 1 || yhat.length !== n) return MALFORMED;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const d = yhat[i] - y[i];
    sum += d * d;
  }
  return sum / n;
}
