/**
 * End to end: every `gha-cache` command as a real process against the mock server over real sockets.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type MockServer, startMockServer } from '@gha-cache/mock-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestTree, sha256File, writeRandomFile, writeTree } from '../support/files.js';
import { type FaultProxy, startFaultProxy } from './support/fault-proxy.js';
import { GHA_CACHE_BIN, runGhaCache } from './support/gha-cache-cli.js';

const MiB = 1024 * 1024;

let mock: MockServer;
let root: string;
let env: Record<string, string>;

beforeAll(async () => {
  mock = await startMockServer({ storage: 'memory' });
  root = await mkdtemp(join(tmpdir(), 'gha-cli-e2e-'));
  env = { ACTIONS_RESULTS_URL: mock.env.ACTIONS_RESULTS_URL, ACTIONS_RUNTIME_TOKEN: mock.token };
});

afterAll(async () => {
  await mock?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

async function workspace(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

describe('save / restore', () => {
  it('saves a tree and restores it byte for byte elsewhere (exact key)', async () => {
    const ws1 = await workspace('sr-1');
    await writeTree(ws1, {
      'deps/a.txt': 'alpha',
      'deps/nested/b.bin': Buffer.alloc(100_000, 3),
      'deps/with space.txt': 'spaces',
      'deps/empty': '',
      'other/c.txt': 'c',
    });
    await writeRandomFile(join(ws1, 'deps/random.bin'), 3 * MiB);
    const save = await runGhaCache(
      ['save', '--path', 'deps', '--path', 'other/*.txt', '--key', 'tree-1', '--json'],
      {
        env: { ...env, GITHUB_WORKSPACE: ws1 },
        cwd: ws1,
      },
    );
    expect(save.code, save.stderr).toBe(0);
    expect(save.json()).toMatchObject({ command: 'save', saved: true, key: 'tree-1' });

    const ws2 = await workspace('sr-2');
    const restore = await runGhaCache(
      ['restore', '--path', 'deps', '--path', 'other/*.txt', '--key', 'tree-1', '--json'],
      { env: { ...env, GITHUB_WORKSPACE: ws2 }, cwd: ws2 },
    );
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.json()).toMatchObject({
      hit: true,
      matchedKey: 'tree-1',
      exactMatch: true,
      cacheHit: true,
    });
    expect(await digestTree(ws2)).toEqual(await digestTree(ws1));
    expect(await sha256File(join(ws2, 'deps/random.bin'))).toBe(
      await sha256File(join(ws1, 'deps/random.bin')),
    );
  });

  it('saving an existing key is a value, exit 0', async () => {
    const ws = await workspace('sr-1');
    const again = await runGhaCache(
      ['save', '--path', 'deps', '--path', 'other/*.txt', '--key', 'tree-1', '--json'],
      {
        env: { ...env, GITHUB_WORKSPACE: ws },
        cwd: ws,
      },
    );
    expect(again.code).toBe(0);
    expect(again.json()).toMatchObject({ saved: false, reason: 'already_exists' });
  });

  it('restore keys find the newest prefix match; --lookup-only downloads nothing', async () => {
    const ws = await workspace('sr-3');
    const lookup = await runGhaCache(
      [
        'restore',
        '--path',
        'deps',
        '--path',
        'other/*.txt',
        '--key',
        'tree-2',
        '-r',
        'tree-',
        '--lookup-only',
        '--json',
      ],
      { env: { ...env, GITHUB_WORKSPACE: ws }, cwd: ws },
    );
    expect(lookup.code, lookup.stderr).toBe(0);
    expect(lookup.json()).toMatchObject({
      hit: true,
      matchedKey: 'tree-1',
      exactMatch: false,
      lookupOnly: true,
    });
    expect(await readdir(ws)).toEqual([]);
  });

  it('a miss exits 0, or 1 with --fail-on-miss; other paths mean another version', async () => {
    const ws = await workspace('sr-4');
    const miss = await runGhaCache(['restore', '--path', 'deps', '--key', 'tree-1'], {
      env: { ...env, GITHUB_WORKSPACE: ws },
      cwd: ws,
    });
    expect(miss.code).toBe(0);
    expect(miss.stdout.toString()).toContain('Cache not found for input keys: tree-1');
    const fail = await runGhaCache(
      ['restore', '--path', 'deps', '--key', 'tree-1', '--fail-on-miss', '--json'],
      {
        env: { ...env, GITHUB_WORKSPACE: ws },
        cwd: ws,
      },
    );
    expect(fail.code).toBe(1);
    expect(fail.json()).toMatchObject({ hit: false, reason: 'miss' });
  });

  it('ACTIONS_CACHE_MODE=read skips saves; none skips restores', async () => {
    const ws = await workspace('sr-1');
    const skipped = await runGhaCache(['save', '--path', 'deps', '--key', 'mode-1', '--json'], {
      env: { ...env, GITHUB_WORKSPACE: ws, ACTIONS_CACHE_MODE: 'read' },
      cwd: ws,
    });
    expect(skipped.json()).toMatchObject({ saved: false, reason: 'cache_mode' });
    const none = await runGhaCache(
      ['restore', '--path', 'deps', '--path', 'other/*.txt', '--key', 'tree-1', '--json'],
      {
        env: { ...env, GITHUB_WORKSPACE: ws, ACTIONS_CACHE_MODE: 'none' },
        cwd: ws,
      },
    );
    expect(none.json()).toMatchObject({ hit: false, reason: 'cache_mode' });
  });
});

describe('put / get / lookup', () => {
  it('puts and gets a file (Put Blob, one GET)', async () => {
    const dir = await workspace('pg');
    await writeRandomFile(join(dir, 'small.bin'), 2 * MiB);
    const put = await runGhaCache(['put', 'blob-small', join(dir, 'small.bin'), '--json'], { env });
    expect(put.code, put.stderr).toBe(0);
    expect(put.json()).toMatchObject({ saved: true, sizeBytes: 2 * MiB });
    const get = await runGhaCache(['get', 'blob-small', join(dir, 'small.out'), '--json'], { env });
    expect(get.code, get.stderr).toBe(0);
    expect(get.json()).toMatchObject({ hit: true, matchedKey: 'blob-small', sizeBytes: 2 * MiB });
    expect(await sha256File(join(dir, 'small.out'))).toBe(await sha256File(join(dir, 'small.bin')));
  });

  it('C-88: puts a file above 128 MiB as 64 MiB blocks and gets it as parallel ranges or one GET, traced', async () => {
    const dir = await workspace('pg-big');
    await writeRandomFile(join(dir, 'big.bin'), 130 * MiB);
    const trace = join(dir, 'trace.ndjson');
    const put = await runGhaCache(['put', 'blob-big', join(dir, 'big.bin'), '--trace', trace], { env });
    expect(put.code, put.stderr).toBe(0);
    const ops = (await readFile(trace, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { op: string; url: string; status: number });
    expect(ops.filter((o) => o.op === 'PutBlock')).toHaveLength(3);
    expect(ops.map((o) => o.op).filter((o) => o !== 'PutBlock')).toEqual([
      'CreateCacheEntry',
      'PutBlockList',
      'FinalizeCacheEntryUpload',
    ]);
    expect(ops.every((o) => !/sig=(?!REDACTED)/.test(o.url))).toBe(true);

    /** `gha-cache get` with these flags; returns the traced exchanges after checking the content. */
    const get = async (name: string, flags: string[]) => {
      const trace2 = join(dir, `${name}.ndjson`);
      const out = join(dir, `${name}.out`);
      const res = await runGhaCache(['get', 'blob-big', out, '--trace', trace2, '--json', ...flags], { env });
      expect(res.code, res.stderr).toBe(0);
      expect(await sha256File(out)).toBe(await sha256File(join(dir, 'big.bin')));
      return (await readFile(trace2, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { op: string; status: number; responseBytes: number });
    };
    // --split-below 0: 16 MiB ranges from the start.
    const ranged = await get('ranged', ['--split-below', '0']);
    expect(ranged[0]?.op).toBe('GetCacheEntryDownloadURL');
    expect(ranged[1]).toMatchObject({ op: 'GetBlobProperties', status: 200 });
    expect(ranged.filter((o) => o.op === 'GetBlobRange' && o.status === 206)).toHaveLength(9);
    // A connection never below the split rate: one GET of the whole blob.
    const single = await get('single', ['--split-below', '1']);
    expect(single.filter((o) => o.op === 'GetBlobRange')).toMatchObject([
      { status: 206, responseBytes: 130 * MiB },
    ]);
  });

  it('puts stdin of unknown length and gets it to stdout', async () => {
    const data = Buffer.alloc(5 * MiB + 17);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const put = await runGhaCache(['put', 'blob-stdin', '-', '--json'], { env, input: data });
    expect(put.code, put.stderr).toBe(0);
    expect(put.json()).toMatchObject({ saved: true, sizeBytes: data.length });
    const get = await runGhaCache(['get', 'blob-stdin', '-', '--range-size', '1M', '--json'], { env });
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout.equals(data)).toBe(true);
    expect(get.stderr).toContain('"matchedKey":"blob-stdin"'); // --json goes to stderr when stdout is data
  });

  it('speaks protobuf with --encoding protobuf', async () => {
    const put = await runGhaCache(['put', 'blob-pb', '-', '--encoding', 'protobuf'], {
      env,
      input: Buffer.from('pb!'),
    });
    expect(put.code, put.stderr).toBe(0);
    const get = await runGhaCache(['get', 'blob-pb', '-', '--encoding', 'protobuf'], { env });
    expect(get.stdout.toString()).toBe('pb!');
  });

  it('lookup: hit prints the matched key (exit 0), miss exits 1; --path uses the archive version', async () => {
    const hit = await runGhaCache(['lookup', 'blob-x', '--restore-key', 'blob-s'], { env });
    expect(hit.code).toBe(0);
    expect(hit.stdout.toString().trim()).toBe('blob-stdin'); // newest prefix match of the restore key
    const miss = await runGhaCache(['lookup', 'nothing-here', '--json'], { env });
    expect(miss.code).toBe(1);
    expect(miss.json()).toMatchObject({ hit: false, reason: 'miss' });
    const arch = await runGhaCache(['lookup', 'tree-1', '--path', 'deps', '--path', 'other/*.txt'], { env });
    expect(arch.code).toBe(0);
    expect(arch.stdout.toString().trim()).toBe('tree-1');
  });

  it('get of a missing key exits 1', async () => {
    const dir = await workspace('pg-miss');
    const res = await runGhaCache(['get', 'missing', join(dir, 'x')], { env });
    expect(res.code).toBe(1);
  });

  it('put, get and lookup take the key as --key too; both must agree, and one is needed', async () => {
    const dir = await workspace('pg-key-option');
    const src = join(dir, 'src.bin');
    await writeFile(src, 'by option');
    const put = await runGhaCache(['put', '--key', 'blob-opt', src, '--json'], { env });
    expect(put.code, put.stderr).toBe(0);
    expect(put.json()).toMatchObject({ saved: true, key: 'blob-opt' });
    const get = await runGhaCache(['get', '-k', 'blob-opt', '-'], { env });
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout.toString()).toBe('by option');
    const same = await runGhaCache(['get', 'blob-opt', join(dir, 'same.bin'), '--key', 'blob-opt'], { env });
    expect(same.code, same.stderr).toBe(0);
    expect(await readFile(join(dir, 'same.bin'), 'utf8')).toBe('by option');
    const lookup = await runGhaCache(['lookup', '--key', 'blob-opt'], { env });
    expect(lookup.code, lookup.stderr).toBe(0);
    expect(lookup.stdout.toString().trim()).toBe('blob-opt');

    const differ = await runGhaCache(['get', 'blob-opt', '-', '--key', 'other'], { env });
    expect(differ.code).toBe(2);
    expect(differ.stderr).toContain("the key is given twice, differently: 'blob-opt' and --key 'other'");
    expect(differ.stdout.length).toBe(0);
    const lookupDiffer = await runGhaCache(['lookup', 'blob-opt', '--key', 'other'], { env });
    expect(lookupDiffer.code).toBe(2);
    for (const args of [['put'], ['get'], ['lookup'], ['put', src]]) {
      const none = await runGhaCache(args, { env });
      expect(none.code, args.join(' ')).toBe(2);
    }
    const noFile = await runGhaCache(['put', '--key', 'blob-opt'], { env });
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain("missing required argument 'file'");
  });
});

describe('errors and exit codes', () => {
  it('a reader that closes stdout early (get K - | head) ends the CLI quietly with the SIGPIPE status', async () => {
    expect((await runGhaCache(['put', 'pipe-early', '-'], { env, input: randomBytes(8 << 20) })).code).toBe(
      0,
    );
    const child = spawn(process.execPath, [GHA_CACHE_BIN, 'get', 'pipe-early', '-', '--quiet'], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.once('data', () => child.stdout.destroy());
    const [code] = await once(child, 'close');
    expect(stderr).toBe('');
    expect(code).toBe(141);
  });

  it('no URL or token, bad keys, bad flags: exit 2', async () => {
    expect((await runGhaCache(['lookup', 'k'], { env: {} })).code).toBe(2);
    expect((await runGhaCache(['lookup', 'a,b'], { env })).code).toBe(2);
    expect((await runGhaCache(['save', '--key', 'k'], { env })).code).toBe(2);
    expect((await runGhaCache(['get', 'k', '-', '--concurrency', 'zero'], { env })).code).toBe(2);
    expect((await runGhaCache(['frobnicate'], { env })).code).toBe(2);
    expect((await runGhaCache(['--help'], { env })).code).toBe(0);
  });

  it('write denied and read denied are service errors (exit 3) with distinct codes', async () => {
    const readOnly = mock.mintToken([{ scope: 'refs/heads/main', permission: 1 }]);
    const put = await runGhaCache(['put', 'denied', '-', '--json'], {
      env: { ...env, ACTIONS_RUNTIME_TOKEN: readOnly },
      input: Buffer.from('x'),
    });
    expect(put.code).toBe(3);
    expect(put.json()).toMatchObject({ error: { code: 'ERR_WRITE_DENIED' } });
    const writeOnly = mock.mintToken([{ scope: 'refs/heads/main', permission: 2 }]);
    const get = await runGhaCache(['lookup', 'blob-small', '--json'], {
      env: { ...env, ACTIONS_RUNTIME_TOKEN: writeOnly },
    });
    expect(get.code).toBe(3);
    expect(get.json()).toMatchObject({
      error: { code: 'ERR_READ_DENIED', twirpCode: 'permission_denied', httpStatus: 403 },
    });
  });

  it('a bad token is a service error carrying unauthenticated', async () => {
    const res = await runGhaCache(['lookup', 'k', '--json'], {
      env: { ...env, ACTIONS_RUNTIME_TOKEN: 'not-a-jwt' },
    });
    expect(res.code).toBe(3);
    expect(res.json()).toMatchObject({
      error: { code: 'ERR_TWIRP', twirpCode: 'unauthenticated', httpStatus: 401 },
    });
  });

  describe('through a fault proxy', () => {
    let proxy: FaultProxy;
    let proxied: Record<string, string>;
    beforeAll(async () => {
      proxy = await startFaultProxy(mock.url);
      proxied = { ...env, ACTIONS_RESULTS_URL: `${proxy.origin}/` };
    });
    afterAll(async () => {
      await proxy?.close();
    });

    it('C-85: a long 429 fails at once with exit 4 and the reset time', async () => {
      proxy.respond(
        (r) => r.url.endsWith('/CreateCacheEntry'),
        429,
        '{"code":"resource_exhausted","msg":"rate limit exceeded"}',
        1,
        { 'content-type': 'application/json', 'retry-after': '3600' },
      );
      const t0 = Date.now();
      const res = await runGhaCache(['put', 'rl', '-', '--json', '--max-retry-wait', '5'], {
        env: proxied,
        input: Buffer.from('x'),
      });
      expect(res.code).toBe(4);
      const err = res.json().error as { code: string; resetAt: string; retryAfterMs: number };
      expect(err.code).toBe('ERR_RATE_LIMITED');
      expect(err.retryAfterMs).toBe(3_600_000);
      expect(Date.parse(err.resetAt)).toBeGreaterThanOrEqual(t0 + 3_600_000);
    });

    it('C-85: a short 429 and a 502 HTML page are retried and the put succeeds', async () => {
      proxy.respond(
        (r) => r.url.endsWith('/CreateCacheEntry'),
        429,
        '{"code":"resource_exhausted","msg":"x"}',
        1,
        {
          'content-type': 'application/json',
          'retry-after': '1',
        },
      );
      proxy.respond((r) => r.url.endsWith('/FinalizeCacheEntryUpload'), 502, '<html>bad gateway</html>', 1, {
        'content-type': 'text/html',
      });
      const trace = join(root, 'retry-trace.ndjson');
      const res = await runGhaCache(['put', 'retried-put', '-', '--json', '--trace', trace], {
        env: proxied,
        input: Buffer.from('y'),
      });
      expect(res.code, res.stderr).toBe(0);
      expect(res.json()).toMatchObject({ saved: true });
      const lines = (await readFile(trace, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.find((l) => l.op === 'CreateCacheEntry')).toMatchObject({
        attempts: 2,
        retries: [{ reason: 'HTTP 429', delayMs: 1000 }],
      });
      expect(lines.find((l) => l.op === 'FinalizeCacheEntryUpload')).toMatchObject({ attempts: 2 });
    });
  });

  it('save with paths that match nothing is a usage error', async () => {
    const ws = await workspace('empty-ws');
    await writeFile(join(ws, 'x'), 'x');
    const res = await runGhaCache(['save', '--path', 'nothing', '--key', 'k'], {
      env: { ...env, GITHUB_WORKSPACE: ws },
      cwd: ws,
    });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('Path Validation Error');
  });
});
