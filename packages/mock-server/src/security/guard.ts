/**
 * The guard in front of the mock's own surfaces: one root `onRequest` hook that sorts each request by
 * path into a surface and applies that surface's rules before any handler runs.
 *
 * - `/_admin`, `/_ui`, `/metrics`: the `Host` rule, the browser rules and the admin token.
 * - `/repos` (the REST API): the `Host` rule only; credentials stay GitHub's (`restToken`).
 * - everything else (Twirp, blobs, `/healthz`): open to any `Host`; Twirp and blob requests carry
 *   their own runtime tokens and SAS signatures, and real clients reach them under any name.
 *
 * The browser rules refuse what a page on another site can make a browser send without a CORS
 * preflight: a foreign `Origin`, `Sec-Fetch-Site` other than `same-origin`/`none`, and a `POST` with
 * a CORS-safelisted content type (none, form, multipart, `text/plain`) and no `X-Requested-By`. The
 * server answers no preflight and sends no `Access-Control-*` header, so every other cross-site
 * request dies in the browser before it is sent.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { createHostAllowList, type HostAllowList } from './hosts.js';

/** Why the guard refused a request: the `meta.reason` (admin, UI, metrics) of the error body. */
export type SecurityReason =
  | 'host_not_allowed'
  | 'cross_site_request'
  | 'simple_request_refused'
  | 'admin_token_required'
  | 'admin_token_invalid';

const STATUS: Readonly<Record<SecurityReason, 401 | 403 | 421>> = {
  host_not_allowed: 421,
  cross_site_request: 403,
  simple_request_refused: 403,
  admin_token_required: 401,
  admin_token_invalid: 401,
};

/** A refusal by the guard; never carries a credential the request sent. */
export class SecurityError extends Error {
  override readonly name = 'SecurityError';
  readonly status: 401 | 403 | 421;
  constructor(
    readonly reason: SecurityReason,
    message: string,
  ) {
    super(message);
    this.status = STATUS[reason];
  }

  /** The admin API's error shape: a Twirp code, the message, the reason in `meta`. */
  toJSON(): { code: string; msg: string; meta: { reason: SecurityReason } } {
    return {
      code: this.status === 401 ? 'unauthenticated' : 'permission_denied',
      msg: this.message,
      meta: { reason: this.reason },
    };
  }
}

/** Which rules apply to a path. */
export type Surface = 'admin' | 'ui' | 'metrics' | 'rest' | 'open';

const PREFIXES: readonly (readonly [string, Surface])[] = [
  ['/_admin', 'admin'],
  ['/_ui', 'ui'],
  ['/metrics', 'metrics'],
  ['/repos', 'rest'],
];

const RANK: Readonly<Record<Surface, number>> = { open: 0, rest: 1, admin: 2, ui: 2, metrics: 2 };

const surfaceOfPath = (path: string): Surface =>
  PREFIXES.find(([p]) => path === p || path.startsWith(`${p}/`))?.[1] ?? 'open';

/**
 * The surface of a request, from every spelling of its path (the raw one, the percent-decoded one the
 * router matched, the matched route's pattern): the strictest wins, so `/%5Fadmin/reset` is admin.
 */
export function surfaceOf(...paths: readonly (string | undefined)[]): Surface {
  let surface: Surface = 'open';
  for (const path of paths) {
    if (path === undefined) continue;
    const s = surfaceOfPath(path);
    if (RANK[s] > RANK[surface]) surface = s;
  }
  return surface;
}

const ASSET = /\.(?:html|js|mjs|css|svg|png|jpe?g|gif|webp|ico|woff2?|ttf|map|txt)$/i;

/**
 * The UI's page and static files, which load without the admin token (the page then asks for it on
 * the API's 401): `/_ui`, `/_ui/`, and paths under `/_ui/` whose last segment has a static file's
 * extension. Anything else under `/_ui/` (data) needs the token like the admin API.
 */
export function isPublicUiAsset(path: string): boolean {
  if (path === '/_ui' || path === '/_ui/') return true;
  return path.startsWith('/_ui/') && ASSET.test(path) && !path.includes('/../');
}

export interface SecurityGuardOptions {
  /** Bearer token the admin API, the UI's data and `/metrics` require. Default: none required. */
  readonly adminToken?: string;
  /** Host names the guarded surfaces answer to besides loopback names and IP literals (see `hosts.ts`). */
  readonly allowedHosts?: readonly string[];
  /** `--public-url`: its host joins the allowed names, its origin counts as the UI's own. */
  readonly publicUrl?: string;
}

/** The parts of a request the rules read. */
export interface GuardedRequest {
  readonly method: string;
  /** Percent-decoded path, no query. */
  readonly path: string;
  readonly surface: Surface;
  /** Pattern of the matched route (`/_ui/*`, `/_admin/entries/:id`), if any. */
  readonly route?: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

const header = (req: GuardedRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Content types a page may send cross-site without a preflight (and none at all). */
const SIMPLE_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain']);

function isSimpleContentType(value: string | undefined): boolean {
  if (value === undefined) return true;
  const essence = value.split(';')[0]!.trim().toLowerCase();
  // An unparseable type is treated as simple: refused unless `X-Requested-By` says otherwise.
  return SIMPLE_TYPES.has(essence) || !/^[\w.+-]+\/[\w.+-]+$/.test(essence);
}

function sameOrigin(origin: string, host: string | undefined, publicOrigin: string | undefined): boolean {
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return false; // includes `Origin: null` (sandboxed frames, opaque redirects)
  }
  if (o.protocol !== 'http:' && o.protocol !== 'https:') return false;
  if (publicOrigin !== undefined && o.origin === publicOrigin) return true;
  if (host === undefined) return false;
  try {
    return new URL(`${o.protocol}//${host}`).host === o.host;
  } catch {
    return false;
  }
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export interface SecurityRules {
  readonly hosts: HostAllowList;
  readonly tokenRequired: boolean;
  /** The refusal for a request, or `undefined` when it may go on. */
  check(req: GuardedRequest): SecurityError | undefined;
}

export function createSecurityRules(options: SecurityGuardOptions = {}): SecurityRules {
  const { adminToken } = options;
  if (adminToken !== undefined && adminToken.trim() === '') throw new Error('adminToken must not be empty');
  let publicOrigin: string | undefined;
  const names = [...(options.allowedHosts ?? [])];
  if (options.publicUrl) {
    const url = new URL(options.publicUrl);
    publicOrigin = url.origin;
    names.push(url.hostname);
  }
  const hosts = createHostAllowList({ names });
  const expected = adminToken === undefined ? undefined : digest(adminToken);

  function checkToken(req: GuardedRequest): SecurityError | undefined {
    if (expected === undefined) return undefined;
    const m = /^Bearer +(\S+) *$/i.exec(header(req, 'authorization') ?? '');
    if (!m) {
      return new SecurityError(
        'admin_token_required',
        'this server requires its admin token: send "Authorization: Bearer <token>" (gha-cache-mock serve --admin-token)',
      );
    }
    return timingSafeEqual(digest(m[1]!), expected)
      ? undefined
      : new SecurityError('admin_token_invalid', 'the admin token is not valid');
  }

  function checkBrowser(req: GuardedRequest, publicAsset: boolean): SecurityError | undefined {
    const site = header(req, 'sec-fetch-site');
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      // A link from another site may open the UI's page; it may not read or change state.
      if (!(publicAsset && header(req, 'sec-fetch-mode') === 'navigate')) {
        return new SecurityError(
          'cross_site_request',
          `cross-site request refused (Sec-Fetch-Site: ${site})`,
        );
      }
    }
    const origin = header(req, 'origin');
    if (origin !== undefined && !sameOrigin(origin, header(req, 'host'), publicOrigin)) {
      return new SecurityError(
        'cross_site_request',
        'cross-origin request refused (Origin is not this server)',
      );
    }
    if (
      req.method === 'POST' &&
      !header(req, 'x-requested-by') &&
      isSimpleContentType(header(req, 'content-type'))
    ) {
      return new SecurityError(
        'simple_request_refused',
        'a POST here needs a non-form content type (e.g. application/json) or an X-Requested-By header',
      );
    }
    return undefined;
  }

  return {
    hosts,
    tokenRequired: expected !== undefined,
    check(req) {
      if (req.surface === 'open') return undefined;
      const host = header(req, 'host');
      if (host !== undefined && !hosts.allows(host)) {
        return new SecurityError(
          'host_not_allowed',
          `this server does not answer for host "${host.slice(0, 255)}" (allowed: IP addresses, ${hosts.names.join(', ')}; add names with --allowed-host)`,
        );
      }
      if (req.surface === 'rest') return undefined;
      // A parametric route (`/_ui/api/entries/:id`) serves data whatever its URL ends with.
      const publicAsset =
        req.surface === 'ui' &&
        (req.method === 'GET' || req.method === 'HEAD') &&
        isPublicUiAsset(req.path) &&
        !req.route?.includes(':');
      return checkBrowser(req, publicAsset) ?? (publicAsset ? undefined : checkToken(req));
    },
  };
}

/** The path the router matched: percent-decoded (`/%5Fadmin` is `/_admin`), no query. */
function decodedPath(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

const GITHUB_DOCS = 'https://docs.github.com/rest';

function sendRefusal(reply: FastifyReply, surface: Surface, err: SecurityError): FastifyReply {
  if (err.status === 401) reply.header('www-authenticate', 'Bearer realm="gha-cache-mock"');
  const body =
    surface === 'rest'
      ? { message: err.message, documentation_url: GITHUB_DOCS, status: String(err.status) }
      : err.toJSON();
  return reply.code(err.status).type('application/json').send(JSON.stringify(body));
}

/** Headers on every admin, UI and metrics response: no framing, no sniffing, no cross-origin embedding. */
const HARDENING: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "frame-ancestors 'none'",
  'cross-origin-resource-policy': 'same-origin',
  'referrer-policy': 'no-referrer',
};

declare module 'fastify' {
  interface FastifyInstance {
    /** The guard's rules (`app.security.check(…)`), for tests and for plugins that add routes. */
    security: SecurityRules;
  }
}

/** Registers the guard on the root instance: it applies to every route, including later ones. */
export const securityGuardPlugin = fp<SecurityGuardOptions>(
  async (app: FastifyInstance, options) => {
    const rules = createSecurityRules(options);
    app.decorate('security', rules);
    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      const raw = request.url.split('?')[0]!;
      const path = decodedPath(raw);
      const surface = surfaceOf(raw, path, request.routeOptions.url);
      if (surface === 'open') return;
      if (surface !== 'rest') reply.headers(HARDENING);
      const refusal = rules.check({
        method: request.method,
        path,
        surface,
        route: request.routeOptions.url,
        headers: request.headers,
      });
      if (!refusal) return;
      if (request.audit) request.audit.refused = refusal.reason;
      return sendRefusal(reply, surface, refusal);
    });
  },
  { name: 'security-guard' },
);
