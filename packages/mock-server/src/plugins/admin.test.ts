import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../app.js';
import { createManualClock } from '../clock.js';
import { createMemoryStorage } from '../storage/memory/index.js';
import { SERVICE_PATH } from './twirp.js';

const V = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';
const DAY = 86_400_000;
let app: FastifyInstance;

beforeEach(async () => {
  app = await buildApp({
    storage: createMemoryStorage(),
    clock: createManualClock(Date.UTC(2026, 10, 26, 12)),
    repositories: { 'octo-org/other': '2' },
  });
});
afterEach(async () => {
  await app.close();
});

const json = (res: { body: string }) => JSON.parse(res.body) as Record<string, unknown>;

function seed(query: Record<string, string>, content: string | Buffer = 'hello') {
  return app.inject({
    method: 'POST',
    url: `/_admin/entries?${new URLSearchParams({ version: V, ...query })}`,
    headers: { 'content-type': 'application/octet-stream' },
    payload: content,
  });
}

function lookup(key: string, repositoryId?: string) {
  const token = app.mock.tokens.mint(repositoryId ? { repositoryId } : {});
  return app.inject({
    method: 'POST',
    url: `${SERVICE_PATH}GetCacheEntryDownloadURL`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    payload: JSON.stringify({ key, version: V }),
  });
}

describe('entries', () => {
  it('seeds a committed entry from the request body that a Twirp lookup then finds', async () => {
    const res = await seed({ key: 'npm-linux-abc', scope: 'refs/heads/main' }, Buffer.alloc(1000, 1));
    expect(res.statusCode).toBe(201);
    expect(json(res)).toMatchObject({
      repositoryId: '1',
      repository: 'octo-org/octo-repo',
      scope: 'refs/heads/main',
      key: 'npm-linux-abc',
      version: V,
      state: 'committed',
      sizeBytes: 1000,
      createdAt: '2026-11-26T12:00:00.000Z',
    });
    expect(json(await lookup('npm-linux-'))).toMatchObject({ ok: true, matched_key: 'npm-linux-abc' });
  });

  it('seeds into another repository by name or id; unknown names are 404', async () => {
    expect((await seed({ key: 'a', repository: 'Octo-Org/Other' })).statusCode).toBe(201);
    expect((await seed({ key: 'b', repositoryId: '2' })).statusCode).toBe(201);
    expect(json(await lookup('a'))).toMatchObject({ ok: false });
    expect(json(await lookup('b', '2'))).toMatchObject({ ok: true });
    const unknown = await seed({ key: 'c', repository: 'no/such' });
    expect(unknown.statusCode).toBe(404);
    expect(json(unknown)).toEqual({ code: 'not_found', msg: 'unknown repository "no/such"' });
  });

  it('answers 409 for an existing identity unless onConflict is skip or replace', async () => {
    const first = json(await seed({ key: 'k' }, 'one'));
    const again = await seed({ key: 'k' }, 'two');
    expect(again.statusCode).toBe(409);
    expect(json(again)).toMatchObject({ code: 'already_exists' });
    const skipped = await seed({ key: 'k', onConflict: 'skip' }, 'two');
    expect(skipped.statusCode).toBe(200);
    expect(json(skipped).id).toBe(first.id);
    const replaced = await seed({ key: 'k', onConflict: 'replace' }, 'three!');
    expect(replaced.statusCode).toBe(201);
    expect(json(replaced)).toMatchObject({ sizeBytes: 6 });
    expect(json(replaced).id).not.toBe(first.id);
  });

  it('rejects bad seeds with invalid_argument', async () => {
    for (const [query, argument] of [
      [{ key: '' }, 'key'],
      [{ key: 'a,b' }, 'key'],
      [{ key: 'k', version: '' }, 'version'],
      [{ key: 'k', onConflict: 'merge' }, 'onConflict'],
    ] as const) {
      const res = await seed(query);
      expect(res.statusCode, JSON.stringify(query)).toBe(400);
      expect(json(res)).toMatchObject({ code: 'invalid_argument', meta: { argument } });
    }
  });

  it('lists with filters, inspects one (with its blob) and deletes one', async () => {
    await seed({ key: 'npm-a' });
    await seed({ key: 'npm-b', scope: 'refs/pull/1/merge' });
    await seed({ key: 'pip-a', repository: 'octo-org/other' });
    const keys = async (query: string) =>
      (json(await app.inject({ url: `/_admin/entries${query}` })).entries as { key: string }[]).map(
        (e) => e.key,
      );
    expect(await keys('')).toEqual(['npm-a', 'npm-b', 'pip-a']);
    expect(await keys('?keyPrefix=npm-')).toEqual(['npm-a', 'npm-b']);
    expect(await keys('?scope=refs/pull/1/merge')).toEqual(['npm-b']);
    expect(await keys('?repository=octo-org/other')).toEqual(['pip-a']);
    expect(await keys('?repositoryId=1&key=npm-a&state=committed')).toEqual(['npm-a']);
    expect((await app.inject({ url: '/_admin/entries?state=gone' })).statusCode).toBe(400);

    const [entry] = await app.mock.storage.metadata.listEntries();
    const one = await app.inject({ url: `/_admin/entries/${entry!.id}` });
    expect(json(one)).toMatchObject({ key: 'npm-a', blob: { sizeBytes: 5, etag: expect.any(String) } });

    expect((await app.inject({ method: 'DELETE', url: `/_admin/entries/${entry!.id}` })).statusCode).toBe(
      204,
    );
    const gone = await app.inject({ url: `/_admin/entries/${entry!.id}` });
    expect(gone.statusCode).toBe(404);
    expect(json(gone)).toEqual({ code: 'not_found', msg: `no entry with id ${entry!.id}` });
    expect((await app.inject({ method: 'DELETE', url: `/_admin/entries/${entry!.id}` })).statusCode).toBe(
      404,
    );
    expect((await app.inject({ url: '/_admin/entries/abc' })).statusCode).toBe(404);
  });

  it('resets: every entry of every repository is dropped', async () => {
    await seed({ key: 'a' });
    await seed({ key: 'b', repositoryId: '2' });
    const res = await app.inject({
      method: 'POST',
      url: '/_admin/reset',
      headers: { 'x-requested-by': 'test' },
    });
    expect(json(res)).toEqual({ deletedEntries: 2, removedFaults: 0 });
    expect(await app.mock.storage.metadata.listEntries()).toEqual([]);
    expect(json(await lookup('a'))).toMatchObject({ ok: false });
  });
});

describe('repositories and usage', () => {
  it('lists and registers repositories; usage sums committed entries per repository', async () => {
    const listed = json(await app.inject({ url: '/_admin/repositories' }));
    expect(listed.repositories).toEqual([
      { fullName: 'octo-org/octo-repo', id: '1' },
      { fullName: 'octo-org/other', id: '2' },
    ]);
    const put = await app.inject({
      method: 'PUT',
      url: '/_admin/repositories/acme/app',
      payload: { id: '42' },
    });
    expect(json(put)).toEqual({ fullName: 'acme/app', id: '42' });
    expect(app.mock.repositories.byName('ACME/app')?.id).toBe('42');
    const bad = await app.inject({ method: 'PUT', url: '/_admin/repositories/acme/x', payload: { id: 'x' } });
    expect(bad.statusCode).toBe(400);

    await seed({ key: 'a' }, 'abc');
    await seed({ key: 'b', repository: 'acme/app' }, 'abcdef');
    const usage = json(await app.inject({ url: '/_admin/usage' }));
    expect(usage.repositories).toEqual(
      expect.arrayContaining([
        { repositoryId: '1', repository: 'octo-org/octo-repo', sizeBytes: 3, count: 1 },
        { repositoryId: '42', repository: 'acme/app', sizeBytes: 6, count: 1 },
      ]),
    );
  });
});

describe('clock and policies', () => {
  it('advances simulated time by ms or by a duration; 8 days later an idle entry is gone', async () => {
    expect(json(await app.inject({ url: '/_admin/clock' }))).toEqual({
      now: '2026-11-26T12:00:00.000Z',
      nowMs: Date.UTC(2026, 10, 26, 12),
      offsetMs: 0,
    });
    await seed({ key: 'old' });
    const byMs = await app.inject({ method: 'POST', url: '/_admin/clock/advance', payload: { ms: 1000 } });
    expect(json(byMs)).toMatchObject({ now: '2026-11-26T12:00:01.000Z', offsetMs: 1000 });
    const byDuration = await app.inject({
      method: 'POST',
      url: '/_admin/clock/advance',
      payload: { by: '8d' },
    });
    expect(json(byDuration)).toMatchObject({ offsetMs: 1000 + 8 * DAY });
    expect(await app.mock.storage.metadata.listEntries()).toEqual([]);

    for (const payload of [{}, { by: 'soon' }, { ms: -5 }]) {
      const bad = await app.inject({ method: 'POST', url: '/_admin/clock/advance', payload });
      expect(bad.statusCode, JSON.stringify(payload)).toBe(400);
      expect(json(bad)).toMatchObject({ code: 'invalid_argument' });
    }
  });

  it('reads and patches the policies; bad values are 400 and change nothing', async () => {
    const before = json(await app.inject({ url: '/_admin/policies' }));
    expect(before).toEqual({
      quotaBytes: 10 * 1000 ** 3,
      idleTtlMs: 7 * DAY,
      rateLimitPerMinute: 200,
      quotaExhausted: false,
      visibilityDelayMs: 0,
    });
    const patched = await app.inject({
      method: 'PATCH',
      url: '/_admin/policies',
      payload: { rateLimitPerMinute: null, quotaExhausted: true },
    });
    expect(json(patched)).toMatchObject({ rateLimitPerMinute: null, quotaExhausted: true });
    const bad = await app.inject({
      method: 'PATCH',
      url: '/_admin/policies',
      payload: { quotaBytes: 'lots' },
    });
    expect(bad.statusCode).toBe(400);
    expect(json(bad)).toMatchObject({ code: 'invalid_argument', meta: { argument: 'quotaBytes' } });
    expect(app.mock.policies.get().quotaBytes).toBe(10 * 1000 ** 3);
  });

  it('a lower quota evicts least recently used entries at once', async () => {
    await seed({ key: 'a' }, 'x'.repeat(10));
    app.mock.clock.advance(1000);
    await seed({ key: 'b' }, 'x'.repeat(10));
    await app.inject({ method: 'PATCH', url: '/_admin/policies', payload: { quotaBytes: 15 } });
    expect((await app.mock.storage.metadata.listEntries()).map((e) => e.key)).toEqual(['b']);
  });
});

describe('fault rules', () => {
  it('adds, lists (with counters), removes and clears rules that act on the next requests', async () => {
    await seed({ key: 'k' });
    const added = await app.inject({
      method: 'POST',
      url: '/_admin/faults',
      payload: {
        id: 'busy',
        op: 'GetCacheEntryDownloadURL',
        key: 'k*',
        action: { type: 'status', status: 503 },
      },
    });
    expect(added.statusCode).toBe(201);
    expect(json(added)).toMatchObject({ id: 'busy', fired: 0, action: { type: 'status', status: 503 } });
    expect((await lookup('k')).statusCode).toBe(503);
    const listed = json(await app.inject({ url: '/_admin/faults' })).rules as { id: string; fired: number }[];
    expect(listed).toMatchObject([{ id: 'busy', fired: 1 }]);

    const dup = await app.inject({
      method: 'POST',
      url: '/_admin/faults',
      payload: { id: 'busy', action: { type: 'latency', ms: 1 } },
    });
    expect(dup.statusCode).toBe(409);
    const bad = await app.inject({
      method: 'POST',
      url: '/_admin/faults',
      payload: { action: { type: 'boom' } },
    });
    expect(bad.statusCode).toBe(400);
    expect(json(bad)).toMatchObject({ code: 'invalid_argument' });

    expect((await app.inject({ method: 'DELETE', url: '/_admin/faults/busy' })).statusCode).toBe(204);
    expect((await app.inject({ method: 'DELETE', url: '/_admin/faults/busy' })).statusCode).toBe(404);
    expect((await lookup('k')).statusCode).toBe(200);

    await app.inject({
      method: 'POST',
      url: '/_admin/faults',
      payload: { action: { type: 'status', status: 500 } },
    });
    expect((await app.inject({ method: 'DELETE', url: '/_admin/faults' })).statusCode).toBe(204);
    expect(app.mock.faults.list()).toEqual([]);
  });

  it('reset also removes the fault rules', async () => {
    app.mock.faults.add({ action: { type: 'status', status: 500 } });
    expect(
      json(await app.inject({ method: 'POST', url: '/_admin/reset', headers: { 'x-requested-by': 'test' } })),
    ).toEqual({
      deletedEntries: 0,
      removedFaults: 1,
    });
    expect(app.mock.faults.list()).toEqual([]);
  });
});

describe('errors', () => {
  it('answers {code,msg} for unknown routes and malformed JSON', async () => {
    const none = await app.inject({ url: '/_admin/nothing' });
    expect(none.statusCode).toBe(404);
    expect(json(none)).toEqual({ code: 'bad_route', msg: 'no admin route for GET /_admin/nothing' });
    const malformed = await app.inject({
      method: 'PATCH',
      url: '/_admin/policies',
      headers: { 'content-type': 'application/json' },
      payload: '{',
    });
    expect(malformed.statusCode).toBe(400);
    expect(json(malformed)).toMatchObject({ code: 'malformed' });
    const array = await app.inject({ method: 'PATCH', url: '/_admin/policies', payload: [1] });
    expect(array.statusCode).toBe(400);
  });
});
