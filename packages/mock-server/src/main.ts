#!/usr/bin/env node
/**
 * `gha-cache-mock`: the CLI entry point. The only place that reads argv and the environment (with the
 * commands in `cli/` it loads).
 *   gha-cache-mock serve [--port 8787] [--data-dir DIR] …   start the server, print `export …` lines
 *   gha-cache-mock token --scope refs/heads/main:rw …        print a runtime token
 *   gha-cache-mock verify [--data-dir DIR] [--repair]         check a data directory offline
 *   gha-cache-mock report [--url URL | --traffic-log FILE]    print the Markdown traffic report
 *   gha-cache-mock proxy --upstream URL [--port 8787] …       record the traffic to another cache service
 * Only the chosen command's module is loaded (`serve` needs the server, `token` does not); the help of
 * the whole program and an unknown command load them all.
 */
import { Command } from 'commander';
import { enableCompileCache } from './cli/compile-cache.js';

type Define = (program: Command) => void;

/** In the order `--help` lists them. */
const COMMANDS: Readonly<Record<string, () => Promise<Define>>> = {
  serve: async () => (await import('./cli/serve.js')).serveCommand,
  token: async () => (await import('./cli/token.js')).tokenCommand,
  verify: async () => (await import('./cli/verify.js')).verifyCommand,
  report: async () => (await import('./cli/report.js')).reportCommand,
  proxy: async () => (await import('./cli/proxy.js')).proxyCommand,
};
const DEFAULT_COMMAND = 'serve';

/** The commands argv can reach: the one it names, `serve` for bare options, all for help or a typo. */
function commandsFor(argv: readonly string[]): string[] {
  const first = argv[0];
  if (first !== undefined && Object.hasOwn(COMMANDS, first)) return [first];
  const help = argv.some((arg) => arg === '-h' || arg === '--help');
  if (first === undefined || (first.startsWith('-') && !help)) return [DEFAULT_COMMAND];
  return Object.keys(COMMANDS);
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('gha-cache-mock')
    .description('GitHub Actions Cache service (API v2) and Azure Blob emulator for offline tests')
    .showHelpAfterError();
  const names = commandsFor(argv);
  const defines = await Promise.all(names.map((name) => COMMANDS[name]!()));
  for (const define of defines) define(program);
  await program.parseAsync(argv, { from: 'user' });
}

enableCompileCache();
// `pnpm start -- --port N` passes a literal `--` through; no command takes operands, so drop it.
main(process.argv.slice(2).filter((arg) => arg !== '--')).catch((err: unknown) => {
  process.stderr.write(`gha-cache-mock: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
