/**
 * GitHub's REST cache-management API (`/repos/{owner}/{repo}/actions/caches…`), enough for
 * `@octokit/rest` and `gh cache`: list (filter, sort, paginate with `Link`), delete by key, delete by
 * id, usage. GitHub's response shapes and error bodies (`{"message","documentation_url","status"}`).
 * Register with `prefix: '/repos'`: unknown paths below it get GitHub's 404 body.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../clock.js';
import type { Repository, RepositoryRegistry } from '../repositories.js';
import type { CacheEntry, CacheStorage } from '../storage/types.js';
import { queryOf } from './query.js';

export interface RestPluginOptions {
  readonly storage: CacheStorage;
  readonly clock: Clock;
  readonly repositories: RepositoryRegistry;
  /**
   * The only credential accepted (`Authorization: Bearer <t>` or `token <t>`). Default: any
   * non-empty credential is accepted; a request without one is 401 either way.
   */
  readonly token?: string;
}

const DOCS = 'https://docs.github.com/rest/actions/cache';
const DOC = {
  rest: 'https://docs.github.com/rest',
  list: `${DOCS}#list-github-actions-caches-for-a-repository`,
  deleteByKey: `${DOCS}#delete-github-actions-caches-for-a-repository-using-a-cache-key`,
  deleteById: `${DOCS}#delete-a-github-actions-cache-for-a-repository-using-a-cache-id`,
  usage: `${DOCS}#get-github-actions-cache-usage-for-a-repository`,
} as const;

/** The API version the mock answers as (`X-GitHub-Api-Version-Selected`). */
export const REST_API_VERSION = '2022-11-28';

/** A GitHub REST error: `{"message","documentation_url","status"}` (+ `errors` for 422). */
export class GitHubApiError extends Error {
  override readonly name = 'GitHubApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly documentationUrl: string = DOC.rest,
    readonly errors?: readonly Record<string, string>[],
  ) {
    super(message);
  }

  toJSON(): Record<string, unknown> {
    return {
      message: this.message,
      ...(this.errors ? { errors: this.errors } : {}),
      documentation_url: this.documentationUrl,
      status: String(this.status),
    };
  }
}

const notFound = (doc: string) => new GitHubApiError(404, 'Not Found', doc);
const invalid = (doc: string, field: string, value: string) =>
  new GitHubApiError(422, 'Validation Failed', doc, [
    { resource: 'ActionsCache', field, code: 'invalid', value },
  ]);

/** One cache in GitHub's shape. */
export interface ActionsCacheJson {
  id: number;
  ref: string;
  key: string;
  version: string;
  last_accessed_at: string;
  created_at: string;
  size_in_bytes: number;
}

export function toActionsCache(e: CacheEntry): ActionsCacheJson {
  return {
    id: e.id,
    ref: e.scope,
    key: e.key,
    version: e.version,
    last_accessed_at: new Date(e.lastAccessedAt).toISOString(),
    created_at: new Date(e.createdAt).toISOString(),
    size_in_bytes: e.sizeBytes,
  };
}

export const SORT_KEYS = {
  created_at: (e: CacheEntry) => e.createdAt,
  last_accessed_at: (e: CacheEntry) => e.lastAccessedAt,
  size_in_bytes: (e: CacheEntry) => e.sizeBytes,
} as const;
export type CacheSort = keyof typeof SORT_KEYS;

const DEFAULT_PER_PAGE = 30;
const MAX_PER_PAGE = 100;

/** A positive integer query value; absent or unparseable → `fallback` (GitHub ignores junk here too). */
function intParam(query: URLSearchParams, name: string, fallback: number): number {
  const raw = query.get(name);
  const n = raw === null || !/^\d+$/.test(raw) ? Number.NaN : Number(raw);
  return Number.isSafeInteger(n) && n >= 1 ? n : fallback;
}

function enumParam<T extends string>(
  query: URLSearchParams,
  name: string,
  allowed: readonly T[],
  fallback: T,
  doc: string,
): T {
  const raw = query.get(name);
  if (raw === null || raw === '') return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw invalid(doc, name, raw);
  return raw as T;
}

/** `Link` header with `prev`/`next`/`last`/`first`, as GitHub sends it; `undefined` for one page. */
function linkHeader(request: FastifyRequest, page: number, lastPage: number): string | undefined {
  if (lastPage <= 1) return undefined;
  const base = new URL(request.url, `${request.protocol}://${request.host}`);
  const at = (p: number) => {
    const u = new URL(base);
    u.searchParams.set('page', String(p));
    return u.toString();
  };
  const links: string[] = [];
  if (page > 1) links.push(`<${at(Math.min(page - 1, lastPage))}>; rel="prev"`);
  if (page < lastPage) links.push(`<${at(page + 1)}>; rel="next"`, `<${at(lastPage)}>; rel="last"`);
  if (page > 1) links.push(`<${at(1)}>; rel="first"`);
  return links.join(', ');
}

declare module 'fastify' {
  interface FastifyRequest {
    restRepository?: Repository;
  }
}

export const restPlugin: FastifyPluginAsync<RestPluginOptions> = async (app, options) => {
  const { storage, clock, repositories } = options;

  // Bodies are ignored (octokit sends none); never a framework 400/415 for one.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, (_request, _body, done) =>
    done(null, undefined),
  );

  const send = (reply: FastifyReply, status: number, body?: unknown) => {
    reply
      .code(status)
      .header('x-github-api-version-selected', REST_API_VERSION)
      .header('x-github-request-id', randomUUID());
    if (body === undefined) return reply.send();
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(body));
  };

  app.setErrorHandler<FastifyError | GitHubApiError>((error, request, reply) => {
    const apiError =
      error instanceof GitHubApiError
        ? error
        : (error as FastifyError).statusCode === 413
          ? new GitHubApiError(413, 'Payload Too Large')
          : undefined;
    if (!apiError) request.log.error({ err: error }, 'REST request failed');
    return send(
      reply,
      apiError?.status ?? 500,
      (apiError ?? new GitHubApiError(500, 'Server Error')).toJSON(),
    );
  });
  app.setNotFoundHandler((_request, reply) => send(reply, 404, notFound(DOC.rest).toJSON()));

  const authenticate = (request: FastifyRequest) => {
    const match = /^(?:Bearer|token)\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (!match) throw new GitHubApiError(401, 'Requires authentication');
    if (options.token !== undefined && match[1] !== options.token) {
      throw new GitHubApiError(401, 'Bad credentials');
    }
  };

  /** Auth first (as GitHub: 401 before 404), then the repository; unknown → 404. */
  const repositoryOf = (request: FastifyRequest, doc: string): Repository => {
    authenticate(request);
    const { owner, repo } = request.params as { owner: string; repo: string };
    const found = repositories.byName(`${owner}/${repo}`);
    if (!found) throw notFound(doc);
    request.audit.repository = found.fullName;
    return found;
  };

  const committed = (repositoryId: string) =>
    storage.metadata.listEntries({ repositoryId, state: 'committed' });

  app.get('/:owner/:repo/actions/caches', async (request, reply) => {
    const repo = repositoryOf(request, DOC.list);
    const query = queryOf(request);
    const key = query.get('key') ?? '';
    const ref = query.get('ref') ?? '';
    const sort = enumParam(
      query,
      'sort',
      Object.keys(SORT_KEYS) as CacheSort[],
      'last_accessed_at',
      DOC.list,
    );
    const direction = enumParam(query, 'direction', ['asc', 'desc'], 'desc', DOC.list);
    const perPage = Math.min(intParam(query, 'per_page', DEFAULT_PER_PAGE), MAX_PER_PAGE);
    const page = intParam(query, 'page', 1);
    request.audit.op = 'ListCaches';

    const by = SORT_KEYS[sort];
    const sign = direction === 'asc' ? 1 : -1;
    const matching = (await committed(repo.id))
      .filter((e) => e.key.startsWith(key) && (ref === '' || e.scope === ref))
      .sort((a, b) => sign * (by(a) - by(b) || a.id - b.id));
    const lastPage = Math.max(1, Math.ceil(matching.length / perPage));
    const link = linkHeader(request, page, lastPage);
    if (link) reply.header('link', link);
    return send(reply, 200, {
      total_count: matching.length,
      actions_caches: matching.slice((page - 1) * perPage, page * perPage).map(toActionsCache),
    });
  });

  app.delete('/:owner/:repo/actions/caches', async (request, reply) => {
    const repo = repositoryOf(request, DOC.deleteByKey);
    const query = queryOf(request);
    const key = query.get('key');
    const ref = query.get('ref') ?? '';
    if (key === null || key === '') throw invalid(DOC.deleteByKey, 'key', key ?? '');
    request.audit.op = 'DeleteCachesByKey';
    request.audit.key = key;
    const doomed = (await committed(repo.id)).filter((e) => e.key === key && (ref === '' || e.scope === ref));
    if (doomed.length === 0) throw notFound(DOC.deleteByKey);
    const now = clock.now();
    for (const e of doomed) await storage.deleteEntry(e.id, now);
    return send(reply, 200, { total_count: doomed.length, actions_caches: doomed.map(toActionsCache) });
  });

  app.delete('/:owner/:repo/actions/caches/:cacheId', async (request, reply) => {
    const repo = repositoryOf(request, DOC.deleteById);
    const { cacheId } = request.params as { cacheId: string };
    request.audit.op = 'DeleteCacheById';
    const id = /^\d{1,15}$/.test(cacheId) ? Number(cacheId) : Number.NaN;
    const entry = Number.isSafeInteger(id) ? await storage.metadata.getEntry(id) : undefined;
    if (!entry || entry.repositoryId !== repo.id || entry.state !== 'committed') {
      throw notFound(DOC.deleteById);
    }
    await storage.deleteEntry(entry.id, clock.now());
    return send(reply, 204);
  });

  app.get('/:owner/:repo/actions/cache/usage', async (request, reply) => {
    const repo = repositoryOf(request, DOC.usage);
    request.audit.op = 'GetCacheUsage';
    const { sizeBytes, count } = await storage.metadata.repositoryUsage(repo.id);
    return send(reply, 200, {
      full_name: repo.fullName,
      active_caches_size_in_bytes: sizeBytes,
      active_caches_count: count,
    });
  });
};
