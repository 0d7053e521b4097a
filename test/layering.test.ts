// DESIGN section 2: adapters, streams, learners and the rest are a library; only src/cli may import src/cli
// (and src/index.ts, the package's front door, which re-exports the CLI's entry points beside the library).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('../src/', import.meta.url));
const cli = resolve(src, 'cli');

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

test('nothing outside src/cli (but the package index) imports from src/cli', () => {
  const offenders: string[] = [];
  for (const file of sources(src)) {
    if (file.startsWith(cli + '/') || file === join(src, 'index.ts')) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
      const target = resolve(dirname(file), m[1] ?? m[2]!);
      if (target === cli || target.startsWith(cli + '/')) offenders.push(`${relative(src, file)} -> ${m[1] ?? m[2]}`);
    }
  }
  assert.deepEqual(offenders, []);
});
