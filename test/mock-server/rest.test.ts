/**
 * GitHub's REST cache-management API of the mock, judged by the real `@octokit/rest` over a real socket:
 * list (filter, sort, paginate), delete by key and by id, usage, GitHub's error bodies, and that a
 * deleted entry is gone for the Twirp API too.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type MockServer, startMockServer } from '@gha-cache/mock-server';
import { Octokit } from '@octokit/rest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawnMock } from '../support/cli.js';
import { twirp } from '../support/twirp.js';

const OWNER = 'octo-org';
const REPO = 'octo-repo';
const V = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';

let mock: MockServer;
let octokit: Octokit;

beforeAll(async () => {
  mock = await startMockServer({ storage: 'memory', repositories: { 'octo-org/other': '2' } });
  octokit = new Octokit({ baseUrl: mock.env.GITHUB_API_URL, auth: 'ghp_anything', log: silentLog });
});
afterAll(async () => {
  await mock?.close();
});

const silentLog = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** Seeds `spec` in order, one simulated second apart; returns the entries' ids. */
async function seed(
  spec: { key: string; size: number; scope?: string; repository?: string }[],
): Promise<number[]> {
  const ids: number[] = [];
  for (const s of spec) {
    mock.app.mock.clock.advance(1000);
    const { entry } = await mock.seed({
      key: s.key,
      version: V,
      content: Buffer.alloc(s.size, 7),
      ...(s.scope ? { scope: s.scope } : {}),
      ...(s.repository ? { repository: s.repository } : {}),
    });
    ids.push(entry.id);
  }
  return ids;
}

beforeEach(async () => {
  await mock.app.inject({ method: 'POST', url: '/_admin/reset', headers: { 'x-requested-by': 'test' } });
});

describe('GET /repos/{owner}/{repo}/actions/caches', () => {
  it("lists committed caches in GitHub's shape, most recently accessed first", async () => {
    const [a, b] = await seed([
      { key: 'npm-linux-a', size: 10 },
      { key: 'npm-linux-b', size: 30 },
    ]);
    // A pending reservation is not listed.
    const created = await twirp(mock.url, mock.token, 'CreateCacheEntry', { key: 'pending', version: V });
    expect(created.json.ok).toBe(true);

    const res = await octokit.rest.actions.getActionsCacheList({ owner: OWNER, repo: REPO });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.data.total_count).toBe(2);
    expect(res.data.actions_caches.map((c) => c.id)).toEqual([b, a]);
    const first = res.data.actions_caches[0]!;
    expect(first).toEqual({
      id: b,
      ref: 'refs/heads/main',
      key: 'npm-linux-b',
      version: V,
      last_accessed_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      size_in_bytes: 30,
    });
  });

  it('filters by key prefix and by ref, and sorts by each field in both directions', async () => {
    const [a, b, c, d] = await seed([
      { key: 'npm-b', size: 300 },
      { key: 'npm-a', size: 100, scope: 'refs/pull/7/merge' },
      { key: 'pip-a', size: 200 },
      { key: 'npm-c', size: 50 },
    ]);
    const list = async (params: Record<string, string>) =>
      (await octokit.rest.actions.getActionsCacheList({ owner: OWNER, repo: REPO, ...params })).data;

    expect((await list({ key: 'npm-' })).actions_caches.map((x) => x.key)).toEqual([
      'npm-c',
      'npm-a',
      'npm-b',
    ]);
    expect((await list({ ref: 'refs/pull/7/merge' })).actions_caches.map((x) => x.id)).toEqual([b]);
    expect((await list({ key: 'npm-', ref: 'refs/heads/main' })).total_count).toBe(2);
    expect((await list({ key: 'nothing' })).total_count).toBe(0);

    const ids = async (sort: string, direction: string) =>
      (await list({ sort, direction })).actions_caches.map((x) => x.id);
    expect(await ids('size_in_bytes', 'desc')).toEqual([a, c, b, d]);
    expect(await ids('size_in_bytes', 'asc')).toEqual([d, b, c, a]);
    expect(await ids('created_at', 'asc')).toEqual([a, b, c, d]);
    expect(await ids('created_at', 'desc')).toEqual([d, c, b, a]);

    // A hit touches last_accessed_at: the oldest entry becomes the most recently used.
    mock.app.mock.clock.advance(1000);
    const hit = await twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', { key: 'npm-b', version: V });
    expect(hit.json.ok).toBe(true);
    expect(await ids('last_accessed_at', 'desc')).toEqual([a, d, c, b]);
  });

  it('paginates with a Link header that octokit.paginate follows', async () => {
    const ids = await seed(Array.from({ length: 7 }, (_, i) => ({ key: `k-${i}`, size: i + 1 })));
    const page2 = await octokit.rest.actions.getActionsCacheList({
      owner: OWNER,
      repo: REPO,
      per_page: 3,
      page: 2,
      sort: 'created_at',
      direction: 'asc',
    });
    expect(page2.data.total_count).toBe(7);
    expect(page2.data.actions_caches.map((c) => c.id)).toEqual(ids.slice(3, 6));
    const link = page2.headers.link ?? '';
    expect(link).toMatch(/<[^>]*[?&]page=1[^>]*>; rel="prev"/);
    expect(link).toMatch(/<[^>]*[?&]page=3[^>]*>; rel="next"/);
    expect(link).toMatch(/<[^>]*[?&]page=3[^>]*>; rel="last"/);
    expect(link).toMatch(/<[^>]*[?&]page=1[^>]*>; rel="first"/);

    const all = await octokit.paginate(octokit.rest.actions.getActionsCacheList, {
      owner: OWNER,
      repo: REPO,
      per_page: 3,
      sort: 'created_at',
      direction: 'asc',
    });
    expect(all.map((c) => c.id)).toEqual(ids);

    // per_page is capped at 100, as GitHub's.
    const capped = await octokit.request('GET /repos/{owner}/{repo}/actions/caches', {
      owner: OWNER,
      repo: REPO,
      per_page: 500,
    });
    expect(capped.data.actions_caches).toHaveLength(7);
    expect(capped.headers.link).toBeUndefined();
  });

  it('keeps repositories apart and matches owner/repo case-insensitively', async () => {
    await seed([
      { key: 'one', size: 1 },
      { key: 'two', size: 2, repository: 'octo-org/other' },
    ]);
    const other = await octokit.rest.actions.getActionsCacheList({ owner: 'Octo-Org', repo: 'OTHER' });
    expect(other.data.actions_caches.map((c) => c.key)).toEqual(['two']);
  });
});

describe('DELETE', () => {
  it('by key deletes every entry with exactly that key (all refs, or one ref) and answers the list', async () => {
    const [main, pr] = await seed([
      { key: 'dup', size: 1 },
      { key: 'dup', size: 2, scope: 'refs/pull/1/merge' },
      { key: 'dup-longer', size: 3 },
    ]);
    const onlyPr = await octokit.rest.actions.deleteActionsCacheByKey({
      owner: OWNER,
      repo: REPO,
      key: 'dup',
      ref: 'refs/pull/1/merge',
    });
    expect(onlyPr.status).toBe(200);
    expect(onlyPr.data.total_count).toBe(1);
    expect(onlyPr.data.actions_caches.map((c) => c.id)).toEqual([pr]);

    const rest = await octokit.rest.actions.deleteActionsCacheByKey({ owner: OWNER, repo: REPO, key: 'dup' });
    expect(rest.data.actions_caches.map((c) => [c.id, c.key, c.ref])).toEqual([
      [main, 'dup', 'refs/heads/main'],
    ]);

    const left = await octokit.rest.actions.getActionsCacheList({ owner: OWNER, repo: REPO });
    expect(left.data.actions_caches.map((c) => c.key)).toEqual(['dup-longer']);

    const none = await octokit.rest.actions
      .deleteActionsCacheByKey({ owner: OWNER, repo: REPO, key: 'dup' })
      .catch((e: { status: number; response: { data: unknown } }) => e);
    expect((none as { status: number }).status).toBe(404);
  });

  it('by id answers 204, then 404; the entry misses in a Twirp Get afterwards', async () => {
    const [id] = await seed([{ key: 'gone', size: 5 }]);
    const before = await twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', { key: 'gone', version: V });
    expect(before.json).toMatchObject({ ok: true, matched_key: 'gone' });

    const res = await octokit.rest.actions.deleteActionsCacheById({
      owner: OWNER,
      repo: REPO,
      cache_id: id!,
    });
    expect(res.status).toBe(204);
    const after = await twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', { key: 'gone', version: V });
    expect(after.json.ok).toBe(false);

    const again = await octokit.rest.actions
      .deleteActionsCacheById({ owner: OWNER, repo: REPO, cache_id: id! })
      .catch((e: { status: number }) => e);
    expect((again as { status: number }).status).toBe(404);
  });
});

describe('GET /repos/{owner}/{repo}/actions/cache/usage', () => {
  it('sums the committed caches', async () => {
    await seed([
      { key: 'a', size: 100 },
      { key: 'b', size: 23 },
      { key: 'c', size: 1000, repository: 'octo-org/other' },
    ]);
    const res = await octokit.rest.actions.getActionsCacheUsage({ owner: OWNER, repo: REPO });
    expect(res.data).toEqual({
      full_name: 'octo-org/octo-repo',
      active_caches_size_in_bytes: 123,
      active_caches_count: 2,
    });
  });
});

describe('errors', () => {
  it("answers GitHub's error bodies: 404 unknown repository, 401 without credentials, 422 bad sort", async () => {
    const unknown = (await octokit.rest.actions
      .getActionsCacheList({ owner: 'nobody', repo: 'nothing' })
      .catch((e: unknown) => e)) as { status: number; response: { data: Record<string, unknown> } };
    expect(unknown.status).toBe(404);
    expect(unknown.response.data).toEqual({
      message: 'Not Found',
      documentation_url: expect.stringMatching(/^https:\/\/docs\.github\.com\/rest\/actions\/cache#/),
      status: '404',
    });

    const anonymous = new Octokit({ baseUrl: mock.env.GITHUB_API_URL, log: silentLog });
    const noAuth = (await anonymous.rest.actions
      .getActionsCacheUsage({ owner: OWNER, repo: REPO })
      .catch((e: unknown) => e)) as { status: number; response: { data: Record<string, unknown> } };
    expect(noAuth.status).toBe(401);
    expect(noAuth.response.data.message).toBe('Requires authentication');

    const badSort = await fetch(new URL(`/repos/${OWNER}/${REPO}/actions/caches?sort=name`, mock.url), {
      headers: { authorization: 'Bearer x' },
    });
    expect(badSort.status).toBe(422);
    expect(await badSort.json()).toMatchObject({ message: 'Validation Failed', status: '422' });

    const noRoute = await fetch(new URL(`/repos/${OWNER}/${REPO}/actions/runs`, mock.url), {
      headers: { authorization: 'Bearer x' },
    });
    expect(noRoute.status).toBe(404);
    expect(await noRoute.json()).toMatchObject({ message: 'Not Found', status: '404' });
  });

  it('accepts only `restToken` when one is configured', async () => {
    const strict = await startMockServer({ storage: 'memory', restToken: 'secret' });
    try {
      const ok = new Octokit({ baseUrl: strict.env.GITHUB_API_URL, auth: 'secret', log: silentLog });
      expect((await ok.rest.actions.getActionsCacheUsage({ owner: OWNER, repo: REPO })).status).toBe(200);
      const bad = new Octokit({ baseUrl: strict.env.GITHUB_API_URL, auth: 'other', log: silentLog });
      const err = (await bad.rest.actions
        .getActionsCacheUsage({ owner: OWNER, repo: REPO })
        .catch((e: unknown) => e)) as { status: number; response: { data: Record<string, unknown> } };
      expect(err.status).toBe(401);
      expect(err.response.data.message).toBe('Bad credentials');
    } finally {
      await strict.close();
    }
  });
});

describe('gha-cache-mock serve --repository --seed --rest-token', () => {
  it('names the repositories, preloads entries from a manifest, and exports GITHUB_API_URL/GITHUB_REPOSITORY', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gha-seed-'));
    try {
      await writeFile(join(dir, 'a.bin'), Buffer.alloc(1234, 1));
      await writeFile(join(dir, 'b.bin'), 'lib bytes');
      await writeFile(
        join(dir, 'manifest.json'),
        JSON.stringify({
          entries: [
            { key: 'npm-linux-abc', version: V, file: 'a.bin' },
            { key: 'lib-1', version: V, file: 'b.bin', scope: 'refs/heads/dev', repository: 'acme/lib' },
          ],
        }),
      );
      const proc = await spawnMock([
        '--storage',
        'memory',
        '--repository',
        'acme/app',
        '--repository',
        'acme/lib=42',
        '--rest-token',
        'sekrit',
        '--seed',
        dir,
      ]);
      try {
        expect(proc.env.GITHUB_REPOSITORY).toBe('acme/app');
        expect(proc.env.GITHUB_API_URL).toBe(proc.url);
        expect(proc.stderr()).toMatch(/seeded 2 entries \(0 already present\)/);
        const client = new Octokit({ baseUrl: proc.url, auth: 'sekrit', log: silentLog });
        const app = await client.rest.actions.getActionsCacheList({ owner: 'acme', repo: 'app' });
        expect(app.data.actions_caches.map((c) => [c.key, c.size_in_bytes])).toEqual([
          ['npm-linux-abc', 1234],
        ]);
        const lib = await client.rest.actions.getActionsCacheList({ owner: 'acme', repo: 'lib' });
        expect(lib.data.actions_caches).toMatchObject([
          { key: 'lib-1', ref: 'refs/heads/dev', size_in_bytes: 9 },
        ]);
        // The seeded entry is a hit for a real lookup with the printed token.
        const hit = await twirp(proc.url, proc.env.ACTIONS_RUNTIME_TOKEN!, 'GetCacheEntryDownloadURL', {
          key: 'npm-linux-',
          version: V,
        });
        expect(hit.json).toMatchObject({ ok: true, matched_key: 'npm-linux-abc' });
        const denied = await new Octokit({ baseUrl: proc.url, auth: 'other', log: silentLog }).rest.actions
          .getActionsCacheUsage({ owner: 'acme', repo: 'app' })
          .catch((e: { status: number }) => e);
        expect((denied as { status: number }).status).toBe(401);
      } finally {
        await proc.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
