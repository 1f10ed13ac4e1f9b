import type { FastifyRequest } from 'fastify';

/** The request's query string as `URLSearchParams` (first value wins with `get`; no array surprises). */
export function queryOf(request: FastifyRequest): URLSearchParams {
  const i = request.url.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : request.url.slice(i + 1));
}
