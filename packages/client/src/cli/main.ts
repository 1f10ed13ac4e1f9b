#!/usr/bin/env node
/** `gha-cache` entry point: the only place that reads argv and the environment. */
import { setMaxListeners } from 'node:events';
import { runCli } from './program.js';

const controller = new AbortController();
setMaxListeners(0, controller.signal);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => controller.abort(new Error(`interrupted by ${sig}`)));
}
// The reader of stdout went away (`gha-cache --help | head`, `get K - | head -c 10`): stop quietly with the
// status a process killed by SIGPIPE has, as other Unix tools do, instead of an unhandled EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(128 + 13);
});

const code = await runCli(
  process.argv.slice(2),
  process.env,
  {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
  },
  controller.signal,
);
// Let stdout drain (e.g. `get - | consumer`) before exiting.
process.exitCode = code;
