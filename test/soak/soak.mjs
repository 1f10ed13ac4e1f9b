#!/usr/bin/env node
/**
 * Soak: one `gha-cache-mock serve` (the built CLI, its own process) under a bounded mixed workload for a
 * fixed time, then checks that nothing leaked or broke.
 *
 *   node test/soak/soak.mjs [--duration 15m] [--warmup 3m] [--json FILE]
 *
 * Loops, each bounded by the deadline: Azure SDK multi-block uploads (1 MiB blocks) and ranged downloads,
 * whole-blob GETs, real `@actions/cache` saves and restores, lookups at a high rate (hits and misses),
 * REST listings and deletes, reservations abandoned with staged blocks, and a control loop that moves
 * the simulated clock (reservations expire, a small quota evicts) and adds a one-shot fault rule now and
 * then (clients retry through it). Asserts at the end: no unexpected error; every download and restore
 * byte-identical; RSS and open descriptors of the server after warm-up within 1.25× their value at the
 * end of warm-up; no staged or temporary file left once every reservation has expired; no blob file
 * without an entry; usage figures equal to the sum of the entries. Exit 0 when all hold.
 *
 * `runSoak(options)` is the same as a function (the CI test runs a 2-minute variant through it).
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const MOCK_CLI = fileURLToPath(new URL('../../packages/mock-server/dist/main.js', import.meta.url));
const SERVICE = '/twirp/github.actions.results.api.v1.CacheService/';
const VERSION = 'soak-version-1';
const MiB = 1024 * 1024;
const REPO = 'octo-org/octo-repo';
/** Simulated-time settings the workload relies on: a reservation expires after 2 simulated minutes. */
const PENDING_TTL = '2m';
const QUOTA_BYTES = 96 * MiB;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Incompressible, reproducible content: AES-256-CTR of zeros keyed by the seed. */
export function contentFor(seed, size) {
  const key = createHash('sha256').update(`soak:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

const sha = (buf) => createHash('sha256').update(buf).digest('hex');

/** Many readers (transfers, lookups) or one writer (the clock): moving time never lands inside a transfer. */
function createRwLock() {
  let readers = 0;
  let writer = false;
  const waiters = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  return {
    async read(fn) {
      while (writer) await new Promise((r) => waiters.push(r));
      readers++;
      try {
        return await fn();
      } finally {
        readers--;
        if (readers === 0) wake();
      }
    },
    async write(fn) {
      writer = true;
      try {
        while (readers > 0) await new Promise((r) => waiters.push(r));
        return await fn();
      } finally {
        writer = false;
        wake();
      }
    },
  };
}

async function startServer(dataDir, logFile) {
  const args = [
    MOCK_CLI,
    'serve',
    '--port',
    '0',
    '--data-dir',
    dataDir,
    '--log-level',
    'warn',
    '--pending-ttl',
    PENDING_TTL,
    '--quota',
    String(QUOTA_BYTES),
    '--rate-limit',
    'off',
    '--download-url-ttl',
    '60m',
  ];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr += d.toString();
    if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
  });
  const env = {};
  const exited = once(proc, 'exit');
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mock did not start: ${stderr}`)), 60_000);
    exited.then(([code]) => reject(new Error(`mock exited with ${code}: ${stderr}`)));
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) env[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
      if (env.ACTIONS_RUNTIME_TOKEN) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    proc,
    env,
    url: env.ACTIONS_RESULTS_URL.replace(/\/$/, ''),
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const [code, signal] = await exited;
      if (logFile) await writeFile(logFile, stderr);
      return code ?? signal;
    },
  };
}

async function sampleProcess(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  return { rssMiB: Math.round((rssKb / 1024) * 10) / 10, fds };
}

async function walkFiles(dir) {
  const out = [];
  const walk = async (d) => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch (err) {
      if (err.code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const full = join(d, e.name);
      if (e.isDirectory()) await walk(full);
      else out.push(full);
    }
  };
  await walk(dir);
  return out;
}

/**
 * Runs the soak. Options: `durationMs` (default 15 min), `warmupMs` (default a fifth of it, at most
 * 3 min), `log` (progress lines; default stderr).
 * Resolves to a report; `report.failures` lists every check that did not hold (empty = pass).
 */
export async function runSoak(options = {}) {
  const durationMs = options.durationMs ?? 15 * 60_000;
  const warmupMs = options.warmupMs ?? Math.min(180_000, Math.round(durationMs / 5));
  const log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
  const { BlockBlobClient } = await import('@azure/storage-blob');

  const root = await mkdtemp(join(tmpdir(), 'gha-soak-'));
  const dataDir = join(root, 'data');
  const work = join(root, 'work');
  await mkdir(work, { recursive: true });
  const server = await startServer(dataDir);
  const { url, env } = server;
  const token = env.ACTIONS_RUNTIME_TOKEN;
  const admin = `${url}/_admin`;

  // @actions/cache reads its service from process.env (in this process only).
  const savedEnv = { ...process.env };
  Object.assign(process.env, env, { RUNNER_TEMP: join(work, 'runner-temp') });
  delete process.env.GITHUB_SERVER_URL;
  await mkdir(process.env.RUNNER_TEMP, { recursive: true });
  const cache = await import('@actions/cache');
  // Keep @actions/core's per-step chatter off stdout (it prints ::debug:: and progress lines).
  const realStdoutWrite = process.stdout.write.bind(process.stdout);
  process.stdout.write = () => true;

  const started = Date.now();
  const deadline = started + durationMs;
  const running = () => Date.now() < deadline;
  const lock = createRwLock();
  const counts = {};
  /** RSS and descriptors of the server, taken by the control loop every ~4 s. */
  const samples = [];
  const bytes = { up: 0, down: 0 };
  const unexpected = [];
  const retried = { count: 0 };
  const count = (op, n = 1) => {
    counts[op] = (counts[op] ?? 0) + n;
  };
  const fail = (where, err) => {
    const msg = `${where}: ${err instanceof Error ? err.message : String(err)}`;
    if (unexpected.length < 50) unexpected.push(msg);
    log(`[soak] UNEXPECTED ${msg}`);
  };

  /** One Twirp call with a client's retry on 429/5xx (injected faults), at most 5 attempts. */
  async function rpc(method, body) {
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(url + SERVICE + method, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      count(method);
      if ((res.status === 429 || res.status >= 500) && attempt < 5) {
        retried.count++;
        await sleep(50 * attempt);
        continue;
      }
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        throw new Error(`${method}: ${res.status} non-JSON ${text.slice(0, 200)}`);
      }
      return { status: res.status, json };
    }
  }

  async function adminCall(method, path, body) {
    const res = await fetch(admin + path, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    count(`admin ${method}`);
    if (!res.ok) throw new Error(`admin ${method} ${path}: ${res.status} ${await res.text()}`);
    return res.status === 204 ? undefined : res.json();
  }

  /** Keys committed by the workload: key → { seed, size }. Entries may leave by eviction or delete. */
  const committed = new Map();
  let seq = 0;

  /** Whether the store still has a committed entry for `key` (a miss is expected only if not). */
  async function storeHas(key) {
    const { entries } = await adminCall(
      'GET',
      `/entries?key=${encodeURIComponent(key)}&state=committed&version=${VERSION}`,
    );
    return entries.length > 0;
  }

  async function lookup(key) {
    const res = await rpc('GetCacheEntryDownloadURL', { key, version: VERSION });
    if (res.status !== 200) throw new Error(`lookup ${key}: ${res.status} ${JSON.stringify(res.json)}`);
    // The primary key also matches by prefix: `sdk-1` can find `sdk-17` once `sdk-1` has gone.
    return res.json.ok && res.json.matched_key === key ? res.json.signed_download_url : undefined;
  }

  const pick = () => {
    const keys = [...committed.keys()];
    return keys.length ? keys[Math.floor(Math.random() * keys.length)] : undefined;
  };

  /** A known key's download URL, or undefined when the store no longer has it (evicted, deleted). */
  async function urlOf(key) {
    const signed = await lookup(key);
    if (signed) return signed;
    if (committed.has(key) && (await storeHas(key))) throw new Error(`lookup of committed ${key} missed`);
    committed.delete(key);
    return undefined;
  }

  const loops = {
    async sdkUpload() {
      const key = `sdk-${seq++}`;
      const seed = key;
      const size = MiB + Math.floor(Math.random() * 5 * MiB);
      await lock.read(async () => {
        const created = await rpc('CreateCacheEntry', { key, version: VERSION });
        if (!created.json.ok) throw new Error(`create ${key}: ${JSON.stringify(created.json)}`);
        const data = contentFor(seed, size);
        await new BlockBlobClient(created.json.signed_upload_url).uploadData(data, {
          blockSize: MiB,
          maxSingleShotSize: MiB,
          concurrency: 2,
        });
        count('sdk upload');
        bytes.up += size;
        const fin = await rpc('FinalizeCacheEntryUpload', {
          key,
          version: VERSION,
          size_bytes: String(size),
        });
        if (!fin.json.ok) throw new Error(`finalize ${key}: ${JSON.stringify(fin.json)}`);
        committed.set(key, { seed, size });
      });
      await sleep(200);
    },
    async rangedDownload() {
      const key = pick();
      if (!key) return sleep(200);
      await lock.read(async () => {
        const signed = await urlOf(key);
        if (!signed) return;
        const { seed, size } = committed.get(key) ?? {};
        if (seed === undefined) return;
        const offset = Math.floor(Math.random() * size);
        const length = Math.min(size - offset, 1 + Math.floor(Math.random() * 3 * MiB));
        const got = await new BlockBlobClient(signed).downloadToBuffer(offset, length, {
          blockSize: MiB,
          concurrency: 2,
        });
        count('sdk ranged download');
        bytes.down += got.length;
        if (!got.equals(contentFor(seed, size).subarray(offset, offset + length))) {
          throw new Error(`ranged download of ${key} [${offset}, +${length}) differs`);
        }
      });
      await sleep(100);
    },
    async wholeGet() {
      const key = pick();
      if (!key) return sleep(200);
      await lock.read(async () => {
        const signed = await urlOf(key);
        if (!signed) return;
        const { seed, size } = committed.get(key) ?? {};
        if (seed === undefined) return;
        let body;
        for (let attempt = 1; ; attempt++) {
          const res = await fetch(signed);
          count('whole GET');
          if (res.status >= 500 && attempt < 5) {
            await res.arrayBuffer();
            retried.count++;
            continue;
          }
          if (res.status !== 200) throw new Error(`GET ${key}: ${res.status}`);
          body = Buffer.from(await res.arrayBuffer());
          break;
        }
        bytes.down += body.length;
        if (sha(body) !== sha(contentFor(seed, size))) throw new Error(`whole GET of ${key} differs`);
      });
      await sleep(100);
    },
    async actionsCache() {
      const key = `ac-${seq++}`;
      const dir = join(work, key);
      const files = {
        'a.bin': contentFor(`${key}/a`, 200_000 + Math.floor(Math.random() * MiB)),
        'b.txt': key,
      };
      for (const [name, content] of Object.entries(files)) {
        await mkdir(dirname(join(dir, name)), { recursive: true });
        await writeFile(join(dir, name), content);
      }
      await lock.read(async () => {
        const id = await cache.saveCache([dir], key);
        count('@actions/cache save');
        if (!(id > 0)) throw new Error(`@actions/cache save of ${key} returned ${id}`);
        await rm(dir, { recursive: true });
        const hit = await cache.restoreCache([dir], key);
        count('@actions/cache restore');
        if (hit !== key) {
          // Evicted between save and restore by the small quota: allowed only if really gone.
          if (await storeHas(key)) throw new Error(`@actions/cache restore of ${key} missed`);
          return;
        }
        for (const [name, content] of Object.entries(files)) {
          const got = await readFile(join(dir, name));
          if (!got.equals(Buffer.from(content)))
            throw new Error(`@actions/cache restore of ${key}/${name} differs`);
        }
      });
      await rm(dir, { recursive: true, force: true });
      await sleep(1000);
    },
    async lookups() {
      await lock.read(async () => {
        for (let i = 0; i < 50; i++) {
          const hit = pick();
          const key = Math.random() < 0.7 && hit ? hit : `missing-${Math.floor(Math.random() * 1000)}`;
          await lookup(key);
        }
      });
    },
    async rest() {
      await lock.read(async () => {
        const res = await fetch(`${url}/repos/${REPO}/actions/caches?per_page=100&sort=last_accessed_at`, {
          headers: { authorization: 'Bearer soak', accept: 'application/vnd.github+json' },
        });
        count('REST list');
        if (res.status !== 200) throw new Error(`REST list: ${res.status}`);
        const listed = await res.json();
        if (typeof listed.total_count !== 'number') throw new Error('REST list without total_count');
        const victim = pick();
        if (victim && Math.random() < 0.3) {
          committed.delete(victim);
          const del = await fetch(`${url}/repos/${REPO}/actions/caches?key=${encodeURIComponent(victim)}`, {
            method: 'DELETE',
            headers: { authorization: 'Bearer soak' },
          });
          count('REST delete');
          await del.arrayBuffer();
          if (del.status !== 200 && del.status !== 404)
            throw new Error(`REST delete ${victim}: ${del.status}`);
        }
      });
      await sleep(1000);
    },
    async abandon() {
      // A reservation with a staged block that is never committed: it must expire and leave nothing.
      const key = `abandoned-${seq++}`;
      await lock.read(async () => {
        const created = await rpc('CreateCacheEntry', { key, version: VERSION });
        if (!created.json.ok) throw new Error(`create ${key}: ${JSON.stringify(created.json)}`);
        const blob = new BlockBlobClient(created.json.signed_upload_url);
        const block = contentFor(key, 256 * 1024);
        await blob.stageBlock(Buffer.from('block-000000').toString('base64'), block, block.length);
        count('abandoned reservation');
        bytes.up += block.length;
      });
      await sleep(3000);
    },
    async control() {
      await sleep(4000);
      await lock.write(async () => {
        // Sampled here, with no transfer in flight: the descriptors are the store's files plus the
        // clients' idle keep-alive connections, not whatever happens to be mid-request.
        samples.push({
          t: Math.round((Date.now() - started) / 1000),
          ...(await sampleProcess(server.proc.pid)),
        });
        await adminCall('POST', '/clock/advance', { by: '1m' });
        if (Math.random() < 0.25) {
          const ops = ['PutBlock', 'GetBlob', 'GetCacheEntryDownloadURL', 'CreateCacheEntry'];
          const op = ops[Math.floor(Math.random() * ops.length)];
          await adminCall('POST', '/faults', { op, times: 1, action: { type: 'status', status: 503 } });
          count('fault rule added');
        }
      });
    },
  };

  const progress = setInterval(() => {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const last = samples.at(-1);
    log(
      `[soak] ${Math.round((Date.now() - started) / 1000)} s: ${total} requests, ${(bytes.up / MiB).toFixed(0)} MiB up, ${(bytes.down / MiB).toFixed(0)} MiB down, RSS ${last?.rssMiB} MiB, fds ${last?.fds}, errors ${unexpected.length}`,
    );
  }, 30_000);

  const concurrency = {
    sdkUpload: 2,
    rangedDownload: 2,
    wholeGet: 1,
    actionsCache: 1,
    lookups: 2,
    rest: 1,
    abandon: 1,
    control: 1,
  };
  const workers = [];
  for (const [name, n] of Object.entries(concurrency)) {
    for (let i = 0; i < n; i++) {
      workers.push(
        (async () => {
          while (running()) {
            try {
              await loops[name]();
            } catch (err) {
              fail(name, err);
              await sleep(500);
            }
          }
        })(),
      );
    }
  }
  await Promise.all(workers);
  clearInterval(progress);

  const failures = [...unexpected.map((u) => `unexpected error: ${u}`)];
  try {
    // Every reservation expires, retained blobs pass their last download URL: then nothing may be left over.
    await adminCall('DELETE', '/faults');
    await adminCall('POST', '/clock/advance', { by: '2h' });
    const { entries } = await adminCall('GET', '/entries');
    const pending = entries.filter((e) => e.state === 'pending');
    if (pending.length > 0) failures.push(`${pending.length} reservations still pending after they expired`);
    const staged = await walkFiles(join(dataDir, 'staging'));
    const tmp = await walkFiles(join(dataDir, 'tmp'));
    if (staged.length > 0)
      failures.push(`${staged.length} staged files left: ${staged.slice(0, 3).join(', ')}`);
    if (tmp.length > 0) failures.push(`${tmp.length} temporary files left: ${tmp.slice(0, 3).join(', ')}`);
    // blobs/<shard>/<blob>.<generation>: one file, or one directory of parts, per committed blob.
    let blobs = 0;
    for (const shard of await readdir(join(dataDir, 'blobs')).catch(() => [])) {
      blobs += (await readdir(join(dataDir, 'blobs', shard))).length;
    }
    const committedEntries = entries.filter((e) => e.state === 'committed');
    if (blobs !== committedEntries.length) {
      failures.push(`${blobs} blobs on disk for ${committedEntries.length} committed entries`);
    }
    const { repositories } = await adminCall('GET', '/usage');
    const byRepo = new Map();
    for (const e of committedEntries) {
      const u = byRepo.get(e.repositoryId) ?? { sizeBytes: 0, count: 0 };
      byRepo.set(e.repositoryId, { sizeBytes: u.sizeBytes + e.sizeBytes, count: u.count + 1 });
    }
    for (const u of repositories) {
      const sum = byRepo.get(u.repositoryId) ?? { sizeBytes: 0, count: 0 };
      if (sum.sizeBytes !== u.sizeBytes || sum.count !== u.count) {
        failures.push(
          `usage of ${u.repositoryId} says ${u.sizeBytes} B/${u.count}, entries sum to ${sum.sizeBytes} B/${sum.count}`,
        );
      }
    }
    if (repositories.length !== byRepo.size)
      failures.push(`usage lists ${repositories.length} repositories, entries ${byRepo.size}`);
    for (const u of repositories) {
      if (u.sizeBytes > QUOTA_BYTES)
        failures.push(`repository ${u.repositoryId} holds ${u.sizeBytes} B over the ${QUOTA_BYTES} B quota`);
    }
  } catch (err) {
    failures.push(`final checks: ${err instanceof Error ? err.message : String(err)}`);
  }

  // "Its value at the end of warm-up": the highest sample of the warm-up's last third (one sample of
  // a sawtoothing heap is noise, not a value).
  const warmTail = samples.filter((s) => s.t * 1000 <= warmupMs && s.t * 1000 > (warmupMs * 2) / 3);
  const atWarmup = warmTail.length
    ? {
        rssMiB: Math.max(...warmTail.map((s) => s.rssMiB)),
        fds: Math.max(...warmTail.map((s) => s.fds)),
      }
    : samples[0];
  const after = samples.filter((s) => s.t * 1000 > warmupMs);
  const peak = (k) => Math.max(...after.map((s) => s[k]));
  if (after.length === 0) failures.push('no sample after the warm-up');
  else {
    if (peak('rssMiB') > 1.25 * atWarmup.rssMiB) {
      failures.push(
        `RSS peaked at ${peak('rssMiB')} MiB after warm-up, over 1.25× its ${atWarmup.rssMiB} MiB at the end of warm-up`,
      );
    }
    if (peak('fds') > 1.25 * atWarmup.fds) {
      failures.push(
        `open descriptors peaked at ${peak('fds')} after warm-up, over 1.25× the ${atWarmup.fds} at the end of warm-up`,
      );
    }
  }

  const code = await server.stop();
  if (code !== 0) failures.push(`server exited with ${code} on SIGTERM: ${server.stderr().slice(-2000)}`);
  const serverErrors = server
    .stderr()
    .split('\n')
    .filter((l) => /"level":50|"level":60/.test(l));
  if (serverErrors.length > 0)
    failures.push(`server logged ${serverErrors.length} errors, first: ${serverErrors[0]}`);

  process.stdout.write = realStdoutWrite;
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
  await rm(root, { recursive: true, force: true });

  const report = {
    durationS: Math.round((Date.now() - started) / 1000),
    warmupS: Math.round(warmupMs / 1000),
    requests: Object.values(counts).reduce((a, b) => a + b, 0),
    counts,
    mibUp: Math.round(bytes.up / MiB),
    mibDown: Math.round(bytes.down / MiB),
    clientRetries: retried.count,
    rss: { atWarmupMiB: atWarmup?.rssMiB, peakAfterMiB: after.length ? peak('rssMiB') : undefined },
    fds: { atWarmup: atWarmup?.fds, peakAfter: after.length ? peak('fds') : undefined },
    samples,
    failures,
  };
  return report;
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '15m' },
      warmup: { type: 'string' },
      json: { type: 'string' },
    },
  });
  const ms = (text) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
    if (!m) throw new Error(`invalid duration ${text}`);
    return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'];
  };
  const report = await runSoak({
    durationMs: ms(values.duration),
    ...(values.warmup ? { warmupMs: ms(values.warmup) } : {}),
  });
  if (values.json) await writeFile(values.json, `${JSON.stringify(report, null, 2)}\n`);
  const { samples, ...summary } = report;
  process.stderr.write(`${JSON.stringify(summary, null, 2)}\n`);
  process.stderr.write(
    `RSS MiB: ${samples.map((s) => s.rssMiB).join(' ')}\nfds: ${samples.map((s) => s.fds).join(' ')}\n`,
  );
  process.exit(report.failures.length === 0 ? 0 : 1);
}
