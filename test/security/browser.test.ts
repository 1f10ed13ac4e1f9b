/**
 * Real Chromium against the mock: a page on another site fires what a hostile page can send without a
 * preflight (a `no-cors` fetch, a beacon, a form post) and a name rebound to the mock reads and resets
 * from "its own" origin; the mock receives each request, refuses it and keeps its entries. The same
 * calls from the mock's own origin, as the UI makes them, work, with the admin token when one is set.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../support/chromium.js';
import { startTestMock, type TestMock } from '../support/mock.js';

const V = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';
const EVIL = 'evil.test';
const REBIND = 'rebind.test';
/**
 * The hostile page: everything a site can fire at `?target=` without a preflight, then
 * `window.attackDone`. What each fetch saw is in `window.sent` (refusals stay hidden from it).
 */
const ATTACK_PAGE = `<!doctype html><title>evil</title><body><script>
const target = new URLSearchParams(location.search).get('target');
window.sent = [];
async function tryFetch(name, path, init) {
  try {
    const res = await fetch(target + path, { mode: 'no-cors', ...init });
    sent.push(name + ':' + res.type);
  } catch (err) {
    sent.push(name + ':error:' + err);
  }
}
(async () => {
  await tryFetch('reset', '/_admin/reset', { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } });
  await tryFetch('reset-empty', '/_admin/reset', { method: 'POST' });
  // In no-cors mode the browser drops the JSON content type and sends text/plain.
  await tryFetch('advance', '/_admin/clock/advance', {
    method: 'POST', body: JSON.stringify({ by: '8d' }), headers: { 'content-type': 'application/json' },
  });
  await tryFetch('fault', '/_admin/faults', {
    method: 'POST', body: JSON.stringify({ op: 'GetBlob', action: { type: 'status', status: 500 } }),
  });
  await tryFetch('entries', '/_admin/entries', {});
  sent.push('beacon:' + navigator.sendBeacon(target + '/_admin/reset', 'x'));
  const frame = document.createElement('iframe');
  frame.name = 'sink';
  document.body.append(frame);
  const form = document.createElement('form');
  form.method = 'POST';
  form.action = target + '/_admin/reset';
  form.target = 'sink';
  form.enctype = 'text/plain';
  form.innerHTML = '<input name="x" value="y">';
  document.body.append(form);
  const loaded = new Promise((resolve) => frame.addEventListener('load', resolve, { once: true }));
  form.submit();
  await Promise.race([loaded, new Promise((resolve) => setTimeout(resolve, 10000))]);
  sent.push('form');
  window.attackDone = true;
})();
</script></body>`;
let browser: Browser;
let attacker: Server;
let attackerPort: number;

beforeAll(async () => {
  browser = await launchChromium([EVIL, REBIND]);
  attacker = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end(ATTACK_PAGE);
  });
  attacker.listen(0, '127.0.0.1');
  await once(attacker, 'listening');
  attackerPort = (attacker.address() as AddressInfo).port;
}, 300_000);
afterAll(async () => {
  await browser?.close();
  attacker?.close();
});

async function seeded(options: Parameters<typeof startTestMock>[0] = {}): Promise<TestMock> {
  const mock = await startTestMock(options);
  await mock.seed({ key: 'keep-1', version: V, content: 'one' });
  await mock.seed({ key: 'keep-2', version: V, content: 'two' });
  return mock;
}

const keys = async (mock: TestMock) => (await mock.storage.metadata.listEntries()).map((e) => e.key).sort();

/** Admin request lines the mock logged so far. */
const adminLines = (mock: TestMock) => mock.requests().filter((l) => l.url?.startsWith('/_admin'));

async function openPage(url: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(url);
  return page;
}

/** What the UI sends: same-origin, JSON, `X-Requested-By`, the bearer token when it has one. */
function uiFetch(page: Page, path: string, init: { method?: string; body?: unknown; token?: string } = {}) {
  return page.evaluate(
    async ({ path, init }) => {
      const res = await fetch(path, {
        method: init.method ?? 'GET',
        headers: {
          ...(init.method && init.method !== 'GET'
            ? { 'content-type': 'application/json', 'x-requested-by': 'gha-cache-ui' }
            : {}),
          ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      });
      return { status: res.status, body: await res.text() };
    },
    { path, init },
  );
}

describe('Chromium', () => {
  it('a page on another site cannot reset, re-time or fault-inject through no-cors fetch, beacon or form', async () => {
    const mock = await seeded();
    const page = await openPage(`http://${EVIL}:${attackerPort}/?target=${encodeURIComponent(mock.url)}`);
    try {
      await page.waitForFunction('window.attackDone === true', undefined, { timeout: 60_000 });
      const outcome = (await page.evaluate('window.sent')) as string[];
      // The answers are refusals the browser hides from the page (opaque, or blocked by CORP).
      expect(outcome).toHaveLength(7);

      // The mock saw every one of them (5 fetches, the beacon, the form) and refused each.
      await expect.poll(() => adminLines(mock).length, { timeout: 30_000 }).toBeGreaterThanOrEqual(7);
      const lines = adminLines(mock);
      expect(lines.map((l) => l.status)).toEqual(lines.map(() => 403));
      expect(new Set(lines.map((l) => l.refused))).toEqual(new Set(['cross_site_request']));
      expect(
        lines.filter((l) => l.method === 'POST' && l.url === '/_admin/reset').length,
      ).toBeGreaterThanOrEqual(4);
      expect(await keys(mock)).toEqual(['keep-1', 'keep-2']);
      expect(mock.app.mock.clock.offsetMs).toBe(0);
      expect(mock.faults.list()).toEqual([]);
    } finally {
      await page.close();
      await mock.dispose();
    }
  }, 120_000);

  it('a name rebound to the mock cannot read or reset it, even "same-origin"', async () => {
    const mock = await seeded();
    const page = await openPage(`http://${REBIND}:${new URL(mock.url).port}/healthz`);
    try {
      const read = await uiFetch(page, '/_admin/entries');
      expect(read.status).toBe(421);
      expect(read.body).not.toContain('keep-1');
      expect(JSON.parse(read.body)).toMatchObject({ meta: { reason: 'host_not_allowed' } });
      expect((await uiFetch(page, '/_admin/reset', { method: 'POST', body: {} })).status).toBe(421);
      expect(await keys(mock)).toEqual(['keep-1', 'keep-2']);
    } finally {
      await page.close();
      await mock.dispose();
    }
  }, 120_000);

  it("the mock's own origin reads and changes state as the UI does", async () => {
    const mock = await seeded();
    const page = await openPage(`${mock.url}/healthz`);
    try {
      const read = await uiFetch(page, '/_admin/entries');
      expect(read.status).toBe(200);
      expect(JSON.parse(read.body).totalCount).toBe(2);
      const advanced = await uiFetch(page, '/_admin/clock/advance', { method: 'POST', body: { ms: 1000 } });
      expect(advanced.status).toBe(200);
      expect((await uiFetch(page, '/_admin/faults', { method: 'DELETE' })).status).toBe(204);
      const id = (await mock.storage.metadata.listEntries())[0]!.id;
      expect((await uiFetch(page, `/_admin/entries/${id}`, { method: 'DELETE' })).status).toBe(204);
      expect((await uiFetch(page, '/_admin/reset', { method: 'POST' })).status).toBe(200);
      expect(await keys(mock)).toEqual([]);
    } finally {
      await page.close();
      await mock.dispose();
    }
  }, 120_000);

  it('with an admin token the own origin needs it: 401 without, 200 with', async () => {
    const token = 'browser-admin-token-91ab';
    const mock = await seeded({ adminToken: token });
    const page = await openPage(`${mock.url}/healthz`);
    try {
      const refused = await uiFetch(page, '/_admin/entries');
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.body)).toMatchObject({ meta: { reason: 'admin_token_required' } });
      expect((await uiFetch(page, '/_admin/reset', { method: 'POST', body: {} })).status).toBe(401);
      expect(await keys(mock)).toEqual(['keep-1', 'keep-2']);
      expect(JSON.parse((await uiFetch(page, '/_admin/entries', { token })).body).totalCount).toBe(2);
      expect((await uiFetch(page, '/_admin/reset', { method: 'POST', body: {}, token })).status).toBe(200);
      expect(await keys(mock)).toEqual([]);
    } finally {
      await page.close();
      await mock.dispose();
    }
  }, 120_000);
});
