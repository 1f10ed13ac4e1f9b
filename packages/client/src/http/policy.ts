/**
 * The ONE retry policy of the client: which requests are retried, on what, and after how long. The retry
 * handler (`retry-handler.ts`) carries it out for every request; no other layer retries.
 *
 * Which requests: every method, POST included, as long as its body can be sent again ({@link replayable});
 * see {@link RetryPolicy.retries}. Only a GET is resumed once its body has begun ({@link RetryPolicy.resumes}).
 *
 * On what:
 * - 500/502/503/504, connection resets and timeouts ({@link RETRY_ERRNO}) and, for requests that ask for it
 *   (`validateResponse`), invalid success bodies: jittered exponential backoff, up to `maxAttempts` in total;
 * - 429: waits for `Retry-After` (or `retry-after-ms` / `x-ms-retry-after-ms`) when it is at most
 *   `maxRetryAfterMs`; otherwise the 429 goes to the caller, which fails with the reset time;
 * - other 4xx (and every other status): never.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { header } from './headers.js';

/** Options of the retry policy. */
export interface RetryOptions {
  /** Attempts per request, the first included. Default `5`. */
  maxAttempts: number;
  /** Base of the exponential backoff: retry n waits in [b·2ⁿ⁻¹/2, b·2ⁿ⁻¹). Default `250` ms. */
  baseDelayMs: number;
  /** Cap of one backoff delay. Default `10_000` ms. */
  maxDelayMs: number;
  /** Longest `Retry-After` of a 429 that is waited out; longer ones fail at once. Default `60_000` ms. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_OPTIONS: Readonly<RetryOptions> = Object.freeze({
  maxAttempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
});

/** One retry decision, as reported in `ExchangeEvent.retries`. */
export interface RetryRecord {
  /** `HTTP 503`, `ECONNRESET`, `invalid body`, `resume at 123` ... */
  reason: string;
  delayMs: number;
}

/** Statuses retried with backoff (429 has its own rule). */
const RETRY_STATUS = new Set([500, 502, 503, 504]);

/** Transport failures retried with backoff: the connection broke or timed out, the request may be sent again. */
export const RETRY_ERRNO: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

const kReplayable = Symbol.for('gha-cache.replayable');

/** Marks an async iterable body as replayable: each iteration must yield the same bytes from the start. */
export function replayable<T extends AsyncIterable<Uint8Array>>(body: T): T {
  Object.defineProperty(body, kReplayable, { value: true });
  return body;
}

function isReplayable(body: unknown): boolean {
  if (body === undefined || body === null) return true;
  if (typeof body === 'string' || body instanceof Uint8Array) return true;
  return typeof body === 'object' && (body as { [kReplayable]?: boolean })[kReplayable] === true;
}

/** Parses `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` (seconds or HTTP date) into ms. */
export function parseRetryAfterMs(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const v = header(headers, name);
    if (v !== undefined && /^\d+$/.test(v.trim())) return Number(v.trim());
  }
  const v = header(headers, 'retry-after')?.trim();
  if (v === undefined || v === '') return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Jittered exponential backoff for retry number `retry` (1-based). */
export function backoffDelayMs(
  retry: number,
  opts: RetryOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** (retry - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** The policy with its options resolved; `random` ([0,1)) drives the jitter. */
export class RetryPolicy {
  readonly options: Readonly<RetryOptions>;
  readonly #random: () => number;

  constructor(options: Partial<RetryOptions> = {}, random: () => number = Math.random) {
    this.options = {
      maxAttempts: options.maxAttempts ?? DEFAULT_RETRY_OPTIONS.maxAttempts,
      baseDelayMs: options.baseDelayMs ?? DEFAULT_RETRY_OPTIONS.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? DEFAULT_RETRY_OPTIONS.maxDelayMs,
      maxRetryAfterMs: options.maxRetryAfterMs ?? DEFAULT_RETRY_OPTIONS.maxRetryAfterMs,
    };
    const { maxAttempts } = this.options;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new RangeError(`retry.maxAttempts must be an integer >= 1, got ${maxAttempts}`);
    }
    this.#random = random;
  }

  /**
   * The rule for which requests are retried: any method, POST included, whose body can be sent again.
   * Every request the client makes is safe to repeat:
   * - CreateCacheEntry: a retry whose first answer was lost meets its own reservation as `already_exists`;
   *   the caller tells that apart through the attempt count (`RequestHints.state`);
   * - FinalizeCacheEntryUpload: repeating it for a committed entry answers ok with the same entry id;
   * - GetCacheEntryDownloadURL, the REST API's GETs, HEAD and GET of a blob: reads;
   * - Put Blob, Put Block, Put Block List: the same bytes (or block list) again leave the same blob;
   * - REST DELETE: repeating a delete that went through answers 404, reported as not found.
   */
  retries(request: Dispatcher.DispatchOptions): boolean {
    return isReplayable(request.body);
  }

  /** Whether a request whose body broke after the headers is resumed with `Range` from the first missing byte. */
  resumes(request: Dispatcher.DispatchOptions): boolean {
    return request.method === 'GET';
  }

  /** Whether another attempt may follow attempt number `attempt` (1-based). */
  attemptsLeft(attempt: number): boolean {
    return attempt < this.options.maxAttempts;
  }

  /** The backoff after attempt number `attempt`. */
  backoff(attempt: number): number {
    return backoffDelayMs(attempt, this.options, this.#random);
  }

  /** The retry a response status asks for after attempt `attempt`, or undefined when it stands. */
  onStatus(status: number, headers: IncomingHttpHeaders, attempt: number): RetryRecord | undefined {
    if (status === 429) {
      const after = parseRetryAfterMs(headers);
      if (after !== undefined && after > this.options.maxRetryAfterMs) return undefined;
      return { reason: 'HTTP 429', delayMs: after ?? this.backoff(attempt) };
    }
    if (RETRY_STATUS.has(status)) {
      const after = parseRetryAfterMs(headers);
      const backoff = this.backoff(attempt);
      return {
        reason: `HTTP ${status}`,
        delayMs:
          after === undefined ? backoff : Math.min(Math.max(after, backoff), this.options.maxRetryAfterMs),
      };
    }
    return undefined;
  }

  /** Whether a transport failure with this error code is worth another attempt. */
  retriesErrno(errno: string | undefined): boolean {
    return errno !== undefined && RETRY_ERRNO.has(errno);
  }
}
