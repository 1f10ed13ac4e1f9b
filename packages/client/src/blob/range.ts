/**
 * One ranged GET of a download, checked (status, Content-Range, byte count) and written through a sink;
 * its end may move closer while it runs (the split of a whole-blob GET).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { IntegrityError } from '../errors.js';
import { header, parseContentRange } from '../http/headers.js';
import type { TransferCounter } from './progress.js';
import { type BlobHop, blobErrorFromParts, blobStream, type Flow } from './request.js';
import type { SignedUrl } from './signed-url.js';

/** What every request of one download shares. */
export interface DownloadContext extends BlobHop {
  url: SignedUrl;
  /** The download's own abort: a failure anywhere in it ends the other requests. */
  abort: AbortController;
  signal: AbortSignal;
  progress: TransferCounter;
}

/** What the HEAD said of the blob. */
export interface BlobFacts {
  size: number;
  etag: string | undefined;
}

/** The server answered 200 (the whole blob) to a partial range: it ignores `Range`. */
export class RangeIgnoredError extends Error {}

/** Thrown inside a range's data callback once it reached its (moved) end: ends that GET early, not an error. */
class RangeCutError extends Error {}

/** Where a running range stands, and where it must stop (exclusive; may move closer while it runs). */
export interface RangeCursor {
  offset: number;
  stopAt: number;
}

/** Receives one range: chunks in order (synchronously, with backpressure through `flow`), then `done`. */
export interface RangeSink {
  data(chunk: Buffer, offset: number, flow: Flow): void;
  /** Resolves once every byte handed to `data` is persisted. */
  done(): Promise<void>;
}

/** Bytes [start, end] of the blob, into a sink made by `sink` (one per attempt). */
export interface RangeJob {
  start: number;
  end: number;
  sink: () => RangeSink;
  /** Default: from `start` to `end`, fixed. */
  cursor?: RangeCursor;
}

/** `[start, end]` ranges of at most `rangeSize` bytes covering `size` bytes from `from` on. */
export function splitRanges(size: number, rangeSize: number, from = 0): [number, number][] {
  const out: [number, number][] = [];
  for (let s = from; s < size; s += rangeSize) out.push([s, Math.min(size, s + rangeSize) - 1]);
  return out;
}

function contentRangeError(
  headers: IncomingHttpHeaders,
  start: number,
  end: number,
): IntegrityError | undefined {
  const raw = header(headers, 'content-range');
  const cr = parseContentRange(raw);
  if (cr && cr.start === start && cr.end === end) return undefined;
  return new IntegrityError(
    `GetBlobRange: Content-Range "${raw ?? ''}" for bytes=${start}-${end}`,
    end - start + 1,
    cr ? cr.end - cr.start + 1 : 0,
  );
}

/** Fetches one range; throws {@link RangeIgnoredError} when the server answers 200 to a partial range. */
export function fetchRange(ctx: DownloadContext, blob: BlobFacts, job: RangeJob): Promise<void> {
  const { start, end } = job;
  const cursor = job.cursor ?? { offset: start, stopAt: end + 1 };
  const headers: Record<string, string> = { range: `bytes=${start}-${end}` };
  if (blob.etag !== undefined && !blob.etag.startsWith('W/')) headers['if-match'] = blob.etag;
  return ctx.url.send(async (url) => {
    const sink = job.sink();
    let offset = start;
    let problem: Error | undefined;
    const accept = (status: number, h: IncomingHttpHeaders) => {
      if (status === 206) {
        problem = contentRangeError(h, start, end);
        if (problem) throw problem;
        return true;
      }
      if (status === 200) {
        if (start !== 0 || end !== blob.size - 1) {
          problem = new RangeIgnoredError();
          throw problem;
        }
        return true;
      }
      return false;
    };
    const onData = (chunk: Buffer, flow: Flow) => {
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
    };
    const request = { operation: 'GetBlobRange', url, method: 'GET', headers } as const;
    const res = await blobStream(ctx, request, accept, onData).catch(async (err: unknown) => {
      if (problem instanceof RangeCutError) {
        await sink.done();
        return undefined;
      }
      await sink.done().catch(() => undefined);
      throw problem ?? err;
    });
    const ok = { status: 206, result: () => undefined };
    if (res === undefined) return ok; // stopped at the cursor's end, all bytes before it written
    if (!res.streamed) {
      const { statusCode, headers: h, errorBody } = res;
      return {
        status: statusCode,
        result: () => {
          throw blobErrorFromParts('GetBlobRange', url, statusCode, h, errorBody);
        },
      };
    }
    await sink.done();
    if (offset !== end + 1) {
      throw new IntegrityError(
        `GetBlobRange: short range bytes=${start}-${end}`,
        end - start + 1,
        offset - start,
      );
    }
    return ok;
  });
}
