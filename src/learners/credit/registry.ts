import { InvalidSpecError } from '../errors.js';
import type { Cell, ForwardCell } from '../cells/cell.js';
import { LruCell } from '../cells/lru.js';
import { diagonalJacobianKinds, isStepCell } from '../cells/registry.js';
import type { CreditRule } from './credit-rule.js';
import { ImmediateRule, type TraceDecay } from './immediate.js';
import { OnlineLruRule, onlineLruModes, type OnlineLruMode } from './online-lru.js';
import { RtrlRule } from './rtrl.js';
import { FixedPointPropagationRule, type FppSchedule } from './fixed-point-propagation.js';
import { TruncatedBpttRule } from './truncated-bptt.js';

/**
 * Credit rules by name, each with its spec variant: the generic rules (immediate, rtrl, and the buffer-based
 * tbptt and fpp) for cells with one-step derivatives, and the online LRU's rule for its own cell.
 */
export type CreditSpec =
  /** lambda: the trace decay in [0, 1), or 'exact' (per-unit decay J_t,ii: RTRL on cells with a diagonal Jacobian). */
  | { readonly rule: 'immediate'; readonly lambda: TraceDecay }
  | { readonly rule: 'rtrl' }
  | { readonly rule: 'online-lru'; readonly mode?: OnlineLruMode }
  /** window: T ticks per sweep; every: k labels per sweep (1 <= k <= T, default 1). */
  | { readonly rule: 'tbptt'; readonly window: number; readonly every?: number }
  | {
    readonly rule: 'fpp';
    /** T: ticks each sampled update recomputes. */
    readonly window: number;
    /** N: transitions kept (default 1000, the thesis' main setting; more than T). */
    readonly buffer?: number;
    /** M: sampled updates per label (default 1). */
    readonly updates?: number;
    /** Weight of the fixed-point penalty (default 1, as in the thesis). */
    readonly lambda?: number;
    /** Step size of the plain gradient steps on the stored states (default FPP_DEFAULTS.stateRate). */
    readonly stateRate?: number;
    /** false: FPP without state updating (the thesis' ablation; default true). */
    readonly updateStates?: boolean;
    readonly schedule?: FppSchedule;
  };

/** fpp's defaults. The thesis does not give the states' step size; 0.1 is ours (see docs/fixed-point-propagation.md). */
export const FPP_DEFAULTS = { buffer: 1000, updates: 1, lambda: 1, stateRate: 0.1, updateStates: true } as const;

const MAX_WINDOW = 1024;

/** The rule of a spec, for a cell and a readout of `outputSize` outputs; refuses bad specs by field. */
export function createCreditRule(spec: CreditSpec, forwardCell: ForwardCell, outputSize: number): CreditRule {
  if (spec?.rule === 'online-lru') {
    if (!(forwardCell instanceof LruCell)) {
      throw new InvalidSpecError('credit.rule', `'online-lru' learns the 'lru' cell only, not '${forwardCell.kind}'`);
    }
    const mode = spec.mode ?? 'online';
    if (!onlineLruModes.includes(mode)) {
      throw new InvalidSpecError('credit.mode', `must be one of ${onlineLruModes.join(', ')}, got ${String(mode)}`);
    }
    return new OnlineLruRule(forwardCell, mode);
  }
  if (!isStepCell(forwardCell)) {
    throw new InvalidSpecError('credit.rule', `cell '${forwardCell.kind}' learns with rule 'online-lru', not '${String(spec?.rule)}'`);
  }
  const cell: Cell = forwardCell;
  switch (spec?.rule) {
    case 'immediate': {
      const lambda = spec.lambda ?? 0;
      if (lambda === 'exact') {
        if (cell.diagonalJacobian !== true) {
          throw new InvalidSpecError('credit.lambda', `'exact' needs a cell whose state Jacobian is diagonal ` +
            `(${diagonalJacobianKinds().join(', ')}), not '${cell.kind}': use a number in [0, 1) or rule 'rtrl'`);
        }
      } else if (typeof lambda !== 'number' || !(lambda >= 0 && lambda < 1)) {
        throw new InvalidSpecError('credit.lambda', `must be a number in [0, 1) or 'exact', got ${String(lambda)}`);
      }
      return new ImmediateRule(lambda, cell);
    }
    case 'rtrl':
      return new RtrlRule(cell.stateSize, cell.paramCount);
    case 'tbptt': {
      const window = integerIn(spec.window, 'credit.window', 1, MAX_WINDOW);
      const every = spec.every === undefined ? 1 : integerIn(spec.every, 'credit.every', 1, window);
      return new TruncatedBpttRule(cell, window, every);
    }
    case 'fpp': {
      const window = integerIn(spec.window, 'credit.window', 1, MAX_WINDOW);
      if (spec.buffer === undefined && window >= FPP_DEFAULTS.buffer) {
        throw new InvalidSpecError('credit.buffer', `the default buffer (${FPP_DEFAULTS.buffer}) must hold more than the window (${window}): give a larger buffer`);
      }
      const buffer = spec.buffer === undefined ? FPP_DEFAULTS.buffer : integerIn(spec.buffer, 'credit.buffer', window + 1, 1 << 20);
      const updates = spec.updates === undefined ? FPP_DEFAULTS.updates : integerIn(spec.updates, 'credit.updates', 1, 64);
      const lambda = spec.lambda ?? FPP_DEFAULTS.lambda;
      if (typeof lambda !== 'number' || !(lambda >= 0 && Number.isFinite(lambda))) {
        throw new InvalidSpecError('credit.lambda', `must be a finite number >= 0, got ${String(lambda)}`);
      }
      const stateRate = spec.stateRate ?? FPP_DEFAULTS.stateRate;
      if (typeof stateRate !== 'number' || !(stateRate > 0 && stateRate <= 10)) {
        throw new InvalidSpecError('credit.stateRate', `must be a number in (0, 10], got ${String(stateRate)}`);
      }
      const updateStates = spec.updateStates ?? FPP_DEFAULTS.updateStates;
      if (typeof updateStates !== 'boolean') throw new InvalidSpecError('credit.updateStates', `must be true or false, got ${String(updateStates)}`);
      return new FixedPointPropagationRule(cell, {
        window, buffer, updates, lambda, stateRate, updateStates, schedule: fppSchedule(spec.schedule),
      }, outputSize);
    }
    default:
      throw new InvalidSpecError('credit.rule', `unknown rule '${(spec as { rule?: string })?.rule}': expected 'immediate', 'rtrl', 'tbptt', 'fpp' or 'online-lru'`);
  }
}

function integerIn(v: unknown, field: string, min: number, max: number): number {
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) {
    throw new InvalidSpecError(field, `must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v as number;
}

function fppSchedule(schedule: FppSchedule | undefined): FppSchedule {
  if (schedule === undefined) return { kind: 'fixed' };
  if (schedule == null || typeof schedule !== 'object') throw new InvalidSpecError('credit.schedule', 'must be an object');
  switch (schedule.kind) {
    case 'fixed':
      return { kind: 'fixed' };
    case 'decay':
    case 'random':
      return { kind: schedule.kind, horizonTicks: integerIn(schedule.horizonTicks, 'credit.schedule.horizonTicks', 5, Number.MAX_SAFE_INTEGER) };
    default:
      throw new InvalidSpecError('credit.schedule.kind', `must be 'fixed', 'decay' or 'random', got ${String((schedule as { kind?: unknown }).kind)}`);
  }
}
