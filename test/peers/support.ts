/**
 * Helpers for the real-peer tests: install peers through the installer's CLI (the one place that reads
 * GHA_CACHE_PEERS_DIR), run commands with a time bound, start a private buildkitd, run one build in it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InstalledPeers, PeerName } from './install.mjs';

const INSTALLER = fileURLToPath(new URL('./install.mjs', import.meta.url));

/** Installs (or finds) the peers by running `node test/peers/install.mjs --json …`; throws loudly on failure. */
export async function requirePeers<const N extends PeerName>(
  names: readonly N[],
  timeoutMs = 25 * 60_000,
): Promise<Required<Pick<InstalledPeers, N>>> {
  const result = await runCommand(process.execPath, [INSTALLER, '--json', ...names], { timeoutMs });
  for (const line of result.stderr.split('\n')) if (line.trim()) console.log(line);
  if (result.code !== 0) {
    throw new Error(
      `the real peers ${names.join(', ')} could not be installed (exit ${result.code}):\n${result.stderr}`,
    );
  }
  const { peers } = JSON.parse(result.stdout) as { peers: InstalledPeers };
  for (const name of names) {
    if (!peers[name]) throw new Error(`installer did not report peer "${name}": ${result.stdout}`);
  }
  return peers as Required<Pick<InstalledPeers, N>>;
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
}

/** Runs a command in its own process group and kills the group when `timeoutMs` passes. Never throws on exit code. */
export async function runCommand(
  command: string,
  args: readonly string[],
  options: RunOptions,
): Promise<CommandResult> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child, 'SIGKILL');
  }, options.timeoutMs);
  try {
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    return {
      code,
      signal,
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8'),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** A free TCP port on 127.0.0.1 (for programs that cannot listen on port 0 and report it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

/** The environment minus every variable that would point a peer at a real cache service or GitHub. */
export function isolatedEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(ACTIONS_|GITHUB_|GHCACHE_|SCCACHE_|RUSTC_WRAPPER$|BUILDKIT_|BUILDX_)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface Buildkitd {
  /** `unix://…` address for `buildctl --addr`. */
  readonly addr: string;
  /** The daemon's log (with `--debug`: every Twirp body). */
  readonly logFile: string;
  log(): Promise<string>;
  /** SIGTERM, then SIGKILL after 20 s; resolves when the daemon has exited. */
  stop(): Promise<void>;
}

export interface BuildkitdOptions {
  buildkitd: string;
  /** Directory holding `runc` (the OCI worker looks it up at start-up). */
  runcDir: string;
  /** Private state: `root/`, `buildkitd.sock`, `buildkitd.log` are created here. */
  dir: string;
  startTimeoutMs?: number;
}

/** Starts buildkitd (root, native snapshotter, OCI worker only) and resolves once it serves its socket. */
export async function startBuildkitd(options: BuildkitdOptions): Promise<Buildkitd> {
  await mkdir(options.dir, { recursive: true });
  const sock = join(options.dir, 'buildkitd.sock');
  const logFile = join(options.dir, 'buildkitd.log');
  const logStream = createWriteStream(logFile);
  const env = { ...process.env, PATH: `${options.runcDir}:${process.env.PATH ?? ''}` };
  const child = spawn(
    options.buildkitd,
    [
      '--root',
      join(options.dir, 'root'),
      '--addr',
      `unix://${sock}`,
      '--oci-worker=true',
      '--oci-worker-snapshotter=native',
      '--oci-worker-net=host',
      '--containerd-worker=false',
      '--debug',
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  const exited = once(child, 'exit');
  let seen = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`buildkitd did not serve ${sock} within ${options.startTimeoutMs ?? 60_000} ms`)),
      options.startTimeoutMs ?? 60_000,
    );
    const onData = (d: Buffer) => {
      logStream.write(d);
      if (seen.length < 64 * 1024) seen += d.toString('utf8');
      if (seen.includes(`running server on ${sock}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exited.then(([code, signal]) => {
      clearTimeout(timer);
      reject(
        new Error(`buildkitd exited (${code ?? signal}) before serving its socket:\n${seen.slice(-4000)}`),
      );
    });
  });
  try {
    await ready;
  } catch (err) {
    killGroup(child, 'SIGKILL');
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    addr: `unix://${sock}`,
    logFile,
    log: () => readFile(logFile, 'utf8'),
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          killGroup(child, 'SIGTERM');
          const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 20_000);
          await exited;
          clearTimeout(timer);
        }
        const closed = once(logStream, 'close');
        logStream.end();
        await closed;
      })();
      return stopping;
    },
  };
}

/** One vertex of `buildctl build --progress=rawjson`, merged over all its updates. */
export interface Vertex {
  name: string;
  cached: boolean;
  completed: boolean;
  error?: string;
}

/** Parses `--progress=rawjson` output into vertices by name (non-JSON lines are ignored). */
export function parseRawProgress(output: string): Map<string, Vertex> {
  const byDigest = new Map<string, Vertex>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    let status: {
      vertexes?: { digest: string; name?: string; cached?: boolean; completed?: string; error?: string }[];
    };
    try {
      status = JSON.parse(line);
    } catch {
      continue;
    }
    for (const v of status.vertexes ?? []) {
      const prev = byDigest.get(v.digest) ?? { name: '', cached: false, completed: false };
      byDigest.set(v.digest, {
        name: v.name ?? prev.name,
        cached: prev.cached || v.cached === true,
        completed: prev.completed || v.completed !== undefined,
        ...((v.error ?? prev.error) ? { error: v.error ?? prev.error } : {}),
      });
    }
  }
  return new Map([...byDigest.values()].map((v) => [v.name, v]));
}

export interface FreshBuildOptions {
  /** The installed BuildKit and runc (`requirePeers(['runc', 'buildkit'])`). */
  peers: Required<Pick<InstalledPeers, 'buildkit' | 'runc'>>;
  /** Private state of the daemon (`bk/`) and the build's output (`out/`) go here. */
  dir: string;
  /** Build context holding the Dockerfile. */
  context: string;
  /** More `buildctl build` arguments, e.g. `['--export-cache', 'type=gha,…']`. */
  args?: readonly string[];
  timeoutMs?: number;
}

export interface FreshBuild {
  result: CommandResult;
  vertices: Map<string, Vertex>;
  /** Where `--output type=local` wrote the image's files. */
  output: string;
  /** The daemon's log, read only when the build failed (empty otherwise). */
  daemonLog: string;
}

/**
 * Runs one `buildctl build --progress=rawjson` of `context` in a brand-new buildkitd (empty state, so an
 * import can only come from the cache service), then stops the daemon. Never throws on the exit code.
 */
export async function buildInFreshDaemon(options: FreshBuildOptions): Promise<FreshBuild> {
  const { peers, dir, context } = options;
  const daemon = await startBuildkitd({
    buildkitd: peers.buildkit.buildkitd,
    runcDir: dirname(peers.runc.bin),
    dir: join(dir, 'bk'),
  });
  const output = join(dir, 'out');
  try {
    const result = await runCommand(
      peers.buildkit.buildctl,
      [
        '--addr',
        daemon.addr,
        'build',
        '--progress=rawjson',
        '--frontend',
        'dockerfile.v0',
        '--local',
        `context=${context}`,
        '--local',
        `dockerfile=${context}`,
        '--output',
        `type=local,dest=${output}`,
        ...(options.args ?? []),
      ],
      { timeoutMs: options.timeoutMs ?? 240_000 },
    );
    return {
      result,
      vertices: parseRawProgress(`${result.stdout}\n${result.stderr}`),
      output,
      daemonLog: result.code === 0 ? '' : await daemon.log(),
    };
  } finally {
    await daemon.stop();
  }
}
