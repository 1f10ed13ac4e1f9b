/**
 * The guard over real sockets, judged by real curl: the cross-site "simple" requests a web page can
 * make a browser send, a DNS-rebinding Host, each refused and changing nothing; the same calls from
 * the server's own origin, under its configured names and with the admin token work; Twirp and blob
 * routes keep answering for any Host; no response carries a permissive CORS header.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestMock, type TestMock } from '../support/mock.js';
import { twirp } from '../support/twirp.js';
import { asHost, type CurlResponse, curl } from './curl.js';

const V = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';
const JSON_TYPE = ['-H', 'content-type: application/json'];

function expectRefused(res: CurlResponse, status: number, reason: string) {
  expect(res.status, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.json).toMatchObject({ meta: { reason } });
  expect(res.headers['access-control-allow-origin']).toBeUndefined();
}

async function seedTwo(mock: TestMock) {
  await mock.seed({ key: 'keep-1', version: V, content: 'one', onConflict: 'skip' });
  await mock.seed({ key: 'keep-2', version: V, content: 'two', onConflict: 'skip' });
}
const keys = async (mock: TestMock) => (await mock.storage.metadata.listEntries()).map((e) => e.key).sort();

describe('on loopback without an admin token', () => {
  let mock: TestMock;
  let A: string;
  beforeAll(async () => {
    mock = await startTestMock();
    A = `${mock.url}/_admin`;
  });
  afterAll(async () => {
    await mock?.dispose();
  });
  afterEach(async () => {
    await seedTwo(mock);
  });

  it("refuses the issue's cross-site simple POST to /_admin/reset and deletes nothing", async () => {
    await seedTwo(mock);
    const res = await curl(
      '-X',
      'POST',
      '-H',
      'Origin: http://evil.example',
      '-H',
      'Content-Type: text/plain',
      '--data',
      'x',
      `${A}/reset`,
    );
    expectRefused(res, 403, 'cross_site_request');
    expect(res.json).toMatchObject({ code: 'permission_denied' });
    expect(await keys(mock)).toEqual(['keep-1', 'keep-2']);
    const listed = await curl(`${A}/entries`);
    expect(listed.status).toBe(200);
    expect(listed.json?.totalCount).toBe(2);
  });

  it('refuses every simple POST (form, text/plain, no body), with or without Origin, changing nothing', async () => {
    await seedTwo(mock);
    const before = (await curl(`${A}/clock`)).json?.offsetMs;
    const attempts = [
      ['-X', 'POST', `${A}/reset`],
      ['--data', 'x', `${A}/reset`],
      ['-H', 'content-type: text/plain;charset=UTF-8', '--data', '{"by":"8d"}', `${A}/clock/advance`],
      ['-F', 'rule=x', `${A}/faults`],
      [
        '-H',
        'content-type: text/plain',
        '--data',
        '{"op":"GetBlob","action":{"type":"status","status":500}}',
        `${A}/faults`,
      ],
      ['-H', 'content-type: text/plain', '--data', 'content', `${A}/entries?key=planted&version=${V}`],
    ];
    for (const args of attempts) expectRefused(await curl(...args), 403, 'simple_request_refused');
    for (const origin of ['http://evil.example', 'null', `${mock.url}.evil.example`, 'http://localhost:1']) {
      expectRefused(
        await curl(
          '-X',
          'POST',
          '-H',
          `Origin: ${origin}`,
          ...JSON_TYPE,
          '--data',
          '{"by":"8d"}',
          `${A}/clock/advance`,
        ),
        403,
        'cross_site_request',
      );
    }
    expect(await keys(mock)).toEqual(['keep-1', 'keep-2']);
    expect((await curl(`${A}/clock`)).json?.offsetMs).toBe(before);
    expect(mock.faults.list()).toEqual([]);
  });

  it('refuses cross-site and same-site fetch metadata, also on GETs that read state', async () => {
    for (const site of ['cross-site', 'same-site']) {
      expectRefused(await curl('-H', `Sec-Fetch-Site: ${site}`, `${A}/entries`), 403, 'cross_site_request');
      expectRefused(
        await curl(
          '-X',
          'DELETE',
          '-H',
          `Sec-Fetch-Site: ${site}`,
          `${A}/entries/${(await mock.storage.metadata.listEntries())[0]!.id}`,
        ),
        403,
        'cross_site_request',
      );
      // A link from another site may not even open an admin page.
      expectRefused(
        await curl('-H', `Sec-Fetch-Site: ${site}`, '-H', 'Sec-Fetch-Mode: navigate', `${A}/entries`),
        403,
        'cross_site_request',
      );
    }
    expectRefused(await curl('-H', 'Origin: http://evil.example', `${A}/entries`), 403, 'cross_site_request');
    // A percent-encoded spelling of the path reaches the same handler, so the same rules.
    expectRefused(
      await curl('-H', 'Sec-Fetch-Site: cross-site', `${mock.url}/%5Fadmin/entries`),
      403,
      'cross_site_request',
    );
    expect(await keys(mock)).toEqual(['keep-1', 'keep-2']);
    for (const site of ['same-origin', 'none']) {
      expect((await curl('-H', `Sec-Fetch-Site: ${site}`, `${A}/entries`)).json?.totalCount).toBe(2);
    }
  });

  it('answers its own origin and plain tools: JSON or X-Requested-By, DELETE/PUT/PATCH as they are', async () => {
    const own = ['-H', `Origin: ${mock.url}`, '-H', 'Sec-Fetch-Site: same-origin'];
    const advanced = await curl(
      '-X',
      'POST',
      ...own,
      ...JSON_TYPE,
      '--data',
      '{"ms":1000}',
      `${A}/clock/advance`,
    );
    expect(advanced.status).toBe(200);
    expect(advanced.json?.offsetMs).toBe(1000);
    expect(advanced.headers).toMatchObject({
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'cross-origin-resource-policy': 'same-origin',
    });
    const patched = await curl(
      '-X',
      'PATCH',
      ...JSON_TYPE,
      '--data',
      '{"rateLimitPerMinute":null}',
      `${A}/policies`,
    );
    expect(patched.status).toBe(200);
    const seeded = await curl(
      '-H',
      'content-type: application/octet-stream',
      '--data-binary',
      'seeded',
      `${A}/entries?key=seeded&version=${V}`,
    );
    expect(seeded.status).toBe(201);
    const removed = await curl('-X', 'DELETE', `${A}/entries/${seeded.json?.id}`);
    expect(removed.status).toBe(204);
    const reset = await curl('-X', 'POST', '-H', 'X-Requested-By: curl', `${A}/reset`);
    expect(reset.status).toBe(200);
    expect(reset.json).toMatchObject({ deletedEntries: 2 });
    expect(await keys(mock)).toEqual([]);
  });

  it('refuses a DNS-rebinding Host with 421 on the admin and REST APIs, changing nothing', async () => {
    await seedTwo(mock);
    const evil = (path: string) => asHost(`${mock.url}${path}`, 'evil.example');
    expectRefused(await curl(...evil('/_admin/entries')), 421, 'host_not_allowed');
    expectRefused(
      await curl(
        '-X',
        'POST',
        ...JSON_TYPE,
        '-H',
        'X-Requested-By: x',
        '--data',
        '{}',
        ...evil('/_admin/reset'),
      ),
      421,
      'host_not_allowed',
    );
    expectRefused(await curl(...evil('/metrics')), 421, 'host_not_allowed');
    expectRefused(await curl(...evil('/_ui/')), 421, 'host_not_allowed');
    const auth = ['-H', 'Authorization: Bearer anything'];
    const rest = await curl(...auth, ...evil('/repos/octo-org/octo-repo/actions/caches'));
    expect(rest.status).toBe(421);
    expect(rest.json).toMatchObject({ status: '421', documentation_url: expect.any(String) });
    expect(rest.json?.message).toMatch(/evil\.example/);
    const restDelete = await curl(
      '-X',
      'DELETE',
      ...auth,
      ...evil('/repos/octo-org/octo-repo/actions/caches?key=keep-1'),
    );
    expect(restDelete.status).toBe(421);
    expect(await keys(mock)).toEqual(['keep-1', 'keep-2']);
    // Its own names still answer: localhost, IP literals.
    expect((await curl(...asHost(`${mock.url}/_admin/entries`, 'localhost'))).json?.totalCount).toBe(2);
    expect((await curl('-H', `Host: [::1]:${new URL(mock.url).port}`, `${A}/entries`)).status).toBe(200);
    expect(
      (await curl(...auth, `${mock.url}/repos/octo-org/octo-repo/actions/caches`)).json?.total_count,
    ).toBe(2);
  });

  it('Twirp and blob routes keep answering under any Host', async () => {
    await seedTwo(mock);
    const base = `http://cache.anywhere.example:${new URL(mock.url).port}`;
    const hit = await curl(
      '-X',
      'POST',
      ...JSON_TYPE,
      '-H',
      `Authorization: Bearer ${mock.token}`,
      '--data',
      JSON.stringify({ key: 'keep-1', version: V }),
      ...asHost(
        `${base}/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL`,
        'cache.anywhere.example',
      ),
    );
    expect(hit.status, hit.body).toBe(200);
    const url = hit.json?.signed_download_url as string;
    expect(url.startsWith(base)).toBe(true);
    const blob = await curl(...asHost(url, 'cache.anywhere.example'));
    expect(blob.status).toBe(200);
    expect(blob.body).toBe('one');
  });

  it('answers no CORS preflight and sends no Access-Control-* header on any route', async () => {
    const preflight = (url: string) =>
      curl(
        '-X',
        'OPTIONS',
        '-H',
        'Origin: http://evil.example',
        '-H',
        'Access-Control-Request-Method: POST',
        '-H',
        'Access-Control-Request-Headers: content-type, x-requested-by',
        url,
      );
    const answers = [
      await preflight(`${A}/reset`),
      await preflight(`${mock.url}/metrics`),
      await preflight(`${mock.url}/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry`),
      await preflight(`${mock.url}/devstoreaccount1/actions-cache/x`),
      await curl('-H', 'Origin: http://evil.example', `${mock.url}/healthz`),
      await curl(`${A}/entries`),
    ];
    expectRefused(answers[0]!, 403, 'cross_site_request');
    for (const res of answers) {
      expect(res.status).not.toBe(204);
      expect(Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    }
  });
});

describe('configured names and --public-url', () => {
  let mock: TestMock;
  beforeAll(async () => {
    mock = await startTestMock({
      allowedHosts: ['cache.test', '.corp.test'],
      publicUrl: 'https://mock.public.test',
    });
  });
  afterAll(async () => {
    await mock?.dispose();
  });

  it('answers the allowed names and the public URL (also as Origin), and nothing else', async () => {
    const entries = `${mock.url}/_admin/entries`;
    for (const name of ['cache.test', 'a.b.corp.test', 'corp.test', 'mock.public.test', 'localhost']) {
      expect((await curl(...asHost(entries, name))).status, name).toBe(200);
    }
    for (const name of ['evil.test', 'cache.test.evil.test', 'xcorp.test', 'public.test']) {
      expectRefused(await curl(...asHost(entries, name)), 421, 'host_not_allowed');
    }
    // Behind a proxy the Host is the proxy's upstream, the Origin the public one.
    const viaProxy = await curl(
      '-X',
      'POST',
      '-H',
      'Origin: https://mock.public.test',
      ...JSON_TYPE,
      '--data',
      '{"ms":1}',
      `${mock.url}/_admin/clock/advance`,
    );
    expect(viaProxy.status).toBe(200);
  });
});

describe('with an admin token', () => {
  const TOKEN = 'admin-secret-3f9d2c';
  let mock: TestMock;
  beforeAll(async () => {
    mock = await startTestMock({ adminToken: TOKEN });
    await seedTwo(mock);
  });
  afterAll(async () => {
    await mock?.dispose();
  });

  it('refuses admin calls without it or with a wrong one (401, no echo), changing nothing', async () => {
    const A = `${mock.url}/_admin`;
    const none = await curl(`${A}/entries`);
    expectRefused(none, 401, 'admin_token_required');
    expect(none.json?.code).toBe('unauthenticated');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer /);
    const wrong = await curl('-H', 'Authorization: Bearer not-the-token-77', `${A}/entries`);
    expectRefused(wrong, 401, 'admin_token_invalid');
    expect(wrong.body).not.toContain('not-the-token-77');
    const reset = await curl(
      '-X',
      'POST',
      '-H',
      'X-Requested-By: curl',
      '-H',
      'Authorization: Bearer nope',
      `${A}/reset`,
    );
    expectRefused(reset, 401, 'admin_token_invalid');
    // The token does not lift the browser rules.
    expectRefused(
      await curl(
        '-X',
        'POST',
        '-H',
        `Authorization: Bearer ${TOKEN}`,
        '-H',
        'Origin: http://evil.example',
        ...JSON_TYPE,
        '--data',
        '{}',
        `${A}/reset`,
      ),
      403,
      'cross_site_request',
    );
    expect(await keys(mock)).toEqual(['keep-1', 'keep-2']);
    expectRefused(await curl(`${mock.url}/metrics`), 401, 'admin_token_required');
  });

  it('answers curl with the token; Twirp and REST never need it', async () => {
    const auth = ['-H', `Authorization: Bearer ${TOKEN}`];
    expect((await curl(...auth, `${mock.url}/_admin/entries`)).json?.totalCount).toBe(2);
    const hit = await twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', { key: 'keep-2', version: V });
    expect(hit.json).toMatchObject({ ok: true });
    const rest = await curl(
      '-H',
      'Authorization: Bearer any',
      `${mock.url}/repos/octo-org/octo-repo/actions/caches`,
    );
    expect(rest.json?.total_count).toBe(2);
    const reset = await curl('-X', 'POST', ...auth, '-H', 'X-Requested-By: curl', `${mock.url}/_admin/reset`);
    expect(reset.json).toMatchObject({ deletedEntries: 2 });
  });

  it("the UI's page and static files load without it, the UI's data does not", async () => {
    // Public paths reach the UI (or its 404 for a file it does not have) instead of a 401.
    for (const [path, status] of [
      ['/_ui', 302],
      ['/_ui/', 200],
      ['/_ui/index.html', 200],
      ['/_ui/assets/app.js', 404],
      ['/_ui/style.css', 200],
    ] as const) {
      const res = await curl(`${mock.url}${path}`);
      expect(res.status, path).toBe(status);
      expect(res.headers['x-frame-options']).toBe('DENY');
    }
    for (const path of ['/_ui/api/journal', '/_ui/events', '/_ui/journal.json']) {
      expectRefused(await curl(`${mock.url}${path}`), 401, 'admin_token_required');
    }
    // A link from another site may open the page, a cross-site script may not fetch it.
    const nav = ['-H', 'Sec-Fetch-Site: cross-site', '-H', 'Sec-Fetch-Mode: navigate'];
    expect((await curl(...nav, `${mock.url}/_ui/`)).status).toBe(200);
    expectRefused(
      await curl(
        '-H',
        'Sec-Fetch-Site: cross-site',
        '-H',
        'Sec-Fetch-Mode: no-cors',
        `${mock.url}/_ui/app.js`,
      ),
      403,
      'cross_site_request',
    );
    expectRefused(
      await curl('-X', 'POST', ...JSON_TYPE, '--data', '{}', `${mock.url}/_ui/index.html`),
      401,
      'admin_token_required',
    );
  });
});
