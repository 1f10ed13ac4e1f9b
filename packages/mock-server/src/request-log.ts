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

/** Replaces a signed URL's `sig` (and any token) with `REDACTED`. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:sig|token)=)[^&]*/gi, '$1REDACTED');
}

/** One structured line per request: method, redacted URL, op, key, match, status, bytes, duration. */
export const requestLogPlugin = fp(
  async (app: FastifyInstance) => {
    app.decorateRequest('audit', null as unknown as RequestAudit);
    app.addHook('onRequest', async (request: FastifyRequest) => {
      request.audit = {};
    });
    app.addHook('onResponse', async (request, reply) => {
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
