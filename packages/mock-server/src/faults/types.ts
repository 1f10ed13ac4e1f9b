/**
 * Fault rules: which requests they match and what they do to them. Plain JSON-serialisable data, the
 * same shape for `AppOptions.faults`, `app.mock.faults.add()`, the admin API and `serve --fault '{…}'`.
 */

/** The Twirp RPCs a rule can match. */
export const FAULT_RPCS = [
  'CreateCacheEntry',
  'FinalizeCacheEntryUpload',
  'GetCacheEntryDownloadURL',
] as const;
/** The blob operations a rule can match (`HeadBlob` = Get Blob Properties). */
export const FAULT_BLOB_OPS = ['PutBlob', 'PutBlock', 'PutBlockList', 'GetBlob', 'HeadBlob'] as const;
export const FAULT_OPS = [...FAULT_RPCS, ...FAULT_BLOB_OPS] as const;

export type FaultRpc = (typeof FAULT_RPCS)[number];
export type FaultBlobOp = (typeof FAULT_BLOB_OPS)[number];
export type FaultOp = FaultRpc | FaultBlobOp;

/** Which body a bandwidth or connection fault applies to: the upload (`request`) or the answer. */
export type FaultDirection = 'request' | 'response';

/**
 * Answer with an error instead of running the request. Twirp RPCs get `{"code","msg"}` JSON (code from
 * the status table of docs/protocol.md §3.4 unless given); blob operations get Azure XML with `x-ms-error-code`.
 */
export interface StatusFaultAction {
  readonly type: 'status';
  /** HTTP status, 400–599. */
  readonly status: number;
  /** Twirp code (`unavailable`) or Azure code (`ServerBusy`). Default: derived from `status`. */
  readonly code?: string;
  /** Error text (Twirp `msg`, Azure `<Message>`). Default: a standard text for the code. */
  readonly message?: string;
  /** `Retry-After` in whole seconds. Default 1 on a 429, else none. */
  readonly retryAfterSeconds?: number;
  /** Blob only: `x-ms-retry-after-ms`. Default 50 on a blob 429/503 (azcore waits ≥ 10 s without it). */
  readonly retryAfterMs?: number;
}

/** Waits before the request is handled (time to first byte). */
export interface LatencyFaultAction {
  readonly type: 'latency';
  readonly ms: number;
}

/** Limits a body to this many bytes per second. */
export interface ThrottleFaultAction {
  readonly type: 'throttle';
  readonly bytesPerSecond: number;
  /** Default `request` when every matched op is an upload (PutBlob/PutBlock/PutBlockList), else `response`. */
  readonly direction?: FaultDirection;
}

/** Resets the connection (RST) once this many body bytes have passed. */
export interface DropFaultAction {
  readonly type: 'drop';
  readonly afterBytes: number;
  /** As for `throttle`. */
  readonly direction?: FaultDirection;
}

/** Sends the full `Content-Length` but only this many body bytes, then closes the connection cleanly (FIN). */
export interface TruncateFaultAction {
  readonly type: 'truncate';
  readonly afterBytes: number;
}

/** Answers with a body that is not JSON, as a proxy in front of the service would. */
export interface NonJsonFaultAction {
  readonly type: 'non-json';
  /** Default 502. */
  readonly status?: number;
  /** Default `text/html`. */
  readonly contentType?: string;
  /** Default an nginx-style "502 Bad Gateway" page. */
  readonly body?: string;
}

/** Blob only: a request whose SAS is still valid is answered as if it had expired (403 `AuthenticationFailed`). */
export interface ExpireUrlFaultAction {
  readonly type: 'expire-url';
}

export type FaultAction =
  | StatusFaultAction
  | LatencyFaultAction
  | ThrottleFaultAction
  | DropFaultAction
  | TruncateFaultAction
  | NonJsonFaultAction
  | ExpireUrlFaultAction;

export type FaultActionType = FaultAction['type'];

/**
 * A rule as given. Matching: the request's op is in `op` (default: every op the action applies to) and
 * its cache key matches `key`; such requests are the rule's *matches*, counted from 1. The rule fires
 * on a match when the counters allow (`after`, `nth`, `times`) and then the `probability` draw says yes.
 */
export interface FaultRuleInput {
  /** Unique id. Default `f<n>`. */
  readonly id?: string;
  /** One op or several. Default: every op the action applies to. */
  readonly op?: FaultOp | readonly FaultOp[];
  /**
   * Cache key pattern: a glob (`*` any run of characters, `?` one) matching the whole key, or a regular
   * expression written `/…/flags`. RPCs match the key in the request; blob operations the key of the entry
   * the blob belongs to. Default: any request, with or without a key.
   */
  readonly key?: string;
  /** Let the first `after` matches through. Default 0. */
  readonly after?: number;
  /** Fire on the `nth` match only (1-based); excludes `after` and `times`. */
  readonly nth?: number;
  /** Fire at most this many times. Default: unlimited. */
  readonly times?: number;
  /** Chance of firing on a match that the counters allow, 0–1. Default 1. */
  readonly probability?: number;
  /** Seed of the rule's own PRNG (mulberry32) for `probability`: same seed, same matches → same firings. Default 1. */
  readonly seed?: number;
  readonly action: FaultAction;
}

/** A rule as stored: the input with its defaults applied, its `id`, and its counters. */
export interface FaultRule {
  readonly id: string;
  /** The ops the rule applies to (never empty). */
  readonly op: readonly FaultOp[];
  readonly key?: string;
  readonly after: number;
  readonly nth?: number;
  readonly times?: number;
  readonly probability: number;
  readonly seed: number;
  readonly action: FaultAction;
  /** Requests that matched op and key so far. */
  readonly matched: number;
  /** Times the rule acted. */
  readonly fired: number;
}

/** `app.mock.faults`: the run-time registry of fault rules. */
export interface FaultRegistry {
  /** Validates and appends a rule (rules are checked in the order they were added). Throws {@link FaultSpecError}. */
  add(rule: FaultRuleInput): FaultRule;
  /** Removes a rule; false when no rule has this id. */
  remove(id: string): boolean;
  /** Snapshots of every rule with its counters, in order. */
  list(): FaultRule[];
  /** Removes every rule. */
  clear(): void;
}

export type FaultSpecErrorCode = 'ERR_FAULT_SPEC' | 'ERR_FAULT_DUPLICATE_ID';

/** A fault rule or `--fault` spec that cannot be used. `code` is stable; the message says what is wrong. */
export class FaultSpecError extends Error {
  override readonly name = 'FaultSpecError';
  constructor(
    readonly code: FaultSpecErrorCode,
    message: string,
  ) {
    super(message);
  }
}
