// Many clients at once, against the raw baseline under the same load. Each round starts --clients
// uploads and --clients downloads of --size in parallel, each a separate client process
// (bench/gated-client.mjs: they load Node.js and the Azure SDK first, then all start on one signal):
//   uploads:   bench/blob-client.mjs upload (uploadFile, 64 MiB blocks, 8 in flight; a 256 MiB blob is one
//              Put Blob), each to a fresh entry, Finalize after it (untimed for the raw server)
//   downloads: of blobs uploaded before the rounds; --download ranged (bench/blob-client.mjs download:
//              4 MiB ranged GETs, 8 in flight), get (one plain GET, bench/get-client.mjs) or mixed (half each)
// against the mock (`gha-cache-mock serve`, fs storage, request log off) and the raw node:http-to-disk server
// (bench/raw-server.mjs), interleaved, median of --repeat. Aggregate MiB/s = all bytes / time from the
// start signal to the last client's answer. Meanwhile bench/lookup-loop.mjs asks GetCacheEntryDownloadURL
// every --lookup-interval ms on one connection (exact and prefix hits), of the mock in the mock's rounds
// and of the fixed-JSON node:http server (bench/hello-server.mjs) in the raw server's rounds: its p99 is
// the lookup latency under load beside the cheapest server's. The mock's peak RSS (VmRSS every 50 ms,
// VmHWM). Warm-up rounds write the downloads to files and check their SHA-256; timed rounds write
// them to /dev/null. Writes the "Many clients at once" section of docs/benchmarks.md (unless --no-doc).
//
//   node bench/many-clients.mjs [--size 256M] [--clients 8] [--uploads N] [--downloads N] [--repeat 5] [--warmup 1] [--download mixed]
//        [--lookup-interval 10] [--compare-main F] [--cpu-prof] [--no-doc]
// --cpu-prof writes V8 profiles of the mock and the raw server to bench/.out/prof/.
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { waitForIdle } from './cpu.mjs';
import { median, memoryOf, parseSize, withRssPolling } from './measure.mjs';
import {
  f0,
  f2,
  here,
  MiB,
  MOCK_MAIN,
  machineLine,
  mark,
  mb,
  randomFile,
  readyPort,
  root,
  runJson,
  sha256Of,
  startChild,
  startMock,
  stopAll,
  stopChild,
  writeDocSection,
} from './processes.mjs';

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '256M' },
    clients: { type: 'string', default: '8' },
    uploads: { type: 'string' },
    downloads: { type: 'string' },
    repeat: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    download: { type: 'string', default: 'mixed' },
    'lookup-interval': { type: 'string', default: '10' },
    'compare-main': { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'no-doc': { type: 'boolean', default: false },
  },
});
const SIZE = parseSize(args.size);
const CLIENTS = Number(args.clients);
// --uploads / --downloads (default --clients each) run one side alone, to see which one a shortfall is in.
const UPLOADS = Number(args.uploads ?? CLIENTS);
const DOWNLOADS = Number(args.downloads ?? CLIENTS);
const REPEAT = Number(args.repeat);
const WARMUP = Number(args.warmup);
const INTERVAL = Number(args['lookup-interval']);
if (!['ranged', 'get', 'mixed'].includes(args.download)) throw new Error('--download ranged|get|mixed');
const wayOf = (i) => (args.download === 'mixed' ? (i % 2 ? 'get' : 'ranged') : args.download);
const OUT = join(here, '.out');
const RUN = join(OUT, `many-clients-run-${process.pid}`);
const VERSION = 'b'.repeat(64);
const GATED = join(here, 'gated-client.mjs');
const t0 = performance.now();
const log = (m) =>
  process.stderr.write(`[many-clients ${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);

const LOOP_DELAY = join(here, 'loop-delay.mjs');

/** Reads the event-loop delay windows bench/loop-delay.mjs prints on SIGUSR2 from a server's stderr. */
function loopDelayProbe() {
  let waiting;
  return {
    onLine: (line) => {
      if (!line.startsWith('{"loopDelay"')) return;
      waiting?.(JSON.parse(line).loopDelay);
      waiting = undefined;
    },
    window(child) {
      return new Promise((resolve) => {
        waiting = resolve;
        child.kill('SIGUSR2');
      });
    },
  };
}

async function mockTarget(name, label, main) {
  const prof = args['cpu-prof']
    ? ['--cpu-prof', `--cpu-prof-dir=${join(OUT, 'prof')}`, `--cpu-prof-name=many-clients-${name}.cpuprofile`]
    : [];
  const probe = loopDelayProbe();
  const mock = await startMock(join(RUN, `${name}-data`), {
    main,
    nodeFlags: [...prof, '--import', LOOP_DELAY],
    onStderrLine: probe.onLine,
  });
  const admin = async (path, init) => {
    const res = await fetch(`${mock.url}/_admin/${path}`, init);
    if (!res.ok) throw new Error(`admin ${path}: ${res.status}`);
    return res.status === 204 ? undefined : res.json();
  };
  return {
    name,
    label,
    pid: mock.pid,
    child: mock.child,
    loopDelay: () => probe.window(mock.child),
    uploadUrl: async (key) =>
      (await mock.rpc('CreateCacheEntry', { key, version: VERSION })).signed_upload_url,
    finalize: (key) =>
      mock.rpc('FinalizeCacheEntryUpload', { key, version: VERSION, size_bytes: String(SIZE) }),
    downloadUrl: async (key) =>
      (await mock.rpc('GetCacheEntryDownloadURL', { key, version: VERSION, restore_keys: [] }))
        .signed_download_url,
    // Deletes the round's entries, then moves the clock past their download URLs' expiry (the sweep
    // after an advance removes the blobs), so no round keeps more on disk than the raw server's.
    drop: async (keys) => {
      for (const key of keys) {
        const { entries } = await admin(`entries?key=${encodeURIComponent(key)}`);
        for (const e of entries) await admin(`entries/${e.id}`, { method: 'DELETE' });
      }
      await admin('clock/advance', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ by: '11m' }),
      });
    },
    lookups: async () => ({ url: mock.url, token: mock.token, stop: async () => {} }),
  };
}

async function rawTarget() {
  const probe = loopDelayProbe();
  const raw = await startChild(
    'raw server',
    [
      ...(args['cpu-prof']
        ? ['--cpu-prof', `--cpu-prof-dir=${join(OUT, 'prof')}`, '--cpu-prof-name=many-clients-raw.cpuprofile']
        : []),
      '--import',
      LOOP_DELAY,
      join(here, 'raw-server.mjs'),
      join(RUN, 'raw-data'),
    ],
    readyPort,
    { onStderrLine: probe.onLine },
  );
  const blobUrl = (key) => `${raw.url}/account/container/${key}`;
  return {
    name: 'raw',
    label: 'raw node:http baseline',
    pid: raw.pid,
    child: raw.child,
    loopDelay: () => probe.window(raw.child),
    uploadUrl: async (key) => blobUrl(key),
    finalize: async () => {},
    downloadUrl: async (key) => blobUrl(key),
    drop: async (keys) => {
      for (const key of keys) await fetch(blobUrl(key), { method: 'DELETE' });
    },
    // The raw server has no lookups: the fixed-JSON node:http server answers them in its rounds.
    lookups: async () => {
      const hello = await startChild('hello server', [join(here, 'hello-server.mjs'), 'http'], readyPort);
      return { url: hello.url, token: 'none', stop: () => stopChild(hello.child) };
    },
  };
}

/** Starts a gated client; resolves once it is ready, with `result` (its JSON line, once it answered). */
async function gatedClient(argv) {
  const c = await startChild('client', [GATED, ...argv], (line) => (line === 'READY' ? {} : undefined));
  c.result = new Promise((resolve, reject) => {
    c.lines.on('line', (line) => {
      try {
        resolve({ ...JSON.parse(line), endedAt: performance.now() });
      } catch {}
    });
    c.child.on('exit', (code) =>
      code === 0 ? undefined : reject(new Error(`client ${argv[0]} exited ${code}`)),
    );
  });
  c.result.catch(() => undefined); // awaited in the round; a failure elsewhere must not mask its error
  return c;
}

async function round(t, rep, seeds, blob) {
  const check = rep < 0;
  const upKeys = Array.from({ length: UPLOADS }, (_, i) => `bench-many-up-${rep + WARMUP}-${i}`);
  const uploads = [];
  for (const key of upKeys) uploads.push(await gatedClient(['upload', await t.uploadUrl(key), blob.file]));
  const downloads = [];
  for (let i = 0; i < DOWNLOADS; i++) {
    const way = wayOf(i);
    const file = check ? join(RUN, `down-${i}.bin`) : '/dev/null';
    downloads.push(
      await gatedClient([way === 'get' ? 'get' : 'download', await t.downloadUrl(seeds[i]), file]),
    );
  }
  const lookupTarget = await t.lookups();
  const loop = await startChild(
    'lookup loop',
    [
      join(here, 'lookup-loop.mjs'),
      lookupTarget.url,
      lookupTarget.token,
      String(INTERVAL),
      VERSION,
      ...seeds,
    ],
    (line) => (line === 'READY' ? {} : undefined),
  );
  const loopResult = new Promise((resolve) =>
    loop.lines.on('line', (line) => {
      try {
        resolve(JSON.parse(line));
      } catch {}
    }),
  );
  spawnSync('sync', { stdio: 'ignore' });
  await waitForIdle([t.pid, ...uploads.map((c) => c.pid), ...downloads.map((c) => c.pid)]);
  await t.loopDelay(); // starts a new window
  const m = await withRssPolling(t.pid, async () => {
    const started = performance.now();
    loop.child.stdin.write('go\n');
    for (const c of [...uploads, ...downloads]) c.child.stdin.write('go\n');
    const up = await Promise.all(uploads.map((c) => c.result));
    const upEnd = Math.max(0, ...up.map((r) => r.endedAt));
    const down = await Promise.all(downloads.map((c) => c.result));
    const downEnd = Math.max(0, ...down.map((r) => r.endedAt));
    loop.child.stdin.end('stop\n');
    return { started, upEnd, downEnd, end: Math.max(upEnd, downEnd) };
  });
  const loopDelay = await t.loopDelay();
  const lookups = await loopResult;
  await lookupTarget.stop();
  for (const key of upKeys) await t.finalize(key);
  if (check)
    for (let i = 0; i < DOWNLOADS; i++) {
      const file = join(RUN, `down-${i}.bin`);
      if ((await sha256Of(file)) !== blob.sha256) throw new Error(`${t.name}: download ${i} differs`);
      await rm(file);
    }
  await t.drop(upKeys);
  const { started, upEnd, downEnd, end } = m.result;
  const mibs = (bytes, ms) => bytes / MiB / (ms / 1000);
  return {
    aggregate: mibs((UPLOADS + DOWNLOADS) * SIZE, end - started),
    upload: UPLOADS ? mibs(UPLOADS * SIZE, upEnd - started) : Number.NaN,
    download: DOWNLOADS ? mibs(DOWNLOADS * SIZE, downEnd - started) : Number.NaN,
    wallMs: end - started,
    cpuSeconds: m.cpuSeconds,
    peakRss: m.peakRss,
    lookups,
    loopDelay,
    load: os.loadavg()[0],
  };
}

async function main() {
  await mkdir(RUN, { recursive: true });
  const blob = await randomFile(OUT, SIZE);
  const targets = [await mockTarget('mock', 'mock server (fs storage)', MOCK_MAIN)];
  if (args['compare-main'])
    targets.push(await mockTarget('alt', `other build (${args['compare-main']})`, args['compare-main']));
  targets.push(await rawTarget());
  const seeds = Array.from({ length: Math.max(1, DOWNLOADS) }, (_, i) => `bench-many-seed-${i}`);
  for (const t of targets) {
    // Untimed: 4 at a time.
    for (let i = 0; i < seeds.length; i += 4)
      await Promise.all(
        seeds.slice(i, i + 4).map(async (key) => {
          await runJson([join(here, 'blob-client.mjs'), 'upload', await t.uploadUrl(key), blob.file]);
          await t.finalize(key);
        }),
      );
    log(`${t.name}: ${seeds.length} blobs of ${SIZE / MiB} MiB to download uploaded`);
  }
  const results = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let rep = -WARMUP; rep < REPEAT; rep++) {
    const k = rep + WARMUP;
    const rotated = targets.map((_, i) => targets[(i + k) % targets.length]);
    for (const t of k % 2 === 0 ? rotated : rotated.reverse()) {
      const r = await round(t, rep, seeds, blob);
      log(
        `${rep < 0 ? 'warm-up' : `#${rep + 1}`} ${t.name}: ${f0(r.aggregate)} MiB/s aggregate (up ${f0(r.upload)}, down ${f0(r.download)}), ` +
          `lookups p50 ${f2(r.lookups.p50)} / p99 ${f2(r.lookups.p99)} / max ${f2(r.lookups.max)} ms (${r.lookups.count}, ${r.lookups.errors} errors), ` +
          `server event-loop delay p99 ${f2(r.loopDelay.p99)} / max ${f2(r.loopDelay.max)} ms, server CPU ${f2(r.cpuSeconds)} s, RSS peak ${mb(r.peakRss)}, load ${r.load.toFixed(1)}`,
      );
      if (r.lookups.errors)
        throw new Error(`${t.name}: ${r.lookups.errors} lookups failed: ${r.lookups.lastError}`);
      if (rep >= 0) results[t.name].push(r);
    }
  }
  const hwm = Object.fromEntries(targets.map((t) => [t.name, memoryOf(t.pid).hwm]));
  await stopAll();

  const med = (name, f) => median(results[name].map(f));
  const all = (name, f, fmt = f0) => results[name].map((r) => fmt(f(r))).join(', ');
  const lines = [
    machineLine(),
    `Command: \`node bench/many-clients.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\`.`,
    '',
    `### ${UPLOADS} uploads + ${DOWNLOADS} downloads of ${SIZE / MiB} MiB at once, median of ${REPEAT} interleaved rounds after ${WARMUP} warm-up`,
    '',
    `Each client is its own process, started before the round and released by one signal. Uploads:`,
    '`uploadFile` (64 MiB blocks, 8 in flight), each to a fresh entry. Downloads of blobs stored before the rounds:',
    `${args.download === 'mixed' ? 'half of them the Azure SDK (4 MiB ranged GETs, 8 in flight), half one plain GET' : args.download === 'get' ? 'one plain GET each' : 'the Azure SDK (4 MiB ranged GETs, 8 in flight)'}.`,
    'Aggregate = all bytes / time from the signal to the last answer. Lookups: one GetCacheEntryDownloadURL',
    `every ${INTERVAL} ms on one connection during the round (exact and prefix hits), to the mock in its`,
    "rounds and to the fixed-JSON node:http server in the raw server's rounds. Server event-loop delay:",
    '`monitorEventLoopDelay` in the server process during the round (bench/loop-delay.mjs, preloaded), how',
    'long a request arriving at a random moment waits before the server looks at it. Server CPU: user +',
    'system seconds of the server process during the round.',
    '',
    '| target | aggregate MiB/s | upload MiB/s | download MiB/s | lookups p50 / p99 / max ms | server event-loop delay p99 / max ms | server CPU s | server peak RSS (VmHWM) | all rounds aggregate MiB/s | all rounds lookup p99 ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  for (const t of targets) {
    const n = t.name;
    lines.push(
      `| ${t.label}${n === 'raw' ? ' (lookups: fixed-JSON node:http)' : ''} | ${f0(med(n, (r) => r.aggregate))} | ${f0(med(n, (r) => r.upload))} | ${f0(med(n, (r) => r.download))} | ${f2(med(n, (r) => r.lookups.p50))} / ${f2(med(n, (r) => r.lookups.p99))} / ${f2(med(n, (r) => r.lookups.max))} | ${f2(med(n, (r) => r.loopDelay.p99))} / ${f2(med(n, (r) => r.loopDelay.max))} | ${f2(med(n, (r) => r.cpuSeconds))} | ${mb(Math.max(...results[n].map((r) => r.peakRss)))} (${mb(hwm[n])}) | ${all(n, (r) => r.aggregate)} | ${all(n, (r) => r.lookups.p99, f2)} |`,
    );
  }
  lines.push('', '| ratio / limit | value | target |', '| --- | ---: | --- |');
  for (const t of targets.filter((x) => x.name !== 'raw')) {
    const n = t.name;
    const ratio = med(n, (r) => r.aggregate) / med('raw', (r) => r.aggregate);
    const p99 = med(n, (r) => r.lookups.p99);
    const peak = Math.max(hwm[n], ...results[n].map((r) => r.peakRss));
    lines.push(
      `| ${n} / raw aggregate | ${f2(ratio)} ${mark(ratio >= 0.8)} | ≥ 0.80 |`,
      `| ${n} lookup p99 under load | ${f2(p99)} ms ${mark(p99 <= 50)} | ≤ 50 ms |`,
      `| ${n} peak RSS | ${mb(peak)} ${mark(peak < 150e6)} | < 150 MB |`,
    );
  }
  const markdown = lines.join('\n');
  process.stdout.write(`\n${markdown}\n`);
  const json = join(OUT, `many-clients-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(json, `${JSON.stringify({ args, results, hwm }, null, 2)}\n`);
  if (!args['no-doc'])
    await writeDocSection('many-clients-bench', 'bench/many-clients.mjs', markdown, 'Many clients at once');
  log(`results in ${relative(root, json)}`);
}

try {
  await main();
} finally {
  await stopAll();
  await rm(RUN, { recursive: true, force: true });
}
