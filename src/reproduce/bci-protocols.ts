/**
 * The evaluation protocols of a decoder that crosses a recording-session boundary (issue 15), as driftline
 * streams them: every protocol replays the first session with all its labels in the frame (the decoder's
 * "yesterday"), declares the boundary, and then applies its schedule to the next session. Each protocol says which
 * ticks of the new session are scored, and every figure stands beside the persistence reference (the last label
 * the references had, whose information age the protocol also reports).
 *
 * - A(k) calibrate, then hold out: labels for the first k minutes of the new session, then none; scored on the
 *   rest. Input normalization keeps adapting; the weights see no label after the k minutes.
 * - B late labels: every label arrives `lateTicks` (1 s) late, throughout; scored prequentially on the whole new
 *   session (each tick predicted before its label, which the learner then learns from).
 * - C intermittent labels: on for 30 s, off for 30 s from the boundary; scored on the off blocks.
 * - D no labels at all on the new session: the decoder trained on the first session goes on frozen (only the input
 *   normalization adapts); scored on the whole session and on A(k)'s ranges, so that A(k) - D(k) is what the
 *   k labelled minutes are worth.
 *
 * A, C and D score held-out ticks, so their E_pre (the error before the drift, DESIGN section 5) must be a held-out
 * error too, not the error of a learner tracking labels it gets every tick: they also withhold the labels of the
 * first session's last `preTicks` ticks (one minute; the decoder loses that minute of its 20). B scores
 * learning ticks and keeps every label.
 */
import type { HoldoutSpec } from '../streams/holdout.js';

type SingleSchedule = Extract<HoldoutSpec, { kind: 'firstMinutes' }>;

export const PROTOCOL_NAMES = ['A1', 'A2', 'A5', 'B', 'C', 'D'] as const;
export type ProtocolName = (typeof PROTOCOL_NAMES)[number];

export interface ProtocolDefinition {
  readonly name: ProtocolName;
  /** What it means, for the report. */
  readonly description: string;
  readonly holdout: HoldoutSpec;
  /** Ticks every label arrives after its tick (0: in the frame). */
  readonly labelDelayTicks: number;
  /**
   * The scored ranges of the new session, as [first, end) tick offsets from the boundary, by range name; a tick is
   * scored when it lies in the range and the protocol's `scoredTicks` rule admits it.
   */
  readonly ranges: Readonly<Record<string, readonly [number, number]>>;
  /** Which ticks of a range count: the held-out ones, or every scored one (prequential). */
  readonly scoredTicks: 'held-out' | 'all';
}

export const CALIBRATION_MINUTES = [1, 2, 5] as const;

/**
 * One protocol with the constants `driftline reproduce bci` uses: B's labels 1 s late, the first session's last
 * minute held out (so `driftline replay --protocol` runs exactly the reproduction's schedules).
 */
export function standardProtocol(name: ProtocolName, firstTicks: number, newTicks: number, binSeconds: number): ProtocolDefinition {
  const protocols = protocolsFor(newTicks, binSeconds, Math.round(1 / binSeconds), firstTicks, Math.round(60 / binSeconds));
  return protocols.find((p) => p.name === name)!;
}

/** The protocols for a new session of `ticks` bins of `binSeconds`. */
export function protocolsFor(ticks: number, binSeconds: number, lateTicks: number, firstTicks: number, preTicks: number): ProtocolDefinition[] {
  const minute = Math.round(60 / binSeconds);
  // The first session: labels up to its last preTicks ticks, which are held out (E_pre on held-out ticks).
  const first: SingleSchedule = { kind: 'firstMinutes', minutes: ((firstTicks - preTicks) * binSeconds) / 60 };
  const whole: [number, number] = [0, ticks];
  const afterK = (k: number): [number, number] => [Math.min(ticks, k * minute), ticks];
  const calibrate = (k: 1 | 2 | 5): ProtocolDefinition => ({
    name: `A${k}` as ProtocolName,
    description: `labels for the first ${k} min of the new session, then none; R2 on the rest`,
    holdout: { kind: 'bySession', sessions: [first, { kind: 'firstMinutes', minutes: k }] },
    labelDelayTicks: 0,
    ranges: { rest: afterK(k) },
    scoredTicks: 'held-out',
  });
  return [
    calibrate(1),
    calibrate(2),
    calibrate(5),
    {
      name: 'B',
      description: `every label ${lateTicks} ticks (${(lateTicks * binSeconds).toFixed(2)} s) late; prequential R2 over the whole new session`,
      holdout: { kind: 'none' },
      labelDelayTicks: lateTicks,
      ranges: { whole },
      scoredTicks: 'all',
    },
    {
      name: 'C',
      description: 'labels on for 30 s, off for 30 s from the boundary; R2 on the off blocks',
      holdout: { kind: 'bySession', sessions: [first, { kind: 'alternate', onSeconds: 30, offSeconds: 30 }] },
      labelDelayTicks: 0,
      ranges: { whole },
      scoredTicks: 'held-out',
    },
    {
      name: 'D',
      description: 'no label on the new session (frozen weights, adaptive input normalization); R2 on A(k)\'s ranges and the whole session',
      holdout: { kind: 'bySession', sessions: [first, { kind: 'always' }] },
      labelDelayTicks: 0,
      ranges: { whole, ...Object.fromEntries(CALIBRATION_MINUTES.map((k) => [`after ${k} min`, afterK(k)])) },
      scoredTicks: 'held-out',
    },
  ];
}
