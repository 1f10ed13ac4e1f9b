import { createWriteStream, type WriteStream } from 'node:fs';
import type { ExchangeEvent } from '../http/trace.js';

export interface TraceWriter {
  write(e: ExchangeEvent): void;
  close(): Promise<void>;
}

/** `--trace FILE`: one NDJSON line per HTTP exchange (signatures redacted by the retry interceptor). */
export function createTraceWriter(file: string): TraceWriter {
  const stream: WriteStream = createWriteStream(file, { flags: 'w' });
  return {
    write(e) {
      stream.write(
        `${JSON.stringify({
          ts: new Date(e.startedAt).toISOString(),
          op: e.label,
          method: e.method,
          url: e.url,
          status: e.status ?? null,
          error: e.error ?? null,
          attempts: e.attempts,
          retries: e.retries,
          requestBytes: e.requestBytes,
          responseBytes: e.responseBytes,
          ttfbMs: e.ttfbMs ?? null,
          durationMs: e.durationMs,
        })}\n`,
      );
    },
    close: () =>
      new Promise((resolve, reject) => stream.end((err?: Error | null) => (err ? reject(err) : resolve()))),
  };
}
