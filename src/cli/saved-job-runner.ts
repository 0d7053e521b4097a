import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProgressBar } from '../report/progress.js';
import type { CommandIO } from './reproduce.js';
import { startModuleWorker } from './service/module-worker.js';

/** A long reproduction's runs, described so that one runner can execute, save and reuse them. */
export interface SavedJobKind<Job, Result extends { readonly job: Job; readonly codeHash?: string }> {
  /** The command, for messages (e.g. 'driftline reproduce copy-task'). */
  readonly command: string;
  /** The progress bar's unit (sequences, ticks). */
  readonly unit: string;
  /** A file name for the job (without .json), unique within OUT/runs. */
  fileKey(job: Job): string;
  /** The job's size in `unit`s, for the progress bar. */
  work(job: Job): number;
  /** The hash of the code a result must carry to be reused. */
  codeHash(): string;
  /** The worker module: receives the job as workerData, posts {type: 'progress', done} and {type: 'result', result}. */
  readonly workerUrl: URL;
}

/**
 * Runs jobs on up to `parallel` worker threads and saves each result under OUT/runs, reusing saved results of the
 * same job made by the same code unless `fresh`: a reproduction of several CPU-hours resumes where it stopped.
 */
export class SavedJobRunner<Job, Result extends { readonly job: Job; readonly codeHash?: string }> {
  constructor(
    private readonly kind: SavedJobKind<Job, Result>,
    private readonly outDir: string,
    private readonly parallel: number,
    private readonly fresh: boolean,
    private readonly quiet: boolean,
    private readonly io: CommandIO,
  ) {}

  async run(jobs: readonly Job[], label: string): Promise<Result[]> {
    const results: (Result | undefined)[] = jobs.map((job) => (this.fresh ? undefined : this.saved(job)));
    const pending = jobs.map((job, i) => ({ job, i })).filter(({ i }) => results[i] === undefined);
    const reused = jobs.length - pending.length;
    const total = pending.reduce((s, { job }) => s + this.kind.work(job), 0);
    const bar = new ProgressBar({
      total, unit: this.kind.unit, quiet: this.quiet, stream: this.io.stderr,
      label: `${label}: ${pending.length} to run${reused > 0 ? `, ${reused} reused from ${join(this.outDir, 'runs')}` : ''}`,
    });
    const progress = new Map<number, number>();
    const failures: string[] = [];
    let next = 0;
    // A failed run stops new ones from starting, but the runs in flight finish and are saved: nothing done is lost.
    const worker = async () => {
      while (next < pending.length && failures.length === 0) {
        const { job, i } = pending[next++];
        try {
          results[i] = await this.runInWorker(job, (done) => {
            progress.set(i, done);
            let sum = 0;
            for (const d of progress.values()) sum += d;
            bar.update(sum);
          });
          writeFileSync(this.pathOf(job), `${JSON.stringify(results[i])}\n`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.parallel, pending.length) }, worker));
    bar.finish();
    if (failures.length > 0) {
      const saved = results.filter((r) => r !== undefined).length;
      throw new Error(`${failures.join('; ')} (${saved} of ${jobs.length} ${label} are saved in ${join(this.outDir, 'runs')}; run the command again to go on from them)`);
    }
    return results as Result[];
  }

  private pathOf(job: Job): string {
    return join(this.outDir, 'runs', `${this.kind.fileKey(job)}.json`);
  }

  private saved(job: Job): Result | undefined {
    const path = this.pathOf(job);
    if (!existsSync(path)) return undefined;
    const saved = JSON.parse(readFileSync(path, 'utf8')) as Result;
    if (JSON.stringify(saved.job) !== JSON.stringify(job)) return undefined;
    if (saved.codeHash !== this.kind.codeHash()) {
      this.io.stderr.write(`${this.kind.command}: ${path} was produced by other code (${saved.codeHash ?? 'unmarked'}, now ${this.kind.codeHash()}): running it again\n`);
      return undefined;
    }
    return saved;
  }

  private runInWorker(job: Job, onProgress: (done: number) => void): Promise<Result> {
    return new Promise((resolve, reject) => {
      const worker = startModuleWorker(this.kind.workerUrl, job);
      let result: Result | undefined;
      worker.on('message', (m: { type: 'progress'; done: number } | { type: 'result'; result: Result }) => {
        if (m.type === 'progress') onProgress(m.done);
        else result = m.result;
      });
      worker.on('error', (err) => reject(new Error(`run ${this.kind.fileKey(job)} failed: ${err.message}`)));
      worker.on('exit', (code) => {
        if (result !== undefined) resolve(result);
        else reject(new Error(`run ${this.kind.fileKey(job)}: its worker exited with code ${code} before a result`));
      });
    });
  }
}
