/** The two encodings of Twirp and their Content-Types (no protobuf runtime needed to tell them apart). */
export type Encoding = 'json' | 'protobuf';

export const CONTENT_TYPES: Record<Encoding, string> = {
  json: 'application/json',
  protobuf: 'application/protobuf',
};

/** `application/json; charset=utf-8` → `json`; anything else → undefined. */
export function encodingOf(contentType: string | undefined): Encoding | undefined {
  const base = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (base === CONTENT_TYPES.json) return 'json';
  if (base === CONTENT_TYPES.protobuf) return 'protobuf';
  return undefined;
}
