/**
 * Our own client (`@gha-cache/client`, library and `gha-cache` CLI) against mock-side fault rules: retries
 * on 5xx and non-JSON answers, resumes a download whose connection drops, reloads an expired download URL
 * (C-85). The CLI case also starts the mock through its own CLI with `serve --fault`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CacheClient, createCacheClient, type ExchangeEvent } from '@gha-cache/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runGhaCache } from '../client/support/gha-cache-cli.js';
import { MOCK_CLI, type MockProcess, spawnMock } from '../support/cli.js';
import { sha256File, writeRandomFile } from '../support/files.js';
import { type LogLine, startTestMock, type TestMock } from '../support/mock.js';

const MiB = 1024 * 1024;

let mock: TestMock;
let client: CacheClient;
let work: string;
const events: ExchangeEvent[] = [];

beforeAll(async () => {
  mock = await startTestMock();
  work = await mkdtemp(join(tmpdir(), 'gha-faults-client-'));
  client = createCacheClient({
    baseUrl: mock.env.ACTIONS_RESULTS_URL,
    token: mock.token,
    // Short backoff: the decisions are under test, not the waits.
    retry: { baseDelayMs: 20, maxDelayMs: 200 },
    downloadRangeBytes: 2 * MiB,
    downloadConcurrency: 2,
    // Ranged GETs from the start: the resume test counts them (the split has its own test).
    downloadSplitBelowBytesPerSecond: 0,
    onExchange: (e) => events.push(e),
  });
});

afterEach(() => {
  mock.faults.clear();
  events.length = 0;
});

afterAll(async () => {
  await client?.close();
  await mock?.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

async function observe<T>(fn: () => Promise<T>): Promise<{ result: T; requests: LogLine[] }> {
  const before = mock.requests().length;
  const result = await fn();
  return { result, requests: mock.requests().slice(before) };
}

const statuses = (requests: LogLine[], op: string) =>
  requests.filter((r) => r.op === op).map((r) => r.status);
const retryReasons = () => events.flatMap((e) => e.retries.map((r) => `${e.label}: ${r.reason}`));

describe('@gha-cache/client under mock-side faults', () => {
  it('C-85: retries 5xx on Twirp and on blob PUTs, and a proxy HTML 502; the save lands', async () => {
    const file = join(work, 'retry.bin');
    await writeRandomFile(file, 300_000);
    const key = 'client-5xx';
    mock.faults.add({ op: 'CreateCacheEntry', key, times: 2, action: { type: 'status', status: 500 } });
    mock.faults.add({ op: 'PutBlob', key, times: 1, action: { type: 'status', status: 503 } });
    mock.faults.add({ op: 'FinalizeCacheEntryUpload', key, times: 1, action: { type: 'non-json' } });
    const { result, requests } = await observe(() => client.putBlob(key, { path: file }));
    expect(result).toMatchObject({ saved: true, sizeBytes: 300_000 });
    expect(statuses(requests, 'CreateCacheEntry')).toEqual([500, 500, 200]);
    expect(statuses(requests, 'PutBlob')).toEqual([503, 201]);
    expect(statuses(requests, 'FinalizeCacheEntryUpload')).toEqual([502, 200]);
    expect(retryReasons()).toEqual(
      expect.arrayContaining([expect.stringMatching(/HTTP 500/), expect.stringMatching(/HTTP 503/)]),
    );
    const out = join(work, 'retry.out');
    expect(await client.getBlob(key, { destination: { path: out } })).toMatchObject({ hit: true });
    expect(await sha256File(out)).toBe(await sha256File(file));
  });

  it('C-85: resumes a download whose connection drops mid-range, from the byte it had', async () => {
    const file = join(work, 'resume.bin');
    await writeRandomFile(file, 5 * MiB + 77);
    const key = 'client-resume';
    expect(await client.putBlob(key, { path: file })).toMatchObject({ saved: true });
    const rule = mock.faults.add({
      op: 'GetBlob',
      key,
      times: 1,
      action: { type: 'drop', afterBytes: MiB + 4321 },
    });
    const out = join(work, 'resume.out');
    const { result, requests } = await observe(() => client.getBlob(key, { destination: { path: out } }));
    expect(result).toMatchObject({ hit: true, sizeBytes: 5 * MiB + 77 });
    expect(await sha256File(out)).toBe(await sha256File(file));
    expect(mock.faults.list().find((r) => r.id === rule.id)?.fired).toBe(1);
    // One ranged GET was cut; the client asked again from where the bytes stopped, not from the range start.
    const reasons = retryReasons();
    expect(reasons).toEqual([expect.stringMatching(/; resume at \d+$/)]);
    const resumeAt = Number(/resume at (\d+)$/.exec(reasons[0] ?? '')?.[1]);
    expect(resumeAt % (2 * MiB)).not.toBe(0); // mid-range, not from the range start
    expect(resumeAt % (2 * MiB)).toBeLessThanOrEqual(MiB + 4321);
    expect(statuses(requests, 'GetCacheEntryDownloadURL')).toEqual([200]);
    expect(statuses(requests, 'GetBlob').length).toBe(4); // 3 ranges of 2 MiB + the resumed one
  });

  it('a download that starts as one GET splits into parallel ranges while the connection is throttled', async () => {
    const size = 6 * MiB + 99;
    const file = join(work, 'split.bin');
    await writeRandomFile(file, size);
    const key = 'client-split';
    expect(await client.putBlob(key, { path: file })).toMatchObject({ saved: true });
    mock.faults.add({ op: 'GetBlob', key, action: { type: 'throttle', bytesPerSecond: 2 * MiB } });
    const adaptive = createCacheClient({
      baseUrl: mock.env.ACTIONS_RESULTS_URL,
      token: mock.token,
      downloadRangeBytes: MiB,
      downloadConcurrency: 4,
      downloadSplitBelowBytesPerSecond: 4 * MiB,
      onExchange: (e) => events.push(e),
    });
    try {
      const out = join(work, 'split.out');
      expect(await adaptive.getBlob(key, { destination: { path: out } })).toMatchObject({ hit: true });
      expect(await sha256File(out)).toBe(await sha256File(file));
      const gets = events.filter((e) => e.label === 'GetBlobRange');
      // The whole-blob GET was cut at a range boundary after the first probe; 1 MiB ranges did the rest.
      expect(gets.length).toBeGreaterThanOrEqual(4);
      expect(gets.reduce((n, e) => n + e.responseBytes, 0)).toBeGreaterThanOrEqual(size);
      // The ranges ran in parallel: some two of them were in flight at the same time (no wall-clock bound,
      // which a loaded machine could break).
      const spans = gets.map((e) => [e.startedAt, e.startedAt + e.durationMs] as const);
      const overlapping = spans.some(([s1, e1], i) =>
        spans.some(([s2], j) => i !== j && s1 <= s2 && s2 < e1),
      );
      expect(overlapping).toBe(true);
    } finally {
      await adaptive.close();
    }
  });

  it('C-54: reloads an expired download URL once (a fresh Get) and the download succeeds', async () => {
    const file = join(work, 'reload.bin');
    await writeRandomFile(file, 100_000);
    const key = 'client-reload';
    expect(await client.putBlob(key, { path: file })).toMatchObject({ saved: true });
    mock.faults.add({ op: 'GetBlob', key, times: 1, action: { type: 'expire-url' } });
    const out = join(work, 'reload.out');
    const { result, requests } = await observe(() => client.getBlob(key, { destination: { path: out } }));
    expect(result).toMatchObject({ hit: true });
    expect(await sha256File(out)).toBe(await sha256File(file));
    expect(statuses(requests, 'GetCacheEntryDownloadURL')).toEqual([200, 200]);
    expect(statuses(requests, 'GetBlob')).toEqual([403, 200]);
  });
});

describe('gha-cache CLI against `gha-cache-mock serve --fault …`', () => {
  let served: MockProcess;
  beforeAll(async () => {
    served = await spawnMock([
      '--storage',
      'memory',
      '--fault',
      'id=create-500,rpc=CreateCacheEntry,status=500,times=2',
      '--fault',
      '{"id":"expired","op":"GetBlob","nth":1,"action":{"type":"expire-url"}}',
    ]);
  });
  afterAll(async () => {
    await served?.stop();
  });

  it('a bad --fault spec is a usage error naming the problem, and nothing starts', async () => {
    const bad = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [
          MOCK_CLI,
          'serve',
          '--port',
          '0',
          '--storage',
          'memory',
          '--fault',
          'op=GetBlob,status=500,latency=5',
        ],
        (err, _stdout, stderr) => resolve({ code: err ? (err.code as number) : 0, stderr }),
      );
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /option '--fault <spec>' argument 'op=GetBlob,status=500,latency=5' is invalid\. invalid fault "op=GetBlob,status=500,latency=5": one action per rule, got status and latency/,
    );
  });

  it('put retries the injected 500s, get reloads the expired URL; the mock logs every firing', async () => {
    const env = {
      ACTIONS_RESULTS_URL: served.env.ACTIONS_RESULTS_URL,
      ACTIONS_RUNTIME_TOKEN: served.env.ACTIONS_RUNTIME_TOKEN,
    };
    const input = Buffer.from('bytes through faults\n');
    const trace = join(work, 'cli-trace.ndjson');
    const put = await runGhaCache(['put', 'cli-faults', '-', '--json', '--trace', trace], { env, input });
    expect(put.code, put.stderr).toBe(0);
    expect(put.json()).toMatchObject({ saved: true });
    const lines = (await readFile(trace, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { op?: string; attempts?: number });
    expect(lines.find((l) => l.op === 'CreateCacheEntry')).toMatchObject({ attempts: 3 });
    const out = join(work, 'cli.out');
    const get = await runGhaCache(['get', 'cli-faults', out, '--json'], { env });
    expect(get.code, get.stderr).toBe(0);
    expect(await readFile(out)).toEqual(input);
    const log = served.stderr();
    expect(log).toContain('gha-cache-mock: fault rule create-500:');
    const fired = log
      .split('\n')
      .filter((l) => l.includes('"msg":"fault"'))
      .map((l) => JSON.parse(l) as { fault: string; action: string });
    expect(fired.map((f) => `${f.fault}/${f.action}`)).toEqual([
      'create-500/status',
      'create-500/status',
      'expired/expire-url',
    ]);
  });
});
