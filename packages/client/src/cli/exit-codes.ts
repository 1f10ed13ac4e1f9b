import { type ErrorCode, GhaCacheError } from '../errors.js';

/** Exit codes of the `gha-cache` CLI. */
export const EXIT = Object.freeze({
  /** Hit, saved, already saved, or a restore miss without `--fail-on-miss`. */
  OK: 0,
  /** Cache miss (`get`, `lookup`, `restore --fail-on-miss`); `delete` found nothing to delete. */
  MISS: 1,
  /** Bad arguments, invalid key/paths, missing URL or token. */
  USAGE: 2,
  /** The service, the blob store, the network, tar… failed (incl. read/write denied). */
  SERVICE: 3,
  /** Rate limited: a 429 whose `Retry-After` exceeded the wait cap, or that outlasted the attempts. */
  RATE_LIMITED: 4,
  /** Interrupted (SIGINT/SIGTERM). */
  INTERRUPTED: 130,
});

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A 429 of the blob store or the REST API (the Twirp one is `ERR_RATE_LIMITED` already) is rate limiting. */
const SERVICE_UNLESS_429 = (err: GhaCacheError): ExitCode =>
  (err as { httpStatus?: unknown }).httpStatus === 429 ? EXIT.RATE_LIMITED : EXIT.SERVICE;

/** The exit code of each error code: the one table (a new code does not compile until it is here). */
export const EXIT_CODE_OF: Readonly<Record<ErrorCode, ExitCode | ((err: GhaCacheError) => ExitCode)>> =
  Object.freeze({
    ERR_VALIDATION: EXIT.USAGE,
    ERR_RATE_LIMITED: EXIT.RATE_LIMITED,
    ERR_ABORTED: EXIT.INTERRUPTED,
    ERR_BLOB: SERVICE_UNLESS_429,
    ERR_REST: SERVICE_UNLESS_429,
    ERR_TWIRP: EXIT.SERVICE,
    ERR_READ_DENIED: EXIT.SERVICE,
    ERR_WRITE_DENIED: EXIT.SERVICE,
    ERR_USAGE_LIMIT: EXIT.SERVICE,
    ERR_RESERVE_FAILED: EXIT.SERVICE,
    ERR_FINALIZE_FAILED: EXIT.SERVICE,
    ERR_BAD_RESPONSE: EXIT.SERVICE,
    ERR_NETWORK: EXIT.SERVICE,
    ERR_TIMEOUT: EXIT.SERVICE,
    ERR_INTEGRITY: EXIT.SERVICE,
    ERR_ARCHIVE: EXIT.SERVICE,
    ERR_NOT_FOUND: EXIT.SERVICE,
    ERR_INTERNAL: EXIT.SERVICE,
  });

/** The exit code for an error, from its stable code; anything else thrown is a service error. */
export function exitCodeFor(err: unknown): ExitCode {
  if (!(err instanceof GhaCacheError)) return EXIT.SERVICE;
  const rule = EXIT_CODE_OF[err.code] ?? EXIT.SERVICE;
  return typeof rule === 'function' ? rule(err) : rule;
}
