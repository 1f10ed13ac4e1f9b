// BuildKit's upload pattern beside its limit: go-actions-cache uploads a layer as 1 MiB Put Blocks one
// at a time (88-character block ids), then one Put Block List, then Finalize. One layer of --blocks MiB
// that way against the mock (`gha-cache-mock serve`, fs storage, request log off), against --blocks
// sequential 1 MiB PUTs (Put Blob) to the raw node:http-to-disk server (bench/raw-server.mjs) of the
// same run. Interleaved, median of --runs; keep-alive connection, like azcore's.
// The mock's time covers Put Blocks + Put Block List (+ Finalize, reported apart); Create is untimed.
// Beside each time, the server's CPU (user + system, from /proc/<pid>/stat) for the layer.
//
//   node bench/buildkit-pattern.mjs [--blocks 256] [--runs 5] [--mock-main F] [--compare-main F] [--cpu-prof]
// --compare-main F runs a second mock (another build's main.js, e.g. a copy of main's dist/) in the same
// interleaved runs, for an A/B of a change. --cpu-prof writes a V8 profile of the mock to bench/.out/prof/.
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSecondsOf } from './cpu.mjs';
import { median } from './measure.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { values: args } = parseArgs({
  options: {
    blocks: { type: 'string', default: '256' },
    runs: { type: 'string', default: '5' },
    'mock-main': { type: 'string' },
    'compare-main': { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const BLOCKS = Number(args.blocks);
const RUNS = Number(args.runs);
const MOCK_MAIN = args['mock-main'] ?? join(dirname(require.resolve('@gha-cache/mock-server')), 'main.js');
const MiB = 1024 * 1024;
const SERVICE = '/twirp/github.actions.results.api.v1.CacheService';
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const block = randomFillSync(Buffer.allocUnsafe(MiB));

function send(url, method, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method, agent, headers: { 'content-length': body.length, ...headers } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode >= 300) reject(new Error(`${method} ${url}: ${res.statusCode} ${text}`));
          else resolve(text);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const children = new Set();
function start(nodeArgs, ready) {
  const child = spawn(process.execPath, nodeArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const state = {};
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const r = ready(line, state);
      if (r) resolve({ child, ...r });
    });
    child.on('exit', (code) => reject(new Error(`${nodeArgs[0]} exited ${code}`)));
  });
}

const dir = await mkdtemp(join(tmpdir(), 'gha-cache-bench-buildkit-'));
try {
  const startMock = (main, name) =>
    start(
      [
        ...(args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${join(here, '.out', 'prof')}`] : []),
        main,
        'serve',
        '--port',
        '0',
        '--data-dir',
        join(dir, name),
        '--log-level',
        'silent',
      ],
      (line, s) => {
        const m = /^export (\w+)=(.*)$/.exec(line);
        if (m) s[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
        return s.ACTIONS_RESULTS_URL && s.ACTIONS_RUNTIME_TOKEN
          ? { url: s.ACTIONS_RESULTS_URL.replace(/\/$/, ''), token: s.ACTIONS_RUNTIME_TOKEN }
          : undefined;
      },
    );
  const mocks = [{ name: 'mock', label: 'mock', ...(await startMock(MOCK_MAIN, 'mock')) }];
  if (args['compare-main']) {
    mocks.push({
      name: 'alt',
      label: `mock (${args['compare-main']})`,
      ...(await startMock(args['compare-main'], 'alt')),
    });
  }
  const raw = await start([join(here, 'raw-server.mjs'), join(dir, 'raw')], (line) => {
    const m = /^READY (\d+)$/.exec(line);
    return m ? { url: `http://127.0.0.1:${m[1]}` } : undefined;
  });
  const rpc = async (mock, method, body) =>
    JSON.parse(
      await send(`${mock.url}${SERVICE}/${method}`, 'POST', Buffer.from(JSON.stringify(body)), {
        'content-type': 'application/json',
        authorization: `Bearer ${mock.token}`,
      }),
    );
  const version = createHash('sha256').update('bench-buildkit').digest('hex');
  const AZ = { 'x-ms-version': '2024-11-04' };

  async function mockLayer(mock, n) {
    const key = `buildkit-blob-${n}`;
    const { signed_upload_url: url } = await rpc(mock, 'CreateCacheEntry', { key, version });
    const cpu = cpuSecondsOf(mock.child.pid);
    const started = performance.now();
    const ids = [];
    for (let i = 0; i < BLOCKS; i++) {
      // go-actions-cache: base64 of a 64-byte id (88 characters).
      const id = Buffer.from(`${String(n).padStart(8, '0')}${String(i).padStart(56, '0')}`).toString(
        'base64',
      );
      ids.push(id);
      await send(`${url}&comp=block&blockid=${encodeURIComponent(id)}`, 'PUT', block, AZ);
    }
    const xml = `<?xml version="1.0" encoding="utf-8"?><BlockList>${ids.map((id) => `<Latest>${id}</Latest>`).join('')}</BlockList>`;
    await send(`${url}&comp=blocklist`, 'PUT', Buffer.from(xml), {
      ...AZ,
      'content-type': 'application/xml',
    });
    const uploaded = performance.now();
    const cpuS = cpuSecondsOf(mock.child.pid) - cpu;
    const f = await rpc(mock, 'FinalizeCacheEntryUpload', { key, version, size_bytes: String(BLOCKS * MiB) });
    if (!f.ok) throw new Error(`Finalize: ${JSON.stringify(f)}`);
    return { ms: uploaded - started, finalizeMs: performance.now() - uploaded, cpuS };
  }
  async function rawLayer(n) {
    const cpu = cpuSecondsOf(raw.child.pid);
    const started = performance.now();
    for (let i = 0; i < BLOCKS; i++) {
      await send(`${raw.url}/account/container/layer-${n}-${i}`, 'PUT', block, {
        ...AZ,
        'x-ms-blob-type': 'BlockBlob',
      });
    }
    return { ms: performance.now() - started, cpuS: cpuSecondsOf(raw.child.pid) - cpu };
  }

  const res = { raw: [], rawCpu: [] };
  for (const m of mocks) res[m.name] = { ms: [], finalize: [], cpu: [] };
  for (let run = -1; run < RUNS; run++) {
    const line = [`#${run + 1}`];
    for (const m of mocks) {
      const t = await mockLayer(m, run + 1);
      line.push(
        `${m.name} ${t.ms.toFixed(0)} ms (+ Finalize ${t.finalizeMs.toFixed(0)} ms, CPU ${t.cpuS.toFixed(2)} s)`,
      );
      if (run >= 0) {
        res[m.name].ms.push(t.ms);
        res[m.name].finalize.push(t.finalizeMs);
        res[m.name].cpu.push(t.cpuS);
      }
    }
    const r = await rawLayer(run + 1);
    line.push(`raw ${r.ms.toFixed(0)} ms (CPU ${r.cpuS.toFixed(2)} s)`);
    process.stderr.write(`${line.join(', ')}\n`);
    if (run >= 0) {
      res.raw.push(r.ms);
      res.rawCpu.push(r.cpuS);
    }
  }
  const rate = (ms) => ((BLOCKS * 1000) / ms).toFixed(0);
  const rawMs = median(res.raw);
  process.stdout.write(
    [
      `| target | median ms for ${BLOCKS} × 1 MiB | requests/s | / raw rate | server CPU s (median) | runs ms |`,
      '| --- | ---: | ---: | ---: | ---: | --- |',
      ...mocks.map((m) => {
        const ms = median(res[m.name].ms);
        return `| ${m.label}: Put Block × ${BLOCKS} + Put Block List | ${ms.toFixed(0)} | ${rate(ms)} | ${(rawMs / ms).toFixed(2)} | ${median(res[m.name].cpu).toFixed(2)} | ${res[m.name].ms.map((x) => x.toFixed(0)).join(', ')} |`;
      }),
      `| raw node:http: PUT × ${BLOCKS} | ${rawMs.toFixed(0)} | ${rate(rawMs)} | 1.00 | ${median(res.rawCpu).toFixed(2)} | ${res.raw.map((x) => x.toFixed(0)).join(', ')} |`,
      '',
      `mock / raw rate: ${(rawMs / median(res.mock.ms)).toFixed(2)} (target ≥ 0.7); Finalize after it: median ${median(res.mock.finalize).toFixed(0)} ms.`,
      '',
    ].join('\n'),
  );
} finally {
  agent.destroy();
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise((r) => {
          c.once('exit', r);
          c.kill('SIGTERM');
        }),
    ),
  );
  await rm(dir, { recursive: true, force: true });
}
