import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { createInProcessRateSlots } from '../rate-slots.js';
import type { CacheEntry, EntryFilter, EntryState, MetadataStore, RepositoryUsage } from '../types.js';
import { newestIdWithPrefix } from './prefix.js';
import { type EntryRow, prepareEntryStatements, toEntry } from './statements.js';
import { createTouchBatcher } from './touches.js';

/**
 * The default metadata store: the `entries` table of a SQLite database opened by
 * `openSqliteDatabase` (which also applies the migrations). Closing it flushes the batched hits;
 * the database handle belongs to the caller.
 */
export function createSqliteMetadataStore(db: Database.Database): MetadataStore {
  const q = prepareEntryStatements(db);
  const touches = createTouchBatcher(db, q);
  const entryOf = (row: EntryRow): CacheEntry => touches.apply(toEntry(row));
  const getEntry = (id: number): CacheEntry | undefined => {
    const row = q.get.get(id);
    return row && entryOf(row);
  };
  const removeEntry = db.transaction((id: number): CacheEntry | undefined => {
    const row = q.get.get(id);
    if (!row) return undefined;
    q.deleteEntry.run(id);
    return toEntry(row);
  });

  return {
    kind: 'sqlite',

    async reserveEntry(identity, now) {
      const { changes, lastInsertRowid } = q.reserve.run(
        identity.repositoryId,
        identity.scope,
        identity.key,
        identity.version,
        randomBytes(16).toString('hex'),
        now,
        now,
      );
      return changes === 0 ? undefined : getEntry(Number(lastInsertRowid));
    },
    getEntry: async (id) => getEntry(id),
    async findEntry(identity) {
      const row = q.find.get(identity.repositoryId, identity.scope, identity.key, identity.version);
      return row && entryOf(row);
    },
    async findEntryByBlobId(blobId) {
      const row = q.findByBlob.get(blobId);
      return row && entryOf(row);
    },
    async findCommittedExact(repositoryId, scope, version, key) {
      const row = q.find.get(repositoryId, scope, key, version);
      return row?.state === 'committed' ? entryOf(row) : undefined;
    },
    async findCommittedByPrefix(repositoryId, scope, version, prefix) {
      const id = newestIdWithPrefix(q, repositoryId, scope, version, prefix);
      return id === undefined ? undefined : getEntry(id);
    },
    async listEntries(filter: EntryFilter = {}) {
      return q.list
        .all({
          repositoryId: filter.repositoryId ?? null,
          state: filter.state ?? null,
          createdBefore: filter.createdBefore ?? null,
        })
        .map(entryOf);
    },
    async repositoryUsage(repositoryId): Promise<RepositoryUsage> {
      const row = q.usage.get(repositoryId);
      return { repositoryId, sizeBytes: row?.size_bytes ?? 0, count: row?.count ?? 0 };
    },
    async listRepositoryUsage() {
      return q.allUsage
        .all()
        .map((r) => ({ repositoryId: r.repository_id, sizeBytes: r.size_bytes, count: r.count }));
    },
    async listLeastRecentlyUsed(repositoryId, limit) {
      touches.flush();
      return q.leastRecentlyUsed.all(repositoryId, Math.max(0, limit)).map(toEntry);
    },
    async listIdleEntries(accessedBefore, limit) {
      touches.flush();
      return q.idle.all(accessedBefore, Math.max(0, limit)).map(toEntry);
    },
    async commitEntry(id, sizeBytes, now) {
      if (q.commit.run(sizeBytes, now, now, id).changes === 0) throw new Error(`no entry ${id}`);
      return getEntry(id)!;
    },
    async touchEntry(id, now, urlExpiresAt) {
      touches.record(id, now, urlExpiresAt);
    },
    async deleteEntry(id) {
      touches.flush();
      return removeEntry(id);
    },
    async blobOwners(blobIds) {
      const owners = new Map<string, EntryState>();
      for (const blobId of blobIds) {
        const state = q.stateByBlob.get(blobId);
        if (state !== undefined) owners.set(blobId, state);
      }
      return owners;
    },
    takeRateSlot: createInProcessRateSlots(),
    async exclusiveSweep(work) {
      await work();
      return true;
    },
    async close() {
      touches.flush();
    },
  };
}
