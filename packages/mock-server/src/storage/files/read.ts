import { close as closeFd, open as openFd } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { type BufferPool, type OpenSpan, SpansStream } from '../span-stream.js';
import { type ByteRange, StorageError } from '../types.js';
import { isErrno, type Layout, PART_FILE } from './layout.js';
import type { BlobRow, BlobStatements, CommittedBlock } from './statements.js';

const openForRead = promisify(openFd);
const closeQuietly = (fd: number) => closeFd(fd, () => undefined);

/**
 * Reads the blob row and opens every part file holding bytes [start, end] of it (the whole blob
 * without a range), consistently: if a commit or delete removed a file between the two, the row
 * is read again. The open handles pin the content as of the call.
 */
export async function openContent(
  q: BlobStatements,
  layout: Layout,
  readBuffers: BufferPool,
  blobId: string,
  range: ByteRange | undefined,
): Promise<{ row: BlobRow; stream: Readable } | undefined> {
  for (;;) {
    const row = q.blob.get(blobId);
    if (!row) return undefined;
    const fds: number[] = [];
    const open = async (file: string) => {
      const fd = await openForRead(file, 'r');
      fds.push(fd);
      return fd;
    };
    try {
      const path = layout.blobPath(blobId, row.generation);
      const start = range?.start ?? 0;
      const end = range ? range.end + 1 : row.size_bytes;
      const spans: OpenSpan[] = [];
      if (row.layout === 'file') {
        spans.push({ fd: await open(path), position: start, end });
      } else {
        const byFile = new Map<string, number>();
        for (const b of JSON.parse(row.blocks) as CommittedBlock[]) {
          const from = Math.max(start, b.start);
          const to = Math.min(end, b.end);
          if (from >= to) continue;
          const file = b.file ?? '';
          if (!PART_FILE.test(file)) throw new Error(`blob ${blobId} has a malformed part name`);
          let fd = byFile.get(file);
          if (fd === undefined) {
            fd = await open(join(path, file));
            byFile.set(file, fd);
          }
          const base = (b.offset ?? 0) - b.start;
          spans.push({ fd, position: base + from, end: base + to });
        }
      }
      const stream = new SpansStream(spans, fds, readBuffers);
      return { row, stream };
    } catch (err) {
      for (const fd of fds) closeQuietly(fd);
      if (!isErrno(err, 'ENOENT')) throw err;
      if (q.blob.get(blobId)?.generation === row.generation) {
        throw new StorageError('BlobNotFound', `the content of blob ${blobId} is missing`, { cause: err });
      }
    }
  }
}
