/**
 * The Prometheus side of the metrics (prom-client): counters, histogram and gauges, fed one traffic
 * event or removal at a time by `metrics.ts`, which loads this module only when it is needed.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { TrafficEvent } from '../journal/types.js';
import type { RepositoryUsage } from '../storage/types.js';

export interface PrometheusOptions {
  /** Committed entries and bytes per repository, read at each scrape. */
  readonly usage: () => RepositoryUsage[] | Promise<RepositoryUsage[]>;
  /** `owner/repo` of a repository id, when registered. */
  readonly repositoryName: (id: string) => string | undefined;
  /** Also the Node.js process metrics (`gha_cache_process_…`, `gha_cache_nodejs_…`). Default true. */
  readonly processMetrics?: boolean;
}

export interface PrometheusMetrics {
  readonly contentType: string;
  /** Counts one answered request. */
  record(event: TrafficEvent): void;
  /** Counts one removed entry. */
  removed(cause: string): void;
  /** The text exposition. */
  render(): Promise<string>;
}

const P = 'gha_cache_';
const REJECTIONS: Readonly<Record<string, string>> = {
  'rate-limited': 'rate_limited',
  quota: 'quota',
  'write-denied': 'write_denied',
  'read-denied': 'read_denied',
};

export function createPrometheusMetrics(options: PrometheusOptions): PrometheusMetrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: P });
  const registers = [registry];
  const requests = new Counter({
    name: `${P}requests_total`,
    help: 'Requests answered, by operation, outcome and client',
    labelNames: ['operation', 'outcome', 'client'] as const,
    registers,
  });
  const hits = new Counter({
    name: `${P}lookup_hits_total`,
    help: 'Lookups (GetCacheEntryDownloadURL) that found an entry, by match type',
    labelNames: ['match'] as const,
    registers,
  });
  const misses = new Counter({
    name: `${P}lookup_misses_total`,
    help: 'Lookups that found nothing, by the reason the mock worked out',
    labelNames: ['reason'] as const,
    registers,
  });
  const uploaded = new Counter({
    name: `${P}uploaded_bytes_total`,
    help: 'Blob bytes received (Put Blob, Put Block)',
    registers,
  });
  const downloaded = new Counter({
    name: `${P}downloaded_bytes_total`,
    help: 'Blob bytes sent (Get Blob)',
    registers,
  });
  const rejections = new Counter({
    name: `${P}rejections_total`,
    help: 'Writes or reads refused by a policy: rate_limited, quota, write_denied, read_denied',
    labelNames: ['reason'] as const,
    registers,
  });
  const faults = new Counter({
    name: `${P}fault_firings_total`,
    help: 'Requests a fault rule acted on, by rule id',
    labelNames: ['rule'] as const,
    registers,
  });
  const removed = new Counter({
    name: `${P}entries_removed_total`,
    help: 'Entries removed, by cause: evicted (quota), expired (idle), abandoned, deleted-rest, deleted-admin, discarded',
    labelNames: ['cause'] as const,
    registers,
  });
  const duration = new Histogram({
    name: `${P}request_duration_seconds`,
    help: 'Time from request to response, by operation',
    labelNames: ['operation'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
    registers,
  });
  const entries = new Gauge({
    name: `${P}stored_entries`,
    help: 'Committed entries, by repository',
    labelNames: ['repository'] as const,
    registers,
  });
  const bytes = new Gauge({
    name: `${P}stored_bytes`,
    help: 'Committed bytes, by repository',
    labelNames: ['repository'] as const,
    registers,
  });
  for (const cause of ['evicted', 'expired', 'abandoned', 'deleted-rest', 'deleted-admin', 'discarded'])
    removed.inc({ cause }, 0);

  const record = (e: TrafficEvent) => {
    requests.inc({ operation: e.op, outcome: e.outcome, client: e.client });
    duration.observe({ operation: e.op }, e.durationMs / 1000);
    if (e.outcome === 'hit-exact' || e.outcome === 'hit-prefix') hits.inc({ match: e.match ?? 'exact' });
    else if (e.outcome === 'miss') misses.inc({ reason: e.explanation?.reason ?? 'unexplained' });
    const rejection = REJECTIONS[e.outcome];
    if (rejection) rejections.inc({ reason: rejection });
    if (e.fault) for (const rule of e.fault.split(',')) faults.inc({ rule });
    if (e.bytes !== undefined && e.status < 300) {
      if (e.op === 'PutBlob' || e.op === 'PutBlock') uploaded.inc(e.bytes);
      else if (e.op === 'GetBlob') downloaded.inc(e.bytes);
    }
  };
  return {
    contentType: registry.contentType,
    record,
    removed: (cause) => removed.inc({ cause }),
    async render() {
      entries.reset();
      bytes.reset();
      for (const u of await options.usage()) {
        const repository = options.repositoryName(u.repositoryId) ?? u.repositoryId;
        entries.set({ repository }, u.count);
        bytes.set({ repository }, u.sizeBytes);
      }
      return registry.metrics();
    },
  };
}
