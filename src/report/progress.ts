/**
 * A dependency-free terminal progress bar, writing to stderr (or any writable stream).
 *
 * It lives here, not in src/cli, because the replay adapter and the reproduce harness draw it too, and adapters
 * are a library that must not import the CLI (DESIGN section 2).
 *
 * On a TTY it redraws one line in place (at most ~12 times a second):
 *
 *   [##########----------]  512/1024  50%  21.3/s  ETA 24s  lambda sweep n=64 lambda=0.5 seed 2
 *
 * When the stream is not a TTY (CI logs, pipes) it prints a plain line each time another ~5 % is done or a few
 * seconds have passed, whichever comes first, so logs stay short but show a job is alive. `finish()` prints the
 * final line (with the elapsed time). With `quiet` nothing is written at all.
 */
export interface ProgressStream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressOptions {
  readonly total: number;
  /** What is counted ("runs", "ticks"); shown in the rate. */
  readonly unit?: string;
  readonly label?: string;
  readonly quiet?: boolean;
  /** Default process.stderr. */
  readonly stream?: ProgressStream;
  /** Non-TTY: also print when this many ms passed since the last line (default 5000). */
  readonly plainIntervalMs?: number;
  /** Non-TTY: print each time this fraction of the total is done (default 0.05). */
  readonly plainStep?: number;
  /** Force the TTY (redraw) or plain behaviour; default from stream.isTTY. */
  readonly tty?: boolean;
  /** Clock in ms (tests). */
  readonly now?: () => number;
}

const REDRAW_MS = 80;

export class ProgressBar {
  readonly total: number;
  private done = 0;
  private label: string;
  private readonly unit: string;
  private readonly quiet: boolean;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly plainIntervalMs: number;
  private readonly plainStep: number;
  private readonly now: () => number;
  private readonly started: number;
  private lastDraw = -Infinity;
  private lastPlainFraction = 0;
  private finished = false;

  constructor(options: ProgressOptions) {
    if (!(Number.isFinite(options.total) && options.total >= 0)) throw new RangeError(`total must be a finite number >= 0, got ${options.total}`);
    this.total = options.total;
    this.unit = options.unit ?? '';
    this.label = options.label ?? '';
    this.quiet = options.quiet ?? false;
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? Boolean(this.stream.isTTY);
    this.plainIntervalMs = options.plainIntervalMs ?? 5000;
    this.plainStep = options.plainStep ?? 0.05;
    this.now = options.now ?? (() => performance.now());
    this.started = this.now();
    if (!this.quiet && this.tty) this.draw(this.started);
  }

  get value(): number {
    return this.done;
  }

  /** Advances by `amount` (default 1); optionally changes the label. */
  tick(amount = 1, label?: string): void {
    this.update(this.done + amount, label);
  }

  /** Sets the done count; optionally changes the label. */
  update(done: number, label?: string): void {
    this.done = Math.min(Math.max(done, 0), this.total);
    if (label !== undefined) this.label = label;
    if (this.quiet || this.finished) return;
    const now = this.now();
    if (this.tty) {
      if (now - this.lastDraw >= REDRAW_MS) this.draw(now);
      return;
    }
    const fraction = this.total > 0 ? this.done / this.total : 1;
    if (fraction - this.lastPlainFraction >= this.plainStep - 1e-9 || now - this.lastDraw >= this.plainIntervalMs) {
      this.lastPlainFraction = fraction;
      this.lastDraw = now;
      this.stream.write(`${this.line(now, false)}\n`);
    }
  }

  setLabel(label: string): void {
    this.label = label;
  }

  /** Prints the final line (done/total, elapsed time, average rate, and an optional message). */
  finish(message?: string): void {
    if (this.finished) return;
    this.finished = true;
    if (this.quiet) return;
    const now = this.now();
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const text = `${this.tty ? this.bar() + '  ' : ''}${this.counts()}  in ${formatDuration(elapsed)} (${formatRate(rate, this.unit)})${message ? `  ${message}` : this.label ? `  ${this.label}` : ''}`;
    this.stream.write(this.tty ? `\r\x1b[2K${text}\n` : `${text}\n`);
  }

  private draw(now: number): void {
    this.lastDraw = now;
    const text = this.line(now, true);
    this.stream.write(`\r\x1b[2K${text}`);
  }

  private line(now: number, withBar: boolean): string {
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const eta = rate > 0 ? (this.total - this.done) / rate : Number.NaN;
    let text = `${withBar ? this.bar() + '  ' : ''}${this.counts()}  ${formatRate(rate, this.unit)}  ETA ${Number.isFinite(eta) ? formatDuration(eta) : '?'}`;
    if (this.label) text += `  ${this.label}`;
    const columns = this.stream.columns;
    if (withBar && columns && text.length > columns - 1) text = text.slice(0, Math.max(0, columns - 1));
    return text;
  }

  private bar(): string {
    const width = 24;
    const fraction = this.total > 0 ? this.done / this.total : 1;
    const filled = Math.round(fraction * width);
    return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  }

  private counts(): string {
    const pct = this.total > 0 ? Math.floor((100 * this.done) / this.total) : 100;
    const w = String(this.total).length;
    return `${String(this.done).padStart(w)}/${this.total} ${String(pct).padStart(3)}%`;
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return seconds < 10 ? `${Math.max(0, seconds).toFixed(1)}s` : `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function formatRate(rate: number, unit: string): string {
  const u = unit ? ` ${unit}/s` : '/s';
  if (rate >= 1e6) return `${(rate / 1e6).toFixed(2)}M${u}`;
  if (rate >= 1e4) return `${(rate / 1e3).toFixed(1)}k${u}`;
  return `${rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)}${u}`;
}
