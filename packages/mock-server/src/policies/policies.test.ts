/**
 * GitHub's cache policies through the Twirp API (app.inject): quota and LRU eviction (C-48, C-50),
 * idle expiry (C-49), the Create rate limit (C-51), hard-quota mode (C-52), all on the mock's clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, MAIN_RW, type TestApp, VERSION } from '../../testing/twirp-helpers.js';
import { createAdvanceableClock, createManualClock } from '../clock.js';
import { PolicySettingsError } from './settings.js';

const DAY = 86_400_000;
let t: TestApp;
afterEach(async () => {
  await t?.app.close();
});

const create = (key: string, token?: string) => t.rpc('CreateCacheEntry', { key, version: VERSION }, token);
const twirpError = (res: { statusCode: number; body: string }) => ({
  status: res.statusCode,
  ...(JSON.parse(res.body) as { code: string; msg: string }),
});
const keys = async () => (await t.app.mock.storage.metadata.listEntries()).map((e) => e.key);

describe('clock', () => {
  it('app.mock.clock is advanceable: base time + an offset that only grows', async () => {
    const base = createManualClock(1_000);
    const clock = createAdvanceableClock(base);
    expect(clock.now()).toBe(1_000);
    clock.advance(500);
    base.advance(10);
    expect(clock.now()).toBe(1_510);
    expect(clock.offsetMs).toBe(500);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    const real = createAdvanceableClock();
    expect(Math.abs(real.now() - Date.now())).toBeLessThan(1000);
  });

  it('C-18: advancing the clock does not expire runtime tokens (exp/nbf stay on real time)', async () => {
    t = await createTestApp();
    const token = t.token();
    t.app.mock.clock.advance(30 * DAY);
    expect((await create('after-30-days', token)).statusCode).toBe(200);
  });
});

describe('quota and eviction', () => {
  it('C-48: a Finalize over the quota evicts least-recently-accessed entries; the new entry survives', async () => {
    t = await createTestApp({ quotaBytes: 10 });
    await t.save('a', '1234');
    await t.save('b', '1234');
    expect((await t.get('a')).ok).toBe(true); // b is now the least recently used
    await t.save('c', '1234');
    expect(await keys()).toEqual(['a', 'c']);
    expect(await t.app.mock.policies.usage('1')).toEqual({ sizeBytes: 8, count: 2 });
    expect((await t.get('b')).ok).toBe(false);
  });

  it('C-48: ties in last access go by creation order; other repositories are untouched', async () => {
    t = await createTestApp({ quotaBytes: 6 });
    const other = t.token(MAIN_RW, '2');
    await t.save('other', '123456', other);
    const first = await t.save('first', '12');
    const second = await t.save('second', '12');
    // Same last access for both.
    for (const id of [first, second])
      await t.app.mock.storage.metadata.touchEntry(Number(id), t.clock.now(), 0);
    await t.save('third', '1234');
    expect(await keys()).toEqual(['other', 'second', 'third']);
    expect(await t.app.mock.policies.usage('2')).toEqual({ sizeBytes: 6, count: 1 });
  });

  it('C-48: an entry larger than the quota alone is kept and everything else goes', async () => {
    t = await createTestApp({ quotaBytes: 3 });
    await t.save('small', '12');
    await t.save('huge', '12345');
    expect(await keys()).toEqual(['huge']);
  });

  it('C-50: an evicted entry’s blob stays readable until its issued download URL expires', async () => {
    t = await createTestApp({ quotaBytes: 5 });
    await t.save('old', 'hello');
    const url = new URL(String((await t.get('old')).signed_download_url));
    await t.save('new', 'world');
    expect(await keys()).toEqual(['new']);
    const read = () => t.app.inject({ method: 'GET', url: url.pathname + url.search });
    const during = await read();
    expect(during.statusCode).toBe(200);
    expect(during.body).toBe('hello');
    t.app.mock.clock.advance(10 * 60_000);
    await t.app.mock.sweep();
    expect((await read()).statusCode).toBe(403);
    const blobId = url.pathname.split('/').pop()!;
    expect(await t.app.mock.storage.blobs.getBlobProperties(blobId)).toBeUndefined();
  });

  it('a lowered quota applies at the next sweep; quotaBytes null means unlimited', async () => {
    t = await createTestApp({ quotaBytes: null });
    for (const k of ['a', 'b', 'c']) await t.save(k, '1234');
    expect(await t.app.mock.policies.usage('1')).toEqual({ sizeBytes: 12, count: 3 });
    t.app.mock.policies.update({ quotaBytes: 8 });
    await t.app.mock.sweep();
    expect(await keys()).toEqual(['b', 'c']);
  });

  it('the default quota is 10 GB (10·10⁹ bytes)', async () => {
    t = await createTestApp();
    expect(t.app.mock.policies.get().quotaBytes).toBe(10_000_000_000);
  });
});

describe('idle expiry', () => {
  it('C-49: an entry idle for 7 days (simulated clock) is gone at the next lookup', async () => {
    t = await createTestApp();
    await t.save('idle');
    t.app.mock.clock.advance(8 * DAY);
    expect((await t.get('idle')).ok).toBe(false);
    expect(await keys()).toEqual([]);
  });

  it('C-49: ... and at the next sweep, exactly at 7 days; a hit restarts the idle time', async () => {
    t = await createTestApp();
    await t.save('idle'); // last access = now - 1 s (save advances the clock by 1 s)
    await t.save('used');
    t.app.mock.clock.advance(6 * DAY);
    expect((await t.get('used')).ok).toBe(true);
    t.app.mock.clock.advance(DAY - 1000);
    await t.app.mock.sweep();
    expect(await keys()).toEqual(['used']);
    t.app.mock.clock.advance(6 * DAY);
    await t.app.mock.sweep();
    expect(await keys()).toEqual(['used']);
  });

  it('an idle entry frees its key for a new Create; idleTtlMs null keeps entries forever', async () => {
    t = await createTestApp();
    await t.save('k');
    t.app.mock.clock.advance(7 * DAY);
    expect((await create('k')).json().ok).toBe(true);
    t.app.mock.policies.update({ idleTtlMs: null });
    await t.save('forever');
    t.app.mock.clock.advance(365 * DAY);
    await t.app.mock.sweep();
    expect((await t.get('forever')).ok).toBe(true);
  });

  it('C-28: an abandoned reservation expires on the advanced clock and frees its key', async () => {
    t = await createTestApp({ pendingTtlMs: 60 * 60_000 });
    expect((await create('pending')).json().ok).toBe(true);
    t.app.mock.clock.advance(60 * 60_000);
    expect((await create('pending')).json().ok).toBe(true);
    t.app.mock.clock.advance(60 * 60_000);
    await t.app.mock.sweep();
    expect(await keys()).toEqual([]);
  });
});

describe('rate limit', () => {
  it('C-51: the 201st Create in 60 s → 429 resource_exhausted, integer Retry-After ≥ 1; other repos unaffected', async () => {
    t = await createTestApp();
    expect(t.app.mock.policies.get().rateLimitPerMinute).toBe(200);
    for (let i = 0; i < 200; i++) {
      t.clock.advance(100);
      expect((await create(`k${i}`)).statusCode).toBe(200);
    }
    const limited = await create('k200');
    expect(twirpError(limited)).toEqual({
      status: 429,
      code: 'resource_exhausted',
      msg: 'rate limit exceeded',
    });
    // The first slot was taken 19.9 s ago: it frees in 40.1 s, rounded up.
    expect(limited.headers['retry-after']).toBe('41');
    expect((await create('k200', t.token(MAIN_RW, '2'))).statusCode).toBe(200);
    t.app.mock.clock.advance(40_000);
    expect((await create('k200')).statusCode).toBe(429);
    t.app.mock.clock.advance(100);
    expect((await create('k200')).statusCode).toBe(200);
  });

  it('C-51: the window slides: Retry-After is the time until the oldest slot in it frees', async () => {
    t = await createTestApp({ rateLimitPerMinute: 3 });
    for (const k of ['a', 'b', 'c']) {
      expect((await create(k)).statusCode).toBe(200);
      t.app.mock.clock.advance(10_000);
    }
    expect((await create('d')).headers['retry-after']).toBe('30');
    t.app.mock.clock.advance(29_500);
    expect((await create('d')).headers['retry-after']).toBe('1');
    t.app.mock.clock.advance(500);
    expect((await create('d')).statusCode).toBe(200);
    expect((await create('e')).headers['retry-after']).toBe('10');
  });

  it('a refused Create takes no slot; the limit can be changed or turned off (nothing counted) at run time', async () => {
    t = await createTestApp({ rateLimitPerMinute: 1 });
    expect((await create('a')).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) expect((await create('b')).statusCode).toBe(429);
    t.app.mock.policies.update({ rateLimitPerMinute: null });
    for (let i = 0; i < 250; i++) expect((await create(`x${i}`)).statusCode).toBe(200);
    t.app.mock.policies.update({ rateLimitPerMinute: 2 });
    expect((await create('c')).statusCode).toBe(200); // 'a' and 'c' in the window
    expect((await create('d')).statusCode).toBe(429);
    t.app.mock.clock.advance(60_000);
    expect((await create('d')).statusCode).toBe(200);
  });
});

describe('hard-quota mode', () => {
  it('C-52: Create and Finalize → 412 failed_precondition, msg containing insufficient usage', async () => {
    t = await createTestApp();
    expect((await create('pending')).statusCode).toBe(200);
    t.app.mock.policies.update({ quotaExhausted: true });
    const created = twirpError(await create('new'));
    expect(created).toMatchObject({ status: 412, code: 'failed_precondition' });
    expect(created.msg).toContain('insufficient usage');
    const finalized = twirpError(
      await t.rpc('FinalizeCacheEntryUpload', { key: 'pending', version: VERSION, size_bytes: '0' }),
    );
    expect(finalized).toMatchObject({ status: 412, code: 'failed_precondition' });
    expect(finalized.msg).toContain('insufficient usage');
    // Reads are unaffected; turning the mode off restores writes.
    expect((await t.get('pending')).ok).toBe(false);
    t.app.mock.policies.update({ quotaExhausted: false });
    await t.save('after');
  });

  it('C-52: set at start with quotaExhausted: true', async () => {
    t = await createTestApp({ quotaExhausted: true });
    expect((await create('k')).statusCode).toBe(412);
  });
});

describe('visibility delay (eventual consistency)', () => {
  it('off by default: a committed entry is found at once', async () => {
    t = await createTestApp();
    expect(t.app.mock.policies.get().visibilityDelayMs).toBe(0);
    await t.save('k');
    expect((await t.get('k')).ok).toBe(true);
  });

  it('a committed entry is invisible to lookups until the delay passes; Create of it still answers 409', async () => {
    t = await createTestApp({ visibilityDelayMs: 5000 });
    await t.save('k'); // committed at T, the helper then moves the clock 1 s on
    expect((await t.get('k')).ok).toBe(false);
    expect((await t.get('other', ['k'])).ok).toBe(false); // restore keys too
    const again = await create('k');
    expect(twirpError(again)).toMatchObject({ status: 409, code: 'already_exists' });
    t.app.mock.clock.advance(3999);
    expect((await t.get('k')).ok).toBe(false);
    t.app.mock.clock.advance(1);
    expect((await t.get('k')).ok).toBe(true);
    // Nothing else changed: the entry counts in usage and REST-style listings from its commit on.
    expect(await keys()).toEqual(['k']);
  });

  it('a prefix lookup whose newest match is still invisible misses; older visible entries serve exact keys', async () => {
    t = await createTestApp({ visibilityDelayMs: 60_000 });
    await t.save('deps-old');
    t.app.mock.clock.advance(60_000);
    expect((await t.get('deps-')).matched_key).toBe('deps-old');
    await t.save('deps-new');
    expect((await t.get('deps-')).ok).toBe(false);
    expect((await t.get('deps-old')).matched_key).toBe('deps-old');
    t.app.mock.clock.advance(60_000);
    expect((await t.get('deps-')).matched_key).toBe('deps-new');
  });

  it('changes at run time and applies to entries already committed', async () => {
    t = await createTestApp();
    await t.save('k');
    t.app.mock.policies.update({ visibilityDelayMs: 10_000 });
    expect((await t.get('k')).ok).toBe(false);
    t.app.mock.policies.update({ visibilityDelayMs: 0 });
    expect((await t.get('k')).ok).toBe(true);
    expect(() => t.app.mock.policies.update({ visibilityDelayMs: -1 })).toThrow(PolicySettingsError);
    expect(() => t.app.mock.policies.update({ visibilityDelayMs: null as never })).toThrow(
      PolicySettingsError,
    );
  });
});

describe('app.mock.policies', () => {
  it('gets the defaults, updates some fields and rejects bad values without applying anything', async () => {
    t = await createTestApp();
    expect(t.app.mock.policies.get()).toEqual({
      quotaBytes: 10_000_000_000,
      idleTtlMs: 7 * DAY,
      rateLimitPerMinute: 200,
      quotaExhausted: false,
      visibilityDelayMs: 0,
    });
    expect(t.app.mock.policies.update({ quotaBytes: 1024, idleTtlMs: null })).toMatchObject({
      quotaBytes: 1024,
      idleTtlMs: null,
      rateLimitPerMinute: 200,
    });
    const bad: unknown[] = [
      { quotaBytes: -1 },
      { quotaBytes: 1.5 },
      { idleTtlMs: 0 },
      { rateLimitPerMinute: 0 },
      { quotaExhausted: 'yes' },
      { quota: 5 },
    ];
    for (const patch of bad) {
      expect(() => t.app.mock.policies.update({ rateLimitPerMinute: 7, ...(patch as object) })).toThrow(
        PolicySettingsError,
      );
    }
    expect(t.app.mock.policies.get().rateLimitPerMinute).toBe(200);
    expect(() => t.app.mock.policies.update({ quota: 5 } as never)).toThrow(/unknown policy "quota"/);
  });

  it('rejects bad values given at start', async () => {
    await expect(createTestApp({ rateLimitPerMinute: 0 })).rejects.toThrow(PolicySettingsError);
  });
});
