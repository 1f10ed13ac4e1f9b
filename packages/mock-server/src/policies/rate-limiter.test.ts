import { describe, expect, it } from 'vitest';
import { createSlidingWindowLimiter } from './rate-limiter.js';

describe('sliding window limiter', () => {
  it('admits up to the limit per key, then tells how long until the oldest slot frees', () => {
    const l = createSlidingWindowLimiter(60_000);
    expect(l.take('a', 2, 0)).toBeUndefined();
    expect(l.take('a', 2, 1_000)).toBeUndefined();
    expect(l.take('a', 2, 5_000)).toBe(55_000);
    expect(l.take('b', 2, 5_000)).toBeUndefined();
    expect(l.take('a', 2, 60_000)).toBeUndefined(); // the slot taken at 0 left the window
    expect(l.take('a', 2, 60_000)).toBe(1_000);
  });

  it('honours a lowered limit: waits until enough older slots free', () => {
    const l = createSlidingWindowLimiter(60_000);
    for (let i = 0; i < 5; i++) expect(l.take('a', 5, i * 1_000)).toBeUndefined();
    expect(l.take('a', 2, 10_000)).toBe(63_000 - 10_000);
  });

  it('prunes keys whose slots all left the window', () => {
    const l = createSlidingWindowLimiter(1_000);
    l.take('a', 1, 0);
    l.prune(1_000);
    expect(l.take('a', 1, 1_000)).toBeUndefined();
  });
});
