/**
 * The admin API over a real socket, as the README's curl examples use it: seed a streamed body, find it
 * with a real lookup and download it byte for byte, inspect, advance the clock, change policies, add a
 * fault rule, reset.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { type MockServer, startMockServer } from '@gha-cache/mock-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { twirp } from '../support/twirp.js';

const V = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';
const MiB = 1024 * 1024;
let mock: MockServer;

beforeAll(async () => {
  mock = await startMockServer({ storage: 'memory' });
});
afterAll(async () => {
  await mock?.close();
});

async function admin(method: string, path: string, body?: unknown) {
  const res = await fetch(new URL(`/_admin/${path}`, mock.url), {
    method,
    // A POST without a JSON body (reset) says it is no form post from a web page.
    ...(body === undefined
      ? { headers: { 'x-requested-by': 'test' } }
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    json: text ? JSON.parse(text) : undefined,
  };
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('admin API over a socket', () => {
  it('seeds a streamed 5 MiB body that a lookup finds and the blob URL serves byte for byte', async () => {
    const content = randomBytes(5 * MiB);
    const chunks = [content.subarray(0, 2 * MiB), content.subarray(2 * MiB)];
    const res = await fetch(
      new URL(`/_admin/entries?${new URLSearchParams({ key: 'warm-1', version: V })}`, mock.url),
      {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(content.length) },
        body: new ReadableStream({
          pull(controller) {
            const next = chunks.shift();
            if (next) controller.enqueue(next);
            else controller.close();
          },
        }),
        duplex: 'half',
      } as RequestInit,
    );
    expect(res.status).toBe(201);
    const entry = (await res.json()) as { id: number; sizeBytes: number; state: string };
    expect(entry).toMatchObject({ sizeBytes: 5 * MiB, state: 'committed' });

    const hit = await twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', { key: 'warm-', version: V });
    expect(hit.json).toMatchObject({ ok: true, matched_key: 'warm-1' });
    const blob = new Uint8Array(await (await fetch(hit.json.signed_download_url as string)).arrayBuffer());
    expect(sha256(blob)).toBe(sha256(content));

    const inspected = await admin('GET', `entries/${entry.id}`);
    expect(inspected.type).toMatch(/^application\/json/);
    expect(inspected.json).toMatchObject({ key: 'warm-1', blob: { sizeBytes: 5 * MiB } });
    expect(inspected.json.lastAccessedAt).not.toBeNull();
  });

  it('a refused seed (409, 404) still answers its JSON error over the socket, body unread', async () => {
    const body = randomBytes(300_000);
    const post = (query: string) =>
      fetch(new URL(`/_admin/entries?${query}`, mock.url), {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body,
      });
    expect((await post(`key=dup&version=${V}`)).status).toBe(201);
    const conflict = await post(`key=dup&version=${V}`);
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({ code: 'already_exists' });
    const unknown = await post(`key=dup&version=${V}&repository=no/such`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ code: 'not_found', msg: 'unknown repository "no/such"' });
    expect((await admin('GET', 'entries?key=dup')).json.totalCount).toBe(1);
  });

  it('a body cut short of its Content-Length leaves nothing behind', async () => {
    const { hostname, port } = new URL(mock.url);
    const socket = connect(Number(port), hostname);
    await once(socket, 'connect');
    // Send the head and 3 of 10 body bytes, then drop the connection.
    const request =
      `POST /_admin/entries?key=short&version=${V} HTTP/1.1\r\nHost: ${hostname}\r\n` +
      'Content-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\nabc';
    await new Promise<void>((resolve) => socket.write(request, () => resolve()));
    await expect
      .poll(async () => (await mock.storage.metadata.listEntries()).some((e) => e.key === 'short'), {
        timeout: 30_000,
      })
      .toBe(true);
    socket.destroy();
    await expect
      .poll(async () => (await admin('GET', 'entries?key=short')).json.entries, { timeout: 30_000 })
      .toEqual([]);
    expect((await mock.storage.metadata.listEntries()).filter((e) => e.key === 'short')).toEqual([]);
  });

  it('clock, policies, faults and reset', async () => {
    const clock = await admin('POST', 'clock/advance', { by: '1h' });
    expect(clock.json.offsetMs).toBe(3_600_000);
    expect((await admin('PATCH', 'policies', { rateLimitPerMinute: 1 })).json.rateLimitPerMinute).toBe(1);
    const rule = await admin('POST', 'faults', {
      op: 'CreateCacheEntry',
      action: { type: 'status', status: 500 },
    });
    expect(rule.status).toBe(201);
    const failed = await twirp(mock.url, mock.token, 'CreateCacheEntry', { key: 'x', version: V });
    expect(failed.status).toBe(500);
    expect((await admin('GET', 'faults')).json.rules).toMatchObject([{ id: rule.json.id, fired: 1 }]);

    const reset = await admin('POST', 'reset');
    expect(reset.json).toEqual({ deletedEntries: 2, removedFaults: 1 });
    expect((await admin('GET', 'entries')).json).toEqual({ totalCount: 0, entries: [] });
    const created = await twirp(mock.url, mock.token, 'CreateCacheEntry', { key: 'x', version: V });
    expect(created.json.ok).toBe(true);
    const limited = await twirp(mock.url, mock.token, 'CreateCacheEntry', { key: 'y', version: V });
    expect(limited.status).toBe(429);
  });
});
