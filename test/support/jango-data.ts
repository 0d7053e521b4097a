import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Where the two Jango sessions are: DRIFTLINE_JANGO_DIR when set, else the workspace's shared data beside the
 * repository (../shared/data/jango), else /work/shared/data/jango. The data is never copied into the repository.
 */
export function jangoDataDir(): string {
  const fromEnv = process.env.DRIFTLINE_JANGO_DIR;
  if (fromEnv) return fromEnv;
  const candidates = [resolve(repoRoot, '../shared/data/jango'), '/work/shared/data/jango'];
  return candidates.find((dir) => existsSync(resolve(dir, 'Day0.mat'))) ?? candidates[0];
}
