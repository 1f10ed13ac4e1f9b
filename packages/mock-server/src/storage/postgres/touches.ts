import { addTouch, createFlushTimer, type Touch } from '../hit-batch.js';
import type { CacheEntry } from '../types.js';
import { SQL } from './statements.js';

/**
 * Hits not yet written: id → [lastAccessedAt, downloadUrlExpiresAt]. Each hit's UPDATE is a write of
 * every index of `entries` (`last_accessed_at` is indexed, so no HOT update) and a commit: written
 * one by one they cost PostgreSQL more than the lookups. So they are written together,
 * `FLUSH_DELAY_MS` after the first unwritten one (at once when `MAX_PENDING` wait), in one
 * statement. Entries this instance reads meanwhile carry these values (`apply`); the queries that
 * filter or order by them (LRU, idle) `flush` first, as does closing. Other instances see a hit up
 * to `FLUSH_DELAY_MS` (plus the write) late. A batch that fails (an outage) stays pending for the
 * next one; a database crash may lose the last batches of access times, never an entry.
 */
export function createTouchBatcher(
  run: (text: string) => Promise<unknown>,
  onError: (err: Error) => void = () => undefined,
) {
  let pending = new Map<number, Touch>();
  /** The batch being written: reads on other connections may not see it yet. */
  let writing = new Map<number, Touch>();
  let flushing: Promise<void> | undefined;

  const write = async (batch: Map<number, Touch>) => {
    const ids: string[] = [];
    const ats: string[] = [];
    const expires: string[] = [];
    for (const [id, [at, exp]] of batch) {
      ids.push(String(Math.trunc(id)));
      ats.push(String(Math.trunc(at)));
      expires.push(String(Math.trunc(exp)));
    }
    // Access times only: no wait for the WAL flush (`synchronous_commit` off for this transaction).
    // Integers only, so the arrays are safe as literals (one round trip for the four statements).
    const arr = (xs: string[]) => `'{${xs.join(',')}}'::bigint[]`;
    const update = SQL.touch.text
      .replace('$1::bigint[]', arr(ids))
      .replace('$2::bigint[]', arr(ats))
      .replace('$3::bigint[]', arr(expires));
    await run(`BEGIN; SET LOCAL synchronous_commit TO off; ${update}; COMMIT`);
  };

  const merge = (batch: Map<number, Touch>) => {
    for (const [id, [at, exp]] of batch) {
      const newer = pending.get(id);
      pending.set(id, [newer?.[0] ?? at, Math.max(newer?.[1] ?? 0, exp)]);
    }
  };

  const flush = async (): Promise<void> => {
    timer.cancel();
    while (flushing) await flushing;
    if (pending.size === 0) return;
    const batch = pending;
    pending = new Map();
    writing = batch;
    flushing = write(batch)
      .catch((err: unknown) => {
        merge(batch); // kept for the next flush
        throw err;
      })
      .finally(() => {
        flushing = undefined;
        writing = new Map();
      });
    await flushing;
  };
  /** A timer's flush: a failure is reported, never thrown (a hit must not crash the server). */
  const timer = createFlushTimer(() => {
    flush().catch((err: unknown) => onError(err as Error));
  });

  return {
    flush,
    record(id: number, now: number, urlExpiresAt: number) {
      addTouch(pending, id, now, urlExpiresAt);
      timer.schedule(pending.size);
    },
    /** The entry with its unwritten (or being written) hit, if any. */
    apply(entry: CacheEntry): CacheEntry {
      const newer = pending.get(entry.id);
      const older = writing.get(entry.id);
      if (!newer && !older) return entry;
      return {
        ...entry,
        lastAccessedAt: (newer ?? older)![0],
        downloadUrlExpiresAt: Math.max(entry.downloadUrlExpiresAt, newer?.[1] ?? 0, older?.[1] ?? 0),
      };
    },
  };
}
