// What the live dashboard shows of each stream, kept bounded and thinned out on the server so a page costs little.
import type { DriftMarker, PrequentialReport, RecoveryReport, ScoredTick } from '../streams/messages.js';
import { TraceRing } from './trace-ring.js';

export interface DashboardFeedOptions {
  /** Streams kept; past it a new stream is not shown (the first ones stay). Default 256. */
  readonly maxStreams?: number;
  /** Predicted-against-true points kept per stream (default 3000). */
  readonly tracePoints?: number;
  /** Event-time seconds between two kept trace points (default 0.02: at most 50 a second per stream). */
  readonly traceIntervalSeconds?: number;
  /** Error points (prequential reports, thinned like the traces per track) kept per stream (default 2000). */
  readonly errorPoints?: number;
  /** Drift markers and recovery reports kept per stream, each (default 200). */
  readonly events?: number;
  /** Outputs shown per stream, the first ones (default 4). */
  readonly outputs?: number;
}

/** One kept point of the traces: event time, predictions and labels of the shown outputs, whether held out. */
export interface TracePoint {
  readonly t: number;
  readonly yhat: readonly number[];
  readonly y: readonly number[];
  readonly heldOut: boolean;
}

/** One prequential report: the windowed MSE of the learner and both references on one track. */
export interface ErrorPoint {
  readonly t: number;
  readonly heldOut: boolean;
  readonly learner: number;
  readonly lastLabel: number;
  readonly runningMean: number;
}

export interface MarkerPoint {
  readonly t: number;
  readonly seq: number;
  /** 'session' for a declared boundary, else the detector's name. */
  readonly source: string;
  readonly session?: string;
}

export interface RecoveryPoint {
  readonly t: number;
  readonly seq: number;
  readonly source: string;
  readonly heldOut: boolean;
  readonly recovery: number | null;
  readonly residual: number;
  readonly ticksToRecovery: number | null;
  readonly secondsToRecovery: number | null;
}

/** Everything the page needs to draw a stream from scratch, or what is new since the last batch. */
export interface StreamView {
  readonly stream: string;
  readonly trace: TracePoint[];
  readonly error: ErrorPoint[];
  readonly markers: MarkerPoint[];
  readonly recoveries: RecoveryPoint[];
}

export interface StreamSummary {
  readonly stream: string;
  readonly outputs: number;
  /** Event time of the stream's latest scored tick. */
  readonly lastT: number;
  readonly scoredTicks: number;
}

/**
 * A ring of the last `capacity` items, for the points that arrive far less often than ticks (error points, markers,
 * recoveries): objects, so a snapshot is a plain copy. Trace points have their own ring (trace-ring.ts).
 */
class Ring<T> {
  private readonly items: T[] = [];
  private next = 0;

  constructor(private readonly capacity: number) {}

  push(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else {
      this.items[this.next] = item;
      this.next = (this.next + 1) % this.capacity;
    }
  }

  /** Oldest first. */
  toArray(): T[] {
    return this.items.length < this.capacity ? this.items.slice() : [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
  }
}

class StreamState {
  readonly trace: TraceRing;
  readonly error: Ring<ErrorPoint>;
  readonly markers: Ring<MarkerPoint>;
  readonly recoveries: Ring<RecoveryPoint>;
  /** What subscribers have not been sent yet; null while nobody watches (nothing is queued then). */
  pending: StreamView | null = null;
  nextTraceT = -Infinity;
  /** Per track (learning, held out): the event time from which the next error point is kept. */
  readonly nextErrorT = [-Infinity, -Infinity];
  lastT = Number.NaN;
  scoredTicks = 0;
  outputs = 0;
  /** Event time of recent markers by their seq, for the recovery reports that name them. */
  readonly markerTimes = new Map<number, number>();

  constructor(options: Required<DashboardFeedOptions>) {
    this.trace = new TraceRing(options.tracePoints, options.outputs);
    this.error = new Ring(options.errorPoints);
    this.markers = new Ring(options.events);
    this.recoveries = new Ring(options.events);
  }
}

export type DashboardListener = (view: StreamView) => void;

/**
 * The dashboard's model of the pipeline's output: per stream, the predicted and true traces thinned to at most one
 * point per `traceIntervalSeconds` of event time, the windowed error of the learner and of both references from
 * each prequential report (learning and held-out tracks apart), the drift markers (declared and detected) and the
 * recovery reports. Everything is bounded: a fixed number of streams, rings of fixed length.
 *
 * `observe` is called with every pipeline output; a scored tick that is not kept costs a comparison. Subscribers
 * of a stream get its snapshot at once, then, on each `flush()` (the page's server calls it a few times a second),
 * what arrived since, in one batch: a page never sees one message per tick.
 */
export class DashboardFeed {
  private readonly options: Required<DashboardFeedOptions>;
  private readonly streams = new Map<string, StreamState>();
  private readonly listeners = new Map<string, Set<DashboardListener>>();

  constructor(options: DashboardFeedOptions = {}) {
    this.options = {
      maxStreams: options.maxStreams ?? 256,
      tracePoints: options.tracePoints ?? 3000,
      traceIntervalSeconds: options.traceIntervalSeconds ?? 0.02,
      errorPoints: options.errorPoints ?? 2000,
      events: options.events ?? 200,
      outputs: options.outputs ?? 4,
    };
    for (const [name, value] of Object.entries(this.options)) {
      const least = name === 'traceIntervalSeconds' ? 0 : 1;
      if (!(typeof value === 'number' && value >= least && Number.isFinite(value))) {
        throw new RangeError(`DashboardFeed: ${name} must be a number >= ${least}, got ${String(value)}`);
      }
    }
  }

  /** One pipeline output; anything but scored ticks, drift markers, prequential and recovery reports is ignored. */
  observe(message: { readonly kind: string }): void {
    switch (message.kind) {
      case 'scored':
        return this.onScored(message as ScoredTick);
      case 'prequential':
        return this.onPrequential(message as PrequentialReport);
      case 'drift':
        return this.onMarker(message as DriftMarker);
      case 'recovery':
        return this.onRecovery(message as RecoveryReport);
    }
  }

  /** The streams shown, in the order they first appeared. */
  list(): StreamSummary[] {
    return [...this.streams].map(([stream, s]) => ({ stream, outputs: s.outputs, lastT: s.lastT, scoredTicks: s.scoredTicks }));
  }

  has(stream: string): boolean {
    return this.streams.has(stream);
  }

  /** Everything kept of a stream (undefined for a stream not shown). */
  snapshot(stream: string): StreamView | undefined {
    const s = this.streams.get(stream);
    if (s === undefined) return undefined;
    return { stream, trace: s.trace.toArray(), error: s.error.toArray(), markers: s.markers.toArray(), recoveries: s.recoveries.toArray() };
  }

  /**
   * Calls `listener` with each batch of a stream's new points from now on (the caller sends the snapshot first).
   * Returns the unsubscribe function.
   */
  subscribe(stream: string, listener: DashboardListener): () => void {
    let set = this.listeners.get(stream);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(stream, set);
    }
    set.add(listener);
    const s = this.streams.get(stream);
    if (s !== undefined) s.pending ??= emptyView(stream);
    return () => {
      set.delete(listener);
      if (set.size === 0) {
        this.listeners.delete(stream);
        const state = this.streams.get(stream);
        if (state !== undefined) state.pending = null;
      }
    };
  }

  /** Sends every watched stream's new points to its listeners, as one batch per stream. */
  flush(): void {
    for (const [stream, set] of this.listeners) {
      const s = this.streams.get(stream);
      const view = s?.pending;
      if (s === undefined || view === null || view === undefined) continue;
      if (view.trace.length + view.error.length + view.markers.length + view.recoveries.length === 0) continue;
      s.pending = emptyView(stream);
      for (const listener of set) listener(view);
    }
  }

  private state(stream: string): StreamState | undefined {
    let s = this.streams.get(stream);
    if (s !== undefined) return s;
    if (this.streams.size >= this.options.maxStreams) return undefined;
    s = new StreamState(this.options);
    if (this.listeners.has(stream)) s.pending = emptyView(stream);
    this.streams.set(stream, s);
    return s;
  }

  private onScored(tick: ScoredTick): void {
    const s = this.state(tick.stream);
    if (s === undefined) return;
    s.scoredTicks++;
    s.lastT = tick.t;
    s.outputs = tick.y.length;
    if (!(tick.t >= s.nextTraceT)) return;
    s.nextTraceT = tick.t + this.options.traceIntervalSeconds;
    s.trace.push(tick.t, tick.yhat, tick.y, tick.heldOut);
    // A point object only for a page that watches this stream.
    s.pending?.trace.push(s.trace.newest());
  }

  private onPrequential(report: PrequentialReport): void {
    const s = this.state(report.stream);
    if (s === undefined || Number.isNaN(s.lastT)) return;
    // Thinned like the traces, per track: a report every few ticks at 2 kHz would fill the ring in a second.
    const track = report.heldOut ? 1 : 0;
    if (!(s.lastT >= s.nextErrorT[track])) return;
    s.nextErrorT[track] = s.lastT + this.options.traceIntervalSeconds;
    const f = report.figures;
    const point: ErrorPoint = { t: s.lastT, heldOut: report.heldOut, learner: f.learner.mse, lastLabel: f['last-label'].mse, runningMean: f['running-mean'].mse };
    s.error.push(point);
    s.pending?.error.push(point);
  }

  private onMarker(marker: DriftMarker): void {
    const s = this.state(marker.stream);
    if (s === undefined) return;
    const point: MarkerPoint = { t: marker.t, seq: marker.seq, source: marker.source, ...(marker.session !== undefined ? { session: marker.session } : {}) };
    s.markers.push(point);
    s.pending?.markers.push(point);
    s.markerTimes.set(marker.seq, marker.t);
    // Only the recent markers can still get a recovery report; bounded like the rings.
    if (s.markerTimes.size > this.options.events) s.markerTimes.delete(s.markerTimes.keys().next().value as number);
  }

  private onRecovery(report: RecoveryReport): void {
    const s = this.state(report.stream);
    if (s === undefined) return;
    const point: RecoveryPoint = {
      t: s.markerTimes.get(report.seq) ?? s.lastT, seq: report.seq, source: report.source, heldOut: report.heldOut,
      recovery: report.recovery, residual: report.residual, ticksToRecovery: report.ticksToRecovery, secondsToRecovery: report.secondsToRecovery,
    };
    s.recoveries.push(point);
    s.pending?.recoveries.push(point);
  }
}

function emptyView(stream: string): StreamView {
  return { stream, trace: [], error: [], markers: [], recoveries: [] };
}
