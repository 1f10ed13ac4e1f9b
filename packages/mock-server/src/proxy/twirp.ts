/**
 * Twirp calls (and any other path of the service): forwarded with the client's headers and body, the
 * answer returned with its status, headers and body as the upstream sent them, except that a signed
 * blob URL in a successful CreateCacheEntry / GetCacheEntryDownloadURL answer becomes a proxy URL.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Outcome } from '../journal/types.js';
import type { BlobFacts } from './blob-urls.js';
import { bearerOf, decodeClaims, readableScopes, writeScope } from './claims.js';
import type { ProxyContext } from './context.js';
import { endToEndHeaders, headerValue, setRawHeader, UpstreamError } from './forward.js';
import { type Exchange, recordExchange, twirpErrorOutcome } from './record.js';
import { readAll, sendTwirpJson } from './respond.js';
import {
  CREATE,
  decodeBody,
  encodeBody,
  encodingOf,
  FINALIZE,
  LOOKUP,
  requestFacts,
  responseFacts,
  rewriteUrl,
} from './twirp-body.js';

/** Answers larger than this are not Twirp cache answers: they pass through unread. */
const MAX_ANSWER = 16 * 1024 * 1024;

/** Which restore rule a matched key satisfied, as the mock names them. */
export function matchOf(key: string, restoreKeys: readonly string[], matched: string): string {
  if (matched === key) return 'exact';
  if (matched.startsWith(key)) return 'prefix';
  for (const k of restoreKeys) {
    if (matched === k) return 'restore-exact';
    if (matched.startsWith(k)) return 'restore-prefix';
  }
  return 'prefix';
}

/** The upstream URL of a request path (never another host: leading slashes are dropped first). */
export function upstreamUrlOf(ctx: ProxyContext, url: string): URL {
  return new URL(url.replace(/^\/+/, ''), ctx.base);
}

function proxyOrigin(ctx: ProxyContext, request: FastifyRequest): string {
  return ctx.publicUrl ?? `http://${request.headers.host ?? '127.0.0.1'}`;
}

function failExchange(
  ctx: ProxyContext,
  request: FastifyRequest,
  reply: FastifyReply,
  base: Omit<Exchange, 'status' | 'outcome'>,
  err: unknown,
  twirp: boolean,
): void {
  const res = reply.raw;
  if (err instanceof UpstreamError && err.phase === 'connect' && !res.headersSent) {
    const msg = `gha-cache-mock proxy: the upstream ${ctx.origin} could not be reached (${err.causeCode})`;
    if (twirp) sendTwirpJson(res, 502, 'unavailable', msg);
    else res.writeHead(502, { 'content-type': 'text/plain' }).end(msg);
    recordExchange(ctx.journal, ctx.origin, request, {
      ...base,
      status: 502,
      outcome: 'error',
      reason: msg,
      errorCode: 'upstream_unreachable',
    });
    request.log.warn({ code: err.causeCode }, `upstream ${ctx.origin} unreachable`);
    return;
  }
  // The upstream (or the client) cut the exchange: the client's connection is cut too, as it happened.
  res.destroy();
  const code = err instanceof UpstreamError ? err.causeCode : (err as NodeJS.ErrnoException)?.code;
  recordExchange(ctx.journal, ctx.origin, request, {
    ...base,
    status: res.headersSent ? res.statusCode : 0,
    outcome: 'error',
    reason: `connection dropped${code ? ` (${code})` : ''}`,
    errorCode: 'connection_dropped',
  });
}

export async function forwardTwirp(
  ctx: ProxyContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const startedAt = performance.now();
  reply.hijack();
  const res = reply.raw;
  const path = request.url.split('?')[0]!;
  const isTwirp = path.includes('/twirp/');
  const op = isTwirp ? (path.split('/').at(-1) ?? 'Twirp') : 'Forward';
  const claims = decodeClaims(bearerOf(headerValue(request.headers, 'authorization')));
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  let body: Buffer;
  try {
    body = await readAll(request.raw, ctx.twirpBodyLimitBytes);
  } catch (err) {
    failExchange(ctx, request, reply, { op, surface: isTwirp ? 'twirp' : 'rest', startedAt }, err, isTwirp);
    return;
  }
  const encoding = encodingOf(headerValue(request.headers, 'content-type'));
  const facts = isTwirp ? requestFacts(op, encoding, body) : {};
  const scopes = op === LOOKUP ? readableScopes(claims) : undefined;
  const scope = op === CREATE || op === FINALIZE ? writeScope(claims) : undefined;
  const base: Omit<Exchange, 'status' | 'outcome'> = {
    op,
    surface: isTwirp ? 'twirp' : 'rest',
    startedAt,
    ...(claims?.repositoryId !== undefined ? { repositoryId: claims.repositoryId } : {}),
    ...(scopes ? { scopes } : scope !== undefined ? { scopes: [scope] } : {}),
    ...(scope !== undefined ? { scope } : {}),
    ...(facts.key !== undefined ? { key: facts.key } : {}),
    ...(facts.restoreKeys ? { restoreKeys: facts.restoreKeys } : {}),
    ...(facts.version !== undefined ? { version: facts.version } : {}),
  };

  let upstreamRes: Awaited<ReturnType<ProxyContext['upstream']['send']>>;
  let answer: Buffer;
  try {
    upstreamRes = await ctx.upstream.send(
      upstreamUrlOf(ctx, request.url),
      request.method,
      endToEndHeaders(request.raw.rawHeaders),
      request.method === 'GET' || request.method === 'HEAD' ? undefined : body,
      abort.signal,
    );
    answer = await readAll(upstreamRes, MAX_ANSWER);
  } catch (err) {
    failExchange(ctx, request, reply, base, err, isTwirp);
    return;
  }
  const status = upstreamRes.statusCode ?? 502;
  let headers = endToEndHeaders(upstreamRes.rawHeaders);
  const contentEncoding = headerValue(upstreamRes.headers, 'content-encoding');
  const decoded = decodeBody(answer, contentEncoding);
  const answerEncoding = encodingOf(headerValue(upstreamRes.headers, 'content-type')) ?? encoding;
  const rf = isTwirp && decoded ? responseFacts(op, status, answerEncoding, decoded) : {};

  let out = answer;
  let blobFacts: BlobFacts | undefined;
  if (status === 200 && rf.ok && rf.signedUrl && facts.key !== undefined) {
    blobFacts =
      op === CREATE
        ? {
            kind: 'upload',
            key: facts.key,
            ...(facts.version !== undefined ? { version: facts.version } : {}),
            ...(scope !== undefined ? { scope } : {}),
            ...(claims?.repositoryId !== undefined ? { repositoryId: claims.repositoryId } : {}),
          }
        : op === LOOKUP
          ? {
              kind: 'download',
              key: rf.matchedKey ?? facts.key,
              ...(facts.version !== undefined ? { version: facts.version } : {}),
              ...(() => {
                const s =
                  (facts.version !== undefined
                    ? ctx.history.scopeOf(rf.matchedKey ?? facts.key, facts.version)
                    : undefined) ?? scopes?.[0];
                return s !== undefined ? { scope: s } : {};
              })(),
              ...(claims?.repositoryId !== undefined ? { repositoryId: claims.repositoryId } : {}),
            }
          : undefined;
  }
  if (blobFacts && ctx.blobs === 'proxy' && decoded && rf.signedUrl) {
    try {
      const proxied = ctx.registry.rewrite(rf.signedUrl, blobFacts, proxyOrigin(ctx, request));
      const rewritten = rewriteUrl(answerEncoding, decoded, rf.signedUrl, proxied);
      if (rewritten) {
        out = encodeBody(rewritten, contentEncoding);
        headers = setRawHeader(headers, 'Content-Length', String(out.length));
      } else request.log.warn(`${op}: the signed URL could not be rewritten; the client goes to it directly`);
    } catch {
      request.log.warn(`${op}: the signed URL is not a URL; passed through unchanged`);
    }
  }
  res.writeHead(status, upstreamRes.statusMessage, headers);
  res.end(out);

  let outcome: Outcome;
  let match: string | undefined;
  let reason: string | undefined;
  let explanation: Exchange['explanation'];
  if (!isTwirp) outcome = status < 400 ? 'ok' : status === 404 ? 'not-found' : 'error';
  else if (status !== 200) {
    outcome = twirpErrorOutcome(status, rf.errorCode, rf.errorMsg);
    reason =
      rf.errorMsg ?? (rf.errorCode === undefined ? `HTTP ${status}, not a Twirp error body` : undefined);
  } else if (op === CREATE) {
    outcome = rf.ok ? 'created' : /denied/i.test(rf.message ?? '') ? 'write-denied' : 'conflict';
    if (!rf.ok && rf.message) reason = rf.message;
    if (rf.ok && facts.key !== undefined && facts.version !== undefined)
      ctx.history.created(facts.key, facts.version, scope);
  } else if (op === FINALIZE) {
    outcome = rf.ok ? 'committed' : 'error';
    if (!rf.ok) reason = rf.message || 'finalize answered ok=false';
    if (rf.ok && facts.key !== undefined && facts.version !== undefined) {
      ctx.history.finalized(facts.key, facts.version, scope);
      ctx.saver?.finalized(facts.key, facts.version, scope);
    }
  } else if (op === LOOKUP) {
    if (rf.ok && rf.matchedKey !== undefined && facts.key !== undefined) {
      match = matchOf(facts.key, facts.restoreKeys ?? [], rf.matchedKey);
      outcome = match === 'exact' || match === 'restore-exact' ? 'hit-exact' : 'hit-prefix';
    } else if (rf.ok === false) {
      outcome = 'miss';
      if (facts.key !== undefined && facts.version !== undefined) {
        explanation = ctx.history.explain({
          key: facts.key,
          restoreKeys: facts.restoreKeys ?? [],
          version: facts.version,
          scopes: scopes ?? [],
        });
        reason = explanation.message;
      }
    } else outcome = rf.ok ? 'hit-exact' : 'error';
  } else outcome = 'ok';

  recordExchange(ctx.journal, ctx.origin, request, {
    ...base,
    status,
    outcome,
    ...(match !== undefined ? { match } : {}),
    ...(rf.matchedKey ? { matchedKey: rf.matchedKey } : {}),
    ...(rf.entryId !== undefined && /^\d{1,15}$/.test(rf.entryId) ? { entryId: Number(rf.entryId) } : {}),
    ...(reason ? { reason } : {}),
    ...(explanation ? { explanation } : {}),
    ...(facts.sizeBytes !== undefined && op === FINALIZE ? { bytes: facts.sizeBytes } : {}),
    ...(rf.errorCode ? { errorCode: rf.errorCode } : {}),
  });
}
