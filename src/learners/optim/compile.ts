import { InvalidSpecError } from '../errors.js';
import { OptimizerCore, slotsOf, type OptimizerCoreId } from '../kernels/kernels.js';
import type { OptimizerSpec, Transform } from './transform.js';

/**
 * The fused form of a chain that the kernels execute in one pass per parameter block: optional global-norm
 * clipping, at most one stateful core (trace, scaleByRms, scaleByAdam), then the learning rate. These are the
 * shapes of sgd, momentum, rmsprop and adam with or without clipping; any other chain is refused with the
 * shapes that are accepted, rather than silently run differently.
 */
export interface CompiledOptimizer {
  readonly core: OptimizerCoreId;
  readonly lr: number;
  readonly b1: number;
  readonly b2: number;
  readonly eps: number;
  /** 0: no clipping. */
  readonly maxNorm: number;
  /** Floats of optimizer state per parameter. */
  readonly slots: number;
}

const accepted = '[clipByGlobalNorm] [trace | scaleByRms | scaleByAdam] scaleByLearningRate';

export function compileOptimizer(spec: OptimizerSpec, field = 'optimizer'): CompiledOptimizer {
  const chain = spec?.chain;
  if (!Array.isArray(chain) || chain.length === 0) {
    throw new InvalidSpecError(field, `expected { chain: [...] } of the form ${accepted}`);
  }
  let i = 0;
  let maxNorm = 0;
  const at = (t: Transform | undefined) => t?.kind;
  if (at(chain[i]) === 'clipByGlobalNorm') {
    maxNorm = positive((chain[i] as { maxNorm: number }).maxNorm, `${field}.chain[${i}].maxNorm`);
    i++;
  }
  let core: OptimizerCoreId = OptimizerCore.sgd;
  let b1 = 0;
  let b2 = 0;
  let eps = 0;
  const t = chain[i];
  if (t?.kind === 'trace') {
    core = OptimizerCore.momentum;
    b1 = unit(t.decay, `${field}.chain[${i}].decay`);
    i++;
  } else if (t?.kind === 'scaleByRms') {
    core = OptimizerCore.rmsprop;
    b2 = unit(t.decay, `${field}.chain[${i}].decay`);
    eps = positive(t.eps, `${field}.chain[${i}].eps`);
    i++;
  } else if (t?.kind === 'scaleByAdam') {
    core = OptimizerCore.adam;
    b1 = unit(t.b1, `${field}.chain[${i}].b1`);
    b2 = unit(t.b2, `${field}.chain[${i}].b2`);
    eps = positive(t.eps, `${field}.chain[${i}].eps`);
    i++;
  }
  const last = chain[i];
  if (last?.kind !== 'scaleByLearningRate' || i !== chain.length - 1) {
    throw new InvalidSpecError(
      field,
      `chain [${chain.map((c) => c?.kind).join(', ')}] is not supported; expected ${accepted}`,
    );
  }
  const lr = positive(last.lr, `${field}.chain[${i}].lr`);
  return { core, lr, b1, b2, eps, maxNorm, slots: slotsOf(core) };
}

function positive(v: number, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new InvalidSpecError(field, `must be a finite number > 0, got ${v}`);
  return v;
}

function unit(v: number, field: string): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw new InvalidSpecError(field, `must be in [0, 1), got ${v}`);
  return v;
}
