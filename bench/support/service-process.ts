// A server process a bench section spawns and loads: `driftline run` from source, or another server that speaks
// the same protocol and announces itself the same way (one JSON line with the URLs once it listens). The section
// needs the moment that line is read (cold start is timed from it), the log lines that say something went wrong,
// the stop line with the server's own counts, and the last lines of output for an error message.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { INPUTS, LEARNING_RATE, OUTPUTS } from '../common.js';
import { clockMs } from './clock.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** Every server child still running, killed on the way out whatever happens. */
const live = new Set<ChildProcess>();
process.once('exit', killServers);

/** For a section stopped from outside (Ctrl-C, a test's timeout): the servers must not outlive it. */
export function killServers(): void {
  for (const c of live) c.kill('SIGKILL');
}

export interface ServerUrls {
  readonly ingest: string;
  readonly predictions: string;
  /** Undefined for a server without a /metrics endpoint. */
  readonly metrics: string | undefined;
}

export interface ServerSpec {
  /** Names the server in error messages. */
  readonly name: string;
  /** Arguments to node, run in the repository. */
  readonly args: readonly string[];
  /** The stream its JSON lines come on; the other stream's lines only go into the log tail. */
  readonly jsonOn: 'stdout' | 'stderr';
  readonly readyMsg: string;
  readonly stoppedMsg: string;
  /** A piped stdin, for a server that exits when it closes and so cannot outlive this process. */
  readonly stdin: 'pipe' | 'ignore';
  /** How long stop() waits after SIGTERM before SIGKILL. */
  readonly stopTimeoutMs: number;
}

/** `driftline run` from source, as `name` in error messages. */
export function serviceSpec(name: string, configFile: string, stopTimeoutMs: number): ServerSpec {
  return {
    name, args: ['--import', 'tsx', 'src/cli/main.ts', 'run', '--config', configFile], jsonOn: 'stderr',
    readyMsg: 'driftline ready', stoppedMsg: 'driftline stopped', stdin: 'ignore', stopTimeoutMs,
  };
}

/** Writes the config the bench sections run the service with (INPUTS, OUTPUTS, a tanh RNN) into dir; returns its path. */
export function writeServiceConfig(dir: string, options: { maxStreams: number; hiddenSize: number; shards?: number }): string {
  const configFile = path.join(dir, options.shards === undefined ? 'service.json' : `service-${options.shards}-shards.json`);
  // JSON is YAML; the service reads either. Loopback and ports 0; no checkpoint block: nothing on disk.
  const config = {
    streams: { inputSize: INPUTS, outputSize: OUTPUTS, maxStreams: options.maxStreams, ...(options.shards !== undefined ? { shards: options.shards } : {}) },
    learner: { cell: { kind: 'tanh-rnn', hiddenSize: options.hiddenSize }, credit: { rule: 'immediate', lambda: 0 }, optimizer: { name: 'rmsprop', lr: LEARNING_RATE } },
    sources: { websocket: { host: '127.0.0.1', port: 0 } },
    metrics: { host: '127.0.0.1', port: 0 },
    log: { level: 'info' },
  };
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  return configFile;
}

/** A spawned server: its ready line, its last log lines, its warnings and its stop line. */
export class ServerProcess {
  private readonly tail: string[] = [];
  private pending = '';
  private onJson: ((o: Record<string, unknown>) => void) | undefined;
  readonly exited: Promise<number | null>;
  /** Log lines at warn (40) or above. */
  warnings = 0;
  firstWarning: string | undefined;
  stopLine: Record<string, unknown> | undefined;

  private constructor(private readonly spec: ServerSpec, readonly child: ChildProcess) {
    live.add(child);
    const lines = spec.jsonOn === 'stderr' ? child.stderr! : child.stdout!;
    const other = spec.jsonOn === 'stderr' ? child.stdout! : child.stderr!;
    lines.setEncoding('utf8');
    lines.on('data', (chunk: string) => {
      this.pending += chunk;
      let nl: number;
      while ((nl = this.pending.indexOf('\n')) >= 0) {
        this.line(this.pending.slice(0, nl));
        this.pending = this.pending.slice(nl + 1);
      }
    });
    other.setEncoding('utf8');
    other.on('data', (chunk: string) => this.remember(chunk.trimEnd()));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        live.delete(child);
        resolve(code ?? (signal ? -1 : null));
      }),
    );
  }

  static spawn(spec: ServerSpec): ServerProcess {
    return new ServerProcess(spec, spawn(process.execPath, spec.args, { cwd: REPO, stdio: [spec.stdin, 'pipe', 'pipe'] }));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private remember(text: string): void {
    if (text === '') return;
    this.tail.push(text);
    if (this.tail.length > 40) this.tail.shift();
  }

  private line(text: string): void {
    this.remember(text);
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof o.level === 'number' && o.level >= 40) {
      this.warnings++;
      this.firstWarning ??= String(o.msg);
    }
    if (o.msg === this.spec.stoppedMsg) this.stopLine = o;
    this.onJson?.(o);
  }

  /** The last lines of its output, for an error message. */
  get logTail(): string {
    return this.tail.join('\n');
  }

  /** Resolves with the ready line's URLs and the clockMs at which this process read it. */
  ready(timeoutMs: number): Promise<{ urls: ServerUrls; at: number }> {
    const { name, readyMsg } = this.spec;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: no '${readyMsg}' within ${timeoutMs} ms\n${this.logTail}`)), timeoutMs);
      this.onJson = (o) => {
        if (o.msg !== readyMsg) return;
        const at = clockMs();
        clearTimeout(timer);
        this.onJson = undefined;
        resolve({ urls: { ingest: String(o.ingest), predictions: String(o.predictions), metrics: typeof o.metrics === 'string' ? o.metrics : undefined }, at });
      };
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before it was ready\n${this.logTail}`));
      });
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited within the spec's stopTimeoutMs; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), this.spec.stopTimeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}
