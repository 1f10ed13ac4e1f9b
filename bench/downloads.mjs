// Downloads both ways clients read, against the raw baseline of the same run. One incompressible blob
// of --size is uploaded once (untimed) to the mock (`gha-cache-mock serve`, fs storage, request log off)
// and to the raw node:http-to-disk server (bench/raw-server.mjs), then read back --repeat times each way:
//   ranged: the Azure SDK as @actions/cache 6.x on Azure does (bench/blob-client.mjs download: 128 MiB
//           segments of downloadToBuffer, 4 MiB ranged GETs, 8 in flight)
//   get:    one plain GET of the whole blob (bench/get-client.mjs: curl, @actions/cache on non-Azure
//           hosts, go-actions-cache)
// Each download is a fresh client process writing a file, checked by SHA-256 (untimed); `sync` and an
// idle wait before each. Order rotates and reverses every round. Median MiB/s, the server's CPU seconds
// and peak RSS per download. Writes the "Downloads" section of docs/benchmarks.md (unless --no-doc).
//
//   node bench/downloads.mjs [--size 1G] [--repeat 5] [--warmup 1] [--compare-main F] [--cpu-prof] [--no-doc]
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
  writeDocSection,
} from './processes.mjs';

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    repeat: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'compare-main': { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'no-doc': { type: 'boolean', default: false },
  },
});
const SIZE = parseSize(args.size);
const REPEAT = Number(args.repeat);
const WARMUP = Number(args.warmup);
const OUT = join(here, '.out');
const RUN = join(OUT, `downloads-run-${process.pid}`);
const t0 = performance.now();
const log = (m) =>
  process.stderr.write(`[downloads ${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);
const WAYS = ['ranged', 'get'];
const CLIENT = { ranged: join(here, 'blob-client.mjs'), get: join(here, 'get-client.mjs') };
const OP = { ranged: 'download', get: 'get' };

async function mockTarget(name, label, main) {
  const prof = args['cpu-prof']
    ? ['--cpu-prof', `--cpu-prof-dir=${join(OUT, 'prof')}`, `--cpu-prof-name=downloads-${name}.cpuprofile`]
    : [];
  const mock = await startMock(join(RUN, `${name}-data`), { main, nodeFlags: prof });
  const key = 'bench-download';
  const version = 'a'.repeat(64);
  const { signed_upload_url: url } = await mock.rpc('CreateCacheEntry', { key, version });
  return {
    name,
    label,
    pid: mock.pid,
    child: mock.child,
    upload: async (file) => {
      await runJson([CLIENT.ranged, 'upload', url, file]);
      await mock.rpc('FinalizeCacheEntryUpload', { key, version, size_bytes: String(SIZE) });
    },
    url: async () =>
      (await mock.rpc('GetCacheEntryDownloadURL', { key, version, restore_keys: [] })).signed_download_url,
  };
}

async function main() {
  await mkdir(RUN, { recursive: true });
  const blob = await randomFile(OUT, SIZE);
  const targets = [await mockTarget('mock', 'mock server (fs storage)', MOCK_MAIN)];
  if (args['compare-main'])
    targets.push(await mockTarget('alt', `other build (${args['compare-main']})`, args['compare-main']));
  const raw = await startChild(
    'raw server',
    [join(here, 'raw-server.mjs'), join(RUN, 'raw-data')],
    readyPort,
  );
  const rawUrl = `${raw.url}/account/container/bench-download`;
  targets.push({
    name: 'raw',
    label: 'raw node:http baseline',
    pid: raw.pid,
    child: raw.child,
    upload: (file) => runJson([CLIENT.ranged, 'upload', rawUrl, file]),
    url: async () => rawUrl,
  });
  for (const t of targets) {
    await t.upload(blob.file);
    log(`uploaded ${SIZE / MiB} MiB to ${t.name}`);
  }
  const results = Object.fromEntries(
    targets.map((t) => [
      t.name,
      Object.fromEntries(WAYS.map((w) => [w, { mibs: [], cpu: [], peakRss: 0, load: [] }])),
    ]),
  );
  const pids = targets.map((t) => t.pid);
  const downloaded = join(RUN, 'downloaded.bin');
  const pairs = targets.flatMap((t) => WAYS.map((way) => ({ t, way })));
  for (let rep = -WARMUP; rep < REPEAT; rep++) {
    const k = rep + WARMUP;
    const rotated = pairs.map((_, i) => pairs[(i + k) % pairs.length]);
    for (const { t, way } of k % 2 === 0 ? rotated : rotated.reverse()) {
      spawnSync('sync', { stdio: 'ignore' });
      await waitForIdle(pids);
      const url = await t.url();
      const m = await withRssPolling(t.pid, () => runJson([CLIENT[way], OP[way], url, downloaded]));
      const got = await sha256Of(downloaded);
      if (got !== blob.sha256) throw new Error(`${t.name} ${way}: downloaded content differs`);
      await rm(downloaded, { force: true });
      const mibs = SIZE / MiB / (m.result.ms / 1000);
      log(
        `${rep < 0 ? 'warm-up' : `#${rep + 1}`} ${t.name} ${way}: ${f0(mibs)} MiB/s, server CPU ${f2(m.cpuSeconds)} s, RSS peak ${mb(m.peakRss)}`,
      );
      const r = results[t.name][way];
      r.peakRss = Math.max(r.peakRss, m.peakRss);
      if (rep < 0) continue;
      r.mibs.push(mibs);
      r.cpu.push(m.cpuSeconds);
      r.load.push(os.loadavg()[0]);
    }
  }
  for (const t of targets) results[t.name].hwm = memoryOf(t.pid).hwm;
  await stopAll();

  const lines = [
    machineLine(),
    `Command: \`node bench/downloads.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\`.`,
    '',
    `### ${SIZE / MiB} MiB of random bytes, median of ${REPEAT} interleaved runs after ${WARMUP} warm-up round`,
    '',
    'ranged: the Azure SDK as `@actions/cache` 6.x on Azure reads (`downloadToBuffer` of 128 MiB segments:',
    '4 MiB ranged GETs, 8 in flight). get: one plain GET of the whole blob piped into a file (curl,',
    '`@actions/cache` on other hosts, go-actions-cache). Each download is a fresh client process; the blob',
    'was uploaded once before (untimed), so every target serves it from the page cache. Server CPU is the',
    "server process's user + system seconds during the download.",
    '',
    '| target | way | MiB/s | server CPU s | server peak RSS | all runs MiB/s | load (1 min) |',
    '| --- | --- | ---: | ---: | ---: | --- | --- |',
  ];
  for (const t of targets)
    for (const way of WAYS) {
      const r = results[t.name][way];
      lines.push(
        `| ${t.label} | ${way} | ${f0(median(r.mibs))} | ${f2(median(r.cpu))} | ${mb(r.peakRss)} | ${r.mibs.map(f0).join(', ')} | ${r.load.map((x) => x.toFixed(1)).join(', ')} |`,
      );
    }
  lines.push('', '| ratio | ranged | get | target |', '| --- | ---: | ---: | --- |');
  for (const t of targets.filter((x) => x.name !== 'raw')) {
    const ratio = (way) => median(results[t.name][way].mibs) / median(results.raw[way].mibs);
    lines.push(
      `| ${t.name} / raw | ${f2(ratio('ranged'))} ${mark(ratio('ranged') >= 0.9)} | ${f2(ratio('get'))} ${mark(ratio('get') >= 0.9)} | ≥ 0.90 |`,
    );
    const peak = Math.max(results[t.name].hwm, ...WAYS.map((w) => results[t.name][w].peakRss));
    lines.push(`| ${t.name} peak RSS (VmHWM) | ${mb(peak)} ${mark(peak < 150e6)} | | < 150 MB |`);
  }
  const markdown = lines.join('\n');
  process.stdout.write(`\n${markdown}\n`);
  const json = join(OUT, `downloads-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(json, `${JSON.stringify({ args, results }, null, 2)}\n`);
  if (!args['no-doc']) await writeDocSection('downloads-bench', 'bench/downloads.mjs', markdown, 'Downloads');
  log(`results in ${relative(root, json)}`);
}

try {
  await main();
} finally {
  await stopAll();
  await rm(RUN, { recursive: true, force: true });
}
