/**
 * The error streams `driftline reproduce drift` scores its detectors on: the shipped BCI decoder
 * (examples/bci-decoder/jango.yaml) replayed predict-then-learn through driftline's own pipeline over two
 * recording sessions joined into ONE session, so no marker declares the boundary (the detectors must find it), with
 * a label on every tick. For each scored tick it records the two signals detectDrift can feed its detectors
 * (src/streams/detect-drift.ts): 'error', the mean over outputs of the squared error in label units, and
 * 'normalized-error', that error over the label-variance EWMA (NaN where detectDrift feeds nothing: its
 * normalizer's warm-up, a non-finite quotient).
 *
 * Recording the signal once and running every detector over it offline is what a pipeline with that one detector
 * and no cooldown would see: a detection marker fed back into the pipeline changes no prediction (predictThenLearn
 * only forks a frozen shadow on it, and none is asked for here), and a detector resets itself after it fires, as
 * detectDrift's reset on its own marker does. test/reproduce-drift.test.ts checks this against detectDrift.
 *
 * Streams are cached per (source, seed) under the output directory, keyed by everything that determines them, so
 * the detector evaluation can be rerun in seconds.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lastValueFrom, tap } from 'rxjs';
import { replaySessions, type ReplaySession } from '../adapters/replay/replay.js';
import { Ewma } from '../evaluation/ewma.js';
import { canonicalJson, type LearnerSpec } from '../learners/learner.js';
import { rmsprop } from '../learners/optim/transform.js';
import { NORMALIZER_HALF_LIFE_TICKS, NORMALIZER_WARM_UP_TICKS, type DriftSignal } from '../streams/detect-drift.js';
import type { TargetScalingSpec } from '../streams/normalize-targets.js';
import { ChannelNovelty } from '../streams/channel-novelty.js';
import { normalizeInputs } from '../streams/normalize-inputs.js';
import { createPipeline } from '../streams/pipeline.js';
import { tickError } from '../streams/tick-error.js';

/**
 * The learner of examples/bci-decoder/jango.yaml (LSTM, 64 units, immediate derivatives with trace decay 0.5,
 * RMSprop lr 1e-4, MSE, labels up to 63 ticks late) with another seed. A test checks it against the config file.
 */
export function shippedDecoderSpec(seed: number, inputSize: number, outputSize: number): LearnerSpec {
  return {
    cell: { kind: 'lstm', hiddenSize: 64 },
    credit: { rule: 'immediate', lambda: 0.5 },
    optimizer: rmsprop(1e-4),
    inputSize,
    outputSize,
    seed,
    loss: 'mse',
    maxLabelDelay: 64,
  };
}

/** The rest of jango.yaml's stream processing that shapes the error: input z-scoring, label standardization. */
export const SHIPPED_NORMALIZE_DECAY = 0.9995;
export const SHIPPED_TARGET_SCALING: TargetScalingSpec = { kind: 'standardize' };
/** jango.yaml's `drift.signal` (`driftline run`'s own default is 'error'). */
export const SHIPPED_SIGNAL: DriftSignal = 'normalized-error';

export interface StreamRecordOptions {
  readonly normalizeDecay?: number;
  readonly targetScaling?: TargetScalingSpec;
  /** Called with the number of inputs replayed since the last call. */
  readonly onTicks?: (ticks: number) => void;
}

/** The per-tick signals of one replay; index = tick (seq) of the joined session. */
export interface RecordedSignals {
  /** detectDrift's 'error' (mean squared error over outputs, label units); NaN where not finite. */
  readonly error: Float64Array;
  /** detectDrift's 'normalized-error'; NaN where detectDrift feeds nothing. */
  readonly normalized: Float64Array;
  /** Mean wall-clock microseconds per tick through the whole pipeline. */
  readonly microsPerTick: number;
}

/**
 * Two sessions as one (no session marker between them): the second's bins follow the first's one bin apart.
 * @throws RangeError unless both have labels and the same channels and outputs.
 */
export function joinSessions(first: ReplaySession, second: ReplaySession, name = `${first.name}+${second.name}`): ReplaySession {
  const out = first.nOutputs ?? 0;
  if (first.y === undefined || second.y === undefined || out < 1 || second.nOutputs !== out || second.nChannels !== first.nChannels) {
    throw new RangeError('joinSessions: both sessions need labels, with the same channels and outputs');
  }
  const n1 = first.t.length;
  const n2 = second.t.length;
  const bin = first.binSeconds ?? (n1 > 1 ? (first.t[n1 - 1] - first.t[0]) / (n1 - 1) : 1);
  const t = new Float64Array(n1 + n2);
  t.set(first.t, 0);
  const shift = (n1 > 0 ? first.t[n1 - 1] + bin : 0) - (n2 > 0 ? second.t[0] : 0);
  for (let i = 0; i < n2; i++) t[n1 + i] = second.t[i] + shift;
  const x = new Float32Array(first.x.length + second.x.length);
  x.set(first.x, 0);
  x.set(second.x, first.x.length);
  const y = new Float32Array(first.y.length + second.y.length);
  y.set(first.y, 0);
  y.set(second.y, first.y.length);
  return { name, t, x, nChannels: first.nChannels, y, nOutputs: out, binSeconds: bin };
}

/**
 * Replays `session` (one stream, a label in every tick, no holdout) through createPipeline with `spec` and records
 * both drift signals per tick, exactly as detectDrift computes them.
 */
export async function recordSignals(session: ReplaySession, spec: LearnerSpec, options: StreamRecordOptions = {}): Promise<RecordedSignals> {
  const ticks = session.t.length;
  const error = new Float64Array(ticks).fill(Number.NaN);
  const normalized = new Float64Array(ticks).fill(Number.NaN);
  const pipeline = createPipeline({
    pool: { spec, maxStreams: 1 },
    normalize: { decay: options.normalizeDecay ?? SHIPPED_NORMALIZE_DECAY },
    holdout: { kind: 'none' },
    maxDelay: spec.maxLabelDelay ?? 64,
    recoveryTicks: 0,
    targetScaling: options.targetScaling ?? SHIPPED_TARGET_SCALING,
    prequential: { window: 1200, ewmaAlpha: 0.01, every: 1200 },
    drift: { detectors: [] },
    recovery: { window: 1200, tolerance: 0.5 },
  });
  // detectDrift's label-variance estimate (its LabelScale), folded the same way.
  const scale = new Ewma({ halfLife: NORMALIZER_HALF_LIFE_TICKS });
  let inputs = 0;
  let rejection = '';
  const started = performance.now();
  await lastValueFrom(
    replaySessions([session], { stream: 'drift', speed: 'fast', progress: false, chunkTicks: 2000 }).pipe(
      tap((m) => {
        if (m.kind === 'tick' && ++inputs % 1000 === 0) options.onTicks?.(1000);
      }),
      pipeline.operator,
      tap((m) => {
        if (m.kind === 'rejected' && rejection === '') rejection = `${m.reason}: ${m.message}`;
        if (m.kind !== 'scored') return;
        const e = tickError(m.yhat, m.y);
        if (Number.isFinite(e)) error[m.seq] = e;
        const variance = scale.count >= NORMALIZER_WARM_UP_TICKS ? scale.value : Number.NaN;
        const reference = tickError(m.yMean, m.y);
        if (reference >= 0 && Number.isFinite(reference)) scale.update(reference);
        const value = e / variance;
        if (Number.isFinite(value)) normalized[m.seq] = value;
      }),
    ),
    { defaultValue: undefined },
  );
  options.onTicks?.(inputs % 1000);
  if (rejection !== '') throw new Error(`the pipeline refused input of the replay: ${rejection}`);
  return { error, normalized, microsPerTick: ((performance.now() - started) * 1000) / Math.max(1, inputs) };
}

/** One recorded stream of a source and seed, with what it was recorded from. */
export interface ErrorStream extends RecordedSignals {
  readonly source: string;
  readonly seed: number;
  readonly binSeconds: number;
  /** First tick of the second session. */
  readonly boundary: number;
  readonly ticks: number;
  /** Whether it came from the cache. */
  readonly cached: boolean;
}

const CACHE_FORMAT = 1;

/**
 * The stream of `key` from `dir` when a cached copy recorded with the same key is there (and `fresh` is false),
 * else `record()`'s, written to `dir` (when not null) for the next run. The key must name everything that
 * determines the stream (source and its options, learner spec, stream processing).
 */
export async function cachedStream(
  dir: string | null,
  file: string,
  key: unknown,
  fresh: boolean,
  record: () => Promise<Omit<ErrorStream, 'cached'>>,
): Promise<ErrorStream> {
  const keyText = canonicalJson({ format: CACHE_FORMAT, key });
  const meta = dir === null ? '' : join(dir, `${file}.json`);
  const data = dir === null ? '' : join(dir, `${file}.f64`);
  if (dir !== null && !fresh && existsSync(meta) && existsSync(data)) {
    try {
      const m = JSON.parse(await readFile(meta, 'utf8')) as { key: string; source: string; seed: number; binSeconds: number; boundary: number; ticks: number; microsPerTick: number };
      const bytes = await readFile(data);
      if (m.key === keyText && bytes.byteLength === m.ticks * 16) {
        const all = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
        return {
          source: m.source, seed: m.seed, binSeconds: m.binSeconds, boundary: m.boundary, ticks: m.ticks, microsPerTick: m.microsPerTick,
          error: all.slice(0, m.ticks), normalized: all.slice(m.ticks), cached: true,
        };
      }
    } catch {
      // An unreadable cache entry is recorded again below.
    }
  }
  const stream = await record();
  if (dir !== null) {
    await mkdir(dir, { recursive: true });
    const all = new Float64Array(stream.ticks * 2);
    all.set(stream.error, 0);
    all.set(stream.normalized, stream.ticks);
    await writeFile(data, new Uint8Array(all.buffer));
    const { error: _e, normalized: _n, ...rest } = stream;
    await writeFile(meta, `${JSON.stringify({ key: keyText, ...rest }, null, 2)}\n`);
  }
  return { ...stream, cached: false };
}

/**
 * detectInputDrift's 'mean-squared-z' statistic per tick of `session`, as a pipeline with the shipped input
 * normalization computes it (normalizeInputs first, then ChannelNovelty on the normalized inputs); NaN where
 * nothing is fed (the first CHANNEL_STATISTICS_WARM_UP_TICKS ticks). It needs no label and no learner, so it is
 * the same for every learner seed.
 */
export async function recordInputSquaredZ(session: ReplaySession, normalizeDecay = SHIPPED_NORMALIZE_DECAY): Promise<Float64Array> {
  const values = new Float64Array(session.t.length).fill(Number.NaN);
  const novelty = new ChannelNovelty(session.nChannels);
  await lastValueFrom(
    replaySessions([session], { stream: 'drift', speed: 'fast', progress: false, chunkTicks: 2000 }).pipe(
      normalizeInputs({ decay: normalizeDecay }),
      tap((m) => {
        if (m.kind === 'tick') values[m.seq] = novelty.observe(m.x);
      }),
    ),
    { defaultValue: undefined },
  );
  return values;
}
