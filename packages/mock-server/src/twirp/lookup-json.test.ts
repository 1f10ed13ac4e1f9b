import { create } from '@bufbuild/protobuf';
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
      const slow = decodeRequest(GetCacheEntryDownloadURLRequestSchema, body(b), 'json');
      expect(fast).toEqual({ key: slow.key, version: slow.version, restoreKeys: slow.restoreKeys });
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
  });

  it('writes the answer byte for byte as the protobuf JSON writer does', () => {
    const answers = [
      { ok: true, signedDownloadUrl: 'http://127.0.0.1:1/a/c/b?sv=1&sig=%2B', matchedKey: 'k-ü "q" \\ 😀' },
      { ok: false, signedDownloadUrl: '', matchedKey: '' },
    ];
    for (const a of answers) {
      const expected = encodeResponse(
        GetCacheEntryDownloadURLResponseSchema,
        create(GetCacheEntryDownloadURLResponseSchema, a),
        'json',
      );
      expect(encodeGetResponseJson(a).toString()).toBe(expected.toString());
    }
  });
});
