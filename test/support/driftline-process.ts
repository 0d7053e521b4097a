// `driftline run` as a real process for integration tests: spawned from source (no stale dist/), its JSON log
// lines collected from stderr (and echoed to the test's stderr when DRIFTLINE_TEST_WORKER_LOGS is set), ready once it logs the URLs it serves.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface DriftlineProcess {
  readonly child: ChildProcess;
  readonly ingest: string;
  readonly predictions: string;
  readonly metrics: string;
  /** Every log line so far (non-JSON lines as { msg }). */
  readonly log: () => Record<string, unknown>[];
  readonly exited: Promise<number | null>;
}

export async function startDriftlineProcess(config: string, readyWithinMs = 30_000): Promise<DriftlineProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'run', '--config', config], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let pending = '';
  let onLine: (() => void) | undefined;
  child.stderr!.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      if (process.env.DRIFTLINE_TEST_WORKER_LOGS) process.stderr.write(`[worker ${child.pid}] ${line}\n`);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
    onLine?.();
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const ready = await new Promise<Record<string, unknown>>((res, rej) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`driftline not ready in ${readyWithinMs} ms: ${JSON.stringify(lines.slice(-5))}`));
    }, readyWithinMs);
    onLine = () => {
      const found = lines.find((l) => l.msg === 'driftline ready');
      if (found) {
        clearTimeout(timer);
        res(found);
      }
    };
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`driftline exited ${code} before ready: ${JSON.stringify(lines.slice(-5))}`));
    });
  });
  return { child, ingest: String(ready.ingest), predictions: String(ready.predictions), metrics: String(ready.metrics), log: () => lines, exited };
}

/** Resident set size of a process in bytes (Linux /proc). */
export async function rssOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) * 1024;
}

/** A small seeded PRNG (mulberry32) for reproducible test traffic. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
