import type Database from 'better-sqlite3';
import type { CacheEntry } from '../types.js';
import type { EntryStatements } from './statements.js';

/**
 * Hits not yet written: id → [lastAccessedAt, downloadUrlExpiresAt]. A hit's UPDATE touches two
 * indexes; writing one event-loop turn's hits in one transaction more than doubles lookups/s. Entries
 * read meanwhile carry these values (`apply`), and queries that filter or order by them `flush`
 * first. A crash loses at most one turn of access times, never an entry.
 */
export function createTouchBatcher(db: Database.Database, q: EntryStatements) {
  const pending = new Map<number, readonly [number, number]>();
  let scheduled = false;
  const write = db.transaction((batch: [number, readonly [number, number]][]) => {
    for (const [id, [accessedAt, urlExpiresAt]] of batch) q.touch.run(accessedAt, urlExpiresAt, id);
  });
  const flush = () => {
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
  return {
    flush,
    record(id: number, now: number, urlExpiresAt: number) {
      const earlier = pending.get(id);
      pending.set(id, [now, Math.max(earlier?.[1] ?? 0, urlExpiresAt)]);
      if (scheduled) return;
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        try {
          flush();
        } catch {
          // Kept pending: the next flush (a later hit, or a query that needs them) tries again and
          // reports the error to its caller. A hit must not crash the server.
        }
      });
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
