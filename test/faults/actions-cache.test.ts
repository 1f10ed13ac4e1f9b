/**
 * The real `@actions/cache` 6.3.0 (npm) against mock-side fault rules: how it reacts to each fault class on the
 * Twirp API (docs/protocol.md §3.5): 5xx and non-JSON bodies are retried (3 s, then ×1.5 backoff), a 429 is a
 * rate-limit warning with no retry.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cache from '@actions/cache';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { digestTree, writeTree } from '../support/files.js';
import { type LogLine, startTestMock, type TestMock } from '../support/mock.js';
import { captureStdout, useActionsCacheEnv } from '../support/stdout.js';

let mock: TestMock;
let work: string;
let restoreEnv: (() => void) | undefined;

beforeAll(async () => {
  mock = await startTestMock();
  work = await mkdtemp(join(tmpdir(), 'gha-faults-actions-cache-'));
  restoreEnv = await useActionsCacheEnv(mock.env, work);
});

afterEach(() => {
  mock.faults.clear();
});

afterAll(async () => {
  restoreEnv?.();
  await mock?.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

let n = 0;
async function freshDir(): Promise<string> {
  const dir = join(work, `dir-${n++}`);
  await writeTree(dir, { 'a.txt': `content ${n}`, 'sub/b.txt': 'bravo' });
  return dir;
}

/** What the mock saw for `op` on `key` during `fn`. */
async function observe<T>(fn: () => Promise<T>): Promise<{ result: T; output: string; requests: LogLine[] }> {
  const before = mock.requests().length;
  const { result, output } = await captureStdout(fn);
  return { result, output, requests: mock.requests().slice(before) };
}

const statuses = (requests: LogLine[], op: string) =>
  requests.filter((r) => r.op === op).map((r) => r.status);

describe('@actions/cache 6.3.0 under mock-side faults', () => {
  it('retries a Twirp 500: two failed reservations, then the save lands', async () => {
    const dir = await freshDir();
    const key = 'js-500-twice';
    const rule = mock.faults.add({
      op: 'CreateCacheEntry',
      key,
      times: 2,
      action: { type: 'status', status: 500 },
    });
    const { result, output, requests } = await observe(() => cache.saveCache([dir], key));
    expect(result).toBeGreaterThan(0);
    expect(statuses(requests, 'CreateCacheEntry')).toEqual([500, 500, 200]);
    expect(output).toMatch(
      /Attempt 1 of 5 failed with error: Failed request: \(500\) Internal Server Error: injected fault/,
    );
    expect(output).toMatch(/Attempt 2 of 5 failed/);
    expect(mock.faults.list().find((r) => r.id === rule.id)).toMatchObject({ fired: 2, matched: 3 });
    expect(await cache.restoreCache([dir], key)).toBe(key);
  });

  it('retries a non-JSON body: a proxy HTML 502 on Finalize, even an HTML 200 on lookup', async () => {
    const dir = await freshDir();
    const key = 'js-non-json';
    const digest = await digestTree(dir);
    mock.faults.add({ op: 'FinalizeCacheEntryUpload', key, times: 1, action: { type: 'non-json' } });
    const save = await observe(() => cache.saveCache([dir], key));
    expect(save.result).toBeGreaterThan(0);
    expect(statuses(save.requests, 'FinalizeCacheEntryUpload')).toEqual([502, 200]);
    expect(save.output).toMatch(/Attempt 1 of 5 failed with error: Unexpected token '<'/);

    // Even a 200 with an HTML body is retried: JSON.parse comes before the status (§3.5).
    mock.faults.add({
      op: 'GetCacheEntryDownloadURL',
      key,
      times: 1,
      action: { type: 'non-json', status: 200 },
    });
    await rm(dir, { recursive: true });
    const restore = await observe(() => cache.restoreCache([dir], key));
    expect(restore.result).toBe(key);
    expect(statuses(restore.requests, 'GetCacheEntryDownloadURL')).toEqual([200, 200]);
    expect(await digestTree(dir)).toEqual(digest);
  });

  it('a 429 is a rate-limit warning with the reset time, not retried; the save gives up', async () => {
    const dir = await freshDir();
    const key = 'js-429';
    mock.faults.add({
      op: 'CreateCacheEntry',
      key,
      action: { type: 'status', status: 429, retryAfterSeconds: 42 },
    });
    const { result, output, requests } = await observe(() => cache.saveCache([dir], key));
    expect(result).toBe(-1);
    // Not retried: saveCache returned after exactly one Create (a retry would come before it returns).
    expect(statuses(requests, 'CreateCacheEntry')).toEqual([429]);
    expect(output).toMatch(/::warning::You've hit a rate limit, your rate limit will reset in 42 seconds/);
    // saveCache reports the failed reservation as a ReserveCacheError (info, not an error): the cause is only
    // in the warning above.
    expect(output).toMatch(
      /Failed to save: Unable to reserve cache with key js-429, another job may be creating/,
    );
  });
});
