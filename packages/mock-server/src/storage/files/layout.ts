import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StorageError } from '../types.js';

/*
 * Layout and crash safety
 * -----------------------
 * <dataDir>/meta.sqlite        the `blobs` table (next to the metadata store's `entries` in the
 *                              embedded mode). Blob switches run with synchronous=FULL (the WAL is
 *                              fsynced), because an old generation is removed right after them.
 * <dataDir>/blobs/<xx>/<blobId>.<generation>
 *                              committed content, immutable, one name per commit (the `layout` column):
 *                              'file': one file (Put Blob, and block lists committed by schema 1). Put Blob
 *                              writes it in tmp/, fsyncs it, renames it into place, fsyncs the directory.
 *                              'dir': a directory of part files p0, p1, … (Put Block List). The commit
 *                              hard-links each distinct staged block file or part of the previous
 *                              generation it lists into the new directory, fsyncs each part linked from
 *                              a staged block (in parallel), the directory and its shard, and records in
 *                              `blocks` each listed block's [start, end) in the blob and its part file and
 *                              offset: O(metadata), no copy.
 *                              Then both layouts: switch the blob row in one transaction (synchronous=FULL)
 *                              and remove the old generation. A crash at any point leaves the committed
 *                              generation intact; unreferenced generations are removed after start-up
 *                              (in the background, never one a commit in flight is building).
 *                              Shard directories are made by the first commit into them.
 *                              Readers open every part file they need before returning (pinned inodes).
 * <dataDir>/staging/<blobId>/b<hex of the decoded block id>
 *                              staged blocks, written to tmp/ and renamed (re-staging replaces atomically),
 *                              not fsynced before they are acknowledged: durability is promised for what a
 *                              commit made, and the commit fsyncs what it links (an early write-back fsyncs
 *                              them in the background meanwhile). A commit links them, so a failed commit
 *                              leaves them staged. Dropped by renaming the directory into tmp/.
 * <dataDir>/tmp/               work files; emptied at start-up.
 */

/** Stream buffer and write chunk size (256 KiB keeps peak RSS low at the same speed as 1 MiB). */
const CHUNK = 256 * 1024;
/** Names of the part files of a 'dir' generation; checked before a path is built from the row. */
export const PART_FILE = /^p[0-9]+$/;
/** Shape of the blob ids the metadata stores make; checked before any path is built from one. */
export const BLOB_ID = /^[0-9a-f]{32}$/;
export const STAGED_FILE = /^b((?:[0-9a-f]{2})*)$/;

/** The paths of one data directory. */
export function layoutOf(dataDir: string) {
  const blobsDir = join(dataDir, 'blobs');
  const stagingDir = join(dataDir, 'staging');
  const tmpDir = join(dataDir, 'tmp');
  const shardPath = (blobId: string) => join(blobsDir, blobId.slice(0, 2));
  return {
    blobsDir,
    stagingDir,
    tmpDir,
    shardPath,
    blobPath: (blobId: string, generation: string) => join(shardPath(blobId), `${blobId}.${generation}`),
    stagingPath: (blobId: string) => join(stagingDir, blobId),
    tmpPath: () => join(tmpDir, randomBytes(12).toString('hex')),
  };
}

export type Layout = ReturnType<typeof layoutOf>;

export const isErrno = (err: unknown, code: string): boolean =>
  err instanceof Error && (err as NodeJS.ErrnoException).code === code;

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function checkBlobId(blobId: string): void {
  if (!BLOB_ID.test(blobId)) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
}

export function blockIdToFile(blockId: string): string {
  const bytes = Buffer.from(blockId, 'base64');
  if (bytes.toString('base64') !== blockId) {
    throw new StorageError('InvalidBlobOrBlock', 'block id is not canonical base64');
  }
  return `b${bytes.toString('hex')}`;
}

/** Passes exactly `length` bytes through; anything shorter or longer fails with `IncompleteBody`. */
export function exactLength(length: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > length) callback(new StorageError('IncompleteBody', `body is longer than ${length} bytes`));
      else callback(null, chunk);
    },
    flush(callback) {
      if (seen === length) callback();
      else callback(new StorageError('IncompleteBody', `body ended after ${seen} of ${length} bytes`));
    },
  });
}

/**
 * Streams `body` (exactly `length` bytes) into a new tmp file and returns its path; fsynced before
 * that when `durable` (Put Blob), otherwise left to the commit that links it (Put Block).
 */
export async function receive(
  layout: Layout,
  body: Readable,
  length: number,
  durable: boolean,
): Promise<string> {
  const path = layout.tmpPath();
  try {
    await pipeline(
      body,
      exactLength(length),
      createWriteStream(path, { flags: 'wx', flush: durable, highWaterMark: CHUNK }),
    );
    return path;
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
}

/** Opens a file, fsyncs it and closes it. */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Early write-back of staged blocks: each file is fsynced in the background soon after it is
 * acknowledged, a few at a time, so the disk writes while the next blocks arrive and the fsync of
 * the commit that links them finds little left to write. Nothing waits for it and nothing relies on
 * it (the commit fsyncs every part it links); a full queue or a file gone meanwhile is skipped.
 */
export function createWriteback(concurrency = 2, queueLimit = 64) {
  const queue: string[] = [];
  let running = 0;
  let idle: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  const next = (): void => {
    while (running < concurrency && queue.length > 0) {
      const path = queue.shift()!;
      running++;
      void fsyncFile(path)
        .catch(() => undefined)
        .finally(() => {
          running--;
          next();
        });
    }
    if (running === 0 && queue.length === 0 && wake) {
      wake();
      wake = undefined;
      idle = undefined;
    }
  };
  return {
    add(path: string): void {
      if (queue.length >= queueLimit) return;
      queue.push(path);
      next();
    },
    /** Resolves when nothing is queued or running. */
    settle(): Promise<void> {
      if (running === 0 && queue.length === 0) return Promise.resolve();
      idle ??= new Promise<void>((resolve) => {
        wake = resolve;
      });
      return idle;
    },
  };
}

/** Fire-and-forget file work (unlinks); `settle()` waits for all of it. */
export function createBackground() {
  const inFlight = new Set<Promise<void>>();
  return {
    run(work: Promise<unknown>) {
      const p: Promise<void> = work.then(
        () => undefined,
        () => undefined,
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    },
    async settle() {
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
  };
}

export type Background = ReturnType<typeof createBackground>;
