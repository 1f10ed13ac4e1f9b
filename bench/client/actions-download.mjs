// @actions/cache 6.3.0's own download path for a non-Azure host: downloadCacheHttpClient (one plain GET).
// Usage: node actions-download.mjs <signedDownloadUrl> <file>; prints {"ms":…}.
// @actions/cache is a dependency of the `test` workspace package; its exports map hides lib/internal.
const lib = new URL('../../test/node_modules/@actions/cache/lib/internal/', import.meta.url);
const { downloadCacheHttpClient } = await import(new URL('downloadUtils.js', lib).href);
const [url, file] = process.argv.slice(2);
const t0 = performance.now();
await downloadCacheHttpClient(url, file);
process.stderr.write(`${JSON.stringify({ ms: performance.now() - t0 })}\n`);
