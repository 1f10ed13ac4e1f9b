import { Agent, type Dispatcher } from 'undici';
import type { RetryOptions } from './policy.js';
import { createRetryInterceptor } from './retry.js';
import type { ExchangeEvent } from './trace.js';

export interface HttpDispatcherOptions {
  /** Base dispatcher; default a new `undici.Agent` owned (and closed) by the caller of this factory. */
  dispatcher?: Dispatcher;
  /** Idle timeout for connect, response headers and each body chunk, per attempt. */
  timeoutMs: number;
  /** Connections per origin for the default agent. */
  connectionsPerOrigin: number;
  retry: RetryOptions;
  onExchange?: (event: ExchangeEvent) => void;
}

export interface HttpDispatcher {
  /** The composed dispatcher (base + the retry policy). */
  dispatcher: Dispatcher;
  /** Closes the base agent if this factory created it. */
  close(): Promise<void>;
}

/** The client's single HTTP stack: one agent, one retry interceptor. */
export function createHttpDispatcher(options: HttpDispatcherOptions): HttpDispatcher {
  const owned = options.dispatcher === undefined;
  const base =
    options.dispatcher ??
    new Agent({
      connections: options.connectionsPerOrigin,
      connectTimeout: options.timeoutMs,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      keepAliveTimeout: 10_000,
    });
  const composed = base.compose(
    createRetryInterceptor({
      ...options.retry,
      ...(options.onExchange ? { onExchange: options.onExchange } : {}),
    }),
  );
  return {
    dispatcher: composed,
    close: async () => {
      if (owned) await base.close();
    },
  };
}
