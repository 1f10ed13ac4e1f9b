import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  BlobSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import Fastify, { type FastifyInstance, type InjectOptions, type LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createSasSigner } from '../blob/sas.js';
import { createManualClock, type ManualClock } from '../clock.js';
import { type RequestAudit, requestLogPlugin } from '../request-log.js';
import { createMemoryStorage } from '../storage/memory/index.js';
import type { CacheEntry, CacheStorage } from '../storage/types.js';
import { type BlobPluginOptions, blobPlugin } from './blob.js';

const accountName = 'devstoreaccount1';
const containerName = 'actions-cache';
const accountKey = randomBytes(64);
const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);
const MIN = 60_000;
const RFC1123 =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Harness {
  app: FastifyInstance;
  storage: CacheStorage;
  clock: ManualClock;
  /** Reserves a pending entry. */
  reserve(key?: string): Promise<CacheEntry>;
  /** Path + query of a signed URL for `blobId`. */
  url(blobId: string, permissions: string, ttlMs?: number): string;
  /** `inject` that also checks the headers every blob response must carry (C-56, C-57). */
  send(options: InjectOptions): Promise<LightMyRequestResponse>;
  /** `request.audit` of every finished request, in order. */
  audits: RequestAudit[];
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

function checkCommonHeaders(res: LightMyRequestResponse, method: string, sentVersion?: string): void {
  expect(res.headers['x-ms-request-id']).toMatch(UUID);
  expect(res.headers['x-ms-version']).toBe(sentVersion ?? '2024-11-04');
  expect(res.headers.date).toMatch(RFC1123);
  if (res.headers['last-modified'] !== undefined) expect(res.headers['last-modified']).toMatch(RFC1123);
  if (res.headers['x-ms-creation-time'] !== undefined)
    expect(res.headers['x-ms-creation-time']).toMatch(RFC1123);
  if (method !== 'HEAD' && res.statusCode !== 304) {
    expect(res.headers['content-length']).toBe(String(res.rawPayload.length));
  } else {
    expect(res.rawPayload.length).toBe(0);
    expect(res.headers['content-length']).toMatch(/^\d+$/);
  }
  if (res.statusCode >= 400) {
    const code = res.headers['x-ms-error-code'];
    expect(code).toMatch(/^[A-Za-z]+$/);
    if (method !== 'HEAD') {
      expect(res.headers['content-type']).toBe('application/xml');
      expect(res.body).toMatch(
        new RegExp(
          `^<\\?xml version="1.0" encoding="utf-8"\\?><Error><Code>${code}</Code><Message>[^<]+\\nRequestId:${res.headers['x-ms-request-id']}\\nTime:\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{7}Z</Message>.*</Error>$`,
          's',
        ),
      );
    }
  }
}

async function setup(extra: Partial<BlobPluginOptions> = {}): Promise<Harness> {
  const storage = createMemoryStorage();
  const clock = createManualClock(NOW);
  const sas = createSasSigner({ accountName, accountKey });
  const app = Fastify({ exposeHeadRoutes: false });
  apps.push(app);
  const audits: RequestAudit[] = [];
  await app.register(requestLogPlugin);
  app.addHook('onResponse', async (request) => {
    audits.push({ ...request.audit });
  });
  await app.register(blobPlugin, { storage, clock, sas, accountName, containerName, ...extra });
  await app.ready();
  let n = 0;
  return {
    app,
    storage,
    clock,
    audits,
    reserve: async (key = `key-${++n}`) =>
      (await storage.metadata.reserveEntry(
        { repositoryId: '1', scope: 'refs/heads/main', key, version: 'v1' },
        clock.now(),
      ))!,
    url: (blobId, permissions, ttlMs = 10 * MIN) => {
      const u = new URL(
        sas.signBlobUrl(
          'http://127.0.0.1',
          containerName,
          blobId,
          permissions,
          clock.now() + ttlMs,
          clock.now(),
        ),
      );
      return u.pathname + u.search;
    },
    send: async (options) => {
      const res = await app.inject(options);
      const version = (options.headers as Record<string, string> | undefined)?.['x-ms-version'];
      checkCommonHeaders(res, options.method ?? 'GET', version);
      return res;
    },
  };
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const blockXml = (ids: string[], tag = 'Latest') =>
  `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><BlockList>${ids.map((id) => `<${tag}>${id}</${tag}>`).join('')}</BlockList>`;

async function putBlob(h: Harness, url: string, body: Buffer | string, headers: Record<string, string> = {}) {
  return h.send({
    method: 'PUT',
    url,
    payload: body,
    headers: { 'x-ms-blob-type': 'BlockBlob', 'content-length': String(Buffer.byteLength(body)), ...headers },
  });
}
const putBlock = (h: Harness, url: string, id: string, body: Buffer | string) =>
  h.send({
    method: 'PUT',
    url: `${url}&comp=block&blockid=${encodeURIComponent(id)}`,
    payload: body,
    headers: { 'content-length': String(Buffer.byteLength(body)) },
  });
const putBlockList = (h: Harness, url: string, xml: string, headers: Record<string, string> = {}) =>
  h.send({
    method: 'PUT',
    url: `${url}&comp=blocklist`,
    payload: xml,
    headers: {
      'content-type': 'application/xml',
      'content-length': String(Buffer.byteLength(xml)),
      ...headers,
    },
  });
const get = (h: Harness, url: string, headers: Record<string, string> = {}) =>
  h.send({ method: 'GET', url, headers });

/** A committed blob with `content`, and its read/write URLs. */
async function committedBlob(h: Harness, content: Buffer | string) {
  const entry = await h.reserve();
  const write = h.url(entry.blobId, 'cw', 60 * MIN);
  const res = await putBlob(h, write, content);
  expect(res.statusCode).toBe(201);
  return { entry, write, read: h.url(entry.blobId, 'r') };
}

describe('blob plugin: common handling', () => {
  it('C-56/C-57: request id, echoed or default x-ms-version and RFC 1123 dates on success, error and HEAD', async () => {
    const h = await setup();
    const { read, entry } = await committedBlob(h, 'hello');
    const ids = new Set<string>();
    for (const version of ['2026-02-06', '2024-11-04', '2022-11-02', '1999-01-01', undefined]) {
      const headers: Record<string, string> = version ? { 'x-ms-version': version } : {};
      for (const res of [
        await h.send({ method: 'GET', url: read, headers }),
        await h.send({ method: 'HEAD', url: read, headers }),
        await h.send({ method: 'GET', url: h.url(`${entry.blobId}0`, 'r'), headers }),
        await h.send({ method: 'HEAD', url: h.url(`${entry.blobId}0`, 'r'), headers }),
        await h.send({ method: 'PUT', url: read, headers: { ...headers, 'content-length': '0' } }),
      ]) {
        ids.add(String(res.headers['x-ms-request-id']));
      }
    }
    expect(ids.size).toBe(25);
  });

  it('C-53: a request started after se → 403 AuthenticationFailed', async () => {
    const h = await setup();
    const { read } = await committedBlob(h, 'abc');
    h.clock.advance(10 * MIN);
    expect((await get(h, read)).statusCode).toBe(200);
    h.clock.advance(1000);
    const res = await get(h, read);
    expect(res.statusCode).toBe(403);
    expect(res.headers['x-ms-error-code']).toBe('AuthenticationFailed');
    expect(res.body).toContain(
      '<AuthenticationErrorDetail>Signature not valid in the specified time frame: Start [',
    );
  });

  it('C-58: a GO-style re-sorted, re-encoded query with timeout=30 and unknown parameters is authorised', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = new URL(h.url(entry.blobId, 'cw'), 'http://x');
    const id = Buffer.alloc(64, 0xfb).toString('base64'); // contains `+` and `/`
    const params = [
      ...url.searchParams,
      ['comp', 'block'],
      ['blockid', id],
      ['timeout', '30'],
      ['foo', 'bar'],
    ];
    params.sort(([a], [b]) => ((a ?? '') < (b ?? '') ? -1 : 1));
    const query = params
      .map(([k, v]) => `${k}=${encodeURIComponent(v ?? '').replace(/%20/g, '+')}`)
      .join('&');
    expect(query.startsWith('blockid=')).toBe(true);
    const res = await h.send({
      method: 'PUT',
      url: `${url.pathname}?${query}`,
      payload: 'x',
      headers: { 'content-length': '1' },
    });
    expect(res.statusCode).toBe(201);
    // Put Block List (JS order: SAS first, comp appended) with the same id finds the staged block.
    expect(
      (await putBlockList(h, `${url.pathname}${url.search}&timeout=30`, blockXml([id]))).statusCode,
    ).toBe(201);
  });

  it('C-59: PUT bodies with Content-Type octet-stream, xml or none are accepted', async () => {
    const h = await setup();
    for (const type of [
      'application/octet-stream',
      'application/xml',
      'text/plain',
      'application/json',
      undefined,
    ]) {
      const { entry, read } = await committedBlob(h, 'first');
      const headers: Record<string, string> = type ? { 'content-type': type } : {};
      const res = await putBlob(h, h.url(entry.blobId, 'cw'), '{not json', headers);
      expect(res.statusCode, type).toBe(201);
      expect((await get(h, read)).body).toBe('{not json');
    }
  });

  it('C-59: a 128 MiB + 1 body streams through with no 413/415 (app bodyLimit is 1 MiB)', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const body = Buffer.alloc(128 * 1024 * 1024 + 1, 7);
    const res = await putBlob(h, h.url(entry.blobId, 'cw'), body);
    expect(res.statusCode).toBe(201);
    expect((await h.storage.blobs.getBlobProperties(entry.blobId))?.size).toBe(body.length);
  });

  it('C-60: PUT without Content-Length → 411 MissingContentLengthHeader', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    for (const extra of ['', '&comp=block&blockid=QUFB', '&comp=blocklist']) {
      const res = await h.send({
        method: 'PUT',
        url: url + extra,
        payload: Readable.from([Buffer.from('abc')]),
        headers: { 'x-ms-blob-type': 'BlockBlob' },
      });
      expect(res.statusCode).toBe(411);
      expect(res.headers['x-ms-error-code']).toBe('MissingContentLengthHeader');
    }
  });

  it('a body shorter than Content-Length → 400, nothing committed', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const res = await putBlob(h, h.url(entry.blobId, 'cw'), 'abc', { 'content-length': '10' });
    expect(res.statusCode).toBe(400);
    expect(await h.storage.blobs.getBlobProperties(entry.blobId)).toBeUndefined();
  });

  it('a body over the configured Put Blob / Put Block / Put Block List limits → 413 RequestBodyTooLarge', async () => {
    const h = await setup({ maxBlobBytes: 10, maxBlockBytes: 5, maxBlockListBytes: 20 });
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    for (const res of [
      await putBlob(h, url, Buffer.alloc(11)),
      await putBlock(h, url, 'QUFB', Buffer.alloc(6)),
      await putBlockList(h, url, blockXml(['QUFB'])),
    ]) {
      expect(res.statusCode).toBe(413);
      expect(res.headers['x-ms-error-code']).toBe('RequestBodyTooLarge');
    }
    expect((await putBlob(h, url, Buffer.alloc(10))).statusCode).toBe(201);
  });

  it('other comp → 400 InvalidQueryParameterValue; other verbs → 405 UnsupportedHttpVerb', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    for (const comp of ['blocklistx', 'metadata', 'properties', '']) {
      const res = await h.send({
        method: 'PUT',
        url: `${url}&comp=${comp}`,
        headers: { 'content-length': '0' },
      });
      expect(res.statusCode).toBe(400);
      expect(res.headers['x-ms-error-code']).toBe('InvalidQueryParameterValue');
    }
    for (const method of ['DELETE', 'POST', 'PATCH', 'OPTIONS'] as const) {
      const res = await h.send({ method, url });
      expect(res.statusCode).toBe(405);
      expect(res.headers['x-ms-error-code']).toBe('UnsupportedHttpVerb');
    }
  });

  it('blob paths with encoded `/`, NUL, empty names or extra segments → 400 InvalidUri (Azure XML)', async () => {
    // (`..` and `%2E%2E` are normalised away by inject's URL parsing; the socket test sends them raw.)
    const h = await setup();
    const { read, entry } = await committedBlob(h, 'x');
    const query = read.slice(read.indexOf('?'));
    const base = `/${accountName}/${containerName}`;
    for (const path of [`${base}/a%2Fb`, `${base}/a%00`, `${base}/`, base, `${base}/${entry.blobId}/extra`]) {
      for (const method of ['GET', 'HEAD', 'PUT'] as const) {
        const res = await h.send({ method, url: path + query, headers: { 'content-length': '0' } });
        expect(res.statusCode, `${method} ${path}`).toBe(400);
        expect(res.headers['x-ms-error-code'], path).toBe('InvalidUri');
      }
    }
  });

  it('a malformed Content-Type is ignored like any other (no 415)', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const res = await putBlob(h, h.url(entry.blobId, 'cw'), 'abc', {
      'content-type': 'not a / media type;;',
    });
    expect(res.statusCode).toBe(201);
  });

  it('does not claim paths outside /<account>/<container>/ (e.g. /twirp/…)', async () => {
    const h = await setup();
    for (const url of [
      '/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry',
      '/other/actions-cache/x',
    ]) {
      const res = await h.app.inject({ method: 'POST', url, payload: '{}' });
      expect(res.statusCode).toBe(404);
      expect(res.headers['x-ms-request-id']).toBeUndefined();
    }
  });

  it('C-80: errors are application/xml with <Code> equal to x-ms-error-code and a <Message>', async () => {
    const h = await setup();
    const res = await get(h, h.url('nope', 'r'));
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toBe('application/xml');
    expect(res.headers['x-ms-error-code']).toBe('BlobNotFound');
    expect(res.body).toMatch(
      /^<\?xml version="1.0" encoding="utf-8"\?><Error><Code>BlobNotFound<\/Code><Message>The specified blob does not exist.\nRequestId:/,
    );
  });
});

describe('blob plugin: uploads', () => {
  it('C-61: Put Blob → 201 (never 200), empty body, ETag, Last-Modified', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const res = await putBlob(h, h.url(entry.blobId, 'cw'), 'hello world', { 'x-ms-version': '2026-02-06' });
    expect(res.statusCode).toBe(201);
    expect(res.body).toBe('');
    expect(res.headers['content-length']).toBe('0');
    expect(res.headers.etag).toMatch(/^"0x[0-9A-F]+"$/);
    expect(res.headers['last-modified']).toBe(new Date(NOW).toUTCString());
    expect((await h.storage.blobs.getBlobProperties(entry.blobId))?.size).toBe(11);
  });

  it('Put Blob requires x-ms-blob-type: BlockBlob (missing → MissingRequiredHeader, other → InvalidHeaderValue)', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    const missing = await h.send({ method: 'PUT', url, payload: 'x', headers: { 'content-length': '1' } });
    expect(missing.statusCode).toBe(400);
    expect(missing.headers['x-ms-error-code']).toBe('MissingRequiredHeader');
    expect(missing.body).toContain('<HeaderName>x-ms-blob-type</HeaderName>');
    const other = await putBlob(h, url, 'x', { 'x-ms-blob-type': 'AppendBlob' });
    expect(other.statusCode).toBe(400);
    expect(other.headers['x-ms-error-code']).toBe('InvalidHeaderValue');
    expect(await h.storage.blobs.getBlobProperties(entry.blobId)).toBeUndefined();
  });

  it('C-62: Put Blob replaces committed content and drops staged blocks', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    const first = await putBlob(h, url, 'first version');
    expect((await putBlock(h, url, b64('b1'), 'staged')).statusCode).toBe(201);
    const second = await putBlob(h, url, 'second');
    expect(second.headers.etag).not.toBe(first.headers.etag);
    expect((await get(h, h.url(entry.blobId, 'r'))).body).toBe('second');
    const res = await putBlockList(h, url, blockXml([b64('b1')], 'Uncommitted'));
    expect(res.headers['x-ms-error-code']).toBe('InvalidBlockList');
  });

  it('C-63: Put Block → 201; the blob stays absent (GET/HEAD 404 BlobNotFound) until Put Block List', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    const res = await putBlock(h, url, b64('block-1'), 'data');
    expect(res.statusCode).toBe(201);
    expect(res.body).toBe('');
    expect(res.headers['x-ms-request-server-encrypted']).toBe('true');
    const read = h.url(entry.blobId, 'r');
    const missing = await get(h, read);
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['x-ms-error-code']).toBe('BlobNotFound');
    expect((await h.send({ method: 'HEAD', url: read })).statusCode).toBe(404);
    expect((await putBlockList(h, url, blockXml([b64('block-1')]))).statusCode).toBe(201);
    expect((await get(h, read)).body).toBe('data');
  });

  it('C-64: block id not canonical base64 or > 64 bytes → InvalidBlockId; length differing from staged ids → InvalidBlobOrBlock', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    for (const id of ['QQ', 'QR==', 'not base64!', '', Buffer.alloc(65).toString('base64')]) {
      const res = await putBlock(h, url, id, 'x');
      expect(res.statusCode, id).toBe(400);
      expect(res.headers['x-ms-error-code'], id).toBe('InvalidBlockId');
    }
    const noId = await h.send({
      method: 'PUT',
      url: `${url}&comp=block`,
      payload: 'x',
      headers: { 'content-length': '1' },
    });
    expect(noId.statusCode).toBe(400);
    expect((await putBlock(h, url, b64('aaaa'), 'x')).statusCode).toBe(201);
    const res = await putBlock(h, url, b64('bbbbb'), 'x');
    expect(res.statusCode).toBe(400);
    expect(res.headers['x-ms-error-code']).toBe('InvalidBlobOrBlock');
  });

  it('C-65: re-staging an id replaces its data', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    await putBlock(h, url, b64('id-1'), 'old data');
    await putBlock(h, url, b64('id-1'), 'new');
    expect((await putBlockList(h, url, blockXml([b64('id-1')]))).statusCode).toBe(201);
    expect((await get(h, h.url(entry.blobId, 'r'))).body).toBe('new');
  });

  it('C-66: Put Block List → 201 + ETag; content = blocks in list order, whatever the staging order', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    const ids = ['000', '001', '002', '003'].map(b64);
    for (const i of [2, 0, 3, 1]) expect((await putBlock(h, url, ids[i]!, `<${i}>`)).statusCode).toBe(201);
    const res = await putBlockList(h, url, blockXml(ids));
    expect(res.statusCode).toBe(201);
    expect(res.body).toBe('');
    expect(res.headers.etag).toMatch(/^"0x[0-9A-F]+"$/);
    expect(res.headers['last-modified']).toMatch(RFC1123);
    expect((await get(h, h.url(entry.blobId, 'r'))).body).toBe('<0><1><2><3>');
  });

  it('C-67: an unknown block id → 400 InvalidBlockList; blob, ETag and staged blocks unchanged', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    const read = h.url(entry.blobId, 'r');
    const committed = await putBlob(h, url, 'committed');
    await putBlock(h, url, b64('s1'), 'staged');
    const res = await putBlockList(h, url, blockXml([b64('s1'), b64('zz')]));
    expect(res.statusCode).toBe(400);
    expect(res.headers['x-ms-error-code']).toBe('InvalidBlockList');
    expect(res.body).toContain('<Message>The specified block list is invalid.');
    const after = await get(h, read);
    expect(after.body).toBe('committed');
    expect(after.headers.etag).toBe(committed.headers.etag);
    expect((await putBlockList(h, url, blockXml([b64('s1')]))).statusCode).toBe(201);
    expect((await get(h, read)).body).toBe('staged');
  });

  it('C-68: repeating a successful Put Block List → 201, identical content', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    const ids = [b64('x1'), b64('x2')];
    await putBlock(h, url, ids[0]!, 'hello ');
    await putBlock(h, url, ids[1]!, 'world');
    const first = await putBlockList(h, url, blockXml(ids));
    const again = await putBlockList(h, url, blockXml(ids));
    expect(again.statusCode).toBe(201);
    expect(again.headers.etag).not.toBe(first.headers.etag);
    expect((await get(h, h.url(entry.blobId, 'r'))).body).toBe('hello world');
  });

  it('C-69: <Committed> resolves committed only, <Uncommitted> staged only, <Latest> staged then committed', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    const read = h.url(entry.blobId, 'r');
    const [a, b] = [b64('aa'), b64('bb')];
    await putBlock(h, url, a, 'A1');
    await putBlock(h, url, b, 'B1');
    expect((await putBlockList(h, url, blockXml([a, b]))).statusCode).toBe(201);
    // Now a and b are committed; stage a new version of a.
    await putBlock(h, url, a, 'A2');
    const mixed = `<BlockList><Committed>${a}</Committed><Latest>${a}</Latest><Latest>${b}</Latest><Uncommitted>${a}</Uncommitted></BlockList>`;
    expect((await putBlockList(h, url, mixed)).statusCode).toBe(201);
    expect((await get(h, read)).body).toBe('A1A2B1A2');
    // b is committed but not staged: Uncommitted fails; a is not committed any more as... it is; Committed works.
    const bad = await putBlockList(h, url, `<BlockList><Uncommitted>${b}</Uncommitted></BlockList>`);
    expect(bad.headers['x-ms-error-code']).toBe('InvalidBlockList');
    await putBlock(h, url, b, 'B2');
    const committedOnly = await putBlockList(h, url, `<BlockList><Committed>${b}</Committed></BlockList>`);
    expect(committedOnly.statusCode).toBe(201);
    expect((await get(h, read)).body).toBe('B1');
  });

  it('C-70: JS, GO and RS block-list bodies are accepted; <BlockList/> commits an empty blob', async () => {
    const h = await setup();
    const id = b64('only');
    const bodies = [
      `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><BlockList><Latest>${id}</Latest></BlockList>`,
      `<?xml version="1.0" encoding="UTF-8"?>\n<BlockList><Latest>${id}</Latest></BlockList>`,
      `<BlockList><Latest>${id}</Latest></BlockList>`,
    ];
    for (const [i, xml] of bodies.entries()) {
      const entry = await h.reserve();
      const url = h.url(entry.blobId, 'cw');
      await putBlock(h, url, id, 'content');
      // RS sends no Content-Type (inject adds none for a string payload).
      const headers: Record<string, string> = i === 2 ? {} : { 'content-type': 'application/xml' };
      const res = await h.send({
        method: 'PUT',
        url: `${url}&comp=blocklist`,
        payload: xml,
        headers: { 'content-length': String(xml.length), ...headers },
      });
      expect(res.statusCode).toBe(201);
      expect((await get(h, h.url(entry.blobId, 'r'))).body).toBe('content');
    }
    const entry = await h.reserve();
    expect((await putBlockList(h, h.url(entry.blobId, 'cw'), '<BlockList/>')).statusCode).toBe(201);
    const empty = await get(h, h.url(entry.blobId, 'r'));
    expect(empty.statusCode).toBe(200);
    expect(empty.headers['content-length']).toBe('0');
  });

  it('C-71: malformed block-list XML → 400 InvalidXmlDocument; more than 50,000 ids → BlockListTooLong', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    for (const xml of ['<BlockList><Latest>QQ==</Latest>', 'garbage', '<!DOCTYPE x><BlockList/>', ' ']) {
      const res = await putBlockList(h, url, xml);
      expect(res.statusCode).toBe(400);
      expect(res.headers['x-ms-error-code']).toBe('InvalidXmlDocument');
    }
    const tooMany = blockXml(Array.from({ length: 50_001 }, () => Buffer.alloc(64).toString('base64')));
    expect(tooMany.length).toBeLessThan(8 * 1024 * 1024);
    const res = await putBlockList(h, url, tooMany);
    expect(res.statusCode).toBe(400);
    expect(res.headers['x-ms-error-code']).toBe('BlockListTooLong');
  });

  it('C-72: JS (48-byte), GO (64-byte) and RS (16-byte) ids all round-trip', async () => {
    const h = await setup();
    const kinds = {
      js: (i: number) =>
        Buffer.from(`${'c7d2a4e8-1f3b-4c5d-9e6f-0a1b2c3d4e5f'}${String(i).padStart(12, '0')}`).toString(
          'base64',
        ),
      go: (i: number) => {
        const buf = Buffer.alloc(64);
        randomBytes(16).copy(buf);
        buf.writeUInt32BE(i, 16);
        return buf.toString('base64');
      },
      rs: () => randomBytes(16).toString('base64'),
    };
    for (const [name, make] of Object.entries(kinds)) {
      const entry = await h.reserve();
      const url = h.url(entry.blobId, 'cw');
      const ids = [make(0), make(1), make(2)];
      expect(ids[0]!.length).toBe({ js: 64, go: 88, rs: 24 }[name]);
      for (const [i, id] of ids.entries())
        expect((await putBlock(h, url, id, `${name}${i};`)).statusCode).toBe(201);
      expect((await putBlockList(h, url, blockXml(ids))).statusCode).toBe(201);
      expect((await get(h, h.url(entry.blobId, 'r'))).body).toBe(`${name}0;${name}1;${name}2;`);
    }
  });

  it('C-34: a write through an upload URL after Finalize → 403 AuthorizationPermissionMismatch; content unchanged', async () => {
    const h = await setup();
    const { entry, write, read } = await committedBlob(h, 'final');
    await h.storage.metadata.commitEntry(entry.id, 5, h.clock.now());
    for (const res of [
      await putBlob(h, write, 'overwrite'),
      await putBlock(h, write, b64('z'), 'zz'),
      await putBlockList(h, write, '<BlockList/>'),
    ]) {
      expect(res.statusCode).toBe(403);
      expect(res.headers['x-ms-error-code']).toBe('AuthorizationPermissionMismatch');
    }
    expect((await get(h, read)).body).toBe('final');
  });

  it('Put Blob needs c or w (w once the blob exists); blocks need w', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const createOnly = h.url(entry.blobId, 'c');
    expect((await putBlob(h, createOnly, 'one')).statusCode).toBe(201);
    expect((await putBlob(h, createOnly, 'two')).headers['x-ms-error-code']).toBe(
      'AuthorizationPermissionMismatch',
    );
    expect((await putBlock(h, createOnly, b64('q'), 'q')).headers['x-ms-error-code']).toBe(
      'AuthorizationPermissionMismatch',
    );
    expect((await putBlob(h, h.url(entry.blobId, 'w'), 'three')).statusCode).toBe(201);
  });
});

describe('blob plugin: downloads', () => {
  const content = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

  it('C-73: GET without range → 200, exact Content-Length, ETag, Accept-Ranges, x-ms-blob-type and more', async () => {
    const h = await setup();
    const { read } = await committedBlob(h, content);
    const res = await get(h, read);
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.equals(content)).toBe(true);
    expect(res.headers).toMatchObject({
      'content-length': '1000',
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      'x-ms-blob-type': 'BlockBlob',
      'last-modified': new Date(NOW).toUTCString(),
      'x-ms-creation-time': new Date(NOW).toUTCString(),
    });
    expect(res.headers.etag).toMatch(/^"0x[0-9A-F]+"$/);
    expect(res.headers['content-range']).toBeUndefined();
  });

  it('C-74: x-ms-range: bytes=N- → 206, bytes N..end, Content-Range', async () => {
    const h = await setup();
    const { read } = await committedBlob(h, content);
    const res = await get(h, read, { 'x-ms-range': 'bytes=600-' });
    expect(res.statusCode).toBe(206);
    expect(res.rawPayload.equals(content.subarray(600))).toBe(true);
    expect(res.headers['content-range']).toBe('bytes 600-999/1000');
    expect(res.headers['content-length']).toBe('400');
    const whole = await get(h, read, { 'x-ms-range': 'bytes=0-' });
    expect(whole.statusCode).toBe(206);
    expect(whole.headers['content-range']).toBe('bytes 0-999/1000');
  });

  it('C-75: Range: bytes=a-b → exactly b−a+1 bytes; bytes=-n → the last n; clamped past the end', async () => {
    const h = await setup();
    const { read } = await committedBlob(h, content);
    const ab = await get(h, read, { range: 'bytes=10-19' });
    expect(ab.statusCode).toBe(206);
    expect(ab.rawPayload.equals(content.subarray(10, 20))).toBe(true);
    expect(ab.headers['content-range']).toBe('bytes 10-19/1000');
    const suffix = await get(h, read, { range: 'bytes=-5' });
    expect(suffix.rawPayload.equals(content.subarray(995))).toBe(true);
    expect(suffix.headers['content-range']).toBe('bytes 995-999/1000');
    const clamped = await get(h, read, { range: 'bytes=990-5000' });
    expect(clamped.headers['content-range']).toBe('bytes 990-999/1000');
    expect(clamped.rawPayload.length).toBe(10);
    const stat = await get(h, read, { range: 'bytes=0-0' });
    expect(stat.statusCode).toBe(206);
    expect(stat.headers['content-range']).toBe('bytes 0-0/1000');
    const invalid = await get(h, read, { range: 'bytes=9-3' });
    expect(invalid.statusCode).toBe(200);
    expect(invalid.rawPayload.length).toBe(1000);
  });

  it('C-76: with both headers, x-ms-range wins', async () => {
    const h = await setup();
    const { read } = await committedBlob(h, content);
    const res = await get(h, read, { 'x-ms-range': 'bytes=100-109', range: 'bytes=0-1' });
    expect(res.headers['content-range']).toBe('bytes 100-109/1000');
    expect(res.rawPayload.equals(content.subarray(100, 110))).toBe(true);
  });

  it('C-77: range start ≥ size (incl. bytes=0-0 on an empty blob) → 416 InvalidRange, Content-Range: bytes */size', async () => {
    const h = await setup();
    const { read } = await committedBlob(h, content);
    const res = await get(h, read, { range: 'bytes=1000-' });
    expect(res.statusCode).toBe(416);
    expect(res.headers['x-ms-error-code']).toBe('InvalidRange');
    expect(res.headers['content-range']).toBe('bytes */1000');
    const empty = await committedBlob(h, '');
    const e = await get(h, empty.read, { range: 'bytes=0-0' });
    expect(e.statusCode).toBe(416);
    expect(e.headers['content-range']).toBe('bytes */0');
    const full = await get(h, empty.read);
    expect(full.statusCode).toBe(200);
    expect(full.headers['content-length']).toBe('0');
  });

  it('C-78: HEAD → 200, no body, Content-Length = size; missing → 404, no body, x-ms-error-code', async () => {
    const h = await setup();
    const { read } = await committedBlob(h, content);
    const res = await h.send({ method: 'HEAD', url: read, headers: { range: 'bytes=0-0' } });
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.length).toBe(0);
    expect(res.headers['content-length']).toBe('1000');
    expect(res.headers.etag).toMatch(/^"0x/);
    expect(res.headers['x-ms-blob-type']).toBe('BlockBlob');
    const missing = await h.send({ method: 'HEAD', url: h.url('0123abcd', 'r') });
    expect(missing.statusCode).toBe(404);
    expect(missing.rawPayload.length).toBe(0);
    expect(missing.headers['x-ms-error-code']).toBe('BlobNotFound');
  });

  it('C-79: a non-matching If-Match → 412 ConditionNotMet; `*` and the ETag match; If-None-Match → 304', async () => {
    const h = await setup();
    const { read } = await committedBlob(h, content);
    const etag = String((await get(h, read)).headers.etag);
    const res = await get(h, read, { 'if-match': '"0x1"' });
    expect(res.statusCode).toBe(412);
    expect(res.headers['x-ms-error-code']).toBe('ConditionNotMet');
    expect((await get(h, read, { 'if-match': '*' })).statusCode).toBe(200);
    expect((await get(h, read, { 'if-match': etag, 'x-ms-range': 'bytes=1-2' })).statusCode).toBe(206);
    const notModified = await get(h, read, { 'if-none-match': etag });
    expect(notModified.statusCode).toBe(304);
    expect(notModified.rawPayload.length).toBe(0);
    expect((await get(h, read, { 'if-none-match': '"0x1"' })).statusCode).toBe(200);
  });

  it('C-83: a download URL (sp=r) used to PUT → 403 AuthorizationPermissionMismatch; an upload URL cannot read', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const read = h.url(entry.blobId, 'r');
    for (const res of [
      await putBlob(h, read, 'x'),
      await putBlock(h, read, b64('a'), 'x'),
      await putBlockList(h, read, '<BlockList/>'),
    ]) {
      expect(res.statusCode).toBe(403);
      expect(res.headers['x-ms-error-code']).toBe('AuthorizationPermissionMismatch');
    }
    await putBlob(h, h.url(entry.blobId, 'cw'), 'x');
    const res = await get(h, h.url(entry.blobId, 'cw'));
    expect(res.headers['x-ms-error-code']).toBe('AuthorizationPermissionMismatch');
  });

  it('C-82: missing or tampered sig, or a tampered path → 403 AuthenticationFailed', async () => {
    const h = await setup();
    const { read, entry } = await committedBlob(h, content);
    const other = await committedBlob(h, 'other');
    const [path, query] = read.split('?') as [string, string];
    const sig = new URLSearchParams(query).get('sig')!;
    const tampered = query.replace(
      encodeURIComponent(sig),
      encodeURIComponent(`${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`),
    );
    for (const url of [
      path,
      `${path}?${query.replace(/&sig=[^&]*/, '')}`,
      `${path}?${tampered}`,
      `${other.read.split('?')[0]}?${query}`,
      `${path}?${query.replace('sp=r', 'sp=rw')}`,
    ]) {
      const res = await get(h, url);
      expect(res.statusCode, url).toBe(403);
      expect(res.headers['x-ms-error-code']).toBe('AuthenticationFailed');
    }
    expect(entry.blobId).not.toBe(other.entry.blobId);
  });

  it('C-84: a SAS from generateBlobSASQueryParameters with the mock key and the same fields is accepted', async () => {
    const h = await setup();
    const { entry } = await committedBlob(h, content);
    const sas = generateBlobSASQueryParameters(
      {
        containerName,
        blobName: entry.blobId,
        permissions: BlobSASPermissions.parse('r'),
        startsOn: new Date(NOW - MIN),
        expiresOn: new Date(NOW + MIN),
      },
      new StorageSharedKeyCredential(accountName, accountKey.toString('base64')),
    ).toString();
    const res = await get(h, `/${accountName}/${containerName}/${entry.blobId}?${sas}`, {
      'x-ms-range': 'bytes=0-9',
    });
    expect(res.statusCode).toBe(206);
    expect(res.rawPayload.equals(content.subarray(0, 10))).toBe(true);
  });

  it('reads do not need a live entry: blobs retained after eviction stay readable (C-50 support)', async () => {
    const h = await setup();
    const { entry, read } = await committedBlob(h, 'kept');
    await h.storage.metadata.commitEntry(entry.id, 4, NOW);
    await h.storage.metadata.touchEntry(entry.id, NOW, NOW + 10 * MIN);
    await h.storage.deleteEntry(entry.id, NOW);
    expect((await get(h, read)).body).toBe('kept');
  });

  it('records the blob operation and bytes in the request audit', async () => {
    const h = await setup();
    const entry = await h.reserve();
    const url = h.url(entry.blobId, 'cw');
    await putBlob(h, url, 'abcdef');
    await putBlock(h, url, b64('a'), 'xyz');
    await putBlockList(h, url, blockXml([b64('a')]));
    await get(h, h.url(entry.blobId, 'r'), { range: 'bytes=1-' });
    await h.send({ method: 'HEAD', url: h.url(entry.blobId, 'r') });
    expect(h.audits).toEqual([
      { op: 'PutBlob', bytes: 6 },
      { op: 'PutBlock', bytes: 3 },
      { op: 'PutBlockList', bytes: blockXml([b64('a')]).length },
      { op: 'GetBlob', bytes: 2 },
      { op: 'GetBlobProperties' },
    ]);
  });
});

describe('blob plugin: options', () => {
  it('refuses a signer for another account or a bad container name', async () => {
    const app = Fastify();
    apps.push(app);
    const storage = createMemoryStorage();
    const clock = createManualClock(NOW);
    await expect(
      app
        .register(blobPlugin, {
          storage,
          clock,
          sas: createSasSigner({ accountName: 'other', accountKey }),
          accountName,
          containerName,
        })
        .ready(),
    ).rejects.toThrow(/signs for "other"/);
  });
});
