import { randomBytes } from 'node:crypto';
import type { Pool, PoolClient, QueryConfig, QueryResultRow } from 'pg';
import { type CacheEntry, type EntryState, type MetadataStore, StorageError } from '../types.js';
import { createLookups } from './lookups.js';
import { migrate, SWEEP_LOCK } from './schema.js';
import { type EntryRow, SQL, toEntry } from './statements.js';
import { createTouchBatcher } from './touches.js';

export interface PostgresMetadataOptions {
  /** `postgres://user:password@host:port/database` (any libpq-style URL node-postgres accepts). */
  readonly connectionString: string;
  /** Connections per instance. Default 16. */
  readonly poolSize?: number;
  /**
   * Bound of every wait on the database, in ms: connecting, a statement's run time (server side)
   * and its answer (client side). An outage fails requests after at most about this long. Default 5000.
   */
  readonly timeoutMs?: number;
  /** Where connection errors of idle connections are reported (they never throw). */
  readonly onError?: (err: Error) => void;
}

/** Turns any failure of the database or the connection into `StorageError('Unavailable')`. */
function unavailable(err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  // 22021: a character PostgreSQL text cannot hold (U+0000); 22P05: an untranslatable one.
  const sqlState = (err as { code?: unknown } | undefined)?.code;
  if (sqlState === '22021' || sqlState === '22P05') {
    return new StorageError(
      'UnsupportedValue',
      'the metadata database cannot store U+0000 in a key, scope or version',
      {
        cause: err,
      },
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  return new StorageError('Unavailable', `the metadata database is unavailable: ${message}`, { cause: err });
}

/**
 * The metadata store of a fleet: PostgreSQL through node-postgres. Any number of instances share
 * one database; uniqueness is the `entries_identity` constraint, the rate limit a table written
 * under a per-key advisory lock, the sweeper one instance at a time under a session advisory lock.
 * Migrations run at start. A lookup's exact and prefix steps are one statement (`lookups.ts`); hits
 * are written in batches (`touches.ts`).
 */
export async function createPostgresMetadataStore(options: PostgresMetadataOptions): Promise<MetadataStore> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const { default: pg } = await import('pg');
  const pool: Pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.poolSize ?? 16,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs * 2,
    statement_timeout: timeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'gha-cache-mock',
    // The named statements are planned once per connection: PostgreSQL would otherwise plan a
    // lookup afresh on every call (its custom plan looks cheaper than the generic one, which is
    // the same index walk), which costs more than running it.
    options: '-c plan_cache_mode=force_generic_plan',
  });
  // A connection that breaks while idle (a database restart) is dropped by the pool; never a crash.
  pool.on('error', (err) => options.onError?.(err));

  const query = async <R extends QueryResultRow>(config: QueryConfig): Promise<R[]> => {
    try {
      return (await pool.query<R>(config)).rows;
    } catch (err) {
      throw unavailable(err);
    }
  };
  const one = async (config: QueryConfig): Promise<CacheEntry | undefined> => {
    const [row] = await query<EntryRow>(config);
    return row && touches.apply(toEntry(row));
  };

  try {
    const client = await pool.connect();
    try {
      await migrate(client);
    } finally {
      client.release();
    }
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new Error(`cannot open the metadata database: ${(err as Error).message}`, { cause: err });
  }

  const touches = createTouchBatcher((text) => query({ text }), options.onError);
  const lookups = createLookups(query, touches.apply);

  let ratePrunedAt = 0;

  return {
    kind: 'postgres',

    async reserveEntry(identity, now) {
      return one({
        ...SQL.reserve,
        values: [
          identity.repositoryId,
          identity.scope,
          identity.key,
          identity.version,
          randomBytes(16).toString('hex'),
          now,
        ],
      });
    },
    getEntry: (id) => one({ ...SQL.get, values: [id] }),
    findEntry: (i) => one({ ...SQL.find, values: [i.repositoryId, i.scope, i.key, i.version] }),
    findEntryByBlobId: (blobId) => one({ ...SQL.findByBlob, values: [blobId] }),
    findCommittedExact: lookups.exact,
    findCommittedByPrefix: lookups.prefix,
    async listEntries(filter = {}) {
      const rows = await query<EntryRow>({
        ...SQL.list,
        values: [filter.repositoryId ?? null, filter.state ?? null, filter.createdBefore ?? null],
      });
      return rows.map((r) => touches.apply(toEntry(r)));
    },
    async repositoryUsage(repositoryId) {
      const [row] = await query<{ size_bytes: string; count: string }>({
        ...SQL.usage,
        values: [repositoryId],
      });
      return { repositoryId, sizeBytes: Number(row?.size_bytes ?? 0), count: Number(row?.count ?? 0) };
    },
    async listRepositoryUsage() {
      const rows = await query<{ repository_id: string; size_bytes: string; count: string }>(SQL.allUsage);
      return rows.map((r) => ({
        repositoryId: r.repository_id,
        sizeBytes: Number(r.size_bytes),
        count: Number(r.count),
      }));
    },
    async listLeastRecentlyUsed(repositoryId, limit) {
      await touches.flush();
      const rows = await query<EntryRow>({
        ...SQL.leastRecentlyUsed,
        values: [repositoryId, Math.max(0, limit)],
      });
      return rows.map(toEntry);
    },
    async listIdleEntries(accessedBefore, limit) {
      await touches.flush();
      const rows = await query<EntryRow>({ ...SQL.idle, values: [accessedBefore, Math.max(0, limit)] });
      return rows.map(toEntry);
    },
    async commitEntry(id, sizeBytes, now) {
      const e = await one({ ...SQL.commit, values: [id, sizeBytes, now] });
      if (!e) throw new Error(`no entry ${id}`);
      return e;
    },
    async touchEntry(id, now, urlExpiresAt) {
      touches.record(id, now, urlExpiresAt);
    },
    async deleteEntry(id) {
      await touches.flush();
      const [row] = await query<EntryRow>({ ...SQL.deleteEntry, values: [id] });
      return row && toEntry(row);
    },
    async blobOwners(blobIds) {
      const owners = new Map<string, EntryState>();
      if (blobIds.length === 0) return owners;
      const rows = await query<{ blob_id: string; state: EntryState }>({ ...SQL.owners, values: [blobIds] });
      for (const r of rows) owners.set(r.blob_id, r.state);
      return owners;
    },
    async takeRateSlot(key, limit, windowMs, now) {
      const [row] = await query<{ wait: string | null }>({
        ...SQL.takeRateSlot,
        values: [key, limit, windowMs, now],
      });
      // Slots of keys nobody uses any more, now and then.
      if (now - ratePrunedAt > windowMs) {
        ratePrunedAt = now;
        await query({ ...SQL.pruneRateSlots, values: [now - windowMs] });
      }
      return row?.wait == null ? undefined : Math.max(1, Number(row.wait));
    },
    async exclusiveSweep(work) {
      let client: PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw unavailable(err);
      }
      let locked = false;
      try {
        try {
          const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [
            SWEEP_LOCK.toString(),
          ]);
          locked = rows[0]?.ok === true;
        } catch (err) {
          throw unavailable(err);
        }
        if (!locked) return false;
        await work();
        return true;
      } finally {
        if (locked) {
          await client.query('SELECT pg_advisory_unlock($1)', [SWEEP_LOCK.toString()]).catch(() => undefined);
        }
        client.release();
      }
    },
    async close() {
      await touches.flush().catch(() => undefined);
      await pool.end();
    },
  };
}
