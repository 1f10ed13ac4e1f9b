/** The few answers the proxy gives itself (no upstream exchange happened), and body reading with a limit. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Reads a whole (small) body; rejects past `limit` bytes or when the stream breaks. */
export function readAll(stream: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        stream.destroy();
        reject(new RangeError(`body larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('aborted', () => reject(new Error('aborted')));
    stream.on('error', reject);
    stream.on('close', () => {
      if (!stream.complete) reject(new Error('connection closed before the body ended'));
    });
  });
}

export function sendTwirpJson(res: ServerResponse, status: number, code: string, msg: string): void {
  const body = JSON.stringify({ code, msg });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const xml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

export function sendAzureXml(res: ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${xml(code)}</Code><Message>${xml(message)}</Message></Error>`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(body),
    'x-ms-error-code': code,
    'x-ms-request-id': crypto.randomUUID(),
    'x-ms-version': '2024-11-04',
  });
  res.end(body);
}
