import type { ByteRange } from '../storage/types.js';

/**
 * What a GET's range header asks for:
 * - `full`: no usable range (absent or syntactically invalid, RFC 9110 says ignore) → 200;
 * - `range`: a satisfiable range, clamped to the blob → 206;
 * - `unsatisfiable`: start ≥ size (any range on an empty blob, `bytes=-0`) → 416.
 */
export type RangeRequest =
  | { readonly kind: 'full' }
  | { readonly kind: 'range'; readonly range: ByteRange }
  | { readonly kind: 'unsatisfiable' };

/** The effective range header: `x-ms-range` wins over `Range` (docs/protocol.md §5.5). */
export function pickRangeHeader(headers: {
  readonly 'x-ms-range'?: string | string[] | undefined;
  readonly range?: string | string[] | undefined;
}): string | undefined {
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  return first(headers['x-ms-range']) ?? first(headers.range);
}

const RANGE = /^bytes=(\d*)-(\d*)$/i;

/** Resolves `bytes=a-b`, `bytes=a-` and `bytes=-n` against a blob of `size` bytes. */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'full' };
  const m = RANGE.exec(header.trim().replace(/\s+/g, ''));
  if (!m) return { kind: 'full' };
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return { kind: 'full' };
  const a = first === '' ? undefined : Number(first);
  const b = last === '' ? undefined : Number(last);
  if ((a !== undefined && !Number.isSafeInteger(a)) || (b !== undefined && !Number.isSafeInteger(b))) {
    return { kind: 'full' };
  }
  if (a === undefined) {
    // Suffix: the last b bytes.
    if (b === undefined || b === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', range: { start: Math.max(0, size - b), end: size - 1 } };
  }
  if (b !== undefined && b < a) return { kind: 'full' };
  if (a >= size) return { kind: 'unsatisfiable' };
  return { kind: 'range', range: { start: a, end: Math.min(b ?? size - 1, size - 1) } };
}
