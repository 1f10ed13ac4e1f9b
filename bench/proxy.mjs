// The recording proxy's benchmark: one run, loopback only, the upstream mock (fs storage) and the proxy
// each in its own child process (`gha-cache-mock serve` / `gha-cache-mock proxy`), so the proxy's RSS is
// its own. Every figure is a ratio against going direct to the same upstream in the same run:
//   1. Blob transfers of one incompressible file with @azure/storage-blob 12.31.0 (bench/blob-client.mjs:
//      uploadFile 64 MiB blocks × 8, download as @actions/cache does: 4 MiB ranged GETs × 8), to the signed
//      URL the upstream handed out (direct) and to the proxy URL the proxy handed out (through the proxy),
//      interleaved, median of --repeat; the proxy's peak RSS (VmRSS every 50 ms, VmHWM at the end).
//   2. A BuildKit export (mode=max) then import of a multi-layer FROM scratch build, each in a fresh
//      buildkitd, direct and through the proxy, interleaved, median of --builds (needs the real peers:
//      node test/peers/install.mjs buildkit runc; GHA_CACHE_PEERS_DIR as for the tests).
// Prints Markdown, writes bench/.out/proxy-<time>.json and (unless --no-doc) the "Proxy" section of
// docs/benchmarks.md between its markers. Needs `pnpm run build` first.
//
//   node bench/proxy.mjs [--size 1G] [--repeat 5] [--warmup 1] [--builds 3] [--layers 8] [--layer-size 16M]
//        [--no-doc] [--skip-transfers] [--skip-buildkit] [--keep]
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, memoryOf, parseSize, withRssPolling } from './measure.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const require = createRequire(import.meta.url);
const MOCK_MAIN = join(dirname(require.resolve('@gha-cache/mock-server')), 'main.js');
const INSTALLER = join(root, 'test', 'peers', 'install.mjs');
const SERVICE = '/twirp/github.actions.results.api.v1.CacheService';
const MiB = 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    repeat: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    builds: { type: 'string', default: '3' },
    layers: { type: 'string', default: '8' },
    'layer-size': { type: 'string', default: '16M' },
    'no-doc': { type: 'boolean', default: false },
    'skip-transfers': { type: 'boolean', default: false },
    'skip-buildkit': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const SIZE = parseSize(args.size);
const REPEAT = Number(args.repeat);
const WARMUP = Number(args.warmup);
const BUILDS = Number(args.builds);
const LAYERS = Number(args.layers);
const LAYER_SIZE = parseSize(args['layer-size']);
const OUT = join(here, '.out');
const RUN = join(OUT, `proxy-run-${process.pid}`);

const mb = (bytes) => `${Math.round(bytes / 1e6)} MB`;

/** Starts the CLI with `args`; resolves once it printed its export lines (the last one is ACTIONS_CACHE_SERVICE_V2). */
function startCli(name, cliArgs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MOCK_MAIN, ...cliArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => {
      if (err.length < 100_000) err += d;
    });
    const env = {};
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) env[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
      if (line.startsWith('export ACTIONS_CACHE_SERVICE_V2') && env.ACTIONS_RESULTS_URL) {
        resolve({
          name,
          child,
          pid: child.pid,
          env,
          url: env.ACTIONS_RESULTS_URL.replace(/\/$/, ''),
          stderr: () => err,
          stop: () =>
            new Promise((r) => {
              if (child.exitCode !== null) return r();
              child.once('exit', () => r());
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited ${code}: ${err}`)));
  });
}

async function twirp(url, token, method, body) {
  const res = await fetch(`${url}${SERVICE}/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function run(command, argv, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      if (err.length < 200_000) err += d;
    });
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${command} ${argv.join(' ')} exited ${code}: ${err.slice(-4000)}`));
      else resolve({ out, err });
    });
  });
}

const blobClient = async (op, url, file) =>
  JSON.parse(
    (await run(process.execPath, [join(here, 'blob-client.mjs'), op, url, file])).out
      .trim()
      .split('\n')
      .pop(),
  );

async function sha256(file) {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

async function writeRandom(file, bytes) {
  const out = createWriteStream(file);
  const chunk = Buffer.alloc(4 * MiB);
  for (let left = bytes; left > 0; left -= chunk.length) {
    randomFillSync(chunk);
    if (!out.write(left >= chunk.length ? chunk : chunk.subarray(0, left)))
      await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r, j) => out.end((e) => (e ? j(e) : r())));
}

const sync = () => run('sync', []);

// ---------------------------------------------------------------------------------------------------------
await rm(RUN, { recursive: true, force: true });
await mkdir(RUN, { recursive: true });
const upstream = await startCli('upstream', [
  'serve',
  '--port',
  '0',
  '--data-dir',
  join(RUN, 'data'),
  '--log-level',
  'warn',
  '--log-format',
  'json',
  '--quota',
  'off',
  '--rate-limit',
  'off',
]);
const proxy = await startCli('proxy', [
  'proxy',
  '--upstream',
  `${upstream.url}/`,
  '--port',
  '0',
  '--log-level',
  'warn',
  '--log-format',
  'json',
]);
const token = upstream.env.ACTIONS_RUNTIME_TOKEN;
const results = { time: new Date().toISOString(), node: process.version, cpus: os.cpus().length, size: SIZE };
const md = [];
const ok = (v, pass) => `${v} ${pass ? '✅' : '❌'}`;

try {
  if (!args['skip-transfers']) {
    const file = join(RUN, 'payload.bin');
    await writeRandom(file, SIZE);
    const digest = await sha256(file);
    const runs = { direct: { up: [], down: [] }, proxy: { up: [], down: [] } };
    const proxyCpu = { up: [], down: [] };
    let proxyPeak = 0;
    const proxyIdle = memoryOf(proxy.pid).rss;
    let n = 0;
    for (let round = 0; round < WARMUP + REPEAT; round++) {
      const order = round % 2 === 0 ? ['direct', 'proxy'] : ['proxy', 'direct'];
      for (const target of order) {
        const base = target === 'proxy' ? proxy.url : upstream.url;
        const key = `bench-${n++}`;
        const version = 'f'.repeat(64);
        const created = await twirp(base, token, 'CreateCacheEntry', { key, version });
        await sync();
        const up = await withRssPolling(proxy.pid, () =>
          blobClient('upload', created.signed_upload_url, file),
        );
        await twirp(base, token, 'FinalizeCacheEntryUpload', { key, version, size_bytes: String(SIZE) });
        const found = await twirp(base, token, 'GetCacheEntryDownloadURL', {
          key,
          restore_keys: [],
          version,
        });
        const outFile = join(RUN, 'download.bin');
        await sync();
        const down = await withRssPolling(proxy.pid, () =>
          blobClient('download', found.signed_download_url, outFile),
        );
        if ((await sha256(outFile)) !== digest) throw new Error(`${target}: download differs`);
        await rm(outFile);
        if (target === 'proxy') proxyPeak = Math.max(proxyPeak, up.peakRss, down.peakRss);
        if (round >= WARMUP && target === 'proxy') {
          proxyCpu.up.push(up.cpuSeconds);
          proxyCpu.down.push(down.cpuSeconds);
        }
        if (round >= WARMUP) {
          runs[target].up.push(SIZE / MiB / (up.result.ms / 1000));
          runs[target].down.push(SIZE / MiB / (down.result.ms / 1000));
        }
        console.error(
          `[proxy bench] ${target} round ${round}: up ${(up.result.ms / 1000).toFixed(2)} s, down ${(down.result.ms / 1000).toFixed(2)} s`,
        );
      }
    }
    const hwm = memoryOf(proxy.pid).hwm;
    const med = (t, d) => median(runs[t][d]);
    const ratioUp = med('proxy', 'up') / med('direct', 'up');
    const ratioDown = med('proxy', 'down') / med('direct', 'down');
    results.transfers = {
      runs,
      proxyIdleRss: proxyIdle,
      proxyPeakRss: proxyPeak,
      proxyHwm: hwm,
      ratioUp,
      ratioDown,
    };
    const all = (t, d) => runs[t][d].map((x) => Math.round(x)).join(', ');
    md.push(
      `### Blob transfers: ${SIZE / MiB} MiB of random bytes, median of ${REPEAT} interleaved runs after ${WARMUP} warm-up round${WARMUP === 1 ? '' : 's'}`,
      '',
      'The same SDK calls as the mock server bench (`bench/blob-client.mjs`: `uploadFile` with 64 MiB blocks, 8',
      'in flight; download as `@actions/cache` 6.x on Azure, 4 MiB ranged GETs, 8 in flight), once to the',
      "upstream's signed URL (direct) and once to the URL the proxy handed out (through the proxy, which",
      'streams every block and range on to the same upstream). Every download is checked by SHA-256.',
      '',
      '| path | upload MiB/s | download MiB/s | all runs up / down MiB/s |',
      '| --- | ---: | ---: | --- |',
      `| direct to the upstream mock | ${Math.round(med('direct', 'up'))} | ${Math.round(med('direct', 'down'))} | ${all('direct', 'up')} / ${all('direct', 'down')} |`,
      `| through the proxy | ${Math.round(med('proxy', 'up'))} | ${Math.round(med('proxy', 'down'))} | ${all('proxy', 'up')} / ${all('proxy', 'down')} |`,
      '',
      '| ratio | upload | download | target |',
      '| --- | ---: | ---: | --- |',
      `| proxy / direct | ${ok(ratioUp.toFixed(2), ratioUp >= 0.85)} | ${ok(ratioDown.toFixed(2), ratioDown >= 0.85)} | ≥ 0.85 |`,
      `| proxy peak RSS (idle ${mb(proxyIdle)}, VmHWM ${mb(hwm)}) | ${ok(mb(proxyPeak), proxyPeak < 150e6)} | | < 150 MB |`,
      '',
      `The proxy's own CPU time per ${SIZE / MiB} MiB transfer (user + system, median): upload ${median(proxyCpu.up).toFixed(2)} s, download ${median(proxyCpu.down).toFixed(2)} s; load average (1 min) when they ended ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs.`,
      '',
    );
  }

  if (!args['skip-buildkit']) {
    const installed = await run(process.execPath, [INSTALLER, '--json', 'runc', 'buildkit']);
    const { peers } = JSON.parse(installed.out);
    const ctx = join(RUN, 'ctx');
    await mkdir(ctx, { recursive: true });
    const lines = ['FROM scratch'];
    for (let i = 0; i < LAYERS; i++) {
      await writeRandom(join(ctx, `layer${i}.bin`), LAYER_SIZE);
      lines.push(`COPY layer${i}.bin /layer${i}.bin`);
    }
    await writeFile(join(ctx, 'Dockerfile'), `${lines.join('\n')}\n`);
    let buildN = 0;
    const build = async (url, cache) => {
      const dir = join(RUN, `bk-${buildN++}`);
      await mkdir(dir, { recursive: true });
      const sock = join(dir, 'buildkitd.sock');
      const daemon = spawn(
        peers.buildkit.buildkitd,
        [
          '--root',
          join(dir, 'root'),
          '--addr',
          `unix://${sock}`,
          '--oci-worker=true',
          '--oci-worker-snapshotter=native',
          '--oci-worker-net=host',
          '--containerd-worker=false',
        ],
        {
          env: { ...process.env, PATH: `${dirname(peers.runc.bin)}:${process.env.PATH}` },
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        },
      );
      await new Promise((resolve, reject) => {
        let seen = '';
        const on = (d) => {
          seen += d;
          if (seen.includes(`running server on ${sock}`)) resolve();
        };
        daemon.stdout.on('data', on);
        daemon.stderr.on('data', on);
        daemon.once('exit', (code) => reject(new Error(`buildkitd exited ${code}: ${seen.slice(-2000)}`)));
      });
      const gha = `type=gha,url_v2=${url}/,token=${token},scope=bench-${buildN}`;
      try {
        const started = performance.now();
        await run(peers.buildkit.buildctl, [
          '--addr',
          `unix://${sock}`,
          'build',
          '--progress=plain',
          '--frontend',
          'dockerfile.v0',
          '--local',
          `context=${ctx}`,
          '--local',
          `dockerfile=${ctx}`,
          '--output',
          `type=local,dest=${join(dir, 'out')}`,
          ...(cache.export
            ? ['--export-cache', `${gha.replace(/scope=bench-\d+/, `scope=${cache.scope}`)},mode=max`]
            : []),
          ...(cache.import ? ['--import-cache', gha.replace(/scope=bench-\d+/, `scope=${cache.scope}`)] : []),
        ]);
        return performance.now() - started;
      } finally {
        process.kill(-daemon.pid, 'SIGTERM');
        await new Promise((r) => (daemon.exitCode !== null ? r() : daemon.once('exit', r)));
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      }
    };
    const times = { direct: [], proxy: [] };
    for (let round = 0; round < BUILDS; round++) {
      const order = round % 2 === 0 ? ['direct', 'proxy'] : ['proxy', 'direct'];
      for (const target of order) {
        const url = target === 'proxy' ? proxy.url : upstream.url;
        const scope = `bench-${target}-${round}`;
        const exportMs = await build(url, { export: true, scope });
        const importMs = await build(url, { import: true, scope });
        times[target].push({ exportMs, importMs, totalMs: exportMs + importMs });
        console.error(
          `[proxy bench] BuildKit ${target} round ${round}: export ${(exportMs / 1000).toFixed(2)} s, import ${(importMs / 1000).toFixed(2)} s`,
        );
      }
    }
    const medOf = (t, f) => median(times[t].map((x) => x[f]));
    const ratio = medOf('proxy', 'totalMs') / medOf('direct', 'totalMs');
    results.buildkit = {
      version: peers.buildkit.version,
      layers: LAYERS,
      layerSize: LAYER_SIZE,
      times,
      ratio,
    };
    const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
    md.push(
      `### BuildKit ${peers.buildkit.version}: export (mode=max) + import of ${LAYERS} layers × ${LAYER_SIZE / MiB} MiB, median of ${BUILDS} interleaved rounds`,
      '',
      'A `FROM scratch` build with one `COPY` of random bytes per layer; each build in a fresh `buildkitd`',
      '(native snapshotter), `--export-cache type=gha,…,mode=max` then, in another fresh daemon,',
      '`--import-cache` of the same scope; wall time of `buildctl build`.',
      '',
      '| path | export | import | export + import | all rounds (export + import) |',
      '| --- | ---: | ---: | ---: | --- |',
      ...['direct', 'proxy'].map(
        (t) =>
          `| ${t === 'direct' ? 'direct to the upstream mock' : 'through the proxy'} | ${s(medOf(t, 'exportMs'))} | ${s(medOf(t, 'importMs'))} | ${s(medOf(t, 'totalMs'))} | ${times[t].map((x) => s(x.totalMs)).join(', ')} |`,
      ),
      '',
      '| ratio | export + import | target |',
      '| --- | ---: | --- |',
      `| proxy / direct | ${ok(ratio.toFixed(2), ratio <= 1.15)} | ≤ 1.15 |`,
      '',
    );
  }
} finally {
  await proxy.stop();
  await upstream.stop();
  if (!args.keep) await rm(RUN, { recursive: true, force: true });
}

const header = [
  `Run ${results.time} on ${results.cpus} CPUs (${os.cpus()[0]?.model.split(' ').slice(0, 2).join(' ')}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}.`,
  `Command: \`node bench/proxy.mjs ${process.argv.slice(2).join(' ')}\`.`.replace(' `.', '`.'),
  '',
];
const text = [...header, ...md].join('\n');
console.log(text);
await mkdir(OUT, { recursive: true });
await writeFile(
  join(OUT, `proxy-${results.time.replace(/[:.]/g, '-')}.json`),
  `${JSON.stringify(results, null, 2)}\n`,
);
if (!args['no-doc']) {
  const doc = join(root, 'docs', 'benchmarks.md');
  const current = await readFile(doc, 'utf8');
  const begin = '<!-- proxy-bench:begin (generated by bench/proxy.mjs) -->';
  const end = '<!-- proxy-bench:end -->';
  const a = current.indexOf(begin);
  const b = current.indexOf(end);
  if (a < 0 || b < a) throw new Error('docs/benchmarks.md has no proxy-bench markers');
  await writeFile(doc, `${current.slice(0, a + begin.length)}\n${text}\n${current.slice(b)}`);
}
