import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, MAIN_RW, type TestApp, VERSION } from '../../testing/twirp-helpers.js';
import type { TrafficEvent } from './types.js';

const DAY = 86_400_000;
const OTHER = 'a'.repeat(64);
let t: TestApp;

beforeEach(async () => {
  t = await createTestApp();
});
afterEach(async () => {
  await t.app.close();
});

const events = (): TrafficEvent[] => t.app.mock.traffic.query();
const lastLookup = () =>
  events()
    .filter((e) => e.op === 'GetCacheEntryDownloadURL')
    .at(-1)!;
const MISS = { ok: false, signed_download_url: '', matched_key: '' };

describe('miss explanations', () => {
  it('names another version, with what a different @actions/cache version means; the wire answer stays a plain miss', async () => {
    await t.save('npm-linux-abc', 'x', undefined, OTHER);
    const res = await t.rpc('GetCacheEntryDownloadURL', { key: 'npm-linux-abc', version: VERSION });
    expect(res.json()).toEqual(MISS);
    await t.app.inject({ method: 'GET', url: '/healthz' });
    const e = lastLookup();
    expect(e.outcome).toBe('miss');
    expect(e.explanation).toMatchObject({
      reason: 'version-mismatch',
      scope: 'refs/heads/main',
      foundVersion: OTHER,
    });
    expect(e.reason).toContain('version');
  });

  it('names the scope the token cannot read', async () => {
    const feature = t.token([{ scope: 'refs/heads/feature', permission: 3 }]);
    await t.save('build-1', 'x', feature);
    expect(await t.get('build-1', [], t.token([{ scope: 'refs/heads/main', permission: 1 }]))).toEqual(MISS);
    expect(lastLookup().explanation).toMatchObject({
      reason: 'scope-not-readable',
      scope: 'refs/heads/feature',
    });
    expect(lastLookup().reason).toContain('refs/heads/feature');
  });

  it('says the entry is pending, then abandoned', async () => {
    await t.rpc('CreateCacheEntry', { key: 'half', version: VERSION });
    await t.get('half');
    expect(lastLookup().explanation?.reason).toBe('pending');
    t.clock.advance(2 * 3_600_000);
    await t.get('half');
    expect(lastLookup().explanation?.reason).toBe('abandoned');
  });

  it('says when an idle entry expired', async () => {
    await t.save('old', 'x');
    t.clock.advance(8 * DAY);
    await t.get('old');
    const e = lastLookup().explanation!;
    expect(e.reason).toBe('expired');
    expect(e.at).toBe(new Date(t.clock.now()).toISOString());
  });

  it('says an entry was evicted by the quota', async () => {
    t.app.mock.policies.update({ quotaBytes: 10 });
    await t.save('first', '123456');
    await t.save('second', '123456');
    await t.get('first');
    expect(lastLookup().explanation?.reason).toBe('evicted');
    expect(events().find((e) => e.op === 'FinalizeCacheEntryUpload' && e.key === 'second')?.evicted).toBe(1);
  });

  it('says an entry was deleted through the REST API or the admin API', async () => {
    await t.save('gone-rest', 'x');
    const del = await t.app.inject({
      method: 'DELETE',
      url: '/repos/octo-org/octo-repo/actions/caches?key=gone-rest',
      headers: { authorization: 'Bearer x' },
    });
    expect(del.statusCode).toBe(200);
    await t.get('gone-rest');
    expect(lastLookup().explanation?.reason).toBe('deleted-rest');
    const id = await t.save('gone-admin', 'x');
    await t.app.inject({ method: 'DELETE', url: `/_admin/entries/${id}` });
    await t.get('gone-admin');
    expect(lastLookup().explanation?.reason).toBe('deleted-admin');
  });

  it('lists the nearest keys when nothing has the key', async () => {
    await t.save('linux-node-20-abc', 'x');
    await t.save('linux-node-18-abc', 'x');
    await t.save('windows-abc', 'x');
    await t.get('linux-nod-20-abc', ['linux-nod-']);
    const e = lastLookup().explanation!;
    expect(e.reason).toBe('no-such-key');
    expect(e.nearestKeys).toEqual(['linux-node-18-abc', 'linux-node-20-abc']);
  });
});

describe('traffic events', () => {
  it('records Twirp and blob operations with client, outcome, scopes, keys and ties the blob to its entry', async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${t.token(MAIN_RW)}`,
        'user-agent': 'buildkit/v0.34',
      },
      payload: JSON.stringify({ key: 'buildkit-blob-1-sha256:aa', version: VERSION }),
    });
    const url = new URL(created.json().signed_upload_url);
    await t.app.inject({
      method: 'PUT',
      url: url.pathname + url.search,
      headers: { 'x-ms-blob-type': 'BlockBlob', 'user-agent': 'azsdk-go-azblob/v1.5.0 (go1.26.1; linux)' },
      payload: 'abc',
    });
    await t.rpc('FinalizeCacheEntryUpload', {
      key: 'buildkit-blob-1-sha256:aa',
      version: VERSION,
      size_bytes: '3',
    });
    await t.rpc('CreateCacheEntry', { key: 'buildkit-blob-1-sha256:aa', version: VERSION });
    await t.get('buildkit-blob-1-sha256:a', ['x']);
    const [create, put, finalize, conflict, get] = events();
    expect(create).toMatchObject({
      op: 'CreateCacheEntry',
      client: 'buildkit',
      outcome: 'created',
      scopes: ['refs/heads/main'],
      version: VERSION,
    });
    expect(put).toMatchObject({
      op: 'PutBlob',
      surface: 'blob',
      client: 'azure-sdk',
      outcome: 'ok',
      key: 'buildkit-blob-1-sha256:aa',
      entryId: create!.entryId,
      bytes: 3,
      status: 201,
    });
    expect(put!.url).toContain('sig=REDACTED');
    expect(finalize).toMatchObject({ outcome: 'committed' });
    expect(conflict).toMatchObject({ outcome: 'conflict', status: 409, errorCode: 'already_exists' });
    expect(get).toMatchObject({
      outcome: 'hit-prefix',
      match: 'prefix',
      matchedKey: 'buildkit-blob-1-sha256:aa',
      restoreKeys: ['x'],
    });
  });

  it('records an answer a fault rule gave as a fault, with the rule, and counts it in /metrics', async () => {
    t.app.mock.faults.add({
      id: 'boom',
      op: 'GetCacheEntryDownloadURL',
      times: 1,
      action: { type: 'status', status: 503 },
    });
    const res = await t.rpc('GetCacheEntryDownloadURL', { key: 'k', version: VERSION });
    expect(res.statusCode).toBe(503);
    await t.get('k');
    expect(events().map((e) => [e.outcome, e.fault, e.status])).toEqual([
      ['fault', 'boom', 503],
      ['miss', undefined, 200],
    ]);
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('gha_cache_fault_firings_total{rule="boom"} 1');
  });

  it('records write denied, read denied and rate limited', async () => {
    const readOnly = t.token([{ scope: 'refs/heads/main', permission: 1 }]);
    await t.rpc('CreateCacheEntry', { key: 'k', version: VERSION }, readOnly);
    await t.rpc(
      'GetCacheEntryDownloadURL',
      { key: 'k', version: VERSION },
      t.token([{ scope: 'refs/heads/main', permission: 2 }]),
    );
    t.app.mock.policies.update({ rateLimitPerMinute: 1 });
    await t.rpc('CreateCacheEntry', { key: 'a', version: VERSION });
    await t.rpc('CreateCacheEntry', { key: 'b', version: VERSION });
    t.app.mock.policies.update({ quotaExhausted: true });
    await t.rpc('CreateCacheEntry', { key: 'c', version: VERSION });
    expect(events().map((e) => e.outcome)).toEqual([
      'write-denied',
      'read-denied',
      'created',
      'rate-limited',
      'quota',
    ]);
  });
});
