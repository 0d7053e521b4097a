#!/usr/bin/env node
// The driftline CLI. Runs the compiled package (dist/, built by `npm run build`, which `npm ci` runs).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('driftline: dist/ is missing; run `npm ci` (or `npm run build`) in the package first\n');
  process.exit(2);
}
const { main } = await import(entry.href);
const { exitWhenDone } = await import(new URL('../dist/cli/exit-when-done.js', import.meta.url).href);
try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`driftline: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
exitWhenDone();
