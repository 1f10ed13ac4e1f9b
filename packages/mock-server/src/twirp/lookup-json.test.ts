import { create, fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import {
  GetCacheEntryDownloadURLRequestSchema,
  GetCacheEntryDownloadURLResponseSchema,
} from '../gen/results/api/v1/cache_pb.js';
import { decodeRequest, encodeResponse } from './codec.js';
import { decodeGetRequestJson, encodeGetResponseJson } from './lookup-json.js';

const body = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

describe('GetCacheEntryDownloadURL JSON', () => {
  it('reads what the protobuf JSON reader reads, for the shapes clients send', () => {
    const bodies = [
      { key: 'npm-Linux-abc', version: 'v1', restore_keys: ['npm-Linux-', 'npm-'] },
      { key: 'k', version: 'v', restore_keys: [] },
      { key: 'k', version: 'v' },
      { version: 'v', restore_keys: ['a'] },
      { key: 'ünï©ødé 😀', version: 'v', metadata: { repository_id: '1', scope: [{ scope: 'x' }] } },
      {},
    ];
    for (const b of bodies) {
      const fast = decodeGetRequestJson(body(b));
      const { metadata: _ignored, ...rest } = b as Record<string, JsonValue>;
      const slow = fromJson(GetCacheEntryDownloadURLRequestSchema, rest, { ignoreUnknownFields: true });
      expect(fast).toEqual({ key: slow.key, version: slow.version, restoreKeys: slow.restoreKeys });
      expect(decodeRequest(GetCacheEntryDownloadURLRequestSchema, body(b), 'json')).toEqual({
        $typeName: GetCacheEntryDownloadURLRequestSchema.typeName,
        ...fast,
      });
    }
  });

  it('leaves every other shape to the protobuf reader', () => {
    const others = [
      { key: 'k', version: 'v', restoreKeys: ['a'] },
      { key: null, version: 'v' },
      { key: 'k', version: 'v', restore_keys: null },
      { key: 'k', version: 'v', restore_keys: [1] },
      { key: 7, version: 'v' },
      { key: 'k', version: 'v', extra: 1 },
      '{"key":"\\ud800","version":"v"}',
      '{"__proto__":{"key":"x"},"version":"v"}',
      '[1]',
      'null',
      '{',
    ];
    for (const b of others) expect(decodeGetRequestJson(body(b))).toBeUndefined();
    // …which then answers as it always did.
    const viaJsonName = decodeRequest(GetCacheEntryDownloadURLRequestSchema, body(others[0]), 'json');
    expect(viaJsonName.restoreKeys).toEqual(['a']);
    expect(() =>
      decodeRequest(GetCacheEntryDownloadURLRequestSchema, body('{"key":"\\ud800","version":"v"}'), 'json'),
    ).toThrow(/could not be decoded/);
  });

  it('writes the answer byte for byte as the protobuf JSON writer does', () => {
    const answers = [
      { ok: true, signedDownloadUrl: 'http://127.0.0.1:1/a/c/b?sv=1&sig=%2B', matchedKey: 'k-ü "q" \\ 😀' },
      { ok: false, signedDownloadUrl: '', matchedKey: '' },
    ];
    for (const a of answers) {
      const message = create(GetCacheEntryDownloadURLResponseSchema, a);
      const expected = JSON.stringify(
        toJson(GetCacheEntryDownloadURLResponseSchema, message, {
          useProtoFieldName: true,
          alwaysEmitImplicit: true,
        }),
      );
      expect(encodeGetResponseJson(a).toString()).toBe(expected);
      expect(encodeResponse(GetCacheEntryDownloadURLResponseSchema, message, 'json').toString()).toBe(
        expected,
      );
    }
  });
});
