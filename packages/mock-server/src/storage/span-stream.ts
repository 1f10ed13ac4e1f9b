import { close as closeFd, read as readFd } from 'node:fs';
import { Readable } from 'node:stream';

/** Bytes [position, end) of an open file. */
export interface OpenSpan {
  /** A numeric descriptor: `fs.read` on one costs half the CPU of a FileHandle's read. */
  fd: number;
  position: number;
  end: number;
}

/**
 * Read buffers that come back once the socket has taken their bytes. Without it every 1 MiB read
 * is a fresh external allocation, and a GiB of download makes V8 run ~30 full mark-compacts of the
 * server's heap: twice the CPU of a plain file server.
 */
export class BufferPool {
  readonly #free: Buffer[] = [];
  readonly #owned = new WeakSet<ArrayBufferLike>();
  constructor(
    readonly size: number,
    private readonly maxFree: number,
  ) {}
  acquire(): Buffer {
    const buffer = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.size);
    this.#owned.add(buffer.buffer);
    return buffer;
  }
  /** Takes back a buffer from `acquire()` (or a view of one); anything else is ignored. */
  release(chunk: Buffer): void {
    if (!this.#owned.delete(chunk.buffer)) return;
    if (this.#free.length < this.maxFree) this.#free.push(Buffer.from(chunk.buffer, 0, this.size));
  }
}

/**
 * Streams byte spans of already opened files in order, one pooled buffer per read, and closes every
 * descriptor when it ends or is destroyed. Its `pipe()` hands each chunk's buffer back to the pool
 * when the destination's write callback fires (the bytes are then in the kernel); chunks taken any
 * other way (`'data'`, async iteration) are left to the garbage collector.
 */
export class SpansStream extends Readable {
  #index = 0;
  constructor(
    private readonly spans: OpenSpan[],
    private readonly fds: readonly number[],
    private readonly pool: BufferPool,
  ) {
    super({ highWaterMark: pool.size });
  }

  override _read(): void {
    let span = this.spans[this.#index];
    while (span && span.position >= span.end) span = this.spans[++this.#index];
    if (!span) {
      this.push(null);
      return;
    }
    const current = span;
    const length = Math.min(this.pool.size, current.end - current.position);
    const buffer = this.pool.acquire();
    readFd(current.fd, buffer, 0, length, current.position, (err, bytesRead) => {
      if (err || bytesRead === 0) {
        this.pool.release(buffer);
        this.destroy(err ?? new Error(`committed content ends before byte ${current.end} of a part`));
        return;
      }
      current.position += bytesRead;
      this.push(buffer.subarray(0, bytesRead));
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    for (const fd of this.fds) closeFd(fd, () => undefined);
    callback(err);
  }

  /** One destination, with backpressure; recycles each chunk once written. Ends `dest` at the end. */
  override pipe<T extends NodeJS.WritableStream>(dest: T): T {
    const onData = (chunk: Buffer) => {
      if (!dest.write(chunk, (err) => err || this.pool.release(chunk))) {
        this.pause();
        dest.once('drain', () => this.resume());
      }
    };
    this.on('data', onData);
    this.once('end', () => dest.end());
    dest.once('close', () => this.off('data', onData));
    return dest;
  }
}
