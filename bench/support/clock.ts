// The one clock the load generators read on both sides of a measurement: a producer worker stamps each send with
// it and the main thread each receipt, so it has to be a clock every thread of the process shares.

/** Milliseconds on the monotonic clock every thread of this process shares. */
export function clockMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/**
 * clockMs as source for an eval'd worker, which cannot import it: the same function, so both sides read alike.
 * Bound to the name by assignment, so that it holds whatever a transpiler makes of the function's own name.
 */
export const CLOCK_MS_JS = `const clockMs = ${String(clockMs)};`;
