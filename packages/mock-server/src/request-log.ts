import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

/** Facts a handler adds to its request's log line. */
export interface RequestAudit {
  /** RPC name (`CreateCacheEntry`) or blob operation (`PutBlock`, `GetBlob`, …). */
  op?: string;
  key?: string;
  /** Lookup outcome: `exact`, `prefix`, `restore-exact`, `restore-prefix` or `miss`. */
  match?: string;
  /** Request/response body encoding for Twirp: `json` or `protobuf`. */
  encoding?: string;
  /** Payload bytes received (uploads) or sent (downloads). */
  bytes?: number;
  /** Anything else worth a field. */
  [field: string]: string | number | boolean | readonly string[] | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Filled in by handlers; written as one structured log line when the response ends. */
    audit: RequestAudit;
  }
}

/** Query parameters whose values are credentials: SAS signatures and tokens. */
const SECRET_PARAMS = new Set(['sig', 'token', 'access_token']);

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' ')).trim().toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/**
 * Replaces the value of a URL's `sig`, `token` and `access_token` parameters with `REDACTED`, however
 * the name is spelled (`SIG`, `%73ig`), since the blob and Twirp routes decode names before use.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq >= 0 && SECRET_PARAMS.has(paramName(pair.slice(0, eq)))
        ? `${pair.slice(0, eq)}=REDACTED`
        : pair;
    });
  return `${url.slice(0, q)}?${query.join('&')}`;
}

/** Headers whose values are credentials. */
const SECRET_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-ms-copy-source-authorization',
]);

/**
 * A copy of `headers` fit to show (traffic journal, UI, reports): credential headers say `REDACTED`,
 * URLs in `location`/`referer` lose their signatures.
 */
export function redactHeaders(
  headers: Readonly<Record<string, string | string[] | number | undefined>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    const text = Array.isArray(value) ? value.join(', ') : String(value);
    out[name] = SECRET_HEADERS.has(lower)
      ? 'REDACTED'
      : lower === 'location' || lower === 'referer'
        ? redactUrl(text)
        : text;
  }
  return out;
}

/** pino's loggers can tell whether a level is written; Fastify's type does not say so. */
type MaybeLevels = { isLevelEnabled?: (level: string) => boolean };

/** One structured line per request: method, redacted URL, op, key, match, status, bytes, duration. */
export const requestLogPlugin = fp(
  async (app: FastifyInstance) => {
    app.decorateRequest('audit', null as unknown as RequestAudit);
    app.addHook('onRequest', async (request: FastifyRequest) => {
      request.audit = {};
    });
    app.addHook('onResponse', async (request, reply) => {
      // No line to write (`--log-level warn` or quieter): build none.
      if ((request.log as MaybeLevels).isLevelEnabled?.('info') === false) return;
      request.log.info(
        {
          method: request.method,
          url: redactUrl(request.url),
          ...request.audit,
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 10) / 10,
        },
        'request',
      );
    });
  },
  { name: 'request-log' },
);
