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
  | 'IncompleteBody'
  /** A backend (database, blob service) cannot be reached or did not answer in time; retry later. */
  | 'Unavailable'
  /** A value this backend cannot store (PostgreSQL text cannot hold U+0000); nothing changed. */
  | 'UnsupportedValue';

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

/** What the sweeper needs to know of the entries behind a batch of blob ids. */
export type BlobOwners = (blobIds: readonly string[]) => Promise<ReadonlyMap<string, EntryState>>;

/**
 * Entries, reservations, hits, usage and the Create rate limit: everything but the bytes. Every
 * method is asynchronous (a backend may be a network database) and each one is atomic.
 * Backends: memory (tests), SQLite (`sqlite/`, the default) and PostgreSQL (`postgres/`); every
 * backend passes the one metadata contract suite (`testing/metadata-contract.ts`).
 */
export interface MetadataStore {
  /** `'memory'`, `'sqlite'` or `'postgres'`. */
  readonly kind: string;

  /**
   * Reserves a pending entry with a fresh id and blob id; `undefined` if the identity exists
   * (pending or committed). Exactly one of any number of concurrent calls for one identity wins.
   */
  reserveEntry(identity: EntryIdentity, now: number): Promise<CacheEntry | undefined>;
  getEntry(id: number): Promise<CacheEntry | undefined>;
  findEntry(identity: EntryIdentity): Promise<CacheEntry | undefined>;
  findEntryByBlobId(blobId: string): Promise<CacheEntry | undefined>;
  /** The committed entry with exactly this key in (repositoryId, scope, version). */
  findCommittedExact(
    repositoryId: string,
    scope: string,
    version: string,
    key: string,
  ): Promise<CacheEntry | undefined>;
  /** The newest (highest id) committed entry whose key starts with `prefix` in (repositoryId, scope, version). */
  findCommittedByPrefix(
    repositoryId: string,
    scope: string,
    version: string,
    prefix: string,
  ): Promise<CacheEntry | undefined>;
  /** Entries matching every given filter field, in ascending id order. */
  listEntries(filter?: EntryFilter): Promise<CacheEntry[]>;
  /** Committed size and count of one repository (zeros if it has none). One row read in the SQL backends. */
  repositoryUsage(repositoryId: string): Promise<RepositoryUsage>;
  /** Usage of every repository that has committed entries, by repository id. */
  listRepositoryUsage(): Promise<RepositoryUsage[]>;
  /**
   * A repository's committed entries, least recently accessed first (`lastAccessedAt`, ties by
   * lower id), at most `limit`: the eviction order.
   */
  listLeastRecentlyUsed(repositoryId: string, limit: number): Promise<CacheEntry[]>;
  /**
   * Committed entries of any repository last accessed strictly before `accessedBefore` (Unix ms),
   * oldest access first (ties by lower id), at most `limit`: the idle-expiry candidates.
   */
  listIdleEntries(accessedBefore: number, limit: number): Promise<CacheEntry[]>;
  /** Marks a pending entry committed with its size; returns the updated entry. Rejects for an unknown id. */
  commitEntry(id: number, sizeBytes: number, now: number): Promise<CacheEntry>;
  /**
   * Records a hit: `lastAccessedAt = now`, `downloadUrlExpiresAt = max(old, urlExpiresAt)`. Backends
   * may batch hits; every later read of this store sees them.
   */
  touchEntry(id: number, now: number, urlExpiresAt: number): Promise<void>;
  /** Deletes an entry; returns it as it was (with every recorded hit), or `undefined` if unknown. */
  deleteEntry(id: number): Promise<CacheEntry | undefined>;
  /** The state of the entry behind each of these blob ids that has one. */
  blobOwners: BlobOwners;
  /**
   * Takes one of `limit` slots of `key` in the sliding window of `windowMs` ending at `now` and
   * returns `undefined`, or takes nothing and returns the ms until a slot frees (> 0). Shared by
   * every instance on the same backend.
   */
  takeRateSlot(key: string, limit: number, windowMs: number, now: number): Promise<number | undefined>;
  /**
   * Runs `work` unless another instance sharing this store is running a sweep; returns whether
   * it ran. In-process backends always run it.
   */
  exclusiveSweep(work: () => Promise<void>): Promise<boolean>;

  close(): Promise<void>;
}

/**
 * The bytes: staging, commit and reads of blobs named by opaque blob ids (32 hex digits). Blob
 * methods stream and never buffer a whole blob (except in the memory backend). Backends: memory
 * (tests) and files (`files/`, the default); every backend passes the one blob contract suite
 * (`testing/blob-contract.ts`).
 */
export interface BlobStore {
  /** `'memory'` or `'files'`. */
  readonly kind: string;

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
  getBlobProperties(blobId: string): Promise<BlobProperties | undefined>;
  /**
   * Opens committed content for reading. The returned stream reads the content as of the call,
   * even if the blob is replaced or deleted meanwhile. Throws `BlobNotFound`.
   */
  openBlob(blobId: string, range?: ByteRange): Promise<{ properties: BlobProperties; stream: Readable }>;
  /**
   * The blob's entry is gone: drops its staged blocks, and its committed content at once, or
   * (when `retainUntil > now`) once `sweep` runs at or after `retainUntil`, so issued download URLs
   * keep working.
   */
  discardBlob(blobId: string, retainUntil: number, now: number): Promise<void>;
  /**
   * Removes blobs retained past `retainUntil`, and blobs and staged blocks no entry owns (an upload
   * racing a delete, a crash between the two stores' writes), asking `owners`. Returns how many
   * committed blobs were removed.
   */
  sweep(now: number, owners: BlobOwners): Promise<number>;
  /**
   * Present when clients move the bytes straight to and from the store (Azure Blob Storage): the
   * signed URLs come from it, not from the mock, and Finalize seals the upload.
   */
  readonly direct?: DirectBlobAccess;

  close(): Promise<void>;
}

/** Signed URLs of a blob service the clients reach themselves, and the seal that ends an upload. */
export interface DirectBlobAccess {
  /** Names what the mock's own features cannot do with these URLs (said at start-up and in the README). */
  readonly limitations: readonly string[];
  /** A SAS URL to upload the blob (create and write only, this one blob), valid for `ttlMs` of real time. */
  uploadUrl(blobId: string, ttlMs: number): string;
  /** A read-only SAS URL of the sealed content, valid for `ttlMs` of real time. */
  downloadUrl(blobId: string, ttlMs: number): string;
  /**
   * Finalize: reads the uploaded blob's committed size; when it is `sizeBytes`, makes exactly that
   * content (by ETag) immutable, in a time that does not grow with its size, so later writes
   * through the upload URL change nothing readers get. Returns the uploaded properties
   * (`undefined`: nothing was uploaded); the seal happened only if their size is `sizeBytes`.
   */
  seal(blobId: string, sizeBytes: number): Promise<BlobProperties | undefined>;
}

/**
 * Everything the server persists: a metadata store and a blob store, composed by `composeStorage`
 * (`storage.ts`), which also owns the two operations that span both.
 */
export interface CacheStorage {
  /** `'memory'`, `'fs'` (SQLite + files), or `<metadata>+<blobs>` for other pairs. */
  readonly kind: string;
  readonly metadata: MetadataStore;
  readonly blobs: BlobStore;
  /**
   * Deletes an entry, then its blob (kept readable until the entry's `downloadUrlExpiresAt`).
   * Returns the deleted entry, or `undefined` if there was none.
   */
  deleteEntry(id: number, now: number): Promise<CacheEntry | undefined>;
  /** Sweeps the blob store against the metadata store (see `BlobStore.sweep`). */
  sweepBlobs(now: number): Promise<number>;
  close(): Promise<void>;
}
