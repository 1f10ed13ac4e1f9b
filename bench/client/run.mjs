// Client benchmark: `gha-cache put/get` vs @actions/cache 6.3.0's own upload/download paths vs curl, against
// the mock on loopback, unthrottled and through a proxy capping each connection at --rate; plus the peak RSS
// of the CLI for a large blob. Needs `pnpm build` first. Writes bench/.out/client-<time>.json and prints a
// Markdown table.
//
//   node bench/client/run.mjs [--size 1G] [--rate 20M] [--repeat 5] [--rss-size 5G] [--only put|get]
//                             [--skip-throttled] [--keep] [--no-doc]
//
// Unless --no-doc, the "Client" section of docs/benchmarks.md between its markers is replaced. --only and
// --skip-throttled (for trying a change quickly) measure a part of the table and never write the doc.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { waitForIdle } from '../cpu.mjs';
import { parseSize } from '../measure.mjs';
import { dropMockEntry } from '../mock-admin.mjs';
import { startThrottleProxy } from './throttle-proxy.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const req = createRequire(new URL('../../test/package.json', import.meta.url));
const importFrom = (id) => import(pathToFileURL(req.resolve(id)).href);
const client = await importFrom('@gha-cache/client');
const CLI = join(dirname(req.resolve('@gha-cache/client')), 'cli', 'main.js');

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    rate: { type: 'string', default: '20M' },
    repeat: { type: 'string', default: '5' },
    'rss-size': { type: 'string', default: '5G' },
    only: { type: 'string' },
    'skip-throttled': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'no-doc': { type: 'boolean', default: false },
  },
});
const SIZE = parseSize(args.size);
const RATE = parseSize(args.rate);
const REPEAT = Number(args.repeat);
const RSS_SIZE = parseSize(args['rss-size']);
const MiB = 1024 * 1024;
if (args.only !== undefined && args.only !== 'put' && args.only !== 'get') throw new Error('--only put|get');
const PARTIAL = args.only !== undefined || args['skip-throttled'];

const work = await mkdtemp(join(tmpdir(), 'gha-client-bench-'));
const log = (m) => process.stderr.write(`${m}\n`);

async function randomFile(file, bytes) {
  async function* gen() {
    for (let left = bytes; left > 0; left -= 8 * MiB) yield randomBytes(Math.min(left, 8 * MiB));
  }
  await pipeline(gen(), createWriteStream(file));
}

async function sha256(file) {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/** Runs a command under /usr/bin/time; returns { code, stdout, stderr, maxRssKiB, cpuS, wallMs }. */
function run(cmd, argv, env = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', 'MAXRSS %M CPU %U %S', cmd, ...argv], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      if (stdout.length < 1e6) stdout += d;
    });
    child.stderr.on('data', (d) => {
      if (stderr.length < 1e6) stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /MAXRSS (\d+) CPU ([\d.]+) ([\d.]+)/.exec(stderr);
      resolve({
        code,
        stdout,
        stderr,
        maxRssKiB: m ? Number(m[1]) : undefined,
        cpuS: m ? Number(m[2]) + Number(m[3]) : undefined,
        wallMs: performance.now() - t0,
      });
    });
  });
}

function jsonLine(text) {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'));
  return JSON.parse(lines.at(-1));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mibps = (bytes, ms) => bytes / MiB / (ms / 1000);

// The mock runs as its own process (its CLI), as in real use; sharing the bench's event loop and heap
// would slow it down in ways no client controls.
const MOCK_CLI = join(dirname(req.resolve('@gha-cache/mock-server')), 'main.js');
const mockProc = spawn(
  process.execPath,
  [MOCK_CLI, 'serve', '--port', '0', '--data-dir', join(work, 'mock-data'), '--log-level', 'warn'],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
const mockEnv = await new Promise((resolve, reject) => {
  const env = {};
  let buf = '';
  let err = '';
  mockProc.stderr.on('data', (d) => {
    err += d;
  });
  mockProc.once('exit', (code) => reject(new Error(`mock exited with ${code}: ${err}`)));
  mockProc.stdout.on('data', (d) => {
    buf += d;
    for (const line of buf.split('\n')) {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) env[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
    }
    if (env.ACTIONS_RUNTIME_TOKEN) resolve(env);
  });
});
mockProc.stdout.resume();
mockProc.stderr.resume();
const mock = {
  url: mockEnv.ACTIONS_RESULTS_URL.replace(/\/$/, ''),
  close: () =>
    new Promise((r) => {
      mockProc.once('exit', r);
      mockProc.kill('SIGTERM');
    }),
};
const proxy = await startThrottleProxy(mock.url, RATE);
const token = mockEnv.ACTIONS_RUNTIME_TOKEN;
log(`mock ${mock.url}, throttle proxy ${proxy.url} (${RATE / MiB} MiB/s per connection), work ${work}`);

const file = join(work, 'blob.bin');
log(`writing ${SIZE} bytes…`);
await randomFile(file, SIZE);
const fileSha = await sha256(file);
let seq = 0;

async function ghaPut(base, key, src = file) {
  const r = await run(process.execPath, [
    CLI,
    'put',
    key,
    src,
    '--json',
    '-q',
    '--url',
    `${base}/`,
    '--token',
    token,
  ]);
  if (r.code !== 0) throw new Error(`gha-cache put failed: ${r.stderr}`);
  return { ms: jsonLine(r.stdout).durationMs, rssKiB: r.maxRssKiB, cpuS: r.cpuS };
}

async function ghaGet(base, key, out) {
  const r = await run(process.execPath, [
    CLI,
    'get',
    key,
    out,
    '--json',
    '-q',
    '--url',
    `${base}/`,
    '--token',
    token,
  ]);
  if (r.code !== 0) throw new Error(`gha-cache get failed: ${r.stderr}`);
  const res = out === '-' ? jsonLine(r.stderr.replace(/MAXRSS.*/, '')) : jsonLine(r.stdout);
  return { ms: res.durationMs, rssKiB: r.maxRssKiB, cpuS: r.cpuS };
}

async function signedUrl(base, key) {
  const c = client.createCacheClient({ baseUrl: `${base}/`, token });
  try {
    const r = await c.lookup(key);
    if (!r.hit) throw new Error(`no entry ${key}`);
    return r.url;
  } finally {
    await c.close();
  }
}

async function uploadUrl(base, key) {
  const http = client.createHttpDispatcher({
    timeoutMs: 60_000,
    connectionsPerOrigin: 2,
    retry: client.DEFAULT_RETRY_OPTIONS,
  });
  try {
    const svc = client.createCacheService(
      client.createTwirpTransport({
        baseUrl: `${base}/`,
        token,
        encoding: 'json',
        dispatcher: http.dispatcher,
        timeoutMs: 60_000,
        userAgent: 'bench',
      }),
    );
    const c = await svc.createCacheEntry({ key, version: client.RAW_BLOB_VERSION });
    return { url: c.uploadUrl, svc, close: () => http.close() };
  } catch (e) {
    await http.close();
    throw e;
  }
}

async function jsUpload(base, key) {
  const { url, svc, close } = await uploadUrl(base, key);
  try {
    const r = await run(process.execPath, [join(here, 'actions-upload.mjs'), url, file]);
    if (r.code !== 0) throw new Error(`actions upload failed: ${r.stderr}`);
    await svc.finalizeCacheEntryUpload({ key, version: client.RAW_BLOB_VERSION, sizeBytes: SIZE });
    return { ms: jsonLine(r.stderr.replace(/MAXRSS.*/, '')).ms, rssKiB: r.maxRssKiB, cpuS: r.cpuS };
  } finally {
    await close();
  }
}

async function jsDownload(base, key, out) {
  const url = await signedUrl(base, key);
  const r = await run(process.execPath, [join(here, 'actions-download.mjs'), url, out]);
  if (r.code !== 0) throw new Error(`actions download failed: ${r.stderr}`);
  return { ms: jsonLine(r.stderr.replace(/MAXRSS.*/, '')).ms, rssKiB: r.maxRssKiB, cpuS: r.cpuS };
}

async function curlDownload(base, key, out) {
  const url = await signedUrl(base, key);
  const r = await run('curl', ['-sS', '-o', out, '-w', '%{time_total}', url]);
  if (r.code !== 0) throw new Error(`curl failed: ${r.stderr}`);
  return { ms: Number(r.stdout.trim()) * 1000, rssKiB: r.maxRssKiB, cpuS: r.cpuS };
}

async function checkOut(out) {
  const s = await stat(out);
  if (s.size !== SIZE) throw new Error(`${out}: ${s.size} bytes, expected ${SIZE}`);
  const h = await sha256(out);
  if (h !== fileSha) throw new Error(`${out}: sha256 differs`);
  await rm(out);
}

const results = {
  size: SIZE,
  rateBytesPerSec: RATE,
  repeat: REPEAT,
  node: process.version,
  loadAvgBefore: loadavg()[0],
  scenarios: {},
};
// The machine has 2 cores: anything else running skews every figure. Say so in the output.
if (loadavg()[0] > 1)
  log(`warning: load average ${loadavg()[0].toFixed(2)} before the run; figures may be skewed`);

const sync = async () => {
  await run('/bin/sync', []);
  await waitForIdle([mockProc.pid]);
};
/** `xs` rotated left by `n`: each round starts with another tool. */
const rotate = (xs, n) => xs.map((_, i) => xs[(i + n) % xs.length]);

for (const [name, base, repeat] of [
  ['unthrottled', mock.url, REPEAT],
  ...(args['skip-throttled'] ? [] : [['throttled', proxy.url, 1]]),
]) {
  // Tools are interleaved within each round, in a rotating order, and dirty pages are flushed and the
  // mock idle before every run, so no tool pays for another's disk writeback or always goes first.
  const runs = {};
  const record = (label, r) => {
    runs[label] ??= [];
    runs[label].push(r);
    log(
      `${name} ${label}: ${mibps(SIZE, r.ms).toFixed(1)} MiB/s (${(r.ms / 1000).toFixed(2)} s, CPU ${r.cpuS?.toFixed(2)} s, RSS ${((r.rssKiB ?? 0) / 1024).toFixed(0)} MiB)`,
    );
  };
  const out = join(work, 'out.bin');
  let key;
  if (args.only === 'get') {
    key = `bench-${name}-${seq++}`;
    await ghaPut(base, key);
  }
  for (let i = 0; i < repeat; i++) {
    if (args.only !== 'get') {
      for (const [label, put] of rotate(
        [
          ['gha-cache put', (k) => ghaPut(base, k)],
          ['@actions/cache upload', (k) => jsUpload(base, k)],
        ],
        i,
      )) {
        await sync();
        const k = `bench-${name}-${seq++}`;
        if (label === 'gha-cache put') key ??= k;
        record(label, await put(k));
        if (k !== key) await dropMockEntry(mock.url, k);
      }
    }
    if (args.only === 'put') continue;
    for (const [label, fn] of rotate(
      [
        ['gha-cache get', ghaGet],
        ['@actions/cache download', jsDownload],
        ['curl', curlDownload],
      ],
      i,
    )) {
      await sync();
      const r = await fn(base, key, out);
      await checkOut(out);
      record(label, r);
    }
  }
  await dropMockEntry(mock.url, key);
  const s = {};
  for (const [label, rs] of Object.entries(runs)) {
    const ms = median(rs.map((r) => r.ms));
    s[label] = {
      ms,
      mibps: mibps(SIZE, ms),
      runs: rs.map((r) => Math.round(r.ms)),
      cpuS: median(rs.map((r) => r.cpuS ?? 0)),
      maxRssMiB: Math.max(...rs.map((r) => (r.rssKiB ?? 0) / 1024)),
    };
  }
  results.scenarios[name] = s;
}

if (RSS_SIZE > 0) {
  const big = join(work, 'rss.bin');
  log(`RSS run: writing ${RSS_SIZE} bytes…`);
  await rm(file);
  await randomFile(big, RSS_SIZE);
  const put = await ghaPut(mock.url, 'bench-rss', big);
  const get = await ghaGet(mock.url, 'bench-rss', join(work, 'rss.out'));
  const s = await stat(join(work, 'rss.out'));
  if (s.size !== RSS_SIZE) throw new Error('RSS run: wrong size');
  await rm(join(work, 'rss.out'));
  const getStdout = await ghaGet(mock.url, 'bench-rss', '-');
  const cat = await run('/bin/sh', [
    '-c',
    `cat "${big}" | "${process.execPath}" "${CLI}" put bench-rss-stdin - --json -q --url ${mock.url}/ --token ${token}`,
  ]);
  results.rss = {
    size: RSS_SIZE,
    putFileMiB: put.rssKiB / 1024,
    getFileMiB: get.rssKiB / 1024,
    getStdoutMiB: getStdout.rssKiB / 1024,
    putStdinMiB: cat.maxRssKiB / 1024,
    putMibps: mibps(RSS_SIZE, put.ms),
    getMibps: mibps(RSS_SIZE, get.ms),
  };
  log(`RSS ${JSON.stringify(results.rss)}`);
}

results.loadAvgAfter = loadavg()[0];
await proxy.close();
await mock.close();
if (!args.keep) await rm(work, { recursive: true, force: true });

const outDir = join(here, '..', '.out');
await mkdir(outDir, { recursive: true });
const outFile = join(outDir, `client-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
await writeFile(outFile, `${JSON.stringify(results, null, 2)}\n`);

const rows = [];
for (const [name, sc] of Object.entries(results.scenarios)) {
  for (const [label, r] of Object.entries(sc)) {
    rows.push(
      `| ${name} | ${label} | ${r.mibps.toFixed(1)} | ${(r.ms / 1000).toFixed(2)} | ${r.cpuS.toFixed(2)} | ${r.maxRssMiB.toFixed(0)} |`,
    );
  }
}
const u = results.scenarios.unthrottled;
const t = results.scenarios.throttled;
const ratio = (a, b) => a.mibps / b.mibps;
const check = (value, min) => `${value.toFixed(2)}× (target ≥ ${min}×: ${value >= min ? 'met' : 'NOT met'})`;
const rss = results.rss;
const maxRss = rss ? Math.max(rss.putFileMiB, rss.getFileMiB, rss.getStdoutMiB, rss.putStdinMiB) : undefined;
const markdown = [
  `Measured ${new Date().toISOString().slice(0, 16)}Z on ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, Node ${process.version}; load average ${results.loadAvgBefore.toFixed(2)} before, ${results.loadAvgAfter.toFixed(2)} after (the mock, the proxy and the client share the cores).`,
  '',
  `Blob of ${(SIZE / MiB).toFixed(0)} MiB on loopback against the mock (its CLI, own process, fs storage). "throttled" goes through a proxy capping each connection at ${RATE / MiB} MiB/s per direction. Median of ${REPEAT} interleaved runs unthrottled, 1 run throttled; \`sync\` before every run; every download is checked by SHA-256. Times exclude process start-up: \`gha-cache\` reports its own \`durationMs\` (Twirp calls included), \`@actions/cache\` 6.3.0 is timed around its internal \`uploadCacheArchiveSDK\` (Azure SDK, 64 MiB × 8) and \`downloadCacheHttpClient\` (its path for non-Azure hosts: one GET), curl by \`time_total\`. CPU s is user + system time of the whole client process (start-up included).`,
  '',
  '| scenario | tool | MiB/s | s | CPU s | peak RSS MiB |',
  '|---|---|---|---|---|---|',
  ...rows,
  '',
  ...(PARTIAL
    ? []
    : [
        `- \`gha-cache get\` vs \`@actions/cache\` download, throttled: ${check(ratio(t['gha-cache get'], t['@actions/cache download']), 4)}`,
        `- \`gha-cache get\` vs \`@actions/cache\` download, unthrottled: ${check(ratio(u['gha-cache get'], u['@actions/cache download']), 1)}`,
        `- \`gha-cache get\` vs curl, unthrottled: ${check(ratio(u['gha-cache get'], u.curl), 0.7)}`,
        `- \`gha-cache put\` vs \`@actions/cache\` upload: unthrottled ${check(ratio(u['gha-cache put'], u['@actions/cache upload']), 1)}, throttled ${check(ratio(t['gha-cache put'], t['@actions/cache upload']), 1)}`,
      ]),
  rss
    ? `- CLI peak RSS with a ${(RSS_SIZE / 1024 ** 3).toFixed(1)} GiB blob: put file ${rss.putFileMiB.toFixed(0)} MiB, get file ${rss.getFileMiB.toFixed(0)} MiB, get to stdout ${rss.getStdoutMiB.toFixed(0)} MiB, put from stdin ${rss.putStdinMiB.toFixed(0)} MiB (target ≤ 300 MB = 286 MiB: ${maxRss <= 286 ? 'met' : 'NOT met'}); put ${rss.putMibps.toFixed(0)} MiB/s, get ${rss.getMibps.toFixed(0)} MiB/s`
    : '',
  '',
  `Raw results: \`bench/.out/${outFile.split('/').at(-1)}\`.`,
].join('\n');
process.stdout.write(`${markdown}\n`);

const BEGIN = '<!-- client-bench:begin (generated by bench/client/run.mjs) -->';
const END = '<!-- client-bench:end -->';
if (!args['no-doc'] && !PARTIAL) {
  const file = join(here, '..', '..', 'docs', 'benchmarks.md');
  let doc;
  try {
    doc = await readFile(file, 'utf8');
  } catch {
    doc = '# Benchmarks\n';
  }
  const block = `${BEGIN}\n${markdown.trim()}\n${END}`;
  if (doc.includes(BEGIN) && doc.includes(END)) {
    doc = doc.slice(0, doc.indexOf(BEGIN)) + block + doc.slice(doc.indexOf(END) + END.length);
  } else if (doc.includes('\n## Client\n')) {
    const at = doc.indexOf('\n## Client\n') + '\n## Client\n'.length;
    doc = `${doc.slice(0, at)}\n${block}\n${doc.slice(at)}`;
  } else {
    doc = `${doc.trimEnd()}\n\n## Client\n\n${block}\n`;
  }
  await writeFile(file, doc);
  log('wrote docs/benchmarks.md (Client section)');
}
