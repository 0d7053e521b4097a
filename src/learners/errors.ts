/**
 * Typed errors for bad input. Each is thrown before any learner state is touched, so a caller can log, count
 * and answer the peer, and go on with the stream.
 */
export type InputProblem = 'dimension' | 'non-finite' | 'not-float32';
export type LabelProblem = 'dimension' | 'non-finite' | 'not-float32' | 'future-tick' | 'duplicate' | 'frozen';

export class InvalidInputError extends Error {
  override readonly name = 'InvalidInputError';
  constructor(readonly problem: InputProblem, message: string) {
    super(message);
  }
}

export class InvalidLabelError extends Error {
  override readonly name = 'InvalidLabelError';
  constructor(readonly problem: LabelProblem, message: string) {
    super(message);
  }
}

export class InvalidSpecError extends Error {
  override readonly name = 'InvalidSpecError';
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
  }
}

export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
}
