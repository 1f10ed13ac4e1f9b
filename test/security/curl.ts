/** Real `curl` against the mock, as the attacks and the tools in the README send their requests. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CurlResponse {
  status: number;
  /** Lower-cased names. */
  headers: Record<string, string>;
  body: string;
  /** `body` parsed as JSON, or `undefined`. */
  json: Record<string, unknown> | undefined;
}

/** Runs `curl -s -D - …args` and splits the answer; fails loudly when curl is not installed. */
export async function curl(...args: string[]): Promise<CurlResponse> {
  const { stdout } = await run('curl', ['-s', '-S', '--max-time', '30', '-D', '-', ...args], {
    maxBuffer: 64 * 1024 * 1024,
  }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new Error('curl is not installed (apt-get install -y curl)');
    throw err;
  });
  const end = stdout.indexOf('\r\n\r\n');
  const head = stdout.slice(0, end).split('\r\n');
  const body = stdout.slice(end + 4);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(body) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: Number(head[0]!.split(' ')[1]), headers, body, json };
}

/** `--resolve name:port:127.0.0.1` + the URL under that name: the request a DNS rebinding makes. */
export function asHost(url: string, name: string): string[] {
  const u = new URL(url);
  const port = u.port || '80';
  u.hostname = name;
  return ['--resolve', `${name}:${port}:127.0.0.1`, u.toString()];
}
