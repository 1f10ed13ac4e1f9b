// A light, paced stream of GetCacheEntryDownloadURL calls for measuring lookup latency while other
// traffic runs: one keep-alive connection, one request every --interval ms (or right after the previous
// answer if that took longer), alternating an exact key and a prefix hit over the given keys. Prints
// `READY`, starts on the first stdin line, stops on the second (or at stdin's end) and prints one JSON
// line {"count","errors","p50","p99","max"} (latencies in ms, from the request's start to the answer's end).
//
//   node bench/lookup-loop.mjs <results url> <token> <interval ms> <version> <key>...
import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';

const [base, token, intervalArg, version, ...keys] = process.argv.slice(2);
if (!base || !token || !intervalArg || !version || keys.length === 0)
  throw new Error('usage: lookup-loop.mjs <url> <token> <interval ms> <version> <key>...');
const interval = Number(intervalArg);
const url = `${base.replace(/\/$/, '')}/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL`;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function lookup(n) {
  const key = keys[n % keys.length];
  // Every other request asks for a key that is only a prefix: the exact step misses, the prefix step hits.
  const body = JSON.stringify({ key: n % 2 ? key.slice(0, -1) : key, version, restore_keys: [] });
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${token}`,
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`lookup: ${res.statusCode}`));
          const json = JSON.parse(Buffer.concat(chunks).toString());
          if (json.ok !== true) return reject(new Error(`lookup missed: ${JSON.stringify(json)}`));
          resolve();
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
process.stdout.write('READY\n');
await lines.next();
let stop = false;
lines.next().then(() => {
  stop = true;
});
const latencies = [];
let errors = 0;
let lastError;
for (let n = 0; !stop; n++) {
  const started = performance.now();
  try {
    await lookup(n);
    latencies.push(performance.now() - started);
  } catch (err) {
    errors++;
    lastError = String(err);
  }
  const wait = interval - (performance.now() - started);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
latencies.sort((a, b) => a - b);
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
process.stdout.write(
  `${JSON.stringify({ count: latencies.length, errors, lastError, p50: q(0.5), p99: q(0.99), max: latencies.at(-1) ?? Number.NaN })}\n`,
);
process.exit(0);
