import { InvalidSpecError } from '../errors.js';
import type { KalmanOptions } from './kalman.js';
import type { RidgeOptions } from './ridge.js';
import type { RlsOptions } from './rls.js';

/**
 * A classical BCI decoder run as a Learner: the references an adaptive recurrent learner has to beat, and
 * readouts in their own right. Every decoder predicts from the current input (and, for rls and ridge, the
 * `lags - 1` inputs before it) and learns from labels up to maxLabelDelay - 1 ticks late, like the recurrent
 * learner. None draws random numbers: `seed` is kept so that every learner spec has the same shape.
 */
export interface DecoderSpec {
  readonly decoder: (RlsOptions & { kind: 'rls' }) | (RidgeOptions & { kind: 'ridge' }) | (KalmanOptions & { kind: 'kalman' });
  readonly inputSize: number;
  readonly outputSize: number;
  readonly seed: number;
  readonly loss: 'mse';
  /** K: a label may arrive up to K - 1 ticks after its prediction; older ones are dropped and counted. */
  readonly maxLabelDelay?: number;
}

export type DecoderKind = DecoderSpec['decoder']['kind'];
export const decoderKinds: readonly DecoderKind[] = ['rls', 'ridge', 'kalman'];

/**
 * Checks the fields every decoder shares and returns a plain copy of the spec (what `learner.spec` and its
 * snapshots hold). `halfLifeTicks: Infinity` means no forgetting, as omitting it does; the copy omits it, because
 * JSON (snapshots, config files) has no Infinity.
 */
export function validateDecoderSpec(spec: DecoderSpec): DecoderSpec {
  if (spec == null || typeof spec !== 'object') throw new InvalidSpecError('spec', 'must be an object');
  positiveInt(spec.inputSize, 'inputSize');
  positiveInt(spec.outputSize, 'outputSize');
  if (spec.maxLabelDelay !== undefined) positiveInt(spec.maxLabelDelay, 'maxLabelDelay', 1 << 16);
  if (!Number.isInteger(spec.seed)) throw new InvalidSpecError('seed', `must be an integer, got ${String(spec.seed)}`);
  if (spec.loss !== 'mse') throw new InvalidSpecError('loss', `decoders fit squared error: must be 'mse', got ${String(spec.loss)}`);
  const d = spec.decoder;
  if (d == null || typeof d !== 'object' || Array.isArray(d)) throw new InvalidSpecError('decoder', 'must be an object with a kind');
  if (!decoderKinds.includes(d.kind)) {
    throw new InvalidSpecError('decoder.kind', `must be one of ${decoderKinds.map((k) => `'${k}'`).join(', ')}, got ${String(d.kind)}`);
  }
  const decoder: Record<string, unknown> = { ...d };
  if (decoder.halfLifeTicks === Infinity) delete decoder.halfLifeTicks;
  return JSON.parse(JSON.stringify({ ...spec, decoder })) as DecoderSpec;
}

/** Rejects option names a decoder does not know (a misspelt `halfLife` must not silently mean no forgetting). */
export function onlyKnownOptions(options: object, kind: DecoderKind, known: readonly string[]): void {
  for (const [key, value] of Object.entries(options)) {
    if (key !== 'kind' && value !== undefined && !known.includes(key)) {
      throw new InvalidSpecError(`decoder.${key}`, `is not an option of '${kind}' (it takes ${known.join(', ')})`);
    }
  }
}

export function positiveInt(v: unknown, field: string, max = 1 << 20): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) {
    throw new InvalidSpecError(field, `must be an integer in [1, ${max}], got ${String(v)}`);
  }
  return v as number;
}

/** A finite number in [min, max] (strictly above min when `strict`), or `fallback` when absent. */
export function finiteOption(v: unknown, field: string, fallback: number, min: number, strict: boolean, max = Number.MAX_VALUE): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || (strict ? v <= min : v < min) || v > max) {
    throw new InvalidSpecError(field, `must be a finite number ${strict ? '>' : '>='} ${min}${max < Number.MAX_VALUE ? ` and <= ${max}` : ''}, got ${String(v)}`);
  }
  return v;
}

/**
 * The per-label forgetting factor lambda = 2^(-1 / halfLifeTicks): a label's weight halves after that many
 * further labels. Absent or Infinity: 1 (no forgetting).
 */
export function forgettingFactor(halfLifeTicks: unknown, field = 'decoder.halfLifeTicks'): number {
  if (halfLifeTicks === undefined || halfLifeTicks === Infinity) return 1;
  const h = finiteOption(halfLifeTicks, field, Infinity, 0, true);
  return Math.pow(2, -1 / h);
}

/** Largest feature count (lags x inputSize + 1) of rls and ridge: a packed F x F matrix takes 4 F^2 bytes, ridge's refit scratch 8 F^2. */
export const MAX_FEATURES = 4096;
