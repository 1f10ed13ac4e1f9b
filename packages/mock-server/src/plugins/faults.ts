import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { type BodySource, shapeBody } from '../faults/body.js';
import type { FaultEngine, FaultPlan } from '../faults/engine.js';
import {
  azureFaultError,
  expiredSasError,
  nonJsonAnswer,
  type RawFaultAnswer,
  twirpFaultAnswer,
} from '../faults/responses.js';
import type { FaultOp } from '../faults/types.js';

export interface FaultsPluginOptions {
  readonly engine: FaultEngine;
  /** Route of the blob operations, e.g. `/devstoreaccount1/actions-cache/:blobId`. */
  readonly blobRoute: string;
  /** The cache key of the entry a blob belongs to, if any. */
  readonly keyOfBlob: (blobId: string) => Promise<string | undefined>;
  /** Time for the expiry detail of `expire-url` (the clock SAS expiry is checked against). */
  readonly now: () => number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** What fault rules decided for this request; `null` when none fired. */
    faultPlan: FaultPlan | null;
  }
}

function blobOp(request: FastifyRequest): FaultOp | undefined {
  switch (request.method) {
    case 'GET':
      return 'GetBlob';
    case 'HEAD':
      return 'HeadBlob';
    case 'PUT': {
      const comp = queryOf(request).get('comp');
      if (comp === null) return 'PutBlob';
      if (comp === 'block') return 'PutBlock';
      return comp === 'blocklist' ? 'PutBlockList' : undefined;
    }
    default:
      return undefined;
  }
}

function queryOf(request: FastifyRequest): URLSearchParams {
  const q = request.url.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : request.url.slice(q + 1));
}

/** The `key` of a Twirp request body (all three requests have one), if it decodes. */
function twirpKey(request: FastifyRequest): string | undefined {
  const { twirp } = request;
  if (!twirp || !Buffer.isBuffer(request.body)) return undefined;
  try {
    const message = twirp.method.decode(request.body, twirp.encoding) as { key?: unknown };
    return typeof message.key === 'string' ? message.key : undefined;
  } catch {
    return undefined;
  }
}

function sendRaw(reply: FastifyReply, answer: RawFaultAnswer): FastifyReply {
  return reply
    .code(answer.status)
    .headers(answer.headers)
    .header('content-type', answer.contentType)
    .send(Buffer.from(answer.body));
}

/**
 * Fault injection (see `faults/`): rules in `engine` act on the Twirp RPCs and blob operations.
 * Blob requests are judged at `onRequest` (their key comes from the blob id), Twirp requests at
 * `preHandler` (their key is in the body); upload bodies are shaped at `preParsing`, answers at `onSend`.
 * While no rule exists every hook returns at once, and a body is only wrapped when a rule asked for it.
 * Register after `requestLogPlugin` and before the protocol plugins.
 */
export const faultsPlugin = fp<FaultsPluginOptions>(
  async (app: FastifyInstance, { engine, blobRoute, keyOfBlob, now }) => {
    app.decorateRequest('faultPlan', null);

    /** Asks the engine, keeps the plan on the request, logs one line per rule that fired. */
    const decide = (request: FastifyRequest, op: FaultOp, keyOf: () => string | undefined) => {
      const key = engine.needsKey(op) ? keyOf() : undefined;
      const plan = engine.evaluate(op, key);
      if (!plan) return;
      request.faultPlan = plan;
      // The handler names its op in the log line; an answered request never reaches it.
      request.audit.op ??= op === 'HeadBlob' ? 'GetBlobProperties' : op;
      request.audit.fault = plan.fired.map((r) => r.id).join(',');
      for (const rule of plan.fired) {
        const fields = { fault: rule.id, action: rule.action.type, op, fired: rule.fired };
        request.log.info(key === undefined ? fields : { ...fields, key }, 'fault');
      }
    };

    app.addHook('onRequest', (request, _reply, done) => {
      if (!engine.active || request.routeOptions.url !== blobRoute) return done();
      const op = blobOp(request);
      if (op === undefined) return done();
      const proceed = (key: string | undefined) => {
        decide(request, op, () => key);
        const latencyMs = request.faultPlan?.latencyMs ?? 0;
        if (latencyMs > 0) setTimeout(done, latencyMs);
        else done();
      };
      if (!engine.needsKey(op)) return proceed(undefined);
      keyOfBlob((request.params as { blobId: string }).blobId).then(proceed, done);
    });

    app.addHook('preParsing', (request, _reply, payload, done) => {
      const shape = request.faultPlan?.request;
      if (!shape) return done(null, payload);
      // Taken now: once the body stream is cut short the request lets go of its socket.
      const { socket } = request.raw;
      done(
        null,
        shapeBody(payload, shape, () => socket.resetAndDestroy()),
      );
    });

    app.addHook('preHandler', (request, reply, done) => {
      if (request.twirp && engine.active && request.faultPlan === null) {
        decide(request, request.audit.op as FaultOp, () => twirpKey(request));
      }
      const plan = request.faultPlan;
      if (plan === null) return done();
      const answer = () => {
        if (!plan.respond) return done();
        const { action, ruleId } = plan.respond;
        if (action.type === 'non-json') return sendRaw(reply, nonJsonAnswer(action));
        if (action.type === 'expire-url') return done(expiredSasError(queryOf(request), now()));
        // Errors thrown into the blob scope get its Azure XML, request id and HEAD handling.
        if (request.twirp) return sendRaw(reply, twirpFaultAnswer(action, ruleId));
        return done(azureFaultError(action));
      };
      // Blob latency was already spent at onRequest, before the body was read.
      if (request.twirp && plan.latencyMs > 0) setTimeout(answer, plan.latencyMs);
      else answer();
    });

    app.addHook('onSend', (request, reply, payload, done) => {
      const shape = request.faultPlan?.response;
      if (
        !shape ||
        payload === null ||
        payload === undefined ||
        request.method === 'HEAD' ||
        reply.statusCode >= 300
      ) {
        return done(null, payload);
      }
      let source: BodySource;
      if (typeof payload === 'string' || Buffer.isBuffer(payload)) {
        reply.header('content-length', String(Buffer.byteLength(payload)));
        source = [payload];
      } else {
        source = payload as BodySource;
      }
      const { cut } = shape;
      if (cut?.mode === 'truncate') {
        // Node then closes the connection cleanly once the (short) body is out: the client sees EOF early.
        reply.raw.shouldKeepAlive = false;
      } else if (cut) {
        // Taken now: a finished response lets go of its socket before 'finish' listeners run.
        const { socket } = request.raw;
        reply.raw.once('finish', () => socket.resetAndDestroy());
      }
      done(null, shapeBody(source, shape));
    });
  },
  { name: 'faults', dependencies: ['request-log'] },
);
