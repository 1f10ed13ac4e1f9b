export { createFsStorage, type FsStorageOptions } from './fs.js';
export { createMemoryStorage } from './memory.js';
export {
  type BlobProperties,
  type BlockListItem,
  type ByteRange,
  type CacheEntry,
  type CacheStorage,
  type EntryFilter,
  type EntryIdentity,
  type EntryState,
  type RepositoryUsage,
  StorageError,
  type StorageErrorCode,
} from './types.js';
