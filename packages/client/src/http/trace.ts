/** The exchange trace: one event per logical HTTP exchange (all its attempts), reported once it ends. */
import type { Dispatcher } from 'undici';
import { requestHeader } from './headers.js';
import type { RetryRecord } from './policy.js';
import { redactUrl } from './redact.js';

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

/** What an exchange has done so far; {@link ExchangeTrace.end} turns it into an {@link ExchangeEvent}. */
export class ExchangeTrace {
  readonly startedAt = Date.now();
  readonly retries: RetryRecord[] = [];
  attempts = 0;
  status: number | undefined;
  ttfbMs: number | undefined;
  /** Body bytes handed to the caller. */
  responseBytes = 0;

  constructor(
    readonly label: string,
    readonly sink: ((event: ExchangeEvent) => void) | undefined,
  ) {}

  /** The final response headers are going to the caller. */
  headersDelivered(): void {
    this.ttfbMs = Date.now() - this.startedAt;
  }

  /** Reports the exchange, as `request` was last sent; a throwing sink never breaks the transfer. */
  end(request: Dispatcher.DispatchOptions, error: string | undefined): void {
    if (!this.sink) return;
    const len = requestHeader(request.headers, 'content-length');
    const body = request.body;
    const requestBytes =
      len !== undefined
        ? Number(len)
        : typeof body === 'string'
          ? Buffer.byteLength(body)
          : body instanceof Uint8Array
            ? body.byteLength
            : 0;
    try {
      this.sink({
        label: this.label,
        method: request.method,
        url: redactUrl(`${String(request.origin ?? '')}${request.path}`),
        status: this.status,
        error,
        attempts: this.attempts,
        retries: this.retries,
        requestBytes,
        responseBytes: this.responseBytes,
        startedAt: this.startedAt,
        ttfbMs: this.ttfbMs,
        durationMs: Date.now() - this.startedAt,
      });
    } catch {
      // a trace sink must never break a transfer
    }
  }
}
