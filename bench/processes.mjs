// What the many-clients, downloads and BuildKit end-to-end benches share: child processes (servers that
// print a ready line, clients that print one JSON line), the mock's CLI started on a data dir, its Twirp
// calls, a random file with its SHA-256, and a doc section rewritten between two markers.
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..');
const require = createRequire(import.meta.url);
export const MOCK_MAIN = join(dirname(require.resolve('@gha-cache/mock-server')), 'main.js');
export const SERVICE = '/twirp/github.actions.results.api.v1.CacheService';
export const MiB = 1024 * 1024;

const children = new Set();

/** Stops every child still running (call in a `finally`). */
export async function stopAll() {
  await Promise.all([...children].map(stopChild));
}

/**
 * Spawns `command` (node by default); resolves once `ready(line, state)` returns something for a stdout
 * line. Every stderr line goes to `onStderrLine`, every later stdout line to `onStdoutLine`.
 */
export function startChild(name, argv, ready, { command = process.execPath, onStderrLine, env } = {}) {
  const child = spawn(command, argv, { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], env });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  if (onStderrLine) createInterface({ input: child.stderr }).on('line', onStderrLine);
  child.on('exit', () => children.delete(child));
  const lines = createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    const state = {};
    let done = false;
    lines.on('line', (line) => {
      if (done) return;
      const result = ready(line, state);
      if (result) {
        done = true;
        resolve({ child, pid: child.pid, lines, ...result });
      }
    });
    child.on('exit', (code) => {
      if (!done) reject(new Error(`${name} exited (${code}) before ready: ${stderr}`));
    });
    child.on('error', reject);
  });
}

export async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Runs `command` to completion; resolves with its stdout (rejects with its stderr tail on failure). */
export function run(command, argv, { env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err = (err + d).slice(-4000);
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      children.delete(child);
      if (code !== 0) reject(new Error(`${command} ${argv.join(' ')} exited ${code}: ${err}`));
      else resolve(out);
    });
  });
}

/** Runs a node script to completion and parses its last stdout line as JSON. */
export async function runJson(argv) {
  const out = await run(process.execPath, argv);
  return JSON.parse(out.trim().split('\n').pop());
}

export const readyPort = (line) => {
  const m = /^READY (\d+)$/.exec(line);
  return m ? { port: Number(m[1]), url: `http://127.0.0.1:${m[1]}` } : undefined;
};

/**
 * `gha-cache-mock serve` (fs storage) on `dataDir`, port 0; resolves with its URL and token once it has
 * printed its `export` lines. `rpc(method, body)` calls its Twirp service with that token.
 */
export async function startMock(
  dataDir,
  { main = MOCK_MAIN, logLevel = 'silent', onStderrLine, nodeFlags = [] } = {},
) {
  const mock = await startChild(
    'mock server',
    [...nodeFlags, main, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', logLevel],
    (line, state) => {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) state[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
      return state.ACTIONS_RESULTS_URL && state.ACTIONS_RUNTIME_TOKEN
        ? { url: state.ACTIONS_RESULTS_URL.replace(/\/$/, ''), token: state.ACTIONS_RUNTIME_TOKEN }
        : undefined;
    },
    { onStderrLine },
  );
  mock.rpc = async (method, body) => {
    const res = await fetch(`${mock.url}${SERVICE}/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${mock.token}` },
      body: JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok || json.ok === false) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  return mock;
}

/** A file of `size` random bytes in `dir` (made once, reused while its size matches) and its SHA-256. */
export async function randomFile(dir, size) {
  await mkdir(dir, { recursive: true });
  const file = join(dir, `blob-${size}.bin`);
  const sumFile = `${file}.sha256`;
  try {
    if ((await stat(file)).size === size) return { file, sha256: (await readFile(sumFile, 'utf8')).trim() };
  } catch {}
  const hash = createHash('sha256');
  async function* gen() {
    const chunk = Buffer.allocUnsafe(8 * MiB);
    for (let left = size; left > 0; left -= chunk.length) {
      const part = randomFillSync(chunk).subarray(0, Math.min(left, chunk.length));
      hash.update(part);
      yield Buffer.from(part);
    }
  }
  await pipeline(gen(), createWriteStream(file));
  const sha256 = hash.digest('hex');
  await writeFile(sumFile, `${sha256}\n`);
  return { file, sha256 };
}

export async function sha256Of(file) {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 4 * MiB }), hash);
  return hash.digest('hex');
}

/** One line on the machine and the load, for the head of a doc section. */
export function machineLine() {
  const cpu = os.cpus()[0]?.model.split(' ').slice(0, 2).join(' ') ?? 'unknown CPU';
  return `Run ${new Date().toISOString()} on ${os.availableParallelism()} CPUs (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}; load average (1 min) at the end ${os.loadavg()[0].toFixed(1)}.`;
}

/** Rewrites the part of docs/benchmarks.md between `<!-- name:begin … -->` and `<!-- name:end -->`. */
export async function writeDocSection(name, script, markdown, heading) {
  const file = join(root, 'docs', 'benchmarks.md');
  const doc = await readFile(file, 'utf8');
  const begin = `<!-- ${name}:begin (generated by ${script}) -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  const next =
    a >= 0 && b > a
      ? doc.slice(0, a) + block + doc.slice(b + end.length)
      : `${doc.trimEnd()}\n\n## ${heading}\n\n${block}\n`;
  await writeFile(file, next);
}

export const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
export const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
export const mb = (bytes) => `${(bytes / 1e6).toFixed(0)} MB`;
export const mark = (ok) => (ok ? '✅' : '❌');
