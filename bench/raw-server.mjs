// The raw loopback baseline for the blob benchmark: a bare node:http server speaking just enough of
// the Azure Blob REST API for @azure/storage-blob's uploadFile / downloadToBuffer, with no checks,
// no auth and no metadata store. Every byte still goes through the disk like any real store:
//   PUT ?comp=block&blockid=ID   streams the body to <dir>/<blob>.blocks/<hex id>         → 201
//   PUT ?comp=blocklist          concatenates the listed blocks (streamed) into <dir>/<blob> → 201
//   PUT (Put Blob)               streams the body to <dir>/<blob>                          → 201
//   GET/HEAD                     serves <dir>/<blob>, full or one `x-ms-range`/`Range`      → 200/206
// No fsync (the upper bound a store can reach). Blob names are flattened (`/` → `_`). Each Put Block
// List logs `{"op":"PutBlockList","ms":…}` on stderr.
//
//   node bench/raw-server.mjs <dir>      → prints `READY <port>` on stdout, SIGTERM closes it
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

const dir = process.argv[2];
if (!dir) throw new Error('usage: raw-server.mjs <dir>');
await mkdir(dir, { recursive: true });
const MiB = 1024 * 1024;
const VERSION = '2026-02-06';
let etagCounter = 0;
const etags = new Map();

function base(res, status) {
  res.statusCode = status;
  res.setHeader('x-ms-request-id', randomUUID());
  res.setHeader('x-ms-version', VERSION);
  res.setHeader('date', new Date().toUTCString());
}

async function readText(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://x');
  const blob = decodeURIComponent(url.pathname).slice(1).replaceAll('/', '_');
  const file = join(dir, blob);
  const comp = url.searchParams.get('comp');
  if (req.method === 'PUT') {
    if (comp === 'block') {
      const id = Buffer.from(url.searchParams.get('blockid') ?? '', 'base64').toString('hex');
      await mkdir(`${file}.blocks`, { recursive: true });
      await pipeline(req, createWriteStream(join(`${file}.blocks`, id), { highWaterMark: MiB }));
      base(res, 201);
      res.setHeader('x-ms-request-server-encrypted', 'true');
      res.end();
      return;
    }
    if (comp === 'blocklist') {
      const started = performance.now();
      const xml = await readText(req);
      const ids = [...xml.matchAll(/<(?:Latest|Uncommitted|Committed)>([^<]*)<\//g)].map((m) =>
        Buffer.from(m[1], 'base64').toString('hex'),
      );
      const out = createWriteStream(file, { highWaterMark: MiB });
      async function* concat() {
        for (const id of ids) yield* createReadStream(join(`${file}.blocks`, id), { highWaterMark: MiB });
      }
      await pipeline(concat(), out);
      await rm(`${file}.blocks`, { recursive: true, force: true });
      // Same shape as the mock's request log line, for the bench's Put Block List timings.
      process.stderr.write(`${JSON.stringify({ op: 'PutBlockList', ms: performance.now() - started })}\n`);
    } else {
      await pipeline(req, createWriteStream(file, { highWaterMark: MiB }));
    }
    etags.set(blob, `"0x${(++etagCounter).toString(16).padStart(15, '0')}"`);
    base(res, 201);
    res.setHeader('etag', etags.get(blob));
    res.setHeader('last-modified', new Date().toUTCString());
    res.setHeader('x-ms-request-server-encrypted', 'true');
    res.end();
    return;
  }
  if (req.method === 'DELETE') {
    await rm(file, { force: true });
    base(res, 202);
    res.end();
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    base(res, 405);
    res.end();
    return;
  }
  let size;
  try {
    size = (await stat(file)).size;
  } catch {
    base(res, 404);
    res.setHeader('x-ms-error-code', 'BlobNotFound');
    res.end();
    return;
  }
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers['x-ms-range'] ?? req.headers.range ?? '');
  let start = 0;
  let end = size - 1;
  if (range) {
    start = Number(range[1]);
    if (range[2] !== '') end = Math.min(end, Number(range[2]));
  }
  base(res, range ? 206 : 200);
  res.setHeader('content-type', 'application/octet-stream');
  res.setHeader('content-length', String(end - start + 1));
  if (range) res.setHeader('content-range', `bytes ${start}-${end}/${size}`);
  res.setHeader('accept-ranges', 'bytes');
  res.setHeader('etag', etags.get(blob) ?? '"0x0"');
  res.setHeader('last-modified', new Date().toUTCString());
  res.setHeader('x-ms-blob-type', 'BlockBlob');
  res.setHeader('x-ms-creation-time', new Date().toUTCString());
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  await pipeline(createReadStream(file, { start, end, highWaterMark: MiB }), res);
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`raw-server: ${err.stack}\n`);
    if (!res.headersSent) {
      base(res, 500);
      res.end();
    } else res.destroy();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`READY ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
