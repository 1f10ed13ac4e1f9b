/**
 * The retry handler: carries out the {@link RetryPolicy} for one logical request. It dispatches attempts,
 * drains the responses it retries, buffers the 2xx bodies a request asks to validate, and resumes a GET
 * whose body broke after the headers ({@link ResumePoint}), so the caller sees one response and one
 * uninterrupted body.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { errnoOf } from '../errno.js';
import { ProxyController } from './controller.js';
import { headersWith } from './headers.js';
import { HeldResponse, type HintedDispatchOptions, type RequestHints } from './hints.js';
import type { RetryPolicy, RetryRecord } from './policy.js';
import { ResumePoint } from './resume.js';
import { type ExchangeEvent, ExchangeTrace } from './trace.js';

/** What happens to the current attempt's response body. */
type Mode = 'forward' | 'drain' | 'buffer';

export class RetryHandler implements Dispatcher.DispatchHandler {
  readonly #dispatch: Dispatcher.Dispatch;
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #policy: RetryPolicy;
  readonly #hints: RequestHints;
  readonly #trace: ExchangeTrace;
  readonly #proxy = new ProxyController();
  readonly #retries: boolean;
  #opts: HintedDispatchOptions;
  #mode: Mode = 'forward';
  #startedDownstream = false;
  #headersForwarded = false;
  #resuming = false;
  #done = false;
  #timer: NodeJS.Timeout | undefined;
  /** The retry decided on the current attempt's status, taken once its body is drained. */
  #pendingRetry: RetryRecord | undefined;
  /** A 2xx held back (mode `buffer`) until `validateResponse` has seen its body. */
  #held: HeldResponse | undefined;
  readonly #resume = new ResumePoint();
  /** A resume answered with something else than the rest of the body: the request fails with this. */
  #fatal: Error | undefined;

  constructor(
    dispatch: Dispatcher.Dispatch,
    opts: HintedDispatchOptions,
    handler: Dispatcher.DispatchHandler,
    policy: RetryPolicy,
    onExchange: ((e: ExchangeEvent) => void) | undefined,
  ) {
    this.#dispatch = dispatch;
    this.#opts = opts;
    this.#handler = handler;
    this.#policy = policy;
    this.#hints = opts.ghaCache ?? {};
    this.#trace = new ExchangeTrace(this.#hints.label ?? '', onExchange);
    this.#retries = policy.retries(opts);
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
    this.#trace.attempts += 1;
    if (this.#hints.state) this.#hints.state.attempts = this.#trace.attempts;
    this.#mode = 'forward';
    this.#pendingRetry = undefined;
    this.#held = undefined;
    try {
      this.#dispatch(this.#opts, this);
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #attemptsLeft(): boolean {
    return this.#policy.attemptsLeft(this.#trace.attempts);
  }

  /** Whether this request may go once more now. */
  #mayRetry(): boolean {
    return this.#retries && this.#attemptsLeft() && !this.#proxy.aborted;
  }

  #backoff(): number {
    return this.#policy.backoff(this.#trace.attempts);
  }

  /** The first byte the caller has not received yet. */
  #position(): number {
    return this.#resume.start + this.#trace.responseBytes;
  }

  #schedule(retry: RetryRecord, resume: boolean): void {
    this.#trace.retries.push(retry);
    if (resume) {
      const extra = this.#resume.headers(this.#position());
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
    }, retry.delayMs);
  }

  #fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#trace.end(this.#opts, errnoOf(err) ?? err.name);
    if (!this.#startedDownstream) {
      this.#startedDownstream = true;
      this.#handler.onRequestStart?.(this.#proxy, {});
    }
    this.#handler.onResponseError?.(this.#proxy, err);
  }

  #forwardStart(status: number, headers: IncomingHttpHeaders, message: string | undefined): void {
    this.#headersForwarded = true;
    this.#trace.headersDelivered();
    this.#handler.onResponseStart?.(this.#proxy, status, headers, message);
  }

  #forwardData(chunk: Buffer): void {
    this.#trace.responseBytes += chunk.length;
    this.#handler.onResponseData?.(this.#proxy, chunk);
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
    socket: Duplex,
  ): void {
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    this.#trace.status = statusCode;
    if (this.#resuming) {
      this.#fatal = this.#resume.refusal(statusCode, headers, this.#position());
      this.#resuming = false;
      this.#mode = this.#fatal ? 'drain' : 'forward';
      if (this.#fatal) controller.abort(this.#fatal);
      return;
    }
    if (this.#mayRetry()) {
      this.#pendingRetry = this.#policy.onStatus(statusCode, headers, this.#trace.attempts);
      if (this.#pendingRetry !== undefined) {
        this.#mode = 'drain';
        return;
      }
    }
    if (this.#hints.validateResponse && statusCode >= 200 && statusCode < 300) {
      this.#mode = 'buffer';
      this.#held = new HeldResponse(statusCode, headers, statusMessage);
      return;
    }
    if (this.#policy.resumes(this.#opts)) this.#resume.remember(statusCode, headers);
    this.#mode = 'forward';
    this.#forwardStart(statusCode, headers, statusMessage);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#mode === 'drain') return;
    if (this.#mode === 'buffer') {
      this.#held?.chunks.push(chunk);
      return;
    }
    this.#forwardData(chunk);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#done) return;
    if (this.#mode === 'drain') {
      if (this.#fatal) this.#fail(this.#fatal);
      else if (this.#pendingRetry) this.#schedule(this.#pendingRetry, false);
      return;
    }
    if (this.#mode === 'buffer' && this.#held) {
      const { status, headers, message } = this.#held;
      const body = Buffer.concat(this.#held.chunks);
      const ok = this.#held.accepted(this.#hints, body);
      if (!ok && this.#mayRetry()) {
        this.#schedule({ reason: 'invalid body', delayMs: this.#backoff() }, false);
        return;
      }
      this.#forwardStart(status, headers, message);
      if (body.length > 0) this.#forwardData(body);
    }
    this.#done = true;
    this.#trace.end(this.#opts, undefined);
    this.#handler.onResponseEnd?.(this.#proxy, trailers);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return;
    if (this.#proxy.aborted) {
      this.#fail(this.#proxy.reason ?? err);
      return;
    }
    if (this.#fatal) {
      this.#fail(this.#fatal);
      return;
    }
    const errno = errnoOf(err) ?? '';
    const retryableError = this.#policy.retriesErrno(errno);
    if (this.#headersForwarded) {
      const canResume =
        this.#policy.resumes(this.#opts) &&
        retryableError &&
        this.#resume.canResumeAt(this.#position()) &&
        this.#attemptsLeft();
      if (canResume) {
        this.#schedule({ reason: `${errno}; resume at ${this.#position()}`, delayMs: this.#backoff() }, true);
        return;
      }
      this.#fail(err);
      return;
    }
    if (this.#mode === 'drain' && this.#pendingRetry) {
      // The retry was already decided on the status; a broken error body changes nothing.
      this.#schedule(this.#pendingRetry, false);
      return;
    }
    if ((retryableError || this.#mode === 'buffer') && this.#retries && this.#attemptsLeft()) {
      this.#schedule({ reason: errno || err.name, delayMs: this.#backoff() }, false);
      return;
    }
    this.#fail(err);
  }
}
