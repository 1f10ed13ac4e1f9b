/**
 * `app.mock`: what the routes and tests reach the mock's state through. Its own module so that plugins
 * can name it without importing `app.ts` (which imports them).
 */
import type { TokenAuthority } from './auth/tokens.js';
import type { AdvanceableClock } from './clock.js';
import type { FaultRegistry } from './faults/index.js';
import type { TrafficJournal } from './journal/journal.js';
import type { MockPolicies } from './policies/policies.js';
import type { RepositoryRegistry } from './repositories.js';
import type { Seeder } from './seed.js';
import type { CacheStorage } from './storage/types.js';

/** The mock's state and secrets, for programmatic use and tests (`app.mock`). */
export interface MockContext {
  storage: CacheStorage;
  tokens: TokenAuthority;
  /** Simulated time for every policy; `advance()` it to make "8 days later" a test step. */
  clock: AdvanceableClock;
  /** Quota, idle expiry, rate limit and hard-quota mode, changeable at run time. */
  policies: MockPolicies;
  accountKey: Buffer;
  /**
   * Applies every policy as of `clock.now()`: drops abandoned reservations and idle entries, evicts
   * repositories over the quota, and removes blobs retained past their last download URL. Also
   * runs on a timer (at most a minute apart); lookups check expiry themselves.
   */
  sweep(): Promise<void>;
  /** `owner/repo` ↔ repository id, for the REST and admin APIs. */
  repositories: RepositoryRegistry;
  /** Preloads one committed entry (see `SeedInput`). */
  seed: Seeder;
  /** Fault rules acting on requests: add, remove, list (with counters), clear. */
  faults: FaultRegistry;
  /** Every request answered, with miss explanations: query, subscribe (see `TrafficJournal`). */
  traffic: TrafficJournal;
  /** The Markdown summary of the traffic so far (`GET /_admin/report`). */
  report(): Promise<string>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The mock's state and secrets, for programmatic use and tests. */
    mock: MockContext;
  }
}
