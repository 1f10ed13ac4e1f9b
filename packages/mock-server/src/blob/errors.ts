import { AzureError } from '../errors.js';

/** Azure errors only the blob plugin answers with, in addition to `azureErrors` in `../errors.ts`. */
export const blobErrors = {
  blockListTooLong: () =>
    new AzureError(400, 'BlockListTooLong', 'The block list may not contain more than 50,000 blocks.'),
  /** The body ended before `Content-Length` bytes (or the upload was cut). */
  incompleteBody: () =>
    new AzureError(
      400,
      'InvalidInput',
      'One of the request inputs is not valid: the body is shorter than Content-Length.',
    ),
  unsupportedMediaType: () =>
    new AzureError(
      400,
      'InvalidHeaderValue',
      'The value for one of the HTTP headers is not in the correct format.',
      {
        HeaderName: 'Content-Type',
      },
    ),
  missingQueryParameter: (name: string) =>
    new AzureError(
      400,
      'MissingRequiredQueryParameter',
      'A query parameter that is mandatory for this request is not specified.',
      { QueryParameterName: name },
    ),
  /** A fault in the request itself that Fastify reported (bad header, bad URL encoding, …). */
  badRequest: () => new AzureError(400, 'InvalidInput', 'One of the request inputs is not valid.'),
} as const;
