// TensorFlow.js twins of driftline's cells and readout, written from the cells' doc comments (not from their
// kernels) so that autodiff can serve as the oracle for the hand-derived gradients. Every vector is a column
// (a k x 1 tensor) and every parameter block a rows x cols tensor, row-major as in the learner's arena, so
// W h is tf.matMul(W, h) and a diagonal block (rows x 1) multiplies element-wise.
import * as tf from '@tensorflow/tfjs';
import type { CellKind } from '../../src/learners/cells/cell.js';

/** Parameter blocks by name (the names of the cells' block tables and the readout's V, c, D). */
export type TfParams = Readonly<Record<string, tf.Tensor2D>>;

export interface TfStep {
  /** s_t: the full recurrent state (stateSize x 1). */
  readonly s: tf.Tensor2D;
  /** o_t: the output features the readout sees (hiddenSize x 1). */
  readonly o: tf.Tensor2D;
}

export interface TfCell {
  readonly kind: CellKind;
  readonly stateSize: number;
  /** The cell's block names in block-table order (the test checks them against the real cell). */
  readonly blockNames: readonly string[];
  /** One step s_t = F(s_{t-1}, x_t; theta), o_t = G(s_t). */
  step(p: TfParams, x: tf.Tensor2D, sPrev: tf.Tensor2D): TfStep;
}

export interface TfCellOptions {
  readonly inputSize: number;
  readonly hiddenSize: number;
  /** Leak rate of `leaky-rnn` (its default is 0.1). */
  readonly leak?: number;
}

const mv = (A: tf.Tensor2D, v: tf.Tensor2D): tf.Tensor2D => tf.matMul(A, v);
const one = (): tf.Scalar => tf.scalar(1);

export function tfCell(kind: CellKind, options: TfCellOptions): TfCell {
  const n = options.hiddenSize;
  const plain = (blockNames: string[], step: TfCell['step'], stateSize = n): TfCell => ({
    kind, stateSize, blockNames, step,
  });
  switch (kind) {
    // h_t = tanh(W h_{t-1} + U x_t + b), o_t = h_t (the bypass belongs to the readout).
    case 'tanh-rnn':
    case 'tanh-rnn-bypass':
      return plain(['W', 'U', 'b'], (p, x, h) => {
        const s = tf.tanh(mv(p.W, h).add(mv(p.U, x)).add(p.b)) as tf.Tensor2D;
        return { s, o: s };
      });

    // h_t = relu(W h_{t-1} + U x_t + b), o_t = h_t.
    case 'relu-rnn':
      return plain(['W', 'U', 'b'], (p, x, h) => {
        const s = tf.relu(mv(p.W, h).add(mv(p.U, x)).add(p.b)) as tf.Tensor2D;
        return { s, o: s };
      });

    // u_t = tanh(W h_{t-1} + U x_t + b), h_t = (1 - a) h_{t-1} + a u_t, o_t = h_t.
    case 'leaky-rnn': {
      const a = options.leak ?? 0.1;
      return plain(['W', 'U', 'b'], (p, x, h) => {
        const u = tf.tanh(mv(p.W, h).add(mv(p.U, x)).add(p.b));
        const s = h.mul(1 - a).add(u.mul(a)) as tf.Tensor2D;
        return { s, o: s };
      });
    }

    // r = sig(W_r h + U_r x + b_r), z = sig(W_z h + U_z x + b_z), q = W_n h + b_hn,
    // nn = tanh(U_n x + b_n + r * q), h_t = (1 - z) * nn + z * h_{t-1}, o_t = h_t.
    case 'gru':
      return plain(['W_r', 'W_z', 'W_n', 'U_r', 'U_z', 'U_n', 'b_r', 'b_z', 'b_n', 'b_hn'], (p, x, h) => {
        const r = tf.sigmoid(mv(p.W_r, h).add(mv(p.U_r, x)).add(p.b_r));
        const z = tf.sigmoid(mv(p.W_z, h).add(mv(p.U_z, x)).add(p.b_z));
        const q = mv(p.W_n, h).add(p.b_hn);
        const nn = tf.tanh(mv(p.U_n, x).add(p.b_n).add(r.mul(q)));
        const s = one().sub(z).mul(nn).add(z.mul(h)) as tf.Tensor2D;
        return { s, o: s };
      });

    // s = [h | c]; i, f, o gates sigmoid, g tanh; c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t), o_t = h_t.
    case 'lstm':
      return plain(
        ['W_i', 'W_f', 'W_g', 'W_o', 'U_i', 'U_f', 'U_g', 'U_o', 'b_i', 'b_f', 'b_g', 'b_o'],
        (p, x, sPrev) => {
          const h = sPrev.slice([0, 0], [n, 1]);
          const c = sPrev.slice([n, 0], [n, 1]);
          const pre = (g: string) => mv(p[`W_${g}`], h).add(mv(p[`U_${g}`], x)).add(p[`b_${g}`]);
          const i = tf.sigmoid(pre('i'));
          const f = tf.sigmoid(pre('f'));
          const g = tf.tanh(pre('g'));
          const o = tf.sigmoid(pre('o'));
          const cNext = f.mul(c).add(i.mul(g));
          const hNext = o.mul(tf.tanh(cNext)) as tf.Tensor2D;
          return { s: tf.concat([hNext, cNext], 0) as tf.Tensor2D, o: hNext };
        },
        2 * n,
      );

    // z = sig(U_z x + b_z), htilde = U_h x + b_h, h_t = (1 - z) * h_{t-1} + z * htilde, o_t = h_t.
    case 'min-gru':
      return plain(['U_z', 'U_h', 'b_z', 'b_h'], (p, x, h) => {
        const z = tf.sigmoid(mv(p.U_z, x).add(p.b_z));
        const ht = mv(p.U_h, x).add(p.b_h);
        const s = one().sub(z).mul(h).add(z.mul(ht)) as tf.Tensor2D;
        return { s, o: s };
      });

    // h_t = tanh(w * h_{t-1} + U x_t + b), o_t = h_t.
    case 'diagonal-rnn':
      return plain(['w', 'U', 'b'], (p, x, h) => {
        const s = tf.tanh(p.w.mul(h).add(mv(p.U, x)).add(p.b)) as tf.Tensor2D;
        return { s, o: s };
      });

    // a = sig(nu), h_t = a * h_{t-1} + U x_t + b, o_t = tanh(h_t), s_t = h_t.
    case 'diagonal-linear':
      return plain(['nu', 'U', 'b'], (p, x, h) => {
        const s = tf.sigmoid(p.nu).mul(h).add(mv(p.U, x)).add(p.b) as tf.Tensor2D;
        return { s, o: tf.tanh(s) };
      });

    // c = tanh(W_c h + U_c x + b_c), g = sig(W_g h + U_g x + b_g), h_t = g * h_{t-1} + (1 - g) * c, o_t = h_t.
    case 'ugrnn':
      return plain(['W_c', 'W_g', 'U_c', 'U_g', 'b_c', 'b_g'], (p, x, h) => {
        const c = tf.tanh(mv(p.W_c, h).add(mv(p.U_c, x)).add(p.b_c));
        const g = tf.sigmoid(mv(p.W_g, h).add(mv(p.U_g, x)).add(p.b_g));
        const s = g.mul(h).add(one().sub(g).mul(c)) as tf.Tensor2D;
        return { s, o: s };
      });

    case 'lru':
      throw new Error('tf-cells: the LRU stack is not a step cell; its twin is test/support/tf-lru.ts');

    default: {
      const unknown: never = kind;
      throw new Error(`tf-cells: no TensorFlow.js twin for cell kind '${String(unknown)}'`);
    }
  }
}

/** The readout's pre-activation z_t = V o_t + c (+ D x_t with the bypass): yhat for mse, the logits for xent. */
export function tfReadout(p: TfParams, o: tf.Tensor2D, x: tf.Tensor2D, bypass: boolean): tf.Tensor2D {
  const z = mv(p.V, o).add(p.c) as tf.Tensor2D;
  return bypass ? (z.add(mv(p.D, x)) as tf.Tensor2D) : z;
}

/** What the learner's predict returns: z itself (mse) or softmax(z) (xent). */
export function tfPrediction(z: tf.Tensor2D, loss: 'mse' | 'xent'): tf.Tensor2D {
  return loss === 'mse' ? z : (tf.softmax(z.reshape([-1])).reshape(z.shape) as tf.Tensor2D);
}

/** L_t: 1/2 ||z - y||^2 (mse) or -sum y log softmax(z) (xent, y one-hot). */
export function tfLoss(z: tf.Tensor2D, y: tf.Tensor2D, loss: 'mse' | 'xent'): tf.Scalar {
  if (loss === 'mse') return tf.squaredDifference(z, y).sum().mul(0.5) as tf.Scalar;
  return tf.logSoftmax(z.reshape([-1])).mul(y.reshape([-1])).sum().neg() as tf.Scalar;
}
