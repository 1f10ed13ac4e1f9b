import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import type { CacheEntry, EntryState } from '../types.js';

export interface EntryRow {
  id: number;
  repository_id: string;
  scope: string;
  key: string;
  version: string;
  blob_id: string;
  state: EntryState;
  size_bytes: number;
  created_at: number;
  committed_at: number;
  last_accessed_at: number;
  download_url_expires_at: number;
}

export const toEntry = (r: EntryRow): CacheEntry => ({
  repositoryId: r.repository_id,
  scope: r.scope,
  key: r.key,
  version: r.version,
  id: r.id,
  blobId: r.blob_id,
  state: r.state,
  sizeBytes: r.size_bytes,
  createdAt: r.created_at,
  committedAt: r.committed_at,
  lastAccessedAt: r.last_accessed_at,
  downloadUrlExpiresAt: r.download_url_expires_at,
});

/** The prepared statements of the metadata store (the `entries` and `repository_usage` tables). */
export interface EntryStatements {
  readonly reserve: Statement<[string, string, string, string, string, number, number], void>;
  readonly get: Statement<[number], EntryRow>;
  readonly find: Statement<[string, string, string, string], EntryRow>;
  readonly findByBlob: Statement<[string], EntryRow>;
  readonly stateByBlob: Statement<[string], EntryState>;
  readonly recentMatch: Statement<
    [string, string, string, number, number, string, string | Buffer],
    number | null
  >;
  readonly rangeMatch: Statement<
    [string, string, string, string, string | Buffer, number],
    { n: number; newest: number | null }
  >;
  readonly list: Statement<
    { repositoryId: string | null; state: string | null; createdBefore: number | null },
    EntryRow
  >;
  readonly usage: Statement<[string], { size_bytes: number; count: number }>;
  readonly allUsage: Statement<[], { repository_id: string; size_bytes: number; count: number }>;
  readonly leastRecentlyUsed: Statement<[string, number], EntryRow>;
  readonly idle: Statement<[number, number], EntryRow>;
  readonly commit: Statement<[number, number, number, number], void>;
  readonly touch: Statement<[number, number, number], void>;
  readonly deleteEntry: Statement<[number], void>;
}

export function prepareEntryStatements(db: Database.Database): EntryStatements {
  return {
    // No RETURNING clauses on writes: SQLite runs the WAL auto-checkpoint only when a statement
    // steps to its end, and a RETURNING statement read through `get()` never does (the WAL would
    // grow without bound).
    reserve: db.prepare<[string, string, string, string, string, number, number], void>(
      `INSERT INTO entries (repository_id, scope, key, version, blob_id, state, created_at, last_accessed_at)
       VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)
       ON CONFLICT (repository_id, scope, key, version) DO NOTHING`,
    ),
    get: db.prepare<[number], EntryRow>('SELECT * FROM entries WHERE id = ?'),
    find: db.prepare<[string, string, string, string], EntryRow>(
      'SELECT * FROM entries WHERE repository_id = ? AND scope = ? AND key = ? AND version = ?',
    ),
    findByBlob: db.prepare<[string], EntryRow>('SELECT * FROM entries WHERE blob_id = ?'),
    stateByBlob: db.prepare<[string], EntryState>('SELECT state FROM entries WHERE blob_id = ?').pluck(),
    /** The newest match in a window of a group's committed entries, newest first (index order = id order). */
    recentMatch: db
      .prepare<[string, string, string, number, number, string, string | Buffer], number | null>(
        `SELECT max(id) FROM (
           SELECT id, key FROM entries INDEXED BY entries_committed_recent
           WHERE repository_id = ? AND scope = ? AND version = ? AND state = 'committed'
           ORDER BY id DESC LIMIT ? OFFSET ?)
         WHERE key >= ? AND key < ?`,
      )
      .pluck(),
    /** How many of a group's committed keys lie in [from, upper) (counting stops at a limit), and the newest. */
    rangeMatch: db.prepare<
      [string, string, string, string, string | Buffer, number],
      { n: number; newest: number | null }
    >(
      `SELECT count(*) AS n, max(id) AS newest FROM (
         SELECT id FROM entries INDEXED BY entries_committed_key
         WHERE repository_id = ? AND scope = ? AND version = ? AND state = 'committed' AND key >= ? AND key < ?
         LIMIT ?)`,
    ),
    list: db.prepare<
      { repositoryId: string | null; state: string | null; createdBefore: number | null },
      EntryRow
    >(
      `SELECT * FROM entries
       WHERE (@repositoryId IS NULL OR repository_id = @repositoryId)
         AND (@state IS NULL OR state = @state)
         AND (@createdBefore IS NULL OR created_at < @createdBefore)
       ORDER BY id`,
    ),
    /** Kept by triggers (see `schema.ts`), so a quota check reads one row. */
    usage: db.prepare<[string], { size_bytes: number; count: number }>(
      'SELECT size_bytes, count FROM repository_usage WHERE repository_id = ?',
    ),
    allUsage: db.prepare<[], { repository_id: string; size_bytes: number; count: number }>(
      'SELECT repository_id, size_bytes, count FROM repository_usage WHERE count > 0 ORDER BY repository_id',
    ),
    leastRecentlyUsed: db.prepare<[string, number], EntryRow>(
      `SELECT * FROM entries INDEXED BY entries_committed_lru
       WHERE repository_id = ? AND state = 'committed' ORDER BY last_accessed_at, id LIMIT ?`,
    ),
    idle: db.prepare<[number, number], EntryRow>(
      `SELECT * FROM entries INDEXED BY entries_committed_idle
       WHERE state = 'committed' AND last_accessed_at < ? ORDER BY last_accessed_at, id LIMIT ?`,
    ),
    commit: db.prepare<[number, number, number, number], void>(
      `UPDATE entries SET state = 'committed', size_bytes = ?, committed_at = ?, last_accessed_at = ?
       WHERE id = ?`,
    ),
    touch: db.prepare<[number, number, number], void>(
      `UPDATE entries SET last_accessed_at = ?, download_url_expires_at = max(download_url_expires_at, ?)
       WHERE id = ?`,
    ),
    deleteEntry: db.prepare<[number], void>('DELETE FROM entries WHERE id = ?'),
  };
}
