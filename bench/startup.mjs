// Start-up beside its limits: how long from spawn until `gha-cache-mock serve` has printed its
// `export` lines (fs storage: an empty data dir, and a copy-free store of --entries committed entries
// made by bench/lookups.mjs), against `node -e ''` (the floor: spawning Node.js itself) of the same
// run; and `startMockServer()` in-process (memory storage), timed around the call in a fresh process.
// Interleaved, median of --runs.
//
//   node bench/startup.mjs [--runs 7] [--entries 100000] [--mock-main F]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from './measure.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    entries: { type: 'string', default: '100000' },
    'mock-main': { type: 'string' },
  },
});
const RUNS = Number(args.runs);
const MOCK_MAIN = args['mock-main'] ?? join(dirname(require.resolve('@gha-cache/mock-server')), 'main.js');
const STORE = join(here, '.out', `lookup-store-${args.entries}`);

/** ms from spawn until stdout has printed `until` (a regexp), then the child is stopped. */
function timeUntil(nodeArgs, until) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, nodeArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let ms;
    child.stdout.on('data', (d) => {
      out += d;
      if (ms === undefined && until.test(out)) {
        ms = performance.now() - started;
        child.kill('SIGTERM');
      }
    });
    child.stderr.on('data', (d) => {
      err = (err + d).slice(-2000);
    });
    child.on('exit', (code) =>
      ms === undefined ? reject(new Error(`exited ${code}: ${err}`)) : resolve(ms),
    );
  });
}

const EXPORTS = /export ACTIONS_RUNTIME_TOKEN=.*\n/;
const serve = (dir) => [MOCK_MAIN, 'serve', '--port', '0', '--data-dir', dir, '--log-level', 'silent'];
const inProcess = `const t = performance.now(); const { startMockServer } = await import(${JSON.stringify(
  join(dirname(MOCK_MAIN), 'index.js'),
)}); const t1 = performance.now(); const m = await startMockServer(); const t2 = performance.now();
process.stdout.write(JSON.stringify({ importMs: t1 - t, startMs: t2 - t1 }) + '\\n'); await m.close();`;

const results = { node: [], empty: [], store: [], import: [], start: [] };
for (let run = -1; run < RUNS; run++) {
  const empty = await mkdtemp(join(tmpdir(), 'gha-cache-mock-startup-'));
  const r = {
    node: await timeUntil(['-e', 'process.stdout.write("x\\n")'], /x\n/),
    empty: await timeUntil(serve(empty), EXPORTS),
    store: existsSync(STORE) ? await timeUntil(serve(STORE), EXPORTS) : Number.NaN,
  };
  await rm(empty, { recursive: true, force: true });
  const j = await new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', inProcess], {
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
  if (run < 0) continue; // warm-up (disk cache)
  results.node.push(r.node);
  results.empty.push(r.empty);
  results.store.push(r.store);
  results.import.push(j.importMs);
  results.start.push(j.startMs);
  process.stderr.write(
    `#${run + 1} node ${r.node.toFixed(0)} ms, serve empty ${r.empty.toFixed(0)} ms, serve ${args.entries} ${r.store.toFixed(0)} ms, import ${j.importMs.toFixed(0)} ms + startMockServer() ${j.startMs.toFixed(0)} ms\n`,
  );
}
const f = (xs) => `${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
process.stdout.write(
  [
    '| what | median (runs) | limit |',
    '| --- | ---: | ---: |',
    `| \`node -e\` (spawn floor) | ${f(results.node)} | |`,
    `| \`serve\`, empty data dir: spawn → export lines | ${f(results.empty)} | 250 ms |`,
    `| \`serve\`, ${args.entries} entries: spawn → export lines | ${f(results.store)} | 400 ms |`,
    `| \`import('@gha-cache/mock-server')\` in-process | ${f(results.import)} | |`,
    `| \`startMockServer()\` in-process (after the import) | ${f(results.start)} | 50 ms |`,
    '',
  ].join('\n'),
);
