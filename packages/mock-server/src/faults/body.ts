import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BodyShape } from './engine.js';

/** Pieces of a throttled body: about 10 per second, at least 1 byte, at most 64 KiB. */
const pieceBytes = (bytesPerSecond: number) =>
  Math.max(1, Math.min(64 * 1024, Math.floor(bytesPerSecond / 10)));

/** A body: a stream, or chunks in memory. */
export type BodySource = (AsyncIterable<Buffer | string> | Iterable<Buffer | string>) & {
  destroy?: () => void;
};

async function* shaped(source: BodySource, shape: BodyShape, onCut: () => void): AsyncGenerator<Buffer> {
  const limit = shape.cut?.afterBytes ?? Number.POSITIVE_INFINITY;
  const rate = shape.bytesPerSecond;
  const piece = rate === undefined ? Number.POSITIVE_INFINITY : pieceBytes(rate);
  const start = performance.now();
  let sent = 0;
  try {
    if (limit === 0) return onCut();
    for await (const chunk of source) {
      let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (sent + buf.length > limit) buf = buf.subarray(0, limit - sent);
      for (let offset = 0; offset < buf.length; offset += piece) {
        const slice = buf.subarray(offset, offset + piece);
        if (rate !== undefined) {
          const wait = start + ((sent + slice.length) * 1000) / rate - performance.now();
          if (wait > 0) await sleep(wait);
        }
        sent += slice.length;
        yield slice;
      }
      // Before leaving the loop, which ends the source.
      if (sent >= limit) return onCut();
    }
  } finally {
    // Stop reading what will never be sent (a blob file, an upload).
    if (sent >= limit) source.destroy?.();
  }
}

/**
 * `source` paced at `shape.bytesPerSecond` and/or ended after `shape.cut.afterBytes` bytes; `onCut` runs
 * once the last byte before the cut has been handed on. Work per chunk only when a rule asked for it.
 */
export function shapeBody(
  source: BodySource,
  shape: BodyShape,
  onCut: () => void = () => undefined,
): Readable {
  return Readable.from(shaped(source, shape, onCut), { objectMode: false });
}
