import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BLOB_ID, type Layout } from './layout.js';
import type { BlobStatements } from './statements.js';

/**
 * Start-up: removes what an interrupted operation left behind: the work files, unreferenced
 * generations and stray names under `blobs/`, and staging directories of no pending entry (when
 * `isPending` can tell synchronously; otherwise the first sweep drops those).
 */
export function recoverFiles(
  layout: Layout,
  q: BlobStatements,
  isPending?: (blobId: string) => boolean,
): void {
  const { tmpDir, stagingDir, blobsDir } = layout;
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir, { recursive: true });
  mkdirSync(stagingDir, { recursive: true });
  mkdirSync(blobsDir, { recursive: true });
  const referenced = new Set(q.generations.all().map((r) => `${r.blob_id}.${r.generation}`));
  const shards = new Set(readdirSync(blobsDir));
  for (let i = 0; i < 256; i++) {
    const shard = i.toString(16).padStart(2, '0');
    if (!shards.has(shard)) mkdirSync(join(blobsDir, shard));
  }
  for (const shard of shards) {
    const dir = join(blobsDir, shard);
    if (!/^[0-9a-f]{2}$/.test(shard)) {
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    for (const name of readdirSync(dir)) {
      if (!referenced.has(name)) rmSync(join(dir, name), { recursive: true, force: true });
    }
  }
  for (const name of readdirSync(stagingDir)) {
    if (!BLOB_ID.test(name) || (isPending && !isPending(name))) {
      rmSync(join(stagingDir, name), { recursive: true, force: true });
    }
  }
}
