/**
 * The recording proxy: sits between any cache client and any cache service (API v2), forwards every call
 * as it came, and records it into the same traffic journal the mock keeps, so `/_admin/traffic`, the SSE
 * stream, `/metrics`, the report and the pretty log read the same. Builds; `main.ts` listens.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import { openJournal, type TrafficJournal } from '../journal/journal.js';
import { createRemovalLedger } from '../journal/removals.js';
import { trafficRoutes } from '../journal/routes.js';
import { createMetrics } from '../metrics/metrics.js';
import { metricsPlugin } from '../metrics/plugin.js';
import { renderReport } from '../report/markdown.js';
import { summarize } from '../report/summary.js';
import { lazySchemaController } from '../schema-compilers.js';
import { securityGuardPlugin } from '../security/guard.js';
import { uiPlugin } from '../ui/plugin.js';
import { forwardBlob } from './blob.js';
import { BLOB_PREFIX, createBlobUrlRegistry } from './blob-urls.js';
import type { BlobMode, ProxyContext } from './context.js';
import { createUpstream } from './forward.js';
import { createSaveHistory } from './history.js';
import { createEntrySaver, type EntrySaver } from './save-entries.js';
import { forwardTwirp } from './twirp.js';

export interface ProxyAppOptions {
  /** The upstream service's base URL (`ACTIONS_RESULTS_URL` of the real service), http or https. */
  readonly upstream: string;
  /** `proxy` (default): blob URLs are rewritten and the transfers go through; `direct`: left untouched. */
  readonly blobs?: BlobMode;
  /** Origin of the proxy in rewritten blob URLs. Default: the Host each request came to. */
  readonly publicUrl?: string;
  /** Also write every entry that goes through as a seed in this directory (`serve --seed DIR`). */
  readonly saveEntriesDir?: string;
  /** Largest Twirp request body. Default 4 MiB. */
  readonly twirpBodyLimitBytes?: number;
  /** As `buildApp`'s: `false` (default), `true`, pino options or a logger instance. */
  readonly logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  readonly trafficRingSize?: number;
  readonly trafficLog?: string;
  readonly traffic?: TrafficJournal;
  /** `GET /metrics` also carries Node.js process metrics. Default false. */
  readonly processMetrics?: boolean;
  /** Bearer token the admin API, UI and `/metrics` require (as the mock's). Default none. */
  readonly adminToken?: string;
  /** More `Host` names the admin API, UI and metrics answer to (as the mock's). */
  readonly allowedHosts?: readonly string[];
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Present on a proxy app (`buildProxyApp`). */
    proxy: {
      readonly upstream: string;
      readonly blobs: BlobMode;
      readonly traffic: TrafficJournal;
      /** `--save-entries`: entries saved so far. */
      readonly savedEntries: () => number;
      report(): Promise<string>;
    };
  }
}

/** `https://host/path` → a base URL ending with `/`; throws a clear error otherwise. */
export function parseUpstream(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(
      `upstream "${value}" is not a URL (e.g. https://results-receiver.actions.githubusercontent.com/)`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new TypeError(`upstream "${value}" must be an http or https URL`);
  if (url.username || url.password) throw new TypeError('upstream must not carry credentials');
  url.search = '';
  url.hash = '';
  if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
  return url;
}

export async function buildProxyApp(options: ProxyAppOptions): Promise<FastifyInstance> {
  const base = parseUpstream(options.upstream);
  const blobs = options.blobs ?? 'proxy';
  const traffic =
    options.traffic ??
    (await openJournal({
      ...(options.trafficRingSize !== undefined ? { capacity: options.trafficRingSize } : {}),
      ...(options.trafficLog !== undefined ? { file: options.trafficLog } : {}),
    }));
  const saver: EntrySaver | undefined = options.saveEntriesDir
    ? await createEntrySaver(options.saveEntriesDir)
    : undefined;
  const upstream = createUpstream();
  const ctx: ProxyContext = {
    upstream,
    base,
    origin: base.origin,
    blobs,
    publicUrl: options.publicUrl?.replace(/\/+$/, ''),
    registry: createBlobUrlRegistry(),
    history: createSaveHistory(),
    journal: traffic,
    saver,
    twirpBodyLimitBytes: options.twirpBodyLimitBytes ?? 4 * 1024 * 1024,
  };

  const { logger = false } = options;
  const isInstance = typeof logger === 'object' && typeof (logger as FastifyBaseLogger).child === 'function';
  const app = Fastify({
    ...(isInstance ? { loggerInstance: logger as FastifyBaseLogger } : { logger: logger as boolean }),
    exposeHeadRoutes: false,
    // The proxy writes one line per exchange itself (record.ts).
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: true,
    requestIdHeader: false,
    schemaController: lazySchemaController,
  });
  const report = async () =>
    renderReport({ summary: summarize(traffic.query()), capacity: traffic.capacity }).replace(
      '## Cache traffic (gha-cache-mock)',
      `## Cache traffic (gha-cache-mock proxy → ${base.host})`,
    );
  app.decorate('proxy', {
    upstream: base.href,
    blobs,
    traffic,
    savedEntries: () => saver?.count() ?? 0,
    report,
  });

  // The same guard as the mock's in front of the proxy's own pages; forwarded paths stay open to any Host.
  await app.register(securityGuardPlugin, {
    ...(options.adminToken !== undefined ? { adminToken: options.adminToken } : {}),
    ...(options.allowedHosts ? { allowedHosts: options.allowedHosts } : {}),
    ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
  });
  // The proxy's own pages.
  await app.register(trafficRoutes, { prefix: '/_admin', journal: traffic });
  await app.register(
    async (admin) => {
      admin.get('/summary', async () => ({ ...summarize(traffic.query()), capacity: traffic.capacity }));
      admin.get('/report', async (_request, reply) =>
        reply.type('text/markdown; charset=utf-8').send(await report()),
      );
    },
    { prefix: '/_admin' },
  );
  const metrics = createMetrics({
    journal: traffic,
    removals: createRemovalLedger(),
    usage: () => [],
    repositoryName: () => undefined,
    processMetrics: options.processMetrics ?? false,
  });
  await app.register(metricsPlugin, { metrics });
  await app.register(uiPlugin);
  app.get('/healthz', async () => ({ status: 'ok', upstream: base.origin }));
  // The proxy's own namespace never reaches the upstream; the store views have nothing to show here.
  app.all('/_admin/*', async (request, reply) =>
    reply
      .code(404)
      .type('application/json')
      .send(
        JSON.stringify({
          code: 'not_found',
          msg: `${request.url.split('?')[0]} is not available in proxy mode: the proxy sees the traffic, not the upstream's store`,
        }),
      ),
  );

  // Everything else is the service's: forwarded as a stream, bodies never parsed by Fastify.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    scope.all(`${BLOB_PREFIX}*`, (request, reply) => forwardBlob(ctx, request, reply));
    scope.all('/*', (request, reply) => forwardTwirp(ctx, request, reply));
  });

  app.addHook('onClose', async () => {
    metrics.close();
    upstream.close();
    await saver?.close();
    await traffic.close();
  });
  return app;
}
