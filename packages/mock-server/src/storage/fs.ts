import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { type FileHandle, mkdir, open, opendir, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import { blockIdByteLength, newEtag, resolveBlockList } from './blocks.js';
import {
  type BlobProperties,
  type BlockListItem,
  type ByteRange,
  type CacheEntry,
  type CacheStorage,
  type EntryFilter,
  type EntryIdentity,
  type EntryState,
  StorageError,
} from './types.js';

export interface FsStorageOptions {
  /**
   * Directory that holds everything: `meta.sqlite` (entries and blob metadata) and the `blobs/`,
   * `staging/` and `tmp/` directories. Created if missing. One process at a time: a second
   * `createFsStorage` on the same directory fails while the first is open. No default.
   */
  readonly dataDir: string;
}

/*
 * Layout and crash safety
 * -----------------------
 * <dataDir>/meta.sqlite        entries + blobs tables. WAL journal, synchronous=NORMAL: every commit is
 *                              written to the WAL before the call returns, so it survives SIGKILL of the
 *                              process (the OS still holds the pages); only a power loss can drop the last
 *                              entry transactions. Blob switches run with synchronous=FULL (the WAL is
 *                              fsynced), because an old generation file is unlinked right after them.
 *                              locking_mode=EXCLUSIVE: one process per data directory.
 * <dataDir>/blobs/<xx>/<blobId>.<generation>
 *                              committed content, one immutable file per commit. A commit writes a new
 *                              generation in tmp/, fsyncs it, renames it into place, fsyncs the directory,
 *                              switches the blob row in one transaction, then unlinks the old generation.
 *                              A crash at any point leaves the committed generation intact; the leftovers
 *                              (tmp files, unreferenced generations) are removed at start-up.
 * <dataDir>/staging/<blobId>/b<hex of the decoded block id>
 *                              staged blocks, written to tmp/ then renamed (re-staging replaces atomically).
 *                              Not fsynced: they only matter until Put Block List copies them into an
 *                              fsynced generation. Dropped by renaming the directory into tmp/.
 * <dataDir>/tmp/               work files; emptied at start-up.
 */

const SCHEMA_VERSION = 1;
const MiB = 1024 * 1024;
/** Shape of the blob ids `reserveEntry` makes; checked before any path is built from one. */
const BLOB_ID = /^[0-9a-f]{32}$/;
const STAGED_FILE = /^b((?:[0-9a-f]{2})*)$/;
/** Any BLOB compares greater than any TEXT in SQLite: the upper bound of an unbounded key range. */
const NO_UPPER_BOUND = Buffer.from([0xff]);

interface EntryRow {
  id: number;
  repository_id: string;
  scope: string;
  key: string;
  version: string;
  blob_id: string;
  state: EntryState;
  size_bytes: number;
  created_at: number;
  committed_at: number;
  last_accessed_at: number;
  download_url_expires_at: number;
}

interface BlobRow {
  generation: string;
  size_bytes: number;
  etag: string;
  last_modified: number;
  created_at: number;
}

interface CommittedBlock {
  id: string;
  start: number;
  end: number;
}

const toEntry = (r: EntryRow): CacheEntry => ({
  repositoryId: r.repository_id,
  scope: r.scope,
  key: r.key,
  version: r.version,
  id: r.id,
  blobId: r.blob_id,
  state: r.state,
  sizeBytes: r.size_bytes,
  createdAt: r.created_at,
  committedAt: r.committed_at,
  lastAccessedAt: r.last_accessed_at,
  downloadUrlExpiresAt: r.download_url_expires_at,
});

const toProperties = (r: BlobRow): BlobProperties => ({
  size: r.size_bytes,
  etag: r.etag,
  lastModified: r.last_modified,
  createdAt: r.created_at,
});

/**
 * The smallest string greater than every string that starts with `prefix`, in SQLite's BINARY
 * order (UTF-8 bytes = code point order): the last code point incremented (skipping surrogates);
 * trailing U+10FFFF are dropped first. `undefined` when no such string exists (e.g. `''`).
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = cps.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      cps.push(String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1));
      return cps.join('');
    }
  }
  return undefined;
}

/** Passes exactly `length` bytes through; anything shorter or longer fails with `IncompleteBody`. */
function exactLength(length: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > length) callback(new StorageError('IncompleteBody', `body is longer than ${length} bytes`));
      else callback(null, chunk);
    },
    flush(callback) {
      if (seen === length) callback();
      else callback(new StorageError('IncompleteBody', `body ended after ${seen} of ${length} bytes`));
    },
  });
}

/** Reads bytes [start, end) of an open file in chunks of up to 1 MiB (no listeners left on the handle). */
async function* readRange(fh: FileHandle, start: number, end: number): AsyncGenerator<Buffer> {
  for (let position = start; position < end; ) {
    const length = Math.min(MiB, end - position);
    const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(length), 0, length, position);
    if (bytesRead === 0) throw new Error(`committed content ends before byte ${end}`);
    yield buffer.subarray(0, bytesRead);
    position += bytesRead;
  }
}

const isErrno = (err: unknown, code: string): boolean =>
  err instanceof Error && (err as NodeJS.ErrnoException).code === code;

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function blockIdToFile(blockId: string): string {
  const bytes = Buffer.from(blockId, 'base64');
  if (bytes.toString('base64') !== blockId) {
    throw new StorageError('InvalidBlobOrBlock', 'block id is not canonical base64');
  }
  return `b${bytes.toString('hex')}`;
}

/**
 * The default backend: metadata in SQLite (better-sqlite3), content in files, streamed both ways
 * with bounded memory. Crash-safe: a SIGKILL at any moment leaves every committed entry and blob
 * intact (see the layout notes above). Start-up removes what an interrupted operation left behind.
 */
export function createFsStorage(options: FsStorageOptions): CacheStorage {
  const { dataDir } = options;
  const blobsDir = join(dataDir, 'blobs');
  const stagingDir = join(dataDir, 'staging');
  const tmpDir = join(dataDir, 'tmp');
  mkdirSync(dataDir, { recursive: true });

  const db = new Database(join(dataDir, 'meta.sqlite'), { timeout: 2000 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    // 64 MiB of page cache at most (allocated as used): 100,000 entries and their indexes fit.
    db.pragma('cache_size = -65536');
    migrate(db);
  } catch (err) {
    db.close();
    if (isSqliteBusy(err)) {
      throw new Error(`data directory ${dataDir} is in use by another gha-cache-mock process`, {
        cause: err,
      });
    }
    throw err;
  }

  const q = {
    // No RETURNING clauses on writes: SQLite runs the WAL auto-checkpoint only when a statement
    // steps to its end, and a RETURNING statement read through `get()` never does (the WAL would
    // grow without bound).
    reserve: db.prepare<[string, string, string, string, string, number, number], void>(
      `INSERT INTO entries (repository_id, scope, key, version, blob_id, state, created_at, last_accessed_at)
       VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)
       ON CONFLICT (repository_id, scope, key, version) DO NOTHING`,
    ),
    get: db.prepare<[number], EntryRow>('SELECT * FROM entries WHERE id = ?'),
    find: db.prepare<[string, string, string, string], EntryRow>(
      'SELECT * FROM entries WHERE repository_id = ? AND scope = ? AND key = ? AND version = ?',
    ),
    findByBlob: db.prepare<[string], EntryRow>('SELECT * FROM entries WHERE blob_id = ?'),
    hasPendingByBlob: db
      .prepare<[string], number>(`SELECT 1 FROM entries WHERE blob_id = ? AND state = 'pending'`)
      .pluck(),
    /** The newest match in a window of a group's committed entries, newest first (index order = id order). */
    recentMatch: db
      .prepare<[string, string, string, number, number, string, string | Buffer], number | null>(
        `SELECT max(id) FROM (
           SELECT id, key FROM entries INDEXED BY entries_committed_recent
           WHERE repository_id = ? AND scope = ? AND version = ? AND state = 'committed'
           ORDER BY id DESC LIMIT ? OFFSET ?)
         WHERE key >= ? AND key < ?`,
      )
      .pluck(),
    /** How many of a group's committed keys lie in [from, upper) (counting stops at a limit), and the newest. */
    rangeMatch: db.prepare<
      [string, string, string, string, string | Buffer, number],
      { n: number; newest: number | null }
    >(
      `SELECT count(*) AS n, max(id) AS newest FROM (
         SELECT id FROM entries INDEXED BY entries_committed_key
         WHERE repository_id = ? AND scope = ? AND version = ? AND state = 'committed' AND key >= ? AND key < ?
         LIMIT ?)`,
    ),
    list: db.prepare<
      { repositoryId: string | null; state: string | null; createdBefore: number | null },
      EntryRow
    >(
      `SELECT * FROM entries
       WHERE (@repositoryId IS NULL OR repository_id = @repositoryId)
         AND (@state IS NULL OR state = @state)
         AND (@createdBefore IS NULL OR created_at < @createdBefore)
       ORDER BY id`,
    ),
    commit: db.prepare<[number, number, number, number], void>(
      `UPDATE entries SET state = 'committed', size_bytes = ?, committed_at = ?, last_accessed_at = ?
       WHERE id = ?`,
    ),
    touch: db.prepare<[number, number, number], void>(
      `UPDATE entries SET last_accessed_at = ?, download_url_expires_at = max(download_url_expires_at, ?)
       WHERE id = ?`,
    ),
    deleteEntry: db.prepare<[number], void>('DELETE FROM entries WHERE id = ?'),
    blob: db.prepare<[string], BlobRow>(
      'SELECT generation, size_bytes, etag, last_modified, created_at FROM blobs WHERE blob_id = ?',
    ),
    blobBlocks: db.prepare<[string], { generation: string; blocks: string }>(
      'SELECT generation, blocks FROM blobs WHERE blob_id = ?',
    ),
    upsertBlob: db.prepare<[string, string, number, string, number, number, string], void>(
      `INSERT INTO blobs (blob_id, generation, size_bytes, etag, last_modified, created_at, blocks)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (blob_id) DO UPDATE SET generation = excluded.generation, size_bytes = excluded.size_bytes,
         etag = excluded.etag, last_modified = excluded.last_modified, blocks = excluded.blocks`,
    ),
    retainBlob: db.prepare<[number, string], void>(
      'UPDATE blobs SET retain_until = max(coalesce(retain_until, 0), ?) WHERE blob_id = ?',
    ),
    deleteBlob: db.prepare<[string, string], void>('DELETE FROM blobs WHERE blob_id = ? AND generation = ?'),
    /** Retained blobs whose time passed, and blobs whose entry is gone without retention. */
    expiredBlobs: db.prepare<[number], { blob_id: string; generation: string }>(
      `SELECT blob_id, generation FROM blobs
       WHERE (retain_until IS NOT NULL AND retain_until <= ?)
          OR (retain_until IS NULL AND NOT EXISTS (SELECT 1 FROM entries WHERE entries.blob_id = blobs.blob_id))`,
    ),
    generations: db.prepare<[], { blob_id: string; generation: string }>(
      'SELECT blob_id, generation FROM blobs',
    ),
  };

  const blobPath = (blobId: string, generation: string) =>
    join(blobsDir, blobId.slice(0, 2), `${blobId}.${generation}`);
  const stagingPath = (blobId: string) => join(stagingDir, blobId);
  const tmpPath = () => join(tmpDir, randomBytes(12).toString('hex'));

  /** Fire-and-forget file work (unlinks); `close()` and `sweep()` wait for it. */
  const inFlight = new Set<Promise<void>>();
  const background = (work: Promise<unknown>) => {
    const p: Promise<void> = work.then(
      () => undefined,
      () => undefined,
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  const settle = async () => {
    while (inFlight.size > 0) await Promise.all(inFlight);
  };

  const checkBlobId = (blobId: string) => {
    if (!BLOB_ID.test(blobId)) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
  };

  /** Moves the staging directory aside (atomic, synchronous) and removes it in the background. */
  const dropStaging = (blobId: string) => {
    const aside = `${tmpPath()}-staging`;
    try {
      renameSync(stagingPath(blobId), aside);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    background(rm(aside, { recursive: true, force: true }));
  };

  /** Streams `body` (exactly `length` bytes) into a new tmp file; fsynced when `durable`. */
  const receive = async (body: Readable, length: number, durable: boolean): Promise<string> => {
    const path = tmpPath();
    try {
      await pipeline(
        body,
        exactLength(length),
        createWriteStream(path, { flags: 'wx', flush: durable, highWaterMark: MiB }),
      );
      return path;
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
  };

  /** Deletes the entry row; deletes or retains its committed blob row. */
  const removeEntry = db.transaction((id: number, now: number) => {
    const entry = q.get.get(id);
    if (!entry) return undefined;
    q.deleteEntry.run(id);
    const blob = q.blob.get(entry.blob_id);
    if (!blob) return { blobId: entry.blob_id, generation: undefined };
    if (entry.download_url_expires_at > now) {
      q.retainBlob.run(entry.download_url_expires_at, entry.blob_id);
      return { blobId: entry.blob_id, generation: undefined };
    }
    q.deleteBlob.run(entry.blob_id, blob.generation);
    return { blobId: entry.blob_id, generation: blob.generation };
  });

  const removeBlobs = db.transaction((blobs: readonly { blob_id: string; generation: string }[]) =>
    blobs.filter((b) => q.deleteBlob.run(b.blob_id, b.generation).changes === 1),
  );

  const switchGeneration = db.transaction(
    (blobId: string, generation: string, size: number, now: number, blocks: string) => {
      const previous = q.blob.get(blobId);
      const etag = newEtag(now);
      q.upsertBlob.run(blobId, generation, size, etag, now, now, blocks);
      return {
        previous: previous?.generation,
        properties: { size, etag, lastModified: now, createdAt: previous?.created_at ?? now },
      };
    },
  );

  /**
   * Makes the fsynced tmp file the blob's committed content: rename into place, fsync the
   * directory, switch the row durably, unlink the old generation.
   */
  const commitGeneration = async (
    blobId: string,
    tmp: string,
    size: number,
    blocks: readonly CommittedBlock[],
    now: number,
  ): Promise<BlobProperties> => {
    const generation = randomBytes(8).toString('hex');
    const path = blobPath(blobId, generation);
    try {
      await rename(tmp, path);
      await fsyncDir(join(blobsDir, blobId.slice(0, 2)));
    } catch (err) {
      await rm(tmp, { force: true });
      await rm(path, { force: true });
      throw err;
    }
    db.pragma('synchronous = FULL');
    let result: ReturnType<typeof switchGeneration>;
    try {
      result = switchGeneration(blobId, generation, size, now, JSON.stringify(blocks));
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    } finally {
      db.pragma('synchronous = NORMAL');
    }
    dropStaging(blobId);
    if (result.previous !== undefined) {
      await unlink(blobPath(blobId, result.previous)).catch(() => undefined);
    }
    return result.properties;
  };

  /** Staged block files of a blob, by block id (base64). */
  const listStaged = async (blobId: string): Promise<Map<string, string>> => {
    const dir = stagingPath(blobId);
    const staged = new Map<string, string>();
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return staged;
      throw err;
    }
    for (const name of names) {
      const m = STAGED_FILE.exec(name);
      if (m) staged.set(Buffer.from(m[1]!, 'hex').toString('base64'), join(dir, name));
    }
    return staged;
  };

  /** Decoded id length of any one staged block of the blob (all are equal), or `undefined`. */
  const stagedIdLength = async (blobId: string): Promise<number | undefined> => {
    let dir: Awaited<ReturnType<typeof opendir>>;
    try {
      dir = await opendir(stagingPath(blobId));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    try {
      for await (const dirent of dir) {
        const m = STAGED_FILE.exec(dirent.name);
        if (m) return m[1]!.length / 2;
      }
      return undefined;
    } finally {
      await dir.close().catch(() => undefined);
    }
  };

  /**
   * Reads the blob row and opens its generation file, consistently: if a commit or delete
   * unlinked the file between the two, the row is read again.
   */
  const openCommitted = async <T extends { generation: string }>(
    blobId: string,
    read: (blobId: string) => T | undefined,
  ): Promise<{ row: T; fh: FileHandle } | undefined> => {
    for (;;) {
      const row = read(blobId);
      if (!row) return undefined;
      try {
        return { row, fh: await open(blobPath(blobId, row.generation), 'r') };
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
        if (read(blobId)?.generation === row.generation) {
          throw new StorageError('BlobNotFound', `the content of blob ${blobId} is missing`, { cause: err });
        }
      }
    }
  };

  recover();

  function recover(): void {
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
      if (!BLOB_ID.test(name) || q.hasPendingByBlob.get(name) === undefined) {
        rmSync(join(stagingDir, name), { recursive: true, force: true });
      }
    }
  }

  const getEntry = (id: number): CacheEntry | undefined => {
    const row = q.get.get(id);
    return row && toEntry(row);
  };

  const storage: CacheStorage = {
    kind: 'fs',

    reserveEntry(identity: EntryIdentity, now: number) {
      const { changes, lastInsertRowid } = q.reserve.run(
        identity.repositoryId,
        identity.scope,
        identity.key,
        identity.version,
        randomBytes(16).toString('hex'),
        now,
        now,
      );
      return changes === 0 ? undefined : getEntry(Number(lastInsertRowid));
    },
    getEntry,
    findEntry(identity) {
      const row = q.find.get(identity.repositoryId, identity.scope, identity.key, identity.version);
      return row && toEntry(row);
    },
    findEntryByBlobId(blobId) {
      const row = q.findByBlob.get(blobId);
      return row && toEntry(row);
    },
    findCommittedExact(repositoryId, scope, version, key) {
      const row = q.find.get(repositoryId, scope, key, version);
      return row?.state === 'committed' ? toEntry(row) : undefined;
    },
    findCommittedByPrefix(repositoryId, scope, version, prefix) {
      // The answer is the max id over a key range. Two index walks run in growing steps, and the
      // first to finish answers: newest-first by id (finishes at the first key with the prefix) and
      // the key range (finishes at its end). Cost: O(min(range size, newer non-matching entries)),
      // so both a broad restore key (`npm-`) and a selective one take a few index steps.
      const upper = prefixUpperBound(prefix) ?? NO_UPPER_BOUND;
      for (let offset = 0, step = 16; ; offset += step, step *= 8) {
        const recent = q.recentMatch.get(repositoryId, scope, version, step, offset, prefix, upper);
        if (recent != null) return getEntry(recent);
        const range = q.rangeMatch.get(repositoryId, scope, version, prefix, upper, step)!;
        if (range.n < step) return range.newest == null ? undefined : getEntry(range.newest);
      }
    },
    listEntries(filter: EntryFilter = {}) {
      return q.list
        .all({
          repositoryId: filter.repositoryId ?? null,
          state: filter.state ?? null,
          createdBefore: filter.createdBefore ?? null,
        })
        .map(toEntry);
    },
    commitEntry(id, sizeBytes, now) {
      if (q.commit.run(sizeBytes, now, now, id).changes === 0) throw new Error(`no entry ${id}`);
      return getEntry(id)!;
    },
    touchEntry(id, now, urlExpiresAt) {
      q.touch.run(now, urlExpiresAt, id);
    },
    deleteEntry(id, now) {
      const removed = removeEntry(id, now);
      if (!removed || !BLOB_ID.test(removed.blobId)) return;
      dropStaging(removed.blobId);
      if (removed.generation !== undefined) {
        background(unlink(blobPath(removed.blobId, removed.generation)));
      }
    },
    async sweep(now) {
      const expired = q.expiredBlobs.all(now);
      const removed = removeBlobs(expired);
      for (const b of removed) {
        if (BLOB_ID.test(b.blob_id)) background(unlink(blobPath(b.blob_id, b.generation)));
      }
      for (const name of await readdir(stagingDir)) {
        if (!BLOB_ID.test(name) || q.hasPendingByBlob.get(name) === undefined) dropStaging(name);
      }
      await settle();
      return removed.length;
    },

    async putBlob(blobId, body, length, now) {
      try {
        checkBlobId(blobId);
      } catch (err) {
        body.resume();
        throw err;
      }
      const tmp = await receive(body, length, true);
      return commitGeneration(blobId, tmp, length, [], now);
    },

    async putBlock(blobId, blockId, body, length) {
      let file: string;
      try {
        checkBlobId(blobId);
        file = blockIdToFile(blockId);
        const idLength = await stagedIdLength(blobId);
        if (idLength !== undefined && idLength !== blockIdByteLength(blockId)) {
          throw new StorageError('InvalidBlobOrBlock', 'block id length differs from the staged blocks');
        }
      } catch (err) {
        body.resume();
        throw err;
      }
      const tmp = await receive(body, length, false);
      const dir = stagingPath(blobId);
      try {
        for (let attempt = 0; ; attempt++) {
          await mkdir(dir, { recursive: true });
          try {
            await rename(tmp, join(dir, file));
            return;
          } catch (err) {
            // The staging directory was dropped meanwhile (a commit or delete): recreate it.
            if (!isErrno(err, 'ENOENT') || attempt >= 2) throw err;
          }
        }
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    },

    async commitBlockList(blobId, items: readonly BlockListItem[], now) {
      checkBlobId(blobId);
      const staged = await listStaged(blobId);
      // Resolve the whole list before touching anything (all or nothing).
      const readCommitted = (id: string) => {
        const row = q.blobBlocks.get(id);
        return row && { generation: row.generation, blocks: JSON.parse(row.blocks) as CommittedBlock[] };
      };
      let current = readCommitted(blobId);
      let resolved = resolveBlockList(items, staged, current?.blocks.map((b) => b.id) ?? []);
      let old: FileHandle | undefined;
      if (resolved.some((r) => r.from === 'committed')) {
        const opened = await openCommitted(blobId, readCommitted);
        if (!opened) throw new StorageError('InvalidBlockList', 'the committed blocks are gone');
        old = opened.fh;
        if (opened.row.generation !== current?.generation) {
          current = opened.row;
          try {
            resolved = resolveBlockList(
              items,
              staged,
              current.blocks.map((b) => b.id),
            );
          } catch (err) {
            await old.close();
            throw err;
          }
        }
      }
      const committedById = new Map(current?.blocks.map((b) => [b.id, b]));
      const blocks: CommittedBlock[] = [];
      let offset = 0;
      const oldFile = old;
      async function* assemble(): AsyncGenerator<Buffer> {
        for (const r of resolved) {
          let source: AsyncIterable<Buffer>;
          if (r.from === 'staged') {
            source = createReadStream(staged.get(r.id)!, { highWaterMark: MiB });
          } else {
            const c = committedById.get(r.id)!;
            source = readRange(oldFile!, c.start, c.end);
          }
          let n = 0;
          try {
            for await (const chunk of source) {
              n += chunk.length;
              yield chunk;
            }
          } catch (err) {
            if (isErrno(err, 'ENOENT')) {
              throw new StorageError('InvalidBlockList', `block ${r.id} was dropped meanwhile`, {
                cause: err,
              });
            }
            throw err;
          }
          blocks.push({ id: r.id, start: offset, end: offset + n });
          offset += n;
        }
      }
      const tmp = tmpPath();
      try {
        await pipeline(assemble(), createWriteStream(tmp, { flags: 'wx', flush: true, highWaterMark: MiB }));
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      } finally {
        await oldFile?.close();
      }
      return commitGeneration(blobId, tmp, offset, blocks, now);
    },

    getBlobProperties(blobId) {
      const row = q.blob.get(blobId);
      return row && toProperties(row);
    },

    async openBlob(blobId, range?: ByteRange) {
      if (!BLOB_ID.test(blobId)) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
      const opened = await openCommitted(blobId, (id) => q.blob.get(id));
      if (!opened) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
      const { row, fh } = opened;
      const stream = fh.createReadStream({
        highWaterMark: MiB,
        ...(range ? { start: range.start, end: range.end } : {}),
      });
      return { properties: toProperties(row), stream };
    },

    async close() {
      await settle();
      if (db.open) db.close();
    },
  };
  return storage;
}

function isSqliteBusy(err: unknown): boolean {
  return err instanceof Error && 'code' in err && (err as { code: unknown }).code === 'SQLITE_BUSY';
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) {
    // A write takes the exclusive lock now rather than at the first real write.
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    return;
  }
  if (version !== 0) {
    throw new Error(`meta.sqlite has schema version ${version}; this build reads version ${SCHEMA_VERSION}`);
  }
  db.exec(`
    BEGIN;
    CREATE TABLE entries (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      repository_id TEXT NOT NULL,
      scope TEXT NOT NULL,
      key TEXT NOT NULL,
      version TEXT NOT NULL,
      blob_id TEXT NOT NULL UNIQUE,
      state TEXT NOT NULL CHECK (state IN ('pending', 'committed')),
      size_bytes INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL,
      committed_at INTEGER NOT NULL DEFAULT 0,
      last_accessed_at INTEGER NOT NULL,
      download_url_expires_at INTEGER NOT NULL DEFAULT 0,
      UNIQUE (repository_id, scope, key, version)
    );
    CREATE INDEX entries_committed_key ON entries (repository_id, scope, version, key)
      WHERE state = 'committed';
    CREATE INDEX entries_committed_recent ON entries (repository_id, scope, version, id, key)
      WHERE state = 'committed';
    CREATE TABLE blobs (
      blob_id TEXT PRIMARY KEY,
      generation TEXT NOT NULL,
      size_bytes INTEGER NOT NULL,
      etag TEXT NOT NULL,
      last_modified INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      retain_until INTEGER,
      blocks TEXT NOT NULL
    );
    PRAGMA user_version = ${SCHEMA_VERSION};
    COMMIT;
  `);
}
