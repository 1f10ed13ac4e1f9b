/** Writing downloaded bytes: at offsets of a file, or in order to a stream. */
import { once } from 'node:events';
import { writeSync } from 'node:fs';
import type { Writable } from 'node:stream';

/** Largest single file write (see {@link writeAt}). */
const WRITE_PIECE = 32 * 1024;

/**
 * Writes `chunk` at `position`, synchronously, at most WRITE_PIECE bytes per call. A buffered write is a
 * copy into the page cache: done inline, as curl does, it costs no thread-pool round trip per chunk, and
 * a slow disk blocks the socket reads, which is the backpressure. Small writes keep the kernel on small
 * page-cache folios, which come from recently freed memory; 1 MiB writes, served from high-order free
 * memory that a VM host has reclaimed, made a 1 GiB download 2–3× slower here (docs/benchmarks.md).
 */
export function writeAt(fd: number, chunk: Buffer, position: number): void {
  for (let done = 0; done < chunk.length; ) {
    done += writeSync(fd, chunk, done, Math.min(WRITE_PIECE, chunk.length - done), position + done);
  }
}

/** Writes `chunk` to `stream`, waiting for 'drain' when it asks to; fails if the stream closes meanwhile. */
export async function writeOrdered(stream: Writable, chunk: Buffer): Promise<void> {
  if (!stream.write(chunk)) {
    await Promise.race([
      once(stream, 'drain'),
      once(stream, 'close').then(() => {
        throw new Error('destination stream closed');
      }),
    ]);
  }
}
