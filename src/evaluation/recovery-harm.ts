/**
 * The recovery ratio (E_frozen - E_adapt) / (E_frozen - E_pre) divides by the harm the drift did. When the frozen
 * model is barely worse than before the drift, that denominator is noise and the ratio can read 1581 %: reports
 * print the ratio only when E_frozen is at least this fraction above E_pre, and point to the residual otherwise.
 */
export const RECOVERY_MIN_HARM = 0.2;
