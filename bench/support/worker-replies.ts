// Commands to a bench's worker thread and the replies it posts back, each reply tagged with a `kind`. A section
// waits for one reply at a time (register with `expect` before sending the command that causes it, or a fast
// worker's reply goes by unseen), and a worker that fails or exits fails the wait at once rather than leaving it to
// run into its timeout.
import { Worker } from 'node:worker_threads';

/** What every worker posts once its script has run, before it takes commands. */
export interface LoadedReply {
  readonly kind: 'loaded';
}

/** What a worker posts when something in it went wrong: it fails the pending wait and every later one. */
export interface FailedReply {
  readonly kind: 'failed';
  readonly message: string;
}

type Waiting<R> = { readonly kind: string; readonly resolve: (r: R) => void; readonly reject: (e: Error) => void };

export class WorkerReplies<Reply extends { readonly kind: string }, Command> {
  private waiting: Waiting<Reply | LoadedReply> | undefined;
  private failure: Error | undefined;

  /** `name` heads the error messages, so that a failure says which section's worker it was. */
  private constructor(private readonly worker: Worker, private readonly name: string) {
    worker.on('message', (m: Reply | LoadedReply | FailedReply) => {
      if (m.kind === 'failed') return this.fail(new Error(`${name}: ${(m as FailedReply).message}`));
      const w = this.waiting;
      if (w && w.kind === m.kind) {
        this.waiting = undefined;
        w.resolve(m as Reply | LoadedReply);
      }
    });
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`${name} exited (${code})`)));
  }

  /**
   * Runs `source` as plain JavaScript (eval) in a worker without this process's loader flags, so that it starts
   * fast and needs no loader, and resolves once it has posted 'loaded'.
   */
  static async start<Reply extends { readonly kind: string }, Command>(name: string, source: string, workerData: unknown): Promise<WorkerReplies<Reply, Command>> {
    const replies = new WorkerReplies<Reply, Command>(new Worker(source, { eval: true, execArgv: [], workerData }), name);
    await replies.wait('loaded', 30_000);
    return replies;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.waiting?.reject(e);
    this.waiting = undefined;
  }

  private wait(kind: string, timeoutMs: number): Promise<Reply | LoadedReply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`${this.name}: no '${kind}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = {
        kind,
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }

  /** Waits for the next reply of this kind (register before sending the command that causes it). */
  expect<K extends Reply['kind']>(kind: K, timeoutMs: number): Promise<Extract<Reply, { kind: K }>> {
    return this.wait(kind, timeoutMs) as Promise<Extract<Reply, { kind: K }>>;
  }

  send(command: Command): void {
    this.worker.postMessage(command);
  }

  /** Clears a failure of the last run (a socket error), so that the next run can start. */
  reset(): void {
    this.failure = undefined;
  }

  async stop(): Promise<void> {
    // Terminating is not a failure: nothing should wait on it.
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
