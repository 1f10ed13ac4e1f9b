import { describe, expect, it } from 'vitest';
import { linkedAbort, TaskPool } from './pool.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('TaskPool', () => {
  it('runs at most `limit` tasks at a time, every one of them', async () => {
    const pool = new TaskPool(3, new AbortController());
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    await pool.forEach(10, async (i) => {
      running += 1;
      peak = Math.max(peak, running);
      await tick();
      running -= 1;
      done.push(i);
    });
    expect(peak).toBe(3);
    expect(done.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('stops at the first failure: aborts, starts nothing more, and throws that failure', async () => {
    const abort = new AbortController();
    const pool = new TaskPool(2, abort);
    const started: number[] = [];
    const boom = new Error('boom');
    const run = pool.forEach(10, async (i) => {
      started.push(i);
      if (i === 1) throw boom;
      await new Promise<void>((resolve, reject) => {
        abort.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
        if (abort.signal.aborted) reject(new Error('aborted'));
        setImmediate(resolve);
      });
    });
    await expect(run).rejects.toBe(boom);
    expect(abort.signal.reason).toBe(boom);
    expect(started).toEqual([0, 1]);
    expect(pool.failure?.error).toBe(boom);
    expect(await pool.slot()).toBe(false);
  });

  it('a linked abort follows its parent, and can be aborted on its own', () => {
    const parent = new AbortController();
    const child = linkedAbort(parent.signal);
    const own = linkedAbort(parent.signal);
    own.abort(new Error('own'));
    expect(parent.signal.aborted).toBe(false);
    parent.abort(new Error('parent'));
    expect(child.signal.aborted).toBe(true);
    expect((own.signal.reason as Error).message).toBe('own');
  });
});
