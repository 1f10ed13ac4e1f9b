import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BlobStore,
  type CacheStorage,
  composeStorage,
  createAzureBlobStore,
  createFileBlobStore,
  createPostgresMetadataStore,
  type MetadataStore,
  openSqliteDatabase,
} from '@gha-cache/mock-server';
import { afterAll, beforeAll } from 'vitest';
import { describeBlobContract } from '../../packages/mock-server/testing/blob-contract.js';
import { describeMetadataContract } from '../../packages/mock-server/testing/metadata-contract.js';
import { describeStorageContract } from '../../packages/mock-server/testing/storage-contract.js';
import { type Azurite, startAzurite } from '../client/support/azurite.js';
import { azuriteConnectionString } from '../support/azure.js';
import { type Postgres, startPostgres } from '../support/postgres.js';

let postgres: Postgres;
beforeAll(async () => {
  postgres = await startPostgres();
});
afterAll(async () => {
  await postgres?.close();
});

/** A fresh database per test; `reopen` closes the store and opens the same database again. */
const postgresFixture = async () => {
  const url = await postgres.createDatabase();
  let store: MetadataStore = await createPostgresMetadataStore({ connectionString: url });
  return {
    store,
    reopen: async () => {
      await store.close();
      store = await createPostgresMetadataStore({ connectionString: url });
      return store;
    },
    cleanup: () => store.close(),
  };
};

describeMetadataContract('postgres', postgresFixture, { persistent: true });

describeStorageContract(
  'postgres + files',
  async () => {
    const url = await postgres.createDatabase();
    const dataDir = await mkdtemp(join(tmpdir(), 'gha-cache-pg-files-'));
    const open = async (): Promise<CacheStorage> => {
      const db = openSqliteDatabase(dataDir);
      const metadata = await createPostgresMetadataStore({ connectionString: url });
      return composeStorage(metadata, createFileBlobStore({ dataDir, db }), undefined, () => {
        db.close();
      });
    };
    let store = await open();
    return {
      store,
      reopen: async () => {
        await store.close();
        store = await open();
        return store;
      },
      cleanup: async () => {
        await store.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  },
  { persistent: true },
);

let azurite: Azurite;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.close();
});
let containers = 0;
const azureOptions = () => ({
  connectionString: azuriteConnectionString(azurite),
  container: `contract-${process.pid}-${++containers}`,
});

describeBlobContract(
  'azure (Azurite)',
  async () => {
    const options = azureOptions();
    let store: BlobStore = await createAzureBlobStore(options);
    return {
      store,
      reopen: async () => {
        await store.close();
        store = await createAzureBlobStore(options);
        return store;
      },
      cleanup: () => store.close(),
    };
  },
  { persistent: true, serverTime: true },
);

describeStorageContract(
  'postgres + azure (Azurite)',
  async () => {
    const url = await postgres.createDatabase();
    const options = azureOptions();
    const open = async () =>
      composeStorage(
        await createPostgresMetadataStore({ connectionString: url }),
        await createAzureBlobStore(options),
      );
    let store = await open();
    return {
      store,
      reopen: async () => {
        await store.close();
        store = await open();
        return store;
      },
      cleanup: () => store.close(),
    };
  },
  { persistent: true },
);
