import { azureErrors } from '../errors.js';

/** Azure's limit on a block id's decoded length. */
export const MAX_BLOCK_ID_BYTES = 64;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Validates a Put Block `blockid`: canonical base64 (padding present, unused bits zero) of
 * 1..64 bytes; else throws `InvalidBlockId`. Returns the decoded byte length.
 */
export function validateBlockId(blockId: string): number {
  if (blockId === '' || !BASE64.test(blockId)) throw azureErrors.invalidBlockId();
  const bytes = Buffer.from(blockId, 'base64');
  if (bytes.toString('base64') !== blockId || bytes.length > MAX_BLOCK_ID_BYTES) {
    throw azureErrors.invalidBlockId();
  }
  return bytes.length;
}
