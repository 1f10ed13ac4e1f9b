import { createHash } from 'node:crypto';

/** Compression methods of `@actions/cache` (`zstd` is the legacy long-mode variant). */
export type CompressionMethod = 'gzip' | 'zstd-without-long' | 'zstd';

const VERSION_SALT = '1.0';

export interface CacheVersionOptions {
  /** Do not add `windows-only` on Windows. Default `false`. */
  enableCrossOsArchive?: boolean;
  /** Platform the archive is made for. Default `process.platform`. */
  platform?: NodeJS.Platform;
}

/**
 * The `version` of an archive entry, exactly as `@actions/cache` computes it:
 * `sha256_hex(join("|", paths ++ [compression] ++ ["windows-only"]? ++ ["1.0"]))`, with the user's path
 * patterns unresolved and in order.
 */
export function cacheVersion(
  paths: readonly string[],
  compression: CompressionMethod | undefined,
  options: CacheVersionOptions = {},
): string {
  const components = [...paths];
  if (compression) components.push(compression);
  if ((options.platform ?? process.platform) === 'win32' && !options.enableCrossOsArchive) {
    components.push('windows-only');
  }
  components.push(VERSION_SALT);
  return createHash('sha256').update(components.join('|')).digest('hex');
}

/** Default `version` of raw blobs (`putBlob`/`getBlob`, CLI `put`/`get`): `sha256_hex("gha-cache-raw-blob|1.0")`. */
export const RAW_BLOB_VERSION = createHash('sha256').update('gha-cache-raw-blob|1.0').digest('hex');
