/** The Markdown summary of the traffic, shaped for `$GITHUB_STEP_SUMMARY`. */
import { formatBytes, shortenMiddle } from '../log/pretty.js';
import type { HitCounts, TrafficSummary } from './summary.js';

export interface StoredUsage {
  readonly repository: string;
  readonly count: number;
  readonly sizeBytes: number;
}

export interface ReportInput {
  readonly summary: TrafficSummary;
  /** Committed entries per repository, when the server is asked (not from a traffic log file). */
  readonly stored?: readonly StoredUsage[];
  /** Removals by cause (evicted, expired, …), when known. */
  readonly removals?: Readonly<Record<string, number>>;
  /** How many events the ring holds at most (the report covers at most that many). */
  readonly capacity?: number;
}

/** Inline code that survives any key: backticks become `'`, pipes are escaped for tables. */
const code = (s: string) => `\`${shortenMiddle(s, 80).replaceAll('`', "'").replaceAll('|', '\\|')}\``;
const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
const pct = (c: HitCounts) => (c.lookups === 0 ? '–' : `${Math.round(c.hitRatio * 100)}%`);

export function renderReport(input: ReportInput): string {
  const { summary: s } = input;
  const out: string[] = ['## Cache traffic (gha-cache-mock)', ''];
  if (s.requests === 0) {
    out.push('No cache requests yet.', '');
    return out.join('\n');
  }
  const surfaces = Object.entries(s.bySurface)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  out.push(
    `${s.requests} requests (${surfaces}) from ${s.from} to ${s.to}.`,
    '',
    '| | |',
    '|---|---|',
    `| Lookups | ${s.lookups.lookups}: ${s.lookups.hits} hits (${s.lookups.exact} exact, ${s.lookups.prefix} prefix), ${s.lookups.misses} misses |`,
    `| Hit ratio | ${pct(s.lookups)} |`,
    `| Saved | ${s.byOutcome.committed ?? 0} entries committed, ${s.byOutcome.conflict ?? 0} conflicts |`,
    `| Uploaded / downloaded | ${formatBytes(s.bytesUploaded)} / ${formatBytes(s.bytesDownloaded)} |`,
    `| Refused | ${s.byOutcome['rate-limited'] ?? 0} rate limited, ${s.byOutcome.quota ?? 0} over quota, ${s.byOutcome['write-denied'] ?? 0} write denied, ${s.byOutcome['read-denied'] ?? 0} read denied |`,
    `| Faults injected / errors | ${s.byOutcome.fault ?? 0} / ${s.errors} |`,
  );
  if (input.removals) {
    const r = input.removals;
    out.push(
      `| Removed | ${r.evicted ?? 0} evicted, ${r.expired ?? 0} expired, ${r.abandoned ?? 0} abandoned, ${(r['deleted-rest'] ?? 0) + (r['deleted-admin'] ?? 0)} deleted |`,
    );
  }
  out.push('');
  if (s.lookups.lookups > 0) {
    out.push(
      '### Hit ratio by client',
      '',
      '| Client | Lookups | Hits | Misses | Hit ratio |',
      '|---|--:|--:|--:|--:|',
    );
    for (const c of s.byClient.filter((c) => c.lookups > 0)) {
      out.push(`| ${c.client} | ${c.lookups} | ${c.hits} | ${c.misses} | ${pct(c)} |`);
    }
    out.push(
      '',
      '### Hit ratio by key prefix',
      '',
      '| Prefix | Lookups | Hits | Misses | Hit ratio |',
      '|---|--:|--:|--:|--:|',
    );
    for (const p of s.byKeyPrefix.slice(0, 15)) {
      out.push(`| ${code(p.keyPrefix)} | ${p.lookups} | ${p.hits} | ${p.misses} | ${pct(p)} |`);
    }
    out.push('');
  }
  if (s.missReasons.length > 0) {
    out.push('### Why lookups missed', '', '| Reason | Misses | Example |', '|---|--:|---|');
    for (const r of s.missReasons) out.push(`| ${r.reason} | ${r.count} | ${cell(r.example)} |`);
    out.push('');
  }
  out.push(
    '### Slowest requests',
    '',
    '| Time | Client | Operation | Key | Outcome | ms |',
    '|---|---|---|---|---|--:|',
  );
  for (const e of s.slowest.slice(0, 5)) {
    out.push(
      `| ${e.time.slice(11, 23)} | ${e.client} | ${e.op} | ${e.key !== undefined ? code(e.key) : ''} | ${e.outcome} | ${e.durationMs.toFixed(1)} |`,
    );
  }
  out.push('');
  if (input.stored && input.stored.length > 0) {
    out.push('### Stored', '', '| Repository | Entries | Size |', '|---|--:|--:|');
    for (const u of input.stored)
      out.push(`| ${cell(u.repository)} | ${u.count} | ${formatBytes(u.sizeBytes)} |`);
    out.push('');
  }
  if (input.capacity !== undefined && s.requests >= input.capacity) {
    out.push(`_Only the last ${input.capacity} requests are kept; older ones are not counted._`, '');
  }
  return out.join('\n');
}
