import type { CacheEntry, CacheStorage } from '../storage/types.js';
import { applyPolicyPatch, DEFAULT_POLICY_SETTINGS, type PolicySettings } from './settings.js';

/** `app.mock.policies`: read and change the policies at run time, and read a repository's usage. */
export interface MockPolicies {
  /** The settings in force. */
  get(): PolicySettings;
  /**
   * Changes some settings (fields left out or `undefined` keep their value) and returns the new ones.
   * Throws `PolicySettingsError` (nothing applied) on an unknown field or a bad value. A lower quota
   * applies at the next Finalize or sweep of each repository.
   */
  update(patch: Partial<PolicySettings>): PolicySettings;
  /** Total size and number of a repository's committed entries. */
  usage(repositoryId: string): Promise<{ sizeBytes: number; count: number }>;
}

/** Why a write (Create or Finalize) is refused before it touches storage. */
export type WriteDenial =
  | { readonly reason: 'quota_exhausted' }
  | { readonly reason: 'rate_limited'; readonly retryAfterSeconds: number };

/** What one sweep removed. */
export interface SweepResult {
  /** Reservations older than the pending TTL. */
  readonly abandoned: number;
  /** Committed entries idle for the idle TTL. */
  readonly idle: number;
  /** Committed entries evicted from repositories over the quota (after the quota was lowered). */
  readonly evicted: number;
  /** Blobs removed (retained past their last download URL, or orphaned). */
  readonly blobs: number;
}

/** The policies as the RPCs and the sweeper apply them. Every `now` comes from the mock's clock. */
export interface PolicyEngine extends MockPolicies {
  /** Admits a Create of `repositoryId` (counting it against the rate limit), or says why not. */
  admitCreate(repositoryId: string, now: number): Promise<WriteDenial | undefined>;
  /** Admits a Finalize, or says why not. */
  admitFinalize(): WriteDenial | undefined;
  /** Whether lookups may see a committed entry yet (the visibility delay has passed since its commit). */
  isVisible(entry: CacheEntry, now: number): boolean;
  /** A reservation past the pending TTL, or a committed entry idle for the idle TTL. */
  isExpired(entry: CacheEntry, now: number): boolean;
  /**
   * Evicts least-recently-used committed entries of the repository until it fits the quota,
   * never `keepId` (the entry just committed). Returns the evicted entries.
   */
  enforceQuota(repositoryId: string, keepId: number | undefined, now: number): Promise<CacheEntry[]>;
  /**
   * Applies every rule to all entries: abandoned reservations, idle entries, quotas; then sweeps
   * blobs. When another instance on the same metadata store is sweeping, does nothing (all zeros).
   */
  sweep(now: number): Promise<SweepResult>;
}

export interface PolicyEngineOptions {
  readonly storage: CacheStorage;
  /** Reservations not finalized within this time expire and free their key. */
  readonly pendingTtlMs: number;
  /** Initial settings; missing fields take `DEFAULT_POLICY_SETTINGS`. */
  readonly settings?: Partial<PolicySettings>;
}

const RATE_WINDOW_MS = 60_000;
/** Entries fetched per step while evicting or expiring. */
const BATCH = 256;

export function createPolicyEngine(options: PolicyEngineOptions): PolicyEngine {
  const { storage, pendingTtlMs } = options;
  const { metadata } = storage;
  let settings = applyPolicyPatch(DEFAULT_POLICY_SETTINGS, options.settings ?? {});

  const isIdle = (entry: CacheEntry, now: number) =>
    entry.state === 'committed' &&
    settings.idleTtlMs !== null &&
    entry.lastAccessedAt + settings.idleTtlMs <= now;

  const enforceQuota = async (
    repositoryId: string,
    keepId: number | undefined,
    now: number,
  ): Promise<CacheEntry[]> => {
    const quota = settings.quotaBytes;
    const evicted: CacheEntry[] = [];
    if (quota === null) return evicted;
    let { sizeBytes } = await metadata.repositoryUsage(repositoryId);
    while (sizeBytes > quota) {
      const batch = (await metadata.listLeastRecentlyUsed(repositoryId, BATCH)).filter(
        (e) => e.id !== keepId,
      );
      if (batch.length === 0) break;
      for (const e of batch) {
        if (sizeBytes <= quota) break;
        // Its blob stays readable until its issued download URLs expire (C-50).
        await storage.deleteEntry(e.id, now);
        sizeBytes -= e.sizeBytes;
        evicted.push(e);
      }
    }
    return evicted;
  };

  return {
    get: () => settings,
    update(patch) {
      settings = applyPolicyPatch(settings, patch);
      return settings;
    },
    async usage(repositoryId) {
      const { sizeBytes, count } = await metadata.repositoryUsage(repositoryId);
      return { sizeBytes, count };
    },

    async admitCreate(repositoryId, now) {
      if (settings.quotaExhausted) return { reason: 'quota_exhausted' };
      if (settings.rateLimitPerMinute === null) return undefined;
      const waitMs = await metadata.takeRateSlot(
        `create:${repositoryId}`,
        settings.rateLimitPerMinute,
        RATE_WINDOW_MS,
        now,
      );
      if (waitMs === undefined) return undefined;
      return { reason: 'rate_limited', retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
    },
    admitFinalize: () => (settings.quotaExhausted ? { reason: 'quota_exhausted' } : undefined),
    isVisible: (entry, now) => entry.committedAt + settings.visibilityDelayMs <= now,
    isExpired: (entry, now) =>
      (entry.state === 'pending' && entry.createdAt + pendingTtlMs <= now) || isIdle(entry, now),
    enforceQuota,

    async sweep(now) {
      let result: SweepResult = { abandoned: 0, idle: 0, evicted: 0, blobs: 0 };
      await metadata.exclusiveSweep(async () => {
        let abandoned = 0;
        const stale = await metadata.listEntries({ state: 'pending', createdBefore: now - pendingTtlMs + 1 });
        for (const e of stale) {
          await storage.deleteEntry(e.id, now);
          abandoned++;
        }
        let idle = 0;
        const { idleTtlMs } = settings;
        if (idleTtlMs !== null) {
          for (let batch = await metadata.listIdleEntries(now - idleTtlMs + 1, BATCH); batch.length > 0; ) {
            for (const e of batch) await storage.deleteEntry(e.id, now);
            idle += batch.length;
            batch = await metadata.listIdleEntries(now - idleTtlMs + 1, BATCH);
          }
        }
        let evicted = 0;
        if (settings.quotaBytes !== null) {
          for (const u of await metadata.listRepositoryUsage()) {
            if (u.sizeBytes > settings.quotaBytes)
              evicted += (await enforceQuota(u.repositoryId, undefined, now)).length;
          }
        }
        const blobs = await storage.sweepBlobs(now);
        result = { abandoned, idle, evicted, blobs };
      });
      return result;
    },
  };
}
