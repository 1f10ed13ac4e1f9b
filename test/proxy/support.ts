/**
 * The recording proxy as users run it: the built CLI (`gha-cache-mock proxy`) in its own process, in front
 * of an upstream mock in another process (`gha-cache-mock serve`), both on real sockets.
 */
import type { ChildProcess } from 'node:child_process';
import type { FaultRuleInput, TrafficEvent } from '@gha-cache/mock-server';
import { MOCK_CLI, type MockProcess, spawnCli, spawnMock } from '../support/cli.js';

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
  const argv = [
    process.execPath,
    MOCK_CLI,
    'proxy',
    '--upstream',
    upstream,
    '--port',
    '0',
    '--log-format',
    'json',
  ];
  // The proxy prints no token unless given one: its last export line is ACTIONS_CACHE_SERVICE_V2.
  const cli = await spawnCli([...argv, ...args], { readyWhen: 'ACTIONS_CACHE_SERVICE_V2', timeoutMs });
  return {
    ...cli,
    async traffic(query = '') {
      const res = await fetch(`${cli.url}/_admin/traffic${query ? `?${query}` : ''}`);
      const body = (await res.json()) as { events: TrafficEvent[] };
      return body.events;
    },
    stop: () => cli.stop(),
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
