import { setMaxListeners } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { BlobError, toCacheError } from '../errors.js';
import { redactUrl } from '../http/redact.js';
import type { HintedDispatchOptions } from '../http/retry.js';

/** Storage service version sent on every blob request (Azure ignores it for SAS-authorised requests). */
export const X_MS_VERSION = '2024-11-04';

/** Progress of a transfer, reported by `onProgress`. */
export interface TransferProgress {
  phase: 'upload' | 'download';
  transferredBytes: number;
  /** Undefined while the size is unknown (uploads from a stream). */
  totalBytes: number | undefined;
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `url` plus extra query parameters, appended without re-encoding the SAS already in it. */
export function withQuery(url: string, extra: Record<string, string>): URL {
  const u = new URL(url);
  const add = Object.entries(extra)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  if (add !== '') u.search = u.search.length > 1 ? `${u.search}&${add}` : `?${add}`;
  return u;
}

export interface BlobRequest {
  operation: string;
  url: URL;
  method: 'GET' | 'HEAD' | 'PUT';
  headers: Record<string, string>;
  body?: Buffer | AsyncIterable<Uint8Array>;
  dispatcher: Dispatcher;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/** Sends one blob request through the (retrying) dispatcher; transport failures become typed errors. */
export async function blobRequest(req: BlobRequest): Promise<Dispatcher.ResponseData> {
  const opts: HintedDispatchOptions = {
    origin: req.url.origin,
    path: req.url.pathname + req.url.search,
    method: req.method,
    headers: { 'x-ms-version': X_MS_VERSION, ...req.headers },
    body: (req.body ?? null) as Buffer | null,
    headersTimeout: req.timeoutMs,
    bodyTimeout: req.timeoutMs,
    ghaCache: { label: req.operation },
  };
  try {
    return await req.dispatcher.request({
      ...(opts as Dispatcher.RequestOptions),
      ...(req.signal ? { signal: req.signal } : {}),
    });
  } catch (err) {
    throw toCacheError(err);
  }
}

/** Reads an Azure error response (`x-ms-error-code` or XML `<Code>`) into a {@link BlobError}. */
export async function blobErrorFrom(
  operation: string,
  url: URL,
  res: Dispatcher.ResponseData,
): Promise<BlobError> {
  let body = '';
  try {
    body = (await res.body.text()).slice(0, 4096);
  } catch {
    // the status is enough
  }
  const code = header(res.headers, 'x-ms-error-code') ?? /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? '';
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1]?.split('\n')[0];
  return new BlobError({
    operation,
    url: redactUrl(url),
    httpStatus: res.statusCode,
    azureCode: code,
    ...(message ? { message } : {}),
  });
}

/** An AbortController that follows `parent` and can also be aborted on its own (first failure wins). */
export function linkedAbort(parent: AbortSignal | undefined): AbortController {
  const ac = new AbortController();
  // Every in-flight request listens on it; dozens of ranges or blocks are normal, not a leak.
  setMaxListeners(0, ac.signal);
  if (parent) {
    if (parent.aborted) ac.abort(parent.reason);
    else parent.addEventListener('abort', () => ac.abort(parent.reason), { once: true });
  }
  return ac;
}

/** Runs `worker(i)` for i in [0, count) with at most `concurrency` in flight; stops at the first error. */
export async function runPool(
  count: number,
  concurrency: number,
  worker: (index: number) => Promise<void>,
  abort: AbortController,
): Promise<void> {
  let next = 0;
  let failure: unknown;
  const lanes = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (failure === undefined && next < count) {
      const i = next++;
      try {
        await worker(i);
      } catch (err) {
        if (failure === undefined) {
          failure = err;
          abort.abort(err);
        }
      }
    }
  });
  await Promise.all(lanes);
  if (failure !== undefined) throw failure;
}
