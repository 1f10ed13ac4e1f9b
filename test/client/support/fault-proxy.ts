/**
 * A loopback HTTP proxy in front of a real service that records requests and can cut a response's
 * connection after N body bytes (a dropped connection mid-range), cut a request's connection after N
 * body bytes (a dropped upload), slow request bodies down, or answer with a canned status.
 * For Azurite, which has no fault seam; against the mock prefer its own fault rules (`mock.faults`).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

interface Rule {
  match: (req: SeenRequest) => boolean;
  remaining: number;
  action:
    | { dropAfterBytes: number }
    | { cutRequestAfterBytes: number }
    | { requestBytesPerSecond: number }
    | { status: number; body: string; headers?: Record<string, string> };
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT` */
  origin: string;
  requests: SeenRequest[];
  /** Cuts the connection after `bytes` response-body bytes for the next `times` matching requests. */
  dropAfter(match: (req: SeenRequest) => boolean, bytes: number, times?: number): void;
  /** Cuts the connection after `bytes` request-body bytes (an upload dropped mid-body). */
  cutRequestAfter(match: (req: SeenRequest) => boolean, bytes: number, times?: number): void;
  /** Forwards the request bodies of the next `times` matching requests at `bytesPerSecond`. */
  slowRequests(match: (req: SeenRequest) => boolean, bytesPerSecond: number, times?: number): void;
  /** Answers the next `times` matching requests with `status` instead of forwarding them. */
  respond(
    match: (req: SeenRequest) => boolean,
    status: number,
    body?: string,
    times?: number,
    headers?: Record<string, string>,
  ): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const requests: SeenRequest[] = [];
  const rules: Rule[] = [];
  const server: Server = createServer((req, res) => {
    const seen: SeenRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    requests.push(seen);
    const rule = rules.find((r) => r.remaining > 0 && r.match(seen));
    if (rule) rule.remaining -= 1;
    if (rule && 'status' in rule.action) {
      const { status, body, headers } = rule.action;
      req.resume();
      req.on('end', () => {
        res.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers });
        res.end(body);
      });
      return;
    }
    const up = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (rule && 'dropAfterBytes' in rule.action) {
          let left = rule.action.dropAfterBytes;
          upRes.on('data', (chunk: Buffer) => {
            if (left <= 0) return;
            if (chunk.length >= left) {
              res.write(chunk.subarray(0, left), () => res.socket?.destroy());
              left = 0;
              upRes.destroy();
              return;
            }
            left -= chunk.length;
            res.write(chunk);
          });
          upRes.on('end', () => res.end());
          return;
        }
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    if (rule && 'cutRequestAfterBytes' in rule.action) {
      let left = rule.action.cutRequestAfterBytes;
      req.on('data', (chunk: Buffer) => {
        left -= chunk.length;
        if (left <= 0) {
          req.socket.destroy();
          up.destroy();
        }
      });
    }
    if (rule && 'requestBytesPerSecond' in rule.action) {
      const rate = rule.action.requestBytesPerSecond;
      const slow = new Transform({
        transform(chunk: Buffer, _enc, done) {
          setTimeout(() => done(null, chunk), (chunk.length / rate) * 1000);
        },
      });
      req.pipe(slow).pipe(up);
    } else {
      req.pipe(up);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    dropAfter(match, bytes, times = 1) {
      rules.push({ match, remaining: times, action: { dropAfterBytes: bytes } });
    },
    cutRequestAfter(match, bytes, times = 1) {
      rules.push({ match, remaining: times, action: { cutRequestAfterBytes: bytes } });
    },
    slowRequests(match, bytesPerSecond, times = 1) {
      rules.push({ match, remaining: times, action: { requestBytesPerSecond: bytesPerSecond } });
    },
    respond(match, status, body = '', times = 1, headers) {
      rules.push({ match, remaining: times, action: { status, body, ...(headers ? { headers } : {}) } });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
