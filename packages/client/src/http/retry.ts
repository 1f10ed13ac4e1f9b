/**
 * The retry interceptor: the client's one retry policy ({@link RetryPolicy}) as an undici interceptor.
 * Every request of the client (Twirp, blob and REST) passes through it exactly once; no other layer
 * retries. Compose it onto any undici dispatcher: `agent.compose(createRetryInterceptor())`.
 */
import type { Dispatcher } from 'undici';
import type { HintedDispatchOptions } from './hints.js';
import { type RetryOptions, RetryPolicy } from './policy.js';
import { RetryHandler } from './retry-handler.js';
import type { ExchangeEvent } from './trace.js';

export type { HintedDispatchOptions, RequestHints } from './hints.js';
export {
  backoffDelayMs,
  DEFAULT_RETRY_OPTIONS,
  parseRetryAfterMs,
  type RetryOptions,
  type RetryRecord,
  replayable,
} from './policy.js';
export type { ExchangeEvent } from './trace.js';

export interface RetryInterceptorOptions extends Partial<RetryOptions> {
  /** Called once per logical exchange when it ends. */
  onExchange?: (event: ExchangeEvent) => void;
  /** Random source in [0,1) for the jitter. Default `Math.random`. */
  random?: () => number;
}

/** Creates the retry interceptor; throws a RangeError for an invalid `maxAttempts`. */
export function createRetryInterceptor(
  options: RetryInterceptorOptions = {},
): Dispatcher.DispatcherComposeInterceptor {
  const policy = new RetryPolicy(options, options.random);
  return (dispatch) =>
    function ghaCacheRetry(opts, handler) {
      new RetryHandler(dispatch, opts as HintedDispatchOptions, handler, policy, options.onExchange).start();
      return true;
    };
}
