import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../app.js';
import { redactHeaders, redactUrl } from '../request-log.js';
import { createSecurityRules, isPublicUiAsset, surfaceOf } from './guard.js';
import { createHostAllowList, hostnameOf, isLoopbackHost } from './hosts.js';

describe('hosts', () => {
  it('reads the name out of a Host header value', () => {
    expect(hostnameOf('Example.COM:8787')).toBe('example.com');
    expect(hostnameOf('[::1]:8787')).toBe('::1');
    expect(hostnameOf('::1')).toBe('::1');
    expect(hostnameOf('localhost')).toBe('localhost');
  });

  it('loopback is localhost, 127/8 and ::1; nothing that merely looks like it', () => {
    for (const h of ['localhost', 'localhost:1', '127.0.0.1', '127.1.2.3:80', '[::1]:8787', '::1']) {
      expect(isLoopbackHost(h), h).toBe(true);
    }
    for (const h of [
      '0.0.0.0',
      '::',
      '10.0.0.1',
      'localhost.evil.example',
      'evil.localhost',
      '127.0.0.1.nip.io',
    ]) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });

  it('allows IP literals, localhost and the configured names (a leading dot for subdomains)', () => {
    const hosts = createHostAllowList({ names: ['Cache.Test', '.corp.test', 'with-port.test:9000'] });
    for (const h of [
      '10.1.2.3:8787',
      '[fe80::1]:1',
      'localhost:8787',
      'cache.test',
      'a.corp.test',
      'corp.test',
      'with-port.test:1',
    ]) {
      expect(hosts.allows(h), h).toBe(true);
    }
    for (const h of [
      '',
      'evil.example',
      'cache.test.evil',
      'xcorp.test',
      '127.0.0.1.nip.io',
      'evil.localhost',
    ]) {
      expect(hosts.allows(h), h).toBe(false);
    }
  });
});

describe('surfaces', () => {
  it('sorts paths by prefix; the strictest spelling wins', () => {
    expect(surfaceOf('/_admin/reset')).toBe('admin');
    expect(surfaceOf('/_admin')).toBe('admin');
    expect(surfaceOf('/_adminx')).toBe('open');
    expect(surfaceOf('/metrics')).toBe('metrics');
    expect(surfaceOf('/_ui/')).toBe('ui');
    expect(surfaceOf('/repos/o/r/actions/caches')).toBe('rest');
    expect(surfaceOf('/twirp/x', '/healthz', undefined)).toBe('open');
    expect(surfaceOf('/%5Fadmin/reset', '/_admin/reset')).toBe('admin');
  });

  it("the UI's page and static files are public, its data is not", () => {
    for (const p of [
      '/_ui',
      '/_ui/',
      '/_ui/index.html',
      '/_ui/assets/app.4f2a.js',
      '/_ui/app.css',
      '/_ui/favicon.ico',
    ]) {
      expect(isPublicUiAsset(p), p).toBe(true);
    }
    for (const p of [
      '/_ui/api/journal',
      '/_ui/journal.json',
      '/_ui/events',
      '/_ui/../_admin/x.js',
      '/_admin/x.js',
    ]) {
      expect(isPublicUiAsset(p), p).toBe(false);
    }
  });
});

describe('rules', () => {
  const rules = createSecurityRules({ adminToken: 'T0k3n', publicUrl: 'https://cache.example' });
  const check = (method: string, path: string, headers: Record<string, string>, route?: string) =>
    rules.check({
      method,
      path,
      surface: surfaceOf(path),
      route,
      headers: { host: '127.0.0.1:1', ...headers },
    })?.reason;
  const auth = { authorization: 'Bearer T0k3n' };

  it('checks Host first, then the browser rules, then the token', () => {
    expect(check('GET', '/_admin/entries', { host: 'evil.example' })).toBe('host_not_allowed');
    expect(check('GET', '/_admin/entries', { 'sec-fetch-site': 'cross-site' })).toBe('cross_site_request');
    expect(check('GET', '/_admin/entries', {})).toBe('admin_token_required');
    expect(check('GET', '/_admin/entries', { authorization: 'Bearer nope' })).toBe('admin_token_invalid');
    expect(check('GET', '/_admin/entries', { authorization: 'token T0k3n' })).toBe('admin_token_required');
    expect(check('GET', '/_admin/entries', auth)).toBeUndefined();
    expect(check('GET', '/_admin/entries', { authorization: 'bearer T0k3n' })).toBeUndefined();
  });

  it('REST gets the Host rule only; open routes nothing', () => {
    expect(check('GET', '/repos/o/r/actions/caches', { host: 'evil.example' })).toBe('host_not_allowed');
    expect(check('DELETE', '/repos/o/r/actions/caches', { origin: 'http://evil.example' })).toBeUndefined();
    expect(
      check('POST', '/twirp/x', { host: 'evil.example', origin: 'http://evil.example' }),
    ).toBeUndefined();
  });

  it('a POST needs a non-form content type or X-Requested-By', () => {
    for (const type of [
      undefined,
      'text/plain',
      'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'nonsense',
    ]) {
      expect(
        check('POST', '/_admin/reset', { ...auth, ...(type ? { 'content-type': type } : {}) }),
        type,
      ).toBe('simple_request_refused');
    }
    for (const type of [
      'application/json',
      'application/json; charset=utf-8',
      'application/merge-patch+json',
      'application/octet-stream',
    ]) {
      expect(check('POST', '/_admin/reset', { ...auth, 'content-type': type }), type).toBeUndefined();
    }
    expect(check('POST', '/_admin/reset', { ...auth, 'x-requested-by': 'gha-cache-ui' })).toBeUndefined();
    // Methods a page cannot send without a preflight pass as they are.
    expect(check('DELETE', '/_admin/faults', auth)).toBeUndefined();
  });

  it('Origin: its own (Host or public URL) passes; foreign, null and malformed do not', () => {
    const post = { ...auth, 'content-type': 'application/json' };
    expect(check('POST', '/_admin/reset', { ...post, origin: 'http://127.0.0.1:1' })).toBeUndefined();
    expect(check('POST', '/_admin/reset', { ...post, origin: 'https://cache.example' })).toBeUndefined();
    for (const origin of [
      'http://127.0.0.1:2',
      'null',
      'http://evil.example',
      'file://',
      'garbage',
      'https://cache.example.evil',
    ]) {
      expect(check('POST', '/_admin/reset', { ...post, origin }), origin).toBe('cross_site_request');
    }
  });

  it('the UI page opens from a link anywhere without the token; its parametric routes are data', () => {
    const nav = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' };
    expect(check('GET', '/_ui/', nav)).toBeUndefined();
    expect(check('GET', '/_ui/app.js', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' })).toBe(
      'cross_site_request',
    );
    expect(check('GET', '/_ui/api/entries/1.js', {}, '/_ui/api/entries/:id')).toBe('admin_token_required');
    expect(check('GET', '/_ui/app.js', {}, '/_ui/*')).toBeUndefined();
    expect(check('POST', '/_ui/index.html', { 'content-type': 'application/json' })).toBe(
      'admin_token_required',
    );
  });

  it('refuses an empty admin token, a URL or wildcard as a host name, a guarded path prefix', async () => {
    expect(() => createSecurityRules({ adminToken: ' ' })).toThrow(/empty/);
    for (const name of ['http://cache.test', 'cache.test/x', '*', '*.corp.test', 'a b']) {
      expect(() => createSecurityRules({ allowedHosts: [name] }), name).toThrow(/invalid host name/);
    }
    await expect(buildApp({ pathPrefix: '/_admin' })).rejects.toThrow(/reserved/);
    await expect(buildApp({ pathPrefix: 'metrics/x' })).rejects.toThrow(/reserved/);
  });
});

describe('routes added after the guard', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('are covered by prefix: the UI and /metrics (registered after the guard) get the same rules', async () => {
    app = await buildApp({ adminToken: 'T' });
    const get = (url: string, headers: Record<string, string> = {}) => app!.inject({ url, headers });
    expect((await get('/metrics')).statusCode).toBe(401);
    expect((await get('/metrics', { authorization: 'Bearer T' })).statusCode).toBe(200);
    expect((await get('/metrics', { authorization: 'Bearer T', host: 'evil.example' })).statusCode).toBe(421);
    const page = await get('/_ui/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect((await get('/_ui/app.js')).statusCode).toBe(200);
    // Anything under /_ui/ that is not a static file needs the token like the admin API.
    expect((await get('/_ui/data', { authorization: 'Bearer T' })).statusCode).toBe(404);
    const refused = await get('/_ui/data');
    expect(refused.statusCode).toBe(401);
    expect(JSON.parse(refused.body)).toEqual({
      code: 'unauthenticated',
      msg: expect.stringContaining('Authorization: Bearer'),
      meta: { reason: 'admin_token_required' },
    });
  });
});

describe('redactUrl', () => {
  it('hides sig, token and access_token values however the name is spelled', () => {
    expect(redactUrl('/a/b?sv=1&sig=abc%2B%3D&se=2')).toBe('/a/b?sv=1&sig=REDACTED&se=2');
    expect(redactUrl('/a?SIG=x&%73ig=y&%73%69%67=z')).toBe(
      '/a?SIG=REDACTED&%73ig=REDACTED&%73%69%67=REDACTED',
    );
    expect(redactUrl('/a?token=t&access_token=u&signature=keep')).toBe(
      '/a?token=REDACTED&access_token=REDACTED&signature=keep',
    );
    expect(redactUrl('/a?%zz=1&sig')).toBe('/a?%zz=1&sig');
    expect(redactUrl('/plain/path')).toBe('/plain/path');
  });
});

describe('redactHeaders', () => {
  it('hides credential headers and signatures in URL headers, keeps the rest', () => {
    expect(
      redactHeaders({
        Authorization: 'Bearer eyJ.secret',
        cookie: 'a=b',
        location: 'http://x/a?sig=s3cr3t&sv=1',
        'x-ms-blob-type': 'BlockBlob',
        'content-length': 5,
        'set-cookie': ['a=1', 'b=2'],
        missing: undefined,
      }),
    ).toEqual({
      Authorization: 'REDACTED',
      cookie: 'REDACTED',
      location: 'http://x/a?sig=REDACTED&sv=1',
      'x-ms-blob-type': 'BlockBlob',
      'content-length': '5',
      'set-cookie': 'REDACTED',
    });
  });
});
