/**
 * Blob requests: each one goes through the client's (retrying) dispatcher with the storage headers, and
 * its transport failures become typed errors; Azure error answers become {@link BlobError}s.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { BlobError, toCacheError } from '../errors.js';
import { header } from '../http/headers.js';
import type { HintedDispatchOptions } from '../http/hints.js';
import { redactUrl } from '../http/redact.js';

/** Storage service version sent on every blob request (Azure ignores it for SAS-authorised requests). */
export const X_MS_VERSION = '2024-11-04';

/** How the blob requests of one transfer are sent. */
export interface BlobHop {
  dispatcher: Dispatcher;
  /** Headers and body idle timeout, per attempt. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

export interface BlobRequest {
  operation: string;
  url: URL;
  method: 'GET' | 'HEAD' | 'PUT';
  headers: Record<string, string>;
  body?: Buffer | AsyncIterable<Uint8Array>;
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

function dispatchOptions(hop: BlobHop, req: BlobRequest): HintedDispatchOptions {
  return {
    origin: req.url.origin,
    path: req.url.pathname + req.url.search,
    method: req.method,
    headers: { 'x-ms-version': X_MS_VERSION, ...req.headers },
    body: (req.body ?? null) as Buffer | null,
    headersTimeout: hop.timeoutMs,
    bodyTimeout: hop.timeoutMs,
    ghaCache: { label: req.operation },
  };
}

/** Sends one blob request; the caller reads (or dumps) the body. */
export async function blobRequest(hop: BlobHop, req: BlobRequest): Promise<Dispatcher.ResponseData> {
  try {
    return await hop.dispatcher.request({
      ...(dispatchOptions(hop, req) as Dispatcher.RequestOptions),
      ...(hop.signal ? { signal: hop.signal } : {}),
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
 * `accept` or `onData` aborts the request and rejects.
 */
export function blobStream(
  hop: BlobHop,
  req: BlobRequest,
  accept: (statusCode: number, headers: IncomingHttpHeaders) => boolean,
  onData: (chunk: Buffer, flow: Flow) => void,
): Promise<StreamedResponse> {
  const { signal } = hop;
  return new Promise((resolve, reject) => {
    let statusCode = 0;
    let headers: IncomingHttpHeaders = {};
    let streamed = false;
    let errorBody = '';
    let settled = false;
    let controller: Dispatcher.DispatchController | undefined;
    const onAbort = () => controller?.abort(signal?.reason ?? new Error('aborted'));
    const finish = (err: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (err === undefined) resolve({ statusCode, headers, errorBody, streamed });
      else reject(signal?.aborted ? toCacheError(signal.reason ?? err) : toCacheError(err));
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (signal?.aborted) c.abort(signal.reason ?? new Error('aborted'));
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
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      hop.dispatcher.dispatch({ ...dispatchOptions(hop, req), body: null }, handler);
    } catch (err) {
      finish(err);
    }
  });
}
