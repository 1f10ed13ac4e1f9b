import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, MAIN_RW, type TestApp, VERSION } from '../../testing/twirp-helpers.js';
import {
  CreateCacheEntryRequestSchema,
  CreateCacheEntryResponseSchema,
  GetCacheEntryDownloadURLRequestSchema,
} from '../gen/results/api/v1/cache_pb.js';
import { SERVICE_PATH } from '../plugins/twirp.js';

let t: TestApp;
beforeEach(async () => {
  t = await createTestApp();
});
afterEach(async () => {
  await t.app.close();
});

const expectTwirpError = (
  res: { statusCode: number; headers: Record<string, unknown>; body: string },
  status: number,
  code: string,
) => {
  expect(res.statusCode).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  const body = JSON.parse(res.body);
  expect(body.code).toBe(code);
  expect(typeof body.msg).toBe('string');
  expect(body).not.toHaveProperty('message');
  return body as { code: string; msg: string; meta?: Record<string, string> };
};

describe('Twirp transport', () => {
  it('C-01: JSON CreateCacheEntry answers 200 application/json', async () => {
    const res = await t.rpc('CreateCacheEntry', { key: 'k', version: VERSION });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.json().ok).toBe(true);
  });

  it('C-02: GET on a method path is bad_route with twirp_invalid_route meta', async () => {
    const path = `${SERVICE_PATH}CreateCacheEntry`;
    const res = await t.app.inject({ method: 'GET', url: path });
    const body = expectTwirpError(res, 404, 'bad_route');
    expect(body.msg).toBe('unsupported method "GET" (only POST is allowed)');
    expect(body.meta).toEqual({ twirp_invalid_route: `GET ${path}` });
  });

  it.each(['getcacheentrydownloadurl', 'GetCacheEntryDownloadUrl', 'LookupCacheEntry', 'CreateCacheEntry/'])(
    'C-03: unknown or wrong-case method %s is bad_route',
    async (name) => {
      const res = await t.rpc(name, { key: 'k', version: VERSION });
      const body = expectTwirpError(res, 404, 'bad_route');
      expect(body.meta?.twirp_invalid_route).toBe(`POST ${SERVICE_PATH}${name}`);
    },
  );

  it('C-03: another service is bad_route', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/twirp/other.Service/Method',
      headers: { 'content-type': 'application/json' },
      payload: '{}',
    });
    expectTwirpError(res, 404, 'bad_route');
  });

  it('C-04: Content-Type text/plain or missing is bad_route; charset parameter accepted', async () => {
    for (const headers of [{ 'content-type': 'text/plain' }, {}]) {
      const res = await t.app.inject({
        method: 'POST',
        url: `${SERVICE_PATH}CreateCacheEntry`,
        headers: { ...headers, authorization: `Bearer ${t.token()}` },
        payload: JSON.stringify({ key: 'k', version: VERSION }),
      });
      expect(expectTwirpError(res, 404, 'bad_route').msg).toMatch(/^unexpected Content-Type: "/);
    }
    const ok = await t.app.inject({
      method: 'POST',
      url: `${SERVICE_PATH}CreateCacheEntry`,
      headers: { 'content-type': 'application/json; charset=utf-8', authorization: `Bearer ${t.token()}` },
      payload: JSON.stringify({ key: 'k', version: VERSION }),
    });
    expect(ok.statusCode).toBe(200);
  });

  it.each(['{', '', '[]', '"x"', '{"key": 5}', '{"size_bytes": "abc", "key": "k"}', '<xml/>'])(
    'C-05: unparsable JSON body %j is malformed',
    async (payload) => {
      const method = payload.includes('size_bytes') ? 'FinalizeCacheEntryUpload' : 'CreateCacheEntry';
      const res = await t.rpc(method, payload);
      expect(expectTwirpError(res, 400, 'malformed').msg).toBe('the json request could not be decoded');
    },
  );

  it('C-05: unparsable protobuf body is malformed', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: `${SERVICE_PATH}CreateCacheEntry`,
      headers: { 'content-type': 'application/protobuf', authorization: `Bearer ${t.token()}` },
      payload: Buffer.from([0x12, 0x7f, 0x01]),
    });
    expect(expectTwirpError(res, 400, 'malformed').msg).toBe('the protobuf request could not be decoded');
  });

  it('C-06/C-07: every error response is JSON with code and msg, never message, with the status of its code', async () => {
    const cases: [
      Promise<{ statusCode: number; headers: Record<string, unknown>; body: string }>,
      number,
      string,
    ][] = [
      [t.rpc('CreateCacheEntry', { key: '', version: VERSION }), 400, 'invalid_argument'],
      [t.rpc('CreateCacheEntry', { key: 'k', version: VERSION }, 'nope'), 401, 'unauthenticated'],
      [
        t.rpc('FinalizeCacheEntryUpload', { key: 'nokey', version: VERSION, size_bytes: 1 }),
        404,
        'not_found',
      ],
      [t.rpc('Nope', {}), 404, 'bad_route'],
    ];
    for (const [p, status, code] of cases) expectTwirpError(await p, status, code);
  });

  it('C-08: serves at the origin root and under a configured prefix', async () => {
    const prefixed = await createTestApp({ pathPrefix: '/cache/v2/' });
    try {
      const token = prefixed.token();
      for (const url of [`${SERVICE_PATH}CreateCacheEntry`, `/cache/v2${SERVICE_PATH}CreateCacheEntry`]) {
        const res = await prefixed.app.inject({
          method: 'POST',
          url,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          payload: JSON.stringify({ key: url, version: VERSION }),
        });
        expect(res.statusCode).toBe(200);
        expect(res.json().ok).toBe(true);
      }
    } finally {
      await prefixed.app.close();
    }
  });

  const protoRpc = (method: string, payload: Buffer, token = t.token()) =>
    t.app.inject({
      method: 'POST',
      url: SERVICE_PATH + method,
      headers: { 'content-type': 'application/protobuf', authorization: `Bearer ${token}` },
      payload,
    });

  it('C-09: protobuf Create answers 200 application/protobuf decoding as CreateCacheEntryResponse', async () => {
    const req = toBinary(
      CreateCacheEntryRequestSchema,
      create(CreateCacheEntryRequestSchema, { key: 'pb', version: VERSION }),
    );
    const res = await protoRpc('CreateCacheEntry', Buffer.from(req));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/protobuf');
    const msg = fromBinary(CreateCacheEntryResponseSchema, res.rawPayload);
    expect(msg.ok).toBe(true);
    expect(msg.signedUploadUrl).toMatch(/^http:\/\//);
    expect(res.rawPayload[0]).toBe(0x08);
  });

  it('C-10: protobuf Get miss is 200 with an empty body', async () => {
    const req = toBinary(
      GetCacheEntryDownloadURLRequestSchema,
      create(GetCacheEntryDownloadURLRequestSchema, { key: 'missing', version: VERSION }),
    );
    const res = await protoRpc('GetCacheEntryDownloadURL', Buffer.from(req));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/protobuf');
    expect(res.rawPayload.length).toBe(0);
  });

  it('C-11: a failing protobuf call answers a JSON Twirp error', async () => {
    const res = await protoRpc('CreateCacheEntry', Buffer.alloc(0));
    expectTwirpError(res, 400, 'invalid_argument');
  });

  it('rejects oversized bodies with a Twirp error and keeps serving', async () => {
    const res = await t.rpc(
      'CreateCacheEntry',
      JSON.stringify({ key: 'k', version: VERSION, pad: 'x'.repeat(2 * 1024 * 1024) }),
    );
    expectTwirpError(res, 400, 'malformed');
    expect((await t.rpc('CreateCacheEntry', { key: 'k2', version: VERSION })).statusCode).toBe(200);
  });

  it('answers v1 paths with a JSON error that says v1 is unsupported, in the v1 shape too', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/_apis/artifactcache/cache?keys=a&version=b' });
    expect(res.statusCode).toBe(404);
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({
      code: 'bad_route',
      msg: expect.stringMatching(/v1.*ACTIONS_CACHE_SERVICE_V2/),
    });
    // v1 clients (go-actions-cache) print `message`; Twirp routes never carry it (C-07).
    expect(body.message).toBe(body.msg);
  });
});

describe('Encoding', () => {
  it('C-12: restore_keys/restoreKeys and size_bytes/sizeBytes are equivalent; size as number or string', async () => {
    for (const [i, size] of [
      [0, 5],
      [1, '5'],
    ] as const) {
      const key = `enc-${i}`;
      const created = (await t.rpc('CreateCacheEntry', { key, version: VERSION })).json();
      const { Readable } = await import('node:stream');
      const blobId = new URL(created.signed_upload_url).pathname.split('/').pop()!;
      await t.app.mock.storage.blobs.putBlob(blobId, Readable.from([Buffer.from('hello')]), 5, t.clock.now());
      const fin = await t.rpc(
        'FinalizeCacheEntryUpload',
        i ? { key, version: VERSION, sizeBytes: size } : { key, version: VERSION, size_bytes: size },
      );
      expect(fin.json()).toMatchObject({ ok: true });
    }
    const a = (
      await t.rpc('GetCacheEntryDownloadURL', { key: 'x', restore_keys: ['enc-'], version: VERSION })
    ).json();
    const b = (
      await t.rpc('GetCacheEntryDownloadURL', { key: 'x', restoreKeys: ['enc-'], version: VERSION })
    ).json();
    expect(a.matched_key).toBe('enc-1');
    expect(b.matched_key).toBe('enc-1');
  });

  it('C-13: unknown fields and metadata are ignored; the scope comes from the token', async () => {
    const res = await t.rpc('CreateCacheEntry', {
      key: 'meta',
      version: VERSION,
      metadata: { repository_id: '999', scope: [{ scope: 'refs/heads/evil', permission: 3 }] },
      surprise: { nested: true },
    });
    expect(res.json().ok).toBe(true);
    const entry = (await t.app.mock.storage.metadata.listEntries())[0]!;
    expect(entry.scope).toBe('refs/heads/main');
    expect(entry.repositoryId).toBe('1');
  });

  it('C-14: JSON responses are snake_case with defaults and entry_id as a string', async () => {
    const created = await t.rpc('CreateCacheEntry', { key: 'snake', version: VERSION });
    expect(Object.keys(created.json()).sort()).toEqual(['message', 'ok', 'signed_upload_url']);
    expect(created.json().message).toBe('');
    const id = await t.save('snake2');
    expect(id).toMatch(/^\d+$/);
    const miss = await t.get('nothing-here');
    expect(miss).toEqual({ ok: false, signed_download_url: '', matched_key: '' });
  });
});

describe('Auth and scopes', () => {
  it('C-18: no bearer, a past exp or a future nbf is unauthenticated', async () => {
    const noAuth = await t.app.inject({
      method: 'POST',
      url: `${SERVICE_PATH}CreateCacheEntry`,
      headers: { 'content-type': 'application/json' },
      payload: '{}',
    });
    expectTwirpError(noAuth, 401, 'unauthenticated');
    const expired = t.app.mock.tokens.mint({ scopes: MAIN_RW, now: Date.now() - 7 * 3600_000 });
    expectTwirpError(
      await t.rpc('CreateCacheEntry', { key: 'k', version: VERSION }, expired),
      401,
      'unauthenticated',
    );
    const future = t.app.mock.tokens.mint({ scopes: MAIN_RW, now: Date.now() + 3600_000 });
    expectTwirpError(
      await t.rpc('CreateCacheEntry', { key: 'k', version: VERSION }, future),
      401,
      'unauthenticated',
    );
  });

  const forge = (header: object, claims: object, sig = 'AAAA') =>
    `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
  const claims = () => ({
    ac: JSON.stringify([{ Scope: 'refs/heads/main', Permission: 3 }]),
    exp: Math.floor(Date.now() / 1000) + 3600,
    nbf: Math.floor(Date.now() / 1000) - 60,
  });

  it('C-19: forged, alg:none and foreign-algorithm tokens are unauthenticated by default', async () => {
    const tokens = [
      forge({ alg: 'none', typ: 'JWT' }, claims(), ''),
      forge({ alg: 'HS256', typ: 'JWT' }, claims()),
      forge({ alg: 'RS256', typ: 'JWT' }, claims()),
      `${t.token().slice(0, -4)}AAAA`,
      'not.a.jwt',
      'garbage',
    ];
    for (const token of tokens) {
      expectTwirpError(
        await t.rpc('CreateCacheEntry', { key: 'k', version: VERSION }, token),
        401,
        'unauthenticated',
      );
    }
    expect(await t.app.mock.storage.metadata.listEntries()).toEqual([]);
  });

  it('C-19: with insecure tokens, any decodable token with ac as a JSON string is accepted', async () => {
    const insecure = await createTestApp({ insecureTokens: true });
    try {
      const ok = await insecure.rpc(
        'CreateCacheEntry',
        { key: 'k', version: VERSION },
        forge({ alg: 'RS256' }, claims()),
      );
      expect(ok.json().ok).toBe(true);
      const bad = await insecure.rpc(
        'CreateCacheEntry',
        { key: 'k2', version: VERSION },
        forge({ alg: 'RS256' }, { ...claims(), ac: [] }),
      );
      expectTwirpError(bad, 401, 'unauthenticated');
    } finally {
      await insecure.app.close();
    }
  });

  it('C-20: Create with read-only scopes answers ok:false with cache write denied', async () => {
    const ro = t.token([{ scope: 'refs/heads/main', permission: 1 }]);
    const res = await t.rpc('CreateCacheEntry', { key: 'k', version: VERSION }, ro);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      ok: false,
      signed_upload_url: '',
      message: 'cache write denied: token has no writable scopes',
    });
  });

  it('C-21: Get with write-only scopes is 403 permission_denied, cache read denied', async () => {
    const wo = t.token([{ scope: '', permission: 2 }]);
    const res = await t.rpc('GetCacheEntryDownloadURL', { key: 'k', version: VERSION }, wo);
    expect(expectTwirpError(res, 403, 'permission_denied').msg).toMatch(/^cache read denied:/);
  });

  it('C-22: entries of scope A are invisible to a token whose only readable scope is B', async () => {
    await t.save('scoped', 'a', t.token([{ scope: 'refs/heads/a', permission: 3 }]));
    const b = t.token([{ scope: 'refs/heads/b', permission: 3 }]);
    expect((await t.get('scoped', [], b)).ok).toBe(false);
  });

  it('C-23: with ac=[{A,3},{B,1}] and the identity in both scopes, A wins', async () => {
    await t.save('both', 'from-b', t.token([{ scope: 'refs/heads/b', permission: 3 }]));
    await t.save('both', 'from-a', t.token([{ scope: 'refs/heads/a', permission: 3 }]));
    const pr = t.token([
      { scope: 'refs/heads/a', permission: 3 },
      { scope: 'refs/heads/b', permission: 1 },
    ]);
    const hit = await t.get('both', [], pr);
    const entry = (await t.app.mock.storage.metadata.listEntries()).find((e) => e.scope === 'refs/heads/a')!;
    expect(hit.signed_download_url).toContain(entry.blobId);
    // B's entries are visible to the PR token; A's are not visible to a B-only token.
    await t.save('only-b', 'x', t.token([{ scope: 'refs/heads/b', permission: 3 }]));
    expect((await t.get('only-b', [], pr)).ok).toBe(true);
    await t.save('only-a', 'x', t.token([{ scope: 'refs/heads/a', permission: 3 }]));
    expect((await t.get('only-a', [], t.token([{ scope: 'refs/heads/b', permission: 3 }]))).ok).toBe(false);
  });

  it('C-24: entries are partitioned by repository_id', async () => {
    await t.save('repo-key', 'x', t.token(MAIN_RW, '100'));
    expect((await t.get('repo-key', [], t.token(MAIN_RW, '200'))).ok).toBe(false);
    expect((await t.get('repo-key', [], t.token(MAIN_RW, '100'))).ok).toBe(true);
    // Same identity in another repository can be created.
    expect(
      (await t.rpc('CreateCacheEntry', { key: 'repo-key', version: VERSION }, t.token(MAIN_RW, '200'))).json()
        .ok,
    ).toBe(true);
  });
});

describe('Create / Finalize', () => {
  it('C-25: a new identity gets a signed upload URL with sp ⊇ cw and se ≈ now + 60 min', async () => {
    const res = (await t.rpc('CreateCacheEntry', { key: 'url', version: VERSION })).json();
    const url = new URL(res.signed_upload_url);
    expect(url.pathname.split('/').filter(Boolean).length).toBeGreaterThanOrEqual(3);
    expect(url.search).not.toBe('');
    expect(url.searchParams.get('sp')).toMatch(/c/);
    expect(url.searchParams.get('sp')).toMatch(/w/);
    const se = Date.parse(url.searchParams.get('se')!);
    expect(Math.abs(se - (t.clock.now() + 60 * 60_000))).toBeLessThanOrEqual(1000);
    expect(res.signed_upload_url).not.toContain('url');
  });

  it('C-26: Create of a committed or pending identity is 409 already_exists', async () => {
    await t.save('dup');
    const committed = await t.rpc('CreateCacheEntry', { key: 'dup', version: VERSION });
    expect(expectTwirpError(committed, 409, 'already_exists').msg).toBe(
      'cache entry with the same key, version, and scope already exists',
    );
    expect((await t.rpc('CreateCacheEntry', { key: 'pending', version: VERSION })).statusCode).toBe(200);
    expectTwirpError(
      await t.rpc('CreateCacheEntry', { key: 'pending', version: VERSION }),
      409,
      'already_exists',
    );
  });

  it('C-27: the same key with another version or in another scope is a new entry', async () => {
    await t.save('same');
    expect((await t.rpc('CreateCacheEntry', { key: 'same', version: 'other' })).json().ok).toBe(true);
    const other = t.token([{ scope: 'refs/heads/other', permission: 3 }]);
    expect((await t.rpc('CreateCacheEntry', { key: 'same', version: VERSION }, other)).json().ok).toBe(true);
  });

  it('C-28: after pendingTtl without Finalize the reservation is gone and Create succeeds', async () => {
    expect((await t.rpc('CreateCacheEntry', { key: 'stale', version: VERSION })).json().ok).toBe(true);
    t.clock.advance(59 * 60_000);
    expectTwirpError(
      await t.rpc('CreateCacheEntry', { key: 'stale', version: VERSION }),
      409,
      'already_exists',
    );
    t.clock.advance(60_000);
    expect((await t.rpc('CreateCacheEntry', { key: 'stale', version: VERSION })).json().ok).toBe(true);
    // The sweeper removes expired reservations too.
    t.clock.advance(61 * 60_000);
    await t.app.mock.sweep();
    expect(await t.app.mock.storage.metadata.listEntries()).toEqual([]);
  });

  it.each([
    ['empty', ''],
    ['513 chars', 'k'.repeat(513)],
    ['comma', 'a,b'],
  ])('C-29: key %s is invalid_argument', async (_name, key) => {
    expectTwirpError(await t.rpc('CreateCacheEntry', { key, version: VERSION }), 400, 'invalid_argument');
    expect(await t.app.mock.storage.metadata.listEntries()).toEqual([]);
  });

  it('C-29: a 512-char key is fine; keys with ../ and NUL are opaque and never reach the file system', async () => {
    expect((await t.rpc('CreateCacheEntry', { key: 'k'.repeat(512), version: VERSION })).json().ok).toBe(
      true,
    );
    for (const key of ['../../etc/passwd', 'a\u0000b', '/abs/path']) {
      const res = (await t.rpc('CreateCacheEntry', { key, version: VERSION })).json();
      expect(res.ok).toBe(true);
      expect(res.signed_upload_url).not.toContain('passwd');
    }
  });

  it('C-30: Finalize with the uploaded size commits; Get hits; repeating Finalize gives the same answer', async () => {
    const id = await t.save('fin', 'hello');
    const again = (
      await t.rpc('FinalizeCacheEntryUpload', { key: 'fin', version: VERSION, size_bytes: '5' })
    ).json();
    expect(again).toEqual({ ok: true, entry_id: id, message: '' });
    expect((await t.get('fin')).ok).toBe(true);
    // Committed with another size → conflict.
    expectTwirpError(
      await t.rpc('FinalizeCacheEntryUpload', { key: 'fin', version: VERSION, size_bytes: '6' }),
      409,
      'already_exists',
    );
  });

  it('C-31: Finalize with a wrong size or before any upload is ok:false and frees the key', async () => {
    await t.rpc('CreateCacheEntry', { key: 'early', version: VERSION });
    const early = (
      await t.rpc('FinalizeCacheEntryUpload', { key: 'early', version: VERSION, size_bytes: '5' })
    ).json();
    expect(early.ok).toBe(false);
    expect(early.entry_id).toBe('0');
    expect(early.message).not.toBe('');
    expect((await t.rpc('CreateCacheEntry', { key: 'early', version: VERSION })).json().ok).toBe(true);

    const created = (await t.rpc('CreateCacheEntry', { key: 'wrong', version: VERSION })).json();
    const { Readable } = await import('node:stream');
    const blobId = new URL(created.signed_upload_url).pathname.split('/').pop()!;
    await t.app.mock.storage.blobs.putBlob(blobId, Readable.from([Buffer.from('abc')]), 3, t.clock.now());
    const wrong = (
      await t.rpc('FinalizeCacheEntryUpload', { key: 'wrong', version: VERSION, size_bytes: '4' })
    ).json();
    expect(wrong).toEqual({
      ok: false,
      entry_id: '0',
      message: 'uploaded size 3 does not match size_bytes 4',
    });
    expect((await t.get('wrong')).ok).toBe(false);
    expect((await t.rpc('CreateCacheEntry', { key: 'wrong', version: VERSION })).json().ok).toBe(true);
  });

  it('C-32: Finalize of a never-reserved identity is 404 not_found', async () => {
    const res = await t.rpc('FinalizeCacheEntryUpload', { key: 'ghost', version: VERSION, size_bytes: '1' });
    expect(expectTwirpError(res, 404, 'not_found').msg).toBe('cache entry not found');
  });

  it('C-32: Finalize with a negative size is invalid_argument; read-only Finalize is write denied', async () => {
    await t.rpc('CreateCacheEntry', { key: 'neg', version: VERSION });
    expectTwirpError(
      await t.rpc('FinalizeCacheEntryUpload', { key: 'neg', version: VERSION, size_bytes: '-1' }),
      400,
      'invalid_argument',
    );
    const ro = t.token([{ scope: 'refs/heads/main', permission: 1 }]);
    expect(
      (await t.rpc('FinalizeCacheEntryUpload', { key: 'neg', version: VERSION, size_bytes: '1' }, ro)).json(),
    ).toEqual({
      ok: false,
      entry_id: '0',
      message: 'cache write denied: token has no writable scopes',
    });
  });

  it('C-33: entry ids are unique and increasing', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(BigInt(await t.save(`id-${i}`)));
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
  });
});

describe('Lookup', () => {
  it('C-35: pending entries are never returned, even on an exact key', async () => {
    await t.rpc('CreateCacheEntry', { key: 'pend', version: VERSION });
    expect(await t.get('pend', ['pe'])).toEqual({ ok: false, signed_download_url: '', matched_key: '' });
  });

  it('C-36: an exact hit returns the stored key and a read-only download URL', async () => {
    await t.save('exact-key');
    const hit = await t.get('exact-key');
    expect(hit.ok).toBe(true);
    expect(hit.matched_key).toBe('exact-key');
    const url = new URL(hit.signed_download_url as string);
    expect(url.searchParams.get('sp')).toBe('r');
    expect(
      Math.abs(Date.parse(url.searchParams.get('se')!) - (t.clock.now() + 10 * 60_000)),
    ).toBeLessThanOrEqual(1000);
  });

  it('C-37: among prefix matches the most recently created wins (#10 beats #9)', async () => {
    for (let i = 8; i <= 10; i++) await t.save(`index-#${i}`);
    expect((await t.get('index-#', ['index-#'])).matched_key).toBe('index-#10');
  });

  it('C-38: an exact primary match beats a newer prefix match', async () => {
    await t.save('npm-abc');
    await t.save('npm-abcd');
    expect((await t.get('npm-abc')).matched_key).toBe('npm-abc');
  });

  it('C-39: restore keys are tried in order, exact then prefix; the first match wins', async () => {
    await t.save('r-one-x');
    await t.save('r-two');
    await t.save('r-two-newer');
    expect((await t.get('nope', ['r-two', 'r-one'])).matched_key).toBe('r-two');
    expect((await t.get('nope', ['r-one', 'r-two'])).matched_key).toBe('r-one-x');
    expect((await t.get('nope', ['r-t'])).matched_key).toBe('r-two-newer');
  });

  it('C-40: all steps finish in one readable scope before the next', async () => {
    await t.save('pr-key-exact', 'base', t.token([{ scope: 'refs/heads/base', permission: 3 }]));
    await t.save('pr-key-prefix-only', 'head', t.token([{ scope: 'refs/pull/1/merge', permission: 3 }]));
    const pr = t.token([
      { scope: 'refs/pull/1/merge', permission: 3 },
      { scope: 'refs/heads/base', permission: 1 },
    ]);
    // An exact match in the base scope loses to a restore-key prefix match in the head scope.
    expect((await t.get('pr-key-exact', ['pr-key-'], pr)).matched_key).toBe('pr-key-prefix-only');
  });

  it('C-41: entries with another version are never returned', async () => {
    await t.save('ver', 'x', undefined, 'v-other');
    expect((await t.get('ver', ['v'])).ok).toBe(false);
  });

  it('C-42: a miss is 200 ok:false with empty strings', async () => {
    const res = await t.rpc('GetCacheEntryDownloadURL', { key: 'zzz', version: VERSION });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ok: false, signed_download_url: '', matched_key: '' });
  });

  it('C-43: go-actions-cache TestPartialKeyOrder vector', async () => {
    const P = 'partial-';
    await t.save(`${P}foo22`);
    await t.save(`${P}fo`);
    await t.save(`${P}foo1`);
    expect((await t.get(`${P}foo`, [`${P}foo`])).matched_key).toBe(`${P}foo1`);
    expect((await t.get(P, [P])).matched_key).toBe(`${P}foo1`);
    expect((await t.get(`${P}foo3`, [`${P}foo3`])).ok).toBe(false);
    expect((await t.get(`${P}foo2`, [`${P}foo2`])).matched_key).toBe(`${P}foo22`);
  });

  it('C-44: repeating the primary key in restore_keys changes nothing', async () => {
    await t.save('rep-a');
    await t.save('rep-ab');
    expect((await t.get('rep-a', ['rep-a'])).matched_key).toBe('rep-a');
    expect((await t.get('rep-', ['rep-'])).matched_key).toBe('rep-ab');
  });

  it('C-45: a hit updates last_accessed_at; a miss changes nothing', async () => {
    await t.save('touch');
    const before = (await t.app.mock.storage.metadata.listEntries())[0]!;
    t.clock.advance(5000);
    await t.get('nothing');
    expect((await t.app.mock.storage.metadata.getEntry(before.id))!.lastAccessedAt).toBe(
      before.lastAccessedAt,
    );
    await t.get('touch');
    expect((await t.app.mock.storage.metadata.getEntry(before.id))!.lastAccessedAt).toBe(t.clock.now());
  });

  it('C-46: an entry whose blob bytes are missing is skipped and the search continues', async () => {
    await t.save('gone-1');
    await t.save('gone-2');
    const newest = (await t.app.mock.storage.metadata.listEntries()).find((e) => e.key === 'gone-2')!;
    // Simulate lost bytes: the entry stays, the blob is replaced by one of another size.
    const { Readable } = await import('node:stream');
    await t.app.mock.storage.blobs.putBlob(
      newest.blobId,
      Readable.from([Buffer.from('x')]),
      1,
      t.clock.now(),
    );
    expect((await t.get('gone-', ['gone-'])).matched_key).toBe('gone-1');
    expect(await t.app.mock.storage.metadata.getEntry(newest.id)).toBeUndefined();
  });

  it('C-47: more than 10 distinct keys is invalid_argument; repeats do not count', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    expectTwirpError(
      await t.rpc('GetCacheEntryDownloadURL', { key: 'primary', restore_keys: keys, version: VERSION }),
      400,
      'invalid_argument',
    );
    const ok = await t.rpc('GetCacheEntryDownloadURL', { key: 'k0', restore_keys: keys, version: VERSION });
    expect(ok.statusCode).toBe(200);
    expectTwirpError(
      await t.rpc('GetCacheEntryDownloadURL', { key: 'a', restore_keys: ['b,c'], version: VERSION }),
      400,
      'invalid_argument',
    );
  });
});

describe('URL lifetime', () => {
  it('C-54: after a download URL expires, a new Get returns a fresh working URL', async () => {
    await t.save('ttl', 'payload');
    const first = (await t.get('ttl')).signed_download_url as string;
    const path = (u: string) => new URL(u).pathname + new URL(u).search;
    expect((await t.app.inject({ method: 'GET', url: path(first) })).body).toBe('payload');
    t.clock.advance(10 * 60_000 + 1000);
    const expired = await t.app.inject({ method: 'GET', url: path(first) });
    expect(expired.statusCode).toBe(403);
    expect(expired.headers['x-ms-error-code']).toBe('AuthenticationFailed');
    const fresh = (await t.get('ttl')).signed_download_url as string;
    expect(fresh).not.toBe(first);
    const ok = await t.app.inject({ method: 'GET', url: path(fresh) });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toBe('payload');
  });
});
