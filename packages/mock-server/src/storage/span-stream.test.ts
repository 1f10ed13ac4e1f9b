import { randomBytes } from 'node:crypto';
import { openSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BufferPool, SpansStream } from './span-stream.js';

describe('SpansStream', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gha-cache-spans-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** A destination that takes each chunk's bytes only when its write callback fires, a tick later. */
  const slowSink = (into: Buffer[]) =>
    new Writable({
      highWaterMark: 8,
      write(chunk: Buffer, _enc, callback) {
        setImmediate(() => {
          into.push(Buffer.from(chunk));
          callback();
        });
      },
    });

  it('pipes many streams at once through a small shared pool without mixing up reused buffers', async () => {
    const pool = new BufferPool(16, 2);
    const files = Array.from({ length: 6 }, (_, i) => {
      const content = randomBytes(1000 + i * 37);
      const path = join(dir, `f${i}`);
      writeFileSync(path, content);
      return { content, path };
    });
    const results = await Promise.all(
      files.map(async ({ content, path }, i) => {
        const fd = openSync(path, 'r');
        // Two spans out of order: [500, end) then [0, 500).
        const stream = new SpansStream(
          [
            { fd, position: 500, end: content.length },
            { fd, position: 0, end: 500 },
          ],
          [fd],
          pool,
        );
        const got: Buffer[] = [];
        const sink = slowSink(got);
        await new Promise<void>((resolve, reject) => {
          stream.pipe(sink).on('finish', resolve).on('error', reject);
          stream.on('error', reject);
        });
        return { i, got: Buffer.concat(got) };
      }),
    );
    for (const { i, got } of results) {
      const { content } = files[i]!;
      expect(got.equals(Buffer.concat([content.subarray(500), content.subarray(0, 500)]))).toBe(true);
    }
  });

  it('reports content that ends before its span as an error', async () => {
    const path = join(dir, 'short');
    writeFileSync(path, 'abc');
    const fd = openSync(path, 'r');
    const stream = new SpansStream([{ fd, position: 0, end: 10 }], [fd], new BufferPool(4, 1));
    await expect(stream.toArray()).rejects.toThrow(/ends before byte 10/);
  });
});
