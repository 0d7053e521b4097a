import { Random } from '../learners/random.js';

/**
 * The copy task of the online-LRU paper (Zucchet et al. 2023, after its reference code's copy dataset): a
 * pattern of `patternLength` steps of `bits` random bits (Bernoulli 1/2), then `padLength` blank steps, a marker
 * on the extra input channel, and the recall: the network must output the pattern, step by step, over the last
 * `patternLength` steps. Inputs have bits + 1 channels; targets have `bits`, and only the recall steps have one.
 * With the defaults (20, 7 bits, 7 blanks) a sequence is T = 2 * 20 + 7 + 1 = 48 ticks, the marker at tick 27,
 * the recall at ticks 28..47: remembering 140 bits across 28 to 47 ticks.
 *
 * `next()` draws a sequence into preallocated arrays; `input(t)` and `target(t)` are views that stay valid until
 * the next draw. Nothing is allocated per sequence.
 */
export interface CopyTaskOptions {
  readonly patternLength?: number;
  readonly bits?: number;
  readonly padLength?: number;
}

export class CopyTask {
  readonly patternLength: number;
  readonly bits: number;
  readonly padLength: number;
  /** Ticks per sequence. */
  readonly length: number;
  readonly inputSize: number;
  readonly outputSize: number;
  /** The tick of the marker; the recall runs from markerTick + 1 to length - 1. */
  readonly markerTick: number;
  private readonly inputs: Float32Array;
  private readonly targets: Float32Array;

  constructor(options: CopyTaskOptions = {}) {
    this.patternLength = options.patternLength ?? 20;
    this.bits = options.bits ?? 7;
    this.padLength = options.padLength ?? 7;
    for (const [name, v] of [['patternLength', this.patternLength], ['bits', this.bits], ['padLength', this.padLength]] as const) {
      if (!Number.isInteger(v) || v < (name === 'padLength' ? 0 : 1)) throw new RangeError(`copy task: ${name} must be a ${name === 'padLength' ? 'non-negative' : 'positive'} integer, got ${v}`);
    }
    this.length = 2 * this.patternLength + this.padLength + 1;
    this.inputSize = this.bits + 1;
    this.outputSize = this.bits;
    this.markerTick = this.patternLength + this.padLength;
    this.inputs = new Float32Array(this.length * this.inputSize);
    this.targets = new Float32Array(this.patternLength * this.bits);
  }

  /** Draws the next sequence. */
  next(rng: Random): void {
    this.inputs.fill(0);
    for (let t = 0; t < this.patternLength; t++) {
      for (let b = 0; b < this.bits; b++) {
        const bit = rng.next() < 0.5 ? 0 : 1;
        this.inputs[t * this.inputSize + b] = bit;
        this.targets[t * this.bits + b] = bit;
      }
    }
    this.inputs[this.markerTick * this.inputSize + this.bits] = 1;
  }

  input(t: number): Float32Array {
    return this.inputs.subarray(t * this.inputSize, (t + 1) * this.inputSize);
  }

  /** Whether tick t is a recall step, which has a target. */
  recalls(t: number): boolean {
    return t > this.markerTick && t < this.length;
  }

  /** The target of recall tick t: the pattern's step t - markerTick - 1. */
  target(t: number): Float32Array {
    const step = t - this.markerTick - 1;
    return this.targets.subarray(step * this.bits, (step + 1) * this.bits);
  }
}
