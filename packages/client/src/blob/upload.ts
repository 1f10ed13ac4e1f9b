/**
 * Blob upload through a signed (SAS) URL: one Put Blob for small blobs, otherwise parallel Put Block from
 * replayable bodies (file ranges re-read on retry, or bounded in-memory buffers for streams) and one
 * Put Block List in index order.
 */
import { randomUUID } from 'node:crypto';
import { close, fstat, open } from 'node:fs';
import { promisify } from 'node:util';
import type { Dispatcher } from 'undici';
import { toCacheError, ValidationError } from '../errors.js';
import { type BlockBody, BufferPool, blocksOf, bufferBlock, CHUNK, fileBlock, send } from './block-body.js';
import { linkedAbort, TaskPool } from './pool.js';
import { TransferCounter, type TransferProgress } from './progress.js';
import { type BlobHop, blobErrorFrom, blobRequest, withQuery } from './request.js';

const MiB = 1024 * 1024;
/** Smallest block used for streams of unknown length. */
const MIN_STREAM_BLOCK = 4 * MiB;
/** Azure's limit of blocks in one blob. */
const MAX_BLOCKS = 50_000;

/** What to upload. */
export type BlobSource =
  | { path: string }
  | { data: Uint8Array }
  /** A stream of unknown length (e.g. stdin); buffered in blocks, at most `maxBufferBytes` at a time. */
  | { stream: AsyncIterable<Uint8Array> };

export interface UploadBlobOptions {
  dispatcher: Dispatcher;
  /** Block size for sources of known size. */
  blockSizeBytes: number;
  /** Put Block requests in flight. */
  concurrency: number;
  /** Sources up to this size go as one Put Blob. */
  maxSingleShotBytes: number;
  /** Memory cap for stream sources (blocks are `min(blockSizeBytes, maxBufferBytes / concurrency)`). */
  maxBufferBytes: number;
  timeoutMs: number;
  onProgress?: ((p: TransferProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
}

export interface UploadResult {
  sizeBytes: number;
  /** 0 for a single Put Blob. */
  blockCount: number;
}

/** Fixed-width block ids: base64 of a 36-char UUID + 12-digit index (48 bytes, like the Azure JS SDK). */
export function blockId(prefix: string, index: number): string {
  return Buffer.from(`${prefix}${String(index).padStart(12, '0')}`).toString('base64');
}

export function blockListXml(ids: readonly string[]): string {
  return `<?xml version="1.0" encoding="utf-8"?><BlockList>${ids.map((id) => `<Latest>${id}</Latest>`).join('')}</BlockList>`;
}

/** What every request of one upload shares. */
interface UploadContext extends BlobHop {
  /** The signed URL of the blob. */
  url: string;
  options: UploadBlobOptions;
  abort: AbortController;
  signal: AbortSignal;
  progress: TransferCounter;
}

/** The three PUTs of an upload. */
type Put = { operation: 'PutBlob' } | { operation: 'PutBlock'; id: string } | { operation: 'PutBlockList' };

/** The one PUT of an upload: Put Blob (a whole blob), Put Block (one block) or Put Block List (the commit). */
async function put(
  ctx: UploadContext,
  what: Put,
  body: AsyncIterable<Uint8Array> | Buffer,
  length: number,
): Promise<void> {
  const { operation } = what;
  const url =
    operation === 'PutBlob'
      ? new URL(ctx.url)
      : withQuery(
          ctx.url,
          operation === 'PutBlock' ? { comp: 'block', blockid: what.id } : { comp: 'blocklist' },
        );
  const headers: Record<string, string> = operation === 'PutBlob' ? { 'x-ms-blob-type': 'BlockBlob' } : {};
  headers['content-type'] = operation === 'PutBlockList' ? 'application/xml' : 'application/octet-stream';
  headers['content-length'] = String(length);
  const res = await blobRequest(ctx, { operation, url, method: 'PUT', headers, body });
  if (res.statusCode < 200 || res.statusCode >= 300) throw await blobErrorFrom(operation, url, res);
  await res.body.dump();
}

/** Sends `block` as the whole blob, or as block `id`. */
function putBody(ctx: UploadContext, block: BlockBody, length: number, id?: string): Promise<void> {
  const what: Put = id === undefined ? { operation: 'PutBlob' } : { operation: 'PutBlock', id };
  return send(block, ctx.progress, (body) => put(ctx, what, body, length));
}

function putBlockList(ctx: UploadContext, ids: readonly string[]): Promise<void> {
  const xml = Buffer.from(blockListXml(ids));
  return put(ctx, { operation: 'PutBlockList' }, xml, xml.length);
}

const openFile = promisify(open);
const closeFile = promisify(close);
const fstatFile = promisify(fstat);

/** Uploads `source` to the blob behind the SAS `url`. */
export async function uploadBlob(
  url: string,
  source: BlobSource,
  options: UploadBlobOptions,
): Promise<UploadResult> {
  const abort = linkedAbort(options.signal);
  const context = (total: number | undefined): UploadContext => ({
    url,
    options,
    abort,
    dispatcher: options.dispatcher,
    timeoutMs: options.timeoutMs,
    signal: abort.signal,
    progress: new TransferCounter('upload', total, options.onProgress),
  });
  try {
    if ('stream' in source) return await uploadStream(context(undefined), source.stream);
    if ('data' in source) {
      const { data } = source;
      return await uploadBlocks(context(data.byteLength), data.byteLength, (start, length) =>
        bufferBlock([data.subarray(start, start + length)]),
      );
    }
    const fd = await openFile(source.path, 'r');
    try {
      const pool = new BufferPool(CHUNK);
      const { size } = await fstatFile(fd);
      return await uploadBlocks(context(size), size, (start, length) => fileBlock(fd, start, length, pool));
    } finally {
      await closeFile(fd);
    }
  } catch (err) {
    throw options.signal?.aborted ? toCacheError(options.signal.reason ?? err) : toCacheError(err);
  }
}

/** A source of known size: one Put Blob up to `maxSingleShotBytes`, else parallel Put Block + Put Block List. */
async function uploadBlocks(
  ctx: UploadContext,
  size: number,
  range: (start: number, length: number) => BlockBody,
): Promise<UploadResult> {
  const { options } = ctx;
  if (size <= options.maxSingleShotBytes) {
    await putBody(ctx, range(0, size), size);
    return { sizeBytes: size, blockCount: 0 };
  }
  const blockSize = Math.max(options.blockSizeBytes, Math.ceil(size / MAX_BLOCKS));
  const count = Math.ceil(size / blockSize);
  const prefix = randomUUID();
  const ids = Array.from({ length: count }, (_, i) => blockId(prefix, i));
  await new TaskPool(options.concurrency, ctx.abort).forEach(count, (i) => {
    const start = i * blockSize;
    const length = Math.min(blockSize, size - start);
    return putBody(ctx, range(start, length), length, ids[i]!);
  });
  await putBlockList(ctx, ids);
  return { sizeBytes: size, blockCount: count };
}

/** A stream of unknown length: one Put Blob if it ends within the single-shot limit, else blocks as read. */
async function uploadStream(ctx: UploadContext, stream: AsyncIterable<Uint8Array>): Promise<UploadResult> {
  const { options } = ctx;
  if (options.maxBufferBytes < MIN_STREAM_BLOCK) {
    throw new ValidationError(`maxBufferBytes must be at least ${MIN_STREAM_BLOCK}`);
  }
  const blockSize = Math.min(
    options.blockSizeBytes,
    Math.max(MIN_STREAM_BLOCK, Math.floor(options.maxBufferBytes / options.concurrency)),
  );
  const inFlightLimit = Math.max(
    1,
    Math.min(options.concurrency, Math.floor(options.maxBufferBytes / blockSize)),
  );
  const singleShotLimit = Math.min(options.maxSingleShotBytes, options.maxBufferBytes);
  const buffers = new BufferPool(blockSize);
  const blocks = blocksOf(stream, buffers);

  // Phase 1: read up to the single-shot limit; a stream that ends there is one Put Blob.
  const head: Buffer[] = [];
  let total = 0;
  let ended = false;
  while (total <= singleShotLimit) {
    const next = await blocks.next();
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    total += next.value.byteLength;
  }
  if (ended && total <= singleShotLimit) {
    await putBody(ctx, bufferBlock(head), total);
    return { sizeBytes: total, blockCount: 0 };
  }

  // Phase 2: stage blocks as they are read, at most `inFlightLimit` buffers held beyond the head.
  const prefix = randomUUID();
  const ids: string[] = [];
  const pool = new TaskPool(options.concurrency, ctx.abort);
  const stage = (data: Buffer) => {
    const id = blockId(prefix, ids.length);
    ids.push(id);
    const block = bufferBlock([data], () => {
      if (data.byteLength === buffers.size) buffers.give(data);
    });
    void pool.run(() => putBody(ctx, block, data.byteLength, id));
  };
  for (const data of head.splice(0)) {
    if (!(await pool.slot())) break;
    stage(data);
  }
  while (await pool.slot(inFlightLimit)) {
    const next = await blocks.next();
    if (next.done) break;
    total += next.value.byteLength;
    if (ids.length >= MAX_BLOCKS)
      throw new ValidationError(`stream exceeds ${MAX_BLOCKS} blocks of ${blockSize} bytes`);
    stage(next.value);
  }
  await pool.settle();
  await putBlockList(ctx, ids);
  return { sizeBytes: total, blockCount: ids.length };
}
