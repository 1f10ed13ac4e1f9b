import type { QueryConfig } from 'pg';
import { prefixUpperBound } from '../sqlite/prefix.js';
import type { CacheEntry } from '../types.js';
import { type EntryRow, SQL, toEntry } from './statements.js';

type MatchRow = EntryRow & { exact: boolean };

/**
 * A lookup asks for the exact key, and on a miss for the newest entry with that key as prefix (the
 * service's order, for the key and then each restore key). Both answers come from one statement
 * (`SQL.matchInRange`): `exact` returns the exact entry, or keeps the prefix answer that came with
 * the miss for the `prefix` call with the same arguments that follows it, so a prefix hit costs one
 * round trip instead of two. A kept answer lives until the end of the event-loop turn that read it
 * (the service asks for it in the same turn, before it awaits anything else), so it is never staler
 * than the read it came from; a `prefix` call without one queries.
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

  return {
    async exact(repositoryId: string, scope: string, version: string, key: string) {
      const upper = prefixUpperBound(key);
      const [row] = (await query(
        upper === undefined
          ? { ...SQL.matchFrom, values: [repositoryId, scope, key, version] }
          : { ...SQL.matchInRange, values: [repositoryId, scope, key, version, upper] },
      )) as MatchRow[];
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
