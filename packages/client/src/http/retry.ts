/**
 * The ONE retry policy of the client, as an undici interceptor. Every request of the client (Twirp and
 * blob) passes through it exactly once; no other layer retries.
 *
 * - 500/502/503/504, connection resets, timeouts and (for requests that ask for it) invalid success bodies
 *   are retried with jittered exponential backoff, up to `maxAttempts` attempts in total;
 * - 429 waits for `Retry-After` (or `retry-after-ms` / `x-ms-retry-after-ms`) when it is at most
 *   `maxRetryAfterMs`; otherwise the 429 response is handed to the caller, which fails with the reset time;
 * - other 4xx (and every other status) are never retried;
 * - only replayable bodies are retried (none, string, bytes, or iterables marked with {@link replayable});
 * - a GET whose body breaks after the headers were delivered is resumed with `Range` from the first
 *   missing byte (`If-Match` on a strong ETag), so the caller sees one uninterrupted body.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { redactUrl } from './redact.js';

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

/** One retry decision, as reported in {@link ExchangeEvent.retries}. */
export interface RetryRecord {
  /** `HTTP 503`, `ECONNRESET`, `invalid body`, `resume at 123` ... */
  reason: string;
  delayMs: number;
}

/** One logical HTTP exchange (all its attempts), reported once it ends. */
export interface ExchangeEvent {
  /** What the caller called it, e.g. `CreateCacheEntry`, `PutBlock`, `GetRange`. */
  label: string;
  method: string;
  /** URL with signatures redacted. */
  url: string;
  /** Final status; undefined when no response arrived. */
  status: number | undefined;
  /** Error code when the exchange failed without (or in the middle of) a response. */
  error: string | undefined;
  attempts: number;
  retries: RetryRecord[];
  requestBytes: number;
  responseBytes: number;
  /** Epoch ms of the first attempt. */
  startedAt: number;
  /** First attempt start → final response headers. */
  ttfbMs: number | undefined;
  durationMs: number;
}

/** Per-request hints, passed as the `ghaCache` dispatch option. */
export interface RequestHints {
  /** Name used in traces. */
  label?: string;
  /** For 2xx responses: buffer the body and retry when this returns false (e.g. a proxy's HTML page). */
  validateResponse?: (statusCode: number, headers: IncomingHttpHeaders, body: Buffer) => boolean;
  /** Receives the number of attempts made so far. */
  state?: { attempts: number };
}

export type HintedDispatchOptions = Dispatcher.DispatchOptions & { ghaCache?: RequestHints };

export interface RetryInterceptorOptions extends Partial<RetryOptions> {
  /** Called once per logical exchange when it ends. */
  onExchange?: (event: ExchangeEvent) => void;
  /** Random source in [0,1) for the jitter. Default `Math.random`. */
  random?: () => number;
}

const RETRY_STATUS = new Set([500, 502, 503, 504]);
const RETRY_ERRNO = new Set([
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

function errnoOf(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let i = 0; i < 4 && typeof cur === 'object' && cur !== null; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
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

function headerValue(headers: Dispatcher.DispatchOptions['headers'], name: string): string | undefined {
  if (!headers) return undefined;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === name) return String(headers[i + 1]);
    }
    return undefined;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of headers as Iterable<[string, string | string[] | undefined]>) {
      if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
    }
    return undefined;
  }
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
    if (k.toLowerCase() === name)
      return Array.isArray(v) ? String(v[0]) : v === undefined ? undefined : String(v);
  }
  return undefined;
}

function headersWith(
  headers: Dispatcher.DispatchOptions['headers'],
  extra: Record<string, string>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2)
      out[String(headers[i]).toLowerCase()] = String(headers[i + 1]);
  } else if (headers && typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of headers as Iterable<[string, string | string[] | undefined]>) {
      if (v !== undefined) out[k.toLowerCase()] = v;
    }
  } else if (headers) {
    for (const [k, v] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
      if (v !== undefined) out[k.toLowerCase()] = v;
    }
  }
  for (const [k, v] of Object.entries(extra)) out[k] = v;
  return out;
}

function parseContentRange(
  v: string | undefined,
): { start: number; end: number; size: number | undefined } | undefined {
  const m = v === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), size: m[3] === '*' ? undefined : Number(m[3]) };
}

class ProxyController implements Dispatcher.DispatchController {
  target: Dispatcher.DispatchController | undefined;
  onAbort: ((reason: Error) => void) | undefined;
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;

  setTarget(target: Dispatcher.DispatchController): void {
    this.target = target;
    if (this.#aborted) target.abort(this.#reason ?? new Error('aborted'));
    else if (this.#paused) target.pause();
  }
  get aborted(): boolean {
    return this.#aborted;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#reason;
  }
  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.onAbort?.(reason);
  }
  pause(): void {
    this.#paused = true;
    this.target?.pause();
  }
  resume(): void {
    this.#paused = false;
    this.target?.resume();
  }
}

type Mode = 'forward' | 'drain' | 'buffer';

class RetryingHandler implements Dispatcher.DispatchHandler {
  readonly #dispatch: Dispatcher.Dispatch;
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #policy: RetryOptions;
  readonly #random: () => number;
  readonly #hints: RequestHints;
  readonly #onExchange: ((e: ExchangeEvent) => void) | undefined;
  readonly #proxy = new ProxyController();
  readonly #replayable: boolean;
  readonly #startedAt = Date.now();
  #opts: HintedDispatchOptions;
  #attempt = 0;
  #retries: RetryRecord[] = [];
  #mode: Mode = 'forward';
  #startedDownstream = false;
  #headersForwarded = false;
  #resuming = false;
  #inFlight = false;
  #done = false;
  #timer: NodeJS.Timeout | undefined;
  #pendingDelay = 0;
  #pendingReason = '';
  #buffered: Buffer[] = [];
  #pending: { status: number; headers: IncomingHttpHeaders; message: string | undefined } | undefined;
  #status: number | undefined;
  #ttfbMs: number | undefined;
  #responseBytes = 0;
  // resume bookkeeping (GET bodies)
  #rangeStart = 0;
  #rangeEnd: number | undefined;
  #etag: string | undefined;
  #fatal: Error | undefined;

  constructor(
    dispatch: Dispatcher.Dispatch,
    opts: HintedDispatchOptions,
    handler: Dispatcher.DispatchHandler,
    policy: RetryOptions,
    random: () => number,
    onExchange: ((e: ExchangeEvent) => void) | undefined,
  ) {
    this.#dispatch = dispatch;
    this.#opts = opts;
    this.#handler = handler;
    this.#policy = policy;
    this.#random = random;
    this.#hints = opts.ghaCache ?? {};
    this.#onExchange = onExchange;
    this.#replayable = isReplayable(opts.body);
    this.#proxy.onAbort = (reason) => {
      if (this.#timer !== undefined) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#fail(reason);
      } else {
        this.#proxy.target?.abort(reason);
      }
    };
  }

  start(): void {
    this.#attempt += 1;
    if (this.#hints.state) this.#hints.state.attempts = this.#attempt;
    this.#mode = 'forward';
    this.#buffered = [];
    this.#pending = undefined;
    this.#inFlight = true;
    try {
      this.#dispatch(this.#opts, this);
    } catch (err) {
      this.#inFlight = false;
      this.#fail(err as Error);
    }
  }

  #attemptsLeft(): boolean {
    return this.#attempt < this.#policy.maxAttempts;
  }

  #schedule(reason: string, delayMs: number, resume: boolean): void {
    this.#retries.push({ reason, delayMs });
    this.#inFlight = false;
    if (resume) {
      const next = this.#rangeStart + this.#responseBytes;
      const extra: Record<string, string> = { range: `bytes=${next}-${this.#rangeEnd ?? ''}` };
      if (this.#etag !== undefined) extra['if-match'] = this.#etag;
      this.#opts = { ...this.#opts, headers: headersWith(this.#opts.headers, extra) };
      this.#resuming = true;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#proxy.aborted) {
        this.#fail(this.#proxy.reason ?? new Error('aborted'));
        return;
      }
      this.start();
    }, delayMs);
  }

  #emit(error: string | undefined): void {
    if (!this.#onExchange) return;
    const len = headerValue(this.#opts.headers, 'content-length');
    const body = this.#opts.body;
    const requestBytes =
      len !== undefined
        ? Number(len)
        : typeof body === 'string'
          ? Buffer.byteLength(body)
          : body instanceof Uint8Array
            ? body.byteLength
            : 0;
    try {
      this.#onExchange({
        label: this.#hints.label ?? '',
        method: this.#opts.method,
        url: redactUrl(`${String(this.#opts.origin ?? '')}${this.#opts.path}`),
        status: this.#status,
        error,
        attempts: this.#attempt,
        retries: this.#retries,
        requestBytes,
        responseBytes: this.#responseBytes,
        startedAt: this.#startedAt,
        ttfbMs: this.#ttfbMs,
        durationMs: Date.now() - this.#startedAt,
      });
    } catch {
      // a trace sink must never break a transfer
    }
  }

  #fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#emit(errnoOf(err) ?? err.name);
    if (!this.#startedDownstream) {
      this.#startedDownstream = true;
      this.#handler.onRequestStart?.(this.#proxy, {});
    }
    this.#handler.onResponseError?.(this.#proxy, err);
  }

  #forwardStart(status: number, headers: IncomingHttpHeaders, message: string | undefined): void {
    this.#headersForwarded = true;
    this.#ttfbMs = Date.now() - this.#startedAt;
    this.#handler.onResponseStart?.(this.#proxy, status, headers, message);
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#proxy.setTarget(controller);
    if (!this.#startedDownstream) {
      this.#startedDownstream = true;
      this.#handler.onRequestStart?.(this.#proxy, context);
    }
  }

  onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    socket: import('node:stream').Duplex,
  ): void {
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    this.#status = statusCode;
    if (this.#resuming) {
      const cr = parseContentRange(header(headers, 'content-range'));
      const next = this.#rangeStart + this.#responseBytes;
      if (statusCode === 206 && cr !== undefined && cr.start === next) {
        this.#resuming = false;
        this.#mode = 'forward';
        return;
      }
      this.#fatal = new Error(
        `resume at byte ${next} answered HTTP ${statusCode} ${header(headers, 'content-range') ?? ''}`.trim(),
      );
      this.#mode = 'drain';
      controller.abort(this.#fatal);
      return;
    }
    const canRetry = this.#replayable && this.#attemptsLeft() && !this.#proxy.aborted;
    if (statusCode === 429 && canRetry) {
      const after = parseRetryAfterMs(headers);
      if (after === undefined || after <= this.#policy.maxRetryAfterMs) {
        this.#mode = 'drain';
        this.#pendingReason = 'HTTP 429';
        this.#pendingDelay = after ?? backoffDelayMs(this.#attempt, this.#policy, this.#random);
        return;
      }
    }
    if (RETRY_STATUS.has(statusCode) && canRetry) {
      const after = parseRetryAfterMs(headers);
      const backoff = backoffDelayMs(this.#attempt, this.#policy, this.#random);
      this.#mode = 'drain';
      this.#pendingReason = `HTTP ${statusCode}`;
      this.#pendingDelay =
        after === undefined ? backoff : Math.min(Math.max(after, backoff), this.#policy.maxRetryAfterMs);
      return;
    }
    if (this.#hints.validateResponse && statusCode >= 200 && statusCode < 300) {
      this.#mode = 'buffer';
      this.#pending = { status: statusCode, headers, message: statusMessage };
      return;
    }
    // Remember what a resume needs.
    if (this.#opts.method === 'GET' && (statusCode === 200 || statusCode === 206)) {
      const cr = statusCode === 206 ? parseContentRange(header(headers, 'content-range')) : undefined;
      const len = header(headers, 'content-length');
      this.#rangeStart = cr?.start ?? 0;
      this.#rangeEnd = cr?.end ?? (len !== undefined ? Number(len) - 1 : undefined);
      const etag = header(headers, 'etag');
      this.#etag = etag !== undefined && !etag.startsWith('W/') ? etag : undefined;
    }
    this.#mode = 'forward';
    this.#forwardStart(statusCode, headers, statusMessage);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#mode === 'drain') return;
    if (this.#mode === 'buffer') {
      this.#buffered.push(chunk);
      return;
    }
    this.#responseBytes += chunk.length;
    this.#handler.onResponseData?.(this.#proxy, chunk);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#done) return;
    if (this.#mode === 'drain') {
      if (this.#fatal) {
        this.#fail(this.#fatal);
        return;
      }
      this.#schedule(this.#pendingReason, this.#pendingDelay, false);
      return;
    }
    if (this.#mode === 'buffer' && this.#pending) {
      const body = Buffer.concat(this.#buffered);
      const { status, headers, message } = this.#pending;
      let ok = false;
      try {
        ok = this.#hints.validateResponse?.(status, headers, body) ?? true;
      } catch {
        ok = false;
      }
      if (!ok && this.#replayable && this.#attemptsLeft() && !this.#proxy.aborted) {
        this.#schedule('invalid body', backoffDelayMs(this.#attempt, this.#policy, this.#random), false);
        return;
      }
      this.#forwardStart(status, headers, message);
      if (body.length > 0) {
        this.#responseBytes += body.length;
        this.#handler.onResponseData?.(this.#proxy, body);
      }
    }
    this.#done = true;
    this.#inFlight = false;
    this.#emit(undefined);
    this.#handler.onResponseEnd?.(this.#proxy, trailers);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return;
    this.#inFlight = false;
    if (this.#proxy.aborted) {
      this.#fail(this.#proxy.reason ?? err);
      return;
    }
    if (this.#fatal) {
      this.#fail(this.#fatal);
      return;
    }
    const errno = errnoOf(err) ?? '';
    const retryableError = RETRY_ERRNO.has(errno);
    if (this.#headersForwarded) {
      const canResume =
        this.#opts.method === 'GET' &&
        retryableError &&
        this.#rangeEnd !== undefined &&
        this.#rangeStart + this.#responseBytes <= this.#rangeEnd &&
        this.#attemptsLeft();
      if (canResume) {
        this.#schedule(
          `${errno}; resume at ${this.#rangeStart + this.#responseBytes}`,
          backoffDelayMs(this.#attempt, this.#policy, this.#random),
          true,
        );
        return;
      }
      this.#fail(err);
      return;
    }
    if (this.#mode === 'drain' && this.#pendingReason !== '') {
      // The retry was already decided on the status; a broken error body changes nothing.
      this.#schedule(this.#pendingReason, this.#pendingDelay, false);
      return;
    }
    if ((retryableError || this.#mode === 'buffer') && this.#replayable && this.#attemptsLeft()) {
      this.#schedule(errno || err.name, backoffDelayMs(this.#attempt, this.#policy, this.#random), false);
      return;
    }
    this.#fail(err);
  }

  get inFlight(): boolean {
    return this.#inFlight;
  }
}

/** Creates the retry interceptor; compose it onto any undici dispatcher: `agent.compose(interceptor)`. */
export function createRetryInterceptor(
  options: RetryInterceptorOptions = {},
): Dispatcher.DispatcherComposeInterceptor {
  const policy: RetryOptions = {
    maxAttempts: options.maxAttempts ?? DEFAULT_RETRY_OPTIONS.maxAttempts,
    baseDelayMs: options.baseDelayMs ?? DEFAULT_RETRY_OPTIONS.baseDelayMs,
    maxDelayMs: options.maxDelayMs ?? DEFAULT_RETRY_OPTIONS.maxDelayMs,
    maxRetryAfterMs: options.maxRetryAfterMs ?? DEFAULT_RETRY_OPTIONS.maxRetryAfterMs,
  };
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new RangeError(`retry.maxAttempts must be an integer >= 1, got ${policy.maxAttempts}`);
  }
  const random = options.random ?? Math.random;
  return (dispatch) =>
    function ghaCacheRetry(opts, handler) {
      const h = new RetryingHandler(
        dispatch,
        opts as HintedDispatchOptions,
        handler,
        policy,
        random,
        options.onExchange,
      );
      h.start();
      return true;
    };
}
