/**
 * The recording proxy as users run it: the built CLI (`gha-cache-mock proxy`) in its own process, in front
 * of an upstream mock in another process (`gha-cache-mock serve`), both on real sockets.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { FaultRuleInput, TrafficEvent } from '@gha-cache/mock-server';
import { MOCK_CLI, type MockProcess, spawnMock } from '../support/cli.js';

export interface ProxyProcess {
  proc: ChildProcess;
  /** The export lines it printed. */
  env: Record<string, string>;
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** The journal (`GET /_admin/traffic`), oldest first. */
  traffic(query?: string): Promise<TrafficEvent[]>;
  stop(): Promise<number | string>;
}

/** Runs `gha-cache-mock proxy --upstream <upstream> --port 0 --log-format json …` and waits for its export lines. */
export async function spawnProxy(
  upstream: string,
  args: string[] = [],
  timeoutMs = 60_000,
): Promise<ProxyProcess> {
  const proc = spawn(
    process.execPath,
    [MOCK_CLI, 'proxy', '--upstream', upstream, '--port', '0', '--log-format', 'json', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  let out = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const env: Record<string, string> = {};
  const lines = createInterface({ input: proc.stdout! });
  const exited = once(proc, 'exit');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`proxy did not start in ${timeoutMs} ms: ${err}`)),
      timeoutMs,
    );
    exited.then(([code]) => reject(new Error(`proxy exited with ${code}: ${err}`)));
    lines.on('line', (line) => {
      out += `${line}\n`;
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
      if (env.ACTIONS_CACHE_SERVICE_V2) {
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
    stdout: () => out,
    stderr: () => err,
    async traffic(query = '') {
      const res = await fetch(`${url}/_admin/traffic${query ? `?${query}` : ''}`);
      const body = (await res.json()) as { events: TrafficEvent[] };
      return body.events;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode!;
      proc.kill('SIGTERM');
      const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
      return code ?? sig!;
    },
  };
}

/** An upstream mock in its own process (memory storage unless `args` say otherwise). */
export function spawnUpstream(args: string[] = []): Promise<MockProcess> {
  return spawnMock(['--storage', 'memory', '--log-format', 'json', ...args]);
}

/** Adds a fault rule to a running mock (`POST /_admin/faults`). */
export async function addFault(mockUrl: string, rule: FaultRuleInput): Promise<void> {
  const res = await fetch(`${mockUrl}/_admin/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(rule),
  });
  if (res.status !== 201) throw new Error(`fault not added: ${res.status} ${await res.text()}`);
}

export async function clearFaults(mockUrl: string): Promise<void> {
  await fetch(`${mockUrl}/_admin/faults`, { method: 'DELETE' });
}

/** The `sig=` values of every signed URL the upstream mock issued (from its JSON request log). */
export function signaturesIn(text: string): string[] {
  return [...new Set([...text.matchAll(/[?&]sig=([^&"\s]+)/g)].map((m) => m[1]!))].filter(
    (s) => s !== 'REDACTED',
  );
}
