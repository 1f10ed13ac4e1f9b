/**
 * Drives the real sccache (GHA backend, OpenDAL `ghac`) against a cache service: a private config, local
 * cache dir, server port and error log, and one compile per fresh sccache server.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InstalledPeers } from './install.mjs';
import { type CommandResult, freePort, isolatedEnv, runCommand } from './support.js';

export interface SccacheStats {
  stats: {
    compile_requests: number;
    cache_hits: { counts: Record<string, number> };
    cache_misses: { counts: Record<string, number> };
    cache_errors: { counts: Record<string, number> };
    cache_read_errors: number;
    cache_write_errors: number;
    cache_writes: number;
  };
  cache_location: string;
}

export interface SccacheOptions {
  peers: Required<Pick<InstalledPeers, 'sccache' | 'cc'>>;
  /** Working dir: `hello.c` must be written here; sccache's own files go here too. */
  work: string;
  /** `ACTIONS_RESULTS_URL` and `ACTIONS_RUNTIME_TOKEN` of the service it talks to. */
  resultsUrl: string;
  token: string;
  /** More environment (e.g. `SCCACHE_LOG`). */
  extraEnv?: Record<string, string>;
  /** More text for a failure's message (e.g. a proxy's log). */
  context?: () => string;
}

export interface Sccache {
  run(args: string[]): Promise<CommandResult>;
  /** A fresh sccache server compiles `hello.c` to `object` once; returns its stats. */
  compileWithFreshServer(object: string): Promise<SccacheStats>;
  stopServer(): Promise<void>;
}

export async function createSccache(options: SccacheOptions): Promise<Sccache> {
  const { peers, work } = options;
  await writeFile(join(work, 'sccache.conf'), ''); // no user config file can change the backend
  const serverLog = join(work, 'sccache-server.log');
  const env = isolatedEnv({
    SCCACHE_GHA_ENABLED: 'on',
    ACTIONS_CACHE_SERVICE_V2: 'on',
    ACTIONS_RESULTS_URL: options.resultsUrl,
    ACTIONS_RUNTIME_TOKEN: options.token,
    SCCACHE_DIR: join(work, 'local-cache'),
    SCCACHE_CONF: join(work, 'sccache.conf'),
    SCCACHE_SERVER_PORT: String(await freePort()),
    SCCACHE_IDLE_TIMEOUT: '300',
    SCCACHE_ERROR_LOG: serverLog,
    ...options.extraEnv,
  });
  const run = async (args: string[]) => {
    const result = await runCommand(peers.sccache.bin, args, { cwd: work, env, timeoutMs: 120_000 });
    if (result.code !== 0) {
      const log = await readFile(serverLog, 'utf8').catch(() => '');
      throw new Error(
        `sccache ${args.join(' ')} exited ${result.code ?? result.signal}:\n${result.stdout}\n${result.stderr}\n` +
          `--- sccache server log (tail) ---\n${log.slice(-6000)}${options.context ? `\n${options.context()}` : ''}`,
      );
    }
    return result;
  };
  return {
    run,
    async compileWithFreshServer(object) {
      await run(['--start-server']);
      try {
        await run([peers.cc.bin, '-c', 'hello.c', '-o', object]);
        const { stdout } = await run(['--show-stats', '--stats-format=json']);
        return JSON.parse(stdout) as SccacheStats;
      } finally {
        await run(['--stop-server']);
      }
    },
    async stopServer() {
      await run(['--stop-server']).catch(() => undefined);
    },
  };
}
