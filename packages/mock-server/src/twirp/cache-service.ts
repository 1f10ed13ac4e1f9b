import type { TokenIdentity, TokenScope } from '../auth/tokens.js';
import type { SasSigner } from '../blob/sas.js';
import type { Clock } from '../clock.js';
import { TwirpError } from '../errors.js';
import type { PolicyEngine, WriteDenial } from '../policies/policies.js';
import type { CacheEntry, CacheStorage, EntryIdentity } from '../storage/types.js';

/** Everything the RPCs need; no Fastify types. */
export interface CacheServiceDeps {
  readonly storage: CacheStorage;
  readonly clock: Clock;
  readonly sas: SasSigner;
  /** Base URL that signed blob URLs start with. */
  readonly publicUrl: string;
  readonly containerName: string;
  readonly uploadUrlTtlMs: number;
  readonly downloadUrlTtlMs: number;
  /** Quota, idle expiry, pending TTL, rate limit, hard-quota mode. */
  readonly policies: PolicyEngine;
}

/** Facts for the request log line. */
export interface RpcAudit {
  key?: string;
  match?: string;
  scope?: string;
  entryId?: number;
  /** Entries a Finalize evicted to fit the quota. */
  evicted?: number;
  /** For the traffic journal: what was asked, what was found, and a refusal answered with 200. */
  version?: string;
  restoreKeys?: readonly string[];
  matchedKey?: string;
  outcome?: 'write-denied' | 'error';
  reason?: string;
}

export interface CreateRequest {
  readonly key: string;
  readonly version: string;
}
export interface CreateResponse {
  ok: boolean;
  signedUploadUrl: string;
  message: string;
}
export interface FinalizeRequest {
  readonly key: string;
  readonly version: string;
  readonly sizeBytes: bigint;
}
export interface FinalizeResponse {
  ok: boolean;
  entryId: bigint;
  message: string;
}
export interface GetRequest {
  readonly key: string;
  readonly restoreKeys: readonly string[];
  readonly version: string;
}
export interface GetResponse {
  ok: boolean;
  signedDownloadUrl: string;
  matchedKey: string;
}

export const WRITE_DENIED = 'cache write denied: token has no writable scopes';
export const READ_DENIED = 'cache read denied: token has no readable scopes';
/** `@actions/cache` turns any msg containing `insufficient usage` into its `UsageError` (no retry). */
export const QUOTA_EXHAUSTED = 'insufficient usage: the cache storage quota of this repository is exhausted';
export const RATE_LIMITED = 'rate limit exceeded';
const MAX_KEY_LENGTH = 512;
const MAX_KEYS = 10;

const writeScope = (id: TokenIdentity): TokenScope | undefined =>
  id.scopes.find((s) => (s.permission & 2) !== 0);
const readScopes = (id: TokenIdentity): TokenScope[] => id.scopes.filter((s) => (s.permission & 1) !== 0);

/** The key rules of Create and Get (and of seeding); throws `invalid_argument`. */
export function checkKey(key: string, field = 'key'): void {
  if (key === '') throw new TwirpError('invalid_argument', `${field} must not be empty`, { argument: field });
  if (key.length > MAX_KEY_LENGTH) {
    throw new TwirpError('invalid_argument', `${field} cannot be longer than ${MAX_KEY_LENGTH} characters`, {
      argument: field,
    });
  }
  if (key.includes(','))
    throw new TwirpError('invalid_argument', `${field} cannot contain commas`, { argument: field });
}

/** The version rules of Create and Get (and of seeding); throws `invalid_argument`. */
export function checkVersion(version: string): void {
  if (version === '')
    throw new TwirpError('invalid_argument', 'version must not be empty', { argument: 'version' });
  if (version.length > MAX_KEY_LENGTH) {
    throw new TwirpError('invalid_argument', `version cannot be longer than ${MAX_KEY_LENGTH} characters`, {
      argument: 'version',
    });
  }
}

/** Drops an expired entry (an abandoned reservation, an idle entry); returns whether it is still there. */
async function isLive(deps: CacheServiceDeps, entry: CacheEntry, now: number): Promise<boolean> {
  if (deps.policies.isExpired(entry, now)) {
    await deps.storage.deleteEntry(entry.id, now);
    return false;
  }
  return true;
}

/** 412 `failed_precondition` (hard quota) or 429 `resource_exhausted` with `Retry-After`. */
function denialError(denial: WriteDenial): TwirpError {
  if (denial.reason === 'quota_exhausted') return new TwirpError('failed_precondition', QUOTA_EXHAUSTED);
  const seconds = String(denial.retryAfterSeconds);
  return new TwirpError('resource_exhausted', RATE_LIMITED, {}, { 'Retry-After': seconds });
}

const alreadyExists = () =>
  new TwirpError('already_exists', 'cache entry with the same key, version, and scope already exists');

/**
 * The identity a write (Create or Finalize) targets: the token's first writable scope, with the key and
 * version checked. `undefined` when the token has no writable scope (a policy denial, answered `ok:false`).
 */
function writeIdentity(
  identity: TokenIdentity,
  req: { readonly key: string; readonly version: string },
  audit: RpcAudit,
): EntryIdentity | undefined {
  audit.key = req.key;
  audit.version = req.version;
  const scope = writeScope(identity);
  if (!scope) {
    audit.outcome = 'write-denied';
    return undefined;
  }
  audit.scope = scope.scope;
  checkKey(req.key);
  checkVersion(req.version);
  return { repositoryId: identity.repositoryId, scope: scope.scope, key: req.key, version: req.version };
}

/** Reserves (scope, key, version) and returns a signed upload URL. */
export async function createCacheEntry(
  deps: CacheServiceDeps,
  identity: TokenIdentity,
  req: CreateRequest,
  audit: RpcAudit = {},
): Promise<CreateResponse> {
  const id = writeIdentity(identity, req, audit);
  if (!id) return { ok: false, signedUploadUrl: '', message: WRITE_DENIED };
  const now = deps.clock.now();
  const denial = await deps.policies.admitCreate(id.repositoryId, now);
  if (denial) throw denialError(denial);
  const existing = await deps.storage.metadata.findEntry(id);
  if (existing && (await isLive(deps, existing, now))) throw alreadyExists();
  const entry = await deps.storage.metadata.reserveEntry(id, now);
  if (!entry) throw alreadyExists();
  audit.entryId = entry.id;
  const { direct } = deps.storage.blobs;
  const url = direct
    ? direct.uploadUrl(entry.blobId, deps.uploadUrlTtlMs)
    : deps.sas.signBlobUrl(
        deps.publicUrl,
        deps.containerName,
        entry.blobId,
        'cw',
        now + deps.uploadUrlTtlMs,
        now,
      );
  return { ok: true, signedUploadUrl: url, message: '' };
}

/** Commits an uploaded entry once its blob holds exactly `size_bytes`. */
export async function finalizeCacheEntryUpload(
  deps: CacheServiceDeps,
  identity: TokenIdentity,
  req: FinalizeRequest,
  audit: RpcAudit = {},
): Promise<FinalizeResponse> {
  const id = writeIdentity(identity, req, audit);
  if (!id) return { ok: false, entryId: 0n, message: WRITE_DENIED };
  if (req.sizeBytes < 0n) {
    throw new TwirpError('invalid_argument', 'size_bytes must not be negative', { argument: 'size_bytes' });
  }
  const denial = deps.policies.admitFinalize();
  if (denial) throw denialError(denial);
  const now = deps.clock.now();
  const entry = await deps.storage.metadata.findEntry(id);
  if (!entry || !(await isLive(deps, entry, now))) throw new TwirpError('not_found', 'cache entry not found');
  audit.entryId = entry.id;
  if (entry.state === 'committed') {
    if (BigInt(entry.sizeBytes) === req.sizeBytes)
      return { ok: true, entryId: BigInt(entry.id), message: '' };
    throw alreadyExists();
  }
  const { blobs } = deps.storage;
  // A direct store checks the uploaded size itself and seals exactly that content.
  const blob = blobs.direct
    ? await blobs.direct.seal(entry.blobId, Number(req.sizeBytes))
    : await blobs.getBlobProperties(entry.blobId);
  if (!blob || BigInt(blob.size) !== req.sizeBytes) {
    // The reservation goes, so the client can create the key again.
    await deps.storage.deleteEntry(entry.id, now);
    const message = blob
      ? `uploaded size ${blob.size} does not match size_bytes ${req.sizeBytes}`
      : `nothing was uploaded for this entry (size_bytes ${req.sizeBytes})`;
    Object.assign(audit, { outcome: 'error', reason: message });
    return { ok: false, entryId: 0n, message };
  }
  const committed = await deps.storage.metadata.commitEntry(entry.id, blob.size, now);
  const evicted = await deps.policies.enforceQuota(committed.repositoryId, committed.id, now);
  if (evicted.length > 0) audit.evicted = evicted.length;
  return { ok: true, entryId: BigInt(committed.id), message: '' };
}

type MatchKind = 'exact' | 'prefix' | 'restore-exact' | 'restore-prefix';

/** Looks an entry up (key exact, key prefix, then each restore key exact then prefix; scope by scope). */
export async function getCacheEntryDownloadUrl(
  deps: CacheServiceDeps,
  identity: TokenIdentity,
  req: GetRequest,
  audit: RpcAudit = {},
): Promise<GetResponse> {
  Object.assign(audit, { key: req.key, version: req.version, restoreKeys: req.restoreKeys });
  const scopes = readScopes(identity);
  if (scopes.length === 0) throw new TwirpError('permission_denied', READ_DENIED);
  checkKey(req.key);
  for (const k of req.restoreKeys) checkKey(k, 'restore_keys');
  if (new Set([req.key, ...req.restoreKeys]).size > MAX_KEYS) {
    throw new TwirpError('invalid_argument', `keys are limited to a maximum of ${MAX_KEYS}`, {
      argument: 'restore_keys',
    });
  }
  checkVersion(req.version);
  const now = deps.clock.now();
  const { storage } = deps;
  const { metadata } = storage;
  const { repositoryId } = identity;

  // Each step finds a committed entry; one that is idle past the idle TTL or whose bytes are gone is
  // dropped and the step runs again; one still inside the visibility delay makes the step miss.
  const withBlob = async (find: () => Promise<CacheEntry | undefined>): Promise<CacheEntry | undefined> => {
    for (let e = await find(); e; e = await find()) {
      if (!(await isLive(deps, e, now))) continue;
      if (!deps.policies.isVisible(e, now)) return undefined;
      // Sealed content of a direct store cannot change or vanish before its entry: no round trip.
      if (storage.blobs.direct) return e;
      if ((await storage.blobs.getBlobProperties(e.blobId))?.size === e.sizeBytes) return e;
      await storage.deleteEntry(e.id, now);
    }
    return undefined;
  };

  for (const { scope } of scopes) {
    const steps: [MatchKind, () => Promise<CacheEntry | undefined>][] = [
      ['exact', () => metadata.findCommittedExact(repositoryId, scope, req.version, req.key)],
      ['prefix', () => metadata.findCommittedByPrefix(repositoryId, scope, req.version, req.key)],
    ];
    for (const r of req.restoreKeys) {
      steps.push(
        ['restore-exact', () => metadata.findCommittedExact(repositoryId, scope, req.version, r)],
        ['restore-prefix', () => metadata.findCommittedByPrefix(repositoryId, scope, req.version, r)],
      );
    }
    for (const [kind, find] of steps) {
      const entry = await withBlob(find);
      if (!entry) continue;
      const expiresAt = now + deps.downloadUrlTtlMs;
      await metadata.touchEntry(entry.id, now, expiresAt);
      Object.assign(audit, { match: kind, scope, entryId: entry.id, matchedKey: entry.key });
      return {
        ok: true,
        signedDownloadUrl: storage.blobs.direct
          ? storage.blobs.direct.downloadUrl(entry.blobId, deps.downloadUrlTtlMs)
          : deps.sas.signBlobUrl(deps.publicUrl, deps.containerName, entry.blobId, 'r', expiresAt, now),
        matchedKey: entry.key,
      };
    }
  }
  audit.match = 'miss';
  return { ok: false, signedDownloadUrl: '', matchedKey: '' };
}
