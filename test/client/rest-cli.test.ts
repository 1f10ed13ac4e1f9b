/**
 * `gha-cache list` / `gha-cache delete` as real processes, and the library's REST client, against the
 * mock's REST API over real sockets, configured only by the variables `gha-cache-mock serve` exports.
 */
import { createRestCacheClient, NotFoundError, type RestCacheClient } from '@gha-cache/client';
import { type MockServer, startMockServer } from '@gha-cache/mock-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { twirp } from '../support/twirp.js';
import { runGhaCache } from './support/gha-cache-cli.js';

const V = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';

let mock: MockServer;
let env: Record<string, string>;
let rest: RestCacheClient;

beforeAll(async () => {
  mock = await startMockServer({ storage: 'memory', repositories: { 'acme/app': '42' } });
  // What `eval "$(gha-cache-mock serve)"` leaves in the shell.
  env = { ...mock.env };
  rest = createRestCacheClient({
    repository: mock.env.GITHUB_REPOSITORY,
    apiUrl: mock.env.GITHUB_API_URL,
    token: 'any',
  });
});
afterAll(async () => {
  await rest?.close();
  await mock?.close();
});

async function seed(key: string, size: number, extra: { scope?: string; repository?: string } = {}) {
  mock.app.mock.clock.advance(1000);
  return (await mock.seed({ key, version: V, content: Buffer.alloc(size, 1), ...extra })).entry;
}

beforeEach(async () => {
  await mock.app.inject({ method: 'POST', url: '/_admin/reset', headers: { 'x-requested-by': 'test' } });
});

describe('gha-cache list', () => {
  it('prints a table of the caches, most recently used first, with a summary line', async () => {
    await seed('npm-linux-a', 1000);
    await seed('npm-linux-b', 2048, { scope: 'refs/pull/7/merge' });
    const res = await runGhaCache(['list'], { env });
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.toString().trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+KEY\s+REF\s+SIZE\s+CREATED\s+LAST ACCESSED$/);
    expect(lines[1]).toMatch(
      /^\d+\s+npm-linux-b\s+refs\/pull\/7\/merge\s+2\.0 KiB\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/,
    );
    expect(lines[2]).toMatch(/^\d+\s+npm-linux-a\s+refs\/heads\/main\s+1000 B\s/);
    expect(lines[3]).toBe('2 caches, 3.0 KiB');
  });

  it('--json: filters, sorts, limits (following Link pages)', async () => {
    for (let i = 0; i < 5; i++) await seed(`k-${i}`, 10 * (i + 1));
    await seed('other', 1);
    const json = async (args: string[]) => {
      const res = await runGhaCache(['list', '--json', ...args], { env });
      expect(res.code, res.stderr).toBe(0);
      return res.json() as { command: string; repository: string; count: number; caches: { key: string }[] };
    };
    const all = await json(['--key', 'k-', '--sort', 'size_in_bytes', '--direction', 'asc']);
    expect(all).toMatchObject({ command: 'list', repository: 'octo-org/octo-repo', count: 5 });
    expect(all.caches.map((c) => c.key)).toEqual(['k-0', 'k-1', 'k-2', 'k-3', 'k-4']);
    expect(all.caches[0]).toEqual({
      id: expect.any(Number),
      ref: 'refs/heads/main',
      key: 'k-0',
      version: V,
      lastAccessedAt: expect.any(String),
      createdAt: expect.any(String),
      sizeInBytes: 10,
    });
    const limited = await json(['--limit', '2', '--sort', 'created_at', '--direction', 'asc']);
    expect(limited.caches.map((c) => c.key)).toEqual(['k-0', 'k-1']);
    expect((await json(['--ref', 'refs/heads/nope'])).count).toBe(0);
  });

  it('--repo and --token override the environment; an unknown repository is a service error', async () => {
    await seed('mine', 3, { repository: 'acme/app' });
    const other = await runGhaCache(['list', '--json', '--repo', 'acme/app', '--token', 't'], { env });
    expect(other.json()).toMatchObject({ repository: 'acme/app', count: 1, caches: [{ key: 'mine' }] });

    const unknown = await runGhaCache(['list', '--json', '--repo', 'nobody/nothing'], { env });
    expect(unknown.code).toBe(3);
    expect(unknown.json()).toMatchObject({
      command: 'list',
      error: { code: 'ERR_NOT_FOUND', httpStatus: 404, serviceMessage: 'Not Found' },
    });
    expect(unknown.stderr).toMatch(/ListCaches: HTTP 404: Not Found/);
  });

  it('usage errors: no repository (exit 2), bad --sort (exit 2)', async () => {
    const { GITHUB_REPOSITORY: _, ...noRepo } = env;
    const res = await runGhaCache(['list'], { env: noRepo });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/No repository: pass --repo owner\/name or set GITHUB_REPOSITORY/);
    expect((await runGhaCache(['list', '--sort', 'name'], { env })).code).toBe(2);
  });
});

describe('gha-cache delete', () => {
  it('--key deletes every cache with that key; --ref narrows it; the entry then misses in Twirp', async () => {
    await seed('dup', 1);
    await seed('dup', 2, { scope: 'refs/pull/1/merge' });
    await seed('keep', 3);
    const pr = await runGhaCache(['delete', '--key', 'dup', '--ref', 'refs/pull/1/merge', '--json'], { env });
    expect(pr.code, pr.stderr).toBe(0);
    expect(pr.json()).toMatchObject({
      command: 'delete',
      deletedCount: 1,
      deleted: [{ key: 'dup', ref: 'refs/pull/1/merge' }],
    });

    const rest = await runGhaCache(['delete', '--key', 'dup'], { env });
    expect(rest.code, rest.stderr).toBe(0);
    expect(rest.stdout.toString()).toBe('Deleted 1 cache with key dup\n');
    const get = await twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', { key: 'dup', version: V });
    expect(get.json.ok).toBe(false);

    const again = await runGhaCache(['delete', '--key', 'dup', '--json'], { env });
    expect(again.code).toBe(1);
    expect(again.json()).toMatchObject({ deletedCount: 0, notFound: true });
  });

  it('by id: exit 0, then exit 1; bad arguments are usage errors', async () => {
    const entry = await seed('by-id', 4);
    const res = await runGhaCache(['delete', String(entry.id)], { env });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.toString()).toBe(`Deleted cache ${entry.id}\n`);
    expect(await mock.storage.metadata.getEntry(entry.id)).toBeUndefined();
    expect((await runGhaCache(['delete', String(entry.id)], { env })).code).toBe(1);

    for (const args of [
      ['delete'],
      ['delete', '12', '--key', 'k'],
      ['delete', 'abc'],
      ['delete', '1', '--ref', 'r'],
    ]) {
      const bad = await runGhaCache(args, { env });
      expect(bad.code, args.join(' ')).toBe(2);
    }
  });
});

describe('library: createRestCacheClient', () => {
  it('lists one page with nextPage, all pages, usage; deletes; 404 is a NotFoundError', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await seed(`p-${i}`, 100)).id);
    const page = await rest.listCaches({ perPage: 2, sort: 'created_at', direction: 'asc' });
    expect(page).toMatchObject({ totalCount: 5, nextPage: 2 });
    expect(page.caches.map((c) => c.id)).toEqual(ids.slice(0, 2));
    const all: number[] = [];
    for await (const c of rest.listAllCaches({ perPage: 2, sort: 'created_at', direction: 'asc' }))
      all.push(c.id);
    expect(all).toEqual(ids);

    expect(await rest.getCacheUsage()).toEqual({
      fullName: 'octo-org/octo-repo',
      activeCachesSizeInBytes: 500,
      activeCachesCount: 5,
    });
    expect((await rest.deleteCaches({ key: 'p-0' })).map((c) => c.id)).toEqual([ids[0]]);
    await rest.deleteCacheById(ids[1]!);
    expect((await rest.getCacheUsage()).activeCachesCount).toBe(3);
    const err = await rest.deleteCacheById(ids[1]!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).toMatchObject({ code: 'ERR_NOT_FOUND', httpStatus: 404, operation: 'DeleteCacheById' });
  });
});
