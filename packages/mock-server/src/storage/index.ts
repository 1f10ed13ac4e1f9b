export { type AzureBlobStoreOptions, createAzureBlobStore } from './azure/blobs.js';
export { createFileBlobStore, type FileBlobStoreOptions } from './files/blobs.js';
export { createFsStorage, type FsStorageOptions } from './fs.js';
export { createMemoryBlobStore, createMemoryMetadataStore, createMemoryStorage } from './memory/index.js';
export { createPostgresMetadataStore, type PostgresMetadataOptions } from './postgres/metadata.js';
export { openSqliteDatabase } from './sqlite/database.js';
export { createSqliteMetadataStore } from './sqlite/metadata.js';
export { composeStorage } from './storage.js';
export {
  type BlobOwners,
  type BlobProperties,
  type BlobStore,
  type BlockListItem,
  type ByteRange,
  type CacheEntry,
  type CacheStorage,
  type DirectBlobAccess,
  type EntryFilter,
  type EntryIdentity,
  type EntryState,
  type MetadataStore,
  type RepositoryUsage,
  StorageError,
  type StorageErrorCode,
} from './types.js';
