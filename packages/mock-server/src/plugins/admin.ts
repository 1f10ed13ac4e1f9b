/**
 * The admin API under `/_admin/`: JSON in and out, errors `{"code","msg"}` with Twirp's codes and
 * statuses. It drives `app.mock` (storage, repositories, seeding, clock, policies, fault rules) at run
 * time. Host, browser and admin-token checks happen before it, in `security/guard.ts`. Register with
 * `prefix: '/_admin'`.
 */
import type {
  FastifyError,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
} from 'fastify';
import type {} from '../context.js';
import { parseDurationMs } from '../duration.js';
import { TwirpError } from '../errors.js';
import { type FaultRuleInput, FaultSpecError } from '../faults/types.js';
import { PolicySettingsError } from '../policies/settings.js';
import type { RepositoryRegistry } from '../repositories.js';
import type { SeedConflict } from '../seed.js';
import type { CacheEntry, CacheStorage, EntryState } from '../storage/types.js';
import { queryOf } from './query.js';

const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);

/** An entry as the admin API shows it (dates ISO 8601, `null` when not set). */
export function entryView(e: CacheEntry, repositories: RepositoryRegistry): Record<string, unknown> {
  return {
    id: e.id,
    repositoryId: e.repositoryId,
    repository: repositories.byId(e.repositoryId)?.fullName ?? null,
    scope: e.scope,
    key: e.key,
    version: e.version,
    state: e.state,
    sizeBytes: e.sizeBytes,
    createdAt: iso(e.createdAt),
    committedAt: iso(e.committedAt),
    lastAccessedAt: iso(e.lastAccessedAt),
    downloadUrlExpiresAt: iso(e.downloadUrlExpiresAt),
    blobId: e.blobId,
  };
}

const invalid = (msg: string, argument: string) => new TwirpError('invalid_argument', msg, { argument });

/** A JSON object body (or an empty one); anything else is `invalid_argument`. */
function objectBody(request: FastifyRequest): Record<string, unknown> {
  const body = request.body ?? {};
  if (typeof body !== 'object' || Array.isArray(body))
    throw invalid('the body must be a JSON object', 'body');
  return body as Record<string, unknown>;
}

/** Maps what a seam throws (`RangeError`, `TypeError`, Fastify's parse errors) to `{code,msg}`. */
function toAdminError(error: FastifyError | Error, request: FastifyRequest): TwirpError {
  if (error instanceof TwirpError) return error;
  if (error instanceof PolicySettingsError) return invalid(error.message, error.field);
  if (error instanceof FaultSpecError) {
    return error.code === 'ERR_FAULT_DUPLICATE_ID'
      ? new TwirpError('already_exists', error.message)
      : invalid(error.message, 'rule');
  }
  if (error instanceof RangeError || error instanceof TypeError) return invalid(error.message, 'body');
  const status = (error as FastifyError).statusCode;
  if (status !== undefined && status >= 400 && status < 500)
    return new TwirpError('malformed', error.message);
  request.log.error({ err: error }, 'admin request failed');
  return new TwirpError('internal', 'internal error');
}

const sendError = (reply: FastifyReply, err: TwirpError) =>
  reply.code(err.status).headers(err.headers).type('application/json').send(JSON.stringify(err.toJSON()));

function entryIdOf(request: FastifyRequest): number {
  const { id } = request.params as { id: string };
  const n = /^\d{1,15}$/.test(id) ? Number(id) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new TwirpError('not_found', `no entry with id "${id}"`);
  return n;
}

/** `POST /_admin/entries`: the body is the entry's content, streamed into storage (own scope: no parsers). */
async function seedRoute(app: FastifyInstance): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  app.post('/entries', async (request, reply) => {
    const query = queryOf(request);
    const length = request.headers['content-length'];
    if (length === undefined || !/^\d+$/.test(length)) {
      reply.header('connection', 'close');
      throw new TwirpError('invalid_argument', 'Content-Length is required (the content is streamed)', {
        argument: 'Content-Length',
      });
    }
    const onConflict = (query.get('onConflict') ?? 'error') as SeedConflict;
    if (!['error', 'skip', 'replace'].includes(onConflict)) {
      throw invalid('onConflict must be error, skip or replace', 'onConflict');
    }
    const optional = (name: string) => {
      const v = query.get(name);
      return v === null ? {} : { [name]: v };
    };
    const { entry, created } = await app.mock.seed({
      ...optional('repository'),
      ...optional('repositoryId'),
      ...optional('scope'),
      key: query.get('key') ?? '',
      version: query.get('version') ?? '',
      content: request.body as NodeJS.ReadableStream as import('node:stream').Readable,
      sizeBytes: Number(length),
      onConflict,
    });
    request.audit.op = 'AdminSeed';
    request.audit.key = entry.key;
    return reply.code(created ? 201 : 200).send(entryView(entry, app.mock.repositories));
  });
}

export interface AdminPluginOptions {
  /** The storage the routes read and delete through. Default `app.mock.storage`. */
  readonly storage?: CacheStorage;
}

export const adminPlugin: FastifyPluginAsync<AdminPluginOptions> = async (app, options) => {
  const { repositories } = app.mock;
  const storage = options.storage ?? app.mock.storage;

  // The UI labels every state-changing call JSON, a bodiless DELETE or reset included: empty is no body.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) =>
    body === '' ? done(null, undefined) : parseJson(request, String(body), done),
  );

  app.setErrorHandler<FastifyError>((error, request, reply) =>
    sendError(reply, toAdminError(error, request)),
  );
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new TwirpError('bad_route', `no admin route for ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
  app.addHook('onRequest', async (request) => {
    request.audit.op = 'Admin';
  });

  app.get('/entries', async (request) => {
    const q = queryOf(request);
    let repositoryId = q.get('repositoryId') ?? undefined;
    const repository = q.get('repository');
    if (repository !== null) {
      const repo = repositories.byName(repository);
      if (!repo) throw new TwirpError('not_found', `unknown repository "${repository}"`);
      repositoryId = repo.id;
    }
    const state = q.get('state') ?? undefined;
    if (state !== undefined && state !== 'pending' && state !== 'committed') {
      throw invalid('state must be pending or committed', 'state');
    }
    const scope = q.get('scope');
    const key = q.get('key');
    const keyPrefix = q.get('keyPrefix');
    const version = q.get('version');
    const entries = (
      await storage.metadata.listEntries({
        ...(repositoryId !== undefined ? { repositoryId } : {}),
        ...(state !== undefined ? { state: state as EntryState } : {}),
      })
    ).filter(
      (e) =>
        (scope === null || e.scope === scope) &&
        (key === null || e.key === key) &&
        (keyPrefix === null || e.key.startsWith(keyPrefix)) &&
        (version === null || e.version === version),
    );
    return { totalCount: entries.length, entries: entries.map((e) => entryView(e, repositories)) };
  });

  app.get('/entries/:id', async (request) => {
    const id = entryIdOf(request);
    const entry = await storage.metadata.getEntry(id);
    if (!entry) throw new TwirpError('not_found', `no entry with id ${id}`);
    const blob = await storage.blobs.getBlobProperties(entry.blobId);
    return {
      ...entryView(entry, repositories),
      blob: blob
        ? { sizeBytes: blob.size, etag: blob.etag, lastModified: new Date(blob.lastModified).toISOString() }
        : null,
    };
  });

  app.delete('/entries/:id', async (request, reply) => {
    const id = entryIdOf(request);
    if (!(await storage.deleteEntry(id, app.mock.clock.now()))) {
      throw new TwirpError('not_found', `no entry with id ${id}`);
    }
    return reply.code(204).send();
  });

  await app.register(seedRoute);

  /** Drops every entry (all repositories, pending too) and every fault rule; policies and the clock stay. */
  app.post('/reset', async () => {
    const now = app.mock.clock.now();
    const entries = await storage.metadata.listEntries();
    for (const e of entries) await storage.deleteEntry(e.id, now);
    const removedFaults = app.mock.faults.list().length;
    app.mock.faults.clear();
    await app.mock.sweep();
    return { deletedEntries: entries.length, removedFaults };
  });

  app.get('/faults', async () => ({ rules: app.mock.faults.list() }));
  app.post('/faults', async (request, reply) =>
    reply.code(201).send(app.mock.faults.add(objectBody(request) as unknown as FaultRuleInput)),
  );
  app.delete('/faults', async (_request, reply) => {
    app.mock.faults.clear();
    return reply.code(204).send();
  });
  app.delete('/faults/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    if (!app.mock.faults.remove(id)) throw new TwirpError('not_found', `no fault rule with id "${id}"`);
    return reply.code(204).send();
  });

  app.get('/usage', async () => ({
    repositories: (await storage.metadata.listRepositoryUsage()).map((u) => ({
      ...u,
      repository: repositories.byId(u.repositoryId)?.fullName ?? null,
    })),
  }));

  const clockView = () => {
    const { clock } = app.mock;
    const nowMs = clock.now();
    return { now: new Date(nowMs).toISOString(), nowMs, offsetMs: clock.offsetMs };
  };
  app.get('/clock', async () => clockView());
  /** Moves simulated time forward, then sweeps so that expiry and eviction show at once. */
  app.post('/clock/advance', async (request) => {
    app.mock.clock.advance(advanceAmountMs(objectBody(request)));
    await app.mock.sweep();
    return clockView();
  });

  app.get('/policies', async () => app.mock.policies.get());
  app.patch('/policies', async (request) => {
    const patch = objectBody(request);
    const next = app.mock.policies.update(patch);
    await app.mock.sweep();
    return next;
  });

  app.get('/repositories', async () => ({ repositories: repositories.list() }));

  app.put('/repositories/:owner/:repo', async (request) => {
    const { owner, repo } = request.params as { owner: string; repo: string };
    const { id } = objectBody(request);
    if (typeof id !== 'string' && typeof id !== 'number') throw invalid('id must be a string', 'id');
    return repositories.register(`${owner}/${repo}`, String(id));
  });
};

/** `{"ms": 1000}` or `{"by": "8d"}` → ms. */
export function advanceAmountMs(body: Record<string, unknown>): number {
  if (typeof body.ms === 'number') return body.ms;
  if (typeof body.by === 'string') return parseDurationMs(body.by);
  throw invalid('give {"ms": <number>} or {"by": "<duration>"} (e.g. "8d", "90m")', 'ms');
}
