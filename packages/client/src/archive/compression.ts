import { spawn } from 'node:child_process';
import type { CompressionMethod } from './version.js';

/** Runs `<cmd> --quiet --version` and returns its combined output, '' when it cannot run. */
export function versionOutput(command: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(command, ['--quiet', '--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch {
      resolve('');
      return;
    }
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', () => resolve(''));
    child.on('close', () => resolve(out.trim()));
  });
}

const detected = new Map<string, Promise<CompressionMethod>>();

/**
 * The `@actions/cache` rule: `zstd-without-long` when a `zstd` binary answers `--version`, else `gzip`.
 * Cached per command name for the life of the process.
 */
export function detectCompression(zstdCommand = 'zstd'): Promise<CompressionMethod> {
  let p = detected.get(zstdCommand);
  if (!p) {
    p = versionOutput(zstdCommand).then((out) => (out === '' ? 'gzip' : 'zstd-without-long'));
    detected.set(zstdCommand, p);
  }
  return p;
}

/** Archive file name `@actions/cache` uses for a compression method. */
export function archiveFileName(method: CompressionMethod): string {
  return method === 'gzip' ? 'cache.tgz' : 'cache.tzst';
}
