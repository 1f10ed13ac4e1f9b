/**
 * The real go-actions-cache (the library inside BuildKit's `type=gha`, pinned in
 * test/peers/go-actions-cache-faults/go.mod at BuildKit's version) against mock-side fault rules, through a
 * small Go program of ours that only calls its public API (docs/protocol.md §3.5, §4.11, §6.2): a 429 is retried
 * after `Retry-After`, a 5xx fails at once, a blob 503 with `x-ms-retry-after-ms` is retried by azcore, and a
 * download URL answered 403 is reloaded with a fresh Get.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isolatedEnv, requirePeers, runCommand } from '../peers/support.js';
import { type LogLine, startTestMock, type TestMock } from '../support/mock.js';

const PROGRAM_DIR = fileURLToPath(new URL('../peers/go-actions-cache-faults/', import.meta.url));

interface GoResult {
  op: string;
  key: string;
  ok: boolean;
  hit?: boolean;
  size?: number;
  sha256?: string;
  elapsedMs: number;
  error?: string;
}

let mock: TestMock;
let work: string;
let program: string;

beforeAll(async () => {
  const peers = await requirePeers(['go-actions-cache']);
  console.log(`[peers] testing go-actions-cache ${peers['go-actions-cache'].version} under faults`);
  work = await mkdtemp(join(tmpdir(), 'gha-faults-go-'));
  program = join(work, 'go-actions-cache-faults');
  const built = await runCommand('go', ['build', '-o', program, '.'], {
    cwd: PROGRAM_DIR,
    timeoutMs: 300_000,
  });
  if (built.code !== 0) throw new Error(`go build of ${PROGRAM_DIR} failed:\n${built.stderr}`);
  mock = await startTestMock();
});

afterEach(() => {
  mock.faults.clear();
});

afterAll(async () => {
  await mock?.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Runs the Go program once; returns its outcome line, its log, and what the mock saw meanwhile. */
async function go(...args: string[]): Promise<{ result: GoResult; log: string; requests: LogLine[] }> {
  const before = mock.requests().length;
  const env = isolatedEnv({
    ACTIONS_RESULTS_URL: mock.env.ACTIONS_RESULTS_URL,
    ACTIONS_RUNTIME_TOKEN: mock.token,
    ACTIONS_CACHE_API_FORCE_VERSION: 'v2',
  });
  const run = await runCommand(program, args, { env, timeoutMs: 120_000 });
  const line = run.stdout.split('\n').find((l) => l.startsWith('{'));
  if (!line)
    throw new Error(
      `no result from go-actions-cache-faults ${args.join(' ')} (exit ${run.code}):\n${run.stderr}`,
    );
  return { result: JSON.parse(line) as GoResult, log: run.stderr, requests: mock.requests().slice(before) };
}

const statuses = (requests: LogLine[], op: string) =>
  requests.filter((r) => r.op === op).map((r) => r.status);

describe('go-actions-cache under mock-side faults', () => {
  it('429 with Retry-After on CreateCacheEntry: waits what the header says, retries, and the save lands', async () => {
    const key = 'go-429';
    mock.faults.add({
      op: 'CreateCacheEntry',
      key,
      times: 1,
      action: { type: 'status', status: 429, retryAfterSeconds: 3 },
    });
    const save = await go('save', key, '5000');
    expect(save.result, save.log).toMatchObject({ ok: true });
    // The library's own backoff would have retried after 1 s; 3 s is the header honoured.
    expect(save.result.elapsedMs).toBeGreaterThanOrEqual(2900);
    expect(statuses(save.requests, 'CreateCacheEntry')).toEqual([429, 200]);
    const load = await go('load', key);
    expect(load.result).toMatchObject({ ok: true, hit: true, size: 5000, sha256: save.result.sha256 });
  });

  it('a Twirp 500 is not retried: the save fails at once with the code', async () => {
    const key = 'go-500';
    mock.faults.add({ op: 'CreateCacheEntry', key, times: 1, action: { type: 'status', status: 500 } });
    const save = await go('save', key, '100');
    expect(save.result.ok).toBe(false);
    expect(save.result.error).toMatch(/internal/);
    expect(statuses(save.requests, 'CreateCacheEntry')).toEqual([500]);
  });

  it('a blob 503 ServerBusy with x-ms-retry-after-ms is retried by azcore (no 10 s wait) and the upload lands', async () => {
    const key = 'go-put-503';
    mock.faults.add({ op: 'PutBlob', key, times: 2, action: { type: 'status', status: 503 } });
    const save = await go('save', key, '2000');
    expect(save.result, save.log).toMatchObject({ ok: true });
    // Without x-ms-retry-after-ms azcore would wait at least 8 s (0.8 × 10 s) before its first retry.
    expect(save.result.elapsedMs).toBeLessThan(8000);
    expect(statuses(save.requests, 'PutBlob')).toEqual([503, 503, 201]);
    expect((await go('load', key)).result).toMatchObject({ hit: true, sha256: save.result.sha256 });
  });

  it('an expired download URL (403 on GetBlob) makes it ask Get again, and the download succeeds', async () => {
    const key = 'go-expired';
    const save = await go('save', key, '300000');
    expect(save.result.ok).toBe(true);
    mock.faults.add({ op: 'GetBlob', key, times: 1, action: { type: 'expire-url' } });
    const load = await go('load', key);
    expect(load.result, load.log).toMatchObject({
      ok: true,
      hit: true,
      size: 300000,
      sha256: save.result.sha256,
    });
    expect(load.log).toMatch(/reload download URL because error/);
    expect(statuses(load.requests, 'GetCacheEntryDownloadURL')).toEqual([200, 200]);
    expect(statuses(load.requests, 'GetBlob')).toEqual([403, 200]);
  });
});
