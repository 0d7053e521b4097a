import type { ParamBlock, ParamGroup } from './cells/cell.js';
import type { Kernels } from './kernels/kernels.js';
import type { CompiledOptimizer } from './optim/compile.js';

export const paramGroups: readonly ParamGroup[] = ['recurrent', 'input', 'readout'];

/** A parameter block placed in the arena, with its optimizer and its optimizer-state slots. */
export interface BoundBlock {
  readonly block: ParamBlock;
  /** Absolute arena offsets of the parameters and of the two optimizer slots (0 when unused). */
  readonly p: number;
  readonly s1: number;
  readonly s2: number;
  readonly group: number;
  readonly opt: CompiledOptimizer;
  readonly size: number;
}

/**
 * The learner's parameters and optimizer state, grouped (recurrent, input, readout) with one compiled optimizer
 * per group. Credit rules call its steps with factored or dense gradients; global-norm clipping applies per
 * group (as optax.multi_transform with one clipped chain per group would).
 *
 * Step counts, for Adam's bias correction, live in `counters` (a Float64Array the learner snapshots).
 */
export class ParameterSet {
  readonly bound: BoundBlock[] = [];
  /** Floats taken by parameters and by optimizer slots. */
  readonly paramFloats: number;
  readonly slotFloats: number;
  private readonly bc1 = new Float64Array(3);
  private readonly bc2 = new Float64Array(3);
  private readonly gscale = new Float64Array(3);
  /** The optimizer of each group that has parameters (undefined for an empty group). */
  private readonly groupOptimizers: (CompiledOptimizer | undefined)[] = [undefined, undefined, undefined];

  constructor(
    private readonly k: Kernels,
    blocks: readonly { block: ParamBlock; base: number }[],
    optimizers: Record<ParamGroup, CompiledOptimizer>,
    slotBase: number,
    private readonly counters: Float64Array,
  ) {
    let slot = slotBase;
    let params = 0;
    for (const { block, base } of blocks) {
      const size = block.rows * block.cols;
      const group = paramGroups.indexOf(block.group);
      const opt = optimizers[block.group];
      const s1 = opt.slots >= 1 ? slot : 0;
      slot += opt.slots >= 1 ? size : 0;
      const s2 = opt.slots >= 2 ? slot : 0;
      slot += opt.slots >= 2 ? size : 0;
      this.bound.push({ block, p: base + block.offset, s1, s2, group, opt, size });
      this.groupOptimizers[group] = opt;
      params += size;
    }
    this.paramFloats = params;
    this.slotFloats = slot - slotBase;
  }

  /** Counts one update of every group and prepares Adam's bias corrections; called once per learned label. */
  beginUpdate(): void {
    for (let g = 0; g < 3; g++) {
      const count = ++this.counters[g];
      this.gscale[g] = 1;
      const opt = this.optimizerOfGroup(g);
      if (!opt) continue;
      this.bc1[g] = 1 - Math.pow(opt.b1, count);
      this.bc2[g] = 1 - Math.pow(opt.b2, count);
    }
  }

  /** Sets the clipping scale of a group from the squared norm of its whole gradient. */
  clipGroup(group: number, normSq: number): void {
    const opt = this.optimizerOfGroup(group);
    const max = opt ? opt.maxNorm : 0;
    const norm = Math.sqrt(normSq);
    this.gscale[group] = max > 0 && norm > max ? max / norm : 1;
  }

  groupClips(group: number): boolean {
    const opt = this.optimizerOfGroup(group);
    return opt !== undefined && opt.maxNorm > 0;
  }

  /** Squared Frobenius norm of a factored block gradient d a^T (or d * a for a diagonal block). */
  factoredNormSq(b: BoundBlock, d: number, a: number): number {
    const k = this.k;
    const rows = b.block.rows;
    if (!b.block.diag) return k.dot(d, d, rows) * (a < 0 ? b.block.cols : k.dot(a, a, b.block.cols));
    if (a < 0) return k.dot(d, d, rows);
    const h = k.heap;
    let s = 0;
    for (let i = 0; i < rows; i++) {
      const v = h[d + i] * h[a + i];
      s += v * v;
    }
    return s;
  }

  stepFactored(b: BoundBlock, d: number, a: number): void {
    const o = b.opt;
    const g = b.group;
    if (b.block.diag) {
      this.k.stepDiag(o.core, b.p, b.s1, b.s2, d, a, b.size, this.gscale[g], o.lr, o.b1, o.b2, o.eps, this.bc1[g], this.bc2[g]);
    } else {
      this.k.stepOuter(o.core, b.p, b.s1, b.s2, d, a, b.block.rows, b.block.cols, this.gscale[g], o.lr, o.b1, o.b2, o.eps,
        this.bc1[g], this.bc2[g]);
    }
  }

  stepTrace(b: BoundBlock, E: number, lambda: number, d: number, a: number, rowScale: number): void {
    const o = b.opt;
    const g = b.group;
    this.k.stepTrace(o.core, b.p, b.s1, b.s2, E, lambda, d, a, rowScale, b.block.rows, b.block.cols, b.block.diag ? 1 : 0,
      this.gscale[g], o.lr, o.b1, o.b2, o.eps, this.bc1[g], this.bc2[g]);
  }

  stepDense(b: BoundBlock, grad: number): void {
    const o = b.opt;
    const g = b.group;
    this.k.stepDense(o.core, b.p, b.s1, b.s2, grad, b.size, this.gscale[g], o.lr, o.b1, o.b2, o.eps, this.bc1[g], this.bc2[g]);
  }

  private optimizerOfGroup(group: number): CompiledOptimizer | undefined {
    return this.groupOptimizers[group];
  }
}
