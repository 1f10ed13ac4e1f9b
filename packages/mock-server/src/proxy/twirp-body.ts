/**
 * Reads the facts the journal needs from Twirp bodies as they pass (JSON or protobuf), and swaps the
 * signed URL of a response for a proxy URL while leaving every other byte as the upstream sent it: a JSON
 * body keeps its text around the URL string, a protobuf body keeps every other field's bytes in order.
 */
import {
  brotliCompressSync,
  brotliDecompressSync,
  deflateSync,
  gunzipSync,
  gzipSync,
  inflateSync,
} from 'node:zlib';
import { fromBinary } from '@bufbuild/protobuf';
import {
  CreateCacheEntryRequestSchema,
  CreateCacheEntryResponseSchema,
  FinalizeCacheEntryUploadRequestSchema,
  FinalizeCacheEntryUploadResponseSchema,
  GetCacheEntryDownloadURLRequestSchema,
  GetCacheEntryDownloadURLResponseSchema,
} from '../gen/results/api/v1/cache_pb.js';

export type TwirpEncoding = 'json' | 'protobuf';

export const CREATE = 'CreateCacheEntry';
export const FINALIZE = 'FinalizeCacheEntryUpload';
export const LOOKUP = 'GetCacheEntryDownloadURL';

export function encodingOf(contentType: string | undefined): TwirpEncoding | undefined {
  const base = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (base === 'application/json') return 'json';
  if (base === 'application/protobuf' || base === 'application/x-protobuf') return 'protobuf';
  return undefined;
}

export interface RequestFacts {
  key?: string;
  version?: string;
  restoreKeys?: string[];
  sizeBytes?: number;
}

export interface ResponseFacts {
  ok?: boolean;
  /** The signed URL (upload or download), never recorded. */
  signedUrl?: string;
  matchedKey?: string;
  entryId?: string;
  message?: string;
  /** Twirp error code and message of an error body. */
  errorCode?: string;
  errorMsg?: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const numish = (v: unknown): number | undefined =>
  typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;

function jsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The key, version, restore keys and size of a request; empty when the body cannot be read. */
export function requestFacts(op: string, encoding: TwirpEncoding | undefined, body: Buffer): RequestFacts {
  try {
    if (encoding === 'protobuf') {
      if (op === CREATE) {
        const m = fromBinary(CreateCacheEntryRequestSchema, body);
        return { key: m.key, version: m.version };
      }
      if (op === FINALIZE) {
        const m = fromBinary(FinalizeCacheEntryUploadRequestSchema, body);
        return { key: m.key, version: m.version, sizeBytes: Number(m.sizeBytes) };
      }
      if (op === LOOKUP) {
        const m = fromBinary(GetCacheEntryDownloadURLRequestSchema, body);
        return { key: m.key, version: m.version, restoreKeys: [...m.restoreKeys] };
      }
      return {};
    }
    const o = jsonObject(body);
    if (!o) return {};
    const restore = o.restore_keys ?? o.restoreKeys;
    const size = numish(o.size_bytes ?? o.sizeBytes);
    const facts: RequestFacts = {};
    const key = str(o.key);
    const version = str(o.version);
    if (key !== undefined) facts.key = key;
    if (version !== undefined) facts.version = version;
    if (Array.isArray(restore)) facts.restoreKeys = restore.filter((k): k is string => typeof k === 'string');
    if (size !== undefined) facts.sizeBytes = size;
    return facts;
  } catch {
    return {};
  }
}

/** What a response says (`ok`, the URL, the matched key) or, for an error, its Twirp code. */
export function responseFacts(
  op: string,
  status: number,
  encoding: TwirpEncoding | undefined,
  body: Buffer,
): ResponseFacts {
  if (status !== 200) {
    const o = jsonObject(body);
    if (!o) return {};
    const code = str(o.code);
    const msg = str(o.msg) ?? str(o.message);
    return { ...(code ? { errorCode: code } : {}), ...(msg ? { errorMsg: msg } : {}) };
  }
  try {
    if (encoding === 'protobuf') {
      if (op === CREATE) {
        const m = fromBinary(CreateCacheEntryResponseSchema, body);
        return { ok: m.ok, signedUrl: m.signedUploadUrl, message: m.message };
      }
      if (op === FINALIZE) {
        const m = fromBinary(FinalizeCacheEntryUploadResponseSchema, body);
        return { ok: m.ok, entryId: String(m.entryId), message: m.message };
      }
      if (op === LOOKUP) {
        const m = fromBinary(GetCacheEntryDownloadURLResponseSchema, body);
        return { ok: m.ok, signedUrl: m.signedDownloadUrl, matchedKey: m.matchedKey };
      }
      return {};
    }
    const o = jsonObject(body);
    if (!o) return {};
    const facts: ResponseFacts = {};
    if (typeof o.ok === 'boolean') facts.ok = o.ok;
    const url = str(
      op === CREATE
        ? (o.signed_upload_url ?? o.signedUploadUrl)
        : (o.signed_download_url ?? o.signedDownloadUrl),
    );
    if (url) facts.signedUrl = url;
    const matched = str(o.matched_key ?? o.matchedKey);
    if (matched) facts.matchedKey = matched;
    const entryId = o.entry_id ?? o.entryId;
    if (typeof entryId === 'string' || typeof entryId === 'number') facts.entryId = String(entryId);
    const message = str(o.message);
    if (message) facts.message = message;
    return facts;
  } catch {
    return {};
  }
}

/** Replaces the URL string in a JSON body, keeping the rest of the text; undefined if it is not found. */
function rewriteJson(body: Buffer, from: string, to: string): Buffer | undefined {
  const text = body.toString('utf8');
  const literal = JSON.stringify(from);
  const at = text.indexOf(literal);
  if (at >= 0) return Buffer.from(text.slice(0, at) + JSON.stringify(to) + text.slice(at + literal.length));
  // The upstream escaped the URL differently (`\u0026`, `\/`): rewrite the field instead.
  const o = jsonObject(body);
  if (!o) return undefined;
  let found = false;
  for (const k of Object.keys(o)) {
    if (o[k] === from) {
      o[k] = to;
      found = true;
    }
  }
  return found ? Buffer.from(JSON.stringify(o)) : undefined;
}

function readVarint(buf: Buffer, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  let i = at;
  for (;;) {
    if (i >= buf.length) throw new RangeError('truncated varint');
    const b = buf[i++]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, i];
    shift += 7;
    if (shift > 63) throw new RangeError('varint too long');
  }
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Replaces the bytes of string field `field` (top level) whose value is `from`; other fields untouched. */
function rewriteProtobuf(body: Buffer, field: number, from: string, to: string): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  let found = false;
  while (at < body.length) {
    const start = at;
    const [tag, afterTag] = readVarint(body, at);
    const wire = tag % 8;
    const number = Math.floor(tag / 8);
    let end: number;
    if (wire === 0) end = readVarint(body, afterTag)[1];
    else if (wire === 1) end = afterTag + 8;
    else if (wire === 5) end = afterTag + 4;
    else if (wire === 2) {
      const [len, afterLen] = readVarint(body, afterTag);
      end = afterLen + len;
      if (end > body.length) throw new RangeError('truncated field');
      if (number === field && body.toString('utf8', afterLen, end) === from) {
        const value = Buffer.from(to, 'utf8');
        parts.push(body.subarray(start, afterTag), varint(value.length), value);
        found = true;
        at = end;
        continue;
      }
    } else throw new RangeError(`unsupported wire type ${wire}`);
    parts.push(body.subarray(start, end));
    at = end;
  }
  return found ? Buffer.concat(parts) : undefined;
}

const CODECS: Record<string, [decode: (b: Buffer) => Buffer, encode: (b: Buffer) => Buffer]> = {
  gzip: [gunzipSync, gzipSync],
  'x-gzip': [gunzipSync, gzipSync],
  deflate: [inflateSync, deflateSync],
  br: [brotliDecompressSync, brotliCompressSync],
};

/** Decodes a body sent with `Content-Encoding`; undefined for an encoding the proxy cannot read. */
export function decodeBody(body: Buffer, contentEncoding: string | undefined): Buffer | undefined {
  const enc = (contentEncoding ?? '').trim().toLowerCase();
  if (enc === '' || enc === 'identity') return body;
  const codec = CODECS[enc];
  if (!codec) return undefined;
  try {
    return codec[0](body);
  } catch {
    return undefined;
  }
}

export function encodeBody(body: Buffer, contentEncoding: string | undefined): Buffer {
  const enc = (contentEncoding ?? '').trim().toLowerCase();
  const codec = CODECS[enc];
  return codec ? codec[1](body) : body;
}

/** The (decoded) body with `from` replaced by `to` in the response's URL field; undefined if not possible. */
export function rewriteUrl(
  encoding: TwirpEncoding | undefined,
  body: Buffer,
  from: string,
  to: string,
): Buffer | undefined {
  try {
    if (encoding === 'protobuf') return rewriteProtobuf(body, 2, from, to);
    return rewriteJson(body, from, to);
  } catch {
    return undefined;
  }
}
