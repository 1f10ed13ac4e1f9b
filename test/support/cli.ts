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
export function spawnMock(
  args: string[],
  timeoutMs = 60_000,
  command: readonly string[] = [process.execPath, MOCK_CLI],
  childEnv: NodeJS.ProcessEnv = process.env,
): Promise<MockProcess> {
  return spawnCli([...command, 'serve', '--port', '0', ...args], {
    readyWhen: 'ACTIONS_RUNTIME_TOKEN',
    timeoutMs,
    env: childEnv,
  });
}

export interface SpawnCliOptions {
  /** The `export` variable whose line means the process is ready (it prints its exports last). */
  readyWhen: string;
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
}

/** Starts `argv` (program first) and resolves once it has printed `export <readyWhen>=…` on stdout. */
export async function spawnCli(argv: readonly string[], options: SpawnCliOptions): Promise<MockProcess> {
  const [program, ...args] = argv;
  const name = args.find((a) => !a.startsWith('-') && !a.includes('/')) ?? program;
  const proc = spawn(program!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
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
      () => reject(new Error(`${name} did not start in ${options.timeoutMs} ms: ${err}`)),
      options.timeoutMs,
    );
    exited.then(([code]) => reject(new Error(`${name} exited with ${code}: ${err}`)));
    lines.on('line', (line) => {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
      if (env[options.readyWhen]) {
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
