/**
 * Why a lookup missed, from what the store holds right after it. Reads the store only through its
 * public query methods (`listEntries`), each awaited, so it works with a synchronous or asynchronous
 * store alike. Never changes anything.
 */
import type { CacheEntry, EntryFilter } from '../storage/types.js';
import type { Removal, RemovalLedger } from './removals.js';
import type { ClientKind, MissExplanation } from './types.js';

/** The one storage method explanations read. */
export interface ExplainStore {
  listEntries(filter?: EntryFilter): CacheEntry[] | Promise<CacheEntry[]>;
}

export interface MissQuery {
  readonly repositoryId: string;
  /** Scopes the token can read, in search order. */
  readonly scopes: readonly string[];
  readonly key: string;
  readonly restoreKeys: readonly string[];
  readonly version: string;
  readonly client: ClientKind;
  /** The mock's clock. */
  readonly now: number;
}

export interface ExplainContext {
  readonly store: ExplainStore;
  readonly removals?: RemovalLedger;
  /** Reservations older than this are abandoned. */
  readonly pendingTtlMs: number;
  /** Idle time after which committed entries expire (`null` = never). */
  readonly idleTtlMs: () => number | null;
}

const iso = (ms: number) => new Date(ms).toISOString();
const MAX_NEAREST = 3;

/** What a different version usually means, per client. */
function versionHint(client: ClientKind): string {
  switch (client) {
    case 'actions-cache':
    case 'gha-cache':
      return ': the version hashes the cached paths, the compression method and the cross-OS setting (enableCrossOsArchive), so one of them differs between the save and this restore';
    case 'buildkit':
      return ': BuildKit sends one constant version, so this entry was saved by another client or another go-actions-cache version';
    default:
      return ': the client computed another version (for @actions/cache: different paths, compression or cross-OS setting)';
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function removalMessage(r: Removal, key: string): string {
  const what = `"${r.key}"${r.key === key ? '' : ` (prefix "${key}")`} in ${r.scope}`;
  switch (r.cause) {
    case 'evicted':
      return `${what} was evicted at ${iso(r.at)} to fit the repository's storage quota`;
    case 'expired':
      return `${what} expired at ${iso(r.at)} after going unused for the idle time (7 days by default)`;
    case 'abandoned':
      return `${what} was reserved but never finalized; the reservation was dropped at ${iso(r.at)}`;
    case 'deleted-rest':
      return `${what} was deleted through the REST API at ${iso(r.at)}`;
    case 'deleted-admin':
      return `${what} was deleted through the admin API at ${iso(r.at)}`;
    case 'discarded':
      return `${what} was dropped at ${iso(r.at)} (its upload did not match the finalized size, or its blob was gone)`;
  }
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/**
 * The explanation of one missed lookup. The primary key is explained first, then each restore key.
 * Synchronous when the store is (so a log line can carry it at once), a promise when it is not.
 */
export function explainMiss(ctx: ExplainContext, q: MissQuery): MissExplanation | Promise<MissExplanation> {
  const listed = ctx.store.listEntries({ repositoryId: q.repositoryId });
  return listed instanceof Promise
    ? listed.then((entries) => explainFrom(entries, ctx, q))
    : explainFrom(listed, ctx, q);
}

/** The explanation from the repository's entries as they are now. */
export function explainFrom(
  entries: readonly CacheEntry[],
  ctx: ExplainContext,
  q: MissQuery,
): MissExplanation {
  const readable = new Set(q.scopes);
  const idleTtlMs = ctx.idleTtlMs();
  const isLive = (e: CacheEntry) =>
    e.state === 'pending'
      ? e.createdAt + ctx.pendingTtlMs > q.now
      : idleTtlMs === null || e.lastAccessedAt + idleTtlMs > q.now;
  const keys = [q.key, ...q.restoreKeys];
  const having = (prefix: string) => entries.filter((e) => e.key.startsWith(prefix));

  // 1. Another version in a readable scope.
  for (const key of keys) {
    const other = having(key).find(
      (e) => readable.has(e.scope) && e.state === 'committed' && e.version !== q.version && isLive(e),
    );
    if (other) {
      return {
        reason: 'version-mismatch',
        key,
        scope: other.scope,
        foundVersion: other.version,
        entryId: other.id,
        message: `"${other.key}" exists in ${other.scope} with version ${short(other.version)}, not the ${short(q.version)} asked for${versionHint(q.client)}`,
      };
    }
  }
  // 2. The key (same version) pending in a readable scope.
  for (const key of keys) {
    const pending = having(key).find(
      (e) => readable.has(e.scope) && e.state === 'pending' && e.version === q.version,
    );
    if (pending) {
      const live = isLive(pending);
      return {
        reason: live ? 'pending' : 'abandoned',
        key,
        scope: pending.scope,
        entryId: pending.id,
        message: live
          ? `"${pending.key}" is reserved in ${pending.scope} (since ${iso(pending.createdAt)}) but its upload is not finalized yet`
          : `"${pending.key}" was reserved in ${pending.scope} at ${iso(pending.createdAt)} and never finalized (abandoned)`,
      };
    }
  }
  // 3. Only in scopes the token cannot read.
  for (const key of keys) {
    const elsewhere = having(key).filter((e) => !readable.has(e.scope) && e.state === 'committed');
    if (elsewhere.length > 0) {
      const scopes = [...new Set(elsewhere.map((e) => e.scope))];
      const reads = q.scopes.length > 0 ? q.scopes.join(', ') : 'no scope';
      return {
        reason: 'scope-not-readable',
        key,
        scope: scopes[0]!,
        entryId: elsewhere[0]!.id,
        message: `"${elsewhere[0]!.key}" exists only in ${scopes.join(', ')}, which this token cannot read (it reads ${reads})`,
      };
    }
  }
  // 4. It was there and went.
  if (ctx.removals) {
    for (const key of keys) {
      const gone = ctx.removals
        .find(q.repositoryId, key)
        .find((r) => readable.has(r.scope) && r.version === q.version);
      if (gone) {
        return {
          reason: gone.cause,
          key,
          scope: gone.scope,
          entryId: gone.entryId,
          at: iso(gone.at),
          message: removalMessage(gone, key),
        };
      }
    }
  }
  // 5. Nothing at all: the nearest keys by common prefix.
  const candidates = new Set<string>();
  for (const e of entries) if (readable.has(e.scope) && e.state === 'committed') candidates.add(e.key);
  const nearest = [...candidates]
    .map((k) => ({ k, n: commonPrefixLength(k, q.key) }))
    .filter((c) => c.n > 0)
    .sort((a, b) => b.n - a.n || a.k.localeCompare(b.k))
    .slice(0, MAX_NEAREST)
    .map((c) => c.k);
  const searched = plural(keys.length, 'key');
  return {
    reason: 'no-such-key',
    key: q.key,
    nearestKeys: nearest,
    message:
      `nothing in ${q.scopes.join(', ') || 'the readable scopes'} has ${keys.length === 1 ? 'this key' : `any of the ${searched}`} or a key starting with ${keys.length === 1 ? 'it' : 'them'}` +
      (nearest.length > 0 ? `; nearest: ${nearest.map((k) => `"${k}"`).join(', ')}` : ''),
  };
}

/** Versions are 64 hex digits: the first 12 tell them apart. */
function short(version: string): string {
  return version.length > 16 ? `${version.slice(0, 12)}…` : version;
}
