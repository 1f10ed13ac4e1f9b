import { ValidationError } from './errors.js';

/** Key rules with the `@actions/cache` texts (C-86): ≤ 512 chars, no comma; we also refuse empty keys. */
export function checkKey(key: string): void {
  if (key.length === 0) throw new ValidationError('Key Validation Error: a key cannot be empty.');
  if (key.length > 512) {
    throw new ValidationError(`Key Validation Error: ${key} cannot be larger than 512 characters.`);
  }
  if (key.includes(',')) throw new ValidationError(`Key Validation Error: ${key} cannot contain commas.`);
}

/** Primary key plus restore keys: at most 10 in all, each valid. */
export function checkKeys(primaryKey: string, restoreKeys: readonly string[]): void {
  if (1 + restoreKeys.length > 10) {
    throw new ValidationError('Key Validation Error: Keys are limited to a maximum of 10.');
  }
  checkKey(primaryKey);
  for (const k of restoreKeys) checkKey(k);
}

export function checkPaths(paths: readonly string[]): void {
  if (paths.length === 0) {
    throw new ValidationError('Path Validation Error: At least one directory or file path is required');
  }
}

/** `actions/cache`'s exact-match test for `cache-hit`: case-insensitive, accent-sensitive. */
export function isExactKeyMatch(key: string, matchedKey: string): boolean {
  return key.localeCompare(matchedKey, undefined, { sensitivity: 'accent' }) === 0;
}
