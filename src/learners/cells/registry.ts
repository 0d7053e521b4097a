import type { Cell, CellKind, CellOptions, ForwardCell } from './cell.js';
import { DiagonalLinearCell } from './diagonal-linear.js';
import { DiagonalRnnCell } from './diagonal-rnn.js';
import { ElmanRnnCell } from './elman-rnn.js';
import { GruCell } from './gru.js';
import { LeakyRnnCell } from './leaky-rnn.js';
import { LRU_DEFAULTS, LruCell } from './lru.js';
import { LstmCell } from './lstm.js';
import { MinGruCell } from './min-gru.js';
import { UgrnnCell } from './ugrnn.js';

/** Every architecture driftline ships, by name. `tanh-rnn-bypass` differs from `tanh-rnn` only in its readout. */
const factories: Record<CellKind, (kind: CellKind, options: CellOptions) => ForwardCell> = {
  'tanh-rnn': (kind, o) => new ElmanRnnCell(kind, o, 'tanh'),
  'tanh-rnn-bypass': (kind, o) => new ElmanRnnCell(kind, o, 'tanh'),
  'gru': (_kind, o) => new GruCell(o),
  'lstm': (_kind, o) => new LstmCell(o),
  'leaky-rnn': (_kind, o) => new LeakyRnnCell(o),
  'min-gru': (_kind, o) => new MinGruCell(o),
  'diagonal-rnn': (_kind, o) => new DiagonalRnnCell(o),
  'diagonal-linear': (_kind, o) => new DiagonalLinearCell(o),
  'relu-rnn': (kind, o) => new ElmanRnnCell(kind, o, 'relu'),
  'ugrnn': (_kind, o) => new UgrnnCell(o),
  'lru': (_kind, o) => new LruCell(o.inputSize, o.hiddenSize, {
    units: o.units ?? o.hiddenSize,
    layers: o.layers ?? LRU_DEFAULTS.layers,
    rMin: o.rMin ?? LRU_DEFAULTS.rMin,
    rMax: o.rMax ?? LRU_DEFAULTS.rMax,
    maxPhase: o.maxPhase ?? LRU_DEFAULTS.maxPhase,
  }),
};

export const cellKinds = Object.keys(factories) as CellKind[];

/** Cells with unit-aligned one-step derivatives (outputBackward and backward), which immediate and rtrl need. */
export function isStepCell(cell: ForwardCell): cell is Cell {
  return typeof (cell as Partial<Cell>).backward === 'function' && typeof (cell as Partial<Cell>).outputBackward === 'function';
}

/** The kinds whose cells are step cells: every kind but the LRU stack, which learns through its own rule. */
export const stepCellKinds: readonly CellKind[] = cellKinds.filter((kind) => kind !== 'lru');

/** createCell for the step-cell kinds (tests of the one-step derivatives). */
export function createStepCell(kind: CellKind, options: CellOptions): Cell {
  const cell = createCell(kind, options);
  if (!isStepCell(cell)) throw new Error(`cell '${kind}' has no one-step derivatives (it learns with its own rule)`);
  return cell;
}

/** The kinds that declare a diagonal state Jacobian (Cell.diagonalJacobian): where immediate's lambda 'exact' runs. */
export function diagonalJacobianKinds(): CellKind[] {
  return stepCellKinds.filter((kind) => createStepCell(kind, { inputSize: 1, hiddenSize: 1 }).diagonalJacobian === true);
}

/** Cells whose readout adds an input-to-output bypass (yhat = V o + D x + c) unless the spec says otherwise. */
export function hasDefaultOutputBypass(kind: CellKind): boolean {
  return kind === 'tanh-rnn-bypass';
}

export function createCell(kind: CellKind, options: CellOptions): ForwardCell {
  const factory = factories[kind];
  if (!factory) throw new Error(`unknown cell kind '${kind}': expected one of ${cellKinds.join(', ')}`);
  if (!Number.isInteger(options.inputSize) || options.inputSize < 1) throw new Error('inputSize must be a positive integer');
  if (!Number.isInteger(options.hiddenSize) || options.hiddenSize < 1) throw new Error('hiddenSize must be a positive integer');
  return factory(kind, options);
}
