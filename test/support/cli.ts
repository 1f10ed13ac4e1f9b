import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const MOCK_CLI = fileURLToPath(new URL('../../packages/mock-server/dist/main.js', import.meta.url));

export interface MockProcess {
  proc: ChildProcess;
  env: Record<string, string>;
  url: string;
  stderr: () => string;
  /** Everything written to stdout so far. */
  stdout: () => string;
  /** Sends a signal and waits for the process to exit; resolves to its exit code or signal. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Runs `gha-cache-mock serve …` and waits for its `export` lines, in `childEnv`. `command` is how to start the CLI:
 * by default the workspace's build under this Node.js; an installed bin can be given as `[path]`.
 */
export async function spawnMock(
  args: string[],
  timeoutMs = 60_000,
  command: readonly string[] = [process.execPath, MOCK_CLI],
  childEnv: NodeJS.ProcessEnv = process.env,
): Promise<MockProcess> {
  const [program, ...prefix] = command;
  const proc = spawn(program!, [...prefix, 'serve', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv,
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const env: Record<string, string> = {};
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const lines = createInterface({ input: proc.stdout! });
  const exited = once(proc, 'exit');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`mock did not start in ${timeoutMs} ms: ${err}`)),
      timeoutMs,
    );
    exited.then(([code]) => reject(new Error(`mock exited with ${code}: ${err}`)));
    lines.on('line', (line) => {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
      if (env.ACTIONS_RUNTIME_TOKEN) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const url = env.ACTIONS_RESULTS_URL!.replace(/\/$/, '');
  return {
    proc,
    env,
    url,
    stderr: () => err,
    stdout: () => out,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode!;
      proc.kill(signal);
      const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
      return code ?? sig!;
    },
  };
}
