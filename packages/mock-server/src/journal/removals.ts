/**
 * Remembers which entries went, when and why (quota eviction, idle expiry, abandoned reservation,
 * REST or admin delete), so that a later miss can say so. Bounded: the oldest removals are forgotten.
 */
import type { CacheEntry, CacheStorage } from '../storage/types.js';
import type { MissReason } from './types.js';

export type RemovalCause = Extract<
  MissReason,
  'evicted' | 'expired' | 'abandoned' | 'deleted-rest' | 'deleted-admin' | 'discarded'
>;

export interface Removal {
  readonly repositoryId: string;
  readonly scope: string;
  readonly key: string;
  readonly version: string;
  readonly entryId: number;
  readonly state: CacheEntry['state'];
  readonly sizeBytes: number;
  readonly cause: RemovalCause;
  /** Unix ms (the mock's clock). */
  readonly at: number;
}

/** What a removal records of its entry (any `CacheEntry` is one). */
export type RemovedEntry = Pick<
  CacheEntry,
  'id' | 'repositoryId' | 'scope' | 'key' | 'version' | 'state' | 'sizeBytes'
>;

export interface RemovalLedger {
  note(entry: RemovedEntry, cause: RemovalCause, at: number): void;
  /** Removals in `repositoryId` whose key starts with `keyPrefix`, newest first. */
  find(repositoryId: string, keyPrefix: string): Removal[];
  /** Counts by cause since start. */
  counts(): Readonly<Record<RemovalCause, number>>;
  /** Called on every removal (metrics). */
  onRemoval(listener: (removal: Removal) => void): void;
}

export function createRemovalLedger(capacity = 10_000): RemovalLedger {
  // Insertion-ordered: the first key is the oldest removal.
  const byId = new Map<number, Removal>();
  const listeners: ((removal: Removal) => void)[] = [];
  const counts: Record<RemovalCause, number> = {
    evicted: 0,
    expired: 0,
    abandoned: 0,
    'deleted-rest': 0,
    'deleted-admin': 0,
    discarded: 0,
  };
  return {
    note(entry, cause, at) {
      const removal: Removal = {
        repositoryId: entry.repositoryId,
        scope: entry.scope,
        key: entry.key,
        version: entry.version,
        entryId: entry.id,
        state: entry.state,
        sizeBytes: entry.sizeBytes,
        cause,
        at,
      };
      byId.delete(entry.id);
      byId.set(entry.id, removal);
      if (byId.size > capacity) byId.delete(byId.keys().next().value as number);
      counts[cause]++;
      for (const listener of listeners) listener(removal);
    },
    find(repositoryId, keyPrefix) {
      const found: Removal[] = [];
      for (const r of byId.values()) {
        if (r.repositoryId === repositoryId && r.key.startsWith(keyPrefix)) found.push(r);
      }
      return found.reverse();
    },
    counts: () => ({ ...counts }),
    onRemoval: (listener) => {
      listeners.push(listener);
    },
  };
}

/**
 * A view of `storage` whose `deleteEntry` notes each removal in `ledger`, with the cause `causeOf`
 * gives for the entry as it was when deleted. Every other member is the storage's own.
 */
export function noteRemovals(
  storage: CacheStorage,
  ledger: RemovalLedger,
  causeOf: (entry: CacheEntry, now: number) => RemovalCause,
): CacheStorage {
  const view = Object.create(storage) as CacheStorage & { deleteEntry: CacheStorage['deleteEntry'] };
  const deleteEntry = storage.deleteEntry.bind(storage);
  view.deleteEntry = async (id, now) => {
    const removed = await deleteEntry(id, now);
    if (removed) ledger.note(removed, causeOf(removed, now), now);
    return removed;
  };
  return view;
}
