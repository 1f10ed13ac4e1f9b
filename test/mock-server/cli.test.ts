/**
 * The `gha-cache-mock` CLI as a user runs it: ready-to-eval export lines, `token`, `--export-file`,
 * clean SIGTERM, flags passed through `pnpm start --`, and the one-line-per-request log.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MOCK_CLI, spawnMock } from '../support/cli.js';
import { startTestMock } from '../support/mock.js';
import { twirp } from '../support/twirp.js';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gha-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

describe('gha-cache-mock CLI', () => {
  it('prints the export lines, writes --export-file, and closes cleanly on SIGTERM', async () => {
    const exportFile = join(dir, 'mock.env');
    const mock = await spawnMock(['--data-dir', join(dir, 'a'), '--export-file', exportFile]);
    try {
      expect(Object.keys(mock.env).sort()).toEqual([
        'ACTIONS_CACHE_SERVICE_V2',
        'ACTIONS_CACHE_URL',
        'ACTIONS_RESULTS_URL',
        'ACTIONS_RUNTIME_TOKEN',
        'GITHUB_API_URL',
        'GITHUB_REPOSITORY',
      ]);
      // The REST API's origin and repository, never GITHUB_SERVER_URL (a non-github.com host forces v1).
      expect(mock.env.GITHUB_API_URL).toBe(mock.url);
      expect(mock.env.GITHUB_REPOSITORY).toBe('octo-org/octo-repo');
      expect(mock.env.ACTIONS_CACHE_SERVICE_V2).toBe('true');
      expect(mock.env.ACTIONS_RESULTS_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const file = await readFile(exportFile, 'utf8');
      expect(file).toContain(`export ACTIONS_RUNTIME_TOKEN=${mock.env.ACTIONS_RUNTIME_TOKEN}`);
      // The printed lines are valid shell: eval them and read a variable back.
      const { stdout } = await run('bash', ['-c', `source ${exportFile} && echo "$ACTIONS_RESULTS_URL"`]);
      expect(stdout.trim()).toBe(mock.env.ACTIONS_RESULTS_URL);
      const res = await twirp(mock.url, mock.env.ACTIONS_RUNTIME_TOKEN!, 'CreateCacheEntry', {
        key: 'k',
        version: 'v',
      });
      expect(res.json.ok).toBe(true);
    } finally {
      expect(await mock.stop('SIGTERM')).toBe(0);
    }
  });

  it('`token` mints tokens the server accepts, with the scopes asked for', async () => {
    const dataDir = join(dir, 'b');
    const mock = await spawnMock(['--data-dir', dataDir]);
    try {
      const { stdout } = await run(process.execPath, [
        MOCK_CLI,
        'token',
        '--data-dir',
        dataDir,
        '--scope',
        'refs/heads/feature:rw',
        '--scope',
        'refs/heads/main:r',
        '--ttl',
        '10m',
      ]);
      const token = stdout.trim();
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
      expect(JSON.parse(claims.ac)).toEqual([
        { Scope: 'refs/heads/feature', Permission: 3 },
        { Scope: 'refs/heads/main', Permission: 1 },
      ]);
      expect(claims.exp - claims.iat).toBe(600);
      const created = await twirp(mock.url, token, 'CreateCacheEntry', { key: 'k', version: 'v' });
      expect(created.json.ok).toBe(true);
      const foreign = await run(process.execPath, [MOCK_CLI, 'token', '--token-secret', 'other']);
      const denied = await twirp(mock.url, foreign.stdout.trim(), 'CreateCacheEntry', {
        key: 'k2',
        version: 'v',
      });
      expect(denied.status).toBe(401);
    } finally {
      await mock.stop();
    }
  });

  it('rejects bad flags with a clear message and a non-zero exit', async () => {
    const err = await run(process.execPath, [MOCK_CLI, 'serve', '--port', 'abc']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((err as { code: number }).code).not.toBe(0);
    expect((err as { stderr: string }).stderr).toMatch(/invalid port "abc"/);
  });

  it('`pnpm start -- --port N …` passes the flags through', async () => {
    const port = await freePort();
    const child = spawn(
      'npx',
      [
        '-y',
        'pnpm@10.34.8',
        'start',
        '--',
        '--port',
        String(port),
        '--storage',
        'memory',
        '--log-level',
        'silent',
      ],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    try {
      const out = await new Promise<string>((resolve, reject) => {
        let buf = '';
        child.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('ACTIONS_RUNTIME_TOKEN=')) resolve(buf);
        });
        child.on('exit', (code) => reject(new Error(`pnpm start exited ${code}: ${buf}`)));
      });
      expect(out).toContain(`export ACTIONS_RESULTS_URL=http://127.0.0.1:${port}/`);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
    }
  }, 120_000);
});

describe('request log', () => {
  it('writes one structured line per request with op, key, match, status, bytes and duration; signatures redacted', async () => {
    const mock = await startTestMock();
    try {
      const created = await twirp(mock.url, mock.token, 'CreateCacheEntry', { key: 'log-key', version: 'v' });
      const url = created.json.signed_upload_url as string;
      await fetch(url, { method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' }, body: 'hello' });
      await twirp(mock.url, mock.token, 'FinalizeCacheEntryUpload', {
        key: 'log-key',
        version: 'v',
        size_bytes: 5,
      });
      const hit = await twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', {
        key: 'log',
        restore_keys: [],
        version: 'v',
      });
      await (await fetch(hit.json.signed_download_url as string)).text();
      await twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', { key: 'nothing', version: 'v' });

      const lines = await mock.waitForRequests(6);
      expect(lines).toHaveLength(6);
      for (const l of lines) {
        expect(typeof l.status).toBe('number');
        expect(typeof l.ms).toBe('number');
        expect(l.url).not.toMatch(/sig=(?!REDACTED)/);
      }
      expect(lines.map((l) => l.op)).toEqual([
        'CreateCacheEntry',
        'PutBlob',
        'FinalizeCacheEntryUpload',
        'GetCacheEntryDownloadURL',
        'GetBlob',
        'GetCacheEntryDownloadURL',
      ]);
      expect(lines[0]).toMatchObject({ key: 'log-key', encoding: 'json', status: 200 });
      expect(lines[1]).toMatchObject({ bytes: 5, status: 201 });
      expect(lines[3]).toMatchObject({ key: 'log', match: 'prefix' });
      expect(lines[4]).toMatchObject({ bytes: 5, status: 200 });
      expect(lines[5]).toMatchObject({ match: 'miss' });
      expect(lines[1]!.url).toContain('sig=REDACTED');
    } finally {
      await mock.dispose();
    }
  });
});
