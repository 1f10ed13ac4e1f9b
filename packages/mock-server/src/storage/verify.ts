/**
 * Offline check of an embedded (SQLite + files) data directory: the database passes its integrity
 * check; every committed entry has its blob, of the recorded size; no blob, staging or temporary file
 * is left without an owner. `repair` removes what cannot be served. Also the start-up check: a
 * damaged database stops the server with a clear message, and entries whose blob is gone are found
 * before they are served.
 */
import { existsSync, statSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOB_ID, type Layout, layoutOf, PART_FILE } from './files/layout.js';
import type { CommittedBlock } from './files/statements.js';
import { Database } from './sqlite/driver.js';

export type FindingKind =
  /** A committed entry whose blob (row or file) is gone. */
  | 'missing-blob'
  /** A committed entry whose blob holds fewer or more bytes than recorded. */
  | 'wrong-size'
  /** A blob file or directory that no blob row names. */
  | 'orphan-blob'
  /** A staging directory of no pending entry. */
  | 'orphan-staging'
  /** A file left in tmp/ (start-up empties it). */
  | 'leftover-tmp';

export interface Finding {
  readonly kind: FindingKind;
  readonly detail: string;
  readonly entryId?: number;
  readonly key?: string;
  readonly path?: string;
  /** For a finding about a committed entry: the entry, so a miss on it can say why. */
  readonly entry?: FoundEntry;
}

/** The facts of a committed entry a finding is about. */
export interface FoundEntry {
  readonly id: number;
  readonly repositoryId: string;
  readonly scope: string;
  readonly key: string;
  readonly version: string;
  readonly sizeBytes: number;
}

export interface VerifyReport {
  readonly dataDir: string;
  /** `ok` from SQLite's integrity check, or what it reported. */
  readonly database: string;
  readonly entries: number;
  readonly committed: number;
  readonly findings: readonly Finding[];
  /** Findings removed (with `repair`). */
  readonly repaired: number;
}

/** `meta.sqlite` cannot be opened or fails its integrity check: the server does not start on it. */
export class DatabaseDamagedError extends Error {
  override readonly name = 'DatabaseDamagedError';
  readonly code = 'ERR_DATABASE_DAMAGED';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(
      `the database ${file} is damaged (${problem}): the server will not start on it. ` +
        'Restore it from a backup, or move the data directory aside to start empty ' +
        '(gha-cache-mock verify --data-dir <dir> shows what it holds)',
    );
  }
}

interface CommittedRow {
  id: number;
  repository_id: string;
  scope: string;
  key: string;
  version: string;
  size_bytes: number;
  blob_id: string;
  generation: string | null;
  layout: 'file' | 'dir' | null;
  blob_size: number | null;
  blocks: string | null;
}

const databaseFile = (dataDir: string) => join(dataDir, 'meta.sqlite');

/** Opens the database and runs SQLite's check (`quick` at start-up); throws `DatabaseDamagedError`. */
function openChecked(file: string, quick: boolean): Database {
  let db: Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true, timeout: 2000 });
    const rows = db.pragma(quick ? 'quick_check' : 'integrity_check') as Record<string, string>[];
    const result = rows.map((r) => Object.values(r)[0]).join('; ');
    if (result !== 'ok') throw new DatabaseDamagedError(file, result.slice(0, 500));
    db.prepare('SELECT count(*) FROM entries').get();
    return db;
  } catch (err) {
    db?.close();
    if (err instanceof DatabaseDamagedError) throw err;
    const e = err as { code?: string; message?: string };
    if (e.code === 'SQLITE_BUSY') throw err;
    throw new DatabaseDamagedError(file, `${e.code ?? 'error'}: ${e.message ?? String(err)}`);
  }
}

/** A file's size, or undefined when it is missing. Synchronous on purpose: one stat per committed blob
 * at start-up costs about a microsecond, a promise per row costs more than the stat. */
function size(path: string): number | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false })?.size;
  } catch {
    return undefined;
  }
}

/** What is wrong with one committed entry's blob, or undefined when it can be served. */
function blobProblem(layout: Layout, row: CommittedRow): Finding | undefined {
  const problem = fileProblem(layout, row);
  if (!problem) return undefined;
  const entry: FoundEntry = {
    id: row.id,
    repositoryId: row.repository_id,
    scope: row.scope,
    key: row.key,
    version: row.version,
    sizeBytes: row.size_bytes,
  };
  return { ...problem, entryId: row.id, key: row.key, entry };
}

type FileProblem = Pick<Finding, 'kind' | 'detail' | 'path'>;

/** The file side of `blobProblem`: only strings are built, and only for an entry that has a problem. */
function fileProblem(layout: Layout, row: CommittedRow): FileProblem | undefined {
  if (row.generation === null || !BLOB_ID.test(row.blob_id)) {
    return { kind: 'missing-blob', detail: `entry ${row.id} (${row.key}): no blob recorded` };
  }
  const path = layout.blobPath(row.blob_id, row.generation);
  if (row.blob_size !== row.size_bytes) {
    return {
      kind: 'wrong-size',
      detail: `entry ${row.id} (${row.key}): blob has ${row.blob_size} bytes, entry ${row.size_bytes}`,
      path,
    };
  }
  if (row.layout === 'file') {
    const n = size(path);
    if (n === undefined)
      return {
        kind: 'missing-blob',
        detail: `entry ${row.id} (${row.key}): ${path} is missing`,
        path,
      };
    if (n !== row.size_bytes) {
      return {
        kind: 'wrong-size',
        detail: `entry ${row.id} (${row.key}): ${path} has ${n} bytes, entry ${row.size_bytes}`,
        path,
      };
    }
    return undefined;
  }
  for (const { file = '', offset = 0, start, end } of JSON.parse(row.blocks ?? '[]') as CommittedBlock[]) {
    const b = { file, offset, start, end };
    if (!PART_FILE.test(b.file))
      return { kind: 'missing-blob', detail: `entry ${row.id}: bad part ${b.file}`, path };
    const n = size(join(path, b.file));
    if (n === undefined) {
      return {
        kind: 'missing-blob',
        detail: `entry ${row.id} (${row.key}): ${join(path, b.file)} is missing`,
        path,
      };
    }
    if (n < b.offset + (b.end - b.start)) {
      return {
        kind: 'wrong-size',
        detail: `entry ${row.id} (${row.key}): ${join(path, b.file)} is short`,
        path,
      };
    }
  }
  return undefined;
}

const COMMITTED = `SELECT e.id, e.repository_id, e.scope, e.key, e.version, e.size_bytes, e.blob_id, b.generation, b.layout, b.size_bytes AS blob_size, b.blocks
  FROM entries e LEFT JOIN blobs b ON b.blob_id = e.blob_id WHERE e.state = 'committed' ORDER BY e.id`;

/** Every committed entry that cannot be served, walking the rows one at a time (none kept). */
function committedProblems(db: Database, layout: Layout): { committed: number; findings: Finding[] } {
  const findings: Finding[] = [];
  let committed = 0;
  for (const row of db.prepare(COMMITTED).iterate() as IterableIterator<CommittedRow>) {
    committed++;
    const problem = blobProblem(layout, row);
    if (problem) findings.push(problem);
  }
  return { committed, findings };
}

function dropEntries(db: Database, findings: readonly Finding[]): void {
  const delEntry = db.prepare<[number], void>('DELETE FROM entries WHERE id = ?');
  db.transaction(() => {
    for (const f of findings) if (f.entryId !== undefined) delEntry.run(f.entryId);
  })();
}

/**
 * Checks the data directory offline (no server may hold it). With `repair`, drops committed entries
 * that cannot be served and removes orphaned files; a damaged database is reported, never repaired.
 */
export async function verifyDataDir(
  dataDir: string,
  options: { repair?: boolean } = {},
): Promise<VerifyReport> {
  const file = databaseFile(dataDir);
  if (!existsSync(file)) {
    return {
      dataDir,
      database: 'absent (an empty data directory)',
      entries: 0,
      committed: 0,
      findings: [],
      repaired: 0,
    };
  }
  const layout = layoutOf(dataDir);
  const db = openChecked(file, false);
  try {
    const entries = (db.prepare('SELECT count(*) AS n FROM entries').get() as { n: number }).n;
    const { committed, findings } = committedProblems(db, layout);
    const generations = new Set(
      (
        db.prepare('SELECT blob_id, generation FROM blobs').all() as { blob_id: string; generation: string }[]
      ).map((r) => `${r.blob_id}.${r.generation}`),
    );
    for (const shard of await readdir(layout.blobsDir).catch(() => [] as string[])) {
      for (const name of await readdir(join(layout.blobsDir, shard)).catch(() => [] as string[])) {
        if (!generations.has(name)) {
          const path = join(layout.blobsDir, shard, name);
          findings.push({ kind: 'orphan-blob', detail: `${path} belongs to no blob`, path });
        }
      }
    }
    const pending = db.prepare<[string], unknown>(
      `SELECT 1 FROM entries WHERE blob_id = ? AND state = 'pending'`,
    );
    for (const name of await readdir(layout.stagingDir).catch(() => [] as string[])) {
      if (!BLOB_ID.test(name) || pending.get(name) === undefined) {
        const path = join(layout.stagingDir, name);
        findings.push({ kind: 'orphan-staging', detail: `${path} belongs to no pending entry`, path });
      }
    }
    for (const name of await readdir(layout.tmpDir).catch(() => [] as string[])) {
      const path = join(layout.tmpDir, name);
      findings.push({ kind: 'leftover-tmp', detail: `${path} is left over`, path });
    }
    let repaired = 0;
    if (options.repair && findings.length > 0) {
      dropEntries(db, findings);
      for (const f of findings) {
        if (f.entryId === undefined && f.path) await rm(f.path, { recursive: true, force: true });
        repaired++;
      }
    }
    return { dataDir, database: 'ok', entries, committed, findings, repaired };
  } finally {
    db.close();
  }
}

/**
 * The start-up check, before the store opens: throws `DatabaseDamagedError` on a database that cannot
 * be read, and drops committed entries whose blob is gone (they would hit and then fail to download),
 * returning them so the caller can say so.
 */
export async function checkDataDirAtStart(dataDir: string): Promise<Finding[]> {
  const file = databaseFile(dataDir);
  if (!existsSync(file)) return [];
  const db = openChecked(file, true);
  try {
    const missing = committedProblems(db, layoutOf(dataDir)).findings;
    if (missing.length > 0) dropEntries(db, missing);
    return missing;
  } finally {
    db.close();
  }
}
