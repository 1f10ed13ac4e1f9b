import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The built `gha-cache` bin of the workspace package (tests run after `pnpm build`). */
export const GHA_CACHE_BIN = join(
  dirname(createRequire(import.meta.url).resolve('@gha-cache/client')),
  'cli',
  'main.js',
);

export interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  /** stdout parsed as one JSON object (for `--json`). */
  json(): Record<string, unknown>;
}

/** Runs `gha-cache …` as a real process with a clean environment plus `env`. */
export function runGhaCache(
  args: string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; input?: Buffer } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' };
    for (const [k, v] of Object.entries(options.env ?? {})) if (v !== undefined) env[k] = v;
    const child = spawn(process.execPath, [GHA_CACHE_BIN, ...args], {
      cwd: options.cwd ?? process.cwd(),
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const stdout = Buffer.concat(out);
      resolve({
        code,
        stdout,
        stderr: err,
        json: () =>
          JSON.parse(stdout.toString('utf8').trim().split('\n').at(-1) ?? '') as Record<string, unknown>,
      });
    });
    child.stdin.on('error', () => undefined);
    if (options.input) child.stdin.end(options.input);
    else child.stdin.end();
  });
}
