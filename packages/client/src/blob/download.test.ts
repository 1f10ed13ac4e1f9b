import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { type Dispatcher, MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createRetryInterceptor } from '../http/retry.js';
import { type DownloadBlobOptions, downloadBlob } from './download.js';
import { PROBE_MS } from './parallel.js';
import { splitRanges } from './range.js';

const ORIGIN = 'http://blob.test';
const OLD = `${ORIGIN}/c/blob?sig=old`;
const NEW = `${ORIGIN}/c/blob?sig=new`;
const KiB = 1024;

interface Answer {
  statusCode: number;
  data?: Buffer | string | Promise<Buffer>;
  headers?: Record<string, string>;
}

interface Seen {
  method: string;
  path: string;
  range: string | undefined;
}

/**
 * A blob host on a MockAgent: HEAD gives the size, a ranged GET its bytes (206), a GET without range the
 * whole blob. `answer` may replace any reply (return undefined to keep the default).
 */
function blobHost(
  agent: MockAgent,
  blob: Buffer,
  answer: (seen: Seen) => Answer | undefined = () => undefined,
) {
  const seen: Seen[] = [];
  const pool = agent.get(ORIGIN);
  const reply = (opts: { method: string; path: string; headers?: unknown }) => {
    const headers = (opts.headers ?? {}) as Record<string, string>;
    const s: Seen = { method: opts.method, path: opts.path, range: headers.range };
    seen.push(s);
    const custom = answer(s);
    if (custom) {
      const { statusCode, data = '', headers = {} } = custom;
      return { statusCode, data, responseOptions: { headers } };
    }
    if (opts.method === 'HEAD') {
      return {
        statusCode: 200,
        data: '',
        responseOptions: {
          headers: { 'content-length': String(blob.length), etag: '"v1"', 'accept-ranges': 'bytes' },
        },
      };
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(s.range ?? '');
    if (!m) return { statusCode: 200, data: blob };
    const start = Number(m[1]);
    const end = Number(m[2]);
    return {
      statusCode: 206,
      data: blob.subarray(start, end + 1),
      responseOptions: { headers: { 'content-range': `bytes ${start}-${end}/${blob.length}` } },
    };
  };
  for (const method of ['HEAD', 'GET']) {
    pool
      .intercept({ path: (p: string) => p.startsWith('/c/blob'), method })
      .reply(reply as never)
      .persist();
  }
  return seen;
}

describe('downloadBlob', () => {
  let agent: MockAgent;
  let dispatcher: Dispatcher;
  let dir: string;
  beforeEach(async () => {
    agent = new MockAgent();
    agent.disableNetConnect();
    dispatcher = agent.compose(createRetryInterceptor({ baseDelayMs: 1, maxDelayMs: 5 }));
    dir = await mkdtemp(join(tmpdir(), 'gha-download-test-'));
  });
  afterEach(async () => {
    vi.useRealTimers();
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  });
  const options = (over: Partial<DownloadBlobOptions> = {}): DownloadBlobOptions => ({
    dispatcher,
    rangeSizeBytes: 4 * KiB,
    concurrency: 3,
    splitBelowBytesPerSecond: 0,
    timeoutMs: 10_000,
    ...over,
  });
  const ranges = (seen: Seen[]) =>
    seen
      .filter((s) => s.method === 'GET')
      .map((s) => s.range)
      .sort();
  const asHeaders = (r: [number, number][]) => r.map(([s, e]) => `bytes=${s}-${e}`).sort();

  it('splits a blob into ranges of rangeSizeBytes, the last one short', () => {
    expect(splitRanges(10, 4)).toEqual([
      [0, 3],
      [4, 7],
      [8, 9],
    ]);
    expect(splitRanges(10, 4, 4)).toEqual([
      [4, 7],
      [8, 9],
    ]);
    expect(splitRanges(8, 4)).toEqual([
      [0, 3],
      [4, 7],
    ]);
    expect(splitRanges(0, 4)).toEqual([]);
  });

  it('to a file, parallel from the start: every range once, the bytes at their offsets', async () => {
    const blob = randomBytes(18 * KiB + 5);
    const seen = blobHost(agent, blob);
    const path = join(dir, 'out');
    const progress: number[] = [];
    const res = await downloadBlob(
      OLD,
      { path },
      options({ onProgress: (p) => progress.push(p.transferredBytes) }),
    );
    expect(res).toEqual({ sizeBytes: blob.length, refreshed: false });
    expect((await readFile(path)).equals(blob)).toBe(true);
    expect(ranges(seen)).toEqual(asHeaders(splitRanges(blob.length, 4 * KiB)));
    expect(progress.at(-1)).toBe(blob.length);
  });

  it('to a stream, ranges of at most 8 MiB written in order', async () => {
    const blob = randomBytes(20 * 1024 * KiB);
    const seen = blobHost(agent, blob);
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await downloadBlob(OLD, { stream: out }, options({ rangeSizeBytes: 16 * 1024 * KiB }));
    expect(Buffer.concat(chunks).equals(blob)).toBe(true);
    expect(ranges(seen)).toEqual(asHeaders(splitRanges(blob.length, 8 * 1024 * KiB)));
  });

  it('the split probe cuts a slow whole-blob GET at the next range boundary and fetches the rest in ranges', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const blob = randomBytes(18 * KiB + 5);
    const whole = `bytes=0-${blob.length - 1}`;
    const rest = asHeaders(splitRanges(blob.length, 4 * KiB, 4 * KiB));
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let requested!: () => void;
    const wholeRequested = new Promise<void>((r) => {
      requested = r;
    });
    let rangesSeen = 0;
    const seen = blobHost(agent, blob, (s) => {
      if (s.range === whole) {
        requested();
        // Nothing arrives on the whole-blob GET until every other range was asked for: it runs at 0 B/s.
        const headers = { 'content-range': `bytes 0-${blob.length - 1}/${blob.length}` };
        return { statusCode: 206, data: held.then(() => blob), headers };
      }
      if (s.method === 'GET' && ++rangesSeen === rest.length) release();
      return undefined;
    });
    const path = join(dir, 'out');
    const done = downloadBlob(OLD, { path }, options({ splitBelowBytesPerSecond: 1024 * 1024 * KiB }));
    await wholeRequested;
    vi.advanceTimersByTime(PROBE_MS);
    const res = await done;
    expect(res.sizeBytes).toBe(blob.length);
    expect((await readFile(path)).equals(blob)).toBe(true);
    expect(ranges(seen)).toEqual([whole, ...rest].sort());
  });

  it('with one lane the whole-blob GET is never split', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const blob = randomBytes(18 * KiB + 5);
    const seen = blobHost(agent, blob);
    const path = join(dir, 'out');
    await downloadBlob(
      OLD,
      { path },
      options({ concurrency: 1, splitBelowBytesPerSecond: 1024 * 1024 * KiB }),
    );
    vi.advanceTimersByTime(10 * PROBE_MS);
    expect(ranges(seen)).toEqual([`bytes=0-${blob.length - 1}`]);
    expect((await readFile(path)).equals(blob)).toBe(true);
  });

  it('reloads an expired URL once for all ranges (401/403), and carries on with the fresh one', async () => {
    const blob = randomBytes(18 * KiB + 5);
    const seen = blobHost(agent, blob, (s) =>
      s.path.includes('sig=old') && s.method === 'GET' ? { statusCode: 403, data: '<Error/>' } : undefined,
    );
    const refreshUrl = vi.fn(async () => NEW);
    const path = join(dir, 'out');
    const res = await downloadBlob(OLD, { path }, options({ refreshUrl }));
    expect(res).toEqual({ sizeBytes: blob.length, refreshed: true });
    expect(refreshUrl).toHaveBeenCalledTimes(1);
    expect((await readFile(path)).equals(blob)).toBe(true);
    const fresh = seen.filter((s) => s.method === 'GET' && s.path.includes('sig=new'));
    expect(fresh.map((s) => s.range).sort()).toEqual(asHeaders(splitRanges(blob.length, 4 * KiB)));
  });

  it('a refusal of the fresh URL stands: no second reload', async () => {
    const blob = randomBytes(2 * KiB);
    blobHost(agent, blob, (s) => (s.method === 'GET' ? { statusCode: 403 } : undefined));
    const refreshUrl = vi.fn(async () => NEW);
    await expect(
      downloadBlob(OLD, { path: join(dir, 'out') }, options({ refreshUrl })),
    ).rejects.toMatchObject({
      code: 'ERR_BLOB',
      operation: 'GetBlob',
      httpStatus: 403,
    });
    expect(refreshUrl).toHaveBeenCalledTimes(1);
  });

  it('an entry gone at reload time is a BlobError CacheEntryGone', async () => {
    const blob = randomBytes(2 * KiB);
    blobHost(agent, blob, (s) => (s.method === 'HEAD' ? { statusCode: 401 } : undefined));
    await expect(
      downloadBlob(OLD, { path: join(dir, 'out') }, options({ refreshUrl: async () => undefined })),
    ).rejects.toMatchObject({ code: 'ERR_BLOB', azureCode: 'CacheEntryGone' });
  });

  it('a host that ignores Range gets one plain GET', async () => {
    const blob = randomBytes(18 * KiB + 5);
    const seen = blobHost(agent, blob, (s) =>
      s.method === 'GET' && s.range !== undefined ? { statusCode: 200, data: blob } : undefined,
    );
    const path = join(dir, 'out');
    const res = await downloadBlob(OLD, { path }, options());
    expect(res.sizeBytes).toBe(blob.length);
    expect((await readFile(path)).equals(blob)).toBe(true);
    expect(seen.filter((s) => s.method === 'GET' && s.range === undefined)).toHaveLength(1);
  });
});
