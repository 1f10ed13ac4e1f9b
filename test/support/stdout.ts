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
