/**
 * The three live RPCs of `github.actions.results.api.v1.CacheService`, with cache semantics as values:
 * a miss is `undefined`, an existing entry is `{ status: 'exists' }`; denials are typed errors.
 */

import {
  BadResponseError,
  FinalizeFailedError,
  ReserveFailedError,
  TwirpError,
  WriteDeniedError,
} from '../errors.js';
import {
  CreateCacheEntryRequestSchema,
  CreateCacheEntryResponseSchema,
  FinalizeCacheEntryUploadRequestSchema,
  FinalizeCacheEntryUploadResponseSchema,
  GetCacheEntryDownloadURLRequestSchema,
  GetCacheEntryDownloadURLResponseSchema,
} from '../gen/results/api/v1/cache_pb.js';
import type { TwirpTransport } from './transport.js';

export const WRITE_DENIED_PREFIX = 'cache write denied';

export type CreateEntryResult =
  | { status: 'created'; uploadUrl: string }
  /**
   * The identity is already reserved or committed (409 `already_exists`). `retried` is true when our own
   * Create was sent more than once, so the reservation may be ours from an attempt whose answer was lost.
   */
  | { status: 'exists'; retried: boolean };

export interface DownloadUrlResult {
  url: string;
  matchedKey: string;
}

export interface CacheService {
  createCacheEntry(req: { key: string; version: string }): Promise<CreateEntryResult>;
  finalizeCacheEntryUpload(req: {
    key: string;
    version: string;
    sizeBytes: number;
  }): Promise<{ entryId: string }>;
  /** `undefined` on a miss. */
  getCacheEntryDownloadUrl(req: {
    key: string;
    restoreKeys: readonly string[];
    version: string;
  }): Promise<DownloadUrlResult | undefined>;
}

export function createCacheService(transport: TwirpTransport): CacheService {
  return {
    async createCacheEntry({ key, version }) {
      const state = { attempts: 0 };
      try {
        const { message } = await transport.call(
          'CreateCacheEntry',
          CreateCacheEntryRequestSchema,
          CreateCacheEntryResponseSchema,
          { key, version },
          state,
        );
        if (!message.ok) {
          if (message.message.startsWith(WRITE_DENIED_PREFIX)) {
            throw new WriteDeniedError('CreateCacheEntry', message.message);
          }
          throw new ReserveFailedError(message.message);
        }
        if (message.signedUploadUrl === '') {
          throw new BadResponseError('CreateCacheEntry: ok without signed_upload_url', { httpStatus: 200 });
        }
        return { status: 'created', uploadUrl: message.signedUploadUrl };
      } catch (err) {
        if (err instanceof TwirpError && err.twirpCode === 'already_exists') {
          return { status: 'exists', retried: state.attempts > 1 };
        }
        throw err;
      }
    },

    async finalizeCacheEntryUpload({ key, version, sizeBytes }) {
      const { message } = await transport.call(
        'FinalizeCacheEntryUpload',
        FinalizeCacheEntryUploadRequestSchema,
        FinalizeCacheEntryUploadResponseSchema,
        { key, version, sizeBytes: BigInt(sizeBytes) },
      );
      if (!message.ok) {
        if (message.message.startsWith(WRITE_DENIED_PREFIX)) {
          throw new WriteDeniedError('FinalizeCacheEntryUpload', message.message);
        }
        throw new FinalizeFailedError(message.message);
      }
      return { entryId: message.entryId.toString() };
    },

    async getCacheEntryDownloadUrl({ key, restoreKeys, version }) {
      const { message } = await transport.call(
        'GetCacheEntryDownloadURL',
        GetCacheEntryDownloadURLRequestSchema,
        GetCacheEntryDownloadURLResponseSchema,
        { key, restoreKeys: [...restoreKeys], version },
      );
      if (!message.ok) return undefined;
      if (message.signedDownloadUrl === '') {
        throw new BadResponseError('GetCacheEntryDownloadURL: ok without signed_download_url', {
          httpStatus: 200,
        });
      }
      return { url: message.signedDownloadUrl, matchedKey: message.matchedKey || key };
    },
  };
}
