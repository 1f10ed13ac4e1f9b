// Lookups on the PostgreSQL metadata store: GetCacheEntryDownloadURL hits (half exact, half prefix,
// random entries) with autocannon on one mock instance over --entries committed entries in a
// PostgreSQL 15 started here (initdb as the postgres user into a temp dir), blobs on Azurite (the
// direct store: a lookup reads the database only). Baseline in the same run: the Fastify hello-JSON
// server. Beside req/s it reports the CPU time per lookup of the mock and of all PostgreSQL
// processes (from /proc, which load barely moves) and the statements per lookup (pg_stat_statements).
// `--compare <other build's dist/main.js>` starts a second mock of that build on the same database
// and alternates the two `--runs` times (an A/B in one run). Prints a Markdown table and (unless
// --no-doc) writes the "PostgreSQL lookups" section of docs/benchmarks.md between its markers.
// Needs `pnpm run build` and postgresql-15 first.
//
//   node bench/postgres-lookups.mjs [--entries 100000] [--duration 10] [--connections 64] [--runs 1]
//     [--compare F] [--transfer-mib 512] [--no-doc]
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BlockBlobClient } from '@azure/storage-blob';
import autocannon from 'autocannon';
import pg from 'pg';
import { cpuSecondsOf } from './cpu.mjs';
import { entryKey, entryPrefix, REPOSITORY_ID, SCOPE, VERSION } from './lookup-keys.mjs';
import { median } from './measure.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const MOCK_MAIN = join(here, '..', 'packages/mock-server/dist/main.js');
const AZURITE_MAIN = join(dirname(require.resolve('azurite/package.json')), 'dist/src/blob/main.js');
const PG_BIN = '/usr/lib/postgresql/15/bin';
const PROFILE_DIR = join(here, '.out', 'postgres-lookups-prof');
const SERVICE = '/twirp/github.actions.results.api.v1.CacheService';
// The documented, public Azurite development key (not a secret).
const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const { values: args } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    'no-doc': { type: 'boolean', default: false },
    'transfer-mib': { type: 'string', default: '512' },
    runs: { type: 'string', default: '1' },
    compare: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const ENTRIES = Number(args.entries);
const DURATION = Number(args.duration);
const CONNECTIONS = Number(args.connections);
const RUNS = Number(args.runs);
const log = (m) => process.stderr.write(`[bench] ${m}\n`);

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** Spawns a child and resolves once `ready(line)` returns a value for a line of its stdout or stderr. */
function startChild(argv, ready) {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const state = {};
    const onLine = (line) => {
      output += `${line}\n`;
      const r = ready(line, state);
      if (r) resolve({ child, output: () => output, ...r });
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    child.once('exit', (code) => reject(new Error(`child exited with ${code}:\n${output}`)));
  });
}

const asPostgres = (bin, argv) =>
  execFileSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, bin), ...argv], { stdio: 'pipe' });

/**
 * CPU seconds of a PostgreSQL server so far: the postmaster, its live children (backends, writers)
 * and the children it has reaped (their time is in the postmaster's cutime/cstime).
 */
function postgresCpuSeconds(postmasterPid) {
  const stat = (pid) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const own = stat(postmasterPid);
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === postmasterPid) continue;
    try {
      const f = stat(name);
      if (Number(f[1]) === postmasterPid) ticks += Number(f[11]) + Number(f[12]);
    } catch {} // gone meanwhile
  }
  return ticks / 100;
}

/** Waits (at most 30 s) until the mock and PostgreSQL together use < 5% of a CPU over 500 ms. */
async function waitForQuiet(mockPid, postmasterPid) {
  const total = () => cpuSecondsOf(mockPid) + postgresCpuSeconds(postmasterPid);
  const deadline = performance.now() + 30_000;
  for (let before = total(); performance.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 500));
    const now = total();
    if (now - before < 0.025) return;
    before = now;
  }
}

/** A mock instance on the bench's database and Azurite; `main` is the build's dist/main.js. */
function startMock(main, dataDir, databaseUrl, azureConnection, nodeArgs = []) {
  return startChild(
    [
      ...nodeArgs,
      main,
      'serve',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--database',
      databaseUrl,
      '--blob-store',
      'azure',
      '--azure-connection-string',
      azureConnection,
      '--log-level',
      'silent',
    ],
    (line, state) => {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) state[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
      return state.ACTIONS_RESULTS_URL && state.ACTIONS_RUNTIME_TOKEN
        ? { url: state.ACTIONS_RESULTS_URL.replace(/\/$/, ''), token: state.ACTIONS_RUNTIME_TOKEN }
        : undefined;
    },
  );
}

/** Committed rows straight into the table (the mock applied the migrations). */
async function preload(db) {
  const now = Date.now();
  for (let from = 0; from < ENTRIES; from += 5000) {
    const keys = [];
    const blobs = [];
    for (let i = from; i < Math.min(ENTRIES, from + 5000); i++) {
      keys.push(entryKey(i));
      blobs.push(i.toString(16).padStart(32, '0'));
    }
    await db.query(
      `INSERT INTO entries (repository_id, scope, key, version, blob_id, state, size_bytes, created_at, committed_at, last_accessed_at)
       SELECT $1, $2, k, $3, b, 'committed', 16, $4, $4, $4 FROM unnest($5::text[], $6::text[]) AS t(k, b)`,
      [REPOSITORY_ID, SCOPE, VERSION, now, keys, blobs],
    );
  }
  // Rows inserted committed skip the usage trigger (it follows updates): add their usage once.
  await db.query(
    `INSERT INTO repository_usage (repository_id, size_bytes, count)
     SELECT repository_id, sum(size_bytes), count(*) FROM entries GROUP BY repository_id`,
  );
  // As a long-running database would be: statistics known, the visibility map set.
  await db.query('VACUUM ANALYZE entries');
}

async function main() {
  const dir = mkdtempSync(join(os.tmpdir(), 'gha-bench-pg-'));
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
  chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  asPostgres('initdb', [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-locale',
    '--no-sync',
  ]);
  const port = await freePort();
  asPostgres('pg_ctl', [
    '-D',
    data,
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c shared_preload_libraries=pg_stat_statements`,
    '-l',
    join(dir, 'log'),
    '-w',
    'start',
  ]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const children = [];
  try {
    const azurite = await startChild(
      [
        AZURITE_MAIN,
        '--blobHost',
        '127.0.0.1',
        '--blobPort',
        '0',
        '--inMemoryPersistence',
        '--skipApiVersionCheck',
        '--loose',
        '--disableTelemetry',
      ],
      (line) => {
        const m = /listens on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
        return m ? { url: m[1] } : undefined;
      },
    );
    children.push(azurite.child);
    const connection = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${AZURITE_KEY};BlobEndpoint=${azurite.url}/devstoreaccount1;`;
    // Each build on a database of its own (a build refuses a schema newer than it knows).
    const admin = new pg.Client({ connectionString: url });
    admin.on('error', () => undefined); // the server stops at the end
    await admin.connect();
    await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const builds = [{ name: 'this build', main: MOCK_MAIN }];
    if (args.compare) builds.push({ name: `compare (${args.compare})`, main: args.compare });
    const targets = [];
    const started = performance.now();
    for (const [i, build] of builds.entries()) {
      await admin.query(`CREATE DATABASE bench_${i}`);
      const dbUrl = url.replace(/\/postgres$/, `/bench_${i}`);
      const profile = args['cpu-prof'] && i === 0 ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
      const mock = await startMock(build.main, join(dir, `mock-${i}`), dbUrl, connection, profile);
      children.push(mock.child);
      // The mock applied the migrations; preload committed rows straight into the table.
      log(`preloading ${ENTRIES} committed entries into bench_${i} for ${build.name}`);
      const db = new pg.Client({ connectionString: dbUrl });
      db.on('error', () => undefined);
      await db.connect();
      await preload(db);
      await db.end();
      const { rows } = await admin.query('SELECT oid FROM pg_database WHERE datname = $1', [`bench_${i}`]);
      targets.push({ ...build, mock, dbid: rows[0].oid });
    }
    const mock = targets[0].mock;
    const postmasterPid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const preloadMs = Math.round((performance.now() - started) / targets.length);

    const hello = await startChild([join(here, 'hello-server.mjs'), 'fastify'], (line) => {
      const m = /^READY (\d+)$/.exec(line);
      return m ? { url: `http://127.0.0.1:${m[1]}` } : undefined;
    });
    children.push(hello.child);

    const load = async (target, duration, token) => {
      let n = 0;
      let ok = 0;
      let bad = 0;
      const r = await autocannon({
        url: target,
        connections: CONNECTIONS,
        duration,
        requests: [
          {
            method: 'POST',
            path: `${SERVICE}/GetCacheEntryDownloadURL`,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            setupRequest: (req) => {
              const i = Math.floor(Math.random() * ENTRIES);
              const key = n++ % 2 === 0 ? entryKey(i) : entryPrefix(i);
              return { ...req, body: JSON.stringify({ key, version: VERSION, restore_keys: [] }) };
            },
            onResponse: (status, body) => {
              if (status === 200 && JSON.parse(body).ok === true) ok++;
              else bad++;
            },
          },
        ],
      });
      return {
        rps: r.requests.average,
        p50: r.latency.p50,
        p99: r.latency.p99,
        non2xx: r.non2xx,
        errors: r.errors,
        requests: r.requests.total,
        ok,
        bad,
      };
    };
    /** Calls per lookup of each statement the mock's PostgreSQL store ran since the last reset. */
    const statements = async (dbid, lookups) => {
      const { rows } = await admin.query(
        `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls::float8 AS calls
         FROM pg_stat_statements WHERE dbid = $1
           AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC`,
        [dbid],
      );
      return rows
        .map((r) => ({ query: r.query.slice(0, 90), perLookup: r.calls / lookups }))
        .filter((r) => r.perLookup >= 0.001);
    };
    const results = new Map(targets.map((t) => [t.name, []]));
    for (const t of targets) await load(t.mock.url, 2, t.mock.token);
    for (let run = 0; run < RUNS; run++) {
      for (const t of targets) {
        // No run inherits deferred work (checkpoints, autovacuum, the other build's hits).
        await admin.query('CHECKPOINT');
        await waitForQuiet(t.mock.child.pid, postmasterPid);
        await admin.query('SELECT pg_stat_statements_reset()');
        const mockCpu0 = cpuSecondsOf(t.mock.child.pid);
        const pgCpu0 = postgresCpuSeconds(postmasterPid);
        const r = await load(t.mock.url, DURATION, t.mock.token);
        r.mockCpuMs = ((cpuSecondsOf(t.mock.child.pid) - mockCpu0) / r.requests) * 1000;
        r.pgCpuMs = ((postgresCpuSeconds(postmasterPid) - pgCpu0) / r.requests) * 1000;
        // The hits of the last batch land shortly after the load stops.
        await new Promise((res) => setTimeout(res, 500));
        r.statements = await statements(t.dbid, r.requests);
        r.load = os.loadavg()[0];
        results.get(t.name).push(r);
        log(
          `${t.name}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99} ms, mock CPU ${r.mockCpuMs.toFixed(3)} ms/lookup, PostgreSQL CPU ${r.pgCpuMs.toFixed(3)} ms/lookup, bad ${r.bad}, load ${r.load.toFixed(1)}`,
        );
        for (const st of r.statements) log(`  ${st.perLookup.toFixed(3)} × ${st.query}`);
      }
    }
    const summary = (name) => {
      const rs = results.get(name);
      const pick = (f) => median(rs.map(f));
      return {
        rps: pick((r) => r.rps),
        p50: pick((r) => r.p50),
        p99: pick((r) => r.p99),
        bad: rs.reduce((n, r) => n + r.bad, 0),
        mockCpuMs: pick((r) => r.mockCpuMs),
        pgCpuMs: pick((r) => r.pgCpuMs),
        statements: rs[rs.length - 1].statements,
      };
    };
    await admin.end();
    const pgMock = summary('this build');
    await load(hello.url, 2, mock.token);
    const base = await load(hello.url, DURATION, mock.token);
    log(`Fastify hello: ${base.rps.toFixed(0)} req/s`);

    // The bytes bypass the mock: its CPU time over an upload and a download of --transfer-mib MiB.
    const twirp = async (method, body) => {
      const res = await fetch(`${mock.url}${SERVICE}/${method}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${mock.token}` },
        body: JSON.stringify(body),
      });
      return res.json();
    };
    const bytes = Number(args['transfer-mib']) * 1024 * 1024;
    const payload = Buffer.alloc(bytes, 0x5a);
    const mockCpu0 = cpuSecondsOf(mock.child.pid);
    const t0 = performance.now();
    const created = await twirp('CreateCacheEntry', { key: 'transfer', version: VERSION });
    if (!created.ok) throw new Error(`CreateCacheEntry: ${JSON.stringify(created)}`);
    await new BlockBlobClient(created.signed_upload_url).uploadData(payload, {
      blockSize: 64 * 1024 * 1024,
      concurrency: 4,
    });
    const finalized = await twirp('FinalizeCacheEntryUpload', {
      key: 'transfer',
      version: VERSION,
      size_bytes: String(bytes),
    });
    if (!finalized.ok)
      throw new Error(`FinalizeCacheEntryUpload: ${JSON.stringify(finalized)}\n${mock.output()}`);
    const got = await twirp('GetCacheEntryDownloadURL', {
      key: 'transfer',
      version: VERSION,
      restore_keys: [],
    });
    if (!got.ok) throw new Error(`GetCacheEntryDownloadURL: ${JSON.stringify(got)}`);
    const back = await new BlockBlobClient(got.signed_download_url).downloadToBuffer(0, undefined, {
      blockSize: 4 * 1024 * 1024,
      concurrency: 8,
    });
    if (!back.equals(payload)) throw new Error(`downloaded ${back.length} bytes, not the ${bytes} uploaded`);
    const transferS = (performance.now() - t0) / 1000;
    const mockCpuPerGiB = ((cpuSecondsOf(mock.child.pid) - mockCpu0) / (2 * bytes)) * 1024 ** 3;
    log(
      `transfer: ${(2 * bytes) / 1024 ** 2} MiB in ${transferS.toFixed(1)} s, mock CPU ${mockCpuPerGiB.toFixed(3)} s/GiB`,
    );

    const cpus = os.cpus();
    const md = [
      `Run of ${new Date().toISOString().slice(0, 16)}Z on ${cpus.length} × ${cpus[0]?.model ?? 'CPU'}, Node ${process.version}, PostgreSQL 15 on the same machine, load average ${os.loadavg()[0].toFixed(1)} at the end.`,
      `${ENTRIES} committed entries (preloaded in ${(preloadMs / 1000).toFixed(1)} s), ${CONNECTIONS} connections, ${DURATION} s (median of ${RUNS} run${RUNS === 1 ? '' : 's'}), half exact and half prefix hits on random entries, blobs on Azurite (a lookup reads only the database).`,
      '',
      '| target | req/s | p50 ms | p99 ms | non-hit answers | mock CPU ms/lookup | PostgreSQL CPU ms/lookup |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...targets.map(({ name }) => {
        const r = summary(name);
        const label =
          name === 'this build' ? 'mock, PostgreSQL metadata + Azure blob store' : `mock, ${name}`;
        return `| ${label} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.bad} | ${r.mockCpuMs.toFixed(3)} | ${r.pgCpuMs.toFixed(3)} |`;
      }),
      `| hello JSON, Fastify 5 (baseline) | ${base.rps.toFixed(0)} | ${base.p50} | ${base.p99} | – | – | – |`,
      '',
      `Statements per lookup (pg_stat_statements, last run of this build): ${pgMock.statements
        .map((st) => `${st.perLookup.toFixed(3)} × \`${st.query.replace(/`/g, "'")}\``)
        .join('; ')}.`,
      '',
      `Mock on PostgreSQL: ${(pgMock.rps / base.rps).toFixed(2)} × the Fastify hello server.`,
      '',
      `Transfer with the Azure blob store: ${args['transfer-mib']} MiB up and down between @azure/storage-blob and Azurite through the mock's SAS URLs in ${transferS.toFixed(1)} s; the mock used ${mockCpuPerGiB.toFixed(3)} CPU s per GiB moved (the three RPCs only: the bytes bypass it).`,
    ].join('\n');
    process.stdout.write(`${md}\n`);
    if (!args['no-doc']) {
      const doc = join(here, '..', 'docs/benchmarks.md');
      const begin = '<!-- postgres-lookups:begin (generated by bench/postgres-lookups.mjs) -->';
      const end = '<!-- postgres-lookups:end -->';
      let text = await readFile(doc, 'utf8');
      const section = `${begin}\n${md}\n${end}`;
      if (text.includes(begin))
        text = text.replace(new RegExp(`${begin.replace(/[()]/g, '\\$&')}[\\s\\S]*?${end}`), section);
      else text += `\n## PostgreSQL lookups\n\n${section}\n`;
      await writeFile(doc, text);
    }
  } finally {
    await Promise.all(
      children.map(
        (c) =>
          new Promise((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', resolve);
            c.kill('SIGTERM');
          }),
      ),
    );
    try {
      asPostgres('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
    } catch {}
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
