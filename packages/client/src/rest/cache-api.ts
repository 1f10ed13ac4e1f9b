/**
 * GitHub's REST cache-management API (`/repos/{owner}/{repo}/actions/caches…`): list, delete by key or
 * id, usage. Requests go through the client's one HTTP stack (agent + retry interceptor); this layer
 * never retries. Errors are typed: {@link RestApiError}, {@link NotFoundError} for 404.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import {
  BadResponseError,
  NotFoundError,
  RestApiError,
  type RestApiErrorInit,
  toCacheError,
  ValidationError,
} from '../errors.js';
import { createHttpDispatcher } from '../http/dispatcher.js';
import type { HintedDispatchOptions } from '../http/hints.js';
import { DEFAULT_RETRY_OPTIONS, parseRetryAfterMs, type RetryOptions } from '../http/policy.js';
import type { ExchangeEvent } from '../http/trace.js';
import { DEFAULTS } from '../options.js';

/** Options of {@link createRestCacheClient}. `repository` and `token` are required. */
export interface RestCacheClientOptions {
  /** `owner/repo` (`GITHUB_REPOSITORY`). Required. */
  repository: string;
  /** Token sent as `Authorization: Bearer` (`GITHUB_TOKEN`). Required. */
  token: string;
  /** API base URL (`GITHUB_API_URL`); a path prefix such as GHES's `/api/v3` is kept. Default `https://api.github.com`. */
  apiUrl?: string | URL;
  /** Base undici dispatcher. Default: an `Agent` created and closed by the client. */
  dispatcher?: Dispatcher;
  /** Idle timeout per attempt (connect, headers, body). Default `60_000` ms. */
  timeoutMs?: number;
  /** Retry policy overrides; defaults as `createCacheClient`'s. */
  retry?: Partial<RetryOptions>;
  /** Default `gha-cache/<version>`. */
  userAgent?: string;
  /** One event per HTTP exchange. */
  onExchange?: (event: ExchangeEvent) => void;
  /** Aborts every request. */
  signal?: AbortSignal;
}

/** One cache, as GitHub lists it (dates are ISO 8601 strings). */
export interface ActionsCache {
  id: number;
  /** Git ref the cache belongs to, e.g. `refs/heads/main`. */
  ref: string;
  key: string;
  version: string;
  lastAccessedAt: string;
  createdAt: string;
  sizeInBytes: number;
}

export type CacheSortField = 'created_at' | 'last_accessed_at' | 'size_in_bytes';

export interface ListCachesOptions {
  /** Key or key prefix. */
  key?: string;
  /** Full ref, e.g. `refs/heads/main` or `refs/pull/7/merge`. */
  ref?: string;
  /** Default (server side) `last_accessed_at`. */
  sort?: CacheSortField;
  /** Default (server side) `desc`. */
  direction?: 'asc' | 'desc';
  /** 1..100; default (server side) 30. */
  perPage?: number;
  /** Default 1. */
  page?: number;
}

export interface CachePage {
  /** Matching caches in total (all pages). */
  totalCount: number;
  caches: ActionsCache[];
  /** The page the `Link: rel="next"` header points to; undefined on the last page. */
  nextPage: number | undefined;
}

export interface CacheUsage {
  fullName: string;
  activeCachesSizeInBytes: number;
  activeCachesCount: number;
}

export interface RestCacheClient {
  /** `owner/repo`. */
  readonly repository: string;
  /** One page of caches. */
  listCaches(options?: ListCachesOptions): Promise<CachePage>;
  /** Every matching cache, following `Link: rel="next"` (100 per page unless `perPage` is given). */
  listAllCaches(options?: Omit<ListCachesOptions, 'page'>): AsyncGenerator<ActionsCache>;
  /** Deletes every cache with exactly `key` (of `ref` only, if given); returns them. None → {@link NotFoundError}. */
  deleteCaches(selector: { key: string; ref?: string }): Promise<ActionsCache[]>;
  /** Deletes one cache by id; unknown → {@link NotFoundError}. */
  deleteCacheById(id: number): Promise<void>;
  getCacheUsage(): Promise<CacheUsage>;
  /** Closes the HTTP agent the client created (a caller-supplied dispatcher is left open). */
  close(): Promise<void>;
}

export const DEFAULT_API_URL = 'https://api.github.com';
const API_VERSION = '2022-11-28';
const REPOSITORY = /^[\w.-]+\/[\w.-]+$/;

interface ActionsCacheJson {
  id: number;
  ref: string;
  key: string;
  version: string;
  last_accessed_at: string;
  created_at: string;
  size_in_bytes: number;
}

function toCache(c: ActionsCacheJson): ActionsCache {
  return {
    id: c.id,
    ref: c.ref,
    key: c.key,
    version: c.version,
    lastAccessedAt: c.last_accessed_at,
    createdAt: c.created_at,
    sizeInBytes: c.size_in_bytes,
  };
}

function isCacheList(v: unknown): v is { total_count: number; actions_caches: ActionsCacheJson[] } {
  const o = v as { total_count?: unknown; actions_caches?: unknown } | null;
  return typeof o?.total_count === 'number' && Array.isArray(o.actions_caches);
}

function isJsonObject(_status: number, _headers: IncomingHttpHeaders, body: Buffer): boolean {
  if (body.length === 0) return true;
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    return typeof v === 'object' && v !== null;
  } catch {
    return false;
  }
}

/** The page number of the `rel="next"` link, if any. */
export function nextPageOf(link: string | string[] | undefined): number | undefined {
  const value = Array.isArray(link) ? link.join(', ') : link;
  const m = value === undefined ? null : /<([^>]+)>\s*;\s*rel="next"/.exec(value);
  if (!m) return undefined;
  const page = new URL(m[1]!, 'http://x/').searchParams.get('page');
  return page !== null && /^\d+$/.test(page) ? Number(page) : undefined;
}

/** Creates a client of GitHub's REST cache-management API for one repository. */
export function createRestCacheClient(options: RestCacheClientOptions): RestCacheClient {
  if (!options.repository || !REPOSITORY.test(options.repository)) {
    throw new ValidationError(`Option repository must be owner/repo, got "${options.repository ?? ''}"`);
  }
  if (!options.token) throw new ValidationError('Option token is required (GITHUB_TOKEN)');
  let base: URL;
  try {
    base = new URL(options.apiUrl ?? DEFAULT_API_URL);
  } catch {
    throw new ValidationError(`Option apiUrl is not a URL: ${String(options.apiUrl)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new ValidationError(`Option apiUrl must be http(s), got ${base.protocol}`);
  }
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  base.search = '';
  base.hash = '';
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
  const http = createHttpDispatcher({
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    timeoutMs,
    connectionsPerOrigin: 2,
    retry: { ...DEFAULT_RETRY_OPTIONS, ...options.retry },
    ...(options.onExchange ? { onExchange: options.onExchange } : {}),
  });
  const [owner, repo] = options.repository.split('/') as [string, string];
  const repoPath = `repos/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}/actions/`;

  async function call(
    operation: string,
    method: 'GET' | 'DELETE',
    path: string,
    query: Record<string, string | number | undefined> = {},
  ): Promise<{ headers: IncomingHttpHeaders; body: unknown }> {
    const url = new URL(repoPath + path, base);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const opts: HintedDispatchOptions = {
      origin: url.origin,
      path: url.pathname + url.search,
      method,
      headers: {
        accept: 'application/vnd.github+json',
        authorization: `Bearer ${options.token}`,
        'user-agent': options.userAgent ?? DEFAULTS.userAgent,
        'x-github-api-version': API_VERSION,
      },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      ghaCache: { label: operation, validateResponse: isJsonObject },
    };
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      res = await http.dispatcher.request({
        ...(opts as Dispatcher.RequestOptions),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      text = await res.body.text();
    } catch (err) {
      throw toCacheError(err);
    }
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.statusCode >= 200 && res.statusCode < 300) {
      if (text !== '' && body === undefined) {
        throw new BadResponseError(`${operation}: the response is not JSON`, {
          httpStatus: res.statusCode,
          body: text,
        });
      }
      return { headers: res.headers, body };
    }
    const error = (body ?? {}) as { message?: unknown; documentation_url?: unknown };
    const init: RestApiErrorInit = {
      operation,
      httpStatus: res.statusCode,
      serviceMessage:
        typeof error.message === 'string' ? error.message : `non-JSON error response: ${text.slice(0, 200)}`,
      documentationUrl: typeof error.documentation_url === 'string' ? error.documentation_url : '',
      retryAfterMs: parseRetryAfterMs(res.headers),
    };
    throw res.statusCode === 404 ? new NotFoundError(init) : new RestApiError(init);
  }

  const expectList = (operation: string, httpStatus: number, body: unknown) => {
    if (!isCacheList(body)) {
      throw new BadResponseError(`${operation}: expected {total_count, actions_caches}`, {
        httpStatus,
        body: JSON.stringify(body ?? null),
      });
    }
    return body;
  };

  const listCaches: RestCacheClient['listCaches'] = async (o = {}) => {
    if (o.perPage !== undefined && (!Number.isSafeInteger(o.perPage) || o.perPage < 1 || o.perPage > 100)) {
      throw new ValidationError(`listCaches: perPage must be an integer in [1, 100], got ${o.perPage}`);
    }
    const { headers, body } = await call('ListCaches', 'GET', 'caches', {
      key: o.key,
      ref: o.ref,
      sort: o.sort,
      direction: o.direction,
      per_page: o.perPage,
      page: o.page,
    });
    const list = expectList('ListCaches', 200, body);
    return {
      totalCount: list.total_count,
      caches: list.actions_caches.map(toCache),
      nextPage: nextPageOf(headers.link),
    };
  };

  return {
    repository: options.repository,
    listCaches,
    async *listAllCaches(o = {}) {
      let page: number | undefined = 1;
      while (page !== undefined) {
        const result = await listCaches({ perPage: 100, ...o, page });
        yield* result.caches;
        page = result.nextPage !== undefined && result.nextPage > page ? result.nextPage : undefined;
      }
    },
    async deleteCaches({ key, ref }) {
      if (!key) throw new ValidationError('deleteCaches: key is required');
      const { body } = await call('DeleteCachesByKey', 'DELETE', 'caches', { key, ref });
      return expectList('DeleteCachesByKey', 200, body).actions_caches.map(toCache);
    },
    async deleteCacheById(id) {
      if (!Number.isSafeInteger(id) || id < 1) throw new ValidationError(`invalid cache id ${id}`);
      await call('DeleteCacheById', 'DELETE', `caches/${id}`);
    },
    async getCacheUsage() {
      const { body } = await call('GetCacheUsage', 'GET', 'cache/usage');
      const u = (body ?? {}) as Record<string, unknown>;
      if (typeof u.active_caches_count !== 'number' || typeof u.active_caches_size_in_bytes !== 'number') {
        throw new BadResponseError('GetCacheUsage: unexpected body', {
          httpStatus: 200,
          body: JSON.stringify(body ?? null),
        });
      }
      return {
        fullName: typeof u.full_name === 'string' ? u.full_name : options.repository,
        activeCachesSizeInBytes: u.active_caches_size_in_bytes,
        activeCachesCount: u.active_caches_count,
      };
    },
    close: () => http.close(),
  };
}
