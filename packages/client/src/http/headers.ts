/**
 * Header helpers of the client's HTTP stack: one response header, one request header (in any of the shapes
 * undici accepts), request headers with some replaced, and the `Content-Range` of a 206.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/** The first value of response header `name` (lower case). */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The first value of request header `name` (lower case), whichever shape the headers have. */
export function requestHeader(
  headers: Dispatcher.DispatchOptions['headers'],
  name: string,
): string | undefined {
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

/** The request headers as a lower-cased record, with `extra` set over them. */
export function headersWith(
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

/** A `Content-Range: bytes start-end/size` (size `*` = unknown); undefined when absent or malformed. */
export interface ContentRange {
  start: number;
  end: number;
  size: number | undefined;
}

export function parseContentRange(v: string | undefined): ContentRange | undefined {
  const m = v === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), size: m[3] === '*' ? undefined : Number(m[3]) };
}
