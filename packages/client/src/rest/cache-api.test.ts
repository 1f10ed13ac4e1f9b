import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatTable } from '../cli/format.js';
import { BadResponseError, NotFoundError, RestApiError, ValidationError } from '../errors.js';
import type { ExchangeEvent } from '../http/retry.js';
import { createRestCacheClient, nextPageOf, type RestCacheClient } from './cache-api.js';

const ORIGIN = 'https://ghes.example';
const CACHES = '/api/v3/repos/octo-org/octo-repo/actions/caches';
const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };
const cache = {
  id: 7,
  ref: 'refs/heads/main',
  key: 'npm-a',
  version: 'v',
  last_accessed_at: '2026-11-26T12:00:00.000Z',
  created_at: '2026-11-26T11:00:00.000Z',
  size_in_bytes: 42,
};

describe('REST cache client', () => {
  let agent: MockAgent;
  let events: ExchangeEvent[];
  let rest: RestCacheClient;

  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    events = [];
    rest = createRestCacheClient({
      repository: 'octo-org/octo-repo',
      token: 'T',
      apiUrl: `${ORIGIN}/api/v3`,
      dispatcher: agent,
      retry: { baseDelayMs: 1, maxDelayMs: 2, maxAttempts: 3 },
      onExchange: (e) => events.push(e),
    });
  });
  afterEach(async () => {
    await rest.close();
    await agent.close();
  });

  it('keeps the API path prefix, sends GitHub headers, maps the list and its next page', async () => {
    agent
      .get(ORIGIN)
      .intercept({
        path: `${CACHES}?key=npm-&sort=size_in_bytes&per_page=1`,
        method: 'GET',
        headers: {
          authorization: 'Bearer T',
          accept: 'application/vnd.github+json',
          'x-github-api-version': '2022-11-28',
        },
      })
      .reply(
        200,
        { total_count: 2, actions_caches: [cache] },
        {
          headers: {
            ...JSON_HEADERS,
            link: `<${ORIGIN}${CACHES}?per_page=1&page=2>; rel="next", <${ORIGIN}${CACHES}?per_page=1&page=2>; rel="last"`,
          },
        },
      );
    const page = await rest.listCaches({ key: 'npm-', sort: 'size_in_bytes', perPage: 1 });
    expect(page).toEqual({
      totalCount: 2,
      nextPage: 2,
      caches: [
        {
          id: 7,
          ref: 'refs/heads/main',
          key: 'npm-a',
          version: 'v',
          lastAccessedAt: '2026-11-26T12:00:00.000Z',
          createdAt: '2026-11-26T11:00:00.000Z',
          sizeInBytes: 42,
        },
      ],
    });
    expect(events.map((e) => e.label)).toEqual(['ListCaches']);
  });

  it('retries a proxy page once through the one retry policy, then maps GitHub errors to typed errors', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: `${CACHES.replace('caches', 'cache')}/usage`, method: 'GET' })
      .reply(502, '<html>bad gateway</html>');
    pool
      .intercept({ path: `${CACHES.replace('caches', 'cache')}/usage`, method: 'GET' })
      .reply(
        200,
        { full_name: 'octo-org/octo-repo', active_caches_size_in_bytes: 5, active_caches_count: 1 },
        { headers: JSON_HEADERS },
      );
    expect(await rest.getCacheUsage()).toEqual({
      fullName: 'octo-org/octo-repo',
      activeCachesSizeInBytes: 5,
      activeCachesCount: 1,
    });
    expect(events[0]).toMatchObject({ attempts: 2, retries: [{ reason: 'HTTP 502' }] });

    pool
      .intercept({ path: `${CACHES}/9`, method: 'DELETE' })
      .reply(
        404,
        { message: 'Not Found', documentation_url: 'https://docs.github.com/rest', status: '404' },
        { headers: JSON_HEADERS },
      );
    const notFound = await rest.deleteCacheById(9).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(NotFoundError);
    expect(notFound).toMatchObject({
      code: 'ERR_NOT_FOUND',
      operation: 'DeleteCacheById',
      httpStatus: 404,
      serviceMessage: 'Not Found',
      documentationUrl: 'https://docs.github.com/rest',
    });

    pool.intercept({ path: `${CACHES}?key=k`, method: 'DELETE' }).reply(403, 'Forbidden');
    const forbidden = await rest.deleteCaches({ key: 'k' }).catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(RestApiError);
    expect(forbidden).toMatchObject({
      code: 'ERR_REST',
      httpStatus: 403,
      serviceMessage: expect.stringContaining('Forbidden'),
    });

    pool
      .intercept({ path: CACHES, method: 'GET' })
      .reply(200, { unexpected: true }, { headers: JSON_HEADERS });
    expect(await rest.listCaches().catch((e: unknown) => e)).toBeInstanceOf(BadResponseError);
  });

  it('validates its options and arguments before any request', async () => {
    expect(() => createRestCacheClient({ repository: 'nope', token: 'T' })).toThrow(ValidationError);
    expect(() => createRestCacheClient({ repository: 'a/b', token: '' })).toThrow(ValidationError);
    expect(() => createRestCacheClient({ repository: 'a/b', token: 'T', apiUrl: 'ftp://x' })).toThrow(
      ValidationError,
    );
    await expect(rest.listCaches({ perPage: 101 })).rejects.toBeInstanceOf(ValidationError);
    await expect(rest.deleteCacheById(0)).rejects.toBeInstanceOf(ValidationError);
    await expect(rest.deleteCaches({ key: '' })).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('nextPageOf / formatTable', () => {
  it('reads the next page from a Link header', () => {
    expect(
      nextPageOf(
        '<https://api.github.com/x?page=3&per_page=2>; rel="next", <https://api.github.com/x?page=9>; rel="last"',
      ),
    ).toBe(3);
    expect(nextPageOf('<https://api.github.com/x?page=1>; rel="prev"')).toBeUndefined();
    expect(nextPageOf(undefined)).toBeUndefined();
  });

  it('aligns columns without trailing spaces', () => {
    expect(
      formatTable([
        ['ID', 'KEY', 'SIZE'],
        ['1', 'long-key', '3 B'],
        ['12', 'k', ''],
      ]),
    ).toBe('ID  KEY       SIZE\n1   long-key  3 B\n12  k');
  });
});
