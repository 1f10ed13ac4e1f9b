// Preloads a mock-server fs data directory with N committed entries, in-process, through the public
// storage API (`createFsStorage` → metadata.reserveEntry, blobs.putBlob, metadata.commitEntry): the same rows and files the
// server writes for Create → Put Blob → Finalize. Run as a child of bench/mock-server.mjs:
//
//   node bench/preload.mjs <dataDir> <count>      → prints one JSON line {"entries","ms"}
//
// Keys are `entryKey(i)` from bench/lookup-keys.mjs, all in scope refs/heads/main of repository "1"
// (what the CLI's default token reads) with one version.
import { Readable } from 'node:stream';
import { createFsStorage, loadSecrets } from '@gha-cache/mock-server';
import { BLOB_BYTES, entryKey, REPOSITORY_ID, SCOPE, VERSION } from './lookup-keys.mjs';

const [dataDir, countArg] = process.argv.slice(2);
if (!dataDir || !countArg) throw new Error('usage: preload.mjs <dataDir> <count>');
const count = Number(countArg);
const IN_FLIGHT = 32;

const started = performance.now();
await loadSecrets(dataDir); // the server started on this dir later signs tokens with these
const storage = createFsStorage({ dataDir });
const body = Buffer.alloc(BLOB_BYTES, 0x61);

let next = 0;
async function worker() {
  for (let i = next++; i < count; i = next++) {
    const now = Date.now();
    const entry = await storage.metadata.reserveEntry(
      { repositoryId: REPOSITORY_ID, scope: SCOPE, key: entryKey(i), version: VERSION },
      now,
    );
    if (!entry) throw new Error(`entry ${i} already exists`);
    await storage.blobs.putBlob(entry.blobId, Readable.from([body]), body.length, now);
    await storage.metadata.commitEntry(entry.id, body.length, now);
  }
}
await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
await storage.close();
process.stdout.write(`${JSON.stringify({ entries: count, ms: Math.round(performance.now() - started) })}\n`);
