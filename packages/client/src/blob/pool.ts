/** Bounded concurrency for the blob transfers: one helper for every pool of blocks or ranges. */
import { setMaxListeners } from 'node:events';

/** An AbortController that follows `parent` and can also be aborted on its own (first failure wins). */
export function linkedAbort(parent: AbortSignal | undefined): AbortController {
  const ac = new AbortController();
  // Every in-flight request listens on it; dozens of ranges or blocks are normal, not a leak.
  setMaxListeners(0, ac.signal);
  if (parent) {
    if (parent.aborted) ac.abort(parent.reason);
    else parent.addEventListener('abort', () => ac.abort(parent.reason), { once: true });
  }
  return ac;
}

/**
 * Runs tasks, at most `limit` at a time, and stops at the first failure: it aborts `abort` (so the tasks
 * in flight end early), {@link slot} refuses every later task, and {@link settle} throws it.
 */
export class TaskPool {
  #running = 0;
  #failure: { error: unknown } | undefined;
  #waiters: (() => void)[] = [];

  constructor(
    readonly limit: number,
    readonly abort: AbortController,
  ) {}

  /** The first failure, once there is one. */
  get failure(): { error: unknown } | undefined {
    return this.#failure;
  }

  /** Resolves once fewer than `limit` tasks run: true, or false when a task has failed. */
  async slot(limit = this.limit): Promise<boolean> {
    while (this.#failure === undefined && this.#running >= limit) await this.#change();
    return this.#failure === undefined;
  }

  /** Starts `task` (in a slot the caller waited for); the pool observes its outcome, the caller may too. */
  run<T>(task: () => Promise<T>): Promise<T> {
    this.#running += 1;
    const p = (async () => task())();
    p.then(
      () => this.#finished(undefined),
      (error: unknown) => this.#finished({ error }),
    );
    return p;
  }

  /** Runs `worker(i)` for i in [0, count), then {@link settle}s. */
  async forEach(count: number, worker: (index: number) => Promise<void>): Promise<void> {
    for (let i = 0; i < count && (await this.slot()); i++) {
      const index = i;
      void this.run(() => worker(index));
    }
    await this.settle();
  }

  /** Waits for every task started; throws the first failure. */
  async settle(): Promise<void> {
    while (this.#running > 0) await this.#change();
    if (this.#failure !== undefined) throw this.#failure.error;
  }

  #change(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #finished(failure: { error: unknown } | undefined): void {
    this.#running -= 1;
    if (failure !== undefined && this.#failure === undefined) {
      this.#failure = failure;
      this.abort.abort(failure.error);
    }
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
