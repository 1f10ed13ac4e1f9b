import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { type AppOptions, buildApp } from './app.js';
import type { MintTokenOptions, TokenScope } from './auth/tokens.js';
import { trackRequests } from './connections.js';
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js';
import type { FaultRegistry } from './faults/index.js';
import { loadSecrets } from './secrets.js';
import { isLoopbackHost } from './security/hosts.js';
import type { Seeder } from './seed.js';
import { type AzureBlobStoreOptions, createAzureBlobStore } from './storage/azure/blobs.js';
import { createFileBlobStore } from './storage/files/blobs.js';
import { createFsStorage } from './storage/fs.js';
import {
  createMemoryBlobStore,
  createMemoryMetadataStore,
  createMemoryStorage,
} from './storage/memory/index.js';
import { createPostgresMetadataStore } from './storage/postgres/metadata.js';
import { openSqliteDatabase } from './storage/sqlite/database.js';
import { createSqliteMetadataStore } from './storage/sqlite/metadata.js';
import { composeStorage } from './storage/storage.js';
import type { BlobStore, CacheStorage, MetadataStore } from './storage/types.js';
import { checkDataDirAtStart, type Finding } from './storage/verify.js';

export { loadSecrets } from './secrets.js';

export interface MockServerOptions extends Omit<AppOptions, 'storage'> {
  /**
   * Default `127.0.0.1`. Anything but loopback (`0.0.0.0`, a LAN address, a host name) without an
   * `adminToken` gets a generated one (`MockServer.adminToken`), which the admin API, UI and metrics require.
   */
  readonly host?: string;
  /** Default 0 (any free port). */
  readonly port?: number;
  /** `memory`, `fs` (needs `dataDir`), or a storage instance. Default: `fs` when `dataDir` is set, else `memory`. */
  readonly storage?: 'memory' | 'fs' | CacheStorage;
  /** Data directory: SQLite metadata, blob files, and the token secret and account key (`secrets.json`). */
  readonly dataDir?: string;
  /**
   * A PostgreSQL URL (`postgres://user:pass@host:5432/db`): entries live there instead of in
   * SQLite, shared by every instance on the same database (migrations run at start). Blobs then
   * go to `blobStore`.
   */
  readonly database?: string;
  /**
   * Where blob content lives: `files` (in `dataDir`, one instance only), `memory`, or `azure`
   * (Azure Blob Storage through `azure`; clients get its SAS URLs). Default: `files` when
   * `dataDir` is set, else `memory`.
   */
  readonly blobStore?: 'files' | 'memory' | 'azure';
  /** The Azure Blob Storage account of `blobStore: 'azure'`. */
  readonly azure?: AzureBlobStoreOptions;
  /** Bound of every wait on the database in ms (connect, statement); default 5000. */
  readonly databaseTimeoutMs?: number;
  /** Scopes of the token in `token` and `env`. Default `refs/heads/main` read+write. */
  readonly scopes?: readonly TokenScope[];
  /**
   * How long `close()` lets requests in flight finish before cutting them (ms). Default 0: at once,
   * as tests want; the CLI's `--shutdown-grace` defaults to 10 s.
   */
  readonly shutdownGraceMs?: number;
}

export interface CloseOptions {
  /** Overrides `shutdownGraceMs` for this call. */
  readonly graceMs?: number;
}

export interface MockServerEnv {
  ACTIONS_RESULTS_URL: string;
  ACTIONS_CACHE_URL: string;
  ACTIONS_CACHE_SERVICE_V2: string;
  /** The REST API (`/repos/…`), for `gha-cache list`/`delete` and Octokit. Never `GITHUB_SERVER_URL` (GHES trap). */
  GITHUB_API_URL: string;
  /** `owner/repo` of the default repository (the token's `repository_id`). */
  GITHUB_REPOSITORY: string;
  ACTIONS_RUNTIME_TOKEN: string;
}

export interface MockServer {
  /** Origin the server listens on, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  readonly url: string;
  /** The token the admin API, UI and `/metrics` require (given or generated), or `undefined` when open. */
  readonly adminToken: string | undefined;
  /** True when `adminToken` was generated here because the server listens beyond loopback. */
  readonly adminTokenGenerated: boolean;
  /** A runtime token with the configured scopes. */
  readonly token: string;
  /** The variables a cache client needs, ready for `process.env` or a child's `env`. */
  readonly env: MockServerEnv;
  readonly storage: CacheStorage;
  readonly app: FastifyInstance;
  /** Preloads a committed entry (a warm cache): `seed({ key, version, content, scope?, repository? })`. */
  seed: Seeder;
  /** Fault rules (`app.mock.faults`): `faults.add({ op: 'GetBlob', nth: 1, action: { type: 'expire-url' } })`. */
  readonly faults: FaultRegistry;
  /** Mints another runtime token, e.g. `mintToken([{ scope: 'refs/heads/main', permission: 1 }])`. */
  mintToken(scopes?: readonly TokenScope[], options?: Omit<MintTokenOptions, 'scopes'>): string;
  /** Requests received and not yet answered in full. */
  readonly inFlight: number;
  /**
   * Stops accepting connections, lets requests in flight finish for the grace period, cuts what is
   * left, closes the storage and releases the data dir. Resolves to how many requests were cut.
   */
  close(options?: CloseOptions): Promise<{ unfinished: number }>;
}

/** Kinds of store the options pick (storage instance aside). */
function storesOf(options: MockServerOptions) {
  const kind = options.storage ?? (options.dataDir ? 'fs' : 'memory');
  const blobKind = options.blobStore ?? (options.dataDir && kind !== 'memory' ? 'files' : 'memory');
  return {
    kind,
    blobKind,
    /** The data dir holds a database or blob files: one live server on it at a time. */
    ownsDataDir:
      typeof kind === 'string' &&
      options.dataDir !== undefined &&
      ((kind !== 'memory' && options.database === undefined && blobKind !== 'azure') || blobKind === 'files'),
    /** Entries and blobs both in the data dir's SQLite file and files: what the start-up check reads. */
    embedded: kind === 'fs' && options.database === undefined && blobKind === 'files',
  };
}

async function openStorage(options: MockServerOptions, onError: (err: Error) => void): Promise<CacheStorage> {
  const kind = options.storage ?? (options.dataDir ? 'fs' : 'memory');
  if (typeof kind !== 'string') return kind;
  const { dataDir } = options;
  const blobKind = options.blobStore ?? (dataDir && kind !== 'memory' ? 'files' : 'memory');
  if (options.database === undefined && blobKind !== 'azure') {
    if (kind === 'memory') return createMemoryStorage();
    if (!dataDir) throw new Error('storage "fs" needs a dataDir');
    return createFsStorage({ dataDir });
  }
  /** The data directory's SQLite file: entries without `database`, the file blob index with it. */
  let db: ReturnType<typeof openSqliteDatabase> | undefined;
  const sqlite = () => {
    if (!dataDir) throw new Error('this storage needs a dataDir');
    db ??= openSqliteDatabase(dataDir);
    return db;
  };
  const closeDb = () => {
    if (db?.open) db.close();
  };
  let metadata: MetadataStore | undefined;
  try {
    metadata =
      options.database !== undefined
        ? await createPostgresMetadataStore({
            connectionString: options.database,
            ...(options.databaseTimeoutMs !== undefined ? { timeoutMs: options.databaseTimeoutMs } : {}),
            onError,
          })
        : kind === 'memory'
          ? createMemoryMetadataStore()
          : createSqliteMetadataStore(sqlite());
    let blobs: BlobStore;
    if (blobKind === 'azure') {
      if (!options.azure) throw new Error('blob store "azure" needs an Azure connection string');
      blobs = await createAzureBlobStore(options.azure);
    } else if (blobKind === 'memory') {
      blobs = createMemoryBlobStore();
    } else {
      if (!dataDir) throw new Error('blob store "files" needs a dataDir');
      blobs = createFileBlobStore({ dataDir, db: sqlite() });
    }
    return composeStorage(metadata, blobs, undefined, closeDb);
  } catch (err) {
    await metadata?.close();
    closeDb();
    throw err;
  }
}

/** Starts the mock on a real socket, for test suites: `const mock = await startMockServer(); … await mock.close()`. */
export async function startMockServer(options: MockServerOptions = {}): Promise<MockServer> {
  const { host = '127.0.0.1', port = 0, dataDir, scopes, shutdownGraceMs = 0 } = options;
  const stores = storesOf(options);
  // One live server per data dir: taken before the database is opened, released after it is closed.
  const lock: DataDirLock | undefined =
    stores.ownsDataDir && dataDir ? await acquireDataDirLock(dataDir) : undefined;
  const adminTokenGenerated = options.adminToken === undefined && !isLoopbackHost(host);
  const adminToken = adminTokenGenerated ? randomBytes(24).toString('base64url') : options.adminToken;
  // Errors of idle database connections go to the app's log once there is one.
  let reportError = (_err: Error): void => undefined;
  let app: FastifyInstance;
  let unservable: Finding[] = [];
  try {
    // A damaged database stops the start here; entries whose blob is gone are dropped, not served.
    if (lock && dataDir && stores.embedded) unservable = await checkDataDirAtStart(dataDir);
    const secrets = dataDir ? await loadSecrets(dataDir) : undefined;
    const storage = await openStorage(options, (err) => reportError(err));
    app = await buildApp({
      ...options,
      ...(adminToken !== undefined ? { adminToken } : {}),
      // The name it was told to listen on is one of its own.
      allowedHosts: [...(isIP(host) === 0 ? [host] : []), ...(options.allowedHosts ?? [])],
      storage,
      droppedAtStart: unservable.flatMap((f) => (f.entry ? [f.entry] : [])),
      tokenSecret: options.tokenSecret ?? secrets?.tokenSecret ?? randomBytes(32),
      accountKey: options.accountKey ?? secrets?.accountKey ?? randomBytes(64),
    });
  } catch (err) {
    await lock?.release();
    throw err;
  }
  reportError = (err) => app.log.warn({ err }, 'metadata database connection error');
  for (const f of unservable) {
    app.log.warn({ entryId: f.entryId, key: f.key, problem: f.kind }, `not served: ${f.detail}`);
  }
  const drainer = trackRequests(app.server);
  try {
    await app.listen({ host, port });
  } catch (err) {
    await app.close();
    await lock?.release();
    throw err;
  }
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('server is not listening on TCP');
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const displayHost = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : hostPart;
  const url = `http://${displayHost}:${address.port}`;
  await lock?.setUrl(url);
  let closing: Promise<{ unfinished: number }> | undefined;
  const close = (closeOptions: CloseOptions = {}) => {
    closing ??= (async () => {
      const graceMs = closeOptions.graceMs ?? shutdownGraceMs;
      const { unfinished } = graceMs > 0 ? await drainer.drain(graceMs) : { unfinished: drainer.inFlight };
      try {
        await app.close();
      } finally {
        await lock?.release();
      }
      return { unfinished };
    })();
    return closing;
  };
  // Tokens live on real time (the default `now`), whatever the mock's clock says.
  const mintToken: MockServer['mintToken'] = (s = scopes, opts = {}) =>
    app.mock.tokens.mint({ ...opts, ...(s ? { scopes: s } : {}) });
  const token = mintToken();
  return {
    url,
    adminToken,
    adminTokenGenerated,
    token,
    env: {
      ACTIONS_RESULTS_URL: `${url}/`,
      ACTIONS_CACHE_URL: `${url}/`,
      ACTIONS_CACHE_SERVICE_V2: 'true',
      GITHUB_API_URL: url,
      GITHUB_REPOSITORY: app.mock.repositories.default.fullName,
      ACTIONS_RUNTIME_TOKEN: token,
    },
    storage: app.mock.storage,
    app,
    seed: app.mock.seed,
    faults: app.mock.faults,
    mintToken,
    get inFlight() {
      return drainer.inFlight;
    },
    close,
  };
}
