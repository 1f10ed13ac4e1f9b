import { describeBlobContract } from '../../testing/blob-contract.js';
import { describeMetadataContract } from '../../testing/metadata-contract.js';
import { describeStorageContract } from '../../testing/storage-contract.js';
import { createMemoryBlobStore, createMemoryMetadataStore, createMemoryStorage } from './memory/index.js';

describeMetadataContract('memory', async () => {
  const store = createMemoryMetadataStore();
  return { store, cleanup: () => store.close() };
});

describeBlobContract('memory', async () => {
  const store = createMemoryBlobStore();
  return { store, cleanup: () => store.close() };
});

describeStorageContract('memory', async () => {
  const store = createMemoryStorage();
  return { store, cleanup: () => store.close() };
});
