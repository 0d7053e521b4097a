// Section `state`: persistent state (learner.stateBytes) against n for immediate derivatives (lambda 0) and for
// RTRL, both with RMSprop, 96 inputs, 2 outputs. Learners are constructed where they fit; RTRL at large n is
// computed by the same layout formula, which is checked against every learner that is constructed.
import type { CreditSpec } from '../src/learners/credit/registry.js';
import { createLearner } from '../src/learners/learner.js';
import {
  HIDDEN_SIZES, IMMEDIATE, INPUTS, OUTPUTS, RTRL, bytes, int, num, printTable, tanhRnnSpec, type BenchOptions,
  type TargetResult,
} from './common.js';

/** Construct RTRL learners only while their arena (state + scratch) stays under this. */
const CONSTRUCT_LIMIT_BYTES = 1.5e9;
/** RMSprop keeps one second-moment slot per parameter. */
const OPTIMIZER_SLOTS = 1;
/** The learner's default label ring (maxLabelDelay). */
const RING_SLOTS = 32;

function align16(floats: number): number {
  return Math.ceil(floats / 16) * 16;
}

interface Layout {
  readonly params: number;
  readonly stateBytes: number;
  readonly scratchBytes: number;
}

/**
 * The learner's arena layout (src/learners/learner.ts) for a tanh RNN with RMSprop: regions rounded up to 16
 * floats; persistent = cell params, readout params, optimizer slots, recurrent state, the label ring
 * (32 slots of [x | h_{t-1} | h_t | yhat]), credit state (RTRL: M, n x cell params); stateBytes adds the Float64
 * counter block (9 + 2 x 32 doubles). Scratch: delta, gOut, gState, gStatePrev, ones, zeros (n each), err,
 * label and yOut (o each), credit scratch (RTRL: the next M, J = n x n, and a gradient of cell params).
 */
function layout(n: number, credit: CreditSpec): Layout {
  const m = INPUTS;
  const o = OUTPUTS;
  const cell = n * n + n * m + n;
  const readout = o * n + o;
  const params = cell + readout;
  const ruleState = credit.rule === 'rtrl' ? n * cell : credit.rule === 'immediate' && (credit.lambda === 'exact' || credit.lambda > 0) ? cell : 0;
  const ruleScratch = credit.rule === 'rtrl' ? n * cell + n * n + cell : 0;
  const persistent = align16(cell) + align16(readout) + align16(params * OPTIMIZER_SLOTS) + align16(n)
    + align16(align16(m + 2 * n + o) * RING_SLOTS) + align16(ruleState);
  const scratch = 6 * align16(n) + 3 * align16(o) + align16(ruleScratch);
  return { params, stateBytes: persistent * 4 + 8 * (9 + 2 * RING_SLOTS), scratchBytes: scratch * 4 };
}

interface Measured {
  readonly n: number;
  readonly rule: string;
  readonly how: 'constructed' | 'formula';
  readonly params: number;
  readonly stateBytes: number;
  readonly scratchBytes: number;
  /** For constructed learners: whether layout() gives the same stateBytes and scratchBytes. */
  readonly formulaMatches?: boolean;
}

function measure(n: number, credit: CreditSpec, name: string): Measured {
  const f = layout(n, credit);
  if (f.stateBytes + f.scratchBytes > CONSTRUCT_LIMIT_BYTES) {
    return { n, rule: name, how: 'formula', params: f.params, stateBytes: f.stateBytes, scratchBytes: f.scratchBytes };
  }
  const learner = createLearner(tanhRnnSpec(n, credit));
  return {
    n, rule: name, how: 'constructed', params: learner.paramCount, stateBytes: learner.stateBytes,
    scratchBytes: learner.scratchBytes,
    formulaMatches: f.stateBytes === learner.stateBytes && f.scratchBytes === learner.scratchBytes && f.params === learner.paramCount,
  };
}

export function runState(_options: BenchOptions): TargetResult[] {
  const rows: Measured[] = [];
  for (const n of HIDDEN_SIZES) {
    rows.push(measure(n, IMMEDIATE, 'immediate'));
    rows.push(measure(n, RTRL, 'rtrl'));
  }
  const lower = (r: Measured) => r.params * (1 + OPTIMIZER_SLOTS) * 4;
  printTable(
    `state: learner.stateBytes, tanh RNN, ${INPUTS} inputs, ${OUTPUTS} outputs, RMSprop`,
    ['n', 'credit', 'how', 'params', 'params x (1+slots) x 4', 'stateBytes', '(decimal)', 'ratio', 'scratchBytes', 'formula check'],
    rows.map((r) => [
      String(r.n), r.rule, r.how, int(r.params), int(lower(r)), int(r.stateBytes), bytes(r.stateBytes),
      num(r.stateBytes / lower(r)), bytes(r.scratchBytes),
      r.formulaMatches === undefined ? '' : r.formulaMatches ? 'matches' : 'DIFFERS',
    ]),
    [
      `params x (1 + slots) x 4: every parameter and its RMSprop second moment in float32 (slots = ${OPTIMIZER_SLOTS}).`,
      `ratio = stateBytes / that; the rest is the label ring (${RING_SLOTS} ticks of x, h_{t-1}, h_t, yhat), the recurrent state,`,
      'the counters and, for RTRL, the sensitivity matrix M (n x cell params floats).',
      `how: constructed = createLearner(...).stateBytes; formula = the arena layout of src/learners/learner.ts, used where`,
      `state + scratch would exceed ${bytes(CONSTRUCT_LIMIT_BYTES)}; 'formula check' compares it with each constructed learner.`,
      'Byte units are decimal (1 MB = 10^6 bytes).',
    ],
    'rllrrrrrrl',
  );

  const ratioRows = HIDDEN_SIZES.map((n) => {
    const imm = rows.find((r) => r.n === n && r.rule === 'immediate')!;
    const rtrl = rows.find((r) => r.n === n && r.rule === 'rtrl')!;
    return [
      String(n), bytes(imm.stateBytes), `${bytes(rtrl.stateBytes)}${rtrl.how === 'formula' ? ' (formula)' : ''}`,
      `${num(rtrl.stateBytes / imm.stateBytes)}x`,
      bytes(imm.stateBytes + imm.scratchBytes), bytes(rtrl.stateBytes + rtrl.scratchBytes),
      `${num((rtrl.stateBytes + rtrl.scratchBytes) / (imm.stateBytes + imm.scratchBytes))}x`,
    ];
  });
  printTable(
    'state: RTRL / immediate',
    ['n', 'immediate state', 'rtrl state', 'rtrl / immediate', 'immediate state+scratch', 'rtrl state+scratch', 'rtrl / immediate'],
    ratioRows,
    [
      'The paper reports ~1000x at n = 1024 (12.6 MB vs 12.9 GB). Here RTRL\'s persistent state is M (n x cell params floats);',
      'its per-tick scratch holds a second M (the next sensitivities) and J, so the memory it holds is about twice its stateBytes.',
    ],
  );
  return [];
}
