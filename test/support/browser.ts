// A real browser for tests: Debian's chromium (scripts/chromium/chromium.sh, which `npm test` and .ci/run use to
// install it when missing and permitted) driven by playwright-core. A test that needs it skips when
// browserSkipReason() gives a reason, printing it; under DRIFTLINE_REQUIRE_ALL_PARTS=1 scripts/test.mjs fails
// the run for that skip, like every other missing part.
//
//   const reason = browserSkipReason();
//   if (reason) console.log(`[my test] skipped: ${reason}`);
//   test('...', { skip: reason }, async (t) => {
//     const browser = await launchChromium();
//     t.after(() => browser.close());
//     const page = await browser.newPage();
//     ...
//   });
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { chromium, type Browser, type LaunchOptions, type Page } from 'playwright-core';
import { REPO } from './driftline-process.js';

const SCRIPT = join(REPO, 'scripts', 'chromium', 'chromium.sh');

/** The flags of DESIGN section 10: headless, no sandbox (root in CI), no GPU, no background traffic. */
export const CHROMIUM_ARGS: readonly string[] = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];

let cachedPath: string | null | undefined;

/**
 * The chromium executable: DRIFTLINE_CHROMIUM when set, else the `chromium` on PATH (or /usr/bin/chromium), as
 * `scripts/chromium/chromium.sh path` finds it; undefined when there is none. Never installs anything.
 */
export function chromiumPath(): string | undefined {
  if (cachedPath === undefined) {
    const r = spawnSync('bash', [SCRIPT, 'path'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const line = r.status === 0 ? (r.stdout ?? '').trim().split('\n').pop() ?? '' : '';
    cachedPath = line === '' ? null : line;
  }
  return cachedPath ?? undefined;
}

/** False when a browser test can run here, else why not (for `test(..., { skip: reason })` and the log). */
export function browserSkipReason(): false | string {
  if (process.env.DRIFTLINE_NO_CHROMIUM === '1') return 'DRIFTLINE_NO_CHROMIUM=1: browser tests are off';
  if (chromiumPath() !== undefined) return false;
  if (process.env.DRIFTLINE_CHROMIUM) return `DRIFTLINE_CHROMIUM=${process.env.DRIFTLINE_CHROMIUM} is not an executable`;
  return (
    'chromium is not installed (npm test installs Debian\'s package when run as root with apt-get: ' +
    'bash scripts/chromium/chromium.sh install)'
  );
}

/**
 * Launches the chromium of chromiumPath() headless with CHROMIUM_ARGS (plus options.args). Throws when there is
 * no chromium: call browserSkipReason() first. The caller closes the browser (`t.after(() => browser.close())`).
 */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  const executablePath = chromiumPath();
  if (executablePath === undefined) throw new Error(`no chromium: ${browserSkipReason() || 'not found'}`);
  return chromium.launch({
    timeout: 60_000,
    ...options,
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
  });
}

/** The page's V8 heap through the DevTools protocol (Runtime.getHeapUsage), in bytes. */
export async function jsHeapUsage(page: Page): Promise<{ usedSize: number; totalSize: number }> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { usedSize, totalSize } = await cdp.send('Runtime.getHeapUsage');
    return { usedSize, totalSize };
  } finally {
    await cdp.detach();
  }
}

/**
 * Pixels of the first canvas matching `selector` that are not fully transparent (read back with getImageData),
 * beside its size; throws when there is no such canvas or it has no 2D context.
 */
export async function canvasPaintedPixels(page: Page, selector = 'canvas'): Promise<{ painted: number; width: number; height: number }> {
  return page.evaluate((sel) => {
    const canvas = document.querySelector(sel);
    if (!(canvas instanceof HTMLCanvasElement)) throw new Error(`no canvas matches ${sel}`);
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error(`canvas ${sel} has no 2d context`);
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
    return { painted, width: canvas.width, height: canvas.height };
  }, selector);
}
