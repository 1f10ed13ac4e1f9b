/**
 * Turns every answered request into one `TrafficEvent` (at `onResponse`, after the client has its
 * answer, so nothing here changes or delays what goes on the wire). For a missed lookup it first asks
 * `explainMiss` why, and puts the reason into the request's log line too. Register before
 * `requestLogPlugin`, so the log line carries `client`, `outcome` and `reason`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Clock } from '../clock.js';
import type { RepositoryRegistry } from '../repositories.js';
import { redactUrl } from '../request-log.js';
import type { CacheEntry } from '../storage/types.js';
import { recognizeClient, UI_HEADER } from './clients.js';
import { type ExplainContext, type ExplainStore, explainMiss } from './explain.js';
import type { NewTrafficEvent, TrafficJournal } from './journal.js';
import type { RemovalLedger } from './removals.js';
import type { ClientKind, MissExplanation, Outcome, SurfaceKind } from './types.js';

export interface JournalPluginOptions {
  readonly journal: TrafficJournal;
  /** Entries of blob operations, and what explanations read. */
  readonly store: ExplainStore & {
    findEntryByBlobId(blobId: string): CacheEntry | undefined | Promise<CacheEntry | undefined>;
  };
  readonly removals?: RemovalLedger;
  readonly repositories: RepositoryRegistry;
  readonly clock: Clock;
  /** First path segment of blob URLs. */
  readonly accountName: string;
  readonly pendingTtlMs: number;
  readonly idleTtlMs: () => number | null;
}

interface ErrorFacts {
  code?: string;
  msg?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The error code and message of an error answer, read from its body at `onSend`. */
    journalError: ErrorFacts | null;
    /** The entry behind a blob request, when an asynchronous store had to be asked first. */
    journalEntry: CacheEntry | false | null;
    /** A miss's explanation, when an asynchronous store had to be asked first. */
    journalExplanation: MissExplanation | null;
  }
}

const RPCS = new Set(['CreateCacheEntry', 'FinalizeCacheEntryUpload', 'GetCacheEntryDownloadURL']);
const MAX_UA = 160;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function twirpOutcome(
  op: string,
  status: number,
  audit: Record<string, unknown>,
  err: ErrorFacts | null,
): Outcome {
  if (status === 200) {
    if (typeof audit.outcome === 'string') return audit.outcome as Outcome;
    if (op === 'GetCacheEntryDownloadURL') {
      const match = audit.match;
      if (match === 'exact' || match === 'restore-exact') return 'hit-exact';
      if (match === 'prefix' || match === 'restore-prefix') return 'hit-prefix';
      return 'miss';
    }
    return op === 'CreateCacheEntry' ? 'created' : 'committed';
  }
  switch (err?.code) {
    case 'already_exists':
      return 'conflict';
    case 'resource_exhausted':
      return 'rate-limited';
    case 'failed_precondition':
      return err.msg?.includes('insufficient usage') ? 'quota' : 'error';
    case 'permission_denied':
      return 'read-denied';
    case 'not_found':
      return 'not-found';
    default:
      return 'error';
  }
}

export const journalPlugin = fp<JournalPluginOptions>(
  async (app: FastifyInstance, options) => {
    const { journal, store, repositories, clock, accountName } = options;
    const blobPrefix = `/${encodeURIComponent(accountName)}/`;
    const explainCtx: ExplainContext = {
      store,
      ...(options.removals ? { removals: options.removals } : {}),
      pendingTtlMs: options.pendingTtlMs,
      idleTtlMs: options.idleTtlMs,
    };

    app.decorateRequest('journalError', null);
    app.decorateRequest('journalEntry', null);
    app.decorateRequest('journalExplanation', null);

    const surfaceOf = (request: FastifyRequest, op: string | undefined): SurfaceKind | undefined => {
      const url = request.url;
      if (request.twirp || (op !== undefined && RPCS.has(op)) || url.includes('/twirp/')) return 'twirp';
      if (url.startsWith(blobPrefix)) return 'blob';
      if (url.startsWith('/repos/')) return 'rest';
      // Admin reads (and the UI polling them) are not traffic; admin changes are.
      if (url.startsWith('/_admin/') && request.method !== 'GET' && request.method !== 'HEAD') return 'admin';
      return undefined;
    };

    app.addHook('onSend', (request, reply, payload, done) => {
      if (reply.statusCode >= 400) {
        const azure = reply.getHeader('x-ms-error-code');
        if (typeof azure === 'string') request.journalError = { code: azure };
        else if ((typeof payload === 'string' || Buffer.isBuffer(payload)) && payload.length < 8192) {
          try {
            const body = JSON.parse(payload.toString()) as Record<string, unknown>;
            const code = str(body.code);
            const msg = str(body.msg) ?? str(body.message);
            request.journalError = { ...(code ? { code } : {}), ...(msg ? { msg } : {}) };
          } catch {
            // Not JSON (a fault's non-JSON answer): no code.
          }
        }
      }
      done(null, payload);
    });

    /** Synchronous unless the store answers with promises: then the returned promise settles when recorded. */
    const record = (request: FastifyRequest, reply: FastifyReply): void | Promise<void> => {
      const audit = (request.audit ?? {}) as Record<string, unknown>;
      let op = str(audit.op);
      const surface = surfaceOf(request, op);
      if (!surface) return;
      const status = reply.statusCode;
      const err = request.journalError;
      const ua = header(request, 'user-agent');
      const client: ClientKind = recognizeClient(ua, header(request, UI_HEADER));
      const identity = request.twirp?.identity;
      let repositoryId = identity?.repositoryId;
      let key = str(audit.key);
      let scope = str(audit.scope);
      let version = str(audit.version);
      let entryId = num(audit.entryId);
      let outcome: Outcome;
      let scopes: readonly string[] | undefined;

      if (surface === 'twirp') {
        op ??= 'Twirp';
        outcome = twirpOutcome(op, status, audit, err);
        if (identity) {
          scopes =
            op === 'GetCacheEntryDownloadURL'
              ? identity.scopes.filter((s) => (s.permission & 1) !== 0).map((s) => s.scope)
              : scope !== undefined
                ? [scope]
                : undefined;
        }
      } else if (surface === 'blob') {
        op ??= 'Blob';
        const { blobId } = (request.params ?? {}) as { blobId?: string };
        const known = request.journalEntry;
        const found = known === null && blobId ? store.findEntryByBlobId(blobId) : undefined;
        if (found instanceof Promise) {
          // An asynchronous store: look the entry up, then record as if it had been known at once.
          return found.then((entry) => {
            request.journalEntry = entry ?? false;
            return record(request, reply);
          });
        }
        const entry = found ?? (known || undefined);
        if (entry) {
          repositoryId = entry.repositoryId;
          key = entry.key;
          scope = entry.scope;
          version = entry.version;
          entryId = entry.id;
        }
        outcome = status < 400 ? 'ok' : status === 404 ? 'not-found' : 'error';
      } else {
        if (surface === 'rest') {
          const { owner, repo } = (request.params ?? {}) as { owner?: string; repo?: string };
          if (owner && repo) repositoryId = repositories.byName(`${owner}/${repo}`)?.id;
          op ??= 'Rest';
        } else if (op === undefined || op === 'Admin') {
          const route = (request.routeOptions.url ?? request.url.split('?')[0]!).replace(/^\/_admin/, '');
          op = `Admin ${request.method} ${route}`;
        }
        outcome = status < 400 ? 'ok' : status === 404 ? 'not-found' : 'error';
      }
      if (request.faultPlan?.respond) outcome = 'fault';

      const restoreKeys = Array.isArray(audit.restoreKeys) ? (audit.restoreKeys as string[]) : undefined;
      let reason = str(audit.reason) ?? (status >= 400 ? err?.msg : undefined);
      let explanation = request.journalExplanation ?? undefined;
      if (outcome === 'miss' && !explanation && identity && key !== undefined && version !== undefined) {
        const explained = explainMiss(explainCtx, {
          repositoryId: identity.repositoryId,
          scopes: scopes ?? [],
          key,
          restoreKeys: restoreKeys ?? [],
          version,
          client,
          now: clock.now(),
        });
        if (explained instanceof Promise) {
          return explained.then((e) => {
            request.journalExplanation = e;
            return record(request, reply);
          });
        }
        explanation = explained;
      }
      if (explanation) {
        reason = explanation.message;
        audit.reason = reason;
        audit.missReason = explanation.reason;
      }
      audit.client = client;
      audit.outcome = outcome;
      // A blob's log line names the key of its entry too.
      if (surface === 'blob' && key !== undefined) audit.key ??= key;

      const repository = repositoryId !== undefined ? repositories.byId(repositoryId)?.fullName : undefined;
      // Fields in a fixed order (the NDJSON file and the API show them so), each only when known:
      // assigned one by one, not spread from a temporary object per field.
      const e: Record<string, unknown> = { time: new Date().toISOString(), op, surface, client };
      if (ua) e.userAgent = ua.length > MAX_UA ? `${ua.slice(0, MAX_UA)}…` : ua;
      e.method = request.method;
      e.url = redactUrl(request.url);
      if (repositoryId !== undefined) e.repositoryId = repositoryId;
      if (repository) e.repository = repository;
      if (scopes) e.scopes = scopes;
      if (scope !== undefined) e.scope = scope;
      if (key !== undefined) e.key = key;
      if (restoreKeys && restoreKeys.length > 0) e.restoreKeys = restoreKeys;
      if (version !== undefined) e.version = version;
      e.outcome = outcome;
      if (typeof audit.match === 'string' && audit.match !== 'miss') e.match = audit.match;
      if (reason) e.reason = reason;
      if (explanation) e.explanation = explanation;
      if (entryId !== undefined) e.entryId = entryId;
      if (typeof audit.matchedKey === 'string') e.matchedKey = audit.matchedKey;
      if (typeof audit.bytes === 'number') e.bytes = audit.bytes;
      e.durationMs = Math.round(reply.elapsedTime * 100) / 100;
      e.status = status;
      if (err?.code) e.errorCode = err.code;
      if (typeof audit.fault === 'string') e.fault = audit.fault;
      if (typeof audit.evicted === 'number') e.evicted = audit.evicted;
      const event = e as unknown as NewTrafficEvent;
      journal.record(event);
    };

    // A callback hook, synchronous with a synchronous store: the request's log line (the next
    // onResponse hook) follows at once, and the hot paths pay for no promise.
    app.addHook('onResponse', (request, reply, done) => {
      const failed = (error: unknown) => {
        request.log.warn({ err: error }, 'traffic journal failed');
        done();
      };
      try {
        const pending = record(request, reply);
        if (pending) pending.then(() => done(), failed);
        else done();
      } catch (error) {
        failed(error);
      }
    });
  },
  { name: 'traffic-journal' },
);
