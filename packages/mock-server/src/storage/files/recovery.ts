import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOB_ID, isErrno, type Layout } from './layout.js';
import type { BlobStatements } from './statements.js';

const SHARD = /^[0-9a-f]{2}$/;
/** `<blobId>.<generation>`: the names a commit gives. */
const GENERATION = /^([0-9a-f]{32})\.([0-9a-f]+)$/;

/**
 * Start-up, before anything is served: empties `tmp/` (work files of interrupted operations) and
 * removes the staging directories of no pending entry (when `isPending` can tell synchronously;
 * otherwise the first sweep drops those). Returns the staging directories kept. Unreferenced
 * generations under `blobs/` go later, in the background (`removeUnreferenced`).
 */
export function recoverFiles(layout: Layout, isPending?: (blobId: string) => boolean): string[] {
  const { tmpDir, stagingDir, blobsDir } = layout;
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir, { recursive: true });
  mkdirSync(stagingDir, { recursive: true });
  mkdirSync(blobsDir, { recursive: true });
  const kept: string[] = [];
  for (const name of readdirSync(stagingDir)) {
    if (!BLOB_ID.test(name) || (isPending && !isPending(name))) {
      rmSync(join(stagingDir, name), { recursive: true, force: true });
    } else {
      kept.push(name);
    }
  }
  return kept;
}

const readdirOrNone = (dir: string) =>
  readdir(dir).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return [] as string[];
    throw err;
  });

/**
 * Removes what an interrupted commit left under `blobs/`: generations the table does not reference
 * and names no commit makes. Asynchronous and shard by shard, while requests are served: each
 * candidate is checked again against the table, and against the generations commits in flight are
 * building, right before it is removed, so nothing a request is committing or just committed goes.
 */
export async function removeUnreferenced(
  layout: Layout,
  q: BlobStatements,
  options: { isBuilding: (name: string) => boolean; stopped: () => boolean },
): Promise<number> {
  const { blobsDir } = layout;
  let removed = 0;
  for (const shard of await readdirOrNone(blobsDir)) {
    if (options.stopped()) break;
    const dir = join(blobsDir, shard);
    if (!SHARD.test(shard)) {
      await rm(dir, { recursive: true, force: true });
      removed++;
      continue;
    }
    const names = await readdirOrNone(dir);
    if (names.length === 0 || options.stopped()) continue;
    // One range read per shard; only the names it does not hold are looked up one by one.
    const referenced = new Set(
      q.shardGenerations.all(shard, `${shard}g`).map((r) => `${r.blob_id}.${r.generation}`),
    );
    for (const name of names) {
      if (referenced.has(name)) continue;
      const m = GENERATION.exec(name);
      // Checked right before the removal: a commit in flight, or one that switched since the range read.
      if (m && (options.isBuilding(name) || q.hasGeneration.get(m[1]!, m[2]!) !== undefined)) continue;
      if (options.stopped()) break;
      await rm(join(dir, name), { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}
