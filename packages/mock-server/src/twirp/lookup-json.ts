import type { GetRequest, GetResponse } from './cache-service.js';

/** The fields a GetCacheEntryDownloadURL JSON request may have for the direct decoding below. */
const FIELDS = new Set(['key', 'version', 'restore_keys', 'metadata']);

const wellFormed = (s: unknown): s is string =>
  typeof s === 'string' && (s as string & { isWellFormed(): boolean }).isWellFormed();

/**
 * A GetCacheEntryDownloadURL JSON body in the shape every client sends (`key`, `version`,
 * `restore_keys` as strings, `metadata` ignored), read without the generic protobuf JSON reader;
 * `undefined` for anything else (JSON names, nulls, int64 strings, bad UTF-16…), which then goes
 * through `decodeRequest`, so what is accepted and every error stay those of the protobuf reader.
 */
export function decodeGetRequestJson(body: Buffer): GetRequest | undefined {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const o = json as Record<string, unknown>;
  for (const name in o) if (!FIELDS.has(name)) return undefined;
  const { key = '', version = '', restore_keys: restoreKeys = [] } = o;
  if (!wellFormed(key) || !wellFormed(version) || !Array.isArray(restoreKeys)) return undefined;
  for (const k of restoreKeys) if (!wellFormed(k)) return undefined;
  return { key, version, restoreKeys: restoreKeys as string[] };
}

/** The JSON answer byte for byte as `encodeResponse` writes it (proto names, every field, field order). */
export function encodeGetResponseJson(res: GetResponse): Buffer {
  return Buffer.from(
    JSON.stringify({ ok: res.ok, signed_download_url: res.signedDownloadUrl, matched_key: res.matchedKey }),
  );
}
