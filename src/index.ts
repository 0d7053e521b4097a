// The public API of the driftline package.
export { createLearner, canonicalJson, isDecoderSpec } from './learners/learner.js';
export type {
  Learner, LearnerSpec, RecurrentLearnerSpec, LearnerOptions, LearnOutcome, LearnerStats, CellSpec,
} from './learners/learner.js';
export { createDecoder } from './learners/decoders/create-decoder.js';
export { decoderKinds } from './learners/decoders/decoder-spec.js';
export type { DecoderKind, DecoderSpec } from './learners/decoders/decoder-spec.js';
export type { Decoder } from './learners/decoders/decoder-learner.js';
export type { RlsOptions } from './learners/decoders/rls.js';
export type { RidgeOptions } from './learners/decoders/ridge.js';
export type { KalmanOptions } from './learners/decoders/kalman.js';
export { cellKinds, createCell } from './learners/cells/registry.js';
export type { Cell, CellKind, ParamBlock, ParamGroup } from './learners/cells/cell.js';
export { FPP_DEFAULTS, type CreditSpec } from './learners/credit/registry.js';
export type { FppSchedule } from './learners/credit/fixed-point-propagation.js';
export * from './learners/optim/transform.js';
export { InvalidInputError, InvalidLabelError, InvalidSpecError, SnapshotError } from './learners/errors.js';
export { createKernels } from './learners/kernels/wasm-kernels.js';
export type { Kernels, KernelBackend } from './learners/kernels/kernels.js';
export { loadTensorFlow } from './tf/backend.js';
export { createPipeline } from './streams/pipeline.js';
export type { Pipeline, PipelineOptions, PipelineOutput } from './streams/pipeline.js';
export { ConfigError, configSchema, learnerSpecOf, loadConfig, parseConfig } from './cli/config.js';
export type { DriftlineConfig } from './cli/config.js';
export { pipelineOptionsOf, startDriftline } from './cli/run.js';
export type { RunningDriftline, StartOptions } from './cli/run.js';
export { createLogger, WarningLimiter } from './cli/logger.js';

// Stream operators (docs/streams.md) and the messages they exchange.
export type * from './streams/messages.js';
export { REJECTION_REASONS, rejection } from './streams/messages.js';
export { LearnerPool, TooManyStreamsError, UnknownStreamError } from './streams/learner-pool.js';
export type { LearnerPoolOptions, LearnerSpecSource } from './streams/learner-pool.js';
export { predictThenLearn } from './streams/predict-then-learn.js';
export type { PredictThenLearnOptions } from './streams/predict-then-learn.js';
export { joinLabels } from './streams/join-labels.js';
export type { JoinLabelsOptions } from './streams/join-labels.js';
export { holdoutSchedule, describeHoldout } from './streams/holdout.js';
export { TargetScaler, validateTargetScaling, type TargetScalingSpec } from './streams/normalize-targets.js';
export { SessionScores, type SessionScore, type ScoreRange } from './evaluation/session-scores.js';
export { labelTrack } from './adapters/replay/jango.js';
export { detectForceFrame, type ForceFrame, type JangoTrial } from './adapters/replay/force-frame.js';
export { runBciReproduction, recurrentDecoder, lruDecoder, bufferedDecoder, ridgeDecoder, rlsDecoder, kalmanDecoder, type BciResults, type DecoderEntry } from './reproduce/bci.js';
export { protocolsFor, type ProtocolDefinition, type ProtocolName } from './reproduce/bci-protocols.js';
export type { HoldoutSchedule, HoldoutSpec } from './streams/holdout.js';
export { normalizeInputs } from './streams/normalize-inputs.js';
export type { NormalizeInputsOptions } from './streams/normalize-inputs.js';
export { prequential } from './streams/prequential.js';
export type { PrequentialInput, PrequentialOptions } from './streams/prequential.js';
export { detectDrift } from './streams/detect-drift.js';
export type { DetectDriftOptions, DriftSignal } from './streams/detect-drift.js';
export { detectInputDrift } from './streams/detect-input-drift.js';
export type { DetectInputDriftOptions } from './streams/detect-input-drift.js';
export { trackRecovery } from './streams/track-recovery.js';
export type { TrackRecoveryOptions } from './streams/track-recovery.js';
export { createCheckpointer } from './streams/checkpoint.js';
export type { Checkpointer, CheckpointerOptions } from './streams/checkpoint.js';
export type { CheckpointMeta, CheckpointStore, StoredCheckpoint } from './streams/checkpoint-store.js';
export { FileCheckpointStore } from './streams/file-checkpoint-store.js';

// Drift detectors and their evaluation.
export { PageHinkley } from './drift/page-hinkley.js';
export type { PageHinkleyOptions } from './drift/page-hinkley.js';
export { Adwin } from './drift/adwin.js';
export type { AdwinOptions } from './drift/adwin.js';
export { createDetector } from './drift/detector.js';
export type { DetectorSpec, DriftDetector } from './drift/detector.js';
export { CalibratedDetector } from './drift/calibrated-detector.js';
export type { CalibratedDetectorOptions } from './drift/calibrated-detector.js';
export { calibrateThreshold, ThresholdCalibration } from './drift/calibration.js';
export type { Calibration, CalibrationOptions, UncalibratedSpec } from './drift/calibration.js';
export { evaluateDetections, evaluateDetector } from './drift/evaluate.js';
export { ALARM_COUNTINGS } from './drift/evaluate.js';
export type { AlarmCounting, DriftEvaluation, DriftEvaluationOptions, DetectorScore } from './drift/evaluate.js';
export { NeverDetector, PeriodicDetector, baselineFor } from './drift/baseline-detectors.js';
export { RecoveryMeter } from './evaluation/recovery.js';

// Metrics (docs/metrics.md).
export { createMetricsRegistry } from './metrics/registry.js';
export { DriftlineMetrics } from './metrics/driftline-metrics.js';
export type { DriftlineMetricsOptions } from './metrics/driftline-metrics.js';
export { startMetricsServer } from './metrics/server.js';
export type { MetricsServer, MetricsServerOptions } from './metrics/server.js';

// Adapters: WebSocket (docs/websocket-frames.md), replay, simulator.
export { startWebSocketServer } from './adapters/websocket/server.js';
export type { DriftlineWebSocketServer, WebSocketServerOptions, WsResumeRequest } from './adapters/websocket/server.js';
export { createIngestClient } from './adapters/websocket/client.js';
export type { IngestClient, IngestClientOptions } from './adapters/websocket/client.js';
export {
  decodeFrame, decodeIngestMessage, decodeIngestMessageFrames, encodeBinaryBatch, encodeBinaryFrame, encodeJsonBatch, encodeJsonFrame, encodeOutbound,
} from './adapters/websocket/frames.js';
export type { IngestFrame, IngestMessage, ResumeRequest, StreamShape } from './adapters/websocket/frames.js';
export { readMat, MatFormatError } from './adapters/replay/mat5.js';
export { loadJangoSession } from './adapters/replay/jango.js';
export type { JangoSession } from './adapters/replay/jango.js';
export { replaySessions } from './adapters/replay/replay.js';
export type { ReplayOptions, ReplaySession } from './adapters/replay/replay.js';
export { simulatedStream } from './adapters/simulator/simulated-stream.js';
export type { SimulatedStreamOptions } from './adapters/simulator/simulated-stream.js';
export { worldStream, type WorldStreamOptions } from './adapters/simulator/world-stream.js';
export { CycleWorld, type CycleWorldOptions } from './simulator/cycle-world.js';
export { StochasticWorld, stochasticWorldCrossEntropy, stochasticWorldAccuracy, type StochasticWorldOptions } from './simulator/stochastic-world.js';
export { simulateMotorCortexSessions, type MotorCortexOptions, type MotorCortexTruth, type SimulatedSession } from './simulator/motor-cortex.js';
export { ndjson$, readNdjson } from './adapters/replay/ndjson.js';
