import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BlobSASPermissions,
  BlockBlobClient,
  generateBlobSASQueryParameters,
  RestError,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasSigner } from '../blob/sas.js';
import { createManualClock } from '../clock.js';
import { requestLogPlugin } from '../request-log.js';
import { createMemoryStorage } from '../storage/memory/index.js';
import { composeStorage } from '../storage/storage.js';
import type { BlobStore, CacheStorage } from '../storage/types.js';
import { blobPlugin } from './blob.js';

// Real sockets on port 0, driven by @azure/storage-blob 12.31 and raw node:http.

const accountName = 'devstoreaccount1';
const containerName = 'actions-cache';
const accountKey = randomBytes(64);
const MIN = 60_000;
const clock = createManualClock(Date.now());
const sas = createSasSigner({ accountName, accountKey });
const memory = createMemoryStorage();
/** Upload completions (success or failure), observed through a thin delegating seam. */
const settled: Array<{ op: string; blobId: string; ok: boolean }> = [];
let onSettled: (() => void) | undefined;
let onStarted: (() => void) | undefined;
const blobs: BlobStore = Object.create(memory.blobs, {
  putBlob: {
    value: async (...args: Parameters<BlobStore['putBlob']>) =>
      observe('putBlob', args[0], memory.blobs.putBlob(...args)),
  },
  putBlock: {
    value: async (...args: Parameters<BlobStore['putBlock']>) =>
      observe('putBlock', args[0], memory.blobs.putBlock(...args)),
  },
});
const storage: CacheStorage = composeStorage(memory.metadata, blobs, 'memory');
async function observe<T>(op: string, blobId: string, work: Promise<T>): Promise<T> {
  onStarted?.();
  try {
    const result = await work;
    settled.push({ op, blobId, ok: true });
    return result;
  } catch (err) {
    settled.push({ op, blobId, ok: false });
    throw err;
  } finally {
    onSettled?.();
  }
}

let app: FastifyInstance;
let base: string;
let n = 0;
const reserve = async () =>
  (await storage.metadata.reserveEntry(
    { repositoryId: '1', scope: 'refs/heads/main', key: `k${++n}`, version: 'v' },
    clock.now(),
  ))!;
const signed = (blobId: string, permissions: string, ttlMs = 10 * MIN) =>
  sas.signBlobUrl(base, containerName, blobId, permissions, clock.now() + ttlMs, clock.now());

beforeAll(async () => {
  app = Fastify({ exposeHeadRoutes: false });
  await app.register(requestLogPlugin);
  await app.register(blobPlugin, { storage, clock, sas, accountName, containerName });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app.close();
});

async function restError(work: Promise<unknown>): Promise<RestError> {
  try {
    await work;
  } catch (err) {
    expect(err).toBeInstanceOf(RestError);
    return err as RestError;
  }
  throw new Error('expected a RestError');
}

/** Raw HTTP, so paths reach the server exactly as written. */
function raw(
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ res: IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base);
    const req = httpRequest({ hostname, port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ res, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('blob plugin over real sockets with @azure/storage-blob', () => {
  it('C-55/C-66/C-72/C-74: BlockBlobClient stages blocks out of order, commits, and downloads ranges', async () => {
    const entry = await reserve();
    const uploader = new BlockBlobClient(signed(entry.blobId, 'cw', 60 * MIN));
    expect(uploader.containerName).toBe(containerName);
    expect(uploader.name).toBe(entry.blobId);
    const parts = [randomBytes(300_000), randomBytes(200_000), randomBytes(123_457)];
    const ids = parts.map((_, i) => Buffer.from(`block-${String(i).padStart(6, '0')}`).toString('base64'));
    for (const i of [2, 0, 1]) {
      const res = await uploader.stageBlock(ids[i]!, parts[i]!, parts[i]!.length);
      expect(res._response.status).toBe(201);
      expect(res.requestId).toBeTruthy();
    }
    const commit = await uploader.commitBlockList(ids);
    expect(commit._response.status).toBe(201);
    expect(commit.etag).toMatch(/^"0x/);
    expect(commit.requestId).toBeTruthy();

    const all = Buffer.concat(parts);
    const reader = new BlockBlobClient(signed(entry.blobId, 'r'));
    const props = await reader.getProperties();
    expect(props.contentLength).toBe(all.length);
    expect(props.etag).toBe(commit.etag);
    expect(props.blobType).toBe('BlockBlob');
    expect((await reader.downloadToBuffer()).equals(all)).toBe(true);
    // Segmented like the SDK's parallel download: 4 MiB is larger than the blob, so ask small ranges.
    expect(
      (await reader.downloadToBuffer(0, undefined, { blockSize: 65_536, concurrency: 4 })).equals(all),
    ).toBe(true);
    const ranged = await reader.download(300_000, 1000);
    expect(ranged._response.status).toBe(206);
    expect(ranged.contentRange).toBe(`bytes 300000-300999/${all.length}`);
    const chunks: Buffer[] = [];
    for await (const c of ranged.readableStreamBody!) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(all.subarray(300_000, 301_000))).toBe(true);
    const tail = await reader.downloadToBuffer(all.length - 10);
    expect(tail.equals(all.subarray(-10))).toBe(true);
  });

  it('C-61/C-62: uploadData (Put Blob) → 201, then replaces the content', async () => {
    const entry = await reserve();
    const uploader = new BlockBlobClient(signed(entry.blobId, 'cw'));
    const first = await uploader.uploadData(Buffer.from('first'));
    expect(first._response.status).toBe(201);
    const second = await uploader.uploadData(Buffer.from('second!'));
    expect(second.etag).not.toBe(first.etag);
    const reader = new BlockBlobClient(signed(entry.blobId, 'r'));
    expect((await reader.downloadToBuffer()).toString()).toBe('second!');
  });

  it('C-84: a generateBlobSASQueryParameters URL with the mock key downloads', async () => {
    const entry = await reserve();
    await new BlockBlobClient(signed(entry.blobId, 'cw')).uploadData(Buffer.from('minted by the SDK'));
    const query = generateBlobSASQueryParameters(
      {
        containerName,
        blobName: entry.blobId,
        permissions: BlobSASPermissions.parse('r'),
        startsOn: new Date(clock.now() - MIN),
        expiresOn: new Date(clock.now() + MIN),
      },
      new StorageSharedKeyCredential(accountName, accountKey.toString('base64')),
    ).toString();
    const client = new BlockBlobClient(`${base}/${accountName}/${containerName}/${entry.blobId}?${query}`);
    expect((await client.downloadToBuffer()).toString()).toBe('minted by the SDK');
  });

  it('C-78/C-82/C-83: SDK errors carry the Azure codes (HEAD 404 included)', async () => {
    const entry = await reserve();
    const readUrl = signed(entry.blobId, 'r');
    const missing = await restError(new BlockBlobClient(readUrl).getProperties());
    expect(missing.statusCode).toBe(404);
    // HEAD has no body: the SDK reads the code from x-ms-error-code only.
    expect((missing.details as { errorCode?: string }).errorCode).toBe('BlobNotFound');
    const wrongPermission = await restError(new BlockBlobClient(readUrl).uploadData(Buffer.from('x')));
    expect(wrongPermission.statusCode).toBe(403);
    expect(wrongPermission.code).toBe('AuthorizationPermissionMismatch');
    const tampered = readUrl.replace(/sig=([^&])/, (_m, c: string) => `sig=${c === 'A' ? 'B' : 'A'}`);
    const badSig = await restError(new BlockBlobClient(tampered).download());
    expect(badSig.statusCode).toBe(403);
    expect(badSig.code).toBe('AuthenticationFailed');
  });

  it('C-53/C-81: a 10 MiB GET starts promptly and completes even though se passes mid-transfer', async () => {
    const entry = await reserve();
    const content = randomBytes(10 * 1024 * 1024);
    await new BlockBlobClient(signed(entry.blobId, 'cw')).uploadData(content);
    const url = signed(entry.blobId, 'r', MIN);
    const started = performance.now();
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(content.length));
    const reader = res.body!.getReader();
    const first = await reader.read();
    // Streams promptly: the first bytes arrive well before the 5 s idle limit of @actions/cache's plain GET
    // (milliseconds here; the bound leaves room for a loaded machine).
    expect(performance.now() - started).toBeLessThan(4000);
    clock.advance(2 * MIN); // the URL is now expired; the transfer in flight must not be cut
    const chunks = [Buffer.from(first.value!)];
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(Buffer.from(r.value));
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
    const late = await fetch(url);
    expect(late.status).toBe(403);
    expect(late.headers.get('x-ms-error-code')).toBe('AuthenticationFailed');
    await late.arrayBuffer();
  });

  it('raw `..`, `%2E%2E` and extra segments reach the server and get a clean Azure error', async () => {
    const entry = await reserve();
    await new BlockBlobClient(signed(entry.blobId, 'cw')).uploadData(Buffer.from('x'));
    const query = new URL(signed(entry.blobId, 'r')).search;
    const prefix = `/${accountName}/${containerName}`;
    for (const path of [
      `${prefix}/..`,
      `${prefix}/%2E%2E`,
      `${prefix}/.`,
      `${prefix}/x/../${entry.blobId}`,
      `${prefix}/a%00b`,
    ]) {
      const { res, body } = await raw('GET', path + query);
      expect(res.statusCode, path).toBe(400);
      expect(res.headers['x-ms-error-code']).toBe('InvalidUri');
      expect(res.headers['content-type']).toBe('application/xml');
      expect(res.headers['x-ms-request-id']).toBeTruthy();
      expect(body).toContain('<Code>InvalidUri</Code>');
    }
  });

  it('a client abort mid-upload (Put Blob and Put Block) commits nothing and the server keeps serving', async () => {
    const entry = await reserve();
    const url = new URL(signed(entry.blobId, 'cw'));
    const blockId = Buffer.from('aborted-block').toString('base64');
    for (const [op, extra] of [
      ['putBlob', ''],
      ['putBlock', `&comp=block&blockid=${encodeURIComponent(blockId)}`],
    ] as const) {
      const started = new Promise<void>((resolve) => {
        onStarted = resolve;
      });
      const done = new Promise<void>((resolve) => {
        onSettled = resolve;
      });
      const req = httpRequest(`${url.href}${extra}`, {
        method: 'PUT',
        headers: { 'content-length': String(4 * 1024 * 1024), 'x-ms-blob-type': 'BlockBlob' },
      });
      req.on('error', () => {}); // we destroy it on purpose
      req.write(randomBytes(256 * 1024));
      await started; // the server is streaming the body into storage
      req.destroy();
      await done;
      onSettled = undefined;
      onStarted = undefined;
      expect(settled.at(-1)).toEqual({ op, blobId: entry.blobId, ok: false });
    }
    expect(await storage.blobs.getBlobProperties(entry.blobId)).toBeUndefined();
    const uploader = new BlockBlobClient(signed(entry.blobId, 'cw'));
    const notStaged = await restError(uploader.commitBlockList([blockId]));
    expect(notStaged.code).toBe('InvalidBlockList');
    expect((await uploader.uploadData(Buffer.from('after the abort')))._response.status).toBe(201);
  });
});
