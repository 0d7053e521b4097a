import { columnOf, type CreditContext, type CreditRule } from './credit-rule.js';
import { stepDenseGradient } from './dense-gradient.js';

/**
 * Real-time recurrent learning: the exact online gradient, kept as the reference the cheaper rules are measured
 * against. Sensitivities M_t = ds_t/dtheta (stateSize x cell parameters) follow
 *   M_t = J_t M_{t-1} + D_t,  J_t = ds_t/ds_{t-1},  D_t = the one-step partial ds_t/dtheta,
 * and the gradient is (dL/ds_t)^T M_t. J_t and D_t are built row by row from the cell's own one-step
 * vector-Jacobian products (backward with dL/ds_t = e_k), so every cell gets RTRL without extra derivations.
 * Memory is stateSize x paramCount floats for M plus as much scratch: O(n^3) for a dense RNN, which is why it
 * is a reference and not a default.
 */
export class RtrlRule implements CreditRule {
  readonly name = 'rtrl' as const;
  readonly stateSize: number;
  readonly scratchSize: number;
  readonly tracksTicks = true;
  private c!: CreditContext;
  private M = 0;
  private next = 0;
  private J = 0;
  private grad = 0;
  private readonly S: number;
  private readonly P: number;

  constructor(stateSize: number, cellParamCount: number) {
    this.S = stateSize;
    this.P = cellParamCount;
    this.stateSize = stateSize * cellParamCount;
    this.scratchSize = stateSize * cellParamCount + stateSize * stateSize + cellParamCount;
  }

  attach(context: CreditContext, state: number, scratch: number): void {
    this.c = context;
    this.M = state;
    this.next = scratch;
    this.J = scratch + this.S * this.P;
    this.grad = this.J + this.S * this.S;
  }

  advance(cache: number): void {
    const { k, cell, cellBlocks } = this.c;
    const { S, P } = this;
    const h = k.heap;
    for (let r = 0; r < S; r++) {
      k.fill(this.c.gState, 0, S);
      h[this.c.gState + r] = 1;
      cell.backward(k, this.c.cellParams, cache, this.c.gState, this.c.delta, this.J + r * S);
      const row = this.next + r * P;
      k.fill(row, 0, P);
      for (let bi = 0; bi < cellBlocks.length; bi++) {
        const b = cellBlocks[bi];
        const d = this.c.delta + b.block.deltaOffset;
        const a = columnOf(b, cache);
        const dst = row + b.block.offset;
        if (!b.block.diag) {
          k.outerAcc(dst, d, a, b.block.rows, b.block.cols, 1);
        } else {
          for (let i = 0; i < b.block.rows; i++) h[dst + i] = h[d + i] * (a < 0 ? 1 : h[a + i]);
        }
      }
    }
    k.matMul(this.next, this.J, this.M, S, S, P, 1);
    k.copy(this.M, this.next, S * P);
  }

  update(cache: number, fresh: boolean): boolean {
    const c = this.c;
    if (fresh) this.advance(cache);
    c.cell.outputBackward(c.k, cache, c.gOut, c.gState);
    c.k.matTVec(this.grad, this.M, c.gState, this.S, this.P, 0);
    if (!c.k.allFinite(this.grad, this.P)) return false;
    stepDenseGradient(c, this.grad);
    return true;
  }
}
