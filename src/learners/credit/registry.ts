import { InvalidSpecError } from '../errors.js';
import type { Cell } from '../cells/cell.js';
import type { CreditRule } from './credit-rule.js';
import { ImmediateRule } from './immediate.js';
import { RtrlRule } from './rtrl.js';

/**
 * Credit rules by name. Buffer-based rules (fixed-point propagation, truncated BPTT) and the online LRU join
 * this table with their own spec variants; the learner needs nothing else from them.
 */
export type CreditSpec =
  | { readonly rule: 'immediate'; readonly lambda: number }
  | { readonly rule: 'rtrl' };

export function createCreditRule(spec: CreditSpec, cell: Cell): CreditRule {
  switch (spec?.rule) {
    case 'immediate': {
      const lambda = spec.lambda ?? 0;
      if (typeof lambda !== 'number' || !(lambda >= 0 && lambda < 1)) {
        throw new InvalidSpecError('credit.lambda', `must be in [0, 1), got ${lambda}`);
      }
      return new ImmediateRule(lambda, cell.paramCount);
    }
    case 'rtrl':
      return new RtrlRule(cell.stateSize, cell.paramCount);
    default:
      throw new InvalidSpecError('credit.rule', `unknown rule '${(spec as { rule?: string })?.rule}': expected 'immediate' or 'rtrl'`);
  }
}
