import { MAX_STREAM_KEY_BYTES, type OutboundMessage } from './frames.js';

/** What one predictions subscriber asked for: absent streams mean every stream. */
export interface SubscriberFilter {
  readonly streams?: ReadonlySet<string>;
  readonly types: ReadonlySet<OutboundType>;
  /**
   * 'turn': the messages of one event-loop turn arrive together as one JSON array (docs/websocket-frames.md,
   * "Outbound"). Absent: one message each, as before the option existed.
   */
  readonly batch?: SubscriberBatching;
}

/**
 * The values of `?batch=`. One for now; a name rather than a flag so that another grouping (a time window, say)
 * can come without changing what `turn` means.
 */
export const SUBSCRIBER_BATCHINGS = ['turn'] as const;
export type SubscriberBatching = (typeof SUBSCRIBER_BATCHINGS)[number];

/** The `type` of each outbound JSON message (docs/websocket-frames.md). */
export const OUTBOUND_TYPES = ['prediction', 'drift', 'scored', 'prequential', 'recovery', 'error'] as const;
export type OutboundType = (typeof OUTBOUND_TYPES)[number];

/**
 * Types a subscriber gets when it names none: everything but `scored`, which repeats each prediction with its
 * label and the references' predictions (twice the traffic); a subscriber that wants it asks for it.
 */
export const DEFAULT_OUTBOUND_TYPES: ReadonlySet<OutboundType> = new Set(OUTBOUND_TYPES.filter((t) => t !== 'scored'));

/** Most stream keys one subscriber may name; a dashboard for more streams subscribes to all of them. */
export const MAX_FILTER_STREAMS = 256;

/** The type a subscriber's filter names a message by. */
export const outboundTypeOf = (m: Pick<OutboundMessage, 'kind'>): OutboundType => (m.kind === 'rejected' ? 'error' : m.kind);

/**
 * Reads a subscriber's filter from its connection URL: `?stream=a&stream=b` (or `stream=a,b`) and
 * `?type=prediction,recovery`, each repeatable. A subscriber to one stream of many should not pay, in bandwidth
 * and in its buffered-amount budget, for all the others. `?batch=turn` (at most once) asks for a turn's messages
 * in one array. Returns the filter, or why it is refused (the upgrade then fails with 400 and that text).
 */
export function parseSubscriberFilter(params: URLSearchParams): SubscriberFilter | string {
  const list = (name: string): string[] | undefined => {
    const values = params.getAll(name).flatMap((v) => v.split(','));
    return values.length === 0 ? undefined : values;
  };
  const streams = list('stream');
  const types = list('type');
  const batch = params.getAll('batch');
  const filter: { streams?: Set<string>; types: ReadonlySet<OutboundType>; batch?: SubscriberBatching } = { types: DEFAULT_OUTBOUND_TYPES };
  if (streams !== undefined) {
    if (streams.length > MAX_FILTER_STREAMS) return `at most ${MAX_FILTER_STREAMS} stream keys per subscriber, got ${streams.length}`;
    for (const key of streams) {
      if (key === '' || Buffer.byteLength(key) > MAX_STREAM_KEY_BYTES) {
        return `stream keys in the filter must be 1 to ${MAX_STREAM_KEY_BYTES} bytes, got '${key.slice(0, 40)}'`;
      }
    }
    filter.streams = new Set(streams);
  }
  if (types !== undefined) {
    for (const type of types) {
      if (!(OUTBOUND_TYPES as readonly string[]).includes(type)) {
        return `unknown message type '${type.slice(0, 40)}' in the filter (expected ${OUTBOUND_TYPES.join(', ')})`;
      }
    }
    filter.types = new Set(types as OutboundType[]);
  }
  if (batch.length > 1) return `batch may be given once, got it ${batch.length} times`;
  if (batch.length === 1) {
    const mode = batch[0];
    // A subscriber that asked for arrays and silently got single objects would misparse everything it receives.
    if (!(SUBSCRIBER_BATCHINGS as readonly string[]).includes(mode)) {
      return `unknown batch '${mode.slice(0, 40)}' (expected ${SUBSCRIBER_BATCHINGS.join(', ')})`;
    }
    filter.batch = mode as SubscriberBatching;
  }
  return filter;
}

/** Whether a subscriber with this filter receives the message. */
export function wants(filter: SubscriberFilter, message: Pick<OutboundMessage, 'kind' | 'stream'>): boolean {
  if (!filter.types.has(outboundTypeOf(message))) return false;
  if (filter.streams !== undefined) {
    // A refusal without a stream concerns no stream in particular: every subscriber to errors gets it.
    const stream = message.stream;
    if (stream !== undefined && !filter.streams.has(stream)) return false;
  }
  return true;
}
