import { describe, expect, it } from 'vitest';
import { TwirpError } from '../errors.js';
import { createTokenAuthority } from './tokens.js';

const secret = Buffer.alloc(32, 7);
const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);
const HOUR = 3_600_000;

const rejects = (fn: () => unknown, msg: RegExp) => {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(TwirpError);
  expect((caught as TwirpError).code).toBe('unauthenticated');
  expect((caught as TwirpError).message).toMatch(msg);
};

describe('verifyAuthorization of a token verified before', () => {
  it('still checks exp and nbf against the clock of each request', () => {
    const a = createTokenAuthority({ secret });
    const token = a.mint({ now: NOW, ttlMs: HOUR });
    expect(a.verifyAuthorization(`Bearer ${token}`, NOW).repositoryId).toBe('1');
    rejects(() => a.verifyAuthorization(`Bearer ${token}`, NOW + HOUR), /expired/);
    rejects(() => a.verifyAuthorization(`Bearer ${token}`, NOW - 2 * 60_000), /not valid yet/);
    expect(a.verifyAuthorization(`Bearer ${token}`, NOW + HOUR - 1000).scopes).toEqual([
      { scope: 'refs/heads/main', permission: 3 },
    ]);
  });

  it('rejects a forged signature over the same claims', () => {
    const a = createTokenAuthority({ secret });
    const token = a.mint({ now: NOW });
    a.verifyAuthorization(`Bearer ${token}`, NOW);
    const [h, p] = token.split('.');
    const forged = createTokenAuthority({ secret: Buffer.alloc(32, 8) })
      .mint({ now: NOW })
      .split('.')[2];
    rejects(() => a.verifyAuthorization(`Bearer ${h}.${p}.${forged}`, NOW), /signature is invalid/);
    rejects(() => a.verifyAuthorization(`Bearer ${token.slice(0, -2)}AA`, NOW), /signature is invalid/);
    expect(a.verifyAuthorization(`Bearer ${token}`, NOW).repositoryId).toBe('1');
  });

  it('is not shared between authorities with different secrets', () => {
    const a = createTokenAuthority({ secret });
    const token = a.mint({ now: NOW });
    a.verifyAuthorization(`Bearer ${token}`, NOW);
    const b = createTokenAuthority({ secret: Buffer.alloc(32, 9) });
    rejects(() => b.verifyAuthorization(`Bearer ${token}`, NOW), /signature is invalid/);
  });

  it('keeps working past its bound (oldest tokens verified again)', () => {
    const a = createTokenAuthority({ secret });
    const tokens = Array.from({ length: 1500 }, (_, i) => a.mint({ now: NOW, repositoryId: String(i) }));
    for (const t of tokens) a.verifyAuthorization(`Bearer ${t}`, NOW);
    tokens.forEach((t, i) => {
      expect(a.verifyAuthorization(`Bearer ${t}`, NOW).repositoryId).toBe(String(i));
    });
    rejects(() => a.verifyAuthorization(`Bearer ${tokens[0]}`, NOW + 7 * HOUR), /expired/);
  });

  it('hands out identities nobody can change for the next request', () => {
    const a = createTokenAuthority({ secret });
    const token = a.mint({ now: NOW });
    const first = a.verifyAuthorization(`Bearer ${token}`, NOW);
    expect(() => (first.scopes as unknown as { scope: string }[]).push({ scope: 'x' })).toThrow();
    expect(a.verifyAuthorization(`Bearer ${token}`, NOW).scopes).toHaveLength(1);
  });
});
