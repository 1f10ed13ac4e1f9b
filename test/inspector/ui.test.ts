/**
 * The web UI in real Chromium (Debian's package, driven by playwright-core) while real clients use the
 * mock: a real `@actions/cache` save and restore appear live on the Traffic page, a deliberate version
 * mismatch shows its explanation, a real BuildKit build's layers show on the BuildKit page, an entry is
 * deleted from the Entries page, and the Summary counts it all. A screenshot of each page is saved under
 * test/.artifacts/. Real-client metrics are checked in the same run.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cache from '@actions/cache';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstalledPeers } from '../peers/install.mjs';
import { buildInFreshDaemon, requirePeers } from '../peers/support.js';
import { launchChromium } from '../support/chromium.js';
import { writeRandomFile, writeTree } from '../support/files.js';
import { startTestMock, type TestMock } from '../support/mock.js';
import { useActionsCacheEnv } from '../support/stdout.js';

interface Event {
  op: string;
  client: string;
  outcome: string;
  key?: string;
  entryId?: number;
  explanation?: { reason: string };
  reason?: string;
}

let peers: Required<Pick<InstalledPeers, 'buildkit' | 'runc'>>;
let mock: TestMock;
let browser: Browser;
let page: Page;
let work: string;
let restoreEnv: (() => void) | undefined;
const pageErrors: string[] = [];

/** Screenshots of the pages (git-ignored). */
const ARTIFACTS_DIR = join(import.meta.dirname, '..', '.artifacts');
const events = (): Event[] => mock.app.mock.traffic.query() as unknown as Event[];
const shot = (name: string) =>
  page.screenshot({ path: join(ARTIFACTS_DIR, `ui-${name}.png`), fullPage: true });

/** `name{labels} value` lines of a Prometheus text exposition. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
const sum = (m: Map<string, number>, prefix: string, label = '') =>
  [...m].filter(([k]) => k.startsWith(prefix) && k.includes(label)).reduce((n, [, v]) => n + v, 0);

beforeAll(async () => {
  peers = await requirePeers(['runc', 'buildkit']);
  mock = await startTestMock();
  work = await mkdtemp(join(tmpdir(), 'gha-ui-'));
  restoreEnv = await useActionsCacheEnv(mock.env, work);
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${mock.url}/_ui/#traffic`);
  await page.locator('#traffic-state', { hasText: 'live' }).waitFor({ timeout: 60_000 });
}, 1_800_000);

afterAll(async () => {
  restoreEnv?.();
  await browser?.close();
  await mock?.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the web UI in Chromium, with real clients', () => {
  it('Traffic: a real @actions/cache save and restore appear live; a version mismatch shows its reason', async () => {
    const dir = join(work, 'deps');
    await writeTree(dir, { 'a.txt': 'alpha', 'sub/b.txt': 'bravo' });
    expect(await cache.saveCache([dir], 'ui-deps-linux-1')).toBeGreaterThan(0);
    expect(await cache.restoreCache([dir], 'ui-deps-linux-1')).toBe('ui-deps-linux-1');
    // Another path list hashes to another version: a miss, although the key exists.
    expect(await cache.restoreCache([join(work, 'elsewhere')], 'ui-deps-linux-1')).toBeUndefined();

    const rows = page.locator('#traffic-rows tr.event');
    await rows.filter({ hasText: 'CreateCacheEntry' }).first().waitFor({ timeout: 30_000 });
    await rows.filter({ hasText: 'PutBlob' }).first().waitFor({ timeout: 30_000 });
    const miss = page.locator(
      '#traffic-rows tr.event[data-outcome="miss"] .reason[data-reason="version-mismatch"]',
    );
    await miss.first().waitFor({ timeout: 30_000 });
    expect(await miss.first().textContent()).toContain('the version hashes the cached paths');
    await shot('traffic');
    // A row expands to its full event.
    const missRow = page.locator('#traffic-rows tr.event[data-outcome="miss"]').first();
    await missRow.click();
    await expect
      .poll(async () => page.locator('#traffic-rows tr.detail:not([hidden]) pre').first().textContent())
      .toContain('"reason": "version-mismatch"');
    await shot('traffic-event');

    const mine = events().filter((e) => e.key === 'ui-deps-linux-1');
    expect(mine.map((e) => [e.op, e.client, e.outcome])).toEqual(
      expect.arrayContaining([
        ['CreateCacheEntry', 'actions-cache', 'created'],
        ['PutBlob', 'azure-sdk', 'ok'],
        ['FinalizeCacheEntryUpload', 'actions-cache', 'committed'],
        ['GetCacheEntryDownloadURL', 'actions-cache', 'hit-exact'],
        // From a host that is not Azure's, @actions/cache downloads with its own http client.
        ['GetBlob', 'actions-cache', 'ok'],
        ['GetCacheEntryDownloadURL', 'actions-cache', 'miss'],
      ]),
    );
  });

  it('BuildKit: a real build exports its cache; the page lists its layers, none missing', async () => {
    const ctx = join(work, 'ctx');
    await writeTree(ctx, {
      Dockerfile: 'FROM scratch\nCOPY a.txt /a.txt\nCOPY big.bin /big.bin\n',
      'a.txt': 'alpha\n',
    });
    await writeRandomFile(join(ctx, 'big.bin'), 2 * 1024 * 1024 + 5);
    const { result } = await buildInFreshDaemon({
      peers,
      dir: join(work, 'build'),
      context: ctx,
      args: ['--export-cache', `type=gha,url_v2=${mock.url}/,token=${mock.token},scope=ui,mode=max`],
    });
    expect(result.code, result.stderr.slice(-4000)).toBe(0);
    await page
      .locator('#traffic-rows tr.event', { hasText: 'buildkit' })
      .first()
      .waitFor({ timeout: 30_000 });

    await page.goto(`${mock.url}/_ui/#buildkit`);
    const card = page.locator('.card.index', { hasText: 'index-ui-1-' });
    await card.waitFor({ timeout: 30_000 });
    await expect.poll(() => card.locator('tr.layer').count()).toBeGreaterThanOrEqual(2);
    expect(await card.locator('tr.layer td.missing').count()).toBe(0);
    expect(await card.textContent()).toContain('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(await card.textContent()).toContain('all layer blobs present');
    await shot('buildkit');
    const created = events().filter((e) => e.client === 'buildkit' && e.op === 'CreateCacheEntry');
    expect(created.some((e) => e.key?.startsWith('index-ui-1-'))).toBe(true);
  });

  it('Entries: lists entries per scope; deleting one makes its next lookup say so', async () => {
    await page.goto(`${mock.url}/_ui/#entries`);
    const entry = events().find((e) => e.op === 'FinalizeCacheEntryUpload' && e.key === 'ui-deps-linux-1')!;
    const row = page.locator(`tr[data-entry="${entry.entryId}"]`);
    await row.waitFor({ timeout: 30_000 });
    expect(await page.locator('h3', { hasText: 'refs/heads/main' }).count()).toBeGreaterThan(0);
    await shot('entries');
    page.once('dialog', (d) => d.accept());
    await row.locator('button.delete').click();
    await row.waitFor({ state: 'detached', timeout: 30_000 });
    expect(await cache.restoreCache([join(work, 'deps')], 'ui-deps-linux-1')).toBeUndefined();
    const last = events()
      .filter((e) => e.op === 'GetCacheEntryDownloadURL')
      .at(-1)!;
    expect(last.explanation?.reason).toBe('deleted-admin');
  });

  it('Summary: hit ratio by client and prefix, miss reasons; /metrics agrees after real-client traffic', async () => {
    await page.goto(`${mock.url}/_ui/#summary`);
    await page.locator('tr.miss-reason', { hasText: 'version-mismatch' }).waitFor({ timeout: 30_000 });
    expect(await page.locator('main').textContent()).toContain('actions-cache');
    await shot('summary');

    const m = parseMetrics(await (await fetch(`${mock.url}/metrics`)).text());
    expect(sum(m, 'gha_cache_requests_total{', 'client="buildkit"')).toBeGreaterThan(0);
    expect(sum(m, 'gha_cache_requests_total{', 'client="actions-cache"')).toBeGreaterThan(0);
    expect(sum(m, 'gha_cache_requests_total{', 'client="azure-sdk"')).toBeGreaterThan(0);
    expect(m.get('gha_cache_lookup_misses_total{reason="version-mismatch"}')).toBeGreaterThanOrEqual(1);
    expect(m.get('gha_cache_lookup_misses_total{reason="deleted-admin"}')).toBe(1);
    expect(m.get('gha_cache_lookup_hits_total{match="exact"}')).toBeGreaterThanOrEqual(1);
    expect(m.get('gha_cache_uploaded_bytes_total')).toBeGreaterThan(2 * 1024 * 1024);
    expect(m.get('gha_cache_downloaded_bytes_total')).toBeGreaterThan(0);
    expect(m.get('gha_cache_stored_entries{repository="octo-org/octo-repo"}')).toBeGreaterThan(2);
    expect(m.get('gha_cache_entries_removed_total{cause="deleted-admin"}')).toBe(1);
    expect(sum(m, 'gha_cache_request_duration_seconds_count{')).toBe(events().length);
    expect(pageErrors).toEqual([]);
  });

  it('with an admin token: the page asks for it once, keeps it for the session, and every call sends it', async () => {
    const guarded = await startTestMock({ adminToken: 'ui-test-admin-token' });
    const tab = await browser.newPage();
    try {
      await tab.goto(`${guarded.url}/_ui/#summary`);
      await tab.locator('#token-dialog[open]').waitFor({ timeout: 30_000 });
      await tab.fill('#token-input', 'ui-test-admin-token');
      await tab.click('#token-submit');
      await tab.locator('.stat .label', { hasText: 'hit ratio' }).waitFor({ timeout: 30_000 });
      // Another page of the same session: no second prompt, the live stream is authorised too.
      await tab.goto(`${guarded.url}/_ui/#traffic`);
      await tab.locator('#traffic-state', { hasText: 'live' }).waitFor({ timeout: 30_000 });
      expect(await tab.locator('#token-dialog[open]').count()).toBe(0);
      expect(await tab.content()).not.toContain('ui-test-admin-token');
    } finally {
      await tab.close();
      await guarded.dispose();
    }
  });
});
