import type { CacheEntry, EntryState } from '../types.js';

/** A row of `entries` as node-postgres returns it (BIGINT columns as strings). */
export interface EntryRow {
  id: string;
  repository_id: string;
  scope: string;
  key: string;
  version: string;
  blob_id: string;
  state: EntryState;
  size_bytes: string;
  created_at: string;
  committed_at: string;
  last_accessed_at: string;
  download_url_expires_at: string;
}

export const toEntry = (r: EntryRow): CacheEntry => ({
  repositoryId: r.repository_id,
  scope: r.scope,
  key: r.key,
  version: r.version,
  id: Number(r.id),
  blobId: r.blob_id,
  state: r.state,
  sizeBytes: Number(r.size_bytes),
  createdAt: Number(r.created_at),
  committedAt: Number(r.committed_at),
  lastAccessedAt: Number(r.last_accessed_at),
  downloadUrlExpiresAt: Number(r.download_url_expires_at),
});

/** The SQL of the PostgreSQL metadata store; `name`d statements are prepared once per connection. */
export const SQL = {
  reserve: {
    name: 'gha_reserve',
    text: `INSERT INTO entries (repository_id, scope, key, version, blob_id, state, created_at, last_accessed_at)
           VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)
           ON CONFLICT ON CONSTRAINT entries_identity DO NOTHING
           RETURNING *`,
  },
  get: { name: 'gha_get', text: 'SELECT * FROM entries WHERE id = $1' },
  find: {
    name: 'gha_find',
    text: 'SELECT * FROM entries WHERE repository_id = $1 AND scope = $2 AND key = $3 AND version = $4',
  },
  findByBlob: { name: 'gha_find_by_blob', text: 'SELECT * FROM entries WHERE blob_id = $1' },
  /**
   * A lookup's exact step and prefix step in one round trip: the committed entry with key $3 if
   * there is one (`exact` true), else the newest committed entry with a key in [$3, $5) (`exact`
   * false). `LIMIT 1` over `UNION ALL` stops after the first branch that has a row, so a hit on the
   * exact key never walks the range. The range's newest id is the max over the key range of
   * `entries_committed_key_id`, which holds the ids (an index-only scan; `id + 0` keeps the
   * planner from walking the primary key newest-first instead, O(entries) for a selective prefix).
   */
  matchInRange: {
    name: 'gha_match_in_range',
    text: `(SELECT true AS exact, * FROM entries
             WHERE repository_id = $1 AND scope = $2 AND key = $3 AND version = $4 AND state = 'committed')
           UNION ALL
           (SELECT false AS exact, * FROM entries WHERE id = (
             SELECT max(id + 0) FROM entries
             WHERE repository_id = $1 AND scope = $2 AND version = $4 AND state = 'committed'
               AND key >= $3 AND key < $5))
           LIMIT 1`,
  },
  /**
   * `matchInRange` for a batch of lookups in one statement: row `n` of the arrays ($1 repository,
   * $2 scope, $3 key, $4 version, $5 upper bound) answers with its match, if any, tagged `n`.
   */
  matchBatch: {
    name: 'gha_match_batch',
    text: `SELECT t.n, m.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
             WITH ORDINALITY AS t(repository_id, scope, key, version, upper, n)
           CROSS JOIN LATERAL (
             (SELECT true AS exact, e.* FROM entries e
               WHERE e.repository_id = t.repository_id AND e.scope = t.scope AND e.key = t.key COLLATE "C"
                 AND e.version = t.version AND e.state = 'committed')
             UNION ALL
             (SELECT false AS exact, e.* FROM entries e WHERE e.id = (
               SELECT max(r.id + 0) FROM entries r
               WHERE r.repository_id = t.repository_id AND r.scope = t.scope AND r.version = t.version
                 AND r.state = 'committed' AND r.key >= t.key COLLATE "C" AND r.key < t.upper COLLATE "C"))
             LIMIT 1) m`,
  },
  /** The same without an upper bound (a prefix of only U+10FFFF, or empty). */
  matchFrom: {
    name: 'gha_match_from',
    text: `(SELECT true AS exact, * FROM entries
             WHERE repository_id = $1 AND scope = $2 AND key = $3 AND version = $4 AND state = 'committed')
           UNION ALL
           (SELECT false AS exact, * FROM entries WHERE id = (
             SELECT max(id + 0) FROM entries
             WHERE repository_id = $1 AND scope = $2 AND version = $4 AND state = 'committed'
               AND key >= $3))
           LIMIT 1`,
  },
  /** The prefix step alone: the newest committed entry with a key in [$4, $5). */
  newestInRange: {
    name: 'gha_newest_in_range',
    text: `SELECT * FROM entries WHERE id = (
             SELECT max(id + 0) FROM entries
             WHERE repository_id = $1 AND scope = $2 AND version = $3 AND state = 'committed'
               AND key >= $4 AND key < $5)`,
  },
  /** The same without an upper bound. */
  newestFrom: {
    name: 'gha_newest_from',
    text: `SELECT * FROM entries WHERE id = (
             SELECT max(id + 0) FROM entries
             WHERE repository_id = $1 AND scope = $2 AND version = $3 AND state = 'committed'
               AND key >= $4)`,
  },
  list: {
    name: 'gha_list',
    text: `SELECT * FROM entries
           WHERE ($1::text IS NULL OR repository_id = $1)
             AND ($2::text IS NULL OR state = $2)
             AND ($3::bigint IS NULL OR created_at < $3)
           ORDER BY id`,
  },
  usage: {
    name: 'gha_usage',
    text: 'SELECT size_bytes, count FROM repository_usage WHERE repository_id = $1',
  },
  allUsage: {
    name: 'gha_all_usage',
    text: 'SELECT repository_id, size_bytes, count FROM repository_usage WHERE count > 0 ORDER BY repository_id COLLATE "C"',
  },
  leastRecentlyUsed: {
    name: 'gha_lru',
    text: `SELECT * FROM entries WHERE repository_id = $1 AND state = 'committed'
           ORDER BY last_accessed_at, id LIMIT $2`,
  },
  idle: {
    name: 'gha_idle',
    text: `SELECT * FROM entries WHERE state = 'committed' AND last_accessed_at < $1
           ORDER BY last_accessed_at, id LIMIT $2`,
  },
  commit: {
    name: 'gha_commit',
    text: `UPDATE entries SET state = 'committed', size_bytes = $2, committed_at = $3, last_accessed_at = $3
           WHERE id = $1 RETURNING *`,
  },
  /** One statement for a batch of hits: ids, access times, URL expiries (sent as literals). */
  touch: {
    text: `UPDATE entries AS e
           SET last_accessed_at = t.at, download_url_expires_at = GREATEST(e.download_url_expires_at, t.expires)
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS t(id, at, expires)
           WHERE e.id = t.id`,
  },
  deleteEntry: { name: 'gha_delete', text: 'DELETE FROM entries WHERE id = $1 RETURNING *' },
  owners: {
    name: 'gha_owners',
    text: 'SELECT blob_id, state FROM entries WHERE blob_id = ANY($1::text[])',
  },
  takeRateSlot: { name: 'gha_take_rate_slot', text: 'SELECT take_rate_slot($1, $2, $3, $4) AS wait' },
  pruneRateSlots: {
    name: 'gha_prune_rate_slots',
    text: 'DELETE FROM rate_slots WHERE taken_at < $1',
  },
} as const;
