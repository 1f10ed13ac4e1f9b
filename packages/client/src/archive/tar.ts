/**
 * `tar` + compression exactly like `@actions/cache` (GNU tar on Linux, `gtar` on macOS when present):
 *
 *   create:  tar --posix -cf cache.tzst --exclude cache.tzst -P -C <workdir> --files-from manifest.txt
 *                --use-compress-program zstdmt          (gzip: -z)           [cwd = archive folder]
 *   extract: tar -xf <archive> -P -C <workdir> --use-compress-program unzstd   (gzip: -z)
 *
 * Entries are relative to the working directory (`GITHUB_WORKSPACE`); `-P` keeps `../` paths.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AbortedError, ArchiveError } from '../errors.js';
import { archiveFileName, versionOutput } from './compression.js';
import type { CompressionMethod } from './version.js';

export const MANIFEST_FILE = 'manifest.txt';

export interface TarOptions {
  /** Directory the entries are relative to (`-C`). */
  workingDirectory: string;
  compression: CompressionMethod;
  /** tar binary. Default `gtar` on macOS when installed, else `tar`. */
  tarCommand?: string;
  signal?: AbortSignal | undefined;
}

let tarCommand: Promise<string> | undefined;
/** `gtar` on macOS when it answers `--version` (GNU tar reads BSD archives badly), else `tar`. */
function defaultTar(): Promise<string> {
  tarCommand ??=
    process.platform === 'darwin'
      ? versionOutput('gtar').then((out) => (out === '' ? 'tar' : 'gtar'))
      : Promise.resolve('tar');
  return tarCommand;
}

function compressArgs(method: CompressionMethod, mode: 'create' | 'extract'): string[] {
  switch (method) {
    case 'zstd':
      return ['--use-compress-program', mode === 'create' ? 'zstdmt --long=30' : 'unzstd --long=30'];
    case 'zstd-without-long':
      return ['--use-compress-program', mode === 'create' ? 'zstdmt' : 'unzstd'];
    default:
      return ['-z'];
  }
}

function platformArgs(): string[] {
  return process.platform === 'darwin' ? ['--delay-directory-restore'] : [];
}

function run(command: string, args: string[], cwd: string, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError(signal.reason));
      return;
    }
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], signal });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 16_384) stderr += d.toString();
    });
    const line = `${command} ${args.join(' ')}`;
    child.on('error', (err) => {
      if (signal?.aborted) reject(new AbortedError(signal.reason));
      else
        reject(
          new ArchiveError(`${command} failed to start: ${err.message}`, {
            command: line,
            exitCode: null,
            stderr,
            cause: err,
          }),
        );
    });
    child.on('close', (code) => {
      if (code === 0) resolve();
      else if (signal?.aborted) reject(new AbortedError(signal.reason));
      else {
        reject(
          new ArchiveError(
            `${command} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
            {
              command: line,
              exitCode: code,
              stderr,
            },
          ),
        );
      }
    });
  });
}

/** Writes `manifest.txt` and the compressed tar into `archiveFolder`; returns the archive path. */
export async function createArchive(
  archiveFolder: string,
  paths: readonly string[],
  options: TarOptions,
): Promise<string> {
  const name = archiveFileName(options.compression);
  await writeFile(path.join(archiveFolder, MANIFEST_FILE), paths.join('\n'));
  const args = [
    '--posix',
    '-cf',
    name,
    '--exclude',
    name,
    '-P',
    '-C',
    options.workingDirectory.split(path.sep).join('/'),
    '--files-from',
    MANIFEST_FILE,
    ...platformArgs(),
    ...compressArgs(options.compression, 'create'),
  ];
  await run(options.tarCommand ?? (await defaultTar()), args, archiveFolder, options.signal);
  return path.join(archiveFolder, name);
}

/** Extracts an archive into the working directory (created if missing). */
export async function extractArchive(archivePath: string, options: TarOptions): Promise<void> {
  await mkdir(options.workingDirectory, { recursive: true });
  const args = [
    '-xf',
    archivePath.split(path.sep).join('/'),
    '-P',
    '-C',
    options.workingDirectory.split(path.sep).join('/'),
    ...platformArgs(),
    ...compressArgs(options.compression, 'extract'),
  ];
  await run(options.tarCommand ?? (await defaultTar()), args, path.dirname(archivePath), options.signal);
}
