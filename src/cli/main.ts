import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { exitWhenDone } from './exit-when-done.js';

const usage = `driftline: streaming online adaptation, one recurrent learner per stream

usage:
  driftline run --config FILE
      the service: WebSocket ingest -> one learner per stream -> predictions to subscribers, Prometheus
      metrics, checkpoints; JSON logs on stderr; SIGINT/SIGTERM stop cleanly (examples/configs/)
  driftline replay [--to ws://HOST:PORT/ingest [--token T] | --config FILE] [--speed recorded|fast|K]
                   [--label-delay K] [--stream NAME] [--binary] FILE...
      recorded sessions (.mat Jango, .ndjson) as one live stream with session boundaries: sent to a running
      driftline, or run in-process with a summary table of prequential error and recovery
  driftline demo --bci [--rate HZ] [--seed S] [--label-delay D] [--declare-sessions] [--no-dashboard]
      the BCI example live (npm start): the motor-cortex simulator's two sessions through jango.yaml's decoder and
      calibrated detectors, the session change unannounced; a live line, /metrics and the dashboard
  driftline demo [--ticks N] [--rate HZ] [--seed S] [--label-delay D] [--holdout F]
                 [--detector page-hinkley|adwin|none] [--metrics-port P] [--quiet]  (demo --help: all options)
      a simulated drifting stream through the pipeline: live prequential error beside the references,
      held-out decoding error, drift detections and recovery
  driftline reproduce sine-shift [--quick] [--seeds N] [--protocol fixed|selected|both] [--out DIR]
      the sine frequency-shift experiment of "Temporal Credit Is Free": tables and PNG plots
  driftline reproduce bci [--jango DIR] [--seeds N] [--protocols A1,A2,A5,B,C,D] [--quick] [--out DIR]
      BCI decoders across a recording-session boundary under four label protocols, beside persistence:
      tables, PNG plots, summary.md (default data: the embedded motor-cortex simulator)
  driftline reproduce drift [--jango DIR] [--seeds N] [--quick] [--out DIR]
      drift detectors with River's defaults and calibrated to a false-alarm budget, on the decoder's error and
      on its inputs across an undeclared session boundary: false alarms per 10 min, delay, beside a periodic
      alarm; the calibration checked on null streams
  driftline reproduce copy-task [--seeds N] [--sequences N] [--jobs N] [--quick] [--out DIR]
      the online LRU on the copy task against 1-step truncated, spatial-only and BPTT credit
  driftline reproduce fpp [--seeds N] [--worlds LIST] [--jobs N] [--quick] [--out DIR]
      Fixed Point Propagation against truncated BPTT on CycleWorld and StochasticWorld, online
  driftline checkpoint inspect FILE [--json]
      what a checkpoint file holds (stream, lastSeq, version, learner spec, parts), or its defect (exit 1)
  driftline bench [section ...]
      the benchmark tables (from a source checkout; same as npm run bench)
  driftline --version
  driftline help
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'run': {
      const { runCommand } = await import('./run.js');
      return runCommand(args);
    }
    case 'replay': {
      const { replayCommand } = await import('./replay.js');
      return replayCommand(args);
    }
    case 'demo': {
      if (args.includes('--bci')) {
        const { bciDemoCommand } = await import('./demo-bci.js');
        await bciDemoCommand(args, { stdout: process.stdout, stderr: process.stderr });
        return 0;
      }
      const { demoCommand } = await import('./demo.js');
      await demoCommand(args);
      return 0;
    }
    case 'reproduce': {
      const { reproduceCommand } = await import('./reproduce.js');
      await reproduceCommand(args);
      return 0;
    }
    case 'checkpoint': {
      const { checkpointCommand } = await import('./checkpoint-command.js');
      return checkpointCommand(args);
    }
    case '--version':
    case '-V':
      process.stdout.write(`driftline ${packageVersion()}\n`);
      return 0;
    case 'bench': {
      const entry = fileURLToPath(new URL('../../bench/index.ts', import.meta.url));
      if (!existsSync(entry)) {
        process.stderr.write('driftline bench runs from a source checkout: bench/index.ts was not found\n');
        return 2;
      }
      return spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], { stdio: 'inherit' }).status ?? 1;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command '${command}'\n\n${usage}`);
      return 2;
  }
}

/** The version in package.json, two levels up from this module both in src/cli/ and in dist/cli/. */
function packageVersion(): string {
  const file = fileURLToPath(new URL('../../package.json', import.meta.url));
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the version from ${file}: ${(err as Error).message}`);
  }
  const version = (parsed as { version?: unknown })?.version;
  if (typeof version !== 'string') throw new Error(`${file} has no "version" string`);
  return version;
}

// Run directly (`node --import tsx src/cli/main.ts run ...`, as the tests do), this module is the CLI, the same as
// bin/driftline.js over the compiled dist/.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`driftline: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
  exitWhenDone();
}
