import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A hash of every file a reproduction's numbers depend on: the learners (sources or built modules), the compiled
 * WASM kernels, and the caller's own files. Comments count too: a saved run is never reused across a code change.
 * `own` are absolute paths; files that do not exist (the WASM kernels before a build) are skipped.
 */
export function codeHashOf(own: readonly string[]): string {
  const hash = createHash('sha256');
  const paths = [
    ...listFiles(fileURLToPath(new URL('../learners/', import.meta.url))),
    ...own,
    fileURLToPath(new URL('../../build/kernels.wasm', import.meta.url)),
  ];
  for (const path of paths) {
    if (!existsSync(path)) continue;
    hash.update(path.slice(path.lastIndexOf('/learners/') >= 0 ? path.lastIndexOf('/learners/') : path.lastIndexOf('/') + 1));
    hash.update(readFileSync(path));
  }
  return hash.digest('hex').slice(0, 16);
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]))
    .filter((path) => !path.endsWith('.map') && !path.endsWith('.d.ts'))
    .sort();
}
