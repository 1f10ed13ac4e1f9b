import {
  AbortedError,
  BlobError,
  GhaCacheError,
  RateLimitError,
  RestApiError,
  ValidationError,
} from '../errors.js';

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

export function exitCodeFor(err: unknown): number {
  if (err instanceof ValidationError) return EXIT.USAGE;
  if (err instanceof RateLimitError) return EXIT.RATE_LIMITED;
  if ((err instanceof BlobError || err instanceof RestApiError) && err.httpStatus === 429) {
    return EXIT.RATE_LIMITED;
  }
  if (err instanceof AbortedError) return EXIT.INTERRUPTED;
  if (err instanceof GhaCacheError) return EXIT.SERVICE;
  return EXIT.SERVICE;
}
