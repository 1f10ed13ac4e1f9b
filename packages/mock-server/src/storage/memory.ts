import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { blockIdByteLength, newEtag, resolveBlockList } from './blocks.js';
import {
  type BlobProperties,
  type BlockListItem,
  type ByteRange,
  type CacheEntry,
  type CacheStorage,
  type EntryFilter,
  type EntryIdentity,
  type RepositoryUsage,
  StorageError,
} from './types.js';

interface MemoryBlob {
  committed?: {
    properties: BlobProperties;
    data: Buffer;
    blocks: { id: string; start: number; end: number }[];
  };
  staged: Map<string, Buffer>;
  /** Retained after its entry was deleted, until this Unix ms. */
  retainUntil?: number;
}

const identityKey = (i: EntryIdentity) => JSON.stringify([i.repositoryId, i.scope, i.key, i.version]);

async function readExactly(body: Readable, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > length) throw new StorageError('IncompleteBody', `body is longer than ${length} bytes`);
    chunks.push(buf);
  }
  if (total !== length)
    throw new StorageError('IncompleteBody', `body ended after ${total} of ${length} bytes`);
  return Buffer.concat(chunks, total);
}

/** Keeps everything in process memory: fast, and gone on exit. For tests. */
export function createMemoryStorage(): CacheStorage {
  const entries = new Map<number, CacheEntry>();
  const byIdentity = new Map<string, number>();
  const byBlob = new Map<string, number>();
  const blobs = new Map<string, MemoryBlob>();
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

  const blob = (blobId: string): MemoryBlob => {
    let b = blobs.get(blobId);
    if (!b) {
      b = { staged: new Map() };
      blobs.set(blobId, b);
    }
    return b;
  };
  const committed = (e: CacheEntry | undefined) => (e?.state === 'committed' ? e : undefined);
  const update = (e: CacheEntry, patch: Partial<CacheEntry>): CacheEntry => setEntry({ ...e, ...patch });

  return {
    kind: 'memory',

    reserveEntry(identity, now) {
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
    getEntry: (id) => entries.get(id),
    findEntry(identity) {
      const id = byIdentity.get(identityKey(identity));
      return id === undefined ? undefined : entries.get(id);
    },
    findEntryByBlobId(blobId) {
      const id = byBlob.get(blobId);
      return id === undefined ? undefined : entries.get(id);
    },
    findCommittedExact(repositoryId, scope, version, key) {
      const id = byIdentity.get(identityKey({ repositoryId, scope, key, version }));
      return committed(id === undefined ? undefined : entries.get(id));
    },
    findCommittedByPrefix(repositoryId, scope, version, prefix) {
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
    listEntries(filter: EntryFilter = {}) {
      return [...entries.values()].filter(
        (e) =>
          (filter.repositoryId === undefined || e.repositoryId === filter.repositoryId) &&
          (filter.state === undefined || e.state === filter.state) &&
          (filter.createdBefore === undefined || e.createdAt < filter.createdBefore),
      );
    },
    repositoryUsage: usageOf,
    listRepositoryUsage: () => [...usage.keys()].sort().map(usageOf),
    listLeastRecentlyUsed: (repositoryId, limit) => byAccess((e) => e.repositoryId === repositoryId, limit),
    listIdleEntries: (accessedBefore, limit) => byAccess((e) => e.lastAccessedAt < accessedBefore, limit),
    commitEntry(id, sizeBytes, now) {
      const e = entries.get(id);
      if (!e) throw new Error(`no entry ${id}`);
      return update(e, { state: 'committed', sizeBytes, committedAt: now, lastAccessedAt: now });
    },
    touchEntry(id, now, urlExpiresAt) {
      const e = entries.get(id);
      if (e)
        update(e, {
          lastAccessedAt: now,
          downloadUrlExpiresAt: Math.max(e.downloadUrlExpiresAt, urlExpiresAt),
        });
    },
    deleteEntry(id, now) {
      const e = entries.get(id);
      if (!e) return;
      addUsage(e, -1);
      entries.delete(id);
      byIdentity.delete(identityKey(e));
      byBlob.delete(e.blobId);
      const b = blobs.get(e.blobId);
      if (!b) return;
      b.staged.clear();
      if (b.committed && e.downloadUrlExpiresAt > now) b.retainUntil = e.downloadUrlExpiresAt;
      else blobs.delete(e.blobId);
    },
    async sweep(now) {
      let removed = 0;
      for (const [blobId, b] of blobs) {
        // Retained past their last download URL, or written after their entry was deleted.
        const expired = b.retainUntil === undefined ? !byBlob.has(blobId) : b.retainUntil <= now;
        if (expired) {
          blobs.delete(blobId);
          if (b.committed) removed++;
        }
      }
      return removed;
    },

    async putBlob(blobId, body, length, now) {
      const data = await readExactly(body, length);
      const b = blob(blobId);
      const properties: BlobProperties = {
        size: data.length,
        etag: newEtag(now),
        lastModified: now,
        createdAt: b.committed?.properties.createdAt ?? now,
      };
      b.committed = { properties, data, blocks: [] };
      b.staged.clear();
      return properties;
    },
    async putBlock(blobId, blockId, body, length) {
      const b = blob(blobId);
      const size = blockIdByteLength(blockId);
      for (const other of b.staged.keys()) {
        if (blockIdByteLength(other) !== size) {
          body.resume();
          throw new StorageError('InvalidBlobOrBlock', 'block id length differs from the staged blocks');
        }
      }
      b.staged.set(blockId, await readExactly(body, length));
    },
    async commitBlockList(blobId, items: readonly BlockListItem[], now) {
      const b = blob(blobId);
      const old = b.committed;
      const resolved = resolveBlockList(items, b.staged, old?.blocks.map((x) => x.id) ?? []);
      const parts: Buffer[] = [];
      const blocks: { id: string; start: number; end: number }[] = [];
      let offset = 0;
      for (const r of resolved) {
        let part: Buffer;
        if (r.from === 'staged') part = b.staged.get(r.id)!;
        else {
          const c = old!.blocks.find((x) => x.id === r.id)!;
          part = old!.data.subarray(c.start, c.end);
        }
        parts.push(part);
        blocks.push({ id: r.id, start: offset, end: offset + part.length });
        offset += part.length;
      }
      const properties: BlobProperties = {
        size: offset,
        etag: newEtag(now),
        lastModified: now,
        createdAt: old?.properties.createdAt ?? now,
      };
      b.committed = { properties, data: Buffer.concat(parts, offset), blocks };
      b.staged.clear();
      return properties;
    },
    getBlobProperties: (blobId) => blobs.get(blobId)?.committed?.properties,
    async openBlob(blobId, range?: ByteRange) {
      const c = blobs.get(blobId)?.committed;
      if (!c) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
      const data = range ? c.data.subarray(range.start, range.end + 1) : c.data;
      return { properties: c.properties, stream: Readable.from([data]) };
    },
    async close() {
      entries.clear();
      usage.clear();
      blobs.clear();
    },
  };
}
