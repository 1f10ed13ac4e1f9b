/** @gha-cache/mock-server — a GitHub Actions Cache service (API v2) + Azure Blob emulator. */
export { type AppOptions, buildApp } from './app.js';
export {
  createTokenAuthority,
  type MintTokenOptions,
  Permission,
  parseScopeSpec,
  type TokenAuthority,
  type TokenIdentity,
  type TokenScope,
} from './auth/tokens.js';
export {
  type AdvanceableClock,
  type Clock,
  createAdvanceableClock,
  createManualClock,
  type ManualClock,
  systemClock,
} from './clock.js';
export {
  type ConnectionTimeouts,
  DEFAULT_CONNECTION_TIMEOUTS,
} from './connections.js';
export type { MockContext } from './context.js';
export { DataDirLockedError, type DataDirLockInfo } from './data-dir-lock.js';
export { AzureError, TWIRP_STATUS, type TwirpCode, TwirpError } from './errors.js';
export {
  type DropFaultAction,
  type ExpireUrlFaultAction,
  FAULT_BLOB_OPS,
  FAULT_OPS,
  FAULT_RPCS,
  type FaultAction,
  type FaultActionType,
  type FaultBlobOp,
  type FaultDirection,
  type FaultOp,
  type FaultRegistry,
  type FaultRpc,
  type FaultRule,
  type FaultRuleInput,
  FaultSpecError,
  type FaultSpecErrorCode,
  type LatencyFaultAction,
  type NonJsonFaultAction,
  parseFaultSpec,
  type StatusFaultAction,
  type ThrottleFaultAction,
  type TruncateFaultAction,
} from './faults/index.js';
export type { TrafficJournal } from './journal/journal.js';
export type {
  ClientKind,
  MissExplanation,
  MissReason,
  Outcome,
  SurfaceKind,
  TrafficEvent,
  TrafficFilter,
} from './journal/types.js';
export { type ActionsCacheJson, GitHubApiError, REST_API_VERSION } from './plugins/rest.js';
export type { MockPolicies } from './policies/policies.js';
export { DEFAULT_POLICY_SETTINGS, type PolicySettings, PolicySettingsError } from './policies/settings.js';
export { type BlobMode, buildProxyApp, type ProxyAppOptions, parseUpstream } from './proxy/index.js';
export {
  createRepositoryRegistry,
  DEFAULT_REPOSITORY,
  parseRepositorySpec,
  type Repository,
  type RepositoryRegistry,
  type RepositoryRegistryOptions,
} from './repositories.js';
export { type RequestAudit, redactHeaders, redactUrl } from './request-log.js';
export {
  createSecurityRules,
  isPublicUiAsset,
  SecurityError,
  type SecurityGuardOptions,
  type SecurityReason,
  type SecurityRules,
  type Surface,
  surfaceOf,
} from './security/guard.js';
export { isLoopbackHost } from './security/hosts.js';
export {
  loadSeedManifest,
  type SeedConflict,
  type Seeder,
  type SeedInput,
  type SeedManifestEntry,
  type SeedResult,
} from './seed.js';
export {
  type CloseOptions,
  loadSecrets,
  type MockServer,
  type MockServerEnv,
  type MockServerOptions,
  startMockServer,
} from './server.js';
export {
  type AzureBlobStoreOptions,
  type BlobOwners,
  type BlobProperties,
  type BlobStore,
  type BlockListItem,
  type ByteRange,
  type CacheEntry,
  type CacheStorage,
  composeStorage,
  createAzureBlobStore,
  createFileBlobStore,
  createFsStorage,
  createMemoryBlobStore,
  createMemoryMetadataStore,
  createMemoryStorage,
  createPostgresMetadataStore,
  createSqliteMetadataStore,
  type DirectBlobAccess,
  type EntryFilter,
  type EntryIdentity,
  type EntryState,
  type FileBlobStoreOptions,
  type FsStorageOptions,
  type MetadataStore,
  openSqliteDatabase,
  type PostgresMetadataOptions,
  type RepositoryUsage,
  StorageError,
  type StorageErrorCode,
} from './storage/index.js';
export {
  DatabaseDamagedError,
  type Finding,
  type FindingKind,
  type VerifyReport,
  verifyDataDir,
} from './storage/verify.js';
