import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { RecoveryMeter } from '../evaluation/recovery.js';
import { WindowedMean } from '../evaluation/windowed-mean.js';
import { createLearner, type Learner, type LearnerSpec } from '../learners/learner.js';
import { rmsprop } from '../learners/optim/transform.js';
import { DriftingSignal } from '../simulator/drifting-signal.js';
import { formatDuration, type ProgressStream } from './progress.js';
import { formatTable } from './table.js';

/**
 * `driftline demo`: the first thing to run. A simulated drifting stream (src/simulator/drifting-signal.ts: 8
 * channels tuned to a 2-D latent oscillator, the tuning redrawn every session) is streamed at a fixed rate through
 * one learner (tanh-rnn n = 64, immediate derivatives lambda = 0, RMSprop lr 1e-3), test-then-train:
 *
 *   tick t:  x_t arrives -> yhat_t = learner.predict(x_t)   (and the reference predictors make theirs)
 *            the label of tick t - d arrives (d = --label-delay) -> every prediction of tick t - d is scored,
 *            then learner.learn(y_{t-d}, t - d)
 *
 * Reference predictors on the same ticks (DESIGN.md section 5), both limited to the labels seen so far, i.e. with the
 * same delay: "last label" (the latest label that has arrived: y_{t-d-1} when predicting tick t) and "running mean"
 * (the mean of every label that has arrived). With labels every tick and no delay, a slowly varying target is
 * easy to track, so the learner's error is only meaningful beside these and beside the delay it was measured at.
 *
 * Live line (stderr; redrawn on a TTY, else once a second): tick, session, model version (updates applied), the
 * MSE over the last `window` scored ticks for the learner and the two references, the label delay, the tick rate.
 *
 * Recovery (src/evaluation/recovery.ts). At each session boundary t0 the learner is forked into a frozen shadow;
 * E_pre is the learner's windowed MSE at t0 (the last `window` scored ticks, which end at t0 - d - 1). The labels
 * of ticks t0 .. t0 + P - 1 (P = min(5000, session length - d), so that the last of them arrives before the next
 * session starts) feed the meter with the learner's and the shadow's
 * errors; when the last arrives, a recovery line goes to stdout: recovery (E_frozen - E_adapt) / (E_frozen - E_pre)
 * and residual E_adapt / E_pre over the last `window` of those ticks, and time to recovery (ticks from t0 until the
 * MSE over the last 200 ticks is within 50 % of E_pre). A summary table ends the run (also on Ctrl-C).
 *
 * Options: --ticks N (default: 30 s at the rate), --rate HZ (default 2000; 0 = as fast as possible), --seed S,
 * --label-delay D (default 10: with labels on every tick and no delay an online learner scores well by tracking
 * the label rather than decoding the input, DESIGN section 5), --session N (ticks per session, default 10,000), --window W (default 1000),
 * --quiet (no live line). The per-tick path allocates nothing.
 */
export interface DemoIO {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: ProgressStream;
}

export interface DemoOptions {
  readonly ticks: number;
  readonly rate: number;
  readonly seed: number;
  readonly labelDelay: number;
  readonly sessionLength: number;
  readonly window: number;
  readonly recoveryTicks: number;
  readonly recoveryWindow: number;
  readonly tolerance: number;
  readonly hiddenSize: number;
  readonly lr: number;
  readonly quiet: boolean;
}

export interface DriftEventSummary {
  readonly tick: number;
  readonly session: number;
  /** False when the stream ended before the post-drift period was complete. */
  readonly complete: boolean;
  readonly ticks: number;
  readonly ePre: number;
  readonly eAdapt: number;
  readonly eFrozen: number;
  readonly recovery: number | null;
  readonly residual: number;
  readonly timeToRecovery: number | null;
}

export interface DemoSummary {
  readonly options: DemoOptions;
  readonly ticks: number;
  readonly scored: number;
  readonly seconds: number;
  readonly version: number;
  readonly backend: string;
  readonly interrupted: boolean;
  /** MSE over every scored tick, and over the last `window` scored ticks. */
  readonly mse: { readonly learner: number; readonly lastLabel: number; readonly runningMean: number };
  readonly windowMse: { readonly learner: number; readonly lastLabel: number; readonly runningMean: number };
  readonly events: DriftEventSummary[];
}

const usage = `usage: driftline demo [--ticks N] [--rate HZ] [--seed S] [--label-delay D] [--session N] [--window W] [--quiet]

  --ticks N         ticks to stream (default: 30 s at the rate; 60,000 at 2,000/s)
  --rate HZ         ticks per second (default 2000; 0 = as fast as possible)
  --seed S          seed of the simulated stream and the learner (default 1)
  --label-delay D   labels arrive D ticks after their tick (default 10; at 0 a learner can
                    look good by tracking the labels, compare it with 'last label seen')
  --session N       ticks per session: the tuning drifts at every session boundary (default 10000)
  --window W        ticks of the windowed MSE (default 1000)
  --quiet           no live line
`;

export async function demoCommand(args: string[], io: DemoIO = { stdout: process.stdout, stderr: process.stderr }): Promise<DemoSummary | undefined> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        ticks: { type: 'string' },
        rate: { type: 'string' },
        seed: { type: 'string' },
        'label-delay': { type: 'string' },
        session: { type: 'string' },
        window: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n\n${usage}`);
  }
  if (values.help) {
    io.stdout.write(usage);
    return undefined;
  }
  const num = (name: string, raw: string | undefined, fallback: number, check: (v: number) => boolean, what: string) => {
    if (raw === undefined) return fallback;
    const v = Number(raw);
    if (raw.trim() === '' || !check(v)) throw new Error(`--${name} must be ${what}, got '${raw}'\n\n${usage}`);
    return v;
  };
  const int = (v: number) => Number.isInteger(v);
  const rate = num('rate', values.rate, 2000, (v) => Number.isFinite(v) && v >= 0, 'a number >= 0');
  const sessionLength = num('session', values.session, 10_000, (v) => int(v) && v >= 2, 'an integer >= 2');
  const window = num('window', values.window, 1000, (v) => int(v) && v >= 1, 'a positive integer');
  const labelDelay = num('label-delay', values['label-delay'], 10, (v) => int(v) && v >= 0 && v < 65_536, 'an integer in [0, 65535]');
  const options: DemoOptions = {
    ticks: num('ticks', values.ticks, rate > 0 ? Math.round(30 * rate) : 60_000, (v) => int(v) && v >= 1, 'a positive integer'),
    rate,
    seed: num('seed', values.seed, 1, int, 'an integer'),
    labelDelay,
    sessionLength,
    window,
    recoveryTicks: Math.max(1, Math.min(5000, sessionLength - labelDelay)),
    recoveryWindow: Math.min(200, window),
    tolerance: 0.5,
    hiddenSize: 64,
    lr: 1e-3,
    quiet: values.quiet,
  };
  return runDemo(options, io);
}

export async function runDemo(o: DemoOptions, io: DemoIO): Promise<DemoSummary> {
  const sim = new DriftingSignal({ seed: o.seed, sessionLength: o.sessionLength });
  const m = sim.inputSize;
  const out = sim.outputSize;
  const d = o.labelDelay;
  const spec: LearnerSpec = {
    cell: { kind: 'tanh-rnn', hiddenSize: o.hiddenSize },
    credit: { rule: 'immediate', lambda: 0 },
    optimizer: rmsprop(o.lr),
    inputSize: m,
    outputSize: out,
    seed: o.seed,
    loss: 'mse',
    maxLabelDelay: Math.max(32, d + 1),
  };
  const learner = createLearner(spec);
  const recoveryWindow = Math.min(o.recoveryWindow, o.recoveryTicks);
  const meterWindow = Math.min(o.window, o.recoveryTicks);

  // Rings over the last d + 1 ticks: predictions (learner, frozen shadow, references) and labels.
  const slots = d + 1;
  const predRing = new Float32Array(slots * out);
  const frozenRing = new Float32Array(slots * out);
  const lastRing = new Float32Array(slots * out);
  const meanRing = new Float32Array(slots * out);
  const labelRing = new Float32Array(slots * out);
  const lastLabel = new Float32Array(out);
  const labelSum = new Float64Array(out);
  const yLearn = new Float32Array(out);
  let labelsSeen = 0;

  const winLearner = new WindowedMean(o.window);
  const winLast = new WindowedMean(o.window);
  const winMean = new WindowedMean(o.window);
  const total = { learner: 0, last: 0, mean: 0 };
  let scored = 0;

  let meter: RecoveryMeter | null = null;
  let frozen: Learner | null = null;
  let eventTick = -1;
  let eventSession = 0;
  const events: DriftEventSummary[] = [];

  const tty = Boolean(io.stderr.isTTY);
  const started = performance.now();
  let lastLive = started;
  let liveShown = false;
  let t = 0;
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSigint);

  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : '-');
  const clearLive = () => {
    if (tty && liveShown) io.stderr.write('\r\x1b[2K');
    liveShown = false;
  };
  const live = (now: number) => {
    const elapsed = (now - started) / 1000;
    const recovering = meter !== null ? `  recovering from drift at ${eventTick} (${meter.ticks}/${o.recoveryTicks})` : '';
    const text =
      `tick ${t}/${o.ticks}  session ${sim.session}  v${learner.version}  MSE(last ${o.window}) learner ${fmt(winLearner.mean)}` +
      `  last label ${fmt(winLast.mean)}  running mean ${fmt(winMean.mean)}  label delay ${d}  ${Math.round(t / Math.max(elapsed, 1e-9))} ticks/s${recovering}`;
    if (tty) {
      const cols = io.stderr.columns ?? 0;
      io.stderr.write(`\r\x1b[2K${cols > 0 ? text.slice(0, cols - 1) : text}`);
      liveShown = true;
    } else {
      io.stderr.write(`${text}\n`);
    }
  };

  const finishEvent = (complete: boolean) => {
    if (meter === null) return;
    if (meter.ticks === 0) {
      clearLive();
      io.stdout.write(`drift at tick ${eventTick} (session ${eventSession}): the stream ended before any label after the drift arrived\n`);
      meter = null;
      frozen = null;
      return;
    }
    const r = meter.result();
    events.push({ tick: eventTick, session: eventSession, complete, ...r });
    clearLive();
    io.stdout.write(
      `drift at tick ${eventTick} (session ${eventSession}), label delay ${d}: ` +
        `recovery ${r.recovery === null ? '-' : `${(100 * r.recovery).toFixed(1)}%`}, residual ${r.residual.toFixed(2)}, ` +
        `time to recovery ${r.timeToRecovery === null ? 'not within the window' : `${r.timeToRecovery} ticks`} ` +
        `(E_pre ${fmt(r.ePre)}, E_frozen ${fmt(r.eFrozen)}, E_adapt ${fmt(r.eAdapt)} over ticks ${eventTick + r.ticks - Math.min(r.ticks, meterWindow)}..${eventTick + r.ticks - 1}` +
        `${complete ? '' : `; stream ended after ${r.ticks} of ${o.recoveryTicks} ticks`})\n`,
    );
    meter = null;
    frozen = null;
  };

  const step = () => {
    // x_t and the drift flag.
    if (sim.next()) {
      finishEvent(false);
      const ePre = winLearner.mean;
      if (Number.isFinite(ePre) && ePre > 0) {
        frozen = learner.fork({ frozen: true });
        meter = new RecoveryMeter(ePre, { window: meterWindow, recoveryWindow, tolerance: o.tolerance });
        eventTick = t;
        eventSession = sim.session;
      }
    }
    const slot = t % slots;
    const at = slot * out;
    // Predictions for tick t.
    const yhat = learner.predict(sim.x);
    for (let j = 0; j < out; j++) {
      predRing[at + j] = yhat[j];
      lastRing[at + j] = lastLabel[j];
      meanRing[at + j] = labelsSeen > 0 ? labelSum[j] / labelsSeen : 0;
      labelRing[at + j] = sim.y[j];
    }
    if (frozen !== null) {
      const f = frozen.predict(sim.x);
      for (let j = 0; j < out; j++) frozenRing[at + j] = f[j];
    }
    // The label of tick s = t - d arrives: score tick s, then learn from it.
    const s = t - d;
    if (s >= 0) {
      const sAt = (s % slots) * out;
      let eL = 0;
      let eLast = 0;
      let eMean = 0;
      let eFrozen = 0;
      for (let j = 0; j < out; j++) {
        const y = labelRing[sAt + j];
        yLearn[j] = y;
        eL += (predRing[sAt + j] - y) ** 2;
        eLast += (lastRing[sAt + j] - y) ** 2;
        eMean += (meanRing[sAt + j] - y) ** 2;
        eFrozen += (frozenRing[sAt + j] - y) ** 2;
      }
      eL /= out;
      eLast /= out;
      eMean /= out;
      eFrozen /= out;
      if (Number.isFinite(eL)) {
        winLearner.push(eL);
        total.learner += eL;
      }
      winLast.push(eLast);
      winMean.push(eMean);
      total.last += eLast;
      total.mean += eMean;
      scored++;
      if (meter !== null && s >= eventTick && Number.isFinite(eL) && Number.isFinite(eFrozen)) {
        meter.update(eL, eFrozen);
        if (meter.ticks >= o.recoveryTicks) finishEvent(true);
      }
      learner.learn(yLearn, s);
      for (let j = 0; j < out; j++) {
        lastLabel[j] = yLearn[j];
        labelSum[j] += yLearn[j];
      }
      labelsSeen++;
    }
    t++;
  };

  try {
    while (t < o.ticks && !interrupted) {
      const now = performance.now();
      // Ticks due by now at the fixed rate (or a batch, as fast as possible).
      const due = o.rate > 0 ? Math.min(o.ticks, Math.floor(((now - started) / 1000) * o.rate) + 1) : Math.min(o.ticks, t + 2000);
      while (t < due) step();
      const after = performance.now();
      if (!o.quiet && after - lastLive >= (tty ? 100 : 1000)) {
        lastLive = after;
        live(after);
      }
      if (t < o.ticks) {
        if (o.rate > 0) {
          const wait = ((t + 1) / o.rate) * 1000 - (performance.now() - started);
          await sleep(Math.max(4, Math.min(wait, 50)));
        } else {
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  if (!o.quiet && !tty) live(performance.now());
  finishEvent(false);
  clearLive();

  const seconds = (performance.now() - started) / 1000;
  const summary: DemoSummary = {
    options: o,
    ticks: t,
    scored,
    seconds,
    version: learner.version,
    backend: learner.backend,
    interrupted,
    mse: { learner: total.learner / scored, lastLabel: total.last / scored, runningMean: total.mean / scored },
    windowMse: { learner: winLearner.mean, lastLabel: winLast.mean, runningMean: winMean.mean },
    events,
  };
  io.stdout.write(formatDemoSummary(summary));
  return summary;
}

export function formatDemoSummary(s: DemoSummary): string {
  const o = s.options;
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : '-');
  const lines: string[] = [];
  lines.push(
    '',
    `summary${s.interrupted ? ' (interrupted)' : ''}: ${s.ticks} ticks in ${formatDuration(s.seconds)} (${Math.round(s.ticks / Math.max(s.seconds, 1e-9))} ticks/s, ` +
      `target ${o.rate > 0 ? `${o.rate}/s` : 'as fast as possible'}), ${s.scored} scored, model version ${s.version}, kernels ${s.backend}`,
    `learner: tanh-rnn n = ${o.hiddenSize}, immediate derivatives (lambda 0), rmsprop lr ${o.lr}; stream: 8 channels, 2-D latent, session ${o.sessionLength} ticks, seed ${o.seed}`,
    `label delay: ${o.labelDelay} tick(s) (every error below was measured with it; the references see labels with the same delay)`,
    '',
    formatTable(
      ['predictor', 'MSE (all scored ticks)', `MSE (last ${o.window})`],
      [
        ['learner', f(s.mse.learner), f(s.windowMse.learner)],
        ['last label seen', f(s.mse.lastLabel), f(s.windowMse.lastLabel)],
        ['running mean', f(s.mse.runningMean), f(s.windowMse.runningMean)],
      ],
    ),
    '',
  );
  if (s.events.length === 0) {
    lines.push(`drift events: none (the first drift is at tick ${o.sessionLength}; run with more --ticks or a shorter --session)`);
  } else {
    lines.push(
      `drift events (label delay ${o.labelDelay}; recovery over the last ${Math.min(o.window, o.recoveryTicks)} of ${o.recoveryTicks} ticks after each drift; ` +
        `time to recovery: MSE over ${Math.min(o.recoveryWindow, o.recoveryTicks)} ticks within ${100 * o.tolerance}% of E_pre)`,
      formatTable(
        ['drift at', 'session', 'ticks', 'E_pre', 'E_frozen', 'E_adapt', 'recovery', 'residual', 'time to recovery'],
        s.events.map((e) => [
          String(e.tick), String(e.session), `${e.ticks}${e.complete ? '' : ' (cut)'}`, f(e.ePre), f(e.eFrozen), f(e.eAdapt),
          e.recovery === null ? '-' : `${(100 * e.recovery).toFixed(1)}%`, e.residual.toFixed(2),
          e.timeToRecovery === null ? 'not recovered' : String(e.timeToRecovery),
        ]),
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}
