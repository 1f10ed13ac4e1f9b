import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BadResponseError,
  FinalizeFailedError,
  NetworkError,
  RateLimitError,
  ReadDeniedError,
  ReserveFailedError,
  TwirpError,
  UsageLimitError,
  WriteDeniedError,
} from '../errors.js';
import {
  CreateCacheEntryResponseSchema,
  GetCacheEntryDownloadURLRequestSchema,
  GetCacheEntryDownloadURLResponseSchema,
} from '../gen/results/api/v1/cache_pb.js';
import { createRetryInterceptor, type ExchangeEvent } from '../http/retry.js';
import { type CacheService, createCacheService } from './cache-service.js';
import { createTwirpTransport, type TwirpEncoding, twirpUrl } from './transport.js';

const ORIGIN = 'http://results.test';
const PREFIX = '/twirp/github.actions.results.api.v1.CacheService';
const JSON_HEADERS = { 'content-type': 'application/json' };
const V = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';

describe('Twirp transport and CacheService RPCs', () => {
  let agent: MockAgent;
  let events: ExchangeEvent[];

  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    events = [];
  });
  afterEach(async () => {
    await agent.close();
  });

  function service(encoding: TwirpEncoding = 'json', retry: { maxAttempts?: number } = {}): CacheService {
    const dispatcher = agent.compose(
      createRetryInterceptor({ baseDelayMs: 1, maxDelayMs: 2, onExchange: (e) => events.push(e), ...retry }),
    );
    return createCacheService(
      createTwirpTransport({
        baseUrl: `${ORIGIN}/`,
        token: 'TOKEN',
        encoding,
        dispatcher,
        timeoutMs: 5000,
        userAgent: 'gha-cache-test',
      }),
    );
  }

  it('builds the Twirp URL under the base, keeping a path prefix', () => {
    expect(twirpUrl('http://h:1', 'CreateCacheEntry').href).toBe(`http://h:1${PREFIX}/CreateCacheEntry`);
    expect(twirpUrl('http://h:1/', 'X').pathname).toBe(`${PREFIX}/X`);
    expect(twirpUrl('http://h:1/prefix', 'X').pathname).toBe(`/prefix${PREFIX}/X`);
  });

  it('C-15: sends snake_case JSON, int64 as a string, no defaults, no metadata, with bearer auth', async () => {
    const pool = agent.get(ORIGIN);
    const seen: { body: string; headers: Record<string, string> }[] = [];
    const record = (opts: { body?: unknown; headers?: unknown }) => {
      seen.push({ body: String(opts.body), headers: opts.headers as Record<string, string> });
    };
    pool.intercept({ path: `${PREFIX}/FinalizeCacheEntryUpload`, method: 'POST' }).reply((opts) => {
      record(opts);
      return {
        statusCode: 200,
        data: { ok: true, entry_id: '42', message: '' },
        responseOptions: { headers: JSON_HEADERS },
      };
    });
    pool.intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' }).reply((opts) => {
      record(opts);
      return {
        statusCode: 200,
        data: { ok: false, signed_download_url: '', matched_key: '' },
        responseOptions: { headers: JSON_HEADERS },
      };
    });
    const svc = service();
    expect(await svc.finalizeCacheEntryUpload({ key: 'k', version: V, sizeBytes: 734003 })).toEqual({
      entryId: '42',
    });
    expect(await svc.getCacheEntryDownloadUrl({ key: 'k', restoreKeys: [], version: V })).toBeUndefined();
    expect(JSON.parse(seen[0]!.body)).toEqual({ key: 'k', size_bytes: '734003', version: V });
    expect(seen[0]!.headers['content-type']).toBe('application/json');
    expect(seen[0]!.headers.authorization).toBe('Bearer TOKEN');
    expect(JSON.parse(seen[1]!.body)).toEqual({ key: 'k', version: V });
  });

  it('C-16: reads camelCase, int64 as a number, and ignores unknown keys', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${PREFIX}/FinalizeCacheEntryUpload`, method: 'POST' })
      .reply(200, { ok: true, entryId: 7, extra: { nested: 1 } }, { headers: JSON_HEADERS });
    pool.intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' }).reply(
      200,
      { ok: true, signedDownloadUrl: 'http://b/x?sig=1', matchedKey: 'k-1', new_field: 'x' },
      {
        headers: JSON_HEADERS,
      },
    );
    const svc = service();
    expect(await svc.finalizeCacheEntryUpload({ key: 'k', version: V, sizeBytes: 1 })).toEqual({
      entryId: '7',
    });
    expect(await svc.getCacheEntryDownloadUrl({ key: 'k', restoreKeys: ['k-'], version: V })).toEqual({
      url: 'http://b/x?sig=1',
      matchedKey: 'k-1',
    });
  });

  it('speaks protobuf on request: binary body, empty body = miss', async () => {
    const pool = agent.get(ORIGIN);
    let sent: Buffer | undefined;
    pool
      .intercept({
        path: `${PREFIX}/GetCacheEntryDownloadURL`,
        method: 'POST',
        headers: { 'content-type': 'application/protobuf' },
        body: (b) => {
          sent = Buffer.from(b, 'latin1');
          return true;
        },
      })
      .reply(200, Buffer.alloc(0), { headers: { 'content-type': 'application/protobuf' } });
    const hit = toBinary(
      CreateCacheEntryResponseSchema,
      create(CreateCacheEntryResponseSchema, { ok: true, signedUploadUrl: 'http://b/c/e1?sig=x' }),
    );
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(200, Buffer.from(hit), { headers: { 'content-type': 'application/protobuf' } });
    const svc = service('protobuf');
    expect(
      await svc.getCacheEntryDownloadUrl({ key: 'a', restoreKeys: ['b', 'c'], version: V }),
    ).toBeUndefined();
    const decoded = fromBinary(GetCacheEntryDownloadURLRequestSchema, sent!);
    expect(decoded.key).toBe('a');
    expect(decoded.restoreKeys).toEqual(['b', 'c']);
    expect(decoded.metadata).toBeUndefined();
    expect(await svc.createCacheEntry({ key: 'a', version: V })).toEqual({
      status: 'created',
      uploadUrl: 'http://b/c/e1?sig=x',
    });
  });

  it('decodes a protobuf hit', async () => {
    const pool = agent.get(ORIGIN);
    const body = toBinary(
      GetCacheEntryDownloadURLResponseSchema,
      create(GetCacheEntryDownloadURLResponseSchema, {
        ok: true,
        signedDownloadUrl: 'http://x/y?z=1',
        matchedKey: 'm',
      }),
    );
    pool
      .intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' })
      .reply(200, Buffer.from(body), { headers: { 'content-type': 'application/protobuf' } });
    expect(
      await service('protobuf').getCacheEntryDownloadUrl({ key: 'm', restoreKeys: [], version: V }),
    ).toEqual({
      url: 'http://x/y?z=1',
      matchedKey: 'm',
    });
  });

  it('C-89: Create 409 already_exists is a value, flagged as retried after a lost first attempt', async () => {
    const pool = agent.get(ORIGIN);
    const conflict = {
      code: 'already_exists',
      msg: 'cache entry with the same key, version, and scope already exists',
    };
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(409, conflict, { headers: JSON_HEADERS });
    pool.intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' }).reply(503, 'upstream timeout');
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(409, conflict, { headers: JSON_HEADERS });
    const svc = service();
    expect(await svc.createCacheEntry({ key: 'k', version: V })).toEqual({
      status: 'exists',
      retried: false,
    });
    expect(await svc.createCacheEntry({ key: 'k', version: V })).toEqual({ status: 'exists', retried: true });
  });

  it('write denied (ok:false) is a WriteDeniedError; other ok:false a ReserveFailedError', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(
        200,
        { ok: false, signed_upload_url: '', message: 'cache write denied: token has no writable scopes' },
        { headers: JSON_HEADERS },
      );
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(200, { ok: false, signed_upload_url: '', message: 'nope' }, { headers: JSON_HEADERS });
    const svc = service();
    const e1 = await svc.createCacheEntry({ key: 'k', version: V }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(WriteDeniedError);
    expect(e1).toMatchObject({ code: 'ERR_WRITE_DENIED' });
    const e2 = await svc.createCacheEntry({ key: 'k', version: V }).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(ReserveFailedError);
    expect(e2).toMatchObject({ code: 'ERR_RESERVE_FAILED', serviceMessage: 'nope' });
  });

  it('Finalize ok:false is a FinalizeFailedError', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${PREFIX}/FinalizeCacheEntryUpload`, method: 'POST' })
      .reply(
        200,
        { ok: false, entry_id: '0', message: 'uploaded size 3 does not match size_bytes 4' },
        { headers: JSON_HEADERS },
      );
    await expect(
      service().finalizeCacheEntryUpload({ key: 'k', version: V, sizeBytes: 4 }),
    ).rejects.toBeInstanceOf(FinalizeFailedError);
  });

  it('read denied is a ReadDeniedError keeping code, msg and status', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' })
      .reply(
        403,
        { code: 'permission_denied', msg: 'cache read denied: token has no readable scopes' },
        { headers: JSON_HEADERS },
      );
    const err = await service()
      .getCacheEntryDownloadUrl({ key: 'k', restoreKeys: [], version: V })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReadDeniedError);
    expect(err).toMatchObject({
      code: 'ERR_READ_DENIED',
      twirpCode: 'permission_denied',
      httpStatus: 403,
      msg: 'cache read denied: token has no readable scopes',
      method: 'GetCacheEntryDownloadURL',
    });
    expect(events[0]?.attempts).toBe(1);
  });

  it('insufficient usage is a UsageLimitError and is not retried', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' }).reply(
      412,
      { code: 'failed_precondition', msg: 'insufficient usage to create cache entry' },
      {
        headers: JSON_HEADERS,
      },
    );
    const err = await service()
      .createCacheEntry({ key: 'k', version: V })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageLimitError);
    expect(err).toMatchObject({ code: 'ERR_USAGE_LIMIT', httpStatus: 412 });
    expect(events[0]?.attempts).toBe(1);
  });

  it('a 429 beyond the wait cap is a RateLimitError carrying the reset time', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' }).reply(
      429,
      { code: 'resource_exhausted', msg: 'rate limit exceeded' },
      {
        headers: { ...JSON_HEADERS, 'retry-after': '3600' },
      },
    );
    const before = Date.now();
    const err = await service()
      .createCacheEntry({ key: 'k', version: V })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    const rl = err as RateLimitError;
    expect(rl.code).toBe('ERR_RATE_LIMITED');
    expect(rl.retryAfterMs).toBe(3_600_000);
    expect(rl.resetAt!.getTime()).toBeGreaterThanOrEqual(before + 3_600_000);
    expect(events[0]?.attempts).toBe(1);
  });

  it('a short 429 is waited out and the call succeeds', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' }).reply(
      429,
      { code: 'resource_exhausted', msg: 'rate limit exceeded' },
      {
        headers: { ...JSON_HEADERS, 'retry-after': '0' },
      },
    );
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(
        200,
        { ok: true, signed_upload_url: 'http://b/c/d?sig=1', message: '' },
        { headers: JSON_HEADERS },
      );
    expect(await service().createCacheEntry({ key: 'k', version: V })).toMatchObject({ status: 'created' });
  });

  it('C-17: dataloss and data_loss are the same code; unknown codes map by status', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' })
      .reply(400, { code: 'data_loss', msg: 'x' }, { headers: JSON_HEADERS });
    pool
      .intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' })
      .reply(400, { code: 'dataloss', msg: 'x' }, { headers: JSON_HEADERS });
    pool
      .intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' })
      .reply(401, { code: 'brand_new_code', msg: 'y' }, { headers: JSON_HEADERS });
    const svc = service();
    const req = { key: 'k', restoreKeys: [], version: V };
    await expect(svc.getCacheEntryDownloadUrl(req)).rejects.toMatchObject({ twirpCode: 'dataloss' });
    await expect(svc.getCacheEntryDownloadUrl(req)).rejects.toMatchObject({ twirpCode: 'dataloss' });
    const err = await svc.getCacheEntryDownloadUrl(req).catch((e: unknown) => e);
    expect(err).toMatchObject({
      twirpCode: 'unauthenticated',
      httpStatus: 401,
      meta: { twirp_code: 'brand_new_code' },
    });
  });

  it('a non-JSON error body is mapped by HTTP status, never parsed as success', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${PREFIX}/GetCacheEntryDownloadURL`, method: 'POST' })
      .reply(404, '<html><body>Not Found</body></html>', { headers: { 'content-type': 'text/html' } });
    const err = await service()
      .getCacheEntryDownloadUrl({ key: 'k', restoreKeys: [], version: V })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TwirpError);
    expect(err).toMatchObject({
      twirpCode: 'bad_route',
      httpStatus: 404,
      meta: { http_error_from_intermediary: 'true' },
    });
  });

  it('C-85: 5xx with a non-JSON body is retried, then surfaces as a TwirpError with the final body', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(502, '<html>Bad Gateway</html>')
      .times(2);
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(500, { code: 'internal', msg: 'boom' }, { headers: JSON_HEADERS });
    const err = await service('json', { maxAttempts: 3 })
      .createCacheEntry({ key: 'k', version: V })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TWIRP', twirpCode: 'internal', msg: 'boom', httpStatus: 500 });
    expect(events[0]?.attempts).toBe(3);
  });

  it('C-85: a 200 with a non-JSON body is retried; a later valid body wins', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(200, '<html>captive portal</html>', { headers: { 'content-type': 'text/html' } });
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(200, '', { headers: JSON_HEADERS });
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(200, { ok: true, signed_upload_url: 'http://b/c/d?sig=1' }, { headers: JSON_HEADERS });
    expect(await service().createCacheEntry({ key: 'k', version: V })).toMatchObject({ status: 'created' });
    expect(events[0]?.retries.map((r) => r.reason)).toEqual(['invalid body', 'invalid body']);
  });

  it('a 200 non-JSON body on every attempt is a BadResponseError', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(200, 'plain text', { headers: { 'content-type': 'text/plain' } })
      .times(2);
    const err = await service('json', { maxAttempts: 2 })
      .createCacheEntry({ key: 'k', version: V })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadResponseError);
    expect(err).toMatchObject({ code: 'ERR_BAD_RESPONSE', bodySnippet: 'plain text' });
  });

  it('connection resets are retried; persistent ones become a NetworkError', async () => {
    const pool = agent.get(ORIGIN);
    const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    pool.intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' }).replyWithError(reset());
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .reply(200, { ok: true, signed_upload_url: 'http://b/c/d?sig=1' }, { headers: JSON_HEADERS });
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .replyWithError(reset())
      .times(2);
    const svc = service('json', { maxAttempts: 2 });
    expect(await svc.createCacheEntry({ key: 'k', version: V })).toMatchObject({ status: 'created' });
    const err = await svc.createCacheEntry({ key: 'k', version: V }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect(err).toMatchObject({ code: 'ERR_NETWORK', errno: 'ECONNRESET' });
  });

  it('timeouts are retried; persistent ones become a TimeoutError', async () => {
    const pool = agent.get(ORIGIN);
    const timeout = () =>
      Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    pool
      .intercept({ path: `${PREFIX}/CreateCacheEntry`, method: 'POST' })
      .replyWithError(timeout())
      .times(2);
    await expect(
      service('json', { maxAttempts: 2 }).createCacheEntry({ key: 'k', version: V }),
    ).rejects.toMatchObject({
      code: 'ERR_TIMEOUT',
    });
    expect(events[0]?.attempts).toBe(2);
  });
});
