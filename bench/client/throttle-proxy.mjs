// A loopback TCP proxy that caps every connection at `bytesPerSec` in each direction, like a per-connection
// object-store limit. Leaky bucket per direction: each chunk waits until the previous one "finished".
import net from 'node:net';
import { Transform } from 'node:stream';

function throttle(bytesPerSec) {
  let busyUntil = 0;
  return new Transform({
    highWaterMark: 64 * 1024,
    transform(chunk, _enc, cb) {
      const now = performance.now();
      const start = Math.max(now, busyUntil);
      busyUntil = start + (chunk.length / bytesPerSec) * 1000;
      const wait = start - now;
      if (wait >= 1) setTimeout(() => cb(null, chunk), wait);
      else cb(null, chunk);
    },
  });
}

export async function startThrottleProxy(target, bytesPerSec) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client);
    sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(throttle(bytesPerSec)).pipe(upstream);
    upstream.pipe(throttle(bytesPerSec)).pipe(client);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
