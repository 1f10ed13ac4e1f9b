// The mock server's benchmark: one run, loopback only, each server in its
// own child process so its RSS is its own.
//   1. Blob transfers of one incompressible file with @azure/storage-blob 12.31.0 (bench/blob-client.mjs:
//      uploadFile 64 MiB blocks × 8, download as @actions/cache does: 4 MiB ranged GETs × 8) against
//      the mock (fs storage), the raw node:http baseline (bench/raw-server.mjs) and Azurite 3.35.0,
//      interleaved, median of --repeat; peak RSS of each server (VmRSS every 50 ms, VmHWM at the end).
//   2. GetCacheEntryDownloadURL hits (exact and prefix, random entries) with autocannon on a store of
//      --entries committed entries, against the mock and two hello-JSON baselines (node:http, Fastify).
// Prints a Markdown table, writes bench/.out/mock-server-<time>.json and (unless --no-doc) the
// "Mock server" section of docs/benchmarks.md between its markers. Needs `pnpm run build` first.
//
//   node bench/mock-server.mjs [--size 1G] [--repeat 5] [--warmup 1] [--entries 100000] [--duration 10]
//        [--connections 64] [--cpu-prof] [--mock-main F] [--compare-main F] [--keep] [--no-doc] [--skip-transfers] [--skip-lookups]
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  BlobSASPermissions,
  BlobServiceClient,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import autocannon from 'autocannon';
import { waitForIdle } from './cpu.mjs';
import { entryKey, entryPrefix, VERSION as LOOKUP_VERSION } from './lookup-keys.mjs';
import { median, memoryOf, parseSize, withRssPolling } from './measure.mjs';
import { dropMockEntry } from './mock-admin.mjs';
import { randomFile, sha256Of } from './processes.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const require = createRequire(import.meta.url);
const AZURITE_MAIN = join(dirname(require.resolve('azurite/package.json')), 'dist/src/blob/main.js');
const SERVICE = '/twirp/github.actions.results.api.v1.CacheService';
const MiB = 1024 * 1024;
const AZURITE_ACCOUNT = 'devstoreaccount1';
// The documented, public Azurite development key (not a secret).
const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    repeat: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    entries: { type: 'string', default: '100000' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    'cpu-prof': { type: 'boolean', default: false },
    'mock-main': { type: 'string' },
    'compare-main': { type: 'string' },
    keep: { type: 'boolean', default: false },
    'no-doc': { type: 'boolean', default: false },
    'skip-transfers': { type: 'boolean', default: false },
    'skip-lookups': { type: 'boolean', default: false },
  },
});
const SIZE = parseSize(args.size);
const REPEAT = Number(args.repeat);
const WARMUP = Number(args.warmup);
const ENTRIES = Number(args.entries);
const DURATION = Number(args.duration);
const CONNECTIONS = Number(args.connections);
// --mock-main runs another build of the CLI (e.g. a patched copy) to measure a proposed change.
const MOCK_MAIN = args['mock-main'] ?? join(dirname(require.resolve('@gha-cache/mock-server')), 'main.js');

const OUT = join(here, '.out');
const RUN = join(OUT, `run-${process.pid}`);
const PROF_DIR = join(OUT, 'prof');
const log = (m) => process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);
const t0 = performance.now();
const children = new Set();

// ---------------------------------------------------------------- processes and memory

/** Spawns a node child; resolves once `ready(line)` matches a stdout line (returns what it returned). */
function startChild(name, nodeArgs, ready, { cwd = root, onStderrLine } = {}) {
  const child = spawn(process.execPath, nodeArgs, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
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
    lines.on('line', (line) => {
      const result = ready(line, state);
      if (result) resolve({ child, pid: child.pid, ...result });
    });
    child.on('exit', (code) => reject(new Error(`${name} exited (${code}) before ready: ${stderr}`)));
    child.on('error', reject);
  });
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Runs a node child to completion and parses its last stdout line as JSON. */
function runChild(nodeArgs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, nodeArgs, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
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
      if (code !== 0) reject(new Error(`${nodeArgs.join(' ')} exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// ---------------------------------------------------------------- servers

const profFlags = (name) =>
  args['cpu-prof']
    ? ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`]
    : [];

async function startMock(dataDir, profName, { logLevel = 'silent', onStderrLine, main = MOCK_MAIN } = {}) {
  const s = await startChild(
    'mock server',
    [...profFlags(profName), main, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', logLevel],
    (line, state) => {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) state[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
      return state.ACTIONS_RESULTS_URL && state.ACTIONS_RUNTIME_TOKEN
        ? { url: state.ACTIONS_RESULTS_URL.replace(/\/$/, ''), token: state.ACTIONS_RUNTIME_TOKEN }
        : undefined;
    },
    { onStderrLine },
  );
  return s;
}

async function twirp(mock, method, body) {
  const res = await fetch(`${mock.url}${SERVICE}/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${mock.token}` },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const readyPort = (line) => {
  const m = /^READY (\d+)$/.exec(line);
  return m ? { port: Number(m[1]) } : undefined;
};

/** Collects the `ms` of `{"op":"PutBlockList",…}` JSON log lines into `into`. */
const commitTimes = (into) => (line) => {
  if (!line.includes('"PutBlockList"')) return;
  try {
    into.push(JSON.parse(line).ms);
  } catch {}
};

/** A mock server target for the blob transfers, from the CLI at `main`. */
async function startMockTarget(name, label, main) {
  // Request log on (the CLI's default level): it gives each Put Block List's duration (assembly + fsync).
  const commits = [];
  const mock = await startMock(join(RUN, `${name}-data`), `${name}-transfers`, {
    logLevel: 'info',
    onStderrLine: commitTimes(commits),
    main,
  });
  mock.commitMs = commits;
  const version = createHash('sha256').update('bench-blob').digest('hex');
  mock.name = name;
  mock.label = label;
  mock.uploadUrl = async (n) => {
    const key = `bench-blob-${n}`;
    const r = await twirp(mock, 'CreateCacheEntry', { key, version });
    if (!r.ok) throw new Error(`CreateCacheEntry: ${JSON.stringify(r)}`);
    return r.signed_upload_url;
  };
  mock.afterUpload = async (n) => {
    const r = await twirp(mock, 'FinalizeCacheEntryUpload', {
      key: `bench-blob-${n}`,
      version,
      size_bytes: String(SIZE),
    });
    if (!r.ok) throw new Error(`FinalizeCacheEntryUpload: ${JSON.stringify(r)}`);
  };
  mock.downloadUrl = async (n) => {
    const r = await twirp(mock, 'GetCacheEntryDownloadURL', {
      key: `bench-blob-${n}`,
      version,
      restore_keys: [],
    });
    if (!r.ok || r.matched_key !== `bench-blob-${n}`) throw new Error(`lookup: ${JSON.stringify(r)}`);
    return r.signed_download_url;
  };
  // Like the raw server and Azurite, drop the blob after its download so no target keeps more page
  // cache than the others.
  mock.afterDownload = (n) => dropMockEntry(mock.url, `bench-blob-${n}`);
  return mock;
}

/** The blob targets (mock, [patched mock], raw, Azurite), each with how to get signed URLs for transfer `n`. */
async function startBlobTargets() {
  const mock = await startMockTarget('mock', 'mock server (fs storage)', MOCK_MAIN);
  const alt = args['compare-main']
    ? [await startMockTarget('alt', `patched mock (${args['compare-main']})`, args['compare-main'])]
    : [];

  const rawCommits = [];
  const raw = await startChild(
    'raw server',
    [join(here, 'raw-server.mjs'), join(RUN, 'raw-data')],
    readyPort,
    {
      onStderrLine: commitTimes(rawCommits),
    },
  );
  raw.commitMs = rawCommits;
  raw.name = 'raw';
  raw.label = 'raw node:http baseline';
  const rawUrl = (n) => `http://127.0.0.1:${raw.port}/account/container/blob-${n}`;
  raw.uploadUrl = async (n) => rawUrl(n);
  raw.afterUpload = async () => {};
  raw.downloadUrl = async (n) => rawUrl(n);
  raw.afterDownload = async (n) => {
    await fetch(rawUrl(n), { method: 'DELETE' });
  };

  const azPort = await freePort();
  const azurite = await startChild(
    'azurite',
    [
      AZURITE_MAIN,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(azPort),
      '--location',
      join(RUN, 'azurite'),
      '--skipApiVersionCheck',
      '--loose',
      '--silent',
    ],
    (line) => (/successfully listens/.test(line) ? { port: azPort } : undefined),
  );
  azurite.name = 'azurite';
  azurite.label = 'Azurite 3.35.0 (disk)';
  const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  const service = new BlobServiceClient(`http://127.0.0.1:${azPort}/${AZURITE_ACCOUNT}`, credential);
  const container = service.getContainerClient('bench');
  await container.createIfNotExists();
  const sasUrl = (n) => {
    const blobName = `blob-${n}`;
    const sas = generateBlobSASQueryParameters(
      {
        containerName: 'bench',
        blobName,
        permissions: BlobSASPermissions.parse('rcw'),
        startsOn: new Date(Date.now() - 60_000),
        expiresOn: new Date(Date.now() + 3_600_000),
      },
      credential,
    );
    return `${container.getBlockBlobClient(blobName).url}?${sas}`;
  };
  azurite.uploadUrl = async (n) => sasUrl(n);
  azurite.afterUpload = async () => {};
  azurite.downloadUrl = async (n) => sasUrl(n);
  azurite.afterDownload = async (n) => {
    await container.deleteBlob(`blob-${n}`);
  };
  return [mock, ...alt, raw, azurite];
}

// ---------------------------------------------------------------- part 1: blob transfers

async function benchTransfers() {
  const blob = await randomFile(OUT, SIZE);
  const targets = await startBlobTargets();
  const clientScript = join(here, 'blob-client.mjs');
  const downloaded = join(RUN, 'downloaded.bin');
  const idleRss = Object.fromEntries(targets.map((t) => [t.name, memoryOf(t.pid).rss]));
  const results = Object.fromEntries(
    targets.map((t) => [
      t.name,
      {
        upload: [],
        download: [],
        uploadCpu: [],
        downloadCpu: [],
        load: [],
        peakRss: 0,
        peakRssUpload: 0,
        peakRssDownload: 0,
      },
    ]),
  );
  let n = 0;
  // Every transfer starts with no dirty pages (`sync`, untimed): otherwise one target's writeback
  // throttles the next one's writes and the figures depend on the order.
  // Then it waits until every server is idle: a target's deferred work (Azurite collects deleted blobs
  // seconds later) must not run during the next target's transfer.
  const settle = async () => {
    spawnSync('sync', { stdio: 'ignore' });
    await waitForIdle(targets.map((t) => t.pid));
  };
  // Warm-up rounds (untimed, but their RSS counts): the first transfers on a fresh VM run slower for
  // every target (the guest touches new memory pages for the page cache; JIT warm-up of each server).
  for (let rep = -WARMUP; rep < REPEAT; rep++) {
    if (rep === 0) for (const t of targets) t.commitMs?.splice(0);
    // Rotate the order every repetition, and reverse it every other one, so no target always runs
    // first or right after the same other target.
    const rotated = targets.map((_, i) => targets[(i + rep + WARMUP) % targets.length]);
    const order = (rep + WARMUP) % 2 === 0 ? rotated : rotated.reverse();
    for (const t of order) {
      n++;
      await settle();
      const up = await withRssPolling(t.pid, async () =>
        runChild([clientScript, 'upload', await t.uploadUrl(n), blob.file]),
      );
      await t.afterUpload(n);
      await settle();
      const down = await withRssPolling(t.pid, async () =>
        runChild([clientScript, 'download', await t.downloadUrl(n), downloaded]),
      );
      const got = await sha256Of(downloaded);
      if (got !== blob.sha256) throw new Error(`${t.name}: downloaded content differs (sha256 ${got})`);
      await rm(downloaded, { force: true });
      await t.afterDownload(n);
      const r = results[t.name];
      const mibs = (x) => SIZE / MiB / (x.result.ms / 1000);
      r.peakRss = Math.max(r.peakRss, up.peakRss, down.peakRss);
      r.peakRssUpload = Math.max(r.peakRssUpload, up.peakRss);
      r.peakRssDownload = Math.max(r.peakRssDownload, down.peakRss);
      const what = `${rep < 0 ? 'warm-up' : `#${rep + 1}`} ${t.name}`.padEnd(16);
      log(
        `${what} upload ${f0(mibs(up)).padStart(4)} MiB/s  download ${f0(mibs(down)).padStart(4)} MiB/s  ` +
          `server RSS peak up ${mb(up.peakRss)} MB / down ${mb(down.peakRss)} MB  CPU up ${f2(up.cpuSeconds)} s / down ${f2(down.cpuSeconds)} s`,
      );
      if (rep < 0) continue;
      r.upload.push(mibs(up));
      r.download.push(mibs(down));
      r.uploadCpu.push(up.cpuSeconds);
      r.downloadCpu.push(down.cpuSeconds);
      r.load.push(os.loadavg()[0]);
    }
  }
  for (const t of targets) {
    results[t.name].idleRss = idleRss[t.name];
    if (t.commitMs) results[t.name].commitMs = t.commitMs;
  }
  for (const t of targets) {
    results[t.name].hwm = memoryOf(t.pid).hwm;
    results[t.name].label = t.label;
    await stopChild(t.child);
  }
  return results;
}

// ---------------------------------------------------------------- part 2: lookups

const lookupBody = (exact) => {
  const i = Math.floor(Math.random() * ENTRIES);
  // Half exact hits; half prefix hits (the key is only a prefix: the exact step misses, then the
  // newest entry with that prefix is found), as restores from a partial key do.
  return JSON.stringify({
    key: exact ? entryKey(i) : entryPrefix(i),
    version: LOOKUP_VERSION,
    restore_keys: [],
  });
};

async function loadTest(url, headers, checkBody, duration) {
  let n = 0;
  let okBodies = 0;
  let badBodies = 0;
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    pipelining: 1,
    duration,
    requests: [
      {
        method: 'POST',
        path: `${SERVICE}/GetCacheEntryDownloadURL`,
        headers: { 'content-type': 'application/json', ...headers },
        setupRequest: (req) => ({ ...req, body: lookupBody(n++ % 2 === 0) }),
        onResponse: (status, body) => {
          if (status === 200 && (!checkBody || checkBody(body))) okBodies++;
          else badBodies++;
        },
      },
    ],
  });
  return {
    rps: result.requests.average,
    requests: result.requests.total,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    okBodies,
    badBodies,
  };
}

async function benchLookups() {
  const dataDir = join(RUN, 'lookup-data');
  log(`preloading ${ENTRIES} committed entries (in-process createFsStorage)`);
  const preload = await runChild([join(here, 'preload.mjs'), dataDir, String(ENTRIES)]);
  log(`preloaded in ${(preload.ms / 1000).toFixed(1)} s`);
  const results = { preloadMs: preload.ms };

  const isHit = (body) => {
    const j = JSON.parse(body);
    return j.ok === true && j.signed_download_url.length > 0;
  };
  const mains = [['mock', 'mock server', MOCK_MAIN]];
  if (args['compare-main'])
    mains.push(['alt', `patched mock (${args['compare-main']})`, args['compare-main']]);
  let auth;
  for (const [name, label, main] of mains) {
    const mock = await startMock(dataDir, `${name}-lookups`, { main });
    auth = { authorization: `Bearer ${mock.token}` };
    await loadTest(mock.url, auth, isHit, 2); // warm-up (JIT, SQLite page cache)
    const m = await withRssPolling(mock.pid, () => loadTest(mock.url, auth, isHit, DURATION));
    results[name] = { ...m.result, peakRss: m.peakRss, hwm: memoryOf(mock.pid).hwm, label };
    log(
      `${name}: ${m.result.rps.toFixed(0)} req/s, p50 ${m.result.p50} ms, p99 ${m.result.p99} ms, non-2xx ${m.result.non2xx}`,
    );
    await stopChild(mock.child);
  }

  for (const kind of ['http', 'fastify']) {
    const s = await startChild(`hello ${kind}`, [join(here, 'hello-server.mjs'), kind], readyPort);
    const url = `http://127.0.0.1:${s.port}`;
    await loadTest(url, auth, undefined, 2);
    const r = await loadTest(url, auth, undefined, DURATION);
    results[kind] = { ...r, label: kind === 'http' ? 'hello JSON, node:http' : 'hello JSON, Fastify 5' };
    log(`${kind}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms`);
    await stopChild(s.child);
  }
  return results;
}

// ---------------------------------------------------------------- profile summary

/** Self time by function (top 25) and by package/file of the newest profile of each kind. */
async function summarizeProfiles() {
  let names;
  try {
    names = (await readdir(PROF_DIR)).filter((f) => f.endsWith('.cpuprofile')).sort();
  } catch {
    return [];
  }
  const out = [];
  for (const kind of ['mock-transfers', 'mock-lookups']) {
    const name = names.filter((f) => f.startsWith(kind)).pop();
    if (!name) continue;
    const prof = JSON.parse(await readFile(join(PROF_DIR, name), 'utf8'));
    const dt = new Map();
    for (let i = 0; i < prof.samples.length; i++) {
      dt.set(prof.samples[i], (dt.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
    }
    const total = [...dt.values()].reduce((a, b) => a + b, 0);
    const byFn = new Map();
    const byFile = new Map();
    for (const node of prof.nodes) {
      const us = dt.get(node.id) ?? 0;
      if (!us) continue;
      const cf = node.callFrame;
      const file = cf.url
        .replace(/^file:\/\//, '')
        .replace(/.*node_modules\/\.pnpm\/[^/]+\/node_modules\//, '')
        .replace(`${root}/`, '');
      const fn = `${cf.functionName || '(anonymous)'} ${file}:${cf.lineNumber + 1}`;
      byFn.set(fn, (byFn.get(fn) ?? 0) + us);
      const group =
        file.startsWith('packages/') || file.startsWith('node:')
          ? file
          : file
              .split('/')
              .slice(0, file.startsWith('@') ? 2 : 1)
              .join('/') || cf.functionName;
      byFile.set(group, (byFile.get(group) ?? 0) + us);
    }
    const top = (m, k) =>
      [...m.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, k)
        .map(([f, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${f}`);
    out.push({
      kind,
      file: relative(root, join(PROF_DIR, name)),
      totalMs: total / 1000,
      byFunction: top(byFn, 25),
      byFile: top(byFile, 15),
    });
  }
  return out;
}

// ---------------------------------------------------------------- report

function machine() {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    ramGiB: Math.round(os.totalmem() / 1024 ** 3),
    cpu,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
  };
}

const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const mb = (bytes) => (bytes / 1e6).toFixed(0);
const mark = (ok) => (ok ? '✅' : '❌');

function report(m, transfers, lookups) {
  const lines = [];
  lines.push(
    `Run ${m.date} on ${m.nproc} CPUs (${m.cpu}), ${m.ramGiB} GiB RAM, ${m.kernel}, Node ${m.node}.`,
    `Command: \`npx -y pnpm@10.34.8 run bench\` (= \`pnpm run build && node bench/mock-server.mjs\`).`,
    '',
  );
  if (transfers) {
    const mk = transfers.mock;
    const raw = transfers.raw;
    const az = transfers.azurite;
    lines.push(
      `### Blob transfers: ${SIZE / MiB} MiB of random bytes, median of ${REPEAT} interleaved runs after ${WARMUP} warm-up round`,
      '',
      'Upload: `BlockBlobClient.uploadFile(file, { blockSize: 64 MiB, concurrency: 8 })`. Download: the',
      'path of `@actions/cache` 6.x on Azure: `getProperties`, then 128 MiB segments of',
      '`downloadToBuffer(offset, count, { concurrency: 8 })` (4 MiB ranged GETs, 8 in flight) written to',
      "the file. Each transfer runs in a fresh client process; MiB/s counts the SDK calls only (the mock's",
      'Create/Finalize/Get RPCs are not timed). Every download is checked by SHA-256. `sync` runs',
      "before every transfer (untimed) so none starts with another one's dirty pages. Server CPU is",
      'user + system seconds of the server process during the transfer (from /proc/<pid>/stat).',
      '',
      '| target | upload MiB/s | download MiB/s | server CPU s up / down | server RSS idle → peak up / down (VmHWM) | all runs up / down MiB/s |',
      '| --- | ---: | ---: | ---: | ---: | --- |',
    );
    for (const name of ['mock', 'alt', 'raw', 'azurite']) {
      if (!transfers[name]) continue;
      const t = transfers[name];
      lines.push(
        `| ${t.label} | ${f0(median(t.upload))} | ${f0(median(t.download))} | ${f2(median(t.uploadCpu))} / ${f2(median(t.downloadCpu))} | ${mb(t.idleRss)} → ${mb(t.peakRssUpload)} / ${mb(t.peakRssDownload)} MB (${mb(t.hwm)}) | ${t.upload.map(f0).join(', ')} / ${t.download.map(f0).join(', ')} |`,
      );
    }
    const upRaw = median(mk.upload) / median(raw.upload);
    const downRaw = median(mk.download) / median(raw.download);
    const upAz = median(mk.upload) / median(az.upload);
    const downAz = median(mk.download) / median(az.download);
    const peak = Math.max(mk.peakRss, mk.hwm);
    lines.push(
      '',
      '| ratio | upload | download | target |',
      '| --- | ---: | ---: | --- |',
      `| mock / raw | ${f2(upRaw)} ${mark(upRaw >= 0.7)} | ${f2(downRaw)} ${mark(downRaw >= 0.7)} | ≥ 0.70 |`,
      `| mock / Azurite | ${f2(upAz)} ${mark(upAz >= 2)} | ${f2(downAz)} ${mark(downAz >= 2)} | ≥ 2 |`,
      `| mock peak RSS | ${mb(peak)} MB ${mark(peak < 150e6)} | | < 150 MB |`,
      ...(transfers.alt
        ? [
            `| patched / raw | ${f2(median(transfers.alt.upload) / median(raw.upload))} | ${f2(median(transfers.alt.download) / median(raw.download))} | |`,
            `| patched / Azurite | ${f2(median(transfers.alt.upload) / median(az.upload))} | ${f2(median(transfers.alt.download) / median(az.download))} | |`,
            `| patched peak RSS | ${mb(Math.max(transfers.alt.peakRss, transfers.alt.hwm))} MB | | |`,
          ]
        : []),
      '',
      'Where upload time goes: the server-side duration of Put Block List (assembling the staged blocks into',
      'the blob file; the mock also fsyncs it), from the request logs, against the whole upload:',
      '',
      `- mock: Put Block List ${mk.commitMs.map(f0).join(', ')} ms of uploads taking ${mk.upload.map((x) => f0((SIZE / MiB / x) * 1000)).join(', ')} ms`,
      ...(transfers.alt
        ? [
            `- patched mock: Put Block List ${transfers.alt.commitMs.map(f0).join(', ')} ms of uploads taking ${transfers.alt.upload.map((x) => f0((SIZE / MiB / x) * 1000)).join(', ')} ms`,
          ]
        : []),
      `- raw: Put Block List ${raw.commitMs.map(f0).join(', ')} ms of uploads taking ${raw.upload.map((x) => f0((SIZE / MiB / x) * 1000)).join(', ')} ms`,
      '',
    );
  }
  if (lookups) {
    const mk = lookups.mock;
    lines.push(
      `### GetCacheEntryDownloadURL: ${ENTRIES} committed entries, ${CONNECTIONS} connections, ${DURATION} s`,
      '',
      `Store preloaded in ${(lookups.preloadMs / 1000).toFixed(1)} s through \`createFsStorage\` (metadata.reserveEntry,`,
      'blobs.putBlob of 16 bytes, metadata.commitEntry), then served by the CLI on that data dir. autocannon 8.0.0 in the',
      'bench process, after a 2 s warm-up; each request asks for a random entry, alternating the exact key',
      'and a prefix that only that entry has (exact step misses, prefix step hits). The baselines answer',
      'the same requests with a fixed JSON body.',
      '',
      '| server | req/s | p50 ms | p99 ms | non-2xx | errors | hits checked | server peak RSS |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const name of ['mock', 'alt', 'http', 'fastify']) {
      const r = lookups[name];
      if (!r) continue;
      lines.push(
        `| ${r.label} | ${f0(r.rps)} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors + r.timeouts} | ${name === 'mock' || name === 'alt' ? `${r.okBodies} ok / ${r.badBodies} not` : '—'} | ${r.peakRss ? `${mb(r.peakRss)} MB` : '—'} |`,
      );
    }
    lines.push(
      '',
      `Mock: ${f0(mk.rps)} req/s ${mark(mk.rps >= 5000)} (target ≥ 5,000), non-2xx ${mk.non2xx} ${mark(mk.non2xx === 0 && mk.badBodies === 0 && mk.errors === 0)};`,
      `${f2(mk.rps / lookups.http.rps)} × node:http hello, ${f2(mk.rps / lookups.fastify.rps)} × Fastify hello.`,
      '',
    );
  }
  return lines.join('\n');
}

const BEGIN = '<!-- mock-server-bench:begin (generated by bench/mock-server.mjs) -->';
const END = '<!-- mock-server-bench:end -->';

async function writeDoc(markdown) {
  const file = join(root, 'docs', 'benchmarks.md');
  let doc;
  try {
    doc = await readFile(file, 'utf8');
  } catch {
    doc = '# Benchmarks\n';
  }
  const block = `${BEGIN}\n${markdown.trim()}\n${END}`;
  if (doc.includes(BEGIN) && doc.includes(END)) {
    doc = doc.slice(0, doc.indexOf(BEGIN)) + block + doc.slice(doc.indexOf(END) + END.length);
  } else if (doc.includes('\n## Mock server\n')) {
    const at = doc.indexOf('\n## Mock server\n') + '\n## Mock server\n'.length;
    doc = `${doc.slice(0, at)}\n${block}\n${doc.slice(at)}`;
  } else {
    doc = `${doc.trimEnd()}\n\n## Mock server\n\n${block}\n`;
  }
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, doc);
  log(`wrote ${relative(root, file)}`);
}

// ---------------------------------------------------------------- main

async function main() {
  await mkdir(RUN, { recursive: true });
  if (args['cpu-prof']) await mkdir(PROF_DIR, { recursive: true });
  const m = machine();
  const transfers = args['skip-transfers'] ? undefined : await benchTransfers();
  const lookups = args['skip-lookups'] ? undefined : await benchLookups();
  const markdown = report(m, transfers, lookups);
  const profiles = await summarizeProfiles();
  const json = join(OUT, `mock-server-${m.date.replace(/[:.]/g, '-')}.json`);
  await writeFile(json, JSON.stringify({ machine: m, args, transfers, lookups, profiles }, null, 2));
  process.stdout.write(`\n${markdown}\n`);
  for (const p of profiles) {
    process.stdout.write(
      `\nCPU profile ${p.file} (${p.totalMs.toFixed(0)} ms sampled), self time by function:\n${p.byFunction.join('\n')}\nby package/file:\n${p.byFile.join('\n')}\n`,
    );
  }
  if (!args['no-doc'] && transfers && lookups) await writeDoc(markdown);
  log(`results in ${relative(root, json)}; total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

try {
  await main();
} finally {
  await Promise.all([...children].map(stopChild));
  if (!args.keep) await rm(RUN, { recursive: true, force: true });
}
