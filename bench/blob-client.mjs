// One timed @azure/storage-blob 12.31.0 transfer against a signed URL, in a fresh process so no
// transfer inherits another's heap or sockets. The same calls for every target:
//   upload:   new BlockBlobClient(url).uploadFile(file, { blockSize: 64 MiB, concurrency: 8 })
//             (1 GiB > the 256 MiB single-shot limit: 16 × Put Block, 8 in flight, then Put Block List)
//   download: @actions/cache 6.x's Azure path (downloadCacheStorageSDK): getProperties, then 128 MiB
//             segments with downloadToBuffer(offset, count, { concurrency: 8 }) — 4 MiB ranged GETs,
//             8 in flight — each segment written to the file with writeSync.
//
//   node bench/blob-client.mjs upload|download <signed url> <file>
//     → prints one JSON line {"op","bytes","ms"}; the time covers the SDK calls only.
import { closeSync, openSync, writeSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { BlockBlobClient } from '@azure/storage-blob';

const MiB = 1024 * 1024;
const [op, url, file] = process.argv.slice(2);
if (!op || !url || !file) throw new Error('usage: blob-client.mjs upload|download <url> <file>');
const client = new BlockBlobClient(url, undefined, { retryOptions: { maxTries: 1 } });

let bytes;
const started = performance.now();
if (op === 'upload') {
  bytes = (await stat(file)).size;
  await client.uploadFile(file, { blockSize: 64 * MiB, concurrency: 8 });
} else if (op === 'download') {
  const properties = await client.getProperties();
  bytes = properties.contentLength ?? -1;
  if (bytes < 0) throw new Error('no content length');
  const segment = 128 * MiB;
  const fd = openSync(file, 'w');
  try {
    for (let offset = 0; offset < bytes; offset += segment) {
      const buffer = await client.downloadToBuffer(offset, Math.min(segment, bytes - offset), {
        concurrency: 8,
      });
      writeSync(fd, buffer);
    }
  } finally {
    closeSync(fd);
  }
} else {
  throw new Error(`unknown op ${op}`);
}
const ms = performance.now() - started;
process.stdout.write(`${JSON.stringify({ op, bytes, ms })}\n`);
