import type { BlobStore, CacheEntry, CacheStorage, MetadataStore } from './types.js';

/**
 * Puts a metadata store and a blob store together. The entry is the truth: a blob is written only
 * for a pending entry and deleted after its entry, so a crash between the two writes leaves at most
 * an orphaned blob, which the next sweep removes. `close` closes both.
 */
export function composeStorage(
  metadata: MetadataStore,
  blobs: BlobStore,
  kind = `${metadata.kind}+${blobs.kind}`,
  /** Runs after both stores closed (e.g. closes a database handle they share). */
  afterClose?: () => void | Promise<void>,
): CacheStorage {
  return {
    kind,
    metadata,
    blobs,
    async deleteEntry(id: number, now: number): Promise<CacheEntry | undefined> {
      const removed = await metadata.deleteEntry(id);
      if (removed) await blobs.discardBlob(removed.blobId, removed.downloadUrlExpiresAt, now);
      return removed;
    },
    sweepBlobs: (now: number) => blobs.sweep(now, metadata.blobOwners),
    async close() {
      const results = await Promise.allSettled([metadata.close(), blobs.close()]);
      await afterClose?.();
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    },
  };
}
