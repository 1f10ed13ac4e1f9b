import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { TwirpError } from '../errors.js';

/** Permission bits of a cache scope, as in `CacheScope.permission`: 1 read, 2 write, 3 both. */
export const Permission = { none: 0, read: 1, write: 2, all: 3 } as const;

export interface TokenScope {
  /** A git ref, e.g. `refs/heads/main`. */
  readonly scope: string;
  /** Bit 1 = read, bit 2 = write. */
  readonly permission: number;
}

/** What a verified runtime token grants. */
export interface TokenIdentity {
  /** Repository partition (the `repository_id` claim, or the server's default). */
  readonly repositoryId: string;
  /** The `ac` scopes in token order. */
  readonly scopes: readonly TokenScope[];
}

export interface MintTokenOptions {
  /** Scopes in order; the first writable one is the write scope. Default `refs/heads/main` read+write. */
  readonly scopes?: readonly TokenScope[];
  /** Default: the authority's default repository id. */
  readonly repositoryId?: string;
  /** Lifetime; default 6 hours (a job's maximum). */
  readonly ttlMs?: number;
  /** Unix ms; default `Date.now()`. */
  readonly now?: number;
}

export interface TokenAuthorityOptions {
  /** HS256 key. */
  readonly secret: Buffer;
  /** Accept any decodable token without checking its signature (for tokens minted elsewhere). Default false. */
  readonly insecure?: boolean;
  /** Repository for tokens without `repository_id`. Default `"1"`. */
  readonly defaultRepositoryId?: string;
}

export interface TokenAuthority {
  mint(options?: MintTokenOptions): string;
  /** Verifies an `Authorization` header value; throws Twirp `unauthenticated`. */
  verifyAuthorization(header: string | undefined, now: number): TokenIdentity;
}

const DEFAULT_TTL_MS = 6 * 60 * 60 * 1000;

/** How many verified tokens `verifyAuthorization` remembers (a job holds one; a test suite a few). */
const VERIFIED_CACHE_SIZE = 1024;

/** A token whose signature and claims checked out: what it grants and when, re-checked on each use. */
interface VerifiedToken {
  readonly identity: TokenIdentity;
  /** Unix seconds; `undefined` only for an insecure authority's tokens without the claim. */
  readonly exp: number | undefined;
  readonly nbf: number | undefined;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

const unauthenticated = (msg: string) => new TwirpError('unauthenticated', msg);

/** Parses `refs/heads/main:rw` (or `:r`, `:w`, `:3`); a scope without a suffix is read+write. */
export function parseScopeSpec(spec: string): TokenScope {
  const i = spec.lastIndexOf(':');
  const [scope, perm] = i > 0 ? [spec.slice(0, i), spec.slice(i + 1)] : [spec, 'rw'];
  let permission: number;
  if (/^[0-3]$/.test(perm)) permission = Number(perm);
  else if (/^(r|w|rw|wr)$/.test(perm))
    permission = (perm.includes('r') ? 1 : 0) | (perm.includes('w') ? 2 : 0);
  else throw new Error(`invalid scope "${spec}": expected <ref>:r, <ref>:w or <ref>:rw`);
  return { scope, permission };
}

function parseScopes(ac: unknown): TokenScope[] {
  if (typeof ac !== 'string') throw unauthenticated('token claim "ac" must be a JSON string');
  let parsed: unknown;
  try {
    parsed = JSON.parse(ac);
  } catch {
    throw unauthenticated('token claim "ac" is not valid JSON');
  }
  if (!Array.isArray(parsed)) throw unauthenticated('token claim "ac" must be a JSON array');
  return parsed.map((item: unknown) => {
    const o = (item ?? {}) as Record<string, unknown>;
    const scope = o.Scope ?? o.scope;
    const permission = o.Permission ?? o.permission;
    if (typeof scope !== 'string' || typeof permission !== 'number' || !Number.isInteger(permission)) {
      throw unauthenticated('token claim "ac" has an invalid scope entry');
    }
    return { scope, permission };
  });
}

/** Mints and verifies HS256 runtime tokens shaped like GitHub's `ACTIONS_RUNTIME_TOKEN`. */
export function createTokenAuthority(options: TokenAuthorityOptions): TokenAuthority {
  const { secret, insecure = false, defaultRepositoryId = '1' } = options;
  const sign = (input: string) => createHmac('sha256', secret).update(input).digest();
  // Keyed by the exact token string, filled only after a full check: a hit skips decoding and the
  // HMAC, never the `exp`/`nbf` check against the clock of the request. Oldest out first.
  const verified = new Map<string, VerifiedToken>();
  const inTimeFrame = (t: VerifiedToken, now: number): TokenIdentity => {
    const seconds = now / 1000;
    if (t.exp !== undefined && t.exp <= seconds) throw unauthenticated('token has expired');
    if (t.nbf !== undefined && t.nbf > seconds) throw unauthenticated('token is not valid yet');
    return t.identity;
  };

  return {
    mint({ scopes, repositoryId, ttlMs = DEFAULT_TTL_MS, now = Date.now() } = {}) {
      const ac = (scopes ?? [{ scope: 'refs/heads/main', permission: Permission.all }]).map((s) => ({
        Scope: s.scope,
        Permission: s.permission,
      }));
      const iat = Math.floor(now / 1000);
      const payload = {
        nameid: 'gha-cache-mock',
        scp: `Actions.Results:${randomBytes(8).toString('hex')}:job`,
        ac: JSON.stringify(ac),
        repository_id: repositoryId ?? defaultRepositoryId,
        iss: 'https://token.actions.githubusercontent.com',
        aud: 'vso:gha-cache-mock',
        iat,
        nbf: iat - 60,
        exp: iat + Math.max(1, Math.floor(ttlMs / 1000)),
      };
      const input = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'HS256' }))}.${b64url(JSON.stringify(payload))}`;
      return `${input}.${b64url(sign(input))}`;
    },

    verifyAuthorization(header, now) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
      if (!match) throw unauthenticated('missing "Authorization: Bearer <token>" header');
      const token = match[1]!;
      const known = verified.get(token);
      if (known) return inTimeFrame(known, now);
      const parts = token.split('.');
      if (parts.length !== 3) throw unauthenticated('the bearer token is not a JWT');
      const [h, p, s] = parts as [string, string, string];
      let headerJson: Record<string, unknown>;
      let claims: Record<string, unknown>;
      try {
        headerJson = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
        claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
      } catch {
        throw unauthenticated('the bearer token cannot be decoded');
      }
      if (
        typeof claims !== 'object' ||
        claims === null ||
        typeof headerJson !== 'object' ||
        headerJson === null
      ) {
        throw unauthenticated('the bearer token cannot be decoded');
      }
      if (!insecure) {
        if (headerJson.alg !== 'HS256')
          throw unauthenticated(`token algorithm "${String(headerJson.alg)}" is not accepted`);
        const expected = sign(`${h}.${p}`);
        const given = Buffer.from(s, 'base64url');
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
          throw unauthenticated('token signature is invalid');
        }
      }
      const exp = typeof claims.exp === 'number' ? claims.exp : undefined;
      const nbf = typeof claims.nbf === 'number' ? claims.nbf : undefined;
      const seconds = now / 1000;
      if (exp !== undefined && exp <= seconds) throw unauthenticated('token has expired');
      if (nbf !== undefined && nbf > seconds) throw unauthenticated('token is not valid yet');
      if (!insecure && (typeof claims.exp !== 'number' || typeof claims.nbf !== 'number')) {
        throw unauthenticated('token must carry numeric "exp" and "nbf" claims');
      }
      const repo = claims.repository_id;
      const repositoryId =
        typeof repo === 'string' && repo !== ''
          ? repo
          : typeof repo === 'number'
            ? String(repo)
            : defaultRepositoryId;
      const scopes = Object.freeze(parseScopes(claims.ac).map((s) => Object.freeze(s)));
      const identity: TokenIdentity = Object.freeze({ repositoryId, scopes });
      if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
      verified.set(token, { identity, exp, nbf });
      return identity;
    },
  };
}
