/**
 * Blob upload through a signed (SAS) URL: one Put Blob for small blobs, otherwise parallel Put Block from
 * replayable bodies (file ranges re-read on retry, or bounded in-memory buffers for streams) and one
 * Put Block List in index order.
 */
import { randomUUID } from 'node:crypto';
import { close, fstat, open, read } from 'node:fs';
import { promisify } from 'node:util';
import type { Dispatcher } from 'undici';
import { toCacheError, ValidationError } from '../errors.js';
import { replayable } from '../http/policy.js';
import {
  blobErrorFrom,
  blobRequest,
  linkedAbort,
  runPool,
  type TransferProgress,
  withQuery,
} from './common.js';

const MiB = 1024 * 1024;
/**
 * Piece of a body handed to undici. It must stay larger than the socket's high-water mark (undici uses
 * 64 KiB), so that every write returns false and undici waits for 'drain' before it asks for the next one:
 * file blocks reuse one buffer on that guarantee.
 */
const CHUNK = MiB;
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

class Progress {
  #sent = 0;
  constructor(
    readonly total: number | undefined,
    readonly cb: ((p: TransferProgress) => void) | undefined,
  ) {}
  add(n: number): void {
    this.#sent += n;
    this.cb?.({ phase: 'upload', transferredBytes: this.#sent, totalBytes: this.total });
  }
}

/** The bytes of one block (or of a whole blob) and what to do once the server has them. */
interface BlockBody {
  /** The bytes from the start; `replay` is true on every send after the first. */
  read: (replay: boolean) => AsyncIterable<Uint8Array>;
  /** Called after a 2xx on the first send: no socket holds the block's buffers any more. */
  release?: () => void;
}

/**
 * Sends `block` through `request` as a replayable body that reports progress (undone on a replay). The
 * block's buffers are released only after a 2xx on the first send: a failed attempt's socket may still
 * hold them, so a block that needed a replay leaves its buffers to the garbage collector.
 */
async function send(
  block: BlockBody,
  progress: Progress,
  request: (body: AsyncIterable<Uint8Array>) => Promise<void>,
): Promise<void> {
  let sends = 0;
  let counted = 0;
  await request(
    replayable({
      async *[Symbol.asyncIterator]() {
        if (counted > 0) {
          progress.add(-counted);
          counted = 0;
        }
        for await (const chunk of block.read(sends++ > 0)) {
          counted += chunk.byteLength;
          progress.add(chunk.byteLength);
          yield chunk;
        }
      },
    }),
  );
  if (sends === 1) block.release?.();
}

const readAt = (fd: number, buf: Buffer, length: number, position: number) =>
  new Promise<number>((resolve, reject) =>
    read(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
const openFile = promisify(open);
const closeFile = promisify(close);
const fstatFile = promisify(fstat);

/**
 * Buffers of one upload, reused once a block's 2xx says no socket holds them: no fresh memory and no
 * garbage per chunk or block (fresh 1 MiB buffers cost the CLI a quarter of its CPU in full GCs).
 */
class BufferPool {
  readonly #free: Buffer[] = [];
  constructor(readonly size: number) {}
  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafe(this.size);
  }
  give(buf: Buffer): void {
    this.#free.push(buf);
  }
}

/**
 * One block of an open file, read in {@link CHUNK} pieces into one pooled buffer: the generator resumes only
 * once undici has seen the socket drain the previous piece (see {@link CHUNK}) or close. A replay reads into
 * a fresh buffer (see {@link send}).
 */
function fileBlock(fd: number, start: number, length: number, pool: BufferPool): BlockBody {
  let pooled: Buffer | undefined;
  return {
    async *read(replay) {
      if (length === 0) return;
      let buf: Buffer;
      if (replay) buf = Buffer.allocUnsafe(CHUNK);
      else {
        pooled = pool.take();
        buf = pooled;
      }
      for (let off = 0; off < length; ) {
        const n = await readAt(fd, buf, Math.min(CHUNK, length - off), start + off);
        if (n === 0) throw new ValidationError('the file shrank during the upload');
        off += n;
        yield buf.subarray(0, n);
      }
    },
    release() {
      if (pooled !== undefined) pool.give(pooled);
      pooled = undefined;
    },
  };
}

function bufferChunks(buffers: readonly Uint8Array[]): () => AsyncIterable<Uint8Array> {
  return async function* () {
    for (const b of buffers) {
      for (let off = 0; off < b.byteLength; off += CHUNK)
        yield b.subarray(off, Math.min(b.byteLength, off + CHUNK));
    }
  };
}

/** Reads exactly `pool.size`-byte blocks (the last may be shorter) from an async iterable. */
async function* blocksOf(source: AsyncIterable<Uint8Array>, pool: BufferPool): AsyncGenerator<Buffer> {
  const { size } = pool;
  let block = pool.take();
  let filled = 0;
  for await (const raw of source) {
    let chunk = raw instanceof Uint8Array ? raw : Buffer.from(raw as string);
    while (chunk.byteLength > 0) {
      const n = Math.min(size - filled, chunk.byteLength);
      block.set(chunk.subarray(0, n), filled);
      filled += n;
      chunk = chunk.subarray(n);
      if (filled === size) {
        yield block;
        block = pool.take();
        filled = 0;
      }
    }
  }
  if (filled > 0) yield block.subarray(0, filled);
}

/** Uploads `source` to the blob behind the SAS `url`. */
export async function uploadBlob(
  url: string,
  source: BlobSource,
  options: UploadBlobOptions,
): Promise<UploadResult> {
  const abort = linkedAbort(options.signal);
  try {
    if ('stream' in source) return await uploadStream(url, source.stream, options, abort);
    if ('data' in source) {
      const { data } = source;
      return await uploadBlocks(url, data.byteLength, options, abort, (start, length) => ({
        read: bufferChunks([data.subarray(start, start + length)]),
      }));
    }
    const fd = await openFile(source.path, 'r');
    try {
      const pool = new BufferPool(CHUNK);
      const { size } = await fstatFile(fd);
      return await uploadBlocks(url, size, options, abort, (start, length) =>
        fileBlock(fd, start, length, pool),
      );
    } finally {
      await closeFile(fd);
    }
  } catch (err) {
    throw options.signal?.aborted ? toCacheError(options.signal.reason ?? err) : toCacheError(err);
  }
}

/** A source of known size: one Put Blob up to `maxSingleShotBytes`, else parallel Put Block + Put Block List. */
async function uploadBlocks(
  url: string,
  size: number,
  options: UploadBlobOptions,
  abort: AbortController,
  range: (start: number, length: number) => BlockBody,
): Promise<UploadResult> {
  const progress = new Progress(size, options.onProgress);
  if (size <= options.maxSingleShotBytes) {
    await send(range(0, size), progress, (body) => putBlob(url, body, size, options, abort.signal));
    return { sizeBytes: size, blockCount: 0 };
  }
  const blockSize = Math.max(options.blockSizeBytes, Math.ceil(size / MAX_BLOCKS));
  const count = Math.ceil(size / blockSize);
  const prefix = randomUUID();
  const ids = Array.from({ length: count }, (_, i) => blockId(prefix, i));
  await runPool(
    count,
    options.concurrency,
    async (i) => {
      const start = i * blockSize;
      const length = Math.min(blockSize, size - start);
      await send(range(start, length), progress, (body) =>
        putBlock(url, ids[i]!, body, length, options, abort.signal),
      );
    },
    abort,
  );
  await putBlockList(url, ids, options, abort.signal);
  return { sizeBytes: size, blockCount: count };
}

async function uploadStream(
  url: string,
  stream: AsyncIterable<Uint8Array>,
  options: UploadBlobOptions,
  abort: AbortController,
): Promise<UploadResult> {
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
  const progress = new Progress(undefined, options.onProgress);
  const pool = new BufferPool(blockSize);
  const blocks = blocksOf(stream, pool);

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
    await send({ read: bufferChunks(head) }, progress, (body) =>
      putBlob(url, body, total, options, abort.signal),
    );
    return { sizeBytes: total, blockCount: 0 };
  }

  // Phase 2: stage blocks as they are read, at most `inFlightLimit` buffers held beyond the head.
  const prefix = randomUUID();
  const ids: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const stage = (data: Buffer): Promise<void> => {
    const id = blockId(prefix, ids.length);
    ids.push(id);
    const block = {
      read: bufferChunks([data]),
      release: () => {
        if (data.byteLength === pool.size) pool.give(data);
      },
    };
    const p = send(block, progress, (body) => putBlock(url, id, body, data.byteLength, options, abort.signal))
      .catch((err: unknown) => {
        if (failure === undefined) {
          failure = err;
          abort.abort(err);
        }
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    return p;
  };
  const waitForSlot = async (limit: number) => {
    while (inFlight.size >= limit && failure === undefined) await Promise.race(inFlight);
  };
  for (const data of head.splice(0)) {
    await waitForSlot(options.concurrency);
    stage(data);
  }
  for (;;) {
    await waitForSlot(inFlightLimit);
    if (failure !== undefined) break;
    const next = await blocks.next();
    if (next.done) break;
    total += next.value.byteLength;
    if (ids.length >= MAX_BLOCKS)
      throw new ValidationError(`stream exceeds ${MAX_BLOCKS} blocks of ${blockSize} bytes`);
    stage(next.value);
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  await putBlockList(url, ids, options, abort.signal);
  return { sizeBytes: total, blockCount: ids.length };
}

async function putBlob(
  url: string,
  data: AsyncIterable<Uint8Array>,
  length: number,
  options: UploadBlobOptions,
  signal: AbortSignal,
): Promise<void> {
  const target = new URL(url);
  const res = await blobRequest({
    operation: 'PutBlob',
    url: target,
    method: 'PUT',
    headers: {
      'x-ms-blob-type': 'BlockBlob',
      'content-type': 'application/octet-stream',
      'content-length': String(length),
    },
    body: data,
    dispatcher: options.dispatcher,
    timeoutMs: options.timeoutMs,
    signal,
  });
  if (res.statusCode < 200 || res.statusCode >= 300) throw await blobErrorFrom('PutBlob', target, res);
  await res.body.dump();
}

async function putBlock(
  url: string,
  id: string,
  data: AsyncIterable<Uint8Array>,
  length: number,
  options: UploadBlobOptions,
  signal: AbortSignal,
): Promise<void> {
  const target = withQuery(url, { comp: 'block', blockid: id });
  const res = await blobRequest({
    operation: 'PutBlock',
    url: target,
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
    body: data,
    dispatcher: options.dispatcher,
    timeoutMs: options.timeoutMs,
    signal,
  });
  if (res.statusCode < 200 || res.statusCode >= 300) throw await blobErrorFrom('PutBlock', target, res);
  await res.body.dump();
}

async function putBlockList(
  url: string,
  ids: readonly string[],
  options: UploadBlobOptions,
  signal: AbortSignal,
): Promise<void> {
  const target = withQuery(url, { comp: 'blocklist' });
  const xml = Buffer.from(blockListXml(ids));
  const res = await blobRequest({
    operation: 'PutBlockList',
    url: target,
    method: 'PUT',
    headers: { 'content-type': 'application/xml', 'content-length': String(xml.length) },
    body: xml,
    dispatcher: options.dispatcher,
    timeoutMs: options.timeoutMs,
    signal,
  });
  if (res.statusCode < 200 || res.statusCode >= 300) throw await blobErrorFrom('PutBlockList', target, res);
  await res.body.dump();
}
