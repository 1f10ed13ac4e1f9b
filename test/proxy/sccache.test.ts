/**
 * The real sccache (GHA backend, OpenDAL `ghac`: protobuf Twirp) through `gha-cache-mock proxy` in front of an
 * upstream mock (another process): a miss and a write, then a hit with an identical object file from a fresh
 * server, every call in the proxy's journal (protobuf bodies read and their URLs rewritten in place).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrafficEvent } from '@gha-cache/mock-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstalledPeers } from '../peers/install.mjs';
import { createSccache, type Sccache, type SccacheStats } from '../peers/sccache.js';
import { requirePeers } from '../peers/support.js';
import type { MockProcess } from '../support/cli.js';
import { type ProxyProcess, spawnProxy, spawnUpstream } from './support.js';

let peers: Required<Pick<InstalledPeers, 'sccache' | 'cc'>>;
let upstream: MockProcess;
let proxy: ProxyProcess;
let work: string;
let sccache: Sccache | undefined;

beforeAll(async () => {
  peers = await requirePeers(['cc', 'sccache']);
  upstream = await spawnUpstream();
  proxy = await spawnProxy(upstream.url);
  work = await mkdtemp(join(tmpdir(), 'gha-proxy-sccache-'));
  await writeFile(
    join(work, 'hello.c'),
    '#include <stdio.h>\nint main(void) { puts("via the proxy"); return 0; }\n',
  );
  sccache = await createSccache({
    peers,
    work,
    resultsUrl: proxy.env.ACTIONS_RESULTS_URL!,
    token: upstream.env.ACTIONS_RUNTIME_TOKEN!,
    context: () => `--- proxy ---\n${proxy.stderr().slice(-4000)}`,
  });
});

afterAll(async () => {
  await sccache?.stopServer();
  await proxy?.stop();
  await upstream?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function compileWithFreshServer(
  object: string,
): Promise<{ stats: SccacheStats; events: TrafficEvent[] }> {
  const before = (await proxy.traffic()).at(-1)?.id ?? 0;
  const stats = await sccache!.compileWithFreshServer(object);
  return { stats, events: await proxy.traffic(`after=${before}`) };
}

describe('sccache through the proxy', () => {
  it('first compile: a miss, then the object is written through the proxy (protobuf Twirp)', async () => {
    const first = await compileWithFreshServer('hello1.o');
    expect(first.stats.stats.cache_misses.counts).toEqual({ 'C/C++': 1 });
    expect(first.stats.stats.cache_write_errors).toBe(0);
    expect(first.stats.stats.cache_writes).toBe(1);
    const created = first.events.filter(
      (e) => e.op === 'CreateCacheEntry' && e.key !== 'sccache/.sccache_check',
    );
    expect(created.map((e) => [e.key?.replace(/[0-9a-f]{64}$/, 'HASH'), e.outcome])).toEqual([
      [expect.stringMatching(/^sccache\/[0-9a-f]\/[0-9a-f]\/[0-9a-f]\/HASH$/), 'created'],
    ]);
    expect(
      first.events.some((e) => e.surface === 'blob' && e.key === created[0]!.key && e.outcome === 'ok'),
    ).toBe(true);
    expect(
      first.events.filter((e) => e.op === 'FinalizeCacheEntryUpload').every((e) => e.outcome === 'committed'),
    ).toBe(true);
    expect(first.events.find((e) => e.surface === 'twirp')?.client).toBe('sccache');
  });

  it('second compile with a fresh server: a hit through the proxy, identical object file', async () => {
    const second = await compileWithFreshServer('hello2.o');
    expect(second.stats.stats.cache_hits.counts).toEqual({ 'C/C++': 1 });
    expect(second.stats.stats.cache_read_errors).toBe(0);
    expect(await readFile(join(work, 'hello2.o'))).toEqual(await readFile(join(work, 'hello1.o')));
    const check = second.events.filter(
      (e) => e.key === 'sccache/.sccache_check' && e.op === 'CreateCacheEntry',
    );
    expect(check.map((e) => [e.status, e.outcome])).toEqual([[409, 'conflict']]);
    const hit = second.events.find(
      (e) =>
        e.op === 'GetCacheEntryDownloadURL' &&
        e.key !== 'sccache/.sccache_check' &&
        e.outcome === 'hit-exact',
    );
    expect(hit, JSON.stringify(second.events, null, 1)).toBeDefined();
    expect(second.events.some((e) => e.op === 'GetBlob' && e.key === hit!.key && e.status < 300)).toBe(true);
  });
});
