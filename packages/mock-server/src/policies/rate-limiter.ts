/** Counts events per key in a sliding time window; the window runs on whatever `now` the caller passes. */
export interface SlidingWindowLimiter {
  /**
   * Takes a slot for `key` if fewer than `limit` were taken in the window ending at `now`, and
   * returns `undefined`; otherwise takes nothing and returns the ms until a slot frees (> 0).
   */
  take(key: string, limit: number, now: number): number | undefined;
  /** Forgets slots that left the window (also done lazily by `take`). */
  prune(now: number): void;
}

/** A sliding-window limiter: a slot taken at `t` counts until `t + windowMs`. */
export function createSlidingWindowLimiter(windowMs: number): SlidingWindowLimiter {
  /** Times slots were taken, ascending, per key. */
  const taken = new Map<string, number[]>();
  const live = (times: number[], now: number): number[] => {
    let i = 0;
    while (i < times.length && times[i]! + windowMs <= now) i++;
    return i === 0 ? times : times.slice(i);
  };
  return {
    take(key, limit, now) {
      const times = live(taken.get(key) ?? [], now);
      if (times.length < limit) {
        times.push(now);
        taken.set(key, times);
        return undefined;
      }
      taken.set(key, times);
      // The slot that frees first once only `limit - 1` newer ones remain.
      return times[times.length - limit]! + windowMs - now;
    },
    prune(now) {
      for (const [key, times] of taken) {
        const kept = live(times, now);
        if (kept.length === 0) taken.delete(key);
        else taken.set(key, kept);
      }
    },
  };
}
