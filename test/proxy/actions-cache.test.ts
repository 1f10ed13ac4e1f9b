/**
 * The real `@actions/cache` 6.3.0 (npm, in-process) saving and restoring through `gha-cache-mock proxy` in
 * front of an upstream mock (another process), below and above 128 MiB: restored trees byte-identical to the
 * saved ones and to a restore straight from the upstream, every call in the proxy's journal; and under upstream
 * faults (429 with Retry-After, 500) it reacts as it does without the proxy.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cache from '@actions/cache';
import type { TrafficEvent } from '@gha-cache/mock-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MockProcess } from '../support/cli.js';
import { digestTree, writeRandomFile, writeTree } from '../support/files.js';
import { captureStdout, useActionsCacheEnv } from '../support/stdout.js';
import { addFault, clearFaults, type ProxyProcess, spawnProxy, spawnUpstream } from './support.js';

const MiB = 1024 * 1024;

let upstream: MockProcess;
let proxy: ProxyProcess;
let work: string;
let restoreEnv: (() => void) | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gha-proxy-actions-cache-'));
  upstream = await spawnUpstream();
  proxy = await spawnProxy(upstream.url);
  restoreEnv = await useActionsCacheEnv(
    { ...proxy.env, ACTIONS_RUNTIME_TOKEN: upstream.env.ACTIONS_RUNTIME_TOKEN },
    work,
  );
});

afterAll(async () => {
  restoreEnv?.();
  await proxy?.stop();
  await upstream?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Runs `fn` with `@actions/cache` pointed at `url` (the proxy by default). */
async function at<T>(url: string, fn: () => Promise<T>): Promise<{ result: T; output: string }> {
  const saved = [process.env.ACTIONS_RESULTS_URL, process.env.ACTIONS_CACHE_URL];
  process.env.ACTIONS_RESULTS_URL = `${url}/`;
  process.env.ACTIONS_CACHE_URL = `${url}/`;
  try {
    return await captureStdout(fn);
  } finally {
    [process.env.ACTIONS_RESULTS_URL, process.env.ACTIONS_CACHE_URL] = saved;
  }
}

async function eventsDuring(fn: () => Promise<unknown>): Promise<TrafficEvent[]> {
  const before = (await proxy.traffic()).at(-1)?.id ?? 0;
  await fn();
  return proxy.traffic(`after=${before}`);
}

let n = 0;
async function roundTrip(key: string, fill: (dir: string) => Promise<void>) {
  const dir = join(work, `dir-${n++}`);
  await fill(dir);
  const before = await digestTree(dir);
  const saveEvents = await eventsDuring(() => at(proxy.url, () => cache.saveCache([dir], key)));
  await rm(dir, { recursive: true });
  let restored: string | undefined;
  const restoreEvents = await eventsDuring(async () => {
    restored = (await at(proxy.url, () => cache.restoreCache([dir], key))).result;
  });
  expect(restored).toBe(key);
  expect(await digestTree(dir)).toEqual(before);
  await rm(dir, { recursive: true });
  expect((await at(upstream.url, () => cache.restoreCache([dir], key))).result).toBe(key);
  expect(await digestTree(dir)).toEqual(before);
  return { saveEvents, restoreEvents };
}

describe('@actions/cache 6.3.0 through the proxy', () => {
  it('saves and restores a few MB (one Put Blob), byte-identical to direct; the journal has every call', async () => {
    const { saveEvents, restoreEvents } = await roundTrip('js-small', async (dir) => {
      await writeRandomFile(join(dir, 'blob.bin'), 5 * MiB + 17);
      await writeTree(dir, { 'x.txt': 'x'.repeat(10_000) });
    });
    expect(saveEvents.map((e) => [e.op, e.outcome])).toEqual([
      ['CreateCacheEntry', 'created'],
      ['PutBlob', 'ok'],
      ['FinalizeCacheEntryUpload', 'committed'],
    ]);
    expect(saveEvents.every((e) => e.key === 'js-small')).toBe(true);
    expect(saveEvents[0]!.client).toBe('actions-cache');
    const lookup = restoreEvents.find((e) => e.op === 'GetCacheEntryDownloadURL')!;
    expect([lookup.key, lookup.outcome, lookup.matchedKey]).toEqual(['js-small', 'hit-exact', 'js-small']);
    expect(
      restoreEvents
        .filter((e) => e.op === 'GetBlob')
        .every((e) => e.key === 'js-small' && e.outcome === 'ok'),
    ).toBe(true);
  });

  it('saves and restores 136 MiB (Put Block + Put Block List) byte-identical to direct', async () => {
    const { saveEvents, restoreEvents } = await roundTrip('js-big', async (dir) => {
      await writeRandomFile(join(dir, 'big.bin'), 136 * MiB);
    });
    const ops = saveEvents.map((e) => e.op);
    expect(ops.filter((o) => o === 'PutBlock').length).toBe(3);
    expect(ops).toContain('PutBlockList');
    expect(ops).not.toContain('PutBlob');
    expect(
      saveEvents.filter((e) => e.op === 'PutBlock').reduce((s, e) => s + (e.bytes ?? 0), 0),
    ).toBeGreaterThan(136 * MiB);
    const downloaded = restoreEvents
      .filter((e) => e.op === 'GetBlob')
      .reduce((s, e) => s + (e.bytes ?? 0), 0);
    expect(downloaded).toBeGreaterThan(136 * MiB);
  });
});

describe('@actions/cache 6.3.0 under upstream faults, through the proxy as without it', () => {
  async function both(rule: Parameters<typeof addFault>[1], run: () => Promise<unknown>) {
    const outcomes: { output: string; result: unknown }[] = [];
    for (const url of [proxy.url, upstream.url]) {
      await addFault(upstream.url, rule);
      try {
        outcomes.push(await at(url, run));
      } finally {
        await clearFaults(upstream.url);
      }
    }
    return outcomes;
  }
  const warnings = (output: string) =>
    output
      .split('\n')
      .filter((l) => l.startsWith('::warning::'))
      .map((l) => l.replace(/\d+/g, 'N'));

  it('429 with Retry-After on Create: the same rate-limit warning, the save skipped both ways', async () => {
    const dir = join(work, 'rl');
    await writeTree(dir, { 'a.txt': 'rate limited' });
    let i = 0;
    const [viaProxy, direct] = await both(
      { op: 'CreateCacheEntry', action: { type: 'status', status: 429, retryAfterSeconds: 7 } },
      () => cache.saveCache([dir], `js-429-${i++}`),
    );
    expect(viaProxy!.result).toBe(direct!.result);
    expect(warnings(viaProxy!.output)).toEqual(warnings(direct!.output));
    expect(viaProxy!.output).toMatch(/rate limit/i);
    const events = await proxy.traffic('op=CreateCacheEntry&outcome=rate-limited');
    expect(events.at(-1)?.status).toBe(429);
  });

  it('500 on Create: retried, then saved, both ways', async () => {
    const dir = join(work, 'e500');
    await writeTree(dir, { 'a.txt': 'five hundred' });
    let i = 0;
    const [viaProxy, direct] = await both(
      { op: 'CreateCacheEntry', times: 1, action: { type: 'status', status: 500 } },
      () => cache.saveCache([dir], `js-500-${i++}`),
    );
    expect(viaProxy!.result).toBeGreaterThan(0);
    expect(direct!.result).toBeGreaterThan(0);
    const creates = (await proxy.traffic('op=CreateCacheEntry')).filter((e) => e.key === 'js-500-0');
    expect(creates.map((e) => e.status)).toEqual([500, 200]);
  });
});
