import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Database } from './driver.js';
import { migrate } from './schema.js';

/**
 * Opens (creating if needed) `<dataDir>/meta.sqlite` and brings its schema up to date. WAL journal,
 * synchronous=NORMAL: every commit is written to the WAL before the call returns, so it survives
 * SIGKILL of the process (the OS still holds the pages); only a power loss can drop the last
 * transactions. locking_mode=EXCLUSIVE: one process per data directory. A clean close checkpoints
 * and removes the WAL.
 */
export function openSqliteDatabase(dataDir: string): Database {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, 'meta.sqlite'), { timeout: 2000 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    // 64 MiB of page cache at most (allocated as used): 100,000 entries and their indexes fit.
    db.pragma('cache_size = -65536');
    // A checkpoint (with its two fsyncs, on the event loop) every 3,072 WAL pages (12 MiB) instead
    // of SQLite's 1,000: under a stream of hits, checkpoints cost more than the writes themselves.
    db.pragma('wal_autocheckpoint = 3072');
    migrate(db);
  } catch (err) {
    db.close();
    if (isSqliteBusy(err)) {
      throw new Error(`data directory ${dataDir} is in use by another gha-cache-mock process`, {
        cause: err,
      });
    }
    throw err;
  }
  return db;
}

function isSqliteBusy(err: unknown): boolean {
  return err instanceof Error && 'code' in err && (err as { code: unknown }).code === 'SQLITE_BUSY';
}
