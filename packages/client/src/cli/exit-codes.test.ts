import { describe, expect, it } from 'vitest';
import {
  AbortedError,
  BlobError,
  GhaCacheError,
  NotFoundError,
  RateLimitError,
  RestApiError,
  TwirpError,
  UsageLimitError,
  ValidationError,
} from '../errors.js';
import { EXIT, exitCodeFor } from './exit-codes.js';

const twirp = { method: 'CreateCacheEntry', msg: 'm', meta: {} };
const rest = { operation: 'ListCaches', serviceMessage: '', documentationUrl: '' };
const blob = (httpStatus: number) =>
  new BlobError({ operation: 'PutBlock', url: 'http://b/', httpStatus, azureCode: '' });

describe('exitCodeFor', () => {
  it.each([
    ['a validation error', new ValidationError('bad key'), EXIT.USAGE],
    [
      'a Twirp rate limit',
      new RateLimitError({ ...twirp, twirpCode: 'resource_exhausted', httpStatus: 429, retryAfterMs: 1 }),
      EXIT.RATE_LIMITED,
    ],
    ['a blob 429', blob(429), EXIT.RATE_LIMITED],
    ['a REST 429', new RestApiError({ ...rest, httpStatus: 429 }), EXIT.RATE_LIMITED],
    ['a blob 500', blob(500), EXIT.SERVICE],
    ['a REST 403', new RestApiError({ ...rest, httpStatus: 403 }), EXIT.SERVICE],
    ['a REST 404', new NotFoundError({ ...rest, httpStatus: 404 }), EXIT.SERVICE],
    [
      'a hard quota, even on a 429',
      new UsageLimitError({ ...twirp, twirpCode: 'resource_exhausted', httpStatus: 429 }),
      EXIT.SERVICE,
    ],
    ['a Twirp error', new TwirpError({ ...twirp, twirpCode: 'internal', httpStatus: 500 }), EXIT.SERVICE],
    ['an abort', new AbortedError(), EXIT.INTERRUPTED],
    ['an internal error', new GhaCacheError('ERR_INTERNAL', 'x'), EXIT.SERVICE],
    ['anything else thrown', new Error('x'), EXIT.SERVICE],
    ['a non-error', 'x', EXIT.SERVICE],
  ])('%s', (_name, err, code) => {
    expect(exitCodeFor(err)).toBe(code);
  });
});
