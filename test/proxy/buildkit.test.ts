/**
 * The real BuildKit exporting and importing its `type=gha` cache through `gha-cache-mock proxy` in front of an
 * upstream mock (another process): every COPY layer CACHED on import, the output byte-identical to the
 * export's and to an import straight from the upstream, each call in the proxy's journal; then the entries the
 * proxy saved (`--save-entries`) seed a fresh local mock, and an import against it is fully CACHED too.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrafficEvent } from '@gha-cache/mock-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstalledPeers } from '../peers/install.mjs';
import { buildInFreshDaemon, requirePeers } from '../peers/support.js';
import type { MockProcess } from '../support/cli.js';
import { digestTree, writeRandomFile, writeTree } from '../support/files.js';
import { addFault, clearFaults, type ProxyProcess, spawnProxy, spawnUpstream } from './support.js';

const MiB = 1024 * 1024;
const COPY_STEPS = ['[1/3] COPY a.txt /a.txt', '[2/3] COPY big.bin /big.bin', '[3/3] COPY c.txt /c.txt'];

let peers: Required<Pick<InstalledPeers, 'buildkit' | 'runc'>>;
let upstream: MockProcess;
let proxy: ProxyProcess;
let work: string;
let ctxDir: string;

beforeAll(async () => {
  peers = await requirePeers(['runc', 'buildkit']);
  work = await mkdtemp(join(tmpdir(), 'gha-proxy-buildkit-'));
  upstream = await spawnUpstream();
  proxy = await spawnProxy(upstream.url, ['--save-entries', join(work, 'seed')]);
  ctxDir = join(work, 'ctx');
  await writeTree(ctxDir, {
    Dockerfile: 'FROM scratch\nCOPY a.txt /a.txt\nCOPY big.bin /big.bin\nCOPY c.txt /c.txt\n',
    'a.txt': 'alpha\n',
    'c.txt': 'charlie\n',
  });
  // Above 1 MiB: uploaded as Put Blocks + Put Block List, downloaded in ranges.
  await writeRandomFile(join(ctxDir, 'big.bin'), 3 * MiB + 77);
});

afterAll(async () => {
  await proxy?.stop();
  await upstream?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

interface Build {
  cached: Record<string, boolean>;
  output: string;
}

async function buildFresh(
  name: string,
  opts: { exportCache?: string; importCache?: string },
): Promise<Build> {
  const { result, vertices, output, daemonLog } = await buildInFreshDaemon({
    peers,
    dir: join(work, name),
    context: ctxDir,
    args: [
      ...(opts.exportCache ? ['--export-cache', opts.exportCache] : []),
      ...(opts.importCache ? ['--import-cache', opts.importCache] : []),
    ],
  });
  if (result.code !== 0) {
    throw new Error(
      `buildctl ${name} failed (exit ${result.code ?? result.signal}):\n${result.stderr.slice(-6000)}\n` +
        `--- buildkitd log (tail) ---\n${daemonLog.slice(-6000)}\n--- proxy ---\n${proxy.stderr().slice(-4000)}`,
    );
  }
  return {
    cached: Object.fromEntries(COPY_STEPS.map((s) => [s, vertices.get(s)?.cached ?? false])),
    output,
  };
}

const gha = (url: string, token: string, extra = '') =>
  `type=gha,url_v2=${url}/,token=${token},scope=main${extra}`;
const all = (v: boolean) => Object.fromEntries(COPY_STEPS.map((s) => [s, v]));

describe('BuildKit type=gha through the proxy', () => {
  let exported: Build;
  let exportEvents: TrafficEvent[];

  it('exports through the proxy: every call in the journal with its key and outcome', async () => {
    exported = await buildFresh('export', {
      exportCache: gha(proxy.url, upstream.env.ACTIONS_RUNTIME_TOKEN!, ',mode=max'),
    });
    expect(exported.cached).toEqual(all(false));
    exportEvents = await proxy.traffic();
    expect(exportEvents.filter((e) => e.status >= 400)).toEqual([]);
    for (const e of exportEvents) expect(e.client).toBe(e.surface === 'twirp' ? 'buildkit' : 'azure-sdk');
    const created = exportEvents.filter((e) => e.op === 'CreateCacheEntry');
    expect(created.every((e) => e.outcome === 'created')).toBe(true);
    expect(created.filter((e) => e.key?.startsWith('buildkit-blob-1-sha256:')).length).toBeGreaterThanOrEqual(
      3,
    );
    expect(created.filter((e) => e.key?.startsWith('index-main-1-')).length).toBe(1);
    expect(exportEvents.filter((e) => e.op === 'PutBlock').length).toBeGreaterThanOrEqual(4);
    for (const e of exportEvents.filter((x) => x.surface === 'blob'))
      expect(e.key).toMatch(/^(buildkit-blob-1-|index-main-1-)/);
    expect(
      exportEvents.filter((e) => e.op === 'FinalizeCacheEntryUpload').every((e) => e.outcome === 'committed'),
    ).toBe(true);
  });

  it('imports through the proxy into an empty BuildKit: all CACHED, output identical to the export and to direct', async () => {
    const viaProxy = await buildFresh('import-proxy', {
      importCache: gha(proxy.url, upstream.env.ACTIONS_RUNTIME_TOKEN!),
    });
    expect(viaProxy.cached).toEqual(all(true));
    const after = exportEvents.at(-1)!.id;
    const events = await proxy.traffic(`after=${after}`);
    const index = events.find(
      (e) => e.op === 'GetCacheEntryDownloadURL' && e.key?.startsWith('index-main-1-'),
    );
    expect(index?.outcome).toMatch(/^hit-/);
    expect(events.filter((e) => e.op === 'GetBlob' && e.status < 300).length).toBeGreaterThanOrEqual(3);
    const direct = await buildFresh('import-direct', {
      importCache: gha(upstream.url, upstream.env.ACTIONS_RUNTIME_TOKEN!),
    });
    expect(direct.cached).toEqual(all(true));
    const digest = await digestTree(exported.output);
    expect(await digestTree(viaProxy.output)).toEqual(digest);
    expect(await digestTree(direct.output)).toEqual(digest);
  });

  it('upstream faults reach BuildKit as they happened, and it copes as without the proxy', async () => {
    const token = upstream.env.ACTIONS_RUNTIME_TOKEN!;
    // A 429 with Retry-After on the index reservation: go-actions-cache waits and retries.
    const rateLimited = {
      op: 'CreateCacheEntry' as const,
      key: 'index-*',
      times: 1,
      action: { type: 'status' as const, status: 429, retryAfterSeconds: 1 },
    };
    const before = (await proxy.traffic()).at(-1)!.id;
    await addFault(upstream.url, rateLimited);
    const viaProxy = await buildFresh('export-429-proxy', {
      exportCache: gha(proxy.url, token, ',mode=max').replace('scope=main', 'scope=rl-proxy'),
    });
    await clearFaults(upstream.url);
    await addFault(upstream.url, rateLimited);
    const direct = await buildFresh('export-429-direct', {
      exportCache: gha(upstream.url, token, ',mode=max').replace('scope=main', 'scope=rl-direct'),
    });
    await clearFaults(upstream.url);
    expect(viaProxy.cached).toEqual(direct.cached);
    const index = (await proxy.traffic(`after=${before}`)).filter(
      (e) => e.op === 'CreateCacheEntry' && e.key?.startsWith('index-'),
    );
    expect(index.map((e) => [e.status, e.outcome])).toEqual([
      [429, 'rate-limited'],
      [200, 'created'],
    ]);
    // An expired download URL on the first blob read: go-actions-cache asks for a fresh one and the import is CACHED.
    const expired = { op: 'GetBlob' as const, nth: 1, action: { type: 'expire-url' as const } };
    const mark = (await proxy.traffic()).at(-1)!.id;
    await addFault(upstream.url, expired);
    const importProxy = await buildFresh('import-expired-proxy', { importCache: gha(proxy.url, token) });
    await clearFaults(upstream.url);
    await addFault(upstream.url, expired);
    const importDirect = await buildFresh('import-expired-direct', { importCache: gha(upstream.url, token) });
    await clearFaults(upstream.url);
    expect(importProxy.cached).toEqual(all(true));
    expect(importDirect.cached).toEqual(all(true));
    const blobs = (await proxy.traffic(`after=${mark}`)).filter((e) => e.op === 'GetBlob');
    expect(blobs[0]).toMatchObject({ status: 403, errorCode: 'AuthenticationFailed' });
  });

  it('--save-entries, then serve --seed: an import against the seeded local mock is fully CACHED', async () => {
    await proxy.stop();
    const local = await spawnUpstream(['--seed', join(work, 'seed')]);
    try {
      expect(local.stderr()).toMatch(/seeded \d+ entries/);
      const seeded = await buildFresh('import-seeded', {
        importCache: gha(local.url, local.env.ACTIONS_RUNTIME_TOKEN!),
      });
      expect(seeded.cached).toEqual(all(true));
      expect(await digestTree(seeded.output)).toEqual(await digestTree(exported.output));
    } finally {
      await local.stop();
    }
  });
});
