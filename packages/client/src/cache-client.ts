/**
 * `createCacheClient(options)`: save/restore (archives compatible with `@actions/cache`), raw blobs, and
 * lookups, composed from the Twirp service client and the blob transfer code over one HTTP stack.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { detectCompression } from './archive/compression.js';
import { resolvePaths } from './archive/paths.js';
import { createArchive, extractArchive } from './archive/tar.js';
import { type CompressionMethod, cacheVersion, RAW_BLOB_VERSION } from './archive/version.js';
import { type BlobDestination, downloadBlob } from './blob/download.js';
import { type BlobSource, uploadBlob } from './blob/upload.js';
import { toCacheError, ValidationError } from './errors.js';
import { createHttpDispatcher } from './http/dispatcher.js';
import { checkKey, checkKeys, checkPaths, isExactKeyMatch } from './keys.js';
import {
  type CacheClientOptions,
  type ResolvedCacheClientOptions,
  validateCacheClientOptions,
} from './options.js';
import { createCacheService } from './twirp/cache-service.js';
import { createTwirpTransport } from './twirp/transport.js';

/** Outcome of a save or a raw-blob put. An existing entry is a value, not an error. */
export type SaveResult =
  | { saved: true; key: string; version: string; entryId: string; sizeBytes: number }
  | {
      saved: false;
      key: string;
      version: string;
      /**
       * `already_exists`: the identity is reserved or committed (maybe by us, when `retried`);
       * `cache_mode`: skipped by `ACTIONS_CACHE_MODE`.
       */
      reason: 'already_exists' | 'cache_mode';
      retried?: boolean;
    };

/** Outcome of a restore, a raw-blob get, or a lookup. A miss is `{ hit: false }`. */
export type RestoreResult =
  | { hit: false; version: string; reason: 'miss' | 'cache_mode' }
  | {
      hit: true;
      version: string;
      matchedKey: string;
      /** `matchedKey` equals the primary key (case-insensitively, like `actions/cache`'s `cache-hit`). */
      exactMatch: boolean;
      /** Bytes downloaded; undefined for lookups. */
      sizeBytes?: number;
    };

/** A lookup that hit also returns the signed download URL (valid for minutes). */
export type LookupResult = RestoreResult & { url?: string };

export interface ArchiveOptions {
  /** As in `@actions/cache`: do not mark archives made on Windows as Windows-only. Default `false`. */
  enableCrossOsArchive?: boolean;
}

export interface RestoreOptions extends ArchiveOptions {
  /** Only look the entry up; download nothing. Default `false`. */
  lookupOnly?: boolean;
}

export interface BlobOptions {
  /** Entry version. Default {@link RAW_BLOB_VERSION}. */
  version?: string;
}

export interface GetBlobOptions extends BlobOptions {
  /** Where the bytes go: a file path or a writable stream. */
  destination: BlobDestination;
  /** Fallback keys, tried in order after the primary key (exact, then prefix). */
  restoreKeys?: readonly string[];
}

export interface LookupOptions extends BlobOptions {
  restoreKeys?: readonly string[];
}

export interface CacheClient {
  readonly options: ResolvedCacheClientOptions;
  /** Archive `paths` (patterns as in `@actions/cache`) and store them under `key`. */
  save(paths: readonly string[], key: string, options?: ArchiveOptions): Promise<SaveResult>;
  /** Find the entry for `primaryKey` (then `restoreKeys`) and extract it into the working directory. */
  restore(
    paths: readonly string[],
    primaryKey: string,
    restoreKeys?: readonly string[],
    options?: RestoreOptions,
  ): Promise<RestoreResult>;
  /** Store raw bytes under `key`. */
  putBlob(key: string, source: BlobSource, options?: BlobOptions): Promise<SaveResult>;
  /** Fetch raw bytes stored under `key` (or a restore key). */
  getBlob(key: string, options: GetBlobOptions): Promise<RestoreResult>;
  /** Look an entry up without downloading it. */
  lookup(key: string, options?: LookupOptions): Promise<LookupResult>;
  /** The `version` an archive of `paths` gets (depends on the compression rule). */
  archiveVersion(paths: readonly string[], options?: ArchiveOptions): Promise<string>;
  /** Closes the HTTP agent the client created (a caller-supplied dispatcher is left open). */
  close(): Promise<void>;
}

export function createCacheClient(options: CacheClientOptions): CacheClient {
  const opts = validateCacheClientOptions(options);
  const http = createHttpDispatcher({
    ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
    timeoutMs: opts.timeoutMs,
    connectionsPerOrigin: Math.max(opts.uploadConcurrency, opts.downloadConcurrency) + 2,
    retry: opts.retry,
    ...(opts.onExchange ? { onExchange: opts.onExchange } : {}),
  });
  const service = createCacheService(
    createTwirpTransport({
      baseUrl: opts.baseUrl,
      token: opts.token,
      encoding: opts.encoding,
      dispatcher: http.dispatcher,
      timeoutMs: opts.timeoutMs,
      userAgent: opts.userAgent,
      ...(opts.signal ? { signal: opts.signal } : {}),
    }),
  );
  const log = opts.logger;
  const readSkipped = opts.cacheMode === 'none' || opts.cacheMode === 'write-only';
  const writeSkipped = opts.cacheMode === 'none' || opts.cacheMode === 'read';

  const compression = (): Promise<CompressionMethod> =>
    opts.compression === 'auto' ? detectCompression() : Promise.resolve(opts.compression);

  const uploadOptions = () => ({
    dispatcher: http.dispatcher,
    blockSizeBytes: opts.blockSizeBytes,
    concurrency: opts.uploadConcurrency,
    maxSingleShotBytes: opts.maxSingleShotBytes,
    maxBufferBytes: opts.maxBufferBytes,
    timeoutMs: opts.timeoutMs,
    onProgress: opts.onProgress,
    signal: opts.signal,
  });

  /** Create → upload → Finalize. */
  async function store(key: string, version: string, source: BlobSource): Promise<SaveResult> {
    const created = await service.createCacheEntry({ key, version });
    if (created.status === 'exists') {
      log.info?.(`Cache entry ${key} already exists (another job may be creating it); not saving.`);
      return { saved: false, key, version, reason: 'already_exists', retried: created.retried };
    }
    const { sizeBytes } = await uploadBlob(created.uploadUrl, source, uploadOptions());
    const { entryId } = await service.finalizeCacheEntryUpload({ key, version, sizeBytes });
    log.info?.(`Saved ${key} (${sizeBytes} bytes, entry ${entryId}).`);
    return { saved: true, key, version, entryId, sizeBytes };
  }

  /** Get → download (refreshing an expired URL once, for the same matched key only). */
  async function fetchEntry(
    key: string,
    restoreKeys: readonly string[],
    version: string,
    destination: BlobDestination | undefined,
  ): Promise<LookupResult> {
    const found = await service.getCacheEntryDownloadUrl({ key, restoreKeys, version });
    if (!found) return { hit: false, version, reason: 'miss' };
    const exactMatch = isExactKeyMatch(key, found.matchedKey);
    if (!destination) return { hit: true, version, matchedKey: found.matchedKey, exactMatch, url: found.url };
    const { sizeBytes } = await downloadBlob(found.url, destination, {
      dispatcher: http.dispatcher,
      rangeSizeBytes: opts.downloadRangeBytes,
      concurrency: opts.downloadConcurrency,
      splitBelowBytesPerSecond: opts.downloadSplitBelowBytesPerSecond,
      timeoutMs: opts.timeoutMs,
      onProgress: opts.onProgress,
      signal: opts.signal,
      refreshUrl: async () => {
        log.debug?.(`Download URL for ${found.matchedKey} refused; asking the service for a fresh one.`);
        const again = await service.getCacheEntryDownloadUrl({ key, restoreKeys, version });
        return again && again.matchedKey === found.matchedKey ? again.url : undefined;
      },
    });
    return { hit: true, version, matchedKey: found.matchedKey, exactMatch, sizeBytes };
  }

  async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(opts.tempDirectory ?? tmpdir(), 'gha-cache-'));
    try {
      return await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  const guard = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw toCacheError(err);
    }
  };

  return {
    options: opts,

    archiveVersion: async (paths, archiveOptions = {}) =>
      cacheVersion(paths, await compression(), {
        ...(archiveOptions.enableCrossOsArchive !== undefined
          ? { enableCrossOsArchive: archiveOptions.enableCrossOsArchive }
          : {}),
      }),

    save: (paths, key, archiveOptions = {}) =>
      guard(async () => {
        checkPaths(paths);
        checkKey(key);
        const method = await compression();
        const version = cacheVersion(paths, method, archiveOptions);
        if (writeSkipped) return { saved: false, key, version, reason: 'cache_mode' };
        const workingDirectory = opts.workingDirectory ?? process.cwd();
        const files = await resolvePaths(paths, { workingDirectory });
        if (files.length === 0) {
          throw new ValidationError(
            'Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved.',
          );
        }
        return withTempDir(async (dir) => {
          const archive = await createArchive(dir, files, {
            workingDirectory,
            compression: method,
            signal: opts.signal,
          });
          log.debug?.(`Archive ${archive}: ${(await stat(archive)).size} bytes, ${files.length} paths.`);
          return store(key, version, { path: archive });
        });
      }),

    restore: (paths, primaryKey, restoreKeys = [], restoreOptions = {}) =>
      guard(async () => {
        checkPaths(paths);
        checkKeys(primaryKey, restoreKeys);
        const method = await compression();
        const version = cacheVersion(paths, method, restoreOptions);
        if (readSkipped) return { hit: false, version, reason: 'cache_mode' };
        if (restoreOptions.lookupOnly) {
          const { url: _url, ...result } = await fetchEntry(primaryKey, restoreKeys, version, undefined);
          return result;
        }
        return withTempDir(async (dir) => {
          const archive = path.join(dir, method === 'gzip' ? 'cache.tgz' : 'cache.tzst');
          const result = await fetchEntry(primaryKey, restoreKeys, version, { path: archive });
          if (!result.hit) return result;
          await extractArchive(archive, {
            workingDirectory: opts.workingDirectory ?? process.cwd(),
            compression: method,
            signal: opts.signal,
          });
          const { url: _url, ...rest } = result;
          return rest;
        });
      }),

    putBlob: (key, source, blobOptions = {}) =>
      guard(async () => {
        checkKey(key);
        const version = blobOptions.version ?? RAW_BLOB_VERSION;
        if (writeSkipped) return { saved: false, key, version, reason: 'cache_mode' };
        return store(key, version, source);
      }),

    getBlob: (key, getOptions) =>
      guard(async () => {
        const restoreKeys = getOptions.restoreKeys ?? [];
        checkKeys(key, restoreKeys);
        const version = getOptions.version ?? RAW_BLOB_VERSION;
        if (readSkipped) return { hit: false, version, reason: 'cache_mode' };
        return fetchEntry(key, restoreKeys, version, getOptions.destination);
      }),

    lookup: (key, lookupOptions = {}) =>
      guard(async () => {
        const restoreKeys = lookupOptions.restoreKeys ?? [];
        checkKeys(key, restoreKeys);
        const version = lookupOptions.version ?? RAW_BLOB_VERSION;
        if (readSkipped) return { hit: false, version, reason: 'cache_mode' };
        return fetchEntry(key, restoreKeys, version, undefined);
      }),

    close: () => http.close(),
  };
}
