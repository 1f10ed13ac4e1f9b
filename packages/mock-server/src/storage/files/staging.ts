import { renameSync } from 'node:fs';
import { mkdir, opendir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Background, Layout } from './layout.js';
import { isErrno, STAGED_FILE } from './layout.js';

/** Staged blocks of the file blob store: one directory per blob, one file per block id. */
export function createStaging(layout: Layout, background: Background) {
  return {
    /** Moves a fsynced tmp file into the blob's staging directory as `file` (replacing atomically). */
    async place(blobId: string, file: string, tmp: string): Promise<void> {
      const dir = layout.stagingPath(blobId);
      try {
        for (let attempt = 0; ; attempt++) {
          await mkdir(dir, { recursive: true });
          try {
            await rename(tmp, join(dir, file));
            return;
          } catch (err) {
            // The staging directory was dropped meanwhile (a commit or delete): recreate it.
            if (!isErrno(err, 'ENOENT') || attempt >= 2) throw err;
          }
        }
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    },

    /** Moves the staging directory aside (atomic, synchronous) and removes it in the background. */
    drop(blobId: string): void {
      const aside = `${layout.tmpPath()}-staging`;
      try {
        renameSync(layout.stagingPath(blobId), aside);
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

    /** Decoded id length of any one staged block of the blob (all are equal), or `undefined`. */
    async idLength(blobId: string): Promise<number | undefined> {
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
    },
  };
}

export type Staging = ReturnType<typeof createStaging>;
