// @actions/cache 6.3.0's own upload path: uploadCacheArchiveSDK (Azure SDK uploadFile, 64 MiB × 8).
// Usage: node actions-upload.mjs <signedUploadUrl> <file>; prints {"ms":…}.
import { stat } from 'node:fs/promises';

// @actions/cache is a dependency of the `test` workspace package; its exports map hides lib/internal.
const lib = new URL('../../test/node_modules/@actions/cache/lib/internal/', import.meta.url);
const { uploadCacheArchiveSDK } = await import(new URL('uploadUtils.js', lib).href);
const [url, file] = process.argv.slice(2);
const size = (await stat(file)).size;
const t0 = performance.now();
await uploadCacheArchiveSDK(url, file, {
  uploadChunkSize: 64 * 1024 * 1024,
  uploadConcurrency: 8,
  archiveSizeBytes: size,
});
process.stderr.write(`${JSON.stringify({ ms: performance.now() - t0 })}\n`);
