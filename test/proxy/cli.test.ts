/**
 * `gha-cache-mock proxy` in front of an upstream mock (another process), judged by our CLI (`gha-cache put/get`)
 * as a real process: byte-identical results through the proxy and direct, every call in the proxy's journal,
 * upstream faults reaching the client as they happened, rewritten blob URLs bound to their original, no
 * secret in any log, event, report, metric or UI page, and `--save-entries` seeds that `serve --seed` loads.
 */
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runGhaCache } from '../client/support/gha-cache-cli.js';
import { freePort } from '../peers/support.js';
import type { MockProcess } from '../support/cli.js';
import { sha256File, writeRandomFile } from '../support/files.js';
import {
  addFault,
  clearFaults,
  type ProxyProcess,
  signaturesIn,
  spawnProxy,
  spawnUpstream,
} from './support.js';

const MiB = 1024 * 1024;

let upstream: MockProcess;
let recorder: { url: string; server: Server; bodies: string[] };
let proxy: ProxyProcess;
let work: string;
let trafficFile: string;

/** A pass-through between the proxy and the upstream that keeps every answer body (to learn the signatures). */
async function startRecorder(target: string): Promise<typeof recorder> {
  const bodies: string[] = [];
  const to = new URL(target);
  const server = createServer((req, res) => {
    const up = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => {
          if (req.url?.includes('/twirp/')) chunks.push(c);
          res.write(c);
        });
        r.on('end', () => {
          bodies.push(Buffer.concat(chunks).toString());
          res.end();
        });
        r.on('error', () => res.destroy());
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, server, bodies };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gha-proxy-cli-'));
  trafficFile = join(work, 'traffic.ndjson');
  upstream = await spawnUpstream();
  recorder = await startRecorder(upstream.url);
  proxy = await spawnProxy(`${recorder.url}/`, [
    '--traffic-log',
    trafficFile,
    '--save-entries',
    join(work, 'seed'),
  ]);
});

afterEach(async () => {
  await clearFaults(upstream.url);
});

afterAll(async () => {
  await proxy?.stop();
  recorder?.server.closeAllConnections();
  recorder?.server.close();
  await upstream?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const token = () => upstream.env.ACTIONS_RUNTIME_TOKEN!;
const viaProxy = () => ({
  ACTIONS_RESULTS_URL: proxy.env.ACTIONS_RESULTS_URL!,
  ACTIONS_RUNTIME_TOKEN: token(),
});
const direct = () => ({
  ACTIONS_RESULTS_URL: upstream.env.ACTIONS_RESULTS_URL!,
  ACTIONS_RUNTIME_TOKEN: token(),
});

async function newEvents<T>(fn: () => Promise<T>) {
  const before = (await proxy.traffic()).at(-1)?.id ?? 0;
  const result = await fn();
  // Events are recorded when each exchange ends; the last one may trail the client's exit a little.
  let events = await proxy.traffic(`after=${before}`);
  for (let i = 0; i < 50 && events.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    events = await proxy.traffic(`after=${before}`);
  }
  return { result, events };
}

/** A JSON lookup through the proxy with the upstream's token. */
async function lookup(key: string, version: string): Promise<{ ok: boolean; signed_download_url: string }> {
  const res = await fetch(
    `${proxy.url}/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token()}` },
      body: JSON.stringify({ key, restore_keys: [], version }),
    },
  );
  expect(res.status).toBe(200);
  return (await res.json()) as { ok: boolean; signed_download_url: string };
}

describe('gha-cache-mock proxy', () => {
  it('prints export lines pointing at itself, without a token it was not given', () => {
    expect(proxy.env.ACTIONS_RESULTS_URL).toBe(`${proxy.url}/`);
    expect(proxy.env.ACTIONS_CACHE_URL).toBe(`${proxy.url}/`);
    expect(proxy.env.ACTIONS_CACHE_SERVICE_V2).toBe('true');
    expect(proxy.env.ACTIONS_RUNTIME_TOKEN).toBeUndefined();
    expect(proxy.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('our CLI puts and gets through the proxy byte for byte, as direct; every call is in the journal', async () => {
    const file = join(work, 'in.bin');
    await writeRandomFile(file, 9 * MiB + 5);
    const put = await newEvents(() => runGhaCache(['put', 'cli-key', file], { env: viaProxy() }));
    expect(put.result.code, put.result.stderr).toBe(0);
    const ops = put.events.map((e) => [e.op, e.key, e.outcome, e.status]);
    expect(ops[0]).toEqual(['CreateCacheEntry', 'cli-key', 'created', 200]);
    expect(ops.at(-1)).toEqual(['FinalizeCacheEntryUpload', 'cli-key', 'committed', 200]);
    const uploads = put.events.filter((e) => e.surface === 'blob');
    expect(uploads.length).toBeGreaterThan(0);
    for (const e of uploads)
      expect([e.key, e.outcome, e.scope]).toEqual(['cli-key', 'ok', 'refs/heads/main']);
    expect(uploads.reduce((n, e) => n + (e.bytes ?? 0), 0)).toBe(9 * MiB + 5);
    expect(put.events[0]!.scopes).toEqual(['refs/heads/main']);
    expect(put.events[0]!.upstream).toBe(recorder.url);

    const got = await newEvents(() =>
      runGhaCache(['get', 'cli-key', join(work, 'via-proxy.bin')], { env: viaProxy() }),
    );
    expect(got.result.code, got.result.stderr).toBe(0);
    const lookup = got.events.find((e) => e.op === 'GetCacheEntryDownloadURL')!;
    expect([lookup.outcome, lookup.match, lookup.matchedKey]).toEqual(['hit-exact', 'exact', 'cli-key']);
    expect(got.events.filter((e) => e.op === 'GetBlob').reduce((n, e) => n + (e.bytes ?? 0), 0)).toBe(
      9 * MiB + 5,
    );
    const straight = await runGhaCache(['get', 'cli-key', join(work, 'direct.bin')], { env: direct() });
    expect(straight.code, straight.stderr).toBe(0);
    expect(await sha256File(join(work, 'via-proxy.bin'))).toBe(await sha256File(file));
    expect(await sha256File(join(work, 'direct.bin'))).toBe(await sha256File(file));
  });

  it('a miss is explained from the traffic: another version saved earlier in this run', async () => {
    const missing = await newEvents(() =>
      runGhaCache(['get', 'never-saved', join(work, 'x.bin')], { env: viaProxy() }),
    );
    expect(missing.result.code).toBe(1);
    const e = missing.events.find((x) => x.op === 'GetCacheEntryDownloadURL')!;
    expect(e.outcome).toBe('miss');
    expect(e.explanation).toMatchObject({ reason: 'no-such-key', basis: 'traffic' });
    const other = await newEvents(() => lookup('cli-key', 'a'.repeat(64)));
    expect(other.result.ok).toBe(false);
    const miss = other.events.find((x) => x.op === 'GetCacheEntryDownloadURL')!;
    expect(miss.explanation).toMatchObject({ reason: 'version-mismatch', basis: 'traffic' });
    expect(miss.reason).toMatch(/cli-key was saved earlier in this run with version/);
  });

  it('a rewritten URL reaches only its own blob on its own host, and not at all once made up', async () => {
    // The version our CLI used: from the journal.
    const version = (await proxy.traffic('op=GetCacheEntryDownloadURL')).find(
      (e) => e.outcome === 'hit-exact',
    )!.version!;
    const hit = await lookup('cli-key', version);
    expect(hit.ok).toBe(true);
    const url = new URL(hit.signed_download_url);
    expect(url.origin).toBe(proxy.url);
    expect(url.pathname).toMatch(/^\/_blob\/[\w-]{24}\/devstoreaccount1\/actions-cache\/[\w-]+$/);
    expect(url.searchParams.has('sig')).toBe(false);
    expect((await fetch(url)).status).toBe(200);
    const otherBlob = new URL(url);
    otherBlob.pathname = otherBlob.pathname.replace(/[\w-]+$/, 'another-blob');
    expect((await fetch(otherBlob)).status).toBe(403);
    const madeUp = new URL(url);
    madeUp.pathname = madeUp.pathname.replace(/^\/_blob\/[\w-]{24}/, '/_blob/AAAAAAAAAAAAAAAAAAAAAAAA');
    expect((await fetch(madeUp)).status).toBe(403);
    // A Host header cannot move it elsewhere: the target is the original URL, whatever the request says.
    const hostTrick = await fetch(url, { headers: { host: 'example.invalid' } });
    expect(hostTrick.status).toBe(200);
  });

  it('--blobs direct leaves the signed URLs untouched and records only the Twirp calls', async () => {
    const directProxy = await spawnProxy(upstream.url, ['--blobs', 'direct', '--token', 'given-token']);
    try {
      expect(directProxy.env.ACTIONS_RUNTIME_TOKEN).toBe('given-token');
      const file = join(work, 'small.bin');
      await writeRandomFile(file, 100_000);
      const env = {
        ACTIONS_RESULTS_URL: directProxy.env.ACTIONS_RESULTS_URL!,
        ACTIONS_RUNTIME_TOKEN: token(),
      };
      expect((await runGhaCache(['put', 'direct-key', file], { env })).code).toBe(0);
      const got = await runGhaCache(['get', 'direct-key', join(work, 'small-out.bin')], { env });
      expect(got.code, got.stderr).toBe(0);
      expect(await sha256File(join(work, 'small-out.bin'))).toBe(await sha256File(file));
      const events = await directProxy.traffic();
      expect(events.map((e) => e.op)).toEqual([
        'CreateCacheEntry',
        'FinalizeCacheEntryUpload',
        'GetCacheEntryDownloadURL',
      ]);
    } finally {
      await directProxy.stop();
    }
  });
});

describe('an upstream that cannot be reached', () => {
  it('gets a Twirp 502 unavailable naming the upstream (the only answer the proxy makes up), and the proxy stays up', async () => {
    const closed = await freePort();
    const lonely = await spawnProxy(`http://127.0.0.1:${closed}/`);
    try {
      const res = await fetch(
        `${lonely.url}/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token()}` },
          body: JSON.stringify({ key: 'k', version: 'v' }),
        },
      );
      expect(res.status).toBe(502);
      expect(await res.json()).toEqual({
        code: 'unavailable',
        msg: `gha-cache-mock proxy: the upstream http://127.0.0.1:${closed} could not be reached (ECONNREFUSED)`,
      });
      expect((await fetch(`${lonely.url}/healthz`)).status).toBe(200);
      expect((await lonely.traffic()).map((e) => [e.op, e.key, e.outcome, e.errorCode])).toEqual([
        ['CreateCacheEntry', 'k', 'error', 'upstream_unreachable'],
      ]);
    } finally {
      await lonely.stop();
    }
  });
});

describe('upstream faults reach the client as they happened', () => {
  /** Runs `gha-cache get` through the proxy and direct under the same fault rule; returns both results. */
  async function compare(rule: Parameters<typeof addFault>[1], args: string[]) {
    await addFault(upstream.url, rule);
    const p = await newEvents(() => runGhaCache(args, { env: viaProxy() }));
    await clearFaults(upstream.url);
    await addFault(upstream.url, rule);
    const d = await runGhaCache(args, { env: direct() });
    return { proxied: p.result, events: p.events, direct: d };
  }
  const strip = (s: string) =>
    s
      .replace(/\d+(\.\d+)? ?(s|ms|MiB|KiB|B)\b/g, 'N')
      .replace(/http:\/\/127\.0\.0\.1:\d+/g, 'URL')
      .replace(/injected fault f\d+/g, 'injected fault F'); // each run adds its own rule

  it('429 with Retry-After: the 429 and its Retry-After reach the client; it waits and retries like direct', async () => {
    const { proxied, events, direct } = await compare(
      {
        op: 'GetCacheEntryDownloadURL',
        key: 'cli-key',
        times: 1,
        action: { type: 'status', status: 429, retryAfterSeconds: 1 },
      },
      ['get', 'cli-key', join(work, 'f429.bin')],
    );
    expect([proxied.code, direct.code]).toEqual([0, 0]);
    const lookups = events.filter((e) => e.op === 'GetCacheEntryDownloadURL');
    expect(lookups.map((e) => [e.status, e.outcome])).toEqual([
      [429, 'rate-limited'],
      [200, 'hit-exact'],
    ]);
  });

  it('500 on every lookup: the client gives up the same way', async () => {
    const { proxied, events, direct } = await compare(
      { op: 'GetCacheEntryDownloadURL', action: { type: 'status', status: 500 } },
      ['get', 'cli-key', join(work, 'f500.bin'), '--attempts', '1'],
    );
    expect(proxied.code).toBe(3);
    expect(proxied.code).toBe(direct.code);
    expect(strip(proxied.stderr)).toBe(strip(direct.stderr));
    // Only this call's lookups: an event of the test before may still land after `before` was read.
    const lookups = events.filter((e) => e.op === 'GetCacheEntryDownloadURL');
    expect(lookups.map((e) => [e.status, e.outcome])).toEqual([[500, 'error']]);
  });

  it('a non-JSON body passes through unchanged', async () => {
    await addFault(upstream.url, { op: 'GetCacheEntryDownloadURL', action: { type: 'non-json' } });
    const call = (base: string) =>
      fetch(`${base}/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token()}` },
        body: JSON.stringify({ key: 'cli-key', restore_keys: [], version: 'v' }),
      });
    const [viaP, viaD] = [await call(proxy.url), await call(upstream.url)];
    expect(viaP.status).toBe(viaD.status);
    expect(viaP.headers.get('content-type')).toBe(viaD.headers.get('content-type'));
    expect(await viaP.text()).toBe(await viaD.text());
  });

  it('a dropped Twirp connection drops the client connection too (no answer is made up)', async () => {
    const call = (base: string) =>
      fetch(`${base}/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token()}` },
        body: JSON.stringify({ key: 'cli-key', restore_keys: [], version: 'v' }),
      })
        // A Twirp client reads the whole answer: what it sees is whether that worked.
        .then(async (res) => `answered ${res.status} ${await res.text()}`)
        .catch(() => 'dropped');
    const rule = {
      op: 'GetCacheEntryDownloadURL' as const,
      action: { type: 'drop' as const, afterBytes: 0 },
    };
    await addFault(upstream.url, rule);
    const before = (await proxy.traffic()).at(-1)?.id ?? 0;
    expect([await call(proxy.url), await call(upstream.url)]).toEqual(['dropped', 'dropped']);
    const events = await proxy.traffic(`after=${before}`);
    expect(events.map((e) => [e.op, e.outcome, e.errorCode])).toEqual([
      ['GetCacheEntryDownloadURL', 'error', 'connection_dropped'],
    ]);
  });

  it('a dropped blob connection drops the client too; it resumes like direct', async () => {
    const { proxied, events, direct } = await compare(
      { op: 'GetBlob', key: 'cli-key', times: 1, action: { type: 'drop', afterBytes: 2 * MiB } },
      ['get', 'cli-key', join(work, 'fdrop.bin')],
    );
    expect([proxied.code, direct.code]).toEqual([0, 0]);
    expect(await sha256File(join(work, 'fdrop.bin'))).toBe(await sha256File(join(work, 'in.bin')));
    expect(events.some((e) => e.op === 'GetBlob' && e.errorCode === 'connection_dropped')).toBe(true);
  });

  it('an expired URL: the 403 passes through and the client reloads it like direct', async () => {
    const { proxied, events, direct } = await compare(
      { op: 'GetBlob', key: 'cli-key', nth: 1, action: { type: 'expire-url' } },
      ['get', 'cli-key', join(work, 'fexp.bin')],
    );
    expect([proxied.code, direct.code]).toEqual([0, 0]);
    const blobs = events.filter((e) => e.op === 'GetBlob' || e.op === 'GetBlobProperties');
    expect(blobs.some((e) => e.status === 403 && e.errorCode === 'AuthenticationFailed')).toBe(true);
    expect(events.filter((e) => e.op === 'GetCacheEntryDownloadURL').length).toBeGreaterThanOrEqual(2);
  });
});

describe('secrets', () => {
  it('neither the token nor any sig= value appears in the log, traffic file, report, metrics or UI pages', async () => {
    const sigs = recorder.bodies.flatMap((b) => signaturesIn(b));
    expect(sigs.length).toBeGreaterThan(3);
    const pages: string[] = [proxy.stderr(), proxy.stdout(), await readFile(trafficFile, 'utf8')];
    for (const path of ['/_admin/traffic', '/_admin/summary', '/_admin/report', '/metrics', '/_ui/']) {
      const res = await fetch(`${proxy.url}${path}`);
      expect(res.status, path).toBe(200);
      pages.push(await res.text());
    }
    const index = pages.at(-1)!;
    for (const m of index.matchAll(
      /(?:src|href)="\/?_ui\/([\w.-]+)"|(?:src|href)="([\w.-]+\.(?:js|css))"/g,
    )) {
      pages.push(await (await fetch(`${proxy.url}/_ui/${m[1] ?? m[2]}`)).text());
    }
    const stream = await fetch(`${proxy.url}/_admin/traffic`, { headers: { accept: 'text/event-stream' } });
    const reader = stream.body!.getReader();
    const { value } = await reader.read();
    await reader.cancel();
    pages.push(Buffer.from(value ?? new Uint8Array()).toString());
    const all = pages.join('\n');
    expect(all).toContain('cli-key');
    expect(all.includes(token())).toBe(false);
    expect(all.includes(token().split('.')[2]!)).toBe(false);
    for (const sig of sigs) {
      expect(all.includes(sig), `sig ${sig}`).toBe(false);
      expect(all.includes(decodeURIComponent(sig)), `sig ${sig}`).toBe(false);
    }
  });
});

describe("the proxy's own pages", () => {
  /** A GET with exactly these headers (node:http sends the Host given). */
  const get = (path: string, headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const u = new URL(proxy.url);
      const req = httpRequest({ host: u.hostname, port: u.port, path, headers }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });

  it("are guarded like the mock's (a rebinding Host, a foreign Origin), while forwarded paths answer any Host", async () => {
    expect(await get('/_admin/traffic', { host: 'attacker.example' })).toBe(421);
    expect(
      await get('/_admin/traffic', { host: new URL(proxy.url).host, origin: 'http://attacker.example' }),
    ).toBe(403);
    expect(await get('/_admin/traffic', { host: new URL(proxy.url).host })).toBe(200);
    expect(await get('/_admin/entries', { host: new URL(proxy.url).host })).toBe(404);
    // A Twirp path is the upstream's: the proxy forwards it whatever the Host (here the upstream's 404 for GET).
    expect(
      await get('/twirp/github.actions.results.api.v1.CacheService/Nope', { host: 'any.example' }),
    ).not.toBe(421);
  });
});

describe('--save-entries then serve --seed', () => {
  it('what went through the proxy is served by a seeded local mock', async () => {
    const manifest = JSON.parse(await readFile(join(work, 'seed', 'manifest.json'), 'utf8')) as {
      entries: { key: string; version: string; scope?: string; file: string }[];
    };
    expect(manifest.entries.map((e) => [e.key, e.scope])).toContainEqual(['cli-key', 'refs/heads/main']);
    const local = await spawnUpstream(['--seed', join(work, 'seed')]);
    try {
      const got = await runGhaCache(['get', 'cli-key', join(work, 'seeded.bin')], {
        env: {
          ACTIONS_RESULTS_URL: local.env.ACTIONS_RESULTS_URL!,
          ACTIONS_RUNTIME_TOKEN: local.env.ACTIONS_RUNTIME_TOKEN!,
        },
      });
      expect(got.code, got.stderr).toBe(0);
      expect(await sha256File(join(work, 'seeded.bin'))).toBe(await sha256File(join(work, 'in.bin')));
    } finally {
      await local.stop();
    }
  });
});
