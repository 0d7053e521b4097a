import type { DecoderKind, DecoderSpec } from './decoder-spec.js';
import { validateDecoderSpec } from './decoder-spec.js';
import { DecoderLearner, type Decoder, type DecoderModel } from './decoder-learner.js';
import { kalmanModel } from './kalman.js';
import { ridgeModel } from './ridge.js';
import { rlsModel } from './rls.js';

const models: Record<DecoderKind, (spec: DecoderSpec) => DecoderModel> = {
  rls: rlsModel,
  ridge: ridgeModel,
  kalman: kalmanModel,
};

/**
 * A decoder learner (createLearner calls this for a spec with a `decoder` field). Throws an InvalidSpecError
 * naming the field for a bad spec.
 */
export function createDecoder(spec: DecoderSpec): Decoder {
  const valid = validateDecoderSpec(spec);
  return new DecoderLearner(valid, models[valid.decoder.kind]);
}
