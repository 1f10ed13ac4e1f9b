import { setMaxListeners } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { BlobError, toCacheError } from '../errors.js';
import { header } from '../http/headers.js';
import type { HintedDispatchOptions } from '../http/hints.js';
import { redactUrl } from '../http/redact.js';

/** Storage service version sent on every blob request (Azure ignores it for SAS-authorised requests). */
export const X_MS_VERSION = '2024-11-04';

/** Progress of a transfer, reported by `onProgress`. */
export interface TransferProgress {
  phase: 'upload' | 'download';
  transferredBytes: number;
  /** Undefined while the size is unknown (uploads from a stream). */
  totalBytes: number | undefined;
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
  return blobErrorFromParts(operation, url, res.statusCode, res.headers, body);
}

export function blobErrorFromParts(
  operation: string,
  url: URL,
  httpStatus: number,
  headers: IncomingHttpHeaders,
  body: string,
): BlobError {
  const code = header(headers, 'x-ms-error-code') ?? /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? '';
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1]?.split('\n')[0];
  return new BlobError({
    operation,
    url: redactUrl(url),
    httpStatus,
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

/** Pause/resume of a streamed response (backpressure from the consumer). */
export interface Flow {
  pause(): void;
  resume(): void;
}

export interface StreamedResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** Body of a response `accept` refused (first 4 KiB), for the error. */
  errorBody: string;
  /** Whether the body went to `onData`. */
  streamed: boolean;
}

/**
 * Sends one blob request and hands the body chunks straight to `onData` (no stream or promise per chunk),
 * if `accept(status, headers)` says so; otherwise the body is kept (4 KiB) for the error. A throw from
 * `onData` aborts the request and rejects. Goes through the same (retrying) dispatcher as everything else.
 */
export function blobStream(
  req: BlobRequest,
  accept: (statusCode: number, headers: IncomingHttpHeaders) => boolean,
  onData: (chunk: Buffer, flow: Flow) => void,
): Promise<StreamedResponse> {
  return new Promise((resolve, reject) => {
    const opts: HintedDispatchOptions = {
      origin: req.url.origin,
      path: req.url.pathname + req.url.search,
      method: req.method,
      headers: { 'x-ms-version': X_MS_VERSION, ...req.headers },
      body: null,
      headersTimeout: req.timeoutMs,
      bodyTimeout: req.timeoutMs,
      ghaCache: { label: req.operation },
    };
    let statusCode = 0;
    let headers: IncomingHttpHeaders = {};
    let streamed = false;
    let errorBody = '';
    let settled = false;
    let controller: Dispatcher.DispatchController | undefined;
    const onAbort = () => controller?.abort(req.signal?.reason ?? new Error('aborted'));
    const finish = (err: unknown) => {
      if (settled) return;
      settled = true;
      req.signal?.removeEventListener('abort', onAbort);
      if (err === undefined) resolve({ statusCode, headers, errorBody, streamed });
      else reject(req.signal?.aborted ? toCacheError(req.signal.reason ?? err) : toCacheError(err));
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (req.signal?.aborted) c.abort(req.signal.reason ?? new Error('aborted'));
      },
      onResponseStart(c, status, h) {
        statusCode = status;
        headers = h;
        try {
          streamed = accept(status, h);
        } catch (err) {
          c.abort(err as Error);
        }
      },
      onResponseData(c, chunk) {
        if (!streamed) {
          if (errorBody.length < 4096) errorBody += chunk.toString('utf8');
          return;
        }
        try {
          onData(chunk, c);
        } catch (err) {
          c.abort(err as Error);
        }
      },
      onResponseEnd() {
        finish(undefined);
      },
      onResponseError(_c, err) {
        finish(err);
      },
    };
    req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      req.dispatcher.dispatch(opts, handler);
    } catch (err) {
      finish(err);
    }
  });
}
