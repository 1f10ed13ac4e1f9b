/**
 * The built CLI beyond loopback: `serve --host 0.0.0.0` without a token generates one, prints it
 * once (on stderr, in no export line) and requires it on the admin API and metrics; a token given
 * through GHA_CACHE_ADMIN_TOKEN is required and never printed; loopback stays zero-config.
 */
import { describe, expect, it } from 'vitest';
import { type MockProcess, spawnMock } from '../support/cli.js';
import { twirp } from '../support/twirp.js';
import { curl } from './curl.js';

const V = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';

async function withMock(args: string[], env: NodeJS.ProcessEnv, fn: (m: MockProcess) => Promise<void>) {
  const mock = await spawnMock(['--storage', 'memory', ...args], 60_000, undefined, env);
  try {
    await fn(mock);
  } finally {
    expect(await mock.stop()).toBe(0);
  }
}

const { GHA_CACHE_ADMIN_TOKEN: _unset, ...baseEnv } = process.env;

describe('gha-cache-mock serve and the admin token', () => {
  it('--host 0.0.0.0 without a token prints a generated one once and refuses admin calls without it', async () => {
    await withMock(['--host', '0.0.0.0'], baseEnv, async (mock) => {
      await expect.poll(() => /admin token (\S+)/.exec(mock.stderr())?.[1]).toBeTruthy();
      const token = /admin token (\S+)/.exec(mock.stderr())![1]!;
      expect(token.length).toBeGreaterThanOrEqual(32);
      expect(mock.stderr().split(token)).toHaveLength(2); // once
      expect(mock.stdout()).not.toContain(token);
      expect(Object.values(mock.env)).not.toContain(token);

      const none = await curl(`${mock.url}/_admin/entries`);
      expect(none.status).toBe(401);
      expect(none.json).toMatchObject({ code: 'unauthenticated', meta: { reason: 'admin_token_required' } });
      const reset = await curl('-X', 'POST', '-H', 'X-Requested-By: curl', `${mock.url}/_admin/reset`);
      expect(reset.status).toBe(401);
      expect((await curl(`${mock.url}/metrics`)).status).toBe(401);

      const auth = ['-H', `Authorization: Bearer ${token}`];
      expect((await curl(...auth, `${mock.url}/_admin/entries`)).json).toEqual({
        totalCount: 0,
        entries: [],
      });
      // Cache clients need only their runtime token.
      const created = await twirp(mock.url, mock.env.ACTIONS_RUNTIME_TOKEN!, 'CreateCacheEntry', {
        key: 'k',
        version: V,
      });
      expect(created.json.ok).toBe(true);
      expect((await curl(...auth, `${mock.url}/_admin/entries`)).json?.totalCount).toBe(1);
    });
  }, 60_000);

  it('a token from GHA_CACHE_ADMIN_TOKEN is required and never printed', async () => {
    const token = 'given-admin-token-8c1f';
    await withMock(['--host', '0.0.0.0'], { ...baseEnv, GHA_CACHE_ADMIN_TOKEN: token }, async (mock) => {
      expect((await curl(`${mock.url}/_admin/entries`)).status).toBe(401);
      expect((await curl('-H', `Authorization: Bearer ${token}`, `${mock.url}/_admin/entries`)).status).toBe(
        200,
      );
      await expect.poll(() => mock.stderr()).toContain('require the given admin token');
      expect(mock.stderr()).not.toContain(token);
      expect(mock.stdout()).not.toContain(token);
    });
  }, 60_000);

  it('on loopback no token is generated and the admin API stays open to local tools', async () => {
    await withMock([], baseEnv, async (mock) => {
      expect((await curl(`${mock.url}/_admin/entries`)).status).toBe(200);
      expect(mock.stderr()).not.toMatch(/admin token/);
    });
  }, 60_000);
});
