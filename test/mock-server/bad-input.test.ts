/**
 * Bad input over real sockets against the fs storage: every case gets the protocol's own error
 * (Twirp JSON or Azure XML), nothing is written outside the data dir, and the server keeps serving.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMock, type TestMock } from '../support/mock.js';
import { SERVICE, twirp } from '../support/twirp.js';

let root: string;
let mock: TestMock;
let uploadUrl: URL;
const VERSION = 'v';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gha-bad-'));
  mock = await startTestMock({ dataDir: join(root, 'data') });
  const created = await twirp(mock.url, mock.token, 'CreateCacheEntry', { key: 'target', version: VERSION });
  uploadUrl = new URL(created.json.signed_upload_url as string);
});
afterAll(async () => {
  await mock?.dispose();
  await rm(root, { recursive: true, force: true });
});

async function post(method: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(SERVICE + method, mock.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${mock.token}`, 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

function expectTwirp(
  res: { status: number; type: string | null; text: string },
  status: number,
  code: string,
) {
  expect(res.status).toBe(status);
  expect(res.type).toBe('application/json');
  expect(JSON.parse(res.text)).toMatchObject({ code });
}

async function blobCall(url: URL | string, init: RequestInit = {}) {
  const res = await fetch(url, init);
  const text = await res.text();
  return {
    status: res.status,
    code: res.headers.get('x-ms-error-code'),
    type: res.headers.get('content-type'),
    text,
    requestId: res.headers.get('x-ms-request-id'),
  };
}

/** Sends a PUT with exactly this request target, bypassing URL normalisation. */
function rawPut(target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(Number(uploadUrl.port), uploadUrl.hostname, () => {
      sock.write(
        `PUT ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nx-ms-blob-type: BlockBlob\r\nConnection: close\r\n\r\nx`,
      );
    });
    let out = '';
    sock.on('data', (d) => {
      out += d.toString();
    });
    sock.on('end', () => resolve(out));
    sock.on('error', reject);
  });
}

function expectAzure(res: Awaited<ReturnType<typeof blobCall>>, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.code).toBe(code);
  expect(res.requestId).toBeTruthy();
  if (res.text) {
    expect(res.type).toMatch(/^application\/xml/);
    expect(res.text).toContain(`<Code>${code}</Code>`);
  }
}

describe('bad input', () => {
  it('malformed JSON and protobuf bodies → 400 malformed', async () => {
    expectTwirp(await post('CreateCacheEntry', '{"key":'), 400, 'malformed');
    expectTwirp(await post('CreateCacheEntry', '\u0000\u0001'), 400, 'malformed');
    expectTwirp(
      await post('CreateCacheEntry', new Uint8Array([0x0a, 0xff, 0xff]), {
        'content-type': 'application/protobuf',
      }),
      400,
      'malformed',
    );
  });

  it('wrong content types → bad_route', async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      expectTwirp(await post('CreateCacheEntry', '{}', { 'content-type': type }), 404, 'bad_route');
    }
  });

  it('oversized keys, commas, too many restore keys → invalid_argument', async () => {
    expectTwirp(
      await post('CreateCacheEntry', JSON.stringify({ key: 'k'.repeat(513), version: VERSION })),
      400,
      'invalid_argument',
    );
    expectTwirp(
      await post('CreateCacheEntry', JSON.stringify({ key: 'a,b', version: VERSION })),
      400,
      'invalid_argument',
    );
    expectTwirp(
      await post(
        'GetCacheEntryDownloadURL',
        JSON.stringify({
          key: 'a',
          restore_keys: Array.from({ length: 11 }, (_, i) => `r${i}`),
          version: VERSION,
        }),
      ),
      400,
      'invalid_argument',
    );
  });

  it('keys with ../, NUL and absolute paths are opaque: stored, looked up, never a file name', async () => {
    for (const key of ['../../../../escape', 'a\u0000b', '/etc/passwd', '..\\..\\win']) {
      const res = await twirp(mock.url, mock.token, 'CreateCacheEntry', { key, version: VERSION });
      expect(res.json.ok).toBe(true);
      const url = new URL(res.json.signed_upload_url as string);
      expect(url.pathname).toMatch(/^\/devstoreaccount1\/actions-cache\/[0-9a-f]+$/);
      const put = await blobCall(url, {
        method: 'PUT',
        headers: { 'x-ms-blob-type': 'BlockBlob' },
        body: 'data',
      });
      expect(put.status).toBe(201);
    }
  });

  it('blob paths with encoded .. or NUL, and tampered paths → Azure errors', async () => {
    const base = `${uploadUrl.origin}${uploadUrl.pathname}`;
    for (const path of [`${base}/..%2F..%2F..%2Fescape`, `${base}%2F..%2F..%2Fescape`, `${base}%00`]) {
      const res = await blobCall(`${path}${uploadUrl.search}`, {
        method: 'PUT',
        headers: { 'x-ms-blob-type': 'BlockBlob' },
        body: 'x',
      });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.code).toBeTruthy();
      expect(res.requestId).toBeTruthy();
    }
    // Raw request lines: fetch would normalise `../` and `%2E%2E` segments away.
    for (const path of ['../../../escape', '%2E%2E/%2E%2E/escape', '%2E%2E']) {
      const raw = await rawPut(`/devstoreaccount1/actions-cache/${path}${uploadUrl.search}`);
      expect(raw).toMatch(/^HTTP\/1\.1 4\d\d/);
      expect(raw).toMatch(/x-ms-request-id: \S+/i);
    }
  });

  it('a malformed percent-encoding → InvalidUri (Azure XML) on blob paths, bad_route on Twirp paths', async () => {
    const blob = await blobCall(`${uploadUrl.origin}${uploadUrl.pathname.replace(/[^/]+$/, '%zz')}`);
    expect(blob.status).toBe(400);
    expect(blob.code).toBe('InvalidUri');
    expect(blob.type).toBe('application/xml');
    expect(blob.text).toContain('<Code>InvalidUri</Code>');
    expect(blob.requestId).toBeTruthy();
    expectTwirp(await post('%zz', '{}'), 404, 'bad_route');
  });

  it('forged and alg:none tokens → 401 unauthenticated, nothing created', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = {
      ac: JSON.stringify([{ Scope: 'refs/heads/main', Permission: 3 }]),
      exp: 4102444800,
      nbf: 0,
    };
    for (const token of [
      `${b64({ alg: 'none' })}.${b64(claims)}.`,
      `${b64({ alg: 'HS256' })}.${b64(claims)}.c2lnbmF0dXJl`,
    ]) {
      const res = await twirp(mock.url, token, 'CreateCacheEntry', { key: 'forged', version: VERSION });
      expect(res.status).toBe(401);
      expect(res.json.code).toBe('unauthenticated');
    }
    expect((await mock.storage.metadata.listEntries()).some((e) => e.key === 'forged')).toBe(false);
  });

  it('oversized Twirp bodies → Twirp error; malformed block-list XML → InvalidXmlDocument', async () => {
    expectTwirp(
      await post(
        'CreateCacheEntry',
        JSON.stringify({ key: 'k', version: VERSION, pad: 'x'.repeat(4 << 20) }),
      ),
      400,
      'malformed',
    );
    const list = new URL(uploadUrl);
    list.searchParams.set('comp', 'blocklist');
    for (const body of [
      '<BlockList><Latest>',
      '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><BlockList><Latest>&a;</Latest></BlockList>',
      'not xml',
    ]) {
      expectAzure(
        await blobCall(list, { method: 'PUT', body, headers: { 'content-type': 'application/xml' } }),
        400,
        'InvalidXmlDocument',
      );
    }
  });

  it('missing or tampered signatures → 403 AuthenticationFailed', async () => {
    const noSig = new URL(uploadUrl);
    noSig.searchParams.delete('sig');
    expectAzure(
      await blobCall(noSig, { method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' }, body: 'x' }),
      403,
      'AuthenticationFailed',
    );
    const tampered = new URL(uploadUrl);
    tampered.searchParams.set('se', '2099-01-01T00:00:00Z');
    expectAzure(
      await blobCall(tampered, { method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' }, body: 'x' }),
      403,
      'AuthenticationFailed',
    );
  });

  it('nothing was written outside the data dir and the server still serves', async () => {
    expect((await readdir(root)).sort()).toEqual(['data']);
    const ok = await twirp(mock.url, mock.token, 'CreateCacheEntry', {
      key: 'still-alive',
      version: VERSION,
    });
    expect(ok.json.ok).toBe(true);
    const health = await fetch(new URL('/healthz', mock.url));
    expect(health.status).toBe(200);
  });
});
