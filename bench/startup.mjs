// Start-up beside its limits: how long from spawn until `gha-cache-mock serve` has printed its
// `export` lines (fs storage: an empty data dir, and a copy-free store of --entries committed entries
// made by bench/lookups.mjs), against `node -e ''` (the floor: spawning Node.js itself) of the same
// run; and `startMockServer()` in-process (memory storage), timed around the call in a fresh process.
// Beside each wall time, the CPU time the process used until then (barely moved by other load) and
// its peak RSS. With --baseline-main (e.g. a build of main copied aside), the same figures of that
// build, interleaved run by run. Median of --runs.
//
//   node bench/startup.mjs [--runs 7] [--entries 100000] [--mock-main F] [--baseline-main F]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSecondsOf } from './cpu.mjs';
import { median, memoryOf } from './measure.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    entries: { type: 'string', default: '100000' },
    'mock-main': { type: 'string' },
    'baseline-main': { type: 'string' },
  },
});
const RUNS = Number(args.runs);
const BUILDS = [
  {
    name: 'this build',
    main: resolve(args['mock-main'] ?? join(dirname(require.resolve('@gha-cache/mock-server')), 'main.js')),
  },
  ...(args['baseline-main'] ? [{ name: 'baseline', main: resolve(args['baseline-main']) }] : []),
];
const STORE = join(here, '.out', `lookup-store-${args.entries}`);

/**
 * ms from spawn until stdout has printed `until` (a regexp), the CPU ms and peak RSS (MB) of the
 * child at that moment; then the child is stopped.
 */
function timeUntil(nodeArgs, until) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, nodeArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let m;
    child.stdout.on('data', (d) => {
      out += d;
      if (m === undefined && until.test(out)) {
        m = { ms: performance.now() - started, cpuMs: Number.NaN, rssMb: Number.NaN };
        try {
          m.cpuMs = cpuSecondsOf(child.pid) * 1000;
          m.rssMb = memoryOf(child.pid).hwm / 2 ** 20;
        } catch {}
        child.kill('SIGTERM');
      }
    });
    child.stderr.on('data', (d) => {
      err = (err + d).slice(-2000);
    });
    child.on('exit', (code) => (m === undefined ? reject(new Error(`exited ${code}: ${err}`)) : resolve(m)));
  });
}

const EXPORTS = /export ACTIONS_RUNTIME_TOKEN=.*\n/;
const serve = (main, dir) => [main, 'serve', '--port', '0', '--data-dir', dir, '--log-level', 'silent'];
const inProcess = (main) => `const c0 = process.cpuUsage(); const t = performance.now();
const { startMockServer } = await import(${JSON.stringify(join(dirname(main), 'index.js'))});
const t1 = performance.now(); const c1 = process.cpuUsage(); const m = await startMockServer();
const t2 = performance.now(); const c2 = process.cpuUsage(c1); const ci = process.cpuUsage(c0);
process.stdout.write(JSON.stringify({ importMs: t1 - t, startMs: t2 - t1, startCpuMs: (c2.user + c2.system) / 1000,
  importCpuMs: (ci.user + ci.system - c2.user - c2.system) / 1000, rssMb: process.resourceUsage().maxRSS / 1024 }) + '\\n');
await m.close();`;

function runInProcess(main) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', inProcess(main)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`in-process exited ${code}`)),
    );
  });
}

const KEYS = ['empty', 'store', 'import', 'start'];
const results = { node: [], builds: BUILDS.map(() => Object.fromEntries(KEYS.map((k) => [k, []]))) };
const NONE = { ms: Number.NaN, cpuMs: Number.NaN, rssMb: Number.NaN };
for (let run = -1; run < RUNS; run++) {
  const node = await timeUntil(['-e', 'process.stdout.write("x\\n")'], /x\n/);
  const line = [`#${run + 1} (load ${loadavg()[0].toFixed(1)}) node ${node.ms.toFixed(0)} ms`];
  for (const [i, build] of BUILDS.entries()) {
    const empty = await mkdtemp(join(tmpdir(), 'gha-cache-mock-startup-'));
    const r = {
      empty: await timeUntil(serve(build.main, empty), EXPORTS),
      store: existsSync(STORE) ? await timeUntil(serve(build.main, STORE), EXPORTS) : NONE,
    };
    await rm(empty, { recursive: true, force: true });
    const j = await runInProcess(build.main);
    r.import = { ms: j.importMs, cpuMs: j.importCpuMs, rssMb: Number.NaN };
    r.start = { ms: j.startMs, cpuMs: j.startCpuMs, rssMb: j.rssMb };
    line.push(
      `${build.name}: serve empty ${r.empty.ms.toFixed(0)} ms, serve ${args.entries} ${r.store.ms.toFixed(0)} ms, import ${r.import.ms.toFixed(0)} ms + startMockServer() ${r.start.ms.toFixed(0)} ms`,
    );
    if (run < 0) continue; // warm-up (disk cache, compile cache)
    for (const k of KEYS) results.builds[i][k].push(r[k]);
  }
  if (run < 0) continue;
  results.node.push(node);
  process.stderr.write(`${line.join('; ')}\n`);
}
const ms = (xs) =>
  `${median(xs.map((x) => x.ms)).toFixed(0)} ms (${xs.map((x) => x.ms.toFixed(0)).join(', ')})`;
const cpu = (xs) => `${median(xs.map((x) => x.cpuMs)).toFixed(0)} ms`;
const rss = (xs) =>
  xs.every((x) => Number.isNaN(x.rssMb)) ? '' : `${median(xs.map((x) => x.rssMb)).toFixed(0)} MB`;
const rows = [
  ['empty', '`serve`, empty data dir: spawn → export lines', '250 ms'],
  ['store', `\`serve\`, ${args.entries} entries: spawn → export lines`, '400 ms'],
  ['import', "`import('@gha-cache/mock-server')` in-process", ''],
  ['start', '`startMockServer()` in-process (after the import)', '50 ms'],
];
process.stdout.write(
  [
    `Node.js ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
    '',
    '| build | what | median wall (runs) | CPU | peak RSS | limit |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    `| | \`node -e\` (spawn floor) | ${ms(results.node)} | | | |`,
    ...BUILDS.flatMap((build, i) =>
      rows.map(
        ([k, what, limit]) =>
          `| ${build.name} | ${what} | ${ms(results.builds[i][k])} | ${cpu(results.builds[i][k])} | ${rss(results.builds[i][k])} | ${limit} |`,
      ),
    ),
    '',
  ].join('\n'),
);
