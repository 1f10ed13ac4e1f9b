/**
 * The traffic journal: every request the mock answered, as one `TrafficEvent`, kept in a bounded ring
 * and, when a file is given, appended to it as NDJSON (loaded back on the next start). The routes
 * report to it; the admin traffic API, the UI, the metrics and the report read from it.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { Ring } from './ring.js';
import type { TrafficEvent, TrafficFilter } from './types.js';

export type NewTrafficEvent = Omit<TrafficEvent, 'id'>;
export type TrafficListener = (event: TrafficEvent) => void;

export interface TrafficJournal {
  /** Ring capacity. */
  readonly capacity: number;
  /** The NDJSON file events are appended to, if any. */
  readonly file: string | undefined;
  /** Adds an event (gives it the next id), tells the listeners, appends it to the file. */
  record(event: NewTrafficEvent): TrafficEvent;
  /** Events in the ring matching `filter`, oldest first. */
  query(filter?: TrafficFilter): TrafficEvent[];
  /** Calls `listener` for each new event until the returned function is called. */
  subscribe(listener: TrafficListener): () => void;
  /** Empties the ring (the file keeps what it has). */
  clear(): void;
  /** Flushes and closes the file. */
  close(): Promise<void>;
}

export interface JournalOptions {
  /** Events kept in memory. Default 10,000. */
  readonly capacity?: number;
  /** NDJSON file to append to (created with its directory); its last events are loaded first. */
  readonly file?: string;
}

export const DEFAULT_JOURNAL_CAPACITY = 10_000;

/** A `TrafficFilter` from query parameters (`keyPrefix`, `op`, `outcome`, `client`, `entryId`, `since`, `after`, `limit`). */
export function parseTrafficFilter(query: URLSearchParams): TrafficFilter {
  const filter: { -readonly [K in keyof TrafficFilter]: TrafficFilter[K] } = {};
  const text = (name: 'keyPrefix' | 'op' | 'outcome' | 'client') => {
    const v = query.get(name);
    if (v !== null && v !== '') filter[name] = v;
  };
  text('keyPrefix');
  text('op');
  text('outcome');
  text('client');
  const since = query.get('since');
  if (since !== null && since !== '') {
    const ms = /^\d+$/.test(since) ? Number(since) : Date.parse(since);
    if (Number.isNaN(ms)) throw new RangeError(`since must be an ISO 8601 time or Unix ms, got "${since}"`);
    filter.since = ms;
  }
  const entryId = query.get('entryId');
  if (entryId !== null && entryId !== '') {
    if (!/^\d{1,15}$/.test(entryId)) throw new RangeError(`entryId must be an entry id, got "${entryId}"`);
    filter.entryId = Number(entryId);
  }
  const after = query.get('after');
  if (after !== null && after !== '') {
    if (!/^\d{1,15}$/.test(after)) throw new RangeError(`after must be an event id, got "${after}"`);
    filter.afterId = Number(after);
  }
  const limit = query.get('limit');
  if (limit !== null && limit !== '') {
    if (!/^\d{1,9}$/.test(limit) || Number(limit) < 1)
      throw new RangeError(`limit must be a positive integer, got "${limit}"`);
    filter.limit = Number(limit);
  }
  return filter;
}

/** Whether `event` passes every field of `filter` (except `limit`). */
export function matchesFilter(event: TrafficEvent, filter: TrafficFilter): boolean {
  if (filter.afterId !== undefined && event.id <= filter.afterId) return false;
  if (filter.op !== undefined && event.op !== filter.op) return false;
  if (filter.outcome !== undefined && event.outcome !== filter.outcome) return false;
  if (filter.client !== undefined && event.client !== filter.client) return false;
  if (filter.entryId !== undefined && event.entryId !== filter.entryId) return false;
  if (filter.keyPrefix !== undefined && !(event.key ?? '').startsWith(filter.keyPrefix)) return false;
  if (filter.since !== undefined && Date.parse(event.time) < filter.since) return false;
  return true;
}

/** Opens a journal; with a file, loads the file's last `capacity` events and appends from there. */
export async function openJournal(options: JournalOptions = {}): Promise<TrafficJournal> {
  const capacity = options.capacity ?? DEFAULT_JOURNAL_CAPACITY;
  const ring = new Ring<TrafficEvent>(capacity);
  let nextId = 1;
  let out: WriteStream | undefined;
  if (options.file) {
    await mkdir(dirname(options.file), { recursive: true });
    nextId = (await loadTail(options.file, ring)) + 1;
    out = createWriteStream(options.file, { flags: 'a', mode: 0o600 });
    // A line torn by a crash must not swallow the first new event.
    if (!(await endsWithNewline(options.file))) out.write('\n');
    // A full disk must not take the server down: the ring keeps working.
    out.on('error', () => {
      out = undefined;
    });
  }
  const listeners = new Set<TrafficListener>();
  return {
    capacity,
    file: options.file,
    record(input) {
      const event = { id: nextId++, ...input } as TrafficEvent;
      ring.push(event);
      for (const listener of listeners) {
        try {
          listener(event);
        } catch {
          // One broken listener must not stop the others, nor the request.
        }
      }
      out?.write(`${JSON.stringify(event)}\n`);
      return event;
    },
    query(filter = {}) {
      const found: TrafficEvent[] = [];
      const limit = filter.limit ?? Number.POSITIVE_INFINITY;
      for (const event of ring.newestFirst()) {
        if (found.length >= limit) break;
        if (matchesFilter(event, filter)) found.push(event);
      }
      return found.reverse();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    clear: () => ring.clear(),
    async close() {
      listeners.clear();
      const stream = out;
      out = undefined;
      if (stream) await new Promise<void>((resolve) => stream.end(resolve));
    },
  };
}

/** Reads the file's events into the ring (the last ones win); returns the highest id seen. */
async function loadTail(file: string, ring: Ring<TrafficEvent>): Promise<number> {
  let maxId = 0;
  const input = createReadStream(file, { encoding: 'utf8' });
  try {
    for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
      if (line === '') continue;
      try {
        const event = JSON.parse(line) as TrafficEvent;
        if (typeof event.id !== 'number' || typeof event.op !== 'string') continue;
        ring.push(event);
        if (event.id > maxId) maxId = event.id;
      } catch {
        // A torn last line (the process died mid-write) is skipped.
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return maxId;
}

/** True for a missing or empty file, or one whose last byte is a newline. */
async function endsWithNewline(file: string): Promise<boolean> {
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return true;
  try {
    const { size } = await handle.stat();
    if (size === 0) return true;
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    await handle.close();
  }
}
