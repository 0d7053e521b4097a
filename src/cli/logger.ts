/**
 * Structured logs for the long-running commands (`driftline run`): pino, one JSON object per line on stderr, so
 * stdout stays free for command output and a supervisor (systemd, Docker, Kubernetes) collects stderr as the log
 * stream. Lines are written synchronously: a shutdown or crash never loses the last lines, and logging stays off
 * the per-tick path anyway (refused input is logged through a `WarningLimiter`, never once per frame).
 *
 * Every line carries `level` (pino's numbers: 30 info, 40 warn, ...), `time` (ms since the epoch), `name:
 * "driftline"`, `pid`, and `msg`.
 */
import { pino, type DestinationStream, type Level, type Logger } from 'pino';

export type { Logger } from 'pino';

/** A log level from the config, or 'silent'. */
export type LogLevel = Level | 'silent';

/** How createLogger builds the logger. */
export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go; default stderr (file descriptor 2), written synchronously. */
  readonly destination?: DestinationStream;
}

/** The driftline logger: JSON lines on stderr at the configured level. */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true });
  return pino({ name: 'driftline', level: options.level }, destination);
}

/** The budget of a WarningLimiter. */
export interface WarningLimiterOptions {
  /** Warnings written per one-second interval at most. */
  readonly perSecond: number;
  /** Clock in ms (tests); default Date.now. */
  readonly now?: () => number;
}

/**
 * Rate-limits warnings so that a flood of bad frames cannot fill the log: at most `perSecond` lines per one-second
 * interval are written; the rest are counted, and the first warning of a later interval is preceded by one line
 * saying how many were suppressed (with their counts by reason). Counting is what the metrics are for
 * (`driftline_events_rejected_total`); the log only needs examples.
 */
export class WarningLimiter {
  private readonly perSecond: number;
  private readonly now: () => number;
  private intervalStart = -Infinity;
  private writtenInInterval = 0;
  private suppressed = 0;
  private suppressedByReason = new Map<string, number>();
  /** Warnings suppressed so far in total. */
  suppressedTotal = 0;

  constructor(private readonly logger: Pick<Logger, 'warn'>, options: WarningLimiterOptions) {
    if (!Number.isInteger(options.perSecond) || options.perSecond < 1) {
      throw new RangeError(`WarningLimiter: perSecond must be a positive integer, got ${String(options.perSecond)}`);
    }
    this.perSecond = options.perSecond;
    this.now = options.now ?? Date.now;
  }

  /** Writes the warning unless this interval's budget is spent; `reason` groups the suppressed count. */
  warn(reason: string, obj: object, msg: string): void {
    const now = this.now();
    if (now - this.intervalStart >= 1000) {
      this.intervalStart = now;
      this.writtenInInterval = 0;
      this.reportSuppressed();
    }
    if (this.writtenInInterval >= this.perSecond) {
      this.suppressed++;
      this.suppressedTotal++;
      this.suppressedByReason.set(reason, (this.suppressedByReason.get(reason) ?? 0) + 1);
      return;
    }
    this.writtenInInterval++;
    this.logger.warn({ reason, ...obj }, msg);
  }

  /** Writes the pending "suppressed" line now (at shutdown), if any warnings were suppressed. */
  flush(): void {
    this.reportSuppressed();
  }

  private reportSuppressed(): void {
    if (this.suppressed === 0) return;
    this.logger.warn(
      { suppressed: this.suppressed, byReason: Object.fromEntries(this.suppressedByReason) },
      `${this.suppressed} further warning(s) suppressed (at most ${this.perSecond} a second are logged; all are counted in the metrics)`,
    );
    this.suppressed = 0;
    this.suppressedByReason = new Map();
  }
}
