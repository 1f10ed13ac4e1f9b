import { readdir } from 'node:fs/promises';
import type Database from 'better-sqlite3';
import { blockIdByteLength } from '../blocks.js';
import { BufferPool } from '../span-stream.js';
import { type BlobStore, type ByteRange, StorageError } from '../types.js';
import { createCommitter } from './commit.js';
import {
  BLOB_ID,
  blockIdToFile,
  checkBlobId,
  createBackground,
  createWriteback,
  layoutOf,
  receive,
} from './layout.js';
import { openContent } from './read.js';
import { recoverFiles, removeUnreferenced } from './recovery.js';
import { createStaging, type StagingClaim } from './staging.js';
import { prepareBlobStatements, toProperties } from './statements.js';

/** Read size of download streams: one read in flight per stream, so larger reads keep the disk busier. */
const READ_CHUNK = 1024 * 1024;
/** How long after the store opens the scan for unreferenced generations starts. */
const SCAN_DELAY_MS = 1000;
/** Blob rows checked against the metadata store per step of a sweep. */
const SWEEP_PAGE = 500;

export interface FileBlobStoreOptions {
  /** Holds `blobs/`, `staging/` and `tmp/` (see `layout.ts`). */
  readonly dataDir: string;
  /** A database with the `blobs` table (`openSqliteDatabase`); the caller closes it. */
  readonly db: Database.Database;
  /** Tells at start-up whether a blob id belongs to a pending entry (staged blocks of others go). */
  readonly isPending?: (blobId: string) => boolean;
}

/**
 * The default blob store: content in files, streamed both ways with bounded memory, its index in
 * the `blobs` table. Crash-safe: a SIGKILL at any moment leaves every committed blob intact (see
 * `layout.ts`). Start-up removes what an interrupted operation left behind.
 */
export function createFileBlobStore(options: FileBlobStoreOptions): BlobStore {
  const { db } = options;
  const layout = layoutOf(options.dataDir);
  const q = prepareBlobStatements(db);
  const background = createBackground();
  const staging = createStaging(layout, background);
  const committer = createCommitter(db, q, layout, staging);
  const writeback = createWriteback();
  let closed = false;
  /** Download read buffers, reused across requests (16 idle at most: 16 MiB). */
  const readBuffers = new BufferPool(READ_CHUNK, 16);

  const removeRows = db.transaction((blobs: readonly { blob_id: string; generation: string }[]) =>
    blobs.filter((b) => q.deleteBlob.run(b.blob_id, b.generation).changes === 1),
  );
  const remove = (blobs: readonly { blob_id: string; generation: string }[]): number => {
    const removed = removeRows(blobs);
    for (const b of removed) {
      if (BLOB_ID.test(b.blob_id)) background.run(committer.removeGeneration(b.blob_id, b.generation));
    }
    return removed.length;
  };

  staging.leftAtStart(recoverFiles(layout, options.isPending));
  // Unreferenced generations (of commits a crash interrupted) go in the background, once the server
  // is up: they take no room a request needs, and reading every shard would delay the start.
  const scan = setTimeout(
    () =>
      background.run(
        removeUnreferenced(layout, q, { isBuilding: committer.isBuilding, stopped: () => closed }),
      ),
    SCAN_DELAY_MS,
  );
  scan.unref();

  return {
    kind: 'files',

    async putBlob(blobId, body, length, now) {
      try {
        checkBlobId(blobId);
      } catch (err) {
        body.resume();
        throw err;
      }
      const tmp = await receive(layout, body, length, true);
      return committer.commitFile(blobId, tmp, length, now);
    },

    async putBlock(blobId, blockId, body, length) {
      let file: string;
      let claim: StagingClaim;
      try {
        checkBlobId(blobId);
        file = blockIdToFile(blockId);
        claim = await staging.claim(blobId, blockIdByteLength(blockId));
      } catch (err) {
        body.resume();
        throw err;
      }
      try {
        // Not fsynced here: the commit that links it does (see layout.ts); written back early meanwhile.
        const tmp = await receive(layout, body, length, false);
        writeback.add(await staging.place(blobId, file, tmp));
        claim.placed();
      } catch (err) {
        claim.failed();
        throw err;
      }
    },

    async commitBlockList(blobId, items, now) {
      checkBlobId(blobId);
      return committer.commitBlockList(blobId, items, now);
    },

    async getBlobProperties(blobId) {
      const row = q.blob.get(blobId);
      return row && toProperties(row);
    },

    async openBlob(blobId, range?: ByteRange) {
      if (!BLOB_ID.test(blobId)) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
      const opened = await openContent(q, layout, readBuffers, blobId, range);
      if (!opened) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
      return { properties: toProperties(opened.row), stream: opened.stream };
    },

    async discardBlob(blobId, retainUntil, now) {
      if (!BLOB_ID.test(blobId)) return;
      await staging.drop(blobId);
      const row = q.blob.get(blobId);
      if (!row) return;
      if (retainUntil > now) q.retainBlob.run(retainUntil, blobId);
      else remove([{ blob_id: blobId, generation: row.generation }]);
    },

    async sweep(now, owners) {
      let removed = remove(q.expiredBlobs.all(now));
      for (let after = ''; ; ) {
        const page = q.unretainedBlobs.all(after, SWEEP_PAGE);
        if (page.length === 0) break;
        after = page[page.length - 1]!.blob_id;
        const owned = await owners(page.map((b) => b.blob_id));
        removed += remove(page.filter((b) => !owned.has(b.blob_id)));
      }
      const names = await readdir(layout.stagingDir);
      for (let i = 0; i < names.length; i += SWEEP_PAGE) {
        const page = names.slice(i, i + SWEEP_PAGE);
        const owned = await owners(page.filter((n) => BLOB_ID.test(n)));
        for (const name of page) if (owned.get(name) !== 'pending') await staging.drop(name);
      }
      await background.settle();
      return removed;
    },

    async close() {
      closed = true;
      clearTimeout(scan);
      await background.settle();
      await writeback.settle();
    },
  };
}
