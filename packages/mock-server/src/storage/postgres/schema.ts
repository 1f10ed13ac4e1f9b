import type { PoolClient } from 'pg';

/**
 * Versioned migrations of the PostgreSQL metadata store, applied in order at start-up, each in
 * its own transaction, recorded in `gha_cache_schema`. Instances starting together take an
 * advisory lock, so exactly one applies a migration. Never edit a released migration: add one.
 */
export const MIGRATIONS: readonly { readonly version: number; readonly sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE entries (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        repository_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        version TEXT NOT NULL,
        blob_id TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'committed')),
        size_bytes BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        committed_at BIGINT NOT NULL DEFAULT 0,
        last_accessed_at BIGINT NOT NULL,
        download_url_expires_at BIGINT NOT NULL DEFAULT 0,
        -- One winner among any number of instances racing on one identity.
        CONSTRAINT entries_identity UNIQUE (repository_id, scope, key, version)
      );
      CREATE INDEX entries_committed_key ON entries (repository_id, scope, version, key)
        WHERE state = 'committed';
      CREATE INDEX entries_committed_recent ON entries (repository_id, scope, version, id)
        WHERE state = 'committed';
      CREATE INDEX entries_committed_lru ON entries (repository_id, last_accessed_at, id)
        WHERE state = 'committed';
      CREATE INDEX entries_committed_idle ON entries (last_accessed_at, id)
        WHERE state = 'committed';
      CREATE INDEX entries_pending_created ON entries (created_at) WHERE state = 'pending';

      -- Kept by triggers, so a quota check reads one row.
      CREATE TABLE repository_usage (
        repository_id TEXT PRIMARY KEY,
        size_bytes BIGINT NOT NULL DEFAULT 0,
        count BIGINT NOT NULL DEFAULT 0
      );
      CREATE FUNCTION entries_usage() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.state = 'committed' THEN
          UPDATE repository_usage SET size_bytes = size_bytes - OLD.size_bytes, count = count - 1
            WHERE repository_id = OLD.repository_id;
        END IF;
        IF TG_OP = 'UPDATE' AND NEW.state = 'committed' THEN
          INSERT INTO repository_usage (repository_id, size_bytes, count)
            VALUES (NEW.repository_id, NEW.size_bytes, 1)
            ON CONFLICT (repository_id) DO UPDATE
              SET size_bytes = repository_usage.size_bytes + EXCLUDED.size_bytes,
                  count = repository_usage.count + 1;
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER entries_usage_update AFTER UPDATE OF state, size_bytes ON entries
        FOR EACH ROW WHEN (OLD.state = 'committed' OR NEW.state = 'committed')
        EXECUTE FUNCTION entries_usage();
      CREATE TRIGGER entries_usage_delete AFTER DELETE ON entries
        FOR EACH ROW WHEN (OLD.state = 'committed')
        EXECUTE FUNCTION entries_usage();

      -- The Create rate limit of every instance: one row per slot taken.
      CREATE TABLE rate_slots (
        key TEXT NOT NULL,
        taken_at BIGINT NOT NULL
      );
      CREATE INDEX rate_slots_key ON rate_slots (key, taken_at);
      -- Takes a slot (NULL) or says in how many ms one frees; serialized per key.
      CREATE FUNCTION take_rate_slot(k TEXT, lim INT, window_ms BIGINT, now_ms BIGINT)
      RETURNS BIGINT LANGUAGE plpgsql AS $$
      DECLARE
        n INT;
        frees BIGINT;
      BEGIN
        PERFORM pg_advisory_xact_lock(hashtextextended('gha-cache-rate:' || k, 0));
        DELETE FROM rate_slots WHERE key = k AND taken_at + window_ms <= now_ms;
        SELECT count(*) INTO n FROM rate_slots WHERE key = k;
        IF n < lim THEN
          INSERT INTO rate_slots (key, taken_at) VALUES (k, now_ms);
          RETURN NULL;
        END IF;
        SELECT taken_at INTO frees FROM rate_slots WHERE key = k
          ORDER BY taken_at DESC OFFSET lim - 1 LIMIT 1;
        RETURN frees + window_ms - now_ms;
      END $$;
    `,
  },
  {
    version: 2,
    sql: `
      -- The prefix walk reads ids from the index alone (an index-only scan of the key range).
      CREATE INDEX entries_committed_key_id ON entries (repository_id, scope, version, key) INCLUDE (id)
        WHERE state = 'committed';
      DROP INDEX entries_committed_key;
      -- No statement walks ids newest-first any more; each index is one more write per hit.
      DROP INDEX entries_committed_recent;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
/** Advisory lock keys: one for migrations, one for the sweeper. */
export const MIGRATION_LOCK = 0x67686163_01n;
export const SWEEP_LOCK = 0x67686163_02n;

/** Applies the migrations the database lacks; refuses a database newer than this build. */
export async function migrate(client: PoolClient): Promise<void> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS gha_cache_schema (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())',
    );
    const { rows } = await client.query<{ v: number | null }>(
      'SELECT max(version) AS v FROM gha_cache_schema',
    );
    const current = rows[0]?.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new Error(`the database has schema version ${current}; this build knows up to ${SCHEMA_VERSION}`);
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO gha_cache_schema (version) VALUES ($1)', [m.version]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]);
  }
}
