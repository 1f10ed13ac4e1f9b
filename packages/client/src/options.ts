import type { Dispatcher } from 'undici';
import type { CompressionMethod } from './archive/version.js';
import type { TransferProgress } from './blob/progress.js';
import { ValidationError } from './errors.js';
import { DEFAULT_RETRY_OPTIONS, type RetryOptions } from './http/policy.js';
import type { ExchangeEvent } from './http/trace.js';
import type { TwirpEncoding } from './twirp/transport.js';

const MiB = 1024 * 1024;

/** `ACTIONS_CACHE_MODE`: `none` skips everything, `read` skips saves, `write`/`write-only`… see below. */
export type CacheMode = 'none' | 'read' | 'write' | 'write-only';

/** Library logging seam; the library never prints. */
export interface Logger {
  debug?(message: string): void;
  info?(message: string): void;
  warn?(message: string): void;
}

/** Options of {@link createCacheClient}. Only `baseUrl` and `token` are required. */
export interface CacheClientOptions {
  /** Cache service base URL (`ACTIONS_RESULTS_URL`); a path prefix is kept. Required. */
  baseUrl: string | URL;
  /** Runtime token (`ACTIONS_RUNTIME_TOKEN`), sent as `Authorization: Bearer`. Required. */
  token: string;
  /** Twirp body encoding. Default `'json'`. */
  encoding?: TwirpEncoding;
  /** Base undici dispatcher (proxy agent, MockAgent…). Default: an `Agent` created and closed by the client. */
  dispatcher?: Dispatcher;
  /** Idle timeout per attempt for connect, response headers and each body chunk. Default `60_000` ms. */
  timeoutMs?: number;
  /** Retry policy overrides. Defaults: 5 attempts, 250 ms base, 10 s cap, wait ≤ 60 s for a 429. */
  retry?: Partial<RetryOptions>;
  /** Block size of staged uploads. Default 64 MiB (as `@actions/cache`). */
  blockSizeBytes?: number;
  /** Put Block requests in flight (file blocks are streamed from disk, so this costs no memory). Default `16`. */
  uploadConcurrency?: number;
  /** Uploads up to this size are one Put Blob. Default 128 MiB. */
  maxSingleShotBytes?: number;
  /** Memory cap of uploads from streams of unknown length. Default 128 MiB. */
  maxBufferBytes?: number;
  /** Size of one ranged GET. Default 16 MiB. */
  downloadRangeBytes?: number;
  /** Ranged GETs in flight. Default `8`. */
  downloadConcurrency?: number;
  /**
   * Downloads to a file start as one GET of the whole blob and split into `downloadConcurrency` ranged
   * GETs while that connection runs below this rate (object stores cap each connection; on a fast link
   * one stream is fastest). `0` = ranged GETs from the start. Default 100 MiB/s.
   */
  downloadSplitBelowBytesPerSecond?: number;
  /** `ACTIONS_CACHE_MODE` gate (restores skipped for `none`/`write-only`, saves for `none`/`read`). Default: none. */
  cacheMode?: CacheMode | undefined;
  /** Where temporary archives go. Default `os.tmpdir()`. */
  tempDirectory?: string;
  /** Directory archive entries are relative to (`GITHUB_WORKSPACE`). Default `process.cwd()`. */
  workingDirectory?: string;
  /** Archive compression; `'auto'` = zstd-without-long if a `zstd` binary answers, else gzip. Default `'auto'`. */
  compression?: 'auto' | CompressionMethod;
  /** Default `gha-cache/<version>`. */
  userAgent?: string;
  /** Transfer progress (upload/download bytes). */
  onProgress?: (progress: TransferProgress) => void;
  /** One event per HTTP exchange (all attempts), e.g. for an NDJSON trace. */
  onExchange?: (event: ExchangeEvent) => void;
  logger?: Logger;
  /** Aborts every operation of the client. */
  signal?: AbortSignal;
}

export interface ResolvedCacheClientOptions {
  baseUrl: URL;
  token: string;
  encoding: TwirpEncoding;
  dispatcher: Dispatcher | undefined;
  timeoutMs: number;
  retry: RetryOptions;
  blockSizeBytes: number;
  uploadConcurrency: number;
  maxSingleShotBytes: number;
  maxBufferBytes: number;
  downloadRangeBytes: number;
  downloadConcurrency: number;
  downloadSplitBelowBytesPerSecond: number;
  cacheMode: CacheMode | undefined;
  tempDirectory: string | undefined;
  workingDirectory: string | undefined;
  compression: 'auto' | CompressionMethod;
  userAgent: string;
  onProgress: ((progress: TransferProgress) => void) | undefined;
  onExchange: ((event: ExchangeEvent) => void) | undefined;
  logger: Logger;
  signal: AbortSignal | undefined;
}

export const CLIENT_VERSION = '0.1.0';

export const DEFAULTS = Object.freeze({
  encoding: 'json' as TwirpEncoding,
  timeoutMs: 60_000,
  blockSizeBytes: 64 * MiB,
  uploadConcurrency: 16,
  maxSingleShotBytes: 128 * MiB,
  maxBufferBytes: 128 * MiB,
  downloadRangeBytes: 16 * MiB,
  downloadConcurrency: 8,
  downloadSplitBelowBytesPerSecond: 100 * MiB,
  compression: 'auto' as const,
  userAgent: `gha-cache/${CLIENT_VERSION}`,
});

function positiveInt(name: string, value: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new ValidationError(`Option ${name} must be an integer in [1, ${max}], got ${value}`);
  }
  return value;
}

function nonNegativeInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ValidationError(`Option ${name} must be an integer ≥ 0, got ${value}`);
  }
  return value;
}

/** Validates once and returns the complete option shape; throws {@link ValidationError} on bad input. */
export function validateCacheClientOptions(options: CacheClientOptions): ResolvedCacheClientOptions {
  if (!options.baseUrl) throw new ValidationError('Option baseUrl is required (ACTIONS_RESULTS_URL)');
  let baseUrl: URL;
  try {
    baseUrl = new URL(options.baseUrl);
  } catch {
    throw new ValidationError(`Option baseUrl is not a URL: ${String(options.baseUrl)}`);
  }
  if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') {
    throw new ValidationError(`Option baseUrl must be http(s), got ${baseUrl.protocol}`);
  }
  if (!options.token) throw new ValidationError('Option token is required (ACTIONS_RUNTIME_TOKEN)');
  const encoding = options.encoding ?? DEFAULTS.encoding;
  if (encoding !== 'json' && encoding !== 'protobuf') {
    throw new ValidationError(`Option encoding must be 'json' or 'protobuf', got ${String(encoding)}`);
  }
  const retry: RetryOptions = { ...DEFAULT_RETRY_OPTIONS, ...options.retry };
  positiveInt('retry.maxAttempts', retry.maxAttempts, 100);
  const blockSizeBytes = positiveInt(
    'blockSizeBytes',
    options.blockSizeBytes ?? DEFAULTS.blockSizeBytes,
    4000 * MiB,
  );
  const maxBufferBytes = positiveInt('maxBufferBytes', options.maxBufferBytes ?? DEFAULTS.maxBufferBytes);
  if (maxBufferBytes < 4 * MiB) throw new ValidationError('Option maxBufferBytes must be at least 4 MiB');
  const compression = options.compression ?? DEFAULTS.compression;
  if (!['auto', 'gzip', 'zstd', 'zstd-without-long'].includes(compression)) {
    throw new ValidationError(`Option compression is invalid: ${compression}`);
  }
  if (
    options.cacheMode !== undefined &&
    !['none', 'read', 'write', 'write-only'].includes(options.cacheMode)
  ) {
    throw new ValidationError(`Option cacheMode is invalid: ${String(options.cacheMode)}`);
  }
  return {
    baseUrl,
    token: options.token,
    encoding,
    dispatcher: options.dispatcher,
    timeoutMs: positiveInt('timeoutMs', options.timeoutMs ?? DEFAULTS.timeoutMs),
    retry,
    blockSizeBytes,
    uploadConcurrency: positiveInt(
      'uploadConcurrency',
      options.uploadConcurrency ?? DEFAULTS.uploadConcurrency,
      64,
    ),
    maxSingleShotBytes: positiveInt(
      'maxSingleShotBytes',
      options.maxSingleShotBytes ?? DEFAULTS.maxSingleShotBytes,
      5000 * MiB,
    ),
    maxBufferBytes,
    downloadRangeBytes: positiveInt(
      'downloadRangeBytes',
      options.downloadRangeBytes ?? DEFAULTS.downloadRangeBytes,
    ),
    downloadConcurrency: positiveInt(
      'downloadConcurrency',
      options.downloadConcurrency ?? DEFAULTS.downloadConcurrency,
      64,
    ),
    downloadSplitBelowBytesPerSecond: nonNegativeInt(
      'downloadSplitBelowBytesPerSecond',
      options.downloadSplitBelowBytesPerSecond ?? DEFAULTS.downloadSplitBelowBytesPerSecond,
    ),
    cacheMode: options.cacheMode,
    tempDirectory: options.tempDirectory,
    workingDirectory: options.workingDirectory,
    compression,
    userAgent: options.userAgent ?? DEFAULTS.userAgent,
    onProgress: options.onProgress,
    onExchange: options.onExchange,
    logger: options.logger ?? {},
    signal: options.signal,
  };
}

/** The environment a GitHub Actions step sees, as client options. Only this helper and the CLI read env. */
export interface EnvOptions {
  baseUrl?: string;
  token?: string;
  cacheMode?: CacheMode;
  workingDirectory?: string;
  tempDirectory?: string;
}

/**
 * Reads `ACTIONS_RESULTS_URL`, `ACTIONS_RUNTIME_TOKEN`, `ACTIONS_CACHE_MODE` (unknown values ignored, as
 * `@actions/cache` does), `GITHUB_WORKSPACE` and `RUNNER_TEMP`.
 */
export function fromEnv(env: Record<string, string | undefined> = process.env): EnvOptions {
  const out: EnvOptions = {};
  if (env.ACTIONS_RESULTS_URL) out.baseUrl = env.ACTIONS_RESULTS_URL;
  if (env.ACTIONS_RUNTIME_TOKEN) out.token = env.ACTIONS_RUNTIME_TOKEN;
  const mode = env.ACTIONS_CACHE_MODE?.trim().toLowerCase();
  if (mode === 'none' || mode === 'read' || mode === 'write' || mode === 'write-only') out.cacheMode = mode;
  if (env.GITHUB_WORKSPACE) out.workingDirectory = env.GITHUB_WORKSPACE;
  if (env.RUNNER_TEMP) out.tempDirectory = env.RUNNER_TEMP;
  return out;
}
