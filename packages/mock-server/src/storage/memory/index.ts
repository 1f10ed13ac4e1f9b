import { composeStorage } from '../storage.js';
import type { CacheStorage } from '../types.js';
import { createMemoryBlobStore } from './blobs.js';
import { createMemoryMetadataStore } from './metadata.js';

export { createMemoryBlobStore } from './blobs.js';
export { createMemoryMetadataStore } from './metadata.js';

/** Keeps everything in process memory: fast, and gone on exit. For tests. */
export function createMemoryStorage(): CacheStorage {
  return composeStorage(createMemoryMetadataStore(), createMemoryBlobStore(), 'memory');
}
