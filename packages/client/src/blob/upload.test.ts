import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type Dispatcher, MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRetryInterceptor } from '../http/retry.js';
import { type BlobSource, type UploadBlobOptions, uploadBlob } from './upload.js';

const ORIGIN = 'http://blob.test';
const URL_ = `${ORIGIN}/c/blob?sig=s`;
const MiB = 1024 * 1024;

async function bytesOf(body: unknown): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Uint8Array>) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

interface Put {
  comp: string | null;
  blockId: string | null;
  body: Buffer;
}

/**
 * A blob host on a MockAgent that reads every PUT body and answers 201, except the sends `fail` picks
 * (by comp, block id and the how-many-th send of that block): those are read, then answered 500.
 */
function blobHost(agent: MockAgent, fail: (put: Put, send: number) => boolean = () => false) {
  const puts: Put[] = [];
  const sends = new Map<string, number>();
  agent
    .get(ORIGIN)
    .intercept({ path: (p: string) => p.startsWith('/c/blob'), method: 'PUT' })
    .reply(((opts: { path: string; body: unknown }) => {
      const q = new URL(opts.path, ORIGIN).searchParams;
      const put: Put = { comp: q.get('comp'), blockId: q.get('blockid'), body: Buffer.alloc(0) };
      const key = `${put.comp}:${put.blockId}`;
      const send = (sends.get(key) ?? 0) + 1;
      sends.set(key, send);
      const failed = fail(put, send);
      return {
        statusCode: failed ? 500 : 201,
        data: (async () => {
          const b = opts.body;
          put.body = typeof b === 'string' || b instanceof Uint8Array ? Buffer.from(b) : await bytesOf(b);
          puts.push(put);
          return failed ? '<Error><Code>InternalError</Code></Error>' : '';
        })(),
      };
    }) as never)
    .persist();
  return puts;
}

describe('uploadBlob', () => {
  let agent: MockAgent;
  let dispatcher: Dispatcher;
  let dir: string;
  beforeEach(async () => {
    agent = new MockAgent();
    agent.disableNetConnect();
    dispatcher = agent.compose(createRetryInterceptor({ baseDelayMs: 1, maxDelayMs: 5 }));
    dir = await mkdtemp(join(tmpdir(), 'gha-upload-test-'));
  });
  afterEach(async () => {
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  });
  const options = (over: Partial<UploadBlobOptions> = {}): UploadBlobOptions => ({
    dispatcher,
    blockSizeBytes: 2.5 * MiB,
    concurrency: 3,
    maxSingleShotBytes: MiB,
    maxBufferBytes: 16 * MiB,
    timeoutMs: 10_000,
    ...over,
  });

  /** Uploads `source`, whose bytes are `data`, failing the first send of block 1; checks what landed. */
  async function replayed(source: BlobSource, data: Buffer, over: Partial<UploadBlobOptions> = {}) {
    const puts = blobHost(agent, (put, send) => put.comp === 'block' && send === 1 && indexOf(put) === 1);
    const progress: number[] = [];
    const res = await uploadBlob(
      URL_,
      source,
      options({ ...over, onProgress: (p) => progress.push(p.transferredBytes) }),
    );
    const blocks = puts.filter((p) => p.comp === 'block');
    const list = puts.find((p) => p.comp === 'blocklist');
    const ids = [...(list?.body.toString('utf8') ?? '').matchAll(/<Latest>([^<]+)<\/Latest>/g)].map(
      (m) => m[1]!,
    );
    expect(ids).toHaveLength(res.blockCount);
    // Every block as listed, in order, adds up to the source.
    const landed = ids.map((id) => blocks.filter((b) => b.blockId === id).at(-1)!.body);
    expect(Buffer.concat(landed).equals(data)).toBe(true);
    // The failed block went twice, with the same bytes both times.
    const second = ids[1]!;
    const both = blocks.filter((b) => b.blockId === second);
    expect(both).toHaveLength(2);
    expect(both[0]!.body.equals(both[1]!.body)).toBe(true);
    // Progress undoes the first send of a replayed block.
    expect(progress.at(-1)).toBe(data.length);
    expect(Math.max(...progress)).toBe(data.length);
    return res;
  }

  it('replays a file block whose first send failed, from the file, with the same bytes', async () => {
    const data = randomBytes(7 * MiB + 123);
    const path = join(dir, 'src');
    await writeFile(path, data);
    const res = await replayed({ path }, data);
    expect(res).toEqual({ sizeBytes: data.length, blockCount: 3 });
  });

  it('replays a block of a stream whose first send failed', async () => {
    const data = randomBytes(18 * MiB + 5);
    const res = await replayed({ stream: Readable.from([data]) }, data, { blockSizeBytes: 4 * MiB });
    expect(res).toEqual({ sizeBytes: data.length, blockCount: 5 });
  });

  it('a small source is one Put Blob', async () => {
    const puts = blobHost(agent);
    const data = randomBytes(1000);
    expect(await uploadBlob(URL_, { data }, options())).toEqual({ sizeBytes: 1000, blockCount: 0 });
    expect(puts).toHaveLength(1);
    expect(puts[0]).toMatchObject({ comp: null, blockId: null });
    expect(puts[0]!.body.equals(data)).toBe(true);
  });

  it('a block that keeps failing fails the upload, and no block list is sent', async () => {
    const puts = blobHost(agent, (put) => put.comp === 'block' && indexOf(put) === 0);
    const data = randomBytes(6 * MiB);
    await expect(uploadBlob(URL_, { data }, options())).rejects.toMatchObject({
      code: 'ERR_BLOB',
      operation: 'PutBlock',
      httpStatus: 500,
      azureCode: 'InternalError',
    });
    expect(puts.some((p) => p.comp === 'blocklist')).toBe(false);
  });
});

/** The index a block id carries (its last 12 characters, decoded). */
function indexOf(put: Put): number {
  return Number(
    Buffer.from(put.blockId ?? '', 'base64')
      .toString('utf8')
      .slice(-12),
  );
}
