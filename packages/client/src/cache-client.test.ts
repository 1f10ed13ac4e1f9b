import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RAW_BLOB_VERSION } from './archive/version.js';
import { createCacheClient } from './cache-client.js';
import { ValidationError } from './errors.js';
import { fromEnv, validateCacheClientOptions } from './options.js';

const ORIGIN = 'http://results.test';
const BLOB = 'http://blob.test';
const PREFIX = '/twirp/github.actions.results.api.v1.CacheService';
const JSON_HEADERS = { 'content-type': 'application/json' };

describe('createCacheClient', () => {
  let agent: MockAgent;
  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
  });
  afterEach(async () => {
    await agent.close();
  });
  const client = (over: Parameters<typeof createCacheClient>[0] extends infer O ? Partial<O> : never = {}) =>
    createCacheClient({
      baseUrl: `${ORIGIN}/`,
      token: 'T',
      dispatcher: agent,
      retry: { baseDelayMs: 1 },
      ...over,
    });

  it('C-86: enforces the key rules with the @actions/cache texts before any request', async () => {
    const c = client();
    const long = 'k'.repeat(513);
    await expect(c.putBlob(long, { data: Buffer.from('x') })).rejects.toThrow(
      `Key Validation Error: ${long} cannot be larger than 512 characters.`,
    );
    await expect(c.putBlob('a,b', { data: Buffer.from('x') })).rejects.toThrow(
      'Key Validation Error: a,b cannot contain commas.',
    );
    const keys = Array.from({ length: 10 }, (_, i) => `r${i}`);
    await expect(c.restore(['p'], 'k', keys)).rejects.toThrow(
      'Key Validation Error: Keys are limited to a maximum of 10.',
    );
    await expect(c.save([], 'k')).rejects.toThrow(
      'Path Validation Error: At least one directory or file path is required',
    );
    await expect(c.lookup('k', { restoreKeys: ['ok', 'x,y'] })).rejects.toBeInstanceOf(ValidationError);
    await c.close();
  });

  it('C-89: ACTIONS_CACHE_MODE gates restores and saves without any request', async () => {
    for (const mode of ['none', 'write-only'] as const) {
      const c = client({ cacheMode: mode });
      expect(await c.lookup('k')).toMatchObject({ hit: false, reason: 'cache_mode' });
      expect(await c.restore(['p'], 'k')).toMatchObject({ hit: false, reason: 'cache_mode' });
    }
    for (const mode of ['none', 'read'] as const) {
      const c = client({ cacheMode: mode });
      expect(await c.putBlob('k', { data: Buffer.from('x') })).toMatchObject({
        saved: false,
        reason: 'cache_mode',
      });
    }
  });

  it('C-88/C-89: putBlob = Create, one Put Blob, Finalize with the bytes uploaded; exists is a value', async () => {
    const twirp = agent.get(ORIGIN);
    const blob = agent.get(BLOB);
    const finalize: unknown[] = [];
    twirp
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(
        200,
        { ok: true, signed_upload_url: `${BLOB}/acct/c/e1?sig=s`, message: '' },
        { headers: JSON_HEADERS },
      );
    blob
      .intercept({ path: '/acct/c/e1?sig=s', method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' } })
      .reply(201, '');
    twirp.intercept({ path: `${PREFIX}/FinalizeCacheEntryUpload`, method: 'POST' }).reply((o) => {
      finalize.push(JSON.parse(String(o.body)));
      return {
        statusCode: 200,
        data: { ok: true, entry_id: '9', message: '' },
        responseOptions: { headers: JSON_HEADERS },
      };
    });
    twirp
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(409, { code: 'already_exists', msg: 'exists' }, { headers: JSON_HEADERS });
    const c = client();
    expect(await c.putBlob('k', { data: Buffer.from('hello') })).toEqual({
      saved: true,
      key: 'k',
      version: RAW_BLOB_VERSION,
      entryId: '9',
      sizeBytes: 5,
    });
    expect(finalize).toEqual([{ key: 'k', size_bytes: '5', version: RAW_BLOB_VERSION }]);
    expect(await c.putBlob('k', { data: Buffer.from('hello') })).toMatchObject({
      saved: false,
      reason: 'already_exists',
      retried: false,
    });
  });

  it('C-89: Get ok:false is a miss; a hit reports the matched key and exactness', async () => {
    const twirp = agent.get(ORIGIN);
    twirp
      .intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' })
      .reply(200, { ok: false, signed_download_url: '', matched_key: '' }, { headers: JSON_HEADERS });
    twirp.intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' }).reply(
      200,
      { ok: true, signed_download_url: `${BLOB}/a/c/b?sig=1`, matched_key: 'K-older' },
      {
        headers: JSON_HEADERS,
      },
    );
    const c = client();
    expect(await c.lookup('K')).toEqual({ hit: false, version: RAW_BLOB_VERSION, reason: 'miss' });
    expect(await c.lookup('K', { restoreKeys: ['K-'] })).toMatchObject({
      hit: true,
      matchedKey: 'K-older',
      exactMatch: false,
      url: `${BLOB}/a/c/b?sig=1`,
    });
  });
});

describe('options', () => {
  it('validates once and fills documented defaults', () => {
    const o = validateCacheClientOptions({ baseUrl: 'http://x/', token: 't' });
    expect(o).toMatchObject({
      encoding: 'json',
      timeoutMs: 60_000,
      blockSizeBytes: 64 * 1024 * 1024,
      uploadConcurrency: 16,
      maxSingleShotBytes: 128 * 1024 * 1024,
      downloadRangeBytes: 16 * 1024 * 1024,
      downloadConcurrency: 8,
      downloadSplitBelowBytesPerSecond: 100 * 1024 * 1024,
      compression: 'auto',
      retry: { maxAttempts: 5, baseDelayMs: 250, maxDelayMs: 10_000, maxRetryAfterMs: 60_000 },
    });
  });
  it('fails loudly on bad options', () => {
    expect(() => validateCacheClientOptions({ baseUrl: '', token: 't' })).toThrow(/baseUrl is required/);
    expect(() => validateCacheClientOptions({ baseUrl: 'ftp://x', token: 't' })).toThrow(/http/);
    expect(() => validateCacheClientOptions({ baseUrl: 'http://x', token: '' })).toThrow(/token is required/);
    expect(() =>
      validateCacheClientOptions({ baseUrl: 'http://x', token: 't', uploadConcurrency: 0 }),
    ).toThrow(/uploadConcurrency/);
    expect(() =>
      validateCacheClientOptions({ baseUrl: 'http://x', token: 't', encoding: 'xml' as never }),
    ).toThrow(/encoding/);
  });
  it('fromEnv reads the runner variables and ignores unknown cache modes', () => {
    expect(
      fromEnv({
        ACTIONS_RESULTS_URL: 'http://r/',
        ACTIONS_RUNTIME_TOKEN: 'tok',
        ACTIONS_CACHE_MODE: 'READ',
        GITHUB_WORKSPACE: '/w',
      }),
    ).toEqual({ baseUrl: 'http://r/', token: 'tok', cacheMode: 'read', workingDirectory: '/w' });
    expect(fromEnv({ ACTIONS_CACHE_MODE: 'sometimes' })).toEqual({});
  });
});
