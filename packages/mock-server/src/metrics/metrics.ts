/**
 * Prometheus metrics (`GET /metrics`, names prefixed `gha_cache_`), fed by the traffic journal and the
 * removal ledger; stored entries and bytes are read from the store at scrape time. Labels never carry a
 * key, a token or a URL: only operation, outcome, client, match, reason, cause, rule and repository.
 *
 * prom-client (with its dependencies, a sixth of a start) is loaded at the first scrape, or once
 * `BUFFERED_EVENTS` requests have been answered: until then the events wait here and are all counted
 * when it comes, so a short test run never loads it and the figures are the same either way. The
 * process metrics (`processMetrics`) start counting when it is loaded.
 */
import type { TrafficJournal } from '../journal/journal.js';
import type { RemovalCause, RemovalLedger } from '../journal/removals.js';
import type { TrafficEvent } from '../journal/types.js';
import type { PrometheusMetrics, PrometheusOptions } from './prometheus.js';

export interface MetricsOptions extends PrometheusOptions {
  readonly journal: Pick<TrafficJournal, 'subscribe'>;
  readonly removals: Pick<RemovalLedger, 'onRemoval'>;
}

export interface MockMetrics {
  /** The text exposition and its content type. */
  scrape(): Promise<{ contentType: string; text: string }>;
  /** Stops listening to the journal. */
  close(): void;
}

/** Answered requests kept for prom-client before it is loaded (a few hundred KB at most). */
export const BUFFERED_EVENTS = 1000;

export function createMetrics(options: MetricsOptions): MockMetrics {
  let prometheus: PrometheusMetrics | undefined;
  let loading: Promise<PrometheusMetrics> | undefined;
  const events: TrafficEvent[] = [];
  const removals: RemovalCause[] = [];
  let closed = false;
  const load = () => {
    loading ??= import('./prometheus.js').then(({ createPrometheusMetrics }) => {
      const loaded = createPrometheusMetrics(options);
      for (const e of events.splice(0)) loaded.record(e);
      for (const cause of removals.splice(0)) loaded.removed(cause);
      prometheus = loaded;
      return loaded;
    });
    return loading;
  };
  const unsubscribe = options.journal.subscribe((e) => {
    if (prometheus) return prometheus.record(e);
    events.push(e);
    // The loading goes on while requests are answered; its events are counted when it is done.
    if (events.length === BUFFERED_EVENTS) load().catch(() => undefined);
  });
  options.removals.onRemoval((r) => {
    if (closed) return;
    if (prometheus) prometheus.removed(r.cause);
    else removals.push(r.cause);
  });
  return {
    async scrape() {
      const loaded = await load();
      return { contentType: loaded.contentType, text: await loaded.render() };
    },
    close() {
      closed = true;
      unsubscribe();
    },
  };
}
