import { randomBytes } from 'node:crypto';
import { link, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { newEtag, resolveBlockList } from '../blocks.js';
import { type BlobProperties, type BlockListItem, StorageError } from '../types.js';
import { fsyncDir, isErrno, type Layout, PART_FILE } from './layout.js';
import type { Staging } from './staging.js';
import type { BlobStatements, CommittedBlock, GenerationLayout } from './statements.js';

/** How content becomes a blob's committed generation: Put Blob (a file) and Put Block List (linked parts). */
export function createCommitter(db: Database.Database, q: BlobStatements, layout: Layout, staging: Staging) {
  const { blobPath, shardPath } = layout;
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
    }
    staging.drop(blobId);
    if (result.previous !== undefined) await removeGeneration(blobId, result.previous).catch(() => undefined);
    return result.properties;
  };

  return {
    removeGeneration,

    /** Makes the fsynced tmp file the blob's content ('file' layout): rename into place, fsync the directory, switch. */
    async commitFile(blobId: string, tmp: string, size: number, now: number): Promise<BlobProperties> {
      const generation = randomBytes(8).toString('hex');
      const path = blobPath(blobId, generation);
      try {
        await rename(tmp, path);
        await fsyncDir(shardPath(blobId));
      } catch (err) {
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
        /** Part file (and its size) by the source file linked to it: each source is linked once. */
        const parts = new Map<string, { file: string; size: number }>();
        const blocks: CommittedBlock[] = [];
        let offset = 0;
        let failed: { id: string; from: 'staged' | 'committed' } | undefined;
        try {
          await mkdir(dir);
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
                if (!PART_FILE.test(c.file ?? ''))
                  throw new Error(`blob ${blobId} has a malformed part name`);
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
              const file = `p${parts.size}`;
              try {
                await link(source, join(dir, file));
              } catch (err) {
                if (isErrno(err, 'ENOENT')) failed = r;
                throw err;
              }
              // The size of what was linked (a re-stage may have replaced the staged file meanwhile).
              part = { file, size: length === undefined ? (await stat(join(dir, file))).size : 0 };
              parts.set(source, part);
            }
            const n = length ?? part.size;
            blocks.push({ id: r.id, start: offset, end: offset + n, file: part.file, offset: at });
            offset += n;
          }
          await fsyncDir(dir);
          await fsyncDir(shardPath(blobId));
        } catch (err) {
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
        return switchTo(blobId, generation, 'dir', offset, blocks, now);
      }
    },
  };
}
