import { create, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type {
  FastifyError,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
} from 'fastify';
import type { TokenAuthority, TokenIdentity } from '../auth/tokens.js';
import { isOutOfSpace, OUT_OF_SPACE_MSG, TwirpError } from '../errors.js';
import {
  CreateCacheEntryRequestSchema,
  CreateCacheEntryResponseSchema,
  FinalizeCacheEntryUploadRequestSchema,
  FinalizeCacheEntryUploadResponseSchema,
  GetCacheEntryDownloadURLRequestSchema,
  GetCacheEntryDownloadURLResponseSchema,
} from '../gen/results/api/v1/cache_pb.js';
import { StorageError } from '../storage/types.js';
import {
  type CacheServiceDeps,
  createCacheEntry,
  finalizeCacheEntryUpload,
  getCacheEntryDownloadUrl,
  type RpcAudit,
} from '../twirp/cache-service.js';
import { CONTENT_TYPES, decodeRequest, type Encoding, encodeResponse, encodingOf } from '../twirp/codec.js';

export const SERVICE_PATH = '/twirp/github.actions.results.api.v1.CacheService/';

export interface TwirpPluginOptions {
  /** Service dependencies; `publicUrl` empty = derive it from each request's Host. */
  readonly deps: CacheServiceDeps;
  readonly tokens: TokenAuthority;
  /** Largest accepted request body. Default 1 MiB. */
  readonly bodyLimitBytes?: number;
}

interface Method<Req extends DescMessage, Res extends DescMessage> {
  readonly input: Req;
  readonly output: Res;
  readonly handle: (
    deps: CacheServiceDeps,
    identity: TokenIdentity,
    req: MessageShape<Req>,
    audit: RpcAudit,
  ) => Promise<Omit<MessageShape<Res>, '$typeName' | '$unknown'>>;
}

const method = <Req extends DescMessage, Res extends DescMessage>(m: Method<Req, Res>) =>
  m as unknown as Method<DescMessage, DescMessage>;

const METHODS: Record<string, Method<DescMessage, DescMessage>> = {
  CreateCacheEntry: method({
    input: CreateCacheEntryRequestSchema,
    output: CreateCacheEntryResponseSchema,
    handle: createCacheEntry,
  }),
  FinalizeCacheEntryUpload: method({
    input: FinalizeCacheEntryUploadRequestSchema,
    output: FinalizeCacheEntryUploadResponseSchema,
    handle: finalizeCacheEntryUpload,
  }),
  GetCacheEntryDownloadURL: method({
    input: GetCacheEntryDownloadURLRequestSchema,
    output: GetCacheEntryDownloadURLResponseSchema,
    handle: getCacheEntryDownloadUrl,
  }),
};

declare module 'fastify' {
  interface FastifyRequest {
    twirp?: { method: Method<DescMessage, DescMessage>; encoding: Encoding; identity: TokenIdentity };
  }
}

export function badRoute(msg: string, request: FastifyRequest): TwirpError {
  const path = request.url.split('?')[0]!;
  return new TwirpError('bad_route', msg, { twirp_invalid_route: `${request.method} ${path}` });
}

export function sendTwirpError(reply: FastifyReply, err: TwirpError): FastifyReply {
  return reply
    .code(err.status)
    .headers(err.headers)
    .header('content-type', CONTENT_TYPES.json)
    .send(Buffer.from(JSON.stringify(err.toJSON())));
}

/** Maps anything thrown inside the Twirp scope to a Twirp error; never a framework default body. */
function toTwirpError(error: FastifyError | Error, request: FastifyRequest): TwirpError {
  if (error instanceof TwirpError) return error;
  if (error instanceof StorageError && error.code === 'Unavailable') {
    request.log.warn({ err: error }, 'storage unavailable');
    return new TwirpError('unavailable', 'the cache service is temporarily unavailable; retry later');
  }
  if (error instanceof StorageError && error.code === 'UnsupportedValue') {
    return new TwirpError('invalid_argument', error.message);
  }
  const code = (error as FastifyError).code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new TwirpError('malformed', 'the request body is too large');
  if (code?.startsWith('FST_ERR_CTP_') || (error as FastifyError).statusCode === 400) {
    const enc = request.twirp?.encoding ?? 'json';
    return new TwirpError('malformed', `the ${enc} request could not be decoded`);
  }
  request.log.error({ err: error }, 'internal error');
  if (isOutOfSpace(error)) return new TwirpError('internal', OUT_OF_SPACE_MSG);
  return new TwirpError('internal', 'internal error');
}

/**
 * The Twirp API `github.actions.results.api.v1.CacheService`: JSON and protobuf, Twirp errors,
 * routing checks in the spec's order (method, path, Content-Type, token, body).
 * Registers under its own prefix; mount it at `/` and optionally under a path prefix.
 */
export const twirpPlugin: FastifyPluginAsync<TwirpPluginOptions> = async (app: FastifyInstance, opts) => {
  const { deps, tokens, bodyLimitBytes = 1024 * 1024 } = opts;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: bodyLimitBytes }, (_req, body, done) =>
    done(null, body),
  );
  app.setErrorHandler<FastifyError>((error, request, reply) =>
    sendTwirpError(reply, toTwirpError(error, request)),
  );

  const route = `${SERVICE_PATH}:method`;
  // Routing, Content-Type and auth are checked before the body is read.
  const onRequest = async (request: FastifyRequest) => {
    if (request.method !== 'POST') {
      throw badRoute(`unsupported method "${request.method}" (only POST is allowed)`, request);
    }
    const name = (request.params as { method?: string }).method ?? '';
    const m = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
    if (!m || request.url.split('?')[0]!.endsWith('/')) {
      throw badRoute(`no handler for path "${request.url.split('?')[0]}"`, request);
    }
    const contentType = request.headers['content-type'];
    const encoding = encodingOf(contentType);
    if (!encoding) throw badRoute(`unexpected Content-Type: "${contentType ?? ''}"`, request);
    request.audit.op = name;
    request.audit.encoding = encoding;
    // Real time, not the mock's clock: clients check `exp`/`nbf` against wall time too, and an
    // advanced clock must not expire the tokens a test already holds.
    const identity = tokens.verifyAuthorization(request.headers.authorization, Date.now());
    request.twirp = { method: m, encoding, identity };
  };

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const { method: m, encoding, identity } = request.twirp!;
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (encoding === 'json' && body.length === 0)
      throw new TwirpError('malformed', 'the json request could not be decoded');
    const input = decodeRequest(m.input, body, encoding);
    // The RPC writes its facts straight into the request's audit: they are there before the answer
    // goes out (an injected request finishes synchronously), and when it throws.
    const audit = request.audit as RpcAudit;
    const requestDeps = deps.publicUrl
      ? deps
      : { ...deps, publicUrl: `${request.protocol}://${request.host}` };
    const result = await m.handle(requestDeps, identity, input, audit);
    const output = create(m.output, result as never);
    reply.code(200).header('content-type', CONTENT_TYPES[encoding]);
    return reply.send(encodeResponse(m.output, output, encoding));
  };

  app.route({
    method: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'],
    url: route,
    onRequest,
    handler,
  });
  app.route({
    method: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'],
    url: `${SERVICE_PATH}*`,
    onRequest: async (request) => {
      throw badRoute(`no handler for path "${request.url.split('?')[0]}"`, request);
    },
    handler: async () => undefined,
  });
};
