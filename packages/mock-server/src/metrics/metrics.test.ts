import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp, VERSION } from '../../testing/twirp-helpers.js';

let t: TestApp;
afterEach(async () => {
  await t.app.close();
});

/** `name{labels} value` lines of a Prometheus text exposition. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('GET /metrics', () => {
  it('counts requests, hits by match, misses by reason, bytes, rejections, removals and stored entries', async () => {
    t = await createTestApp();
    await t.save('npm-a', 'hello');
    await t.get('npm-a');
    await t.get('npm-');
    await t.get('npm-a', [], undefined, 'f'.repeat(64));
    t.app.mock.policies.update({ quotaExhausted: true });
    await t.rpc('CreateCacheEntry', { key: 'b', version: VERSION });
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parseMetrics(res.body);
    expect(
      m.get(
        'gha_cache_requests_total{operation="GetCacheEntryDownloadURL",outcome="hit-exact",client="unknown"}',
      ),
    ).toBe(1);
    expect(m.get('gha_cache_lookup_hits_total{match="exact"}')).toBe(1);
    expect(m.get('gha_cache_lookup_hits_total{match="prefix"}')).toBe(1);
    expect(m.get('gha_cache_lookup_misses_total{reason="version-mismatch"}')).toBe(1);
    expect(m.get('gha_cache_rejections_total{reason="quota"}')).toBe(1);
    expect(m.get('gha_cache_stored_entries{repository="octo-org/octo-repo"}')).toBe(1);
    expect(m.get('gha_cache_stored_bytes{repository="octo-org/octo-repo"}')).toBe(5);
    expect(m.get('gha_cache_entries_removed_total{cause="evicted"}')).toBe(0);
    expect(m.get('gha_cache_request_duration_seconds_count{operation="GetCacheEntryDownloadURL"}')).toBe(3);
    expect(res.body).not.toMatch(/sig=|Bearer|eyJ/);
  });
});

describe('GET /_ui/', () => {
  it('serves the UI from the package with a same-origin CSP, and nothing outside it', async () => {
    t = await createTestApp();
    const page = await t.app.inject({ method: 'GET', url: '/_ui/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect(page.headers['access-control-allow-origin']).toBeUndefined();
    expect(page.body).toContain('/_ui/app.js');
    expect((await t.app.inject({ method: 'GET', url: '/_ui/app.js' })).headers['content-type']).toBe(
      'text/javascript; charset=utf-8',
    );
    expect((await t.app.inject({ method: 'GET', url: '/_ui' })).headers.location).toBe('/_ui/');
    for (const url of ['/_ui/..%2Fpackage.json', '/_ui/nope.js', '/_ui/%2e%2e']) {
      expect((await t.app.inject({ method: 'GET', url })).statusCode).toBe(404);
    }
  });
});
