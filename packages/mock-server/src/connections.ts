/**
 * How the HTTP server treats connections: the three timeouts that keep idle or hostile clients from
 * holding it (headers, idle keep-alive, stalled transfers), and the drain that lets requests in flight
 * finish when the server stops.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

export interface ConnectionTimeouts {
  /**
   * Most time a client may take to send a request's headers, from its first byte (or from connecting).
   * A client that sends them a byte at a time gets 408 and its connection closed. Default 30 s.
   */
  readonly headersTimeoutMs: number;
  /**
   * An idle keep-alive connection is closed after this long. Default 100 s: longer than the idle
   * timeout of every client pool that talks to the mock (Go's 90 s, undici's 4 s, Node's agent 5 s), so
   * the client always closes first and never reuses a connection the server is closing.
   */
  readonly keepAliveTimeoutMs: number;
  /**
   * A request whose connection moves no byte either way for this long (an upload body that stalls,
   * a download nobody reads) is dropped; its partial upload is discarded as any cut upload is.
   * Default 120 s. 0 = never. There is deliberately no limit on a whole request's duration: a large
   * blob on a slow link may take as long as it needs while bytes keep moving.
   */
  readonly stallTimeoutMs: number;
}

export const DEFAULT_CONNECTION_TIMEOUTS: ConnectionTimeouts = Object.freeze({
  headersTimeoutMs: 30_000,
  keepAliveTimeoutMs: 100_000,
  stallTimeoutMs: 120_000,
});

/** Checks the timeouts, filling in defaults; throws `RangeError` on a bad value. */
export function resolveConnectionTimeouts(partial: Partial<ConnectionTimeouts> = {}): ConnectionTimeouts {
  const t = { ...DEFAULT_CONNECTION_TIMEOUTS, ...stripUndefined(partial) };
  for (const [name, value] of Object.entries(t)) {
    const min = name === 'stallTimeoutMs' ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < min) {
      throw new RangeError(`${name} must be an integer number of ms ≥ ${min} (got ${value})`);
    }
  }
  return Object.freeze(t);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The Fastify server options that carry the timeouts (Node checks the headers deadline this often). */
export function fastifyConnectionOptions(t: ConnectionTimeouts) {
  return {
    keepAliveTimeout: t.keepAliveTimeoutMs,
    // No whole-request limit (Node's own default would cut a 5 min upload): see stallTimeoutMs.
    requestTimeout: 0,
    http: {
      headersTimeout: t.headersTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(t.headersTimeoutMs / 4))),
    },
  };
}

/**
 * Arms the stall timeout on every request's socket. Node resets a keep-alive socket's timeout to 0 when
 * its next request starts, so it is set per request; after the response the keep-alive timeout applies.
 */
export function watchStalls(server: Server, stallTimeoutMs: number): void {
  if (stallTimeoutMs === 0) return;
  server.on('request', (req: IncomingMessage) => {
    req.socket.setTimeout(stallTimeoutMs);
  });
}

export interface Drainer {
  /** Requests received and not yet answered in full (or aborted). */
  readonly inFlight: number;
  /**
   * Stops accepting connections, closes idle ones, answers every later request with
   * `Connection: close`, and resolves when no request is in flight or after `graceMs`, whichever is
   * first, with how many were still running (the caller then closes them).
   */
  drain(graceMs: number): Promise<{ unfinished: number }>;
}

/** Counts the server's requests in flight, for a graceful stop. */
export function trackRequests(server: Server): Drainer {
  const active = new Set<ServerResponse>();
  let draining = false;
  let onIdle: (() => void) | undefined;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    active.add(res);
    if (draining) res.shouldKeepAlive = false;
    const { socket } = req;
    res.once('close', () => {
      active.delete(res);
      // A response that went out with keep-alive before the drain began leaves its connection idle:
      // end it (after what is still buffered) rather than wait for its keep-alive timeout.
      if (draining && !socket.destroyed) socket.end();
      if (active.size === 0) onIdle?.();
    });
  });
  return {
    get inFlight() {
      return active.size;
    },
    async drain(graceMs) {
      draining = true;
      server.close(() => undefined); // no new connections; idle ones are closed too
      for (const res of active) if (!res.headersSent) res.shouldKeepAlive = false;
      if (active.size === 0) return { unfinished: 0 };
      let timer: NodeJS.Timeout | undefined;
      try {
        await new Promise<void>((resolve) => {
          onIdle = resolve;
          timer = setTimeout(resolve, graceMs);
        });
      } finally {
        onIdle = undefined;
        clearTimeout(timer);
      }
      return { unfinished: active.size };
    },
  };
}
