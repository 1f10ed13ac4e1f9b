/**
 * Blob download through a signed (SAS) URL: HEAD for the size, then parallel ranged GETs written at their
 * offsets (file) or in order (stream). Each range is checked (status, Content-Range, byte count); a range
 * whose connection drops is resumed by the retry interceptor; a 401/403 (expired SAS) asks `refreshUrl`
 * for a fresh URL once and carries on. Works with any host that honours `Range`; a host that ignores it
 * gets one sequential GET.
 */
import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { BlobError, IntegrityError, toCacheError } from '../errors.js';
import { header } from '../http/headers.js';
import { redactUrl } from '../http/redact.js';
import { parallelToFile, parallelToStream } from './parallel.js';
import { linkedAbort } from './pool.js';
import { TransferCounter, type TransferProgress } from './progress.js';
import { type BlobFacts, type DownloadContext, RangeIgnoredError } from './range.js';
import { blobErrorFrom, blobRequest } from './request.js';
import { SignedUrl } from './signed-url.js';
import { writeAt, writeOrdered } from './write.js';

export type BlobDestination = { path: string } | { stream: Writable };

export interface DownloadBlobOptions {
  dispatcher: Dispatcher;
  /** Size of one ranged GET. */
  rangeSizeBytes: number;
  /** Ranged GETs in flight (to a stream: also the number of ranges, of at most 8 MiB, buffered). */
  concurrency: number;
  /**
   * To a file: the download starts as one GET of the whole blob and splits into parallel ranges once
   * that connection's average rate is below this (checked every 500 ms). 0 = parallel from the start.
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

/** The blob's size and ETag, and whether it takes ranges; undefined when HEAD gives no size. */
function head(ctx: DownloadContext): Promise<(BlobFacts & { acceptsRanges: boolean }) | undefined> {
  return ctx.url.send(async (url) => {
    const res = await blobRequest(ctx, { operation: 'GetBlobProperties', url, method: 'HEAD', headers: {} });
    await res.body.dump();
    return {
      status: res.statusCode,
      result: () => {
        if (res.statusCode === 200) {
          const len = Number(header(res.headers, 'content-length'));
          if (!Number.isSafeInteger(len) || len < 0) return undefined;
          return {
            size: len,
            etag: header(res.headers, 'etag'),
            acceptsRanges: header(res.headers, 'accept-ranges') !== 'none',
          };
        }
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
      },
    };
  });
}

/** Downloads the blob behind the SAS `url` into `destination`; the byte count must equal the blob size. */
export async function downloadBlob(
  url: string,
  destination: BlobDestination,
  options: DownloadBlobOptions,
): Promise<DownloadResult> {
  const abort = linkedAbort(options.signal);
  const ctx: DownloadContext = {
    url: new SignedUrl(url, options.refreshUrl),
    dispatcher: options.dispatcher,
    timeoutMs: options.timeoutMs,
    abort,
    signal: abort.signal,
    progress: new TransferCounter('download', undefined, options.onProgress),
  };
  const result = (sizeBytes: number): DownloadResult => ({ sizeBytes, refreshed: ctx.url.refreshed });
  try {
    const props = await head(ctx);
    if (props === undefined || !props.acceptsRanges || props.size <= options.rangeSizeBytes) {
      return result(await sequential(ctx, destination, props?.size));
    }
    ctx.progress.total = props.size;
    // The ranges have an abort of their own: a host that ignores `Range` stops them, not the GET after.
    const rangesAbort = linkedAbort(abort.signal);
    const ranges: DownloadContext = { ...ctx, abort: rangesAbort, signal: rangesAbort.signal };
    try {
      if ('path' in destination) await parallelToFile(ranges, props, destination.path, options);
      else await parallelToStream(ranges, props, destination.stream, options);
    } catch (err) {
      if (!(err instanceof RangeIgnoredError) || ctx.progress.transferred > 0) throw err;
      return result(await sequential(ctx, destination, props.size));
    }
    return result(props.size);
  } catch (err) {
    abort.abort(err);
    throw options.signal?.aborted ? toCacheError(options.signal.reason ?? err) : toCacheError(err);
  }
}

/** One plain GET, streamed; used for small blobs and hosts without HEAD or range support. */
function sequential(
  ctx: DownloadContext,
  destination: BlobDestination,
  expected: number | undefined,
): Promise<number> {
  return ctx.url.send(async (url) => {
    const res = await blobRequest(ctx, { operation: 'GetBlob', url, method: 'GET', headers: {} });
    return {
      status: res.statusCode,
      discard: () => res.body.dump(),
      result: async () => {
        if (res.statusCode !== 200) throw await blobErrorFrom('GetBlob', url, res);
        const declared = Number(header(res.headers, 'content-length'));
        const total = expected ?? (Number.isSafeInteger(declared) ? declared : undefined);
        ctx.progress.total = total;
        let count = 0;
        if ('path' in destination) {
          const fh = await open(destination.path, 'w');
          try {
            for await (const chunk of res.body as AsyncIterable<Buffer>) {
              writeAt(fh.fd, chunk, count);
              count += chunk.length;
              ctx.progress.add(chunk.length);
            }
          } finally {
            await fh.close();
          }
        } else {
          for await (const chunk of res.body as AsyncIterable<Buffer>) {
            await writeOrdered(destination.stream, chunk);
            count += chunk.length;
            ctx.progress.add(chunk.length);
          }
        }
        if (total !== undefined && count !== total) {
          throw new IntegrityError('GetBlob: downloaded size differs from the blob size', total, count);
        }
        return count;
      },
    };
  });
}
