/**
 * Real Chromium for browser tests: Debian's `chromium` driven by `playwright-core`. Installs the
 * package when it is missing and the tests run as root; otherwise fails loudly (never skips).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.GHA_CACHE_CHROMIUM ?? '/usr/bin/chromium';

const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`${CHROMIUM} is missing and the tests are not root: run "apt-get install -y chromium"`);
  }
  const apt = (...args: string[]) => execFileSync('apt-get', args, { stdio: 'inherit', timeout: 900_000 });
  try {
    apt('install', '-y', 'chromium');
  } catch {
    apt('update');
    apt('install', '-y', 'chromium');
  }
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is still missing`);
}

/**
 * Launches headless Chromium with a fresh profile. `hostRules` maps names to 127.0.0.1
 * (`--host-resolver-rules`), so a page can live on another site, or a name can rebind to the mock.
 */
export async function launchChromium(hostRules: readonly string[] = []): Promise<Browser> {
  ensureChromium();
  const args = [...LAUNCH_ARGS];
  if (hostRules.length > 0) {
    args.push(`--host-resolver-rules=${hostRules.map((name) => `MAP ${name} 127.0.0.1`).join(', ')}`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 120_000 });
}
