/**
 * GitHub's cache policies as the real `@actions/cache` 6.3.0 meets them (in-process, over real sockets):
 * the rate-limit warning (C-51), the quota message (C-52), idle expiry on the simulated clock (C-49),
 * LRU eviction over the quota (C-48); and the `serve` policy flags of the built CLI.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cache from '@actions/cache';
import { DEFAULT_POLICY_SETTINGS, type TokenScope } from '@gha-cache/mock-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type MockProcess, spawnMock } from '../support/cli.js';
import { writeRandomFile } from '../support/files.js';
import { startTestMock, type TestMock } from '../support/mock.js';
import { useActionsCacheEnv, withRuntimeToken } from '../support/stdout.js';
import { SERVICE, twirp } from '../support/twirp.js';

const DAY = 86_400_000;
const MAIN: TokenScope[] = [{ scope: 'refs/heads/main', permission: 3 }];
const VERSION = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';

let mock: TestMock;
let work: string;
let restoreEnv: (() => void) | undefined;

beforeAll(async () => {
  mock = await startTestMock();
  work = await mkdtemp(join(tmpdir(), 'gha-policies-'));
  restoreEnv = await useActionsCacheEnv(mock.env, work);
});

afterEach(() => {
  mock.app.mock.policies.update(DEFAULT_POLICY_SETTINGS);
});

afterAll(async () => {
  restoreEnv?.();
  await mock?.dispose();
  await rm(work, { recursive: true, force: true });
});

/**
 * Runs `fn` as repository `repositoryId` (with `scopes`) and captures what @actions/core printed
 * (warnings, infos, debug).
 */
async function asRepo<T>(
  repositoryId: string,
  fn: () => Promise<T>,
  scopes: TokenScope[] = MAIN,
): Promise<{ result: T; output: string }> {
  return withRuntimeToken(mock.mintToken(scopes, { repositoryId }), fn);
}

let n = 0;
/** A fresh directory holding `bytes` of incompressible data (the archive is about that size). */
async function dirOf(bytes: number): Promise<string> {
  const dir = join(work, `dir-${n++}`);
  await writeRandomFile(join(dir, 'data.bin'), bytes);
  return dir;
}

describe('@actions/cache 6.3.0 against the policies', () => {
  it('C-51: a save over the rate limit gets the rate-limit warning with the seconds until reset', async () => {
    mock.app.mock.policies.update({ rateLimitPerMinute: 3 });
    const dir = await dirOf(1000);
    for (let i = 0; i < 3; i++) {
      expect((await asRepo('501', () => cache.saveCache([dir], `rate-${i}`))).result).toBeGreaterThan(0);
    }
    const limited = await asRepo('501', () => cache.saveCache([dir], 'rate-3'));
    expect(limited.result).toBe(-1);
    const m = /::warning::You've hit a rate limit, your rate limit will reset in (\d+) seconds/.exec(
      limited.output,
    );
    expect(m, limited.output).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(1);
    expect(Number(m![1])).toBeLessThanOrEqual(60);
    // Another repository is not limited; the limited one saves again once its window has moved.
    expect((await asRepo('502', () => cache.saveCache([dir], 'rate-3'))).result).toBeGreaterThan(0);
    mock.app.mock.clock.advance(60_000);
    expect((await asRepo('501', () => cache.saveCache([dir], 'rate-3'))).result).toBeGreaterThan(0);
  });

  it('C-52: in hard-quota mode a save fails through UsageError (insufficient usage), without retries', async () => {
    mock.app.mock.policies.update({ quotaExhausted: true });
    const dir = await dirOf(1000);
    const from = mock.requests().length;
    const { result, output } = await asRepo('503', () => cache.saveCache([dir], 'quota'));
    expect(result).toBe(-1);
    expect(output).toMatch(/Failed to reserve cache: .*Cache storage quota has been hit/);
    const creates = mock
      .requests()
      .slice(from)
      .filter((r) => r.op === 'CreateCacheEntry');
    expect(creates.map((r) => r.status)).toEqual([412]);
    // Restores still work in this mode.
    mock.app.mock.policies.update({ quotaExhausted: false });
    expect((await asRepo('503', () => cache.saveCache([dir], 'quota'))).result).toBeGreaterThan(0);
    mock.app.mock.policies.update({ quotaExhausted: true });
    await rm(dir, { recursive: true });
    expect((await asRepo('503', () => cache.restoreCache([dir], 'quota'))).result).toBe('quota');
  });

  it('C-20/C-21: read-only and write-only tokens get the denials @actions/cache turns into warnings', async () => {
    const dir = await dirOf(1000);
    expect((await asRepo('506', () => cache.saveCache([dir], 'denied'))).result).toBeGreaterThan(0);
    const readOnly = await asRepo('506', () => cache.saveCache([dir], 'denied-2'), [
      { scope: 'refs/heads/main', permission: 1 },
    ]);
    expect(readOnly.result).toBe(-1);
    expect(readOnly.output).toMatch(
      /::warning::Failed to save: .*cache write denied: token has no writable scopes/,
    );
    const writeOnly = await asRepo('506', () => cache.restoreCache([dir], 'denied'), [
      { scope: 'refs/heads/main', permission: 2 },
    ]);
    expect(writeOnly.result).toBeUndefined();
    expect(writeOnly.output).toMatch(/::warning::.*cache read denied: token has no readable scopes/);
  });

  it('C-49: after advancing the clock 8 days, a restore of an idle entry misses', async () => {
    const dir = await dirOf(1000);
    expect((await asRepo('504', () => cache.saveCache([dir], 'idle'))).result).toBeGreaterThan(0);
    expect((await asRepo('504', () => cache.restoreCache([dir], 'idle'))).result).toBe('idle');
    mock.app.mock.clock.advance(8 * DAY);
    const { result, output } = await asRepo('504', () => cache.restoreCache([dir], 'idle'));
    expect(result).toBeUndefined();
    expect(output).toMatch(/::debug::Cache not found for version \w+ of keys: idle/);
    expect(await mock.app.mock.policies.usage('504')).toEqual({ sizeBytes: 0, count: 0 });
  });

  it('C-48: a save over the quota evicts the least recently used entry; the newest survives', async () => {
    const dirs = await Promise.all([dirOf(100_000), dirOf(100_000), dirOf(100_000)]);
    expect((await asRepo('505', () => cache.saveCache([dirs[0]!], 'lru-a'))).result).toBeGreaterThan(0);
    expect((await asRepo('505', () => cache.saveCache([dirs[1]!], 'lru-b'))).result).toBeGreaterThan(0);
    const two = await mock.app.mock.policies.usage('505');
    expect(two.count).toBe(2);
    // Room for two of these archives, not three.
    mock.app.mock.policies.update({ quotaBytes: Math.ceil(two.sizeBytes * 1.25) });
    expect((await asRepo('505', () => cache.restoreCache([dirs[0]!], 'lru-a'))).result).toBe('lru-a');
    const saveC = await asRepo('505', () => cache.saveCache([dirs[2]!], 'lru-c'));
    expect(saveC.result).toBeGreaterThan(0);
    expect((await mock.app.mock.policies.usage('505')).count).toBe(2);
    expect((await asRepo('505', () => cache.restoreCache([dirs[1]!], 'lru-b'))).result).toBeUndefined();
    expect((await asRepo('505', () => cache.restoreCache([dirs[0]!], 'lru-a'))).result).toBe('lru-a');
    expect((await asRepo('505', () => cache.restoreCache([dirs[2]!], 'lru-c'))).result).toBe('lru-c');
  });
});

describe('gha-cache-mock serve policy flags', () => {
  const procs: MockProcess[] = [];
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
  });
  const spawn = async (args: string[]) => {
    const p = await spawnMock(['--storage', 'memory', ...args]);
    procs.push(p);
    return p;
  };
  const createRaw = (p: MockProcess, key: string) =>
    fetch(new URL(`${SERVICE}CreateCacheEntry`, p.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${p.env.ACTIONS_RUNTIME_TOKEN}` },
      body: JSON.stringify({ key, version: VERSION }),
    });

  it('--rate-limit 1 answers the second Create with 429 and Retry-After; --quota-exhausted with 412', async () => {
    const limited = await spawn([
      '--rate-limit',
      '1',
      '--quota',
      '10GiB',
      '--idle-ttl',
      'off',
      '--clock-offset',
      '1d',
    ]);
    const first = await createRaw(limited, 'a');
    expect(first.status).toBe(200);
    // Simulated time starts a day ahead: the upload URL expires a day + 60 minutes from now.
    const se = Date.parse(
      new URL(((await first.json()) as { signed_upload_url: string }).signed_upload_url).searchParams.get(
        'se',
      )!,
    );
    expect(Math.abs(se - (Date.now() + DAY + 3_600_000))).toBeLessThan(60_000);
    const second = await createRaw(limited, 'b');
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(await second.json()).toEqual({ code: 'resource_exhausted', msg: 'rate limit exceeded' });

    const exhausted = await spawn(['--quota-exhausted', '--rate-limit', 'off']);
    const res = await twirp(exhausted.url, exhausted.env.ACTIONS_RUNTIME_TOKEN!, 'CreateCacheEntry', {
      key: 'k',
      version: VERSION,
    });
    expect(res.status).toBe(412);
    expect(res.json).toMatchObject({
      code: 'failed_precondition',
      msg: expect.stringContaining('insufficient usage'),
    });
  });

  it('refuses a bad policy value at start', async () => {
    await expect(spawnMock(['--storage', 'memory', '--quota', '10XB'])).rejects.toThrow(
      /invalid size "10XB"/,
    );
    await expect(spawnMock(['--storage', 'memory', '--idle-ttl', '0'])).rejects.toThrow(/idleTtlMs/);
  });
});
