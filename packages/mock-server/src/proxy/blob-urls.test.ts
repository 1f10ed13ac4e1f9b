import { describe, expect, it } from 'vitest';
import { createBlobUrlRegistry, upstreamUrlFor, withoutSignature } from './blob-urls.js';
import { decodeClaims, readableScopes, writeScope } from './claims.js';
import { createSaveHistory } from './history.js';

const SIGNED =
  'https://acct.blob.core.windows.net/cache/abc?sv=2024-11-04&sr=b&sp=r&se=2026-01-01T00%3A10%3A00Z&sig=s3cr%2Bt%3D';
const T0 = Date.parse('2026-01-01T00:00:00Z');

describe('blob URL registry', () => {
  it('hands out an unguessable URL without the signature, valid until the original expires', () => {
    let now = T0;
    const registry = createBlobUrlRegistry({ now: () => now });
    const url = new URL(registry.rewrite(SIGNED, { kind: 'download', key: 'k' }, 'http://127.0.0.1:9'));
    expect(url.origin).toBe('http://127.0.0.1:9');
    const [, , id, ...rest] = url.pathname.split('/');
    expect(id).toMatch(/^[\w-]{24}$/);
    expect(`/${rest.join('/')}`).toBe('/cache/abc');
    expect(url.search).toBe('?sv=2024-11-04&sr=b&sp=r&se=2026-01-01T00%3A10%3A00Z');
    expect(url.href).not.toContain('s3cr');
    expect(registry.resolve(id!)?.original.href).toBe(SIGNED);
    now = T0 + 10 * 60_000 - 1;
    expect(registry.resolve(id!)).toBeDefined();
    now = T0 + 10 * 60_000;
    expect(registry.resolve(id!)).toBeUndefined();
    expect(registry.resolve('AAAAAAAAAAAAAAAAAAAAAAAA')).toBeUndefined();
  });

  it('each rewrite gets its own id; the oldest are forgotten past the bound', () => {
    const registry = createBlobUrlRegistry({ now: () => T0, maxEntries: 3 });
    const ids = Array.from(
      { length: 5 },
      () =>
        new URL(registry.rewrite(SIGNED, { kind: 'upload', key: 'k' }, 'http://p')).pathname.split('/')[2]!,
    );
    expect(new Set(ids).size).toBe(5);
    expect(registry.size).toBeLessThanOrEqual(3);
    expect(registry.resolve(ids[4]!)).toBeDefined();
    expect(registry.resolve(ids[0]!)).toBeUndefined();
  });

  it("forwards to the original host and path with the client's own parameters; the original's win", () => {
    const registry = createBlobUrlRegistry({ now: () => T0 });
    const id = new URL(registry.rewrite(SIGNED, { kind: 'upload', key: 'k' }, 'http://p')).pathname.split(
      '/',
    )[2]!;
    const target = registry.resolve(id)!;
    const up = upstreamUrlFor(target, '?blockid=AAA%2B%3D&comp=block&sig=forged&se=2099-01-01&timeout=30');
    expect(up.origin).toBe('https://acct.blob.core.windows.net');
    expect(up.pathname).toBe('/cache/abc');
    expect(up.searchParams.get('sig')).toBe('s3cr+t=');
    expect(up.searchParams.get('se')).toBe('2026-01-01T00:10:00Z');
    expect(up.searchParams.get('blockid')).toBe('AAA+=');
    expect(up.searchParams.get('comp')).toBe('block');
    expect(up.searchParams.get('timeout')).toBe('30');
  });

  it('withoutSignature keeps every other parameter raw', () => {
    expect(withoutSignature('?a=1&SIG=x&b=%2F')).toBe('?a=1&b=%2F');
    expect(withoutSignature('?sig=x')).toBe('');
    expect(withoutSignature('?%73IG=x&a=1')).toBe('?a=1');
  });
});

describe('token claims (not verified)', () => {
  const jwt = (claims: object) =>
    `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.not-a-signature`;
  it('reads scopes and the repository id', () => {
    const claims = decodeClaims(
      jwt({
        repository_id: 42,
        ac: JSON.stringify([
          { Scope: 'refs/pull/1/merge', Permission: 3 },
          { Scope: 'refs/heads/main', Permission: 1 },
        ]),
      }),
    );
    expect(claims?.repositoryId).toBe('42');
    expect(readableScopes(claims)).toEqual(['refs/pull/1/merge', 'refs/heads/main']);
    expect(writeScope(claims)).toBe('refs/pull/1/merge');
  });
  it('anything else yields no claims or no scopes, never an error', () => {
    expect(decodeClaims('opaque')).toBeUndefined();
    expect(decodeClaims(jwt({ ac: 'not json' }))?.scopes).toEqual([]);
  });
});

describe('traffic-only miss explanations', () => {
  it('names another version, an unfinalized upload, an unreadable scope, or nothing seen', () => {
    const h = createSaveHistory();
    h.created('npm-a', 'v1', 'refs/heads/main');
    h.finalized('npm-a', 'v1', 'refs/heads/main');
    h.created('npm-b', 'v2', 'refs/heads/main');
    h.created('npm-c', 'v3', 'refs/heads/feature');
    h.finalized('npm-c', 'v3', 'refs/heads/feature');
    const q = { restoreKeys: [], scopes: ['refs/heads/main'] };
    expect(h.explain({ ...q, key: 'npm-a', version: 'v9' })).toMatchObject({
      reason: 'version-mismatch',
      foundVersion: 'v1',
      basis: 'traffic',
    });
    expect(h.explain({ ...q, key: 'npm-b', version: 'v2' }).reason).toBe('pending');
    expect(h.explain({ ...q, key: 'npm-c', version: 'v3' }).reason).toBe('scope-not-readable');
    expect(h.explain({ ...q, key: 'zzz', version: 'v1' })).toMatchObject({
      reason: 'no-such-key',
      basis: 'traffic',
    });
    expect(h.explain({ ...q, key: 'zzz', restoreKeys: ['npm-'], version: 'v9' }).reason).toBe(
      'version-mismatch',
    );
  });
});
