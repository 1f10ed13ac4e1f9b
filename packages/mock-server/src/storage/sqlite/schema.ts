import type Database from 'better-sqlite3';

/**
 * The schema of `meta.sqlite`, versioned by `PRAGMA user_version`: the `entries` table (the
 * metadata store) and the `blobs` table (the file blob store's index of committed content) share
 * one file, so an embedded data directory is one database.
 */
export const SCHEMA_VERSION = 3;

/** Brings a database of any earlier version to `SCHEMA_VERSION` in one transaction. */
export function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) {
    // A write takes the exclusive lock now rather than at the first real write.
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    return;
  }
  if (version < 0 || version > SCHEMA_VERSION) {
    throw new Error(`meta.sqlite has schema version ${version}; this build reads version ${SCHEMA_VERSION}`);
  }
  db.transaction(() => {
    if (version === 0) db.exec(SCHEMA_2);
    // Schema 1 had one file per generation: those keep working as 'file' generations.
    if (version === 1) {
      db.exec(
        `ALTER TABLE blobs ADD COLUMN layout TEXT NOT NULL DEFAULT 'file' CHECK (layout IN ('file', 'dir'))`,
      );
    }
    db.exec(SCHEMA_3);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

const SCHEMA_2 = `
  CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repository_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    blob_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'committed')),
    size_bytes INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    committed_at INTEGER NOT NULL DEFAULT 0,
    last_accessed_at INTEGER NOT NULL,
    download_url_expires_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (repository_id, scope, key, version)
  );
  CREATE INDEX entries_committed_key ON entries (repository_id, scope, version, key)
    WHERE state = 'committed';
  CREATE INDEX entries_committed_recent ON entries (repository_id, scope, version, id, key)
    WHERE state = 'committed';
  CREATE TABLE blobs (
    blob_id TEXT PRIMARY KEY,
    generation TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    retain_until INTEGER,
    blocks TEXT NOT NULL,
    layout TEXT NOT NULL DEFAULT 'file' CHECK (layout IN ('file', 'dir'))
  );
`;

/**
 * Schema 3: per-repository usage kept by triggers (a quota check reads one row instead of summing
 * a repository's entries), and the indexes of the eviction order (per repository) and of idle
 * expiry (global). Idempotent, so it also runs over a database whose version number was lowered.
 */
const SCHEMA_3 = `
  CREATE TABLE IF NOT EXISTS repository_usage (
    repository_id TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    count INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS entries_committed_lru ON entries (repository_id, last_accessed_at, id)
    WHERE state = 'committed';
  CREATE INDEX IF NOT EXISTS entries_committed_idle ON entries (last_accessed_at, id)
    WHERE state = 'committed';
  CREATE TRIGGER IF NOT EXISTS entries_usage_update AFTER UPDATE OF state, size_bytes ON entries
  WHEN old.state = 'committed' OR new.state = 'committed'
  BEGIN
    UPDATE repository_usage SET size_bytes = size_bytes - old.size_bytes, count = count - 1
      WHERE old.state = 'committed' AND repository_id = old.repository_id;
    INSERT OR IGNORE INTO repository_usage (repository_id) SELECT new.repository_id WHERE new.state = 'committed';
    UPDATE repository_usage SET size_bytes = size_bytes + new.size_bytes, count = count + 1
      WHERE new.state = 'committed' AND repository_id = new.repository_id;
  END;
  CREATE TRIGGER IF NOT EXISTS entries_usage_delete AFTER DELETE ON entries
  WHEN old.state = 'committed'
  BEGIN
    UPDATE repository_usage SET size_bytes = size_bytes - old.size_bytes, count = count - 1
      WHERE repository_id = old.repository_id;
  END;
  DELETE FROM repository_usage;
  INSERT INTO repository_usage (repository_id, size_bytes, count)
    SELECT repository_id, sum(size_bytes), count(*) FROM entries WHERE state = 'committed' GROUP BY repository_id;
`;
