import { createSlidingWindowLimiter, type SlidingWindowLimiter } from '../policies/rate-limiter.js';

/** `MetadataStore.takeRateSlot` for backends that live in one process (memory, SQLite). */
export function createInProcessRateSlots(): (
  key: string,
  limit: number,
  windowMs: number,
  now: number,
) => Promise<number | undefined> {
  const limiters = new Map<number, SlidingWindowLimiter>();
  let taken = 0;
  return async (key, limit, windowMs, now) => {
    let limiter = limiters.get(windowMs);
    if (!limiter) {
      limiter = createSlidingWindowLimiter(windowMs);
      limiters.set(windowMs, limiter);
    }
    // Forget keys whose slots all left the window, now and then.
    if (++taken % 1024 === 0) limiter.prune(now);
    return limiter.take(key, limit, now);
  };
}
