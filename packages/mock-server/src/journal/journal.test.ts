import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../testing/twirp-helpers.js';
import { type NewTrafficEvent, openJournal, parseTrafficFilter } from './journal.js';
import { Ring } from './ring.js';

const event = (n: number, extra: Partial<NewTrafficEvent> = {}): NewTrafficEvent => ({
  time: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
  op: 'GetCacheEntryDownloadURL',
  surface: 'twirp',
  client: 'buildkit',
  method: 'POST',
  url: '/twirp/x',
  key: `key-${n}`,
  outcome: 'miss',
  durationMs: 1,
  status: 200,
  ...extra,
});

let dir: string | undefined;
let t: TestApp | undefined;
afterEach(async () => {
  await t?.app.close();
  t = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('Ring', () => {
  it('keeps the newest `capacity` items, oldest first', () => {
    const ring = new Ring<number>(3);
    for (let i = 1; i <= 5; i++) ring.push(i);
    expect([...ring]).toEqual([3, 4, 5]);
    expect([...ring.newestFirst()]).toEqual([5, 4, 3]);
    expect(ring.size).toBe(3);
    expect(() => new Ring(0)).toThrow(RangeError);
  });
});

describe('journal', () => {
  it('filters by key prefix, op, outcome, client, entry, since, after and limit', async () => {
    const j = await openJournal({ capacity: 100 });
    j.record(event(1, { key: 'npm-a', client: 'actions-cache', outcome: 'hit-exact', entryId: 7 }));
    j.record(event(2, { key: 'npm-b' }));
    j.record(event(3, { key: 'index-x', op: 'CreateCacheEntry', outcome: 'created' }));
    const q = (s: string) => j.query(parseTrafficFilter(new URLSearchParams(s))).map((e) => e.id);
    expect(q('keyPrefix=npm-')).toEqual([1, 2]);
    expect(q('op=CreateCacheEntry')).toEqual([3]);
    expect(q('outcome=miss')).toEqual([2]);
    expect(q('client=actions-cache')).toEqual([1]);
    expect(q('entryId=7')).toEqual([1]);
    expect(q('since=2026-01-01T00:00:02Z')).toEqual([2, 3]);
    expect(q('after=1')).toEqual([2, 3]);
    expect(q('limit=2')).toEqual([2, 3]);
    expect(() => q('since=yesterday')).toThrow(/since/);
    expect(() => q('limit=0')).toThrow(/limit/);
    await j.close();
  });

  it('appends NDJSON to a file and loads its tail after a restart, ids continuing (a torn line is skipped)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'journal-'));
    const file = join(dir, 'sub', 'traffic.ndjson');
    const first = await openJournal({ capacity: 2, file });
    for (let i = 1; i <= 3; i++) first.record(event(i));
    await first.close();
    await writeFile(file, `${await readFile(file, 'utf8')}{"id":4,"op":"Torn`);
    const second = await openJournal({ capacity: 2, file });
    expect(second.query().map((e) => e.key)).toEqual(['key-2', 'key-3']);
    expect(second.record(event(9)).id).toBe(4);
    await second.close();
    const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ id: 4, key: 'key-9' });
  });

  it('serves /_admin/traffic with filters, refuses a bad one, and never records admin reads', async () => {
    t = await createTestApp();
    await t.get('k-1');
    await t.get('other');
    const res = await t.app.inject({ method: 'GET', url: '/_admin/traffic?keyPrefix=k-' });
    expect(res.json()).toMatchObject({ count: 1, events: [{ key: 'k-1', outcome: 'miss' }] });
    expect((await t.app.inject({ method: 'GET', url: '/_admin/traffic?after=x' })).statusCode).toBe(400);
    expect(t.app.mock.traffic.query()).toHaveLength(2);
  });

  it('streams events live over Server-Sent Events on a real socket, the backlog first', async () => {
    t = await createTestApp();
    await t.get('before');
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as { port: number };
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/_admin/traffic/stream?keyPrefix=b`, {
      signal: controller.signal,
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended: ${text}`);
        text += value;
      }
    };
    await until(/"key":"before"/);
    await t.get('ignored');
    await t.get('between');
    await until(/"key":"between"/);
    expect(text).not.toContain('"ignored"');
    expect(text).toMatch(/^id: 3\nevent: traffic\ndata: \{/m);
    controller.abort();
  });
});
