import { createDetector, type DetectorSpec, type DriftDetector } from '../drift/detector.js';
import { rejection } from './messages.js';
import { RefusedStreams } from './refused-streams.js';
import type { DriftMarker } from './messages.js';

/**
 * Per-stream drift detectors with cooldown and a bound on streams, shared by detectDrift (on the learner's error)
 * and detectInputDrift (on an input statistic).
 */
/** Validated configuration shared by detectDrift and detectInputDrift. */
export interface DetectionConfig {
  /** The operator's name, for messages. */
  readonly name: string;
  readonly specs: readonly DetectorSpec[];
  /** The marker source of each spec: prefix + detectorName (e.g. 'input-calibrated-page-hinkley'). */
  readonly sources: readonly string[];
  readonly emit: (marker: DriftMarker) => void;
  readonly cooldownTicks: number;
  readonly maxStreams: number;
}

/**
 * Most detectors per stream: a detection round records which detectors fired in one 32-bit mask, so that a
 * marker fed back synchronously (which resets the detectors) cannot hide the detections of the same round.
 */
const MAX_DETECTORS = 32;

/**
 * Checks the options of a drift detection operator; throws (TypeError / RangeError, naming the operator and the
 * field) on a programming error. Every spec is built once here so that a bad one fails at creation.
 */
export function detectionConfig(
  name: string,
  options: { readonly detectors: readonly DetectorSpec[]; readonly emit: (marker: DriftMarker) => void; readonly cooldownTicks?: number; readonly maxStreams?: number },
  sourcePrefix: string,
): DetectionConfig {
  if (options == null || typeof options !== 'object') throw new TypeError(`${name}: options are required`);
  const { detectors, emit } = options;
  if (!Array.isArray(detectors)) throw new TypeError(`${name}: detectors must be an array of detector specs`);
  if (detectors.length > MAX_DETECTORS) throw new RangeError(`${name}: at most ${MAX_DETECTORS} detectors, got ${detectors.length}`);
  for (let i = 0; i < detectors.length; i++) {
    try {
      createDetector(detectors[i]);
    } catch (err) {
      throw new RangeError(`${name}: detectors[${i}]: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (typeof emit !== 'function') throw new TypeError(`${name}: emit must be a function that takes a DriftMarker`);
  const cooldownTicks = options.cooldownTicks ?? 0;
  if (!Number.isInteger(cooldownTicks) || cooldownTicks < 0) {
    throw new RangeError(`${name}: cooldownTicks must be a non-negative integer, got ${String(cooldownTicks)}`);
  }
  const maxStreams = options.maxStreams ?? Infinity;
  if (typeof maxStreams !== 'number' || !(maxStreams >= 1) || (Number.isFinite(maxStreams) && !Number.isInteger(maxStreams))) {
    throw new RangeError(`${name}: maxStreams must be a positive integer or Infinity, got ${String(maxStreams)}`);
  }
  const specs = [...detectors];
  return { name, specs, sources: specs.map((s) => `${sourcePrefix}${detectorName(s)}`), emit, cooldownTicks, maxStreams };
}

/** What markers and metrics call a detector: its kind, and for a calibrated one the kind it calibrates too. */
export function detectorName(spec: DetectorSpec): string {
  return spec.kind === 'calibrated' ? `calibrated-${spec.detector.kind}` : spec.kind;
}

/** `StreamDetectorBank` answer: the stream is watched. */
export const ADMITTED = 0;
/** `StreamDetectorBank` answer: the stream is refused, and this is the first time since it was last reported. */
export const REFUSED_FIRST = 1;
/** `StreamDetectorBank` answer: the stream is refused and was already reported. */
export const REFUSED_AGAIN = 2;
export type Admission = typeof ADMITTED | typeof REFUSED_FIRST | typeof REFUSED_AGAIN;

/** A 'too-many-streams' Rejection for a stream past the operator's bound. */
export function refusal(config: { readonly name: string; readonly maxStreams: number }, stream: string, seq: number) {
  return rejection('too-many-streams', `${config.name}: stream '${stream}' refused: already watching ${config.maxStreams} streams`, stream, seq);
}

/**
 * The per-stream detectors of one subscription of a drift detection operator, with their cooldowns and the
 * stream bound; what detectDrift and detectInputDrift share. Feed values with `observe`, tell it about passing
 * markers with `markerPassed`; it calls `emit` with the markers.
 */
export class StreamDetectorBank {
  private readonly streams = new Map<string, StreamDetectors>();
  private readonly refused = new RefusedStreams();

  constructor(private readonly config: DetectionConfig) {}

  /**
   * Feeds one finite value of `stream` to its detectors; emits a marker `{ seq: markerSeq, t }` per detector
   * that fired, unless the stream is cooling down.
   */
  observe(stream: string, markerSeq: number, t: number, value: number): Admission {
    const s = this.streams.get(stream) ?? this.start(stream);
    if (s === undefined) return this.refused.firstRefusal(stream) ? REFUSED_FIRST : REFUSED_AGAIN;
    const coolingDown = s.cooldownLeft > 0;
    if (coolingDown) s.cooldownLeft--;
    const detectors = s.detectors;
    let fired = 0;
    for (let i = 0; i < detectors.length; i++) if (detectors[i].update(value).driftDetected) fired |= 1 << i;
    if (fired === 0 || coolingDown) return ADMITTED;
    s.cooldownLeft = this.config.cooldownTicks;
    const { sources, emit } = this.config;
    for (let i = 0; i < sources.length; i++) {
      if ((fired & (1 << i)) !== 0) emit({ kind: 'drift', stream, seq: markerSeq, t, source: sources[i] });
    }
    return ADMITTED;
  }

  /** Admits `stream` (creating its detectors) if it is new and there is room, feeding nothing; says whether it is watched. */
  admit(stream: string): Admission {
    if (this.streams.has(stream) || this.start(stream) !== undefined) return ADMITTED;
    return this.refused.firstRefusal(stream) ? REFUSED_FIRST : REFUSED_AGAIN;
  }

  /** A marker of `stream` went by: a new regime, so the detectors start afresh and the cooldown restarts. */
  markerPassed(stream: string): Admission {
    const s = this.streams.get(stream) ?? this.start(stream);
    if (s === undefined) return this.refused.firstRefusal(stream) ? REFUSED_FIRST : REFUSED_AGAIN;
    for (const d of s.detectors) d.reset();
    s.cooldownLeft = this.config.cooldownTicks;
    return ADMITTED;
  }

  /** Streams watched. */
  get size(): number {
    return this.streams.size;
  }

  /** Forgets one stream (evicted). */
  forget(stream: string): void {
    this.streams.delete(stream);
  }

  clear(): void {
    this.streams.clear();
    this.refused.clear();
  }

  private start(stream: string): StreamDetectors | undefined {
    if (this.streams.size >= this.config.maxStreams) return undefined;
    const s: StreamDetectors = { detectors: this.config.specs.map(createDetector), cooldownLeft: 0 };
    this.streams.set(stream, s);
    return s;
  }
}

interface StreamDetectors {
  readonly detectors: DriftDetector[];
  /** Values still to come before a detection may be emitted again. */
  cooldownLeft: number;
}
