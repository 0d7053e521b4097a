import { filter, Subject, takeUntil, type Observable } from 'rxjs';
import { replaySessions } from '../adapters/replay/replay.js';
import { createDashboardRoutes } from '../dashboard/dashboard-routes.js';
import { DashboardFeed } from '../dashboard/dashboard-feed.js';
import { DriftlineMetrics } from '../metrics/driftline-metrics.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import { shippedDecoderSpec, SHIPPED_NORMALIZE_DECAY, SHIPPED_TARGET_SCALING } from '../reproduce/drift-streams.js';
import { simulateMotorCortexSessions } from '../simulator/motor-cortex.js';
import type { PrequentialReport, RecoveryReport, StreamInput } from '../streams/messages.js';
import { createPipeline, type PipelineOutput } from '../streams/pipeline.js';
import type { DemoIO } from './demo.js';
import { fixed } from './table.js';
import { numericOptionReader, parseCommandOptions } from './command-options.js';

/**
 * `driftline demo --bci` (what `npm start` runs): the BCI example live, with no data to download. The embedded
 * motor-cortex simulator's two sessions (96 channels, 50 ms bins, 20 + 15 minutes; tuning rotated, gains, baselines
 * and units changed between them) stream through the pipeline of examples/bci-decoder/jango.yaml: the LSTM decoder
 * predicts, then learns, on every bin (labels `--label-delay` bins late, 5 s of every 15 withheld: the held-out
 * error is the honest decoding figure), with its calibrated drift detectors (1 false alarm an hour, calibrated on
 * the stream's own first 6 minutes). The session change is NOT announced (`--declare-sessions` announces it): the
 * detector on the inputs has to find it, and the frozen shadow forked there measures the recovery.
 *
 * Time: event time is the recording's (50 ms a bin); `--rate` sets bins per wall-clock second (default 400: 20x
 * real time, the 35 minutes in under 2); `--rate 0` runs as fast as it can. Prints a live line, a line per drift
 * and per recovery, and serves /metrics and the dashboard on 127.0.0.1 while it runs (`--no-dashboard`).
 */
export const bciDemoUsage = `usage: driftline demo --bci [--rate HZ] [--seed S] [--label-delay D] [--ticks N] [--declare-sessions]
                          [--metrics-port P] [--no-dashboard] [--quiet]

  --rate HZ          bins per wall-clock second (default 400, 20x real time; 0 = as fast as possible)
  --seed S           simulator and learner seed (default 1)
  --label-delay D    labels arrive D bins late (default 5: 250 ms)
  --ticks N          stop after N bins (default: both sessions, 42,000)
  --declare-sessions announce the session change (by default the detectors must find it)
  --metrics-port P   serve /metrics and the dashboard on 127.0.0.1:P (default: any free port)
  --no-dashboard     no live dashboard
  --quiet            no live line
`;

const STREAM = 'bci';
const BIN_SECONDS = 0.05;

export interface BciDemoSummary {
  readonly ticks: number;
  readonly seconds: number;
  readonly drifts: readonly { readonly seq: number; readonly source: string }[];
  readonly recoveries: readonly RecoveryReport[];
  readonly dashboardUrl?: string;
  readonly metricsUrl?: string;
}

export async function bciDemoCommand(args: string[], io: DemoIO): Promise<BciDemoSummary | undefined> {
  const values = parseCommandOptions(
    args,
    {
      bci: { type: 'boolean', default: true },
      rate: { type: 'string' },
      seed: { type: 'string' },
      'label-delay': { type: 'string' },
      ticks: { type: 'string' },
      'declare-sessions': { type: 'boolean', default: false },
      'metrics-port': { type: 'string' },
      'no-dashboard': { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    bciDemoUsage,
  );
  if (values.help) {
    io.stdout.write(bciDemoUsage);
    return undefined;
  }
  const num = numericOptionReader(bciDemoUsage);
  const rate = num('rate', values.rate, 400, (v) => Number.isFinite(v) && v >= 0, 'a number >= 0');
  const seed = num('seed', values.seed, 1, Number.isInteger, 'an integer');
  const labelDelay = num('label-delay', values['label-delay'], 5, (v) => Number.isInteger(v) && v >= 0 && v < 1000, 'an integer in [0, 1000)');
  const maxTicks = num('ticks', values.ticks, Infinity, (v) => Number.isInteger(v) && v >= 1, 'a positive integer');
  const metricsPort = num('metrics-port', values['metrics-port'], 0, (v) => Number.isInteger(v) && v >= 0 && v <= 65_535, 'a port in [0, 65535]');

  const sessions = simulateMotorCortexSessions({ seed });
  const total = Math.min(maxTicks, sessions.reduce((n, s) => n + s.t.length, 0));
  const boundary = sessions[0].t.length;
  const spec = { ...shippedDecoderSpec(seed, sessions[0].nChannels, sessions[0].nOutputs ?? 2), maxLabelDelay: Math.max(64, labelDelay + 1) };
  const calibrated = (detector: { kind: 'page-hinkley'; alpha?: number }) => ({ kind: 'calibrated' as const, detector, falseAlarmsPerHour: 1, tickSeconds: BIN_SECONDS });

  const registry = createMetricsRegistry();
  const metrics = new DriftlineMetrics(registry, { maxStreams: 1 });
  const pipeline = createPipeline({
    pool: { spec, maxStreams: 1, allowedStreams: [STREAM] },
    normalize: { decay: SHIPPED_NORMALIZE_DECAY },
    targetScaling: SHIPPED_TARGET_SCALING,
    holdout: { kind: 'alternate', onSeconds: 10, offSeconds: 5 },
    maxDelay: spec.maxLabelDelay,
    recoveryTicks: 4000,
    prequential: { window: 1200, ewmaAlpha: 0.01, every: 20 },
    inputDrift: { detectors: [calibrated({ kind: 'page-hinkley', alpha: 1 })], statistic: 'mean-squared-z', cooldownTicks: 1000 },
    drift: { detectors: [calibrated({ kind: 'page-hinkley' })], signal: 'normalized-error', cooldownTicks: 1000 },
    recovery: { window: 1200, tolerance: 0.5 },
    onTickDuration: (s) => metrics.recordTickDuration(s),
  });

  const feed = values['no-dashboard'] ? undefined : new DashboardFeed();
  const routes = feed === undefined
    ? undefined
    : createDashboardRoutes({
      feed,
      describe: (stream) => {
        const l = pipeline.pool.peek(stream);
        return l === undefined ? undefined : { learner: 'lstm n = 64, immediate (lambda 0.5), rmsprop lr 1e-4 (examples/bci-decoder/jango.yaml)', stateBytes: l.stateBytes };
      },
    });
  let server: MetricsServer;
  try {
    server = await startMetricsServer({ registry, port: metricsPort, ...(routes !== undefined ? { routes: routes.handle, onClose: routes.close } : {}) });
  } catch (err) {
    routes?.close();
    throw new Error(`--metrics-port ${metricsPort}: the metrics endpoint could not start: ${(err as Error).message}`);
  }
  const metricsUrl = `${server.url}/metrics`;
  const dashboardUrl = routes === undefined ? undefined : `${server.url}/dashboard?stream=${STREAM}`;
  io.stdout.write(
    `driftline demo --bci: the motor-cortex simulator (96 channels, 50 ms bins, sessions of 20 and 15 min, seed ${seed}) through ` +
      `examples/bci-decoder/jango.yaml's decoder, labels ${labelDelay} bins late, 5 s of every 15 held out; ` +
      `the session change at bin ${boundary} is ${values['declare-sessions'] ? 'announced' : 'not announced: the detectors must find it'}; ` +
      `detectors calibrated on the first 6 min of the stream (1 false alarm an hour)\n`,
  );
  io.stdout.write(`metrics: ${metricsUrl}\n`);
  if (dashboardUrl !== undefined) io.stdout.write(`dashboard: ${dashboardUrl} (live while the demo runs)\n`);

  const last: { learning?: PrequentialReport; heldOut?: PrequentialReport } = {};
  const drifts: { seq: number; source: string }[] = [];
  const recoveries: RecoveryReport[] = [];
  let ticks = 0;
  const started = performance.now();
  const say = (line: string) => io.stdout.write(`${line}\n`);
  // R2 against the running mean over the last minute (1 - MSE(learner) / MSE(running mean)), beside the last label's.
  const skill = (r: PrequentialReport | undefined) =>
    r === undefined ? '-' : `${fixed(r.skillVsRunningMean, 2)} (last label ${fixed(1 - r.figures['last-label'].mse / r.figures['running-mean'].mse, 2)})`;
  const live = () => {
    const event = ticks * BIN_SECONDS;
    io.stderr.write(
      `bin ${ticks}/${total} (${(event / 60).toFixed(1)} min, session ${ticks < boundary ? 1 : 2})  R2 over the last minute: ` +
        `learning ${skill(last.learning)}, held out ${skill(last.heldOut)}  drifts ${drifts.length}\n`,
    );
  };
  const timer = values.quiet ? undefined : setInterval(live, 2000);

  const onOutput = (out: PipelineOutput) => {
    metrics.observe(out);
    feed?.observe(out);
    switch (out.kind) {
      case 'prediction':
        ticks = out.seq + 1;
        return;
      case 'prequential':
        if (out.heldOut) last.heldOut = out;
        else last.learning = out;
        return;
      case 'drift':
        drifts.push({ seq: out.seq, source: out.source });
        say(`drift ${out.source === 'session' ? 'announced' : `detected by ${out.source}`} at bin ${out.seq} (${fixed(out.t / 60, 2)} min; the session changed at bin ${boundary})`);
        return;
      case 'recovery':
        recoveries.push(out);
        say(
          `recovery after the drift at bin ${out.seq} (${out.heldOut ? 'held-out' : 'learning'} bins): ${out.recovery === null ? 'little harm' : `${fixed(100 * out.recovery, 0)} %`}, ` +
            `residual ${fixed(out.residual, 2)}, time to recovery ${out.secondsToRecovery === null ? 'not within 200 s' : `${fixed(out.secondsToRecovery, 1)} s`} ` +
            `(E_pre ${out.ePre.toPrecision(3)}, E_frozen ${out.eFrozen.toPrecision(3)}, E_adapt ${out.eAdapt.toPrecision(3)}, force units squared)`,
        );
        return;
      default:
        return;
    }
  };

  const stop = new Subject<void>();
  const signals = io.signals ?? process;
  const onSignal = () => stop.next();
  signals.once('SIGINT', onSignal);
  signals.once('SIGTERM', onSignal);
  let source: Observable<StreamInput> = replaySessions(sessions, {
    stream: STREAM, speed: rate > 0 ? rate * BIN_SECONDS : 'fast', labelDelayTicks: labelDelay, progress: false,
  });
  if (!values['declare-sessions']) source = source.pipe(filter((m) => m.kind !== 'drift'));
  let seen = 0;
  source = source.pipe(filter((m) => m.kind !== 'tick' || ++seen <= total));
  try {
    await new Promise<void>((resolve, reject) => {
      source.pipe(takeUntil(stop), pipeline.operator).subscribe({ next: onOutput, error: reject, complete: resolve });
    });
  } finally {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
    if (timer !== undefined) clearInterval(timer);
    stop.complete();
    await server.close();
  }
  if (!values.quiet) live();
  const seconds = (performance.now() - started) / 1000;
  say(`done: ${ticks} bins (${fixed((ticks * BIN_SECONDS) / 60, 1)} min of recording) in ${fixed(seconds, 1)} s; ${drifts.length} drift(s), ${recoveries.length} recovery report(s)`);
  return { ticks, seconds, drifts, recoveries, metricsUrl, ...(dashboardUrl !== undefined ? { dashboardUrl } : {}) };
}
