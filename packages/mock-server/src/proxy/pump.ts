/**
 * Moves a body from one stream to another with back-pressure in large steps, counting the bytes on the way.
 *
 * `stream.pipe()` / `pipeline()` pause the source as soon as one write returns false, that is as soon as
 * 16 KiB wait in the destination: on a busy machine that is nearly every 64 KiB socket read, so each chunk
 * costs a pause, a resume and the socket's read stop / start. The pump keeps writing until `limit` bytes
 * wait (`limit` per transfer in flight is all the memory it holds) and resumes when they have drained, so
 * the source is paused once per `limit` bytes at most, and no second `data` listener is needed to count.
 *
 * It also corks the destination while chunks arrive in one turn of the event loop (libuv reads a busy
 * socket up to 32 times in a row), so they leave in one `writev` (one write request, one system call)
 * instead of one each, up to `batch` bytes at a time.
 */
import type { Readable, Writable } from 'node:stream';

/** Bytes a pump lets wait in its destination before it pauses the source. */
export const PUMP_LIMIT = 1024 * 1024;
/** Bytes a pump gathers (corked) before it writes them in one go. */
export const PUMP_BATCH = 512 * 1024;

export interface Pump {
  /** Bytes read from the source so far. */
  readonly bytes: number;
  /** Settles when the source ended and the destination finished (`end: true`) or took the last chunk. */
  readonly done: Promise<void>;
}

export interface PumpOptions {
  /** Bytes waiting in the destination before the source is paused. Default `PUMP_LIMIT`. */
  readonly limit?: number;
  /** Bytes gathered at most before one write; 0 writes each chunk alone. Default `PUMP_BATCH`. */
  readonly batch?: number;
  /**
   * Whether a broken destination destroys the source too (as `pipeline()`), default true. `false` only
   * stops pumping (as `pipe()`): the source's owner decides.
   */
  readonly destroySource?: boolean;
}

const premature = (what: string) =>
  Object.assign(new Error(`${what} closed before the body ended`), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

/**
 * Pumps `src` into `dst` and ends `dst` after the last chunk. Either side breaking (an error, or a close
 * before the end) rejects `done` and destroys `dst` (and `src`, unless `destroySource: false`).
 */
export function pump(src: Readable, dst: Writable, options: PumpOptions = {}): Pump {
  const limit = options.limit ?? PUMP_LIMIT;
  const destroySource = options.destroySource ?? true;
  const batch = options.batch ?? PUMP_BATCH;
  const state = { bytes: 0 };
  let ended = false;
  let corked = 0;
  const flush = () => {
    if (corked === 0) return;
    corked = 0;
    if (!dst.destroyed) dst.uncork();
  };
  const done = new Promise<void>((resolve, reject) => {
    let settled = false;
    const cleanup = () => {
      src.off('data', onData);
      src.off('end', onEnd);
      src.off('error', onSrcError);
      src.off('close', onSrcClose);
      dst.off('drain', onDrain);
      dst.off('finish', onFinish);
      dst.off('error', onDstError);
      dst.off('close', onDstClose);
    };
    const fail = (err: Error, fromDst: boolean) => {
      if (settled) return;
      settled = true;
      cleanup();
      corked = 0;
      if (!fromDst || destroySource) src.destroy();
      dst.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      state.bytes += chunk.length;
      if (batch > 0) {
        if (corked === 0) {
          dst.cork();
          setImmediate(flush);
        }
        corked += chunk.length;
      }
      dst.write(chunk);
      if (batch > 0 && corked >= batch) flush();
      if (dst.writableLength >= limit) {
        flush();
        src.pause();
      }
    };
    const onDrain = () => {
      if (src.isPaused()) src.resume();
    };
    const onEnd = () => {
      ended = true;
      flush();
      dst.end();
    };
    const onFinish = () => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve();
    };
    const onSrcError = (err: Error) => fail(err, false);
    const onSrcClose = () => {
      if (!ended) fail(premature('the source'), false);
    };
    const onDstError = (err: Error) => fail(err, true);
    const onDstClose = () => fail(premature('the destination'), true);
    src.on('data', onData);
    src.on('end', onEnd);
    src.on('error', onSrcError);
    src.on('close', onSrcClose);
    dst.on('drain', onDrain);
    dst.on('finish', onFinish);
    dst.on('error', onDstError);
    dst.on('close', onDstClose);
    if (src.readableEnded) onEnd();
    else if (src.destroyed) onSrcClose();
  });
  return {
    get bytes() {
      return state.bytes;
    },
    done,
  };
}
