/**
 * The three RPCs of the Twirp API with their protobuf messages: the part of the Twirp plugin that
 * needs the protobuf runtime and the generated descriptors, loaded (`loadTwirpMethods`) by the
 * first Twirp request rather than at start.
 */
import { create, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type { TokenIdentity } from '../auth/tokens.js';
import {
  CreateCacheEntryRequestSchema,
  CreateCacheEntryResponseSchema,
  FinalizeCacheEntryUploadRequestSchema,
  FinalizeCacheEntryUploadResponseSchema,
  GetCacheEntryDownloadURLRequestSchema,
  GetCacheEntryDownloadURLResponseSchema,
} from '../gen/results/api/v1/cache_pb.js';
import {
  type CacheServiceDeps,
  createCacheEntry,
  finalizeCacheEntryUpload,
  getCacheEntryDownloadUrl,
  type RpcAudit,
} from '../twirp/cache-service.js';
import { decodeRequest, type Encoding, encodeResponse } from '../twirp/codec.js';

export interface Method<Req extends DescMessage, Res extends DescMessage> {
  readonly input: Req;
  readonly output: Res;
  readonly handle: (
    deps: CacheServiceDeps,
    identity: TokenIdentity,
    req: MessageShape<Req>,
    audit: RpcAudit,
  ) => Promise<Omit<MessageShape<Res>, '$typeName' | '$unknown'>>;
}

/** A method with the codec bound to its messages. */
export interface TwirpMethod extends Method<DescMessage, DescMessage> {
  /** The request body as the message (a `malformed` TwirpError if it does not decode). */
  decode(body: Buffer, encoding: Encoding): MessageShape<DescMessage>;
  /** The handler's result as the response body. */
  encode(result: unknown, encoding: Encoding): Buffer;
}

const method = <Req extends DescMessage, Res extends DescMessage>(m: Method<Req, Res>): TwirpMethod => {
  const { input, output } = m as unknown as Method<DescMessage, DescMessage>;
  return {
    ...(m as unknown as Method<DescMessage, DescMessage>),
    decode: (body, encoding) => decodeRequest(input, body, encoding),
    encode: (result, encoding) => encodeResponse(output, create(output, result as never), encoding),
  };
};

export const METHODS: Readonly<Record<string, TwirpMethod>> = {
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
