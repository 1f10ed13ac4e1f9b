/**
 * No secret leaks: after a save and restore, refused signatures, oddly spelled `sig` parameters, a
 * URL the router cannot decode, admin calls with right and wrong tokens and REST calls, neither the
 * request log nor any error body contains a runtime token, a SAS signature, the admin token, the
 * REST token or a credential a client sent.
 */

import { type MockServer, startMockServer } from '@gha-cache/mock-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { twirp } from '../support/twirp.js';
import { curl } from './curl.js';

const ADMIN_TOKEN = 'admin-token-d41d8cd98f00';
const REST_TOKEN = 'rest-token-e3b0c44298fc';
const WRONG = 'wrong-credential-5a1b2c3d';
/** Every line the mock logs, at every level. */
const lines: string[] = [];
let mock: MockServer;

beforeAll(async () => {
  mock = await startMockServer({
    adminToken: ADMIN_TOKEN,
    restToken: REST_TOKEN,
    logger: { level: 'trace', stream: { write: (line: string) => lines.push(line) } },
  });
});
afterAll(async () => {
  await mock?.close();
});
const requests = () =>
  lines.map((l) => JSON.parse(l) as { msg: string; url?: string }).filter((l) => l.msg === 'request');

/** Both spellings of a signature: as it appears in the URL and decoded. */
function sigOf(url: string): string[] {
  const raw = /[?&]sig=([^&]*)/.exec(url)![1]!;
  return [raw, decodeURIComponent(raw)];
}

describe('secrets stay out of logs and error bodies', () => {
  it('after traffic on every surface, none of them appears anywhere', async () => {
    const secrets = [mock.token, ADMIN_TOKEN, REST_TOKEN, WRONG];
    const bodies: string[] = [];
    const created = await twirp(mock.url, mock.token, 'CreateCacheEntry', { key: 'leak', version: 'v' });
    const upload = created.json.signed_upload_url as string;
    secrets.push(...sigOf(upload));
    await fetch(upload, { method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' }, body: 'hello' });
    await twirp(mock.url, mock.token, 'FinalizeCacheEntryUpload', {
      key: 'leak',
      version: 'v',
      size_bytes: 5,
    });
    const hit = await twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', { key: 'leak', version: 'v' });
    const download = hit.json.signed_download_url as string;
    secrets.push(...sigOf(download));
    expect(await (await fetch(download)).text()).toBe('hello');

    const [rawSig] = sigOf(download);
    const u = new URL(download);
    const tampered = download.replace(`sig=${rawSig}`, `sig=${WRONG}`);
    const oddNames = [
      download.replace('sig=', 'SIG='),
      download.replace('sig=', '%73ig='),
      `${u.origin}${u.pathname}%zz${u.search}`,
      `${mock.url}/twirp/github.actions.results.api.v1.CacheService/%zz?sig=${rawSig}`,
      `${mock.url}/nowhere/%zz?sig=${rawSig}&token=${mock.token}`,
      `${mock.url}/_admin/entries?token=${ADMIN_TOKEN}`,
    ];
    for (const url of [tampered, ...oddNames]) bodies.push((await curl(url)).body);
    // Credentials in headers, right and wrong.
    bodies.push(
      (
        await twirp(mock.url, WRONG, 'GetCacheEntryDownloadURL', { key: 'leak', version: 'v' })
      ).status.toString(),
    );
    for (const token of [ADMIN_TOKEN, WRONG]) {
      bodies.push((await curl('-H', `Authorization: Bearer ${token}`, `${mock.url}/_admin/entries`)).body);
      bodies.push((await curl('-H', `Authorization: Bearer ${token}`, `${mock.url}/metrics`)).body);
    }
    for (const token of [REST_TOKEN, WRONG]) {
      bodies.push(
        (
          await curl(
            '-H',
            `Authorization: Bearer ${token}`,
            `${mock.url}/repos/octo-org/octo-repo/actions/caches`,
          )
        ).body,
      );
    }
    const bad = await curl(
      '-X',
      'POST',
      '-H',
      'content-type: application/json',
      '-H',
      `Authorization: Bearer ${WRONG}`,
      '--data',
      '{"key":',
      `${mock.url}/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry`,
    );
    bodies.push(bad.body);

    // A line is written once its response has gone; requests that fail to route are not logged.
    await expect.poll(() => requests().length).toBeGreaterThanOrEqual(15);
    const log = lines.join('');
    expect(log).toContain('REDACTED');
    for (const secret of secrets) {
      expect(log, 'request log').not.toContain(secret);
      for (const body of bodies) expect(body, 'error body').not.toContain(secret);
    }
    // The encoded spelling is redacted too, not only `sig=`.
    expect(requests().some((l) => l.url?.includes('%73ig=REDACTED'))).toBe(true);
  });
});
