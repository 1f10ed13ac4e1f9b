import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  backoffDelayMs,
  createRetryInterceptor,
  DEFAULT_RETRY_OPTIONS,
  type ExchangeEvent,
  parseRetryAfterMs,
  replayable,
} from './retry.js';

const ORIGIN = 'http://blob.test';

function errWithCode(code: string): Error {
  return Object.assign(new Error(`simulated ${code}`), { code });
}

describe('retry interceptor', () => {
  let agent: MockAgent;
  let events: ExchangeEvent[];

  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    events = [];
  });
  afterEach(async () => {
    await agent.close();
  });

  function client(opts: Parameters<typeof createRetryInterceptor>[0] = {}) {
    return agent.compose(
      createRetryInterceptor({ baseDelayMs: 1, maxDelayMs: 5, onExchange: (e) => events.push(e), ...opts }),
    );
  }

  it.each([500, 502, 503, 504])('C-85: retries HTTP %i and returns the later success', async (status) => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'GET' }).reply(status, 'nope').times(2);
    pool.intercept({ path: '/a', method: 'GET' }).reply(200, 'ok');
    const res = await client().request({ origin: ORIGIN, path: '/a', method: 'GET' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok');
    expect(events).toHaveLength(1);
    expect(events[0]?.attempts).toBe(3);
    expect(events[0]?.retries.map((r) => r.reason)).toEqual([`HTTP ${status}`, `HTTP ${status}`]);
  });

  it('gives up after maxAttempts and hands the last response (body intact) to the caller', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'POST' }).reply(503, '{"code":"unavailable","msg":"down"}').times(3);
    const res = await client({ maxAttempts: 3 }).request({
      origin: ORIGIN,
      path: '/a',
      method: 'POST',
      body: 'x',
    });
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toBe('{"code":"unavailable","msg":"down"}');
    expect(events[0]?.attempts).toBe(3);
  });

  it.each([400, 401, 403, 404, 409, 412, 416])('C-85: never retries HTTP %i', async (status) => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'GET' }).reply(status, 'no');
    const res = await client().request({ origin: ORIGIN, path: '/a', method: 'GET' });
    expect(res.statusCode).toBe(status);
    await res.body.dump();
    expect(events[0]?.attempts).toBe(1);
    expect(events[0]?.retries).toEqual([]);
  });

  it.each([
    'ECONNRESET',
    'ECONNREFUSED',
    'EPIPE',
    'UND_ERR_SOCKET',
    'UND_ERR_HEADERS_TIMEOUT',
    'UND_ERR_BODY_TIMEOUT',
  ])('retries a %s before the response', async (code) => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'PUT' }).replyWithError(errWithCode(code));
    pool.intercept({ path: '/a', method: 'PUT' }).reply(201, '');
    const res = await client().request({
      origin: ORIGIN,
      path: '/a',
      method: 'PUT',
      body: Buffer.from('abc'),
    });
    expect(res.statusCode).toBe(201);
    await res.body.dump();
    expect(events[0]?.retries.map((r) => r.reason)).toEqual([code]);
  });

  it('fails with the last network error once attempts run out', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'GET' }).replyWithError(errWithCode('ECONNRESET')).times(2);
    await expect(
      client({ maxAttempts: 2 }).request({ origin: ORIGIN, path: '/a', method: 'GET' }),
    ).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(events[0]?.attempts).toBe(2);
    expect(events[0]?.error).toBe('ECONNRESET');
  });

  it('does not retry errors that are not transient (e.g. ENOTFOUND)', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'GET' }).replyWithError(errWithCode('ENOTFOUND'));
    await expect(client().request({ origin: ORIGIN, path: '/a', method: 'GET' })).rejects.toMatchObject({
      code: 'ENOTFOUND',
    });
    expect(events[0]?.attempts).toBe(1);
  });

  it('does not retry a non-replayable (stream) body', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'PUT' }).reply(503, 'busy');
    async function* gen() {
      yield Buffer.from('abc');
    }
    const res = await client().request({
      origin: ORIGIN,
      path: '/a',
      method: 'PUT',
      body: gen() as unknown as Buffer,
    });
    expect(res.statusCode).toBe(503);
    await res.body.dump();
    expect(events[0]?.attempts).toBe(1);
  });

  it('retries a replayable iterable body', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'PUT' }).reply(500, 'x');
    pool.intercept({ path: '/a', method: 'PUT' }).reply(201, '');
    const body = replayable({
      async *[Symbol.asyncIterator]() {
        yield Buffer.from('abc');
      },
    });
    const res = await client().request({
      origin: ORIGIN,
      path: '/a',
      method: 'PUT',
      body: body as unknown as Buffer,
    });
    expect(res.statusCode).toBe(201);
    await res.body.dump();
    expect(events[0]?.attempts).toBe(2);
  });

  it('C-85: waits out a 429 whose Retry-After is within the cap', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: '/a', method: 'POST' })
      .reply(429, 'slow down', { headers: { 'retry-after': '0' } });
    pool
      .intercept({ path: '/a', method: 'POST' })
      .reply(429, 'slow down', { headers: { 'retry-after-ms': '20' } });
    pool.intercept({ path: '/a', method: 'POST' }).reply(200, '{}');
    const t0 = Date.now();
    const res = await client().request({ origin: ORIGIN, path: '/a', method: 'POST', body: '{}' });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(18);
    expect(events[0]?.retries).toEqual([
      { reason: 'HTTP 429', delayMs: 0 },
      { reason: 'HTTP 429', delayMs: 20 },
    ]);
  });

  it('hands a 429 with a long Retry-After straight to the caller', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: '/a', method: 'POST' })
      .reply(429, '{"code":"resource_exhausted","msg":"rate limit exceeded"}', {
        headers: { 'retry-after': '120' },
      });
    const res = await client({ maxRetryAfterMs: 60_000 }).request({
      origin: ORIGIN,
      path: '/a',
      method: 'POST',
      body: '{}',
    });
    expect(res.statusCode).toBe(429);
    expect(res.headers['retry-after']).toBe('120');
    await res.body.dump();
    expect(events[0]?.attempts).toBe(1);
  });

  it('retries a 2xx whose body the caller rejects, then accepts a valid one', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'POST' }).reply(200, '<html>proxy</html>');
    pool.intercept({ path: '/a', method: 'POST' }).reply(200, '{"ok":true}');
    const res = await client().request({
      origin: ORIGIN,
      path: '/a',
      method: 'POST',
      body: '{}',
      ghaCache: { validateResponse: (_s: number, _h: unknown, b: Buffer) => b.toString().startsWith('{') },
    } as never);
    expect(await res.body.text()).toBe('{"ok":true}');
    expect(events[0]?.retries.map((r) => r.reason)).toEqual(['invalid body']);
  });

  it('reports attempts through hints.state', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'POST' }).reply(502, '').times(1);
    pool.intercept({ path: '/a', method: 'POST' }).reply(409, '{}');
    const state = { attempts: 0 };
    const res = await client().request({
      origin: ORIGIN,
      path: '/a',
      method: 'POST',
      body: '{}',
      ghaCache: { state },
    } as never);
    expect(res.statusCode).toBe(409);
    await res.body.dump();
    expect(state.attempts).toBe(2);
  });

  it('aborts during a backoff wait', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/a', method: 'GET' }).reply(503, '');
    const ac = new AbortController();
    const p = client({ baseDelayMs: 10_000, maxDelayMs: 10_000 }).request({
      origin: ORIGIN,
      path: '/a',
      method: 'GET',
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('redacts the SAS signature in exchange events', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: (p) => p.startsWith('/c/b'), method: 'GET' }).reply(200, 'x');
    const res = await client().request({
      origin: ORIGIN,
      path: '/c/b?sv=1&sig=SECRET%2B&se=2',
      method: 'GET',
    });
    await res.body.dump();
    expect(events[0]?.url).toBe('http://blob.test/c/b?sv=1&sig=REDACTED&se=2');
  });
});

describe('retry helpers', () => {
  it('parses Retry-After in seconds, ms headers and HTTP dates', () => {
    expect(parseRetryAfterMs({ 'retry-after': '3' })).toBe(3000);
    expect(parseRetryAfterMs({ 'x-ms-retry-after-ms': '50' })).toBe(50);
    expect(parseRetryAfterMs({ 'retry-after-ms': '7', 'retry-after': '9' })).toBe(7);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:10 GMT' }, now)).toBe(10_000);
    expect(parseRetryAfterMs({ 'retry-after': 'soon' })).toBeUndefined();
    expect(parseRetryAfterMs({})).toBeUndefined();
  });

  it('C-85: backs off exponentially with jitter and a cap', () => {
    const opts = { ...DEFAULT_RETRY_OPTIONS, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelayMs(1, opts, () => 0)).toBe(50);
    expect(backoffDelayMs(1, opts, () => 0.999)).toBe(100);
    expect(backoffDelayMs(3, opts, () => 0)).toBe(200);
    expect(backoffDelayMs(10, opts, () => 0.999)).toBe(1000);
  });
});
