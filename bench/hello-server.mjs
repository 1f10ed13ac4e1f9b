// The baseline of the lookup benchmark: the cheapest JSON RPC server on the same machine. It reads
// the POST body and answers a fixed small JSON object, with no parsing, auth or storage.
//
//   node bench/hello-server.mjs http|fastify      → prints `READY <port>` on stdout, SIGTERM closes it
import { createServer } from 'node:http';
import Fastify from 'fastify';

const kind = process.argv[2];
const BODY = JSON.stringify({ ok: true, signed_download_url: 'http://127.0.0.1/x', matched_key: 'k' });

let close;
if (kind === 'http') {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
      res.end(BODY);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`READY ${server.address().port}\n`);
  close = () => server.close(() => process.exit(0));
} else if (kind === 'fastify') {
  const app = Fastify({ logger: false });
  app.post(
    '/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL',
    async (_req, reply) => reply.header('content-type', 'application/json').send(BODY),
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`READY ${app.server.address().port}\n`);
  close = () => app.close().then(() => process.exit(0));
} else {
  throw new Error('usage: hello-server.mjs http|fastify');
}
process.on('SIGTERM', () => close());
