import { randomBytes } from 'node:crypto';
import { createInProcessRateSlots } from '../rate-slots.js';
import type {
  CacheEntry,
  EntryFilter,
  EntryIdentity,
  EntryState,
  MetadataStore,
  RepositoryUsage,
} from '../types.js';

const identityKey = (i: EntryIdentity) => JSON.stringify([i.repositoryId, i.scope, i.key, i.version]);

/** Entries in process memory: fast, and gone on exit. For tests. */
export function createMemoryMetadataStore(): MetadataStore {
  const entries = new Map<number, CacheEntry>();
  const byIdentity = new Map<string, number>();
  const byBlob = new Map<string, number>();
  /** Committed size and count by repository, kept up to date by `setEntry` and `deleteEntry`. */
  const usage = new Map<string, { sizeBytes: number; count: number }>();
  let nextId = 1;

  const addUsage = (e: CacheEntry, sign: 1 | -1) => {
    if (e.state !== 'committed') return;
    const u = usage.get(e.repositoryId) ?? { sizeBytes: 0, count: 0 };
    u.sizeBytes += sign * e.sizeBytes;
    u.count += sign;
    if (u.count === 0) usage.delete(e.repositoryId);
    else usage.set(e.repositoryId, u);
  };
  /** Stores a new version of an entry, keeping the usage totals in step. */
  const setEntry = (next: CacheEntry): CacheEntry => {
    const previous = entries.get(next.id);
    if (previous) addUsage(previous, -1);
    entries.set(next.id, next);
    addUsage(next, 1);
    return next;
  };
  const usageOf = (repositoryId: string): RepositoryUsage => ({
    repositoryId,
    sizeBytes: usage.get(repositoryId)?.sizeBytes ?? 0,
    count: usage.get(repositoryId)?.count ?? 0,
  });
  /** Committed entries in eviction order: least recently accessed first, ties by lower id. */
  const byAccess = (filter: (e: CacheEntry) => boolean, limit: number): CacheEntry[] =>
    [...entries.values()]
      .filter((e) => e.state === 'committed' && filter(e))
      .sort((a, b) => a.lastAccessedAt - b.lastAccessedAt || a.id - b.id)
      .slice(0, Math.max(0, limit));
  const committed = (e: CacheEntry | undefined) => (e?.state === 'committed' ? e : undefined);
  const update = (e: CacheEntry, patch: Partial<CacheEntry>): CacheEntry => setEntry({ ...e, ...patch });

  return {
    kind: 'memory',

    async reserveEntry(identity, now) {
      const k = identityKey(identity);
      if (byIdentity.has(k)) return undefined;
      const entry: CacheEntry = {
        repositoryId: identity.repositoryId,
        scope: identity.scope,
        key: identity.key,
        version: identity.version,
        id: nextId++,
        blobId: randomBytes(16).toString('hex'),
        state: 'pending',
        sizeBytes: 0,
        createdAt: now,
        committedAt: 0,
        lastAccessedAt: now,
        downloadUrlExpiresAt: 0,
      };
      setEntry(entry);
      byIdentity.set(k, entry.id);
      byBlob.set(entry.blobId, entry.id);
      return entry;
    },
    getEntry: async (id) => entries.get(id),
    async findEntry(identity) {
      const id = byIdentity.get(identityKey(identity));
      return id === undefined ? undefined : entries.get(id);
    },
    async findEntryByBlobId(blobId) {
      const id = byBlob.get(blobId);
      return id === undefined ? undefined : entries.get(id);
    },
    async findCommittedExact(repositoryId, scope, version, key) {
      const id = byIdentity.get(identityKey({ repositoryId, scope, key, version }));
      return committed(id === undefined ? undefined : entries.get(id));
    },
    async findCommittedByPrefix(repositoryId, scope, version, prefix) {
      let best: CacheEntry | undefined;
      for (const e of entries.values()) {
        if (
          e.state === 'committed' &&
          e.repositoryId === repositoryId &&
          e.scope === scope &&
          e.version === version &&
          e.key.startsWith(prefix) &&
          (!best || e.id > best.id)
        ) {
          best = e;
        }
      }
      return best;
    },
    async listEntries(filter: EntryFilter = {}) {
      return [...entries.values()].filter(
        (e) =>
          (filter.repositoryId === undefined || e.repositoryId === filter.repositoryId) &&
          (filter.state === undefined || e.state === filter.state) &&
          (filter.createdBefore === undefined || e.createdAt < filter.createdBefore),
      );
    },
    repositoryUsage: async (repositoryId) => usageOf(repositoryId),
    listRepositoryUsage: async () => [...usage.keys()].sort().map(usageOf),
    listLeastRecentlyUsed: async (repositoryId, limit) =>
      byAccess((e) => e.repositoryId === repositoryId, limit),
    listIdleEntries: async (accessedBefore, limit) =>
      byAccess((e) => e.lastAccessedAt < accessedBefore, limit),
    async commitEntry(id, sizeBytes, now) {
      const e = entries.get(id);
      if (!e) throw new Error(`no entry ${id}`);
      return update(e, { state: 'committed', sizeBytes, committedAt: now, lastAccessedAt: now });
    },
    async touchEntry(id, now, urlExpiresAt) {
      const e = entries.get(id);
      if (e)
        update(e, {
          lastAccessedAt: now,
          downloadUrlExpiresAt: Math.max(e.downloadUrlExpiresAt, urlExpiresAt),
        });
    },
    async deleteEntry(id) {
      const e = entries.get(id);
      if (!e) return undefined;
      addUsage(e, -1);
      entries.delete(id);
      byIdentity.delete(identityKey(e));
      byBlob.delete(e.blobId);
      return e;
    },
    async blobOwners(blobIds) {
      const owners = new Map<string, EntryState>();
      for (const blobId of blobIds) {
        const id = byBlob.get(blobId);
        const e = id === undefined ? undefined : entries.get(id);
        if (e) owners.set(blobId, e.state);
      }
      return owners;
    },
    takeRateSlot: createInProcessRateSlots(),
    async exclusiveSweep(work) {
      await work();
      return true;
    },
    async close() {
      entries.clear();
      byIdentity.clear();
      byBlob.clear();
      usage.clear();
    },
  };
}
