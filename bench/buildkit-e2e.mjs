// BuildKit end to end against the mock, beside BuildKit's own local cache in the same run. A `FROM scratch`
// build of --layers `COPY` layers of --layer-size random bytes; each build in a fresh buildkitd (native
// snapshotter): `--export-cache …,mode=max`, then in another fresh daemon `--import-cache` of the same
// cache, both with `--output type=local`. Two caches, interleaved, median of --rounds:
//   gha:   type=gha,url_v2=<mock>/ (go-actions-cache inside BuildKit, against `gha-cache-mock serve`,
//          fs storage, request log on)
//   local: type=local,dest=/src=<dir> (BuildKit writes and reads the same blobs as files: no server at all)
// The mock's share of each gha build: its CPU seconds (/proc/<pid>/stat) and the time its requests spent
// server-side (from its request log: the union of every request's [start, end] and their sum), against
// the build's wall time; requests by op. Needs the real peers (node test/peers/install.mjs buildkit runc;
// GHA_CACHE_PEERS_DIR as for the tests). Writes the "BuildKit end to end" section of docs/benchmarks.md.
//
//   node bench/buildkit-e2e.mjs [--layers 6] [--layer-size 48M] [--rounds 5] [--mock-main F] [--no-doc] [--keep]
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSecondsOf } from './cpu.mjs';
import { median, memoryOf, parseSize } from './measure.mjs';
import {
  f2,
  here,
  MiB,
  MOCK_MAIN,
  machineLine,
  mark,
  mb,
  randomFile,
  root,
  run,
  startMock,
  stopAll,
  stopChild,
  writeDocSection,
} from './processes.mjs';

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: '6' },
    'layer-size': { type: 'string', default: '48M' },
    rounds: { type: 'string', default: '5' },
    'mock-main': { type: 'string' },
    'no-doc': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const LAYERS = Number(args.layers);
const LAYER_SIZE = parseSize(args['layer-size']);
const ROUNDS = Number(args.rounds);
const OUT = join(here, '.out');
const RUN = join(OUT, `buildkit-e2e-run-${process.pid}`);
const t0 = performance.now();
const log = (m) =>
  process.stderr.write(`[buildkit-e2e ${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);
const s = (ms) => `${(ms / 1000).toFixed(2)} s`;

/** Request log lines of the mock: `{ start, end, op, ms }` in epoch ms. */
const requests = [];
const onMockLine = (line) => {
  if (!line.includes('"ms"')) return;
  try {
    const j = JSON.parse(line);
    if (typeof j.ms !== 'number' || typeof j.time !== 'number') return;
    requests.push({ start: j.time - j.ms, end: j.time, ms: j.ms, op: j.op ?? `${j.method} ?` });
  } catch {}
};

/** Server-side time of the requests that ended in [from, to]: union of their intervals, sum, by op. */
function serverSide(from, to) {
  const mine = requests.filter((r) => r.end >= from && r.end <= to).sort((a, b) => a.start - b.start);
  let union = 0;
  let cur;
  for (const r of mine) {
    if (!cur || r.start > cur.end) {
      if (cur) union += cur.end - cur.start;
      cur = { start: r.start, end: r.end };
    } else cur.end = Math.max(cur.end, r.end);
  }
  if (cur) union += cur.end - cur.start;
  const byOp = {};
  for (const r of mine) {
    byOp[r.op] ??= { count: 0, ms: 0 };
    const o = byOp[r.op];
    o.count++;
    o.ms += r.ms;
  }
  return { count: mine.length, unionMs: union, sumMs: mine.reduce((a, r) => a + r.ms, 0), byOp };
}

async function main() {
  await mkdir(RUN, { recursive: true });
  const installed = await run(process.execPath, [
    join(root, 'test', 'peers', 'install.mjs'),
    '--json',
    'runc',
    'buildkit',
  ]);
  const { peers } = JSON.parse(installed);
  const ctx = join(RUN, 'ctx');
  await mkdir(ctx, { recursive: true });
  const dockerfile = ['FROM scratch'];
  for (let i = 0; i < LAYERS; i++) {
    // Distinct random content per layer (one cached random file would make every layer the same blob).
    const { file } = await randomFile(join(ctx, `l${i}`), LAYER_SIZE);
    dockerfile.push(`COPY ${relative(ctx, file)} /layer${i}.bin`);
  }
  await writeFile(join(ctx, 'Dockerfile'), `${dockerfile.join('\n')}\n`);

  // A fresh mock (empty data dir) for every gha round: BuildKit names layer blobs by digest, not by
  // scope, so a second export to the same mock would find every layer cached and upload nothing.
  let mock;
  let hwm = 0;
  const freshMock = async (round) => {
    if (mock) {
      hwm = Math.max(hwm, memoryOf(mock.pid).hwm);
      await stopChild(mock.child);
    }
    mock = await startMock(join(RUN, `mock-data-${round}`), {
      main: args['mock-main'] ?? MOCK_MAIN,
      logLevel: 'info',
      onStderrLine: onMockLine,
    });
    mock.lines.on('line', onMockLine);
  };

  let buildN = 0;
  const build = async (cacheArgs) => {
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
    try {
      await new Promise((resolve, reject) => {
        let seen = '';
        const on = (d) => {
          seen = (seen + d).slice(-4000);
          if (seen.includes(`running server on ${sock}`)) resolve();
        };
        daemon.stdout.on('data', on);
        daemon.stderr.on('data', on);
        daemon.once('exit', (code) => reject(new Error(`buildkitd exited ${code}: ${seen}`)));
      });
      const cpu0 = cpuSecondsOf(mock.pid);
      const from = Date.now();
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
        ...cacheArgs,
      ]);
      const ms = performance.now() - started;
      // The request log line of the last answer can trail the build's end by a moment.
      await new Promise((r) => setTimeout(r, 200));
      return { ms, mockCpu: cpuSecondsOf(mock.pid) - cpu0, server: serverSide(from, Date.now()) };
    } finally {
      try {
        process.kill(-daemon.pid, 'SIGTERM');
      } catch {}
      await new Promise((r) =>
        daemon.exitCode !== null || daemon.signalCode !== null ? r() : daemon.once('exit', r),
      );
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  };

  const caches = {
    gha: async (round) => {
      await freshMock(round);
      const c = `type=gha,url_v2=${mock.url}/,token=${mock.token},scope=bench-e2e-${round}`;
      return { export: ['--export-cache', `${c},mode=max`], import: ['--import-cache', c] };
    },
    local: async (round) => {
      const d = join(RUN, `local-cache-${round}`);
      return {
        export: ['--export-cache', `type=local,dest=${d},mode=max`],
        import: ['--import-cache', `type=local,src=${d}`],
        cleanup: () => rm(d, { recursive: true, force: true }),
      };
    },
  };
  const results = { gha: [], local: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of round % 2 === 0 ? ['gha', 'local'] : ['local', 'gha']) {
      const c = await caches[name](round);
      const exp = await build(c.export);
      const imp = await build(c.import);
      await c.cleanup?.();
      results[name].push({ exp, imp, totalMs: exp.ms + imp.ms });
      const share =
        name === 'gha'
          ? `; mock CPU ${f2(exp.mockCpu)} + ${f2(imp.mockCpu)} s, requests server-side ${s(exp.server.unionMs)} + ${s(imp.server.unionMs)} (${exp.server.count} + ${imp.server.count} requests)`
          : '';
      log(`round ${round + 1} ${name}: export ${s(exp.ms)}, import ${s(imp.ms)}${share}`);
    }
  }
  hwm = Math.max(hwm, memoryOf(mock.pid).hwm);
  await stopAll();

  const med = (name, f) => median(results[name].map(f));
  const g = (f) => med('gha', f);
  const ratio = g((r) => r.totalMs) / med('local', (r) => r.totalMs);
  const ops = {};
  for (const r of results.gha)
    for (const [phase, b] of [
      ['export', r.exp],
      ['import', r.imp],
    ])
      for (const [op, v] of Object.entries(b.server.byOp)) {
        ops[`${phase} ${op}`] ??= { count: 0, ms: 0 };
        const o = ops[`${phase} ${op}`];
        o.count += v.count / ROUNDS;
        o.ms += v.ms / ROUNDS;
      }
  const lines = [
    machineLine(),
    `Command: \`node bench/buildkit-e2e.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\` (BuildKit ${peers.buildkit.version}).`,
    '',
    `### Export (mode=max) + import of ${LAYERS} layers × ${LAYER_SIZE / MiB} MiB, median of ${ROUNDS} interleaved rounds`,
    '',
    'A `FROM scratch` build with one `COPY` of distinct random bytes per layer; every build in a fresh',
    '`buildkitd` (native snapshotter) with `--output type=local`: `--export-cache …,mode=max`, then in another',
    'fresh daemon `--import-cache` of the same cache; wall time of `buildctl build`. gha: `type=gha,url_v2=`',
    'the mock; local: `type=local` to a directory (the same blobs as files, no server): the baseline.',
    '',
    '| cache | export | import | export + import | all rounds (export + import) |',
    '| --- | ---: | ---: | ---: | --- |',
    ...['gha', 'local'].map(
      (n) =>
        `| ${n === 'gha' ? 'type=gha against the mock' : 'type=local (baseline)'} | ${s(med(n, (r) => r.exp.ms))} | ${s(med(n, (r) => r.imp.ms))} | ${s(med(n, (r) => r.totalMs))} | ${results[n].map((r) => s(r.totalMs)).join(', ')} |`,
    ),
    '',
    `gha / local: ${f2(ratio)} (export + import).`,
    '',
    "The mock's share of the gha builds (median per build): its CPU time, and the time its requests spent",
    'server-side (union of the requests\u2019 intervals, i.e. wall time with at least one request in the mock;',
    'sum of their durations in brackets), against the wall time of the build:',
    '',
    '| phase | build wall | mock CPU | requests server-side (sum) | share of the wall time | requests |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...['exp', 'imp'].map((p) => {
      const wall = g((r) => r[p].ms);
      const union = g((r) => r[p].server.unionMs);
      return `| ${p === 'exp' ? 'export' : 'import'} | ${s(wall)} | ${f2(g((r) => r[p].mockCpu))} s | ${s(union)} (${s(g((r) => r[p].server.sumMs))}) | ${((100 * union) / wall).toFixed(1)} % | ${g((r) => r[p].server.count)} |`;
    }),
    '',
    `Requests by op (mean per build, count and summed server-side ms): ${Object.entries(ops)
      .sort((a, b) => b[1].ms - a[1].ms)
      .map(([op, v]) => `${op} ${v.count.toFixed(0)} × = ${v.ms.toFixed(0)} ms`)
      .join('; ')}.`,
    '',
    `Mock peak RSS (VmHWM) over the run: ${mb(hwm)} ${mark(hwm < 150e6)} (< 150 MB).`,
  ];
  const markdown = lines.join('\n');
  process.stdout.write(`\n${markdown}\n`);
  const json = join(OUT, `buildkit-e2e-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(json, `${JSON.stringify({ args, results, hwm }, null, 2)}\n`);
  if (!args['no-doc'])
    await writeDocSection('buildkit-e2e-bench', 'bench/buildkit-e2e.mjs', markdown, 'BuildKit end to end');
  log(`results in ${relative(root, json)}`);
}

try {
  await main();
} finally {
  await stopAll();
  if (!args.keep) await rm(RUN, { recursive: true, force: true });
}
