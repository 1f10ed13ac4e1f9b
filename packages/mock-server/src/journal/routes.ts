/**
 * `GET /_admin/traffic` (the journal, filtered: `keyPrefix`, `op`, `outcome`, `client`, `since`,
 * `after`, `limit`) and `GET /_admin/traffic/stream` (the same as Server-Sent Events, live; also when
 * `/_admin/traffic` is asked with `Accept: text/event-stream`). Register with `prefix: '/_admin'`.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { queryOf } from '../plugins/query.js';
import { matchesFilter, parseTrafficFilter, type TrafficJournal } from './journal.js';
import type { TrafficEvent, TrafficFilter } from './types.js';

export interface TrafficRoutesOptions {
  readonly journal: TrafficJournal;
  /** Comment line interval that keeps idle streams open through proxies. Default 15 s. */
  readonly heartbeatMs?: number;
}

/** A stream whose client stopped reading this far behind is dropped. */
const MAX_BUFFERED = 4 * 1024 * 1024;

function badRequest(reply: FastifyReply, message: string) {
  return reply
    .code(400)
    .type('application/json')
    .send(JSON.stringify({ code: 'invalid_argument', msg: message }));
}

export const trafficRoutes: FastifyPluginAsync<TrafficRoutesOptions> = async (app, options) => {
  const { journal, heartbeatMs = 15_000 } = options;
  const streams = new Set<ServerResponse>();

  const filterOf = (request: FastifyRequest): TrafficFilter => parseTrafficFilter(queryOf(request));

  const stream = (request: FastifyRequest, reply: FastifyReply, filter: TrafficFilter) => {
    const lastEventId = request.headers['last-event-id'];
    const resumeAfter =
      typeof lastEventId === 'string' && /^\d{1,15}$/.test(lastEventId) ? Number(lastEventId) : undefined;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store',
      'x-accel-buffering': 'no',
    });
    streams.add(res);
    const send = (event: TrafficEvent) => {
      if (res.writableLength > MAX_BUFFERED) {
        res.destroy();
        return;
      }
      res.write(`id: ${event.id}\nevent: traffic\ndata: ${JSON.stringify(event)}\n\n`);
    };
    res.write(`retry: 2000\n: gha-cache-mock traffic, ring of ${journal.capacity}\n\n`);
    // The backlog first (what `after`/`Last-Event-ID` has not seen, or the newest `limit`), then live.
    const backlog =
      resumeAfter !== undefined ? { ...filter, afterId: resumeAfter } : { limit: 200, ...filter };
    for (const event of journal.query(backlog)) send(event);
    const { limit: _limit, ...live } = filter;
    const unsubscribe = journal.subscribe((event) => {
      if (matchesFilter(event, live)) send(event);
    });
    const heartbeat = setInterval(() => res.write(': ping\n\n'), heartbeatMs).unref();
    const done = () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(res);
    };
    res.on('close', done);
    request.raw.on('close', () => res.end());
  };

  app.get('/traffic', async (request, reply) => {
    let filter: TrafficFilter;
    try {
      filter = filterOf(request);
    } catch (err) {
      return badRequest(reply, (err as Error).message);
    }
    if ((request.headers.accept ?? '').includes('text/event-stream')) return stream(request, reply, filter);
    const events = journal.query(filter);
    return { capacity: journal.capacity, count: events.length, events };
  });

  app.get('/traffic/stream', async (request, reply) => {
    try {
      return stream(request, reply, filterOf(request));
    } catch (err) {
      return badRequest(reply, (err as Error).message);
    }
  });

  app.addHook('onClose', async () => {
    for (const res of streams) res.end();
    streams.clear();
  });
};
