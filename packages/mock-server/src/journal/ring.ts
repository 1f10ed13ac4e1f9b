/** A fixed-capacity ring: `push` is O(1) and never allocates once full; iteration is oldest first. */
export class Ring<T> {
  readonly #items: (T | undefined)[];
  #next = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
    }
    this.#items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  push(item: T): void {
    this.#items[this.#next] = item;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** Oldest first. */
  *[Symbol.iterator](): IterableIterator<T> {
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    for (let i = 0; i < this.#size; i++) yield this.#items[(start + i) % this.capacity] as T;
  }

  /** Newest first. */
  *newestFirst(): IterableIterator<T> {
    for (let i = 1; i <= this.#size; i++) {
      yield this.#items[(this.#next - i + this.capacity) % this.capacity] as T;
    }
  }

  clear(): void {
    this.#items.fill(undefined);
    this.#next = 0;
    this.#size = 0;
  }
}
