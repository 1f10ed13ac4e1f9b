/**
 * Typed errors thrown by handlers. Each protocol plugin's error handler turns them into that
 * protocol's own error format: a Twirp JSON body, or Azure XML with `x-ms-error-code`.
 */

/** Twirp error codes (twitchtv/twirp spec v7) with their HTTP statuses. */
export const TWIRP_STATUS = {
  canceled: 408,
  unknown: 500,
  invalid_argument: 400,
  malformed: 400,
  deadline_exceeded: 408,
  not_found: 404,
  bad_route: 404,
  already_exists: 409,
  permission_denied: 403,
  unauthenticated: 401,
  resource_exhausted: 429,
  failed_precondition: 412,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  dataloss: 500,
} as const;

export type TwirpCode = keyof typeof TWIRP_STATUS;

export class TwirpError extends Error {
  override readonly name = 'TwirpError';
  readonly status: number;
  constructor(
    readonly code: TwirpCode,
    readonly msg: string,
    readonly meta: Readonly<Record<string, string>> = {},
    /** Extra response headers, e.g. `Retry-After`. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(`${code}: ${msg}`);
    this.status = TWIRP_STATUS[code];
  }

  toJSON(): { code: TwirpCode; msg: string; meta?: Record<string, string> } {
    return Object.keys(this.meta).length > 0
      ? { code: this.code, msg: this.msg, meta: { ...this.meta } }
      : { code: this.code, msg: this.msg };
  }
}

/** An Azure Blob service error: status, `x-ms-error-code` and the standard message text. */
export class AzureError extends Error {
  override readonly name = 'AzureError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra elements of the XML body, e.g. `AuthenticationErrorDetail`. */
    readonly details: Readonly<Record<string, string>> = {},
    /** Extra response headers, e.g. `Content-Range` on a 416. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** Azure's standard texts for the errors the mock answers with. */
export const azureErrors = {
  blobNotFound: () => new AzureError(404, 'BlobNotFound', 'The specified blob does not exist.'),
  invalidRange: (size: number) =>
    new AzureError(
      416,
      'InvalidRange',
      'The range specified is invalid for the current size of the resource.',
      {},
      {
        'Content-Range': `bytes */${size}`,
      },
    ),
  invalidBlockList: () => new AzureError(400, 'InvalidBlockList', 'The specified block list is invalid.'),
  invalidBlockId: () =>
    new AzureError(
      400,
      'InvalidBlockId',
      'The specified block ID is invalid. The block ID must be Base64-encoded.',
    ),
  invalidBlobOrBlock: () =>
    new AzureError(400, 'InvalidBlobOrBlock', 'The specified blob or block content is invalid.'),
  invalidXml: () => new AzureError(400, 'InvalidXmlDocument', 'XML specified is not syntactically valid.'),
  missingContentLength: () =>
    new AzureError(411, 'MissingContentLengthHeader', 'Content-Length HTTP header is missing.'),
  tooLarge: () =>
    new AzureError(
      413,
      'RequestBodyTooLarge',
      'The request body is too large and exceeds the maximum permissible limit.',
    ),
  conditionNotMet: () =>
    new AzureError(
      412,
      'ConditionNotMet',
      'The condition specified using HTTP conditional header(s) is not met.',
    ),
  authenticationFailed: (detail: string) =>
    new AzureError(
      403,
      'AuthenticationFailed',
      'Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.',
      { AuthenticationErrorDetail: detail },
    ),
  permissionMismatch: () =>
    new AzureError(
      403,
      'AuthorizationPermissionMismatch',
      'This request is not authorized to perform this operation using this permission.',
    ),
  missingHeader: (name: string) =>
    new AzureError(
      400,
      'MissingRequiredHeader',
      'An HTTP header that is mandatory for this request is not specified.',
      {
        HeaderName: name,
      },
    ),
  invalidHeader: (name: string, value: string) =>
    new AzureError(
      400,
      'InvalidHeaderValue',
      'The value for one of the HTTP headers is not in the correct format.',
      {
        HeaderName: name,
        HeaderValue: value,
      },
    ),
  invalidQueryValue: (name: string, value: string) =>
    new AzureError(
      400,
      'InvalidQueryParameterValue',
      'Value for one of the query parameters specified in the request URI is invalid.',
      {
        QueryParameterName: name,
        QueryParameterValue: value,
      },
    ),
  unsupportedVerb: () =>
    new AzureError(405, 'UnsupportedHttpVerb', "The resource doesn't support specified Http Verb."),
  invalidInput: (message: string) => new AzureError(400, 'InvalidInput', message),
  invalidUri: () =>
    new AzureError(400, 'InvalidUri', 'The requested URI does not represent any resource on the server.'),
  /** A write that did not fit on the data directory's disk: 500 as any server fault, so clients retry or give up. */
  outOfSpace: () =>
    new AzureError(
      500,
      'InternalError',
      'The server encountered an internal error: no space left on its data directory. Please retry the request.',
    ),
  internal: () =>
    new AzureError(
      500,
      'InternalError',
      'The server encountered an internal error. Please retry the request.',
    ),
} as const;

/**
 * Whether `err` (or its cause) says the data directory's disk or quota is full: `ENOSPC`/`EDQUOT` from a
 * file write, `SQLITE_FULL` from the database.
 */
export function isOutOfSpace(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') return true;
  }
  return false;
}

/** The Twirp message of a metadata write that did not fit. */
export const OUT_OF_SPACE_MSG =
  'no space left on the data directory of the cache service: nothing was changed';
