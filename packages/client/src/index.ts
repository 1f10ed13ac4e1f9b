/**
 * @gha-cache/client — a fast, resumable client for the GitHub Actions Cache service API v2 and its
 * signed-URL blob transfers.
 */

export { archiveFileName, detectCompression } from './archive/compression.js';
export { type ResolvePathsOptions, resolvePaths } from './archive/paths.js';
export { createArchive, extractArchive, type TarOptions } from './archive/tar.js';
export {
  type CacheVersionOptions,
  type CompressionMethod,
  cacheVersion,
  RAW_BLOB_VERSION,
} from './archive/version.js';
export {
  type BlobDestination,
  type DownloadBlobOptions,
  type DownloadResult,
  downloadBlob,
} from './blob/download.js';
export type { TransferProgress } from './blob/progress.js';
export {
  type BlobSource,
  blockId,
  blockListXml,
  type UploadBlobOptions,
  type UploadResult,
  uploadBlob,
} from './blob/upload.js';
export {
  type ArchiveOptions,
  type BlobOptions,
  type CacheClient,
  createCacheClient,
  type GetBlobOptions,
  type LookupOptions,
  type LookupResult,
  type RestoreOptions,
  type RestoreResult,
  type SaveResult,
} from './cache-client.js';
export * from './errors.js';
export { createHttpDispatcher, type HttpDispatcher, type HttpDispatcherOptions } from './http/dispatcher.js';
export type { RequestHints } from './http/hints.js';
export {
  backoffDelayMs,
  DEFAULT_RETRY_OPTIONS,
  parseRetryAfterMs,
  type RetryOptions,
  type RetryRecord,
  replayable,
} from './http/policy.js';
export { redactUrl } from './http/redact.js';
export { createRetryInterceptor, type RetryInterceptorOptions } from './http/retry.js';
export type { ExchangeEvent } from './http/trace.js';
export { checkKey, checkKeys, isExactKeyMatch } from './keys.js';
export {
  type CacheClientOptions,
  type CacheMode,
  CLIENT_VERSION,
  DEFAULTS,
  type EnvOptions,
  fromEnv,
  type Logger,
  type ResolvedCacheClientOptions,
  validateCacheClientOptions,
} from './options.js';
export {
  type ActionsCache,
  type CachePage,
  type CacheSortField,
  type CacheUsage,
  createRestCacheClient,
  DEFAULT_API_URL,
  type ListCachesOptions,
  nextPageOf,
  type RestCacheClient,
  type RestCacheClientOptions,
} from './rest/cache-api.js';
export {
  type CacheService,
  type CreateEntryResult,
  createCacheService,
  type DownloadUrlResult,
} from './twirp/cache-service.js';
export { parseTwirpError, twirpCodeForStatus } from './twirp/errors.js';
export {
  CACHE_SERVICE,
  createTwirpTransport,
  type TwirpEncoding,
  type TwirpTransport,
  type TwirpTransportOptions,
  twirpUrl,
} from './twirp/transport.js';
