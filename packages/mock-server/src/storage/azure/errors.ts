import { StorageError } from '../types.js';

/** The Azure error code of a failed request: the SDK's `code`, or `<Code>` of an XML body. */
export function azureCode(err: unknown, body?: string): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return code;
  return body ? /<Code>([^<]+)<\/Code>/.exec(body)?.[1] : undefined;
}

/**
 * Maps a failure of Azure Blob Storage to a `StorageError`: 404 → `BlobNotFound`, the block list
 * errors by their Azure codes, no answer or a 5xx → `Unavailable`. Anything else passes through.
 */
export function fromAzure(err: unknown, what: string, status?: number, body?: string): unknown {
  if (err instanceof StorageError) return err;
  const statusCode = status ?? (err as { statusCode?: number } | undefined)?.statusCode;
  const code = azureCode(err, body);
  if (statusCode === 404) return new StorageError('BlobNotFound', `${what}: not found`, { cause: err });
  if (code === 'InvalidBlockList')
    return new StorageError('InvalidBlockList', `${what}: ${code}`, { cause: err });
  if (code === 'InvalidBlobOrBlock' || code === 'InvalidBlockId') {
    return new StorageError('InvalidBlobOrBlock', `${what}: ${code}`, { cause: err });
  }
  if (statusCode === undefined || statusCode >= 500 || statusCode === 408) {
    const message = err instanceof Error ? err.message : String(err ?? code);
    return new StorageError('Unavailable', `the blob store is unavailable (${what}): ${message}`, {
      cause: err,
    });
  }
  return err instanceof Error ? err : new Error(`${what}: HTTP ${statusCode} ${code ?? ''}`);
}
