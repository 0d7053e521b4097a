// The public API of the driftline package.
export { createLearner, canonicalJson } from './learners/learner.js';
export type { Learner, LearnerSpec, LearnerOptions, LearnOutcome, LearnerStats, CellSpec } from './learners/learner.js';
export { cellKinds, createCell } from './learners/cells/registry.js';
export type { Cell, CellKind, ParamBlock, ParamGroup } from './learners/cells/cell.js';
export type { CreditSpec } from './learners/credit/registry.js';
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
