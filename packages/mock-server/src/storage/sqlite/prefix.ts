import type { EntryStatements } from './statements.js';

/** Any BLOB compares greater than any TEXT in SQLite: the upper bound of an unbounded key range. */
const NO_UPPER_BOUND = Buffer.from([0xff]);

/**
 * The smallest string greater than every string that starts with `prefix`, in SQLite's BINARY
 * order (UTF-8 bytes = code point order): the last code point incremented (skipping surrogates);
 * trailing U+10FFFF are dropped first. `undefined` when no such string exists (e.g. `''`).
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = cps.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      cps.push(String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1));
      return cps.join('');
    }
  }
  return undefined;
}

/**
 * The id of the newest committed entry whose key starts with `prefix`. The answer is the max id
 * over a key range. Two index walks run in growing steps, and the first to finish answers:
 * newest-first by id (finishes at the first key with the prefix) and the key range (finishes at
 * its end). Cost: O(min(range size, newer non-matching entries)), so both a broad restore key
 * (`npm-`) and a selective one take a few index steps; a range of fewer than 16 keys takes one.
 */
export function newestIdWithPrefix(
  q: EntryStatements,
  repositoryId: string,
  scope: string,
  version: string,
  prefix: string,
): number | undefined {
  const upper = prefixUpperBound(prefix) ?? NO_UPPER_BOUND;
  // A selective prefix (the common case: a restore key that names a few entries) is answered by
  // the first range step alone, without a walk of the newest entries.
  const first = q.rangeMatch.get(repositoryId, scope, version, prefix, upper, 16)!;
  if (first.n < 16) return first.newest ?? undefined;
  for (let offset = 0, step = 16; ; offset += step, step *= 8) {
    const recent = q.recentMatch.get(repositoryId, scope, version, step, offset, prefix, upper);
    if (recent != null) return recent;
    const range = q.rangeMatch.get(repositoryId, scope, version, prefix, upper, step)!;
    if (range.n < step) return range.newest ?? undefined;
  }
}
