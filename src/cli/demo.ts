import { Subject, takeUntil, tap, type Observable } from 'rxjs';
import { simulatedStream } from '../adapters/simulator/simulated-stream.js';
import type { DetectorSpec } from '../drift/detector.js';
import type { Learner, LearnerSpec } from '../learners/learner.js';
import { rmsprop } from '../learners/optim/transform.js';
import { DriftlineMetrics } from '../metrics/driftline-metrics.js';
import { createDashboardRoutes } from '../dashboard/dashboard-routes.js';
import { DashboardFeed } from '../dashboard/dashboard-feed.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import type { HoldoutSpec } from '../streams/holdout.js';
import type { Predictor, PrequentialReport, RecoveryReport, StreamInput } from '../streams/messages.js';
import { createPipeline, type PipelineOutput } from '../streams/pipeline.js';
import { formatDuration, type ProgressStream } from '../report/progress.js';
import { fixed, formatTable } from './table.js';
import { numericOptionReader, parseCommandOptions } from './command-options.js';

/**
 * `driftline demo` (`npm start`): the first thing to run, and the main job. It runs the real stream spine with no
 * external service:
 *
 *   simulatedStream (src/adapters/simulator: the DriftingSignal, 8 channels tuned to a 2-D latent oscillator, the
 *   tuning redrawn every session; ticks, labels arriving --label-delay ticks late, declared 'session' markers)
 *     -> createPipeline (src/streams/pipeline.ts): predictThenLearn (tanh-rnn n = 64, immediate derivatives
 *        lambda = 0, RMSprop lr 1e-3; holdout blocks) -> prequential (the learner beside the last-label and
 *        running-mean references, learning and held-out ticks apart) -> detectDrift (page-hinkley on the
 *        learner's error) -> trackRecovery (frozen shadow per drift marker)
 *     -> this command: live line, recovery lines, summary table; and, with --metrics-port, the Prometheus metrics.
 *
 * Every figure printed comes from the pipeline's messages: the windowed figures from its PrequentialReports, the
 * recovery figures from its RecoveryReports, the model version from its Predictions; the MSE over all scored ticks
 * is summed here from its ScoredTicks (on the ticks prequential scores: those predicted after a label had arrived,
 * so that every predictor is scored on the same ticks).
 *
 * Holdout (DESIGN section 5): by default the last fifth (--holdout) of every session has its labels withheld from
 * the learner and from the references, and is scored on its own: the honest decoding measure, beside the
 * learning-tick figures in the live line and the table. Why the end of the session rather than alternating blocks
 * of fixed seconds: the learner then learns right after every drift, so the recovery measured after a boundary is
 * adaptation, not the accident of where a block falls; and the decoding measure is taken once the learner has
 * adapted to the session. The schedule is the pipeline's 'firstMinutes' (restarted by each declared session
 * marker), with its edge half a tick before the first held-out tick so that rounding of event times cannot move it.
 *
 * Event time: tick seq has t = seq / rate seconds (the default rate when --rate 0), so the holdout and the seconds
 * to recovery do not depend on how fast the machine runs, and one seed gives one set of figures at --rate 0.
 *
 * Drift detection on the learner's error is on by default (--detector). A detector fires on the noise of a
 * learner that is still adapting, so for `recoveryTicks + label delay` scored ticks after every drift marker
 * detections are held back (the pipeline's cooldown): a detection can then neither cut a recovery measurement
 * short nor re-announce the drift just declared. A detection is printed when it happens and gets its own recovery
 * lines; the final table says which drifts were declared and which detected.
 *
 * Recovery is measured per track, like the MSE: learning ticks and held-out ticks each have their own E_pre,
 * E_frozen and E_adapt (an E_pre of held-out error beside an E_adapt of learning error would compare two different
 * measures), so a drift gets a recovery line and a table row per track that had ticks in its measurement. With
 * the holdout at the end of the session and the measurement after a declared boundary shorter than the part
 * learned from, that is the learning track only.
 *
 * Ctrl-C (SIGINT) or SIGTERM ends the stream early: the source completes, the pipeline drains (open recovery
 * measurements report what they have), and the summary is printed; the command resolves normally (exit 0).
 */
export interface DemoIO {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: ProgressStream;
  /** Where SIGINT and SIGTERM come from; default `process`. */
  readonly signals?: Pick<NodeJS.Process, 'once' | 'off'>;
}

/** Which detector watches the learner's error ('none': declared boundaries only). */
export type DemoDetector = 'page-hinkley' | 'adwin' | 'none';

/** Everything a demo run is made of; `demoCommand` derives it from the command line. */
export interface DemoOptions {
  readonly ticks: number;
  /** Ticks per second on the wall clock; 0 = as fast as possible. */
  readonly rate: number;
  readonly seed: number;
  readonly labelDelay: number;
  readonly sessionLength: number;
  /** Ticks of the windowed figures and of the recovery windows. */
  readonly window: number;
  /** Ticks the frozen shadow predicts after each drift marker (the recovery measurement). */
  readonly recoveryTicks: number;
  /** Recovered when the windowed E_adapt <= (1 + tolerance) * E_pre. */
  readonly tolerance: number;
  /** Fraction of every session, at its end, whose labels are withheld from the learner (0: no holdout). */
  readonly holdout: number;
  readonly detector: DemoDetector;
  /** Serve /metrics (and the dashboard) on 127.0.0.1 at this port while the demo runs (0 or undefined: any free port). */
  readonly metricsPort?: number;
  /** Serve the live dashboard at /dashboard (default true; --no-dashboard turns it off). */
  readonly dashboard?: boolean;
  readonly hiddenSize: number;
  readonly lr: number;
  readonly quiet: boolean;
}

/** One predictor's MSE. */
export type PredictorMse = Readonly<Record<Predictor, number>>;

/** The figures of one track: learning ticks or held-out ticks. */
export interface TrackSummary {
  /** Ticks prequential scored on this track (predicted after a label had arrived). */
  readonly ticks: number;
  /** MSE over all of them, per predictor. */
  readonly mse: PredictorMse;
  /** The track's last PrequentialReport (window figures, label delay); null when none came. */
  readonly last: PrequentialReport | null;
}

/** One drift marker and the recovery the pipeline measured after it on one track. */
export interface DriftEventSummary {
  /** The first tick after the drift (the marker's seq). */
  readonly tick: number;
  readonly session: number;
  /** 'session' for a declared boundary, else the detector that found it. */
  readonly source: string;
  readonly declared: boolean;
  /** The track the report covers: held-out ticks (labels withheld from the learner) or learning ticks. */
  readonly heldOut: boolean;
  /** Ticks of the drift measured (learner and frozen shadow scored on them), both tracks. */
  readonly ticks: number;
  /** Of those, the ticks of this track. */
  readonly trackTicks: number;
  /** False when the measurement closed before recoveryTicks ticks (the stream ended, or the next marker came). */
  readonly complete: boolean;
  readonly report: RecoveryReport;
}

/** What a demo run measured; also printed by `formatDemoSummary`. */
export interface DemoSummary {
  readonly options: DemoOptions;
  /** Ticks predicted. */
  readonly ticks: number;
  /** Ticks whose label arrived and was scored (learning and held out). */
  readonly scored: number;
  readonly seconds: number;
  /** The learner's update count at the end. */
  readonly version: number;
  readonly backend: string;
  readonly interrupted: boolean;
  readonly learning: TrackSummary;
  readonly heldOut: TrackSummary;
  /** Every drift marker, declared or detected, in order. */
  readonly drifts: readonly { readonly tick: number; readonly source: string }[];
  /** Per drift marker whose recovery was measured, one entry per track measured, in the order the reports came. */
  readonly events: readonly DriftEventSummary[];
  /** Input the pipeline refused, by reason (none expected from the simulator). */
  readonly rejections: Readonly<Record<string, number>>;
  /** The metrics URL while the demo ran, with --metrics-port or the dashboard. */
  readonly metricsUrl?: string;
  /** The dashboard's URL while the demo ran, unless --no-dashboard. */
  readonly dashboardUrl?: string;
}

const STREAM = 'demo';
const DEFAULT_RATE = 2000;
/** Ticks of the recovery measurement at most (fewer when sessions are shorter). */
const MAX_RECOVERY_TICKS = 5000;

const usage = `usage: driftline demo [--ticks N] [--rate HZ] [--seed S] [--label-delay D] [--session N] [--window W]
                      [--holdout F] [--detector page-hinkley|adwin|none] [--metrics-port P] [--no-dashboard] [--quiet]
       driftline demo --bci ...   the BCI example instead (what npm start runs; demo --bci --help)

  --ticks N          ticks to stream (default: 30 s at the rate; 60,000 at 2,000/s)
  --rate HZ          ticks per second (default 2000; 0 = as fast as possible, event time still at 2000/s)
  --seed S           seed of the simulated stream and the learner (default 1)
  --label-delay D    labels arrive D ticks after their tick (default 10; at 0 a learner can
                     look good by tracking the labels, compare it with 'last label seen')
  --session N        ticks per session: the tuning drifts at every session boundary (default 10000)
  --window W         ticks of the windowed MSE and of the recovery windows (default 1000)
  --holdout F        the last fraction F of every session is held out: its labels are withheld
                     from the learner and scored apart, the decoding measure (default 0.2; 0 = none)
  --detector KIND    drift detector on the learner's error: page-hinkley (default), adwin or none
  --metrics-port P   serve Prometheus metrics on http://127.0.0.1:P/metrics while the demo runs
                     (0 = any free port; default off)
  --no-dashboard     no live dashboard (by default served at http://127.0.0.1:P/dashboard while the demo runs)
  --quiet            no live line
`;

/** Parses the command line of `driftline demo` and runs it; undefined for --help. Bad options throw with the usage. */
export async function demoCommand(args: string[], io: DemoIO = { stdout: process.stdout, stderr: process.stderr }): Promise<DemoSummary | undefined> {
  const values = parseCommandOptions(
    args,
    {
      ticks: { type: 'string' },
      rate: { type: 'string' },
      seed: { type: 'string' },
      'label-delay': { type: 'string' },
      session: { type: 'string' },
      window: { type: 'string' },
      holdout: { type: 'string' },
      detector: { type: 'string' },
      'metrics-port': { type: 'string' },
      'no-dashboard': { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    usage,
  );
  if (values.help) {
    io.stdout.write(usage);
    return undefined;
  }
  const num = numericOptionReader(usage);
  const int = (v: number) => Number.isInteger(v);
  const rate = num('rate', values.rate, DEFAULT_RATE, (v) => Number.isFinite(v) && v >= 0, 'a number >= 0');
  const sessionLength = num('session', values.session, 10_000, (v) => int(v) && v >= 2, 'an integer >= 2');
  const window = num('window', values.window, 1000, (v) => int(v) && v >= 1, 'a positive integer');
  const labelDelay = num('label-delay', values['label-delay'], 10, (v) => int(v) && v >= 0 && v < 65_536, 'an integer in [0, 65535]');
  const holdout = num('holdout', values.holdout, 0.2, (v) => v >= 0 && v <= 0.9, 'a fraction in [0, 0.9]');
  const detector = values.detector ?? 'page-hinkley';
  if (detector !== 'page-hinkley' && detector !== 'adwin' && detector !== 'none') {
    throw new Error(`--detector must be page-hinkley, adwin or none, got '${detector}'\n\n${usage}`);
  }
  const metricsPort =
    values['metrics-port'] === undefined ? undefined : num('metrics-port', values['metrics-port'], 0, (v) => int(v) && v >= 0 && v <= 65_535, 'a port in [0, 65535]');
  const options: DemoOptions = {
    ticks: num('ticks', values.ticks, rate > 0 ? Math.round(30 * rate) : 60_000, (v) => int(v) && v >= 1, 'a positive integer'),
    rate,
    seed: num('seed', values.seed, 1, int, 'an integer'),
    labelDelay,
    sessionLength,
    window,
    // The labels of the measured ticks all arrive before the next boundary, so each measurement completes.
    recoveryTicks: Math.max(1, Math.min(MAX_RECOVERY_TICKS, sessionLength - labelDelay)),
    tolerance: 0.5,
    holdout,
    detector,
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    dashboard: !values['no-dashboard'],
    hiddenSize: 64,
    lr: 1e-3,
    quiet: values.quiet,
  };
  return runDemo(options, io);
}

/** The event-time rate of the simulated stream: the wall-clock rate, or the default one at --rate 0. */
function eventRateOf(o: DemoOptions): number {
  return o.rate > 0 ? o.rate : DEFAULT_RATE;
}

/** First held-out tick of every session, counted from the session's start (sessionLength: none held out). */
function firstHeldOutTick(o: Pick<DemoOptions, 'holdout' | 'sessionLength'>): number {
  if (!(o.holdout > 0)) return o.sessionLength;
  return Math.min(o.sessionLength, Math.max(1, Math.round((1 - o.holdout) * o.sessionLength)));
}

function holdoutSpecOf(o: DemoOptions): HoldoutSpec {
  const first = firstHeldOutTick(o);
  if (first >= o.sessionLength) return { kind: 'none' };
  return { kind: 'firstMinutes', minutes: (first - 0.5) / eventRateOf(o) / 60 };
}

function detectorsOf(o: DemoOptions): DetectorSpec[] {
  switch (o.detector) {
    case 'page-hinkley':
      // Only a rise of the error is a drift to recover from; a fall is the learner adapting.
      return [{ kind: 'page-hinkley', mode: 'up' }];
    case 'adwin':
      return [{ kind: 'adwin' }];
    case 'none':
      return [];
  }
}

/** Per track: the sums of squared errors behind the all-ticks MSE. */
class TrackTotals {
  ticks = 0;
  learner = 0;
  lastLabel = 0;
  runningMean = 0;
  last: PrequentialReport | null = null;

  summary(): TrackSummary {
    const n = this.ticks;
    return {
      ticks: n,
      mse: { learner: this.learner / n, 'last-label': this.lastLabel / n, 'running-mean': this.runningMean / n },
      last: this.last,
    };
  }
}

/** The ticks of one track that trackRecovery measures for an open marker. */
interface MeasuredTrack {
  ticks: number;
  lastSeq: number;
}

/** A drift marker whose recovery measurement is open: counts the ticks trackRecovery measures, per track. */
interface OpenMeasurement {
  readonly tick: number;
  readonly source: string;
  /** Both tracks. */
  ticks: number;
  readonly learning: MeasuredTrack;
  readonly heldOut: MeasuredTrack;
}

function openMeasurement(tick: number, source: string): OpenMeasurement {
  return { tick, source, ticks: 0, learning: { ticks: 0, lastSeq: tick - 1 }, heldOut: { ticks: 0, lastSeq: tick - 1 } };
}

/** Runs the demo with options already validated; prints the live line, recovery lines and summary. */
export async function runDemo(o: DemoOptions, io: DemoIO): Promise<DemoSummary> {
  const d = o.labelDelay;
  const eventRate = eventRateOf(o);
  const maxLabelDelay = Math.max(32, d + 1);
  const spec: LearnerSpec = {
    cell: { kind: 'tanh-rnn', hiddenSize: o.hiddenSize },
    credit: { rule: 'immediate', lambda: 0 },
    optimizer: rmsprop(o.lr),
    inputSize: 8,
    outputSize: 2,
    seed: o.seed,
    loss: 'mse',
    maxLabelDelay,
  };

  const dashboard = o.dashboard ?? true;
  const registry = o.metricsPort !== undefined || dashboard ? createMetricsRegistry() : undefined;
  const metrics = registry !== undefined ? new DriftlineMetrics(registry, { maxStreams: 1 }) : undefined;
  const pipeline = createPipeline({
    pool: { spec, maxStreams: 1, allowedStreams: [STREAM] },
    holdout: holdoutSpecOf(o),
    maxDelay: maxLabelDelay,
    recoveryTicks: o.recoveryTicks,
    prequential: { window: o.window, ewmaAlpha: 0.01 },
    drift: { detectors: detectorsOf(o), cooldownTicks: o.recoveryTicks + d },
    recovery: { window: o.window, tolerance: o.tolerance },
    ...(metrics !== undefined ? { onTickDuration: (seconds: number) => metrics.recordTickDuration(seconds) } : {}),
  });
  const meterWindow = Math.min(o.window, o.recoveryTicks);

  const feed = dashboard ? new DashboardFeed() : undefined;
  const routes = feed !== undefined
    ? createDashboardRoutes({
      feed,
      describe: (stream) => {
        const l = pipeline.pool.peek(stream);
        return l === undefined ? undefined : { learner: `tanh-rnn n = ${o.hiddenSize}, immediate, rmsprop lr ${o.lr}`, stateBytes: l.stateBytes };
      },
    })
    : undefined;
  let metricsServer: MetricsServer | undefined;
  let metricsUrl: string | undefined;
  let dashboardUrl: string | undefined;
  if (registry !== undefined) {
    try {
      metricsServer = await startMetricsServer({
        registry, host: '127.0.0.1', port: o.metricsPort ?? 0,
        ...(routes !== undefined ? { routes: routes.handle, onClose: routes.close } : {}),
      });
    } catch (err) {
      routes?.close();
      throw new Error(`--metrics-port ${String(o.metricsPort)}: the metrics endpoint could not start: ${(err as Error).message}`);
    }
    metricsUrl = `${metricsServer.url}/metrics`;
    io.stdout.write(`metrics: ${metricsUrl} (Prometheus text format, while the demo runs)\n`);
    if (routes !== undefined) {
      dashboardUrl = `${metricsServer.url}/dashboard?stream=${encodeURIComponent(STREAM)}`;
      io.stdout.write(`dashboard: ${dashboardUrl} (live while the demo runs)\n`);
    }
  }

  const learning = new TrackTotals();
  const heldOut = new TrackTotals();
  const drifts: { tick: number; source: string }[] = [];
  const events: DriftEventSummary[] = [];
  const open: OpenMeasurement[] = [];
  const rejections: Record<string, number> = {};
  let ticks = 0;
  let version = 0;
  let scored = 0;
  let learner: Learner | undefined;

  const tty = Boolean(io.stderr.isTTY);
  const started = performance.now();
  let liveShown = false;
  const sessionOf = (tick: number) => Math.floor(tick / o.sessionLength);

  const clearLive = () => {
    if (tty && liveShown) io.stderr.write('\r\x1b[2K');
    liveShown = false;
  };
  const say = (line: string) => {
    clearLive();
    io.stdout.write(`${line}\n`);
  };
  const live = () => {
    const elapsed = (performance.now() - started) / 1000;
    const current = open.length > 0 ? open[open.length - 1] : undefined;
    const recovering = current !== undefined ? `  recovering from drift at ${current.tick} (${current.ticks}/${o.recoveryTicks})` : '';
    const text =
      `tick ${ticks}/${o.ticks}  session ${sessionOf(Math.max(0, ticks - 1))}  v${learner?.version ?? version}  ` +
      `MSE(last ${o.window}) learner / last label / running mean:  ${liveFigures('learning', learning.last)}  ${liveFigures('held out', heldOut.last)}` +
      `  ${Math.round(ticks / Math.max(elapsed, 1e-9))} ticks/s${recovering}`;
    if (tty) {
      const cols = io.stderr.columns ?? 0;
      io.stderr.write(`\r\x1b[2K${cols > 0 ? text.slice(0, cols - 1) : text}`);
      liveShown = true;
    } else {
      io.stderr.write(`${text}\n`);
    }
  };

  const driftText = (tick: number, source: string) =>
    `drift ${source === 'session' ? '' : `detected by ${source} `}at tick ${tick} (session ${sessionOf(tick)})`;
  /** The measurement the last report closed: the held-out report of a marker comes right after its learning one. */
  let closed: OpenMeasurement | undefined;
  const onRecovery = (r: RecoveryReport) => {
    const at = open.findIndex((m) => m.tick === r.seq && m.source === r.source);
    if (at >= 0) closed = open.splice(at, 1)[0];
    else if (closed === undefined || closed.tick !== r.seq || closed.source !== r.source) closed = openMeasurement(r.seq, r.source);
    const m = closed;
    const track = r.heldOut ? m.heldOut : m.learning;
    const declared = r.source === 'session';
    const complete = m.ticks >= o.recoveryTicks;
    events.push({
      tick: r.seq, session: sessionOf(r.seq), source: r.source, declared, heldOut: r.heldOut, ticks: m.ticks, trackTicks: track.ticks, complete, report: r,
    });
    // Within a session the learning ticks come first and the held-out ones last, and a measurement ends at the
    // next boundary, so each track's measured ticks are consecutive.
    const covered = Math.min(track.ticks, meterWindow);
    say(
      `${driftText(r.seq, r.source)}, ${r.heldOut ? 'held-out' : 'learning'} ticks, label delay ${d}: recovery ${percent(r.recovery)}, residual ${fixed(r.residual, 2)}, ` +
        `time to recovery ${r.ticksToRecovery === null ? 'not within the window' : `${r.ticksToRecovery} ticks (${formatDuration(r.secondsToRecovery ?? Number.NaN)} event time)`} ` +
        `(E_pre ${fixed(r.ePre)}, E_frozen ${fixed(r.eFrozen)}, E_adapt ${fixed(r.eAdapt)} over ticks ${track.lastSeq - covered + 1}..${track.lastSeq}` +
        `${complete ? '' : `; measurement ended after ${m.ticks} of ${o.recoveryTicks} ticks`})`,
    );
  };
  /** trackRecovery reports nothing for a measurement without ticks: say so for those the stream left behind. */
  const unmeasured = (m: OpenMeasurement, why: string) => say(`${driftText(m.tick, m.source)}: ${why}`);

  const onOutput = (out: PipelineOutput) => {
    metrics?.observe(out);
    feed?.observe(out);
    switch (out.kind) {
      case 'prediction':
        ticks = out.seq + 1;
        version = out.version;
        if (learner === undefined) {
          learner = pipeline.pool.peek(STREAM);
          if (learner !== undefined) {
            metrics?.setStreams(1);
            metrics?.setLearnerStateBytes(STREAM, learner.stateBytes);
          }
        }
        return;
      case 'scored': {
        scored++;
        const current = open.length > 0 ? open[open.length - 1] : undefined;
        if (current !== undefined && out.yFrozen !== undefined && out.seq >= current.tick) {
          const measured = out.heldOut ? current.heldOut : current.learning;
          current.ticks++;
          measured.ticks++;
          measured.lastSeq = out.seq;
        }
        // The ticks prequential scores: no reference prediction is NaN (a label had arrived).
        if (Number.isNaN(out.yLast[0]) || Number.isNaN(out.yMean[0])) return;
        const track = out.heldOut ? heldOut : learning;
        track.ticks++;
        track.learner += squaredError(out.yhat, out.y);
        track.lastLabel += squaredError(out.yLast, out.y);
        track.runningMean += squaredError(out.yMean, out.y);
        return;
      }
      case 'prequential':
        (out.heldOut ? heldOut : learning).last = out;
        return;
      case 'drift':
        drifts.push({ tick: out.seq, source: out.source });
        // The new marker closes the open measurement; one without a measured tick gets no report.
        for (let i = open.length - 1; i >= 0; i--) {
          if (open[i].ticks === 0) unmeasured(open.splice(i, 1)[0], `no label after the drift arrived before the next drift, at tick ${out.seq}`);
        }
        open.push(openMeasurement(out.seq, out.source));
        if (out.source !== 'session') say(`drift detected by ${out.source} at tick ${out.seq} (session ${sessionOf(out.seq)}), from the learner's error`);
        return;
      case 'recovery':
        onRecovery(out);
        return;
      case 'rejected':
        rejections[out.reason] = (rejections[out.reason] ?? 0) + 1;
        return;
      default:
        return;
    }
  };

  const stop = new Subject<void>();
  let interrupted = false;
  const signals = io.signals ?? process;
  const onSignal = () => {
    interrupted = true;
    stop.next();
  };
  signals.once('SIGINT', onSignal);
  signals.once('SIGTERM', onSignal);
  const timer = o.quiet ? undefined : setInterval(live, tty ? 100 : 1000);
  timer?.unref();

  let source: Observable<StreamInput> = simulatedStream({
    stream: STREAM,
    seed: o.seed,
    sessionLength: o.sessionLength,
    ticks: o.ticks,
    ratePerSecond: eventRate,
    speed: o.rate > 0 ? 'recorded' : 'fast',
    labelDelayTicks: d,
    declareSessions: true,
  }).pipe(takeUntil(stop));
  if (metrics !== undefined) source = source.pipe(tap((input) => metrics.recordEvent(input.stream, 'simulator')));

  try {
    await new Promise<void>((resolve, reject) => {
      source.pipe(pipeline.operator).subscribe({
        next: (out) => {
          try {
            onOutput(out);
          } catch (err) {
            reject(err);
          }
        },
        error: reject,
        complete: resolve,
      });
    });
  } finally {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
    if (timer !== undefined) clearInterval(timer);
    stop.complete();
    await metricsServer?.close();
  }
  for (const m of open) unmeasured(m, 'the stream ended before any label after the drift arrived');
  if (!o.quiet && !tty) live();
  clearLive();

  const summary: DemoSummary = {
    options: o,
    ticks,
    scored,
    seconds: (performance.now() - started) / 1000,
    version: learner?.version ?? version,
    backend: learner?.backend ?? '-',
    interrupted,
    learning: learning.summary(),
    heldOut: heldOut.summary(),
    drifts,
    events,
    rejections,
    ...(metricsUrl !== undefined ? { metricsUrl } : {}),
    ...(dashboardUrl !== undefined ? { dashboardUrl } : {}),
  };
  io.stdout.write(formatDemoSummary(summary));
  return summary;
}

/** Mean over outputs of the squared error. */
function squaredError(yhat: ArrayLike<number>, y: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < y.length; i++) sum += (yhat[i] - y[i]) ** 2;
  return sum / y.length;
}

function percent(v: number | null): string {
  return v === null || !Number.isFinite(v) ? '-' : `${(100 * v).toFixed(1)}%`;
}

/**
 * A label delay in ticks: the window's mean. An integer for the simulator, except at the very end: the last labels
 * arrive after the last tick, so fewer ticks lie between them and their tick.
 */
function delayText(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** One track's windowed figures for the live line, with the label delay they were measured at. */
function liveFigures(track: string, r: PrequentialReport | null): string {
  if (r === null) return `${track} -`;
  const f = r.figures;
  return `${track} (label delay ${delayText(r.labelDelay)}) ${fixed(f.learner.mse)} / ${fixed(f['last-label'].mse)} / ${fixed(f['running-mean'].mse)}`;
}

/** The summary the demo ends with: run, learner, label delay and holdout, the MSE table, the drift table. */
export function formatDemoSummary(s: DemoSummary): string {
  const o = s.options;
  const lines: string[] = [];
  const first = firstHeldOutTick(o);
  const holdout =
    first >= o.sessionLength
      ? 'none (every label reaches the learner)'
      : `the last ${Math.round(100 * (1 - first / o.sessionLength))}% of every session (ticks ${first}..${o.sessionLength - 1} of each): ` +
        'labels withheld from the learner and the references, scored apart: the decoding measure';
  lines.push(
    '',
    `summary${s.interrupted ? ' (interrupted)' : ''}: ${s.ticks} ticks in ${formatDuration(s.seconds)} (${Math.round(s.ticks / Math.max(s.seconds, 1e-9))} ticks/s, ` +
      `target ${o.rate > 0 ? `${o.rate}/s` : 'as fast as possible'}), ${s.scored} scored, model version ${s.version}, kernels ${s.backend}`,
    `learner: tanh-rnn n = ${o.hiddenSize}, immediate derivatives (lambda 0), rmsprop lr ${o.lr}; stream: 8 channels, 2-D latent, session ${o.sessionLength} ticks, seed ${o.seed}`,
    `label delay: ${o.labelDelay} tick(s) (every error below was measured with it; the references see labels with the same delay)`,
    `holdout: ${holdout}`,
    '',
  );
  const rows: string[][] = [];
  const track = (name: string, t: TrackSummary) => {
    const names: [Predictor, string][] = [['learner', 'learner'], ['last-label', 'last label seen'], ['running-mean', 'running mean']];
    names.forEach(([p, label], i) => {
      rows.push([
        i === 0 ? name : '',
        i === 0 ? String(t.ticks) : '',
        i === 0 ? delayText(t.last?.labelDelay) : '',
        label,
        fixed(t.mse[p]),
        fixed(t.last?.figures[p].mse),
      ]);
    });
  };
  track('learning', s.learning);
  if (s.heldOut.ticks > 0 || first < o.sessionLength) track('held out', s.heldOut);
  lines.push(
    formatTable(['ticks scored on', 'ticks', 'label delay', 'predictor', 'MSE (all scored ticks)', `MSE (last ${o.window})`], rows, [
      'left', 'right', 'right', 'left', 'right', 'right',
    ]),
    '',
  );

  const declared = s.drifts.filter((m) => m.source === 'session');
  const detected = s.drifts.filter((m) => m.source !== 'session');
  lines.push(
    `drifts: ${declared.length} declared (session boundaries${declared.length > 0 ? ` at ${declared.map((m) => m.tick).join(', ')}` : ''}), ` +
      `${detected.length} detected (${o.detector === 'none' ? 'no detector' : `${o.detector} on the learner's error`}` +
      `${detected.length > 0 ? `: ${detected.map((m) => `${m.tick} by ${m.source}`).join(', ')}` : ''})`,
  );
  if (s.events.length === 0) {
    lines.push(`recovery: none measured (the first drift is at tick ${o.sessionLength}; run with more --ticks or a shorter --session)`);
  } else {
    const meterWindow = Math.min(o.window, o.recoveryTicks);
    lines.push(
      `recovery per track, label delay ${o.labelDelay}: every figure of a row from its track's own ticks (learning or held out): E_pre over its last ${o.window} ticks`,
      `scored before the drift, E_frozen and E_adapt over its last ${meterWindow} among the ${o.recoveryTicks} ticks after it; time to recovery: its MSE over ` +
        `${meterWindow} of its ticks within ${100 * o.tolerance}% of its E_pre, in ticks of both tracks since the drift`,
      ...(first < o.sessionLength ? [`a track with no tick among those measured has no row (held-out ticks start at tick ${first} of each session)`] : []),
      formatTable(
        ['drift at', 'session', 'drift', 'track', 'ticks', 'E_pre', 'E_frozen', 'E_adapt', 'recovery', 'residual', 'time to recovery'],
        s.events.map((e) => [
          String(e.tick),
          String(e.session),
          e.declared ? 'declared' : `detected (${e.source})`,
          e.heldOut ? 'held out' : 'learning',
          `${e.trackTicks}${e.complete ? '' : ' (cut)'}`,
          fixed(e.report.ePre),
          fixed(e.report.eFrozen),
          fixed(e.report.eAdapt),
          percent(e.report.recovery),
          fixed(e.report.residual, 2),
          e.report.ticksToRecovery === null ? 'not recovered' : String(e.report.ticksToRecovery),
        ]),
      ),
    );
  }
  const refused = Object.entries(s.rejections);
  if (refused.length > 0) lines.push('', `refused input: ${refused.map(([reason, n]) => `${reason} ${n}`).join(', ')}`);
  return `${lines.join('\n')}\n`;
}
