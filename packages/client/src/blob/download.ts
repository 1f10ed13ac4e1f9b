/**
 * Blob download through a signed (SAS) URL: HEAD for the size, then parallel ranged GETs written at their
 * offsets (file) or in order (stream). Each range is checked (status, Content-Range, byte count); a range
 * whose connection drops is resumed by the retry interceptor; a 401/403 (expired SAS) asks `refreshUrl`
 * for a fresh URL once and carries on. Works with any host that honours `Range`; a host that ignores it
 * gets one sequential GET.
 */
import { once } from 'node:events';
import { writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { BlobError, IntegrityError, toCacheError } from '../errors.js';
import { header } from '../http/headers.js';
import { redactUrl } from '../http/redact.js';
import {
  blobErrorFrom,
  blobErrorFromParts,
  blobRequest,
  blobStream,
  type Flow,
  linkedAbort,
  type TransferProgress,
} from './common.js';

const MiB = 1024 * 1024;
/** Largest single file write (see `writeAt`). */
const WRITE_PIECE = 32 * 1024;
/** Largest range when downloading to a stream (ranges are buffered in memory until written in order). */
const STREAM_RANGE_MAX = 8 * MiB;

export type BlobDestination = { path: string } | { stream: Writable };

export interface DownloadBlobOptions {
  dispatcher: Dispatcher;
  /** Size of one ranged GET. */
  rangeSizeBytes: number;
  /** Ranged GETs in flight (to a stream: also the number of ranges, of at most 8 MiB, buffered). */
  concurrency: number;
  /**
   * To a file: the download starts as one GET of the whole blob and splits into parallel ranges once
   * that connection's average rate is below this (checked every PROBE_MS). 0 = parallel from the start.
   */
  splitBelowBytesPerSecond: number;
  timeoutMs: number;
  /**
   * Called at most once, when the blob store answers 401/403 (an expired SAS): returns a fresh URL for the
   * same blob, or undefined when the entry is gone.
   */
  refreshUrl?: (() => Promise<string | undefined>) | undefined;
  onProgress?: ((p: TransferProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
}

export interface DownloadResult {
  sizeBytes: number;
  /** Whether the SAS URL had to be refreshed. */
  refreshed: boolean;
}

class RangeIgnoredError extends Error {}

/** Thrown inside a range's data callback once it reached its (moved) end: ends that GET early, not an error. */
class RangeCutError extends Error {}

/** How often the single whole-blob GET is measured against `splitBelowBytesPerSecond`. */
const PROBE_MS = 500;

/** Where a running range stands, and where it must stop (exclusive; may move closer while it runs). */
interface RangeCursor {
  offset: number;
  stopAt: number;
}

class UrlHolder {
  #url: string;
  #refreshing: Promise<string> | undefined;
  refreshed = false;
  constructor(
    url: string,
    readonly refresh: (() => Promise<string | undefined>) | undefined,
  ) {
    this.#url = url;
  }
  get current(): string {
    return this.#url;
  }
  /** A fresh URL once; undefined when refreshing is impossible or was already done for `stale`. */
  async renew(stale: string): Promise<string | undefined> {
    if (this.#url !== stale) return this.#url;
    if (this.refreshed || !this.refresh) return undefined;
    this.#refreshing ??= this.refresh().then((u) => {
      if (u === undefined)
        throw new BlobError({
          operation: 'RefreshUrl',
          url: '',
          httpStatus: 404,
          azureCode: 'CacheEntryGone',
        });
      this.#url = u;
      this.refreshed = true;
      return u;
    });
    return this.#refreshing;
  }
}

function isAuthFailure(status: number): boolean {
  return status === 401 || status === 403;
}

async function head(
  urls: UrlHolder,
  options: DownloadBlobOptions,
  signal: AbortSignal,
): Promise<{ size: number; etag: string | undefined; acceptsRanges: boolean } | undefined> {
  for (;;) {
    const url = urls.current;
    const res = await blobRequest({
      operation: 'GetBlobProperties',
      url: new URL(url),
      method: 'HEAD',
      headers: {},
      dispatcher: options.dispatcher,
      timeoutMs: options.timeoutMs,
      signal,
    });
    await res.body.dump();
    if (res.statusCode === 200) {
      const len = Number(header(res.headers, 'content-length'));
      if (!Number.isSafeInteger(len) || len < 0) return undefined;
      return {
        size: len,
        etag: header(res.headers, 'etag'),
        acceptsRanges: header(res.headers, 'accept-ranges') !== 'none',
      };
    }
    if (isAuthFailure(res.statusCode) && (await urls.renew(url)) !== undefined) continue;
    if (res.statusCode === 404) {
      throw new BlobError({
        operation: 'GetBlobProperties',
        url: redactUrl(url),
        httpStatus: 404,
        azureCode: header(res.headers, 'x-ms-error-code') ?? 'BlobNotFound',
      });
    }
    // HEAD not allowed by this host / signature (e.g. a GET-only presigned URL): fall back to one GET.
    return undefined;
  }
}

/** Receives one range: chunks in order (synchronously, with backpressure through `flow`), then `done`. */
interface RangeSink {
  data(chunk: Buffer, offset: number, flow: Flow): void;
  /** Resolves once every byte handed to `data` is persisted. */
  done(): Promise<void>;
}

function contentRangeError(
  headers: IncomingHttpHeaders,
  start: number,
  end: number,
): IntegrityError | undefined {
  const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(headers, 'content-range')?.trim() ?? '');
  if (cr && Number(cr[1]) === start && Number(cr[2]) === end) return undefined;
  return new IntegrityError(
    `GetBlobRange: Content-Range "${header(headers, 'content-range') ?? ''}" for bytes=${start}-${end}`,
    end - start + 1,
    cr ? Number(cr[2]) - Number(cr[1]) + 1 : 0,
  );
}

/**
 * Fetches bytes [start, end] into a sink made by `makeSink` (one per attempt). Throws
 * {@link RangeIgnoredError} when the server answers 200 to a partial range.
 */
async function fetchRange(
  urls: UrlHolder,
  start: number,
  end: number,
  size: number,
  etag: string | undefined,
  options: DownloadBlobOptions,
  signal: AbortSignal,
  makeSink: () => RangeSink,
  cursor: RangeCursor = { offset: start, stopAt: end + 1 },
): Promise<void> {
  for (;;) {
    const url = urls.current;
    const target = new URL(url);
    const headers: Record<string, string> = { range: `bytes=${start}-${end}` };
    if (etag !== undefined && !etag.startsWith('W/')) headers['if-match'] = etag;
    const sink = makeSink();
    let offset = start;
    let problem: Error | undefined;
    const res = await blobStream(
      {
        operation: 'GetBlobRange',
        url: target,
        method: 'GET',
        headers,
        dispatcher: options.dispatcher,
        timeoutMs: options.timeoutMs,
        signal,
      },
      (status, h) => {
        if (status === 206) {
          problem = contentRangeError(h, start, end);
          if (problem) throw problem;
          return true;
        }
        if (status === 200) {
          if (start !== 0 || end !== size - 1) {
            problem = new RangeIgnoredError();
            throw problem;
          }
          return true;
        }
        return false;
      },
      (chunk, flow) => {
        if (offset + chunk.length > end + 1) {
          throw new IntegrityError(
            `GetBlobRange: more bytes than asked for bytes=${start}-${end}`,
            end - start + 1,
            offset + chunk.length - start,
          );
        }
        const room = cursor.stopAt - offset;
        const cut = chunk.length >= room && cursor.stopAt <= end;
        const take = cut ? chunk.subarray(0, room) : chunk;
        if (take.length > 0) sink.data(take, offset, flow);
        offset += take.length;
        cursor.offset = offset;
        if (cut) {
          problem = new RangeCutError();
          throw problem;
        }
      },
    ).catch(async (err: unknown) => {
      if (problem instanceof RangeCutError) {
        await sink.done();
        return undefined;
      }
      await sink.done().catch(() => undefined);
      throw problem ?? err;
    });
    if (res === undefined) return; // stopped at the cursor's end, all bytes before it written
    if (!res.streamed) {
      if (isAuthFailure(res.statusCode) && (await urls.renew(url)) !== undefined) continue;
      throw blobErrorFromParts('GetBlobRange', target, res.statusCode, res.headers, res.errorBody);
    }
    await sink.done();
    if (offset !== end + 1) {
      throw new IntegrityError(
        `GetBlobRange: short range bytes=${start}-${end}`,
        end - start + 1,
        offset - start,
      );
    }
    return;
  }
}

/** Downloads the blob behind the SAS `url` into `destination`; the byte count must equal the blob size. */
export async function downloadBlob(
  url: string,
  destination: BlobDestination,
  options: DownloadBlobOptions,
): Promise<DownloadResult> {
  const abort = linkedAbort(options.signal);
  const urls = new UrlHolder(url, options.refreshUrl);
  let transferred = 0;
  const progress = (n: number, total: number | undefined) => {
    transferred += n;
    options.onProgress?.({ phase: 'download', transferredBytes: transferred, totalBytes: total });
  };
  try {
    const props = await head(urls, options, abort.signal);
    if (props === undefined || !props.acceptsRanges || props.size <= options.rangeSizeBytes) {
      const size = await sequential(urls, destination, options, abort.signal, props?.size, progress);
      return { sizeBytes: size, refreshed: urls.refreshed };
    }
    try {
      if ('path' in destination) {
        await parallelToFile(urls, destination.path, props.size, props.etag, options, abort, progress);
      } else {
        await parallelToStream(urls, destination.stream, props.size, props.etag, options, abort, progress);
      }
    } catch (err) {
      if (!(err instanceof RangeIgnoredError) || transferred > 0) throw err;
      const size = await sequential(urls, destination, options, abort.signal, props.size, progress);
      return { sizeBytes: size, refreshed: urls.refreshed };
    }
    return { sizeBytes: props.size, refreshed: urls.refreshed };
  } catch (err) {
    abort.abort(err);
    throw options.signal?.aborted ? toCacheError(options.signal.reason ?? err) : toCacheError(err);
  }
}

/** One plain GET, streamed; used for small blobs and hosts without HEAD or range support. */
async function sequential(
  urls: UrlHolder,
  destination: BlobDestination,
  options: DownloadBlobOptions,
  signal: AbortSignal,
  expected: number | undefined,
  progress: (n: number, total: number | undefined) => void,
): Promise<number> {
  for (;;) {
    const url = urls.current;
    const target = new URL(url);
    const res = await blobRequest({
      operation: 'GetBlob',
      url: target,
      method: 'GET',
      headers: {},
      dispatcher: options.dispatcher,
      timeoutMs: options.timeoutMs,
      signal,
    });
    if (isAuthFailure(res.statusCode)) {
      await res.body.dump();
      if ((await urls.renew(url)) !== undefined) continue;
      throw await blobErrorFrom('GetBlob', target, res);
    }
    if (res.statusCode !== 200) throw await blobErrorFrom('GetBlob', target, res);
    const declared = Number(header(res.headers, 'content-length'));
    const total = expected ?? (Number.isSafeInteger(declared) ? declared : undefined);
    let count = 0;
    if ('path' in destination) {
      const fh = await open(destination.path, 'w');
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          writeAt(fh.fd, chunk, count);
          count += chunk.length;
          progress(chunk.length, total);
        }
      } finally {
        await fh.close();
      }
    } else {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        await writeOrdered(destination.stream, chunk);
        count += chunk.length;
        progress(chunk.length, total);
      }
    }
    if (total !== undefined && count !== total) {
      throw new IntegrityError('GetBlob: downloaded size differs from the blob size', total, count);
    }
    return count;
  }
}

function splitRanges(size: number, rangeSize: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < size; s += rangeSize) out.push([s, Math.min(size, s + rangeSize) - 1]);
  return out;
}

/**
 * Writes `chunk` at `position`, synchronously, at most WRITE_PIECE bytes per call. A buffered write is a
 * copy into the page cache: done inline, as curl does, it costs no thread-pool round trip per chunk, and
 * a slow disk blocks the socket reads, which is the backpressure. Small writes keep the kernel on small
 * page-cache folios, which come from recently freed memory; 1 MiB writes, served from high-order free
 * memory that a VM host has reclaimed, made a 1 GiB download 2–3× slower here (docs/benchmarks.md).
 */
function writeAt(fd: number, chunk: Buffer, position: number): void {
  for (let done = 0; done < chunk.length; ) {
    done += writeSync(fd, chunk, done, Math.min(WRITE_PIECE, chunk.length - done), position + done);
  }
}

/** Writes each range's chunks at their offsets as they arrive. */
function fileRangeSink(fd: number, onWritten: (n: number) => void): RangeSink {
  return {
    data(chunk, offset) {
      writeAt(fd, chunk, offset);
      onWritten(chunk.length);
    },
    async done() {},
  };
}

/**
 * To a file. The download starts as one GET of the whole blob: on a fast link one stream is the
 * fastest (no per-range round trips, sequential writes). While that connection runs below
 * `splitBelowBytesPerSecond` — object stores cap each connection — it is cut at the next range boundary
 * and the rest goes as parallel ranged GETs, `concurrency` in flight (the first connection included).
 */
async function parallelToFile(
  urls: UrlHolder,
  path: string,
  size: number,
  etag: string | undefined,
  options: DownloadBlobOptions,
  abort: AbortController,
  progress: (n: number, total: number | undefined) => void,
): Promise<void> {
  const rangeSize = options.rangeSizeBytes;
  const fh = await open(path, 'w');
  let written = 0;
  const fetch = (start: number, end: number, cursor?: RangeCursor) =>
    fetchRange(
      urls,
      start,
      end,
      size,
      etag,
      options,
      abort.signal,
      () =>
        fileRangeSink(fh.fd, (n) => {
          written += n;
          progress(n, size);
        }),
      cursor,
    );
  const ranges: [number, number][] = [];
  let next = 0;
  let failure: unknown;
  const fail = (err: unknown) => {
    if (failure !== undefined) return;
    failure = err;
    abort.abort(err);
  };
  /** Takes ranges until none is left; `first` runs before. */
  const lane = async (first?: () => Promise<void>) => {
    try {
      await first?.();
      while (failure === undefined && next < ranges.length) {
        const [start, end] = ranges[next++]!;
        await fetch(start, end);
      }
    } catch (err) {
      fail(err);
    }
  };
  const lanes: Promise<void>[] = [];
  const rangesFrom = (from: number) => {
    for (const [s, e] of splitRanges(size - from, rangeSize)) ranges.push([s + from, e + from]);
  };
  try {
    await fh.truncate(size);
    if (options.splitBelowBytesPerSecond <= 0) {
      rangesFrom(0);
      for (let i = 0; i < options.concurrency; i++) lanes.push(lane());
    } else {
      const whole: RangeCursor = { offset: 0, stopAt: size };
      let probe: NodeJS.Timeout | undefined;
      // One lane cannot gain from a split: it keeps the whole-blob GET.
      if (options.concurrency > 1) {
        const started = performance.now();
        probe = setInterval(() => {
          // The average since the start: a capped connection stays slow, a fast one that stalls for a
          // moment (writeback, a busy core) does not look capped.
          const rate = (whole.offset * 1000) / (performance.now() - started);
          const boundary = Math.ceil((whole.offset + 1) / rangeSize) * rangeSize;
          if (rate >= options.splitBelowBytesPerSecond || boundary >= size) return;
          clearInterval(probe);
          whole.stopAt = boundary;
          rangesFrom(boundary);
          for (let i = 1; i < options.concurrency; i++) lanes.push(lane());
        }, PROBE_MS);
      }
      lanes.push(lane(() => fetch(0, size - 1, whole).finally(() => clearInterval(probe))));
    }
    // Lanes are only added while the first one runs, so this sees all of them.
    for (let i = 0; i < lanes.length; i++) await lanes[i];
    if (failure !== undefined) throw failure;
  } finally {
    await fh.close();
  }
  if (written !== size)
    throw new IntegrityError('download: bytes written differ from the blob size', size, written);
}

async function writeOrdered(stream: Writable, chunk: Buffer): Promise<void> {
  if (!stream.write(chunk)) {
    await Promise.race([
      once(stream, 'drain'),
      once(stream, 'close').then(() => {
        throw new Error('destination stream closed');
      }),
    ]);
  }
}

async function parallelToStream(
  urls: UrlHolder,
  stream: Writable,
  size: number,
  etag: string | undefined,
  options: DownloadBlobOptions,
  abort: AbortController,
  progress: (n: number, total: number | undefined) => void,
): Promise<void> {
  // Ranges are buffered until their turn: keep them small (concurrency × 8 MiB at most).
  const ranges = splitRanges(size, Math.min(options.rangeSizeBytes, STREAM_RANGE_MAX));
  const fetchBuffer = async (i: number): Promise<Buffer> => {
    const [start, end] = ranges[i]!;
    const buf = Buffer.allocUnsafe(end - start + 1);
    await fetchRange(urls, start, end, size, etag, options, abort.signal, () => ({
      data(chunk, offset) {
        chunk.copy(buf, offset - start);
        progress(chunk.length, size);
      },
      done: async () => undefined,
    }));
    return buf;
  };
  const window: Promise<Buffer>[] = [];
  let next = 0;
  let written = 0;
  try {
    for (let i = 0; i < ranges.length; i++) {
      while (window.length < options.concurrency && next < ranges.length) {
        const p = fetchBuffer(next++);
        p.catch(() => undefined); // observed below, in order
        window.push(p);
      }
      const buf = await window.shift()!;
      await writeOrdered(stream, buf);
      written += buf.length;
    }
  } catch (err) {
    abort.abort(err);
    await Promise.allSettled(window);
    throw err;
  }
  if (written !== size)
    throw new IntegrityError('download: bytes written differ from the blob size', size, written);
}
