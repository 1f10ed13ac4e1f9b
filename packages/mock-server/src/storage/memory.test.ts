import { describeStorageContract } from './contract.js';
import { createMemoryStorage } from './memory.js';

describeStorageContract('memory', async () => {
  const storage = createMemoryStorage();
  return { storage, cleanup: () => storage.close() };
});
