import { randomBytes } from 'node:crypto';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import { createTokenAuthority } from './auth/tokens.js';
import { blobPlugin, sendAzureError } from './blob/index.js';
import { createSasSigner } from './blob/sas.js';
import { type Clock, createAdvanceableClock } from './clock.js';
import {
  type ConnectionTimeouts,
  fastifyConnectionOptions,
  resolveConnectionTimeouts,
  watchStalls,
} from './connections.js';
import type {} from './context.js';
import { azureErrors } from './errors.js';
import { createFaultEngine, type FaultRuleInput } from './faults/index.js';
import {
  createRemovalLedger,
  journalPlugin,
  noteRemovals,
  openJournal,
  type RemovedEntry,
  type TrafficJournal,
  trafficRoutes,
} from './journal/index.js';
import { createMetrics } from './metrics/metrics.js';
import { metricsPlugin } from './metrics/plugin.js';
import { adminPlugin } from './plugins/admin.js';
import { faultsPlugin } from './plugins/faults.js';
import { restPlugin } from './plugins/rest.js';
import { badRoute, SERVICE_PATH, sendTwirpError, twirpPlugin } from './plugins/twirp.js';
import { createPolicyEngine, type MockPolicies } from './policies/policies.js';
import type { PolicySettings } from './policies/settings.js';
import { buildReport, type InspectorRoutesOptions, inspectorRoutes } from './report/routes.js';
import { createRepositoryRegistry } from './repositories.js';
import { redactUrl, requestLogPlugin } from './request-log.js';
import { lazySchemaController } from './schema-compilers.js';
import { securityGuardPlugin, surfaceOf } from './security/guard.js';
import { createSeeder } from './seed.js';
import { createMemoryStorage } from './storage/memory/index.js';
import type { CacheStorage } from './storage/types.js';
import type { CacheServiceDeps } from './twirp/cache-service.js';
import { uiPlugin } from './ui/plugin.js';

export interface AppOptions {
  /** Where entries and blobs live. Default: a new memory storage. */
  readonly storage?: CacheStorage;
  /**
   * Base of `app.mock.clock`, the clock every policy runs on (simulated time = base + the offset
   * `app.mock.clock.advance()` adds). Default: the system clock. Tokens' `exp`/`nbf` use real time.
   */
  readonly clock?: Clock;
  /** HS256 key for runtime tokens. Default: 32 random bytes (tokens die with the process). */
  readonly tokenSecret?: Buffer;
  /** Accept tokens not signed with `tokenSecret` (still decoded; `exp`/`nbf` checked when present). Default false. */
  readonly insecureTokens?: boolean;
  /** Storage account key that signs blob URLs. Default: 64 random bytes. */
  readonly accountKey?: Buffer;
  /** Base of signed blob URLs, e.g. `http://127.0.0.1:8787`. Default: derived from each request's Host. */
  readonly publicUrl?: string;
  /** Also serve the Twirp API under this path prefix (e.g. `/cache`), as GO and RS clients keep one. */
  readonly pathPrefix?: string;
  /** Default `devstoreaccount1`. */
  readonly accountName?: string;
  /** Default `actions-cache`. */
  readonly containerName?: string;
  /** Lifetime of upload URLs. Default 60 minutes. */
  readonly uploadUrlTtlMs?: number;
  /** Lifetime of download URLs. Default 10 minutes. */
  readonly downloadUrlTtlMs?: number;
  /** Reservations not finalized within this time expire and free their key. Default 60 minutes. */
  readonly pendingTtlMs?: number;
  /** Per-repository storage quota in bytes; `null` = unlimited. Default 10 GB (10·10⁹). See `PolicySettings`. */
  readonly quotaBytes?: number | null;
  /** Committed entries not accessed for this long are removed; `null` = never. Default 7 days. */
  readonly idleTtlMs?: number | null;
  /** Creates per repository per sliding minute (then 429); `null` = unlimited. Default 200. */
  readonly rateLimitPerMinute?: number | null;
  /** Hard-quota mode: Create and Finalize answer 412 `insufficient usage`. Default false. */
  readonly quotaExhausted?: boolean;
  /** A committed entry stays invisible to lookups for this long after its Finalize (GitHub's eventual consistency). Default 0. */
  readonly visibilityDelayMs?: number;
  /** Repository for tokens without `repository_id`. Default `"1"`. */
  readonly defaultRepositoryId?: string;
  /** `owner/repo` of `defaultRepositoryId`, for the REST API. Default `octo-org/octo-repo`. */
  readonly defaultRepository?: string;
  /** More repositories the REST API knows, `owner/repo` → repository id: `{ 'octo-org/app': '42' }`. */
  readonly repositories?: Readonly<Record<string, string>>;
  /** The only credential the REST API accepts. Default: any `Authorization: Bearer|token <t>`. */
  readonly restToken?: string;
  /**
   * Bearer token the admin API, the UI's data and `/metrics` require (`Authorization: Bearer <t>`).
   * Default: none (`startMockServer` generates one when it listens beyond loopback).
   */
  readonly adminToken?: string;
  /**
   * Host names the admin API, UI, metrics and REST API answer to, besides `localhost`, IP literals and
   * `publicUrl`'s host; `.example.com` also accepts its subdomains. Other names get 421 (DNS rebinding).
   */
  readonly allowedHosts?: readonly string[];
  /**
   * Connection timeouts (headers, idle keep-alive, stalled transfers); see `ConnectionTimeouts` for the
   * defaults and why. Only matter once the app listens.
   */
  readonly timeouts?: Partial<ConnectionTimeouts>;
  /** Largest Twirp request body. Default 1 MiB. */
  readonly twirpBodyLimitBytes?: number;
  /** Fault rules active from the start (see `app.mock.faults` and the README's "Faults"). Default none. */
  readonly faults?: readonly FaultRuleInput[];
  /**
   * Committed entries the start-up check dropped because their blob was gone: noted as removed, so a
   * miss on one of them says why. Default none.
   */
  readonly droppedAtStart?: readonly Omit<RemovedEntry, 'state'>[];
  /**
   * Request log: `false` (default) for none, `true` for pino on stdout, pino options
   * (e.g. `{ level: 'info', stream: process.stderr }`), or a logger instance.
   */
  readonly logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /** Requests the traffic journal keeps in memory (`GET /_admin/traffic`). Default 10,000. */
  readonly trafficRingSize?: number;
  /** Also append every traffic event to this NDJSON file (its last events are loaded at start). */
  readonly trafficLog?: string;
  /** A journal to report to instead of a new one (it is closed with the app). */
  readonly traffic?: TrafficJournal;
  /** `GET /metrics` also carries Node.js process metrics. Default false (the CLI turns them on). */
  readonly processMetrics?: boolean;
}

const MINUTE = 60_000;

const isTwirpPath = (path: string) => path.includes('/twirp/') || path.startsWith(SERVICE_PATH.slice(0, -1));

function normalizePrefix(prefix: string | undefined): string | undefined {
  if (prefix === undefined) return undefined;
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return undefined;
  if (!/^[\w.~-]+(\/[\w.~-]+)*$/.test(trimmed)) throw new Error(`invalid pathPrefix "${prefix}"`);
  // The Twirp API must stay open to its clients: not under a guarded surface.
  if (surfaceOf(`/${trimmed}`) !== 'open') throw new Error(`pathPrefix "${prefix}" is reserved`);
  return `/${trimmed}`;
}

/** Builds the mock server (Twirp API + Azure Blob subset) without listening; use `inject()` or `listen()`. */
export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const storage = options.storage ?? createMemoryStorage();
  const clock = createAdvanceableClock(options.clock);
  const accountKey = options.accountKey ?? randomBytes(64);
  const accountName = options.accountName ?? 'devstoreaccount1';
  const containerName = options.containerName ?? 'actions-cache';
  const pathPrefix = normalizePrefix(options.pathPrefix);
  const repositories = createRepositoryRegistry({
    ...(options.repositories ? { repositories: options.repositories } : {}),
    ...(options.defaultRepository ? { defaultRepository: options.defaultRepository } : {}),
    ...(options.defaultRepositoryId ? { defaultRepositoryId: options.defaultRepositoryId } : {}),
  });
  const tokens = createTokenAuthority({
    secret: options.tokenSecret ?? randomBytes(32),
    insecure: options.insecureTokens ?? false,
    defaultRepositoryId: repositories.default.id,
  });
  const sas = createSasSigner({ accountName, accountKey });
  const pendingTtlMs = options.pendingTtlMs ?? 60 * MINUTE;
  const settings: Partial<PolicySettings> = {
    ...(options.quotaBytes !== undefined ? { quotaBytes: options.quotaBytes } : {}),
    ...(options.idleTtlMs !== undefined ? { idleTtlMs: options.idleTtlMs } : {}),
    ...(options.rateLimitPerMinute !== undefined ? { rateLimitPerMinute: options.rateLimitPerMinute } : {}),
    ...(options.quotaExhausted !== undefined ? { quotaExhausted: options.quotaExhausted } : {}),
    ...(options.visibilityDelayMs !== undefined ? { visibilityDelayMs: options.visibilityDelayMs } : {}),
  };
  // Removals are noted with their cause, so that a later miss can say what became of the entry.
  const removals = createRemovalLedger();
  for (const e of options.droppedAtStart ?? [])
    removals.note({ ...e, state: 'committed' }, 'discarded', clock.now());
  const policyStorage = noteRemovals(storage, removals, (e, now) => {
    if (e.state === 'pending') return e.createdAt + pendingTtlMs <= now ? 'abandoned' : 'discarded';
    return policies.isExpired(e, now) ? 'expired' : 'evicted';
  });
  const policies = createPolicyEngine({ storage: policyStorage, pendingTtlMs, settings });
  const traffic =
    options.traffic ??
    (await openJournal({
      ...(options.trafficRingSize !== undefined ? { capacity: options.trafficRingSize } : {}),
      ...(options.trafficLog !== undefined ? { file: options.trafficLog } : {}),
    }));
  const deps: CacheServiceDeps = {
    storage: policyStorage,
    clock,
    sas,
    publicUrl: options.publicUrl?.replace(/\/+$/, '') ?? '',
    containerName,
    uploadUrlTtlMs: options.uploadUrlTtlMs ?? 60 * MINUTE,
    downloadUrlTtlMs: options.downloadUrlTtlMs ?? 10 * MINUTE,
    policies,
  };

  const timeouts = resolveConnectionTimeouts(options.timeouts);
  const { logger = false } = options;
  const isInstance = typeof logger === 'object' && typeof (logger as FastifyBaseLogger).child === 'function';
  const app = Fastify({
    ...(isInstance ? { loggerInstance: logger as FastifyBaseLogger } : { logger: logger as boolean }),
    exposeHeadRoutes: false,
    ...fastifyConnectionOptions(timeouts),
    // requestLogPlugin writes one line per request instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // A silent logger's child logs nothing either: no child (and its serialised bindings) per request.
    childLoggerFactory: (parent, bindings, opts) =>
      parent.level === 'silent' ? parent : parent.child(bindings, opts),
    // Blob bodies stream through; Twirp bodies have their own limit.
    bodyLimit: options.twirpBodyLimitBytes ?? 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: true,
    requestIdHeader: false,
    // No route has a JSON schema: ajv is loaded only if one ever does.
    schemaController: lazySchemaController,
    // A URL Fastify cannot decode (e.g. `/account/container/%zz`) still gets the protocol's own error.
    frameworkErrors: (error, request, res) => {
      const reply = res as FastifyReply;
      const path = (request.raw.url ?? '').split('?')[0]!;
      // Fastify's text quotes the whole URL, signature included: say it with the URL redacted.
      const message =
        error.code === 'FST_ERR_BAD_URL'
          ? `the URL "${redactUrl(request.raw.url ?? '')}" is not valid (bad percent-encoding)`
          : error.message;
      if (isTwirpPath(path)) return sendTwirpError(reply, badRoute(message, request));
      if (path.startsWith(`/${accountName}/`))
        return sendAzureError(reply, azureErrors.invalidUri(), clock.now());
      return reply
        .code(400)
        .type('application/json')
        .send(JSON.stringify({ code: 'bad_request', msg: message }));
    },
  });
  watchStalls(app.server, timeouts.stallTimeoutMs);
  const sweep = async () => {
    const removed = await policies.sweep(clock.now());
    if (removed.abandoned + removed.idle + removed.evicted > 0) app.log.info(removed, 'sweep');
  };
  const repositoryName = (id: string) => repositories.byId(id)?.fullName;
  const inspector: InspectorRoutesOptions = {
    journal: traffic,
    removals,
    store: {
      listEntries: (filter) => storage.metadata.listEntries(filter),
      listRepositoryUsage: () => storage.metadata.listRepositoryUsage(),
      openBlob: (blobId) => storage.blobs.openBlob(blobId),
    },
    repositoryName,
    repositoryId: (fullName: string) => repositories.byName(fullName)?.id,
  };
  // The public face only: the RPCs reach the rest of the engine through `deps`.
  const mockPolicies: MockPolicies = { get: policies.get, update: policies.update, usage: policies.usage };
  const seed = createSeeder({ storage, clock, repositories });
  const faults = createFaultEngine(options.faults);
  app.decorate('mock', {
    storage,
    tokens,
    clock,
    policies: mockPolicies,
    accountKey,
    sweep,
    repositories,
    seed,
    faults,
    traffic,
    report: () => buildReport(inspector),
  });
  let sweeper: NodeJS.Timeout | undefined;
  app.addHook('onReady', async () => {
    const everyMs = Math.min(MINUTE, Math.max(1000, pendingTtlMs / 2));
    sweeper = setInterval(() => {
      sweep().catch((err: unknown) => app.log.error({ err }, 'sweep failed'));
    }, everyMs).unref();
  });
  // Before the request log: its line then carries the client, the outcome and a miss's reason.
  await app.register(journalPlugin, {
    journal: traffic,
    store: storage.metadata,
    removals,
    repositories,
    clock,
    accountName,
    pendingTtlMs,
    idleTtlMs: () => policies.get().idleTtlMs,
  });
  await app.register(requestLogPlugin);
  // Before every route: it sorts requests by path, so routes added later are covered too.
  await app.register(securityGuardPlugin, {
    ...(options.adminToken !== undefined ? { adminToken: options.adminToken } : {}),
    ...(options.allowedHosts ? { allowedHosts: options.allowedHosts } : {}),
    ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
  });
  await app.register(faultsPlugin, {
    engine: faults,
    blobRoute: `/${encodeURIComponent(accountName)}/${containerName}/:blobId`,
    keyOfBlob: async (blobId) => (await storage.metadata.findEntryByBlobId(blobId))?.key,
    now: () => clock.now(),
  });

  const twirpOptions = { deps, tokens, bodyLimitBytes: options.twirpBodyLimitBytes ?? 1024 * 1024 };
  await app.register(twirpPlugin, twirpOptions);
  if (pathPrefix) await app.register(twirpPlugin, { ...twirpOptions, prefix: pathPrefix });
  await app.register(blobPlugin, { storage, clock, sas, accountName, containerName });
  await app.register(restPlugin, {
    prefix: '/repos',
    storage: noteRemovals(storage, removals, () => 'deleted-rest'),
    clock,
    repositories,
    ...(options.restToken !== undefined ? { token: options.restToken } : {}),
  });
  await app.register(adminPlugin, {
    prefix: '/_admin',
    storage: noteRemovals(storage, removals, () => 'deleted-admin'),
  });
  await app.register(trafficRoutes, { prefix: '/_admin', journal: traffic });
  await app.register(inspectorRoutes, { prefix: '/_admin', ...inspector });
  const metrics = createMetrics({
    journal: traffic,
    removals,
    usage: () => storage.metadata.listRepositoryUsage(),
    repositoryName,
    processMetrics: options.processMetrics ?? false,
  });
  await app.register(metricsPlugin, { metrics });
  await app.register(uiPlugin);

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    if (isTwirpPath(path)) {
      return sendTwirpError(reply, badRoute(`no handler for path "${path}"`, request));
    }
    if (path.includes('/_apis/artifactcache')) {
      // Not a Twirp route: v1 clients read the v1 error shape, whose `message` go-actions-cache (BuildKit)
      // prints instead of a bare `bad_route`, so the build log says what to change.
      const msg =
        'the cache service API v1 (_apis/artifactcache) is not supported: use v2 (set ACTIONS_CACHE_SERVICE_V2=true, or url_v2= for BuildKit)';
      return reply
        .code(404)
        .type('application/json')
        .send(
          JSON.stringify({
            code: 'bad_route',
            msg,
            message: msg,
            meta: { twirp_invalid_route: `${request.method} ${path}` },
          }),
        );
    }
    return reply
      .code(404)
      .type('application/json')
      .send(JSON.stringify({ code: 'not_found', msg: `no route for ${request.method} ${path}` }));
  });
  app.setErrorHandler<FastifyError>((error, request, reply) => {
    request.log.error({ err: error }, 'unhandled error');
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    return reply
      .code(status)
      .type('application/json')
      .send(
        JSON.stringify({
          code: status === 500 ? 'internal' : 'bad_request',
          msg: status === 500 ? 'internal error' : error.message,
        }),
      );
  });
  app.addHook('onClose', async () => {
    clearInterval(sweeper);
    metrics.close();
    await traffic.close();
    await storage.close();
  });
  return app;
}
