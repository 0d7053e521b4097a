// A TensorFlow.js autodiff twin of the stacked online-LRU network, the oracle for its hand-derived gradients
// (DESIGN.md section 8). Written from the network's equations alone, not from the learner's code, so that the two
// are independent. Complex numbers are carried as a pair of real tensors (re, im); every vector is a column (a
// k x 1 tensor) and every parameter block a rows x cols tensor, row-major as in the learner's flat parameter
// vector, so W v is tf.matMul(W, v) and a vector block (rows x 1) multiplies element-wise.
//
// The network (inputSize m, model width H, complex units per layer N, layers L, outputs K), at tick t:
//   x^1 = enc.W x_t + enc.b
//   for l = 1..L, with v = x^l:
//     u = scale * (v - mean(v)) / sqrt(var(v) + 1e-5) + bias          (layer norm over the H features, biased var)
//     lambda = exp(-exp(nu_log)) * (cos(exp(theta_log)) + i sin(exp(theta_log))),  gamma = exp(gamma_log)
//     h^l_t = lambda * h^l_{t-1} + gamma * ((B_re + i B_im) u)        (h^l_{-1} = 0)
//     y = C_re Re(h^l_t) - C_im Im(h^l_t) + D * u
//     z = gelu(y) (tanh approximation),  g = (W1 z + b1) * sigmoid(W2 z + b2)
//     x^{l+1} = x^l + g
//   logits = V x^{L+1} + c;  prediction = logits (mse) or softmax(logits) (xent)
//   L_t = 1/2 ||logits - y_t||^2 (mse) or -sum y_t log softmax(logits) (xent).
//
// The functions run on whichever tf backend is active (the tests select 'cpu'); everything runs in float32.
import * as tf from '@tensorflow/tfjs';

export interface TfLruOptions {
  readonly inputSize: number;
  /** H, the model width (the features each layer reads and writes). */
  readonly hiddenSize: number;
  /** N, the complex recurrent units per layer. */
  readonly units: number;
  readonly layers: number;
  readonly outputSize: number;
  readonly loss: 'mse' | 'xent';
}

export interface LruBlockShape {
  readonly name: string;
  readonly rows: number;
  /** 1 for a vector block. */
  readonly cols: number;
}

const LAYER_NORM_EPS = 1e-5;
const GELU_C = Math.sqrt(2 / Math.PI);

function checkOptions(o: TfLruOptions): void {
  for (const key of ['inputSize', 'hiddenSize', 'units', 'layers', 'outputSize'] as const) {
    const v = o[key];
    if (!Number.isInteger(v) || v < 1) throw new Error(`tf-lru: ${key} must be a positive integer, got ${v}`);
  }
  if (o.loss !== 'mse' && o.loss !== 'xent') throw new Error(`tf-lru: unknown loss '${String(o.loss)}'`);
}

/** The parameter blocks in the order of the learner's flat parameter vector. */
export function lruBlockShapes(options: TfLruOptions): LruBlockShape[] {
  checkOptions(options);
  const { inputSize: m, hiddenSize: H, units: N, layers: L, outputSize: K } = options;
  const blocks: LruBlockShape[] = [
    { name: 'enc.W', rows: H, cols: m },
    { name: 'enc.b', rows: H, cols: 1 },
  ];
  for (let l = 1; l <= L; l++) {
    const p = `l${l}.`;
    blocks.push(
      { name: `${p}norm.scale`, rows: H, cols: 1 },
      { name: `${p}norm.bias`, rows: H, cols: 1 },
      { name: `${p}nu_log`, rows: N, cols: 1 },
      { name: `${p}theta_log`, rows: N, cols: 1 },
      { name: `${p}gamma_log`, rows: N, cols: 1 },
      { name: `${p}B_re`, rows: N, cols: H },
      { name: `${p}B_im`, rows: N, cols: H },
      { name: `${p}C_re`, rows: H, cols: N },
      { name: `${p}C_im`, rows: H, cols: N },
      { name: `${p}D`, rows: H, cols: 1 },
      { name: `${p}glu.W1`, rows: H, cols: H },
      { name: `${p}glu.b1`, rows: H, cols: 1 },
      { name: `${p}glu.W2`, rows: H, cols: H },
      { name: `${p}glu.b2`, rows: H, cols: 1 },
    );
  }
  blocks.push({ name: 'V', rows: K, cols: H }, { name: 'c', rows: K, cols: 1 });
  return blocks;
}

function parameterCount(blocks: readonly LruBlockShape[]): number {
  return blocks.reduce((n, b) => n + b.rows * b.cols, 0);
}

type Params = Readonly<Record<string, tf.Tensor2D>>;

/** The flat vector as one float32 tensor per block (the caller disposes them). */
function paramTensors(blocks: readonly LruBlockShape[], params: Float64Array): tf.Tensor2D[] {
  const total = parameterCount(blocks);
  if (params.length !== total) throw new Error(`tf-lru: expected ${total} parameters, got ${params.length}`);
  let offset = 0;
  return blocks.map((b) => {
    const size = b.rows * b.cols;
    const t = tf.tensor2d(Float32Array.from(params.subarray(offset, offset + size)), [b.rows, b.cols]);
    offset += size;
    return t;
  });
}

function named(blocks: readonly LruBlockShape[], list: readonly tf.Tensor[]): Params {
  const p: Record<string, tf.Tensor2D> = {};
  blocks.forEach((b, i) => {
    p[b.name] = list[i] as tf.Tensor2D;
  });
  return p;
}

function columns(rows: readonly (readonly number[])[], size: number, what: string): tf.Tensor2D[] {
  return rows.map((r, t) => {
    if (r.length !== size) throw new Error(`tf-lru: ${what}[${t}] has length ${r.length}, expected ${size}`);
    return tf.tensor2d(Float32Array.from(r), [size, 1]);
  });
}

const mv = (A: tf.Tensor2D, v: tf.Tensor2D): tf.Tensor2D => tf.matMul(A, v);

function layerNorm(v: tf.Tensor2D, scale: tf.Tensor2D, bias: tf.Tensor2D): tf.Tensor2D {
  const d = v.sub(tf.mean(v));
  const variance = tf.mean(d.square());
  const vhat = d.div(tf.sqrt(variance.add(LAYER_NORM_EPS)));
  return scale.mul(vhat).add(bias) as tf.Tensor2D;
}

/** 0.5 y (1 + tanh(sqrt(2/pi) (y + 0.044715 y^3))), written out rather than taken from a tf op. */
function gelu(y: tf.Tensor2D): tf.Tensor2D {
  const inner = y.add(y.pow(3).mul(0.044715)).mul(GELU_C);
  return y.mul(0.5).mul(tf.tanh(inner).add(1)) as tf.Tensor2D;
}

interface Complex {
  readonly re: tf.Tensor2D;
  readonly im: tf.Tensor2D;
}

/** The logits of ticks 0..last (inclusive), from zero recurrent states. */
function forwardLogits(o: TfLruOptions, P: Params, xs: readonly tf.Tensor2D[], last: number): tf.Tensor2D[] {
  const N = o.units;
  const states: Complex[] = [];
  for (let l = 0; l < o.layers; l++) states.push({ re: tf.zeros([N, 1]), im: tf.zeros([N, 1]) });
  // The per-layer constants lambda and gamma do not change over the sequence.
  const lambdas = Array.from({ length: o.layers }, (_, i) => {
    const p = `l${i + 1}.`;
    const r = tf.exp(tf.exp(P[`${p}nu_log`]).neg());
    const phase = tf.exp(P[`${p}theta_log`]);
    return {
      re: r.mul(tf.cos(phase)) as tf.Tensor2D,
      im: r.mul(tf.sin(phase)) as tf.Tensor2D,
      gamma: tf.exp(P[`${p}gamma_log`]) as tf.Tensor2D,
    };
  });
  const logits: tf.Tensor2D[] = [];
  for (let t = 0; t <= last; t++) {
    let x = mv(P['enc.W'], xs[t]).add(P['enc.b']) as tf.Tensor2D;
    for (let l = 0; l < o.layers; l++) {
      const p = `l${l + 1}.`;
      const u = layerNorm(x, P[`${p}norm.scale`], P[`${p}norm.bias`]);
      const { re: lr, im: li, gamma } = lambdas[l];
      const h = states[l];
      const bRe = mv(P[`${p}B_re`], u);
      const bIm = mv(P[`${p}B_im`], u);
      const hRe = lr.mul(h.re).sub(li.mul(h.im)).add(gamma.mul(bRe)) as tf.Tensor2D;
      const hIm = lr.mul(h.im).add(li.mul(h.re)).add(gamma.mul(bIm)) as tf.Tensor2D;
      states[l] = { re: hRe, im: hIm };
      const y = mv(P[`${p}C_re`], hRe).sub(mv(P[`${p}C_im`], hIm)).add(P[`${p}D`].mul(u)) as tf.Tensor2D;
      const z = gelu(y);
      const a = mv(P[`${p}glu.W1`], z).add(P[`${p}glu.b1`]);
      const gate = tf.sigmoid(mv(P[`${p}glu.W2`], z).add(P[`${p}glu.b2`]));
      x = x.add(a.mul(gate)) as tf.Tensor2D;
    }
    logits.push(mv(P.V, x).add(P.c) as tf.Tensor2D);
  }
  return logits;
}

function lossOf(o: TfLruOptions, logits: tf.Tensor2D, y: tf.Tensor2D): tf.Scalar {
  if (o.loss === 'mse') return tf.squaredDifference(logits, y).sum().mul(0.5) as tf.Scalar;
  return tf.logSoftmax(logits.reshape([-1])).mul(y.reshape([-1])).sum().neg() as tf.Scalar;
}

/** The prediction at every tick of xs (logits for mse, softmax(logits) for xent), from zero states. */
export function tfLruPredictions(options: TfLruOptions, params: Float64Array, xs: number[][]): number[][] {
  const blocks = lruBlockShapes(options);
  if (xs.length === 0) return [];
  return tf.tidy(() => {
    const P = named(blocks, paramTensors(blocks, params));
    const x = columns(xs, options.inputSize, 'xs');
    const logits = forwardLogits(options, P, x, xs.length - 1);
    const all = tf.concat(logits, 1); // K x T
    const pred = options.loss === 'mse' ? all : tf.softmax(all.transpose()).transpose();
    return pred.transpose().arraySync() as number[][];
  });
}

/**
 * dL_t/dtheta for the loss of tick t alone, by autodiff through the whole unrolled sequence 0..t from zero states
 * (full BPTT), flat in the order of lruBlockShapes (the order of params). Inputs after t are never read.
 */
export function tfLruBpttGradient(
  options: TfLruOptions,
  params: Float64Array,
  xs: number[][],
  ys: number[][],
  t: number,
): Float64Array {
  const blocks = lruBlockShapes(options);
  if (!Number.isInteger(t) || t < 0 || t >= xs.length || t >= ys.length) {
    throw new Error(`tf-lru: tick ${t} is outside the sequence (${xs.length} inputs, ${ys.length} targets)`);
  }
  const out = new Float64Array(parameterCount(blocks));
  tf.tidy(() => {
    const args = paramTensors(blocks, params);
    const x = columns(xs.slice(0, t + 1), options.inputSize, 'xs');
    const [y] = columns([ys[t]], options.outputSize, `ys`);
    const f = (...ps: tf.Tensor[]): tf.Scalar => {
      const logits = forwardLogits(options, named(blocks, ps), x, t);
      return lossOf(options, logits[t], y);
    };
    const grads = tf.grads(f)(args);
    let offset = 0;
    args.forEach((a, i) => {
      const g = grads[i];
      if (g) out.set(g.dataSync(), offset); // tf.grads leaves undefined a block the loss does not depend on
      offset += a.size;
    });
  });
  return out;
}
