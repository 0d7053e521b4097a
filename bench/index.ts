// `npm run bench [-- [--quick] [tick] [memory] [state] [lru] [fpp] [ws] [service] [streams] [dashboard] [handoff] [kafka]]`: runs the named benchmark sections (all by default) and
// prints each as an aligned text table, then a summary of the targets. Benchmarks print; they do not fail on a
// missed target (the exit code is non-zero only when a section could not run).
//
// The memory section runs in a fresh child process of this same script started with --expose-gc, so that it can
// force GC before each sample whether or not this process has global.gc, and so that the other sections' heaps
// do not blur its figures. The child prints its table and passes its targets back on one marked line. The ws
// section runs in such a child too, for the same reasons (its RSS figures), and starts its own load generator.
// The service section runs in such a child as well (so the load generator it hosts starts with a fresh heap); it
// spawns the real `driftline run` process from source and measures its cold-start and steady latency. The streams
// section runs in such a child too: it spawns a fresh `driftline run` and a fresh echo server (the floor) per run
// and loads them with 1, 100 and 1,000 streams and a max-rate ramp, from a generator hosted in that child. The
// handoff section runs in this process: it measures this thread's cost of handing events to worker threads, which
// a child would only add a process start to. The kafka section runs in this process too: its workers and its floor
// are processes of their own, against the broker of scripts/kafka/broker.sh (it says so and runs nothing without one).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { machineLines, passFail, printTable, type BenchOptions, type TargetResult } from './common.js';
import { runMemory } from './memory.js';
import { runState } from './state.js';
import { runTick } from './tick.js';
import { runDashboard, runDashboardMemory } from './dashboard.js';
import { runHandoff } from './handoff.js';
import { runServiceLatency } from './service-latency.js';
import { runKafka } from './kafka.js';
import { runLru } from './lru.js';
import { runFpp } from './fpp.js';
import { wasmKernelsError } from '../src/learners/kernels/wasm-kernels.js';
import { runStreams } from './streams.js';
import { runWs } from './ws.js';

const SECTIONS = ['tick', 'memory', 'state', 'lru', 'fpp', 'ws', 'service', 'streams', 'dashboard', 'handoff', 'kafka'] as const;
type Section = (typeof SECTIONS)[number];
const CHILD_FLAG = '--memory-child';
const WS_CHILD_FLAG = '--ws-child';
const SERVICE_CHILD_FLAG = '--service-child';
const STREAMS_CHILD_FLAG = '--streams-child';
/** The sections that run in a fresh `node --expose-gc` child, by the flag that starts them there. */
const CHILD_SECTIONS = { [CHILD_FLAG]: 'memory', [WS_CHILD_FLAG]: 'ws', [SERVICE_CHILD_FLAG]: 'service', [STREAMS_CHILD_FLAG]: 'streams' } as const;
const CHILD_FLAGS: Record<ChildSection, string> = { memory: CHILD_FLAG, ws: WS_CHILD_FLAG, service: SERVICE_CHILD_FLAG, streams: STREAMS_CHILD_FLAG };
type ChildSection = (typeof CHILD_SECTIONS)[keyof typeof CHILD_SECTIONS];
const TARGETS_MARK = '@@driftline-bench-targets ';

function usage(): string {
  return `usage: node --import tsx bench/index.ts [--quick] [${SECTIONS.join('] [')}]`;
}

function parseArgs(argv: string[]): { sections: Section[]; quick: boolean; child: ChildSection | undefined } {
  const sections: Section[] = [];
  let quick = false;
  let child: ChildSection | undefined;
  for (const arg of argv) {
    if (arg === '--quick') quick = true;
    else if (arg === CHILD_FLAG || arg === WS_CHILD_FLAG || arg === SERVICE_CHILD_FLAG || arg === STREAMS_CHILD_FLAG) child = CHILD_SECTIONS[arg];
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${usage()}\n`);
      process.exit(0);
    } else if ((SECTIONS as readonly string[]).includes(arg)) {
      if (!sections.includes(arg as Section)) sections.push(arg as Section);
    } else {
      process.stderr.write(`unknown argument '${arg}'\n${usage()}\n`);
      process.exit(2);
    }
  }
  // Sections run in the documented order whatever order they were named in.
  const ordered = SECTIONS.filter((s) => sections.length === 0 || sections.includes(s));
  return { sections: ordered, quick, child };
}

/** Runs the memory, ws, service or streams section in `node --expose-gc` (same loader flags), forwarding its output. */
async function sectionInChild(section: ChildSection, quick: boolean): Promise<TargetResult[]> {
  const self = fileURLToPath(import.meta.url);
  const flag = CHILD_FLAGS[section];
  const args = ['--expose-gc', ...process.execArgv, self, flag, ...(quick ? ['--quick'] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let targets: TargetResult[] = [];
  let pending = '';
  const onLine = (line: string) => {
    if (line.startsWith(TARGETS_MARK)) targets = JSON.parse(line.slice(TARGETS_MARK.length)) as TargetResult[];
    else process.stdout.write(`${line}\n`);
  };
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  if (pending) onLine(pending);
  if (code !== 0) throw new Error(`the ${section} section's child process exited with ${code}`);
  return targets;
}

async function main(): Promise<void> {
  const { sections, quick, child } = parseArgs(process.argv.slice(2));
  const options: BenchOptions = { quick };
  if (child !== undefined) {
    const targets =
      child === 'ws' ? await runWs(options)
      : child === 'service' ? await runServiceLatency(options)
      : child === 'streams' ? await runStreams(options)
      : await runMemory(options);
    process.stdout.write(`${TARGETS_MARK}${JSON.stringify(targets)}\n`);
    return;
  }

  const started = performance.now();
  process.stdout.write(`driftline bench: ${sections.join(', ')}${quick ? ' (--quick)' : ''}, ${new Date().toISOString()}\n`);
  for (const line of machineLines()) process.stdout.write(`  ${line}\n`);
  process.stdout.write('  2 cores, shared and noisy: compare ratios taken within one run, not absolute times across runs.\n');
  // Without the compiled kernels every learner runs the plain-JS twin, about 3x slower: figures of another program.
  const noWasm = wasmKernelsError();
  if (noWasm !== null) process.stdout.write(`  WARNING: learners run the plain-JS kernels, not WASM: ${noWasm}\n`);

  const targets: TargetResult[] = [];
  for (const section of sections) {
    if (section === 'tick') targets.push(...(await runTick(options)));
    else if (section === 'memory') targets.push(...(await sectionInChild('memory', quick)));
    else if (section === 'ws') targets.push(...(await sectionInChild('ws', quick)));
    else if (section === 'service') targets.push(...(await sectionInChild('service', quick)));
    else if (section === 'streams') targets.push(...(await sectionInChild('streams', quick)));
    else if (section === 'dashboard') targets.push(...(await runDashboard(options)), ...(await runDashboardMemory(options)));
    else if (section === 'handoff') targets.push(...(await runHandoff(options)));
    else if (section === 'kafka') targets.push(...(await runKafka(options)));
    else if (section === 'lru') targets.push(...runLru(options));
    else if (section === 'fpp') targets.push(...runFpp(options));
    else targets.push(...runState(options));
  }

  if (targets.length > 0) {
    printTable(
      'targets',
      ['section', 'target', 'measured', 'result'],
      targets.map((t) => [t.section, t.target, t.measured, passFail(t.pass)]),
      quick ? ['QUICK mode: smoke-test tick counts; do not read these results as the real ones.'] : [],
      'llrl',
    );
  }
  process.stdout.write(`\ndone in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
