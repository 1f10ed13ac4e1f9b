import type Database from 'better-sqlite3';
import { addTouch, createFlushTimer, type Touch } from '../hit-batch.js';
import type { CacheEntry } from '../types.js';
import type { EntryStatements } from './statements.js';

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
  const pending = new Map<number, Touch>();
  const write = db.transaction((batch: [number, Touch][]) => {
    for (const [id, [accessedAt, urlExpiresAt]] of batch) q.touch.run(accessedAt, urlExpiresAt, id);
  });
  const flush = () => {
    timer.cancel();
    if (pending.size === 0 || !db.open) return;
    const batch = [...pending];
    pending.clear();
    try {
      write(batch);
    } catch (err) {
      // Not written (e.g. SQLITE_FULL on a full disk): keep them for the next flush.
      for (const [id, [accessedAt, urlExpiresAt]] of batch) {
        const newer = pending.get(id);
        pending.set(id, [Math.max(newer?.[0] ?? 0, accessedAt), Math.max(newer?.[1] ?? 0, urlExpiresAt)]);
      }
      throw err;
    }
  };
  /** A timer's flush: a failure keeps the hits pending for the next flush (a later hit, or a query
   * that needs them, which then reports the error to its caller). A hit must not crash the server. */
  const timer = createFlushTimer(() => {
    try {
      flush();
    } catch {
      // kept pending
    }
  });
  return {
    flush,
    record(id: number, now: number, urlExpiresAt: number) {
      addTouch(pending, id, now, urlExpiresAt);
      timer.schedule(pending.size);
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
