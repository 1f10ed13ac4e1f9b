/**
 * The bytes of an upload's blocks, as replayable bodies: ranges of an open file read into pooled buffers,
 * or blocks of memory (a `Uint8Array` source, or a stream cut into blocks).
 */
import { read } from 'node:fs';
import { ValidationError } from '../errors.js';
import { replayable } from '../http/policy.js';
import type { TransferCounter } from './progress.js';

const MiB = 1024 * 1024;
/**
 * Piece of a body handed to undici. It must stay larger than the socket's high-water mark (undici uses
 * 64 KiB), so that every write returns false and undici waits for 'drain' before it asks for the next one:
 * file blocks reuse one buffer on that guarantee.
 */
export const CHUNK = MiB;

/** The bytes of one block (or of a whole blob) and what to do once the server has them. */
export interface BlockBody {
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
export async function send(
  block: BlockBody,
  progress: TransferCounter,
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

/**
 * Buffers of one upload, reused once a block's 2xx says no socket holds them: no fresh memory and no
 * garbage per chunk or block (fresh 1 MiB buffers cost the CLI a quarter of its CPU in full GCs).
 */
export class BufferPool {
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
export function fileBlock(fd: number, start: number, length: number, pool: BufferPool): BlockBody {
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

/** A block of memory, handed out in {@link CHUNK} pieces; `release` (if given) runs after its first 2xx. */
export function bufferBlock(buffers: readonly Uint8Array[], release?: () => void): BlockBody {
  return {
    async *read() {
      for (const b of buffers) {
        for (let off = 0; off < b.byteLength; off += CHUNK)
          yield b.subarray(off, Math.min(b.byteLength, off + CHUNK));
      }
    },
    ...(release ? { release } : {}),
  };
}

/** Reads exactly `pool.size`-byte blocks (the last may be shorter) from an async iterable. */
export async function* blocksOf(source: AsyncIterable<Uint8Array>, pool: BufferPool): AsyncGenerator<Buffer> {
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
