import { mkdir, opendir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError } from '../types.js';
import type { Background, Layout } from './layout.js';
import { isErrno, STAGED_FILE } from './layout.js';

/** What this process knows of one blob's staged blocks: their decoded id length (all are equal). */
interface Known {
  readonly idLength: number;
  /** A block of this length is in the staging directory (not only claimed by one in flight). */
  placed: boolean;
  /** Put Blocks holding this claim that have not placed or failed yet. */
  inFlight: number;
}

/** A Put Block's hold on the blob's id length, from its check until its block is placed or fails. */
export interface StagingClaim {
  placed(): void;
  failed(): void;
}

/**
 * Staged blocks of the file blob store: one directory per blob, one file per block id.
 *
 * The id length of each blob's staged blocks is kept in memory (set by its first Put Block, dropped
 * with the staging), so a Put Block costs no directory read. Staging directories left by an earlier
 * process (`leftAtStart`) are read once, on their blob's next Put Block.
 */
export function createStaging(layout: Layout, background: Background) {
  const known = new Map<string, Known>();
  /** Staging directories found at start-up whose id length is not read yet. */
  const unread = new Set<string>();

  /** Decoded id length of any one staged block in the blob's directory, or `undefined`. */
  const readIdLength = async (blobId: string): Promise<number | undefined> => {
    let dir: Awaited<ReturnType<typeof opendir>>;
    try {
      dir = await opendir(layout.stagingPath(blobId));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    try {
      for await (const dirent of dir) {
        const m = STAGED_FILE.exec(dirent.name);
        if (m) return m[1]!.length / 2;
      }
      return undefined;
    } finally {
      await dir.close().catch(() => undefined);
    }
  };

  return {
    /** Names of the staging directories an earlier process left (read lazily). */
    leftAtStart(blobIds: Iterable<string>): void {
      for (const id of blobIds) unread.add(id);
    },

    /**
     * Checks a block's decoded id length against the blob's staged blocks and holds it until the
     * block is placed or fails: `InvalidBlobOrBlock` if they differ. No file I/O unless the blob's
     * staging directory was left by an earlier process and not read yet.
     */
    async claim(blobId: string, idLength: number): Promise<StagingClaim> {
      if (!known.has(blobId) && unread.has(blobId)) {
        const onDisk = await readIdLength(blobId);
        unread.delete(blobId);
        if (onDisk !== undefined && !known.has(blobId)) {
          known.set(blobId, { idLength: onDisk, placed: true, inFlight: 0 });
        }
      }
      let k = known.get(blobId);
      if (k && k.idLength !== idLength) {
        throw new StorageError('InvalidBlobOrBlock', 'block id length differs from the staged blocks');
      }
      if (!k) {
        k = { idLength, placed: false, inFlight: 0 };
        known.set(blobId, k);
      }
      k.inFlight++;
      const claim = k;
      let settled = false;
      return {
        placed() {
          if (settled) return;
          settled = true;
          claim.inFlight--;
          claim.placed = true;
          // Dropped meanwhile and placed again after: the block is staged, so is its length.
          if (!known.has(blobId)) known.set(blobId, { idLength, placed: true, inFlight: 0 });
        },
        failed() {
          if (settled) return;
          settled = true;
          claim.inFlight--;
          // The first block failed and none is staged: the blob has no id length yet.
          if (!claim.placed && claim.inFlight === 0 && known.get(blobId) === claim) known.delete(blobId);
        },
      };
    },

    /** Moves a received tmp file into the blob's staging directory as `file` (replacing atomically). */
    async place(blobId: string, file: string, tmp: string): Promise<string> {
      const dir = layout.stagingPath(blobId);
      const path = join(dir, file);
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            await rename(tmp, path);
            return path;
          } catch (err) {
            // No staging directory yet, or it was dropped meanwhile (a commit or delete): make it.
            if (!isErrno(err, 'ENOENT') || attempt >= 2) throw err;
          }
          await mkdir(dir, { recursive: true });
        }
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    },

    /** Moves the staging directory aside (atomic) and removes it in the background. */
    async drop(blobId: string): Promise<void> {
      known.delete(blobId);
      unread.delete(blobId);
      const aside = `${layout.tmpPath()}-staging`;
      try {
        await rename(layout.stagingPath(blobId), aside);
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return;
        throw err;
      }
      background.run(rm(aside, { recursive: true, force: true }));
    },

    /** Staged block files of a blob, by block id (base64). */
    async list(blobId: string): Promise<Map<string, string>> {
      const dir = layout.stagingPath(blobId);
      const staged = new Map<string, string>();
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return staged;
        throw err;
      }
      for (const name of names) {
        const m = STAGED_FILE.exec(name);
        if (m) staged.set(Buffer.from(m[1]!, 'hex').toString('base64'), join(dir, name));
      }
      return staged;
    },
  };
}

export type Staging = ReturnType<typeof createStaging>;
