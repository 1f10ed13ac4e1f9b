import { Readable } from 'node:stream';
import { blockIdByteLength, newEtag, resolveBlockList } from '../blocks.js';
import {
  type BlobProperties,
  type BlobStore,
  type BlockListItem,
  type ByteRange,
  StorageError,
} from '../types.js';

interface MemoryBlob {
  committed?: {
    properties: BlobProperties;
    data: Buffer;
    blocks: { id: string; start: number; end: number }[];
  };
  staged: Map<string, Buffer>;
  /** Its entry was deleted: kept until this Unix ms. */
  retainUntil?: number;
}

async function readExactly(body: Readable, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > length) throw new StorageError('IncompleteBody', `body is longer than ${length} bytes`);
    chunks.push(buf);
  }
  if (total !== length)
    throw new StorageError('IncompleteBody', `body ended after ${total} of ${length} bytes`);
  return Buffer.concat(chunks, total);
}

/** Blobs in process memory: fast, and gone on exit. For tests. */
export function createMemoryBlobStore(): BlobStore {
  const blobs = new Map<string, MemoryBlob>();
  const blob = (blobId: string): MemoryBlob => {
    let b = blobs.get(blobId);
    if (!b) {
      b = { staged: new Map() };
      blobs.set(blobId, b);
    }
    return b;
  };

  return {
    kind: 'memory',

    async putBlob(blobId, body, length, now) {
      const data = await readExactly(body, length);
      const b = blob(blobId);
      const properties: BlobProperties = {
        size: data.length,
        etag: newEtag(now),
        lastModified: now,
        createdAt: b.committed?.properties.createdAt ?? now,
      };
      b.committed = { properties, data, blocks: [] };
      b.staged.clear();
      return properties;
    },
    async putBlock(blobId, blockId, body, length) {
      const b = blob(blobId);
      const size = blockIdByteLength(blockId);
      for (const other of b.staged.keys()) {
        if (blockIdByteLength(other) !== size) {
          body.resume();
          throw new StorageError('InvalidBlobOrBlock', 'block id length differs from the staged blocks');
        }
      }
      b.staged.set(blockId, await readExactly(body, length));
    },
    async commitBlockList(blobId, items: readonly BlockListItem[], now) {
      const b = blob(blobId);
      const old = b.committed;
      const resolved = resolveBlockList(items, b.staged, old?.blocks.map((x) => x.id) ?? []);
      const parts: Buffer[] = [];
      const blocks: { id: string; start: number; end: number }[] = [];
      let offset = 0;
      for (const r of resolved) {
        let part: Buffer;
        if (r.from === 'staged') part = b.staged.get(r.id)!;
        else {
          const c = old!.blocks.find((x) => x.id === r.id)!;
          part = old!.data.subarray(c.start, c.end);
        }
        parts.push(part);
        blocks.push({ id: r.id, start: offset, end: offset + part.length });
        offset += part.length;
      }
      const properties: BlobProperties = {
        size: offset,
        etag: newEtag(now),
        lastModified: now,
        createdAt: old?.properties.createdAt ?? now,
      };
      b.committed = { properties, data: Buffer.concat(parts, offset), blocks };
      b.staged.clear();
      return properties;
    },
    getBlobProperties: async (blobId) => blobs.get(blobId)?.committed?.properties,
    async openBlob(blobId, range?: ByteRange) {
      const c = blobs.get(blobId)?.committed;
      if (!c) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
      const data = range ? c.data.subarray(range.start, range.end + 1) : c.data;
      return { properties: c.properties, stream: Readable.from([data]) };
    },
    async discardBlob(blobId, retainUntil, now) {
      const b = blobs.get(blobId);
      if (!b) return;
      b.staged.clear();
      if (b.committed && retainUntil > now) b.retainUntil = Math.max(b.retainUntil ?? 0, retainUntil);
      else blobs.delete(blobId);
    },
    async sweep(now, owners) {
      const live = await owners([...blobs.keys()]);
      let removed = 0;
      for (const [blobId, b] of blobs) {
        // Retained past their last download URL, or written after their entry was deleted.
        const expired = b.retainUntil === undefined ? !live.has(blobId) : b.retainUntil <= now;
        if (expired) {
          blobs.delete(blobId);
          if (b.committed) removed++;
        }
      }
      return removed;
    },
    async close() {
      blobs.clear();
    },
  };
}
