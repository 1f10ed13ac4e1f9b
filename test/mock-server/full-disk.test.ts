/**
 * A full disk: the data dir lives on a 32 MiB tmpfs mounted by this test (as root, as CI runs). An upload
 * that does not fit gets Azure's XML 500 and leaves no partial file; a metadata write that does not fit
 * gets a Twirp error; committed entries stay byte-identical and readable throughout; once space is
 * freed uploads work again, without a restart.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockBlobClient, RestError } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMock, type TestMock } from '../support/mock.js';
import { twirp } from '../support/twirp.js';

const VERSION = 'full-disk-version';
const MiB = 1024 * 1024;
let mountPoint: string;
let mounted = false;
let mock: TestMock;
const filler = () => join(mountPoint, 'filler');

beforeAll(async () => {
  mountPoint = await mkdtemp(join(tmpdir(), 'gha-full-disk-'));
  // Fails loudly where it cannot run (not root, no tmpfs): this test must not skip.
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mountPoint]);
  mounted = true;
  await mkdir(join(mountPoint, 'data'));
  mock = await startTestMock({ dataDir: join(mountPoint, 'data') });
});
afterAll(async () => {
  await mock?.close();
  if (mounted) execFileSync('umount', [mountPoint]);
  await rm(mountPoint, { recursive: true, force: true });
});

const rpc = (method: string, body: unknown) => twirp(mock.url, mock.token, method, body);

async function save(key: string, data: Buffer): Promise<void> {
  const created = await rpc('CreateCacheEntry', { key, version: VERSION });
  expect(created.json.ok, JSON.stringify(created.json)).toBe(true);
  await new BlockBlobClient(created.json.signed_upload_url as string).uploadData(data, {
    blockSize: MiB,
    maxSingleShotSize: MiB,
  });
  const fin = await rpc('FinalizeCacheEntryUpload', {
    key,
    version: VERSION,
    size_bytes: String(data.length),
  });
  expect(fin.json.ok, JSON.stringify(fin.json)).toBe(true);
}

async function restore(key: string): Promise<Buffer | undefined> {
  const res = await rpc('GetCacheEntryDownloadURL', { key, version: VERSION });
  if (!res.json.ok) return undefined;
  return new BlockBlobClient(res.json.signed_download_url as string).downloadToBuffer();
}

/** Writes the filler file until the filesystem is full, then frees `leaveBytes` of it. */
async function fillDisk(leaveBytes: number): Promise<void> {
  const handle = await open(filler(), 'a');
  try {
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (;;) {
      try {
        await handle.write(chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
    const { size } = await handle.stat();
    await handle.truncate(Math.max(0, size - leaveBytes));
  } finally {
    await handle.close();
  }
}

const listing = async (dir: string) => readdir(join(mountPoint, 'data', dir)).catch(() => []);
const sameBytes = (a: Buffer | undefined, b: Buffer) => a?.equals(b) === true;

describe('a full disk', () => {
  const kept = randomBytes(3 * MiB + 7);

  it('an upload that does not fit: Azure XML 500, no partial data, committed entries still read', async () => {
    await save('kept', kept);
    await fillDisk(512 * 1024);
    const created = await rpc('CreateCacheEntry', { key: 'too-big', version: VERSION });
    expect(created.json.ok, JSON.stringify(created.json)).toBe(true);
    const url = created.json.signed_upload_url as string;
    const res = await fetch(url, {
      method: 'PUT',
      headers: { 'x-ms-blob-type': 'BlockBlob', 'x-ms-version': '2023-11-03' },
      body: randomBytes(4 * MiB),
    });
    expect(res.status).toBe(500);
    expect(res.headers.get('x-ms-error-code')).toBe('InternalError');
    expect(await res.text()).toMatch(/<Code>InternalError<\/Code>[\s\S]*no space left on its data directory/);
    // The half-written file went at once, not at the reservation's expiry.
    expect(await listing('tmp')).toEqual([]);
    // The Azure SDK retries a 500 as it would on Azure, then gives up with the same error.
    const sdk = new BlockBlobClient(url, undefined, { retryOptions: { maxTries: 2, retryDelayInMs: 10 } });
    const err = await sdk
      .uploadData(randomBytes(2 * MiB), { blockSize: MiB, maxSingleShotSize: MiB })
      .catch((e) => e);
    expect(err).toBeInstanceOf(RestError);
    expect((err as RestError).statusCode).toBe(500);
    expect(await listing('tmp')).toEqual([]);
    // Reads keep working.
    expect(sameBytes(await restore('kept'), kept)).toBe(true);
    // The reservation stays, unfinished, as any interrupted upload's does.
    expect((await rpc('CreateCacheEntry', { key: 'too-big', version: VERSION })).status).toBe(409);
  });

  it('a metadata write that does not fit gets a Twirp error; reads keep working', async () => {
    await fillDisk(0);
    let failed: Awaited<ReturnType<typeof rpc>> | undefined;
    for (let i = 0; i < 5000 && !failed; i++) {
      const res = await rpc('CreateCacheEntry', { key: `meta-${i}-${'k'.repeat(400)}`, version: VERSION });
      if (res.status !== 200) failed = res;
    }
    expect(failed, 'no Create failed on a full disk').toBeDefined();
    expect(failed!.status).toBe(500);
    expect(failed!.json).toEqual({
      code: 'internal',
      msg: 'no space left on the data directory of the cache service: nothing was changed',
    });
    // Lookups (whose hits are written later, in batches) and downloads still answer.
    for (let i = 0; i < 20; i++) expect(sameBytes(await restore('kept'), kept)).toBe(true);
    expect((await rpc('GetCacheEntryDownloadURL', { key: 'nothing-here', version: VERSION })).json.ok).toBe(
      false,
    );
  });

  it('once space is freed, uploads work again without a restart; nothing committed was damaged', async () => {
    await rm(filler());
    const fresh = randomBytes(5 * MiB + 3);
    await save('after', fresh);
    expect(sameBytes(await restore('after'), fresh)).toBe(true);
    expect(sameBytes(await restore('kept'), kept)).toBe(true);
    // The reservation of the upload that did not fit: Finalize says nothing was uploaded and frees the
    // key, which then saves normally.
    const fin = await rpc('FinalizeCacheEntryUpload', { key: 'too-big', version: VERSION, size_bytes: '1' });
    expect(fin.json).toMatchObject({ ok: false });
    const big = randomBytes(4 * MiB);
    await save('too-big', big);
    expect(sameBytes(await restore('too-big'), big)).toBe(true);
    expect(await listing('tmp')).toEqual([]);
  });
});
