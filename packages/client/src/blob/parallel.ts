/**
 * Parallel ranged download: to a file (ranges written at their offsets, starting as one whole-blob GET
 * that splits while it runs slowly) or to a stream (ranges buffered and written in order).
 */
import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { IntegrityError } from '../errors.js';
import { TaskPool } from './pool.js';
import {
  type BlobFacts,
  type DownloadContext,
  fetchRange,
  type RangeCursor,
  type RangeSink,
  splitRanges,
} from './range.js';
import { writeAt, writeOrdered } from './write.js';

const MiB = 1024 * 1024;
/** Largest range when downloading to a stream (ranges are buffered in memory until written in order). */
const STREAM_RANGE_MAX = 8 * MiB;
/** How often the single whole-blob GET is measured against `splitBelowBytesPerSecond`. */
export const PROBE_MS = 500;

/** How a download is cut into ranges (see `DownloadBlobOptions`). */
export interface RangePlan {
  rangeSizeBytes: number;
  concurrency: number;
  splitBelowBytesPerSecond: number;
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
export async function parallelToFile(
  ctx: DownloadContext,
  blob: BlobFacts,
  path: string,
  plan: RangePlan,
): Promise<void> {
  const { size } = blob;
  const rangeSize = plan.rangeSizeBytes;
  const fh = await open(path, 'w');
  let written = 0;
  const sink = () =>
    fileRangeSink(fh.fd, (n) => {
      written += n;
      ctx.progress.add(n);
    });
  const pool = new TaskPool(plan.concurrency, ctx.abort);
  /** Ranged GETs from `from` to the end, each started once a slot is free. */
  const rangesFrom = async (from: number) => {
    for (const [start, end] of splitRanges(size, rangeSize, from)) {
      if (!(await pool.slot())) return;
      void pool.run(() => fetchRange(ctx, blob, { start, end, sink }));
    }
  };
  try {
    await fh.truncate(size);
    if (plan.splitBelowBytesPerSecond <= 0) {
      await rangesFrom(0);
    } else {
      const whole: RangeCursor = { offset: 0, stopAt: size };
      let probe: NodeJS.Timeout | undefined;
      let rest: Promise<void> | undefined;
      // One lane cannot gain from a split: it keeps the whole-blob GET.
      if (plan.concurrency > 1) {
        const started = performance.now();
        probe = setInterval(() => {
          // The average since the start: a capped connection stays slow, a fast one that stalls for a
          // moment (writeback, a busy core) does not look capped.
          const rate = (whole.offset * 1000) / (performance.now() - started);
          const boundary = Math.ceil((whole.offset + 1) / rangeSize) * rangeSize;
          if (rate >= plan.splitBelowBytesPerSecond || boundary >= size) return;
          clearInterval(probe);
          whole.stopAt = boundary;
          rest = rangesFrom(boundary);
        }, PROBE_MS);
      }
      await pool
        .run(() => fetchRange(ctx, blob, { start: 0, end: size - 1, sink, cursor: whole }))
        .catch(() => undefined) // the pool has it
        .finally(() => clearInterval(probe));
      // The split, if any, happened while the whole-blob GET ran.
      await rest;
    }
    await pool.settle();
  } finally {
    await fh.close();
  }
  if (written !== size)
    throw new IntegrityError('download: bytes written differ from the blob size', size, written);
}

/** To a stream: ranges of at most 8 MiB, `concurrency` fetched ahead, written in order. */
export async function parallelToStream(
  ctx: DownloadContext,
  blob: BlobFacts,
  stream: Writable,
  plan: RangePlan,
): Promise<void> {
  const { size } = blob;
  // Ranges are buffered until their turn: keep them small (concurrency × 8 MiB at most).
  const ranges = splitRanges(size, Math.min(plan.rangeSizeBytes, STREAM_RANGE_MAX));
  const fetchBuffer = async ([start, end]: [number, number]): Promise<Buffer> => {
    const buf = Buffer.allocUnsafe(end - start + 1);
    const sink = (): RangeSink => ({
      data(chunk, offset) {
        chunk.copy(buf, offset - start);
        ctx.progress.add(chunk.length);
      },
      done: async () => undefined,
    });
    await fetchRange(ctx, blob, { start, end, sink });
    return buf;
  };
  const pool = new TaskPool(plan.concurrency, ctx.abort);
  const window: Promise<Buffer>[] = [];
  let next = 0;
  let written = 0;
  try {
    for (let i = 0; i < ranges.length; i++) {
      while (window.length < plan.concurrency && next < ranges.length) {
        const range = ranges[next++]!;
        window.push(pool.run(() => fetchBuffer(range)));
      }
      const buf = await window.shift()!;
      await writeOrdered(stream, buf);
      written += buf.length;
    }
  } catch (err) {
    ctx.abort.abort(err);
    await pool.settle().catch(() => undefined);
    // The first failure, not the abort it caused in the ranges before it.
    throw pool.failure?.error ?? err;
  }
  if (written !== size)
    throw new IntegrityError('download: bytes written differ from the blob size', size, written);
}
