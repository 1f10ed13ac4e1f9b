/**
 * Signed blob URLs handed out by the upstream, swapped for proxy URLs. A proxy URL carries an unguessable
 * id (144 random bits) instead of the SAS signature; the id maps to exactly one original URL (one host,
 * one path), so it cannot be used to reach anything else, and it is forgotten when the original expires
 * (its `se`). The signature never leaves the proxy: not in the rewritten URL, a log line or an event.
 */
import { randomBytes } from 'node:crypto';

export const BLOB_PREFIX = '/_blob/';

/** What the Twirp call that produced a URL said about the entry behind it. */
export interface BlobFacts {
  /** `upload` (CreateCacheEntry) or `download` (GetCacheEntryDownloadURL). */
  readonly kind: 'upload' | 'download';
  readonly key: string;
  readonly version?: string;
  readonly scope?: string;
  readonly repositoryId?: string;
}

export interface BlobTarget extends BlobFacts {
  readonly id: string;
  /** The original signed URL (with its signature). Never logged. */
  readonly original: URL;
  /** Unix ms after which the id is refused. */
  readonly expiresAt: number;
}

export interface BlobUrlRegistry {
  /** Registers `original` and returns the proxy URL under `origin` (`http://host:port`). */
  rewrite(original: string, facts: BlobFacts, origin: string): string;
  /** The target of an id, or undefined (unknown or expired). */
  resolve(id: string): BlobTarget | undefined;
  /** Ids currently known. */
  readonly size: number;
}

export interface BlobUrlRegistryOptions {
  readonly now?: () => number;
  /** Lifetime of a URL whose original has no readable `se`. Default 6 hours. */
  readonly defaultTtlMs?: number;
  /** Ids kept at most (the oldest are forgotten first). Default 100,000. */
  readonly maxEntries?: number;
}

/** A raw `name=value` pair's name, decoded and lower-cased (`%73IG` is `sig` too). */
function paramName(pair: string): string {
  const raw = pair.split('=')[0]!;
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/** The query of `url` without its `sig` parameter (kept raw, so the other values read as before). */
export function withoutSignature(search: string): string {
  const kept = search
    .replace(/^\?/, '')
    .split('&')
    .filter((p) => p !== '' && paramName(p) !== 'sig');
  return kept.length > 0 ? `?${kept.join('&')}` : '';
}

export function createBlobUrlRegistry(options: BlobUrlRegistryOptions = {}): BlobUrlRegistry {
  const now = options.now ?? Date.now;
  const defaultTtlMs = options.defaultTtlMs ?? 6 * 3_600_000;
  const maxEntries = options.maxEntries ?? 100_000;
  const targets = new Map<string, BlobTarget>();
  let sinceSweep = 0;

  const sweep = () => {
    const t = now();
    for (const [id, target] of targets) if (target.expiresAt <= t) targets.delete(id);
    while (targets.size >= maxEntries) targets.delete(targets.keys().next().value as string);
  };

  return {
    rewrite(original, facts, origin) {
      const url = new URL(original);
      const se = Date.parse(url.searchParams.get('se') ?? '');
      const expiresAt = Number.isNaN(se) ? now() + defaultTtlMs : se;
      if (++sinceSweep >= 1000 || targets.size >= maxEntries) {
        sinceSweep = 0;
        sweep();
      }
      const id = randomBytes(18).toString('base64url');
      targets.set(id, { ...facts, id, original: url, expiresAt });
      return `${origin}${BLOB_PREFIX}${id}${url.pathname}${withoutSignature(url.search)}`;
    },
    resolve(id) {
      const target = targets.get(id);
      if (!target) return undefined;
      if (target.expiresAt <= now()) {
        targets.delete(id);
        return undefined;
      }
      return target;
    },
    get size() {
      return targets.size;
    },
  };
}

/**
 * The upstream URL for a client's request to a proxy URL: the original URL (signature included) plus the
 * client's own parameters (`comp`, `blockid`, `timeout`, …); parameters the original already has keep
 * the original's value.
 */
export function upstreamUrlFor(target: BlobTarget, clientSearch: string): URL {
  const url = new URL(target.original.href);
  const own = new Set([...target.original.searchParams.keys()].map((k) => k.toLowerCase()));
  const extra = new URLSearchParams();
  for (const [k, v] of new URLSearchParams(clientSearch)) if (!own.has(k.toLowerCase())) extra.append(k, v);
  const more = extra.toString();
  if (more !== '') url.search = url.search === '' ? `?${more}` : `${url.search}&${more}`;
  return url;
}
