// GetCacheEntryDownloadURL lookups beside their limit: the mock (`gha-cache-mock serve` on a store of
// --entries committed entries) against the fixed-JSON node:http server (bench/hello-server.mjs http)
// of the same run, interleaved, median of --runs. Two mock targets:
//   mock          one token for every request (what a job does)
//   mock/tokens   a different valid token on every request (minted untimed before each run, never
//                 reused), so the cost of verifying a token is paid on each request
// Requests are those of bench/mock-server.mjs: a random entry, alternating its exact key and a
// prefix only it has. Every mock answer is checked to be a hit.
//
// The store is preloaded once through bench/preload.mjs into bench/.out/lookup-store-<entries> and
// reused by later runs (preloading 100,000 entries takes minutes here).
//
//   node bench/lookups.mjs [--entries 100000] [--runs 5] [--duration 5] [--connections 64]
//        [--cpu-prof] [--mock-main F] [--compare-main F] [--json F]
// --compare-main adds the targets `alt` and `alt/tokens`: another build of the CLI (e.g. the build before
// a change), started on the same store in turn, so before/after come from the same run.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createTokenAuthority, loadSecrets } from '@gha-cache/mock-server';
import autocannon from 'autocannon';
import { cpuSecondsOf } from './cpu.mjs';
import { entryKey, entryPrefix, VERSION } from './lookup-keys.mjs';
import { median, memoryOf } from './measure.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { values: args } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '5' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
    'cpu-prof': { type: 'boolean', default: false },
    'mock-main': { type: 'string' },
    'compare-main': { type: 'string' },
    json: { type: 'string' },
  },
});
const ENTRIES = Number(args.entries);
const RUNS = Number(args.runs);
const DURATION = Number(args.duration);
const CONNECTIONS = Number(args.connections);
const MOCK_MAIN = args['mock-main'] ?? join(dirname(require.resolve('@gha-cache/mock-server')), 'main.js');
const SERVICE = '/twirp/github.actions.results.api.v1.CacheService';
const OUT = join(here, '.out');
const t0 = performance.now();
const log = (m) => process.stderr.write(`[lookups ${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);

const children = new Set();
function start(nodeArgs, ready) {
  const child = spawn(process.execPath, nodeArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  child.on('exit', () => children.delete(child));
  const state = {};
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const r = ready(line, state);
      if (r) resolve({ child, ...r });
    });
    child.on('exit', (code) => reject(new Error(`${nodeArgs.join(' ')} exited ${code}: ${stderr}`)));
  });
}
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function ensureStore() {
  const dir = join(OUT, `lookup-store-${ENTRIES}`);
  if (existsSync(dir)) return dir;
  const tmp = `${dir}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  log(`preloading ${ENTRIES} entries into ${dir} (once)`);
  await new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [join(here, 'preload.mjs'), tmp, String(ENTRIES)], {
      stdio: 'inherit',
    });
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`preload exited ${code}`))));
  });
  await rename(tmp, dir);
  return dir;
}

const body = (n) => {
  const i = Math.floor(Math.random() * ENTRIES);
  return JSON.stringify({
    key: n % 2 === 0 ? entryKey(i) : entryPrefix(i),
    version: VERSION,
    restore_keys: [],
  });
};

async function load(url, { token, tokens, check, pid }, duration) {
  let n = 0;
  const cpu0 = pid ? cpuSecondsOf(pid) : 0;
  let ok = 0;
  let bad = 0;
  const r = await autocannon({
    url,
    connections: CONNECTIONS,
    pipelining: 1,
    duration,
    requests: [
      {
        method: 'POST',
        path: `${SERVICE}/GetCacheEntryDownloadURL`,
        setupRequest: (req) => {
          const i = n++;
          const t = tokens ? tokens[i] : token;
          if (tokens && t === undefined) throw new Error('ran out of pre-minted tokens');
          return {
            ...req,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${t}` },
            body: body(i),
          };
        },
        onResponse: (status, b) => {
          if (status === 200 && (!check || JSON.parse(b).ok === true)) ok++;
          else bad++;
        },
      },
    ],
  });
  const total = r.requests.total;
  return {
    rps: r.requests.average,
    // CPU of the server per answered request: barely moved by other load on the machine.
    cpuUs: pid && total > 0 ? ((cpuSecondsOf(pid) - cpu0) * 1e6) / total : Number.NaN,
    hwm: pid ? memoryOf(pid).hwm : Number.NaN,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    ok,
    bad,
  };
}

async function main() {
  await mkdir(OUT, { recursive: true });
  const store = await ensureStore();
  const secrets = await loadSecrets(store);
  const authority = createTokenAuthority({ secret: secrets.tokenSecret });
  const prof = args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${join(OUT, 'prof')}`] : [];
  // One mock at a time on the store (it takes an exclusive lock), started afresh for every run.
  const startMock = (main) =>
    start(
      [...prof, main, 'serve', '--port', '0', '--data-dir', store, '--log-level', 'silent'],
      (line, s) => {
        const m = /^export (\w+)=(.*)$/.exec(line);
        if (m) s[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
        return s.ACTIONS_RESULTS_URL && s.ACTIONS_RUNTIME_TOKEN
          ? { url: s.ACTIONS_RESULTS_URL.replace(/\/$/, ''), token: s.ACTIONS_RUNTIME_TOKEN }
          : undefined;
      },
    );
  const hello = await start([join(here, 'hello-server.mjs'), 'http'], (line) => {
    const m = /^READY (\d+)$/.exec(line);
    return m ? { url: `http://127.0.0.1:${m[1]}` } : undefined;
  });
  const mint = (count) => Array.from({ length: count }, () => authority.mint());
  // Enough tokens for 4× the target rate, so a run never reuses one.
  const tokenCount = Math.max(40_000, 4 * 10_000 * DURATION);
  const mains = [['mock', MOCK_MAIN]];
  if (args['compare-main']) mains.push(['alt', args['compare-main']]);
  const token = authority.mint({ ttlMs: 24 * 3_600_000 });
  const results = { http: [] };
  for (const [name] of mains) Object.assign(results, { [name]: [], [`${name}/tokens`]: [] });
  const record = (name, run, r) => {
    results[name].push(r);
    log(
      `#${run + 1} ${name.padEnd(11)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  ` +
        `cpu ${r.cpuUs.toFixed(0)} µs/req  peak RSS ${(r.hwm / 2 ** 20).toFixed(0)} MB  ` +
        `errors ${r.errors} non-2xx ${r.non2xx} not-hit ${r.bad}`,
    );
  };
  await load(hello.url, { token }, 2); // warm-up
  for (let run = 0; run < RUNS; run++) {
    for (const [name, main] of mains) {
      const mock = await startMock(main);
      await load(mock.url, { token, check: true }, 2); // warm-up (JIT, SQLite page cache)
      const pid = mock.child.pid;
      record(name, run, await load(mock.url, { token, check: true, pid }, DURATION));
      record(
        `${name}/tokens`,
        run,
        await load(mock.url, { tokens: mint(tokenCount), check: true, pid }, DURATION),
      );
      await stop(mock.child);
    }
    record('http', run, await load(hello.url, { token, pid: hello.child.pid }, DURATION));
  }
  const summary = {};
  for (const [name, rs] of Object.entries(results)) {
    summary[name] = {
      rps: median(rs.map((r) => r.rps)),
      p99: median(rs.map((r) => r.p99)),
      cpuUs: median(rs.map((r) => r.cpuUs)),
      hwm: Math.max(...rs.map((r) => r.hwm)),
      runs: rs.map((r) => Math.round(r.rps)),
      failures: rs.reduce((a, r) => a + r.errors + r.non2xx + r.bad, 0),
    };
  }
  const ratio = (a) => summary[a].rps / summary.http.rps;
  const lines = [
    `| target | median req/s | median p99 ms | ratio to node:http | server CPU µs/req | peak RSS MB | runs req/s | failed requests |`,
    `| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |`,
    ...Object.entries(summary).map(
      ([name, s]) =>
        `| ${name} | ${s.rps.toFixed(0)} | ${s.p99} | ${ratio(name).toFixed(2)} | ${s.cpuUs.toFixed(0)} | ${(s.hwm / 2 ** 20).toFixed(0)} | ${s.runs.join(', ')} | ${s.failures} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (args.json) await writeFile(args.json, JSON.stringify({ args, summary, results }, null, 2));
}

try {
  await main();
} finally {
  await Promise.all([...children].map(stop));
}
