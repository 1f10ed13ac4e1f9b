import { gunzipSync, gzipSync } from 'node:zlib';
import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import {
  CreateCacheEntryResponseSchema,
  GetCacheEntryDownloadURLRequestSchema,
  GetCacheEntryDownloadURLResponseSchema,
} from '../gen/results/api/v1/cache_pb.js';
import { decodeBody, encodeBody, requestFacts, responseFacts, rewriteUrl } from './twirp-body.js';

const SIGNED =
  'https://acct.blob.core.windows.net/cache/abc?sv=2024-11-04&se=2026-01-01T00%3A00%3A00Z&sig=s3cr%2Bt';
const PROXIED = 'http://127.0.0.1:9/_blob/ID/cache/abc?sv=2024-11-04&se=2026-01-01T00%3A00%3A00Z';

describe('rewriteUrl', () => {
  it('JSON: replaces only the URL string, keeping the rest of the text byte for byte', () => {
    const body = Buffer.from(
      `{"ok":true,  "signed_upload_url":${JSON.stringify(SIGNED)},"message":"", "extra":[1,2]}`,
    );
    const out = rewriteUrl('json', body, SIGNED, PROXIED)!.toString();
    expect(out).toBe(
      `{"ok":true,  "signed_upload_url":${JSON.stringify(PROXIED)},"message":"", "extra":[1,2]}`,
    );
  });

  it('JSON: a URL escaped another way (\\u0026) is still found', () => {
    const body = Buffer.from(
      `{"ok":true,"signed_download_url":"${SIGNED.replaceAll('&', '\\u0026')}","matched_key":"k"}`,
    );
    const out = JSON.parse(rewriteUrl('json', body, SIGNED, PROXIED)!.toString());
    expect(out).toEqual({ ok: true, signed_download_url: PROXIED, matched_key: 'k' });
  });

  it('protobuf: field 2 replaced, every other field kept in order (unknown ones too)', () => {
    const known = Buffer.from(
      toBinary(
        GetCacheEntryDownloadURLResponseSchema,
        create(GetCacheEntryDownloadURLResponseSchema, {
          ok: true,
          signedDownloadUrl: SIGNED,
          matchedKey: 'key-1',
        }),
      ),
    );
    const unknownField = Buffer.from([0xa2, 0x06, 0x03, 0x61, 0x62, 0x63]); // field 100, "abc"
    const body = Buffer.concat([known, unknownField]);
    const out = rewriteUrl('protobuf', body, SIGNED, PROXIED)!;
    const facts = responseFacts('GetCacheEntryDownloadURL', 200, 'protobuf', out);
    expect(facts).toMatchObject({ ok: true, signedUrl: PROXIED, matchedKey: 'key-1' });
    expect(out.subarray(out.length - unknownField.length)).toEqual(unknownField);
    expect(rewriteUrl('protobuf', body, 'not-there', PROXIED)).toBeUndefined();
  });

  it('gzip bodies are decoded and encoded again', () => {
    const plain = Buffer.from(JSON.stringify({ ok: true, signed_upload_url: SIGNED, message: '' }));
    const zipped = gzipSync(plain);
    const decoded = decodeBody(zipped, 'gzip')!;
    const out = encodeBody(rewriteUrl('json', decoded, SIGNED, PROXIED)!, 'gzip');
    expect(JSON.parse(gunzipSync(out).toString()).signed_upload_url).toBe(PROXIED);
    expect(decodeBody(zipped, 'zstd')).toBeUndefined();
  });
});

describe('requestFacts / responseFacts', () => {
  it('reads JSON and protobuf requests', () => {
    expect(
      requestFacts(
        'GetCacheEntryDownloadURL',
        'json',
        Buffer.from('{"key":"k","restore_keys":["a-"],"version":"v"}'),
      ),
    ).toEqual({ key: 'k', restoreKeys: ['a-'], version: 'v' });
    const pb = Buffer.from(
      toBinary(
        GetCacheEntryDownloadURLRequestSchema,
        create(GetCacheEntryDownloadURLRequestSchema, { key: 'k', restoreKeys: ['r'], version: 'v' }),
      ),
    );
    expect(requestFacts('GetCacheEntryDownloadURL', 'protobuf', pb)).toEqual({
      key: 'k',
      restoreKeys: ['r'],
      version: 'v',
    });
    expect(requestFacts('CreateCacheEntry', 'json', Buffer.from('<html>'))).toEqual({});
  });

  it('reads Twirp errors, and nothing from a non-JSON error', () => {
    expect(
      responseFacts(
        'CreateCacheEntry',
        429,
        'json',
        Buffer.from('{"code":"resource_exhausted","msg":"slow down"}'),
      ),
    ).toEqual({
      errorCode: 'resource_exhausted',
      errorMsg: 'slow down',
    });
    expect(responseFacts('CreateCacheEntry', 502, 'json', Buffer.from('<html>502</html>'))).toEqual({});
    const pb = Buffer.from(
      toBinary(
        CreateCacheEntryResponseSchema,
        create(CreateCacheEntryResponseSchema, { ok: false, message: 'denied' }),
      ),
    );
    expect(responseFacts('CreateCacheEntry', 200, 'protobuf', pb)).toMatchObject({
      ok: false,
      message: 'denied',
    });
  });
});
