// CPU time and resident memory of a process, read from /proc (Linux): what the benches report per process.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clockTicks: number | undefined;
/** Clock ticks per second of /proc's CPU times (getconf CLK_TCK; 100 when it cannot be read). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clockTicks = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/**
 * CPU seconds (user + system) of a process so far, all its threads, from /proc/<pid>/stat; with `mainThreadOnly`,
 * of its main thread alone (/proc/<pid>/task/<pid>/stat: the thread that owns the sockets). NaN when unreadable.
 */
export function cpuSeconds(pid: number | undefined, mainThreadOnly = false): number {
  if (pid === undefined) return NaN;
  const ticks = clockTicksPerSecond();
  try {
    const stat = readFileSync(mainThreadOnly ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 0, utime 11, stime 12 (fields 14 and 15 of proc(5)).
    return (Number(fields[11]) + Number(fields[12])) / ticks;
  } catch {
    return NaN;
  }
}

/** VmRSS of a process in bytes, from /proc/<pid>/status; NaN when unreadable. */
export function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}
