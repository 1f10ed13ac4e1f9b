/**
 * Crash safety: SIGKILL the server in the middle of a large upload, restart it on the same data dir.
 * Committed entries restore byte-identical; the interrupted one is invisible; its staged data goes when
 * its reservation expires (on the mock's simulated clock, moved through the admin API), and then its key
 * can be saved again. Blob traffic uses the real Azure SDK.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockBlobClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MockProcess, spawnMock } from '../support/cli.js';
import { twirp } from '../support/twirp.js';

const VERSION = 'crash-test-version';
let dataDir: string;
let server: MockProcess | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'gha-crash-'));
});
afterAll(async () => {
  await server?.stop('SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

const start = () => spawnMock(['--data-dir', dataDir, '--log-level', 'warn']);

async function create(s: MockProcess, key: string): Promise<string> {
  const res = await twirp(s.url, s.env.ACTIONS_RUNTIME_TOKEN!, 'CreateCacheEntry', { key, version: VERSION });
  expect(res.json.ok, JSON.stringify(res.json)).toBe(true);
  return res.json.signed_upload_url as string;
}

async function finalize(s: MockProcess, key: string, size: number): Promise<void> {
  const res = await twirp(s.url, s.env.ACTIONS_RUNTIME_TOKEN!, 'FinalizeCacheEntryUpload', {
    key,
    version: VERSION,
    size_bytes: String(size),
  });
  expect(res.json.ok, JSON.stringify(res.json)).toBe(true);
}

async function restore(s: MockProcess, key: string): Promise<Buffer | undefined> {
  const res = await twirp(s.url, s.env.ACTIONS_RUNTIME_TOKEN!, 'GetCacheEntryDownloadURL', {
    key,
    version: VERSION,
  });
  if (!res.json.ok) return undefined;
  return new BlockBlobClient(res.json.signed_download_url as string).downloadToBuffer();
}

const blockId = (i: number) => Buffer.from(`block-${String(i).padStart(6, '0')}`).toString('base64');

/** Starts a PUT of `total` bytes and resolves once `sent` bytes are on the wire; the body never completes. */
function hangingUpload(url: string, total: number, sent: number): Promise<void> {
  return new Promise((resolve) => {
    const req = request(url, {
      method: 'PUT',
      headers: { 'content-length': total, 'x-ms-blob-type': 'BlockBlob' },
    });
    req.on('error', () => undefined);
    const chunk = randomBytes(1 << 20);
    let written = 0;
    const pump = () => {
      while (written < sent) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      resolve();
    };
    pump();
  });
}

describe('crash safety', () => {
  const small = randomBytes(3 * 1024 * 1024 + 5);
  const blocks = [randomBytes(1 << 20), randomBytes(1 << 20), randomBytes(12345)];

  it('keeps committed entries byte-identical across a SIGKILL in the middle of large uploads', async () => {
    server = await start();
    // A: one Put Blob. B: three blocks staged out of order, committed in list order.
    await new BlockBlobClient(await create(server, 'A')).uploadData(small, { maxSingleShotSize: 256 << 20 });
    await finalize(server, 'A', small.length);
    const b = new BlockBlobClient(await create(server, 'B'));
    for (const i of [2, 0, 1]) await b.stageBlock(blockId(i), blocks[i]!, blocks[i]!.length);
    await b.commitBlockList([0, 1, 2].map(blockId));
    await finalize(
      server,
      'B',
      blocks.reduce((s, x) => s + x.length, 0),
    );

    // C: staged blocks, then a 512 MiB Put Block in flight; D: a 512 MiB Put Blob in flight.
    const c = new BlockBlobClient(await create(server, 'C'));
    await c.stageBlock(blockId(0), blocks[0]!, blocks[0]!.length);
    const cUrl = new URL(c.url);
    cUrl.searchParams.set('comp', 'block');
    cUrl.searchParams.set('blockid', blockId(1));
    const dUrl = await create(server, 'D');
    await Promise.all([
      hangingUpload(cUrl.toString(), 512 << 20, 64 << 20),
      hangingUpload(dUrl, 512 << 20, 64 << 20),
    ]);
    expect(await server.stop('SIGKILL')).toBe('SIGKILL');

    server = await start();
    expect(await restore(server, 'A')).toEqual(small);
    expect(await restore(server, 'B')).toEqual(Buffer.concat(blocks));
    expect(await restore(server, 'C')).toBeUndefined();
    expect(await restore(server, 'D')).toBeUndefined();
    // The interrupted reservations survive the restart and still block their keys until they expire.
    const busy = await twirp(server.url, server.env.ACTIONS_RUNTIME_TOKEN!, 'CreateCacheEntry', {
      key: 'C',
      version: VERSION,
    });
    expect(busy.status).toBe(409);
    // Start-up removed the half-written files.
    expect(await readdir(join(dataDir, 'tmp')).catch(() => [])).toEqual([]);
  });

  it('cleans up the interrupted upload when its reservation expires and lets its key be saved again', async () => {
    const s = server!;
    // Still reserved however long the restart took: the reservation's TTL runs on the simulated clock.
    const busy = await twirp(s.url, s.env.ACTIONS_RUNTIME_TOKEN!, 'CreateCacheEntry', {
      key: 'C',
      version: VERSION,
    });
    expect(busy.status).toBe(409);
    // 61 minutes later (the default pendingTtl is 60 min) the reservation is gone and its key is free again.
    const advanced = await fetch(new URL('/_admin/clock/advance', s.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ by: '61m' }),
    });
    expect(advanced.status).toBe(200);
    const created = await twirp(s.url, s.env.ACTIONS_RUNTIME_TOKEN!, 'CreateCacheEntry', {
      key: 'C',
      version: VERSION,
    });
    expect(created.json.ok, JSON.stringify(created.json)).toBe(true);
    const again = new BlockBlobClient(created.json.signed_upload_url as string);
    expect(await readdir(join(dataDir, 'staging')).catch(() => [])).toEqual([]);
    const data = randomBytes(2 << 20);
    await again.uploadData(data, { blockSize: 1 << 20, maxSingleShotSize: 1 << 20 });
    await finalize(s, 'C', data.length);
    expect(await restore(s, 'C')).toEqual(data);
    expect(await restore(s, 'A')).toEqual(small);
  });
});
