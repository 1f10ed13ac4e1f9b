import { randomBytes } from 'node:crypto';
import { link, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { newEtag, resolveBlockList } from '../blocks.js';
import { type BlobProperties, type BlockListItem, StorageError } from '../types.js';
import { fsyncDir, isErrno, type Layout, PART_FILE } from './layout.js';
import type { Staging } from './staging.js';
import type { BlobStatements, CommittedBlock, GenerationLayout } from './statements.js';

/** Part files linked, sized and fsynced at once by one Put Block List (bounds its open files). */
const LINK_CONCURRENCY = 16;

/** Runs `work` on every item, at most `limit` at a time; rejects with the first failure, after all settled. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failure) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.err;
}

/** Runs `make` (which creates something in the blob's shard), making the shard directory first if it is missing. */
async function inShard<T>(shard: string, make: () => Promise<T>): Promise<T> {
  try {
    return await make();
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  await mkdir(shard, { recursive: true });
  return make();
}

/** How content becomes a blob's committed generation: Put Blob (a file) and Put Block List (linked parts). */
export function createCommitter(db: Database.Database, q: BlobStatements, layout: Layout, staging: Staging) {
  const { blobPath, shardPath } = layout;
  /** `<blobId>.<generation>` of the generations being built and not switched to yet: the start-up scan leaves them alone. */
  const building = new Set<string>();
  /** Removes a generation (a file or a directory of parts). */
  const removeGeneration = (blobId: string, generation: string) =>
    rm(blobPath(blobId, generation), { recursive: true, force: true });

  const switchGeneration = db.transaction(
    (
      blobId: string,
      generation: string,
      kind: GenerationLayout,
      size: number,
      now: number,
      blocks: string,
    ) => {
      const previous = q.blob.get(blobId);
      const etag = newEtag(now);
      q.upsertBlob.run(blobId, generation, kind, size, etag, now, now, blocks);
      return {
        previous: previous?.generation,
        properties: { size, etag, lastModified: now, createdAt: previous?.created_at ?? now },
      };
    },
  );

  /**
   * Makes a generation that is durably in place the blob's committed content: switch the row
   * durably, drop the staged blocks, remove the old generation.
   */
  const switchTo = async (
    blobId: string,
    generation: string,
    kind: GenerationLayout,
    size: number,
    blocks: readonly CommittedBlock[],
    now: number,
  ): Promise<BlobProperties> => {
    db.pragma('synchronous = FULL');
    let result: ReturnType<typeof switchGeneration>;
    try {
      result = switchGeneration(blobId, generation, kind, size, now, JSON.stringify(blocks));
    } catch (err) {
      await removeGeneration(blobId, generation);
      throw err;
    } finally {
      db.pragma('synchronous = NORMAL');
      building.delete(`${blobId}.${generation}`);
    }
    await staging.drop(blobId);
    if (result.previous !== undefined) await removeGeneration(blobId, result.previous).catch(() => undefined);
    return result.properties;
  };

  return {
    removeGeneration,

    /** Whether a generation is being built by a commit in flight (not in the table yet). */
    isBuilding: (name: string): boolean => building.has(name),

    /** Makes the fsynced tmp file the blob's content ('file' layout): rename into place, fsync the directory, switch. */
    async commitFile(blobId: string, tmp: string, size: number, now: number): Promise<BlobProperties> {
      const generation = randomBytes(8).toString('hex');
      const path = blobPath(blobId, generation);
      building.add(`${blobId}.${generation}`);
      try {
        await inShard(shardPath(blobId), () => rename(tmp, path));
        await fsyncDir(shardPath(blobId));
      } catch (err) {
        building.delete(`${blobId}.${generation}`);
        await rm(tmp, { force: true });
        await rm(path, { force: true });
        throw err;
      }
      return switchTo(blobId, generation, 'file', size, [], now);
    },

    /** Put Block List: links the listed staged blocks and committed parts into a new generation. */
    async commitBlockList(
      blobId: string,
      items: readonly BlockListItem[],
      now: number,
    ): Promise<BlobProperties> {
      for (let attempt = 0; ; attempt++) {
        const staged = await staging.list(blobId);
        const current = q.blob.get(blobId);
        const currentBlocks = current ? (JSON.parse(current.blocks) as CommittedBlock[]) : [];
        // Resolve the whole list before touching anything (all or nothing).
        const resolved = resolveBlockList(
          items,
          staged,
          currentBlocks.map((b) => b.id),
        );
        const committedById = new Map(currentBlocks.map((b) => [b.id, b]));
        const generation = randomBytes(8).toString('hex');
        const dir = blobPath(blobId, generation);
        /** Each distinct source file is linked once, as one part file. */
        interface Part {
          readonly source: string;
          readonly file: string;
          readonly fromStaged: boolean;
          /** Its size once linked (staged blocks: a re-stage may replace the staged file meanwhile). */
          size: number;
        }
        const parts = new Map<string, Part>();
        /** Per listed block: its part, and where its bytes are in it (`length` undefined: the whole part). */
        const listed: { id: string; part: Part; at: number; length: number | undefined }[] = [];
        for (const r of resolved) {
          let source: string;
          let at = 0;
          let length: number | undefined;
          if (r.from === 'staged') {
            source = staged.get(r.id)!;
          } else {
            const c = committedById.get(r.id)!;
            const old = blobPath(blobId, current!.generation);
            if (current!.layout === 'dir') {
              if (!PART_FILE.test(c.file ?? '')) throw new Error(`blob ${blobId} has a malformed part name`);
              source = join(old, c.file!);
              at = c.offset ?? 0;
            } else {
              source = old;
              at = c.start;
            }
            length = c.end - c.start;
          }
          let part = parts.get(source);
          if (!part) {
            part = { source, file: `p${parts.size}`, fromStaged: r.from === 'staged', size: 0 };
            parts.set(source, part);
          }
          listed.push({ id: r.id, part, at, length });
        }
        /** The first listed block whose source was gone when it was linked. */
        let failed: { id: string; from: 'staged' | 'committed' } | undefined;
        const firstOf = new Map<Part, { id: string; from: 'staged' | 'committed' }>();
        resolved.forEach((r, i) => {
          if (!firstOf.has(listed[i]!.part)) firstOf.set(listed[i]!.part, r);
        });
        building.add(`${blobId}.${generation}`);
        try {
          await inShard(shardPath(blobId), () => mkdir(dir));
          // Link, size and (staged blocks, not fsynced when received) fsync each part, in parallel:
          // a committed generation is durable whole before the row points at it.
          await eachLimited([...parts.values()], LINK_CONCURRENCY, async (part) => {
            const target = join(dir, part.file);
            try {
              await link(part.source, target);
            } catch (err) {
              if (isErrno(err, 'ENOENT')) failed ??= firstOf.get(part);
              throw err;
            }
            if (!part.fromStaged) return;
            const fh = await open(target, 'r');
            try {
              part.size = (await fh.stat()).size;
              await fh.sync();
            } finally {
              await fh.close();
            }
          });
          await fsyncDir(dir);
          await fsyncDir(shardPath(blobId));
        } catch (err) {
          building.delete(`${blobId}.${generation}`);
          await removeGeneration(blobId, generation);
          if (!failed) throw err;
          if (
            failed.from === 'committed' &&
            q.blob.get(blobId)?.generation !== current?.generation &&
            attempt < 3
          ) {
            continue; // replaced meanwhile: resolve again against the new generation
          }
          throw new StorageError('InvalidBlockList', `block ${failed.id} was dropped meanwhile`, {
            cause: err,
          });
        }
        const blocks: CommittedBlock[] = [];
        let offset = 0;
        for (const { id, part, at, length } of listed) {
          const n = length ?? part.size;
          blocks.push({ id, start: offset, end: offset + n, file: part.file, offset: at });
          offset += n;
        }
        return switchTo(blobId, generation, 'dir', offset, blocks, now);
      }
    },
  };
}
