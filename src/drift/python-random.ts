/**
 * A twin of CPython's `random.Random` for the calls River's KSWIN makes: seeding with an int, `getrandbits`,
 * `_randbelow` and `sample(range(n), k)`, plus `random()`, which River's KSWIN example stream is drawn with.
 * It exists so that the TypeScript KSWIN draws the very indices River draws for the same seed, which is what
 * makes exact detection indices testable; it is not a general-purpose generator (driftline's own code uses
 * src/learners/random.ts).
 *
 * The generator is MT19937 (Matsumoto & Nishimura 1998). CPython seeds it from an int by `init_by_array` over
 * the 32-bit words of |seed|, least significant first (one zero word for seed 0), and reads integers from the
 * top bits of each tempered 32-bit output. `sample` follows Python 3.11 (3.11.7 made the fixture): for k > 5 it
 * computes setsize = 21 + 4^ceil(log4(3k)) (21 alone for k <= 5) and, when n <= setsize, draws from a
 * shrinking pool (randbelow(n - i), the pick replaced by the pool's last live item); otherwise it draws
 * randbelow(n) and re-draws values already taken. Both paths are reproduced because both consume the
 * generator differently. KSWIN with River's defaults (n = 100 - 30 = 70, k = 30, setsize 277) takes the pool
 * path; the set path appears once window_size - stat_size > 277 for stat_size 22..85, for example.
 *
 * Reference: M. Matsumoto and T. Nishimura (1998), Mersenne Twister: a 623-dimensionally equidistributed
 * uniform pseudo-random number generator, ACM TOMACS 8(1), 3-30.
 */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const TWO_32 = 4294967296;

/** Largest `getrandbits` width supported: every result must be an exact JavaScript number. */
export const MAX_RANDBITS = 53;

export class PythonRandom {
  private readonly mt = new Uint32Array(N);
  private index = N;
  // Scratch for sampleRange, kept between calls so that repeated samples of the same size allocate nothing.
  private pool = new Int32Array(0);
  private slots = new Int32Array(0);
  private taken = new Uint8Array(0);

  /** Same state as Python's `random.Random(seed)` for an int seed (sign ignored, as CPython does). */
  constructor(seed: number | bigint) {
    this.seed(seed);
  }

  /** Re-seed as `Random.seed(seed)` does for an int. */
  seed(seed: number | bigint): void {
    let magnitude: bigint;
    if (typeof seed === 'bigint') {
      magnitude = seed < 0n ? -seed : seed;
    } else {
      if (!Number.isSafeInteger(seed)) throw new RangeError(`PythonRandom: seed must be a safe integer or a bigint, got ${seed}`);
      magnitude = BigInt(Math.abs(seed));
    }
    const key: number[] = [];
    do {
      key.push(Number(magnitude & 0xffffffffn));
      magnitude >>= 32n;
    } while (magnitude > 0n);
    this.initByArray(key);
  }

  /** Next tempered 32-bit output (CPython's genrand_uint32). */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Python's `random()`: a double in [0, 1) from 27 + 26 bits of two outputs (CPython's genrand_res53). */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) * (1 / 9007199254740992);
  }

  /**
   * Python's `getrandbits(k)` for 0 <= k <= 53. Wider results are assembled from 32-bit words, least
   * significant word first, the last word keeping its top bits, as CPython does for k > 32.
   */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 0 || k > MAX_RANDBITS) {
      throw new RangeError(`PythonRandom.getrandbits: k must be an integer in [0, ${MAX_RANDBITS}], got ${k}`);
    }
    if (k === 0) return 0; // CPython returns 0 without drawing
    if (k <= 32) return this.nextUint32() >>> (32 - k);
    const low = this.nextUint32();
    const high = this.nextUint32() >>> (64 - k);
    return high * TWO_32 + low;
  }

  /** Python's `_randbelow(n)` (the getrandbits variant): uniform in [0, n) by rejection on bit_length(n) bits. */
  randbelow(n: number): number {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`PythonRandom.randbelow: n must be a positive safe integer, got ${n}`);
    if (n <= 0x7fffffff) return this.below31(n);
    const k = bitLength(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  // randbelow for 1 <= n < 2^31 without the argument checks, for sampleRange's inner loops. Same draws: one
  // 32-bit output per try, its top bit_length(n) bits kept.
  private below31(n: number): number {
    const shift = Math.clz32(n);
    let r = this.nextUint32() >>> shift;
    while (r >= n) r = this.nextUint32() >>> shift;
    return r;
  }

  /**
   * The list `random.sample(range(n), k)` returns, written into `out[0..k)` (and `out` returned). Allocates
   * only when `n` or `k` grows past every earlier call's.
   */
  sampleRange<T extends { [i: number]: number; readonly length: number }>(n: number, k: number, out: T): T {
    if (!Number.isSafeInteger(n) || n < 0 || n > 0x7fffffff) {
      throw new RangeError(`PythonRandom.sampleRange: n must be an integer in [0, 2^31 - 1], got ${n}`);
    }
    if (!Number.isInteger(k) || k < 0 || k > n) {
      throw new RangeError(`PythonRandom.sampleRange: k must be an integer in [0, n=${n}] (sample larger than population or negative), got ${k}`);
    }
    if (out.length < k) throw new RangeError(`PythonRandom.sampleRange: out has room for ${out.length} values, needs k=${k}`);

    if (n <= sampleSetSize(k)) {
      // Pool path. The pool is the identity between calls; a draw writes only slot j, so putting back the k
      // recorded slots restores it in O(k) instead of rebuilding all n.
      if (this.pool.length < n) {
        this.pool = new Int32Array(n);
        for (let i = 0; i < n; i++) this.pool[i] = i;
      }
      if (this.slots.length < k) this.slots = new Int32Array(k);
      const pool = this.pool;
      const slots = this.slots;
      for (let i = 0; i < k; i++) {
        const j = this.below31(n - i);
        slots[i] = j;
        out[i] = pool[j];
        pool[j] = pool[n - i - 1];
      }
      for (let i = 0; i < k; i++) pool[slots[i]] = slots[i];
      return out;
    }

    // Set path: a byte per candidate marks what was taken, cleared again before returning.
    if (this.taken.length < n) this.taken = new Uint8Array(n);
    const taken = this.taken;
    for (let i = 0; i < k; i++) {
      let j = this.below31(n);
      while (taken[j] === 1) j = this.below31(n);
      taken[j] = 1;
      out[i] = j;
    }
    for (let i = 0; i < k; i++) taken[out[i]] = 0;
    return out;
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1];
      mt[i] = Math.imul(1812433253, (prev ^ (prev >>> 30)) >>> 0) + i;
    }
    this.index = N;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1];
      // Uint32Array stores reduce the sums modulo 2^32, as the C uint32_t arithmetic does.
      mt[i] = ((mt[i] ^ Math.imul((prev ^ (prev >>> 30)) >>> 0, 1664525)) >>> 0) + key[j] + j;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1];
      mt[i] = ((mt[i] ^ Math.imul((prev ^ (prev >>> 30)) >>> 0, 1566083941)) >>> 0) - i;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000;
    this.index = N;
  }

  private twist(): void {
    const mt = this.mt;
    let kk = 0;
    for (; kk < N - M; kk++) {
      const y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
      mt[kk] = mt[kk + M] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    for (; kk < N - 1; kk++) {
      const y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
      mt[kk] = mt[kk + (M - N)] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    const y = (mt[N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
    mt[N - 1] = mt[M - 1] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    this.index = 0;
  }
}

/** Python's `int.bit_length` for a positive safe integer. */
function bitLength(n: number): number {
  return n < TWO_32 ? 32 - Math.clz32(n) : 32 + (32 - Math.clz32(Math.floor(n / TWO_32)));
}

/**
 * `random.sample`'s threshold between its pool and set paths: 21, plus 4^ceil(log(3k, 4)) when k > 5.
 * Python takes the float logarithm; an integer search gives the same exponent because 3k is never a power of 4,
 * so log4(3k) is never an integer, and it stays farther from one than float rounding reaches until 3k nears
 * 2^50, beyond any window a detector holds.
 */
export function sampleSetSize(k: number): number {
  if (k <= 5) return 21;
  let power = 1;
  while (power < 3 * k) power *= 4;
  return 21 + power;
}
