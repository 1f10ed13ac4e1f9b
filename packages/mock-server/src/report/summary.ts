/**
 * The traffic so far, summed up: hit ratio by client and by key prefix, bytes in and out, the slowest
 * requests, the most frequent miss reasons. Read by `GET /_admin/summary` (the UI) and the Markdown report.
 */
import type { TrafficEvent } from '../journal/types.js';

export interface HitCounts {
  lookups: number;
  hits: number;
  exact: number;
  prefix: number;
  misses: number;
  /** hits / lookups, 0..1 (0 when there were none). */
  hitRatio: number;
}

export interface TrafficSummary {
  /** ISO 8601 of the first and last event counted. */
  readonly from: string | null;
  readonly to: string | null;
  readonly requests: number;
  readonly bySurface: Readonly<Record<string, number>>;
  readonly byOutcome: Readonly<Record<string, number>>;
  readonly lookups: HitCounts;
  readonly byClient: readonly ({ client: string; requests: number } & HitCounts)[];
  readonly byKeyPrefix: readonly ({ keyPrefix: string } & HitCounts)[];
  readonly bytesUploaded: number;
  readonly bytesDownloaded: number;
  readonly missReasons: readonly { reason: string; count: number; example: string }[];
  readonly slowest: readonly Pick<
    TrafficEvent,
    'id' | 'time' | 'client' | 'op' | 'key' | 'outcome' | 'durationMs' | 'status'
  >[];
  readonly errors: number;
}

const UPLOAD_OPS = new Set(['PutBlob', 'PutBlock']);

/**
 * The first two `-`-separated parts of a key, with the dash: `npm-linux-x64-…` → `npm-linux-`,
 * `buildkit-blob-1-sha256:…` → `buildkit-blob-`, `index-buildkit-1-f921bd05#3` → `index-buildkit-`.
 */
export function keyPrefixOf(key: string): string {
  const first = key.indexOf('-');
  if (first < 0) return key;
  const second = key.indexOf('-', first + 1);
  return second < 0 ? key.slice(0, first + 1) : key.slice(0, second + 1);
}

const counts = (): HitCounts => ({ lookups: 0, hits: 0, exact: 0, prefix: 0, misses: 0, hitRatio: 0 });

function countLookup(c: HitCounts, e: TrafficEvent): void {
  if (e.outcome === 'hit-exact') c.exact++;
  else if (e.outcome === 'hit-prefix') c.prefix++;
  else if (e.outcome === 'miss') c.misses++;
  else return;
  c.lookups++;
  c.hits = c.exact + c.prefix;
  c.hitRatio = c.hits / c.lookups;
}

const inc = (m: Record<string, number>, k: string) => {
  m[k] = (m[k] ?? 0) + 1;
};

export function summarize(events: Iterable<TrafficEvent>, slowestCount = 10): TrafficSummary {
  let from: string | null = null;
  let to: string | null = null;
  let requests = 0;
  let errors = 0;
  let up = 0;
  let down = 0;
  const bySurface: Record<string, number> = {};
  const byOutcome: Record<string, number> = {};
  const lookups = counts();
  const clients = new Map<string, { requests: number } & HitCounts>();
  const prefixes = new Map<string, HitCounts>();
  const reasons = new Map<string, { count: number; example: string }>();
  const slow: TrafficEvent[] = [];
  for (const e of events) {
    requests++;
    from ??= e.time;
    to = e.time;
    inc(bySurface, e.surface);
    inc(byOutcome, e.outcome);
    if (e.outcome === 'error') errors++;
    let client = clients.get(e.client);
    if (!client) {
      client = { requests: 0, ...counts() };
      clients.set(e.client, client);
    }
    client.requests++;
    if (e.op === 'GetCacheEntryDownloadURL') {
      countLookup(lookups, e);
      countLookup(client, e);
      if (e.key !== undefined) {
        const p = keyPrefixOf(e.key);
        let c = prefixes.get(p);
        if (!c) {
          c = counts();
          prefixes.set(p, c);
        }
        countLookup(c, e);
      }
      if (e.outcome === 'miss') {
        const reason = e.explanation?.reason ?? 'unexplained';
        const r = reasons.get(reason);
        if (r) r.count++;
        else reasons.set(reason, { count: 1, example: e.reason ?? '' });
      }
    }
    if (e.status < 300 && e.bytes !== undefined) {
      if (UPLOAD_OPS.has(e.op)) up += e.bytes;
      else if (e.op === 'GetBlob') down += e.bytes;
    }
    if (slow.length < slowestCount || e.durationMs > slow[slow.length - 1]!.durationMs) {
      slow.push(e);
      slow.sort((a, b) => b.durationMs - a.durationMs);
      if (slow.length > slowestCount) slow.pop();
    }
  }
  return {
    from,
    to,
    requests,
    bySurface,
    byOutcome,
    lookups,
    byClient: [...clients].map(([client, c]) => ({ client, ...c })).sort((a, b) => b.requests - a.requests),
    byKeyPrefix: [...prefixes]
      .map(([keyPrefix, c]) => ({ keyPrefix, ...c }))
      .sort((a, b) => b.lookups - a.lookups || a.keyPrefix.localeCompare(b.keyPrefix)),
    bytesUploaded: up,
    bytesDownloaded: down,
    missReasons: [...reasons]
      .map(([reason, r]) => ({ reason, ...r }))
      .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason)),
    slowest: slow.map(({ id, time, client, op, key, outcome, durationMs, status }) => ({
      id,
      time,
      client,
      op,
      ...(key !== undefined ? { key } : {}),
      outcome,
      durationMs,
      status,
    })),
    errors,
  };
}
