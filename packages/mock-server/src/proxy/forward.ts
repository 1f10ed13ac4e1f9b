/**
 * One upstream HTTP exchange, with node:http(s) so bodies stream both ways with back-pressure and nothing
 * is buffered whole. No retry anywhere: each client owns its retries, and the proxy must show the
 * upstream's answers (and failures) as they happened.
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { type Pump, pump } from './pump.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and those the proxy's own connection owns. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  // Node's server already answered `100 Continue` to the client; the upstream gets the body at once.
  'expect',
]);

/** Raw header pairs (`[name, value, name, value, …]`, names as sent) minus hop-by-hop ones. */
export function endToEndHeaders(raw: readonly string[], extraDrop: readonly string[] = []): string[] {
  const drop = new Set([...extraDrop.map((h) => h.toLowerCase())]);
  const connectionListed = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') {
      for (const token of raw[i + 1]!.split(',')) connectionListed.add(token.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || connectionListed.has(name) || drop.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** Replaces (or adds) one header in raw pairs. */
export function setRawHeader(raw: string[], name: string, value: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() !== lower) out.push(raw[i]!, raw[i + 1]!);
  out.push(name, value);
  return out;
}

export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface Upstream {
  /**
   * Sends a request; the returned promise settles with the response head (the body streams after). A
   * stream body is pumped into the request (`onBody` gets the pump, which counts its bytes).
   */
  send(
    url: URL,
    method: string,
    headers: readonly string[],
    body: Buffer | Readable | undefined,
    signal: AbortSignal,
    onBody?: (pump: Pump) => void,
  ): Promise<IncomingMessage>;
  close(): void;
}

/** Why an upstream exchange failed: `connect` (nothing was sent) or `dropped` (sent, then cut). */
export class UpstreamError extends Error {
  constructor(
    readonly phase: 'connect' | 'dropped',
    readonly causeCode: string,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'SELF_SIGNED_CERT_IN_CHAIN',
]);

export function createUpstream(): Upstream {
  const agents = {
    'http:': new HttpAgent({ keepAlive: true, scheduling: 'lifo' }),
    'https:': new HttpsAgent({ keepAlive: true, scheduling: 'lifo' }),
  };
  return {
    send(url, method, headers, body, signal, onBody) {
      return new Promise((resolve, reject) => {
        const isHttps = url.protocol === 'https:';
        const req = (isHttps ? httpsRequest : httpRequest)(url, {
          method,
          agent: isHttps ? agents['https:'] : agents['http:'],
          headers: setRawHeader([...headers], 'Host', url.host) as unknown as Record<string, string>,
          signal,
        });
        let responded = false;
        let sentHead = false;
        req.on('socket', (socket) => {
          const connected = () => {
            sentHead = true;
          };
          if ((socket as { connecting?: boolean }).connecting) socket.once('connect', connected);
          else connected();
        });
        req.on('response', (res) => {
          responded = true;
          resolve(res);
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (responded) return;
          const code = err.code ?? err.name;
          const phase = !sentHead && CONNECT_CODES.has(code) ? 'connect' : 'dropped';
          reject(new UpstreamError(phase, code, `${url.origin}: ${err.message}`));
        });
        if (body === undefined) req.end();
        else if (Buffer.isBuffer(body)) req.end(body);
        else {
          body.on('error', (err) => req.destroy(err));
          // As `pipe()`: a failed request stops the pump; the body's owner decides about the client.
          const pumped = pump(body, req, { destroySource: false });
          pumped.done.catch(() => undefined);
          onBody?.(pumped);
        }
      });
    },
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}
