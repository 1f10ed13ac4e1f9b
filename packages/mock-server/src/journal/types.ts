/** The traffic journal's vocabulary: one `TrafficEvent` per request the mock answered. */

/** Who sent a request, recognised from its User-Agent and headers (`clients.ts`). */
export type ClientKind =
  | 'buildkit'
  | 'actions-cache'
  | 'sccache'
  | 'gha-cache'
  | 'azure-sdk'
  | 'curl'
  | 'ui'
  | 'browser'
  | 'unknown';

/** Which surface answered. */
export type SurfaceKind = 'twirp' | 'blob' | 'rest' | 'admin';

/** What became of a request. */
export type Outcome =
  | 'hit-exact'
  | 'hit-prefix'
  | 'miss'
  | 'created'
  | 'committed'
  | 'ok'
  | 'conflict'
  | 'write-denied'
  | 'read-denied'
  | 'rate-limited'
  | 'quota'
  | 'fault'
  | 'not-found'
  | 'error';

export const OUTCOMES: readonly Outcome[] = [
  'hit-exact',
  'hit-prefix',
  'miss',
  'created',
  'committed',
  'ok',
  'conflict',
  'write-denied',
  'read-denied',
  'rate-limited',
  'quota',
  'fault',
  'not-found',
  'error',
];

/** Why a lookup missed, computed from what the store held right after the lookup (`explain.ts`). */
export type MissReason =
  /** A committed entry has the key (or a key with this prefix), but another version. */
  | 'version-mismatch'
  /** The key exists only in scopes this token cannot read. */
  | 'scope-not-readable'
  /** The entry is reserved but its upload was not finalized (yet). */
  | 'pending'
  /** The reservation was never finalized and timed out. */
  | 'abandoned'
  /** Evicted to fit the repository's storage quota. */
  | 'evicted'
  /** Removed after the idle time without access. */
  | 'expired'
  /** Deleted through the REST API. */
  | 'deleted-rest'
  /** Deleted through the admin API. */
  | 'deleted-admin'
  /** Dropped by the mock (a failed finalize or a blob that went missing). */
  | 'discarded'
  /** Nothing in the readable scopes has this key or prefix. */
  | 'no-such-key';

export interface MissExplanation {
  readonly reason: MissReason;
  /** One sentence for a person. */
  readonly message: string;
  /** The key (or restore key) the explanation is about. */
  readonly key: string;
  /** Scope the explanation names (the entry's scope). */
  readonly scope?: string;
  /** The version the entry has (version-mismatch). */
  readonly foundVersion?: string;
  /** The entry the explanation is about, if it still exists. */
  readonly entryId?: number;
  /** When the entry went (evicted, expired, deleted, abandoned), ISO 8601. */
  readonly at?: string;
  /** For `no-such-key`: the stored keys closest by common prefix, to spot typos. */
  readonly nearestKeys?: readonly string[];
  /**
   * What the explanation rests on: `store` (the mock looked at its entries, the default) or `traffic`
   * (the recording proxy, which cannot see the upstream's store, only the calls that went through it).
   */
  readonly basis?: 'store' | 'traffic';
}

/** One request, as the journal keeps it. Never holds a token or a SAS signature. */
export interface TrafficEvent {
  /** Increasing; continues after a restart when a traffic log is kept. */
  readonly id: number;
  /** ISO 8601 (real time of the response). */
  readonly time: string;
  /** RPC name, blob operation, REST or admin operation. */
  readonly op: string;
  readonly surface: SurfaceKind;
  readonly client: ClientKind;
  /** The User-Agent, shortened to 160 characters. */
  readonly userAgent?: string;
  readonly method: string;
  /** Path and query, with `sig=` redacted. */
  readonly url: string;
  readonly repositoryId?: string;
  /** `owner/repo` when registered. */
  readonly repository?: string;
  /** Scopes searched, in order (lookups), or the scope written (Create/Finalize). */
  readonly scopes?: readonly string[];
  /** Scope of the entry hit or written. */
  readonly scope?: string;
  readonly key?: string;
  readonly restoreKeys?: readonly string[];
  readonly version?: string;
  readonly outcome: Outcome;
  /** `exact`, `prefix`, `restore-exact`, `restore-prefix` (lookups). */
  readonly match?: string;
  /** Why it missed (lookups) or what went wrong (errors), in one line. */
  readonly reason?: string;
  readonly explanation?: MissExplanation;
  readonly entryId?: number;
  readonly matchedKey?: string;
  /** Payload bytes received (uploads) or sent (downloads). */
  readonly bytes?: number;
  readonly durationMs: number;
  readonly status: number;
  /** Twirp / Azure / REST error code. */
  readonly errorCode?: string;
  /** Ids of the fault rules that fired. */
  readonly fault?: string;
  /** Entries a Finalize evicted to fit the quota. */
  readonly evicted?: number;
  /** Recorded by the proxy: the upstream service's origin (`https://host`), which gave this answer. */
  readonly upstream?: string;
}

/** Filters of `GET /_admin/traffic`; every field given must match. */
export interface TrafficFilter {
  readonly keyPrefix?: string;
  readonly op?: string;
  readonly outcome?: string;
  readonly client?: string;
  /** Events about this entry (its lookups, uploads, downloads). */
  readonly entryId?: number;
  /** Events with `id` greater than this. */
  readonly afterId?: number;
  /** Events at or after this Unix ms. */
  readonly since?: number;
  /** At most this many (the newest), oldest first. */
  readonly limit?: number;
}
