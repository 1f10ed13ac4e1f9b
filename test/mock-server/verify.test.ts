/**
 * A damaged data directory: `gha-cache-mock verify` reports missing blobs and orphaned files and
 * `--repair` removes them; at start-up a committed entry whose blob is gone is not served (and the log
 * says why), and a truncated or unreadable database stops the server with a clear message.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BlockBlobClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MOCK_CLI, type MockProcess, spawnMock } from '../support/cli.js';
import { twirp } from '../support/twirp.js';

const VERSION = 'verify-version';
const MiB = 1024 * 1024;
let root: string;
let dataDir: string;
let server: MockProcess | undefined;
const blobIds: Record<string, string> = {};
const data = { a: randomBytes(MiB + 1), b: randomBytes(3 * MiB + 5), c: randomBytes(1000) };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gha-verify-'));
  dataDir = join(root, 'data');
});
afterAll(async () => {
  await server?.stop('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

const start = async () => {
  server = await spawnMock(['--data-dir', dataDir, '--log-level', 'warn']);
  return server;
};
const rpc = (s: MockProcess, method: string, body: unknown) =>
  twirp(s.url, s.env.ACTIONS_RUNTIME_TOKEN!, method, body);

async function verify(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [MOCK_CLI, 'verify', '--data-dir', dataDir, ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
}

async function restore(s: MockProcess, key: string): Promise<Buffer | undefined> {
  const res = await rpc(s, 'GetCacheEntryDownloadURL', { key, version: VERSION });
  if (!res.json.ok) return undefined;
  return new BlockBlobClient(res.json.signed_download_url as string).downloadToBuffer();
}

describe('verify and start-up checks', () => {
  it('a healthy data dir verifies clean; verify refuses while a server holds it', async () => {
    const s = await start();
    for (const [key, content] of Object.entries(data)) {
      const created = await rpc(s, 'CreateCacheEntry', { key, version: VERSION });
      const url = created.json.signed_upload_url as string;
      blobIds[key] = new URL(url).pathname.split('/').pop()!;
      // a: one Put Blob; b: blocks (a directory of parts); c: small.
      await new BlockBlobClient(url).uploadData(content, {
        blockSize: MiB,
        maxSingleShotSize: key === 'b' ? MiB : 8 * MiB,
      });
      const fin = await rpc(s, 'FinalizeCacheEntryUpload', {
        key,
        version: VERSION,
        size_bytes: String(content.length),
      });
      expect(fin.json.ok).toBe(true);
    }
    const busy = await verify();
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain(`pid ${s.proc.pid}`);
    expect(await s.stop()).toBe(0);
    const clean = await verify();
    expect(clean, clean.stderr).toMatchObject({ code: 0 });
    expect(clean.stdout).toMatch(/database: ok/);
    expect(clean.stdout).toMatch(/entries: 3 \(3 committed\)/);
    expect(clean.stdout).toMatch(/no problems found/);
  });

  it('reports a missing blob and orphaned files; the server does not serve that entry; --repair clears the rest', async () => {
    const shardOf = (id: string) => join(dataDir, 'blobs', id.slice(0, 2));
    const [aFile] = (await readdir(shardOf(blobIds.a!))).filter((n) => n.startsWith(blobIds.a!));
    await rm(join(shardOf(blobIds.a!), aFile!), { recursive: true });
    await mkdir(join(dataDir, 'blobs', 'ff'), { recursive: true });
    await writeFile(join(dataDir, 'blobs', 'ff', `${'f'.repeat(32)}.1`), 'orphan');
    await mkdir(join(dataDir, 'staging', 'e'.repeat(32)), { recursive: true });
    await writeFile(join(dataDir, 'staging', 'e'.repeat(32), 'b00'), 'staged');

    const found = await verify('--json');
    expect(found.code).toBe(1);
    const report = JSON.parse(found.stdout);
    expect(
      report.findings.map((f: { kind: string; key?: string }) => [f.kind, f.key ?? null]).sort(),
    ).toEqual(
      [
        ['missing-blob', 'a'],
        ['orphan-blob', null],
        ['orphan-staging', null],
      ].sort(),
    );

    // The server starts, says what it will not serve, and the lookup misses; the rest restores.
    const s = await start();
    expect(s.stderr()).toMatch(/not served: entry \d+ \(a\): .* is missing/);
    expect(await restore(s, 'a')).toBeUndefined();
    // The miss says why: the entry was dropped at start-up because its blob was gone.
    const why = async () => {
      const res = await fetch(new URL('/_admin/traffic?op=GetCacheEntryDownloadURL&keyPrefix=a', s.url));
      const { events } = (await res.json()) as {
        events: { explanation?: { reason: string; message: string } }[];
      };
      return events.at(-1)?.explanation;
    };
    await expect.poll(why, { timeout: 30_000 }).toMatchObject({
      reason: 'discarded',
      message: expect.stringMatching(/its blob was gone/),
    });
    expect((await restore(s, 'b'))?.equals(data.b)).toBe(true);
    expect((await restore(s, 'c'))?.equals(data.c)).toBe(true);
    expect(await s.stop()).toBe(0);

    const repaired = await verify('--repair');
    expect(repaired.code, repaired.stdout + repaired.stderr).toBe(0);
    const again = await verify();
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toMatch(/entries: 2 \(2 committed\)/);
    expect(again.stdout).toMatch(/no problems found/);
  });

  it('a truncated or unreadable database stops the server with a clear message', async () => {
    const file = join(dataDir, 'meta.sqlite');
    await truncate(file, Math.floor((await stat(file)).size / 3));
    const refused = await start().catch((err: Error) => err);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).message).toMatch(/exited with 1/);
    expect((refused as Error).message).toMatch(
      /the database .*meta\.sqlite is damaged .*the server will not start on it/,
    );
    const checked = await verify();
    expect(checked.code).toBe(2);
    expect(checked.stderr).toMatch(/meta\.sqlite is damaged/);

    await writeFile(file, randomBytes(64 * 1024));
    const garbage = await start().catch((err: Error) => err);
    expect((garbage as Error).message).toMatch(/meta\.sqlite is damaged \(SQLITE_NOTADB/);
    server = undefined;
  });
});
