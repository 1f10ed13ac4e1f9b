import {
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  type MessageShape,
  toBinary,
  toJson,
} from '@bufbuild/protobuf';
import { TwirpError } from '../errors.js';
import type { GetResponse } from './cache-service.js';
import type { Encoding } from './encoding.js';
import { decodeGetRequestJson, encodeGetResponseJson } from './lookup-json.js';

/** The lookup, every client's most frequent call, has a direct JSON reader and writer (`lookup-json.ts`). */
const GET_REQUEST = 'github.actions.results.api.v1.GetCacheEntryDownloadURLRequest';
const GET_RESPONSE = 'github.actions.results.api.v1.GetCacheEntryDownloadURLResponse';

export { CONTENT_TYPES, type Encoding, encodingOf } from './encoding.js';

/**
 * Decodes a request as the Twirp Go runtime's protojson/proto do: proto and JSON field names,
 * int64 as number or string, null = default, unknown fields and `metadata` ignored.
 */
export function decodeRequest<Desc extends DescMessage>(
  schema: Desc,
  body: Buffer,
  encoding: Encoding,
): MessageShape<Desc> {
  if (encoding === 'json' && schema.typeName === GET_REQUEST) {
    const fast = decodeGetRequestJson(body);
    if (fast) return { $typeName: GET_REQUEST, ...fast } as unknown as MessageShape<Desc>;
  }
  try {
    if (encoding === 'protobuf') return fromBinary(schema, body);
    const json: unknown = JSON.parse(body.toString('utf8'));
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      throw new Error('not a JSON object');
    const { metadata: _ignored, ...rest } = json as Record<string, JsonValue>;
    return fromJson(schema, rest, { ignoreUnknownFields: true });
  } catch (cause) {
    const err = new TwirpError('malformed', `the ${encoding} request could not be decoded`, {
      cause: cause instanceof Error ? cause.message : String(cause),
    });
    throw err;
  }
}

/** JSON: snake_case proto names, defaults included, int64 as strings. Protobuf: proto3 binary. */
export function encodeResponse<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
  encoding: Encoding,
): Buffer {
  if (encoding === 'protobuf') return Buffer.from(toBinary(schema, message));
  if (schema.typeName === GET_RESPONSE) return encodeGetResponseJson(message as unknown as GetResponse);
  return Buffer.from(
    JSON.stringify(toJson(schema, message, { useProtoFieldName: true, alwaysEmitImplicit: true })),
  );
}
