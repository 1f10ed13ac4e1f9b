import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Runs `fn` and returns what it wrote to `process.stdout` (e.g. `@actions/core`'s `::warning::` lines), still echoed. */
export async function captureStdout<T>(fn: () => Promise<T>): Promise<{ result: T; output: string }> {
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    out.push(String(chunk));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    return { result: await fn(), output: out.join('') };
  } finally {
    process.stdout.write = write;
  }
}

/** Runs `fn` with another `ACTIONS_RUNTIME_TOKEN` and captures what `@actions/core` printed. */
export async function withRuntimeToken<T>(
  token: string,
  fn: () => Promise<T>,
): Promise<{ result: T; output: string }> {
  const previous = process.env.ACTIONS_RUNTIME_TOKEN;
  process.env.ACTIONS_RUNTIME_TOKEN = token;
  try {
    return await captureStdout(fn);
  } finally {
    process.env.ACTIONS_RUNTIME_TOKEN = previous;
  }
}

/**
 * Points in-process `@actions/cache` at the mock: its variables in `process.env` (no `GITHUB_SERVER_URL`,
 * which could force v1), `RUNNER_TEMP` under `work`. Returns the function that restores the environment.
 */
export async function useActionsCacheEnv(mockEnv: object, work: string): Promise<() => void> {
  const env: Record<string, string | undefined> = {
    ...mockEnv,
    RUNNER_TEMP: join(work, 'runner-temp'),
    GITHUB_SERVER_URL: undefined,
  };
  const saved: Record<string, string | undefined> = {};
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  for (const k of Object.keys(env)) saved[k] = process.env[k];
  apply(env);
  await mkdir(join(work, 'runner-temp'), { recursive: true });
  return () => apply(saved);
}
