/**
 * Real Chromium for the UI tests: Debian's `chromium` package (installed with apt-get when missing and
 * running as root, as the peer installer does for runc), driven by playwright-core. Fails loudly when it
 * cannot be had: a UI test must never be skipped.
 */
import { access, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium } from 'playwright-core';
import { runCommand } from '../peers/support.js';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** Launch arguments for a quiet, offline, sandbox-less headless Chromium. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Screenshots and other artifacts of the UI tests (git-ignored). */
export const ARTIFACTS_DIR = join(import.meta.dirname, '..', '.artifacts');

async function findChromium(): Promise<string | undefined> {
  for (const path of CANDIDATES) {
    try {
      await access(path);
      return path;
    } catch {}
  }
  return undefined;
}

/** The Chromium binary, installing Debian's package first if it is missing. */
export async function requireChromium(): Promise<string> {
  const found = await findChromium();
  if (found) return found;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('Chromium is not installed and this is not root: run `apt-get install -y chromium`');
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-q'],
    ['install', '-y', '-q', '--no-install-recommends', 'chromium'],
  ]) {
    const r = await runCommand('apt-get', args, { env, timeoutMs: 900_000 });
    if (r.code !== 0)
      throw new Error(`apt-get ${args.join(' ')} failed (${r.code}):\n${r.stderr.slice(-4000)}`);
  }
  const installed = await findChromium();
  if (!installed) throw new Error('apt-get installed chromium but no chromium binary was found');
  return installed;
}

export interface TestBrowser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** Chromium with a fresh user-data dir, one context (same-origin pages of the mock). */
export async function launchChromium(): Promise<TestBrowser> {
  const executablePath = await requireChromium();
  const userDataDir = await mkdtemp(join(tmpdir(), 'gha-chromium-'));
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
    timeout: 120_000,
  });
  let browser: Browser | null = null;
  browser = context.browser();
  return {
    context,
    async close() {
      await context.close();
      await browser?.close().catch(() => undefined);
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
