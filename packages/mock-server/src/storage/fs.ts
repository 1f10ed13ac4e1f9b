import { createFileBlobStore } from './files/blobs.js';
import { openSqliteDatabase } from './sqlite/database.js';
import { createSqliteMetadataStore } from './sqlite/metadata.js';
import { composeStorage } from './storage.js';
import type { CacheStorage } from './types.js';

export { prefixUpperBound } from './sqlite/prefix.js';

export interface FsStorageOptions {
  /**
   * Directory that holds everything: `meta.sqlite` (entries and blob index) and the `blobs/`,
   * `staging/` and `tmp/` directories. Created if missing. One process at a time: a second
   * `createFsStorage` on the same directory fails while the first is open. No default.
   */
  readonly dataDir: string;
}

/**
 * The default, embedded storage: the SQLite metadata store and the file blob store on one
 * `meta.sqlite` in one data directory. Crash-safe: a SIGKILL at any moment leaves every committed
 * entry and blob intact; start-up removes what an interrupted operation left behind.
 */
export function createFsStorage(options: FsStorageOptions): CacheStorage {
  const { dataDir } = options;
  const db = openSqliteDatabase(dataDir);
  try {
    const metadata = createSqliteMetadataStore(db);
    const isPending = db.prepare<[string], number>(
      `SELECT 1 FROM entries WHERE blob_id = ? AND state = 'pending'`,
    );
    const blobs = createFileBlobStore({
      dataDir,
      db,
      isPending: (blobId) => isPending.get(blobId) !== undefined,
    });
    return composeStorage(metadata, blobs, 'fs', () => {
      if (db.open) db.close();
    });
  } catch (err) {
    db.close();
    throw err;
  }
}
