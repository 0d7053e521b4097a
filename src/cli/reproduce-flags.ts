/** Flags the long reproductions share (copy-task, fpp), each refused with the command's own usage error. */

type UsageErrorClass = new (message: string) => Error;

/** An integer flag in [min, max], or `fallback` when absent. */
export function integerFlag(text: string | undefined, flag: string, min: number, max: number, fallback: number, UsageError: UsageErrorClass): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be an integer in [${min}, ${max}], got '${text}'`);
  return n;
}

/** --rates: positive numbers separated by commas, or `fallback` when absent. */
export function ratesFlag(text: string | undefined, fallback: readonly number[], UsageError: UsageErrorClass): readonly number[] {
  if (text === undefined) return fallback;
  const rates = text.split(',').map((s) => Number(s.trim()));
  if (rates.length === 0 || rates.some((r) => !(Number.isFinite(r) && r > 0))) {
    throw new UsageError(`--rates must be positive numbers separated by commas, got '${text}'`);
  }
  return rates;
}
