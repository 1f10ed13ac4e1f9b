/**
 * What the proxy reads from a client's runtime token: the claims, decoded WITHOUT verifying the signature
 * (the proxy holds no key; the upstream service judges the token). Only scopes and the repository id are
 * kept; the token itself is never stored, logged or recorded.
 */

export interface TokenClaims {
  /** `repository_id`, when the token carries one. */
  readonly repositoryId?: string;
  /** The `ac` scopes in token order (permission bits: 1 read, 2 write). */
  readonly scopes: readonly { readonly scope: string; readonly permission: number }[];
}

/** The bearer token of an `Authorization` header, or undefined. */
export function bearerOf(authorization: string | undefined): string | undefined {
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return m?.[1];
}

/** Decodes a JWT's claims without verifying it; undefined when it is not a decodable JWT. */
export function decodeClaims(token: string | undefined): TokenClaims | undefined {
  if (!token) return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  let claims: Record<string, unknown>;
  try {
    const json: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
    claims = json as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const scopes: { scope: string; permission: number }[] = [];
  if (typeof claims.ac === 'string') {
    try {
      const ac: unknown = JSON.parse(claims.ac);
      if (Array.isArray(ac)) {
        for (const item of ac) {
          const o = (item ?? {}) as Record<string, unknown>;
          const scope = o.Scope ?? o.scope;
          const permission = o.Permission ?? o.permission;
          if (typeof scope === 'string' && typeof permission === 'number') scopes.push({ scope, permission });
        }
      }
    } catch {
      // An unreadable `ac` claim: no scopes to show (the upstream decides what the token may do).
    }
  }
  const repo = claims.repository_id;
  const repositoryId =
    typeof repo === 'string' && repo !== '' ? repo : typeof repo === 'number' ? String(repo) : undefined;
  return { ...(repositoryId !== undefined ? { repositoryId } : {}), scopes };
}

/** Scopes a lookup reads, in order. */
export const readableScopes = (claims: TokenClaims | undefined): string[] =>
  (claims?.scopes ?? []).filter((s) => (s.permission & 1) !== 0).map((s) => s.scope);

/** The scope an upload writes: the first writable one. */
export const writeScope = (claims: TokenClaims | undefined): string | undefined =>
  claims?.scopes.find((s) => (s.permission & 2) !== 0)?.scope;
