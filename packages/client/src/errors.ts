/**
 * Typed errors of @gha-cache/client. Every error thrown by the library is a {@link GhaCacheError} with a
 * stable `code`; subclasses carry the wire facts (Twirp code and HTTP status, Azure error code, ...).
 * A cache miss and an already existing entry are values, never errors.
 */
import { errnoOf } from './errno.js';

/** Stable error codes. Match on these, never on message text. */
export type ErrorCode =
  | 'ERR_VALIDATION'
  | 'ERR_TWIRP'
  | 'ERR_RATE_LIMITED'
  | 'ERR_READ_DENIED'
  | 'ERR_WRITE_DENIED'
  | 'ERR_USAGE_LIMIT'
  | 'ERR_RESERVE_FAILED'
  | 'ERR_FINALIZE_FAILED'
  | 'ERR_BAD_RESPONSE'
  | 'ERR_BLOB'
  | 'ERR_NETWORK'
  | 'ERR_TIMEOUT'
  | 'ERR_INTEGRITY'
  | 'ERR_ARCHIVE'
  | 'ERR_ABORTED'
  | 'ERR_REST'
  | 'ERR_NOT_FOUND'
  | 'ERR_INTERNAL';

/** The Twirp error codes of the Twirp v7 spec (`dataloss` also accepted as `data_loss`). */
export const TWIRP_CODES = [
  'canceled',
  'unknown',
  'invalid_argument',
  'malformed',
  'deadline_exceeded',
  'not_found',
  'bad_route',
  'already_exists',
  'permission_denied',
  'unauthenticated',
  'resource_exhausted',
  'failed_precondition',
  'aborted',
  'out_of_range',
  'unimplemented',
  'internal',
  'unavailable',
  'dataloss',
] as const;
export type TwirpCode = (typeof TWIRP_CODES)[number];

/** Base class of every error thrown by the library. */
export class GhaCacheError extends Error {
  override name = 'GhaCacheError';
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

/** Invalid input caught before any request: key rules (same texts as `@actions/cache`), paths, options. */
export class ValidationError extends GhaCacheError {
  override name = 'ValidationError';
  constructor(message: string) {
    super('ERR_VALIDATION', message);
  }
}

export interface TwirpErrorInit {
  /** The RPC that failed, e.g. `CreateCacheEntry`. */
  method: string;
  twirpCode: TwirpCode;
  msg: string;
  meta: Record<string, string>;
  httpStatus: number;
  cause?: unknown;
}

/** A Twirp error response (non-200), or a non-Twirp error body mapped by HTTP status. */
export class TwirpError extends GhaCacheError {
  override name = 'TwirpError';
  readonly method: string;
  readonly twirpCode: TwirpCode;
  readonly msg: string;
  readonly meta: Record<string, string>;
  readonly httpStatus: number;
  constructor(init: TwirpErrorInit, code: ErrorCode = 'ERR_TWIRP') {
    super(code, `${init.method}: ${init.twirpCode} (HTTP ${init.httpStatus}): ${init.msg}`, {
      cause: init.cause,
    });
    this.method = init.method;
    this.twirpCode = init.twirpCode;
    this.msg = init.msg;
    this.meta = init.meta;
    this.httpStatus = init.httpStatus;
  }
}

/**
 * HTTP 429 / `resource_exhausted` that the retry policy did not wait out: `Retry-After` was longer than
 * the configured cap, or the attempts ran out. `resetAt` is when the service said to come back.
 */
export class RateLimitError extends TwirpError {
  override name = 'RateLimitError';
  /** Delay the service asked for, in ms; undefined when it sent no `Retry-After`. */
  readonly retryAfterMs: number | undefined;
  /** `now + retryAfterMs`; undefined when unknown. */
  readonly resetAt: Date | undefined;
  constructor(init: TwirpErrorInit & { retryAfterMs: number | undefined; now?: number }) {
    super(init, 'ERR_RATE_LIMITED');
    this.retryAfterMs = init.retryAfterMs;
    this.resetAt =
      init.retryAfterMs === undefined ? undefined : new Date((init.now ?? Date.now()) + init.retryAfterMs);
  }
}

/** `permission_denied` with `cache read denied:`: the token has no readable scope. */
export class ReadDeniedError extends TwirpError {
  override name = 'ReadDeniedError';
  constructor(init: TwirpErrorInit) {
    super(init, 'ERR_READ_DENIED');
  }
}

/** A Twirp error whose message contains `insufficient usage` (hard quota; never retried). */
export class UsageLimitError extends TwirpError {
  override name = 'UsageLimitError';
  constructor(init: TwirpErrorInit) {
    super(init, 'ERR_USAGE_LIMIT');
  }
}

/** Create/Finalize answered `ok:false` with `cache write denied:`: the token has no writable scope. */
export class WriteDeniedError extends GhaCacheError {
  override name = 'WriteDeniedError';
  /** The service's `message`. */
  readonly serviceMessage: string;
  constructor(method: string, serviceMessage: string) {
    super('ERR_WRITE_DENIED', `${method}: ${serviceMessage}`);
    this.serviceMessage = serviceMessage;
  }
}

/** CreateCacheEntry answered `ok:false` for another reason than a write denial. */
export class ReserveFailedError extends GhaCacheError {
  override name = 'ReserveFailedError';
  readonly serviceMessage: string;
  constructor(serviceMessage: string) {
    super('ERR_RESERVE_FAILED', `CreateCacheEntry: reservation refused: ${serviceMessage || '(no message)'}`);
    this.serviceMessage = serviceMessage;
  }
}

/** FinalizeCacheEntryUpload answered `ok:false` (e.g. size mismatch); the entry was not committed. */
export class FinalizeFailedError extends GhaCacheError {
  override name = 'FinalizeFailedError';
  readonly serviceMessage: string;
  constructor(serviceMessage: string) {
    super(
      'ERR_FINALIZE_FAILED',
      `FinalizeCacheEntryUpload: not committed: ${serviceMessage || '(no message)'}`,
    );
    this.serviceMessage = serviceMessage;
  }
}

/** A response the client cannot understand: non-JSON / undecodable success body, missing URL, ... */
export class BadResponseError extends GhaCacheError {
  override name = 'BadResponseError';
  readonly httpStatus: number;
  readonly contentType: string;
  /** First bytes of the body, for diagnostics. */
  readonly bodySnippet: string;
  constructor(
    message: string,
    init: { httpStatus: number; contentType?: string; body?: string; cause?: unknown },
  ) {
    super('ERR_BAD_RESPONSE', message, { cause: init.cause });
    this.httpStatus = init.httpStatus;
    this.contentType = init.contentType ?? '';
    this.bodySnippet = (init.body ?? '').slice(0, 200);
  }
}

/** A blob-store (Azure Blob API) request failed with a non-success status. */
export class BlobError extends GhaCacheError {
  override name = 'BlobError';
  readonly httpStatus: number;
  /** `x-ms-error-code` header or `<Code>` of the XML body; '' when neither exists. */
  readonly azureCode: string;
  readonly operation: string;
  /** URL with the SAS signature redacted. */
  readonly url: string;
  constructor(init: {
    operation: string;
    url: string;
    httpStatus: number;
    azureCode: string;
    message?: string;
  }) {
    super(
      'ERR_BLOB',
      `${init.operation} failed: HTTP ${init.httpStatus}${init.azureCode ? ` ${init.azureCode}` : ''}${
        init.message ? `: ${init.message}` : ''
      } (${init.url})`,
    );
    this.httpStatus = init.httpStatus;
    this.azureCode = init.azureCode;
    this.operation = init.operation;
    this.url = init.url;
  }
}

/** Connection-level failure (reset, refused, DNS, ...) that survived the retry policy. */
export class NetworkError extends GhaCacheError {
  override name = 'NetworkError';
  /** The system / undici error code, e.g. `ECONNRESET`, `UND_ERR_SOCKET`. */
  readonly errno: string;
  constructor(message: string, errno: string, cause?: unknown) {
    super('ERR_NETWORK', message, { cause });
    this.errno = errno;
  }
}

/** A request timed out (connect, headers or body idle timeout) on every attempt. */
export class TimeoutError extends GhaCacheError {
  override name = 'TimeoutError';
  constructor(message: string, cause?: unknown) {
    super('ERR_TIMEOUT', message, { cause });
  }
}

/** Transferred bytes do not add up (short range, size differs from the entry, bad Content-Range). */
export class IntegrityError extends GhaCacheError {
  override name = 'IntegrityError';
  readonly expected: number;
  readonly actual: number;
  constructor(message: string, expected: number, actual: number) {
    super('ERR_INTEGRITY', `${message} (expected ${expected}, got ${actual})`);
    this.expected = expected;
    this.actual = actual;
  }
}

/** `tar` or the compressor failed. */
export class ArchiveError extends GhaCacheError {
  override name = 'ArchiveError';
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(
    message: string,
    init: { command: string; exitCode: number | null; stderr: string; cause?: unknown },
  ) {
    super('ERR_ARCHIVE', message, { cause: init.cause });
    this.command = init.command;
    this.exitCode = init.exitCode;
    this.stderr = init.stderr;
  }
}

export interface RestApiErrorInit {
  /** What was asked, e.g. `ListCaches`. */
  operation: string;
  httpStatus: number;
  /** GitHub's `message` ('' when the body is not GitHub's error JSON). */
  serviceMessage: string;
  /** GitHub's `documentation_url` ('' when absent). */
  documentationUrl: string;
  /** `Retry-After` of a 429/403 in ms, when sent. */
  retryAfterMs?: number | undefined;
}

/** The GitHub REST API answered with an error status (after the retry policy). */
export class RestApiError extends GhaCacheError {
  override name = 'RestApiError';
  readonly operation: string;
  readonly httpStatus: number;
  readonly serviceMessage: string;
  readonly documentationUrl: string;
  readonly retryAfterMs: number | undefined;
  constructor(init: RestApiErrorInit, code: ErrorCode = 'ERR_REST') {
    super(code, `${init.operation}: HTTP ${init.httpStatus}: ${init.serviceMessage || '(no message)'}`);
    this.operation = init.operation;
    this.httpStatus = init.httpStatus;
    this.serviceMessage = init.serviceMessage;
    this.documentationUrl = init.documentationUrl;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** HTTP 404 from the REST API: no such repository (or no access to it), or no cache matched. */
export class NotFoundError extends RestApiError {
  override name = 'NotFoundError';
  constructor(init: RestApiErrorInit) {
    super(init, 'ERR_NOT_FOUND');
  }
}

/** The operation was aborted through its `signal`. */
export class AbortedError extends GhaCacheError {
  override name = 'AbortedError';
  constructor(cause?: unknown) {
    super('ERR_ABORTED', 'The operation was aborted', { cause });
  }
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

/** The one funnel turning anything thrown into a typed {@link GhaCacheError}. */
export function toCacheError(err: unknown): GhaCacheError {
  if (err instanceof GhaCacheError) return err;
  if (err instanceof Error) {
    const code = errnoOf(err);
    if (err.name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
      return new AbortedError(err);
    }
    if (code !== undefined && TIMEOUT_CODES.has(code))
      return new TimeoutError(`${err.message} (${code})`, err);
    if (code !== undefined && (/^E[A-Z]+$/.test(code) || code.startsWith('UND_ERR'))) {
      return new NetworkError(`${err.message} (${code})`, code, err);
    }
    return new GhaCacheError('ERR_INTERNAL', err.message, { cause: err });
  }
  return new GhaCacheError('ERR_INTERNAL', String(err));
}
