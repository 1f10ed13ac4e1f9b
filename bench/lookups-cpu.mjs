// CPU time per GetCacheEntryDownloadURL lookup, in-process: `startMockServer()` on the store of
// bench/lookups.mjs, requests through `app.inject()` (the whole Fastify pipeline with every hook, no
// socket), 64 in flight, the same key mix (exact and prefix hits alternating, every answer checked to
// be a hit). CPU time (`process.cpuUsage()`) barely moves with other load on the machine, so this
// judges a change on a busy machine where req/s cannot. One token, then a different valid token per
// request. Each build runs in a fresh process per round, builds interleaved, median of --rounds.
//
//   node bench/lookups-cpu.mjs [--entries 100000] [--requests 20000] [--rounds 3]
//        [--compare-main <another build's dist/main.js>]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { entryKey, entryPrefix, VERSION } from './lookup-keys.mjs';
import { median } from './measure.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    requests: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    'compare-main': { type: 'string' },
    child: { type: 'string' },
  },
});
const ENTRIES = Number(args.entries);
const REQUESTS = Number(args.requests);
const STORE = join(here, '.out', `lookup-store-${ENTRIES}`);
const PATH = '/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL';
const IN_FLIGHT = 64;

async function child(distDir) {
  const { startMockServer } = await import(pathToFileURL(join(distDir, 'index.js')).href);
  const mock = await startMockServer({ dataDir: STORE, logger: { level: 'silent' }, processMetrics: true });
  const host = new URL(mock.url).host;
  let n = 0;
  const one = async (token) => {
    const i = Math.floor(Math.random() * ENTRIES);
    const res = await mock.app.inject({
      method: 'POST',
      url: PATH,
      headers: { host, 'content-type': 'application/json', authorization: `Bearer ${token}` },
      payload: JSON.stringify({
        key: n++ % 2 === 0 ? entryKey(i) : entryPrefix(i),
        version: VERSION,
        restore_keys: [],
      }),
    });
    if (res.statusCode !== 200 || JSON.parse(res.payload).ok !== true)
      throw new Error(`not a hit: ${res.payload}`);
  };
  const run = async (count, tokenOf) => {
    let next = 0;
    const worker = async () => {
      while (next < count) await one(tokenOf(next++));
    };
    const cpu0 = process.cpuUsage();
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / count;
  };
  const token = mock.token;
  await run(REQUESTS, () => token); // warm-up: JIT, SQLite page cache
  const profile = process.env.LOOKUPS_CPU_PROFILE; // a file: CPU profile of the one-token run
  let session;
  if (profile) {
    const { Session } = await import('node:inspector/promises');
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const oneToken = await run(REQUESTS, () => token);
  if (session) {
    const { profile: p } = await session.post('Profiler.stop');
    (await import('node:fs')).writeFileSync(profile, JSON.stringify(p));
  }
  const tokens = Array.from({ length: REQUESTS }, () => mock.mintToken());
  const perRequest = await run(REQUESTS, (i) => tokens[i]);
  const rss = process.memoryUsage().rss;
  await mock.close();
  process.stdout.write(`${JSON.stringify({ oneToken, perRequest, rss })}\n`);
}

function runChild(distDir) {
  return new Promise((resolve, reject) => {
    const c = spawn(
      process.execPath,
      [
        fileURLToPath(import.meta.url),
        '--child',
        distDir,
        '--entries',
        String(ENTRIES),
        '--requests',
        String(REQUESTS),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop()))
        : reject(new Error(`child exited ${code}`)),
    );
  });
}

if (args.child) {
  await child(args.child);
} else {
  if (!existsSync(STORE))
    throw new Error(`no store at ${STORE}: run bench/lookups.mjs once (it preloads it)`);
  const builds = [['mock', join(here, '..', 'packages', 'mock-server', 'dist')]];
  if (args['compare-main']) builds.push(['alt', dirname(args['compare-main'])]);
  const results = Object.fromEntries(builds.map(([name]) => [name, []]));
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const [name, dir] of builds) {
      const r = await runChild(dir);
      results[name].push(r);
      process.stderr.write(
        `[lookups-cpu] #${round + 1} ${name.padEnd(4)} one token ${r.oneToken.toFixed(1)} µs/req, token per request ${r.perRequest.toFixed(1)} µs/req, RSS ${(r.rss / 2 ** 20).toFixed(0)} MB\n`,
      );
    }
  }
  const lines = [
    '| build | one token µs/req | token per request µs/req | runs (one token) |',
    '| --- | ---: | ---: | --- |',
  ];
  for (const [name, rs] of Object.entries(results)) {
    lines.push(
      `| ${name} | ${median(rs.map((r) => r.oneToken)).toFixed(1)} | ${median(rs.map((r) => r.perRequest)).toFixed(1)} | ${rs.map((r) => r.oneToken.toFixed(0)).join(', ')} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
