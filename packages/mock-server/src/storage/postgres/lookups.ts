import type { QueryConfig } from 'pg';
import { prefixUpperBound } from '../sqlite/prefix.js';
import type { CacheEntry } from '../types.js';
import { type EntryRow, SQL, toEntry } from './statements.js';

type MatchRow = EntryRow & { exact: boolean };
type BatchRow = MatchRow & { n: string };
type Lookup = readonly [repositoryId: string, scope: string, key: string, version: string, upper: string];

/** At most this many lookups share one statement. */
const MAX_BATCH = 256;

/**
 * A lookup asks for the exact key, and on a miss for the newest entry with that key as prefix (the
 * service's order, for the key and then each restore key). Both answers come from one statement
 * (`SQL.matchInRange`): `exact` returns the exact entry, or keeps the prefix answer that came with
 * the miss for the `prefix` call with the same arguments that follows it, so a prefix hit costs one
 * round trip instead of two. A kept answer lives until the end of the event-loop turn that read it
 * (the service asks for it in the same turn, before it awaits anything else), so it is never staler
 * than the read it came from; a `prefix` call without one queries.
 *
 * Lookups that arrive in one event-loop turn (under load, many requests do) share one statement
 * (`SQL.matchBatch`, one row of arrays per lookup): one round trip, one message and one execution
 * start for all of them, which is most of what a lookup costs PostgreSQL and the driver. If that
 * statement fails, each lookup runs alone, so one bad value fails only its own lookup.
 */
export function createLookups(
  query: (config: QueryConfig) => Promise<MatchRow[] | EntryRow[]>,
  apply: (entry: CacheEntry) => CacheEntry,
) {
  /** Prefix answers read ahead: identity + prefix → the entry (or `undefined`: none). */
  let ahead = new Map<string, CacheEntry | undefined>();
  let clearing = false;
  const keep = (slot: string, entry: CacheEntry | undefined) => {
    ahead.set(slot, entry);
    if (clearing) return;
    clearing = true;
    setImmediate(() => {
      clearing = false;
      ahead = new Map();
    });
  };
  // PostgreSQL text cannot hold U+0000 (such a query fails), so it cannot join two slots into one.
  const slotOf = (repositoryId: string, scope: string, version: string, key: string) =>
    `${repositoryId}\0${scope}\0${version}\0${key}`;

  const alone = async (l: Lookup): Promise<MatchRow | undefined> => {
    const [row] = (await query({ ...SQL.matchInRange, values: [...l] })) as MatchRow[];
    return row;
  };
  let queue: { lookup: Lookup; done: (row: MatchRow | undefined) => void; fail: (err: unknown) => void }[] =
    [];
  const runBatch = async (batch: typeof queue) => {
    if (batch.length === 1) {
      const [one] = batch;
      return alone(one!.lookup).then(one!.done, one!.fail);
    }
    const columns: string[][] = [[], [], [], [], []];
    for (const { lookup } of batch) for (let c = 0; c < 5; c++) columns[c]!.push(lookup[c]!);
    let rows: BatchRow[];
    try {
      rows = (await query({ ...SQL.matchBatch, values: columns })) as BatchRow[];
    } catch {
      for (const b of batch) alone(b.lookup).then(b.done, b.fail);
      return;
    }
    const found = new Map<number, MatchRow>();
    for (const r of rows) found.set(Number(r.n) - 1, r);
    for (const [i, b] of batch.entries()) b.done(found.get(i));
  };
  const match = (lookup: Lookup) =>
    new Promise<MatchRow | undefined>((done, fail) => {
      queue.push({ lookup, done, fail });
      if (queue.length > 1) return;
      setImmediate(() => {
        const all = queue;
        queue = [];
        for (let i = 0; i < all.length; i += MAX_BATCH) void runBatch(all.slice(i, i + MAX_BATCH));
      });
    });

  return {
    async exact(repositoryId: string, scope: string, version: string, key: string) {
      const upper = prefixUpperBound(key);
      const row =
        upper === undefined
          ? (
              (await query({ ...SQL.matchFrom, values: [repositoryId, scope, key, version] })) as MatchRow[]
            )[0]
          : await match([repositoryId, scope, key, version, upper]);
      if (row?.exact) return apply(toEntry(row));
      keep(slotOf(repositoryId, scope, version, key), row && toEntry(row));
      return undefined;
    },
    async prefix(repositoryId: string, scope: string, version: string, prefix: string) {
      const slot = slotOf(repositoryId, scope, version, prefix);
      if (ahead.has(slot)) {
        const entry = ahead.get(slot);
        ahead.delete(slot);
        return entry && apply(entry);
      }
      const upper = prefixUpperBound(prefix);
      const [row] = (await query(
        upper === undefined
          ? { ...SQL.newestFrom, values: [repositoryId, scope, version, prefix] }
          : { ...SQL.newestInRange, values: [repositoryId, scope, version, prefix, upper] },
      )) as EntryRow[];
      return row && apply(toEntry(row));
    },
  };
}
