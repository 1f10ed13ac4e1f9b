/**
 * Turns one proxied exchange into a journal event and a request log line (the same `request` line the
 * mock writes, so the pretty log reads it alike). Nothing secret goes in: the URL is the proxy's own (no
 * signature) passed through `redactUrl` anyway, and no header is copied.
 */
import type { FastifyRequest } from 'fastify';
import { recognizeClient, UI_HEADER } from '../journal/clients.js';
import type { NewTrafficEvent, TrafficJournal } from '../journal/journal.js';
import type { MissExplanation, Outcome, SurfaceKind } from '../journal/types.js';
import { redactUrl } from '../request-log.js';

export interface Exchange {
  readonly op: string;
  readonly surface: SurfaceKind;
  /** `performance.now()` when the request arrived. */
  readonly startedAt: number;
  readonly status: number;
  readonly outcome: Outcome;
  readonly repositoryId?: string;
  readonly scopes?: readonly string[];
  readonly scope?: string;
  readonly key?: string;
  readonly restoreKeys?: readonly string[];
  readonly version?: string;
  readonly match?: string;
  readonly matchedKey?: string;
  readonly reason?: string;
  readonly explanation?: MissExplanation;
  readonly entryId?: number;
  readonly bytes?: number;
  readonly errorCode?: string;
}

const MAX_UA = 160;

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function recordExchange(
  journal: TrafficJournal,
  upstreamOrigin: string,
  request: FastifyRequest,
  ex: Exchange,
): void {
  const ua = header(request, 'user-agent');
  const client = recognizeClient(ua, header(request, UI_HEADER));
  const durationMs = Math.round((performance.now() - ex.startedAt) * 100) / 100;
  const url = redactUrl(request.url);
  const event: NewTrafficEvent = {
    time: new Date().toISOString(),
    op: ex.op,
    surface: ex.surface,
    client,
    ...(ua ? { userAgent: ua.length > MAX_UA ? `${ua.slice(0, MAX_UA)}…` : ua } : {}),
    method: request.method,
    url,
    ...(ex.repositoryId !== undefined ? { repositoryId: ex.repositoryId } : {}),
    ...(ex.scopes ? { scopes: ex.scopes } : {}),
    ...(ex.scope !== undefined ? { scope: ex.scope } : {}),
    ...(ex.key !== undefined ? { key: ex.key } : {}),
    ...(ex.restoreKeys && ex.restoreKeys.length > 0 ? { restoreKeys: ex.restoreKeys } : {}),
    ...(ex.version !== undefined ? { version: ex.version } : {}),
    outcome: ex.outcome,
    ...(ex.match !== undefined ? { match: ex.match } : {}),
    ...(ex.reason ? { reason: ex.reason } : {}),
    ...(ex.explanation ? { explanation: ex.explanation } : {}),
    ...(ex.entryId !== undefined ? { entryId: ex.entryId } : {}),
    ...(ex.matchedKey !== undefined ? { matchedKey: ex.matchedKey } : {}),
    ...(ex.bytes !== undefined ? { bytes: ex.bytes } : {}),
    durationMs,
    status: ex.status,
    ...(ex.errorCode ? { errorCode: ex.errorCode } : {}),
    upstream: upstreamOrigin,
  };
  try {
    journal.record(event);
  } catch (err) {
    request.log.warn({ err }, 'traffic journal failed');
  }
  request.log.info(
    {
      method: request.method,
      url,
      op: ex.op,
      ...(ex.key !== undefined ? { key: ex.key } : {}),
      ...(ex.match !== undefined ? { match: ex.match } : {}),
      client,
      outcome: ex.outcome,
      ...(ex.reason ? { reason: ex.reason } : {}),
      ...(ex.explanation ? { missReason: ex.explanation.reason } : {}),
      ...(ex.bytes !== undefined ? { bytes: ex.bytes } : {}),
      status: ex.status,
      ms: Math.round(durationMs * 10) / 10,
    },
    'request',
  );
}

/** The journal's outcome for a Twirp error answer (as the mock names its own). */
export function twirpErrorOutcome(
  status: number,
  code: string | undefined,
  msg: string | undefined,
): Outcome {
  if (status === 429 || code === 'resource_exhausted') return 'rate-limited';
  switch (code) {
    case 'already_exists':
      return 'conflict';
    case 'failed_precondition':
      return msg?.includes('insufficient usage') ? 'quota' : 'error';
    case 'permission_denied':
      return 'read-denied';
    case 'not_found':
      return 'not-found';
    default:
      return 'error';
  }
}
