import { AzureError, azureErrors, type TwirpCode } from '../errors.js';
import type { NonJsonFaultAction, StatusFaultAction } from './types.js';

/** The Twirp code a bare status stands for (docs/protocol.md §3.4); `unknown` when Twirp has none. */
const TWIRP_CODE_OF_STATUS: Readonly<Record<number, TwirpCode>> = {
  400: 'invalid_argument',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'not_found',
  408: 'deadline_exceeded',
  409: 'already_exists',
  412: 'failed_precondition',
  429: 'resource_exhausted',
  500: 'internal',
  501: 'unimplemented',
  503: 'unavailable',
};

/** The Azure code and standard text a bare status stands for (docs/protocol.md §5.7: 503 `ServerBusy`, 500 `InternalError`). */
const AZURE_ERROR_OF_STATUS: Readonly<Record<number, readonly [string, string]>> = {
  400: ['InvalidInput', 'One of the request inputs is not valid.'],
  403: ['AuthenticationFailed', 'Server failed to authenticate the request.'],
  404: ['BlobNotFound', 'The specified blob does not exist.'],
  408: ['OperationTimedOut', 'The operation could not be completed within the permitted time.'],
  412: ['ConditionNotMet', 'The condition specified using HTTP conditional header(s) is not met.'],
  429: ['ServerBusy', 'The server is busy.'],
  500: ['InternalError', 'The server encountered an internal error. Please retry the request.'],
  503: ['ServerBusy', 'The server is busy.'],
};

/** `Retry-After` as the rule asks, 1 s by default on a 429 (docs/protocol.md §3.4). */
function retryAfterSeconds(action: StatusFaultAction): number | undefined {
  return action.retryAfterSeconds ?? (action.status === 429 ? 1 : undefined);
}

export interface RawFaultAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly contentType: string;
  readonly body: string;
}

/** A Twirp error answer: `{"code","msg"}` JSON (never `message`), `Retry-After` when asked or on a 429. */
export function twirpFaultAnswer(action: StatusFaultAction, ruleId: string): RawFaultAnswer {
  const code = action.code ?? TWIRP_CODE_OF_STATUS[action.status] ?? 'unknown';
  const retryAfter = retryAfterSeconds(action);
  const msg =
    action.message ?? (code === 'resource_exhausted' ? 'rate limit exceeded' : `injected fault ${ruleId}`);
  return {
    status: action.status,
    headers: retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {},
    contentType: 'application/json',
    body: JSON.stringify({ code, msg }),
  };
}

/**
 * An Azure error (the blob plugin's error handler renders the XML and `x-ms-error-code`). A 429/503 carries
 * `x-ms-retry-after-ms` (default 50: azcore honours it instead of waiting ≥ 10 s, docs/protocol.md §3.5).
 */
export function azureFaultError(action: StatusFaultAction): AzureError {
  const [defaultCode, defaultText] =
    AZURE_ERROR_OF_STATUS[action.status] ??
    (action.status >= 500 ? AZURE_ERROR_OF_STATUS[500]! : AZURE_ERROR_OF_STATUS[400]!);
  const headers: Record<string, string> = {};
  const retryAfter = retryAfterSeconds(action);
  if (retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
  if (action.retryAfterMs !== undefined || action.status === 429 || action.status === 503) {
    headers['x-ms-retry-after-ms'] = String(action.retryAfterMs ?? (action.retryAfterSeconds ?? 0.05) * 1000);
  }
  return new AzureError(
    action.status,
    action.code ?? defaultCode,
    action.message ?? defaultText,
    {},
    headers,
  );
}

/** 403 `AuthenticationFailed` with production's expiry detail, for a SAS the rule says has expired. */
export function expiredSasError(query: URLSearchParams, now: number): AzureError {
  const date = (value: string | null) => {
    const ms = value === null ? Number.NaN : Date.parse(value);
    return Number.isNaN(ms) ? '' : new Date(ms).toUTCString();
  };
  return azureErrors.authenticationFailed(
    `Signature not valid in the specified time frame: Start [${date(query.get('st'))}] - Expiry [${date(
      query.get('se'),
    )}] - Current [${new Date(now).toUTCString()}]`,
  );
}

const BAD_GATEWAY_PAGE =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n' +
  '<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

/** What a proxy in front of the service would answer: by default nginx's HTML 502 page. */
export function nonJsonAnswer(action: NonJsonFaultAction): RawFaultAnswer {
  return {
    status: action.status ?? 502,
    headers: {},
    contentType: action.contentType ?? 'text/html',
    body: action.body ?? BAD_GATEWAY_PAGE,
  };
}
