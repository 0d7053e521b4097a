import type { Cell, CellKind, CellOptions } from './cell.js';
import { DiagonalLinearCell } from './diagonal-linear.js';
import { DiagonalRnnCell } from './diagonal-rnn.js';
import { ElmanRnnCell } from './elman-rnn.js';
import { GruCell } from './gru.js';
import { LeakyRnnCell } from './leaky-rnn.js';
import { LstmCell } from './lstm.js';
import { MinGruCell } from './min-gru.js';
import { UgrnnCell } from './ugrnn.js';

/** Every architecture driftline ships, by name. `tanh-rnn-bypass` differs from `tanh-rnn` only in its readout. */
const factories: Record<CellKind, (kind: CellKind, options: CellOptions) => Cell> = {
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
};

export const cellKinds = Object.keys(factories) as CellKind[];

/** Cells whose readout adds an input-to-output bypass (yhat = V o + D x + c) unless the spec says otherwise. */
export function hasDefaultOutputBypass(kind: CellKind): boolean {
  return kind === 'tanh-rnn-bypass';
}

export function createCell(kind: CellKind, options: CellOptions): Cell {
  const factory = factories[kind];
  if (!factory) throw new Error(`unknown cell kind '${kind}': expected one of ${cellKinds.join(', ')}`);
  if (!Number.isInteger(options.inputSize) || options.inputSize < 1) throw new Error('inputSize must be a positive integer');
  if (!Number.isInteger(options.hiddenSize) || options.hiddenSize < 1) throw new Error('hiddenSize must be a positive integer');
  return factory(kind, options);
}
