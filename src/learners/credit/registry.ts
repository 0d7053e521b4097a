import { InvalidSpecError } from '../errors.js';
import type { Cell, ForwardCell } from '../cells/cell.js';
import { LruCell } from '../cells/lru.js';
import { diagonalJacobianKinds, isStepCell } from '../cells/registry.js';
import type { CreditRule } from './credit-rule.js';
import { ImmediateRule, type TraceDecay } from './immediate.js';
import { OnlineLruRule, onlineLruModes, type OnlineLruMode } from './online-lru.js';
import { RtrlRule } from './rtrl.js';

/**
 * Credit rules by name, each with its spec variant: the generic rules (immediate, rtrl) for cells with one-step
 * derivatives, and the online LRU's rule for its own cell. Buffer-based rules (fixed-point propagation, truncated
 * BPTT) join the same way; the learner needs nothing else from them.
 */
export type CreditSpec =
  /** lambda: the trace decay in [0, 1), or 'exact' (per-unit decay J_t,ii: RTRL on cells with a diagonal Jacobian). */
  | { readonly rule: 'immediate'; readonly lambda: TraceDecay }
  | { readonly rule: 'rtrl' }
  | { readonly rule: 'online-lru'; readonly mode?: OnlineLruMode };

export function createCreditRule(spec: CreditSpec, forwardCell: ForwardCell): CreditRule {
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
    default:
      throw new InvalidSpecError('credit.rule', `unknown rule '${(spec as { rule?: string })?.rule}': expected 'immediate', 'rtrl' or 'online-lru'`);
  }
}
