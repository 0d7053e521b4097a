import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The highest seq predicted per stream, written before each prediction leaves the process, so that after a
 * crash the next run knows what the previous one had already predicted (and so learned, labels permitting)
 * beyond the checkpoint it restores: those ticks are its rollback, and their predictions, when the producer
 * re-sends them, are marked `replayed` (DESIGN section 6).
 *
 * Checkpoints are too heavy to write per tick; this journal is one short line per prediction, appended with a
 * plain write(2). That survives a killed process (the kernel holds the bytes), though not a power cut, where
 * the journal may miss its last lines and the rollback reads low. Lines are `<seq> <stream key as JSON>`; a
 * torn last line is ignored. When the file passes `maxBytes` it is rewritten with one line per stream.
 */
export class ProgressJournal {
  /** The journal file. */
  readonly file: string;
  /** Per stream, the highest seq the previous runs predicted (read at open; never changes afterwards). */
  readonly previous: ReadonlyMap<string, number>;
  private readonly marks = new Map<string, number>();
  private readonly maxBytes: number;
  private fd: number;
  private bytes = 0;

  constructor(dir: string, options: { maxBytes?: number } = {}) {
    this.file = join(dir, 'progress.journal');
    this.maxBytes = options.maxBytes ?? 8 * 1024 * 1024;
    this.previous = existsSync(this.file) ? parseJournal(readFileSync(this.file, 'utf8')) : new Map();
    for (const [stream, seq] of this.previous) this.marks.set(stream, seq);
    this.fd = this.rewrite();
  }

  /** Notes that `stream` predicted tick `seq`; a seq at or below the stream's mark writes nothing. */
  predicted(stream: string, seq: number): void {
    const mark = this.marks.get(stream);
    if (mark !== undefined && seq <= mark) return;
    this.marks.set(stream, seq);
    const line = `${seq} ${JSON.stringify(stream)}\n`;
    this.bytes += writeSync(this.fd, line);
    if (this.bytes > this.maxBytes) {
      closeSync(this.fd);
      this.fd = this.rewrite();
    }
  }

  /** Per stream, the highest seq predicted, in this run or before (a copy). */
  marksNow(): Map<string, number> {
    return new Map(this.marks);
  }

  /** The highest seq predicted of `stream`, in this run or before (-1 when never). */
  markOf(stream: string): number {
    return this.marks.get(stream) ?? -1;
  }

  close(): void {
    if (this.fd < 0) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }

  /** Compacts: one line per stream into a temp file, renamed over the journal; returns the new descriptor. */
  private rewrite(): number {
    const temp = `${this.file}.tmp`;
    const fd = openSync(temp, 'w');
    let text = '';
    for (const [stream, seq] of this.marks) text += `${seq} ${JSON.stringify(stream)}\n`;
    this.bytes = text.length > 0 ? writeSync(fd, text) : 0;
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temp, this.file);
    return openSync(this.file, 'a');
  }
}

function parseJournal(text: string): Map<string, number> {
  const marks = new Map<string, number>();
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ');
    if (space < 1) continue;
    const seq = Number(line.slice(0, space));
    let stream: unknown;
    try {
      stream = JSON.parse(line.slice(space + 1));
    } catch {
      continue; // a line torn by the crash
    }
    if (typeof stream !== 'string' || !Number.isSafeInteger(seq)) continue;
    if (seq > (marks.get(stream) ?? -1)) marks.set(stream, seq);
  }
  return marks;
}
