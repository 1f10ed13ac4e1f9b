/**
 * Three mock instances on one PostgreSQL 15 and one Azurite, started as real CLI processes with the
 * same token secret: the real `@actions/cache` saves through one and restores through the others,
 * the blob URLs point at Azurite, races and limits hold across instances, and the failures (an
 * instance killed, PostgreSQL restarted, the blob store gone) are survived.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cache from '@actions/cache';
import { BlockBlobClient } from '@azure/storage-blob';
import { createTokenAuthority } from '@gha-cache/mock-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Azurite, startAzurite } from '../client/support/azurite.js';
import { azuriteConnectionString } from '../support/azure.js';
import { type MockProcess, spawnMock } from '../support/cli.js';
import { digestTree, writeRandomFile, writeTree } from '../support/files.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { useActionsCacheEnv } from '../support/stdout.js';
import { twirp } from '../support/twirp.js';

const SECRET = 'fleet-token-secret-0123456789abcdef';
const VERSION = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';
const MiB = 1024 * 1024;
const tokens = createTokenAuthority({ secret: Buffer.from(SECRET, 'utf8') });
/** A token of its own repository: quotas and rate limits of one test never touch another's. */
let repositories = 100;
const freshToken = () => tokens.mint({ repositoryId: String(++repositories) });

let postgres: Postgres;
let azurite: Azurite;
let database: string;
let work: string;
const instances: MockProcess[] = [];
let restoreEnv: (() => void) | undefined;

async function startInstance(i: number): Promise<MockProcess> {
  return spawnMock([
    '--data-dir',
    join(work, `instance-${i}`),
    '--token-secret',
    SECRET,
    '--database',
    database,
    '--database-timeout',
    '2s',
    '--blob-store',
    'azure',
    '--azure-connection-string',
    azuriteConnectionString(azurite),
    '--azure-container',
    'fleet',
    '--log-level',
    'warn',
  ]);
}

beforeAll(async () => {
  [postgres, azurite] = await Promise.all([startPostgres(), startAzurite()]);
  database = await postgres.createDatabase('fleet');
  work = await mkdtemp(join(tmpdir(), 'gha-fleet-'));
  // One first, so that exactly one applies the migrations... then two more at once, racing on nothing.
  instances.push(await startInstance(0));
  instances.push(...(await Promise.all([startInstance(1), startInstance(2)])));
  restoreEnv = await useActionsCacheEnv(instances[0]!.env, work);
}, 180_000);

afterAll(async () => {
  restoreEnv?.();
  for (const i of instances) await i.stop('SIGKILL');
  await azurite?.close();
  await postgres?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Points in-process `@actions/cache` at instance `i`. */
const useInstance = (i: number) => {
  process.env.ACTIONS_RESULTS_URL = `${instances[i]!.url}/`;
  process.env.ACTIONS_CACHE_URL = `${instances[i]!.url}/`;
};
const create = (i: number, token: string, key: string) =>
  twirp(instances[i]!.url, token, 'CreateCacheEntry', { key, version: VERSION });
const finalize = (i: number, token: string, key: string, size: number) =>
  twirp(instances[i]!.url, token, 'FinalizeCacheEntryUpload', {
    key,
    version: VERSION,
    size_bytes: String(size),
  });
const lookup = (i: number, token: string, key: string) =>
  twirp(instances[i]!.url, token, 'GetCacheEntryDownloadURL', { key, restore_keys: [], version: VERSION });

describe('a fleet of three instances on PostgreSQL and Azure Blob Storage', () => {
  it('says at start-up which mock features cannot apply to direct blob URLs', () => {
    expect(instances[0]!.stderr()).toMatch(/blob-side fault rules .* never fire/);
    expect(instances[0]!.stderr()).toContain('storage: postgres+azure');
  });

  it.each([
    ['below', 5 * MiB + 17],
    ['above', 136 * MiB],
  ])(
    'the real @actions/cache saves through instance 1 and restores through 2 and 3 (%s 128 MiB)',
    async (label, size) => {
      const dir = join(work, `save-${label}`);
      await writeRandomFile(join(dir, 'data.bin'), size);
      await writeTree(dir, { 'note.txt': `a file ${label} 128 MiB` });
      const before = await digestTree(dir);
      const key = `fleet-${label}`;
      useInstance(0);
      expect(await cache.saveCache([dir], key)).toBeGreaterThan(0);
      for (const i of [1, 2]) {
        await rm(dir, { recursive: true });
        useInstance(i);
        expect(await cache.restoreCache([dir], key)).toBe(key);
        expect(await digestTree(dir)).toEqual(before);
      }
    },
  );

  it('hands out blob URLs of Azurite, never of the mock', async () => {
    const token = freshToken();
    const created = await create(1, token, 'urls');
    expect(created.status).toBe(200);
    const upload = String(created.json.signed_upload_url);
    expect(upload.startsWith(`${azurite.accountUrl}/fleet/`)).toBe(true);
    await new BlockBlobClient(upload).upload(Buffer.from('direct'), 6);
    expect((await finalize(2, token, 'urls', 6)).json.ok).toBe(true);
    const got = await lookup(0, token, 'urls');
    const download = String(got.json.signed_download_url);
    expect(download.startsWith(`${azurite.accountUrl}/fleet/`)).toBe(true);
    expect(new URL(download).searchParams.get('sp')).toBe('r');
    expect((await new BlockBlobClient(download).downloadToBuffer()).toString()).toBe('direct');
    // A later write through the old upload URL is refused (the seal's lease) and changes nothing readers get.
    await expect(new BlockBlobClient(upload).upload(Buffer.from('tampered'), 8)).rejects.toMatchObject({
      statusCode: 412,
    });
    const block = Buffer.from('late-block').toString('base64');
    await expect(new BlockBlobClient(upload).stageBlock(block, Buffer.from('x'), 1)).rejects.toMatchObject({
      statusCode: 412,
    });
    expect((await new BlockBlobClient(download).downloadToBuffer()).toString()).toBe('direct');
    // Finalize checked the committed size: a wrong size_bytes commits nothing.
    const other = await create(0, token, 'wrong-size');
    await new BlockBlobClient(String(other.json.signed_upload_url)).upload(Buffer.from('abc'), 3);
    expect((await finalize(1, token, 'wrong-size', 4)).json.ok).toBe(false);
    expect((await lookup(2, token, 'wrong-size')).json.ok).toBe(false);
  });

  it('a 512 MiB upload: Finalize seals it in one request, later writes are refused, deletes remove it', async () => {
    const token = freshToken();
    const size = 512 * MiB;
    const created = await create(0, token, 'big');
    const upload = new BlockBlobClient(String(created.json.signed_upload_url));
    // Eight 64 MiB blocks of one zero-filled buffer: cheap to make, 512 MiB in Azurite.
    const part = Buffer.alloc(64 * MiB);
    const ids = Array.from({ length: 8 }, (_, n) => Buffer.from(`block-${n}`).toString('base64'));
    for (const id of ids) await upload.stageBlock(id, part, part.length);
    // The last bytes are not zeros: a range read below shows the sealed content is the upload's.
    const tail = Buffer.from('end of the big upload');
    const tailId = Buffer.from('block-8').toString('base64');
    await upload.stageBlock(tailId, tail, tail.length);
    await upload.commitBlockList([...ids, tailId]);
    const total = size + tail.length;
    const finalized = await finalize(1, token, 'big', total);
    expect(finalized.json.ok).toBe(true);
    await expect(upload.stageBlock(tailId, Buffer.from('x'), 1)).rejects.toMatchObject({ statusCode: 412 });
    await expect(upload.commitBlockList(ids)).rejects.toMatchObject({ statusCode: 412 });
    const got = await lookup(2, token, 'big');
    const download = new BlockBlobClient(String(got.json.signed_download_url));
    expect((await download.getProperties()).contentLength).toBe(total);
    expect((await download.downloadToBuffer(size, tail.length)).toString()).toBe(tail.toString());

    // An admin delete (a download URL was issued: the blob stays readable until it expires). Through
    // the instance that issued it: other instances see its hits up to a fraction of a second late.
    const id = String(finalized.json.entry_id);
    expect((await fetch(`${instances[2]!.url}/_admin/entries/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await download.downloadToBuffer(size, tail.length)).toString()).toBe(tail.toString());
    // A sealed entry nobody looked up goes with its blob at once.
    const small = await create(0, token, 'sealed-then-deleted');
    const smallBlob = new BlockBlobClient(String(small.json.signed_upload_url));
    await smallBlob.upload(Buffer.from('gone'), 4);
    const smallDone = await finalize(0, token, 'sealed-then-deleted', 4);
    expect(smallDone.json.ok).toBe(true);
    const smallId = String(smallDone.json.entry_id);
    expect((await fetch(`${instances[1]!.url}/_admin/entries/${smallId}`, { method: 'DELETE' })).status).toBe(
      204,
    );
    expect(await azurite.service.getContainerClient('fleet').getBlobClient(smallBlob.name).exists()).toBe(
      false,
    );
  }, 180_000);

  it('a key PostgreSQL cannot store (U+0000) gets a clear Twirp invalid_argument, not a 5xx', async () => {
    const res = await create(0, freshToken(), 'a\u0000b');
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('invalid_argument');
  });

  it('20 concurrent Creates of one key spread over the instances: exactly 1 ok, 19 × 409', async () => {
    const token = freshToken();
    const results = await Promise.all(Array.from({ length: 20 }, (_, n) => create(n % 3, token, 'race')));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
  });

  it('the 201st Create within a minute, counted across instances, is 429', async () => {
    const token = freshToken();
    for (let n = 0; n < 200; n += 20) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, (_, k) => create((n + k) % 3, token, `rate-${n + k}`)),
      );
      expect(batch.map((r) => r.status)).toEqual(Array(20).fill(200));
    }
    for (const i of [0, 1, 2]) {
      const denied = await create(i, token, `rate-over-${i}`);
      expect(denied.status).toBe(429);
      expect(denied.json.code).toBe('resource_exhausted');
    }
  });

  it('an instance killed with SIGKILL mid-upload: the others serve, the retry through another completes', async () => {
    const token = freshToken();
    const before = await create(2, token, 'committed-before');
    await new BlockBlobClient(String(before.json.signed_upload_url)).upload(Buffer.from('old'), 3);
    expect((await finalize(2, token, 'committed-before', 3)).json.ok).toBe(true);

    const created = await create(0, token, 'interrupted');
    const blob = new BlockBlobClient(String(created.json.signed_upload_url));
    const part = Buffer.alloc(MiB, 7);
    await blob.stageBlock(Buffer.from('block-0').toString('base64'), part, part.length);
    expect(await instances[0]!.stop('SIGKILL')).toBe('SIGKILL');
    // The upload goes on against Azure; the client's Finalize retry lands on another instance.
    await blob.stageBlock(Buffer.from('block-1').toString('base64'), part, part.length);
    await blob.commitBlockList(['block-0', 'block-1'].map((b) => Buffer.from(b).toString('base64')));
    await expect(finalize(0, token, 'interrupted', 2 * MiB)).rejects.toThrow();
    expect((await finalize(1, token, 'interrupted', 2 * MiB)).json.ok).toBe(true);
    const got = await lookup(2, token, 'interrupted');
    expect((await new BlockBlobClient(String(got.json.signed_download_url)).downloadToBuffer()).length).toBe(
      2 * MiB,
    );
    const old = await lookup(1, token, 'committed-before');
    expect(
      (await new BlockBlobClient(String(old.json.signed_download_url)).downloadToBuffer()).toString(),
    ).toBe('old');
    instances[0] = await startInstance(0);
  });

  it('PostgreSQL restarted: requests meanwhile get a Twirp 503 in bounded time, service resumes by itself', async () => {
    const token = freshToken();
    expect((await create(0, token, 'before-restart')).status).toBe(200);
    postgres.stop();
    try {
      for (const i of [0, 1, 2]) {
        const started = Date.now();
        const res = await create(i, token, `during-outage-${i}`);
        expect(res.status).toBe(503);
        expect(res.json.code).toBe('unavailable');
        expect(Date.now() - started).toBeLessThan(20_000);
        expect((await lookup(i, token, 'before-restart')).status).toBe(503);
      }
    } finally {
      postgres.start();
    }
    for (const i of [0, 1, 2]) {
      await expect
        .poll(async () => (await create(i, token, `after-restart-${i}`)).status, {
          timeout: 60_000,
          interval: 500,
        })
        .toBe(200);
    }
    for (const p of instances) expect(p.proc.exitCode).toBeNull();
  });

  it('the blob store unreachable: Create and lookups answer, Finalize fails with a Twirp error, nothing half-committed shows', async () => {
    const token = freshToken();
    const ready = await create(1, token, 'sealed-before');
    await new BlockBlobClient(String(ready.json.signed_upload_url)).upload(Buffer.from('ok'), 2);
    expect((await finalize(1, token, 'sealed-before', 2)).json.ok).toBe(true);
    const pending = await create(2, token, 'never-sealed');
    await new BlockBlobClient(String(pending.json.signed_upload_url)).upload(Buffer.from('late'), 4);
    await azurite.close();
    expect((await create(0, token, 'while-down')).status).toBe(200);
    expect((await lookup(1, token, 'sealed-before')).json.ok).toBe(true);
    const failed = await finalize(2, token, 'never-sealed', 4);
    expect(failed.status).toBe(503);
    expect(failed.json.code).toBe('unavailable');
    expect((await lookup(0, token, 'never-sealed')).json.ok).toBe(false);
  });
});
