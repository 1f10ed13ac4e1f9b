import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/** Per-request hints to the retry interceptor, passed as the `ghaCache` dispatch option. */
export interface RequestHints {
  /** Name used in traces. */
  label?: string;
  /** For 2xx responses: buffer the body and retry when this returns false (e.g. a proxy's HTML page). */
  validateResponse?: (statusCode: number, headers: IncomingHttpHeaders, body: Buffer) => boolean;
  /** Receives the number of attempts made so far. */
  state?: { attempts: number };
}

export type HintedDispatchOptions = Dispatcher.DispatchOptions & { ghaCache?: RequestHints };

/** A 2xx response held back, with its body, until `validateResponse` has seen all of it. */
export class HeldResponse {
  readonly chunks: Buffer[] = [];
  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    readonly message: string | undefined,
  ) {}

  /** Whether the request's `validateResponse` accepts `body` (a throw is a no). */
  accepted(hints: RequestHints, body: Buffer): boolean {
    try {
      return hints.validateResponse?.(this.status, this.headers, body) ?? true;
    } catch {
      return false;
    }
  }
}
