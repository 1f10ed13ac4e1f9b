/**
 * Connection floods and slow clients: 1,000 idle keep-alive connections and a few clients sending their
 * headers a byte at a time do not keep the server from answering others; slow headers get 408 and
 * are closed at the headers timeout; a stalled body is dropped at the stall timeout while a slow
 * body that keeps moving is not; an idle keep-alive connection is closed at its timeout.
 */
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMock, type TestMock } from '../support/mock.js';
import { twirp } from '../support/twirp.js';

const VERSION = 'connections-test-version';
let mock: TestMock;
let port: number;

beforeAll(async () => {
  mock = await startTestMock({
    timeouts: { headersTimeoutMs: 2000, keepAliveTimeoutMs: 60_000, stallTimeoutMs: 3000 },
  });
  port = Number(new URL(mock.url).port);
  await mock.seed({ key: 'hit', version: VERSION, content: 'hello' });
});
afterAll(async () => {
  await mock?.dispose();
});

async function open(): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

/** Waits until `socket` is closed by the server (polls its state; generous bound). */
async function closedByServer(socket: Socket, timeoutMs = 30_000): Promise<boolean> {
  if (socket.destroyed || socket.readableEnded) return true;
  const closed = new Promise<boolean>((resolve) => {
    socket.once('close', () => resolve(true));
    socket.once('end', () => resolve(true));
  });
  const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
  return Promise.race([closed, timer]);
}

const collect = (socket: Socket) => {
  let text = '';
  socket.on('data', (d: Buffer) => {
    text += d.toString('latin1');
  });
  socket.on('error', () => undefined);
  return () => text;
};

const lookup = () =>
  twirp(mock.url, mock.token, 'GetCacheEntryDownloadURL', { key: 'hit', version: VERSION });

describe('connections', () => {
  it('1,000 idle keep-alive connections and byte-at-a-time headers do not stop others being answered', async () => {
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < 1000; i++) {
        const s = await open();
        const text = collect(s);
        s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        idle.push(s);
        (s as Socket & { text?: () => string }).text = text;
      }
      // Every one got its answer and stays open, idle, with keep-alive.
      for (const s of idle) {
        const text = (s as Socket & { text: () => string }).text;
        for (let t = Date.now(); !text().includes('{"status":"ok"}') && Date.now() - t < 30_000; ) {
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(text()).toMatch(/^HTTP\/1\.1 200 /);
        expect(text()).toMatch(/keep-alive: timeout=60/i);
      }

      // Five slow clients, one header byte every 100 ms, for longer than the headers timeout.
      const slow = await Promise.all(Array.from({ length: 5 }, open));
      const slowText = slow.map(collect);
      const header = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'a'.repeat(1000)}`;
      let i = 0;
      const dribble = setInterval(() => {
        for (const s of slow) if (!s.destroyed) s.write(header[i % header.length]!);
        i++;
      }, 100);
      try {
        const latencies: number[] = [];
        for (let k = 0; k < 50; k++) {
          const t = performance.now();
          const res = await lookup();
          latencies.push(performance.now() - t);
          expect(res.json.ok).toBe(true);
        }
        latencies.sort((a, b) => a - b);
        console.log(
          `[connections] 1000 idle + 5 slow: lookup p50 ${latencies[25]!.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`,
        );
        // Generous: a loaded 2-core machine must not break it; a blocked server would take seconds.
        expect(latencies[25]).toBeLessThan(1000);
        // The slow clients are answered 408 and closed once the headers timeout passes.
        for (const [j, s] of slow.entries()) {
          expect(await closedByServer(s)).toBe(true);
          expect(slowText[j]!()).toMatch(/^HTTP\/1\.1 408 /);
        }
      } finally {
        clearInterval(dribble);
        for (const s of slow) s.destroy();
      }
      // The idle connections were left alone (their keep-alive timeout is a minute).
      expect(idle.filter((s) => s.destroyed || s.readableEnded)).toHaveLength(0);
      // … and still serve a request.
      const again = idle[0]!;
      const before = (again as Socket & { text: () => string }).text().length;
      again.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      for (let t = Date.now(); (again as Socket & { text: () => string }).text().length === before; ) {
        if (Date.now() - t > 30_000) throw new Error('no answer on a reused idle connection');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      for (const s of idle) s.destroy();
    }
  });

  it('a stalled upload body is dropped at the stall timeout and leaves no staged data; a slow moving one is not', async () => {
    const stagingBefore = await readdir(join(mock.dataDir, 'staging')).catch(() => []);
    const created = await twirp(mock.url, mock.token, 'CreateCacheEntry', {
      key: 'stalled',
      version: VERSION,
    });
    const url = new URL(created.json.signed_upload_url as string);
    const put = (length: number) =>
      `PUT ${url.pathname}${url.search} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-ms-blob-type: BlockBlob\r\n` +
      `Content-Length: ${length}\r\n\r\n`;

    const stalled = await open();
    collect(stalled);
    stalled.write(put(1 << 20));
    stalled.write(Buffer.alloc(1000, 1));
    expect(await closedByServer(stalled)).toBe(true);
    for (let t = Date.now(); Date.now() - t < 30_000; await new Promise((r) => setTimeout(r, 100))) {
      if ((await readdir(join(mock.dataDir, 'tmp')).catch(() => [])).length === 0) break;
    }
    expect(await readdir(join(mock.dataDir, 'tmp')).catch(() => [])).toEqual([]);
    expect(await readdir(join(mock.dataDir, 'staging')).catch(() => [])).toEqual(stagingBefore);

    // 20 chunks 250 ms apart: 5 s in all, longer than the stall timeout, but never idle that long.
    const slow = await open();
    const text = collect(slow);
    slow.write(put(20 * 100));
    for (let k = 0; k < 20; k++) {
      slow.write(Buffer.alloc(100, k));
      await new Promise((r) => setTimeout(r, 250));
    }
    for (let t = Date.now(); !text().includes('\r\n\r\n') && Date.now() - t < 30_000; ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(text()).toMatch(/^HTTP\/1\.1 201 /);
    slow.destroy();
    const fin = await twirp(mock.url, mock.token, 'FinalizeCacheEntryUpload', {
      key: 'stalled',
      version: VERSION,
      size_bytes: '2000',
    });
    expect(fin.json.ok, JSON.stringify(fin.json)).toBe(true);
  });

  it('an idle keep-alive connection is closed at the keep-alive timeout', async () => {
    const short = await startTestMock({ timeouts: { keepAliveTimeoutMs: 500 } });
    try {
      const s = connect(Number(new URL(short.url).port), '127.0.0.1');
      await once(s, 'connect');
      const text = collect(s);
      s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      expect(await closedByServer(s)).toBe(true);
      expect(text()).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      await short.dispose();
    }
  });
});
