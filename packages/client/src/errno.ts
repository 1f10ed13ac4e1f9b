/**
 * The system or undici error code (`ECONNRESET`, `UND_ERR_SOCKET`, ...) of an error, or of the first of its
 * causes that has one. Shared by the error funnel and the retry policy, so both read an error the same way.
 */
export function errnoOf(err: unknown): string | undefined {
  let cur: unknown = err;
  // A bounded walk: a cause chain may loop back on itself.
  for (let depth = 0; depth < 8 && typeof cur === 'object' && cur !== null; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const cause = (cur as { cause?: unknown }).cause;
    if (cause === cur) return undefined;
    cur = cause;
  }
  return undefined;
}
