import { randomBytes } from 'node:crypto';
import {
  close as closeFd,
  createWriteStream,
  mkdirSync,
  open as openFd,
  readdirSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { link, mkdir, open, opendir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { blockIdByteLength, newEtag, resolveBlockList } from './blocks.js';
import { BufferPool, type OpenSpan, SpansStream } from './span-stream.js';
import {
  type BlobProperties,
  type BlockListItem,
  type ByteRange,
  type CacheEntry,
  type CacheStorage,
  type EntryFilter,
  type EntryIdentity,
  type EntryState,
  type RepositoryUsage,
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
 *                              fsynced), because an old generation is removed right after them.
 *                              locking_mode=EXCLUSIVE: one process per data directory.
 * <dataDir>/blobs/<xx>/<blobId>.<generation>
 *                              committed content, immutable, one name per commit (the `layout` column):
 *                              'file': one file (Put Blob, and block lists committed by schema 1). Put Blob
 *                              writes it in tmp/, fsyncs it, renames it into place, fsyncs the directory.
 *                              'dir': a directory of part files p0, p1, … (Put Block List). The commit
 *                              hard-links each distinct staged block file (fsynced by Put Block) or part of
 *                              the previous generation it lists into the new directory, fsyncs the
 *                              directory and its shard, and records in `blocks` each listed block's
 *                              [start, end) in the blob and its part file and offset: O(metadata), no copy.
 *                              Then both layouts: switch the blob row in one transaction (synchronous=FULL)
 *                              and remove the old generation. A crash at any point leaves the committed
 *                              generation intact; unreferenced generations are removed at start-up.
 *                              Readers open every part file they need before returning (pinned inodes).
 * <dataDir>/staging/<blobId>/b<hex of the decoded block id>
 *                              staged blocks, written to tmp/ and fsynced, then renamed (re-staging replaces
 *                              atomically). A commit links them, so a failed commit leaves them staged.
 *                              Dropped by renaming the directory into tmp/.
 * <dataDir>/tmp/               work files; emptied at start-up.
 */

const SCHEMA_VERSION = 3;
/** Stream buffer and read chunk size (256 KiB keeps peak RSS low at the same speed as 1 MiB). */
const CHUNK = 256 * 1024;
/** Read size of download streams: one read in flight per stream, so larger reads keep the disk busier. */
const READ_CHUNK = 1024 * 1024;
/** Names of the part files of a 'dir' generation; checked before a path is built from the row. */
const PART_FILE = /^p[0-9]+$/;
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

type Layout = 'file' | 'dir';

interface BlobRow {
  generation: string;
  layout: Layout;
  blocks: string;
  size_bytes: number;
  etag: string;
  last_modified: number;
  created_at: number;
}

/** One listed block: bytes [start, end) of the blob; in a 'dir' generation, at `offset` of part `file`. */
interface CommittedBlock {
  id: string;
  start: number;
  end: number;
  file?: string;
  offset?: number;
}

const openForRead = promisify(openFd);
const closeQuietly = (fd: number) => closeFd(fd, () => undefined);

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

  /** Download read buffers, reused across requests (16 idle at most: 16 MiB). */
  const readBuffers = new BufferPool(READ_CHUNK, 16);
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
    /** Kept by triggers (see `migrate`), so a quota check reads one row. */
    usage: db.prepare<[string], { size_bytes: number; count: number }>(
      'SELECT size_bytes, count FROM repository_usage WHERE repository_id = ?',
    ),
    allUsage: db.prepare<[], { repository_id: string; size_bytes: number; count: number }>(
      'SELECT repository_id, size_bytes, count FROM repository_usage WHERE count > 0 ORDER BY repository_id',
    ),
    leastRecentlyUsed: db.prepare<[string, number], EntryRow>(
      `SELECT * FROM entries INDEXED BY entries_committed_lru
       WHERE repository_id = ? AND state = 'committed' ORDER BY last_accessed_at, id LIMIT ?`,
    ),
    idle: db.prepare<[number, number], EntryRow>(
      `SELECT * FROM entries INDEXED BY entries_committed_idle
       WHERE state = 'committed' AND last_accessed_at < ? ORDER BY last_accessed_at, id LIMIT ?`,
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
      'SELECT generation, layout, blocks, size_bytes, etag, last_modified, created_at FROM blobs WHERE blob_id = ?',
    ),
    upsertBlob: db.prepare<[string, string, Layout, number, string, number, number, string], void>(
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

  const shardPath = (blobId: string) => join(blobsDir, blobId.slice(0, 2));
  const blobPath = (blobId: string, generation: string) => join(shardPath(blobId), `${blobId}.${generation}`);
  /** Removes a generation (a file or a directory of parts). */
  const removeGeneration = (blobId: string, generation: string) =>
    rm(blobPath(blobId, generation), { recursive: true, force: true });
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
        createWriteStream(path, { flags: 'wx', flush: durable, highWaterMark: CHUNK }),
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
    (blobId: string, generation: string, layout: Layout, size: number, now: number, blocks: string) => {
      const previous = q.blob.get(blobId);
      const etag = newEtag(now);
      q.upsertBlob.run(blobId, generation, layout, size, etag, now, now, blocks);
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
    layout: Layout,
    size: number,
    blocks: readonly CommittedBlock[],
    now: number,
  ): Promise<BlobProperties> => {
    db.pragma('synchronous = FULL');
    let result: ReturnType<typeof switchGeneration>;
    try {
      result = switchGeneration(blobId, generation, layout, size, now, JSON.stringify(blocks));
    } catch (err) {
      await removeGeneration(blobId, generation);
      throw err;
    } finally {
      db.pragma('synchronous = NORMAL');
    }
    dropStaging(blobId);
    if (result.previous !== undefined) await removeGeneration(blobId, result.previous).catch(() => undefined);
    return result.properties;
  };

  /** Makes the fsynced tmp file the blob's content ('file' layout): rename into place, fsync the directory, switch. */
  const commitFile = async (
    blobId: string,
    tmp: string,
    size: number,
    now: number,
  ): Promise<BlobProperties> => {
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
   * Reads the blob row and opens every part file holding bytes [start, end] of it (the whole blob
   * without a range), consistently: if a commit or delete removed a file between the two, the row
   * is read again. The open handles pin the content as of the call.
   */
  const openContent = async (
    blobId: string,
    range: ByteRange | undefined,
  ): Promise<{ row: BlobRow; stream: Readable } | undefined> => {
    for (;;) {
      const row = q.blob.get(blobId);
      if (!row) return undefined;
      const fds: number[] = [];
      const openFd = async (file: string) => {
        const fd = await openForRead(file, 'r');
        fds.push(fd);
        return fd;
      };
      try {
        const path = blobPath(blobId, row.generation);
        const start = range?.start ?? 0;
        const end = range ? range.end + 1 : row.size_bytes;
        const spans: OpenSpan[] = [];
        if (row.layout === 'file') {
          spans.push({ fd: await openFd(path), position: start, end });
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
              fd = await openFd(join(path, file));
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

  /**
   * Hits not yet written: id → [lastAccessedAt, downloadUrlExpiresAt]. A hit's UPDATE touches two
   * indexes; writing one event-loop turn's hits in one transaction more than doubles lookups/s. Entries
   * read meanwhile carry these values, and queries that filter or order by them write them first.
   * A crash loses at most one turn of access times, never an entry.
   */
  const pendingTouches = new Map<number, readonly [number, number]>();
  let touchFlushScheduled = false;
  const writeTouches = db.transaction((batch: [number, readonly [number, number]][]) => {
    for (const [id, [accessedAt, urlExpiresAt]] of batch) q.touch.run(accessedAt, urlExpiresAt, id);
  });
  const flushTouches = () => {
    if (pendingTouches.size === 0 || !db.open) return;
    const batch = [...pendingTouches];
    pendingTouches.clear();
    writeTouches(batch);
  };
  const entryOf = (row: EntryRow): CacheEntry => {
    const entry = toEntry(row);
    const touch = pendingTouches.get(entry.id);
    if (!touch) return entry;
    return {
      ...entry,
      lastAccessedAt: touch[0],
      downloadUrlExpiresAt: Math.max(entry.downloadUrlExpiresAt, touch[1]),
    };
  };

  const getEntry = (id: number): CacheEntry | undefined => {
    const row = q.get.get(id);
    return row && entryOf(row);
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
      return row && entryOf(row);
    },
    findEntryByBlobId(blobId) {
      const row = q.findByBlob.get(blobId);
      return row && entryOf(row);
    },
    findCommittedExact(repositoryId, scope, version, key) {
      const row = q.find.get(repositoryId, scope, key, version);
      return row?.state === 'committed' ? entryOf(row) : undefined;
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
        .map(entryOf);
    },
    repositoryUsage(repositoryId): RepositoryUsage {
      const row = q.usage.get(repositoryId);
      return { repositoryId, sizeBytes: row?.size_bytes ?? 0, count: row?.count ?? 0 };
    },
    listRepositoryUsage() {
      return q.allUsage
        .all()
        .map((r) => ({ repositoryId: r.repository_id, sizeBytes: r.size_bytes, count: r.count }));
    },
    listLeastRecentlyUsed(repositoryId, limit) {
      flushTouches();
      return q.leastRecentlyUsed.all(repositoryId, Math.max(0, limit)).map(toEntry);
    },
    listIdleEntries(accessedBefore, limit) {
      flushTouches();
      return q.idle.all(accessedBefore, Math.max(0, limit)).map(toEntry);
    },
    commitEntry(id, sizeBytes, now) {
      if (q.commit.run(sizeBytes, now, now, id).changes === 0) throw new Error(`no entry ${id}`);
      return getEntry(id)!;
    },
    touchEntry(id, now, urlExpiresAt) {
      const earlier = pendingTouches.get(id);
      pendingTouches.set(id, [now, Math.max(earlier?.[1] ?? 0, urlExpiresAt)]);
      if (touchFlushScheduled) return;
      touchFlushScheduled = true;
      setImmediate(() => {
        touchFlushScheduled = false;
        flushTouches();
      });
    },
    deleteEntry(id, now) {
      flushTouches();
      const removed = removeEntry(id, now);
      if (!removed || !BLOB_ID.test(removed.blobId)) return;
      dropStaging(removed.blobId);
      if (removed.generation !== undefined) {
        background(removeGeneration(removed.blobId, removed.generation));
      }
    },
    async sweep(now) {
      flushTouches();
      const expired = q.expiredBlobs.all(now);
      const removed = removeBlobs(expired);
      for (const b of removed) {
        if (BLOB_ID.test(b.blob_id)) background(removeGeneration(b.blob_id, b.generation));
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
      return commitFile(blobId, tmp, length, now);
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
      // Durable now, in parallel with the other blocks in flight: a commit only links it.
      const tmp = await receive(body, length, true);
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
      for (let attempt = 0; ; attempt++) {
        const staged = await listStaged(blobId);
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

    getBlobProperties(blobId) {
      const row = q.blob.get(blobId);
      return row && toProperties(row);
    },

    async openBlob(blobId, range?: ByteRange) {
      if (!BLOB_ID.test(blobId)) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
      const opened = await openContent(blobId, range);
      if (!opened) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
      return { properties: toProperties(opened.row), stream: opened.stream };
    },

    async close() {
      flushTouches();
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
  if (version < 0 || version > SCHEMA_VERSION) {
    throw new Error(`meta.sqlite has schema version ${version}; this build reads version ${SCHEMA_VERSION}`);
  }
  db.transaction(() => {
    if (version === 0) db.exec(SCHEMA_2);
    // Schema 1 had one file per generation: those keep working as 'file' generations.
    if (version === 1) {
      db.exec(
        `ALTER TABLE blobs ADD COLUMN layout TEXT NOT NULL DEFAULT 'file' CHECK (layout IN ('file', 'dir'))`,
      );
    }
    db.exec(SCHEMA_3);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

const SCHEMA_2 = `
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
    blocks TEXT NOT NULL,
    layout TEXT NOT NULL DEFAULT 'file' CHECK (layout IN ('file', 'dir'))
  );
`;

/**
 * Schema 3: per-repository usage kept by triggers (a quota check reads one row instead of summing
 * a repository's entries), and the indexes of the eviction order (per repository) and of idle
 * expiry (global). Idempotent, so it also runs over a database whose version number was lowered.
 */
const SCHEMA_3 = `
  CREATE TABLE IF NOT EXISTS repository_usage (
    repository_id TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    count INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS entries_committed_lru ON entries (repository_id, last_accessed_at, id)
    WHERE state = 'committed';
  CREATE INDEX IF NOT EXISTS entries_committed_idle ON entries (last_accessed_at, id)
    WHERE state = 'committed';
  CREATE TRIGGER IF NOT EXISTS entries_usage_update AFTER UPDATE OF state, size_bytes ON entries
  WHEN old.state = 'committed' OR new.state = 'committed'
  BEGIN
    UPDATE repository_usage SET size_bytes = size_bytes - old.size_bytes, count = count - 1
      WHERE old.state = 'committed' AND repository_id = old.repository_id;
    INSERT OR IGNORE INTO repository_usage (repository_id) SELECT new.repository_id WHERE new.state = 'committed';
    UPDATE repository_usage SET size_bytes = size_bytes + new.size_bytes, count = count + 1
      WHERE new.state = 'committed' AND repository_id = new.repository_id;
  END;
  CREATE TRIGGER IF NOT EXISTS entries_usage_delete AFTER DELETE ON entries
  WHEN old.state = 'committed'
  BEGIN
    UPDATE repository_usage SET size_bytes = size_bytes - old.size_bytes, count = count - 1
      WHERE repository_id = old.repository_id;
  END;
  DELETE FROM repository_usage;
  INSERT INTO repository_usage (repository_id, size_bytes, count)
    SELECT repository_id, sum(size_bytes), count(*) FROM entries WHERE state = 'committed' GROUP BY repository_id;
`;
