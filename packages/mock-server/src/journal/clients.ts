import type { ClientKind } from './types.js';

/** The header the mock's own web UI sends on every request. */
export const UI_HEADER = 'x-requested-by';
export const UI_HEADER_VALUE = 'gha-cache-ui';

const RULES: readonly [RegExp, ClientKind][] = [
  // BuildKit names itself `buildkit/v0.34`; go-actions-cache alone `go-actions-cache/1.0`.
  [/^(?:buildkit|go-actions-cache)\//i, 'buildkit'],
  // `@actions/cache-6.0.1`, `@actions/cache-4.0.3`; its non-Azure download client `actions/cache`.
  [/^@?actions\/cache\b/i, 'actions-cache'],
  [/^(?:sccache|opendal)\b/i, 'sccache'],
  [/^gha-cache\//i, 'gha-cache'],
  // `azsdk-go-azblob/v1.5.0 …`, `azsdk-js-azure-storage-blob/12.3x …`, `azsdk-js-storageblob/…`.
  [/^azsdk-|^Azure-Storage\//i, 'azure-sdk'],
  [/^curl\//i, 'curl'],
  [/^Mozilla\//, 'browser'],
];

/** Recognises the client of a request from its User-Agent (and the UI's own header). */
export function recognizeClient(userAgent: string | undefined, requestedBy?: string): ClientKind {
  if (requestedBy === UI_HEADER_VALUE) return 'ui';
  if (!userAgent) return 'unknown';
  for (const [pattern, kind] of RULES) if (pattern.test(userAgent)) return kind;
  // An SDK's product may come after an application's own (`myapp/1.0 azsdk-js-…`).
  if (/\bazsdk-/i.test(userAgent)) return 'azure-sdk';
  return 'unknown';
}
