// One timed plain GET of a whole blob, the way clients that do not speak Azure read it: curl, the
// non-Azure download path of @actions/cache (`downloadCacheHttpClient`: one GET piped into a file write
// stream) and go-actions-cache (one GET, io.Copy to a file). No Range, no x-ms-* headers; the answer must
// be 200 with the whole body. In a fresh process, like bench/blob-client.mjs.
//
//   node bench/get-client.mjs get <url> <file>     → prints one JSON line {"op","bytes","ms"}
import { createWriteStream } from 'node:fs';
import { get } from 'node:http';
import { pipeline } from 'node:stream/promises';

const [op, url, file] = process.argv.slice(2);
if (op !== 'get' || !url || !file) throw new Error('usage: get-client.mjs get <url> <file>');

const started = performance.now();
const res = await new Promise((resolve, reject) => get(url, resolve).on('error', reject));
if (res.statusCode !== 200) throw new Error(`GET: ${res.statusCode}`);
const expected = Number(res.headers['content-length']);
let bytes = 0;
res.on('data', (chunk) => {
  bytes += chunk.length;
});
await pipeline(res, createWriteStream(file));
const ms = performance.now() - started;
if (bytes !== expected) throw new Error(`GET: ${bytes} bytes of ${expected}`);
process.stdout.write(`${JSON.stringify({ op, bytes, ms })}\n`);
