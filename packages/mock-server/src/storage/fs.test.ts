import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeStorageContract } from './contract.js';
import { createFsStorage } from './fs.js';
import type { CacheStorage } from './types.js';

describeStorageContract('fs', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'gha-cache-fs-'));
  let storage: CacheStorage = createFsStorage({ dataDir });
  return {
    storage,
    reopen: async () => {
      await storage.close();
      storage = createFsStorage({ dataDir });
      return storage;
    },
    cleanup: async () => {
      await storage.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});
