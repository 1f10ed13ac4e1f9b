import type { IncomingHttpHeaders } from 'node:http';
import {
  RateLimitError,
  ReadDeniedError,
  TWIRP_CODES,
  type TwirpCode,
  TwirpError,
  type TwirpErrorInit,
  UsageLimitError,
} from '../errors.js';
import { parseRetryAfterMs } from '../http/policy.js';

const KNOWN = new Set<string>(TWIRP_CODES);

/** Twirp code for an HTTP status, used when the body is not a Twirp error or names an unknown code. */
export function twirpCodeForStatus(status: number): TwirpCode {
  switch (status) {
    case 400:
      return 'invalid_argument';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'permission_denied';
    case 404:
      return 'bad_route';
    case 408:
      return 'deadline_exceeded';
    case 409:
      return 'already_exists';
    case 412:
      return 'failed_precondition';
    case 429:
      return 'resource_exhausted';
    case 500:
      return 'internal';
    case 501:
      return 'unimplemented';
    case 502:
    case 503:
    case 504:
      return 'unavailable';
    default:
      return 'unknown';
  }
}

/** Normalises a wire code: `data_loss` (some Twirp ports) is the spec's `dataloss`. */
export function normaliseTwirpCode(code: string): TwirpCode | undefined {
  const c = code === 'data_loss' ? 'dataloss' : code;
  return KNOWN.has(c) ? (c as TwirpCode) : undefined;
}

/**
 * Turns a non-2xx Twirp response into a typed error. Twirp errors are JSON `{code,msg,meta}`; anything else
 * (a proxy's HTML, an empty body) is mapped by HTTP status and keeps a snippet of the body in `meta.body`.
 */
export function parseTwirpError(
  method: string,
  httpStatus: number,
  headers: IncomingHttpHeaders,
  body: string,
  now = Date.now(),
): TwirpError {
  let twirpCode: TwirpCode | undefined;
  let msg = '';
  let meta: Record<string, string> = {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (
    typeof parsed === 'object' &&
    parsed !== null &&
    typeof (parsed as { code?: unknown }).code === 'string'
  ) {
    const p = parsed as { code: string; msg?: unknown; message?: unknown; meta?: unknown };
    twirpCode = normaliseTwirpCode(p.code);
    msg = typeof p.msg === 'string' ? p.msg : typeof p.message === 'string' ? p.message : '';
    if (typeof p.meta === 'object' && p.meta !== null) {
      for (const [k, v] of Object.entries(p.meta)) if (typeof v === 'string') meta[k] = v;
    }
    if (twirpCode === undefined) meta = { ...meta, twirp_code: p.code };
  } else {
    meta = { http_error_from_intermediary: 'true', body: body.slice(0, 200) };
    msg = `non-Twirp error response (HTTP ${httpStatus})`;
  }
  const init: TwirpErrorInit = {
    method,
    twirpCode: twirpCode ?? twirpCodeForStatus(httpStatus),
    msg,
    meta,
    httpStatus,
  };
  if (msg.includes('insufficient usage')) return new UsageLimitError(init);
  if (httpStatus === 429 || init.twirpCode === 'resource_exhausted') {
    return new RateLimitError({ ...init, retryAfterMs: parseRetryAfterMs(headers, now), now });
  }
  if (init.twirpCode === 'permission_denied' && msg.includes('cache read denied'))
    return new ReadDeniedError(init);
  return new TwirpError(init);
}
