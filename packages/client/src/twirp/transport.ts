/**
 * Twirp transport: POST `<base>/twirp/<service>/<Method>`, JSON (proto field names, int64 as strings,
 * defaults omitted) or protobuf. Retries are the interceptor's job (one owner); this layer only marks the
 * request so invalid success bodies are retried, and turns the final response into a message or a typed
 * error.
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  create,
  type DescMessage,
  fromBinary,
  fromJsonString,
  type MessageInitShape,
  type MessageShape,
  toBinary,
  toJsonString,
} from '@bufbuild/protobuf';
import type { Dispatcher } from 'undici';
import { BadResponseError, toCacheError } from '../errors.js';
import { header } from '../http/headers.js';
import type { HintedDispatchOptions } from '../http/hints.js';
import { parseTwirpError } from './errors.js';

export type TwirpEncoding = 'json' | 'protobuf';

export const CACHE_SERVICE = 'github.actions.results.api.v1.CacheService';

export interface TwirpTransportOptions {
  /** Service base URL (`ACTIONS_RESULTS_URL`); a path prefix is kept. */
  baseUrl: string | URL;
  /** Bearer token (`ACTIONS_RUNTIME_TOKEN`). */
  token: string;
  encoding: TwirpEncoding;
  /** A dispatcher that already carries the retry policy. */
  dispatcher: Dispatcher;
  /** Per-attempt headers/body timeout. */
  timeoutMs: number;
  userAgent: string;
  signal?: AbortSignal;
}

export interface TwirpCallResult<T> {
  message: T;
  /** HTTP attempts the call took (1 = no retry). */
  attempts: number;
}

export interface TwirpTransport {
  call<I extends DescMessage, O extends DescMessage>(
    method: string,
    input: I,
    output: O,
    request: MessageInitShape<I>,
    /** Receives the attempt count even when the call throws. */
    state?: { attempts: number },
  ): Promise<TwirpCallResult<MessageShape<O>>>;
}

function mediaType(headers: IncomingHttpHeaders): string {
  return (header(headers, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

function isProtobufType(t: string): boolean {
  return t === 'application/protobuf' || t === 'application/x-protobuf';
}

/** Accepts a 2xx body only if it can be what Twirp sends; anything else is retried. */
function validTwirpSuccess(encoding: TwirpEncoding) {
  return (_status: number, headers: IncomingHttpHeaders, body: Buffer): boolean => {
    const t = mediaType(headers);
    if (isProtobufType(t)) return true;
    if (t === '' && encoding === 'protobuf') return true;
    if (t === 'application/json' || t === '') {
      try {
        const v: unknown = JSON.parse(body.toString('utf8'));
        return typeof v === 'object' && v !== null && !Array.isArray(v);
      } catch {
        return false;
      }
    }
    return false;
  };
}

export function twirpUrl(baseUrl: string | URL, method: string): URL {
  const base = new URL(baseUrl);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  base.search = '';
  base.hash = '';
  return new URL(`twirp/${CACHE_SERVICE}/${method}`, base);
}

export function createTwirpTransport(options: TwirpTransportOptions): TwirpTransport {
  const contentType = options.encoding === 'json' ? 'application/json' : 'application/protobuf';
  return {
    async call(method, input, output, request, state = { attempts: 0 }) {
      const url = twirpUrl(options.baseUrl, method);
      const msg = create(input, request);
      const body =
        options.encoding === 'json'
          ? Buffer.from(toJsonString(input, msg, { useProtoFieldName: true }))
          : Buffer.from(toBinary(input, msg));
      const opts: HintedDispatchOptions = {
        origin: url.origin,
        path: url.pathname + url.search,
        method: 'POST',
        headers: {
          'content-type': contentType,
          'content-length': String(body.length),
          authorization: `Bearer ${options.token}`,
          'user-agent': options.userAgent,
          accept: contentType,
        },
        body,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        ghaCache: { label: method, validateResponse: validTwirpSuccess(options.encoding), state },
      };
      let res: Dispatcher.ResponseData;
      try {
        res = await options.dispatcher.request({
          ...(opts as Dispatcher.RequestOptions),
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (err) {
        throw toCacheError(err);
      }
      let raw: Buffer;
      try {
        raw = Buffer.from(await res.body.arrayBuffer());
      } catch (err) {
        throw toCacheError(err);
      }
      const type = mediaType(res.headers);
      if (res.statusCode < 200 || res.statusCode >= 300) {
        throw parseTwirpError(method, res.statusCode, res.headers, raw.toString('utf8'));
      }
      try {
        const message =
          isProtobufType(type) || (type === '' && options.encoding === 'protobuf')
            ? fromBinary(output, raw)
            : fromJsonString(output, raw.toString('utf8'), { ignoreUnknownFields: true });
        return { message, attempts: state.attempts };
      } catch (err) {
        throw new BadResponseError(`${method}: cannot decode the ${type || 'untyped'} response body`, {
          httpStatus: res.statusCode,
          contentType: type,
          body: raw.toString('utf8'),
          cause: err,
        });
      }
    },
  };
}
