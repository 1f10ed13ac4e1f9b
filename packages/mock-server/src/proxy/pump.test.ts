import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { pump } from './pump.js';

/** A destination that takes `delayMs` per write, keeping what it got. */
function slowSink(delayMs = 0) {
  const got: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      got.push(chunk);
      setTimeout(done, delayMs);
    },
    writev(chunks, done) {
      for (const c of chunks) got.push(c.chunk as Buffer);
      setTimeout(done, delayMs);
    },
  });
  return { sink, got };
}

describe('pump', () => {
  it('moves every byte in order, counts them and ends the destination', async () => {
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.alloc(64 * 1024, i));
    const { sink, got } = slowSink(1);
    const p = pump(Readable.from(chunks), sink, { limit: 256 * 1024, batch: 128 * 1024 });
    await p.done;
    expect(p.bytes).toBe(200 * 64 * 1024);
    expect(Buffer.concat(got).equals(Buffer.concat(chunks))).toBe(true);
    expect(sink.writableFinished).toBe(true);
  });

  it('keeps at most about `limit` bytes waiting in a slow destination', async () => {
    const src = new PassThrough();
    const { sink } = slowSink(5);
    let peak = 0;
    const p = pump(src, sink, { limit: 256 * 1024 });
    for (let i = 0; i < 40; i++) {
      if (!src.write(Buffer.alloc(64 * 1024))) await new Promise((r) => src.once('drain', r));
      peak = Math.max(peak, sink.writableLength);
    }
    src.end();
    await p.done;
    expect(peak).toBeLessThanOrEqual(256 * 1024 + 64 * 1024);
  });

  it('a broken source destroys the destination and rejects', async () => {
    const src = new PassThrough();
    const { sink } = slowSink();
    const p = pump(src, sink);
    src.write(Buffer.alloc(10));
    src.destroy(new Error('upstream dropped'));
    await expect(p.done).rejects.toThrow('upstream dropped');
    expect(sink.destroyed).toBe(true);
  });

  it('a source closed before its end is a failure too', async () => {
    const src = new PassThrough();
    const { sink } = slowSink();
    const p = pump(src, sink);
    src.destroy();
    await expect(p.done).rejects.toThrow('closed before the body ended');
    expect(sink.destroyed).toBe(true);
  });

  it('a destination gone away destroys the source, unless told to leave it to its owner', async () => {
    const a = new PassThrough();
    const da = slowSink().sink;
    const pa = pump(a, da);
    da.destroy();
    await expect(pa.done).rejects.toThrow('closed before the body ended');
    expect(a.destroyed).toBe(true);

    const b = new PassThrough();
    const db = slowSink().sink;
    const pb = pump(b, db, { destroySource: false });
    db.destroy(new Error('refused'));
    await expect(pb.done).rejects.toThrow('refused');
    expect(b.destroyed).toBe(false);
    b.destroy();
  });
});
