import type { Readable } from 'node:stream';

/** The identity of a cache entry: GitHub's (repository, scope, key, version). Compared exactly. */
export interface EntryIdentity {
  /** Repository partition, from the token's `repository_id` claim (a decimal string). */
  readonly repositoryId: string;
  /** The git ref the entry belongs to, e.g. `refs/heads/main`. */
  readonly scope: string;
  readonly key: string;
  /** Opaque client-computed version; part of the identity. */
  readonly version: string;
}

export type EntryState = 'pending' | 'committed';

export interface CacheEntry extends EntryIdentity {
  /** Unique, increasing; also the creation order ("newest" = highest id). Returned as `entry_id`. */
  readonly id: number;
  /** Opaque name of the blob behind the signed URLs (never derived from the key). */
  readonly blobId: string;
  readonly state: EntryState;
  /** Committed size in bytes; 0 while pending. */
  readonly sizeBytes: number;
  /** Unix ms. */
  readonly createdAt: number;
  /** Unix ms; 0 while pending. */
  readonly committedAt: number;
  /** Unix ms. */
  readonly lastAccessedAt: number;
  /** Unix ms: the latest expiry of any download URL issued for this entry (0 if none). */
  readonly downloadUrlExpiresAt: number;
}

export interface EntryFilter {
  readonly repositoryId?: string;
  readonly state?: EntryState;
  /** Only entries created strictly before this Unix ms. */
  readonly createdBefore?: number;
}

/** What a repository's committed entries add up to (pending reservations count for nothing). */
export interface RepositoryUsage {
  readonly repositoryId: string;
  /** Sum of the committed entries' `sizeBytes`. */
  readonly sizeBytes: number;
  /** Number of committed entries. */
  readonly count: number;
}

export interface BlobProperties {
  readonly size: number;
  /** Quoted, opaque, new on every commit, e.g. `"0x8DD0E3A1C2B4F70"`. */
  readonly etag: string;
  /** Unix ms of the last commit. */
  readonly lastModified: number;
  /** Unix ms of the first commit. */
  readonly createdAt: number;
}

/** One `<Committed>`, `<Uncommitted>` or `<Latest>` element of a Put Block List body, in document order. */
export interface BlockListItem {
  readonly kind: 'committed' | 'uncommitted' | 'latest';
  /** The block id exactly as sent (base64). */
  readonly id: string;
}

export type StorageErrorCode =
  /** A block list names a block that cannot be resolved (nothing changes). */
  | 'InvalidBlockList'
  /** A block id's decoded length differs from the blob's other staged blocks. */
  | 'InvalidBlobOrBlock'
  /** The blob does not exist or has no committed content. */
  | 'BlobNotFound'
  /** The body ended before `length` bytes, or ran past it. */
  | 'IncompleteBody';

export class StorageError extends Error {
  override readonly name = 'StorageError';
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ByteRange {
  /** Inclusive. */
  readonly start: number;
  /** Inclusive; must be < size. */
  readonly end: number;
}

/**
 * Everything the server persists. Entry methods are synchronous and each one is atomic;
 * blob methods stream and never buffer a whole blob (except in the memory backend).
 * Backends: `createMemoryStorage()` (tests) and `createFsStorage({ dataDir })` (default).
 * Every backend passes the one contract suite in `contract.ts`.
 */
export interface CacheStorage {
  /** `'memory'` or `'fs'`. */
  readonly kind: string;

  /** Reserves a pending entry with a fresh id and blob id; `undefined` if the identity exists (pending or committed). */
  reserveEntry(identity: EntryIdentity, now: number): CacheEntry | undefined;
  getEntry(id: number): CacheEntry | undefined;
  findEntry(identity: EntryIdentity): CacheEntry | undefined;
  findEntryByBlobId(blobId: string): CacheEntry | undefined;
  /** The committed entry with exactly this key in (repositoryId, scope, version). */
  findCommittedExact(
    repositoryId: string,
    scope: string,
    version: string,
    key: string,
  ): CacheEntry | undefined;
  /** The newest (highest id) committed entry whose key starts with `prefix` in (repositoryId, scope, version). */
  findCommittedByPrefix(
    repositoryId: string,
    scope: string,
    version: string,
    prefix: string,
  ): CacheEntry | undefined;
  /** Entries matching every given filter field, in ascending id order. */
  listEntries(filter?: EntryFilter): CacheEntry[];
  /** Committed size and count of one repository (zeros if it has none). O(1) in the fs backend. */
  repositoryUsage(repositoryId: string): RepositoryUsage;
  /** Usage of every repository that has committed entries, by repository id. */
  listRepositoryUsage(): RepositoryUsage[];
  /**
   * A repository's committed entries, least recently accessed first (`lastAccessedAt`, ties by
   * lower id), at most `limit`: the eviction order.
   */
  listLeastRecentlyUsed(repositoryId: string, limit: number): CacheEntry[];
  /**
   * Committed entries of any repository last accessed strictly before `accessedBefore` (Unix ms),
   * oldest access first (ties by lower id), at most `limit`: the idle-expiry candidates.
   */
  listIdleEntries(accessedBefore: number, limit: number): CacheEntry[];
  /** Marks a pending entry committed with its size; returns the updated entry. */
  commitEntry(id: number, sizeBytes: number, now: number): CacheEntry;
  /** Records a hit: `lastAccessedAt = now`, `downloadUrlExpiresAt = max(old, urlExpiresAt)`. */
  touchEntry(id: number, now: number, urlExpiresAt: number): void;
  /**
   * Deletes an entry and its staged blocks. Its committed blob stays readable until the entry's
   * `downloadUrlExpiresAt` (later removed by `sweep`), so issued download URLs keep working.
   */
  deleteEntry(id: number, now: number): void;
  /**
   * Removes blobs retained past their last download URL, and blobs committed after their entry was
   * deleted (an upload racing a delete). Returns how many committed blobs were removed.
   */
  sweep(now: number): Promise<number>;

  /** Replaces the blob's content and drops its staged blocks (Put Blob). */
  putBlob(blobId: string, body: Readable, length: number, now: number): Promise<BlobProperties>;
  /**
   * Stages (or re-stages) one block (Put Block). `blockId` is canonical base64. A decoded length
   * that differs from the blob's other staged ids throws `InvalidBlobOrBlock` (the body is drained).
   */
  putBlock(blobId: string, blockId: string, body: Readable, length: number): Promise<void>;
  /** Commits blocks in list order (Put Block List): all or nothing. Drops other staged blocks. */
  commitBlockList(blobId: string, items: readonly BlockListItem[], now: number): Promise<BlobProperties>;
  /** Committed properties, or `undefined` when the blob has no committed content. */
  getBlobProperties(blobId: string): BlobProperties | undefined;
  /**
   * Opens committed content for reading. The returned stream reads the content as of the call,
   * even if the blob is replaced or deleted meanwhile. Throws `BlobNotFound`.
   */
  openBlob(blobId: string, range?: ByteRange): Promise<{ properties: BlobProperties; stream: Readable }>;

  close(): Promise<void>;
}
