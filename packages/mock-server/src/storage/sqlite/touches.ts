import type Database from 'better-sqlite3';
import type { CacheEntry } from '../types.js';
import type { EntryStatements } from './statements.js';

const FLUSH_DELAY_MS = 100;
const MAX_PENDING = 4096;

/**
 * Hits not yet written: id → [lastAccessedAt, downloadUrlExpiresAt]. A hit's UPDATE touches two
 * indexes on a random page of the table, and every page a transaction dirties goes through the WAL
 * and the next checkpoint (with its fsyncs): written one by one, hits cost more than the lookups.
 * So hits are written together, `FLUSH_DELAY_MS` after the first unwritten one (or at once when
 * `MAX_PENDING` wait), in one transaction, where hits on the same entry or page cost one write.
 * Entries read meanwhile carry these values (`apply`), and queries that filter or order by them
 * `flush` first, as does closing. A crash loses at most `FLUSH_DELAY_MS` of access times, never an
 * entry.
 */
export function createTouchBatcher(db: Database.Database, q: EntryStatements) {
  const pending = new Map<number, readonly [number, number]>();
  let timer: NodeJS.Timeout | undefined;
  const write = db.transaction((batch: [number, readonly [number, number]][]) => {
    for (const [id, [accessedAt, urlExpiresAt]] of batch) q.touch.run(accessedAt, urlExpiresAt, id);
  });
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (pending.size === 0 || !db.open) return;
    const batch = [...pending];
    pending.clear();
    write(batch);
  };
  return {
    flush,
    record(id: number, now: number, urlExpiresAt: number) {
      const earlier = pending.get(id);
      pending.set(id, [now, Math.max(earlier?.[1] ?? 0, urlExpiresAt)]);
      if (pending.size >= MAX_PENDING) {
        if (timer) clearTimeout(timer);
        timer = setTimeout(flush, 0);
      } else if (!timer) {
        timer = setTimeout(flush, FLUSH_DELAY_MS);
      }
      // Closing the store flushes; a pending write alone does not keep the process alive.
      timer.unref();
    },
    /** The entry with its unwritten hit, if any. */
    apply(entry: CacheEntry): CacheEntry {
      const touch = pending.get(entry.id);
      if (!touch) return entry;
      return {
        ...entry,
        lastAccessedAt: touch[0],
        downloadUrlExpiresAt: Math.max(entry.downloadUrlExpiresAt, touch[1]),
      };
    },
  };
}
