import { describe, expect, it } from 'vitest';
import { createPrettySink, formatBytes, formatLogLine, shortenMiddle } from './pretty.js';

describe('pretty log', () => {
  it('shortens long keys in the middle, never dropping either end', () => {
    const key = `buildkit-blob-1-sha256:${'a'.repeat(60)}end`;
    const short = shortenMiddle(key, 30);
    expect(short).toHaveLength(30);
    expect(short.startsWith('buildkit-blob-1')).toBe(true);
    expect(short.endsWith('aend')).toBe(true);
    expect(shortenMiddle('short', 30)).toBe('short');
  });

  it('prints one aligned request line with client, op, key, outcome, reason, size and duration', () => {
    const line = JSON.stringify({
      level: 30,
      time: Date.UTC(2026, 0, 1, 12, 0, 0, 5),
      msg: 'request',
      client: 'actions-cache',
      op: 'GetCacheEntryDownloadURL',
      key: 'npm-linux-abc',
      outcome: 'miss',
      reason: 'nothing has this key',
      status: 200,
      bytes: 2048,
      ms: 1.25,
    });
    const out = formatLogLine(line, { color: false });
    expect(out).toMatch(
      /^12:00:00\.005 actions-cache +GetCacheEntryDownloadURL +npm-linux-abc +miss +200 +2\.0 KiB +1\.3 ms {2}nothing has this key\n$/,
    );
    expect(formatLogLine(line, { color: true })).toContain('\x1b[33mmiss');
  });

  it('prints other lines with their level and fields, and passes non-JSON through', () => {
    const sink: string[] = [];
    createPrettySink({ write: (s) => sink.push(s) }, { color: false }).write(
      `${JSON.stringify({ level: 40, time: 0, msg: 'sweep', idle: 2 })}\nnot json\n`,
    );
    expect(sink).toEqual(['00:00:00.000 WARN  sweep {"idle":2}\n', 'not json\n']);
    expect(formatBytes(5)).toBe('5 B');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MiB');
  });
});
