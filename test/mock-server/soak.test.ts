/**
 * The soak's short variant (test/soak/soak.mjs, 2 minutes): a mixed workload of real clients against
 * one server process, then no unexpected error, byte-identical reads, no RSS or descriptor growth after
 * warm-up, nothing staged or orphaned, usage equal to the entries. The long variant runs by hand:
 * `node test/soak/soak.mjs --duration 15m`.
 */
import { describe, expect, it } from 'vitest';
import { runSoak } from '../soak/soak.mjs';

describe('soak (2 minutes)', () => {
  it('a mixed workload leaves no error, no leak and nothing orphaned', { timeout: 240_000 }, async () => {
    const report = await runSoak({ durationMs: 120_000, warmupMs: 45_000, log: (line) => console.log(line) });
    const { samples, ...summary } = report;
    console.log(`[soak] ${JSON.stringify(summary)}`);
    console.log(
      `[soak] RSS MiB ${samples.map((s) => s.rssMiB).join(' ')}; fds ${samples.map((s) => s.fds).join(' ')}`,
    );
    expect(report.failures).toEqual([]);
    expect(report.counts['sdk upload']).toBeGreaterThan(10);
    expect(report.counts['@actions/cache restore']).toBeGreaterThan(3);
    expect(report.counts['fault rule added'] ?? 0).toBeGreaterThan(0);
  });
});
