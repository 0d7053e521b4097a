import { columnOf, type CreditContext } from './credit-rule.js';

/**
 * A cell gradient summed over several ticks or terms (backpropagation through time, RTRL, fixed-point
 * propagation) is held dense, one float per cell parameter, in block order; these are the two steps every such
 * rule shares.
 */

/** grad += each cell block's one-step factors (row factors in context.delta, inputs from the cache at `cache`). */
export function accumulateFactors(c: CreditContext, grad: number, cache: number): void {
  const { k } = c;
  const h = k.heap;
  for (let bi = 0; bi < c.cellBlocks.length; bi++) {
    const b = c.cellBlocks[bi].block;
    const d = c.delta + b.deltaOffset;
    const dst = grad + b.offset;
    const a = columnOf(c.cellBlocks[bi], cache);
    if (!b.diag) k.outerAcc(dst, d, a, b.rows, b.cols, 1);
    else if (a < 0) for (let i = 0; i < b.rows; i++) h[dst + i] += h[d + i];
    else for (let i = 0; i < b.rows; i++) h[dst + i] += h[d + i] * h[a + i];
  }
}

/** One optimizer step of the cell with a dense gradient, each group (recurrent, input) clipped by its own norm. */
export function stepDenseGradient(c: CreditContext, grad: number): void {
  const p = c.params;
  for (let g = 0; g < 2; g++) {
    if (!p.groupClips(g)) continue;
    let normSq = 0;
    for (let bi = 0; bi < c.cellBlocks.length; bi++) {
      const b = c.cellBlocks[bi];
      if (b.group === g) normSq += c.k.dot(grad + b.block.offset, grad + b.block.offset, b.size);
    }
    p.clipGroup(g, normSq);
  }
  for (let bi = 0; bi < c.cellBlocks.length; bi++) p.stepDense(c.cellBlocks[bi], grad + c.cellBlocks[bi].block.offset);
}
