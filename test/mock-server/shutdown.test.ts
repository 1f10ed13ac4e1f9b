/**
 * Stopping and starting again: SIGTERM with an upload and a download in flight lets both finish
 * (within --shutdown-grace) while new connections are refused; what is still running after the grace
 * period is cut; the next start on the same data dir is clean. One live server per data dir: a second
 * one refuses to start and names the holder; a lock left by a SIGKILLed server does not block.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockBlobClient } from '@azure/storage-blob';
import { DataDirLockedError, startMockServer } from '@gha-cache/mock-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type MockProcess, spawnMock } from '../support/cli.js';
import { twirp } from '../support/twirp.js';

const VERSION = 'shutdown-test-version';
let root: string;
let n = 0;
const running: MockProcess[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gha-shutdown-'));
});
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop('SIGKILL');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function start(dataDir: string, ...args: string[]): Promise<MockProcess> {
  const p = await spawnMock(['--data-dir', dataDir, '--log-level', 'warn', ...args]);
  running.push(p);
  return p;
}

const rpc = (s: MockProcess, method: string, body: unknown) =>
  twirp(s.url, s.env.ACTIONS_RUNTIME_TOKEN!, method, body);

async function create(s: MockProcess, key: string): Promise<string> {
  const res = await rpc(s, 'CreateCacheEntry', { key, version: VERSION });
  expect(res.json.ok, JSON.stringify(res.json)).toBe(true);
  return res.json.signed_upload_url as string;
}

async function save(s: MockProcess, key: string, data: Buffer): Promise<void> {
  await new BlockBlobClient(await create(s, key)).uploadData(data, { maxSingleShotSize: 256 << 20 });
  const fin = await rpc(s, 'FinalizeCacheEntryUpload', {
    key,
    version: VERSION,
    size_bytes: String(data.length),
  });
  expect(fin.json.ok, JSON.stringify(fin.json)).toBe(true);
}

async function downloadUrl(s: MockProcess, key: string): Promise<string | undefined> {
  const res = await rpc(s, 'GetCacheEntryDownloadURL', { key, version: VERSION });
  return res.json.ok ? (res.json.signed_download_url as string) : undefined;
}

/** Resolves true once a new TCP connection to `url` is refused (polls, generous bound). */
async function refusesConnections(url: string, timeoutMs = 20_000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(Number(port), hostname);
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (refused) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** A Put Blob whose body we feed by hand: `send(buf)` writes, `end()` finishes; `response` settles when the server answers. */
function manualUpload(url: string, total: number) {
  const req: ClientRequest = request(url, {
    method: 'PUT',
    headers: { 'content-length': total, 'x-ms-blob-type': 'BlockBlob' },
  });
  const response = new Promise<{ status: number } | { error: string }>((resolve) => {
    req.once('response', (res: IncomingMessage) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.once('error', (err) => resolve({ error: err.message }));
  });
  return {
    send: (buf: Buffer) =>
      new Promise<void>((resolve) => (req.write(buf) ? resolve() : req.once('drain', resolve))),
    end: () => req.end(),
    response,
  };
}

/** A GET whose body we read only when told to (`readAll()`), so the response stays in flight. */
async function pausedDownload(url: string): Promise<{ status: number; readAll: () => Promise<Buffer> }> {
  const req = request(url, { headers: { 'x-ms-version': '2023-11-03' } });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.pause();
  return {
    status: res.statusCode ?? 0,
    readAll: async () => {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    },
  };
}

/** Byte equality without a deep diff (vitest's toEqual on MiBs of Buffer is slow). */
const sameBytes = (a: Buffer, b: Buffer) => a.length === b.length && a.equals(b);

const exitOf = (p: MockProcess) =>
  new Promise<number | string>((resolve) => {
    if (p.proc.exitCode !== null || p.proc.signalCode !== null)
      resolve(p.proc.exitCode ?? p.proc.signalCode!);
    else p.proc.once('exit', (code, signal) => resolve(code ?? signal!));
  });

describe('SIGTERM with transfers in flight', () => {
  it('refuses new connections, lets the upload and the download finish, exits 0; the next start is clean', async () => {
    const dataDir = join(root, `d${n++}`);
    let s = await start(dataDir, '--shutdown-grace', '60s');
    const kept = randomBytes(12 << 20);
    await save(s, 'kept', kept);
    const late = randomBytes(4 << 20);
    const upload = manualUpload(await create(s, 'late'), late.length);
    await upload.send(late.subarray(0, 1 << 20));
    const download = await pausedDownload((await downloadUrl(s, 'kept'))!);
    expect(download.status).toBe(200);

    s.proc.kill('SIGTERM');
    expect(await refusesConnections(s.url)).toBe(true);
    // Both transfers are still served after new connections stopped being accepted.
    await upload.send(late.subarray(1 << 20));
    upload.end();
    expect(await upload.response).toEqual({ status: 201 });
    expect(sameBytes(await download.readAll(), kept)).toBe(true);
    expect(await exitOf(s)).toBe(0);
    expect(s.stderr()).toMatch(/SIGTERM, closing after 2 request\(s\) in flight finish/);
    expect(s.stderr()).not.toMatch(/cut \d+ request/);

    // Nothing lost: the committed entry restores; the upload that finished during the drain can be
    // finalized now, as after any stop between upload and Finalize.
    s = await start(dataDir);
    expect(
      sameBytes(await new BlockBlobClient((await downloadUrl(s, 'kept'))!).downloadToBuffer(), kept),
    ).toBe(true);
    const fin = await rpc(s, 'FinalizeCacheEntryUpload', {
      key: 'late',
      version: VERSION,
      size_bytes: String(late.length),
    });
    expect(fin.json.ok, JSON.stringify(fin.json)).toBe(true);
    expect(
      sameBytes(await new BlockBlobClient((await downloadUrl(s, 'late'))!).downloadToBuffer(), late),
    ).toBe(true);
  });

  it('cuts what still runs when the grace period ends; the cut upload leaves nothing behind', async () => {
    const dataDir = join(root, `d${n++}`);
    let s = await start(dataDir, '--shutdown-grace', '1s');
    const kept = randomBytes(1 << 20);
    await save(s, 'kept', kept);
    const upload = manualUpload(await create(s, 'stuck'), 8 << 20);
    await upload.send(randomBytes(1 << 20));
    s.proc.kill('SIGTERM');
    expect(await upload.response).toMatchObject({ error: expect.any(String) });
    expect(await exitOf(s)).toBe(0);
    expect(s.stderr()).toMatch(/cut 1 request\(s\) still running after the grace period/);
    s = await start(dataDir);
    expect(
      sameBytes(await new BlockBlobClient((await downloadUrl(s, 'kept'))!).downloadToBuffer(), kept),
    ).toBe(true);
    expect(await downloadUrl(s, 'stuck')).toBeUndefined();
    expect(await readdir(join(dataDir, 'tmp')).catch(() => [])).toEqual([]);
  });

  it('with nothing in flight, closes at once', async () => {
    const s = await start(join(root, `d${n++}`));
    expect(await s.stop('SIGTERM')).toBe(0);
    expect(s.stderr()).toMatch(/SIGTERM, closing\n/);
  });
});

describe('one live server per data dir', () => {
  it('a second server on a held data dir refuses to start and names the holder (pid and address)', async () => {
    const dataDir = join(root, `d${n++}`);
    const first = await start(dataDir);
    const lock = JSON.parse(await readFile(join(dataDir, 'server.lock'), 'utf8'));
    expect(lock).toMatchObject({ pid: first.proc.pid, url: first.url });
    const second = await spawnMock(['--data-dir', dataDir]).catch((err: Error) => err);
    expect(second).toBeInstanceOf(Error);
    expect((second as Error).message).toMatch(/exited with 1/);
    expect((second as Error).message).toContain(`pid ${first.proc.pid}`);
    expect((second as Error).message).toContain(`listening on ${first.url}`);
    // Programmatic starts are refused the same way, with a typed error.
    const err = await startMockServer({ dataDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataDirLockedError);
    expect(err).toMatchObject({
      code: 'ERR_DATA_DIR_LOCKED',
      holder: { pid: first.proc.pid, url: first.url },
    });
    // The holder was not disturbed.
    expect((await rpc(first, 'CreateCacheEntry', { key: 'k', version: VERSION })).json.ok).toBe(true);
    // A clean stop releases the lock.
    expect(await first.stop('SIGTERM')).toBe(0);
    await expect(readFile(join(dataDir, 'server.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a stale lock left by a SIGKILLed server does not block the next start', async () => {
    const dataDir = join(root, `d${n++}`);
    const killed = await start(dataDir);
    const data = randomBytes(100_000);
    await save(killed, 'survivor', data);
    expect(await killed.stop('SIGKILL')).toBe('SIGKILL');
    expect(JSON.parse(await readFile(join(dataDir, 'server.lock'), 'utf8'))).toMatchObject({
      pid: killed.proc.pid,
    });
    const next = await start(dataDir);
    expect(JSON.parse(await readFile(join(dataDir, 'server.lock'), 'utf8'))).toMatchObject({
      pid: next.proc.pid,
      url: next.url,
    });
    expect(await new BlockBlobClient((await downloadUrl(next, 'survivor'))!).downloadToBuffer()).toEqual(
      data,
    );
  });

  it('in-process servers: the second is refused until the first closes', async () => {
    const dataDir = join(root, `d${n++}`);
    const a = await startMockServer({ dataDir });
    await expect(startMockServer({ dataDir })).rejects.toThrow(/in use by another gha-cache-mock/);
    await a.close();
    const b = await startMockServer({ dataDir });
    await b.close();
  });
});
