/**
 * What the metadata stores share about hits (last access, download URL expiry): a hit is not written at
 * once but kept pending, and the pending ones are written together `FLUSH_DELAY_MS` after the first
 * (or on the next turn once `MAX_PENDING` wait). How a batch is written is each store's own.
 */

/** How long a hit waits for others before they are written together, and how many make a batch. */
export const FLUSH_DELAY_MS = 100;
export const MAX_PENDING = 4096;

/** A pending hit: [lastAccessedAt, downloadUrlExpiresAt]. */
export type Touch = readonly [lastAccessedAt: number, downloadUrlExpiresAt: number];

/** Adds a hit to the pending ones: the latest access, the furthest URL expiry. */
export function addTouch(pending: Map<number, Touch>, id: number, now: number, urlExpiresAt: number): void {
  const earlier = pending.get(id);
  pending.set(id, [now, Math.max(earlier?.[1] ?? 0, urlExpiresAt)]);
}

/** The timer that writes pending hits; `flush` must not throw (a hit must not crash the server). */
export function createFlushTimer(flush: () => void) {
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    timer = undefined;
    flush();
  };
  return {
    /** After a hit joined `pendingCount - 1` others. */
    schedule(pendingCount: number): void {
      if (pendingCount >= MAX_PENDING) {
        if (timer) clearTimeout(timer);
        timer = setTimeout(fire, 0);
      } else if (!timer) {
        timer = setTimeout(fire, FLUSH_DELAY_MS);
      }
      // Closing the store flushes; a pending write alone does not keep the process alive.
      timer.unref();
    },
    cancel(): void {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
