// Lookups on the PostgreSQL metadata store: GetCacheEntryDownloadURL hits (half exact, half prefix,
// random entries) with autocannon on one mock instance over --entries committed entries in a
// PostgreSQL 15 started here (initdb as the postgres user into a temp dir), blobs on Azurite (the
// direct store: a lookup reads the database only). Baseline in the same run: the Fastify hello-JSON
// server. Prints a Markdown table and (unless --no-doc) writes the "PostgreSQL lookups" section of
// docs/benchmarks.md between its markers. Needs `pnpm run build` and postgresql-15 first.
//
//   node bench/postgres-lookups.mjs [--entries 100000] [--duration 10] [--connections 64] [--transfer-mib 256] [--no-doc]
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync } from 'node:fs';
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

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const MOCK_MAIN = join(here, '..', 'packages/mock-server/dist/main.js');
const AZURITE_MAIN = join(dirname(require.resolve('azurite/package.json')), 'dist/src/blob/main.js');
const PG_BIN = '/usr/lib/postgresql/15/bin';
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
    'transfer-mib': { type: 'string', default: '256' },
  },
});
const ENTRIES = Number(args.entries);
const DURATION = Number(args.duration);
const CONNECTIONS = Number(args.connections);
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
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB`,
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
    const mock = await startChild(
      [
        MOCK_MAIN,
        'serve',
        '--port',
        '0',
        '--data-dir',
        join(dir, 'mock'),
        '--database',
        url,
        '--blob-store',
        'azure',
        '--azure-connection-string',
        connection,
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
    children.push(mock.child);

    // The mock applied the migrations; preload committed rows straight into the table.
    log(`preloading ${ENTRIES} committed entries into PostgreSQL`);
    const started = performance.now();
    const db = new pg.Client({ connectionString: url });
    await db.connect();
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
    await db.query('ANALYZE entries');
    await db.end();
    const preloadMs = Math.round(performance.now() - started);

    const hello = await startChild([join(here, 'hello-server.mjs'), 'fastify'], (line) => {
      const m = /^READY (\d+)$/.exec(line);
      return m ? { url: `http://127.0.0.1:${m[1]}` } : undefined;
    });
    children.push(hello.child);

    const load = async (target, duration) => {
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
            headers: { 'content-type': 'application/json', authorization: `Bearer ${mock.token}` },
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
        ok,
        bad,
      };
    };
    await load(mock.url, 2);
    const pgMock = await load(mock.url, DURATION);
    log(
      `mock on PostgreSQL: ${pgMock.rps.toFixed(0)} req/s, p50 ${pgMock.p50} ms, p99 ${pgMock.p99} ms, bad ${pgMock.bad}`,
    );
    await load(hello.url, 2);
    const base = await load(hello.url, DURATION);
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
    if (back.length !== bytes) throw new Error(`downloaded ${back.length} of ${bytes} bytes`);
    const transferS = (performance.now() - t0) / 1000;
    const mockCpuPerGiB = ((cpuSecondsOf(mock.child.pid) - mockCpu0) / (2 * bytes)) * 1024 ** 3;
    log(
      `transfer: ${(2 * bytes) / 1024 ** 2} MiB in ${transferS.toFixed(1)} s, mock CPU ${mockCpuPerGiB.toFixed(3)} s/GiB`,
    );

    const cpus = os.cpus();
    const md = [
      `Run of ${new Date().toISOString().slice(0, 16)}Z on ${cpus.length} × ${cpus[0]?.model ?? 'CPU'}, Node ${process.version}, PostgreSQL 15 on the same machine, load average ${os.loadavg()[0].toFixed(1)} at the end.`,
      `${ENTRIES} committed entries (preloaded in ${(preloadMs / 1000).toFixed(1)} s), ${CONNECTIONS} connections, ${DURATION} s, half exact and half prefix hits on random entries, blobs on Azurite (a lookup reads only the database).`,
      '',
      '| target | req/s | p50 ms | p99 ms | non-hit answers |',
      '| --- | ---: | ---: | ---: | ---: |',
      `| mock, PostgreSQL metadata + Azure blob store | ${pgMock.rps.toFixed(0)} | ${pgMock.p50} | ${pgMock.p99} | ${pgMock.bad} |`,
      `| hello JSON, Fastify 5 (baseline) | ${base.rps.toFixed(0)} | ${base.p50} | ${base.p99} | – |`,
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
    for (const c of children) c.kill('SIGTERM');
    try {
      asPostgres('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
    } catch {}
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
