import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import type { BlobProperties } from '../types.js';

export type GenerationLayout = 'file' | 'dir';

export interface BlobRow {
  generation: string;
  layout: GenerationLayout;
  blocks: string;
  size_bytes: number;
  etag: string;
  last_modified: number;
  created_at: number;
}

/** One listed block: bytes [start, end) of the blob; in a 'dir' generation, at `offset` of part `file`. */
export interface CommittedBlock {
  id: string;
  start: number;
  end: number;
  file?: string;
  offset?: number;
}

export const toProperties = (r: BlobRow): BlobProperties => ({
  size: r.size_bytes,
  etag: r.etag,
  lastModified: r.last_modified,
  createdAt: r.created_at,
});

/** The prepared statements of the file blob store (the `blobs` table). */
export interface BlobStatements {
  readonly blob: Statement<[string], BlobRow>;
  readonly upsertBlob: Statement<
    [string, string, GenerationLayout, number, string, number, number, string],
    void
  >;
  readonly retainBlob: Statement<[number, string], void>;
  readonly deleteBlob: Statement<[string, string], void>;
  readonly expiredBlobs: Statement<[number], { blob_id: string; generation: string }>;
  readonly unretainedBlobs: Statement<[string, number], { blob_id: string; generation: string }>;
  /** Blobs whose id is in [from, to) (a shard: `ab` to `abg`). */
  readonly shardGenerations: Statement<[string, string], { blob_id: string; generation: string }>;
  readonly hasGeneration: Statement<[string, string], unknown>;
}

export function prepareBlobStatements(db: Database.Database): BlobStatements {
  return {
    blob: db.prepare<[string], BlobRow>(
      'SELECT generation, layout, blocks, size_bytes, etag, last_modified, created_at FROM blobs WHERE blob_id = ?',
    ),
    upsertBlob: db.prepare<[string, string, GenerationLayout, number, string, number, number, string], void>(
      `INSERT INTO blobs (blob_id, generation, layout, size_bytes, etag, last_modified, created_at, blocks)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (blob_id) DO UPDATE SET generation = excluded.generation, layout = excluded.layout,
         size_bytes = excluded.size_bytes, etag = excluded.etag, last_modified = excluded.last_modified,
         blocks = excluded.blocks`,
    ),
    retainBlob: db.prepare<[number, string], void>(
      'UPDATE blobs SET retain_until = max(coalesce(retain_until, 0), ?) WHERE blob_id = ?',
    ),
    deleteBlob: db.prepare<[string, string], void>('DELETE FROM blobs WHERE blob_id = ? AND generation = ?'),
    /** Retained blobs whose time passed. */
    expiredBlobs: db.prepare<[number], { blob_id: string; generation: string }>(
      'SELECT blob_id, generation FROM blobs WHERE retain_until IS NOT NULL AND retain_until <= ?',
    ),
    /** Blobs not retained (their entry should exist), in pages by blob id. */
    unretainedBlobs: db.prepare<[string, number], { blob_id: string; generation: string }>(
      'SELECT blob_id, generation FROM blobs WHERE retain_until IS NULL AND blob_id > ? ORDER BY blob_id LIMIT ?',
    ),
    shardGenerations: db.prepare<[string, string], { blob_id: string; generation: string }>(
      'SELECT blob_id, generation FROM blobs WHERE blob_id >= ? AND blob_id < ?',
    ),
    hasGeneration: db.prepare<[string, string], unknown>(
      'SELECT 1 FROM blobs WHERE blob_id = ? AND generation = ?',
    ),
  };
}
