import { randomBytes } from 'node:crypto';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { create, toBinary } from '@bufbuild/protobuf';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp, VERSION } from '../../testing/twirp-helpers.js';
import type { FaultRuleInput } from '../faults/types.js';
import { GetCacheEntryDownloadURLRequestSchema } from '../gen/results/api/v1/cache_pb.js';
import { SERVICE_PATH } from './twirp.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Harness extends TestApp {
  logs: Record<string, unknown>[];
  /** Path + query of the download URL of a saved entry. */
  downloadPath(key: string): Promise<string>;
  /** Path + query of the upload URL of a new reservation. */
  uploadPath(key: string): Promise<string>;
}

const apps: TestApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((t) => t.app.close()));
});

async function setup(faults: FaultRuleInput[] = []): Promise<Harness> {
  const logs: Record<string, unknown>[] = [];
  const t = await createTestApp({
    faults,
    logger: { level: 'info', stream: { write: (line: string) => logs.push(JSON.parse(line)) } },
  });
  apps.push(t);
  const pathOf = (url: string) => {
    const u = new URL(url);
    return u.pathname + u.search;
  };
  return {
    ...t,
    logs,
    downloadPath: async (key) => pathOf((await t.get(key)).signed_download_url as string),
    uploadPath: async (key) => {
      const res = await t.rpc('CreateCacheEntry', { key, version: VERSION });
      return pathOf(res.json().signed_upload_url);
    },
  };
}

const faultLines = (h: Harness) => h.logs.filter((l) => l.msg === 'fault');
const requestLines = (h: Harness) => h.logs.filter((l) => l.msg === 'request');

describe('faults plugin: Twirp RPCs', () => {
  it('status: 500 twice as Twirp JSON, then the RPC runs; each firing logged with rule id and action', async () => {
    const h = await setup([
      { id: 'boom', op: 'CreateCacheEntry', times: 2, action: { type: 'status', status: 500 } },
    ]);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await h.rpc('CreateCacheEntry', { key: 'k', version: VERSION });
      statuses.push(res.statusCode);
      if (res.statusCode === 500) {
        expect(res.headers['content-type']).toBe('application/json');
        expect(res.json()).toEqual({ code: 'internal', msg: 'injected fault boom' });
      }
    }
    expect(statuses).toEqual([500, 500, 200]);
    expect(faultLines(h)).toEqual([
      expect.objectContaining({ fault: 'boom', action: 'status', op: 'CreateCacheEntry', fired: 1 }),
      expect.objectContaining({ fault: 'boom', action: 'status', op: 'CreateCacheEntry', fired: 2 }),
    ]);
    expect(requestLines(h).map((l) => [l.status, l.fault])).toEqual([
      [500, 'boom'],
      [500, 'boom'],
      [200, undefined],
    ]);
    expect(h.app.mock.faults.list()[0]).toMatchObject({ matched: 3, fired: 2 });
  });

  it('status 429: resource_exhausted with Retry-After (given, or 1 s by default)', async () => {
    const h = await setup([
      { op: 'CreateCacheEntry', nth: 1, action: { type: 'status', status: 429, retryAfterSeconds: 3 } },
      { op: 'CreateCacheEntry', nth: 2, action: { type: 'status', status: 429 } },
    ]);
    const first = await h.rpc('CreateCacheEntry', { key: 'k', version: VERSION });
    expect(first.statusCode).toBe(429);
    expect(first.headers['retry-after']).toBe('3');
    expect(first.json()).toEqual({ code: 'resource_exhausted', msg: 'rate limit exceeded' });
    const second = await h.rpc('CreateCacheEntry', { key: 'k', version: VERSION });
    expect([second.statusCode, second.headers['retry-after']]).toEqual([429, '1']);
  });

  it('matches the key in JSON and protobuf bodies; other keys pass', async () => {
    const h = await setup([
      { op: 'GetCacheEntryDownloadURL', key: 'wanted-*', action: { type: 'status', status: 503 } },
    ]);
    const json = await h.rpc('GetCacheEntryDownloadURL', { key: 'wanted-1', version: VERSION });
    expect([json.statusCode, json.json().code]).toEqual([503, 'unavailable']);
    expect((await h.rpc('GetCacheEntryDownloadURL', { key: 'other', version: VERSION })).statusCode).toBe(
      200,
    );
    const body = toBinary(
      GetCacheEntryDownloadURLRequestSchema,
      create(GetCacheEntryDownloadURLRequestSchema, { key: 'wanted-2', version: VERSION }),
    );
    const proto = await h.app.inject({
      method: 'POST',
      url: `${SERVICE_PATH}GetCacheEntryDownloadURL`,
      headers: { 'content-type': 'application/protobuf', authorization: `Bearer ${h.token()}` },
      payload: Buffer.from(body),
    });
    expect([proto.statusCode, proto.headers['content-type'], proto.json().code]).toEqual([
      503,
      'application/json',
      'unavailable',
    ]);
    expect(faultLines(h).map((l) => l.key)).toEqual(['wanted-1', 'wanted-2']);
  });

  it('non-json: a proxy-style HTML 502 (or the given status, type and body)', async () => {
    const h = await setup([
      { op: 'FinalizeCacheEntryUpload', nth: 1, action: { type: 'non-json' } },
      {
        op: 'FinalizeCacheEntryUpload',
        nth: 2,
        action: { type: 'non-json', status: 200, contentType: 'text/plain', body: 'ok?' },
      },
    ]);
    const html = await h.rpc('FinalizeCacheEntryUpload', { key: 'k', version: VERSION, size_bytes: '1' });
    expect([html.statusCode, html.headers['content-type']]).toEqual([502, 'text/html']);
    expect(html.body).toMatch(/^<html>[\s\S]*502 Bad Gateway/);
    const plain = await h.rpc('FinalizeCacheEntryUpload', { key: 'k', version: VERSION, size_bytes: '1' });
    expect([plain.statusCode, plain.headers['content-type'], plain.body]).toEqual([200, 'text/plain', 'ok?']);
  });

  it('latency delays the answer', async () => {
    const h = await setup([{ op: 'GetCacheEntryDownloadURL', action: { type: 'latency', ms: 150 } }]);
    const t0 = performance.now();
    const res = await h.rpc('GetCacheEntryDownloadURL', { key: 'k', version: VERSION });
    expect(res.statusCode).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('rules added and removed at run time through app.mock.faults take effect at once', async () => {
    const h = await setup();
    const rule = h.app.mock.faults.add({ op: 'CreateCacheEntry', action: { type: 'status', status: 500 } });
    expect((await h.rpc('CreateCacheEntry', { key: 'k', version: VERSION })).statusCode).toBe(500);
    expect(h.app.mock.faults.remove(rule.id)).toBe(true);
    expect((await h.rpc('CreateCacheEntry', { key: 'k', version: VERSION })).statusCode).toBe(200);
  });
});

describe('faults plugin: blob operations', () => {
  it('status 503 on GetBlob: Azure XML ServerBusy with request id, version and x-ms-retry-after-ms 50', async () => {
    const h = await setup([{ op: 'GetBlob', times: 1, action: { type: 'status', status: 503 } }]);
    await h.save('k', 'hello');
    const path = await h.downloadPath('k');
    const res = await h.app.inject({ method: 'GET', url: path, headers: { 'x-ms-version': '2025-01-05' } });
    expect(res.statusCode).toBe(503);
    expect(res.headers).toMatchObject({
      'x-ms-error-code': 'ServerBusy',
      'x-ms-retry-after-ms': '50',
      'x-ms-version': '2025-01-05',
      'content-type': 'application/xml',
    });
    expect(res.headers['x-ms-request-id']).toMatch(UUID);
    expect(res.body).toContain('<Code>ServerBusy</Code>');
    expect(res.headers.etag).toBeUndefined();
    const ok = await h.app.inject({ method: 'GET', url: path });
    expect([ok.statusCode, ok.body]).toEqual([200, 'hello']);
  });

  it('HEAD errors have no body; code and Retry-After as asked; 429 on a blob carries both retry headers', async () => {
    const h = await setup([
      { op: 'HeadBlob', action: { type: 'status', status: 500, code: 'OperationTimedOut' } },
      { op: 'GetBlob', action: { type: 'status', status: 429, retryAfterSeconds: 2 } },
    ]);
    await h.save('k');
    const path = await h.downloadPath('k');
    const head = await h.app.inject({ method: 'HEAD', url: path });
    expect([head.statusCode, head.headers['x-ms-error-code'], head.body]).toEqual([
      500,
      'OperationTimedOut',
      '',
    ]);
    const get = await h.app.inject({ method: 'GET', url: path });
    expect(get.headers).toMatchObject({ 'retry-after': '2', 'x-ms-retry-after-ms': '2000' });
  });

  it('key patterns match the key of the entry behind the blob', async () => {
    const h = await setup([{ op: 'GetBlob', key: '/^a-/', action: { type: 'status', status: 500 } }]);
    await h.save('a-1', 'A');
    await h.save('b-1', 'B');
    expect((await h.app.inject({ method: 'GET', url: await h.downloadPath('a-1') })).statusCode).toBe(500);
    expect((await h.app.inject({ method: 'GET', url: await h.downloadPath('b-1') })).body).toBe('B');
  });

  it('expire-url: a valid SAS answered 403 AuthenticationFailed with the expiry detail, once', async () => {
    const h = await setup([{ op: 'GetBlob', times: 1, action: { type: 'expire-url' } }]);
    await h.save('k', 'data');
    const path = await h.downloadPath('k');
    const expired = await h.app.inject({ method: 'GET', url: path });
    expect([expired.statusCode, expired.headers['x-ms-error-code']]).toEqual([403, 'AuthenticationFailed']);
    expect(expired.body).toMatch(
      /<AuthenticationErrorDetail>Signature not valid in the specified time frame: Start \[\w{3}, .+ GMT\] - Expiry \[\w{3}, .+ GMT\] - Current \[\w{3}, .+ GMT\]<\/AuthenticationErrorDetail>/,
    );
    expect((await h.app.inject({ method: 'GET', url: path })).body).toBe('data');
    // The answered request is logged under its op, with the rule that answered it.
    expect(
      requestLines(h)
        .slice(-2)
        .map((l) => [l.op, l.status, l.fault]),
    ).toEqual([
      ['GetBlob', 403, 'f1'],
      ['GetBlob', 200, undefined],
    ]);
  });

  it('status on an upload: Put Blob answered 500 InternalError and nothing is stored', async () => {
    const h = await setup([{ op: 'PutBlob', times: 1, action: { type: 'status', status: 500 } }]);
    const path = await h.uploadPath('up');
    const put = () =>
      h.app.inject({ method: 'PUT', url: path, headers: { 'x-ms-blob-type': 'BlockBlob' }, payload: 'abc' });
    const failed = await put();
    expect([failed.statusCode, failed.headers['x-ms-error-code']]).toEqual([500, 'InternalError']);
    const blobId = path.split('?')[0]!.split('/').pop()!;
    expect(await h.app.mock.storage.blobs.getBlobProperties(blobId)).toBeUndefined();
    expect((await put()).statusCode).toBe(201);
  });
});

interface RawResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** How the body ended: `end` (complete), or the error that cut it. */
  ending: string;
}

/** One request over a real socket, reporting exactly what arrived and how the connection ended. */
async function raw(
  origin: string,
  method: string,
  path: string,
  body?: Buffer,
  headers: Record<string, string> = {},
) {
  const url = new URL(path, origin);
  // Keep-alive, as real clients: the mock must end the connection itself when it cuts a body short.
  const agent = new Agent({ keepAlive: true });
  return new Promise<RawResult>((resolve, reject) => {
    const req = httpRequest(url, {
      method,
      headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
      agent,
    });
    let done: ((ending: string) => void) | undefined;
    // A reset after the response began ends the body (newer Node.js reports it on the request too).
    req.on('error', (err: NodeJS.ErrnoException) =>
      done ? done(err.code ?? err.message) : reject(Object.assign(err, { phase: 'request' })),
    );
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      done = (ending: string) =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ending });
      res.on('end', () => done?.('end'));
      res.on('aborted', () => done?.('aborted'));
      res.on('error', (err: NodeJS.ErrnoException) => done?.(err.code ?? err.message));
    });
    req.end(body);
  }).finally(() => agent.destroy());
}

async function listen(h: Harness): Promise<string> {
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
}

describe('faults plugin: bodies over real sockets', () => {
  const data = randomBytes(200_000);

  it('throttle paces a download; without a firing rule the same download is not slowed', async () => {
    const h = await setup([{ op: 'GetBlob', nth: 1, action: { type: 'throttle', bytesPerSecond: 400_000 } }]);
    await h.save('k', data);
    const origin = await listen(h);
    const path = await h.downloadPath('k');
    const t0 = performance.now();
    const slow = await raw(origin, 'GET', path);
    const slowMs = performance.now() - t0;
    expect(slow.body.equals(data)).toBe(true);
    expect(slowMs).toBeGreaterThanOrEqual(450);
    const fast = await raw(origin, 'GET', path);
    expect(fast.body.equals(data)).toBe(true);
    // The rule fired for the first download only (a count, not a time a loaded machine could stretch).
    expect(h.app.mock.faults.list().map((r) => r.fired)).toEqual([1]);
    expect(faultLines(h)).toHaveLength(1);
  });

  it('drop: the connection is reset after at most N body bytes', async () => {
    const h = await setup([{ op: 'GetBlob', times: 1, action: { type: 'drop', afterBytes: 70_000 } }]);
    await h.save('k', data);
    const origin = await listen(h);
    const path = await h.downloadPath('k');
    const cut = await raw(origin, 'GET', path);
    expect(cut.status).toBe(200);
    expect(cut.headers['content-length']).toBe(String(data.length));
    expect(cut.ending).not.toBe('end');
    expect(cut.body.length).toBeLessThanOrEqual(70_000);
    expect(cut.body.equals(data.subarray(0, cut.body.length))).toBe(true);
    expect((await raw(origin, 'GET', path)).body.equals(data)).toBe(true);
  });

  it('truncate: full Content-Length, exactly N bytes, then a clean close (a download and a Twirp answer)', async () => {
    const h = await setup([
      { op: 'GetBlob', times: 1, action: { type: 'truncate', afterBytes: 1234 } },
      { op: 'GetCacheEntryDownloadURL', nth: 2, action: { type: 'truncate', afterBytes: 10 } },
    ]);
    await h.save('k', data);
    const origin = await listen(h);
    const path = await h.downloadPath('k');
    const short = await raw(origin, 'GET', path);
    expect(short.headers['content-length']).toBe(String(data.length));
    expect(short.body.equals(data.subarray(0, 1234))).toBe(true);
    expect(short.ending).toBe('aborted');
    expect(short.headers.connection).toBe('close');
    const twirp = await raw(
      origin,
      'POST',
      `${SERVICE_PATH}GetCacheEntryDownloadURL`,
      Buffer.from(JSON.stringify({ key: 'k', version: VERSION })),
      { 'content-type': 'application/json', authorization: `Bearer ${h.token()}` },
    );
    expect(Number(twirp.headers['content-length'])).toBeGreaterThan(10);
    expect(twirp.body.toString()).toBe('{"ok":true');
    expect(twirp.ending).toBe('aborted');
  });

  it('throttle and drop on uploads apply to the request body', async () => {
    const h = await setup([
      { op: 'PutBlob', nth: 1, action: { type: 'throttle', bytesPerSecond: 400_000 } },
      { op: 'PutBlob', nth: 2, action: { type: 'drop', afterBytes: 50_000 } },
    ]);
    const origin = await listen(h);
    const path = await h.uploadPath('up');
    const headers = { 'x-ms-blob-type': 'BlockBlob' };
    const t0 = performance.now();
    const slow = await raw(origin, 'PUT', path, data, headers);
    expect(slow.status).toBe(201);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
    const dropped = await raw(origin, 'PUT', path, randomBytes(200_000), headers).then(
      (r) => `status ${r.status}: ${r.body.toString()}`,
      (err: NodeJS.ErrnoException) => err.code,
    );
    expect(dropped).toMatch(/^(ECONNRESET|EPIPE)$/);
    // The first upload stands; the cut one changed nothing.
    const blobId = path.split('?')[0]!.split('/').pop()!;
    const { stream } = await h.app.mock.storage.blobs.openBlob(blobId);
    const stored: Buffer[] = [];
    for await (const c of stream) stored.push(c as Buffer);
    expect(Buffer.concat(stored).equals(data)).toBe(true);
  });
});
