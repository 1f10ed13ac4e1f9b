/**
 * The client's blob layer judged by a real Azure Blob emulator (Azurite) with real SAS URLs:
 * Put Blob, parallel Put Block + Put Block List, streams of unknown length, ranged parallel downloads,
 * an expired SAS refreshed once, and a connection dropped in the middle of a range.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import {
  BlobError,
  createHttpDispatcher,
  DEFAULT_RETRY_OPTIONS,
  downloadBlob,
  type ExchangeEvent,
  type HttpDispatcher,
  uploadBlob,
} from '@gha-cache/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Azurite, startAzurite } from './support/azurite.js';
import { type FaultProxy, startFaultProxy } from './support/fault-proxy.js';

const MiB = 1024 * 1024;
const CONTAINER = 'actions-cache';

let azurite: Azurite;
let proxy: FaultProxy;
let http: HttpDispatcher;
let dir: string;
let events: ExchangeEvent[] = [];

beforeAll(async () => {
  azurite = await startAzurite();
  await azurite.container(CONTAINER);
  proxy = await startFaultProxy(`http://127.0.0.1:${azurite.port}`);
  http = createHttpDispatcher({
    timeoutMs: 30_000,
    connectionsPerOrigin: 16,
    retry: { ...DEFAULT_RETRY_OPTIONS, baseDelayMs: 5, maxDelayMs: 50 },
    onExchange: (e) => events.push(e),
  });
  dir = await mkdtemp(join(tmpdir(), 'gha-cache-blob-'));
});

afterAll(async () => {
  await http?.close();
  await proxy?.close();
  await azurite?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  events = [];
});

const upOpts = (over: Partial<Parameters<typeof uploadBlob>[2]> = {}) => ({
  dispatcher: http.dispatcher,
  blockSizeBytes: 64 * MiB,
  concurrency: 8,
  maxSingleShotBytes: 128 * MiB,
  maxBufferBytes: 128 * MiB,
  timeoutMs: 30_000,
  ...over,
});
const downOpts = (over: Partial<Parameters<typeof downloadBlob>[2]> = {}) => ({
  dispatcher: http.dispatcher,
  rangeSizeBytes: 16 * MiB,
  concurrency: 8,
  // Ranged GETs from the start: these tests judge the range mechanics (the split is tested with faults).
  splitBelowBytesPerSecond: 0,
  timeoutMs: 30_000,
  ...over,
});

async function blobContent(name: string): Promise<Buffer> {
  return azurite.service.getContainerClient(CONTAINER).getBlobClient(name).downloadToBuffer();
}

describe('upload against Azurite', () => {
  it('uploads a small file with one Put Blob', async () => {
    const data = randomBytes(300_000);
    const file = join(dir, 'small.bin');
    await writeFile(file, data);
    const result = await uploadBlob(azurite.sasUrl(CONTAINER, 'small', 'cw'), { path: file }, upOpts());
    expect(result).toEqual({ sizeBytes: data.length, blockCount: 0 });
    expect((await blobContent('small')).equals(data)).toBe(true);
    expect(events.map((e) => `${e.label} ${e.status}`)).toEqual(['PutBlob 201']);
  });

  it('uploads an empty blob', async () => {
    const result = await uploadBlob(
      azurite.sasUrl(CONTAINER, 'empty', 'cw'),
      { data: new Uint8Array(0) },
      upOpts(),
    );
    expect(result.sizeBytes).toBe(0);
    expect((await blobContent('empty')).length).toBe(0);
  });

  it('C-88: uploads a large file as parallel Put Block + Put Block List in index order', async () => {
    const data = randomBytes(5 * MiB + 12345);
    const file = join(dir, 'large.bin');
    await writeFile(file, data);
    const progress: number[] = [];
    const result = await uploadBlob(
      azurite.sasUrl(CONTAINER, 'large', 'cw'),
      { path: file },
      upOpts({
        blockSizeBytes: MiB,
        maxSingleShotBytes: MiB,
        concurrency: 4,
        onProgress: (p) => progress.push(p.transferredBytes),
      }),
    );
    expect(result).toEqual({ sizeBytes: data.length, blockCount: 6 });
    expect((await blobContent('large')).equals(data)).toBe(true);
    const list = await azurite.service
      .getContainerClient(CONTAINER)
      .getBlockBlobClient('large')
      .getBlockList('committed');
    expect(list.committedBlocks?.map((b) => b.size)).toEqual([MiB, MiB, MiB, MiB, MiB, 12345]);
    expect(events.filter((e) => e.label === 'PutBlock')).toHaveLength(6);
    expect(events.at(-1)?.label).toBe('PutBlockList');
    expect(progress.at(-1)).toBe(data.length);
  });

  /** Writes `data` to a file and uploads it as blob `name` through the fault proxy, 2 blocks at a time. */
  async function uploadFileViaProxy(name: string, data: Buffer, blockSizeBytes: number) {
    const file = join(dir, `${name}.bin`);
    await writeFile(file, data);
    const url = azurite.sasUrl(CONTAINER, name, 'cw', 600, `${proxy.origin}/devstoreaccount1`);
    return uploadBlob(
      url,
      { path: file },
      upOpts({ blockSizeBytes, maxSingleShotBytes: MiB, concurrency: 2 }),
    );
  }

  it('file blocks of several read chunks keep their bytes through slow connections (buffers reused)', async () => {
    // Each block is read into one reused buffer, chunk after chunk; a slow reader keeps the socket's
    // buffers full, so a chunk overwritten before it left the socket would show in the blob.
    const data = randomBytes(2 * 12 * MiB + 54321);
    proxy.slowRequests((r) => r.url.includes('/slow?') && r.url.includes('comp=block&'), 12 * MiB, 3);
    const result = await uploadFileViaProxy('slow', data, 12 * MiB);
    expect(result).toEqual({ sizeBytes: data.length, blockCount: 3 });
    expect((await blobContent('slow')).equals(data)).toBe(true);
  });

  it('a file block whose connection drops mid-body is sent again from the file', async () => {
    const data = randomBytes(2 * 3 * MiB);
    proxy.cutRequestAfter((r) => r.url.includes('/cut?') && r.url.includes('comp=block&'), 1.5 * MiB, 2);
    const result = await uploadFileViaProxy('cut', data, 3 * MiB);
    expect(result.blockCount).toBe(2);
    expect((await blobContent('cut')).equals(data)).toBe(true);
    expect(events.filter((e) => e.label === 'PutBlock').reduce((n, e) => n + e.retries.length, 0)).toBe(2);
  });

  it('uploads a stream of unknown length in bounded blocks', async () => {
    const data = randomBytes(9 * MiB + 7);
    const stream = Readable.from(
      (function* () {
        for (let off = 0; off < data.length; off += 100_000) yield data.subarray(off, off + 100_000);
      })(),
    );
    const result = await uploadBlob(
      azurite.sasUrl(CONTAINER, 'stream', 'cw'),
      { stream },
      upOpts({ maxBufferBytes: 16 * MiB, maxSingleShotBytes: 4 * MiB, concurrency: 4 }),
    );
    expect(result.sizeBytes).toBe(data.length);
    expect(result.blockCount).toBe(3); // 4 MiB blocks: 16 MiB buffer / 4 lanes
    expect((await blobContent('stream')).equals(data)).toBe(true);
  });

  it('a short stream goes as one Put Blob', async () => {
    const data = randomBytes(1000);
    const result = await uploadBlob(
      azurite.sasUrl(CONTAINER, 'short-stream', 'cw'),
      { stream: Readable.from([data]) },
      upOpts(),
    );
    expect(result).toEqual({ sizeBytes: 1000, blockCount: 0 });
    expect((await blobContent('short-stream')).equals(data)).toBe(true);
  });

  it('a read-only SAS cannot upload: BlobError with the Azure code', async () => {
    const err = await uploadBlob(
      azurite.sasUrl(CONTAINER, 'ro', 'r'),
      { data: Buffer.from('x') },
      upOpts(),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobError);
    expect(err).toMatchObject({
      code: 'ERR_BLOB',
      httpStatus: 403,
      azureCode: 'AuthorizationPermissionMismatch',
    });
    expect((err as BlobError).url).toContain('sig=REDACTED');
  });

  it('retries a Put Block answered 503 and still commits the right bytes', async () => {
    const data = randomBytes(3 * MiB);
    proxy.respond((r) => r.method === 'PUT' && r.url.includes('comp=block&'), 503, 'busy', 2, {
      'x-ms-error-code': 'ServerBusy',
    });
    const url = azurite.sasUrl(CONTAINER, 'retried', 'cw', 600, `${proxy.origin}/${'devstoreaccount1'}`);
    const result = await uploadBlob(url, { data }, upOpts({ blockSizeBytes: MiB, maxSingleShotBytes: MiB }));
    expect(result.blockCount).toBe(3);
    expect((await blobContent('retried')).equals(data)).toBe(true);
    expect(events.filter((e) => e.label === 'PutBlock').reduce((n, e) => n + e.retries.length, 0)).toBe(2);
  });
});

describe('download against Azurite', () => {
  let big: Buffer;
  beforeAll(async () => {
    big = randomBytes(10 * MiB + 333);
    await azurite.service.getContainerClient(CONTAINER).getBlockBlobClient('big').uploadData(big);
  });

  it('downloads a small blob with one GET after HEAD', async () => {
    await azurite.service
      .getContainerClient(CONTAINER)
      .getBlockBlobClient('tiny')
      .uploadData(Buffer.from('hello'));
    const out = join(dir, 'tiny.out');
    const result = await downloadBlob(azurite.sasUrl(CONTAINER, 'tiny', 'r'), { path: out }, downOpts());
    expect(result).toEqual({ sizeBytes: 5, refreshed: false });
    expect(await readFile(out, 'utf8')).toBe('hello');
    expect(events.map((e) => `${e.method} ${e.status}`)).toEqual(['HEAD 200', 'GET 200']);
  });

  it('downloads with parallel ranged GETs written at their offsets', async () => {
    const out = join(dir, 'big.out');
    const result = await downloadBlob(
      azurite.sasUrl(CONTAINER, 'big', 'r'),
      { path: out },
      downOpts({ rangeSizeBytes: MiB, concurrency: 4 }),
    );
    expect(result.sizeBytes).toBe(big.length);
    expect((await readFile(out)).equals(big)).toBe(true);
    const gets = events.filter((e) => e.label === 'GetBlobRange');
    expect(gets).toHaveLength(11);
    expect(gets.every((e) => e.status === 206)).toBe(true);
  });

  it('a connection at or above splitBelowBytesPerSecond stays one GET of the whole blob', async () => {
    const out = join(dir, 'single.out');
    events.length = 0;
    const result = await downloadBlob(
      azurite.sasUrl(CONTAINER, 'big', 'r'),
      { path: out },
      downOpts({ rangeSizeBytes: MiB, concurrency: 4, splitBelowBytesPerSecond: 1 }),
    );
    expect(result.sizeBytes).toBe(big.length);
    expect((await readFile(out)).equals(big)).toBe(true);
    const gets = events.filter((e) => e.label === 'GetBlobRange');
    expect(gets).toMatchObject([{ status: 206, responseBytes: big.length }]);
  });

  it('downloads in order to a stream', async () => {
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c: Buffer) => chunks.push(c));
    const result = await downloadBlob(
      azurite.sasUrl(CONTAINER, 'big', 'r'),
      { stream: sink },
      downOpts({ rangeSizeBytes: MiB, concurrency: 3 }),
    );
    expect(result.sizeBytes).toBe(big.length);
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
  });

  it('an expired SAS is refreshed once and the download completes', async () => {
    const out = join(dir, 'refreshed.out');
    let refreshes = 0;
    const result = await downloadBlob(
      azurite.sasUrl(CONTAINER, 'big', 'r', -60),
      { path: out },
      downOpts({
        rangeSizeBytes: 4 * MiB,
        refreshUrl: async () => {
          refreshes += 1;
          return azurite.sasUrl(CONTAINER, 'big', 'r');
        },
      }),
    );
    expect(result).toEqual({ sizeBytes: big.length, refreshed: true });
    expect(refreshes).toBe(1);
    expect((await readFile(out)).equals(big)).toBe(true);
    expect(events[0]).toMatchObject({ method: 'HEAD', status: 403 });
  });

  it('a SAS that expires between HEAD and the ranges is refreshed once', async () => {
    const out = join(dir, 'mid-expiry.out');
    // The proxy turns the first ranged GET into the 403 an expired SAS gets.
    proxy.respond((r) => r.method === 'GET' && r.headers.range !== undefined, 403, '', 1, {
      'x-ms-error-code': 'AuthenticationFailed',
    });
    let refreshes = 0;
    const viaProxy = `${proxy.origin}/devstoreaccount1`;
    const result = await downloadBlob(
      azurite.sasUrl(CONTAINER, 'big', 'r', 600, viaProxy),
      { path: out },
      downOpts({
        rangeSizeBytes: 4 * MiB,
        concurrency: 1,
        refreshUrl: async () => {
          refreshes += 1;
          return azurite.sasUrl(CONTAINER, 'big', 'r', 600, viaProxy);
        },
      }),
    );
    expect(result.refreshed).toBe(true);
    expect(refreshes).toBe(1);
    expect((await readFile(out)).equals(big)).toBe(true);
  });

  it('an expired SAS with a refresh that is expired too fails with the 403', async () => {
    const err = await downloadBlob(
      azurite.sasUrl(CONTAINER, 'big', 'r', -60),
      { path: join(dir, 'x.out') },
      downOpts({
        refreshUrl: async () => azurite.sasUrl(CONTAINER, 'big', 'r', -60),
      }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobError);
    expect(err).toMatchObject({ httpStatus: 403 });
  });

  it('a connection dropped mid-range is resumed from the first missing byte', async () => {
    const out = join(dir, 'dropped.out');
    proxy.requests.length = 0;
    proxy.dropAfter(
      (r) => r.method === 'GET' && r.headers.range === `bytes=${2 * MiB}-${3 * MiB - 1}`,
      300_000,
    );
    const result = await downloadBlob(
      azurite.sasUrl(CONTAINER, 'big', 'r', 600, `${proxy.origin}/devstoreaccount1`),
      { path: out },
      downOpts({ rangeSizeBytes: MiB, concurrency: 4 }),
    );
    expect(result.sizeBytes).toBe(big.length);
    expect((await readFile(out)).equals(big)).toBe(true);
    const resumed = proxy.requests.filter((r) => r.headers.range?.startsWith(`bytes=${2 * MiB + 300_000}-`));
    expect(resumed).toHaveLength(1);
    expect(resumed[0]?.headers.range).toBe(`bytes=${2 * MiB + 300_000}-${3 * MiB - 1}`);
    const ex = events.find((e) => e.retries.some((r) => r.reason.includes('resume')));
    expect(ex?.retries[0]?.reason).toMatch(/resume at 2397152/);
  });

  it('a missing blob is a BlobError BlobNotFound', async () => {
    const err = await downloadBlob(
      azurite.sasUrl(CONTAINER, 'nope', 'r'),
      { path: join(dir, 'n.out') },
      downOpts(),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_BLOB', httpStatus: 404, azureCode: 'BlobNotFound' });
  });
});
