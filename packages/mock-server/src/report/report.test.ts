import { describe, expect, it } from 'vitest';
import type { TrafficEvent } from '../journal/types.js';
import { renderReport } from './markdown.js';
import { keyPrefixOf, summarize } from './summary.js';

let id = 0;
const ev = (e: Partial<TrafficEvent>): TrafficEvent => ({
  id: ++id,
  time: '2026-01-01T00:00:00.000Z',
  op: 'GetCacheEntryDownloadURL',
  surface: 'twirp',
  client: 'buildkit',
  method: 'POST',
  url: '/',
  outcome: 'miss',
  durationMs: 1,
  status: 200,
  ...e,
});

describe('summary and report', () => {
  it('sums hit ratios by client and key prefix, bytes, miss reasons and the slowest requests', () => {
    const s = summarize([
      ev({ key: 'npm-linux-a', outcome: 'hit-exact', client: 'actions-cache' }),
      ev({
        key: 'npm-linux-b',
        outcome: 'miss',
        client: 'actions-cache',
        explanation: { reason: 'version-mismatch', key: 'npm-linux-b', message: 'm' },
        reason: 'other version',
      }),
      ev({ key: 'buildkit-blob-1-sha256:aa', outcome: 'hit-prefix' }),
      ev({ op: 'PutBlock', surface: 'blob', outcome: 'ok', bytes: 100, client: 'azure-sdk', durationMs: 50 }),
      ev({ op: 'GetBlob', surface: 'blob', outcome: 'ok', bytes: 40, client: 'azure-sdk' }),
    ]);
    expect(s.lookups).toMatchObject({ lookups: 3, hits: 2, misses: 1 });
    expect(s.byClient.find((c) => c.client === 'actions-cache')).toMatchObject({
      lookups: 2,
      hits: 1,
      hitRatio: 0.5,
    });
    expect(s.byKeyPrefix.map((p) => p.keyPrefix)).toEqual(['npm-linux-', 'buildkit-blob-']);
    expect([s.bytesUploaded, s.bytesDownloaded]).toEqual([100, 40]);
    expect(s.missReasons).toEqual([{ reason: 'version-mismatch', count: 1, example: 'other version' }]);
    expect(s.slowest[0]).toMatchObject({ op: 'PutBlock', durationMs: 50 });
    const md = renderReport({ summary: s, stored: [{ repository: 'o/r', count: 2, sizeBytes: 2048 }] });
    expect(md).toContain('## Cache traffic (gha-cache-mock)');
    expect(md).toContain('| Hit ratio | 67% |');
    expect(md).toContain('| actions-cache | 2 | 1 | 1 | 50% |');
    expect(md).toContain('| version-mismatch | 1 | other version |');
    expect(md).toContain('| o/r | 2 | 2.0 KiB |');
  });

  it('escapes pipes in keys and says when nothing happened', () => {
    expect(keyPrefixOf('index-buildkit-1-f921bd05#3')).toBe('index-buildkit-');
    expect(keyPrefixOf('plain')).toBe('plain');
    expect(renderReport({ summary: summarize([]) })).toContain('No cache requests yet.');
    const md = renderReport({ summary: summarize([ev({ key: 'a|b`c', durationMs: 3 })]) });
    expect(md).toContain("`a\\|b'c`");
  });
});
