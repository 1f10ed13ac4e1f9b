/**
 * What the commands share: option parsers (commander's `InvalidArgumentError` on bad input), the
 * default data dir, the secrets a data dir holds, the log sink and the shell quoting of export lines.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { parseScopeSpec, type TokenScope } from '../auth/tokens.js';
import { parseDurationMs } from '../duration.js';
import { createPrettySink } from '../log/pretty.js';
import { loadSecrets } from '../secrets.js';

export function defaultDataDir(): string {
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'gha-cache-mock');
}

export const collectScope = (value: string, previous: TokenScope[] = []): TokenScope[] => {
  try {
    return [...previous, parseScopeSpec(value)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

export function parseDuration(value: string): number {
  try {
    return parseDurationMs(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`invalid count "${value}" (an integer ≥ 1)`);
  return n;
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`invalid port "${value}"`);
  return n;
}

export const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export async function secretsFor(opts: { tokenSecret?: string; dataDir?: string; storage?: string }) {
  const dataDir = opts.dataDir ?? defaultDataDir();
  const fromDisk = opts.storage === 'memory' && !opts.dataDir ? undefined : await loadSecrets(dataDir);
  return {
    dataDir,
    tokenSecret:
      opts.tokenSecret !== undefined ? Buffer.from(opts.tokenSecret, 'utf8') : fromDisk?.tokenSecret,
    accountKey: fromDisk?.accountKey,
  };
}

/** Where log lines go: stderr, as JSON or through the pretty formatter. */
export function logStream(format: 'pretty' | 'json' | undefined) {
  const pretty = format === 'pretty' || (format === undefined && process.stderr.isTTY === true);
  if (!pretty) return process.stderr;
  const color = process.stderr.isTTY === true && !process.env.NO_COLOR;
  return createPrettySink(process.stderr, { color });
}
