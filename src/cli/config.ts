import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_MAX_LABEL_DELAY, type LearnerSpec, type RecurrentLearnerSpec } from '../learners/learner.js';
import { adam, momentum, rmsprop, sgd, withClipping, type OptimizerSpec } from '../learners/optim/transform.js';
import { cellKinds, diagonalJacobianKinds, stepCellKinds } from '../learners/cells/registry.js';
import { onlineLruModes, type OnlineLruMode } from '../learners/credit/online-lru.js';
import { FPP_DEFAULTS } from '../learners/credit/registry.js';
import { createDetector, type DetectorSpec } from '../drift/detector.js';

/**
 * The configuration of `driftline run` and `driftline replay`: sources, the learner spec, evaluation, drift
 * detection, checkpoints, metrics and logging. Unknown fields are refused (a typo must not be silently ignored),
 * and every error names the field and says what would be accepted.
 */
const positiveInt = z.number().int().positive();
/** Kafka's legal topic names. */
const kafkaTopic = z.string().regex(/^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name is 1 to 249 of A-Z a-z 0-9 . _ -');
/** The calibrated detectors' calibrationStep in driftline run (see calibratedDetectorSchema). */
export const DEFAULT_SERVICE_CALIBRATION_STEP = 10_000;

const optimizerSchema = z
  .object({
    name: z.enum(['sgd', 'momentum', 'rmsprop', 'adam']),
    lr: z.number().positive(),
    decay: z.number().min(0).lt(1).optional(),
    beta1: z.number().min(0).lt(1).optional(),
    beta2: z.number().min(0).lt(1).optional(),
    eps: z.number().positive().optional(),
    clipNorm: z.number().positive().optional(),
  })
  .strict();

/** The classical decoders of src/learners/decoders (references, and learners in their own right). */
const decoderSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('ridge'),
      lags: positiveInt.max(64).optional(),
      alpha: z.number().positive().optional(),
      halfLifeTicks: z.number().positive().optional(),
      refitEvery: positiveInt.optional(),
      resetOnSession: z.boolean().optional(),
      minSamples: positiveInt.optional(),
    })
    .strict(),
  z.object({ kind: z.literal('rls'), lags: positiveInt.max(64).optional(), halfLifeTicks: z.number().positive().optional(), delta: z.number().positive().optional() }).strict(),
  z.object({ kind: z.literal('kalman'), halfLifeTicks: z.number().positive().optional(), refitEvery: positiveInt.optional(), ridge: z.number().positive().optional() }).strict(),
]);

/** The longest window tbptt and fpp take (createCreditRule's bound). */
const MAX_CREDIT_WINDOW = 1024;
/** fpp's largest buffer (createCreditRule's bound). */
const MAX_FPP_BUFFER = 1 << 20;

/** An integer in [min, max], with one message for every way of missing it. */
const integerIn = (min: number, max: number, what: string) => {
  const message = `must be an integer in [${min}, ${max}]: ${what}`;
  return z.number().int(message).min(min, message).max(max, message);
};

const creditWindow = integerIn(1, MAX_CREDIT_WINDOW, 'T, the ticks a gradient reaches back');
/** A window the cross-field checks can compare with (a bad one is reported on its own). */
const usableWindow = (window: number): boolean => Number.isInteger(window) && window >= 1 && window <= MAX_CREDIT_WINDOW;

/** Truncated BPTT (src/learners/credit/truncated-bptt.ts): a sweep back over `window` ticks every `every` labels. */
const tbpttSchema = z
  .object({
    rule: z.literal('tbptt'),
    window: creditWindow,
    every: integerIn(1, MAX_CREDIT_WINDOW, 'k, the labels per sweep back (at most window; default 1)').default(1),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (usableWindow(c.window) && Number.isInteger(c.every) && c.every > c.window) {
      ctx.addIssue({ code: 'custom', path: ['every'], message: `must be at most window (${c.window}), got ${c.every}: a sweep covers at most T ticks, so at most T labels` });
    }
  });

const horizonTicks = z
  .number({ error: (issue) => (issue.input === undefined ? `required for schedules 'decay' and 'random': the ticks over which the schedule moves through its five stages (an integer >= 5)` : undefined) })
  .int('must be an integer >= 5')
  .min(5, 'must be an integer >= 5: the schedule moves in five stages');

/** Fixed Point Propagation (src/learners/credit/fixed-point-propagation.ts), its defaults filled from FPP_DEFAULTS. */
const fppSchema = z
  .object({
    rule: z.literal('fpp'),
    window: creditWindow,
    buffer: integerIn(2, MAX_FPP_BUFFER, `N, the transitions kept (more than window; default ${FPP_DEFAULTS.buffer})`).default(FPP_DEFAULTS.buffer),
    updates: integerIn(1, 64, `M, the sampled updates per label (default ${FPP_DEFAULTS.updates})`).default(FPP_DEFAULTS.updates),
    lambda: z.number().min(0, `must be a number >= 0: the weight of the fixed-point penalty (default ${FPP_DEFAULTS.lambda})`).default(FPP_DEFAULTS.lambda),
    stateRate: z
      .number()
      .gt(0, `must be a number in (0, 10]: the step size on the stored states (default ${FPP_DEFAULTS.stateRate})`)
      .max(10, `must be a number in (0, 10]: the step size on the stored states (default ${FPP_DEFAULTS.stateRate})`)
      .default(FPP_DEFAULTS.stateRate),
    updateStates: z.boolean().default(FPP_DEFAULTS.updateStates),
    schedule: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('fixed') }).strict(),
        z.object({ kind: z.literal('decay'), horizonTicks }).strict(),
        z.object({ kind: z.literal('random'), horizonTicks }).strict(),
      ])
      .default({ kind: 'fixed' }),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (usableWindow(c.window) && Number.isInteger(c.buffer) && c.buffer <= c.window) {
      ctx.addIssue({
        code: 'custom', path: ['buffer'],
        message: `must be more than window (${c.window}), got ${c.buffer}${c.buffer === FPP_DEFAULTS.buffer ? ' (the default)' : ''}: each sampled update starts from a state T ticks back in the buffer`,
      });
    }
  });

/**
 * A recurrent learner (cell, credit, optimizer) or a classical decoder (decoder): one or the other. Checked after
 * the fields, so that each field's own error names it.
 */
const learnerSchema = z
  .object({
    cell: z
      .object({
        kind: z.enum(cellKinds as [string, ...string[]]),
        hiddenSize: positiveInt.max(4096),
        leak: z.number().gt(0).max(1).optional(),
        outputBypass: z.boolean().optional(),
        // cell 'lru' (src/learners/cells/lru.ts): checked again, with the ranges, when the learner is built.
        units: positiveInt.max(4096).optional(),
        layers: positiveInt.max(64).optional(),
        rMin: z.number().min(0).lt(1).optional(),
        rMax: z.number().gt(0).max(1).optional(),
        maxPhase: z.number().gt(0).max(2 * Math.PI).optional(),
      })
      .strict()
      .optional(),
    credit: z
      .discriminatedUnion('rule', [
        z.object({ rule: z.literal('immediate'), lambda: z.union([z.number().min(0).lt(1), z.literal('exact')], { error: `must be a number in [0, 1) or 'exact'` }).default(0) }).strict(),
        z.object({ rule: z.literal('rtrl') }).strict(),
        z.object({ rule: z.literal('online-lru'), mode: z.enum(onlineLruModes as [OnlineLruMode, ...OnlineLruMode[]]).default('online') }).strict(),
        tbpttSchema,
        fppSchema,
      ])
      .optional(),
    optimizer: optimizerSchema.optional(),
    /** The readout fitted by recursive least squares (default: the optimizer's gradient steps). */
    readout: z.object({ kind: z.literal('rls'), halfLifeTicks: z.number().positive().optional(), delta: z.number().positive().optional() }).strict().optional(),
    decoder: decoderSchema.optional(),
    loss: z.enum(['mse', 'xent', 'bce']).default('mse'),
    seed: z.number().int().default(1),
    maxLabelDelay: positiveInt.max(65536).default(DEFAULT_MAX_LABEL_DELAY),
  })
  .strict()
  .superRefine((l, ctx) => {
    if (l.decoder !== undefined) {
      for (const field of ['cell', 'credit', 'optimizer', 'readout'] as const) {
        if (l[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: `a learner is either a decoder or a recurrent cell: remove '${field}' or 'decoder'` });
      }
      if (l.loss !== 'mse') ctx.addIssue({ code: 'custom', path: ['loss'], message: `decoders fit squared error: loss must be 'mse'` });
      return;
    }
    for (const field of ['cell', 'credit', 'optimizer'] as const) {
      if (l[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: `required (or give 'decoder' instead of cell, credit and optimizer)` });
    }
    if (l.cell !== undefined && l.credit !== undefined && (l.cell.kind === 'lru') !== (l.credit.rule === 'online-lru')) {
      ctx.addIssue({
        code: 'custom', path: ['credit', 'rule'],
        message: l.cell.kind === 'lru'
          ? `cell 'lru' learns with rule 'online-lru' (modes ${onlineLruModes.join(', ')}), not '${l.credit.rule}', which needs a cell with one-step derivatives (${stepCellKinds.join(', ')})`
          : `'online-lru' learns cell 'lru' only`,
      });
    }
    if (l.credit?.rule === 'fpp' && l.readout !== undefined) {
      ctx.addIssue({
        code: 'custom', path: ['readout'],
        message: `rule 'fpp' steps the readout itself, on the states of its sampled updates, so it takes no recursive-least-squares readout: remove 'readout' (or use another rule)`,
      });
    }
    if (l.cell !== undefined && l.cell.kind !== 'lru') {
      for (const field of ['units', 'layers', 'rMin', 'rMax', 'maxPhase'] as const) {
        if (l.cell[field] !== undefined) ctx.addIssue({ code: 'custom', path: ['cell', field], message: `applies to cell 'lru' only` });
      }
    }
    if (l.credit?.rule === 'immediate' && l.credit.lambda === 'exact' && l.cell !== undefined) {
      const exactKinds: readonly string[] = diagonalJacobianKinds();
      if (!exactKinds.includes(l.cell.kind)) {
        ctx.addIssue({ code: 'custom', path: ['credit', 'lambda'], message: `'exact' needs a cell whose state Jacobian is diagonal (${exactKinds.join(', ')}), not '${l.cell.kind}'` });
      }
    }
  });

const singleHoldouts = [
  z.object({ kind: z.literal('none') }).strict(),
  z.object({ kind: z.literal('always') }).strict(),
  z.object({ kind: z.literal('alternate'), onSeconds: z.number().positive(), offSeconds: z.number().positive() }).strict(),
  z.object({ kind: z.literal('firstMinutes'), minutes: z.number().positive() }).strict(),
] as const;

/** One schedule, or one per session (the protocols of src/reproduce/bci-protocols.ts). */
const holdoutSchema = z.discriminatedUnion('kind', [
  ...singleHoldouts,
  z.object({ kind: z.literal('bySession'), sessions: z.array(z.discriminatedUnion('kind', [...singleHoldouts])).min(1) }).strict(),
]);

const targetScalingSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }).strict(),
  z
    .object({
      kind: z.literal('standardize'),
      halfLifeLabels: z.number().positive().optional(),
      freezeAfterLabels: z.number().positive().optional(),
      outOfRangeSd: z.number().positive().optional(),
      minLabelsForRange: z.number().int().min(2).optional(),
    })
    .strict(),
]);

const pageHinkleyFixedOptions = {
  delta: z.number().min(0).optional(),
  minInstances: positiveInt.optional(),
  alpha: z.number().gt(0).max(1).optional(),
  mode: z.enum(['up', 'down', 'both']).optional(),
};
const kswinFixedOptions = {
  windowSize: positiveInt.min(2).optional(),
  statSize: positiveInt.optional(),
  seed: z.number().int().optional(),
};
const kswinSizes = (d: { statSize?: number; windowSize?: number }): boolean => (d.statSize ?? 30) * 2 <= (d.windowSize ?? 100);
const kswinSizesMessage = { message: 'statSize must be at most half of windowSize (defaults 30 and 100)', path: ['statSize'] };

// A detector set by a false-alarm budget (src/drift/calibrated-detector.ts): every option of the detector but the
// one calibration chooses. tickSeconds defaults to drift.tickSeconds.
const calibratedDetectorSchema = z
  .object({
    kind: z.literal('calibrated'),
    detector: z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('page-hinkley'), ...pageHinkleyFixedOptions }).strict(),
      z.object({ kind: z.literal('adwin') }).strict(),
      z.object({ kind: z.literal('kswin'), ...kswinFixedOptions }).strict().refine(kswinSizes, kswinSizesMessage),
    ]),
    falseAlarmsPerHour: z.number().positive(),
    tickSeconds: z.number().positive().optional(),
    settleSeconds: z.number().min(0).optional(),
    calibrationSeconds: z.number().positive().optional(),
    runs: positiveInt.max(1000).optional(),
    seed: z.number().int().optional(),
    // In a service the calibration runs on the thread that serves every stream of it: 10,000 simulated updates
    // (about 0.6 ms here) on each update until done, instead of 0.3-0.5 s at once. Armed about 600 updates later
    // (30 s at 50 Hz); MAX_SIMULATED_TICKS or more runs it in one go.
    calibrationStep: positiveInt.default(DEFAULT_SERVICE_CALIBRATION_STEP),
  })
  .strict();

const detectorSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('page-hinkley'),
      threshold: z.number().positive().optional(),
      ...pageHinkleyFixedOptions,
    })
    .strict(),
  z.object({ kind: z.literal('adwin'), delta: z.number().gt(0).lt(1).optional() }).strict(),
  calibratedDetectorSchema,
  // KSWIN (src/drift/kswin.ts): a Kolmogorov-Smirnov test between the newest values and a seeded sample of older
  // ones in a sliding window; real-valued signals are its contract. River's defaults; a fixed seed for replays.
  z
    .object({ kind: z.literal('kswin'), alpha: z.number().gt(0).lt(1).optional(), ...kswinFixedOptions })
    .strict()
    .refine(kswinSizes, kswinSizesMessage),
  // The binary detectors (src/drift/ddm.ts, eddm.ts, hddm-a.ts, hddm-w.ts) expect a 0/1 error signal.
  z
    .object({
      kind: z.literal('ddm'),
      warmStart: z.number().int().min(0).optional(),
      warningThreshold: z.number().positive().optional(),
      driftThreshold: z.number().positive().optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('eddm'),
      warmStart: z.number().int().min(0).optional(),
      alpha: z.number().gt(0).max(1).optional(),
      beta: z.number().gt(0).max(1).optional(),
    })
    .strict()
    .refine((d) => (d.alpha ?? 0.95) >= (d.beta ?? 0.9), { message: 'alpha must be >= beta (defaults 0.95 and 0.9)', path: ['alpha'] }),
  z
    .object({
      kind: z.literal('hddm-a'),
      driftConfidence: z.number().gt(0).lt(1).optional(),
      warningConfidence: z.number().gt(0).lt(1).optional(),
      twoSidedTest: z.boolean().optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('hddm-w'),
      driftConfidence: z.number().gt(0).lt(1).optional(),
      warningConfidence: z.number().gt(0).lt(1).optional(),
      lambdaVal: z.number().min(0).max(1).optional(),
      twoSidedTest: z.boolean().optional(),
    })
    .strict(),
]);

/** A detector as the pipeline takes it: a calibrated one with the stream's tick where it does not set its own. */
function withTick(spec: z.infer<typeof detectorSchema>, tickSeconds: number): DetectorSpec {
  return spec.kind === 'calibrated' ? { ...spec, tickSeconds: spec.tickSeconds ?? tickSeconds } : spec;
}

/** Detectors of a binary (0/1) error signal, which no pipeline signal is yet. */
const BINARY_DETECTOR_KINDS: ReadonlySet<string> = new Set(['ddm', 'eddm', 'hddm-a', 'hddm-w']);

const host = z.string().min(1);

export const configSchema = z
  .object({
    streams: z
      .object({
        inputSize: positiveInt.max(1 << 16),
        outputSize: positiveInt.max(1 << 12),
        /** Live learners at once; with checkpoints, a stream past it evicts the least recently used one. */
        maxStreams: positiveInt.max(100_000).default(64),
        /** With checkpoints: a stream with no input for this long is checkpointed and evicted from memory. */
        idleSeconds: z.number().positive().default(300),
        /**
         * Worker threads the streams are spread over by key (src/cli/service/shard-pool.ts), each with its own learners;
         * the main thread keeps the sockets, the journal, the metrics endpoint and the dashboard. 1: no workers;
         * 'auto': one per core. Default 1: at low load shards cost more CPU per event than they save
         * (docs/performance.md, "Shards").
         */
        shards: z
          .union([positiveInt.max(64), z.literal('auto')])
          .default(1)
          .transform((n) => (n === 'auto' ? Math.min(64, availableParallelism()) : n)),
        allow: z.array(z.string().min(1).max(128)).optional(),
      })
      .strict(),
    learner: learnerSchema,
    sources: z
      .object({
        websocket: z
          .object({
            host: host.default('127.0.0.1'),
            port: z.number().int().min(0).max(65535).default(8080),
            token: z.string().min(16, 'a bearer token needs at least 16 characters').optional(),
            maxPayloadBytes: positiveInt
              .max(16 * 1024 * 1024, 'maxPayloadBytes is at most 16777216 (16 MiB): a larger frame stalls every stream while it is parsed')
              .default(1 << 20),
            heartbeatMs: positiveInt.default(15_000),
            maxBufferedBytes: positiveInt.default(1 << 20),
            coalesceSends: z.boolean().default(false),
            // A message may carry several frames (docs/websocket-frames.md, Batches); past this many it is refused.
            maxFramesPerMessage: positiveInt.max(65535, 'maxFramesPerMessage is at most 65535 (a binary batch counts its frames in 16 bits)').default(4096),
          })
          .strict()
          .optional(),
        /**
         * A consumer-group worker (src/adapters/kafka/kafka-worker.ts): frames from inputTopic, predictions to
         * predictionsTopic, learner state in changelogTopic (compacted; created when missing), exactly once through
         * per-partition transactions. ssl and sasl go to kafkajs as they are.
         */
        kafka: z
          .object({
            brokers: z.array(z.string().regex(/^[^\s,]+:\d{1,5}$/, 'a broker is HOST:PORT')).min(1),
            clientId: z.string().min(1).default('driftline'),
            groupId: z.string().min(1),
            inputTopic: kafkaTopic,
            predictionsTopic: kafkaTopic,
            changelogTopic: kafkaTopic,
            /**
             * Labels from a producer of their own (label frames keyed by stream), forwarded into inputTopic exactly
             * once, so they join their stream's ticks in order there (docs/kafka.md, Labels).
             */
            labelsTopic: kafkaTopic.optional(),
            /** Records refused at the edge are also written here, whole, with the reason in their headers. */
            deadLetterTopic: kafkaTopic.optional(),
            /** Partitions of the changelog when driftline creates it (as many as the input topic's is usual). */
            changelogPartitions: positiveInt.default(1),
            commitEveryRecords: positiveInt.default(2000),
            commitEveryMs: positiveInt.default(1000),
            /** How long the group waits for a silent worker before its partitions go to the others. */
            sessionTimeoutMs: positiveInt.min(6000).default(30_000),
            maxFrameBytes: positiveInt.max(16 * 1024 * 1024).default(1 << 20),
            ssl: z.union([z.boolean(), z.record(z.string(), z.unknown())]).optional(),
            sasl: z
              .object({ mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']), username: z.string(), password: z.string() })
              .strict()
              .optional(),
          })
          .strict()
          .refine((k) => new Set([k.inputTopic, k.predictionsTopic, k.changelogTopic, k.labelsTopic ?? k.inputTopic, k.deadLetterTopic ?? k.inputTopic]).size === 3 + (k.labelsTopic !== undefined ? 1 : 0) + (k.deadLetterTopic !== undefined ? 1 : 0), 'sources.kafka: inputTopic, predictionsTopic, changelogTopic, labelsTopic and deadLetterTopic must be different topics')
          .optional(),
      })
      .strict()
      .refine((s) => !(s.websocket !== undefined && s.kafka !== undefined), 'sources: one of websocket and kafka, not both (run one driftline per source)')
      .default({}),
    evaluation: z
      .object({
        window: positiveInt.default(1000),
        ewmaAlpha: z.number().gt(0).max(1).default(0.01),
        /** A PrequentialReport after every k-th scored tick of a stream and track (metrics need no more). */
        reportEvery: positiveInt.max(1_000_000).default(10),
        holdout: holdoutSchema.default({ kind: 'none' }),
        recoveryTicks: positiveInt.default(2000),
        tolerance: z.number().positive().default(0.5),
        /**
         * Adaptive per-channel z-scoring of the inputs (normalizeInputs in src/streams): true for its defaults
         * (decay 0.999, about 1,000 ticks), or the decay (and warm-up ticks of exact statistics) to use.
         */
        normalizeInputs: z
          .union([z.boolean(), z.object({ decay: z.number().gt(0).lt(1), warmup: positiveInt.optional() }).strict()])
          .default(false),
        /**
         * Labels standardized per stream for the learner (running mean and scale of the labels it learns from),
         * predictions and metrics back in the user's units: on by default, so labels in any units (raw force,
         * counts) train as well as unit-sized ones. 'none' feeds the labels as they are.
         */
        targetScaling: targetScalingSchema.default({ kind: 'standardize' }),
      })
      .strict()
      .prefault({}),
    drift: z
      .object({
        /**
         * Detectors on the learner's per-tick error (after scoring). By default a Page-Hinkley test calibrated on
         * each stream's own start for at most one false alarm an hour (docs/drift-calibration.md): raw thresholds
         * are in the signal's units and would need tuning per feed.
         */
        detectors: z.array(detectorSchema).default([{ kind: 'calibrated', detector: { kind: 'page-hinkley' }, falseAlarmsPerHour: 1, calibrationStep: DEFAULT_SERVICE_CALIBRATION_STEP }]),
        /** Detectors on an input statistic of each tick (before the learner); none by default. */
        inputDetectors: z.array(detectorSchema).default([]),
        /**
         * The input statistic: the population mean over channels, or the mean squared z-score of each channel against
         * its own running statistics, which sees changes that cancel in the mean (units lost or gained; see
         * detectInputDrift).
         */
        inputStatistic: z.enum(['population-mean', 'mean-squared-z']).default('population-mean'),
        /** Scored ticks after any drift marker during which further detections are not emitted. */
        cooldownTicks: z.number().int().min(0).default(0),
        /**
         * What `detectors` see: the learner's squared error in label units ('error'), or that error over an
         * estimate of the label variance ('normalized-error', unitless, about 1 - R2 per tick; see detectDrift).
         */
        signal: z.enum(['error', 'normalized-error']).default('error'),
        /**
         * Stream time between two ticks of a stream, in seconds: what turns a calibrated detector's false alarms
         * per hour and warm-up seconds into ticks, unless the detector sets its own tickSeconds. The default is the
         * 50 ms bin of the BCI feeds driftline was built for; set it to your feed's tick.
         */
        tickSeconds: z.number().positive().default(0.05),
      })
      .strict()
      .superRefine((d, ctx) => {
        // DDM, EDDM and the HDDMs test a 0/1 error rate; the pipeline feeds real-valued errors and input means.
        for (const field of ['detectors', 'inputDetectors'] as const) {
          d[field].forEach((spec, i) => {
            if (BINARY_DETECTOR_KINDS.has(spec.kind)) {
              ctx.addIssue({
                code: 'custom',
                path: [field, i, 'kind'],
                message: `'${spec.kind}' tests a 0/1 error rate, and the pipeline feeds it ${field === 'detectors' ? `the learner's real-valued error (signal '${d.signal}')` : 'input means'}: use page-hinkley or adwin here (the binary detectors serve the API and the drift evaluation)`,
              });
            }
            if (spec.kind === 'calibrated') {
              // What the schema cannot see: a budget too small for the tick rate, a warm-up shorter than 100 ticks.
              try {
                createDetector({ ...spec, tickSeconds: spec.tickSeconds ?? d.tickSeconds });
              } catch (err) {
                ctx.addIssue({ code: 'custom', path: [field, i], message: err instanceof Error ? err.message : String(err) });
              }
            }
          });
        }
      })
      .transform((d) => ({
        ...d,
        detectors: d.detectors.map((spec) => withTick(spec, d.tickSeconds)),
        inputDetectors: d.inputDetectors.map((spec) => withTick(spec, d.tickSeconds)),
      }))
      .prefault({}),
    checkpoint: z
      .object({
        /** Relative to the config file's folder. */
        dir: z.string().min(1),
        /** Snapshot a stream at least this often while it runs: the most a crash can roll it back, in time. */
        everySeconds: z.number().positive().max(86_400).default(5),
        /** Also after this many ticks of a stream (optional). */
        everyTicks: positiveInt.optional(),
        /**
         * A checkpoint that cannot be restored (damaged, another format, another learner spec) is moved to
         * `<dir>/quarantine/`; then the stream is refused ('refuse') or starts fresh ('fresh').
         */
        onBadCheckpoint: z.enum(['refuse', 'fresh']).default('refuse'),
      })
      .strict()
      .optional(),
    metrics: z
      .object({
        host: host.default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9464),
        /** Bearer token for GET /metrics; when absent, sources.websocket.token guards it (one token for every endpoint). */
        token: z.string().min(16, 'a bearer token needs at least 16 characters').optional(),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 9464 }),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** Warnings about refused input logged per second at most; the rest are counted and summarised. */
        maxWarningsPerSecond: positiveInt.max(10_000).default(10),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type DriftlineConfig = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[], source: string) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Parses and validates a config object; throws ConfigError naming every bad field. */
export function parseConfig(raw: unknown, source = 'config'): DriftlineConfig {
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    if (issue.code === 'unrecognized_keys') {
      return `${field === '(top level)' ? '' : `${field}: `}unknown field(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}: remove them or check the spelling`;
    }
    return `${field}: ${issue.message}`;
  });
  throw new ConfigError(problems, source);
}

/** Reads a YAML (or JSON) config file. */
export function loadConfig(path: string): DriftlineConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError([`cannot read the file: ${(error as Error).message}`], path);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new ConfigError([`not valid YAML: ${(error as Error).message.split('\n')[0]}`], path);
  }
  const config = parseConfig(raw, path);
  // A relative checkpoint dir means the folder beside the config, wherever driftline was started from.
  if (config.checkpoint && !isAbsolute(config.checkpoint.dir)) {
    config.checkpoint.dir = resolvePath(dirname(resolvePath(path)), config.checkpoint.dir);
  }
  return config;
}

/** The learner of a config in a few words, for summaries and logs. */
export function describeLearner(config: DriftlineConfig): string {
  const l = config.learner;
  if (l.decoder !== undefined) {
    const { kind, ...options } = l.decoder;
    const rest = Object.entries(options).map(([k, v]) => `${k} ${String(v)}`).join(', ');
    return `${kind} decoder${rest ? ` (${rest})` : ''}`;
  }
  const cell = l.cell!;
  const shape = cell.kind === 'lru'
    ? `lru H = ${cell.hiddenSize}, N = ${cell.units ?? cell.hiddenSize}, ${cell.layers ?? 1} layer${(cell.layers ?? 1) > 1 ? 's' : ''}`
    : `${cell.kind} n = ${cell.hiddenSize}`;
  return `${shape}, ${describeCredit(l.credit!)}, ${l.optimizer!.name} lr ${l.optimizer!.lr}${l.readout ? ', RLS readout' : ''}`;
}

/** A credit rule in a few words: the window sizes, and what differs from the defaults. */
function describeCredit(credit: NonNullable<DriftlineConfig['learner']['credit']>): string {
  switch (credit.rule) {
    case 'online-lru':
      return `online-lru (${credit.mode})`;
    case 'tbptt':
      return `tbptt (T ${credit.window}, every ${credit.every})`;
    case 'fpp': {
      const parts = [`T ${credit.window}`, `N ${credit.buffer}`, `M ${credit.updates}`];
      if (credit.lambda !== FPP_DEFAULTS.lambda) parts.push(`lambda ${credit.lambda}`);
      if (credit.stateRate !== FPP_DEFAULTS.stateRate) parts.push(`state rate ${credit.stateRate}`);
      if (!credit.updateStates) parts.push('no state updates');
      if (credit.schedule.kind !== 'fixed') parts.push(`${credit.schedule.kind} schedule over ${credit.schedule.horizonTicks} ticks`);
      return `fpp (${parts.join(', ')})`;
    }
    default:
      return credit.rule;
  }
}

/** The learner spec a config describes. */
export function learnerSpecOf(config: DriftlineConfig): LearnerSpec {
  const l = config.learner;
  if (l.decoder !== undefined) {
    return {
      decoder: l.decoder,
      inputSize: config.streams.inputSize,
      outputSize: config.streams.outputSize,
      seed: l.seed,
      loss: 'mse',
      maxLabelDelay: l.maxLabelDelay,
    };
  }
  return {
    cell: l.cell as RecurrentLearnerSpec['cell'],
    credit: l.credit as RecurrentLearnerSpec['credit'],
    optimizer: optimizerOf(l.optimizer!),
    inputSize: config.streams.inputSize,
    outputSize: config.streams.outputSize,
    seed: l.seed,
    loss: l.loss,
    maxLabelDelay: l.maxLabelDelay,
    ...(l.readout !== undefined ? { readout: l.readout } : {}),
  };
}

function optimizerOf(o: z.infer<typeof optimizerSchema>): OptimizerSpec {
  const base =
    o.name === 'sgd'
      ? sgd(o.lr)
      : o.name === 'momentum'
        ? momentum(o.lr, o.decay ?? 0.9)
        : o.name === 'rmsprop'
          ? rmsprop(o.lr, o.decay ?? o.beta2 ?? 0.99, o.eps ?? 1e-8)
          : adam(o.lr, o.beta1 ?? 0.9, o.beta2 ?? 0.999, o.eps ?? 1e-8);
  return o.clipNorm ? withClipping(base, o.clipNorm) : base;
}
