/**
 * V8's compile cache for the CLI (Node.js ≥ 22.1: `module.enableCompileCache`): the second start
 * reads the compiled code of the server's modules instead of compiling it again. It lives in the
 * user's cache dir (`$XDG_CACHE_HOME/gha-cache-mock`, else `~/.cache/gha-cache-mock`), never in a
 * data dir. Node.js 20 has none; a cache dir that cannot be written only costs the speed-up
 * (Node.js reports that in the status, it does not throw); `NODE_COMPILE_CACHE` and
 * `NODE_DISABLE_COMPILE_CACHE` keep their meaning.
 */
import * as nodeModule from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

type EnableCompileCache = (dir?: string) => { status: number; message?: string; directory?: string };

export function enableCompileCache(): void {
  const enable = (nodeModule as { enableCompileCache?: EnableCompileCache }).enableCompileCache;
  if (typeof enable !== 'function' || process.env.NODE_COMPILE_CACHE) return;
  try {
    const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
    enable(join(base, 'gha-cache-mock', 'compile-cache'));
  } catch {
    // No home, or a platform without a cache: start without it.
  }
}
